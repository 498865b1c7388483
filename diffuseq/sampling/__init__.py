"""Samplers for DiffuSeq / DiffuSeq-v2: DDPM, DDIM and DPM-Solver++, rounding, MBR.

A sampler is one class registered by name (:func:`~diffuseq.sampling.base.register`); it sees
the model only as an x0-predictor callable and the schedule only through α, σ, λ.
"""

from diffuseq.sampling import ddim, ddpm, dpm_solver  # noqa: F401  (register the samplers)
from diffuseq.sampling.base import (
    SAMPLERS,
    Condition,
    CountingPredictor,
    Sampler,
    SamplerOutput,
    SamplingContext,
    X0Predictor,
    build_sampler,
    register,
)
from diffuseq.sampling.grid import time_grid
from diffuseq.sampling.rounding import logit_ids, nearest_ids, round_to_ids
from diffuseq.sampling.spec import SamplerSpec, build_sampler_spec

__all__ = [
    "SAMPLERS",
    "Condition",
    "CountingPredictor",
    "Sampler",
    "SamplerOutput",
    "SamplerSpec",
    "SamplingContext",
    "X0Predictor",
    "build_sampler",
    "build_sampler_spec",
    "logit_ids",
    "nearest_ids",
    "register",
    "round_to_ids",
    "time_grid",
]
