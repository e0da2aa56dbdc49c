"""The examples of README.md and the docs run as written, as a new user copies them.

Each ```python block runs on its own, in a fresh interpreter, in an empty directory, and
must exit with status 0. An HTML comment on the line right before a fence says more:

- ``<!-- not-run: why -->``: a fragment that cannot run alone (a Django project's
  wsgi.py); kept few, and the reason is required;
- ``<!-- then: asgi|wsgi|django PATH ROUTE -->``: the block defines an app (or, for
  django, its settings); after it, the test requests PATH with an ``X-Request-ID`` and
  checks the documented effect: the id is echoed, ``/metrics`` has the request under the
  route template ROUTE, and an access log line with the id went to standard error;
- ``<!-- then: pytest -->``: the block is a test module, run by pytest;
- ``<!-- file: NAME -->``: the block's text is the file NAME of the page's shell examples;
- ``<!-- run -->`` before a ```console block: its ``$`` lines run in a shell, in order,
  in one directory holding the page's files; each must exit with status 0.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._services import require_binary

ROOT = Path(__file__).resolve().parents[1]
PAGES = (
    "README.md",
    "docs/quickstart-backend.md",
    "docs/quickstart-developer.md",
    "docs/quickstart-sre.md",
    "docs/comparison.md",
    # Reference pages whose examples are complete programs (or marked fragments).
    "docs/configuration.md",
    "docs/correlation.md",
    "docs/errors.md",
    "docs/events.md",
    "docs/fallback.md",
    "docs/hedging.md",
    "docs/httpx.md",
    "docs/integrations.md",
    "docs/jobs.md",
    "docs/logging.md",
    "docs/overload.md",
    "docs/policy.md",
    "docs/redis.md",
    "docs/retry.md",
    "docs/slo.md",
    "docs/throttling.md",
)
DIRECTIVE = re.compile(r"^<!--\s*(not-run|then|file|run)(?::\s*(.*?))?\s*-->$")
RESULT = "DOC-EXAMPLE-RESULT "
REQUEST_ID = "doc-example-7f3a"


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    text: str
    directive: str
    argument: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks(page: str) -> list[Block]:
    lines = (ROOT / page).read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        lang = lines[i][3:].strip().split(" ")[0]
        end = lines.index("```", i + 1)
        match = DIRECTIVE.match(lines[i - 1].strip()) if i else None
        if match is None and i and lines[i - 1].strip().startswith("<!--"):
            raise AssertionError(f"{page}:{i}: unknown directive {lines[i - 1]!r}")
        found.append(
            Block(
                page=page,
                line=i + 1,
                lang=lang,
                text="\n".join(lines[i + 1 : end]) + "\n",
                directive=match[1] if match else "",
                argument=(match[2] or "") if match else "",
            )
        )
        i = end + 1
    return found


ALL = [block for page in PAGES for block in _blocks(page)]
PYTHON = [b for b in ALL if b.lang == "python" and b.directive not in ("not-run", "file")]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_"))}
    # The venv's scripts (buttress) first, as after `pip install buttress`.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


_CLIENT = """
import json as _json

import httpx as _httpx


def _report(page, metrics):
    result = {{"status": page.status_code, "request_id": page.headers.get("x-request-id"),
              "metrics": metrics.text}}
    print({result!r} + _json.dumps(result))
"""

_ASGI = (
    _CLIENT
    + """
import asyncio as _asyncio


async def _drive():
    transport = _httpx.ASGITransport(app=app)
    async with _httpx.AsyncClient(transport=transport, base_url="http://example.test") as c:
        page = await c.get({path!r}, headers={{"X-Request-ID": {request_id!r}}})
        _report(page, await c.get("/metrics"))


_asyncio.run(_drive())
"""
)

_WSGI = (
    _CLIENT
    + """
with _httpx.Client(transport=_httpx.WSGITransport(app=app), base_url="http://example.test") as c:
    _page = c.get({path!r}, headers={{"X-Request-ID": {request_id!r}}})
    _report(_page, c.get("/metrics"))
"""
)

# The block is a settings fragment: complete it into a one-module Django project.
_DJANGO = (
    """
import django as _django
from django.conf import settings as _settings
from django.http import JsonResponse as _JsonResponse
from django.urls import path as _path

import buttress as _buttress

_buttress.configure(service="checkout")
urlpatterns = [_path("users/<int:user_id>", lambda request, user_id: _JsonResponse({{}}))]
_settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="doc-example", ROOT_URLCONF=__name__,
    INSTALLED_APPS=[], LOGGING_CONFIG=None,
    MIDDLEWARE=MIDDLEWARE, BUTTRESS_MIDDLEWARE=BUTTRESS_MIDDLEWARE,
)
_django.setup()
from django.core.wsgi import get_wsgi_application as _get_wsgi_application

app = _get_wsgi_application()
"""
    + _WSGI
)
_DRIVERS = {"asgi": _ASGI, "wsgi": _WSGI, "django": _DJANGO}


def _check_served(done: subprocess.CompletedProcess[str], route: str) -> None:
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0].removeprefix(RESULT))
    assert result["status"] == 200
    # A client is not a trusted peer by default (docs/security.md): its id is replaced
    # by one of ours, which the response and the access line share.
    echoed = result["request_id"]
    assert echoed
    assert echoed != REQUEST_ID
    count = [
        line
        for line in result["metrics"].splitlines()
        if line.startswith("http_server_request_duration_seconds_count{")
        and f'http_route="{route}"' in line
    ]
    assert len(count) == 1, result["metrics"]
    assert count[0].endswith(" 1.0")
    access = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(
        entry.get("event") == "http.request"
        and entry.get("request_id") == echoed
        and entry.get("route") == route
        and len(entry.get("trace_id", "")) == 32
        for entry in access
    ), done.stderr


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    kind, _, rest = block.argument.partition(" ")
    if block.directive == "then" and kind == "pytest":
        (tmp_path / "test_example.py").write_text(block.text)
        done = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
        assert " passed" in done.stdout
        return
    source = block.text
    if block.directive == "then":
        path, route = rest.split()
        source += _DRIVERS[kind].format(path=path, request_id=REQUEST_ID, result=RESULT)
    (tmp_path / "example.py").write_text(source)
    done = _run([sys.executable, "example.py"], tmp_path)
    if block.directive == "then":
        _check_served(done, route)


SHELL_PAGES = sorted({b.page for b in ALL if b.directive == "run"})


@pytest.mark.parametrize("page", SHELL_PAGES)
def test_shell_examples_run(page: str, tmp_path: Path) -> None:
    blocks = [b for b in ALL if b.page == page]
    for block in blocks:
        if block.directive == "file":
            (tmp_path / block.argument).write_text(block.text)
    commands = [
        line.removeprefix("$ ").split("  #")[0].strip()
        for block in blocks
        if block.directive == "run"
        for line in block.text.splitlines()
        if line.startswith("$ ")
    ]
    assert commands
    for command in commands:
        if "promtool" in shlex.split(command):
            require_binary("promtool")
        _run(["bash", "-c", command], tmp_path)


def test_directives_are_few_and_explained() -> None:
    skipped = [b for b in ALL if b.directive == "not-run"]
    assert all(b.argument for b in skipped), [b.id for b in skipped if not b.argument]
    assert len(skipped) * 4 <= len(PYTHON), "most examples must run"
    for block in ALL:
        if block.directive == "then":
            kind, _, rest = block.argument.partition(" ")
            assert kind == "pytest" or (kind in _DRIVERS and len(rest.split()) == 2), block.id
        if block.directive == "run":
            assert block.lang == "console", block.id
    pages_with_examples = {b.page for b in PYTHON}
    assert {"README.md", "docs/quickstart-backend.md", "docs/quickstart-developer.md"} <= (
        pages_with_examples
    )
