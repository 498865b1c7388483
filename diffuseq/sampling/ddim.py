"""DDIM (Song et al. 2021) on a subset of timesteps, with configurable η.

u_{t'} = α_{t'}·û0 + sqrt(1-ᾱ_{t'}-s²)·ε̂ + s·ε with ε̂ = (u_t - α_t·û0)/σ_t and
s = η·sqrt((1-ᾱ_{t'})/(1-ᾱ_t))·sqrt(1-ᾱ_t/ᾱ_{t'}). With η = 0 this is first-order DPM-Solver++.
"""

from __future__ import annotations

import math

from torch import Tensor

from diffuseq.sampling.base import Sampler, SamplingContext, register


@register
class DDIM(Sampler):
    name = "ddim"
    options = ("eta",)

    def run(self, ctx: SamplingContext, u: Tensor) -> Tensor:
        for t, t_next in ctx.transitions():
            u0 = ctx.denoise(u, t)
            ab, ab_next = ctx.alpha_bar(t), ctx.alpha_bar(t_next)
            s = self.spec.eta * math.sqrt((1 - ab_next) / (1 - ab) * (1 - ab / ab_next))
            eps = (u - ctx.alpha(t) * u0) / ctx.sigma(t)
            u = ctx.alpha(t_next) * u0 + math.sqrt(1 - ab_next - s * s) * eps
            if s > 0:
                u = u + s * ctx.randn()
            u = ctx.finish_step(u, t, t_next)
        return u
