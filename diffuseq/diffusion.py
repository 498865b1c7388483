"""The forward process with an absorbing state and discrete noise, and DiffuSeq's training loss.

On target positions (mask = 1), with absorbing state m (m = 0 for DiffuSeq):

    z_t = sqrt(ᾱ_t)·(z0 - m) + sqrt(1-ᾱ_t)·ε + m,     ε ~ N(0, I)

then, with discrete noise rate γ, each target position is independently replaced by m with
probability γ·sqrt(1-ᾱ_t). Source positions (mask = 0) always keep z0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffuseq.model import Denoiser
from diffuseq.schedule import NoiseSchedule


def _bcast(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Append singleton dims to a (B,) tensor so it broadcasts against ``like``."""
    return x.view(*x.shape, *([1] * (like.dim() - x.dim())))


class ForwardProcess:
    """q(z_t | z0) on target positions, towards absorbing state m, with discrete noise rate γ."""

    def __init__(self, schedule: NoiseSchedule, gamma: float = 0.0):
        self.schedule, self.gamma = schedule, gamma

    def discrete_noise_rate(self, t: torch.Tensor) -> torch.Tensor:
        """γ·sqrt(1-ᾱ_t): probability that a target position is replaced by m, shape of t."""
        return self.gamma * self.schedule.sqrt_one_minus_alpha_bar(t)

    def q_sample(
        self,
        z0: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor,
        m: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z0 (B, L, d), t (B,), mask (B, L) with 1 on targets, m (d,) → z_t (B, L, d)."""
        noise = torch.randn_like(z0) if noise is None else noise
        m = torch.zeros_like(z0[0, 0]) if m is None else m
        a = _bcast(self.schedule.sqrt_alpha_bar(t), z0)
        s = _bcast(self.schedule.sqrt_one_minus_alpha_bar(t), z0)
        z_t = a * (z0 - m) + s * noise + m
        if self.gamma > 0:
            rate = _bcast(self.discrete_noise_rate(t), mask).expand(mask.shape)
            hit = torch.bernoulli(rate).bool()
            z_t = torch.where(hit[..., None], m.expand_as(z_t), z_t)
        return torch.where(mask[..., None].bool(), z_t, z0)


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)


def training_losses(
    model: Denoiser,
    process: ForwardProcess,
    ids: torch.Tensor,
    mask: torch.Tensor,
    t: torch.Tensor,
    reg_rate: float = 0.0,
) -> dict[str, torch.Tensor]:
    """DiffuSeq's per-example loss terms for token ids (B, L), target mask (B, L), timesteps (B,).

    - ``mse``: ||f(z_t, t) - z0||² averaged over all positions and dims (at t = 0 the target is
      the noiseless E(w), as in the official code);
    - ``nll``: rounding loss -log p(w | z0) under the tied logits, averaged over positions;
    - ``prior``: ||sqrt(ᾱ_T)·z0||² averaged (the official form; ~1e-4 of the MSE here);
    - ``reg``: reg_rate·||m||₂ for a learned m (0 otherwise);
    - ``loss`` = mse + nll + prior + reg, shape (B,).
    The model's own token NLL is not computed: the official code only logs it.
    """
    sched = process.schedule
    emb = model.embed(ids)
    z0 = emb + sched.sqrt_one_minus_alpha_bar(torch.zeros_like(t))[:, None, None] * torch.randn_like(emb)
    m = model.absorbing_state()
    z_t = process.q_sample(z0, t, mask, m)
    pred = model(z_t, t, sched.T)
    target = torch.where((t == 0)[:, None, None], emb, z0)
    mse = _mean_flat((pred - target) ** 2)
    logits = model.logits(z0)
    nll = F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten(), reduction="none").view(ids.shape).mean(1)
    t_last = torch.full_like(t, sched.T - 1)
    prior = _mean_flat((sched.sqrt_alpha_bar(t_last)[:, None, None] * z0) ** 2)
    reg = reg_rate * m.norm(p=2) if model.absorbing == "learned" else mse.new_zeros(())
    return {"mse": mse, "nll": nll, "prior": prior, "reg": reg.expand_as(mse), "loss": mse + nll + prior + reg}
