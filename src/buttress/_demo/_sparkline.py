"""Sparklines: a series as one line of block characters, for the terminal views."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import IO

BLOCKS = "▁▂▃▄▅▆▇█"
# For a terminal whose encoding has no block characters (an ASCII-only pipe).
ASCII = "_.-:=+*#"


def can_draw_blocks(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default stdout) can print :data:`BLOCKS`."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    try:
        BLOCKS.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def squeeze(values: Sequence[float], width: int) -> list[float]:
    """At most ``width`` values: neighbours merged by their maximum, so a peak survives."""
    if width <= 0:
        return []
    if len(values) <= width:
        return list(values)
    out = []
    for i in range(width):
        chunk = values[i * len(values) // width : (i + 1) * len(values) // width]
        out.append(max(chunk) if chunk else 0.0)
    return out


def sparkline(
    values: Sequence[float], *, width: int = 60, high: float | None = None, ascii: bool = False
) -> str:
    """``values`` scaled from 0 to ``high`` (default: their maximum).

    Zero is the lowest mark and anything above zero at least the second, so one failed
    request in a calm minute still shows.
    """
    marks = ASCII if ascii else BLOCKS
    points = [v if math.isfinite(v) and v > 0 else 0.0 for v in squeeze(values, width)]
    top = high if high is not None and high > 0 else max(points, default=0.0)
    if top <= 0:
        return marks[0] * len(points)
    levels = len(marks) - 1
    return "".join(
        marks[0] if v <= 0 else marks[max(1, min(levels, math.ceil(v / top * levels)))]
        for v in points
    )
