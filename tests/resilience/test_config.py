from __future__ import annotations

import pytest

from buttress import ConfigurationError
from buttress.testing import is_testing, set_testing


def test_set_testing_as_a_call_and_as_a_context_manager() -> None:
    assert not is_testing()
    with set_testing(attempts=3):
        assert is_testing()
        with set_testing(False):
            assert not is_testing()
        assert is_testing()
    assert not is_testing()
    set_testing(True)
    assert is_testing()
    set_testing(False)
    assert not is_testing()


@pytest.mark.parametrize("attempts", [0, -1, 1.5, True, "2"])
def test_bad_attempts_are_named(attempts: object) -> None:
    with pytest.raises(ConfigurationError, match=repr(attempts).replace(".", r"\.")):
        set_testing(attempts=attempts)  # type: ignore[arg-type]
