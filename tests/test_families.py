"""Model families (diffuseq.family): the AR Transformer and masked discrete diffusion arms.

Learning runs use the smoke preset (its lr, batch 32) on the embedded synthetic data, one thread:
the AR model gets 100 steps and the masked-diffusion model, slower to start, 200.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

import diffuseq.train as train_mod
from diffuseq.ar_transformer import (
    decoder_budget,
    denoiser_params,
    generate_targets,
    place_targets,
    source_part,
)
from diffuseq.checkpoint import load_tensors
from diffuseq.config import ConfigError, LoopSpec, build_train_spec, parse_overrides
from diffuseq.data import encode_pairs, load_split
from diffuseq.decode import Decoding, batch_seed
from diffuseq.diffusion import training_losses
from diffuseq.family import ContinuousFamily, family_class, family_of, make_family
from diffuseq.masked_diffusion import masked_loss, unmask
from diffuseq.metrics import clean, sentence_bleu
from diffuseq.registry import FAMILIES, SAMPLER_FAMILIES
from diffuseq.rundir import load_model
from diffuseq.sampling import SamplerSpec, build_sampler_spec
from diffuseq.sampling.spec import sampler_names, samplers
from diffuseq.tokenizer import build_tokenizer
from diffuseq.train import checkpoint_dirs, train

SPEC = build_train_spec("smoke")
STEPS = {"ar_transformer": 100, "masked_diffusion": 200}
BATCH, N_TEST = 32, 64


def options(sampler: str, steps: int | None = None) -> SamplerSpec:
    """A sampler spec with just a name and a size (greedy: 1, beam: the beam width)."""
    return build_sampler_spec({"sampler": sampler} | ({"steps": steps} if steps else {}))


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
    for spec in (options("greedy"), options("beam", 4)):
        out, nfe = family.decode(model, ids, mask, spec, torch.Generator())
        assert torch.equal(out[mask == 0], ids[mask == 0])
        assert nfe == decoder_budget(mask) == int(mask.sum(1).max()) - 1
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
    out, nfe = family.decode(model, ids, mask, options("greedy"), torch.Generator())
    assert done.any(), "the trained model should end some rows with [SEP]"
    assert nfe == decoder_budget(mask)  # the budget, equal across seeds; the calls made may be fewer
    assert torch.equal(out, place_targets(ids, mask, seq, cfg.pad_token_id))
    assert generate_targets(model, ids, mask, 1)[1] == seq.shape[1] - 1  # one decoder call per generated token


def test_mdlm_learns_and_beats_copy_source(mdlm, data):
    family, model, losses = mdlm
    ids, mask = data.test.input_ids, data.test.input_mask
    out, nfe = family.decode(model, ids, mask, options("unmask", 10), torch.Generator().manual_seed(0))
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
    out, nfe = family.decode(model, ids, mask, options("unmask", steps), torch.Generator().manual_seed(1))
    assert nfe == steps
    assert torch.equal(out[mask == 0], ids[mask == 0])
    assert not (out[mask == 1] == model.mask_id).any()
    again = unmask(model, ids, mask, steps, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


@pytest.mark.parametrize(("preset", "vocab"), [("smoke", 400), ("smoke", 395), ("cpu", 4000), ("cpu", 395),
                                               ("qqp_cpu", 4000), ("paper", 30522)])
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
    with pytest.raises(ConfigError, match=r"model\.family: .*unknown model family 'gpt'"):
        build_train_spec("smoke", overrides={"model": {"family": "gpt"}})


def test_sampler_registry_matches_the_families_and_the_spec():
    assert FAMILIES.names() == ["ar_transformer", "continuous", "masked_diffusion"]
    assert set(SAMPLER_FAMILIES) | set(samplers()) == set(sampler_names())
    for name in FAMILIES:
        assert family_class(name).name == name
        if name != "continuous":
            assert family_class(name).samplers == tuple(s for s, f in SAMPLER_FAMILIES.items() if f == name)
    assert {family_of(s) for s in samplers()} == {"continuous"}  # the registry, listed nowhere else


def test_sampler_specs_of_the_new_samplers():
    assert options("greedy").steps == 1 and options("greedy").short_name() == "greedy-1"
    assert options("beam", 4).short_name() == "beam-4" and options("unmask", 20).short_name() == "unmask-20"
    with pytest.raises(ConfigError, match="greedy decodes with one beam"):
        build_sampler_spec({"sampler": "greedy", "steps": 4})
    with pytest.raises(ConfigError, match=r"\['clamp'\] apply only to the continuous samplers"):
        build_sampler_spec({"sampler": "unmask", "clamp": True})


# TrainSpec.key() of built-in arms and SamplerSpec.key() as main computed them before families
# existed: adding model.family must leave every cached model and cell id where it was.
KEYS_BEFORE_FAMILIES = {
    ("smoke", "baseline"): "a04492ff4ea5", ("smoke", "v2"): "538e11a66270", ("smoke", "hard_mask"): "bc3c388bb663",
    ("smoke", "zero_absorb"): "2c09c838fdc3", ("smoke", "v2_noreg"): "0634410a6bdd",
    ("smoke", "v2_recipe"): "8dd2690e4e35", ("cpu", "baseline"): "7a6a4604f7e3", ("cpu", "v2"): "b12e09dc1b4e",
    ("cpu", "baseline_v1_recipe"): "1c148d53be0f", ("paper", "baseline"): "785f19772e54",
    ("paper", "v2"): "6362dca49ab1",
}


@pytest.mark.parametrize(("preset", "arm"), sorted(KEYS_BEFORE_FAMILIES))
def test_existing_arms_keep_their_train_key(preset, arm):
    spec = build_train_spec(preset, arm)
    assert spec.model.family == "continuous"
    assert "family" not in spec.model_dump(mode="json")["model"]
    assert spec.key() == KEYS_BEFORE_FAMILIES[(preset, arm)]


def test_new_arms_name_their_family_in_the_key_and_sampler_keys_stand():
    md, ar = build_train_spec("smoke", "masked_diffusion"), build_train_spec("smoke", "ar_transformer")
    assert (md.model.family, ar.model.family) == ("masked_diffusion", "ar_transformer")
    assert md.model_dump(mode="json")["model"]["family"] == "masked_diffusion"
    assert len({md.key(), ar.key(), build_train_spec("smoke", "baseline").key()}) == 3
    assert md.model_copy(update={"model": md.model.model_copy(update={"family": "continuous"})}).key() == "a04492ff4ea5"
    assert SamplerSpec().key() == "0978c435"


@pytest.mark.parametrize("arm", ["ar_transformer", "masked_diffusion"])
def test_the_loop_trains_a_family_with_resume_ema_and_bf16(tmp_path, arm):
    """The real training loop: a run interrupted after its first checkpoint and resumed ends with
    the weights and EMA of an uninterrupted one; bf16 autocast; the model reloads from its EMA."""
    spec = build_train_spec("smoke", arm, parse_overrides(
        ["model.layers=1", "model.hidden=32", "model.ffn=64", "model.embed_dim=16", "model.time_embed_dim=16",
         "optim.batch_size=8", "optim.steps=6", "optim.bf16=true"]))
    loop = LoopSpec(log_every=1, eval_every=3, save_every=3)
    train(spec, tmp_path / "straight", loop, progress=False)
    real_save = train_mod.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    train_mod.save_checkpoint = save_then_crash
    try:
        with pytest.raises(KeyboardInterrupt):
            train(spec, tmp_path / "resumed", loop, progress=False)
    finally:
        train_mod.save_checkpoint = real_save
    assert [p.name for p in checkpoint_dirs(tmp_path / "resumed")] == ["step_0000003"]
    train(spec, tmp_path / "resumed", loop, progress=False)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = (load_tensors(checkpoint_dirs(tmp_path / r)[-1] / name) for r in ("straight", "resumed"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    rows = [r for r in train_mod.read_log(tmp_path / "straight") if r["split"] == "valid"]
    assert [r["step"] for r in rows] == [3, 6] and all(math.isfinite(r["val_loss"]) for r in rows)
    model, tok, loaded = load_model(tmp_path / "straight")
    assert loaded.model.family == arm and type(model) is type(make_family(arm, spec).build(tok))
    ema = load_tensors(checkpoint_dirs(tmp_path / "straight")[-1] / "ema.safetensors")
    assert all(torch.equal(model.state_dict()[k], ema[k]) for k in ema)


@pytest.mark.parametrize(("sampler", "steps"), [("unmask", 3), ("greedy", None), ("beam", 2)])
def test_decoding_dispatches_through_the_models_family(data, sampler, steps):
    """Decoding asks the model's own family (its run spec's) for the decoder of the sampler; with
    two generators the family's decode runs once per generator, the candidates stacked."""
    name = SAMPLER_FAMILIES[sampler]
    train_spec = SPEC.model_copy(update={"model": SPEC.model.model_copy(update={"family": name})})
    torch.manual_seed(0)
    model = make_family(name, train_spec).build(data.tok).eval()
    ids, mask = data.test.input_ids[:4], data.test.input_mask[:4]
    spec = options(sampler, steps)
    dec = Decoding(model, data.tok, train_spec, spec, batch_size=4)
    assert dec.family.name == name
    [batch] = dec.batches(ids, mask, [0, 1])
    want = [make_family(name, train_spec).decode(model, ids, mask, spec, torch.Generator().manual_seed(batch_seed(s, 0)))
            for s in (0, 1)]
    assert all(torch.equal(batch.ids[j], out) for j, (out, _) in enumerate(want)) and batch.nfe == want[0][1]
    assert torch.equal(batch.ids[0][mask == 0], ids[mask == 0])


def test_the_harness_runs_both_families_like_any_arm(tmp_path):
    """A tiny suite of the two families through the harness: their cells train, decode and are
    scored like any arm's; the timing pass records the NFE the decoders report (a chain longer than
    max_chain scaled as its time), so the speed rows join the result rows; the report shows them."""
    import pandas as pd
    import yaml

    from bench.plan import load_plan
    from bench.report.build import build_report
    from bench.runner import run_suite

    suite = {
        "name": "families", "preset": "smoke", "arms": ["masked_diffusion", "ar_transformer"], "seeds": [0],
        "metrics": ["bleu", "rouge_l", "length"], "baselines": ["copy_source"],
        "overrides": {"optim.steps": 20, "model.layers": 1, "model.hidden": 32, "model.ffn": 64, "optim.batch_size": 16},
        "samplers": [{"arms": ["masked_diffusion"], "steps": [2, 3]}, {"arms": ["ar_transformer"]},
                     {"arms": ["ar_transformer"], "set": {"sampler": "beam", "steps": 2}}],
        "curves": {"every": 10, "examples": 8}, "decode": {"limit": 12, "batch_size": 8},
        "timing": {"reps": 1, "train_steps": 2, "max_chain": 2}, "threads": 1,
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    results = tmp_path / "results"
    run_suite(load_plan(path), results, progress=False)
    table = pd.read_parquet(results / "table.parquet")
    bleu = table[table.metric == "bleu"].set_index("label")
    assert set(bleu.index) == {"unmask-2", "unmask-3", "greedy-1", "beam-2", "copy_source"}
    assert bleu.loc["unmask-3", "nfe"] == 3 and bleu.loc["greedy-1", "nfe"] == bleu.loc["beam-2", "nfe"] > 3
    assert {"curve_bleu_final", "valid_bleu_full", "sentences_per_s"} <= set(table.metric)
    curves = pd.read_parquet(results / "curves.parquet")
    assert {"bleu", "val_loss"} <= set(curves.metric) and "m_norm" not in set(curves.metric)
    timing = pd.read_parquet(results / "timing.parquet")
    batches = timing[timing.kind == "sample_batch"].set_index("label")
    for label in ("unmask-2", "unmask-3", "greedy-1", "beam-2"):
        assert batches.loc[label, "nfe"] == bleu.loc[label, "nfe"], label
    assert bool(batches.loc["unmask-3", "extrapolated"]) and set(timing.kind) == {"train_step", "forward", "sample_batch"}
    text = build_report(results, tmp_path / "report").read_text()
    for config in ("masked_diffusion unmask-3", "ar_transformer greedy-1", "ar_transformer beam-2"):
        assert config in text
    speed = pd.read_csv(next((tmp_path / "report").glob("fig3_speed_quality_*.csv")))
    assert {"masked_diffusion", "ar_transformer"} <= set(speed.arm)
