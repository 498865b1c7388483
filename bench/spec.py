"""Suite files (``ablations/suites/*.yaml``): schema, loading and validation.

A suite names arms × datasets × seeds × samplers (× sweep points) and the scale preset. Errors
name the file, the key path and what is allowed; ``python -m bench validate SUITE`` checks a file
without running it. Arms come from ``ablations/arms/<name>.yaml`` (see diffuseq.config).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diffuseq.config import (
    ConfigError,
    arm_path,
    build_train_spec,
    format_validation_error,
    load_arm,
)
from diffuseq.data import DATA_ROOT_ENV
from diffuseq.sampling.spec import SamplerSpec, build_sampler_spec, overlay

SUITES_DIR = Path(__file__).resolve().parents[1] / "ablations" / "suites"
METRICS = ("bleu", "rouge_l", "bertscore", "dist1", "length", "corpus_bleu", "self_bleu", "div4")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplerEntry(_Strict):
    """A decoding variant laid over each arm's own ``sample`` section.

    ``steps`` may be a list (one cell per value); ``arms`` restricts the entry to some arms.
    An empty entry ``{}`` means "the arm's own decoding".
    """

    arms: tuple[str, ...] | None = None
    label: str | None = None
    steps: int | tuple[int, ...] | None = None
    set: dict[str, Any] = Field(default_factory=dict, description="other SamplerSpec fields")


class CurveSpec(_Strict):
    """Validation BLEU during training (convergence curves), each arm decoded as it is decoded:
    the arm's own sampler (DiffuSeq's DDPM with clamp, v2's DPM-Solver++, ...) with one sample,
    respaced to at most ``steps`` steps so that the curve fits the budget."""

    every: int = Field(250, ge=1, description="evaluate every N training steps")
    examples: int = Field(64, ge=1, description="fixed validation subset size")
    steps: int | None = Field(100, ge=1, description="each arm's own decoder respaced to at most this many "
                              "steps (DDPM-2000 → DDPM-K with the same clamp); null: the full decoder")
    extra: tuple[dict[str, Any], ...] = Field(
        (), description="more decoders (SamplerSpec fields) recorded for every model, e.g. a shared "
        "DPM-Solver++-10; shown beside the own-decoder curves, never used for speedups")


class DecodeSpec(_Strict):
    split: Literal["valid", "test"] = "test"
    limit: int | None = Field(None, ge=1, description="decode only the first N sources")
    batch_size: int = Field(64, ge=1)
    bertscore_model: str | None = Field(None, description="local model path; default: the packaged MiniLM")


class TimingSpec(_Strict):
    """The controlled timing pass that speed figures come from (bench/timing.py)."""

    enabled: bool = True
    reps: int = Field(5, ge=1, description="timed repetitions per configuration, interleaved, after a warm-up")
    train_steps: int = Field(10, ge=2, description="training steps timed per repetition (after one warm-up step)")
    max_chain: int = Field(200, ge=1, description="sampling chains longer than this are timed on this many "
                           "steps and scaled by steps (their per-step cost is constant)")


class ExecutorSpec(_Strict):
    """Where groups run: ``local`` (this machine), ``slurm`` (submitit), or submitit's ``debug``/
    ``submitit_local`` engines (in-process / subprocesses, for testing the cluster path)."""

    kind: Literal["local", "slurm", "debug", "submitit_local"] = "local"
    workers: int = Field(1, ge=1, description="local: training groups run N at a time")
    procs_per_task: int = Field(1, ge=1, description="training processes per model under torchrun (DDP)")
    options: dict[str, Any] = Field(default_factory=dict, description="engine options (e.g. slurm partition, time)")

    @property
    def train_procs(self) -> int:
        """torchrun processes per training: procs_per_task, or the GPUs of a cluster task."""
        return max(self.procs_per_task, int(self.options.get("gpus_per_task", 1)))


class Suite(_Strict):
    name: str
    description: str = ""
    preset: Literal["smoke", "cpu", "paper"]
    arms: tuple[str, ...] = Field(min_length=1)
    datasets: tuple[str, ...] = Field(("default",), min_length=1)
    seeds: tuple[int, ...] = Field(min_length=1)
    samplers: tuple[SamplerEntry, ...] = (SamplerEntry(),)
    metrics: tuple[str, ...] = METRICS
    overrides: dict[str, Any] = Field(default_factory=dict, description="TrainSpec fields for every model, dotted keys")
    sweep: dict[str, tuple[Any, ...]] = Field(default_factory=dict, description="dotted TrainSpec key → values")
    curves: CurveSpec = CurveSpec()
    decode: DecodeSpec = DecodeSpec()
    baselines: tuple[str, ...] = Field(("copy_source", "nearest_train_target"),
                                       description="trivial outputs scored on every dataset (diffuseq.baselines)")
    timing: TimingSpec = TimingSpec()
    executor: ExecutorSpec = ExecutorSpec()
    threads: int | None = Field(None, ge=1, description="torch threads per worker")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: tuple[str, ...]) -> tuple[str, ...]:
        for a in arms:
            arm_path(a)  # raises ConfigError listing the known arms
        return arms

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from diffuseq.baselines import BASELINES

        bad = sorted(set(names) - set(BASELINES))
        if bad:
            raise ValueError(f"unknown baseline(s) {bad}; allowed: {sorted(BASELINES)}")
        return names

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        bad = sorted(set(metrics) - set(METRICS))
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; allowed: {list(METRICS)}")
        return metrics

    @model_validator(mode="after")
    def _entries_name_suite_arms(self) -> Suite:
        for i, e in enumerate(self.samplers):
            extra = sorted(set(e.arms or ()) - set(self.arms))
            if extra:
                raise ValueError(f"samplers.{i}.arms names {extra}, which are not in this suite's arms {list(self.arms)}")
        return self


def _dotted(d: dict[str, Any]) -> dict[str, Any]:
    """``{"model.layers": 2}`` → ``{"model": {"layers": 2}}`` (nested dicts pass through)."""
    out: dict[str, Any] = {}
    for key, val in d.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _dotted(val) if isinstance(val, dict) else val
    return out


def check_datasets(suite: Suite, source: str) -> None:
    """Named datasets need a data root that holds them (the embedded ``default`` needs none)."""
    root = suite.overrides.get("data.data_root") or os.environ.get(DATA_ROOT_ENV)
    for i, name in enumerate(suite.datasets):
        if name == "default" or Path(name).is_dir():
            continue
        if root is None:
            raise ConfigError(f"{source}: datasets.{i}: {name!r} needs a data root: set ${DATA_ROOT_ENV} (e.g. ../shared/data)")
        if not (Path(root) / name).is_dir():
            known = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
            raise ConfigError(f"{source}: datasets.{i}: no dataset {name!r} under {root}; allowed: ['default', *{known}]")


def sweep_points(suite: Suite) -> list[dict[str, Any]]:
    """The cartesian product of the sweep axes, as dotted-key dicts ([{}] without a sweep)."""
    keys = sorted(suite.sweep)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(suite.sweep[k] for k in keys))]


def sample_raw(suite: Suite, arm: str, entry: SamplerEntry, steps: int | None) -> dict[str, Any]:
    """The arm's ``sample`` section overlaid with a suite entry (fields of another sampler dropped)."""
    over = dict(entry.set)
    if steps is not None:
        over["steps"] = steps
    return overlay(load_arm(arm)["sample"], over)


def curve_sampler_raw(suite: Suite, arm: str) -> dict[str, Any]:
    """An arm's own decoder as its convergence curve uses it: one sample, at most
    ``curves.steps`` steps (respaced)."""
    raw = {**load_arm(arm)["sample"], "mbr": 1}
    steps = raw.get("steps", SamplerSpec.model_fields["steps"].default)
    if suite.curves.steps is not None and steps > suite.curves.steps:
        raw["steps"] = suite.curves.steps
    return raw


def load_suite(path: str | Path) -> Suite:
    """Read and fully validate a suite: schema, arms, every training spec and sampler spec."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = SUITES_DIR / f"{path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise ConfigError(f"suite {str(path)!r} not found; suites in {SUITES_DIR}: {known}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a suite must be a mapping of keys (name, preset, arms, seeds, ...)")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path))) from None
    check_datasets(suite, str(path))
    for point in sweep_points(suite):
        for arm in suite.arms:
            build_train_spec(suite.preset, arm, _dotted({**suite.overrides, **point}), source=f"{path}: overrides/sweep")
    for i, entry in enumerate(suite.samplers):
        for arm in entry.arms or suite.arms:
            for steps in _steps(entry):
                build_sampler_spec(sample_raw(suite, arm, entry, steps), source=f"{path}: samplers.{i} (arm {arm})")
    for arm in suite.arms:
        build_sampler_spec(curve_sampler_raw(suite, arm), source=f"{path}: curves (arm {arm}'s own decoder)")
    for i, raw in enumerate(suite.curves.extra):
        build_sampler_spec(raw, source=f"{path}: curves.extra.{i}")
    from bench.cells import duplicates, expand

    if dup := duplicates(expand(suite)):
        raise ConfigError(f"{path}: samplers: entries overlap and would run the same cell twice: {sorted(dup)}; "
                          "restrict one entry with `arms:` or drop the duplicated steps")
    return suite


def _steps(entry: SamplerEntry) -> tuple[int | None, ...]:
    if entry.steps is None:
        return (None,)
    return entry.steps if isinstance(entry.steps, tuple) else (entry.steps,)
