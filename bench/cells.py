"""Expanding a suite into cells, grouped by the model they need.

A cell is (arm, dataset, seed, sweep point, sampler variant). Cells whose training specs hash
equal share one :class:`Group`: the model is trained once and then decoded once per cell
(``absorb_train_only`` and ``v2`` always share). A :class:`TrivialCell` is a trivial output
(``diffuseq.baselines``) scored once per dataset, with no model.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bench.spec import Suite, _dotted, _steps, curve_sampler_raw, sample_raw, sweep_points
from diffuseq.config import TrainSpec, build_train_spec, load_arm
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
    curve_sampler: SamplerSpec  # the arm's own decoder as its convergence curve uses it
    arm_label: str  # the arm file's one-line label


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


@dataclass(frozen=True)
class TrivialCell:
    """A trivial output on one dataset's decode split, tokenized and laid out as ``train`` (the
    suite's first model of that dataset) would, so that it is scored exactly like the models."""

    suite: str
    arm: str  # a name in diffuseq.baselines.BASELINES
    dataset: str
    train: TrainSpec
    settings: str

    @property
    def cell_id(self) -> str:
        blob = json.dumps([self.arm, self.train.data.model_dump(mode="json"), self.settings], sort_keys=True)
        return f"{self.arm}-{self.dataset.replace('/', '_')}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


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
                    curve = build_sampler_spec(curve_sampler_raw(suite, arm))
                    arm_label = load_arm(arm)["label"]
                    for entry in suite.samplers:
                        if entry.arms is not None and arm not in entry.arms:
                            continue
                        for steps in _steps(entry):
                            spec = build_sampler_spec(sample_raw(suite, arm, entry, steps))
                            label = entry.label or f"{spec.sampler}-{spec.steps}"
                            cells.append(Cell(suite.name, arm, dataset, seed, tuple(sorted(point.items())), label, spec,
                                              train, settings, curve, arm_label))
    return selected(cells, only)


def selected(cells: list, only: str | None) -> list:
    """The cells whose cell_id or arm matches one of the comma-separated globs ``only`` (all
    without it)."""
    if not only:
        return cells
    globs = [g.strip() for g in only.split(",")]
    return [c for c in cells if any(fnmatch.fnmatch(c.cell_id, g) or fnmatch.fnmatch(c.arm, g) for g in globs)]


def trivial_cells(suite: Suite, cells: list[Cell], only: str | None = None) -> list[TrivialCell]:
    """One cell per (baseline, dataset), laid out like the dataset's first model cell among
    ``cells`` (all of the suite's), those matching ``only`` if given."""
    first: dict[str, TrainSpec] = {}
    for c in cells:
        first.setdefault(c.dataset, c.train)
    settings = settings_key(suite)
    return selected([TrivialCell(suite.name, name, dataset, train, settings) for dataset, train in first.items()
                     for name in suite.baselines], only)


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
