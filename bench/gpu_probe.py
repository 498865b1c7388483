"""The steps of ``scripts/gpu-probe.sh`` that need Python: the machine, the probe suite sized to
the time budget, and what one training step of the paper's preset costs on this device.

    python -m bench.gpu_probe machine --out machine.json
    python -m bench.gpu_probe suite --out suite.yaml [--train-budget-s 240] [--dry-run]
    python -m bench.gpu_probe paper-step --out paper_step.json [--dry-run]

``--dry-run`` shrinks every size (model, steps, decoded sources, sampler chains, timing
repetitions) so that the whole probe runs on a CPU in a minute or two: the rehearsal CI runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from bench.spec import SUITES, nested
from diffuseq.config import TrainSpec, build_train_spec, merge, read_yaml
from diffuseq.data import DATA_ROOT_ENV
from diffuseq.io import write_atomic
from diffuseq.train import setup_distributed, setup_run, train_step

SUITE = "gpu_probe"
MIN_STEPS = 500  # fewer steps than this teach a mid-size model nothing worth decoding
# --dry-run: every size shrunk, the structure (arms, samplers, stages) kept
DRY_SUITE = {"preset": "smoke", "curves": {"every": 10, "examples": 8, "steps": 10},
             "decode": {"limit": 8, "batch_size": 8}, "timing": {"reps": 1, "train_steps": 2, "max_chain": 5,
                                                                  "min_unit_s": 0.0}}
DRY_OVERRIDES = {"optim.steps": 20, "model.layers": 1, "data.seq_len": 32}
DRY_CHAIN = 20  # DDPM chains respaced to this many steps


def machine() -> dict[str, Any]:
    """The device, driver-side and library versions the probe ran on."""
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu_cores": os.cpu_count(), "cuda": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info |= {"gpu": p.name, "gpu_count": torch.cuda.device_count(), "gpu_memory_gib": round(p.total_memory / 2**30, 1),
                 "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count,
                 "cudnn": torch.backends.cudnn.version(), "nccl": ".".join(map(str, torch.cuda.nccl.version()))}
    return info


def step_seconds(spec: TrainSpec, steps: int) -> float:
    """Wall seconds per optimizer step over ``steps`` steps of the real training step, after two
    dropped warm-up steps, in a fresh run in a scratch directory (the step returns the gradient
    norm as a float, so the device is synchronised)."""
    spec = spec.model_copy(update={"optim": spec.optim.model_copy(update={"steps": steps + 2})})
    with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
        run = setup_run(spec, Path(tmp), setup_distributed())
        run.objective.train()
        train_step(run)
        train_step(run)
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(run)
        return (time.perf_counter() - t0) / steps


def dataset() -> str:
    """``qqp`` from the data root; for a dry run without one, the embedded data."""
    root = os.environ.get(DATA_ROOT_ENV)
    return "qqp" if root and (Path(root) / "qqp" / "train.jsonl").is_file() else "default"


def probe_suite(train_budget_s: float, dry_run: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gpu_probe suite to run, and how it was sized: on a GPU, ``optim.steps`` is what two
    models train in ``train_budget_s`` at the measured step time (at most the preset's, at least
    :data:`MIN_STEPS`); with ``dry_run``, every size shrunk."""
    doc = read_yaml(SUITES.find(SUITE))
    if dry_run:
        doc = merge(doc, DRY_SUITE) | {"name": f"{SUITE}_dry", "datasets": [dataset()],
                                        "overrides": {**doc.get("overrides", {}), **DRY_OVERRIDES}}
        doc["samplers"] = [e | {"set": {**e.get("set", {}), "steps": DRY_CHAIN}} if "baseline" in e["arms"] else e
                           for e in doc["samplers"]]
        return doc, {"dry_run": True}
    spec = build_train_spec(doc["preset"], "v2", nested({"data.dataset": doc["datasets"][0], **doc.get("overrides", {})}))
    seconds = step_seconds(spec, 10)
    steps = max(MIN_STEPS, min(spec.optim.steps, int(train_budget_s / (2 * seconds)) // 100 * 100))
    doc["overrides"] = {**doc.get("overrides", {}), "optim.steps": steps}
    return doc, {"dry_run": False, "step_s": seconds, "train_budget_s": train_budget_s, "steps": steps}


def paper_step(dry_run: bool) -> list[dict[str, Any]]:
    """Seconds per training step of the ``paper`` preset (v2, batch 2048, seq_len 128) as the
    preset runs it (microbatch 64, as the official code) and in microbatches of 512, on this
    device; the 50k-step run they imply. A dry run times the smoke preset instead."""
    rows = []
    for micro in (64, 512):
        over = {"data.dataset": dataset(), "optim.microbatch": micro, "optim.bf16": True}
        preset = "smoke" if dry_run else "paper"
        if dry_run:
            over |= {"optim.batch_size": 16, "optim.microbatch": micro // 8, **DRY_OVERRIDES}  # 2 chunks, then 1
        spec = build_train_spec(preset, "v2", nested(over))
        s = step_seconds(spec, 2 if dry_run else 3)
        rows.append({"preset": preset, "batch_size": spec.optim.batch_size, "microbatch": spec.optim.microbatch,
                     "seq_len": spec.data.seq_len, "bf16": True, "step_s": s,
                     "hours_for_50k_steps": s * 50_000 / 3600})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_probe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["machine", "suite", "paper-step"])
    ap.add_argument("--out", type=Path, required=True, help="file to write (JSON, or the suite's YAML)")
    ap.add_argument("--dry-run", action="store_true", help="shrink every size (a CPU rehearsal)")
    ap.add_argument("--train-budget-s", type=float, default=200.0,
                    help="seconds both models may train together (suite; default 200)")
    args = ap.parse_args(argv)
    if args.what == "machine":
        out: Any = machine()
    elif args.what == "paper-step":
        out = paper_step(args.dry_run)
    else:
        doc, sizing = probe_suite(args.train_budget_s, args.dry_run)
        write_atomic(args.out, yaml.safe_dump(doc, sort_keys=False).encode())
        out, args.out = sizing, args.out.with_suffix(".sizing.json")
    write_atomic(args.out, (json.dumps(out, indent=2) + "\n").encode())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
