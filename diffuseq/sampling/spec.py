"""The sampler spec: every decoding choice, including each official-code behaviour, is a field.

An arm file's ``sample:`` section validates as a :class:`SamplerSpec`; so do ``--set key=value``
overrides of ``diffuseq sample``. Errors name the field and the allowed values.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal, Protocol

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from diffuseq.config import ConfigError, Spec, format_validation_error
from diffuseq.registry import SAMPLER_FAMILIES

# The fields every decoder reads; the others configure only the continuous samplers.
COMMON_FIELDS = ("sampler", "steps", "mbr")


class Registered(Protocol):
    """A registered sampler class (:class:`~diffuseq.sampling.base.Sampler`) as validation sees it."""

    name: ClassVar[str]
    options: ClassVar[tuple[str, ...]]  # SamplerSpec fields that only this sampler reads


# The continuous samplers by name, filled by :func:`diffuseq.sampling.base.register`. This module
# is imported only through its package, whose ``__init__`` first imports (registers) the built-ins.
SAMPLERS: dict[str, type[Registered]] = {}


def samplers() -> dict[str, type[Registered]]:
    """The registered samplers by name (:func:`diffuseq.sampling.base.register`): the one list
    that validation and the CLI's choices read."""
    return SAMPLERS


def sampler_names() -> list[str]:
    """Every decoder name: the registered continuous samplers, then those of the other model
    families (``unmask``, ``greedy``, ``beam``; :data:`diffuseq.registry.SAMPLER_FAMILIES`)."""
    continuous = list(samplers())
    return continuous + [s for s in SAMPLER_FAMILIES if s not in continuous]


def is_continuous(name: str) -> bool:
    """Whether ``name`` is a sampler of the continuous family (a registered :class:`Sampler`)."""
    return name in samplers()


def sampler_only_fields() -> dict[str, str]:
    """Field → the sampler that alone reads it (each sampler class's ``options``): setting it for
    another sampler is a mistake."""
    return {field: name for name, cls in samplers().items() for field in cls.options}


class SamplerSpec(Spec):
    """How to decode a trained model (docs/design.md §1-§2). Defaults are the full DiffuSeq-v2 arm."""

    later_fields: ClassVar[tuple[str, ...]] = ("readout", "model_time_offset")

    sampler: str = Field("dpm_solver++", description="a registered decoder: ddpm (ancestral), ddim, or dpm_solver++ "
                         "(multistep, data prediction); unmask (masked_diffusion); greedy or beam (ar_transformer)")
    steps: int = Field(10, ge=1, description="model evaluations per sample (NFE); ddpm with steps = T is the full chain; "
                       "unmask: K; beam: the beam width (greedy: 1)")
    grid: Literal["time_uniform", "logSNR"] = Field(
        "time_uniform", description="integer timesteps from T-1 to 0, evenly spaced in t or in λ = log(α/σ)"
    )
    time: Literal["discrete", "continuous"] = Field(
        "discrete", description="dpm_solver++: integer training timesteps, or fractional ones with log α interpolated"
    )
    clamp: bool = Field(False, description="round each x̂0 prediction to its nearest word embedding (DiffuSeq's clamp)")
    clamp_from: int | None = Field(
        None, ge=0, description="clamp only at timesteps t ≤ clamp_from (sampling runs from T-1 down); None: every step"
    )
    eta: float = Field(0.0, ge=0.0, description="ddim: 0 = deterministic, 1 = DDPM-like noise")
    variance: Literal["beta", "posterior"] = Field(
        "beta", description="ddpm step variance: β of the step (the official 'fixed large') or the posterior β̃"
    )
    order: Literal[1, 2, 3] = Field(2, description="dpm_solver++ multistep order")
    lower_order_final: bool = Field(True, description="dpm_solver++: lower the order over the last steps")
    start: Literal["gaussian", "absorbing"] = Field(
        "absorbing", description="target positions start at σ_T·ε (gaussian) or at m + σ_T·ε (absorbing)"
    )
    shift: bool = Field(True, description="reverse process towards m: solve in u = z - m on targets (False: as if m = 0)")
    discrete_noise: Literal["train_matched", "official", "none"] = Field(
        "train_matched",
        description="after each step replace targets by m w.p. γ·sqrt(1-ᾱ_t') (train_matched, t' the new time) "
        "or γ·sqrt(β) of the step (official DDPM code); none: never",
    )
    overwrite_state: bool = Field(
        False, description="dpm_solver++: after each model call replace the state by x̂0 (the official v2 multistep loop)"
    )
    rounding: Literal["logits", "nearest"] = Field("logits", description="final embeddings → tokens: argmax of tied logits, or nearest embedding")
    mbr: int = Field(1, ge=1, description="MBR over this many samples (seeds) per source; 1 = no MBR")
    readout: Literal["x0", "state"] = Field(
        "x0", description="the output: x̂0 read out at t = 0 after the last grid point (x0), or, on a grid of steps + 1 "
        "points, the state the sampler reaches at t = 0 (state: the official DPM-Solver script)")
    model_time_offset: int = Field(
        0, ge=0, le=1, description="added to the timestep the model is fed, not to the noise level used: 1 is the "
        "official DPM-Solver script's off-by-one (it feeds t·1000 for t ∈ [1/T, 1])")

    def key(self) -> str:
        """Content hash (8 hex chars): equal keys ⇒ the same decoding."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]

    def short_name(self) -> str:
        """``sampler-steps`` with the choices that set it apart, e.g. ``ddpm-100 clamp``."""
        parts = [f"{self.sampler}-{self.steps}"]
        parts += ["clamp"] * self.clamp + ["continuous"] * (self.time == "continuous") + ["overwrite"] * self.overwrite_state
        parts += [] if self.start == "absorbing" else ["gaussian start"]
        parts += ["state readout"] * (self.readout == "state") + ["t+1"] * self.model_time_offset
        return " ".join(parts)

    @field_validator("sampler")
    @classmethod
    def _registered(cls, name: str) -> str:
        known = sampler_names()
        if name not in known:
            choices = ", ".join(map(repr, known[:-1])) + f" or {known[-1]!r}"
            raise PydanticCustomError("sampler", "Input should be {choices}", {"choices": choices})
        return name

    @model_validator(mode="before")
    @classmethod
    def _greedy_has_one_beam(cls, raw: Any) -> Any:
        """``greedy`` without ``steps`` means steps = 1 (its one beam), not the default 10."""
        if isinstance(raw, dict) and raw.get("sampler") == "greedy" and "steps" not in raw:
            return {**raw, "steps": 1}
        return raw

    @model_validator(mode="after")
    def _fields_match_sampler(self) -> SamplerSpec:
        if not is_continuous(self.sampler):
            if extra := sorted(set(self.model_fields_set) - set(COMMON_FIELDS)):
                raise ValueError(f"{extra} apply only to the continuous samplers {list(samplers())}, "
                                 f"not to {self.sampler!r}; leave them out")
            if self.sampler == "greedy" and self.steps != 1:
                raise ValueError(f"greedy decodes with one beam: steps (the beam width) must be 1, got {self.steps}; "
                                 "use sampler: beam for more")
        for name, owner in sampler_only_fields().items():
            if name in self.model_fields_set and self.sampler != owner:
                raise ValueError(f"{name} applies only to sampler {owner!r}, not {self.sampler!r}")
        if self.clamp_from is not None and not self.clamp:
            raise ValueError("clamp_from is set but clamp is false; set clamp: true")
        if self.sampler == "dpm_solver++" and self.steps < self.order:
            raise ValueError(f"steps ({self.steps}) must be ≥ order ({self.order}) for dpm_solver++")
        return self


def overlay(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base`` (e.g. flags on an arm's sample section); when ``over`` switches
    the sampler, ``base`` fields that the new one does not read are dropped."""
    new = over.get("sampler", base.get("sampler"))
    if new != base.get("sampler"):
        only = sampler_only_fields()
        base = {k: v for k, v in base.items() if only.get(k, new) == new
                and (is_continuous(new) or k in COMMON_FIELDS)}
    return {**base, **over}


def build_sampler_spec(raw: dict[str, Any], source: str = "command line") -> SamplerSpec:
    """Validate a raw mapping; a bad key or value raises :class:`ConfigError` naming field and choices."""
    try:
        return SamplerSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, SamplerSpec)) from None
