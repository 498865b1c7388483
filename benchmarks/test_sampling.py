"""Sampling: MBR candidates stacked vs one pass each, DDPM with clamp per step vs the forward
floor, the clamp's nearest-embedding search, DPM-Solver++ vs its forwards.

Untrained models (timing does not depend on the weights); sources are random ids with the
second half of each row as target.
"""

from __future__ import annotations

import pytest
import torch
from conftest import BERT_VOCAB, PEER_CPU, SMOKE
from old_paths import cdist_nearest, per_candidate_mbr, plain_ddpm_clamp, plain_nearest

from diffuseq.config import load_arm
from diffuseq.family import sample_batch
from diffuseq.model import Denoiser
from diffuseq.sampling import SamplerSpec, build_sampler, nearest_ids
from diffuseq.schedule import NoiseSchedule

T = 2000
DDPM_STEPS = 10  # DDPM-2000's cost per step estimated from a chain respaced to 10 steps
MBR_STEPS = 5  # the MBR chains (the per-step overhead stacking removes does not depend on the count)
B_PEER = 8  # rows per PEER-CPU batch: the ratios hardly depend on it (clamp and forward both scale with it)


def _batch(vocab: int, b: int, L: int):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (b, L), generator=g)
    mask = torch.zeros(b, L, dtype=torch.long)
    mask[:, L // 2 :] = 1
    return ids, mask


def _sampler(arm: str, **over):
    return build_sampler(SamplerSpec(**{**load_arm(arm)["sample"], **over}), NoiseSchedule("sqrt", T))


def _forwards(model, ids, n: int):
    """n denoiser forwards at the batch's shape: the floor of a sampler with NFE n."""
    with torch.inference_mode():
        z = model.embed(ids)
    t = torch.full((ids.shape[0],), T // 2)

    @torch.inference_mode()
    def run():
        for _ in range(n):
            model(z, t, T)

    return run


@pytest.fixture(scope="module")
def smoke_decode():
    """The all_arms suite's baseline decode: smoke model, seq_len 32, batch 64, vocab ~400."""
    torch.manual_seed(0)
    return Denoiser(SMOKE, 400, 32, absorbing="none").eval(), *_batch(400, 64, 32)


@pytest.fixture(scope="module")
def peer():
    """PEER-CPU, BERT vocabulary, seq_len 64, batch B_PEER; baseline (m = 0) and v2 (learned m)."""
    torch.manual_seed(0)
    models = {a: Denoiser(PEER_CPU, BERT_VOCAB, 64, absorbing=a).eval() for a in ("none", "learned")}
    return models, *_batch(BERT_VOCAB, B_PEER, 64)


def test_mbr10(compare, smoke_decode):
    """(a) MBR-10: one pass per candidate (old) vs the 10 candidates as one stacked batch (new);
    floor: the chain's forwards at the stacked batch (640 rows)."""
    model, ids, mask = smoke_decode
    sampler, seeds = _sampler("baseline", steps=MBR_STEPS), list(range(10))
    compare(f"(a) MBR-10, all_arms-suite baseline decoder (DDPM+clamp, {MBR_STEPS} steps), batch 64", {
        "old": lambda: per_candidate_mbr(model, sampler, ids, mask, 0.0, seeds),
        "new": lambda: sample_batch(model, sampler, ids, mask, 0.0, [torch.Generator().manual_seed(s) for s in seeds]),
        "floor": _forwards(model, ids.repeat(10, 1), MBR_STEPS),
    }, unit="batch", rounds=3)


def test_ddpm_clamp_per_step(compare, peer):
    """(b) DDPM-2000 with clamp, per step: the plain chain (old) and the library's (new) against
    one forward per step (floor); from chains respaced to DDPM_STEPS steps (the final rounding
    spread over them)."""
    models, ids, mask = peer
    model, sampler, schedule = models["none"], _sampler("baseline", steps=DDPM_STEPS), NoiseSchedule("sqrt", T)
    compare(f"(b) DDPM-{T}+clamp per step (from {DDPM_STEPS}), PEER-CPU, V={BERT_VOCAB}, batch {B_PEER}", {
        "old": lambda: plain_ddpm_clamp(model, schedule, ids, mask, DDPM_STEPS, torch.Generator().manual_seed(0)),
        "new": lambda: sample_batch(model, sampler, ids, mask, 0.0, torch.Generator().manual_seed(0)),
        "floor": _forwards(model, ids, DDPM_STEPS),
    }, per=DDPM_STEPS, unit="step", rounds=3)


@pytest.fixture(scope="module")
def targets(peer):
    models, ids, mask = peer
    model = models["none"]
    with torch.inference_mode():
        z = model.embed(ids)[mask.bool()] + 0.3 * torch.randn(int(mask.sum()), PEER_CPU.embed_dim)
    return z, model.word_emb.weight.detach()


def test_clamp_search_vs_plain_argmax(compare, targets):
    """The clamp's search: plain argmax of z·Eᵀ - ‖E‖²/2 (old) vs the blocked argmax (new);
    floor: the score matrix alone."""
    z, emb = targets
    assert torch.equal(nearest_ids(z, emb), plain_nearest(z, emb))
    bias = -0.5 * (emb * emb).sum(-1)
    compare(f"(b) clamp search, {len(z)} positions x V={BERT_VOCAB}: plain matmul argmax vs blocked", {
        "old": lambda: plain_nearest(z, emb), "new": lambda: nearest_ids(z, emb),
        "floor": lambda: torch.addmm(bias, z, emb.t()),
    }, unit="step", rounds=7)


def test_clamp_search_vs_cdist(compare, targets):
    z, emb = targets
    compare(f"(b) clamp search, {len(z)} positions x V={BERT_VOCAB}: cdist argmin vs blocked", {
        "old": lambda: cdist_nearest(z, emb), "new": lambda: nearest_ids(z, emb),
    }, unit="step", rounds=7)


def test_dpm_solver_10(compare, peer):
    """(c) DPM-Solver++ 10 steps (the v2 decoder, with the final rounding) vs 10 forwards."""
    models, ids, mask = peer
    model, sampler = models["learned"], _sampler("v2")
    compare(f"(c) DPM-Solver++ 10 steps (v2 decoder), PEER-CPU, V={BERT_VOCAB}, batch {B_PEER}", {
        "new": lambda: sample_batch(model, sampler, ids, mask, 0.5, torch.Generator().manual_seed(0)),
        "floor": _forwards(model, ids, 10),
    }, unit="batch", rounds=3)
