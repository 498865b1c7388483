"""``model.init: plm``, the official ``--use_plm_init bert`` from the shipped MiniLM: each pretrained
layer computes what Hugging Face's BertLayer computes, exactly the pretrained tensors are set, sizes
the MiniLM cannot fill are refused naming the field, and a run starts from it and resumes without it.
(The import of a PLM-initialised official checkpoint is in test_official.py, fixture ``v2_plm``.)"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel

import diffuseq.train as train_mod
from diffuseq.config import ConfigError, LoopSpec, ModelSpec, build_train_spec, parse_overrides
from diffuseq.family import make_family
from diffuseq.plm import plm_folder, plm_tensors, start_from_plm
from diffuseq.tokenizer import TextTokenizer

MINILM = ["data.tokenizer=bert", "data.seq_len=32", "model.hidden=384", "model.heads=12", "model.ffn=1536",
          "model.embed_dim=384", "model.init=plm", "optim.batch_size=4"]


def plm_spec(*extra: str, arm: str = "v2"):
    return build_train_spec("smoke", arm, parse_overrides([*MINILM, *extra]))


@pytest.fixture(scope="module")
def minilm() -> BertModel:
    return BertModel.from_pretrained(str(plm_folder())).eval()


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.bert()


def built(spec, tok, plm: bool):
    torch.manual_seed(0)
    model = make_family("continuous", spec).build(tok)
    if plm:
        start_from_plm(model, spec)
    return model.eval()


def test_each_pretrained_layer_computes_what_the_hf_layer_computes(minilm, tok):
    spec = plm_spec("model.layers=3")
    model = built(spec, tok, plm=True)
    x = torch.randn(2, 16, 384, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for ours, theirs in zip(model.layers, minilm.encoder.layer[:3], strict=True):
            ref = theirs(x)
            ref = ref[0] if isinstance(ref, tuple) else ref
            assert (ours(x) - ref).abs().max() < 1e-5
            x = ref


def test_exactly_the_pretrained_tensors_are_set_and_the_rest_keeps_its_init(minilm, tok):
    spec = plm_spec("model.layers=2")
    plm, fresh = built(spec, tok, plm=True).state_dict(), built(spec, tok, plm=False).state_dict()
    assert torch.equal(plm["word_emb.weight"], minilm.embeddings.word_embeddings.weight)
    assert torch.equal(plm["pos_emb.weight"], minilm.embeddings.position_embeddings.weight[:32])
    assert torch.equal(plm["ln.weight"], minilm.embeddings.LayerNorm.weight)
    q, k, v = (getattr(minilm.encoder.layer[1].attention.self, p).weight for p in ("query", "key", "value"))
    assert torch.equal(plm["layers.1.qkv.weight"], torch.cat([q, k, v]))
    pretrained = {"word_emb.weight", "pos_emb.weight", "ln.weight", "ln.bias"} | {k for k in plm if k.startswith("layers.")}
    assert set(plm_tensors(spec)) == pretrained
    assert not any(k.startswith(("in_proj", "out_proj")) for k in plm)  # d = H: no projections, as the official model
    for key in set(plm) - pretrained:  # time MLP, output bias, m
        assert torch.equal(plm[key], fresh[key]), key
    assert not torch.equal(plm["layers.0.qkv.weight"], fresh["layers.0.qkv.weight"])


@pytest.mark.parametrize(("extra", "message"), [
    (["model.hidden=256", "model.embed_dim=256", "model.heads=4"], "set model.hidden=384, not 256"),
    (["model.heads=6"], "set model.heads=12, not 6"),
    (["model.layers=7"], "model.layers is 7, but all-MiniLM-L6-v2 has 6 layers"),
    (["data.seq_len=600"], "data.seq_len 600 exceeds all-MiniLM-L6-v2's 512 positions"),
    (["data.tokenizer=wordpiece", "data.vocab_size=400"], "set data.tokenizer=bert, not wordpiece"),
])
def test_sizes_the_minilm_cannot_fill_are_refused_naming_the_field_and_leave_no_run(tmp_path, extra, message):
    spec = plm_spec(*extra)
    with pytest.raises(ConfigError, match=r"model\.init plm") as err:
        plm_tensors(spec)
    assert message in str(err.value)
    with pytest.raises(ConfigError, match=r"model\.init plm"):
        train_mod.train(spec, tmp_path / "run", LoopSpec(), progress=False)
    assert not (tmp_path / "run" / "config.json").exists()  # so the corrected spec can use the folder


@pytest.mark.parametrize(("extra", "arm", "message"), [
    (["model.embed_dim=128"], "v2", r"model.embed_dim \(128\) must equal model.hidden"),
    ([], "ar_transformer", "continuous family's"),
])
def test_the_spec_refuses_a_plm_start_it_cannot_build(extra, arm, message):
    with pytest.raises(ConfigError, match=message):
        plm_spec(*extra, arm=arm)


def test_a_random_init_spec_keeps_its_dump_and_key():
    assert "init" not in ModelSpec().model_dump()
    plm = ModelSpec(init="plm", embed_dim=768)
    assert plm.model_dump()["init"] == "plm" and plm.model_dump(exclude={"init"}) == ModelSpec(embed_dim=768).model_dump()


def test_a_run_starts_from_the_minilm_and_resumes_without_it(tmp_path, monkeypatch, minilm):
    spec = plm_spec("model.layers=1", "optim.steps=1", "optim.lr=1e-12", "optim.warmup_steps=0")
    train_mod.train(spec, tmp_path, LoopSpec(save_every=1, eval_every=1), progress=False)
    (ckpt,) = train_mod.checkpoint_dirs(tmp_path)
    weights = load_file(ckpt / "model.safetensors")
    assert torch.allclose(weights["word_emb.weight"], minilm.embeddings.word_embeddings.weight, atol=1e-6)

    def no_plm(*args, **kwargs):
        raise AssertionError("a resumed run must not read the pretrained weights")

    monkeypatch.setattr(train_mod, "start_from_plm", no_plm)
    longer = plm_spec("model.layers=1", "optim.steps=2", "optim.lr=1e-12", "optim.warmup_steps=0")
    train_mod.train(longer, tmp_path, LoopSpec(save_every=1, eval_every=1), progress=False)
    assert [d.name for d in train_mod.checkpoint_dirs(tmp_path)][-1] == "step_0000002"


def test_the_preset_fits_the_minilm():
    spec = build_train_spec("plm_minilm", "v2")
    assert len({k.split(".")[1] for k in plm_tensors(spec) if k.startswith("layers.")}) == 6
