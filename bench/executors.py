"""Executors run groups (one model + its cells) somewhere; the runner only sees this interface.

``LocalExecutor`` runs groups one after another in this process, or N at a time in spawned
worker processes. A cluster engine is one more class with the same ``map`` (see
``bench/cluster.py``).
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from bench.plan import Plan
from bench.worker import GroupResult, run_group


class Executor(Protocol):
    def map(self, plan: Plan, results: Path, fail_fast: bool) -> Iterator[GroupResult]:
        """Run every group of ``plan``; yield each one's result as it finishes."""
        ...


class LocalExecutor:
    def __init__(self, workers: int = 1, progress: bool = True):
        self.workers, self.progress = workers, progress

    def map(self, plan: Plan, results: Path, fail_fast: bool) -> Iterator[GroupResult]:
        suite, groups = plan.suite, plan.groups
        if self.workers == 1:
            for g in groups:
                yield run_group(suite, g, results, fail_fast, progress=self.progress)
            return
        # spawn, not fork: forking after torch has started threads can hang the children
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
            futures = [pool.submit(run_group, suite, g, results, fail_fast) for g in groups]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            except BaseException:  # --fail-fast, Ctrl-C or SIGTERM: stop the workers now; a rerun resumes
                workers = list((pool._processes or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for proc in workers:
                    proc.terminate()
                raise


def _init_worker() -> None:
    """Worker initializer. On Linux, have the kernel send SIGTERM to the worker when the runner
    dies, even by SIGKILL, so no orphan keeps training (a rerun resumes from its checkpoint).

    It also gives tqdm a thread lock instead of its default multiprocessing lock: that lock is a
    named semaphore, which a worker stopped by SIGTERM never unlinks, so the runner's resource
    tracker would end an interrupted run with "There appear to be N leaked semaphore objects".
    A worker's progress bars are its own (and off), so a thread lock is all they need."""
    tqdm.set_lock(threading.RLock())
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
