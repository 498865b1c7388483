"""Read a results directory (the Parquet files of ``bench.schema``) and check the contract.

Results written before a column existed still load: missing or empty new columns get the values
the runner gives them now (see ``_TABLE_DEFAULTS`` and ``_CURVE_DEFAULTS``); anything else that
breaks the contract is a ``ResultsError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import schema
from bench.report.configs import (
    CONFIG_KEYS,
    MODEL,
    NO_SWEEP,
    TRIVIAL,
    TRIVIAL_ARMS,
    arm_label,
    default_label,
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


# Columns added to the contract after results were first written: a table or curves file
# without them still loads, with these filled in (the table's by ``_fill_table``).
_TABLE_OPTIONAL = ["arm_label", "kind"]
_CURVE_OPTIONAL = ["sweep", "examples", "decoder", "own_decoder"]
_TIMING_OPTIONAL = ["extrapolated", "threads"]


def _read(path: Path, columns: list[str], optional: tuple[str, ...] | list[str] = ()) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    missing = sorted(set(columns) - set(frame.columns) - set(optional))
    if missing:
        raise ResultsError(f"{path}: missing columns {missing} (bench.schema lists {columns})")
    frame = frame.reindex(columns=[*frame.columns, *(c for c in columns if c not in frame.columns)])
    return frame if len(frame) else None


def load_results(directory: str | Path) -> Results:
    """Load ``table.parquet`` (required) and ``curves.parquet``/``per_sentence.parquet``/``timing.parquet``
    (optional)."""
    directory = Path(directory)
    table = _read(directory / schema.TABLE, schema.TABLE_COLUMNS, _TABLE_OPTIONAL)
    if table is None:
        raise ResultsError(f"{directory / schema.TABLE}: no results table (missing or empty)")
    duplicated = table.duplicated(["cell_id", "metric"])
    if duplicated.any():
        first = table.loc[duplicated, ["cell_id", "metric"]].iloc[0].tolist()
        raise ResultsError(
            f"{directory / schema.TABLE}: {int(duplicated.sum())} duplicate (cell_id, metric) rows, e.g. {first}"
        )
    table = _fill_table(table, directory / schema.TABLE)
    _check_unique_cells(table, directory / schema.TABLE)
    curves = _read(directory / schema.CURVES, schema.CURVE_COLUMNS, _CURVE_OPTIONAL)
    timing = _read(directory / schema.TIMING, schema.TIMING_COLUMNS, _TIMING_OPTIONAL)
    return Results(
        directory=directory,
        table=table,
        curves=None if curves is None else fill_curves(curves, table),
        per_sentence=_read(directory / schema.PER_SENTENCE, schema.PER_SENTENCE_COLUMNS),
        timing=None if timing is None else _fill_timing(timing, directory / schema.TIMING),
    )


def _fill(values: pd.Series, defaults: object) -> pd.Series:
    """``values`` with its missing entries replaced by ``defaults`` (a scalar or an aligned series),
    as objects: an all-NaN float column of a missing string key takes strings without a warning."""
    return values.astype(object).where(values.notna(), defaults)


def _fill_table(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Cells written before ``label``/``sweep``/``arm_label``/``kind`` existed get the values the
    runner gives them now: ``sampler-steps``, "{}", the arm's known label (else its name), and
    "trivial" for the trivial arms, "model" otherwise."""
    label = _fill(table["label"], pd.Series(
        [default_label(s, n) for s, n in zip(table["sampler"], table["steps"], strict=True)], index=table.index))
    kind = _fill(table["kind"], pd.Series(np.where(table["arm"].isin(TRIVIAL_ARMS), TRIVIAL, MODEL),
                                          index=table.index))
    bad = sorted(set(kind) - set(schema.CELL_KINDS))
    if bad:
        raise ResultsError(f"{path}: unknown cell kind(s) {bad} (bench.schema.CELL_KINDS: {list(schema.CELL_KINDS)})")
    names = [arm_label(a, x) for a, x in zip(table["arm"], table["arm_label"], strict=True)]
    return table.assign(label=label, sweep=_fill(table["sweep"], NO_SWEEP), kind=kind,
                        arm_label=pd.Series(names, index=table.index, dtype=object))


def fill_curves(curves: pd.DataFrame, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Curve rows written before ``sweep``/``examples``/``decoder``/``own_decoder`` existed: the
    sweep point of the table's (or cells') rows of the same train_key ("{}" without any), unknown
    examples (NaN), no decoder name (""), and every BLEU curve the arm's own."""
    curves = curves.reindex(columns=[*curves.columns, *(c for c in schema.CURVE_COLUMNS if c not in curves)])
    sweeps: dict[str, str] = {}
    if table is not None and "sweep" in table:
        known = table.dropna(subset=["sweep"]).sort_values("sweep").drop_duplicates("train_key")
        sweeps = dict(zip(known["train_key"], known["sweep"], strict=True))
    sweep = _fill(curves["sweep"], pd.Series([sweeps.get(k, NO_SWEEP) for k in curves["train_key"]],
                                             index=curves.index))
    own = _fill(curves["own_decoder"], True).astype(bool)
    return curves.assign(sweep=sweep, decoder=_fill(curves["decoder"], "").astype(str), own_decoder=own,
                         examples=pd.to_numeric(curves["examples"], errors="coerce"))


def _fill_timing(timing: pd.DataFrame, path: Path) -> pd.DataFrame:
    bad = sorted(set(timing["kind"]) - set(schema.TIMING_KINDS))
    if bad:
        raise ResultsError(f"{path}: unknown timing kind(s) {bad} (bench.schema.TIMING_KINDS: {list(schema.TIMING_KINDS)})")
    return timing.assign(extrapolated=_fill(timing["extrapolated"], False).astype(bool),
                         sweep=_fill(timing["sweep"], NO_SWEEP))


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
