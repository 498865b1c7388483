"""Running one group: train its model (or resume), record its validation curve, then sample and
evaluate each of its unfinished cells. This is the unit an executor runs (locally or as a job).
An imported arm's group (bench/imported.py) trains nothing and has no curve: its cells decode
the run directory it names.

A group holds an exclusive lock on its model while it works, so two runners on one results
directory never train the same model twice: the second waits, then finds the cells done.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.imported import check_unchanged
from bench.plan import Cell, Group, Plan, TrivialCell
from bench.schema import CellRecord, diversity_metrics
from bench.spec import Suite
from bench.store import Store, write_atomic
from diffuseq.baselines import BASELINES, LABELS
from diffuseq.checkpoint import checkpoint_dirs
from diffuseq.config import LoopSpec, TrainSpec
from diffuseq.data import Encoded, Pair, encode_pairs, load_split
from diffuseq.decode import Decoding, target_text
from diffuseq.family import decodes, make_family
from diffuseq.metrics import BertScorer, Evaluation, clean, evaluate, load_runs, sentence_bleu
from diffuseq.metrics.evaluation import MBR_RUN, SET_RUN
from diffuseq.model import Denoiser
from diffuseq.rundir import load_model
from diffuseq.runtime import flush_denormals
from diffuseq.samples import sample_rows, sample_split
from diffuseq.sampling.spec import SamplerSpec, build_sampler_spec
from diffuseq.tokenizer import TextTokenizer, build_tokenizer
from diffuseq.train import EvalHook, read_log, train
from diffuseq.version import code_version

log = logging.getLogger(__name__)
SEEDS_PER_CELL = 1000  # decoding seeds of cell seed s: s·1000, s·1000+1, … (one per MBR candidate)


@dataclass(frozen=True)
class GroupResult:
    train_key: str
    done: list[str]
    failed: dict[str, str]


@dataclass
class ValidationSubset:
    """The fixed validation sources a model's curve is decoded on, and their references."""

    enc: Encoded
    refs: list[list[list[str]]]  # per source, its cleaned reference(s)

    @classmethod
    def load(cls, tok: TextTokenizer, train_spec: TrainSpec, n: int) -> ValidationSubset:
        pairs = load_split(train_spec.data, "valid")[:n]
        enc = encode_pairs(tok, pairs, train_spec.data.seq_len)
        refs = [[clean(target_text(tok, row, m))] for row, m in zip(enc.input_ids, enc.input_mask, strict=True)]
        return cls(enc, refs)

    def bleu(self, model: Denoiser, tok: TextTokenizer, train_spec: TrainSpec, spec: SamplerSpec, batch: int) -> float:
        """Mean sentence BLEU of one sample per source (seed 0) decoded with ``spec``."""
        out = Decoding(model, tok, train_spec, spec, batch).generate(self.enc.input_ids, self.enc.input_mask, seed=0)
        scores = [sentence_bleu(r, clean(h)) for r, h in zip(self.refs, out.recover, strict=True)]
        return sum(scores) / len(scores)


def curve_decoders(suite: Suite, group: Group) -> dict[str, SamplerSpec]:
    """Key → decoder for every curve of the group's model: each arm's own (respaced), then the
    suite's extra decoders that its model family decodes."""
    extra = [build_sampler_spec(raw) for raw in suite.curves.extra]
    specs = [c.curve_sampler for c in group.cells] + [s for s in extra if decodes(group.train, s.sampler)]
    return {s.key(): s for s in specs}


def curve_hook(suite: Suite, group: Group, run_dir: Path) -> EvalHook:
    """Validation BLEU of the EMA model on a fixed subset, once per distinct curve decoder."""
    decoders = curve_decoders(suite, group)
    cache: dict[str, Any] = {}

    def hook(step: int, wall: float, model: Denoiser) -> dict[str, float]:
        if not cache:  # the tokenizer exists only once training has started
            cache["tok"] = TextTokenizer.load(run_dir / "tokenizer.json")
            cache["subset"] = ValidationSubset.load(cache["tok"], group.train, suite.curves.examples)
        return {f"bleu/{key}": cache["subset"].bleu(model, cache["tok"], group.train, spec, suite.decode.batch_size)
                for key, spec in decoders.items()}

    return hook


def log_by_step(run_dir: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """(validation rows, training rows) of a training log by step, the last write of a step winning."""
    rows: dict[str, dict[int, dict]] = {"valid": {}, "train": {}}
    for row in read_log(run_dir):
        rows.get(row.get("split"), {})[row["step"]] = row
    return rows["valid"], rows["train"]


def curve_rows(suite: Suite, group: Group, run_dir: Path) -> list[dict]:
    """curves.parquet rows of one model: per arm, validation BLEU of its own decoder (and of the
    extra decoders), the validation loss terms, and ‖m‖ and embedding norms at every log step."""
    valid, train = log_by_step(run_dir)
    c, batch = group.cells[0], group.train.optim.batch_size
    extra = [build_sampler_spec(raw) for raw in suite.curves.extra]
    base = {"suite": suite.name, "train_key": group.train_key, "dataset": c.dataset, "seed": c.seed,
            "preset": suite.preset, "gamma": group.train.diffusion.gamma, "sweep": json.dumps(dict(c.sweep))}
    own = {cell.arm: cell.curve_sampler for cell in group.cells}
    family = make_family(group.train.model.family, group.train)
    rows = []
    for arm, own_spec in own.items():
        def row(step: int, src: dict, metric: str, value: float, decoder: str = "", is_own: bool = True,
                arm: str = arm) -> dict:
            return base | {"arm": arm, "step": step, "examples": step * batch, "wall_s": src["wall_s"],
                           "metric": metric, "value": value, "decoder": decoder, "own_decoder": is_own}

        for step, r in sorted(valid.items()):
            for spec in [own_spec, *(e for e in extra if e.key() != own_spec.key())]:
                if (value := r.get(f"bleu/{spec.key()}")) is not None:
                    rows.append(row(step, r, "bleu", value, spec.short_name(), spec is own_spec))
            rows += [row(step, r, m, r[m]) for m in (f"val_{t}" for t in family.val_terms) if m in r]
        for step, r in sorted(train.items()):
            rows += [row(step, r, m, r[m]) for m in family.log_terms if m in r]
    return rows


def scorer(suite: Suite) -> BertScorer | None:
    """The suite's BERTScore model (loaded once per process), if it asks for the metric."""
    return _bert_scorer(suite.decode.bertscore_model) if "bertscore" in suite.metrics else None


@cache
def _bert_scorer(model_path: str | None) -> BertScorer:
    return BertScorer(model_path)


def cell_record(suite: Suite, **keys: Any) -> CellRecord:
    """A result row's keys: the suite's, then the cell's own."""
    bs = scorer(suite)
    return CellRecord(suite=suite.name, preset=suite.preset, batch_size=suite.decode.batch_size,
                      code_version=code_version(), bertscore_model=bs.name if bs else "",
                      threads=torch.get_num_threads(), **keys)


def quality(suite: Suite, ev: Evaluation, run: str, mbr: bool) -> tuple[dict[str, float], pd.DataFrame]:
    """The suite's metrics of one evaluated run (the MBR pick with ``mbr``) and their per-sentence rows."""
    wanted = set(suite.metrics)
    scores = {m.removeprefix("mbr_"): v for m, v in ev.summary.items() if m.startswith("mbr_")} if mbr else ev.per_run[run]
    metrics = {m: v for m, v in scores.items() if m in wanted}
    metrics |= {m: ev.summary[m] for m in diversity_metrics() if m in wanted and m in ev.summary}
    ps = ev.per_sentence
    sentences = ps[((ps["run"] == (MBR_RUN if mbr else run)) | (ps["run"] == SET_RUN)) & ps["metric"].isin(wanted)]
    return metrics, pd.DataFrame(sentences[["sentence", "metric", "value"]])


def run_cell(suite: Suite, cell: Cell, store: Store, model: TrainedModel) -> None:
    """Sample and evaluate one cell and record it (the cell file is written last)."""
    t0 = time.perf_counter()
    n = cell.sampler.mbr
    seeds = [cell.seed * SEEDS_PER_CELL + j for j in range(n)]
    out = store.samples_dir(cell.cell_id)
    samples = sample_split(model.run_dir, suite.decode.split, cell.sampler, seeds, suite.decode.batch_size, out,
                           limit=suite.decode.limit)
    ev = evaluate(load_runs(samples.seed_paths), scorer(suite))
    metrics, sentences = quality(suite, ev, str(samples.seed_paths[0]), mbr=n > 1)
    metrics |= {"sentences_per_s": samples.sentences_per_s, "sample_wall_s": samples.wall_s,
                **({} if model.wall_s is None else {"train_wall_s": model.wall_s}), "train_steps": float(model.steps),
                "train_examples": float(model.steps * cell.train.optim.batch_size)}
    metrics |= model.curve_check(suite, cell)
    record = cell_record(suite, cell_id=cell.cell_id, train_key=cell.train_key, arm=cell.arm, arm_label=cell.arm_label,
                           kind="model", dataset=cell.dataset, seed=cell.seed, sampler=cell.sampler.sampler,
                           steps=cell.sampler.steps, nfe=samples.nfe, mbr=n, gamma=cell.train.diffusion.gamma,
                           device=samples.device, wall_time_s=time.perf_counter() - t0, label=cell.label,
                           sweep=json.dumps(dict(cell.sweep)))
    store.write_cell(record, metrics, sentences)


def run_trivial(suite: Suite, cell: TrivialCell, store: Store) -> None:
    """Score one trivial output, tokenized and laid out exactly as the models' outputs are."""
    t0 = time.perf_counter()
    data = cell.train.data
    train_pairs = load_split(data, "train")
    tok = build_tokenizer(data.tokenizer, data.vocab_size, [s for p in train_pairs for s in (p.src, p.trg)])
    pairs = load_split(data, suite.decode.split)[: suite.decode.limit]
    hyps = BASELINES[cell.arm](train_pairs, [p.src for p in pairs])
    ref = encode_pairs(tok, pairs, data.seq_len)
    out = encode_pairs(tok, [Pair(p.src, h) for p, h in zip(pairs, hyps, strict=True)], data.seq_len)
    path = store.samples_dir(cell.cell_id) / "samples.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sample_rows(tok, pairs, ref.input_ids, ref.input_mask, start=0,
                       recover=[target_text(tok, i, m) for i, m in zip(out.input_ids, out.input_mask, strict=True)])
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    ev = evaluate(load_runs([path]), scorer(suite))
    metrics, sentences = quality(suite, ev, str(path), mbr=False)
    record = cell_record(suite, cell_id=cell.cell_id, train_key="", arm=cell.arm, arm_label=LABELS[cell.arm],
                           kind="trivial", dataset=cell.dataset, seed=0, sampler="none", steps=0, nfe=0, mbr=1,
                           gamma=float("nan"), device="", wall_time_s=time.perf_counter() - t0, label=cell.arm, sweep="{}")
    store.write_cell(record, metrics, sentences)


@dataclass
class TrainedModel:
    """A group's trained model, loaded once for its cells: training bookkeeping and the check of
    the cheap curve decoder against each cell's full decoder on the same validation subset."""

    run_dir: Path
    steps: int
    wall_s: float | None  # None for an imported run (not trained here)
    final_valid: dict  # the log's last validation row ({} for an imported run: no curve)
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)  # model, tokenizer, subset, on first use

    @classmethod
    def open(cls, run_dir: Path) -> TrainedModel:
        valid, _ = log_by_step(run_dir)
        last = valid[max(valid)]
        return cls(run_dir, last["step"], last["wall_s"], last)

    @classmethod
    def imported(cls, run_dir: Path) -> TrainedModel:
        """An imported run: its newest checkpoint's step, no training time, no curve."""
        return cls(run_dir, int(checkpoint_dirs(run_dir)[-1].name.removeprefix("step_")), None, {})

    def curve_check(self, suite: Suite, cell: Cell) -> dict[str, float]:
        """``curve_bleu_final``: the last point of the arm's own curve; ``valid_bleu_full``: the
        cell's own decoder (one sample, seed 0) on the same sources (equal when the decoders are)."""
        curve = self.final_valid.get(f"bleu/{cell.curve_sampler.key()}")
        if curve is None:
            return {}
        full = cell.sampler.model_copy(update={"mbr": 1})
        if full.key() == cell.curve_sampler.key():
            return {"curve_bleu_final": curve, "valid_bleu_full": curve}
        if not self._loaded:
            model, tok, train_spec = load_model(self.run_dir)
            self._loaded.update(model=model, tok=tok, spec=train_spec,
                                subset=ValidationSubset.load(tok, train_spec, suite.curves.examples))
        x = self._loaded
        return {"curve_bleu_final": curve,
                "valid_bleu_full": x["subset"].bleu(x["model"], x["tok"], x["spec"], full, suite.decode.batch_size)}


def ensure_trained(suite: Suite, group: Group, store: Store, progress: bool = False) -> None:
    """Train (or resume) the group's model and record its validation curve.

    With ``executor.train_procs > 1`` training runs under torchrun (DDP) in a child process
    group (``python -m bench.train_group PLAN_JSON``, handed this group's plan); the rest of the
    group continues here.
    """
    run_dir = store.model_dir(group.train_key)
    check_curve_settings(suite, run_dir)
    procs = suite.executor.train_procs
    if procs > 1:
        plan_file = store.jobs_dir / f"{group.train_key}.plan.json"
        write_atomic(plan_file, Plan(suite, "", (group,), ()).to_json().encode())
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
               "-m", "bench.train_group", str(plan_file), str(run_dir)]
        subprocess.run(cmd, check=True)
    else:
        train_in_process(suite, group, run_dir, progress)
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


def train_in_process(suite: Suite, group: Group, run_dir: Path, progress: bool = False) -> None:
    """The training call itself (in this process, or in each torchrun rank)."""
    loop = LoopSpec(eval_every=suite.curves.every, save_every=suite.curves.every,
                    log_every=max(1, suite.curves.every // 5), threads=suite.threads)
    train(group.train, run_dir, loop, eval_hook=curve_hook(suite, group, run_dir), progress=progress)


def run_group(suite: Suite, group: Group, results: Path, fail_fast: bool = False, progress: bool = False) -> GroupResult:
    """Train the group's model if needed, then run each unfinished cell; failures are recorded."""
    flush_denormals()  # first thing in a spawned worker, before torch starts its threads
    store = Store(results)
    if suite.threads:
        torch.set_num_threads(suite.threads)
    done, failed = [], {}
    with store.model_lock(group.train_key):
        todo = [c for c in group.cells if not store.is_done(c.cell_id)]
        if not todo:
            return GroupResult(group.train_key, [c.cell_id for c in group.cells], {})
        try:
            if group.run:
                check_unchanged(group.run, group.cells[0].weights)
            else:
                ensure_trained(suite, group, store, progress)
        except Exception as err:
            if fail_fast:
                raise
            stage, what = ("imported", "imported run") if group.run else ("train", "training")
            for c in todo:
                store.write_error(c.cell_id, {"arm": c.arm, "seed": c.seed, "stage": stage}, err)
            return GroupResult(group.train_key, [], {c.cell_id: f"{what} failed: {err}" for c in todo})
        model = TrainedModel.imported(Path(group.run)) if group.run else TrainedModel.open(store.model_dir(group.train_key))
        for c in todo:
            try:
                run_cell(suite, c, store, model)
                done.append(c.cell_id)
            except Exception as err:
                if fail_fast:
                    raise
                store.write_error(c.cell_id, {"arm": c.arm, "seed": c.seed, "stage": "decode"}, err)
                failed[c.cell_id] = f"{type(err).__name__}: {err}"
                log.error("cell %s failed: %s", c.cell_id, err)
    return GroupResult(group.train_key, done, failed)
