"""How many model groups a local run trains at once, and with how many torch threads each.

A suite may fix both (``executor.workers``, ``threads``) or leave them ``auto``. The automatic
choice reads the cores this process may use and the size of the largest model:

- models below ``LARGE_MODEL_PARAMS`` parameters (the smoke, cpu and qqp_cpu presets): a step's
  matrix products are too small to keep several threads busy, and per-call overhead dominates,
  so one worker per core, 1 thread each (at most one worker per model group);
- larger models (the paper preset), a GPU, or a cluster task: one worker with every core.

Threads never oversubscribe: workers × training processes × threads ≤ cores. The worker count
changes speed only. The thread count also changes the last bits of torch's parallel reductions,
so curves trained at 1 and at 2 threads differ at rounding level (docs/design.md §3); the decoded
outputs and metrics of a short run stay the same (tests/test_bench.py). MANIFEST.json, the
results table and the training log record the count.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import torch

from bench.plan import Group, Plan
from diffuseq.ar_transformer import denoiser_params

LARGE_MODEL_PARAMS = 20_000_000  # transformer parameters without the vocabulary (paper preset: ~86M)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def model_size(groups: Sequence[Group]) -> int:
    """Parameters of the largest model of ``groups``, without its vocabulary (embedding and head
    rows grow with the tokenizer, which is built when training starts)."""
    return max((denoiser_params(g.train, 1) for g in groups), default=0)


def resolve(plan: Plan, workers: int | None = None, cores: int | None = None) -> Plan:
    """``plan`` with its suite's ``executor.workers`` and ``threads`` as numbers: the suite's own,
    ``workers`` when given (e.g. ``--workers``), else the automatic choice for the plan's models
    (all of them, so that a resumed or partial run chooses the same) on ``cores`` (default: this
    process's; on a cluster, the task's ``cpus_per_task`` when the suite names it)."""
    suite, ex = plan.suite, plan.suite.executor
    cores = cores or (int(ex.options.get("cpus_per_task", 0)) if ex.kind != "local" else 0) or usable_cores()
    n = workers or ex.workers
    if n == "auto":
        small = model_size(plan.groups) < LARGE_MODEL_PARAMS and not torch.cuda.is_available()
        n = max(1, min(cores, len(plan.groups))) if small and ex.kind == "local" else 1
    threads = suite.threads if suite.threads != "auto" else max(1, cores // (n * ex.train_procs))
    return replace(plan, suite=suite.model_copy(update={"executor": ex.model_copy(update={"workers": n}),
                                                        "threads": threads}))
