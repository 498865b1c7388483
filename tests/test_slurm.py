"""Against a real SLURM cluster (scripts/slurm-local.sh, brought up by .ci/run): a suite as one
job array with the local executor's numbers, status from the scheduler, a killed task resubmitted
alone and resumed from its checkpoint, and the defects of issue 17 (a lost job hanging the runner,
status not asking SLURM, a pending resubmission shown as failed, re-runs duplicating live jobs).

Skipped when no one-node cluster with accounting answers; with BENCH_REQUIRE_SLURM=1 (set by
.ci/run once the cluster is up) that is a failure instead. Every job a test submits is cancelled
at its end. A "blocker" job holding all of the node's CPUs keeps the suite's jobs pending for as
long as a test needs.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.plan import load_plan
from bench.status import cell_states, expand_job_ids

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_bench import TINY, _numbers  # noqa: E402

pytestmark = pytest.mark.slurm
HOW = "bring one up with `sudo scripts/slurm-local.sh up` and export SLURM_CONF=/tmp/slurm-local/etc/slurm.conf"
# long enough to kill a model between checkpoints: 400 steps, a checkpoint every 100
LONG = {"overrides": {**TINY["overrides"], "optim.steps": 400}, "curves": {"every": 100, "examples": 4}}
ENV = {"OMP_NUM_THREADS": "1", "BENCH_SLURM_POLL_S": "1"}


def _cmd(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


def _cluster_problem() -> str | None:
    """Why the tests cannot run here, or None."""
    if shutil.which("sinfo") is None:
        return f"no SLURM client here (no sinfo); {HOW}"
    info = _cmd(["sinfo", "-h", "-N", "-o", "%N"], timeout=15)
    if info.returncode != 0:
        return f"no SLURM cluster answers ({_last_line(info.stderr)}); {HOW}"
    nodes = set(info.stdout.split())
    if len(nodes) != 1:
        return f"the SLURM cluster has {len(nodes)} nodes: these tests fill a node, so they run only on a one-node test cluster; {HOW}"
    acct = _cmd(["sacct", "-n", "-X", "-j", "1"], timeout=15)
    if acct.returncode != 0:
        return f"SLURM accounting is absent ({_last_line(acct.stderr)}), which submitit needs; {HOW}"
    return None


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    problem = _cluster_problem()
    if problem and os.environ.get("BENCH_REQUIRE_SLURM"):
        pytest.fail(f"BENCH_REQUIRE_SLURM is set, but {problem}")
    if problem:
        pytest.skip(problem)


def write(tmp_path: Path, name: str = "suite.yaml", **changes) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**TINY, "executor": {"kind": "slurm"}, **changes}))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """The LONG suite's numbers from the local executor (two worker processes, like two tasks)."""
    tmp = tmp_path_factory.mktemp("reference")
    path = write(tmp, **LONG)
    cmd = [sys.executable, "-m", "bench", "run", str(path), "--results", str(tmp / "res"), "--workers", "2", "--no-progress"]
    run = subprocess.run(cmd, cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return _numbers(tmp / "res")


class Runner:
    """``python -m bench run`` in the background, its output in a file."""

    def __init__(self, path: Path, results: Path, path_prefix: Path | None = None):
        self.results, self.out = results, results.parent / f"runner-{time.monotonic_ns()}.txt"
        env = {**os.environ, **ENV}
        if path_prefix:
            env["PATH"] = f"{path_prefix}:{env['PATH']}"
        cmd = [sys.executable, "-m", "bench", "run", str(path), "--results", str(results), "--no-progress"]
        with self.out.open("w") as f:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.out.read_text()

    def finish(self, timeout: float) -> str:
        """Its output once it exits; a runner still waiting after ``timeout`` fails the test."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"bench run still waiting after {timeout:.0f} s:\n{self.text()[-3000:]}")
        return self.text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def wait_until(ok: Callable[[], object], what: str, timeout: float = 120, runner: Runner | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if runner and runner.proc.poll() is not None:
            pytest.fail(f"bench run exited ({runner.proc.returncode}) before {what}:\n{runner.text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def records(results: Path) -> dict[str, str]:
    """train_key → recorded job id."""
    return {p.stem: json.loads(p.read_text())["job_id"] for p in (results / "jobs").glob("*.json")}


def state(job_id: str) -> str:
    """The job's state as squeue, else sacct, reports it ("" when neither knows it)."""
    queue = _cmd(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"])
    if queue.returncode == 0 and queue.stdout.strip():
        return queue.stdout.split()[0]
    array = job_id.split("_")[0]
    acct = _cmd(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", array]).stdout
    for line in acct.splitlines():  # a pending array cancelled as a whole stays one record: 12 or 12_[0-1%2]
        listed, _, listed_state = line.partition("|")
        if listed == array or job_id in expand_job_ids(listed):
            return listed_state.split(" ")[0]
    return ""


def scancel(*job_ids: str) -> None:
    if job_ids:
        _cmd(["scancel", "-s", "KILL", *job_ids])


@pytest.fixture
def start() -> Iterator[Callable[..., Runner]]:
    """Starts runners; when the test ends, however it ends, kills those still running and cancels
    every job recorded in their results directories."""
    runners: list[Runner] = []

    def start_runner(path: Path, results: Path, path_prefix: Path | None = None) -> Runner:
        runners.append(Runner(path, results, path_prefix))
        return runners[-1]

    yield start_runner
    for r in runners:
        if r.proc.poll() is None:
            r.kill()
    for results in {r.results for r in runners}:
        scancel(*{j.split("_")[0] for j in records(results).values()})


@contextmanager
def blocker() -> Iterator[str]:
    """A job holding every CPU of the node, so that jobs submitted meanwhile stay pending."""
    cpus = _cmd(["sinfo", "-h", "-N", "-o", "%c"]).stdout.split()[0]
    job = _cmd(["sbatch", "--parsable", "-J", "bench-blocker", "-c", cpus, "-o", "/dev/null", "--wrap", "sleep 600"])
    assert job.returncode == 0, job.stderr
    job_id = job.stdout.strip()
    try:
        wait_until(lambda: state(job_id) == "RUNNING", f"blocker job {job_id} to run", timeout=60)
        yield job_id
    finally:
        scancel(job_id)


def pending(results: Path, n: int) -> Callable[[], bool]:
    """Whether n job records exist and all their jobs are pending."""
    return lambda: len(jobs := records(results)) == n and all(state(j) == "PENDING" for j in jobs.values())


def status(path: Path, results: Path, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "bench", "status", str(path), "--results", str(results)],
                         cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_suite_is_one_job_array_with_local_numbers_and_live_status(tmp_path, reference, start):
    path, results = write(tmp_path, **LONG), tmp_path / "res"
    with blocker():
        runner = start(path, results)
        wait_until(pending(results, 2), "two pending array tasks", runner=runner)
        jobs = records(results)
        arrays = {j.split("_")[0] for j in jobs.values()}
        assert len(arrays) == 1 and sorted(j.split("_")[1] for j in jobs.values()) == ["0", "1"], jobs
        shown = status(path, results)
        for key, job in jobs.items():
            for c in next(g for g in load_plan(path).groups if g.train_key == key).cells:
                assert f"submitted {c.cell_id}  (job {job} PENDING)" in shown, shown
        assert "0 done, 0 running, 3 submitted" in shown
    seen: set[str] = set()

    def running_seen() -> bool:
        seen.update(s.state for s in cell_states(load_plan(path), results))
        return "running" in seen

    wait_until(running_seen, "a cell shown running", runner=runner)
    out = runner.finish(300)
    assert runner.proc.returncode == 0, out
    assert "3 cells run, 0 already done, 0 failed" in out
    assert seen <= {"submitted", "running", "done"}, seen
    assert "3 done, 0 running, 0 submitted, 0 failed, 0 pending" in status(path, results)
    assert {state(j) for j in jobs.values()} == {"COMPLETED"}
    pd.testing.assert_frame_equal(reference, _numbers(results))


def test_killed_task_alone_is_resubmitted_shown_pending_and_resumes_from_its_checkpoint(tmp_path, reference, start):
    """Defect 3 (a pending resubmission shown as failed), and a model killed mid-training resuming."""
    path, results = write(tmp_path, **LONG), tmp_path / "res"
    plan = load_plan(path)
    other, v2 = sorted(plan.groups, key=lambda g: "v2" in g.arms)
    ckpts = results / "models" / v2.train_key / "checkpoints"
    runner = start(path, results)
    wait_until(lambda: list(ckpts.glob("step_*[0-9]")), "a checkpoint of the v2 model", timeout=300, runner=runner)
    killed = records(results)[v2.train_key]
    scancel(f"{killed}.0")  # SIGKILL to the task's step: training dies at once (a cancel would wait KillWait)
    out = runner.finish(300)
    step = max(int(p.name.split("_")[1]) for p in ckpts.glob("step_*[0-9]"))
    assert runner.proc.returncode == 1, out
    assert step < 400, "the kill came after training ended"
    assert f"job {killed}" in out, out
    before = records(results)

    with blocker():
        again = start(path, results)
        wait_until(lambda: records(results)[v2.train_key] != killed, "the v2 group resubmitted", runner=again)
        wait_until(lambda: state(records(results)[v2.train_key]) == "PENDING", "the resubmission pending", runner=again)
        shown = {s.cell_id: s for s in cell_states(plan, results)}
        for c in v2.cells:
            assert shown[c.cell_id].state == "submitted", shown[c.cell_id]
            assert shown[c.cell_id].detail == f"job {records(results)[v2.train_key]} PENDING"
        assert [shown[c.cell_id].state for c in other.cells] == ["done"]
    out = again.finish(300)
    assert again.proc.returncode == 0, out
    assert "2 cells run, 1 already done, 0 failed" in out
    assert records(results)[other.train_key] == before[other.train_key], "the finished group was not resubmitted"
    steps = [row["step"] for row in map(json.loads, (ckpts.parent / "log.jsonl").read_text().splitlines())
             if row["split"] == "train"]
    assert steps[-1] == 400
    assert all(s > step for s in steps if steps.count(s) > 1), f"resumed from step {step}, not from scratch: {steps}"
    pd.testing.assert_frame_equal(reference, _numbers(results))


def test_status_asks_slurm_after_the_runner_and_its_jobs_were_killed(tmp_path, start):
    """Defect 2: status said "submitted" for jobs SLURM had cancelled."""
    path, results = write(tmp_path), tmp_path / "res"
    with blocker():
        runner = start(path, results)
        wait_until(pending(results, 2), "two pending array tasks", runner=runner)
        runner.kill()
        jobs = records(results)
        scancel(*jobs.values())
        wait_until(lambda: {state(j) for j in jobs.values()} == {"CANCELLED"}, "the jobs cancelled")
    shown = status(path, results)
    assert "0 done, 0 running, 0 submitted, 3 failed, 0 pending" in shown, shown
    for key, job in jobs.items():
        log = json.loads((results / "jobs" / f"{key}.json").read_text())["log"]
        assert f"(job {job} CANCELLED; log: {log})" in shown, shown


def test_rerun_waits_for_live_jobs_instead_of_resubmitting(tmp_path, start):
    """Defect 4: a re-run while earlier jobs were pending submitted their groups again and
    counted cells it did not run."""
    path, results = write(tmp_path), tmp_path / "res"
    with blocker():
        first = start(path, results)
        wait_until(pending(results, 2), "two pending array tasks", runner=first)
        first.kill()  # the runner is interrupted; its jobs live on
        jobs = records(results)
        again = start(path, results)
        wait_until(lambda: "waiting for" in again.text() or records(results) != jobs, "the re-run to decide",
                   runner=again)
        assert records(results) == jobs, "the re-run submitted the live jobs' groups again"
        queued = _cmd(["squeue", "-h", "-r", "-n", "bench", "-o", "%i"]).stdout.split()
        assert sorted(queued) == sorted(jobs.values()), queued
    out = again.finish(300)
    assert again.proc.returncode == 0, out
    assert "0 cells run, 0 already done, 3 finished by an earlier run's jobs, 0 failed" in out, out
    assert records(results) == jobs
    assert {state(j) for j in jobs.values()} == {"COMPLETED"}


def test_a_job_cancelled_without_accounting_fails_the_run_instead_of_hanging_it(tmp_path, start):
    """Defect 1: without accounting submitit saw the cancelled job as UNKNOWN forever."""
    path, results = write(tmp_path), tmp_path / "res"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacct").write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    (fake / "sacct").chmod(0o755)
    plan = load_plan(path)
    (v2,) = [g for g in plan.groups if "v2" in g.arms]
    runner = start(path, results, path_prefix=fake)
    wait_until(lambda: v2.train_key in records(results), "the v2 group submitted", runner=runner)
    killed = records(results)[v2.train_key]
    wait_until(lambda: state(killed) == "RUNNING", f"job {killed} to run", runner=runner)
    scancel(killed)
    out = runner.finish(180)
    assert runner.proc.returncode == 1, out
    log = json.loads((results / "jobs" / f"{v2.train_key}.json").read_text())["log"]
    for c in v2.cells:
        assert f"FAILED {c.cell_id}: job {killed} ended CANCELLED before finishing; log: {log}" in out, out
    assert "1 cells run, 0 already done, 2 failed" in out
    shown = status(path, results, env={"PATH": f"{fake}:{os.environ['PATH']}"})  # squeue instead of sacct
    assert "1 done, 0 running, 0 submitted, 2 failed, 0 pending" in shown, shown
