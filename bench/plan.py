"""A suite turned into the work it asks for: the :class:`Plan`.

A cell is (arm, dataset, seed, sweep point, sampler variant). Cells whose training specs hash
equal share one :class:`Group`: the model is trained once and then decoded once per cell
(``absorb_train_only`` and ``v2`` always share). An imported arm's cells form a group of their
own that decodes a given run directory and trains nothing (:mod:`bench.imported`). A :class:`TrivialCell` is a trivial output
(``diffuseq.baselines``) scored once per dataset, with no model.

:func:`make_plan` is the only place a suite is expanded: each arm file is read once, every
training and sampler spec is validated with errors naming the suite file and key, and duplicate
cells are refused. Executors, workers and torchrun jobs receive the plan (or a part of it), never
the suite file; where it crosses a process boundary it travels as JSON (:meth:`Plan.to_json`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.imported import ImportedRun, open_run, same_dataset
from bench.schema import IMPORTED_KEY_PREFIX
from bench.spec import SamplerEntry, Suite, load_suite, nested, suite_file
from diffuseq.config import ConfigError, TrainSpec, build_train_spec, load_arm
from diffuseq.family import decodes
from diffuseq.plm import check_fits
from diffuseq.sampling.spec import SamplerSpec, build_sampler_spec, overlay


@dataclass(frozen=True)
class Cell:
    suite: str
    arm: str
    dataset: str
    seed: int
    sweep: tuple[tuple[str, Any], ...]  # the sweep point's dotted training overrides, sorted
    label: str  # sampler variant, e.g. "dpm_solver++-10"
    sampler: SamplerSpec
    train: TrainSpec
    settings_hash: str  # hash of the suite's decode, metric and curve settings (see settings_hash)
    curve_sampler: SamplerSpec  # the arm's own decoder as its convergence curve uses it
    arm_label: str  # the arm file's one-line label
    run: str = ""  # an imported arm's run directory (decoded, never trained); "" for a model the suite trains
    weights: str = ""  # an imported run's bench.imported.run_identity

    @property
    def train_key(self) -> str:
        """The model's key: its spec hash, or for an imported run ``imported-`` and its identity."""
        return f"{IMPORTED_KEY_PREFIX}{self.weights[:12]}" if self.run else self.train.key()

    @property
    def cell_id(self) -> str:
        """Readable and unique: arm-dataset-seed-label[-sweep]-hash of everything that matters
        (training spec, sampler spec, decode/metric/curve settings), so a changed setting never
        silently reuses an old result."""
        blob = json.dumps([self.arm, self.train_key, self.sampler.model_dump(mode="json"), self.settings_hash],
                          sort_keys=True)
        sweep = "".join(f"-{k.split('.')[-1]}{v}" for k, v in self.sweep)
        name = f"{self.arm}-{self.dataset.replace('/', '_')}-s{self.seed}-{self.label}{sweep}"
        return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; specs keep only the fields that were set, so they validate back unchanged."""
        def spec(s: SamplerSpec | TrainSpec) -> dict[str, Any]:
            return s.model_dump(mode="json", exclude_unset=True)

        return {"suite": self.suite, "arm": self.arm, "dataset": self.dataset, "seed": self.seed,
                "sweep": [list(kv) for kv in self.sweep], "label": self.label, "sampler": spec(self.sampler),
                "train": spec(self.train), "settings_hash": self.settings_hash,
                "curve_sampler": spec(self.curve_sampler), "arm_label": self.arm_label,
                **({"run": self.run, "weights": self.weights} if self.run else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        return cls(d["suite"], d["arm"], d["dataset"], d["seed"], tuple(tuple(kv) for kv in d["sweep"]), d["label"],
                   SamplerSpec.model_validate(d["sampler"]), TrainSpec.model_validate(d["train"]), d["settings_hash"],
                   SamplerSpec.model_validate(d["curve_sampler"]), d["arm_label"], d.get("run", ""), d.get("weights", ""))


@dataclass(frozen=True)
class TrivialCell:
    """A trivial output on one dataset's decode split, tokenized and laid out as ``train`` (the
    suite's first model of that dataset) would, so that it is scored exactly like the models."""

    suite: str
    arm: str  # a name in diffuseq.baselines.BASELINES
    dataset: str
    train: TrainSpec
    settings_hash: str

    @property
    def cell_id(self) -> str:
        blob = json.dumps([self.arm, self.train.data.model_dump(mode="json"), self.settings_hash], sort_keys=True)
        return f"{self.arm}-{self.dataset.replace('/', '_')}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Group:
    """All cells that decode one trained model."""

    train: TrainSpec
    cells: tuple[Cell, ...]

    @property
    def train_key(self) -> str:
        return self.cells[0].train_key

    @property
    def run(self) -> str:
        """The imported run directory the group decodes ("" for a model it trains)."""
        return self.cells[0].run

    @property
    def arms(self) -> list[str]:
        return sorted({c.arm for c in self.cells})


@dataclass(frozen=True)
class Plan:
    """Every model group and trivial cell of a suite, in expansion order."""

    suite: Suite
    source: str  # the suite file, for messages and the copy kept beside the results
    groups: tuple[Group, ...]
    trivial: tuple[TrivialCell, ...]
    _by_key: dict[str, Group] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {g.train_key: g for g in self.groups})

    @property
    def cells(self) -> list[Cell]:
        return [c for g in self.groups for c in g.cells]

    def group(self, train_key: str) -> Group:
        return self._by_key[train_key]

    def select(self, only: str | None) -> Plan:
        """The part of the plan whose cell ids or arms match one of the comma-separated globs
        ``only`` (the whole plan without it); groups keep only their matching cells."""
        if not only:
            return self
        groups = [replace(g, cells=tuple(selected(g.cells, only))) for g in self.groups]
        return replace(self, groups=tuple(g for g in groups if g.cells), trivial=tuple(selected(self.trivial, only)))

    def to_json(self) -> str:
        return json.dumps({"suite": self.suite.model_dump(mode="json"), "source": self.source,
                           "groups": [[c.to_dict() for c in g.cells] for g in self.groups]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """A plan written by :meth:`to_json` (trivial cells, cheap to rebuild, are not carried)."""
        d = json.loads(text)
        groups = [Group(cells[0].train, tuple(cells)) for cells in ([Cell.from_dict(c) for c in g] for g in d["groups"])]
        return cls(Suite.model_validate(d["suite"]), d["source"], tuple(groups), ())


def selected(cells: list | tuple, only: str | None) -> list:
    """The cells whose cell_id or arm matches one of the comma-separated globs ``only``."""
    if not only:
        return list(cells)
    globs = [g.strip() for g in only.split(",")]
    return [c for c in cells if any(fnmatch.fnmatch(c.cell_id, g) or fnmatch.fnmatch(c.arm, g) for g in globs)]


def settings_hash(suite: Suite) -> str:
    """Hash of the suite settings that change a cell's numbers without changing its model."""
    blob = json.dumps([suite.decode.model_dump(mode="json"), sorted(suite.metrics), suite.curves.model_dump(mode="json")],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def entry_steps(entry: SamplerEntry) -> tuple[int | None, ...]:
    """A sampler entry's step counts (one cell each); ``(None,)``: the arm's own."""
    if entry.steps is None:
        return (None,)
    return entry.steps if isinstance(entry.steps, tuple) else (entry.steps,)


def curve_sampler_raw(suite: Suite, arm_sample: dict[str, Any]) -> dict[str, Any]:
    """An arm's own decoder as its convergence curve uses it: one sample, at most
    ``curves.steps`` steps (respaced)."""
    raw = {**arm_sample, "mbr": 1}
    steps = raw.get("steps", SamplerSpec.model_fields["steps"].default)
    if suite.curves.steps is not None and steps > suite.curves.steps:
        raw["steps"] = suite.curves.steps
    return raw


def make_plan(suite: Suite, source: str = "suite") -> Plan:
    """Expand a suite: validate every spec it implies (errors name ``source`` and the key) and
    group its cells by model; duplicate cells are an error."""
    arms = {a: load_arm(a) for a in suite.arms}
    docs = arms | {name: load_arm(e.like) for name, e in suite.imported.items()}  # an imported arm decodes as `like`
    settings = settings_hash(suite)
    curve = {a: build_sampler_spec(curve_sampler_raw(suite, doc["sample"]), source=f"{source}: curves (arm {a}'s own decoder)")
             for a, doc in docs.items()}
    for i, raw in enumerate(suite.curves.extra):
        build_sampler_spec(raw, source=f"{source}: curves.extra.{i}")
    samplers: dict[str, list[tuple[str | None, SamplerSpec]]] = {a: [] for a in docs}
    for i, entry in enumerate(suite.samplers):
        for a in entry.arms or suite.all_arms:
            for steps in entry_steps(entry):
                over = {**entry.set, **({} if steps is None else {"steps": steps})}
                spec = build_sampler_spec(overlay(docs[a]["sample"], over), source=f"{source}: samplers.{i} (arm {a})")
                samplers[a].append((entry.label, spec))
    groups: dict[str, list[Cell]] = {}
    for index in range(len(suite.sweep_points())):
        for dataset in suite.datasets:
            where = f"dataset_overrides.{dataset}/" if dataset in suite.dataset_overrides else ""
            for seed in suite.seeds:
                for a, doc in arms.items():
                    points = suite.arm_points(a)
                    if index >= len(points):
                        continue  # an arm outside sweep_arms: its one point, {}, came at index 0
                    point = points[index]
                    over = nested({**suite.overrides, **suite.dataset_overrides.get(dataset, {}), **point,
                                   "data.dataset": dataset, "optim.seed": seed})
                    train = build_train_spec(suite.preset, doc, over,
                                             source=f"{source}: {where}overrides/sweep (arm {a})")
                    check_decodes(source, a, train, samplers[a])
                    if train.model.init == "plm":
                        check_plm(source, a, train)
                    for label, spec in samplers[a]:
                        cell = Cell(suite.name, a, dataset, seed, tuple(sorted(point.items())),
                                    label or f"{spec.sampler}-{spec.steps}", spec, train, settings, curve[a], doc["label"])
                        groups.setdefault(train.key(), []).append(cell)
    base = Path(source).parent  # an imported run's relative path is read from the suite file's folder
    for name, entry in suite.imported.items():
        run = open_run(entry.run, base, f"{source}: imported.{name}.run")
        dataset = imported_dataset(suite, source, name, run)
        check_decodes(source, name, run.train, samplers[name])
        arm_label = entry.label or f"imported {run.path.name}, decoded as {entry.like}"
        for label, spec in samplers[name]:
            cell = Cell(suite.name, name, dataset, suite.seeds[0], (), label or f"{spec.sampler}-{spec.steps}", spec,
                        run.train, settings, curve[name], arm_label, str(run.path), run.identity)
            groups.setdefault(cell.train_key, []).append(cell)
    cells = [c for cs in groups.values() for c in cs]
    if dup := sorted(k for k, n in Counter(c.cell_id for c in cells).items() if n > 1):
        raise ConfigError(f"{source}: samplers: entries overlap and would run the same cell twice: {dup}; "
                          "restrict one entry with `arms:` or drop the duplicated steps")
    first: dict[str, TrainSpec] = {}
    for c in cells:  # trivial rows are laid out as the dataset's first trained model, else as the preset's
        if c.dataset not in first:
            first[c.dataset] = c.train if not c.run else build_train_spec(suite.preset, None, nested(
                {**suite.overrides, **suite.dataset_overrides.get(c.dataset, {}), "data.dataset": c.dataset}),
                source=f"{source}: overrides")
    trivial = [TrivialCell(suite.name, name, dataset, train, settings) for dataset, train in first.items()
               for name in suite.baselines]
    return Plan(suite, source, tuple(Group(cs[0].train, tuple(cs)) for cs in groups.values()), tuple(trivial))


def check_decodes(source: str, arm: str, train: TrainSpec, samplers: list[tuple[str | None, SamplerSpec]]) -> None:
    """Every sampler of ``arm`` decodes its model's family."""
    for _, spec in samplers:
        if not decodes(train, spec.sampler):
            raise ConfigError(f"{source}: samplers: sampler {spec.sampler!r} cannot decode arm {arm!r} "
                              f"(a {train.model.family} model); restrict that entry with `arms:`")


def check_plm(source: str, arm: str, train: TrainSpec) -> None:
    """A PLM start the pretrained model can fill, refused here rather than when the cell's turn comes."""
    try:
        check_fits(train)
    except ConfigError as err:
        raise ConfigError(f"{source}: arm {arm}: {err}") from None


def imported_dataset(suite: Suite, source: str, name: str, run: ImportedRun) -> str:
    """The suite dataset an imported run was trained on (its cells' dataset; the others skip it)."""
    for dataset in suite.datasets:
        data = nested({**suite.overrides, **suite.dataset_overrides.get(dataset, {})}).get("data", {})
        if same_dataset(run.train.data, dataset, data.get("data_root")):
            return dataset
    raise ConfigError(f"{source}: imported.{name}.run: {run.path} was trained on dataset {run.train.data.dataset!r}, "
                      f"which is not among this suite's datasets {list(suite.datasets)}; add it to datasets, or "
                      "re-import the checkpoint with `diffuseq import-official ... --dataset NAME`")


def load_plan(path: str | Path, only: str | None = None) -> Plan:
    """Read, validate and expand a suite file (or name), optionally restricted by ``only``."""
    file = suite_file(path)
    return make_plan(load_suite(file), str(file)).select(only)
