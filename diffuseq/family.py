"""Model families: the smallest interface the training loop and decoding need from a model.

A *family* turns the z layout of :mod:`diffuseq.data` into a trained seq2seq model and back into
tokens: which network, which loss, which decoders. Every family sees a batch the same way,

    ids  (B, L) int64   z = [CLS] x [SEP] [SEP] [CLS] y [SEP] [PAD] …   (fixed L = data.seq_len)
    mask (B, L) int64   1 on the target part [CLS] y [SEP] [PAD] …, 0 on the source,

and answers four questions:

- ``build(tok) -> nn.Module``: the network, randomly initialised (``torch.manual_seed`` first);
- ``losses(model, ids, mask, t) -> dict[str, Tensor]``: per-example terms of shape (B,), with
  ``loss`` the one to minimise (the others are logged);
- ``decode(model, ids, mask, options, generator) -> (tokens (B, L), nfe)``: generated ids in the
  z layout with the source copied unchanged, and the number of network evaluations per batch.
  NFE is a property of the decoding configuration and the batch, never of what the model
  generated: the harness keys its tables by it, so it must be equal across seeds (decoding
  calls ``decoder(model, options)``, the batch decoder built once per configuration: ``decode``
  once per seed's generator, unless the family overrides it, as the continuous one does to
  decode several seeds' candidates as one stacked batch);
- ``forward(model, ids, mask)``: one network evaluation as decoding makes it (the timing pass's
  ``forward``, whose NFE multiple is a sampler's floor).

A family is chosen by ``model.family`` of the :class:`~diffuseq.config.TrainSpec`, part of its
hash; the default ``continuous`` is left out of dumps, so every older key stands. A sampler name
belongs to exactly one family (:data:`~diffuseq.registry.SAMPLER_FAMILIES`); decoding
(:mod:`diffuseq.decode`) asks the model's own family for its decoder (:meth:`Family.decoder`).

The three families:

=================  =======================================  ============================  ==================
family             network (``build``)                      ``losses``                    samplers (NFE)
=================  =======================================  ============================  ==================
continuous         :class:`~diffuseq.model.Denoiser`        ``training_losses`` (MSE +    ddpm, ddim,
                                                            rounding NLL + prior + reg)   dpm_solver++ (calls)
masked_diffusion   the same Denoiser, fed embedded ids      MDLM weighted masked CE       unmask (K)
ar_transformer     ``BartForConditionalGeneration``         target-token CE               greedy, beam (the
                                                                                          decoder-step budget)
=================  =======================================  ============================  ==================

The continuous family maps onto the interface without changes to its modules
(:class:`ContinuousFamily`): ``build`` is the :class:`~diffuseq.model.Denoiser`, ``losses`` is
``diffusion.training_losses`` with the run's :class:`~diffuseq.diffusion.ForwardProcess`, and
``decode`` is :func:`sample_batch` with the sampler built from the spec; its ``decoder`` stacks
k candidates (MBR) into one batch of k·b rows.

Timesteps. The training loop draws integer t in [0, T) with the (possibly loss-aware) timestep
sampler and weights the loss by its importance weights. That is meaningful only for a family with
``uses_timesteps = True``; the others ignore ``t`` and draw their own noise level from torch's
global RNG (which the loop reseeds every step, so resume stays exact), and the loop must then
weight every example by 1 (and leaves a loss-aware timestep sampler untouched).

Validation logs the mean of each term named in ``val_terms`` as ``val_<term>``; ``log_state``
adds the family's own figures (``log_terms``) to the training log's rows: the continuous family's
‖m‖ and embedding norms, which the absorbing-state report reads.

Families are registered by name in :data:`diffuseq.registry.FAMILIES` and imported on first use,
so a continuous run never imports ``transformers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from diffuseq.config import ConfigError, TrainSpec
from diffuseq.diffusion import ForwardProcess, training_losses
from diffuseq.model import Denoiser, state_norms
from diffuseq.registry import FAMILIES, SAMPLER_FAMILIES
from diffuseq.sampling.base import Condition, Sampler, build_sampler
from diffuseq.sampling.rounding import round_to_ids
from diffuseq.sampling.spec import is_continuous, sampler_names
from diffuseq.schedule import NoiseSchedule
from diffuseq.tokenizer import TextTokenizer

Generators = torch.Generator | Sequence[torch.Generator]
# (ids, mask, generator(s)) → (generated ids, NFE) of one batch (:meth:`Family.decoder`)
BatchDecoder = Callable[[Tensor, Tensor, Generators], tuple[Tensor, int]]


class DecodeOptions(Protocol):
    """The decoding fields a family reads; the harness passes a ``SamplerSpec``.

    ``sampler``: a name in the family's ``samplers``; ``steps``: the sampler's size, K of
    ``unmask``, the chain length of the continuous samplers, the beam width of ``beam`` (1 for
    ``greedy``).
    """

    sampler: str
    steps: int


class Family(ABC):
    """One model family for one :class:`TrainSpec` (see the module docstring)."""

    name: ClassVar[str]
    samplers: ClassVar[tuple[str, ...]]  # the sampler names ``decode`` accepts
    uses_timesteps: ClassVar[bool] = False  # whether ``losses`` reads the loop's t (and its weights apply)
    val_terms: ClassVar[tuple[str, ...]] = ("loss",)  # the terms validation averages (``val_<term>``)
    log_terms: ClassVar[tuple[str, ...]] = ()  # what ``log_state`` adds to the training log's rows

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

    def decoder(self, model: nn.Module, options: DecodeOptions) -> BatchDecoder:
        """(ids, mask, generator(s)) → (generated ids, NFE) of one batch: with k generators the
        k candidates (k·b, L), candidate j in rows j·b … (j+1)·b - 1. Here :meth:`decode` once
        per generator."""
        def decode(ids: Tensor, mask: Tensor, gen: Generators) -> tuple[Tensor, int]:
            outs = [self.decode(model, ids, mask, options, g) for g in ([gen] if isinstance(gen, torch.Generator) else gen)]
            return torch.cat([out for out, _ in outs]), outs[0][1]

        return decode

    @abstractmethod
    def forward(self, model: nn.Module, ids: Tensor, mask: Tensor) -> None:
        """One network evaluation on the batch, as one decoding step makes it (for timing)."""

    def log_state(self, model: nn.Module, ema: dict[str, Tensor]) -> dict[str, float]:
        """Figures of the model and its EMA weights for a training log row, named in ``log_terms``."""
        return {}

    def check_sampler(self, sampler: str) -> None:
        """Raise a :class:`ConfigError` unless this family can decode with ``sampler``."""
        if family_of(sampler) != self.name:
            theirs = [s for s in sampler_names() if family_of(s) == self.name]
            raise ConfigError(f"sampler {sampler!r} does not decode family {self.name!r}; choose one of {theirs}")


class ContinuousFamily(Family):
    """DiffuSeq / DiffuSeq-v2: Gaussian diffusion in embedding space (the existing modules)."""

    name = "continuous"
    samplers = ()  # every registered diffuseq.sampling sampler (see family_of)
    uses_timesteps = True
    val_terms = ("loss", "mse", "nll", "token_nll")
    log_terms = ("m_norm", "emb_norm", "m_norm_ema", "emb_norm_ema")

    def __init__(self, spec: TrainSpec):
        super().__init__(spec)
        d = spec.diffusion
        self.process = ForwardProcess(NoiseSchedule(d.schedule, d.steps), d.gamma)

    def build(self, tok: TextTokenizer) -> Denoiser:
        d = self.spec.diffusion
        if d.absorbing == "mask_token" and tok.mask_id is None:
            raise ConfigError(f"diffusion.absorbing mask_token uses the [MASK] row, which the {self.spec.data.tokenizer} "
                              "vocabulary lacks (data.tokenizer); use a bert or wordpiece tokenizer")
        return Denoiser(self.spec.model, tok.vocab_size, self.spec.data.seq_len, d.absorbing, tok.mask_id)

    def losses(self, model: Denoiser, ids: Tensor, mask: Tensor, t: Tensor) -> dict[str, Tensor]:
        """The loss terms; in eval mode (validation) also ``token_nll``, which only the log reads."""
        return training_losses(model, self.process, ids, mask, t, self.spec.diffusion.reg_rate,
                               token_nll=not model.training)

    def decode(self, model: Denoiser, ids: Tensor, mask: Tensor, options: DecodeOptions,
               generator: torch.Generator) -> tuple[Tensor, int]:
        """``options`` must be a full ``SamplerSpec``: the continuous samplers read all of it."""
        return self.decoder(model, options)(ids, mask, generator)

    def decoder(self, model: Denoiser, options: DecodeOptions) -> BatchDecoder:
        """:func:`sample_batch` with the sampler of ``options`` (a full ``SamplerSpec``), built
        once; k generators decode the k candidates as one stacked batch."""
        self.check_sampler(options.sampler)
        sampler = build_sampler(options, self.process.schedule)
        return lambda ids, mask, gen: sample_batch(model, sampler, ids, mask, self.spec.diffusion.gamma, gen)

    def forward(self, model: Denoiser, ids: Tensor, mask: Tensor) -> None:
        """The denoiser at t = T/2 on the embedded batch."""
        T = self.process.schedule.T
        z = model.embed(ids)
        model(z, torch.full((z.shape[0],), T // 2, device=z.device), T)

    def log_state(self, model: Denoiser, ema: dict[str, Tensor]) -> dict[str, float]:
        return state_norms(model, ema)


@torch.inference_mode()
def sample_batch(model: Denoiser, sampler: Sampler, ids: Tensor, mask: Tensor, gamma: float,
                 generator: Generators) -> tuple[Tensor, int]:
    """One batch: ids, mask (b, L) → generated ids (b, L) with the source copied, and NFE.

    With k generators, the batch's k candidates are decoded as one stacked batch and the result
    is (k·b, L), candidate j in rows j·b … (j+1)·b - 1, each equal to a pass with generator j
    alone (time embedding, clamp and rounding run per candidate: see
    :meth:`~diffuseq.model.Denoiser.time_embedding`).
    """
    k, b = (1 if isinstance(generator, torch.Generator) else len(generator)), ids.shape[0]
    ids, mask = ids.repeat(k, 1), mask.bool().repeat(k, 1)
    emb = model.word_emb.weight
    cond = Condition(model.embed(ids), mask, model.absorbing_state(), gamma, emb)
    T = sampler.schedule.T
    out = sampler.sample(lambda z, t: model(z, t, T, time_block=b), cond, generator)
    tokens = torch.cat([round_to_ids(z, emb, sampler.spec.rounding, model.lm_bias) for z in out.z.split(b)])
    return torch.where(mask, tokens, ids), out.nfe


def family_of(sampler: str) -> str | None:
    """The family that decodes with ``sampler``: a registered continuous sampler, or one of
    :data:`SAMPLER_FAMILIES`; None for an unknown name."""
    return "continuous" if is_continuous(sampler) else SAMPLER_FAMILIES.get(sampler)


def make_family(name: str, spec: TrainSpec) -> Family:
    """The family registered as ``name``, for ``spec``."""
    return family_class(name)(spec)


def family_class(name: str) -> type[Family]:
    """The class registered as ``name`` in :data:`~diffuseq.registry.FAMILIES` (imported now)."""
    try:
        return FAMILIES.load(name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_decodes(spec: TrainSpec, sampler: str) -> None:
    """A :class:`ConfigError` unless the family of ``spec`` decodes with ``sampler``."""
    owner = family_of(sampler)
    if owner != spec.model.family:
        theirs = [s for s in sampler_names() if family_of(s) == spec.model.family]
        raise ConfigError(f"sampler {sampler!r} does not decode a model of family {spec.model.family!r}"
                          f"{f' (it decodes {owner!r} models)' if owner else ''}; choose one of {theirs}")


def decodes(spec: TrainSpec, sampler: str) -> bool:
    """Whether the family of ``spec`` decodes with ``sampler``."""
    return family_of(sampler) == spec.model.family
