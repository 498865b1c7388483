"""Each cell's state from the results directory and the scheduler: done, running, submitted,
failed or pending.

"running" means a process holds the lock of the cell's model (bench/worker.py) or SLURM runs
its job; "submitted" means a cluster job was submitted for it (results/jobs/, bench/cluster.py)
and has neither started, finished nor failed yet. Of a cell's error file and its group's job
record, the newer one wins: a pending resubmission is "submitted", not "failed". For a SLURM job
the scheduler is asked (``sacct``, or ``squeue`` where accounting is absent): a job that ended
without finishing the cell is "failed", with its SLURM state (CANCELLED, FAILED, TIMEOUT,
OUT_OF_MEMORY, …), its job id and its log file.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.plan import Plan
from bench.store import Store

# SLURM job states in which the job may still run and write results; any other state is final
LIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                  "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})
QUERY_TIMEOUT_S = 30


@dataclass(frozen=True)
class CellState:
    cell_id: str
    state: str  # done, running, submitted, failed or pending
    detail: str = ""  # the job and its SLURM state, or the recorded error


def job_records(results: Path) -> dict[str, dict]:
    """train_key → the record of the group's latest job (``mtime`` added: when it was written)."""
    records = {}
    for p in sorted((results / "jobs").glob("*.json")):
        records[p.stem] = {**json.loads(p.read_text()), "mtime": p.stat().st_mtime}
    return records


def expand_job_ids(job_id: str) -> list[str]:
    """``12_[0-2,5%2]`` (a pending array as sacct/squeue print it) → 12_0, 12_1, 12_2, 12_5."""
    m = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id)
    if not m:
        return [job_id]
    out = []
    for part in m[2].split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m[1]}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _query(cmd: list[str]) -> dict[str, str] | None:
    """Run a sacct/squeue listing of ``JOBID|STATE`` lines; None when it fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return {} if "Invalid job id" in out.stderr else None  # squeue: none of the jobs is known
    states = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        for one in expand_job_ids(job_id):
            states[one] = state.split()[0] if state else "UNKNOWN"  # "CANCELLED by 0" → CANCELLED
    return states


def _pick(listing: dict[str, str], ids: list[str]) -> dict[str, str]:
    """The listed states of ``ids``. An array task takes its array's state where only the array
    is listed: a pending array cancelled as a whole stays one record."""
    out = {}
    for i in ids:
        if state := listing.get(i) or listing.get(i.split("_")[0]):
            out[i] = state
    return out


def scheduler_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """SLURM's state of each job it knows: ``sacct``, then ``squeue`` for jobs sacct does not
    list (accounting absent, or not yet recorded). A job in neither is missing from the result;
    None when SLURM does not answer at all."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    arrays = ",".join(sorted({i.split("_")[0] for i in ids}))  # an array lists its pending tasks too
    acct = _query(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", arrays])
    states = _pick(acct or {}, ids)
    if missing := [i for i in ids if i not in states]:
        queue = _query(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", arrays])
        if queue is None and acct is None:
            return None
        states |= _pick(queue or {}, missing)
    return states


def _job_state(record: dict, states: dict[str, str] | None) -> tuple[str, str]:
    """(cell state, detail) of an unfinished cell whose group's job record is its newest record."""
    job, log = record["job_id"], record.get("log", "?")
    if record.get("engine") != "slurm":
        return "submitted", f"job {job}"
    if states is None:
        return "submitted", f"job {job}; SLURM does not answer"
    state = states.get(job)
    if state is None:
        return "failed", f"job {job} is unknown to SLURM; log: {log}"
    if state in LIVE:
        return ("running" if state == "RUNNING" else "submitted"), f"job {job} {state}"
    return "failed", f"job {job} {state}; log: {log}"


def cell_states(plan: Plan, results: Path) -> list[CellState]:
    store = Store(results)
    cells = plan.cells
    errors = {p.stem: p for p in (results / "errors").glob("*.json")}
    records = job_records(results)
    unfinished = {c.train_key for c in cells if not store.is_done(c.cell_id)}
    slurm = [r["job_id"] for k, r in records.items() if k in unfinished and r.get("engine") == "slurm"]
    states = scheduler_states(slurm) if slurm else {}
    out = []
    for c in cells:
        record, error = records.get(c.train_key), errors.get(c.cell_id)
        if record and c.cell_id not in record.get("cells", []):
            record = None  # the group's latest job did not include this cell
        if store.is_done(c.cell_id):
            out.append(CellState(c.cell_id, "done"))
        elif store.is_locked(c.train_key):
            out.append(CellState(c.cell_id, "running", f"job {record['job_id']}" if record else ""))
        elif record and (error is None or record["mtime"] >= error.stat().st_mtime):
            out.append(CellState(c.cell_id, *_job_state(record, states)))
        elif error:
            out.append(CellState(c.cell_id, "failed", json.loads(error.read_text())["error"].partition("\n")[0]))
        else:
            out.append(CellState(c.cell_id, "pending"))
    return out


def cell_status(plan: Plan, results: Path) -> list[tuple[str, str]]:
    """(cell_id, state) of every cell of the plan."""
    return [(s.cell_id, s.state) for s in cell_states(plan, results)]
