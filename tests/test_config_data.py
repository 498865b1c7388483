"""Specs, arms, data loading and validation, tokenizers, batching layout."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffuseq import synthetic
from diffuseq.cli import main as cli_main
from diffuseq.config import ARMS, ConfigError, DataSpec, build_train_spec, load_arm, parse_overrides
from diffuseq.data import BatchOrder, DataError, Pair, encode_pairs, load_split, read_jsonl
from diffuseq.tokenizer import TextTokenizer, build_tokenizer

REPO = Path(__file__).resolve().parents[1]


def test_arms_are_configurations_and_share_models():
    keys = {arm: build_train_spec("smoke", arm).key() for arm in ("baseline", "hard_mask", "absorb_train_only", "v2")}
    assert keys["absorb_train_only"] == keys["v2"], "a sampling-only difference must never retrain"
    assert len({keys["baseline"], keys["hard_mask"], keys["v2"]}) == 3
    assert load_arm("hard_mask")["train"]["absorbing"] == "mask_token"


def test_an_arm_includes_another_and_overrides_it_key_by_key(tmp_path):
    """hard_mask decodes exactly as v2 through `include: v2`; a user arm (by path) changes one
    sampler field and γ and keeps the rest, but not v2's label; a cycle is a one-line error."""
    assert load_arm("hard_mask")["sample"] == load_arm("v2")["sample"]
    assert load_arm("baseline_v1_recipe")["sample"] == load_arm("baseline")["sample"]
    (tmp_path / "base.yaml").write_text("include: v2\nlabel: my base\n")
    (tmp_path / "mine.yaml").write_text("include: base.yaml\ntrain: {gamma: 0.3}\nsample: {steps: 20}\n")
    mine, v2 = load_arm(tmp_path / "mine.yaml"), load_arm("v2")
    assert mine["train"] == {**v2["train"], "gamma": 0.3}
    assert mine["sample"] == {**v2["sample"], "steps": 20}
    assert mine["label"] == "mine" and mine["description"] == ""
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match=r"include: the arms include each other \(.*a\.yaml → .*b\.yaml → .*a\.yaml\)"):
        load_arm(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("include: nowhere\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: include: unknown arm 'nowhere'"):
        load_arm(tmp_path / "c.yaml")


def test_spec_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model\.layerz"):
        build_train_spec("smoke", "v2", {"model": {"layerz": 3}})
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        build_train_spec("smoke", "v2", parse_overrides(["optim.lr=-1"]))
    with pytest.raises(ConfigError, match="absorbing"):
        build_train_spec("smoke", "baseline", parse_overrides(["diffusion.gamma=0.5"]))
    with pytest.raises(ConfigError, match="unknown arm"):
        build_train_spec("smoke", "nope")
    with pytest.raises(ConfigError, match="unknown preset"):
        build_train_spec("huge", "v2")


def test_unknown_keys_are_named_with_the_valid_keys_at_their_level(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^command line: model\.layerz: unknown key 'layerz' \(did you mean 'layers'\?\); "
                       r"valid keys in model: family, layers, hidden, heads, ffn, embed_dim, time_embed_dim, dropout, head_bias, init$"):
        build_train_spec("smoke", "v2", parse_overrides(["model.layerz=3"]))
    with pytest.raises(ConfigError, match=r"^command line: layers: unknown key 'layers'; valid keys: data, model, diffusion, optim$"):
        build_train_spec("smoke", "v2", parse_overrides(["layers=3"]))
    arm = tmp_path / "arm.yaml"
    arm.write_text("train: {gama: 0.1}\n")
    with pytest.raises(ConfigError, match=rf"^{arm}: train: gama: unknown key 'gama' \(did you mean 'gamma'\?\); valid keys: steps, "):
        load_arm(arm)
    arm.write_text("optim: {batch_scal: 2}\n")  # batch_scale is an arm's own optim key, not an OptimSpec field
    with pytest.raises(ConfigError, match=r"optim: batch_scal: unknown key 'batch_scal' \(did you mean 'batch_scale'\?\); "
                       r"valid keys: steps, .*, seed, batch_scale$"):
        load_arm(arm)
    assert cli_main(["train", "--set", "diffusion.schedul=cosine", "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ("error: command line: diffusion.schedul: unknown key 'schedul' (did you mean 'schedule'?); "
                                       "valid keys in diffusion: steps, schedule, absorbing, gamma, reg_rate, timestep_sampler\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"src": "a", "trg": "b"}\n{"src": "a", "trg": \n', r"bad\.jsonl:2: malformed JSON"),
        ('{"src": "a"}\n', r"bad\.jsonl:1: missing field 'trg'"),
        ('{"src": "a", "trg": 3}\n', r"bad\.jsonl:1: field 'trg' must be a string, got int"),
        ('[1, 2]\n', r"bad\.jsonl:1: expected a JSON object"),
        ("\n", r"bad\.jsonl: split is empty"),
        ('{"src": "a", "trg": "b", "refs": "x"}\n', r"bad\.jsonl:1: field 'refs' must be a list"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


def test_a_jsonl_line_ends_only_at_a_newline(tmp_path):
    """U+2028, U+2029 and \\x85 may stand raw inside a JSON string (str.splitlines breaks lines at
    each), and a line may end in \\r\\n: each pair stays whole."""
    odd = "a\u2028b\u2029c\x85d"
    path = tmp_path / "odd.jsonl"
    line = json.dumps({"src": odd, "trg": "x"}, ensure_ascii=False)
    assert "\u2028" in line and "\x85" in line  # written raw, not escaped
    path.write_text(line + "\r\n" + '{"src": "y", "trg": "z"}\n', encoding="utf-8", newline="")
    assert [(p.src, p.trg) for p in read_jsonl(path)] == [(odd, "x"), ("y", "z")]


def test_missing_dataset_errors_are_actionable(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSEQ_DATA_ROOT", raising=False)
    with pytest.raises(DataError, match="no data root"):
        load_split(DataSpec(dataset="qqp"), "train")
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match=r"datasets under the root: \['mine'\]"):
        load_split(DataSpec(dataset="qqp", data_root=str(tmp_path)), "train")
    with pytest.raises(DataError, match=r"train\.jsonl: file not found"):
        load_split(DataSpec(dataset="mine", data_root=str(tmp_path)), "train")


def test_named_dataset_from_root_and_env(tmp_path, monkeypatch):
    folder = tmp_path / "toy"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.jsonl").write_text(json.dumps({"src": f"{split} a", "trg": "b"}) + "\n")
    (folder / "test.refs.jsonl").write_text(json.dumps({"src": "test a", "trg": "b", "refs": ["b", "c"]}) + "\n")
    monkeypatch.setenv("DIFFUSEQ_DATA_ROOT", str(tmp_path))
    assert load_split(DataSpec(dataset="toy"), "valid") == [Pair("valid a", "b")]
    assert load_split(DataSpec(dataset="toy"), "test")[0].refs == ("b", "c")
    assert load_split(DataSpec(dataset=str(folder)), "train") == [Pair("train a", "b")]


def test_huggingface_path_with_column_names(tmp_path):
    folder = tmp_path / "hfdata"
    folder.mkdir()
    for split in ("train", "validation"):
        rows = [{"question1": f"q{i} {split}", "question2": f"p{i}"} for i in range(3)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = DataSpec(dataset=str(folder), hf=True, src_column="question1", trg_column="question2")
    assert load_split(spec, "valid")[1] == Pair("q1 validation", "p1")
    with pytest.raises(DataError, match="no column 'nope'"):
        load_split(DataSpec(dataset=str(folder), hf=True, src_column="nope"), "train")


def test_embedded_default_is_deterministic_and_disjoint():
    a, b = synthetic.generate(), synthetic.generate()
    assert a == b
    assert {k: len(v) for k, v in a.items()} == synthetic.SIZES
    srcs = {k: {s for s, _ in v} for k, v in a.items()}
    assert not (srcs["train"] & srcs["test"]) and not (srcs["train"] & srcs["valid"])


def test_bert_vocabulary_and_layout():
    tok = TextTokenizer.bert()
    assert tok.vocab_size == 30522
    assert (tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 101, 102, 103)
    enc = encode_pairs(tok, [Pair("hello world", "hi there friend")], seq_len=12)
    hello, world, hi, there, friend = (tok.encode_batch([w])[0][0] for w in ["hello", "world", "hi", "there", "friend"])
    assert enc.input_ids[0].tolist() == [101, hello, world, 102, 102, 101, hi, there, friend, 102, 0, 0]
    assert enc.input_mask[0].tolist() == [0] * 5 + [1] * 7
    assert enc.truncated == 0


def test_truncation_pops_the_longer_side_and_is_counted():
    tok = TextTokenizer.bert()
    long_src = " ".join(["word"] * 20)
    enc = encode_pairs(tok, [Pair(long_src, "a b"), Pair("x", "y")], seq_len=10)
    # budget seq_len - 3 = 7 tokens for [CLS] x and [CLS] y: the source keeps 4, the target 3.
    row = enc.input_ids[0].tolist()
    assert row[:4] == [101] + tok.encode_batch(["word word word"])[0]
    assert row[4:6] == [102, 102] and row[6] == 101 and row[-1] == 102
    assert enc.truncated == 1


def test_wordpiece_is_trained_once_per_corpus_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSEQ_CACHE", str(tmp_path))
    texts = [s for p in synthetic.generate()["train"][:500] for s in p]
    tok = build_tokenizer("wordpiece", 300, texts)
    assert len(list(tmp_path.glob("tokenizers/wordpiece-300-*.json"))) == 1
    assert tok.vocab_size <= 300 and tok.pad_id == 0 and tok.mask_id == 4
    again = build_tokenizer("wordpiece", 300, texts)
    assert again.tok.get_vocab() == tok.tok.get_vocab()
    build_tokenizer("wordpiece", 300, texts[:100])
    assert len(list(tmp_path.glob("tokenizers/*.json"))) == 2, "another corpus gets its own vocabulary"
    assert tok.decode(tok.encode_batch(["how can i buy a car ?"])[0]) == "how can i buy a car?"


def test_batches_depend_only_on_seed_and_step_and_split_across_ranks():
    a = BatchOrder(100, 8, seed=3)
    b = BatchOrder(100, 8, seed=3)
    assert [a.indices(s).tolist() for s in (0, 5, 13, 40)] == [b.indices(s).tolist() for s in (40, 13, 5, 0)][::-1]
    r0, r1 = BatchOrder(100, 8, 3, rank=0, world=2), BatchOrder(100, 8, 3, rank=1, world=2)
    assert sorted(r0.indices(7).tolist() + r1.indices(7).tolist()) == sorted(a.indices(7).tolist())
    with pytest.raises(ValueError, match="divisible"):
        BatchOrder(100, 7, 0, world=2)


def test_wordpiece_vocabulary_is_the_same_in_fresh_processes(tmp_path):
    """HF's trainer alone learns a different vocabulary in each process; ours must not."""
    script = (
        "import sys; from diffuseq import synthetic; from diffuseq.tokenizer import build_tokenizer\n"
        "texts = [s for p in synthetic.generate()['train'] for s in p]\n"
        "sys.stdout.write(build_tokenizer('wordpiece', 400, texts).tok.to_str())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env={**env, "DIFFUSEQ_CACHE": str(tmp_path / f"cache{i}")},
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    first, second = (p.communicate(timeout=120)[0] for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert json.loads(first)["model"]["vocab"] == json.loads(second)["model"]["vocab"]
    assert first == second


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"src": "a", "trg": "b"}\n{"src": "c", "trg": "d"}\n')
    assert read_jsonl(path) == [Pair("a", "b"), Pair("c", "d")]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_byte_that_is_not_utf8_is_reported_by_line(tmp_path, bom):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(bom + b'{"src": "a", "trg": "b"}\r\n\n{"src": "caf\xe9", "trg": "d"}\n')
    with pytest.raises(DataError, match=rf"^{path}:3: not UTF-8 \(byte 0xe9 at column 13\); save the file as UTF-8$"):
        read_jsonl(path)


def test_empty_sources_and_targets_are_counted_in_one_warning(tmp_path, caplog):
    path = tmp_path / "train.jsonl"
    rows = [{"src": "a", "trg": "b"}, {"src": "", "trg": "b"}, {"src": "a", "trg": "  "}, {"src": "c", "trg": "d"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="diffuseq"):
        pairs = read_jsonl(path)
    assert len(pairs) == 4
    (record,) = caplog.records
    assert f"{path}: 2 of 4 pairs have an empty src or trg (lines 2, 3); they are kept" == record.getMessage()


def test_user_arm_folders_are_read_before_the_built_in_arms(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSEQ_ARMS_DIR", raising=False)
    work, env_dir = tmp_path / "work", tmp_path / "env"
    (work / "ablations" / "arms").mkdir(parents=True)
    env_dir.mkdir()
    (work / "ablations" / "arms" / "mine.yaml").write_text("train: {absorbing: mask_token, gamma: 0.2}\n")
    (work / "ablations" / "arms" / "v2.yaml").write_text("train: {absorbing: learned, gamma: 0.7}\n")
    (env_dir / "v2.yaml").write_text("train: {absorbing: learned, gamma: 0.3}\n")
    assert load_arm("v2")["train"]["gamma"] == 0.5  # built in
    monkeypatch.chdir(work)
    assert load_arm("mine")["train"]["gamma"] == 0.2 and load_arm("v2")["train"]["gamma"] == 0.7
    monkeypatch.setenv("DIFFUSEQ_ARMS_DIR", str(env_dir))
    assert build_train_spec("smoke", "v2").diffusion.gamma == 0.3
    assert load_arm("baseline")["train"] == {"absorbing": "none", "gamma": 0.0}
    assert {"baseline", "mine", "v2"} <= set(ARMS.names())
    with pytest.raises(ConfigError, match=rf"unknown arm 'nope': no file nope\.yaml in {env_dir}, \./ablations/arms, .*diffuseq/arms"):
        load_arm("nope")
