"""Run every ``benchmarks/bench_*.py`` (or the ones named) and print their reports.

Usage: ``python benchmarks/run.py [NAME ...] [--quick]``. Each module has
``main(quick: bool) -> str`` returning a markdown report of ratios.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="bench_<name>.py modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    names = args.names or available
    unknown = sorted(set(names) - set(available))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available)})")
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(module.main(quick=args.quick), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
