"""Model families (diffuseq.family): the AR Transformer and masked discrete diffusion arms.

Learning runs use the smoke preset (its lr, batch 32) on the embedded synthetic data, one thread:
the AR model gets 100 steps and the masked-diffusion model, slower to start, 200.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffuseq.ar_transformer import denoiser_params, place_targets, source_part
from diffuseq.config import build_train_spec
from diffuseq.data import encode_pairs, load_split
from diffuseq.diffusion import training_losses
from diffuseq.family import ContinuousFamily, make_family
from diffuseq.masked_diffusion import masked_loss, unmask
from diffuseq.metrics import clean, sentence_bleu
from diffuseq.sampling import SamplerSpec
from diffuseq.tokenizer import build_tokenizer

SPEC = build_train_spec("smoke")
STEPS = {"ar_transformer": 100, "masked_diffusion": 200}
BATCH, N_TEST = 32, 64


@dataclass(frozen=True)
class Options:
    """The decoding fields the new families read (a SamplerSpec once integrated)."""

    sampler: str
    steps: int = 10
    num_beams: int = 4


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    train = load_split(SPEC.data, "train")
    tok = build_tokenizer(SPEC.data.tokenizer, SPEC.data.vocab_size, [s for p in train for s in (p.src, p.trg)])
    enc = encode_pairs(tok, train, SPEC.data.seq_len)
    test = encode_pairs(tok, load_split(SPEC.data, "test")[:N_TEST], SPEC.data.seq_len)
    return SimpleNamespace(tok=tok, train=enc, test=test)


def words(tok, ids: torch.Tensor, keep: torch.Tensor) -> list[str]:
    return clean(tok.tokens(ids[keep.bool()].tolist()))


def mean_bleu(data, hyp_ids: torch.Tensor, hyp_part: str = "target") -> float:
    """Mean sentence BLEU on the test subset of the target part (or the source part) of hyp_ids."""
    scores = []
    for ref, hyp, mask in zip(data.test.input_ids, hyp_ids, data.test.input_mask, strict=True):
        keep = mask if hyp_part == "target" else 1 - mask
        scores.append(sentence_bleu([words(data.tok, ref, mask)], words(data.tok, hyp, keep)))
    return sum(scores) / len(scores)


def fit(name: str, data) -> tuple:
    """(family, trained model in eval mode, per-step mean losses) after STEPS[name] AdamW steps."""
    torch.manual_seed(0)
    family = make_family(name, SPEC)
    model = family.build(data.tok)
    opt = torch.optim.AdamW(model.parameters(), lr=SPEC.optim.lr)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(STEPS[name]):
        idx = torch.randint(0, len(data.train), (BATCH,), generator=g)
        ids, mask = data.train.input_ids[idx], data.train.input_mask[idx]
        loss = family.losses(model, ids, mask, torch.zeros(BATCH, dtype=torch.long))["loss"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return family, model.eval(), losses


@pytest.fixture(scope="module")
def ar(data):
    return fit("ar_transformer", data)


@pytest.fixture(scope="module")
def mdlm(data):
    return fit("masked_diffusion", data)


def assert_learned(losses: list[float], bleu: float, data) -> None:
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10
    copy_source = mean_bleu(data, data.test.input_ids, hyp_part="source")
    assert bleu > copy_source + 0.1, (bleu, copy_source)


def test_ar_learns_and_beats_copy_source(ar, data):
    family, model, losses = ar
    ids, mask = data.test.input_ids, data.test.input_mask
    for options in (Options("greedy"), Options("beam", num_beams=4)):
        out, nfe = family.decode(model, ids, mask, options, torch.Generator())
        assert torch.equal(out[mask == 0], ids[mask == 0])
        assert 1 <= nfe <= int(mask.sum(1).max()) - 1
        assert_learned(losses, mean_bleu(data, out), data)


def test_ar_greedy_equals_hand_run_argmax_loop(ar, data):
    family, model, _ = ar
    ids, mask = data.test.input_ids[:8], data.test.input_mask[:8]
    cfg = model.config
    src, attn = source_part(ids, mask, cfg.pad_token_id)
    enc = model.net.get_encoder()(input_ids=src, attention_mask=attn)
    seq, done = torch.full((len(ids), 1), cfg.decoder_start_token_id), torch.zeros(len(ids), dtype=torch.bool)
    with torch.no_grad():
        for _ in range(int(mask.sum(1).max()) - 1):
            logits = model.net(encoder_outputs=enc, attention_mask=attn, decoder_input_ids=seq).logits[:, -1]
            nxt = torch.where(done, cfg.pad_token_id, logits.argmax(-1))
            seq, done = torch.cat([seq, nxt[:, None]], 1), done | (nxt == cfg.eos_token_id)
            if done.all():
                break
    out, nfe = family.decode(model, ids, mask, Options("greedy"), torch.Generator())
    assert done.any(), "the trained model should end some rows with [SEP]"
    assert nfe == seq.shape[1] - 1
    assert torch.equal(out, place_targets(ids, mask, seq, cfg.pad_token_id))


def test_mdlm_learns_and_beats_copy_source(mdlm, data):
    family, model, losses = mdlm
    ids, mask = data.test.input_ids, data.test.input_mask
    out, nfe = family.decode(model, ids, mask, Options("unmask", steps=10), torch.Generator().manual_seed(0))
    assert nfe == 10
    assert_learned(losses, mean_bleu(data, out), data)


def test_mdlm_loss_matches_hand_computation():
    # One example: a source token, then a 2-token target; the first target token is masked.
    ids, mask = torch.tensor([[3, 1, 2]]), torch.tensor([[0, 1, 1]])
    masked, t = torch.tensor([[False, True, False]]), torch.tensor([0.25])
    mask_id = 3
    logits = torch.tensor([[[0.0, 0.5, 1.0, 2.0]] * 3]).index_fill(-1, torch.tensor([mask_id]), -torch.inf)
    # CE of token 1 over the vocabulary without [MASK]; weight 1/t, averaged over n = 2 targets.
    ce = -math.log(math.exp(0.5) / (math.exp(0.0) + math.exp(0.5) + math.exp(1.0)))
    expected = ce / (0.25 * 2)
    assert masked_loss(logits, ids, mask, masked, t).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("steps", [1, 5, 10, 20, 50])
def test_unmask_keeps_source_and_unmasks_every_target(mdlm, data, steps):
    family, model, _ = mdlm
    ids, mask = data.test.input_ids[:8].clone(), data.test.input_mask[:8]
    ids[0, 1] = model.mask_id  # a literal [MASK] in a source stays, and is not a target to fill
    out, nfe = family.decode(model, ids, mask, Options("unmask", steps=steps), torch.Generator().manual_seed(1))
    assert nfe == steps
    assert torch.equal(out[mask == 0], ids[mask == 0])
    assert not (out[mask == 1] == model.mask_id).any()
    again = unmask(model, ids, mask, steps, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


@pytest.mark.parametrize(("preset", "vocab"), [("smoke", 400), ("smoke", 395), ("cpu", 4000), ("cpu", 395),
                                               ("paper", 30522)])
def test_parameter_counts_match_the_denoiser(preset, vocab):
    spec = build_train_spec(preset)
    tok = SimpleNamespace(vocab_size=vocab, pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4)
    reference = denoiser_params(spec, vocab)
    with torch.device("meta"):
        assert sum(p.numel() for p in ContinuousFamily(spec).build(tok).parameters()) == reference
        for name in ("ar_transformer", "masked_diffusion"):
            n = sum(p.numel() for p in make_family(name, spec).build(tok).parameters())
            assert abs(n / reference - 1) < 0.10, (name, n, reference)


def test_ar_state_dict_has_no_aliases_and_round_trips(ar, tmp_path):
    family, model, _ = ar
    state = model.state_dict()
    assert len(state) == len(list(model.named_parameters())) + len(list(model.named_buffers()))
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    fresh = family.build(SimpleNamespace(vocab_size=model.config.vocab_size, pad_id=model.config.pad_token_id,
                                         cls_id=model.config.decoder_start_token_id,
                                         sep_id=model.config.eos_token_id))
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"))
    assert fresh.net.lm_head.weight is fresh.net.model.shared.weight
    assert torch.equal(fresh.net.lm_head.weight, model.net.lm_head.weight)


@pytest.mark.parametrize("name", ["continuous", "ar_transformer", "masked_diffusion"])
def test_losses_are_per_example_and_finite_under_bf16(data, name):
    torch.manual_seed(0)
    family = make_family(name, SPEC)
    model = family.build(data.tok)
    ids, mask = data.train.input_ids[:4], data.train.input_mask[:4]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = family.losses(model, ids, mask, torch.tensor([0, 5, 100, 1999]))
    assert all(v.shape == (4,) for v in terms.values())
    assert torch.isfinite(terms["loss"]).all()
    terms["loss"].mean().backward()


def test_continuous_family_is_the_existing_modules(data):
    torch.manual_seed(0)
    family = make_family("continuous", SPEC)
    model = family.build(data.tok).eval()
    ids, mask, t = data.train.input_ids[:4], data.train.input_mask[:4], torch.tensor([0, 5, 100, 1999])
    torch.manual_seed(1)
    ours = family.losses(model, ids, mask, t)
    torch.manual_seed(1)
    theirs = training_losses(model, family.process, ids, mask, t, SPEC.diffusion.reg_rate)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    out, nfe = family.decode(model, ids, mask, SamplerSpec(steps=4), torch.Generator().manual_seed(0))
    assert nfe == 4
    assert torch.equal(out[mask == 0], ids[mask == 0])


def test_a_family_rejects_another_familys_sampler():
    with pytest.raises(ValueError, match="does not decode"):
        make_family("ar_transformer", SPEC).check_sampler("unmask")
    with pytest.raises(ValueError, match="unknown model family"):
        make_family("gpt", SPEC)
