"""What the suite's progress bar says while its cells run: each model in flight and its step.

A model group takes minutes to hours (training, then its decodes), so a bar that counts finished
cells alone sits silent that long. :class:`ModelStatus` polls the results directory, every few
seconds, for the models some worker holds locked, and shows ``baseline s0 step 560/1600 ·
v2 s0 decoding`` after the bar: it reads only what the workers write anyway (the model lock and
its ``log.jsonl``), so it works for every executor that shares the results directory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from bench.plan import Group
from bench.store import Store
from diffuseq.train import read_log


def last_step(log: Path) -> int | None:
    """The optimizer step of a training log's newest row; None before its first row."""
    if not log.is_file():
        return None
    rows = read_log(log.parent)
    return int(rows[-1]["step"]) if rows else None


def group_name(group: Group, datasets: int) -> str:
    c = group.cells[0]
    return "/".join(group.arms) + (f" {c.dataset}" if datasets > 1 else "") + f" s{c.seed}"


def status_line(store: Store, groups: Sequence[Group]) -> str:
    """The models some worker holds now, each with its training step (or ``decoding`` once its
    training is done); ``""`` when none is held."""
    datasets = len({g.cells[0].dataset for g in groups})
    parts = []
    for g in groups:
        if not store.is_locked(g.train_key):
            continue
        step, total = last_step(store.model_dir(g.train_key) / "log.jsonl"), g.train.optim.steps
        what = "decoding" if g.run else "starting" if step is None else "decoding" if step >= total else f"step {step}/{total}"
        parts.append(f"{group_name(g, datasets)} {what}")
    return " · ".join(parts)


class ModelStatus:
    """A daemon thread that refreshes ``bar``'s postfix with :func:`status_line` every ``every_s``
    seconds, from entering the context until leaving it."""

    def __init__(self, bar: tqdm, store: Store, groups: Sequence[Group], every_s: float = 5.0):
        self.bar, self.store, self.groups, self.every_s = bar, store, list(groups), every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="model-status", daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.every_s):
            self.bar.set_postfix_str(status_line(self.store, self.groups))

    def __enter__(self) -> ModelStatus:
        if not self.bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
