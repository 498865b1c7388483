"""scripts/gpu-probe.sh: its CPU rehearsal runs every stage, and the probe suite is sized to the
time budget from the measured training step."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bench.gpu_probe as probe

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_dry_run_rehearses_every_stage(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(REPO / "scripts" / "gpu-probe.sh"), "--dry-run", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stages = {row[0]: row[1] for row in csv.reader((tmp_path / "stages.tsv").open(), delimiter="\t")}
    assert stages == dict.fromkeys(["machine", "cuda-tests", "paper-step", "suite-size", "suite", "report"], "0")
    assert json.loads((tmp_path / "machine.json").read_text())["torch"]
    assert [r["microbatch"] for r in json.loads((tmp_path / "paper_step.json").read_text())] == [8, 64]
    table = pd.read_parquet(tmp_path / "table.parquet")
    assert {"baseline", "v2", "copy_source"} <= set(table["arm"])
    timing = pd.read_parquet(tmp_path / "timing.parquet")
    assert {"train_step", "forward", "sample_batch"} == set(timing["kind"])
    assert (tmp_path / "report" / "report.md").is_file()


def test_an_unknown_option_and_a_missing_gpu_are_one_line_errors():
    bad = subprocess.run([str(REPO / "scripts" / "gpu-probe.sh"), "--fast"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: unknown argument --fast; see scripts/gpu-probe.sh --help"
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    none = subprocess.run([str(REPO / "scripts" / "gpu-probe.sh"), "--out", "/nonexistent/x"], env=env,
                          capture_output=True, text=True)
    assert none.returncode == 2 and "no CUDA device" in none.stderr and "--dry-run" in none.stderr


@pytest.mark.parametrize(("step_s", "steps"), [(0.05, 2000), (0.0123, 4000), (0.5, 500)])
def test_the_probe_trains_as_many_steps_as_the_budget_holds(monkeypatch, step_s, steps):
    """200 s for two models: 200 / (2 × step) steps, in hundreds, within [500, the preset's 4000]."""
    monkeypatch.setattr(probe, "step_seconds", lambda spec, n: step_s)
    monkeypatch.setenv("DIFFUSEQ_DATA_ROOT", str(REPO))  # never read: the step time is given
    doc, sizing = probe.probe_suite(200.0, dry_run=False)
    assert sizing["steps"] == steps and doc["overrides"]["optim.steps"] == steps
    assert doc["preset"] == "gpu_mid" and doc["arms"] == ["baseline", "v2"]


def test_the_dry_run_shrinks_every_size():
    doc, sizing = probe.probe_suite(200.0, dry_run=True)
    assert sizing == {"dry_run": True} and doc["preset"] == "smoke"
    assert doc["overrides"]["optim.steps"] == 20 and doc["decode"]["limit"] == 8
    assert all(e["set"]["steps"] == probe.DRY_CHAIN for e in doc["samplers"] if "baseline" in e["arms"])
