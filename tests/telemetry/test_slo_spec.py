"""SLO options and SLO files as a specification: boundaries, defaults, exact messages.

The messages are asserted whole where users read them: each names the SLO, the field
and the bad value.
"""

from __future__ import annotations

import datetime
import math
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from buttress import ButtressWarning, ConfigurationError
from buttress.slo import SLO, load_slos
from buttress.telemetry._slo import slos_from_document

inf = math.inf


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"name": "has space"},
            "SLO 'has space', field 'name': use 1-63 letters, digits, '_', '.', '-'",
        ),
        ({"name": 7}, "SLO '7', field 'name': use 1-63 letters, digits, '_', '.', '-'"),
        ({"service": 3}, "SLO 'a', field 'service': 3: use letters, digits, '_', '.', '-'"),
        (
            {"min_errors": "3"},
            "SLO 'a', field 'min_errors': '3': a number of bad events, 1 or more",
        ),
        (
            {"min_errors": 0.999},
            "SLO 'a', field 'min_errors': 0.999: a number of bad events, 1 or more",
        ),
        (
            {"min_errors": inf},
            "SLO 'a', field 'min_errors': inf: a number of bad events, 1 or more",
        ),
        (
            {"min_errors": True},
            "SLO 'a', field 'min_errors': True: a number of bad events, 1 or more",
        ),
        (
            {"labels": {"sloth_service": "x"}},
            "SLO 'a', field 'labels': 'sloth_service' is set by buttress",
        ),
        ({"labels": {"__x": "x"}}, "SLO 'a', field 'labels': '__x' is not a label name"),
        ({"labels": {"team": True}}, "SLO 'a', field 'labels': team=True: values are strings"),
        (
            {"labels": ["team"]},
            "SLO 'a', field 'labels': ['team'] is not a mapping of label names to values",
        ),
        ({"description": 1}, "SLO 'a', field 'description': 1 is not a string"),
        ({"runbook_url": None}, "SLO 'a', field 'runbook_url': None is not a string"),
        ({"alert_name": 5}, "SLO 'a', field 'alert_name': 5: letters, digits and '_'"),
        ({"successful_only": 1}, "SLO 'a', field 'successful_only': 1: true or false"),
        (
            {"successful_only": True},
            "SLO 'a', field 'successful_only': only a latency SLO (with a threshold) takes it",
        ),
        ({"threshold": 0}, "SLO 'a', field 'threshold': 0: must be positive seconds"),
        ({"threshold": inf}, "SLO 'a', field 'threshold': inf: must be positive seconds"),
        ({"threshold": "1s"}, "SLO 'a', field 'threshold': '1s': seconds, as a number"),
        ({"routes": 5}, "SLO 'a', field 'routes': 5 is not a list of names"),
        ({"routes": [3]}, "SLO 'a', field 'routes': 3 is not a name"),
        ({"routes": []}, "SLO 'a', field 'routes': empty: omit it (None) to select all"),
        ({"window": "soon"}, "SLO 'a', field 'window': 'soon' is not a duration"),
        (
            {"window": datetime.timedelta(days=367)},
            "SLO 'a', field 'window': datetime.timedelta(days=367): a whole number of days, "
            "3 to 366",
        ),
        (
            {"window": datetime.timedelta(days=2)},
            "SLO 'a', field 'window': datetime.timedelta(days=2): shorter than the 3-day "
            "window of the slow ticket alert; use 3 days or more",
        ),
        (
            {"window": datetime.timedelta(days=3, seconds=43200)},
            "SLO 'a', field 'window': datetime.timedelta(days=3, seconds=43200): a whole "
            "number of days, 3 to 366",
        ),
        (
            {"objective": 1.5},
            "SLO 'a', field 'objective': 1.5 looks like a percentage: write 0.999",
        ),
        ({"objective": 100}, "SLO 'a', field 'objective': 100: must be between 0 and 1, exclusive"),
        (
            {"objective": -0.1},
            "SLO 'a', field 'objective': -0.1: must be between 0 and 1, exclusive",
        ),
        ({"objective": True}, "SLO 'a', field 'objective': True is not a number"),
    ],
)
def test_a_bad_option_is_named_with_its_value(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"service": "svc", "objective": 0.99, **options}
    name = arguments.pop("name", "a")
    with pytest.raises(ConfigurationError) as info:
        SLO(name, **arguments)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "the file must be a mapping with a 'slos' list"),
        ({"slos": "x"}, "field 'slos': a non-empty list of SLOs is required"),
        ({"version": 2, "slos": [{}]}, "field 'version': 2, only 1 is known"),
        ({"labels": ["x"], "slos": [{"name": "a"}]}, "field 'labels': ['x'] is not a mapping"),
        ({"service": "s", "slos": [5]}, "SLO #1: 5 is not a mapping"),
        (
            {"service": "s", "slos": [{"name": "a", "objective": 0.99}, 7]},
            "SLO #2: 7 is not a mapping",
        ),
        (
            {"service": "s", "slos": [{"name": "a", "objective": 0.99, "labels": ["x"]}]},
            "SLO 'a', field 'labels': ['x'] is not a mapping",
        ),
        (
            {"service": "s", "slos": [{"name": "a", "objective": 0.99, "min_rate": 1}]},
            "SLO 'a', field 'min_rate': field 'min_rate' is gone: the low-traffic guard now "
            "counts bad events, use 'min_errors'",
        ),
        (
            {"service": "s", "slos": [{"name": "a", "objective": 0.99, "bogus": 1, "zz": 2}]},
            "SLO 'a', field 'bogus': unknown field",
        ),
        (
            {"service": "s", "slos": [{"name": "a", "objective": 0.99, "threshold": "fast"}]},
            "SLO 'a', field 'threshold': not a duration: 'fast' (use seconds or e.g. "
            "'250ms', '30d')",
        ),
        (
            {"service": "s", "slos": [{"name": "a", "objective": 0.99, "window": "fast"}]},
            "SLO 'a', field 'window': 'fast' is not a duration",
        ),
        (
            {"service": "s", "slos": [{"objective": 0.99}]},
            "SLO '#1', field 'name': required, a string",
        ),
        (
            {
                "service": "s",
                "slos": [
                    {"name": "a", "objective": 0.99},
                    {"name": "b", "objective": 0.99},
                    {"name": 3},
                ],
            },
            "SLO '#3', field 'name': required, a string",
        ),
    ],
)
def test_a_bad_document_is_named_with_its_value(document: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        slos_from_document(document)
    assert str(info.value) == message


def slo(**options: Any) -> SLO:
    return SLO("a", **{"service": "svc", "objective": 0.99, **options})


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (timedelta(days=1), "shorter than the 3-day window"),
        (timedelta(days=2), "shorter than the 3-day window"),
        (timedelta(0), "a whole number of days, 3 to 366"),
        (timedelta(days=367), "a whole number of days, 3 to 366"),
    ],
)
def test_window_bounds_are_3_and_366_days(window: timedelta, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        slo(window=window)


def test_window_extremes_are_accepted() -> None:
    assert slo(window=timedelta(days=3)).period == "3d"
    assert slo(window=timedelta(days=366), objective=0.9999).window_days == 366
    assert slo(window="7d").period == "1w"
    assert slo(window=14 * 86400).period == "2w"


def test_min_errors_and_threshold_boundaries() -> None:
    assert slo(min_errors=1).min_errors == 1.0
    assert slo(min_errors=2.5).min_errors == 2.5
    assert slo(threshold=1e-9).threshold == 1e-9
    assert slo(threshold=timedelta(milliseconds=1)).threshold == 0.001
    assert slo(objective=0.5, window=timedelta(days=3)).error_budget == 0.5


def test_description_and_runbook_default_to_empty() -> None:
    plain = slo()
    assert (plain.description, plain.runbook_url) == ("", "")
    assert plain.labels == {}
    assert plain.successful_only is False
    assert plain.min_errors == 3.0


def test_document_level_defaults_apply_to_every_slo_unless_overridden() -> None:
    document = {
        "service": "shop",
        "min_errors": 7,
        "selector": {"job": "shop-api"},
        "runbook_url": "https://runbooks.example/shop",
        "labels": {"team": "web", "tier": "2"},
        "slos": [
            {"name": "availability", "objective": 0.999},
            {
                "name": "latency",
                "service": "search",
                "objective": 0.99,
                "threshold": "500ms",
                "min_errors": 2,
                "selector": {"job": "search-api"},
                "runbook_url": "https://runbooks.example/search",
                "labels": {"tier": "1"},
                "window": "28d",
            },
        ],
    }
    first, second = slos_from_document(document)
    assert first == SLO(
        "availability",
        service="shop",
        objective=0.999,
        min_errors=7,
        selector={"job": "shop-api"},
        runbook_url="https://runbooks.example/shop",
        labels={"team": "web", "tier": "2"},
    )
    assert second == SLO(
        "latency",
        service="search",
        objective=0.99,
        threshold=0.5,
        min_errors=2,
        selector={"job": "search-api"},
        runbook_url="https://runbooks.example/search",
        labels={"team": "web", "tier": "1"},
        window=timedelta(days=28),
    )


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("36h", "'36h': a whole number of days, 3 to 366"),
        ("2d", "'2d': shorter than the 3-day window of the slow ticket alert; use 3 days or more"),
        (129600, "129600: a whole number of days, 3 to 366"),
    ],
)
def test_a_window_in_a_file_is_quoted_as_written(window: object, message: str) -> None:
    document = {"service": "s", "slos": [{"name": "a", "objective": 0.99, "window": window}]}
    with pytest.raises(ConfigurationError) as info:
        slos_from_document(document)
    assert str(info.value) == f"SLO 'a', field 'window': {message}"


def test_a_window_in_a_file_may_be_seconds_or_a_duration() -> None:
    document = {
        "service": "s",
        "slos": [
            {"name": "a", "objective": 0.99, "window": "4w"},
            {"name": "b", "objective": 0.99, "window": 7 * 86400},
            {"name": "c", "objective": 0.99, "window": "1w1d"},
        ],
    }
    assert [s.window_days for s in slos_from_document(document)] == [28, 7, 8]


def test_the_same_name_for_two_services_is_two_slos() -> None:
    document = {
        "slos": [
            {"name": "availability", "service": "a", "objective": 0.99},
            {"name": "availability", "service": "b", "objective": 0.99},
        ]
    }
    assert [s.id for s in slos_from_document(document)] == ["a-availability", "b-availability"]


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "slos.yaml"
    path.write_text("service: s\nslos: [{name: a, objective: 0.99, routes: 5}]\n", "utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_slos(path)
    assert str(info.value) == f"{path}: SLO 'a', field 'routes': 5 is not a list of names"
    text = "service: s\nslos: [{name: a, objective: 0.99, description: Caf\u00e9 \u2713}]\n"
    path.write_text(text, "utf-8")
    assert load_slos(str(path))[0].description == "Caf\u00e9 \u2713"


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (1, "1: must be between 0 and 1, exclusive"),
        (0, "0: must be between 0 and 1, exclusive"),
        (100, "100: must be between 0 and 1, exclusive"),
        (99.9, "99.9 looks like a percentage: write 0.999"),
        (
            0.8,
            "0.8 can never page: the page thresholds (14.4 x 0.2 and 6 x 0.2) are error "
            "ratios of 1 or more; raise the objective",
        ),
    ],
)
def test_objective_messages(objective: float, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SLO("a", service="s", objective=objective)
    assert str(info.value) == f"SLO 'a', field 'objective': {message}"


def test_a_page_threshold_of_exactly_1_can_never_fire() -> None:
    # 10 days: the 6h/30m page is 2 x the budget, exactly 1 for a budget of 0.5.
    with pytest.raises(ConfigurationError) as info:
        SLO("a", service="s", objective=0.5, window=timedelta(days=10))
    assert "(4.8 x 0.5 and 2 x 0.5) are error ratios of 1 or more" in str(info.value)


def test_a_dead_condition_warns_at_the_line_that_declared_the_slo() -> None:
    with pytest.warns(ButtressWarning) as caught:
        SLO("a", service="s", objective=0.93)
    assert [str(w.message) for w in caught] == [
        "SLO 'a': with objective 0.93 the 14.4x 1h/5m (page) condition can never fire "
        "(the threshold is an error ratio of 1 or more)"
    ]
    # Under `make mutate` (a copy in mutants/) mutmut's trampolines add stack frames.
    if "mutants" not in Path(__file__).parts:
        assert caught[0].filename == __file__


def test_one_route_may_be_given_as_a_string() -> None:
    assert slo(routes="/pay").routes == ("/pay",)
    assert slo(routes=("/a", "/b", "/a")).routes == ("/a", "/b")


def test_reading_a_file_without_pyyaml_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    with pytest.raises(ConfigurationError) as info:
        load_slos(tmp_path / "slos.yaml")
    assert str(info.value) == "reading SLO files needs PyYAML: pip install 'buttress[yaml]'"
