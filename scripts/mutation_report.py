#!/usr/bin/env python3
"""Per-module mutation scores from a finished ``mutmut run``, equivalent mutants set apart.

Reads mutmut's results (``mutants/**/*.py.meta``) and the mutated sources beside them,
shows every surviving mutant as the line it changed, and sets apart the survivors listed
in ``scripts/equivalent_mutants.txt`` (mutants no behaviour can tell from the original).
A module's score is killed / (mutants - equivalent). Exits 1 when a module scores below
``--min`` percent, or when a listed equivalent mutant no longer exists or was killed
(the list must stay true of the code).

Equivalent mutants are named by what they change, not by mutmut's numbers (which shift
whenever a function changes), one a line::

    src/buttress/resilience/_backoff.py Backoff.wait `old line` -> `new line` :: why
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "scripts" / "equivalent_mutants.txt"
KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # a failing test, a timeout, a type error
_LINE = re.compile(r"^(\S+) (\S+) `(.*?)` -> `(.*?)` :: (.+)$")


@dataclass
class Module:
    path: str
    mutants: int = 0
    killed: int = 0
    equivalent: int = 0
    seconds: float = 0.0
    survivors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        judged = self.mutants - self.equivalent
        return 100.0 * self.killed / judged if judged else 100.0


def _functions(source: str) -> dict[str, str]:
    """Every function of a mutated module by its name, as source text."""
    lines = source.splitlines()
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _change(functions: dict[str, str], mutant: str) -> tuple[str, str, str]:
    """(function as Class.method, old lines, new lines) of one mutant."""
    name = mutant.rsplit(".", 1)[1]
    stem = name.rsplit("__mutmut_", 1)[0]
    orig = functions[stem + "__mutmut_orig"].splitlines()[1:]
    new = functions[name].splitlines()[1:]
    old_lines: list[str] = []
    new_lines: list[str] = []
    matcher = difflib.SequenceMatcher(None, orig, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            old_lines += (line.strip() for line in orig[i1:i2])
            new_lines += (line.strip() for line in new[j1:j2])
    readable = stem.removeprefix("x_").replace("xǁ", "").replace("ǁ", ".")
    return readable, " / ".join(old_lines), " / ".join(new_lines)


def _equivalents() -> dict[tuple[str, str, str, str], str]:
    listed: dict[tuple[str, str, str, str], str] = {}
    for number, raw in enumerate(EQUIVALENTS.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        match = _LINE.match(raw)
        if match is None:
            expected = "path function `old` -> `new` :: why"
            raise SystemExit(f"{EQUIVALENTS.name}:{number}: not of the form {expected}")
        path, function, old, new, why = match.groups()
        listed[(path, function, old, new)] = why
    return listed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min", type=float, default=95.0, help="lowest passing score, percent")
    parser.add_argument("--all", action="store_true", help="list equivalent mutants too")
    args = parser.parse_args()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    paths = config["tool"]["mutmut"]["only_mutate"]
    listed = _equivalents()
    seen: set[tuple[str, str, str, str]] = set()
    modules: list[Module] = []
    for path in paths:
        mutated = ROOT / "mutants" / path
        meta = mutated.with_name(mutated.name + ".meta")
        if not meta.exists():
            raise SystemExit(f"no results for {path}: run `make mutate` first")
        data = json.loads(meta.read_text(encoding="utf-8"))
        functions = _functions(mutated.read_text(encoding="utf-8"))
        module = Module(path)
        for mutant, code in sorted(data["exit_code_by_key"].items()):
            module.mutants += 1
            module.seconds += data["durations_by_key"].get(mutant, 0.0)
            function, old, new = _change(functions, mutant)
            key = (path, function, old, new)
            if code in KILLED:
                module.killed += 1
                if key in listed:
                    print(f"listed as equivalent but killed: {' '.join(key)}")
                    seen.add(key)  # reported here, not again below
                continue
            if key in listed:
                seen.add(key)
                module.equivalent += 1
                if args.all:
                    module.survivors.append(f"  = {function}: `{old}` -> `{new}` :: {listed[key]}")
                continue
            status = {None: "not run", 0: "survived", 5: "no test", 33: "no test"}.get(
                code, f"exit {code}"
            )
            module.survivors.append(f"  {status}: {function}: `{old}` -> `{new}` [{mutant}]")
        modules.append(module)
    stale = [key for key in listed if key not in seen and key[0] in paths]
    width = max(len(m.path) for m in modules)
    print(f"{'module':<{width}}  mutants  killed  equivalent  survived  score   time (s)")
    failed = bool(stale)
    for m in modules:
        survived = m.mutants - m.killed - m.equivalent
        print(
            f"{m.path:<{width}}  {m.mutants:7}  {m.killed:6}  {m.equivalent:10}  {survived:8}"
            f"  {m.score:5.1f}%  {m.seconds:8.1f}"
        )
        failed |= m.score < args.min
    total = Module("total")
    for m in modules:
        total.mutants += m.mutants
        total.killed += m.killed
        total.equivalent += m.equivalent
        total.seconds += m.seconds
    survived = total.mutants - total.killed - total.equivalent
    print(
        f"{'total':<{width}}  {total.mutants:7}  {total.killed:6}  {total.equivalent:10}"
        f"  {survived:8}  {total.score:5.1f}%  {total.seconds:8.1f}"
    )
    print("(time: the seconds spent running each module's mutants, summed over workers)")
    for m in modules:
        if m.survivors:
            print(f"\n{m.path}:")
            print("\n".join(m.survivors))
    for key in stale:
        print(f"listed as equivalent but no such mutant: {' '.join(key)}")
    if failed:
        print(f"\nbelow {args.min:g}% or a stale equivalent list", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
