"""Running groups on a cluster through submitit (SLURM), or its local/debug engines for testing.

One job per group (a distinct model, then its decodings), submitted as one job array. Results
land in the shared results directory through the same atomic per-cell files as local runs, so
re-running ``python -m bench run`` after jobs died or were pre-empted resubmits only groups that
still have unfinished cells; a resubmitted group resumes its model from the last checkpoint.

Suite options (``executor.options``) and their submitit names:
``partition`` → slurm_partition, ``array_parallelism`` → slurm_array_parallelism,
``gpus_per_task`` → gpus_per_node (the job's training runs under ``torchrun`` with that many
processes), ``timeout_min``, ``cpus_per_task``, ``mem_gb``; any other ``slurm_*`` key passes through.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.cells import Group
from bench.spec import Suite
from bench.store import Store, write_atomic
from bench.worker import GroupResult, run_group

RENAMES = {"partition": "slurm_partition", "array_parallelism": "slurm_array_parallelism", "gpus_per_task": "gpus_per_node"}


def submitit_parameters(options: dict[str, Any]) -> dict[str, Any]:
    """Suite executor options → submitit AutoExecutor parameters."""
    return {RENAMES.get(k, k): v for k, v in options.items()}


class SubmititExecutor:
    """``kind``: ``slurm`` (a real cluster), ``submitit_local`` (subprocesses) or ``debug`` (in-process)."""

    def __init__(self, kind: str, options: dict[str, Any], folder: Path):
        import submitit

        self.kind, self.folder = kind, Path(folder)
        cluster = {"slurm": None, "submitit_local": "local"}.get(kind, kind)
        self.ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=cluster)
        params = {"timeout_min": 60, **submitit_parameters(options)}
        if kind != "slurm":  # the local engines know only the generic parameters
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        self.ex.update_parameters(name="bench", **params)

    def map(self, suite: Suite, groups: list[Group], results: Path, fail_fast: bool) -> Iterator[GroupResult]:
        if not groups:
            return
        jobs = self.ex.map_array(run_group, [suite] * len(groups), groups, [results] * len(groups),
                                 [fail_fast] * len(groups))
        for g, job in zip(groups, jobs, strict=True):
            record = {"job_id": job.job_id, "engine": self.kind, "train_key": g.train_key,
                      "cells": [c.cell_id for c in g.cells], "submitted": time.time()}
            write_atomic(results / "jobs" / f"{g.train_key}.json", json.dumps(record).encode())
        for g, job in zip(groups, jobs, strict=True):
            try:
                yield job.result()
            except Exception as err:  # the job died (killed, pre-empted, timed out): rerun resubmits it
                if fail_fast:
                    raise
                store = Store(results)
                done = [c.cell_id for c in g.cells if store.is_done(c.cell_id)]
                lost = {c.cell_id: f"job {job.job_id} failed: {err}" for c in g.cells if c.cell_id not in done}
                yield GroupResult(g.train_key, done, lost)
