"""The transformer denoiser f(z_t, t) → ẑ0 (docs/design.md §1), with tied word embeddings.

Shapes: B batch, L sequence length, d embedding size (diffusion space), H hidden size, V vocab.
The encoder is a post-LayerNorm BERT stack written with ``scaled_dot_product_attention``; as in
DiffuSeq there is no attention mask (padding is part of the target and is denoised too).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffuseq.config import ModelSpec


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class BertLayer(nn.Module):
    """Self-attention and feed-forward blocks, each followed by residual + LayerNorm (BERT)."""

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ff = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, L, H) → (B, L, H)
        B, L, H = h.shape
        q, k, v = self.qkv(h).view(B, L, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        h = self.ln1(h + self.drop(self.attn_out(a.transpose(1, 2).reshape(B, L, H))))
        return self.ln2(h + self.drop(self.ff(h)))


class Denoiser(nn.Module):
    """Predicts clean embeddings ẑ0 from noisy ones z_t; also owns E (V×d), the output bias b (V,)
    and the absorbing state m.

    ``absorbing``: ``none`` or ``zero`` (m = 0), ``learned`` (a free d-vector) or ``mask_token``
    (m is the embedding row of [MASK], so it is trained as part of E).
    """

    def __init__(self, spec: ModelSpec, vocab_size: int, seq_len: int, absorbing: str = "none", mask_id: int | None = None):
        super().__init__()
        d, H = spec.embed_dim, spec.hidden
        self.spec, self.absorbing, self.mask_id = spec, absorbing, mask_id
        self.word_emb = nn.Embedding(vocab_size, d)  # N(0, 1) init, as the official code
        self.lm_bias = nn.Parameter(torch.zeros(vocab_size)) if spec.head_bias else None
        if absorbing == "learned":
            self.m = nn.Parameter(torch.randn(d) * d**-0.5)
        elif absorbing == "mask_token" and mask_id is None:
            raise ValueError("absorbing='mask_token' needs the tokenizer's [MASK] id")
        self.time_mlp = nn.Sequential(nn.Linear(spec.time_embed_dim, 4 * spec.time_embed_dim), nn.SiLU(), nn.Linear(4 * spec.time_embed_dim, H))
        # d → H and back; a PLM-initialised model (d = H) has neither, as the official one
        plm = spec.init == "plm"
        self.in_proj = nn.Identity() if plm else nn.Sequential(nn.Linear(d, H), nn.Tanh(), nn.Linear(H, H))
        self.pos_emb = nn.Embedding(seq_len, H)
        self.ln = nn.LayerNorm(H, eps=1e-12)
        self.drop = nn.Dropout(spec.dropout)
        self.layers = nn.ModuleList(BertLayer(H, spec.heads, spec.ffn, spec.dropout) for _ in range(spec.layers))
        self.out_proj = nn.Identity() if plm else nn.Sequential(nn.Linear(H, H), nn.Tanh(), nn.Linear(H, d))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L) → embeddings E(w) (B, L, d)."""
        return self.word_emb(ids)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Tied output head: (B, L, d) → (B, L, V) = z · Eᵀ + b."""
        if self.lm_bias is None:
            return z @ self.word_emb.weight.t()
        return torch.addmm(self.lm_bias, z.flatten(0, -2), self.word_emb.weight.t()).view(*z.shape[:-1], -1)

    def absorbing_state(self) -> torch.Tensor:
        """m, shape (d,): zeros (``none``, ``zero``), the learned vector, or E[[MASK]]."""
        if self.absorbing == "learned":
            return self.m
        if self.absorbing == "mask_token":
            return self.word_emb.weight[self.mask_id]
        return self.word_emb.weight.new_zeros(self.spec.embed_dim)

    def absorbing_state_in(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """m, shape (d,), as held in a state dict of this model's weights (e.g. the EMA)."""
        if self.absorbing == "learned":
            return weights["m"]
        if self.absorbing == "mask_token":
            return weights["word_emb.weight"][self.mask_id]
        return torch.zeros(self.spec.embed_dim)

    def time_embedding(self, t: torch.Tensor, num_steps: int, block: int | None = None) -> torch.Tensor:
        """Timesteps t (B,) → (B, H), rescaled to [0, 1000) before the sinusoidal embedding, as in
        DiffuSeq.

        With ``block``, computed separately on each block of ``block`` rows. A stacked batch of
        k candidates (k·b rows, :func:`diffuseq.family.sample_batch`) then gets, bit for
        bit, the values of k separate passes of b rows: matrix products with fewer than ~16 rows
        take other kernels in MKL, and the tail of a vectorised ``sin``/``cos`` is computed by
        scalar code, so these (B,)-sized operations are not batch-invariant on their own.
        """
        if block is not None and block < t.shape[0]:
            return torch.cat([self.time_embedding(part, num_steps) for part in t.split(block)])
        return self.time_mlp(timestep_embedding(t.float() * (1000.0 / num_steps), self.spec.time_embed_dim))

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, num_steps: int, time_block: int | None = None) -> torch.Tensor:
        """z_t (B, L, d), integer (or fractional) timesteps t (B,) in [0, T) → ẑ0 (B, L, d);
        ``time_block``: see :meth:`time_embedding`."""
        L = z_t.shape[1]
        temb = self.time_embedding(t, num_steps, time_block)
        h = self.in_proj(z_t) + self.pos_emb.weight[:L][None] + temb[:, None]
        h = self.drop(self.ln(h))
        for layer in self.layers:
            h = layer(h)
        return self.out_proj(h)


@torch.no_grad()
def state_norms(model: Denoiser, ema: dict[str, torch.Tensor]) -> dict[str, float]:
    """‖m‖ and the mean norm of the word-embedding rows, of the trained and of the EMA weights
    (the EMA ones are decoded): ``m_norm``, ``emb_norm``, ``m_norm_ema``, ``emb_norm_ema``."""
    out = {}
    for suffix, emb, m in (("", model.word_emb.weight, model.absorbing_state()),
                           ("_ema", ema["word_emb.weight"], model.absorbing_state_in(ema))):
        out[f"m_norm{suffix}"] = m.norm().item()
        out[f"emb_norm{suffix}"] = emb.norm(dim=1).mean().item()
    return out
