"""The controlled timing pass: the only source of the speed figures a report divides.

Wall times of cells that ran at different moments, next to other work or on other nodes,
measure the machine as much as the method. This pass times every configuration of a suite in
one process on one device, interleaved: each repetition times every configuration once, in
turn, after one untimed warm-up of each; the minimum and the median over repetitions are kept.
Load that comes and goes then hits all configurations alike, and the minimum is close to the
cost on an idle machine.

Three kinds of figures (``bench.schema.TIMING_KINDS``):

- ``train_step``: seconds per optimizer step of each model configuration (one seed's model
  stands for the configuration), measured on the real training step
  (:func:`diffuseq.train.train_step`) of a fresh run in a scratch directory: one repetition is
  one unit of at least ``train_steps`` steps after a dropped first step, and gives the mean
  seconds per step of that unit;
- ``forward``: seconds per denoiser call on one sampling batch: the floor of a sampler is
  NFE × forward;
- ``sample_batch``: seconds to decode that batch with one candidate of a configuration. A chain
  longer than ``max_chain`` steps is timed on ``max_chain`` steps and scaled (every step of a
  DDPM chain does the same work), and flagged ``extrapolated``.

Every timed unit lasts at least ``min_unit_s``: a short training step, forward or decoding pass
(one candidate, or the stacked MBR candidates) is repeated inside its unit, with the count fixed
per configuration after its warm-up, so that a short call's figure is not one scheduler tick of
a busy machine.

Each unit is read on two clocks: wall (with the device synchronised) and the process's CPU time.
The figures a report divides (``min_s``, ``median_s`` and their MBR twins) are on the row's
``clock``: ``cpu`` for a 1-thread pass on a CPU device, where CPU time is the work itself and not
the time the process waited for other processes' load; ``wall`` otherwise (a GPU's work is not
CPU time, and a multi-thread pass's CPU time adds its threads' idle spinning). The wall figures
are kept beside them (``wall_min_s``, ``wall_median_s``), so the load of the moment stays visible.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from bench.plan import Cell, Group
from bench.schema import ARM_SEPARATOR
from bench.spec import Suite
from diffuseq.data import encode_pairs, load_split
from diffuseq.decode import candidates_per_pass, device_name
from diffuseq.family import make_family
from diffuseq.rundir import load_model
from diffuseq.runtime import flush_denormals
from diffuseq.sampling.spec import is_continuous
from diffuseq.train import setup_distributed, setup_run, train_step

log = logging.getLogger(__name__)


def config_groups(groups: list[Group]) -> list[Group]:
    """One group per model configuration (dataset, arms, γ, sweep point): the first seed's.
    Imported runs (bench/imported.py) are not timed: their training cannot be."""
    seen: dict[tuple, Group] = {}
    for g in groups:
        if g.run:
            continue
        c = g.cells[0]
        seen.setdefault((c.dataset, tuple(g.arms), g.train.diffusion.gamma, c.sweep), g)
    return list(seen.values())


class Seconds(NamedTuple):
    """One timed unit's seconds per call on both clocks."""

    wall: float
    cpu: float  # this process's CPU time, all its threads

    def scaled(self, factor: float) -> Seconds:
        return Seconds(self.wall * factor, self.cpu * factor)


def _seconds(fn: Callable[[], Any], calls: int = 1) -> Seconds:
    """Seconds per call of ``calls`` back-to-back calls of ``fn``, timed as one unit."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return Seconds((time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls)


def _calls_per_unit(seconds: float, min_unit_s: float) -> int:
    """Calls of a ``seconds``-long function that make a timed unit of at least ``min_unit_s``."""
    return max(1, math.ceil(min_unit_s / max(seconds, 1e-9)))


def _train_step_time(group: Group, steps: int) -> Seconds:
    """Seconds per optimizer step over ``steps`` steps of the real training step, after one dropped
    step, in a fresh run of the group's model (scratch directory)."""
    spec = group.train.model_copy(update={"optim": group.train.optim.model_copy(update={"steps": steps + 1})})
    with tempfile.TemporaryDirectory(prefix="timing-") as tmp:
        run = setup_run(spec, Path(tmp), setup_distributed())
        run.objective.train()
        train_step(run)  # returns the gradient norm as a float: the device is synchronised
        return _seconds(lambda: train_step(run), steps)


class _SamplingBench:
    """One model, its first sampling batch, and the timed calls on it."""

    def __init__(self, group: Group, run_dir: Path, suite: Suite, max_chain: int):
        self.model, tok, spec = load_model(run_dir)
        self.family = make_family(spec.model.family, spec)
        self.max_chain = max_chain
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(device)
        pairs = load_split(spec.data, suite.decode.split)[: min(suite.decode.batch_size, suite.decode.limit or 10**9)]
        enc = encode_pairs(tok, pairs, spec.data.seq_len)
        self.ids, self.mask = enc.input_ids.to(device), enc.input_mask.to(device)
        self.device = device_name(self.ids.device)
        self.nfe: dict[str, int] = {}  # cell_id → the NFE its decoding reported, scaled as its time

    def sync(self) -> None:
        if self.ids.is_cuda:
            torch.cuda.synchronize()

    @torch.inference_mode()
    def forward(self) -> None:
        self.family.forward(self.model, self.ids, self.mask)
        self.sync()

    def timed_spec(self, cell: Cell):
        """The spec actually run, and the factor that scales its time to the cell's chain."""
        spec = cell.sampler
        if spec.steps > self.max_chain:
            return spec.model_copy(update={"steps": self.max_chain}), spec.steps / self.max_chain
        return spec, 1.0

    @torch.inference_mode()
    def _timed_pass(self, cell: Cell, candidates: int, calls: int) -> tuple[Seconds, float]:
        """Seconds of one decoding pass of the batch over ``calls`` back-to-back passes, with
        ``candidates`` per source stacked ``candidates_per_pass`` at a time as the cell's decoding
        stacks them; and the factor from one pass to the cell's decode (chain scale × passes)."""
        spec, scale = self.timed_spec(cell)
        decode = self.family.decoder(self.model, spec)
        per_pass = 1
        if candidates > 1 and is_continuous(spec.sampler):
            per_pass = candidates_per_pass(self.model, self.ids.shape[0], self.ids.shape[1], candidates)
        gens = [torch.Generator(self.ids.device).manual_seed(j) for j in range(per_pass)]
        out: list[tuple] = []
        seconds = _seconds(lambda: (out.append(decode(self.ids, self.mask, gens if per_pass > 1 else gens[0])),
                                    self.sync()), calls)
        self.nfe[cell.cell_id] = round(out[0][1] * scale)
        return seconds, scale * math.ceil(candidates / per_pass)

    def sample(self, cell: Cell, candidates: int = 1, calls: int = 1) -> Seconds:
        """Seconds to decode the batch with ``candidates`` candidates per source, as the cell's
        decoding runs them; one timed unit of ``calls`` passes."""
        seconds, factor = self._timed_pass(cell, candidates, calls)
        return seconds.scaled(factor)

    def calls_per_unit(self, cell: Cell, candidates: int, min_unit_s: float) -> int:
        """Warm the decoding up, then the passes that make a timed unit of at least ``min_unit_s``."""
        self._timed_pass(cell, candidates, 1)
        return _calls_per_unit(self._timed_pass(cell, candidates, 1)[0].wall, min_unit_s)


def time_suite(suite: Suite, groups: list[Group], models_dir: Path, progress: Callable[[str], None] = log.info,
               ) -> list[dict[str, Any]]:
    """Time every model configuration and sampling configuration of ``groups`` (their models must
    be trained under ``models_dir``); returns rows of ``bench.schema.TIMING_COLUMNS``."""
    t = suite.timing
    flush_denormals()
    if threads := t.threads or suite.threads:
        torch.set_num_threads(threads)
    configs = config_groups(groups)
    benches = {g.train_key: _SamplingBench(g, models_dir / g.train_key, suite, t.max_chain) for g in configs}
    samples = [(g, c) for g in configs for c in distinct_decoders(g)]
    train_times: dict[str, list[Seconds]] = {g.train_key: [] for g in configs}
    forward_times: dict[str, list[Seconds]] = {g.train_key: [] for g in configs}
    sample_times: dict[str, list[Seconds]] = {c.cell_id: [] for _, c in samples}
    mbr_times: dict[str, list[Seconds]] = {c.cell_id: [] for _, c in samples}

    progress(f"timing pass: warm-up of {len(configs)} model(s) and {len(samples)} sampling configuration(s)")
    train_steps: dict[str, int] = {}  # training steps per timed unit (each unit lasts ≥ t.min_unit_s)
    forward_calls: dict[str, int] = {}  # forwards per timed unit
    sample_calls: dict[tuple[str, int], int] = {}  # (cell id, candidates) → decoding passes per timed unit
    for g in configs:
        warm = _train_step_time(g, 2).wall
        train_steps[g.train_key] = max(t.train_steps, _calls_per_unit(warm, t.min_unit_s))
        forward = benches[g.train_key].forward
        forward()
        forward_calls[g.train_key] = _calls_per_unit(_seconds(forward).wall, t.min_unit_s)
    for g, c in samples:
        for k in {1, c.sampler.mbr}:
            sample_calls[c.cell_id, k] = benches[g.train_key].calls_per_unit(c, k, t.min_unit_s)
    for rep in range(t.reps):
        progress(f"timing pass: repetition {rep + 1}/{t.reps}")
        for g in configs:
            train_times[g.train_key].append(_train_step_time(g, train_steps[g.train_key]))
            forward_times[g.train_key].append(_seconds(benches[g.train_key].forward, forward_calls[g.train_key]))
        for g, c in samples:
            bench, mbr = benches[g.train_key], c.sampler.mbr
            sample_times[c.cell_id].append(bench.sample(c, calls=sample_calls[c.cell_id, 1]))
            if mbr > 1:
                mbr_times[c.cell_id].append(bench.sample(c, mbr, sample_calls[c.cell_id, mbr]))

    rows = []
    threads = torch.get_num_threads()  # what the pass ran with
    clock = "cpu" if not torch.cuda.is_available() and threads == 1 else "wall"  # the benches' device rule
    for g in configs:
        c, bench = g.cells[0], benches[g.train_key]
        base = {"suite": suite.name, "preset": suite.preset, "dataset": c.dataset, "arm": ARM_SEPARATOR.join(g.arms),
                "gamma": g.train.diffusion.gamma, "sweep": _sweep(c), "train_key": g.train_key,
                "device": bench.device, "threads": threads, "clock": clock, "reps": t.reps, "extrapolated": False,
                "label": "", "sampler": "", "steps": 0, "nfe": 0, "mbr": 0}
        for kind, batch, times in (("train_step", g.train.optim.batch_size, train_times[g.train_key]),
                                   ("forward", int(bench.ids.shape[0]), forward_times[g.train_key])):
            rows.append(base | {"kind": kind, "batch_size": batch, **_stats(times, clock),
                                **_stats(times, "wall", "wall_")})
    for g, c in samples:
        bench = benches[g.train_key]
        rows.append({"suite": suite.name, "preset": suite.preset, "dataset": c.dataset, "kind": "sample_batch",
                     "arm": c.arm, "gamma": g.train.diffusion.gamma, "sweep": _sweep(c), "label": c.label,
                     "sampler": c.sampler.sampler, "steps": c.sampler.steps, "nfe": bench.nfe[c.cell_id],
                     "mbr": c.sampler.mbr, "batch_size": int(bench.ids.shape[0]), "train_key": g.train_key,
                     "device": bench.device, "threads": threads, "clock": clock, "reps": t.reps,
                     "extrapolated": c.sampler.steps > t.max_chain, **_stats(sample_times[c.cell_id], clock),
                     **_stats(sample_times[c.cell_id], "wall", "wall_"),
                     **_stats(mbr_times[c.cell_id] or sample_times[c.cell_id], clock, "mbr_")})
    return rows


def distinct_decoders(group: Group) -> list[Cell]:
    """The group's cells with distinct (arm, label, sampler spec): each sampling configuration
    once (a label may name several, e.g. ``continuous`` at 5, 10 and 20 steps)."""
    seen: dict[tuple[str, str, str], Cell] = {}
    for c in group.cells:
        seen.setdefault((c.arm, c.label, c.sampler.key()), c)
    return list(seen.values())


def _sweep(cell: Cell) -> str:
    return json.dumps(dict(cell.sweep))


def _stats(times: list[Seconds], clock: str, prefix: str = "") -> dict[str, float]:
    """Min and median seconds of ``times`` on ``clock`` as ``{prefix}min_s``, ``{prefix}median_s``."""
    seconds = [getattr(s, clock) for s in times]
    return {f"{prefix}min_s": min(seconds), f"{prefix}median_s": statistics.median(seconds)}
