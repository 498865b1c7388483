"""Running one group: train its model (or resume), record its validation curve, then sample and
evaluate each of its unfinished cells. This is the unit an executor runs (locally or as a job).

A group holds an exclusive lock on its model while it works, so two runners on one results
directory never train the same model twice: the second waits, then finds the cells done.
"""

from __future__ import annotations

import fcntl
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.cells import Cell, Group
from bench.spec import Suite
from bench.store import Store, write_atomic
from diffuseq.config import LoopSpec, TrainSpec
from diffuseq.data import encode_pairs, load_split
from diffuseq.metrics import BertScorer, clean, evaluate, load_runs, sentence_bleu
from diffuseq.metrics.evaluation import MBR_RUN, SET_RUN
from diffuseq.model import Denoiser
from diffuseq.runtime import flush_denormals
from diffuseq.sampling.generate import generate, sample_split
from diffuseq.sampling.spec import build_sampler_spec
from diffuseq.tokenizer import TextTokenizer
from diffuseq.train import EvalHook, checkpoint_dirs, train
from diffuseq.version import code_version

log = logging.getLogger(__name__)
SEEDS_PER_CELL = 1000  # decoding seeds of cell seed s: s·1000, s·1000+1, … (one per MBR candidate)


@dataclass(frozen=True)
class GroupResult:
    train_key: str
    done: list[str]
    failed: dict[str, str]


@contextmanager
def model_lock(store: Store, train_key: str) -> Iterator[None]:
    path = store.root / "models" / f"{train_key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def curve_hook(suite: Suite, run_dir: Path, train_spec: TrainSpec) -> EvalHook:
    """Validation BLEU of the EMA model on a fixed subset with the suite's fast sampler."""
    spec = build_sampler_spec(suite.curves.sampler)
    cache: dict[str, Any] = {}

    def hook(step: int, wall: float, model: Denoiser) -> dict[str, float]:
        if not cache:  # the tokenizer exists only once training has started
            tok = TextTokenizer.load(run_dir / "tokenizer.json")
            pairs = load_split(train_spec.data, "valid")[: suite.curves.examples]
            enc = encode_pairs(tok, pairs, train_spec.data.seq_len)
            refs = [[clean(tok.tokens(row[m == 1].tolist()))] for row, m in zip(enc.input_ids, enc.input_mask, strict=True)]
            cache.update(tok=tok, enc=enc, refs=refs)
        enc = cache["enc"]
        out = generate(model, cache["tok"], train_spec.diffusion, spec, enc.input_ids, enc.input_mask,
                       seed=0, batch_size=suite.decode.batch_size)
        scores = [sentence_bleu(r, clean(h)) for r, h in zip(cache["refs"], out.recover, strict=True)]
        return {"bleu": sum(scores) / len(scores)}

    return hook


def curve_rows(suite: Suite, group: Group, run_dir: Path) -> list[dict]:
    """Validation rows of the training log (last write per step wins after a resume), per arm."""
    by_step: dict[int, dict] = {}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a crash; the resumed run rewrote that step
            continue
        if row.get("split") == "valid":
            by_step[row["step"]] = row
    c = group.cells[0]
    rows = []
    for arm in group.arms:
        for step, row in sorted(by_step.items()):
            for metric in ("bleu", "val_loss"):
                if metric in row:
                    rows.append({"suite": suite.name, "train_key": group.train_key, "arm": arm, "dataset": c.dataset,
                                 "seed": c.seed, "preset": suite.preset, "gamma": group.train.diffusion.gamma,
                                 "step": step, "wall_s": row["wall_s"], "metric": metric, "value": row[metric]})
    return rows


_SCORER: dict[str, BertScorer] = {}


def scorer(suite: Suite) -> BertScorer | None:
    if "bertscore" not in suite.metrics:
        return None
    key = suite.decode.bertscore_model or ""
    if key not in _SCORER:
        _SCORER[key] = BertScorer(suite.decode.bertscore_model)
    return _SCORER[key]


def run_cell(suite: Suite, cell: Cell, store: Store, train_meta: dict) -> None:
    """Sample and evaluate one cell and record it (the cell file is written last)."""
    t0 = time.perf_counter()
    n = cell.sampler.mbr
    seeds = [cell.seed * SEEDS_PER_CELL + j for j in range(n)]
    out = store.samples_dir(cell.cell_id)
    paths = sample_split(store.model_dir(cell.train_key), suite.decode.split, cell.sampler, seeds,
                         suite.decode.batch_size, out, limit=suite.decode.limit)
    per_seed = [p for p in paths if ".seed" in p.name]
    records = [json.loads(p.with_suffix(".json").read_text()) for p in per_seed]
    bs = scorer(suite)
    ev = evaluate(load_runs(per_seed), bs)
    main_run = MBR_RUN if n > 1 else str(per_seed[0])
    quality = ev.per_run[main_run] if n == 1 else {m[4:]: v for m, v in ev.summary.items() if m.startswith("mbr_")}
    wanted = {"bertscore": "bertscore_f1"}
    keep = {wanted.get(m, m) for m in suite.metrics}
    metrics = {m: v for m, v in quality.items() if m in keep}
    metrics |= {m: ev.summary[m] for m in ("self_bleu", "div4") if m in keep and m in ev.summary}
    sample_wall = sum(r["wall_s"] for r in records)
    metrics |= {"sentences_per_s": sum(r["n_sentences"] for r in records) / sample_wall, "sample_wall_s": sample_wall,
                "train_wall_s": train_meta["wall_s"], "train_steps": float(train_meta["steps"])}
    ps = ev.per_sentence
    sentences = ps[(ps["run"] == main_run) | (ps["run"] == SET_RUN)]
    sentences = sentences[sentences["metric"].isin(keep)][["sentence", "metric", "value"]]
    keys = {"suite": suite.name, "cell_id": cell.cell_id, "train_key": cell.train_key, "arm": cell.arm,
            "dataset": cell.dataset, "seed": cell.seed, "sampler": cell.sampler.sampler, "steps": cell.sampler.steps,
            "nfe": records[0]["nfe"], "mbr": n, "batch_size": suite.decode.batch_size, "preset": suite.preset,
            "gamma": cell.train.diffusion.gamma, "code_version": code_version(), "device": records[0]["device"],
            "bertscore_model": bs.name if bs else "", "wall_time_s": time.perf_counter() - t0,
            "label": cell.label, "sweep": json.dumps(dict(cell.sweep))}
    store.write_cell(cell.cell_id, keys, metrics, pd.DataFrame(sentences))


def train_model(suite: Suite, group: Group, store: Store, progress: bool = False) -> None:
    """Train (or resume) the group's model and record its validation curve.

    With ``executor.train_procs > 1`` training runs under torchrun (DDP) in a child process
    group (``python -m bench.train_group``); the rest of the group continues here.
    """
    run_dir = store.model_dir(group.train_key)
    check_curve_settings(suite, run_dir)
    procs = suite.executor.train_procs
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
               "-m", "bench.train_group", str(store.root), group.train_key]
        subprocess.run(cmd, check=True)
    else:
        fit(suite, group, run_dir, progress)
    store.write_curve(group.train_key, curve_rows(suite, group, run_dir))


def check_curve_settings(suite: Suite, run_dir: Path) -> None:
    """A model's validation curve is recorded while it trains: refuse to reuse it with other settings."""
    record = run_dir / "curves.json"
    want = suite.curves.model_dump(mode="json")
    if record.is_file():
        have = json.loads(record.read_text())
        if have != want:
            raise ValueError(f"{run_dir} was trained with curves settings {have}, the suite now asks for {want}; "
                             "restore them or use another --results directory")
    else:
        write_atomic(record, json.dumps(want).encode())


def fit(suite: Suite, group: Group, run_dir: Path, progress: bool = False) -> None:
    """The training call itself (in this process, or in each torchrun rank)."""
    loop = LoopSpec(eval_every=suite.curves.every, save_every=suite.curves.every,
                    log_every=max(1, suite.curves.every // 5), threads=suite.threads)
    train(group.train, run_dir, loop, eval_hook=curve_hook(suite, run_dir, group.train), progress=progress)


def run_group(suite: Suite, group: Group, results: Path, fail_fast: bool = False, progress: bool = False) -> GroupResult:
    """Train the group's model if needed, then run each unfinished cell; failures are recorded."""
    flush_denormals()  # first thing in a spawned worker, before torch starts its threads
    store = Store(results)
    if suite.threads:
        torch.set_num_threads(suite.threads)
    done, failed = [], {}
    with model_lock(store, group.train_key):
        todo = [c for c in group.cells if not store.is_done(c.cell_id)]
        if not todo:
            return GroupResult(group.train_key, [c.cell_id for c in group.cells], {})
        try:
            train_model(suite, group, store, progress)
        except Exception as err:
            if fail_fast:
                raise
            for c in todo:
                store.write_error(c.cell_id, {"arm": c.arm, "seed": c.seed, "stage": "train"}, err)
            return GroupResult(group.train_key, [], {c.cell_id: f"training failed: {err}" for c in todo})
        ckpt = checkpoint_dirs(store.model_dir(group.train_key))[-1]
        state = torch.load(ckpt / "state.pt", weights_only=True)
        train_meta = {"wall_s": state["wall"], "steps": state["step"]}
        for c in todo:
            try:
                run_cell(suite, c, store, train_meta)
                done.append(c.cell_id)
            except Exception as err:
                if fail_fast:
                    raise
                store.write_error(c.cell_id, {"arm": c.arm, "seed": c.seed, "stage": "decode"}, err)
                failed[c.cell_id] = f"{type(err).__name__}: {err}"
                log.error("cell %s failed: %s", c.cell_id, err)
    return GroupResult(group.train_key, done, failed)
