"""``python -m bench run``: expand a suite, run what is unfinished, consolidate the results.

Every finished cell is a file (bench/store.py), so re-running the same command after a crash or
an interruption skips finished cells, resumes a half-trained model from its last checkpoint and
a half-sampled cell from its last finished batch, and ends with the same numbers as an
uninterrupted run (on CPU, same seeds).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from bench.executors import Executor, LocalExecutor
from bench.manifest import write_examples, write_manifest
from bench.parallel import resolve
from bench.plan import Plan, TrivialCell
from bench.progress import ModelStatus
from bench.spec import Suite
from bench.store import Store
from bench.timing import config_groups, time_suite
from bench.worker import run_trivial, scorer
from diffuseq.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    total: int
    skipped: int  # already finished before this run
    done: int  # finished by this run
    failed: dict[str, str]
    wall_s: float
    elsewhere: int = 0  # finished meanwhile by others, e.g. the live jobs of an earlier run this run waited for


def run_trivial_cells(suite: Suite, cells: list[TrivialCell], store: Store, fail_fast: bool) -> tuple[int, dict[str, str]]:
    """Score the unfinished trivial outputs (no model, seconds each); (done, failed)."""
    done, failed = 0, {}
    for c in cells:
        if store.is_done(c.cell_id):
            continue
        try:
            run_trivial(suite, c, store)
            done += 1
        except Exception as err:
            if fail_fast:
                raise
            store.write_error(c.cell_id, {"arm": c.arm, "dataset": c.dataset, "stage": "trivial"}, err)
            failed[c.cell_id] = f"{type(err).__name__}: {err}"
    return done, failed


def timing_pass(plan: Plan, store: Store, force: bool = False) -> bool:
    """Run the timing pass when every model is trained and some configuration has no timing
    rows yet (or ``force``); True if it ran."""
    timed = {r["train_key"] for r in store.timing()}
    needed = {g.train_key for g in config_groups(plan.groups)}
    trained = all((store.model_dir(k) / "log.jsonl").is_file() for k in needed)
    if not needed or not trained or (needed <= timed and not force):
        return False
    store.write_timing(time_suite(plan.suite, plan.groups, store.models_dir))
    return True


def make_executor(suite: Suite, store: Store, kind: str | None = None) -> Executor:
    """The suite's executor (or ``kind``): local, or a submitit engine writing under results/jobs."""
    kind = kind or suite.executor.kind
    if kind == "local":
        return LocalExecutor(suite.executor.workers, progress=False)
    from bench.cluster import SubmititExecutor

    return SubmititExecutor(kind, suite.executor.options, store.jobs_dir / "submitit")


def check_metrics(suite: Suite) -> None:
    """Fail before any training if a metric of ``suite`` cannot be computed in this environment
    (today: BERTScore, which needs the ``bert_score`` package and its model folder), instead of
    failing every cell after its model has trained."""
    try:
        scorer(suite)
    except (ImportError, OSError) as err:
        raise UserError(f"suite {suite.name}: metric 'bertscore' cannot be computed here ({err}); install the "
                        "project's dependencies (pip install -e .), point decode.bertscore_model at a local "
                        "model folder, or drop bertscore from the suite's metrics") from err


def run_suite(plan: Plan, results: Path, only: str | None = None, executor: Executor | None = None,
              fail_fast: bool = False, progress: bool = True) -> RunSummary:
    """Run the unfinished part of ``plan`` (restricted by ``only``), then the timing pass (for a
    whole local run), and consolidate the tables, the manifest and the examples."""
    t0 = time.perf_counter()
    plan = resolve(plan)  # workers and threads as numbers (a no-op for a resolved plan)
    store = Store(results)
    store.keep_suite(plan)
    part = plan.select(only)
    todo = {c.cell_id for c in part.cells if not store.is_done(c.cell_id)}
    trivial_todo = [c for c in part.trivial if not store.is_done(c.cell_id)]
    groups = tuple(g for g in part.groups if any(c.cell_id in todo for c in g.cells))
    log.info("suite %s: %d cells, %d to run in %d model group(s), %d trivial", plan.suite.name, len(part.cells),
             len(todo), len(groups), len(trivial_todo))
    if todo or trivial_todo:
        check_metrics(plan.suite)
    executor = executor or make_executor(plan.suite, store)
    phases = {"trivial": time.perf_counter()}
    done, failed = run_trivial_cells(plan.suite, trivial_todo, store, fail_fast)
    phases["trivial"] = time.perf_counter() - phases["trivial"]
    phases["models"] = time.perf_counter()
    elsewhere = 0
    cells_of = {g.train_key: g.cells for g in groups}
    total = len(part.cells) + len(part.trivial)
    with tqdm(total=total, initial=total - len(todo) - len(trivial_todo) + done + len(failed), unit="cell",
              desc=plan.suite.name, disable=not progress, dynamic_ncols=True) as bar, \
            ModelStatus(bar, store, groups):
        for res in executor.map(replace(part, groups=groups), store.root, fail_fast):
            finished = len([c for c in res.done if c in todo])
            others = len([c for c in cells_of[res.train_key] if c.cell_id in todo and c.cell_id not in res.done
                          and store.is_done(c.cell_id)])
            done += finished
            elsewhere += others
            failed |= res.failed
            for cell_id, err in res.failed.items():  # e.g. a killed cluster job left no record itself
                if cell_id not in store.errors():
                    store.write_error(cell_id, {"train_key": res.train_key, "stage": "job"}, RuntimeError(err))
            bar.update(finished + others + len(res.failed))
            if failed:
                bar.set_description(f"{plan.suite.name} ({len(failed)} failed)")
    phases["models"] = time.perf_counter() - phases["models"]
    phases["timing"] = time.perf_counter()
    if plan.suite.timing.enabled and not only and not failed:
        if isinstance(executor, LocalExecutor):
            timing_pass(plan, store)
        else:  # not on a login node: the user runs it on one device of the cluster
            log.info("timing pass skipped for executor %s: run `python -m bench time %s` on a compute node",
                     type(executor).__name__, plan.suite.name)
    phases["timing"] = time.perf_counter() - phases["timing"]
    store.consolidate()
    write_examples(store, plan.cells, list(plan.trivial))
    write_manifest(store, plan, phases | {"total": time.perf_counter() - t0})
    skipped = total - len(todo) - len(trivial_todo)
    return RunSummary(total, skipped, done, failed, time.perf_counter() - t0, elsewhere)
