"""Read a results directory (the three Parquet files of ``bench.schema``) and check the contract."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import schema


class ResultsError(ValueError):
    """A results directory that does not meet the ``bench.schema`` contract."""


@dataclass(frozen=True)
class Results:
    """The frames of one results directory; optional files are None when absent or empty."""

    directory: Path
    table: pd.DataFrame
    curves: pd.DataFrame | None
    per_sentence: pd.DataFrame | None


def _read(path: Path, columns: list[str]) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ResultsError(f"{path}: missing columns {missing} (bench.schema lists {columns})")
    return frame if len(frame) else None


def load_results(directory: str | Path) -> Results:
    """Load ``table.parquet`` (required) and ``curves.parquet``/``per_sentence.parquet`` (optional)."""
    directory = Path(directory)
    table = _read(directory / schema.TABLE, schema.TABLE_COLUMNS)
    if table is None:
        raise ResultsError(f"{directory / schema.TABLE}: no results table (missing or empty)")
    duplicated = table.duplicated(["cell_id", "metric"])
    if duplicated.any():
        first = table.loc[duplicated, ["cell_id", "metric"]].iloc[0].tolist()
        raise ResultsError(
            f"{directory / schema.TABLE}: {int(duplicated.sum())} duplicate (cell_id, metric) rows, e.g. {first}"
        )
    return Results(
        directory=directory,
        table=table,
        curves=_read(directory / schema.CURVES, schema.CURVE_COLUMNS),
        per_sentence=_read(directory / schema.PER_SENTENCE, schema.PER_SENTENCE_COLUMNS),
    )


def wide_cells(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its keys (``schema.CELL_KEYS``) and one column per metric."""
    keys = table.drop_duplicates("cell_id")[schema.CELL_KEYS]
    values = table.pivot(index="cell_id", columns="metric", values="value").rename_axis(columns=None)
    return keys.merge(values, left_on="cell_id", right_index=True).reset_index(drop=True)
