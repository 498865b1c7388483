"""The training loop: one function, readable top to bottom, the same under torchrun/DDP.

Determinism and exact resume: the batch at step s depends only on (seed, s) (see
:class:`diffuseq.data.BatchOrder`) and every step reseeds torch's RNG from (seed, s, rank), so
a run resumed from a checkpoint continues exactly like an uninterrupted one on CPU.

A run directory holds ``config.json`` (the spec, vocabulary and code version), ``tokenizer.json``,
``log.jsonl`` (one JSON object per logged step or validation) and ``checkpoints/step_XXXXXXX/``
with ``model.safetensors``, ``ema.safetensors`` and ``state.pt`` (optimizer, timestep sampler,
wall time). Checkpoints are written to a temporary folder, verified and renamed, so a crash never
leaves a half-written one behind (:mod:`diffuseq.checkpoint`); a re-run may only extend
``optim.steps`` (:mod:`diffuseq.rundir`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from diffuseq.checkpoint import (
    checkpoint_dirs,
    load_state,
    load_tensors,
    save_checkpoint,
    set_aside_corrupt,
)
from diffuseq.config import LoopSpec, TrainSpec
from diffuseq.data import BatchOrder, Encoded, check_batch_fits, encode_pairs, load_split
from diffuseq.errors import UserError
from diffuseq.family import Family, make_family
from diffuseq.io import iter_jsonl, write_atomic
from diffuseq.plm import check_fits, start_from_plm
from diffuseq.rundir import check_rerun, record_extension
from diffuseq.runtime import flush_denormals
from diffuseq.timesteps import UniformTimesteps, make_timesteps
from diffuseq.tokenizer import TextTokenizer, build_tokenizer
from diffuseq.version import code_version

log = logging.getLogger(__name__)

# Called every LoopSpec.eval_every steps with (step, training wall seconds, EMA model); returns
# extra metrics to log (the harness uses it to record validation BLEU for convergence curves).
EvalHook = Callable[[int, float, nn.Module], dict[str, float]]


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); gloo on CPU, NCCL on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, device)


class Objective(nn.Module):
    """Wraps model + the family's losses so the whole loss goes through one (DDP-able) forward."""

    def __init__(self, model: nn.Module, family: Family):
        super().__init__()
        self.model, self.family = model, family

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.family.losses(self.model, ids, mask, t)


def prepare_data(spec: TrainSpec, run_dir: Path) -> tuple[TextTokenizer, Encoded, Encoded]:
    """Tokenizer (trained and cached in ``run_dir`` if asked) and the encoded train/valid splits.
    Data errors are raised before ``run_dir`` is created, so they leave no empty run behind."""
    train_pairs = load_split(spec.data, "train")
    check_batch_fits(spec.data, len(train_pairs), spec.optim.batch_size)
    valid_pairs = load_split(spec.data, "valid")
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "tokenizer.json"
    if saved.is_file():
        tok = TextTokenizer.load(saved)
    else:
        texts = [s for p in train_pairs for s in (p.src, p.trg)]
        tok = build_tokenizer(spec.data.tokenizer, spec.data.vocab_size, texts)
        tok.save(saved)
    return tok, encode_pairs(tok, train_pairs, spec.data.seq_len), encode_pairs(tok, valid_pairs, spec.data.seq_len)


def microbatches(n: int, size: int | None) -> list[slice]:
    """Slices of a rank's batch of ``n`` examples, ``size`` at a time (one slice when None)."""
    size = size or n
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warm-up, then linear decay to 0 at the last step (the official schedule)."""
    o = spec.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    return o.lr * max(0.0, 1.0 - step / o.steps)


# ---------------------------------------------------------------------------------------------
def read_log(run_dir: Path) -> list[dict]:
    """The rows of a run's ``log.jsonl`` in file order; a line torn by a crash is skipped (the
    resumed run wrote that step again, so for each step the last row wins)."""
    return [row for _, row in iter_jsonl(run_dir / "log.jsonl", torn_ok=True)]


# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def validation_loss(objective: Objective, valid: Encoded, batch: int, batches: int, device: torch.device) -> dict[str, float]:
    """Mean of each of the family's ``val_terms`` on a fixed subset with fixed timesteps and
    noise (comparable across steps): ``val_loss`` (continuous: and its MSE and rounding-NLL
    terms, ``val_mse``, ``val_nll``, and the model's own token NLL, ``val_token_nll``)."""
    was_training = objective.training
    objective.eval()
    state = torch.get_rng_state()
    torch.manual_seed(1234)
    T = objective.family.spec.diffusion.steps
    totals, n = dict.fromkeys(objective.family.val_terms, 0.0), 0
    for b in range(min(batches, math.ceil(len(valid) / batch))):
        ids = valid.input_ids[b * batch : (b + 1) * batch].to(device)
        mask = valid.input_mask[b * batch : (b + 1) * batch].to(device)
        t = torch.randint(0, T, (ids.shape[0],)).to(device)
        terms = objective(ids, mask, t)
        for k in totals:
            totals[k] += terms[k].sum().item()
        n += ids.shape[0]
    torch.set_rng_state(state)
    objective.train(was_training)
    return {f"val_{k}": v / n for k, v in totals.items()}


def _gather(x: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.world == 1:
        return x
    out = [torch.empty_like(x) for _ in range(d.world)]
    dist.all_gather(out, x)
    return torch.cat(out)


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or already finished) training run left: its last checkpoint, the
    optimizer steps done and the training wall time (seconds, summed over resumed runs)."""

    checkpoint: Path
    steps: int
    wall_s: float


@dataclass
class Run:
    """Everything a training run holds between steps (see :func:`train`)."""

    spec: TrainSpec
    run_dir: Path
    d: Dist
    family: Family
    tok: TextTokenizer
    train_set: Encoded
    valid_set: Encoded
    model: nn.Module
    objective: Objective
    ddp: nn.Module
    opt: torch.optim.Optimizer
    ema: dict[str, torch.Tensor]
    timesteps: UniformTimesteps
    batches: BatchOrder
    step: int = 0
    wall: float = 0.0  # training seconds, over every resumed run
    last_ckpt: Path | None = None
    params: list[nn.Parameter] = field(default_factory=list)  # the model's, in order
    ema_params: list[torch.Tensor] = field(default_factory=list)  # their EMA tensors, in the same order


def setup_run(spec: TrainSpec, run_dir: Path, d: Dist) -> Run:
    """Data, tokenizer, model, optimizer, EMA and timestep sampler; resumed from the newest intact
    checkpoint of ``run_dir`` when there is one."""
    cfg_file = run_dir / "config.json"
    extends = check_rerun(run_dir, spec)  # the run's old spec when this run asks for more steps
    if d.world > 1 and not d.main:
        dist.barrier()  # rank 0 writes the tokenizer first; the others then read it
    if d.main:
        set_aside_corrupt(run_dir)
    if spec.model.init == "plm" and not checkpoint_dirs(run_dir):
        check_fits(spec)  # before the run directory is written: a spec the MiniLM cannot fill leaves nothing
    tok, train_set, valid_set = prepare_data(spec, run_dir)
    if d.world > 1 and d.main:
        dist.barrier()
    if d.main and not cfg_file.exists():
        meta = {"train": spec.model_dump(mode="json"), "key": spec.key(), "vocab_size": tok.vocab_size,
                "code_version": code_version(), "truncated_train": train_set.truncated}
        write_atomic(cfg_file, json.dumps(meta, indent=2).encode())

    family = make_family(spec.model.family, spec)
    torch.manual_seed(spec.optim.seed)  # identical initial weights on every rank and every run
    model = family.build(tok)
    ckpts = checkpoint_dirs(run_dir)
    if spec.model.init == "plm" and not ckpts:  # a resumed run loads its own weights below
        start_from_plm(model, spec)
    model = model.to(d.device)
    objective = Objective(model, family)
    run = Run(spec, run_dir, d, family, tok, train_set, valid_set, model, objective,
              DistributedDataParallel(objective) if d.world > 1 else objective,
              torch.optim.AdamW(model.parameters(), lr=spec.optim.lr, weight_decay=spec.optim.weight_decay),
              {k: v.detach().clone() for k, v in model.state_dict().items()},
              make_timesteps(spec.diffusion.timestep_sampler, spec.diffusion.steps),
              BatchOrder(len(train_set), spec.optim.batch_size, spec.optim.seed, d.rank, d.world))
    if ckpts:
        model.load_state_dict(load_tensors(ckpts[-1] / "model.safetensors"))
        run.ema = {k: v.to(d.device) for k, v in load_tensors(ckpts[-1] / "ema.safetensors").items()}
        state = load_state(ckpts[-1] / "state.pt")
        run.opt.load_state_dict(state["optimizer"])
        run.timesteps.load_state_dict(state["sampler"])
        run.step, run.wall, run.last_ckpt = state["step"], state["wall"], ckpts[-1]
        if d.main:
            log.info("resuming %s from step %d", run_dir, run.step)
    if d.main and extends is not None:
        record_extension(run_dir, extends, spec, run.step)
    run.params = list(model.parameters())
    run.ema_params = [run.ema[k] for k, _ in model.named_parameters()]
    return run


def train_step(run: Run) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """One optimizer step (microbatches, EMA, timestep-sampler update); (loss, loss terms per
    example, gradient norm). Raises :class:`TrainingDiverged` on a non-finite loss, before any
    weight changes."""
    spec, d, step = run.spec, run.d, run.step
    torch.manual_seed(spec.optim.seed * 1_000_003 + step * 101 + d.rank)
    idx = run.batches.indices(step)
    ids, mask = run.train_set.input_ids[idx].to(d.device), run.train_set.input_mask[idx].to(d.device)
    gen = torch.Generator().manual_seed(spec.optim.seed * 7_919 + step * 31 + d.rank)
    t, weights = run.timesteps.sample(ids.shape[0], gen)
    if not run.family.uses_timesteps:  # the family draws its own noise level (diffuseq.family)
        weights = torch.ones_like(weights)
    t, weights = t.to(d.device), weights.to(d.device)

    for g in run.opt.param_groups:
        g["lr"] = lr_at(step, spec)
    run.opt.zero_grad(set_to_none=True)
    chunks = microbatches(ids.shape[0], spec.optim.microbatch)
    parts: list[dict[str, torch.Tensor]] = []
    loss = torch.zeros((), device=d.device)
    for j, part in enumerate(chunks):
        # gradients are averaged across ranks once, on the last microbatch
        sync = d.world == 1 or j == len(chunks) - 1
        with (nullcontext() if sync else run.ddp.no_sync()), \
                torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=spec.optim.bf16):
            terms = run.ddp(ids[part], mask[part], t[part])
        part_loss = (terms["loss"].float() * weights[part]).sum() / ids.shape[0]
        part_loss.backward()
        loss += part_loss.detach()
        parts.append({k: v.detach() for k, v in terms.items()})
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"loss is {loss.item()} at step {step} in {run.run_dir}; the last good checkpoint is "
            f"{run.last_ckpt or 'none (no checkpoint was written yet)'}. Lower optim.lr, set optim.grad_clip, or disable bf16."
        )
    terms = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    grad_norm = nn.utils.clip_grad_norm_(run.params, spec.optim.grad_clip if spec.optim.grad_clip > 0 else math.inf)
    run.opt.step()
    with torch.no_grad():
        torch._foreach_lerp_(run.ema_params, [p.detach() for p in run.params], 1.0 - spec.optim.ema_rate)
    if run.family.uses_timesteps:
        run.timesteps.update(*(x.cpu() for x in (_gather(t, d), _gather(terms["loss"].float(), d))))
    run.step += 1
    return loss, terms, float(grad_norm)


def validate(run: Run, loop: LoopSpec, eval_hook: EvalHook | None) -> dict[str, float]:
    """The validation row of this step: loss terms on a fixed subset, then ``eval_hook`` on the
    EMA weights (rank 0)."""
    spec, d = run.spec, run.d
    val_batch = spec.optim.microbatch or spec.optim.batch_size // d.world
    row = {"step": run.step, "split": "valid",
           **validation_loss(run.objective, run.valid_set, val_batch, loop.val_batches, d.device), "wall_s": run.wall,
           "threads": torch.get_num_threads()}  # the last bits of a curve depend on it (docs/design.md §3)
    if d.main and eval_hook is not None:
        ema_model = run.family.build(run.tok).to(d.device)
        ema_model.load_state_dict(run.ema)
        row.update(eval_hook(run.step, run.wall, ema_model.eval()))
    return row


def train(spec: TrainSpec, run_dir: Path, loop: LoopSpec | None = None, eval_hook: EvalHook | None = None,
          progress: bool = True) -> TrainResult:
    """Train (or resume) the model described by ``spec`` in ``run_dir``: :func:`setup_run`, then
    :func:`train_step` until ``optim.steps``, with the periodic work (log, validation, checkpoint)
    in between."""
    loop = loop or LoopSpec()
    flush_denormals()
    d = setup_distributed()
    if loop.threads:
        torch.set_num_threads(loop.threads)
    run = setup_run(spec, run_dir, d)
    if run.step >= spec.optim.steps:
        return TrainResult(run.last_ckpt, run.step, run.wall)

    log_file = (run_dir / "log.jsonl").open("a") if d.main else None
    bar = tqdm(total=spec.optim.steps, initial=run.step, disable=not (progress and d.main), desc=run_dir.name,
               dynamic_ncols=True)
    tokens_per_step = spec.optim.batch_size * spec.data.seq_len
    run.objective.train()
    t_log, steps_since_log = time.perf_counter(), 0
    try:
        while run.step < spec.optim.steps:
            t0 = time.perf_counter()
            loss, terms, grad_norm = train_step(run)
            run.wall += time.perf_counter() - t0
            steps_since_log += 1
            bar.update(1)
            step, last = run.step, run.step == spec.optim.steps
            if d.main and (step % loop.log_every == 0 or last):
                now = time.perf_counter()
                row = {"step": step, "split": "train", "loss": loss.item(), "lr": lr_at(step - 1, spec),
                       "grad_norm": grad_norm, "tokens_per_s": steps_since_log / (now - t_log) * tokens_per_step,
                       "wall_s": run.wall}
                row.update({k: v.float().mean().item() for k, v in terms.items() if k != "loss"})
                row.update(run.family.log_state(run.model, run.ema))
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                t_log, steps_since_log = now, 0
            if step % loop.eval_every == 0 or last:
                row = validate(run, loop, eval_hook)
                if d.main:
                    log_file.write(json.dumps(row) + "\n")
                    log_file.flush()
            if step % loop.save_every == 0 or last:
                if d.main:
                    run.last_ckpt = save_checkpoint(run_dir, step, run.model, run.ema, run.opt,
                                                    run.timesteps.state_dict(), run.wall, loop.keep_checkpoints)
                if d.world > 1:
                    dist.barrier()
    finally:
        bar.close()
        if log_file:
            log_file.close()
    return TrainResult(run.last_ckpt, run.step, run.wall)
