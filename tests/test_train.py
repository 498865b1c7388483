"""The training loop: learning, exact resume, divergence handling, the CLI and DDP."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import diffuseq.checkpoint as checkpoint_mod
import diffuseq.family as family_mod
import diffuseq.train as train_mod
from diffuseq.checkpoint import CheckpointError
from diffuseq.cli import main as cli_main
from diffuseq.config import ConfigError, LoopSpec, build_train_spec, parse_overrides
from diffuseq.rundir import load_model
from diffuseq.train import TrainingDiverged, checkpoint_dirs, train

TINY = ["model.layers=1", "model.hidden=32", "model.ffn=64", "data.seq_len=32", "optim.batch_size=16"]


def tiny_spec(arm="v2", steps=20, extra=()):
    return build_train_spec("smoke", arm, parse_overrides([*TINY, f"optim.steps={steps}", *extra]))


def log_rows(run_dir, split):
    return [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if r["split"] == split]


@pytest.mark.parametrize("arm", ["baseline", "hard_mask", "v2"])
def test_training_loss_falls_on_embedded_data(tmp_path, arm):
    spec = build_train_spec("smoke", arm, parse_overrides(["model.layers=1", "optim.steps=150"]))
    train(spec, tmp_path, LoopSpec(log_every=1, eval_every=100, save_every=200), progress=False)
    rows = log_rows(tmp_path, "train")
    first = sum(r["loss"] for r in rows[:10]) / 10
    final = sum(r["loss"] for r in rows[-10:]) / 10
    assert final < 0.7 * first, (first, final)
    last = rows[-1]
    val = [r["val_loss"] for r in log_rows(tmp_path, "valid")]
    assert val[-1] < val[0]
    assert {r["threads"] for r in log_rows(tmp_path, "valid")} == {torch.get_num_threads()}  # curves' last bits depend on it
    assert {"tokens_per_s", "lr", "grad_norm", "nll", "prior", "reg"} <= set(last)


@pytest.mark.parametrize("microbatch", [None, 6])
def test_resume_continues_exactly(tmp_path, microbatch):
    spec = tiny_spec(steps=20, extra=[f"optim.microbatch={microbatch or 'null'}"])
    straight = tmp_path / "straight"
    train(spec, straight, LoopSpec(save_every=20), progress=False)
    resumed = tmp_path / "resumed"
    short = spec
    # Stop after 10 steps by simulating an interruption right after the step-10 checkpoint.
    calls = {"n": 0}
    real_save = train_mod.save_checkpoint

    def save_then_crash(*args, **kwargs):
        out = real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return out

    train_mod.save_checkpoint = save_then_crash
    try:
        with pytest.raises(KeyboardInterrupt):
            train(short, resumed, LoopSpec(save_every=10), progress=False)
    finally:
        train_mod.save_checkpoint = real_save
    assert [p.name for p in checkpoint_dirs(resumed)] == ["step_0000010"]
    train(short, resumed, LoopSpec(save_every=10), progress=False)
    a = load_file(checkpoint_dirs(straight)[-1] / "model.safetensors")
    b = load_file(checkpoint_dirs(resumed)[-1] / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ea = load_file(checkpoint_dirs(straight)[-1] / "ema.safetensors")
    eb = load_file(checkpoint_dirs(resumed)[-1] / "ema.safetensors")
    assert all(torch.equal(ea[k], eb[k]) for k in ea)


def test_more_steps_continue_the_run_and_other_changes_are_refused(tmp_path):
    train(tiny_spec(steps=4), tmp_path, LoopSpec(save_every=2), progress=False)
    train(tiny_spec(steps=6), tmp_path, LoopSpec(save_every=2), progress=False)
    assert [r["step"] for r in log_rows(tmp_path, "train") if r["step"] > 4] == [6]
    assert checkpoint_dirs(tmp_path)[-1].name == "step_0000006"
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["train"]["optim"]["steps"] == 6 and meta["key"] == tiny_spec(steps=6).key()
    assert meta["extended"] == [{"at_step": 4, "from_steps": 4, "from_key": tiny_spec(steps=4).key()}]
    train(tiny_spec(steps=6), tmp_path, progress=False)  # the same spec again: nothing to do
    assert len(log_rows(tmp_path, "train")) == 2
    with pytest.raises(ConfigError, match=r"config\.json: .*differing in model\.layers \(1 -> 2\), optim\.lr .*"
                                          r"only optim\.steps may grow"):
        train(tiny_spec(steps=8, extra=["model.layers=2", "optim.lr=0.01"]), tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"differing in optim\.steps \(6 -> 3\)"):
        train(tiny_spec(steps=3), tmp_path, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real = family_mod.training_losses
    state = {"calls": 0}

    def poisoned(model, *args, **kwargs):
        terms = real(model, *args, **kwargs)
        if model.training:
            state["calls"] += 1
            if state["calls"] > 6:
                terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(family_mod, "training_losses", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 6.*step_0000005"):
        train(tiny_spec(steps=20), tmp_path, LoopSpec(save_every=5), progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_0000005"]
    model, _tok, _spec = load_model(tmp_path)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    capsys.readouterr()
    assert cli_main(["train", "--run-dir", str(tmp_path / "cli"), "--no-progress", *[x for kv in TINY for x in ("--set", kv)]]) == 2
    assert "error: loss is nan at step 0" in one_error_line(capsys)


def test_cli_trains_and_reports_bad_input(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--preset", "smoke", "--arm", "hard_mask", "--run-dir", str(run), "--no-progress", "--steps", "4",
            "--save-every", "1", "--keep-checkpoints", "3", *[x for kv in TINY for x in ("--set", kv)]]
    assert cli_main(args) == 0
    assert (run / "config.json").is_file() and (run / "tokenizer.json").is_file()
    assert sorted(c.name for c in (run / "checkpoints").iterdir()) == [f"step_{n:07d}" for n in (2, 3, 4)]
    assert cli_main(["train", "--set", "model.nope=1", "--run-dir", str(tmp_path / "x")]) == 2
    assert "model.nope" in capsys.readouterr().err
    assert cli_main(["train", "--dataset", "qqp", "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "y")]) == 2
    assert "no folder" in capsys.readouterr().err
    assert not (tmp_path / "y").exists(), "a data error leaves no empty run directory behind"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_cli_bad_arguments_are_one_line_errors(tmp_path, capsys):
    run = ["--run-dir", str(tmp_path / "run")]
    assert cli_main(["train", "--set", "model.layers", *run]) == 2
    assert "--set 'model.layers': expected KEY=VALUE" in one_error_line(capsys)
    assert cli_main(["train", "--eval-every", "0", *run]) == 2
    assert "error: --eval-every: Input should be greater than or equal to 1" in one_error_line(capsys)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  layers: [1, 2\noptim: {}\n")
    assert cli_main(["train", "--config", str(bad_yaml), *run]) == 2
    assert f"{bad_yaml}: not valid YAML: line " in one_error_line(capsys)
    a_list = tmp_path / "list.yaml"
    a_list.write_text("- model.layers=2\n")
    assert cli_main(["train", "--config", str(a_list), *run]) == 2
    assert f"{a_list}: expected a mapping of sections" in one_error_line(capsys)
    assert cli_main(["train", "--config", str(tmp_path / "nope.yaml"), *run]) == 2
    assert "nope.yaml: file not found" in one_error_line(capsys)
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert cli_main(["train", "--run-dir", str(a_file), *[x for kv in TINY for x in ("--set", kv)]]) == 2
    assert f"{a_file}: exists and is not a folder" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_run_dir_with_another_spec(tmp_path, capsys):
    args = ["train", "--run-dir", str(tmp_path), "--no-progress", "--steps", "2", *[x for kv in TINY for x in ("--set", kv)]]
    assert cli_main(args) == 0
    capsys.readouterr()
    assert cli_main([*args, "--set", "model.hidden=64", "--set", "diffusion.gamma=0.3"]) == 2
    err = one_error_line(capsys)
    assert "differing in diffusion.gamma (0.5 -> 0.3), model.hidden (32 -> 64)" in err and "--run-dir" in err


def write_dataset(folder: Path, n_train: int, n_other: int = 4) -> Path:
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("valid", n_other), ("test", n_other)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"src": f"how do i {i}", "trg": f"what is {i}"}) + "\n"
                                                       for i in range(n)))
    return folder


def test_a_split_smaller_than_one_batch_is_a_one_line_error_with_the_fix(tmp_path, capsys):
    data = write_dataset(tmp_path / "tiny", n_train=6)
    args = ["train", "--dataset", str(data), "--run-dir", str(tmp_path / "run"), "--no-progress", "--steps", "2"]
    assert cli_main(args) == 2
    err = one_error_line(capsys)
    assert f"{data / 'train.jsonl'}: training split has 6 examples, fewer than one batch of 32" in err
    assert "--batch-size 6" in err and "--set optim.batch_size=6" in err
    assert not (tmp_path / "run").exists()
    assert cli_main([*args, "--batch-size", "6"]) == 0


def test_ddp_two_processes_hold_the_same_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_worker.py")), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sums = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sums[0]["step"] == sums[1]["step"] == 6
    assert sums[0]["params"] == sums[1]["params"]
    assert checkpoint_dirs(tmp_path / "run")[-1].name == "step_0000006"


def test_zero_absorbing_state_stays_at_the_origin_and_the_head_bias_is_trained(tmp_path):
    zero = tiny_spec("zero_absorb", steps=20)
    train(zero, tmp_path / "zero", LoopSpec(save_every=20), progress=False)
    model, _, _ = load_model(tmp_path / "zero")
    assert "m" not in dict(model.named_parameters())
    assert torch.equal(model.absorbing_state(), torch.zeros(zero.model.embed_dim))
    assert model.lm_bias.abs().max() > 0  # trained through the rounding NLL, from zeros
    rows = log_rows(tmp_path / "zero", "train")
    assert all(r["m_norm"] == 0.0 for r in rows)

    nobias = tiny_spec("v2", steps=5, extra=["model.head_bias=false"])
    train(nobias, tmp_path / "nobias", LoopSpec(save_every=5), progress=False)
    model, _, _ = load_model(tmp_path / "nobias")
    assert model.lm_bias is None and "lm_bias" not in model.state_dict()


def corrupt(path: Path, how: str) -> None:
    """Empty a file, or cut it to half its size."""
    data = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else data[: len(data) // 2])


@pytest.fixture(scope="module")
def ten_steps(tmp_path_factory) -> Path:
    """A tiny run with checkpoints at steps 5 and 10."""
    run = tmp_path_factory.mktemp("ten") / "run"
    train(tiny_spec(steps=10), run, LoopSpec(save_every=5), progress=False)
    return run


@pytest.mark.parametrize(("name", "how"), [("ema.safetensors", "empty"), ("model.safetensors", "cut"), ("state.pt", "cut"),
                                           ("state.pt", "empty")])
def test_resume_sets_a_corrupt_checkpoint_aside_and_continues_from_the_previous(ten_steps, tmp_path, caplog, name, how):
    run = tmp_path / "run"
    shutil.copytree(ten_steps, run)
    final = {k: v.clone() for k, v in load_file(run / "checkpoints" / "step_0000010" / "model.safetensors").items()}
    corrupt(run / "checkpoints" / "step_0000010" / name, how)
    with caplog.at_level(logging.WARNING, logger="diffuseq"):
        train(tiny_spec(steps=10), run, LoopSpec(save_every=5), progress=False)
    warning = next(r.getMessage() for r in caplog.records if "set aside" in r.getMessage())
    assert str(run / "checkpoints" / "step_0000010" / name) in warning and "resuming from step_0000005" in warning
    assert (run / "checkpoints" / "step_0000010.corrupt").is_dir()
    assert [p.name for p in checkpoint_dirs(run)] == ["step_0000005", "step_0000010"]
    again = load_file(run / "checkpoints" / "step_0000010" / "model.safetensors")
    assert all(torch.equal(final[k], again[k]) for k in final), "retraining from step 5 gives the same weights"


def test_no_intact_checkpoint_left_trains_from_the_start(ten_steps, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(ten_steps, run)
    for ckpt in checkpoint_dirs(run):
        corrupt(ckpt / "ema.safetensors", "cut")
    with caplog.at_level(logging.WARNING, logger="diffuseq"):
        train(tiny_spec(steps=10), run, LoopSpec(save_every=5), progress=False)
    assert "no checkpoint is left, training from step 0" in caplog.text
    assert [p.name for p in checkpoint_dirs(run)] == ["step_0000005", "step_0000010"]


def test_a_checkpoint_that_fails_verification_never_becomes_the_newest(tmp_path, monkeypatch):
    real = checkpoint_mod.save_file

    def short_write(tensors, path):  # e.g. a full disk: the file ends early
        real(tensors, path)
        if "step_0000010" in str(path):
            corrupt(Path(path), "cut")

    monkeypatch.setattr(checkpoint_mod, "save_file", short_write)
    with pytest.raises(CheckpointError, match=r"step_0000010\.tmp/model\.safetensors: cut short.*right after writing it"):
        train(tiny_spec(steps=10), tmp_path, LoopSpec(save_every=5), progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_0000005"]
