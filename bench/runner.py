"""``python -m bench run``: expand a suite, run what is unfinished, consolidate the results.

Every finished cell is a file (bench/store.py), so re-running the same command after a crash or
an interruption skips finished cells, resumes a half-trained model from its last checkpoint and
a half-sampled cell from its last finished batch, and ends with the same numbers as an
uninterrupted run (on CPU, same seeds).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bench.cells import Cell, expand, group
from bench.executors import Executor, LocalExecutor
from bench.spec import Suite
from bench.store import Store, write_atomic

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    total: int
    skipped: int  # already finished before this run
    done: int  # finished by this run
    failed: dict[str, str]
    wall_s: float
    elsewhere: int = 0  # finished meanwhile by others, e.g. the live jobs of an earlier run this run waited for


def plan(suite: Suite, results: Path, only: str | None = None) -> tuple[list[Cell], list[Cell]]:
    """(all cells, unfinished cells)."""
    cells = expand(suite, only)
    store = Store(results)
    return cells, [c for c in cells if not store.is_done(c.cell_id)]


def make_executor(suite: Suite, results: Path, kind: str | None = None) -> Executor:
    """The suite's executor (or ``kind``): local, or a submitit engine writing under results/jobs."""
    kind = kind or suite.executor.kind
    if kind == "local":
        return LocalExecutor(suite.executor.workers, progress=False)
    from bench.cluster import SubmititExecutor

    return SubmititExecutor(kind, suite.executor.options, results / "jobs" / "submitit")


def run_suite(suite: Suite, suite_file: Path, results: Path, only: str | None = None,
              executor: Executor | None = None, fail_fast: bool = False, progress: bool = True) -> RunSummary:
    t0 = time.perf_counter()
    results.mkdir(parents=True, exist_ok=True)
    write_atomic(results / "suite.yaml", suite_file.read_bytes())  # read back by torchrun training
    cells, todo = plan(suite, results, only)
    groups = [g for g in group(cells) if any(c in todo for c in g.cells)]
    log.info("suite %s: %d cells, %d to run in %d model group(s)", suite.name, len(cells), len(todo), len(groups))
    executor = executor or make_executor(suite, results)
    failed: dict[str, str] = {}
    done = elsewhere = 0
    unfinished = {c.cell_id for c in todo}
    cells_of = {g.train_key: g.cells for g in groups}
    with tqdm(total=len(cells), initial=len(cells) - len(todo), unit="cell", desc=suite.name,
              disable=not progress, dynamic_ncols=True) as bar:
        store = Store(results)
        for res in executor.map(suite, groups, results, fail_fast):
            finished = len([c for c in res.done if c in unfinished])
            others = len([c for c in cells_of[res.train_key] if c.cell_id in unfinished and c.cell_id not in res.done
                          and store.is_done(c.cell_id)])
            done += finished
            elsewhere += others
            failed |= res.failed
            for cell_id, err in res.failed.items():  # e.g. a killed cluster job left no record itself
                if cell_id not in store.errors():
                    store.write_error(cell_id, {"train_key": res.train_key, "stage": "job"}, RuntimeError(err))
            bar.update(finished + others + len(res.failed))
            bar.set_postfix(failed=len(failed))
    store.consolidate()
    return RunSummary(len(cells), len(cells) - len(todo), done, failed, time.perf_counter() - t0, elsewhere)
