"""Read a results directory (the Parquet files of ``bench.schema``) and check the contract;
anything that breaks it (a missing column, an unknown kind, a duplicated cell) is a
``ResultsError``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import schema
from bench.report.configs import (
    CONFIG_KEYS,
)


class ResultsError(ValueError):
    """A results directory that does not meet the ``bench.schema`` contract."""


@dataclass(frozen=True)
class Results:
    """The frames of one results directory; optional files are None when absent or empty."""

    directory: Path
    table: pd.DataFrame
    curves: pd.DataFrame | None
    per_sentence: pd.DataFrame | None
    timing: pd.DataFrame | None = None


def _read(path: Path, columns: list[str]) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ResultsError(f"{path}: missing columns {missing} (bench.schema lists {columns}); tables written by an "
                           "older version: rerun `python -m bench run` on the suite to rebuild them")
    return frame if len(frame) else None


def load_results(directory: str | Path) -> Results:
    """Load ``table.parquet`` (required) and ``curves.parquet``/``per_sentence.parquet``/``timing.parquet``
    (optional)."""
    directory = Path(directory)
    table = _read(directory / schema.TABLE, schema.TABLE_COLUMNS)
    if table is None:
        raise ResultsError(f"{directory / schema.TABLE}: no results table (missing or empty); run "
                           "`python -m bench run SUITE` first, or pass --results the folder it wrote (results/SUITE)")
    duplicated = table.duplicated(["cell_id", "metric"])
    if duplicated.any():
        first = table.loc[duplicated, ["cell_id", "metric"]].iloc[0].tolist()
        raise ResultsError(
            f"{directory / schema.TABLE}: {int(duplicated.sum())} duplicate (cell_id, metric) rows, e.g. {first}"
        )
    _check_kinds(set(table["kind"]), schema.CELL_KINDS, directory / schema.TABLE, "cell kind")
    _check_unique_cells(table, directory / schema.TABLE)
    curves = _read(directory / schema.CURVES, schema.CURVE_COLUMNS)
    timing = _read(directory / schema.TIMING, schema.TIMING_COLUMNS)
    if timing is not None:
        _check_kinds(set(timing["kind"]), schema.TIMING_KINDS, directory / schema.TIMING, "timing kind")
        _check_one_clock(timing, directory / schema.TIMING)
    return Results(
        directory=directory,
        table=table,
        curves=curves,
        per_sentence=_read(directory / schema.PER_SENTENCE, schema.PER_SENTENCE_COLUMNS),
        timing=timing,
    )


def _check_kinds(kinds: set[str], allowed: tuple[str, ...], path: Path, what: str) -> None:
    if bad := sorted(kinds - set(allowed)):
        raise ResultsError(f"{path}: unknown {what}(s) {bad} (bench.schema allows {list(allowed)})")


def _check_one_clock(timing: pd.DataFrame, path: Path) -> None:
    """A device's rows must share one clock: ratios divide rows of the same device, never CPU
    seconds by wall seconds."""
    clocks = timing.groupby("device")["clock"].unique()
    if mixed := {d: sorted(c) for d, c in clocks.items() if len(c) > 1}:
        raise ResultsError(f"{path}: device(s) with figures on several clocks {mixed}; redo the timing pass with "
                           "`python -m bench time SUITE`")


def _check_unique_cells(table: pd.DataFrame, path: Path) -> None:
    """Each (configuration, seed) must be one cell, or seeds would be counted (and paired) twice."""
    keys = [*CONFIG_KEYS, "seed"]
    cells = table.drop_duplicates("cell_id")
    clash = cells[cells.duplicated(keys, keep=False)]
    if clash.empty:
        return
    groups = [sorted(g["cell_id"]) for _, g in clash.groupby(keys, dropna=False, sort=True)]
    shown = "; ".join(", ".join(ids) for ids in groups[:5]) + ("; ..." if len(groups) > 5 else "")
    raise ResultsError(
        f"{path}: {len(groups)} (configuration, dataset, seed) key(s) held by several cells (keys {keys}): {shown}"
    )


def wide_cells(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its keys (``schema.CELL_KEYS``) and one column per metric."""
    keys = table.drop_duplicates("cell_id")[schema.CELL_KEYS]
    values = table.pivot(index="cell_id", columns="metric", values="value").rename_axis(columns=None)
    return keys.merge(values, left_on="cell_id", right_index=True).reset_index(drop=True)
