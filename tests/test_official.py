"""Importing official DiffuSeq checkpoints (tests/fixtures/official, README.md there): every
tensor mapped, the run directory usable like ours, the official decoders' tokens reproduced, and
each unsupported option refused in one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffuseq.cli import main as cli_main
from diffuseq.config import load_arm
from diffuseq.official import CHECKED, LAYER, QKV, TOP_LEVEL, load_official_state, map_state_dict
from diffuseq.official_replay import official_generator, official_ids, replay
from diffuseq.rundir import load_model
from diffuseq.sampling.spec import SamplerSpec, build_sampler_spec

FIXTURES = Path(__file__).parent / "fixtures" / "official"
FIXTURE = FIXTURES / "v2"
CKPT_NAME = "ema_0.99_000300.pt"
CKPT = FIXTURE / CKPT_NAME
BRANCHES = ("v1", "v2", "v2_plm")  # v2_plm: v2 with --use_plm_init bert (d = H, no projections)
V2 = ("v2", "v2_plm")


def import_args(branch: str) -> list[str]:
    fx = FIXTURES / branch
    return ["import-official", str(fx / CKPT_NAME), "--bert-config", str(fx / "bert_config.json"),
            "--dataset", str(fx / "data")]


IMPORT = import_args("v2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each fixture imported once: branch → run directory."""
    out = {b: tmp_path_factory.mktemp("imported") / b for b in BRANCHES}
    for branch, run in out.items():
        assert cli_main([*import_args(branch), "--out", str(run)]) == 0
    return out


@pytest.fixture
def one_thread():
    """Decode on one thread: the tiny model's 2000-step chains are 10x slower when 2 threads
    share 2 busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("branch", BRANCHES)
def test_the_fixture_imports_with_the_official_config(runs, branch):
    meta = json.loads((runs[branch] / "config.json").read_text())
    train = meta["train"]
    plm = {"embed_dim": 32, "init": "plm"} if branch == "v2_plm" else {}
    assert train["model"] == {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64, "embed_dim": 16,
                              "time_embed_dim": 16, "dropout": 0.1, "head_bias": True, **plm}
    assert train["data"]["seq_len"] == 32 and train["data"]["tokenizer"] == "imported"
    absorbing, gamma = ("learned", 0.5) if branch in V2 else ("none", 0.0)
    assert train["diffusion"] == {"steps": 2000, "schedule": "sqrt", "absorbing": absorbing, "gamma": gamma,
                                  "reg_rate": 0.01, "timestep_sampler": "loss_aware"}
    assert (train["optim"]["steps"], train["optim"]["ema_rate"], train["optim"]["lr"]) == (300, 0.99, 2e-3)
    assert meta["vocab_size"] == 144
    assert meta["imported_from"]["official_branch"] == {"v1": "main", "v2": "diffuseq-v2", "v2_plm": "diffuseq-v2"}[branch]
    assert (runs[branch] / "checkpoints" / "step_0000300" / "ema.safetensors").is_file()


@pytest.mark.parametrize("branch", BRANCHES)
def test_every_official_tensor_is_used_and_every_one_of_ours_filled(runs, branch):
    sd = load_official_state(FIXTURES / branch / CKPT_NAME)
    used = {k for k in sd if k in TOP_LEVEL or k in CHECKED}
    layer_keys = {f"input_transformers.layer.0.{name}.{kind}" for name in [*LAYER, *(f"attention.self.{p}" for p in QKV)]
                  for kind in ("weight", "bias")}
    assert set(sd) == used | layer_keys
    assert ("mean_embed" in sd) == (branch in V2)
    assert any(k.startswith("input_up_proj.") for k in sd) == (branch != "v2_plm")
    model, _, _ = load_model(runs[branch])
    ours = model.state_dict()
    mapped = map_state_dict(sd, 32, "fixture")
    assert set(mapped) == set(ours)
    for key, value in mapped.items():
        assert torch.equal(ours[key], value), key
    q, k, v = (sd[f"input_transformers.layer.0.attention.self.{p}.weight"] for p in QKV)
    assert torch.equal(ours["layers.0.qkv.weight"], torch.cat([q, k, v]))
    assert torch.equal(ours["word_emb.weight"], sd["lm_head.weight"])  # what the official decoders load
    assert not torch.equal(sd["word_embedding.weight"], sd["lm_head.weight"])  # the EMA table, not loaded
    assert torch.equal(ours["pos_emb.weight"], sd["position_embeddings.weight"][:32])


# branch → (our arm, sample-section overrides) matching its official decoder
DECODERS = {"v2": ("official_v2_exact", {}), "v2_plm": ("official_v2_exact", {}), "v1": ("baseline", {"mbr": 1})}


def test_the_official_generator_is_the_seeded_stream_after_the_same_draws():
    """official_generator(seed2, k, shape) holds the global stream's state after set_seed, one int64
    draw and k randn of ``shape`` (that this is the official order, the fixture replays check)."""
    torch.manual_seed(110)
    torch.empty((), dtype=torch.int64).random_()
    for _ in range(2):
        torch.randn(4, 3)
    expected = torch.randn(4, 3)
    assert torch.equal(torch.randn((4, 3), generator=official_generator(110, 2, (4, 3))), expected)
    assert official_ids("a b", {"a": 5, "b": 6, "[PAD]": 3}, 4) == [5, 6, 3, 3]


@pytest.mark.parametrize("branch", BRANCHES)
def test_decoding_the_import_reproduces_the_official_decoder(runs, branch, one_thread):
    """Same layout, same starting noise (the official RNG order), our matching decoder
    (v2: official_v2_exact; v1: baseline, DDPM over 2000 steps with clamp, MBR off): the
    official decoder's tokens on at least 99% of target positions."""
    fx = FIXTURES / branch
    arm, over = DECODERS[branch]
    sample = build_sampler_spec(load_arm(arm)["sample"] | over)
    assert sample.steps == json.loads((fx / "decode_args.json").read_text())["step"]
    got = replay(runs[branch], fx, sample)
    assert got.positions == 318 and got.rows == 16 and got.nfe == sample.steps
    assert got.share >= 0.99, f"{got.positions_agree}/{got.positions} target tokens agree"


def test_the_imported_run_samples_like_ours(runs, tmp_path):
    assert cli_main(["sample", "--run-dir", str(runs["v2"]), "--arm", "official_v2_exact", "--out", str(tmp_path),
                     "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "samples.seed0.jsonl").open()]
    assert len(rows) == 16 and rows[0]["source"].startswith("[CLS] should i paint")


def test_new_sampler_fields_keep_earlier_keys():
    assert "readout" not in SamplerSpec().model_dump() and "model_time_offset" not in SamplerSpec().model_dump()
    assert SamplerSpec().key() == "0978c435"  # as before the fields existed
    exact = build_sampler_spec(load_arm("official_v2_exact")["sample"]).model_dump()
    assert (exact["readout"], exact["model_time_offset"]) == ("state", 1)


def _import_with(tmp_path: Path, capsys, args_update: dict | None = None, state_update: dict | None = None,
                 drop: tuple[str, ...] = (), extra: tuple[str, ...] = (), drop_args: tuple[str, ...] = (),
                 vocab: Path | None = FIXTURE / "vocab.json") -> tuple[int, str]:
    """Import the fixture with changed flags / tensors; (exit code, stderr)."""
    tmp_path.mkdir(exist_ok=True)
    args = json.loads((FIXTURE / "training_args.json").read_text()) | (args_update or {})
    args = {k: v for k, v in args.items() if k not in drop_args}
    (tmp_path / "training_args.json").write_text(json.dumps(args))
    sd = {k: v for k, v in load_official_state(CKPT).items() if k not in drop} | (state_update or {})
    ckpt = tmp_path / CKPT.name
    torch.save(sd, ckpt)
    capsys.readouterr()
    code = cli_main([*IMPORT[:1], str(ckpt), *IMPORT[2:], "--args", str(tmp_path / "training_args.json"),
                     *(["--vocab", str(vocab)] if vocab else []), "--out", str(tmp_path / "run"), *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("option", "value"), [
    ("noise_schedule", "trunc_lin"), ("learn_sigma", True), ("use_plm_init", "roberta"), ("timestep_respacing", "100"),
    ("predict_xstart", False), ("rescale_timesteps", False), ("use_kl", True), ("schedule_sampler", "fixstep"),
    ("hidden_dim", 32),
])
def test_each_unsupported_option_is_one_line_naming_it(tmp_path, capsys, option, value):
    code, err = _import_with(tmp_path, capsys, {option: value})
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and f"{option} = {value!r} is not supported" in err
    assert not (tmp_path / "run").exists()


def test_a_plm_start_needs_hidden_dim_equal_to_the_bert_width(tmp_path, capsys):
    code, err = _import_with(tmp_path, capsys, {"use_plm_init": "bert"})
    assert code == 2 and "hidden_dim = 16 is not supported: --use_plm_init bert embeds tokens" in err


def test_denoise_without_a_learned_state_is_refused(tmp_path, capsys):
    code, err = _import_with(tmp_path, capsys, {"learned_mean_embed": False})
    assert code == 2 and "denoise = True is not supported" in err


@pytest.mark.parametrize(("change", "message"), [
    ({"state_update": {"extra.weight": torch.zeros(2)}}, "tensor 'extra.weight' has no counterpart"),
    ({"drop": ("mean_embed",)}, "no tensor for ['m']"),
    ({"drop": ("input_transformers.layer.0.attention.self.key.bias",)}, "lacks attention.self ['key'] bias"),
    ({"state_update": {"position_ids": torch.zeros(1, 32, dtype=torch.long)}}, "position_ids is not 0..31"),
])
def test_no_tensor_is_left_over_either_way(tmp_path, capsys, change, message):
    code, err = _import_with(tmp_path, capsys, **change)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_vocabulary_of_another_size_is_refused(tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("a\nb\n")
    code, err = _import_with(tmp_path, capsys, extra=("--vocab", str(words)))
    assert code == 2 and "6 tokens, but" in err and "144 embedding rows" in err


def test_the_heads_come_from_the_bert_config(tmp_path, capsys):
    code, err = _import_with(tmp_path, capsys, {"config_name": str(tmp_path / "nowhere")},
                             extra=("--bert-config", str(tmp_path / "nowhere" / "config.json")))
    assert code == 2 and "--bert-config" in err


def test_an_imported_vocabulary_has_no_mask_and_is_never_rebuilt(runs):
    from diffuseq.config import ConfigError, build_train_spec
    from diffuseq.errors import UserError
    from diffuseq.family import make_family
    from diffuseq.tokenizer import TextTokenizer, build_tokenizer

    tok = TextTokenizer.load(runs["v2"] / "tokenizer.json")
    assert (tok.cls_id, tok.sep_id, tok.unk_id, tok.pad_id, tok.mask_id) == (0, 1, 2, 3, None)
    assert tok.encode_batch(["should i paint a zebra ?"]) == [[24, 10, 82, 4, 2, 5]]
    with pytest.raises(ConfigError, match="lacks"):
        make_family("masked_diffusion", build_train_spec("smoke", "masked_diffusion")).build(tok)
    with pytest.raises(UserError, match="import-official"):
        build_tokenizer("imported", 100, ["a b"])


def test_a_missing_flag_is_one_line_and_a_whole_batch_microbatch_is_none(tmp_path, capsys):
    code, err = _import_with(tmp_path, capsys, drop_args=("hidden_t_dim",))
    assert code == 2 and "no flag hidden_t_dim" in err and err.count("\n") == 1
    code, _ = _import_with(tmp_path, capsys, {"microbatch": -1})
    assert code == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["optim"]["microbatch"] is None


def test_a_bert_vocabulary_run_takes_a_wordpiece_vocab_or_the_bundled_one(tmp_path, capsys):
    words = [w for w in json.loads((FIXTURE / "vocab.json").read_text()) if not w.startswith("[")][:139]
    vocab_txt = tmp_path / "vocab.txt"
    vocab_txt.write_text("".join(f"{w}\n" for w in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
    code, _ = _import_with(tmp_path, capsys, {"vocab": "bert"}, extra=("--vocab", str(vocab_txt)))
    assert code == 0
    from diffuseq.tokenizer import TextTokenizer

    tok = TextTokenizer.load(tmp_path / "run" / "tokenizer.json")
    assert (tok.vocab_size, tok.pad_id, tok.mask_id) == (144, 0, 4)
    assert tok.encode_batch(["Should I paint?"]) == [[5 + words.index(w) for w in ("should", "i", "paint", "?")]]
    code, err = _import_with(tmp_path / "b", capsys, {"vocab": "bert", "config_name": str(tmp_path / "nowhere")}, vocab=None)
    assert code == 2 and "bundled BERT uncased: 30522 tokens, but" in err


def test_the_words_tokenizer_is_the_official_vocabulary_of_the_same_data():
    """data.tokenizer words over the fixture's 400 training pairs gives every word and special the
    id the official code's vocab.json gave it (make_fixture wrote its --vocab file from the same
    counts), and encodes as the official loader does: whitespace words, case kept, [UNK] otherwise."""
    from diffuseq import synthetic
    from diffuseq.config import build_train_spec
    from diffuseq.tokenizer import build_tokenizer

    texts = [x for s, t in synthetic.generate()["train"][:400] for x in (s, t)]
    tok = build_tokenizer("words", 144, texts)
    official = json.loads((FIXTURE / "vocab.json").read_text())
    renamed = {"[START]": "[CLS]", "[END]": "[SEP]"}
    assert {renamed.get(w, w): i for w, i in official.items()} == {w: i for i, w in enumerate(tok.words())}
    assert (FIXTURE / "vocab.txt").read_text().split() == tok.words()[4:]
    assert tok.encode_batch(["should i paint a Zebra ?"]) == [[official[w] if w in official else official["[UNK]"]
                                                             for w in ["should", "i", "paint", "a", "Zebra", "?"]]]
    assert tok.mask_id is None and build_tokenizer("words", 20, texts).vocab_size == 20
    assert build_train_spec("smoke", "v2", {"data": {"tokenizer": "words"}}).data.tokenizer == "words"
    # no [MASK]: an arm that needs its row is a clean error naming the fields
    from diffuseq.config import ConfigError
    from diffuseq.family import make_family

    with pytest.raises(ConfigError, match=r"diffusion\.absorbing mask_token .* words vocabulary lacks \(data\.tokenizer\)"):
        make_family("continuous", build_train_spec("smoke", "hard_mask", {"data": {"tokenizer": "words"}})).build(tok)
    # words are what str.split() makes of a text, as in the official loader (\x1c splits, HF's WhitespaceSplit would not)
    assert tok.encode_batch(["should\x1ci"]) == [[official["should"], official["i"]]]
