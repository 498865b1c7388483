"""Masked (absorbing-state) discrete diffusion on token ids, as MDLM (Sahoo et al., 2024).

The hard [MASK] of the ``hard_mask`` arm taken all the way to discrete space. On the z layout of
:mod:`diffuseq.data` only target positions (mask = 1, the [PAD] tail included) are ever masked;
the source is always clean. Time t ∈ [0, 1], log-linear schedule α_t = 1 - t (the probability
that a target token is still clean), so α'_t = -1.

Forward process, independently per target position ℓ (x the clean ids, m = [MASK]):

    q(z_t^ℓ | x^ℓ) = α_t·δ(x^ℓ) + (1 - α_t)·δ(m)

Network: x_θ(z_t, t) is a distribution over the vocabulary without m (MDLM's SUBS
parameterisation: the [MASK] logit is -inf). It is the :class:`~diffuseq.model.Denoiser` of the
preset with the continuous family's parameter count exactly: masked ids are embedded by E, the
transformer stack predicts ẑ0, and the tied head z·Eᵀ + b gives logits; t enters through the
same sinusoidal embedding, as 1000·t.

Loss, the continuous-time NELBO (MDLM eq. 10), per example with n target positions:

    loss = -α'_t/(1 - α_t) · (1/n) Σ_{ℓ: z_t^ℓ = m} -log x_θ(z_t, t)^ℓ[x^ℓ]
         = (1 / (t·n)) Σ_{ℓ masked} CE_ℓ                     t ~ U(0, 1], low-discrepancy over the batch

its expectation over t and the masking bounds the target's negative log-likelihood per position
(nats). The continuous family's timesteps are not used.

Decoding, ancestral in K steps on the grid t_k = 1 - k/K (k = 0..K): all targets start at m; from
t to s = t - 1/K each still-masked position is unmasked with probability

    (α_s - α_t) / (1 - α_t) = (t - s) / t,

its token sampled from x_θ(z_t, t) (never m). Unmasked tokens and the source never change. The
last step has s = 0 and probability 1, so every target is unmasked there, by sampling as at every
other step (exact ancestral sampling; no argmax). NFE = K.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from diffuseq.config import ConfigError
from diffuseq.family import DecodeOptions, Family
from diffuseq.model import Denoiser
from diffuseq.tokenizer import TextTokenizer


def draw_t(batch: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """Low-discrepancy t ∈ (0, 1], shape (batch,): t_i = 1 - ((u + i/batch) mod 1), u ~ U[0, 1)."""
    u = torch.rand((), device=device, generator=generator)
    return 1.0 - torch.remainder(u + torch.arange(batch, device=device) / batch, 1.0)


def mask_targets(ids: Tensor, mask: Tensor, t: Tensor, mask_id: int,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """z_t ~ q(z_t | x): ids, mask (B, L), t (B,) → z_t (B, L) and ``masked`` (B, L) bool, each
    target position masked with probability 1 - α_t = t."""
    draw = torch.rand(ids.shape, device=ids.device, generator=generator)
    masked = mask.bool() & (draw < t[:, None])
    return torch.where(masked, mask_id, ids), masked


def token_logits(model: Denoiser, z_t: Tensor, t: Tensor) -> Tensor:
    """x_θ's logits (B, L, V) for ids z_t (B, L) at t (B,) in [0, 1]; the [MASK] logit is -inf."""
    logits = model.logits(model(model.embed(z_t), t, 1)).float()  # num_steps = 1: the embedding sees 1000·t
    return logits.index_fill(-1, torch.tensor([model.mask_id], device=logits.device), -torch.inf)


def masked_loss(logits: Tensor, ids: Tensor, mask: Tensor, masked: Tensor, t: Tensor) -> Tensor:
    """(1/(t·n)) Σ_{masked ℓ} CE_ℓ per example, shape (B,); logits (B, L, V), ids, mask, masked
    (B, L), t (B,); n = the number of target positions of the example."""
    ce = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")  # (B, L)
    ce = torch.where(masked, ce, 0.0)  # 0·inf would be nan where a clean token is [MASK]-like
    return ce.sum(1) / (t * mask.sum(1))


@torch.no_grad()
def unmask(model: Denoiser, ids: Tensor, mask: Tensor, steps: int, generator: torch.Generator) -> Tensor:
    """Ancestral unmasking in ``steps`` (K) steps: ids, mask (B, L) → ids (B, L), every target
    sampled, the source copied."""
    masked = mask.bool().clone()
    z = torch.where(masked, model.mask_id, ids)
    for k in range(steps):
        t, s = 1.0 - k / steps, 1.0 - (k + 1) / steps
        logits = token_logits(model, z, torch.full((len(z),), t, device=z.device))
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, device=z.device, generator=generator).clamp_min(1e-20)))
        tokens = (logits + gumbel).argmax(-1)  # a sample of x_θ(z_t, t)
        reveal = masked & (torch.rand(z.shape, device=z.device, generator=generator) < (t - s) / t)
        z = torch.where(reveal, tokens, z)
        masked &= ~reveal
    return z


class MaskedDiffusionFamily(Family):
    """MDLM on the z layout: the preset's Denoiser as x_θ, the loss and sampler above."""

    name = "masked_diffusion"
    samplers = ("unmask",)

    def build(self, tok: TextTokenizer) -> Denoiser:
        if tok.mask_id is None:
            raise ConfigError("family masked_diffusion masks target tokens with [MASK], which this vocabulary lacks; "
                              "use a bert or wordpiece tokenizer")
        return Denoiser(self.spec.model, tok.vocab_size, self.spec.data.seq_len, "none", tok.mask_id)

    def losses(self, model: Denoiser, ids: Tensor, mask: Tensor, t: Tensor) -> dict[str, Tensor]:
        """``loss`` (the NELBO above) and ``masked_frac``, the fraction of targets masked; the
        loop's t is ignored."""
        t = draw_t(len(ids), ids.device)
        z_t, masked = mask_targets(ids, mask, t, model.mask_id)
        loss = masked_loss(token_logits(model, z_t, t), ids, mask, masked, t)
        return {"loss": loss, "masked_frac": masked.sum(1) / mask.sum(1)}

    def decode(self, model: Denoiser, ids: Tensor, mask: Tensor, options: DecodeOptions,
               generator: torch.Generator) -> tuple[Tensor, int]:
        """``unmask`` with K = ``options.steps``; NFE = K."""
        self.check_sampler(options.sampler)
        return unmask(model, ids, mask, options.steps, generator), options.steps

    def forward(self, model: Denoiser, ids: Tensor, mask: Tensor) -> None:
        """x_θ at t = 1/2 with every target masked."""
        token_logits(model, torch.where(mask.bool(), model.mask_id, ids), torch.full((len(ids),), 0.5, device=ids.device))
