from __future__ import annotations

import subprocess
import sys

import pytest

import buttress
from buttress._cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"buttress {buttress.__version__}"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "rules", "dashboards"):
        assert command in out


def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buttress", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"buttress {buttress.__version__}"


def test_unknown_command_fails() -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
