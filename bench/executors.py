"""Executors run groups (one model + its cells) somewhere; the runner only sees this interface.

``LocalExecutor`` runs groups one after another in this process, or N at a time in spawned
worker processes. A cluster engine is one more class with the same ``map`` (see
``bench/cluster.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

from bench.cells import Group
from bench.spec import Suite
from bench.worker import GroupResult, run_group


class Executor(Protocol):
    def map(self, suite: Suite, groups: list[Group], results: Path, fail_fast: bool) -> Iterator[GroupResult]:
        """Run every group; yield each one's result as it finishes."""
        ...


class LocalExecutor:
    def __init__(self, workers: int = 1, progress: bool = True):
        self.workers, self.progress = workers, progress

    def map(self, suite: Suite, groups: list[Group], results: Path, fail_fast: bool) -> Iterator[GroupResult]:
        if self.workers == 1:
            for g in groups:
                yield run_group(suite, g, results, fail_fast, progress=self.progress)
            return
        # spawn, not fork: forking after torch has started threads can hang the children
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_group, suite, g, results, fail_fast) for g in groups]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            except BaseException:  # --fail-fast or Ctrl-C: do not start the groups still queued
                pool.shutdown(wait=False, cancel_futures=True)
                raise
