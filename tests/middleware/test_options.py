"""The middleware options are defined once: the shells, Django and the docs agree with them."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from buttress import ConfigurationError
from buttress.middleware import MiddlewareOptions
from buttress.middleware._observer import Observer
from buttress.middleware._options import check_option_names

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "middleware.md"
OPTIONS = ROOT / "src" / "buttress" / "middleware" / "_options.py"
SCRIPT = ROOT / "scripts" / "options_table.py"


def test_the_options_are_the_observers_keywords() -> None:
    keywords = {
        name
        for name, p in inspect.signature(Observer).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(MiddlewareOptions.__annotations__) == keywords


def _options_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("options_table", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_table_is_the_one_generated_from_the_options() -> None:
    script = _options_table()
    text = DOCS.read_text()
    assert script.render(text, OPTIONS.read_text()) == text, "run scripts/options_table.py"
    table = text[text.index(script.BEGIN) : text.index(script.END)]
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    assert documented == list(MiddlewareOptions.__annotations__)


def test_an_option_without_a_default_paragraph_is_refused_by_name() -> None:
    script = _options_table()
    source = OPTIONS.read_text().replace("Default: `None` (nobody).", "Nobody by default.")
    with pytest.raises(SystemExit, match="trusted_peers"):
        script.table(source)


def test_a_settings_dict_with_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="'servce'"):
        check_option_names({"servce": "checkout"}, "BUTTRESS_MIDDLEWARE")
    check_option_names({"service": "checkout", "tracing": False}, "BUTTRESS_MIDDLEWARE")
