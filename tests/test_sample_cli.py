"""``diffuseq sample`` end to end on a tiny trained model: files, fields, resume, clean errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diffuseq import family as family_mod
from diffuseq import samples as samples_mod
from diffuseq import synthetic
from diffuseq.cli import main
from diffuseq.config import LoopSpec, build_train_spec

ROW_FIELDS = {"index", "source", "reference", "recover", "refs"}
RECORD_FIELDS = {"seed", "nfe", "wall_s", "sentences_per_s", "n_sentences", "batch_size", "device", "threads",
                 "sampler", "key"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A smoke v2 model (T = 100, 60 steps) on a folder dataset whose test split has 2 references."""
    from diffuseq.train import train

    root = tmp_path_factory.mktemp("data")
    folder = root / "syn"
    folder.mkdir()
    data = synthetic.generate()
    for split, n in (("train", 400), ("valid", 40), ("test", 20)):
        rows = [{"src": s, "trg": t} for s, t in data[split][:n]]
        if split == "test":
            rows = [{**r, "refs": [r["trg"], r["trg"].replace("?", "please ?")]} for r in rows]
            split = "test.refs"
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = build_train_spec("smoke", "v2", {"data": {"dataset": "syn", "data_root": str(root)},
                                            "diffusion": {"steps": 100}, "optim": {"steps": 60}})
    out = tmp_path_factory.mktemp("run")
    train(spec, out, LoopSpec(eval_every=10_000, save_every=10_000), progress=False)
    return out


def sample(run_dir: Path, out: Path, *args: str) -> int:
    return main(["sample", "--run-dir", str(run_dir), "--out", str(out), "--limit", "10", "--batch-size", "4",
                 "--no-progress", *args])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("arm", ["baseline", "hard_mask", "absorb_train_only", "v2", "official_v2_sampling"])
def test_writes_samples_and_records_for_each_arm(run_dir, tmp_path, arm):
    extra = ["--set", "mbr=2"] if arm == "baseline" else []
    assert sample(run_dir, tmp_path, "--arm", arm, "--steps", "6", "--seed", "3", *extra) == 0
    seeds = [3, 4] if arm == "baseline" else [3]
    for seed in seeds:
        rows = read_jsonl(tmp_path / f"samples.seed{seed}.jsonl")
        assert [r["index"] for r in rows] == list(range(10))
        for r in rows:
            assert set(r) == ROW_FIELDS
            assert r["source"].startswith("[CLS] ") and r["source"].endswith(" [SEP] [SEP]")
            assert r["reference"].startswith("[CLS] ")
            assert len(r["recover"].split()) == len(r["reference"].split())  # the target part
            assert len(r["refs"]) == 2 and "[CLS]" not in r["refs"][0]
        record = json.loads((tmp_path / f"samples.seed{seed}.json").read_text())
        assert set(record) >= RECORD_FIELDS
        assert (record["seed"], record["nfe"], record["batch_size"], record["n_sentences"]) == (seed, 6, 4, 10)
        assert record["device"] == "cpu" and record["sentences_per_s"] > 0
        assert record["sampler"]["steps"] == 6
    mbr = tmp_path / "samples.mbr.jsonl"
    assert mbr.is_file() == (arm == "baseline")
    if arm == "baseline":
        assert all(r["seed"] in (3, 4) and r["mbr_seeds"] == [3, 4] for r in read_jsonl(mbr))


def test_flags_and_set_build_the_spec(run_dir, tmp_path):
    # --sampler ddpm on the v2 arm drops the arm's dpm-only `order`; --set adds ddpm's variance.
    assert sample(run_dir, tmp_path, "--arm", "v2", "--sampler", "ddpm", "--steps", "5",
                  "--set", "variance=posterior", "--set", "clamp=true") == 0
    spec = json.loads((tmp_path / "samples.seed0.json").read_text())["sampler"]
    assert (spec["sampler"], spec["steps"], spec["variance"], spec["clamp"]) == ("ddpm", 5, "posterior", True)
    assert spec["start"] == "absorbing"  # from the arm


def test_default_out_dir_is_under_the_run(run_dir, tmp_path, capsys):
    args = ["sample", "--run-dir", str(run_dir), "--limit", "2", "--steps", "2", "--no-progress"]
    assert main(args) == 0
    printed = Path(capsys.readouterr().out.split()[0])
    assert printed.parent.parent == run_dir / "samples" and printed.parent.name.startswith("test-dpm_solver++-")


def test_resume_after_interruption_gives_identical_output(run_dir, tmp_path, monkeypatch):
    args = ("--arm", "v2", "--steps", "4", "--batch-size", "3", "--set", "discrete_noise=official")  # 4 batches
    assert sample(run_dir, tmp_path / "whole", *args) == 0

    real, calls = family_mod.sample_batch, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(family_mod, "sample_batch", flaky)
    assert sample(run_dir, tmp_path / "resumed", *args) == 130  # Ctrl-C: a message, exit 130
    partial = tmp_path / "resumed" / "samples.seed0.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 1 + 2  # key + two finished batches
    assert not (tmp_path / "resumed" / "samples.seed0.jsonl").exists()

    calls.clear()
    assert sample(run_dir, tmp_path / "resumed", *args) == 0
    assert len(calls) == 2  # only the two unfinished batches ran
    assert not partial.exists()
    whole, resumed = (tmp_path / d / "samples.seed0.jsonl" for d in ("whole", "resumed"))
    assert resumed.read_text() == whole.read_text()

    calls.clear()
    assert sample(run_dir, tmp_path / "resumed", *args) == 0  # finished: nothing is recomputed
    assert calls == []


def test_seeds_decoded_together_equal_seeds_decoded_alone(run_dir, tmp_path, monkeypatch):
    args = ("--arm", "baseline", "--steps", "5", "--set", "mbr=3")  # DDPM with clamp; batches of 4, 4, 2
    assert sample(run_dir, tmp_path / "together", *args) == 0
    monkeypatch.setattr(samples_mod, "candidates_per_pass", lambda *a: 1)
    assert sample(run_dir, tmp_path / "alone", *args) == 0
    for name in ("samples.seed0.jsonl", "samples.seed1.jsonl", "samples.seed2.jsonl", "samples.mbr.jsonl"):
        assert (tmp_path / "together" / name).read_text() == (tmp_path / "alone" / name).read_text()
    together, alone = (json.loads((tmp_path / d / "samples.seed1.json").read_text()) for d in ("together", "alone"))
    assert (together["candidates_per_pass"], alone["candidates_per_pass"]) == (3, 1)


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "sampler=euler"], "sampler: Input should be 'ddim', 'ddpm', 'dpm_solver++', 'unmask', 'greedy' or 'beam'"),
    (["--set", "stepz=3"], "stepz: unknown key 'stepz' (did you mean 'steps'?); valid keys: sampler, steps, grid,"),
    (["--arm", "nope"], "unknown arm 'nope'"),
    (["--steps", "500"], "steps = 500 exceeds the model's T = 100"),
    (["--set", "mbr=3", "--num-samples", "2"], "mbr = 3 needs at least 3 samples per source"),
    (["--batch-size", "0"], "--batch-size must be ≥ 1"),
])
def test_bad_spec_is_a_clean_error(run_dir, tmp_path, capsys, args, message):
    assert sample(run_dir, tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_run_dir_is_a_clean_error(tmp_path, capsys):
    assert sample(tmp_path / "absent", tmp_path / "out") == 2
    assert "not a run directory (no config.json)" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "how"), [("ema.safetensors", "empty"), ("ema.safetensors", "cut"),
                                           ("model.safetensors", "cut"), ("state.pt", "empty")])
def test_corrupt_checkpoint_is_a_one_line_error_naming_the_file(run_dir, tmp_path, capsys, name, how):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("samples"))
    (ckpt,) = (run / "checkpoints").glob("step_*")
    data = (ckpt / name).read_bytes()
    (ckpt / name).write_bytes(b"" if how == "empty" else data[: len(data) - 100])
    assert sample(run, tmp_path / "out", "--steps", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {ckpt / name}: ") and "\n" not in err and "Traceback" not in err, err
    assert ("empty (0 bytes)" if how == "empty" else "cut short") in err and "re-run the training command" in err


def test_corrupt_tokenizer_is_a_one_line_error_naming_the_file(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("samples"))
    (run / "tokenizer.json").write_text('{"version": ')
    assert sample(run, tmp_path / "out", "--steps", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run / 'tokenizer.json'}: not a readable tokenizer") and "\n" not in err, err
