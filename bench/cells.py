"""Expanding a suite into cells, grouped by the model they need.

A cell is (arm, dataset, seed, sweep point, sampler variant). Cells whose training specs hash
equal share one :class:`Group`: the model is trained once and then decoded once per cell
(``absorb_train_only`` and ``v2`` always share).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bench.spec import Suite, _dotted, _steps, sample_raw, sweep_points
from diffuseq.config import TrainSpec, build_train_spec
from diffuseq.sampling.spec import SamplerSpec, build_sampler_spec


@dataclass(frozen=True)
class Cell:
    suite: str
    arm: str
    dataset: str
    seed: int
    sweep: tuple[tuple[str, Any], ...]
    label: str  # sampler variant, e.g. "dpm_solver++-10"
    sampler: SamplerSpec
    train: TrainSpec
    settings: str  # hash of the suite's decode, metrics and curve settings


    @property
    def train_key(self) -> str:
        return self.train.key()

    @property
    def cell_id(self) -> str:
        """Readable and unique: arm-dataset-seed-label[-sweep]-hash of everything that matters
        (training spec, sampler spec, decode/metric/curve settings), so a changed setting never
        silently reuses an old result."""
        blob = json.dumps([self.arm, self.train_key, self.sampler.model_dump(mode="json"), self.settings], sort_keys=True)
        sweep = "".join(f"-{k.split('.')[-1]}{v}" for k, v in self.sweep)
        name = f"{self.arm}-{self.dataset.replace('/', '_')}-s{self.seed}-{self.label}{sweep}"
        return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


@dataclass
class Group:
    """All cells that decode one trained model."""

    train: TrainSpec
    cells: list[Cell] = field(default_factory=list)

    @property
    def train_key(self) -> str:
        return self.train.key()

    @property
    def arms(self) -> list[str]:
        return sorted({c.arm for c in self.cells})


def expand(suite: Suite, only: str | None = None) -> list[Cell]:
    """All cells of a suite (optionally those whose cell_id matches the glob ``only``)."""
    cells = []
    settings = settings_key(suite)
    for point in sweep_points(suite):
        for dataset in suite.datasets:
            for seed in suite.seeds:
                for arm in suite.arms:
                    over = _dotted({**suite.overrides, **point, "data.dataset": dataset, "optim.seed": seed})
                    train = build_train_spec(suite.preset, arm, over)
                    for entry in suite.samplers:
                        if entry.arms is not None and arm not in entry.arms:
                            continue
                        for steps in _steps(entry):
                            spec = build_sampler_spec(sample_raw(suite, arm, entry, steps))
                            label = entry.label or f"{spec.sampler}-{spec.steps}"
                            cells.append(Cell(suite.name, arm, dataset, seed, tuple(sorted(point.items())), label, spec,
                                              train, settings))
    if only:
        cells = [c for c in cells if fnmatch.fnmatch(c.cell_id, only) or fnmatch.fnmatch(c.arm, only)]
    return cells


def settings_key(suite: Suite) -> str:
    """Hash of the suite settings that change a cell's numbers without changing its model."""
    blob = json.dumps([suite.decode.model_dump(mode="json"), sorted(suite.metrics), suite.curves.model_dump(mode="json")],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def duplicates(cells: list[Cell]) -> dict[str, int]:
    """cell_id → count for ids produced more than once (e.g. overlapping sampler entries)."""
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.cell_id] = counts.get(c.cell_id, 0) + 1
    return {k: n for k, n in counts.items() if n > 1}


def group(cells: list[Cell]) -> list[Group]:
    """Cells grouped by training key, in first-seen order."""
    groups: dict[str, Group] = {}
    for c in cells:
        groups.setdefault(c.train_key, Group(c.train)).cells.append(c)
    return list(groups.values())
