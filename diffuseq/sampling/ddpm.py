"""DDPM ancestral sampling over all T steps or a respaced subset (DiffuSeq's decoder).

One step t → t' draws u_{t'} ~ N(c0·û0 + ct·u_t, v) with the posterior coefficients of the
(respaced) step, where v is the step's β = 1 - ᾱ_t/ᾱ_{t'} (``variance: beta``, the official
"fixed large" choice) or the posterior variance β̃ (``variance: posterior``). With ``clamp``, û0
is rounded to the nearest word embedding first (one matmul over target positions per step),
at every step or, with ``clamp_from``, at t ≤ clamp_from only. (The official decode script
clamps at t ≥ clamp_step, ``clamp_first=True``; its default clamp_step = 0 is every step.)
"""

from __future__ import annotations

import math

from torch import Tensor

from diffuseq.sampling.base import Sampler, SamplingContext, register


@register
class DDPM(Sampler):
    name = "ddpm"
    options = ("variance",)

    def coefficients(self, ctx: SamplingContext) -> list[tuple[float, float, float, float, float]]:
        """(t, t', c0, ct, sqrt(v)) of every step, computed once before the chain."""
        out = []
        for t, t_next in ctx.transitions():
            c0, ct, var = self.schedule.posterior(t, t_next)
            if self.spec.variance == "beta":
                var = 1.0 - ctx.alpha_bar(t) / ctx.alpha_bar(t_next)
            out.append((t, t_next, c0, ct, math.sqrt(var)))
        return out

    def run(self, ctx: SamplingContext, u: Tensor) -> Tensor:
        for t, t_next, c0, ct, std in self.coefficients(ctx):
            u0 = ctx.denoise(u, t)
            u = c0 * u0 + ct * u + std * ctx.randn()
            u = ctx.finish_step(u, t, t_next)
        return u
