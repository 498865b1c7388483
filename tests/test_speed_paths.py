"""The fast paths of sampling and training against references computed another way.

- MBR candidates decoded as one stacked batch against one pass per seed;
- the blocked argmax against ``torch.argmax`` (ties, NaN, a vocabulary not divisible by the block);
- the clamp against a brute-force ``cdist`` argmin;
- DDPM's precomputed coefficients against the posterior written out per step;
- :class:`~diffuseq.diffusion.TiedNLL` (bfloat16 products, float32 softmax) against float32
  ``cross_entropy`` on the tied logits, forward and backward, and the training loss under
  bfloat16 autocast.

The sampling tests use a vocabulary of 1300 words so the blocked argmax really runs blocked
(it falls back to ``argmax`` below two blocks of 512) and its last block is short.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffuseq import diffusion as diffusion_mod
from diffuseq.config import DiffusionSpec, ModelSpec, TrainSpec
from diffuseq.decode import Decoding
from diffuseq.diffusion import ForwardProcess, TiedNLL, rounding_nll, training_losses
from diffuseq.model import Denoiser
from diffuseq.sampling import SamplerSpec
from diffuseq.sampling.base import Condition, SamplingContext
from diffuseq.sampling.ddpm import DDPM
from diffuseq.sampling.mbr import mbr_rows
from diffuseq.sampling.rounding import argmax_rows
from diffuseq.schedule import NoiseSchedule

V = 1300  # two full blocks of 512 and a short one of 276


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    spec = ModelSpec(layers=1, hidden=32, heads=2, ffn=64, embed_dim=16, time_embed_dim=16, dropout=0.0)
    return Denoiser(spec, vocab_size=V, seq_len=10, absorbing="learned").eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (7, 10), generator=g)
    mask = torch.zeros(7, 10, dtype=torch.long)
    mask[:, 4:] = 1
    mask[2, 2:] = 1
    return ids, mask


# -- MBR: stacked candidates vs one pass per seed -------------------------------------------------

@pytest.mark.parametrize("sampler", [
    dict(sampler="ddpm", steps=6, clamp=True, start="gaussian", discrete_noise="none"),  # the clamp, per candidate
    dict(sampler="dpm_solver++", steps=4),
])
def test_mbr_candidates_stacked_equal_one_pass_per_seed(model, batch, sampler):
    """Decoding.batches with k seeds (one stacked batch of k·b rows per batch) must give each seed
    the tokens of Decoding.batches with that seed alone, bit for bit, over batches 3, 3, 1 (a short
    last batch); so the MBR choice over the candidates is the same too."""
    ids, mask = batch
    diffusion, spec, seeds = DiffusionSpec(steps=200, absorbing="learned", gamma=0.5), SamplerSpec(**sampler), [4, 9, 2]
    dec = Decoding(model, tok=None, train=TrainSpec(diffusion=diffusion), spec=spec, batch_size=3)  # batches() reads no text
    stacked = list(dec.batches(ids, mask, seeds))
    alone = {s: list(dec.batches(ids, mask, s)) for s in seeds}
    assert [b.ids.shape for b in stacked] == [(3, 3, 10), (3, 3, 10), (3, 1, 10)]
    for j, s in enumerate(seeds):
        for b_stacked, b_alone in zip(stacked, alone[s], strict=True):
            assert torch.equal(b_stacked.ids[j], b_alone.ids[0]), (s, b_stacked.index)
    per_seed = [torch.cat([b.ids[0] for b in alone[s]]) for s in seeds]
    assert not torch.equal(per_seed[0], per_seed[1])  # the seeds really give different candidates
    together = [torch.cat([b.ids[j] for b in stacked]) for j in range(len(seeds))]

    def rows(cands):  # each candidate's target words as text, the rows mbr_rows chooses among
        return {s: [{"recover": " ".join(f"w{i}" for i in r[m.bool()].tolist())} for r, m in zip(c, mask, strict=True)]
                for s, c in zip(seeds, cands, strict=True)}

    assert mbr_rows(rows(together)) == mbr_rows(rows(per_seed))


# -- blocked argmax -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("words", [1024, 1300, 2049, 30522])
def test_blocked_argmax_equals_argmax_on_constructed_ties(dtype, words):
    """Rows built so the first maximum is in each awkward place: everywhere equal, ties across
    blocks (the earlier block must win), the maximum alone in the short last block, a tie
    inside the short last block, -inf everywhere but one word, integer-valued random rows."""
    g = torch.Generator().manual_seed(words)
    rows = [torch.zeros(words), torch.full((words,), -math.inf)]
    for a, b in [(700, 5), (3, words - 1), (words - 2, words - 1), (511, 512), (1023, 1024 % words)]:
        r = torch.randn(words, generator=g)
        r[a] = r[b] = 10.0
        rows.append(r)
    r = torch.full((words,), -math.inf)
    r[words - 1] = 0.0
    rows.append(r)
    rows.extend(torch.randint(-3, 4, (words,), generator=g).float() for _ in range(8))
    s = torch.stack(rows).to(dtype)
    assert torch.equal(argmax_rows(s), s.argmax(-1))
    assert argmax_rows(s)[0] == 0 and argmax_rows(s)[1] == 0


# -- the clamp ------------------------------------------------------------------------------------

def test_clamp_is_the_brute_force_nearest_embedding(model, batch):
    """SamplingContext.clamp (row indices, the -‖E‖²/2 expansion, blocked argmax; one search per
    stacked candidate) against ``cdist(z, E).argmin`` on every target position, in float64 so
    no near-tie can flip between the two ways of computing distances; source rows untouched."""
    ids, mask = batch
    emb = model.word_emb.weight.detach().double()
    k = 3
    x0 = emb[ids.repeat(k, 1)]
    cond = Condition(x0, mask.bool().repeat(k, 1), torch.zeros(16, dtype=torch.float64), 0.0, emb)
    spec = SamplerSpec(sampler="ddpm", steps=5, clamp=True)
    ctx = SamplingContext(spec, NoiseSchedule("sqrt", 200), cond, lambda z, t: z,
                          [torch.Generator().manual_seed(s) for s in range(k)])
    z0 = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 1.5
    out = ctx.clamp(z0)
    target = cond.mask
    nearest = torch.cdist(z0[target], emb).argmin(-1)
    assert torch.equal(out[target], emb[nearest])
    assert torch.equal(out[~target], z0[~target])
    assert len(set(nearest.tolist())) > 50  # many different words, not one degenerate answer


# -- DDPM coefficients ----------------------------------------------------------------------------

@pytest.mark.parametrize("variance", ["beta", "posterior"])
@pytest.mark.parametrize(("T", "steps"), [(200, 200), (2000, 20), (2000, 7)])
def test_ddpm_coefficients_equal_the_posterior_formula_per_step(variance, T, steps):
    """Each precomputed (t, t', c0, ct, std) against q(x_t' | x_t, x0) written from ᾱ alone:
    with α = ᾱ_t/ᾱ_t' and β = 1 - α (the respaced step), c0 = √ᾱ_t'·β/(1-ᾱ_t),
    ct = √α·(1-ᾱ_t')/(1-ᾱ_t), std² = β ("beta") or β·(1-ᾱ_t')/(1-ᾱ_t) ("posterior")."""
    schedule = NoiseSchedule("sqrt", T)
    spec = SamplerSpec(sampler="ddpm", steps=steps, clamp=False, variance=variance)
    x0 = torch.zeros(1, 4, 2)
    ctx = SamplingContext(spec, schedule, Condition(x0, torch.ones(1, 4, dtype=torch.bool), torch.zeros(2)),
                          lambda z, t: z, torch.Generator())
    coefs = DDPM(spec, schedule).coefficients(ctx)
    ab = np.asarray(schedule.alphas_cumprod, dtype=np.float64)
    grid = [int(t) for t in np.rint(np.linspace(T - 1, 0, steps))]  # time_uniform; then the readout at t = 0
    assert [(c[0], c[1]) for c in coefs] == list(itertools.pairwise(grid))
    for t, t_next, c0, ct, std in coefs:
        ab_t, ab_next = ab[t], ab[t_next]
        alpha = ab_t / ab_next
        beta = 1.0 - alpha
        expect_var = beta if variance == "beta" else beta * (1.0 - ab_next) / (1.0 - ab_t)
        assert c0 == pytest.approx(math.sqrt(ab_next) * beta / (1.0 - ab_t), rel=1e-12, abs=1e-300)
        assert ct == pytest.approx(math.sqrt(alpha) * (1.0 - ab_next) / (1.0 - ab_t), rel=1e-12, abs=1e-300)
        assert std == pytest.approx(math.sqrt(expect_var), rel=1e-12, abs=1e-300)


# -- TiedNLL ----------------------------------------------------------------------------------------
# Tolerances. bfloat16 keeps 8 significant bits: rounding z and E and then the float32-accumulated
# product each add a relative error of at most u = 2⁻⁹, so a logit z·E_w is off by at most
# δ_w ≤ 3u·Σ_i |z_i E_wi| (first order; the bias is added in float32). The NLL lse - logit_w
# moves by at most 2·max_w δ_w: that is the per-row bound the forward is checked against. The
# softmax p inherits relative errors ≤ 2·max δ (≈ 1e-2 at these magnitudes), and the gradient
# G = p - onehot is stored in bfloat16 (u again) and multiplied by bfloat16 E or z (u, and u on
# the result): per entry ≲ 2·max δ + 3u. Rounding errors of independent terms mostly cancel in
# the sums, so the gradients are checked in relative Frobenius norm against 2·max δ + 3u, which
# the data makes ~4e-2 while the measured errors are ~2.5e-3 (about u: G stored in bfloat16).

def _reference(z, emb, bias, ids):
    z, emb = z.detach().clone().requires_grad_(), emb.detach().clone().requires_grad_()
    bias = None if bias is None else bias.detach().clone().requires_grad_()
    logits = z @ emb.t() + (0 if bias is None else bias)
    return z, emb, bias, F.cross_entropy(logits, ids, reduction="none")


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("with_bias", [True, False])
def test_tied_nll_matches_float32_cross_entropy(with_bias, monkeypatch):
    monkeypatch.setattr(TiedNLL, "CHUNK_ELEMENTS", 37 * 3000)  # 37 rows per chunk: 9 chunks, the last short
    g = torch.Generator().manual_seed(0)
    n, words, d = 300, 3000, 64
    z = torch.randn(n, d, generator=g) * 0.25  # logits up to ~2, as z0·E of a trained model's ~unit embeddings
    emb = torch.randn(words, d, generator=g) * 0.15
    bias = torch.randn(words, generator=g) if with_bias else None
    ids = torch.randint(0, words, (n,), generator=g)
    ids[: n // 2] = (z[: n // 2] @ emb.t()).argmax(-1)  # half the rows near a confident answer
    upstream = torch.rand(n, generator=g)  # a non-uniform upstream gradient

    zr, er, br, nll_ref = _reference(z, emb, bias, ids)
    (nll_ref * upstream).sum().backward()
    zt, et = z.clone().requires_grad_(), emb.clone().requires_grad_()
    bt = None if bias is None else bias.clone().requires_grad_()
    nll = TiedNLL.apply(zt, et, bt, ids)
    (nll * upstream).sum().backward()

    u = 2.0**-9
    delta = 3 * u * (z.abs() @ emb.abs().t())  # (n, V): bound on each logit's error
    assert nll.dtype == torch.float32
    assert ((nll - nll_ref.detach()).abs() <= 2 * delta.amax(-1)).all()
    tol = 2 * delta.amax().item() + 3 * u
    assert tol < 0.05  # the bound is meaningful at this scale
    assert _rel(zt.grad, zr.grad) < tol
    assert _rel(et.grad, er.grad) < tol
    if with_bias:
        assert _rel(bt.grad, br.grad) < tol
        assert bt.grad.dtype == torch.float32
    assert (zt.grad.dtype, et.grad.dtype) == (torch.float32, torch.float32)
    # and the errors are those of bfloat16, not of a wrong formula: far below the tolerance
    assert _rel(zt.grad, zr.grad) < 0.01 and _rel(et.grad, er.grad) < 0.01


def test_tied_nll_gradient_of_z_alone(monkeypatch):
    """Only z needs a gradient: no dE is computed (None), dz still right."""
    g = torch.Generator().manual_seed(1)
    z, emb, ids = torch.randn(50, 32, generator=g) * 0.5, torch.randn(700, 32, generator=g) * 0.3, torch.randint(0, 700, (50,), generator=g)
    zr, _, _, ref = _reference(z, emb, None, ids)
    ref.sum().backward()
    zt = z.clone().requires_grad_()
    TiedNLL.apply(zt, emb, None, ids).sum().backward()
    assert _rel(zt.grad, zr.grad) < 0.01


@pytest.mark.parametrize("head_bias", [True, False])
def test_training_loss_under_bf16_autocast_uses_tied_nll(head_bias, monkeypatch):
    """training_losses under ``torch.autocast('cpu', bfloat16)`` computes the nll term with
    TiedNLL (and float32 without autocast), and the term and its gradients (word embeddings,
    head bias) agree with the float32 loss on the same draws."""
    torch.manual_seed(0)
    spec = ModelSpec(layers=1, hidden=32, heads=2, ffn=64, embed_dim=16, time_embed_dim=16, dropout=0.0,
                     head_bias=head_bias)
    model = Denoiser(spec, vocab_size=V, seq_len=10, absorbing="learned")
    if head_bias:
        with torch.no_grad():
            model.lm_bias.normal_(0, 0.5)
    process = ForwardProcess(NoiseSchedule("sqrt", 200), gamma=0.5)
    g = torch.Generator().manual_seed(2)
    ids, mask, t = torch.randint(5, V, (6, 10), generator=g), torch.ones(6, 10, dtype=torch.long), torch.randint(0, 200, (6,), generator=g)

    calls = []
    real = TiedNLL.apply
    monkeypatch.setattr(diffusion_mod.TiedNLL, "apply", lambda *a: calls.append(1) or real(*a))

    def nll_and_grads(bf16: bool):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            terms = training_losses(model, process, ids, mask, t)
        terms["nll"].mean().backward()
        grads = [model.word_emb.weight.grad.clone()] + ([model.lm_bias.grad.clone()] if head_bias else [])
        return terms, grads

    ref, ref_grads = nll_and_grads(False)
    assert calls == []
    out, grads = nll_and_grads(True)
    assert calls == [1]
    assert out["nll"].dtype == torch.float32 and torch.isfinite(out["loss"]).all()
    # z0 has norm ~1 per position here, so the logit error bound of the comment above is ~1e-2
    assert torch.allclose(out["nll"], ref["nll"], atol=2e-2, rtol=0)
    for a, b in zip(grads, ref_grads, strict=True):
        assert _rel(a, b) < 2e-2


def test_rounding_nll_float32_is_plain_cross_entropy(model):
    z = torch.randn(2, 10, 16, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(1))
    expect = F.cross_entropy((z @ model.word_emb.weight.t() + model.lm_bias).flatten(0, 1), ids.flatten(), reduction="none")
    assert torch.allclose(rounding_nll(model, z, ids), expect.view(2, 10), atol=1e-5)

