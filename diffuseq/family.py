"""Model families: the smallest interface the training loop and decoding need from a model.

A *family* turns the z layout of :mod:`diffuseq.data` into a trained seq2seq model and back into
tokens: which network, which loss, which decoders. Every family sees a batch the same way,

    ids  (B, L) int64   z = [CLS] x [SEP] [SEP] [CLS] y [SEP] [PAD] …   (fixed L = data.seq_len)
    mask (B, L) int64   1 on the target part [CLS] y [SEP] [PAD] …, 0 on the source,

and answers three questions:

- ``build(tok) -> nn.Module``: the network, randomly initialised (``torch.manual_seed`` first);
- ``losses(model, ids, mask, t) -> dict[str, Tensor]``: per-example terms of shape (B,), with
  ``loss`` the one to minimise (the others are logged);
- ``decode(model, ids, mask, options, generator) -> (tokens (B, L), nfe)``: generated ids in the
  z layout with the source copied unchanged, and the number of network evaluations per batch.

The three families:

=================  =======================================  ============================  ==================
family             network (``build``)                      ``losses``                    samplers (NFE)
=================  =======================================  ============================  ==================
continuous         :class:`~diffuseq.model.Denoiser`        ``training_losses`` (MSE +    ddpm, ddim,
                                                            rounding NLL + prior + reg)   dpm_solver++ (calls)
masked_diffusion   the same Denoiser, fed embedded ids      MDLM weighted masked CE       unmask (K)
ar_transformer     ``BartForConditionalGeneration``         target-token CE               greedy, beam
                                                                                          (decoder steps)
=================  =======================================  ============================  ==================

The continuous family maps onto the interface without changes to its modules
(:class:`ContinuousFamily`): ``build`` is ``train.build_model``, ``losses`` is
``diffusion.training_losses`` with the run's :class:`~diffuseq.diffusion.ForwardProcess`, and
``decode`` is ``sampling.generate.sample_batch`` with the sampler built from the spec.

Timesteps. The training loop draws integer t in [0, T) with the (possibly loss-aware) timestep
sampler and weights the loss by its importance weights. That is meaningful only for a family with
``uses_timesteps = True``; the others ignore ``t`` and draw their own noise level from torch's
global RNG (which the loop reseeds every step, so resume stays exact), and the loop must then
weight every example by 1.

Families are registered by name in :data:`FAMILIES` and imported on first use, so a continuous
run never imports ``transformers``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from diffuseq.config import ConfigError, TrainSpec
from diffuseq.diffusion import ForwardProcess, training_losses
from diffuseq.model import Denoiser
from diffuseq.sampling.base import build_sampler
from diffuseq.sampling.generate import sample_batch
from diffuseq.schedule import NoiseSchedule
from diffuseq.tokenizer import TextTokenizer


class DecodeOptions(Protocol):
    """The decoding fields a family reads; the harness passes a ``SamplerSpec``.

    ``sampler``: a name in the family's ``samplers``; ``steps``: K of ``unmask`` (and the chain
    length of the continuous samplers); ``num_beams``: the beam width of ``beam``.
    """

    sampler: str
    steps: int
    num_beams: int


class Family(ABC):
    """One model family for one :class:`TrainSpec` (see the module docstring)."""

    name: ClassVar[str]
    samplers: ClassVar[tuple[str, ...]]  # the sampler names ``decode`` accepts
    uses_timesteps: ClassVar[bool] = False  # whether ``losses`` reads the loop's t (and its weights apply)

    def __init__(self, spec: TrainSpec):
        self.spec = spec

    @abstractmethod
    def build(self, tok: TextTokenizer) -> nn.Module:
        """The network for this spec and vocabulary, randomly initialised."""

    @abstractmethod
    def losses(self, model: nn.Module, ids: Tensor, mask: Tensor, t: Tensor) -> dict[str, Tensor]:
        """Per-example loss terms, each (B,), for ids and mask (B, L); ``loss`` is minimised."""

    @abstractmethod
    def decode(self, model: nn.Module, ids: Tensor, mask: Tensor, options: DecodeOptions,
               generator: torch.Generator) -> tuple[Tensor, int]:
        """Generated ids (B, L) with the source positions equal to ``ids``, and NFE."""

    def check_sampler(self, sampler: str) -> None:
        """Raise a :class:`ConfigError` unless this family can decode with ``sampler``."""
        if sampler not in self.samplers:
            raise ConfigError(f"sampler {sampler!r} does not decode family {self.name!r}; "
                              f"choose one of {list(self.samplers)}")


class ContinuousFamily(Family):
    """DiffuSeq / DiffuSeq-v2: Gaussian diffusion in embedding space (the existing modules)."""

    name = "continuous"
    samplers = ("ddpm", "ddim", "dpm_solver++")
    uses_timesteps = True

    def __init__(self, spec: TrainSpec):
        super().__init__(spec)
        d = spec.diffusion
        self.process = ForwardProcess(NoiseSchedule(d.schedule, d.steps), d.gamma)

    def build(self, tok: TextTokenizer) -> Denoiser:
        d = self.spec.diffusion
        return Denoiser(self.spec.model, tok.vocab_size, self.spec.data.seq_len, d.absorbing, tok.mask_id)

    def losses(self, model: Denoiser, ids: Tensor, mask: Tensor, t: Tensor) -> dict[str, Tensor]:
        return training_losses(model, self.process, ids, mask, t, self.spec.diffusion.reg_rate)

    def decode(self, model: Denoiser, ids: Tensor, mask: Tensor, options: DecodeOptions,
               generator: torch.Generator) -> tuple[Tensor, int]:
        """``options`` must be a full ``SamplerSpec``: the continuous samplers read all of it."""
        self.check_sampler(options.sampler)
        sampler = build_sampler(options, self.process.schedule)
        return sample_batch(model, sampler, ids, mask, self.spec.diffusion.gamma, generator)


# name → "module:class"; imported on first use by make_family.
FAMILIES: dict[str, str] = {
    "continuous": "diffuseq.family:ContinuousFamily",
    "masked_diffusion": "diffuseq.masked_diffusion:MaskedDiffusionFamily",
    "ar_transformer": "diffuseq.ar_transformer:ARTransformerFamily",
}


def make_family(name: str, spec: TrainSpec) -> Family:
    """The family registered as ``name``, for ``spec``."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; choose one of {sorted(FAMILIES)}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)(spec)
