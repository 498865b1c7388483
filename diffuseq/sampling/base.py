"""The sampler interface and the machinery every sampler shares.

Separation of concerns (as in diffusers): the :class:`~diffuseq.schedule.NoiseSchedule` gives
α, σ, λ; the model enters only as an x0-predictor callable ``predict(z_t, t) -> ẑ0``; a
:class:`Sampler` is one class registered by name that owns the update rule; and a
:class:`SamplingContext` owns everything the update rule should not care about:

- shifted coordinates: on target positions the forward marginal is u_t = α_t·u_0 + σ_t·ε with
  u = z - m, so samplers run the standard VP update rules on u (``spec.shift``; with
  ``shift: false`` the offset is 0, i.e. the process is treated as if m = 0);
- the start point (σ_T·ε or m + σ_T·ε on targets, the clean source elsewhere), with the
  training marginal's fraction γ·σ_T of targets at m under ``discrete_noise: train_matched``;
- the x0 predictions: counted, optionally clamped to the nearest word embedding, with the clean
  source re-imposed;
- after every step: discrete noise (targets replaced by m) and the clean source re-imposed, so
  source positions are exactly the source embeddings throughout;
- candidates: given k generators, the batch is k candidates stacked (k·b rows, candidate-major)
  and candidate j draws all its noise from generator j, with the shapes of a lone pass of b rows,
  so each candidate gets exactly the numbers it would get alone (MBR decodes its candidates as
  one batch this way).

Shapes: B batch (k·b with k candidates of b rows), L sequence length, d embedding size, V vocabulary.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from diffuseq.sampling.grid import CLEAN, time_grid
from diffuseq.sampling.rounding import nearest_ids
from diffuseq.sampling.spec import SAMPLERS, SamplerSpec
from diffuseq.schedule import NoiseSchedule

X0Predictor = Callable[[Tensor, Tensor], Tensor]  # (z_t (B, L, d), t (B,)) → ẑ0 (B, L, d)


class CountingPredictor:
    """Wraps an x0-predictor and counts its calls (the reported NFE is this count)."""

    def __init__(self, predict: X0Predictor):
        self.predict, self.calls = predict, 0

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return self.predict(z, t)


@dataclass(frozen=True)
class Condition:
    """One batch to sample.

    ``x0`` (B, L, d): clean embeddings, read at source positions only; ``mask`` (B, L) bool,
    True on targets; ``m`` (d,) the absorbing state; ``gamma`` the discrete-noise rate of
    training; ``embeddings`` (V, d) the word-embedding table, needed only when clamping.
    """

    x0: Tensor
    mask: Tensor
    m: Tensor
    gamma: float = 0.0
    embeddings: Tensor | None = None


@dataclass(frozen=True)
class SamplerOutput:
    z: Tensor  # (B, L, d) final embeddings (x̂0 read out at t = 0); source positions equal x0
    nfe: int  # model evaluations per sample


class SamplingContext:
    """Shared state of one sampling run; samplers see the state only in shifted coordinates u."""

    def __init__(self, spec: SamplerSpec, schedule: NoiseSchedule, cond: Condition,
                 predict: X0Predictor, generator: torch.Generator | Sequence[torch.Generator]):
        if spec.clamp and cond.embeddings is None:
            raise ValueError("clamp needs the word-embedding table (Condition.embeddings)")
        self.generators = [generator] if isinstance(generator, torch.Generator) else list(generator)
        self.block, rest = divmod(cond.x0.shape[0], len(self.generators))  # rows per candidate
        if rest or not self.block:
            raise ValueError(f"{cond.x0.shape[0]} rows cannot be split into {len(self.generators)} candidates")
        self.spec, self.schedule, self.cond = spec, schedule, cond
        self.predict = predict
        points = spec.steps + (spec.readout == "state")  # a state readout makes the last model call's step too
        self.grid = time_grid(schedule, points, spec.grid, continuous=spec.time == "continuous")
        self.target = cond.mask.bool()[..., None]  # (B, L, 1)
        m = cond.m.to(cond.x0)
        self.offset = (m * self.target) if spec.shift else torch.zeros_like(cond.x0)  # (B, L, d)
        self.m_u = m - self.offset  # m in shifted coordinates, (B, L, d)
        # flat (B·L) indices of each candidate's target positions, for the clamp
        L = cond.mask.shape[1]
        self.target_rows = [rows.flatten().nonzero().squeeze(1) + j * self.block * L
                            for j, rows in enumerate(cond.mask.bool().split(self.block))]

    # -- coordinates and schedule -----------------------------------------------------------
    def to_u(self, z: Tensor) -> Tensor:
        return z - self.offset

    def to_z(self, u: Tensor) -> Tensor:
        return u + self.offset

    def transitions(self) -> list[tuple[float, float]]:
        """(t, t_next) pairs between consecutive grid points; the readout at grid[-1] follows."""
        return list(itertools.pairwise(self.grid))

    def alpha(self, t: float) -> float:
        return 1.0 if t == CLEAN else self.schedule.alpha(t)

    def sigma(self, t: float) -> float:
        return 0.0 if t == CLEAN else self.schedule.sigma(t)

    def alpha_bar(self, t: float) -> float:
        return 1.0 if t == CLEAN else self.schedule.alpha_bar(t)

    def log_snr(self, t: float) -> float:
        return math.inf if t == CLEAN else self.schedule.log_snr(t)

    def randn(self) -> Tensor:
        """ε ~ N(0, I) of the state's shape (B, L, d), each candidate's block from its own generator."""
        x0 = self.cond.x0
        out = torch.empty_like(x0)
        for g, part in zip(self.generators, out.split(self.block), strict=True):
            torch.randn(part.shape, generator=g, out=part)
        return out

    def rand_positions(self) -> Tensor:
        """U(0, 1) per position (B, L), each candidate's block from its own generator."""
        mask = self.cond.mask
        out = torch.empty(mask.shape, device=mask.device)
        for g, part in zip(self.generators, out.split(self.block), strict=True):
            torch.rand(part.shape, generator=g, out=part)
        return out

    # -- the three shared operations ----------------------------------------------------------
    def start(self) -> Tensor:
        """u at t = T-1: σ_T·ε (+ m if ``start: absorbing``) on targets, clean source elsewhere.

        Under ``discrete_noise: train_matched`` a fraction γ·σ_T of the targets start exactly at
        m, as training showed the model at t = T-1.
        """
        T = self.schedule.T
        z = self.sigma(T - 1) * self.randn()
        if self.spec.start == "absorbing":
            z = z + self.cond.m.to(z)
        u = self.to_u(z)
        if self.spec.discrete_noise == "train_matched":
            u = self.absorb(u, self.cond.gamma * self.sigma(T - 1))
        return self.reimpose(u)

    def denoise(self, u: Tensor, t: float) -> Tensor:
        """û0 at timestep t: one model call, clamped if asked, with the clean source."""
        z = self.to_z(u)
        time = torch.full(z.shape[:1], t + self.spec.model_time_offset,
                          dtype=torch.float32 if self.continuous else torch.long, device=z.device)
        z0 = self.predict(z, time)
        if self.spec.clamp and (self.spec.clamp_from is None or t <= self.spec.clamp_from):
            z0 = self.clamp(z0)
        return self.reimpose(self.to_u(z0))

    def finish_step(self, u: Tensor, t: float, t_next: float) -> Tensor:
        """After a step t → t_next: discrete noise at the spec's rate, then the clean source."""
        return self.reimpose(self.absorb(u, self.discrete_noise_rate(t, t_next)))

    # -- helpers ------------------------------------------------------------------------------
    @property
    def continuous(self) -> bool:
        return self.spec.time == "continuous"

    def absorb(self, u: Tensor, rate: float) -> Tensor:
        """Replace each target position by m with probability ``rate`` (discrete noise)."""
        if rate <= 0:
            return u
        hit = self.rand_positions() < rate
        return torch.where(hit[..., None] & self.target, self.m_u, u)

    def discrete_noise_rate(self, t: float, t_next: float) -> float:
        """Probability that a target position is replaced by m after the step t → t_next.

        ``train_matched``: γ·sqrt(1-ᾱ_{t_next}), the training marginal at the new time;
        ``official``: γ·sqrt(β) with β = 1 - ᾱ_t/ᾱ_{t_next} the step's β (the official DDPM's
        γ·sqrt(β_t) at full T). No noise on reaching the clean end.
        """
        rule, gamma = self.spec.discrete_noise, self.cond.gamma
        if rule == "none" or gamma == 0 or t_next == CLEAN:
            return 0.0
        if rule == "train_matched":
            return gamma * self.sigma(t_next)
        return gamma * math.sqrt(1.0 - self.alpha_bar(t) / self.alpha_bar(t_next))

    def reimpose(self, u: Tensor) -> Tensor:
        return torch.where(self.target, u, self.cond.x0)

    def clamp(self, z0: Tensor) -> Tensor:
        """Replace target positions of ẑ0 by their nearest word embedding (DiffuSeq's clamp);
        one search per candidate, over exactly the rows a lone pass would search."""
        emb = self.cond.embeddings.to(z0)
        flat = z0.reshape(-1, z0.shape[-1])
        out = flat.clone()
        for rows in self.target_rows:
            out.index_copy_(0, rows, emb.index_select(0, nearest_ids(flat.index_select(0, rows), emb)))
        return out.view_as(z0)


class Sampler(ABC):
    """A reverse-process sampler; subclasses implement :meth:`run` and register by name."""

    name: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()  # SamplerSpec fields that only this sampler reads

    def __init__(self, spec: SamplerSpec, schedule: NoiseSchedule):
        self.spec, self.schedule = spec, schedule

    @torch.no_grad()
    def sample(self, predict: X0Predictor, cond: Condition, generator: torch.Generator | Sequence[torch.Generator],
               z_T: Tensor | None = None) -> SamplerOutput:
        """Sample target embeddings given the source; ``z_T`` (B, L, d) overrides the start. With
        k generators, ``cond`` holds k candidates stacked (see the module docstring)."""
        counter = CountingPredictor(predict)
        ctx = SamplingContext(self.spec, self.schedule, cond, counter, generator)
        u = ctx.start() if z_T is None else ctx.reimpose(ctx.to_u(z_T))
        u = self.run(ctx, u)
        z = ctx.to_z(u if self.spec.readout == "state" else ctx.denoise(u, ctx.grid[-1]))
        return SamplerOutput(z, counter.calls)

    @abstractmethod
    def run(self, ctx: SamplingContext, u: Tensor) -> Tensor:
        """Take u from t = grid[0] to t = grid[-1] with one model call per grid point but the last."""


S = TypeVar("S", bound=Sampler)


def register(cls: type[S]) -> type[S]:
    """Class decorator: make a sampler available under ``cls.name`` (validation, the CLI and the
    harness read :data:`~diffuseq.sampling.spec.SAMPLERS`); its ``options`` must be
    :class:`SamplerSpec` fields."""
    if unknown := sorted(set(cls.options) - set(SamplerSpec.model_fields)):
        raise TypeError(f"sampler {cls.name!r}: options {unknown} are not SamplerSpec fields")
    SAMPLERS[cls.name] = cls
    return cls


def build_sampler(spec: SamplerSpec, schedule: NoiseSchedule) -> Sampler:
    """The registered sampler ``spec.sampler`` (a :class:`Sampler`: only those register) for ``spec``."""
    return SAMPLERS[spec.sampler](spec, schedule)
