"""The results store: one file per finished cell, consolidated into Parquet tables.

Why files per cell: a finished cell is written once, to a temporary name, then renamed into
place (``os.replace`` is atomic on POSIX). A crash therefore never leaves half a result, several
runners (or cluster jobs) can write into one directory at once without a database or locks,
and "is this cell done?" is one ``stat``. ``consolidate`` gathers the cell files into the three
Parquet tables of :mod:`bench.schema` (again via a temporary file and a rename), so readers
always see a complete table.

Layout of a results directory::

    cells/<cell_id>.json            finished cell: keys + metrics (rows of table.parquet)
    cells/<cell_id>.sentences.parquet   its per-sentence scores
    errors/<cell_id>.json           a failed cell: the error and traceback (removed on success)
    curves/<train_key>.json         validation curve of one model (rows of curves.parquet)
    timing.json                     the timing pass (rows of timing.parquet; bench/timing.py)
    models/<train_key>/             the training run (checkpoints, log), resumable
    models/<train_key>.lock         held while a worker trains or decodes that model
    jobs/                           cluster job records and logs; plans handed to torchrun
    samples/<cell_id>/              sample files of a cell (resumable at batch granularity)
    table.parquet, curves.parquet, per_sentence.parquet, timing.parquet
"""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from filelock import FileLock, Timeout

from bench.schema import (
    CURVE_COLUMNS,
    CURVES,
    PER_SENTENCE,
    PER_SENTENCE_COLUMNS,
    TABLE,
    TABLE_COLUMNS,
    TIMING,
    TIMING_COLUMNS,
    CellRecord,
    cell_metrics,
)
from diffuseq.io import atomic_path, write_atomic

if TYPE_CHECKING:
    from bench.plan import Plan


def _parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def cell_file(self, cell_id: str) -> Path:
        return self.root / "cells" / f"{cell_id}.json"

    def is_done(self, cell_id: str) -> bool:
        return self.cell_file(cell_id).is_file()

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, train_key: str) -> Path:
        return self.models_dir / train_key

    def model_lock(self, train_key: str) -> FileLock:
        """The exclusive lock a worker holds on a model while it trains and decodes it."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self._lock_file(train_key))

    def _lock_file(self, train_key: str) -> Path:
        return self.models_dir / f"{train_key}.lock"

    def is_locked(self, train_key: str) -> bool:
        """Whether some process holds the model's lock now (it is being trained or decoded). A
        model never locked has no lock file, and asking creates none."""
        if not self._lock_file(train_key).exists():
            return False
        lock = self.model_lock(train_key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    @property
    def jobs_dir(self) -> Path:
        """Cluster job records and logs, and the plans handed to torchrun."""
        return self.root / "jobs"

    def keep_suite(self, plan: Plan) -> None:
        """A copy of the suite file beside its results, as the record of what was asked."""
        write_atomic(self.root / "suite.yaml", Path(plan.source).read_bytes())

    def samples_dir(self, cell_id: str) -> Path:
        return self.root / "samples" / cell_id

    def write_cell(self, record: CellRecord, metrics: dict[str, float], sentences: pd.DataFrame) -> None:
        """Record a finished cell: per-sentence scores first, the cell file (the 'done' mark) last.
        Metric names must be the schema's (a metric it does not know would vanish from the analysis)."""
        if unknown := sorted(set(metrics) - cell_metrics()):
            raise ValueError(f"cell {record.cell_id}: metric(s) {unknown} are neither registered (diffuseq.metrics.registry) nor listed in bench.schema")
        cell_id, keys = record.cell_id, asdict(record)
        _parquet_atomic(sentences.assign(cell_id=cell_id)[PER_SENTENCE_COLUMNS], self.root / "cells" / f"{cell_id}.sentences.parquet")
        write_atomic(self.cell_file(cell_id), json.dumps({"keys": keys, "metrics": metrics}, indent=1).encode())
        (self.root / "errors" / f"{cell_id}.json").unlink(missing_ok=True)

    def write_error(self, cell_id: str, keys: dict[str, Any], err: BaseException) -> None:
        tb = "".join(traceback.format_exception(err))
        write_atomic(self.root / "errors" / f"{cell_id}.json",
                     json.dumps({"keys": keys, "error": f"{type(err).__name__}: {err}", "traceback": tb}, indent=1).encode())

    def errors(self) -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text()) for p in sorted((self.root / "errors").glob("*.json"))}

    def write_curve(self, train_key: str, rows: list[dict[str, Any]]) -> None:
        write_atomic(self.root / "curves" / f"{train_key}.json", json.dumps(rows).encode())

    @property
    def timing_file(self) -> Path:
        return self.root / "timing.json"

    def write_timing(self, rows: list[dict[str, Any]]) -> None:
        write_atomic(self.timing_file, json.dumps(rows, indent=1).encode())

    def timing(self) -> list[dict[str, Any]]:
        return json.loads(self.timing_file.read_text()) if self.timing_file.is_file() else []

    def consolidate(self) -> pd.DataFrame:
        """Rebuild the four Parquet tables from the per-cell files; returns the results table."""
        rows = []
        for f in sorted((self.root / "cells").glob("*.json")):
            cell = json.loads(f.read_text())
            rows += [{**cell["keys"], "metric": m, "value": v} for m, v in cell["metrics"].items()]
        table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
        _parquet_atomic(table, self.root / TABLE)
        curves = pd.DataFrame([r for f in sorted((self.root / "curves").glob("*.json")) for r in json.loads(f.read_text())],
                              columns=CURVE_COLUMNS)
        _parquet_atomic(curves, self.root / CURVES)
        write_atomic(self.root / "curves.csv", curves.to_csv(index=False).encode())
        parts = [pd.read_parquet(f) for f in sorted((self.root / "cells").glob("*.sentences.parquet"))]
        per_sentence = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PER_SENTENCE_COLUMNS)
        _parquet_atomic(per_sentence, self.root / PER_SENTENCE)
        _parquet_atomic(pd.DataFrame(self.timing(), columns=TIMING_COLUMNS), self.root / TIMING)
        write_atomic(self.root / "table.csv", table.to_csv(index=False).encode())  # csv: readable diffs in git
        return table
