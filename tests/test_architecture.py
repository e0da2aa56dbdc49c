"""The layering of docs/architecture.md, checked on the source: imports go one way.

The graph is read statically (``ast``), so an import inside a function counts as much as
one at the top of a module; only ``if TYPE_CHECKING:`` blocks are left out of the cycle
check, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "buttress"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path], *, runtime_only: bool) -> set[str]:
    """The buttress modules ``name`` imports."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if runtime_only and isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "buttress":
                        found.add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".")
                    if not is_package:
                        base = base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "buttress":
                    continue
                submodules = {f"{target}.{a.name}" for a in child.names} & modules.keys()
                found.update(submodules)
                if len(submodules) < len(child.names):  # names defined in ``target`` itself
                    found.add(target)
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    return {m for m in found if m in modules}


def _graph(*, runtime_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: _imports(name, path, modules, runtime_only=runtime_only)
        for name, path in modules.items()
    }


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_reads_imports() -> None:
    # The checks below are only as good as the graph: it must see known edges.
    graph = _graph(runtime_only=False)
    assert "buttress._errors" in graph["buttress.resilience._retry"]
    assert "buttress.telemetry._names" in graph["buttress.middleware._observer"]
    assert "buttress" in graph["buttress.httpx._outbound"]


def test_the_import_graph_has_no_cycles() -> None:
    graph = _graph(runtime_only=True)
    done: set[str] = set()
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append([*stack[stack.index(node) :], node])
            return
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            walk(nxt, stack)
        stack.pop()
        done.add(node)

    for module in sorted(graph):
        walk(module, [])
    assert cycles == []


@pytest.mark.parametrize("forbidden", ["buttress.telemetry", "buttress.middleware"])
def test_resilience_never_imports_telemetry_or_middleware(forbidden: str) -> None:
    graph = _graph(runtime_only=False)
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if _in(module, "buttress.resilience")
        for target in targets
        if _in(target, forbidden) or target in {"buttress"}
    )
    assert offenders == []


def test_no_private_module_outside_resilience_imports_its_private_names() -> None:
    # Public modules (buttress, buttress.strategies, buttress.testing, ...) are the homes
    # that re-export resilience's names; private modules elsewhere go through them.
    graph = _graph(runtime_only=False)
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if not _in(module, "buttress.resilience")
        and any(part.startswith("_") for part in module.split("."))
        for target in targets
        if _in(target, "buttress.resilience") and target != "buttress.resilience"
    )
    assert offenders == []


@pytest.mark.parametrize(
    ("module_package", "other"),
    [("buttress.httpx", "buttress.middleware"), ("buttress.middleware", "buttress.httpx")],
)
def test_the_http_shells_share_only_top_level_private_modules(
    module_package: str, other: str
) -> None:
    # Inbound and outbound HTTP share trust, baggage and header code; it lives beside
    # them (buttress._trust, buttress._http) so neither reaches into the other's privates.
    graph = _graph(runtime_only=False)
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if _in(module, module_package)
        for target in targets
        if _in(target, other)
    )
    assert offenders == []
