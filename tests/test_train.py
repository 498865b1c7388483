"""The training loop: learning, exact resume, divergence handling, the CLI and DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import diffuseq.train as train_mod
from diffuseq.cli import main as cli_main
from diffuseq.config import LoopSpec, build_train_spec, parse_overrides
from diffuseq.train import TrainingDiverged, checkpoint_dirs, load_model, train

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


def test_run_dir_with_other_spec_is_refused(tmp_path):
    train(tiny_spec(steps=2), tmp_path, LoopSpec(save_every=2), progress=False)
    with pytest.raises(ValueError, match="different training spec"):
        train(tiny_spec(steps=3), tmp_path, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real = train_mod.training_losses
    state = {"calls": 0}

    def poisoned(model, *args, **kwargs):
        terms = real(model, *args, **kwargs)
        if model.training:
            state["calls"] += 1
            if state["calls"] > 6:
                terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(train_mod, "training_losses", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 6.*step_0000005"):
        train(tiny_spec(steps=20), tmp_path, LoopSpec(save_every=5), progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_0000005"]
    model, _tok, _spec = load_model(tmp_path)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_trains_and_reports_bad_input(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--preset", "smoke", "--arm", "hard_mask", "--run-dir", str(run), "--no-progress", "--steps", "4",
            *[x for kv in TINY for x in ("--set", kv)]]
    assert cli_main(args) == 0
    assert (run / "config.json").is_file() and (run / "tokenizer.json").is_file()
    assert cli_main(["train", "--set", "model.nope=1", "--run-dir", str(tmp_path / "x")]) == 2
    assert "model.nope" in capsys.readouterr().err
    assert cli_main(["train", "--dataset", "qqp", "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "y")]) == 2
    assert "no folder" in capsys.readouterr().err


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
