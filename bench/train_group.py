"""``python -m bench.train_group PLAN_JSON RUN_DIR``: train one group's model, run under torchrun.

The worker launches this (``executor.procs_per_task`` or ``gpus_per_task`` > 1) so that a single
model trains with DDP across the processes of one task; every rank runs the same loop, rank 0
writes checkpoints, the log and the validation curve. The worker hands over the group as a
one-group plan (:meth:`bench.plan.Plan.to_json`); nothing is re-expanded here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.plan import Plan
from bench.worker import train_in_process


def main(plan_file: Path, run_dir: Path) -> None:
    plan = Plan.from_json(plan_file.read_text())
    (group,) = plan.groups
    train_in_process(plan.suite, group, run_dir)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
