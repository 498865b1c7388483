"""Generation for the harness and the CLI: model + sampler spec + encoded sources → tokens.

- :func:`generate`: all sources of an encoded split, in memory (``GenerationResult``).
- :func:`sample_split`: a run directory's split, one seed per file (``samples.seed{S}.jsonl``
  with a ``samples.seed{S}.json`` record of NFE, timing and spec), plus ``samples.mbr.jsonl``.

Each batch is sampled with its own generator seeded from (seed, batch index), so a batch's
tokens do not depend on which batches ran before it. That makes :func:`sample_split`
resumable at batch granularity with output identical to an uninterrupted run: finished
batches are appended to ``samples.seed{S}.partial.jsonl`` and skipped on restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from diffuseq.config import ConfigError, DiffusionSpec
from diffuseq.data import Pair, encode_pairs, load_split
from diffuseq.io import write_atomic
from diffuseq.model import Denoiser
from diffuseq.sampling.base import Condition, Sampler, build_sampler
from diffuseq.sampling.mbr import mbr_rows
from diffuseq.sampling.rounding import round_to_ids
from diffuseq.sampling.spec import SamplerSpec, is_continuous
from diffuseq.schedule import NoiseSchedule
from diffuseq.tokenizer import TextTokenizer


@dataclass(frozen=True)
class BatchResult:
    index: int  # batch number
    ids: Tensor  # (b, L) token ids; source positions are the input ids
    nfe: int
    wall_s: float


@dataclass(frozen=True)
class GenerationResult:
    ids: Tensor  # (N, L) token ids; source positions are the input ids
    recover: list[str]  # DiffuSeq-style raw text of each target part (specials kept)
    nfe: int  # model evaluations per sample
    wall_s: float  # sampling + rounding time

    @property
    def sentences_per_s(self) -> float:
        return len(self.recover) / self.wall_s if self.wall_s > 0 else float("inf")


def batch_seed(seed: int, batch: int) -> int:
    return seed * 1_000_003 + batch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


@torch.no_grad()
def sample_batch(model: Denoiser, sampler: Sampler, ids: Tensor, mask: Tensor, gamma: float,
                 generator: torch.Generator) -> tuple[Tensor, int]:
    """One batch: ids, mask (b, L) → generated ids (b, L) with the source copied, and NFE."""
    emb = model.word_emb.weight
    cond = Condition(model.embed(ids), mask.bool(), model.absorbing_state(), gamma, emb)
    T = sampler.schedule.T
    out = sampler.sample(lambda z, t: model(z, t, T), cond, generator)
    tokens = round_to_ids(out.z, emb, sampler.spec.rounding, model.lm_bias)
    return torch.where(mask.bool(), tokens, ids), out.nfe


BatchDecoder = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, int]]


def batch_decoder(model: torch.nn.Module, diffusion: DiffusionSpec, spec: SamplerSpec) -> BatchDecoder:
    """(ids, mask, generator) → (generated ids, NFE) for one batch: :func:`sample_batch` with a
    continuous sampler, else the decode of the model family that owns ``spec.sampler``
    (``diffuseq.family.SAMPLER_FAMILIES``)."""
    if not is_continuous(spec.sampler):
        from diffuseq.config import TrainSpec
        from diffuseq.family import SAMPLER_FAMILIES, make_family

        family = make_family(SAMPLER_FAMILIES[spec.sampler], TrainSpec(diffusion=diffusion))  # decode reads no more
        return lambda ids, mask, gen: family.decode(model, ids, mask, spec, gen)
    sampler = build_sampler(spec, NoiseSchedule(diffusion.schedule, diffusion.steps))
    return lambda ids, mask, gen: sample_batch(model, sampler, ids, mask, diffusion.gamma, gen)


def iter_batches(model: Denoiser, diffusion: DiffusionSpec, spec: SamplerSpec, input_ids: Tensor,
                 input_mask: Tensor, seed: int, batch_size: int, skip: frozenset[int] = frozenset(),
                 progress: bool = False) -> Iterator[BatchResult]:
    """Sample every batch not in ``skip``, in order; each batch seeded by (seed, index)."""
    device = next(model.parameters()).device
    decode = batch_decoder(model, diffusion, spec)
    n_batches = -(-len(input_ids) // batch_size)
    todo = [b for b in range(n_batches) if b not in skip]
    for b in tqdm(todo, total=n_batches, initial=n_batches - len(todo), disable=not progress,
                  desc=f"{spec.sampler} seed {seed}", dynamic_ncols=True):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        gen = torch.Generator(device).manual_seed(batch_seed(seed, b))
        t0 = time.perf_counter()
        ids, nfe = decode(input_ids[sl].to(device), input_mask[sl].to(device), gen)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        yield BatchResult(b, ids.cpu(), nfe, time.perf_counter() - t0)


def target_text(tok: TextTokenizer, ids: Tensor, mask: Tensor) -> str:
    """Raw text of the target part of one row (mask 1), specials kept, as DiffuSeq writes it."""
    return tok.tokens(ids[mask.bool()].tolist())


def generate(model: Denoiser, tok: TextTokenizer, diffusion: DiffusionSpec, spec: SamplerSpec,
             input_ids: Tensor, input_mask: Tensor, seed: int, batch_size: int,
             progress: bool = False) -> GenerationResult:
    """Sample all rows of (input_ids, input_mask) (N, L) with one seed; ``diffusion`` is the run's."""
    batches = list(iter_batches(model, diffusion, spec, input_ids, input_mask, seed, batch_size, progress=progress))
    ids = torch.cat([b.ids for b in batches])
    recover = [target_text(tok, row, m) for row, m in zip(ids, input_mask, strict=True)]
    return GenerationResult(ids, recover, batches[0].nfe, sum(b.wall_s for b in batches))


# ---------------------------------------------------------------------------------------------
# Files
def sample_rows(tok: TextTokenizer, pairs: list[Pair], input_ids: Tensor, input_mask: Tensor,
                start: int, recover: list[str]) -> list[dict]:
    """Sample-file rows (index, source, reference, recover, refs of multi-reference sets) of the
    encoded ``pairs[start:]`` (rows of input_ids/input_mask) with the outputs ``recover``."""
    rows = []
    for i, (inp, mask, hyp) in enumerate(zip(input_ids, input_mask, recover, strict=True)):
        row = {"index": start + i, "source": tok.tokens(inp[mask == 0].tolist()),
               "reference": target_text(tok, inp, mask), "recover": hyp}
        if refs := pairs[start + i].refs:
            row["refs"] = [tok.tokens(r) for r in tok.encode_batch(list(refs))]
        rows.append(row)
    return rows


def _read_partial(path: Path, key: dict) -> dict[int, dict]:
    """Finished batches of an interrupted run with the same key (a torn last line is dropped)."""
    if not path.is_file():
        return {}
    done: dict[int, dict] = {}
    with path.open() as f:
        try:
            if json.loads(f.readline()) != key:
                return {}
        except json.JSONDecodeError:
            return {}
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            done[rec["batch"]] = rec
    return done


def _sample_seed(model: Denoiser, tok: TextTokenizer, diffusion: DiffusionSpec, spec: SamplerSpec,
                 pairs: list[Pair], input_ids: Tensor, input_mask: Tensor, seed: int, batch_size: int,
                 out_dir: Path, meta: dict, progress: bool) -> Path:
    """Write samples.seed{S}.jsonl and .json, resuming from a partial file of finished batches."""
    final, record = out_dir / f"samples.seed{seed}.jsonl", out_dir / f"samples.seed{seed}.json"
    partial = out_dir / f"samples.seed{seed}.partial.jsonl"
    key = {"spec": spec.model_dump(mode="json"), "seed": seed, "batch_size": batch_size, "n": len(input_ids), **meta}
    if final.is_file() and record.is_file() and json.loads(record.read_text()).get("key") == key:
        return final
    done = _read_partial(partial, key)
    with partial.open("w") as f:  # rewrite: drops a torn line or a stale key
        f.write(json.dumps(key) + "\n")
        for rec in done.values():
            f.write(json.dumps(rec) + "\n")
        for b in iter_batches(model, diffusion, spec, input_ids, input_mask, seed, batch_size,
                              frozenset(done), progress):
            sl = slice(b.index * batch_size, (b.index + 1) * batch_size)
            rec = {"batch": b.index, "nfe": b.nfe, "wall_s": b.wall_s,
                   "rows": sample_rows(tok, pairs, input_ids[sl], input_mask[sl], sl.start,
                                       [target_text(tok, o, m) for o, m in zip(b.ids, input_mask[sl], strict=True)])}
            f.write(json.dumps(rec) + "\n")
            f.flush()
            done[b.index] = rec
    recs = [done[b] for b in sorted(done)]
    with final.open("w") as f:
        for rec in recs:
            for row in rec["rows"]:
                f.write(json.dumps(row) + "\n")
    wall = sum(r["wall_s"] for r in recs)
    device = next(model.parameters()).device
    write_atomic(record, json.dumps({
        "seed": seed, "nfe": recs[0]["nfe"], "wall_s": wall, "sentences_per_s": len(input_ids) / wall,
        "n_sentences": len(input_ids), "batch_size": batch_size, "device": device_name(device),
        "threads": torch.get_num_threads(), "sampler": spec.model_dump(mode="json"), "key": key,
    }, indent=2).encode())
    partial.unlink()
    return final


def sample_split(run_dir: Path, split: str, spec: SamplerSpec, seeds: list[int], batch_size: int,
                 out_dir: Path, limit: int | None = None, data_root: str | None = None,
                 ema: bool = True, progress: bool = False) -> list[Path]:
    """Sample a run's split once per seed; with ``spec.mbr > 1`` also pick by MBR over the first
    ``spec.mbr`` seeds. Returns the written jsonl paths (per seed, then MBR)."""
    from diffuseq.family import check_decodes
    from diffuseq.train import checkpoint_dirs, load_model

    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json); train one with `diffuseq train --run-dir`")
    if spec.mbr > len(seeds):
        raise ConfigError(f"mbr = {spec.mbr} needs at least {spec.mbr} samples per source, got {len(seeds)} seed(s)")
    model, tok, train = load_model(run_dir, ema=ema)
    check_decodes(train, spec.sampler)
    if is_continuous(spec.sampler) and spec.steps > train.diffusion.steps and spec.time == "discrete":
        raise ConfigError(f"steps = {spec.steps} exceeds the model's T = {train.diffusion.steps}; use time: continuous for more")
    data = train.data if data_root is None else train.data.model_copy(update={"data_root": data_root})
    pairs = load_split(data, split)[:limit]
    enc = encode_pairs(tok, pairs, data.seq_len)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"run_dir": str(run_dir.resolve()), "checkpoint": checkpoint_dirs(run_dir)[-1].name,
            "weights": "ema" if ema else "model", "split": split, "limit": limit}
    paths = [_sample_seed(model, tok, train.diffusion, spec, pairs, enc.input_ids, enc.input_mask, seed,
                          batch_size, out_dir, meta, progress) for seed in seeds]
    if spec.mbr > 1:
        chosen = seeds[: spec.mbr]
        per_seed = {s: [json.loads(line) for line in p.open()] for s, p in zip(seeds, paths, strict=True) if s in chosen}
        mbr_path = out_dir / "samples.mbr.jsonl"
        mbr_path.write_text("".join(json.dumps(r) + "\n" for r in mbr_rows(per_seed)))
        paths.append(mbr_path)
    return paths
