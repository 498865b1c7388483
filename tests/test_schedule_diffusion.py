"""Noise schedule and forward process against closed forms."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffuseq.config import ModelSpec
from diffuseq.diffusion import ForwardProcess, training_losses
from diffuseq.model import Denoiser
from diffuseq.schedule import NoiseSchedule


def test_sqrt_schedule_matches_closed_form():
    s = NoiseSchedule("sqrt", 2000)
    t = np.arange(1999)  # the last step is clipped at β = 0.999
    expected = (1 - np.sqrt((t + 1) / 2000 + 1e-4)) / (1 - math.sqrt(1e-4))
    np.testing.assert_allclose(s.alphas_cumprod[:1999], expected, rtol=1e-9)
    assert s.betas.max() <= 0.999
    assert np.all(np.diff(s.alphas_cumprod) < 0)


def test_posterior_is_exact_conditional_gaussian():
    # For a one-step move the posterior must agree with DDPM's textbook coefficients.
    s = NoiseSchedule("sqrt", 100)
    t = 40
    c0, ct, var = s.posterior(t, t - 1)
    ab, abp, b = s.alphas_cumprod[t], s.alphas_cumprod[t - 1], s.betas[t]
    assert c0 == pytest.approx(math.sqrt(abp) * b / (1 - ab))
    assert ct == pytest.approx(math.sqrt(1 - b) * (1 - abp) / (1 - ab))
    assert var == pytest.approx(b * (1 - abp) / (1 - ab))


@pytest.mark.parametrize("with_m", [False, True])
def test_q_sample_mean_and_variance(with_m):
    torch.manual_seed(0)
    s = NoiseSchedule("sqrt", 2000)
    proc = ForwardProcess(s, gamma=0.0)
    n, L, d = 4000, 6, 3
    z0 = torch.randn(1, L, d).expand(n, L, d).contiguous()
    mask = torch.tensor([0, 0, 1, 1, 1, 1]).expand(n, L)
    m = torch.tensor([0.7, -1.2, 2.0]) if with_m else None
    t = torch.full((n,), 900)
    zt = proc.q_sample(z0, t, mask, m)
    a, sig = s.alpha(900), s.sigma(900)
    mm = m if with_m else torch.zeros(d)
    expected_mean = a * (z0[0, 2:] - mm) + mm
    # standard error of a mean of n unit-ish normals: sig / sqrt(n); 5 standard errors
    assert torch.allclose(zt[:, 2:].mean(0), expected_mean, atol=5 * sig / math.sqrt(n))
    assert torch.allclose(zt[:, 2:].var(0), torch.full_like(expected_mean, sig**2), rtol=0.1)
    assert torch.equal(zt[:, :2], z0[:, :2]), "source positions must never be noised"


def test_discrete_noise_rate_matches_binomial_bound():
    torch.manual_seed(1)
    s = NoiseSchedule("sqrt", 2000)
    gamma = 0.5
    proc = ForwardProcess(s, gamma)
    n, L, d = 2000, 10, 4
    z0 = torch.randn(n, L, d)
    mask = torch.zeros(n, L, dtype=torch.long)
    mask[:, 3:] = 1
    m = torch.tensor([9.0, -9.0, 9.0, -9.0])  # far from every Gaussian sample
    for step in (50, 1000, 1999):
        zt = proc.q_sample(z0, torch.full((n,), step), mask, m)
        hit = (zt == m).all(-1)
        assert not hit[:, :3].any(), "discrete noise must not touch source positions"
        p = gamma * s.sigma(step)
        k = hit[:, 3:].sum().item()
        N = n * 7
        assert abs(k - N * p) < 5 * math.sqrt(N * p * (1 - p)) + 1


def test_loss_terms_equal_hand_computation():
    torch.manual_seed(0)
    spec = ModelSpec(layers=1, hidden=8, heads=2, ffn=16, embed_dim=4, time_embed_dim=4, dropout=0.0)
    model = Denoiser(spec, vocab_size=7, seq_len=5, absorbing="learned")
    with torch.no_grad():
        model.lm_bias.normal_()  # the head's bias enters the rounding NLL
    s = NoiseSchedule("sqrt", 50)
    proc = ForwardProcess(s, gamma=0.0)
    ids = torch.tensor([[2, 3, 4, 1, 0], [2, 5, 6, 1, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 1, 1, 1]])
    t = torch.tensor([0, 30])

    torch.manual_seed(5)
    terms = training_losses(model, proc, ids, mask, t, reg_rate=0.01, token_nll=True)

    torch.manual_seed(5)  # replay the same random draws by hand
    emb = model.word_emb.weight[ids]
    z0 = emb + s.sigma(0) * torch.randn_like(emb)
    eps = torch.randn_like(z0)
    m = model.m
    a = torch.tensor([s.alpha(0), s.alpha(30)])[:, None, None]
    sg = torch.tensor([s.sigma(0), s.sigma(30)])[:, None, None]
    zt = torch.where(mask[..., None].bool(), a * (z0 - m) + sg * eps + m, z0)
    pred = model(zt, t, 50)
    mse = torch.stack([((pred[0] - emb[0]) ** 2).mean(), ((pred[1] - z0[1]) ** 2).mean()])
    logits = z0 @ model.word_emb.weight.T + model.lm_bias
    nll = torch.stack([F.cross_entropy(logits[i], ids[i]) for i in range(2)])
    prior = (s.alpha(49) * z0).pow(2).mean(dim=(1, 2))
    reg = 0.01 * torch.sqrt((m**2).sum())
    for k, v in {"mse": mse, "nll": nll, "prior": prior}.items():
        torch.testing.assert_close(terms[k], v, rtol=1e-5, atol=1e-7, msg=k)
    torch.testing.assert_close(terms["loss"], mse + nll + prior + reg, rtol=1e-5, atol=1e-7)
    # the model's own prediction rounded, on the 3 target positions only (the official ``nll``)
    pred_logits = pred @ model.word_emb.weight.T + model.lm_bias
    token_nll = torch.stack([F.cross_entropy(pred_logits[i, 2:], ids[i, 2:]) for i in range(2)])
    torch.testing.assert_close(terms["token_nll"], token_nll, rtol=1e-5, atol=1e-7)
    assert "token_nll" not in training_losses(model, proc, ids, mask, t)  # training leaves it off


def test_zero_absorbing_state_is_the_origin_with_discrete_noise():
    spec = ModelSpec(layers=1, hidden=8, heads=2, ffn=16, embed_dim=4, time_embed_dim=4, dropout=0.0)
    model = Denoiser(spec, vocab_size=7, seq_len=5, absorbing="zero")
    assert "m" not in dict(model.named_parameters())
    assert torch.equal(model.absorbing_state(), torch.zeros(4))
    proc = ForwardProcess(NoiseSchedule("sqrt", 50), gamma=1.0)
    z0 = torch.randn(200, 5, 4) + 5.0  # far from the origin
    mask = torch.tensor([0, 0, 1, 1, 1]).expand(200, 5)
    zt = proc.q_sample(z0, torch.full((200,), 49), mask, model.absorbing_state())
    at_origin = (zt == 0).all(-1)
    assert at_origin[:, 2:].float().mean() > 0.9 and not at_origin[:, :2].any()


def test_continuous_schedule_interpolates_log_alpha_between_table_entries():
    s = NoiseSchedule("sqrt", 2000)
    for t in (0, 10, 1998):
        assert s.alpha(t) == math.sqrt(s.alphas_cumprod[t])
        mid = s.log_alpha(t + 0.25)
        assert mid == pytest.approx(0.75 * s.log_alpha(t) + 0.25 * s.log_alpha(t + 1), rel=1e-12)
        assert s.alpha(t + 0.25) ** 2 + s.sigma(t + 0.25) ** 2 == pytest.approx(1.0, rel=1e-12)
        assert s.log_snr(t) > s.log_snr(t + 0.5) > s.log_snr(t + 1)
