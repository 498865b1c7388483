"""benchmarks/parity/train_parity.py: its pure parts (log parsing, the verdict, the mapping of
the two configurations) without the official code, and its ``--tiny`` run end to end where the
official checkouts and their virtualenv exist (marked ``official``; CI has none, so it skips)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "parity"))
import train_parity as tp  # noqa: E402

# What the official logger writes with --log_interval 5 --eval_interval 5 (trimmed to the columns
# read, plus one quartile column): a training row (step = the index of the step just done), then
# the evaluation row, which has no step because the training row's dump cleared it; a row where
# evaluation and training fall on one dump carries both.
PROGRESS_CSV = """\
grad_norm,loss,loss_q0,mse,nll,samples,step,eval_loss,eval_mse,eval_nll
0.89,5.18,5.01,0.93,10.68,32,0,,,
,,,,,,,5.17,0.89,10.46
0.88,5.07,5.13,0.86,10.15,192,5,,,
,,,,,,,4.99,0.81,9.78
0.87,4.80,4.81,0.79,9.50,352,10,4.70,0.77,9.40
"""


def test_an_official_progress_csv_parses_into_curves(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text(PROGRESS_CSV)
    got = {(s, m): v for s, m, v in tp.official_curves(path)}
    # steps are updates done: index 0 → 1; the step-less evaluation rows take the row before's
    assert got[(1, "val_mse")] == pytest.approx(0.89)
    assert got[(1, "val_nll")] == pytest.approx(5.17 - 0.89)  # rounding NLL = loss − mse
    assert got[(1, "val_token_nll")] == pytest.approx(10.46)  # the official model-x0 NLL, kept apart
    assert got[(6, "val_mse")] == pytest.approx(0.81)
    assert got[(6, "train_nll")] == pytest.approx(5.07 - 0.86)
    assert got[(11, "val_mse")] == pytest.approx(0.77)
    assert got[(11, "train_mse")] == pytest.approx(0.79)
    assert sorted(s for s, m in got if m == "val_mse") == [1, 6, 11]


def test_our_log_parses_into_the_same_metrics(tmp_path):
    rows = [{"step": 5, "split": "train", "loss": 3.9, "mse": 1.0, "nll": 2.8, "m_norm": 1.03, "m_norm_ema": 1.05},
            {"step": 5, "split": "valid", "val_loss": 3.8, "val_mse": 1.01, "val_nll": 2.79, "val_token_nll": 6.5},
            {"step": 10, "split": "valid", "val_loss": 3.0, "val_mse": 0.9, "val_nll": 2.1}]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 15, "spl')  # torn last line
    got = {(s, m): v for s, m, v in tp.our_curves(log)}
    assert got == pytest.approx({(5, "train_mse"): 1.0, (5, "train_nll"): 2.9, (5, "m_norm"): 1.05,
                                 (5, "val_mse"): 1.01, (5, "val_nll"): 2.79, (5, "val_token_nll"): 6.5,
                                 (10, "val_mse"): 0.9, (10, "val_nll"): 2.1})
    assert not [m for _, m, _ in tp.our_curves(log, learned_m=False) if m == "m_norm"]  # v1: no m


def test_the_curve_figure_has_one_panel_per_branch_and_metric_with_points(tmp_path):
    rows = [dict(impl=impl, branch=b, seed=seed, step=step, metric=m, value=1.0 / step + seed)
            for impl in ("official", "ours") for seed in (0, 1) for step in (1, 50, 100)
            for b, m in (("v1", "val_mse"), ("v2", "val_mse"), ("v2", "m_norm"))]
    path = tmp_path / "curves.png"
    assert tp.plot_curves(rows, ["v1", "v2"], path) == [("v1", "val_mse"), ("v2", "val_mse"), ("v2", "m_norm")]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tp.plot_curves([], ["v1"], tmp_path / "none.png") == []
    assert not (tmp_path / "none.png").exists()


def test_ema_curves_score_official_files_and_our_runs_the_same_way(tmp_path):
    from diffuseq.official import import_official

    fx = ROOT / "tests" / "fixtures" / "official" / "v1"
    data, bert, model = tmp_path / "data", tmp_path / "bert", tmp_path / "official" / "model"
    for folder in (data, bert, model):
        folder.mkdir(parents=True)
    shutil.copyfile(fx / "data" / "test.jsonl", data / "valid.jsonl")
    shutil.copyfile(fx / "bert_config.json", bert / "config.json")
    shutil.copyfile(fx / "ema_0.99_000300.pt", model / "ema_0.99_000300.pt")
    args = {**json.loads((fx / "training_args.json").read_text()),
            "vocab": str(fx / "vocab.txt"), "config_name": str(bert), "data_dir": str(data)}
    (model / "training_args.json").write_text(json.dumps(args))

    official = tp.ema_curves(model, tmp_path / "official.json", batch=4, steps=300)
    assert sorted(m for _, m, _ in official) == ["ema_val_mse", "ema_val_token_nll"]
    assert {s for s, _, _ in official} == {300} and all(v > 0 for _, _, v in official)
    # the same weights as a run directory of ours give the same numbers
    import_official(model / "ema_0.99_000300.pt", tmp_path / "ours")
    assert tp.ema_curves(tmp_path / "ours", tmp_path / "ours.json", batch=4, steps=300) == official
    # a checkpoint already scored is read from the cache, not scored again
    cache = json.loads((tmp_path / "official.json").read_text())
    cache["ema_0.99_000300.pt"]["ema_val_mse"] = -1.0
    (tmp_path / "official.json").write_text(json.dumps(cache))
    assert (300, "ema_val_mse", -1.0) in tp.ema_curves(model, tmp_path / "official.json", batch=4, steps=300)


def test_the_final_value_averages_the_last_window():
    pts = [(100, 9.0), (1700, 1.0), (1900, 2.0), (2000, 3.0)]
    assert tp.final_value(pts, 2000, 0.2) == pytest.approx(2.0)
    assert tp.final_value([(100, 9.0)], 2000, 0.2) == 9.0  # nothing in the window: the last point
    assert tp.final_value([], 2000, 0.2) is None


def test_verdict_inside_the_seed_range_and_equivalent():
    v = tp.verdict("val_mse", "v2", ours=[0.100, 0.101, 0.099], official=[0.100, 0.102, 0.098], margin_frac=0.10)
    assert v.inside
    assert v.margin == pytest.approx(0.010)
    assert v.p is not None and v.p < 0.05
    assert v.equivalence.startswith("equivalent")
    assert "inside" in v.line() and "n=3" in v.line()


def test_verdict_clearly_outside_and_not_equivalent():
    v = tp.verdict("val_nll", "v1", ours=[2.0, 2.1, 1.9], official=[1.0, 1.02, 0.98], margin_frac=0.10)
    assert not v.inside
    assert v.p is not None and v.p > 0.5
    assert v.equivalence == "not shown equivalent"
    assert "OUTSIDE" in v.line()


def test_one_seed_is_inconclusive():
    v = tp.verdict("m_norm", "v2", ours=[1.0], official=[1.0, 1.01], margin_frac=0.10)
    assert v.p is None and v.equivalence.startswith("inconclusive")
    one = tp.verdict("m_norm", "v2", ours=[1.0, 1.1], official=[1.0], margin_frac=0.10)
    assert one.inside is None and "inconclusive (1 official seed)" in one.line()


def test_the_two_configurations_map_one_to_one():
    """Our importer reads the official flags the tool passes as exactly the spec it trains."""
    cfg = tp.Config()
    for branch in ("v1", "v2"):
        args = json.loads(json.dumps(tp.official_args(cfg, branch, 3, Path("m"), Path("c"), "bert"), default=str))
        assert tp.mapping_differences(args, tp.bert_config(cfg), tp.our_spec(cfg, branch, 3)) == []
    args["lr"] = 2e-4
    assert tp.mapping_differences(args, tp.bert_config(cfg), tp.our_spec(cfg, "v2", 3)) == [
        "optim.lr: official 0.0002, ours 0.0001"]
    # A word vocabulary: the official code records its size (specials included) in training_args.json.
    words = tp.Config(vocab_words=5000)
    args = json.loads(json.dumps(tp.official_args(words, "v2", 3, Path("m"), Path("c"), Path("v.txt")), default=str))
    ours = tp.our_spec(words, "v2", 3)
    assert (args["vocab"], ours.data.tokenizer, ours.data.vocab_size) == ("v.txt", "words", 5004)
    assert tp.mapping_differences(args | {"vocab_size": 5004}, tp.bert_config(words), ours) == []
    assert tp.mapping_differences(args | {"vocab_size": 5003}, tp.bert_config(words), ours) == [
        "data.vocab_size: official 5003, ours 5004"]
    assert tp._our_specials("[START] a [UNK] ? [END] [PAD]") == "[CLS] a [UNK] ? [SEP] [PAD]"


def test_a_work_folder_of_another_configuration_is_refused(tmp_path):
    """Finished stages are found by branch and seed: another configuration must not reuse them."""
    study = tp.Study(tp.Config(**tp.TINY, dataset=str(tmp_path / "data")), tmp_path / "out", tmp_path / "work", "python",
                     {}, 0.1, 0.2)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "config.json").write_text(json.dumps(dataclasses.asdict(study.cfg) | {"vocab_words": 100}))
    with pytest.raises(SystemExit, match=r"work: holds runs of another configuration \(vocab_words differ\)"):
        study.prepare()


def test_published_tables_carry_over_the_runs_a_new_work_folder_lacks(tmp_path):
    """A session's checkpoints need not outlive it: the report merges what the work folder holds
    with the runs and decodes already published in --out, and says whether a retrained run
    reproduced its published curves."""
    cfg = tp.Config(**tp.TINY, dataset=str(tmp_path / "qqp"))
    study = tp.Study(cfg, tmp_path / "out", tmp_path / "work", "python", {}, 0.1, 0.2)
    study.out.mkdir()
    end = cfg.steps
    published = [dict(impl=i, branch="v1", seed=0, step=s, metric="ema_val_mse", value=v)
                 for i, v in (("official", 0.5), ("ours", 0.6)) for s, v in ((10, v + 0.25), (end, v))]
    tp.write_csv(study.out / "curves.csv", published, ["impl", "branch", "seed", "step", "metric", "value"])
    old_bleu = dict(branch="v1", seed=0, model="official", decoder="official", arm="x", pairs=8, bleu=0.125)
    tp.write_csv(study.out / "bleu.csv", [old_bleu], list(old_bleu))
    (study.out / "mapping.json").write_text(json.dumps({  # on another machine (only the data folder's name counts),
        "config": dataclasses.asdict(cfg) | {"dataset": "/elsewhere/qqp", "decode_pairs": 2},  # decoding fewer pairs
        "differences": {"v1-s0": []}}))

    study.ours_final("v1", 0).mkdir(parents=True)  # its final checkpoint: the run's stamp

    def merge(ours_final: float) -> tuple:
        # the work folder: ours-v1-s0 trained again to the end, official-v1-s0 stopped early
        curves = [dict(impl="ours", branch="v1", seed=0, step=s, metric="ema_val_mse", value=v)
                  for s, v in ((10, 0.85), (end, ours_final))]
        curves.append(dict(impl="official", branch="v1", seed=0, step=5, metric="val_mse", value=1.0))
        finished, bleus, mapping = {("ours", "v1", 0)}, [], {}
        merged = tp.carry_over(study, curves, finished, bleus, mapping)
        return merged, curves, finished, bleus, mapping

    merged, curves, finished, bleus, mapping = merge(0.6)
    assert merged.carried == ["official-v1-s0"]  # published finished beats an unfinished run here
    assert finished == {("ours", "v1", 0), ("official", "v1", 0)}
    assert sorted((r["impl"], r["step"], r["value"]) for r in curves) == [
        ("official", 10, 0.75), ("official", end, 0.5), ("ours", 10, 0.85), ("ours", end, 0.6)]
    assert merged.reproduced == {"ours-v1-s0": "reproduced its published curves exactly"}
    assert list(merged.stamps) == ["ours-v1-s0"]
    assert bleus == [old_bleu] and mapping == {"v1-s0": []}
    assert merge(0.66)[0].reproduced == {"ours-v1-s0": "differs from its published curves by up to 10.00% of a value"}

    # Published with this run's stamp: the same training, so no new comparison, but the old verdict stays.
    stamped = json.loads((study.out / "mapping.json").read_text()) | {
        "stamps": merged.stamps, "reproduced": {"ours-v1-s0": "earlier verdict"}}
    (study.out / "mapping.json").write_text(json.dumps(stamped))
    assert merge(0.66)[0].reproduced == {"ours-v1-s0": "earlier verdict"}

    (study.out / "mapping.json").write_text(json.dumps({"config": dataclasses.asdict(cfg) | {"steps": 99}}))
    merged = merge(0.6)[0]  # another training configuration's tables are not mixed in
    assert (merged.carried, merged.reproduced) == ([], {})

    bleus = [old_bleu | {"pairs": 8}, old_bleu | {"pairs": 2, "bleu": 0.5}, old_bleu | {"model": "ours", "pairs": 2}]
    (v,) = tp.bleu_verdicts(bleus, ["v1"], 0.1)  # per number of pairs: the 8-pair row has no model to face
    assert (v.metric, v.ours, v.official) == ("BLEU (2 pairs), official decoder", (0.125,), (0.5,))


def test_both_decoders_on_the_official_models_are_paired_by_seed():
    row = dict(branch="v2", pairs=200, model="official", arm="x")
    bleus = [row | {"seed": 0, "decoder": "official", "bleu": 0.25}, row | {"seed": 0, "decoder": "ours", "bleu": 0.5},
             row | {"seed": 1, "decoder": "official", "bleu": 0.5}, row | {"seed": 1, "decoder": "ours", "bleu": 0.25},
             row | {"seed": 2, "decoder": "ours", "bleu": 0.75},  # no official decode of seed 2: no pair
             row | {"seed": 0, "decoder": "ours", "bleu": 0.0, "model": "ours"}]  # our model: not in this table
    assert tp.decoder_pairs(bleus) == ["| v2 | 200 | 0 | 0.2500 | 0.5000 | +0.2500 |",
                                       "| v2 | 200 | 1 | 0.5000 | 0.2500 | -0.2500 |",
                                       "| v2 | 200 | mean of 2 | | | +0.0000 |"]


def test_equal_embedding_and_hidden_sizes_are_refused():
    with pytest.raises(SystemExit, match="no input/output projections"):
        tp.Config(hidden=128, embed_dim=128).check()


# The prepared official code (benchmarks/parity/README.md §1-3), where train_parity looks by default:
# $DIFFUSEQ_OFFICIAL_PYTHON, $DIFFUSEQ_OFFICIAL_V1 and $DIFFUSEQ_OFFICIAL_V2 point elsewhere.
NEEDED = {"the official code's virtualenv ($DIFFUSEQ_OFFICIAL_PYTHON)": tp.OFFICIAL["python"],
          "the official v1 checkout, branch main ($DIFFUSEQ_OFFICIAL_V1)": tp.OFFICIAL["v1"] / "train.py",
          "the official v2 checkout, branch diffuseq-v2 ($DIFFUSEQ_OFFICIAL_V2)": tp.OFFICIAL["v2"] / "train.py"}
MISSING = [f"{what} at {path}" for what, path in NEEDED.items() if not path.exists()]


@pytest.mark.official
@pytest.mark.skipif(bool(MISSING), reason="needs " + "; ".join(MISSING) + " (benchmarks/parity/README.md)")
def test_tiny_runs_every_stage(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/parity/train_parity.py"), "--tiny",
                           "--jobs", "2", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=3600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    for branch in ("v1", "v2"):
        for metric in ("val_mse", "val_nll", "val_token_nll", "ema_val_mse", "ema_val_token_nll"):
            assert f"| {branch} | {metric} |" in report
    assert "| v2 | m_norm |" in report
    assert "inconclusive" in report  # one seed
    assert "bleu.csv keeps each row's): v1 8; v2 8." in report  # the pairs decoded, not a config field
    assert "![curves](curves.png)" in report and (out / "curves.png").is_file()
    curves = (out / "curves.csv").read_text().splitlines()
    assert curves[0] == "impl,branch,seed,step,metric,value"
    assert {tuple(r.split(",")[:2]) for r in curves[1:]} == {(i, b) for i in ("official", "ours") for b in ("v1", "v2")}
    bleu = (out / "bleu.csv").read_text().splitlines()
    assert len(bleu) == 1 + 2 * 3  # per branch: official/official, official/ours, ours/ours
    assert json.loads((out / "mapping.json").read_text())["differences"] == {"v1-s0": [], "v2-s0": []}
    for branch in ("v1", "v2"):  # the official decoder ran in two chunks of 4 pairs, joined in order
        logs = out / "logs" / f"official-{branch}-s0"
        assert sorted(f.name for f in logs.glob("decode-chunk*.log")) == ["decode-chunk0.log", "decode-chunk1.log"]
        rows = [json.loads(line) for line in (logs / "examples.official-decoder.jsonl").read_text().splitlines()]
        assert [r["index"] for r in rows] == list(range(8))
        chunk1 = (tmp_path / "work" / f"official-{branch}-s0" / "samples.official.chunk1.jsonl").read_text()
        assert [tp._our_specials(json.loads(line)["recover"]) for line in chunk1.splitlines()] == \
            [r["recover"] for r in rows[4:]]
