"""Suite files: schema, loading and validation.

A suite names arms × datasets × seeds × samplers (× sweep points) and the scale preset. Errors
name the file, the key path and what is allowed; ``python -m bench validate SUITE`` checks a file
without running it. A suite is a YAML path or a name looked up in ``$DIFFUSEQ_SUITES_DIR``,
``./ablations/suites``, then the built-in ``bench/suites/`` (see :mod:`diffuseq.resources`); arms
likewise (see diffuseq.config).
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from diffuseq.config import PRESETS, ConfigError, arm_path, format_validation_error, read_yaml
from diffuseq.data import DATA_ROOT_ENV
from diffuseq.metrics.registry import metrics
from diffuseq.resources import Catalog

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

SUITES = Catalog("suite", "DIFFUSEQ_SUITES_DIR", "ablations/suites", "bench", "suites")


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
    train_steps: int = Field(10, ge=2, description="training steps timed as one unit per repetition, at least (more when "
                             "they last under min_unit_s); after one dropped step")
    max_chain: int = Field(200, ge=1, description="sampling chains longer than this are timed on this many "
                           "steps and scaled by steps (their per-step cost is constant)")
    min_unit_s: float = Field(0.5, ge=0, description="a forward, decode or training step shorter than this is repeated within "
                              "one timed unit until the unit lasts this long (timer and scheduler noise)")
    threads: int | None = Field(None, ge=1, description="torch threads of the timing pass (default: the suite's "
                                "`threads`), e.g. 2 to time one model on 2 cores when workers train with 1 each")


class ExecutorSpec(_Strict):
    """Where groups run: ``local`` (this machine), ``slurm`` (submitit), or submitit's ``debug``/
    ``submitit_local`` engines (in-process / subprocesses, for testing the cluster path)."""

    kind: Literal["local", "slurm", "debug", "submitit_local"] = "local"
    workers: PositiveInt | Literal["auto"] = Field("auto", description="local: model groups run N at a time; auto: one per "
                                           "core for small models, one for large ones or a GPU (bench/parallel.py)")
    procs_per_task: int = Field(1, ge=1, description="training processes per model under torchrun (DDP)")
    options: dict[str, Any] = Field(default_factory=dict, description="engine options (e.g. slurm partition, time)")

    @property
    def train_procs(self) -> int:
        """torchrun processes per training: procs_per_task, or the GPUs of a cluster task."""
        return max(self.procs_per_task, int(self.options.get("gpus_per_task", 1)))


ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # an imported arm's name: part of cell ids and file names


class ImportedArm(_Strict):
    """A run directory decoded as an arm instead of a model the suite trains (bench/imported.py)."""

    run: str = Field(description="the run directory (from `diffuseq import-official`, or any `diffuseq train` run): "
                     "$VAR/${VAR} and ~ expanded, a relative path read from the suite file's folder")
    like: str = Field(description="the arm whose `sample` section decodes it (and the samplers entries that name it)")
    label: str | None = Field(None, description="the one-line label of reports; default: 'imported DIR, decoded as LIKE'")

    @field_validator("like")
    @classmethod
    def _known_arm(cls, like: str) -> str:
        arm_path(like)  # raises ConfigError listing the known arms
        return like


class Suite(_Strict):
    name: str
    description: str = ""
    preset: str = Field(description="a name in diffuseq.config.PRESETS")
    arms: tuple[str, ...] = Field((), description="the arms to train (at least one, unless `imported` names some)")
    imported: dict[str, ImportedArm] = Field(
        default_factory=dict, description="arm name → a run directory decoded instead of trained, at the suite's "
        "first seed, on the dataset it was trained on (bench/imported.py); e.g. {official_v2: {run: "
        "${DIFFUSEQ_RUNS}/official_qqp_v2, like: v2}}")
    datasets: tuple[str, ...] = Field(("default",), min_length=1)
    seeds: tuple[int, ...] = Field(min_length=1)
    samplers: tuple[SamplerEntry, ...] = (SamplerEntry(),)
    metrics: tuple[str, ...] = Field(default_factory=lambda: tuple(metrics()), description="metric names "
                                     "(diffuseq.metrics.registry); default: every registered metric")
    overrides: dict[str, Any] = Field(default_factory=dict, description="TrainSpec fields for every model, dotted keys")
    dataset_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per dataset, TrainSpec fields (dotted keys) laid over `overrides` for its "
        "models and trivial rows, e.g. {iwslt14_small: {data.seq_len: 96}}; a sweep point is laid over them")
    sweep: dict[str, tuple[Any, ...]] | tuple[dict[str, Any], ...] = Field(
        default_factory=dict, description="dotted TrainSpec key → values (every combination), or a list of "
        "points, each a mapping of dotted keys (one model per point: a one-knob-at-a-time sweep)")
    sweep_arms: tuple[str, ...] | None = Field(None, description="the arms the sweep applies to; the others train once, "
                                               "at no sweep point; default: every arm")
    curves: CurveSpec = CurveSpec()
    decode: DecodeSpec = DecodeSpec()
    baselines: tuple[str, ...] = Field(("copy_source", "nearest_train_target"),
                                       description="trivial outputs scored on every dataset (diffuseq.baselines)")
    timing: TimingSpec = TimingSpec()
    executor: ExecutorSpec = ExecutorSpec()
    threads: PositiveInt | Literal["auto"] = Field("auto", description="torch threads per worker; auto: the cores divided "
                                           "among the workers (bench/parallel.py); curves repeat bit for bit "
                                           "only at the same count")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str) -> str:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        return preset

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

    @field_validator("seeds")
    @classmethod
    def _non_negative_seeds(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        if bad := [s for s in seeds if s < 0]:
            raise ValueError(f"negative seed(s) {bad}; seeds must be 0 or more")
        return seeds

    @field_validator("arms", "datasets", "seeds")
    @classmethod
    def _each_once(cls, values: tuple, info: ValidationInfo) -> tuple:
        if dup := sorted({v for v in values if values.count(v) > 1}):
            what = info.field_name[:-1]  # arm, dataset, seed
            raise ValueError(f"duplicate {what}{'s' if len(dup) > 1 else ''} {', '.join(map(str, dup))}; list each {what} once")
        return values

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        bad = sorted(set(names) - set(metrics()))
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; allowed: {metrics()}")
        return names

    def sweep_points(self) -> list[dict[str, Any]]:
        """The sweep's points as dotted-key dicts: the listed points, or the cartesian product of
        the axes ([{}] without a sweep)."""
        if isinstance(self.sweep, tuple):
            return [dict(p) for p in self.sweep] or [{}]
        keys = sorted(self.sweep)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(self.sweep[k] for k in keys))]

    def arm_points(self, arm: str) -> list[dict[str, Any]]:
        """The sweep points ``arm`` trains at: every point, or ``[{}]`` for an arm outside ``sweep_arms``."""
        return self.sweep_points() if self.sweep_arms is None or arm in self.sweep_arms else [{}]

    @field_validator("imported")
    @classmethod
    def _imported_names(cls, imported: dict[str, ImportedArm]) -> dict[str, ImportedArm]:
        from diffuseq.baselines import BASELINES

        for name in imported:
            if not ARM_NAME.fullmatch(name) or name in BASELINES:
                raise ValueError(f"{name!r} cannot name an arm: use letters, digits and _ . + - (not a trivial row's name)")
        return imported

    @property
    def all_arms(self) -> tuple[str, ...]:
        """The trained arms, then the imported ones."""
        return (*self.arms, *self.imported)

    @model_validator(mode="after")
    def _entries_name_suite_arms(self) -> Suite:
        if not self.all_arms:
            raise ValueError("no arms: list the arms to train under `arms` (or run directories to decode under `imported`)")
        if both := sorted(set(self.arms) & set(self.imported)):
            raise ValueError(f"imported names {both}, which are also in arms: an imported arm is decoded, not trained; "
                             "rename it or drop it from arms")
        for i, e in enumerate(self.samplers):
            extra = sorted(set(e.arms or ()) - set(self.all_arms))
            if extra:
                raise ValueError(f"samplers.{i}.arms names {extra}, which are not in this suite's arms {list(self.all_arms)}")
        if trained := sorted(set(self.sweep_arms or ()) & set(self.imported)):
            raise ValueError(f"sweep_arms names the imported arm(s) {trained}, which are decoded, not trained; "
                             "list only arms of `arms`")
        if self.imported and self.sweep and self.sweep_arms is None:
            raise ValueError(f"sweep applies to every arm, but the imported arms {list(self.imported)} are not trained; "
                             "list the arms it applies to in sweep_arms")
        if extra := sorted(set(self.sweep_arms or ()) - set(self.arms)):
            raise ValueError(f"sweep_arms names {extra}, which are not in this suite's arms {list(self.arms)}")
        if extra := sorted(set(self.dataset_overrides) - set(self.datasets)):
            raise ValueError(f"dataset_overrides names {extra}, which are not in this suite's datasets "
                             f"{list(self.datasets)}")
        return self


def nested(d: dict[str, Any]) -> dict[str, Any]:
    """``{"model.layers": 2}`` → ``{"model": {"layers": 2}}`` (nested dicts pass through)."""
    out: dict[str, Any] = {}
    for key, val in d.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = nested(val) if isinstance(val, dict) else val
    return out


def check_datasets(suite: Suite, source: str) -> None:
    """Named datasets need a data root that holds them (the embedded ``default`` needs none), and
    every jsonl dataset the files the suite reads: train, valid and the decoded split."""
    for i, name in enumerate(suite.datasets):
        data = nested({**suite.overrides, **suite.dataset_overrides.get(name, {})}).get("data", {})
        root = data.get("data_root") or os.environ.get(DATA_ROOT_ENV)
        if name == "default" or data.get("hf"):
            continue
        folder = Path(name)
        if not folder.is_dir():
            if root is None:
                raise ConfigError(f"{source}: datasets.{i}: {name!r} needs a data root: set ${DATA_ROOT_ENV} (e.g. ../shared/data)")
            folder = Path(root) / name
            if not folder.is_dir():
                known = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
                raise ConfigError(f"{source}: datasets.{i}: no dataset {name!r} under {root}; allowed: ['default', *{known}]")
        check_split_files(folder, suite.decode.split, f"{source}: datasets.{i}")


def check_split_files(folder: Path, decode_split: str, where: str) -> None:
    """``folder`` holds train.jsonl, valid.jsonl and the decoded split (``.jsonl`` or ``.refs.jsonl``)."""
    for split in ("train", "valid"):
        if not (folder / f"{split}.jsonl").is_file():
            raise ConfigError(f"{where}: {folder} has no {split}.jsonl, which training needs; add it")
    if not any((folder / f"{decode_split}{ext}").is_file() for ext in (".jsonl", ".refs.jsonl")):
        fix = "add it" + (" or set decode.split: valid" if decode_split != "valid" else "")
        raise ConfigError(f"{where}: {folder} has no {decode_split}.jsonl, which decode.split: {decode_split} needs; {fix}")


def suite_file(suite: str | Path) -> Path | Traversable:
    """A suite's file: the path itself, or the first ``<name>.yaml`` in the suite folders."""
    path = Path(suite)
    if path.is_file():
        return path
    if found := SUITES.find(str(suite)):
        return found
    raise ConfigError(f"suite {str(suite)!r} not found: no such file, and no {path.name}.yaml in {SUITES.searched()}; "
                      f"suites: {SUITES.names()}")


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file: its schema, arm names and datasets. The specs it implies
    are validated when it is expanded (:func:`bench.plan.make_plan`)."""
    path = suite_file(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a suite must be a mapping of keys (name, preset, arms, seeds, ...)")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), Suite)) from None
    check_datasets(suite, str(path))
    return suite
