"""The middleware options are defined once: the shells, Django and the docs agree with them."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from buttress import ConfigurationError
from buttress.middleware import MiddlewareOptions
from buttress.middleware._observer import Observer
from buttress.middleware._options import check_option_names

DOCS = Path(__file__).resolve().parents[2] / "docs" / "middleware.md"


def test_the_options_are_the_observers_keywords() -> None:
    keywords = {
        name
        for name, p in inspect.signature(Observer).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(MiddlewareOptions.__annotations__) == keywords


def test_the_docs_table_lists_exactly_the_options() -> None:
    text = DOCS.read_text()
    table = text[text.index("| option | default | does |") :].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    # ``faults`` is the ASGI and WSGI shells' own keyword, beside the shared options.
    assert sorted(documented) == sorted([*MiddlewareOptions.__annotations__, "faults"])


def test_a_settings_dict_with_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="'servce'"):
        check_option_names({"servce": "checkout"}, "BUTTRESS_MIDDLEWARE")
    check_option_names({"service": "checkout", "tracing": False}, "BUTTRESS_MIDDLEWARE")
