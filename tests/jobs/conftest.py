from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._spans import LocalSpans, local_spans


@pytest.fixture
def spans() -> Iterator[LocalSpans]:
    with local_spans() as captured:
        yield captured
