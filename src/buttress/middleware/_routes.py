"""Route templates the frameworks do not hand over ready to use as labels.

- Django's ``re_path`` routes come as their raw regular expression; they become a template
  in the style of ``path()`` (``^articles/(?P<year>[0-9]{4})/$`` -> ``articles/<year>/``).
- Werkzeug answers a request whose path matched but whose method did not (405) without
  a rule; the rule is the one that matches the same path with an allowed method.

Both are bounded: the templates come from the application's code, never from the request.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any, Final

__all__ = ["method_not_allowed_rule", "regex_template"]

_REGEX_MARKS: Final = frozenset("^$\\()[]?*+|{")
_PARAM: Final = "<param>"


@lru_cache(maxsize=1024)  # the routes of the app's own URL patterns: few and fixed
def regex_template(route: str) -> str:
    """A readable template for a regular-expression route; a plain route is returned as is."""
    if not _REGEX_MARKS.intersection(route):
        return route
    text = route.removeprefix("^")
    for suffix in ("\\Z", "$"):
        text = text.removesuffix(suffix)
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            following = text[i + 1]
            # An escaped literal (\. \/ \-) is itself; a class (\d, \w) is a parameter.
            out.append(following if not following.isalnum() else _PARAM)
            i += 2
        elif char == "(":
            group_end = _closing(text, i)
            named = text.startswith("(?P<", i)
            name_end = text.find(">", i) if named else -1
            out.append(f"<{text[i + 4 : name_end]}>" if named and name_end > 0 else _PARAM)
            i = group_end + 1
        elif char == "[":
            out.append(_PARAM)
            i = _class_end(text, i) + 1
        elif char in "?*+":
            i += 1  # a quantifier says nothing a label needs
        elif char == "{":
            close = text.find("}", i)
            i = close + 1 if close > 0 else i + 1
        elif char in "^$|":
            i += 1
        else:
            out.append(char)
            i += 1
    # A quantified parameter ("\d+") gives one parameter, not several in a row.
    template = "".join(out)
    while _PARAM + _PARAM in template:
        template = template.replace(_PARAM + _PARAM, _PARAM)
    return template


def _closing(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(text, i) + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text) - 1


def _class_end(text: str, start: int) -> int:
    i = start + 1
    if i < len(text) and text[i] == "]":
        i += 1  # "[]...]": a leading ] is a literal
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "]":
            return i
        i += 1
    return len(text) - 1


def method_not_allowed_rule(environ: dict[str, Any]) -> str | None:
    """The Flask/Werkzeug rule a 405 response's path matched, if Flask is answering it."""
    request = environ.get("werkzeug.request")
    methods = getattr(getattr(request, "routing_exception", None), "valid_methods", None)
    if not methods or "flask" not in sys.modules:
        return None
    from flask import current_app, has_app_context

    if not has_app_context():
        return None
    try:
        adapter = current_app.url_map.bind_to_environ(environ)
        rule, _ = adapter.match(method=sorted(methods)[0], return_rule=True)
    except Exception:  # the path no longer matches anything: no template to give
        return None
    template = getattr(rule, "rule", None)
    return template if isinstance(template, str) else None
