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


def rounding_nll(model: Denoiser, z0: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """-log softmax(z0·Eᵀ + b)[w] per position: z0 (B, L, d), ids (B, L) → (B, L), float32.

    In float32 this is the plain (B·L, V) logits and ``cross_entropy``. Under bfloat16 autocast
    it is :class:`TiedNLL`: the same quantity with the matrix products in bfloat16 and the
    softmax in float32, computed in chunks of rows without the float32 (B·L, V) tensors.
    """
    device = z0.device.type
    if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16:
        nll = TiedNLL.apply(z0.flatten(0, 1), model.word_emb.weight, model.lm_bias, ids.flatten())
        return nll.view(ids.shape)
    logits = model.logits(z0)
    return F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten(), reduction="none").view(ids.shape)


class TiedNLL(torch.autograd.Function):
    """The rounding NLL of the tied head with bfloat16 matrix products (AMX / tensor cores) and a
    float32 softmax: z (N, d), E (V, d), b (V,) or None, ids (N,) → -log softmax(z·Eᵀ + b)[ids], (N,).

    The forward keeps the (N, V) products z·Eᵀ in bfloat16 (2 bytes per entry; the bias is added
    in float32, in the pass that converts a chunk to float32 for ``cross_entropy``); the backward
    turns them, chunk by chunk, into the gradient G = (softmax - onehot)·g (the softmax
    recomputed by the fused kernel: cheaper than a saved log-sum-exp and separate passes), then dz = G·E and dE = Gᵀ·z are two bfloat16
    products and db = Σ_rows G is summed in float32. No (N, V) float32 tensor is ever held: at
    N = 2048, V = 30522 that is 125 MB instead of the 250 MB each of the logits, their
    log-softmax and its gradient. The backward may run once (it reuses the saved products).
    """

    CHUNK_ELEMENTS = 1 << 21  # float32 scratch per chunk of rows (8 MiB)

    @staticmethod
    def forward(ctx, z: torch.Tensor, emb: torch.Tensor, bias: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
        with torch.autocast(z.device.type, enabled=False):
            zb, eb = z.to(torch.bfloat16), emb.to(torch.bfloat16)
            prod = torch.empty(z.shape[0], emb.shape[0], dtype=torch.bfloat16, device=z.device)
            nll = torch.empty(z.shape[0], device=z.device)
            for rows in TiedNLL._chunks(*prod.shape):
                torch.mm(zb[rows], eb.t(), out=prod[rows])
                nll[rows] = F.cross_entropy(TiedNLL._logits(prod[rows], bias), ids[rows], reduction="none")
        ctx.save_for_backward(zb, eb, bias, ids, prod)
        ctx.z_dtype = z.dtype
        return nll

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        zb, eb, bias, ids, prod = ctx.saved_tensors
        with torch.autocast(zb.device.type, enabled=False):
            grad = grad.float()
            grad_bias = torch.zeros(prod.shape[1], device=prod.device) if bias is not None else None
            for rows in TiedNLL._chunks(*prod.shape):
                g = torch.softmax(TiedNLL._logits(prod[rows], bias), -1)
                g[torch.arange(g.shape[0], device=g.device), ids[rows]] -= 1.0  # - onehot
                g.mul_(grad[rows, None])
                if grad_bias is not None:
                    grad_bias += g.sum(0)
                prod[rows] = g
            grad_z = (prod @ eb).to(ctx.z_dtype) if ctx.needs_input_grad[0] else None
            grad_emb = (prod.t() @ zb).float() if ctx.needs_input_grad[1] else None
        return grad_z, grad_emb, grad_bias, None

    @staticmethod
    def _logits(prod: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """float32 logits of a chunk of bfloat16 products, the bias added in the same pass."""
        return prod.float() if bias is None else torch.add(prod, bias)

    @staticmethod
    def _chunks(n: int, v: int) -> list[slice]:
        rows = max(1, TiedNLL.CHUNK_ELEMENTS // v)
        return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]


def training_losses(
    model: Denoiser,
    process: ForwardProcess,
    ids: torch.Tensor,
    mask: torch.Tensor,
    t: torch.Tensor,
    reg_rate: float = 0.0,
    token_nll: bool = False,
) -> dict[str, torch.Tensor]:
    """DiffuSeq's per-example loss terms for token ids (B, L), target mask (B, L), timesteps (B,).

    - ``mse``: ||f(z_t, t) - z0||² averaged over all positions and dims (at t = 0 the target is
      the noiseless E(w), as in the official code);
    - ``nll``: rounding loss -log p(w | z0) under the tied logits, averaged over positions;
    - ``prior``: ||sqrt(ᾱ_T)·z0||² averaged (the official form; ~1e-4 of the MSE here);
    - ``reg``: reg_rate·||m||₂ for a learned m (0 otherwise);
    - ``loss`` = mse + nll + prior + reg, shape (B,);
    - with ``token_nll``, also ``token_nll``: -log p(w | f(z_t, t)), the model's own prediction
      rounded, averaged over target positions: what the official code logs as ``nll`` (it is not
      part of the loss, so training leaves it off; validation logs it).
    """
    sched = process.schedule
    emb = model.embed(ids)
    z0 = emb + sched.sqrt_one_minus_alpha_bar(torch.zeros_like(t))[:, None, None] * torch.randn_like(emb)
    m = model.absorbing_state()
    z_t = process.q_sample(z0, t, mask, m)
    pred = model(z_t, t, sched.T)
    target = torch.where((t == 0)[:, None, None], emb, z0)
    mse = _mean_flat((pred - target) ** 2)
    nll = rounding_nll(model, z0, ids).mean(1)
    t_last = torch.full_like(t, sched.T - 1)
    prior = _mean_flat((sched.sqrt_alpha_bar(t_last)[:, None, None] * z0) ** 2)
    reg = reg_rate * m.norm(p=2) if model.absorbing == "learned" else mse.new_zeros(())
    terms = {"mse": mse, "nll": nll, "prior": prior, "reg": reg.expand_as(mse), "loss": mse + nll + prior + reg}
    if token_nll:
        terms["token_nll"] = (rounding_nll(model, pred, ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
    return terms
