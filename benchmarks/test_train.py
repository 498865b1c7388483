"""(d) Training step: float32 (old) vs bfloat16 autocast (new), and under bf16 the rounding NLL
as the plain logits + ``cross_entropy`` (old) vs TiedNLL (new), at a BERT-size vocabulary
(30522) and an 8k WordPiece one.

One step = the loss terms (v2: learned m, γ = 0.5, T = 2000), backward, AdamW; PEER-CPU model,
batch 16 (half the old bench_train.py batch, to stay quick), seq_len 64, random ids. Floor: the
denoiser's forward + backward alone (MSE, no rounding NLL, no optimizer), in the new's precision.
"""

from __future__ import annotations

import pytest
import torch
from conftest import BERT_VOCAB, PEER_CPU, WORDPIECE_8K
from old_paths import plain_rounding_nll

from diffuseq import diffusion as diffusion_mod
from diffuseq.diffusion import ForwardProcess, training_losses
from diffuseq.model import Denoiser
from diffuseq.schedule import NoiseSchedule

B, L, T = 16, 64, 2000


def _step_fn(vocab: int, bf16: bool, nll=None):
    torch.manual_seed(0)
    model = Denoiser(PEER_CPU, vocab, L, absorbing="learned").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    process = ForwardProcess(NoiseSchedule("sqrt", T), gamma=0.5)
    g = torch.Generator().manual_seed(0)
    ids, t = torch.randint(5, vocab, (B, L), generator=g), torch.randint(0, T, (B,), generator=g)
    mask = torch.zeros(B, L, dtype=torch.long)
    mask[:, L // 2 :] = 1

    def step():
        opt.zero_grad(set_to_none=True)
        real = diffusion_mod.rounding_nll
        diffusion_mod.rounding_nll = nll or real
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = training_losses(model, process, ids, mask, t, reg_rate=0.01)["loss"].float().mean()
        finally:
            diffusion_mod.rounding_nll = real
        loss.backward()
        opt.step()

    return step


def _bare_fn(vocab: int, bf16: bool):
    torch.manual_seed(0)
    model = Denoiser(PEER_CPU, vocab, L, absorbing="learned").train()
    z, t = torch.randn(B, L, PEER_CPU.embed_dim), torch.randint(0, T, (B,))

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = ((model(z, t, T) - z) ** 2).float().mean()
        loss.backward()

    return step


@pytest.mark.parametrize("vocab", [BERT_VOCAB, WORDPIECE_8K])
def test_train_step_fp32_vs_bf16(compare, vocab):
    compare(f"(d) train step V={vocab}: fp32 (old) vs bf16 autocast (new); floor: bf16 fwd+bwd", {
        "old": _step_fn(vocab, bf16=False), "new": _step_fn(vocab, bf16=True), "floor": _bare_fn(vocab, bf16=True),
    }, unit="step", rounds=3)


@pytest.mark.parametrize("vocab", [BERT_VOCAB, WORDPIECE_8K])
def test_train_step_bf16_nll(compare, vocab):
    compare(f"(d) train step V={vocab}, bf16: plain logits+CE (old) vs TiedNLL (new)", {
        "old": _step_fn(vocab, bf16=True, nll=plain_rounding_nll), "new": _step_fn(vocab, bf16=True),
    }, unit="step", rounds=3)
