"""Scale-out: submitit engines give the local results; killed jobs are resubmitted; torchrun cells."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.cluster import submitit_parameters
from bench.plan import load_plan
from bench.runner import make_executor, run_suite
from bench.status import cell_status, expand_job_ids
from bench.store import Store

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_bench import TINY, _numbers  # noqa: E402


def write(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def test_array_records_expand_to_their_tasks():
    """sacct and squeue print a pending array as one record; status needs each task's id."""
    assert expand_job_ids("12_[0-2,5%2]") == ["12_0", "12_1", "12_2", "12_5"]
    assert expand_job_ids("41_[0-1]") == ["41_0", "41_1"]
    assert expand_job_ids("41_1") == ["41_1"] and expand_job_ids("41") == ["41"]


def test_option_names_map_to_submitit():
    assert submitit_parameters({"partition": "gpu", "gpus_per_task": 4, "array_parallelism": 8, "timeout_min": 60}) == {
        "slurm_partition": "gpu", "gpus_per_node": 4, "slurm_array_parallelism": 8, "timeout_min": 60}


def test_submitit_debug_engine_matches_local_executor(tmp_path):
    path = write(tmp_path)
    plan = load_plan(path)
    run_suite(plan, tmp_path / "local", progress=False)
    run_suite(plan, tmp_path / "debug", executor=make_executor(plan.suite, Store(tmp_path / "debug"), "debug"), progress=False)
    pd.testing.assert_frame_equal(_numbers(tmp_path / "local"), _numbers(tmp_path / "debug"))
    assert len(list((tmp_path / "debug" / "jobs").glob("*.json"))) == 2, "one job record per model"


def test_killed_job_is_resubmitted_and_finished_cells_are_not(tmp_path):
    path = write(tmp_path, overrides={**TINY["overrides"], "optim.steps": 400}, curves={"every": 50, "examples": 4})
    plan = load_plan(path)
    results = tmp_path / "res"
    run_suite(plan, results, only="hard_mask", progress=False)
    first = next(g for g in plan.groups if g.arms == ["hard_mask"])
    first_record = (results / "jobs" / f"{first.train_key}.json")
    assert not first_record.exists()  # the local executor submits no jobs

    cmd = [sys.executable, "-m", "bench", "run", str(path), "--results", str(results), "--executor", "submitit_local", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runner = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (v2,) = [g for g in plan.groups if g.arms == ["absorb_train_only", "v2"]]
    record, ckpts = results / "jobs" / f"{v2.train_key}.json", results / "models" / v2.train_key / "checkpoints"
    for _ in range(3000):  # poll for up to ~5 minutes until the job has written a checkpoint
        if record.is_file() and ckpts.is_dir() and list(ckpts.glob("step_*[0-9]")):
            break
        assert runner.poll() is None, runner.communicate()[0]
        time.sleep(0.1)
    else:
        pytest.fail("the submitted job never wrote a checkpoint")
    job = json.loads(record.read_text())["job_id"]  # submitit's local job: a controller and its worker
    subprocess.run(["pkill", "-KILL", "-P", job], check=True)  # the job dies mid-training
    os.kill(int(job), signal.SIGKILL)
    out = runner.communicate(timeout=300)[0]
    assert runner.returncode == 1, out
    states = dict(cell_status(plan, results))
    assert sorted(states.values()) == ["done", "failed", "failed"], states

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "2 cells run, 1 already done" in again.stdout
    assert not first_record.exists(), "the finished model's cells were not resubmitted"
    assert sorted(dict(cell_status(plan, results)).values()) == ["done"] * 3
    log = (results / "models" / v2.train_key / "log.jsonl").read_text()
    assert json.loads(log.splitlines()[-1])["step"] == 400


def test_torchrun_two_processes_train_a_cell_like_one_process(tmp_path):
    one = write(tmp_path, arms=["v2"])
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump({**TINY, "arms": ["v2"], "executor": {"procs_per_task": 2}}))
    run_suite(load_plan(one), tmp_path / "one", progress=False)
    run_suite(load_plan(two), tmp_path / "two", progress=False)
    a, b = (pd.read_parquet(tmp_path / d / "table.parquet") for d in ("one", "two"))
    assert list(a.columns) == list(b.columns)
    assert sorted(a.metric) == sorted(b.metric)
    curves = pd.read_parquet(tmp_path / "two" / "curves.parquet")
    assert {"bleu", "val_loss", "m_norm"} <= set(curves.metric) and curves.step.max() == 20
