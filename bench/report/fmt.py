"""Number formatting shared by the report's tables and claim statements."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

NA = "n/a"


def decimals(x: float) -> int:
    """Decimals showing about 4 significant digits of a value of magnitude ``x`` (at most 5)."""
    if pd.isna(x) or math.isinf(x) or x == 0:
        return 4
    return min(5, max(0, 3 - math.floor(math.log10(abs(x)))))


def num(x: float, places: int | None = None) -> str:
    return NA if pd.isna(x) else f"{x:.{decimals(x) if places is None else places}f}"


def signed(x: float, places: int) -> str:
    return NA if pd.isna(x) else f"{x:+.{places}f}"


def seeds(n: int) -> str:
    return f"n = {n} seed{'' if n == 1 else 's'}"


def pvalue(p: float) -> str:
    return NA if pd.isna(p) else "<0.0001" if p < 1e-4 else f"{p:.4f}"


def speedup(x: float) -> str:
    return NA if pd.isna(x) else f"{x:,.0f}x" if x >= 100 else f"{x:.2f}x"


def with_ci(x: float, low: float, high: float, fmt: Callable[[float], str] = num) -> str:
    """``x [low, high]``; just ``x`` without an interval, n/a without a value."""
    if pd.isna(x):
        return NA
    return fmt(x) if pd.isna(low) else f"{fmt(x)} [{fmt(low)}, {fmt(high)}]"


def md_table(rows: list[dict] | pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table from records (or a frame) of printable values."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return "_(no rows)_"

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    return "\n".join([
        "| " + " | ".join(map(cell, frame.columns)) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
        *("| " + " | ".join(map(cell, row)) + " |" for row in frame.itertuples(index=False)),
    ])
