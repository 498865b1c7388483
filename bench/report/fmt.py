"""Number formatting and row names shared by the report's sections and claim statements."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from bench.report.configs import CONFIG_KEYS, SCOPE_KEYS, config_labels

NA = "n/a"
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg"}


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


def gamma_text(g: float) -> str:
    return "—" if pd.isna(g) else f"{g:g}"


def distinct(series: pd.Series) -> str:
    """The series' distinct values, sorted as text and comma-separated (n/a if none)."""
    return ", ".join(map(str, sorted(series.dropna().unique(), key=str))) or NA


def mean_std(mean: float, std: float) -> str:
    places = decimals(mean)
    return num(mean, places) + ("" if pd.isna(std) else f" ± {num(std, places)}")


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


def delta_ci(r: dict) -> str:
    """A paired row's ``diff [diff_low, diff_high]``, signed, to the decimals of its ``mean_b``."""
    places = decimals(r["mean_b"])
    return with_ci(r["diff"], r["diff_low"], r["diff_high"], lambda x: signed(x, places))


class Namer:
    """Names rows the same way in every table: the scope keys that vary, then the config label."""

    def __init__(self, cells: pd.DataFrame) -> None:
        self.varying = [k for k in SCOPE_KEYS if cells[k].nunique() > 1]
        configs = cells[CONFIG_KEYS].drop_duplicates()
        self.labels = configs.assign(config=config_labels(configs))

    def scope(self, row: dict) -> dict:
        return {k: row[k] for k in self.varying}

    def configs(self, frame: pd.DataFrame) -> list[dict]:
        """Records of ``frame`` with a ``config`` label (frame must hold CONFIG_KEYS)."""
        return frame.merge(self.labels, on=CONFIG_KEYS, how="left").to_dict("records")
