"""``python -m bench.train_group RESULTS TRAIN_KEY``: train one group's model, run under torchrun.

The runner launches this (``executor.procs_per_task`` or ``gpus_per_task`` > 1) so that a single
model trains with DDP across the processes of one task; every rank runs the same loop, rank 0
writes checkpoints, the log and the validation curve. The suite is read back from the copy the
runner keeps in ``RESULTS/suite.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.cells import expand, group
from bench.spec import load_suite
from bench.worker import fit


def main(results: Path, train_key: str) -> None:
    suite = load_suite(results / "suite.yaml")
    (g,) = [g for g in group(expand(suite)) if g.train_key == train_key]
    fit(suite, g, results / "models" / train_key)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
