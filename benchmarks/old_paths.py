"""The implementations the library had before the speed work, kept here (only here) as the
"old" side of the benchmarks. Each is the plain version of what the library now does faster.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from diffuseq.family import sample_batch
from diffuseq.model import Denoiser
from diffuseq.sampling.grid import time_grid
from diffuseq.schedule import NoiseSchedule

_CHUNK_ELEMENTS = 1 << 23


def plain_best(z: Tensor, emb: Tensor, bias: Tensor | None) -> Tensor:
    """argmax_w z·E_w + b_w in chunks of rows with ATen's (scalar-loop) ``argmax``."""
    rows = max(1, _CHUNK_ELEMENTS // emb.shape[0])
    out = []
    for i in range(0, z.shape[0], rows):
        scores = z[i : i + rows] @ emb.t() if bias is None else torch.addmm(bias, z[i : i + rows], emb.t())
        out.append(scores.argmax(-1))
    return torch.cat(out)


def plain_nearest(z: Tensor, emb: Tensor) -> Tensor:
    """The clamp's search before: argmax of z·Eᵀ - ‖E‖²/2 with plain ``argmax``."""
    return plain_best(z, emb, -0.5 * (emb * emb).sum(-1))


def cdist_nearest(z: Tensor, emb: Tensor) -> Tensor:
    """The textbook nearest embedding: ``cdist(z, E).argmin``, in the same chunks of rows."""
    rows = max(1, _CHUNK_ELEMENTS // emb.shape[0])
    return torch.cat([torch.cdist(z[i : i + rows], emb).argmin(-1) for i in range(0, z.shape[0], rows)])


def per_candidate_mbr(model: Denoiser, sampler, ids: Tensor, mask: Tensor, gamma: float,
                      seeds: list[int]) -> list[Tensor]:
    """MBR candidates before: one full sampling pass per seed."""
    return [sample_batch(model, sampler, ids, mask, gamma, torch.Generator().manual_seed(s))[0] for s in seeds]


@torch.no_grad()
def plain_ddpm_clamp(model: Denoiser, schedule: NoiseSchedule, ids: Tensor, mask: Tensor, steps: int,
                     gen: torch.Generator) -> Tensor:
    """DDPM with clamp (the baseline decoder, variance β, Gaussian start, no discrete noise) as
    it was written before: the posterior computed inside the loop, the clamp by boolean-mask
    indexing and plain ``argmax``, the final rounding by plain ``argmax`` of the logits."""
    T, emb = schedule.T, model.word_emb.weight
    x0, target = model.embed(ids), mask.bool()
    t3 = target[..., None]

    def clamp(z0: Tensor) -> Tensor:
        out = z0.clone()
        out[target] = emb[plain_nearest(z0[target], emb)]
        return torch.where(t3, out, x0)

    z = torch.where(t3, schedule.sigma(T - 1) * torch.randn(x0.shape, generator=gen), x0)
    grid = time_grid(schedule, steps)
    for t, t_next in itertools.pairwise(grid):
        z0 = clamp(model(z, torch.full((ids.shape[0],), t), T))
        c0, ct, _ = schedule.posterior(t, t_next)
        var = 1.0 - schedule.alpha_bar(t) / schedule.alpha_bar(t_next)
        z = torch.where(t3, c0 * z0 + ct * z + math.sqrt(var) * torch.randn(x0.shape, generator=gen), x0)
    z = clamp(model(z, torch.zeros(ids.shape[0], dtype=torch.long), T))
    tokens = plain_best(z.flatten(0, 1), emb, model.lm_bias).view(ids.shape)
    return torch.where(target, tokens, ids)


def plain_rounding_nll(model: Denoiser, z0: Tensor, ids: Tensor) -> Tensor:
    """The rounding NLL before TiedNLL: the (B·L, V) logits (bfloat16 under autocast), cast to
    float32, and ``cross_entropy``."""
    logits = model.logits(z0)
    return F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten(), reduction="none").view(ids.shape)
