"""Running groups on a cluster through submitit (SLURM), or its local/debug engines for testing.

One job per group (a distinct model, then its decodings), submitted as one job array. Results
land in the shared results directory through the same atomic per-cell files as local runs, so
re-running ``python -m bench run`` after jobs died or were pre-empted resubmits only groups that
still have unfinished cells; a resubmitted group resumes its model from the last checkpoint.
Each group's latest job is recorded in ``results/jobs/<train_key>.json`` (id, log file, cells).

On SLURM the runner asks the scheduler itself (bench/status.py: sacct, else squeue) every
``$BENCH_SLURM_POLL_S`` seconds (default 10), so it never waits forever: a job that SLURM reports
ended without a result, or has had no record of for ``LOST_AFTER_S``, is failed, naming its id
and log file. A re-run does not resubmit a group whose job from an earlier run is still pending
or running: it waits for that job, and resubmits the group only if the job ends with cells left.

Suite options (``executor.options``) and their submitit names:
``partition`` → slurm_partition, ``array_parallelism`` → slurm_array_parallelism,
``gpus_per_task`` → gpus_per_node (the job's training runs under ``torchrun`` with that many
processes), ``timeout_min``, ``cpus_per_task``, ``mem_gb``; any other ``slurm_*`` key passes through.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.plan import Group, Plan
from bench.spec import Suite
from bench.status import LIVE, job_records, scheduler_states
from bench.store import Store, write_atomic
from bench.worker import GroupResult, run_group

log = logging.getLogger(__name__)
RENAMES = {"partition": "slurm_partition", "array_parallelism": "slurm_array_parallelism", "gpus_per_task": "gpus_per_node"}
POLL_S = 10.0
LOST_AFTER_S = 300.0  # longer than accounting normally lags behind the queue


def submitit_parameters(options: dict[str, Any]) -> dict[str, Any]:
    """Suite executor options → submitit AutoExecutor parameters."""
    return {RENAMES.get(k, k): v for k, v in options.items()}


@dataclass
class _Watch:
    """A job the runner waits for."""

    group: Group
    job: Any  # submitit.Job
    earlier: bool = False  # submitted by an earlier run: the cells it finishes are not this run's
    since: float | None = None  # when SLURM stopped reporting it live


def _lost(group: Group, results: Path, why: str) -> GroupResult:
    """The result of a group whose job died: the cells it finished, the others failed with ``why``."""
    store = Store(results)
    done = [c.cell_id for c in group.cells if store.is_done(c.cell_id)]
    return GroupResult(group.train_key, done, {c.cell_id: why for c in group.cells if c.cell_id not in done})


class SubmititExecutor:
    """``kind``: ``slurm`` (a real cluster), ``submitit_local`` (subprocesses) or ``debug`` (in-process)."""

    def __init__(self, kind: str, options: dict[str, Any], folder: Path):
        import submitit

        self.kind, self.folder = kind, Path(folder)
        self.poll_s = float(os.environ.get("BENCH_SLURM_POLL_S", POLL_S))
        cluster = {"slurm": None, "submitit_local": "local"}.get(kind, kind)
        self.ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=cluster)
        params = {"timeout_min": 60, **submitit_parameters(options)}
        if kind != "slurm":  # the local engines know only the generic parameters
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        self.ex.update_parameters(name="bench", **params)

    def map(self, plan: Plan, results: Path, fail_fast: bool) -> Iterator[GroupResult]:
        suite, groups = plan.suite, list(plan.groups)
        if self.kind != "slurm":
            for g, job in zip(groups, self._submit(suite, groups, results, fail_fast), strict=True):
                yield self._collect(g, job, results, fail_fast)
            return
        earlier = self._live_jobs(groups, results)
        if earlier:
            log.warning("not resubmitting %d group(s): waiting for their live job(s) from an earlier run: %s",
                        len(earlier), ", ".join(earlier.values()))
        new = [g for g in groups if g.train_key not in earlier]
        watches = [_Watch(g, job) for g, job in zip(new, self._submit(suite, new, results, fail_fast), strict=True)]
        watches += [_Watch(g, self._job(earlier[g.train_key]), earlier=True) for g in groups if g.train_key in earlier]
        yield from self._watch(suite, watches, results, fail_fast)

    def _submit(self, suite: Suite, groups: list[Group], results: Path, fail_fast: bool) -> list[Any]:
        """Submit the groups as one job array and record each group's job."""
        if not groups:
            return []
        jobs = self.ex.map_array(run_group, [suite] * len(groups), groups, [results] * len(groups),
                                 [fail_fast] * len(groups))
        for g, job in zip(groups, jobs, strict=True):
            record = {"job_id": job.job_id, "engine": self.kind, "train_key": g.train_key, "log": str(job.paths.stderr),
                      "cells": [c.cell_id for c in g.cells], "submitted": time.time()}
            write_atomic(results / "jobs" / f"{g.train_key}.json", json.dumps(record).encode())
        return jobs

    def _job(self, job_id: str) -> Any:
        """The submitit handle of a job submitted earlier into this folder."""
        import submitit

        return submitit.SlurmJob(self.folder / "%j", job_id)

    def _live_jobs(self, groups: list[Group], results: Path) -> dict[str, str]:
        """train_key → job id, for groups whose recorded SLURM job is still pending or running."""
        records = job_records(results)
        ids = {g.train_key: records[g.train_key]["job_id"] for g in groups
               if records.get(g.train_key, {}).get("engine") == "slurm"}
        states = scheduler_states(ids.values()) or {}
        return {k: job_id for k, job_id in ids.items() if states.get(job_id) in LIVE}

    def _collect(self, group: Group, job: Any, results: Path, fail_fast: bool) -> GroupResult:
        """A finished job's result; a job that died (killed, pre-empted, timed out) fails its unfinished cells."""
        try:
            return job.result()
        except Exception as err:
            if fail_fast:
                raise
            return _lost(group, results, f"job {job.job_id} failed: {err}")

    def _watch(self, suite: Suite, watches: list[_Watch], results: Path, fail_fast: bool) -> Iterator[GroupResult]:
        """Yield each group's result as its job ends, asking SLURM every ``poll_s`` seconds."""
        states: dict[str, str] | None = {}
        asked = -self.poll_s
        while watches:
            now = time.monotonic()
            if now - asked >= self.poll_s:
                states, asked = scheduler_states(w.job.job_id for w in watches), now
            for w in list(watches):
                if not w.job.paths.result_pickle.exists() and not self._gone(w, states, now):
                    continue
                watches.remove(w)
                if not w.earlier:
                    yield self._finish(w, states, results, fail_fast)
                elif any(not Store(results).is_done(c.cell_id) for c in w.group.cells):
                    log.warning("job %s of an earlier run ended with cells left; resubmitting its group", w.job.job_id)
                    watches += [_Watch(w.group, job) for job in self._submit(suite, [w.group], results, fail_fast)]
                else:
                    yield GroupResult(w.group.train_key, [], {})
            if watches:
                time.sleep(min(1.0, self.poll_s))

    def _gone(self, w: _Watch, states: dict[str, str] | None, now: float) -> bool:
        """Whether a job without a result will not deliver one: SLURM has reported it ended for a
        poll (the result file may lag), or has not known it for ``LOST_AFTER_S``."""
        state = None if states is None else states.get(w.job.job_id)
        if state in LIVE:
            w.since = None
            return False
        w.since = now if w.since is None else w.since
        return now - w.since >= (self.poll_s if state else LOST_AFTER_S)

    def _finish(self, w: _Watch, states: dict[str, str] | None, results: Path, fail_fast: bool) -> GroupResult:
        """This run's job ended: its result, or its unfinished cells failed naming the job and its log."""
        job = w.job
        if job.paths.result_pickle.exists():
            return self._collect(w.group, job, results, fail_fast)
        state = (states or {}).get(job.job_id)
        if state:
            why = f"job {job.job_id} ended {state} before finishing; log: {job.paths.stderr}"
        else:
            why = f"job {job.job_id} is unknown to SLURM (no record for {LOST_AFTER_S:.0f} s); log: {job.paths.stderr}"
        if fail_fast:
            raise RuntimeError(why)
        return _lost(w.group, results, why)
