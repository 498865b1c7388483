"""Each cell's state from the results directory: done, running, failed or pending.

"running" means a process holds the lock of the cell's model (bench/worker.py); "submitted"
means a cluster job was submitted for it (results/jobs/, bench/cluster.py) and has neither
started, finished nor failed yet.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from bench.cells import expand
from bench.spec import Suite
from bench.store import Store


def _locked(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def cell_status(suite: Suite, results: Path) -> list[tuple[str, str]]:
    store = Store(results)
    errors = store.errors()
    out = []
    for c in expand(suite):
        if store.is_done(c.cell_id):
            state = "done"
        elif _locked(results / "models" / f"{c.train_key}.lock"):
            state = "running"
        elif c.cell_id in errors:
            state = "failed"
        elif (results / "jobs" / f"{c.train_key}.json").is_file():
            state = "submitted"
        else:
            state = "pending"
        out.append((c.cell_id, state))
    return out
