"""Generation for the harness and the CLI: model + sampler spec + encoded sources → tokens.

- :func:`generate`: all sources of an encoded split, in memory (``GenerationResult``).
- :func:`sample_split`: a run directory's split, one seed per file (``samples.seed{S}.jsonl``
  with a ``samples.seed{S}.json`` record of NFE, timing and spec), plus ``samples.mbr.jsonl``.

Each batch is sampled with its own generator seeded from (seed, batch index), so a batch's
tokens do not depend on which batches ran before it. That makes :func:`sample_split`
resumable at batch granularity with output identical to an uninterrupted run: finished
batches are appended to ``samples.seed{S}.partial.jsonl`` and skipped on restart.

Several seeds (MBR candidates) are decoded together: each batch once for k seeds, as one
stacked batch of k·b rows in which seed j's candidate draws its noise from its own generator
(:class:`~diffuseq.sampling.base.SamplingContext`), so every seed's tokens are those of a pass
of its own, bit for bit; only the per-step overhead is shared. k is chosen from the model's
width (:func:`candidates_per_pass`) and never changes a result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
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

# Stacked candidates per pass are limited so that the widest activation (k·b·L·width floats)
# stays under this many elements (512 MiB in float32).
STACKED_ELEMENTS = 1 << 27


@dataclass(frozen=True)
class BatchResult:
    index: int  # batch number
    ids: Tensor  # (k, b, L) token ids of the k seeds' candidates; source positions are the input ids
    nfe: int
    wall_s: float  # the whole batch, all k candidates


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


@torch.inference_mode()
def sample_batch(model: Denoiser, sampler: Sampler, ids: Tensor, mask: Tensor, gamma: float,
                 generator: torch.Generator | Sequence[torch.Generator]) -> tuple[Tensor, int]:
    """One batch: ids, mask (b, L) → generated ids (b, L) with the source copied, and NFE.

    With k generators, the batch's k candidates are decoded as one stacked batch and the result
    is (k·b, L), candidate j in rows j·b … (j+1)·b - 1, each equal to a pass with generator j
    alone (time embedding, clamp and rounding run per candidate: see
    :meth:`~diffuseq.model.Denoiser.time_embedding`).
    """
    k, b = (1 if isinstance(generator, torch.Generator) else len(generator)), ids.shape[0]
    ids, mask = ids.repeat(k, 1), mask.bool().repeat(k, 1)
    emb = model.word_emb.weight
    cond = Condition(model.embed(ids), mask, model.absorbing_state(), gamma, emb)
    T = sampler.schedule.T
    out = sampler.sample(lambda z, t: model(z, t, T, time_block=b), cond, generator)
    tokens = torch.cat([round_to_ids(z, emb, sampler.spec.rounding, model.lm_bias) for z in out.z.split(b)])
    return torch.where(mask, tokens, ids), out.nfe


def candidates_per_pass(model: Denoiser, batch_size: int, seq_len: int, seeds: int) -> int:
    """How many seeds' candidates to stack in one pass: all of them while the widest activation
    (b·L·max(FFN, 3·hidden) floats per candidate) fits in :data:`STACKED_ELEMENTS`."""
    width = max(model.spec.ffn, 3 * model.spec.hidden)
    return max(1, min(seeds, STACKED_ELEMENTS // (batch_size * seq_len * width)))


Generators = torch.Generator | Sequence[torch.Generator]
BatchDecoder = Callable[[Tensor, Tensor, Generators], tuple[Tensor, int]]


def batch_decoder(model: torch.nn.Module, diffusion: DiffusionSpec, spec: SamplerSpec) -> BatchDecoder:
    """(ids, mask, generator(s)) → (generated ids, NFE) for one batch: :func:`sample_batch` with a
    continuous sampler (k generators: k candidates stacked), else the decode of the model family
    that owns ``spec.sampler`` (``diffuseq.registry.SAMPLER_FAMILIES``), once per generator."""
    if not is_continuous(spec.sampler):
        from diffuseq.config import TrainSpec
        from diffuseq.family import make_family
        from diffuseq.registry import SAMPLER_FAMILIES

        family = make_family(SAMPLER_FAMILIES[spec.sampler], TrainSpec(diffusion=diffusion))  # decode reads no more

        def decode(ids: Tensor, mask: Tensor, gen: Generators) -> tuple[Tensor, int]:
            outs = [family.decode(model, ids, mask, spec, g)
                    for g in ([gen] if isinstance(gen, torch.Generator) else gen)]
            return torch.cat([ids for ids, _ in outs]), outs[0][1]

        return decode
    sampler = build_sampler(spec, NoiseSchedule(diffusion.schedule, diffusion.steps))
    return lambda ids, mask, gen: sample_batch(model, sampler, ids, mask, diffusion.gamma, gen)


def iter_batches(model: Denoiser, diffusion: DiffusionSpec, spec: SamplerSpec, input_ids: Tensor,
                 input_mask: Tensor, seed: int | Sequence[int], batch_size: int, skip: frozenset[int] = frozenset(),
                 progress: bool = False) -> Iterator[BatchResult]:
    """Sample every batch not in ``skip``, in order; each batch seeded by (seed, index), with
    several seeds decoded as one stacked batch (see :func:`sample_batch`)."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    device = next(model.parameters()).device
    decode = batch_decoder(model, diffusion, spec)
    n_batches = -(-len(input_ids) // batch_size)
    todo = [b for b in range(n_batches) if b not in skip]
    for b in tqdm(todo, total=n_batches, initial=n_batches - len(todo), disable=not progress,
                  desc=f"{spec.sampler} seed {','.join(map(str, seeds))}", dynamic_ncols=True):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        gens = [torch.Generator(device).manual_seed(batch_seed(s, b)) for s in seeds]
        t0 = time.perf_counter()
        ids, nfe = decode(input_ids[sl].to(device), input_mask[sl].to(device), gens if len(gens) > 1 else gens[0])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        yield BatchResult(b, ids.cpu().view(len(seeds), -1, ids.shape[1]), nfe, time.perf_counter() - t0)


def target_text(tok: TextTokenizer, ids: Tensor, mask: Tensor) -> str:
    """Raw text of the target part of one row (mask 1), specials kept, as DiffuSeq writes it."""
    return tok.tokens(ids[mask.bool()].tolist())


def generate(model: Denoiser, tok: TextTokenizer, diffusion: DiffusionSpec, spec: SamplerSpec,
             input_ids: Tensor, input_mask: Tensor, seed: int, batch_size: int,
             progress: bool = False) -> GenerationResult:
    """Sample all rows of (input_ids, input_mask) (N, L) with one seed; ``diffusion`` is the run's."""
    batches = list(iter_batches(model, diffusion, spec, input_ids, input_mask, seed, batch_size, progress=progress))
    ids = torch.cat([b.ids[0] for b in batches])
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


def _sample_seeds(model: Denoiser, tok: TextTokenizer, diffusion: DiffusionSpec, spec: SamplerSpec,
                  pairs: list[Pair], input_ids: Tensor, input_mask: Tensor, seeds: list[int], batch_size: int,
                  out_dir: Path, meta: dict, progress: bool) -> list[Path]:
    """Write samples.seed{S}.jsonl and .json of each seed, decoding the seeds together and
    resuming from each seed's partial file of finished batches (a batch unfinished for any seed
    is decoded again for all: its tokens come out the same)."""
    finals = {s: out_dir / f"samples.seed{s}.jsonl" for s in seeds}
    keys = {s: {"spec": spec.model_dump(mode="json"), "seed": s, "batch_size": batch_size, "n": len(input_ids), **meta}
            for s in seeds}
    todo = [s for s in seeds if not _finished(finals[s], keys[s])]
    if todo:
        partials = {s: out_dir / f"samples.seed{s}.partial.jsonl" for s in todo}
        done = {s: _read_partial(partials[s], keys[s]) for s in todo}
        files = {s: partials[s].open("w") for s in todo}  # rewrite: drops a torn line or a stale key
        try:
            for s, f in files.items():
                f.write("".join(json.dumps(x) + "\n" for x in (keys[s], *done[s].values())))
            skip = frozenset.intersection(*(frozenset(done[s]) for s in todo))
            for b in iter_batches(model, diffusion, spec, input_ids, input_mask, todo, batch_size, skip, progress):
                sl = slice(b.index * batch_size, (b.index + 1) * batch_size)
                for s, ids in zip(todo, b.ids, strict=True):
                    rec = {"batch": b.index, "nfe": b.nfe, "wall_s": b.wall_s / len(todo), "candidates_per_pass": len(todo),
                           "rows": sample_rows(tok, pairs, input_ids[sl], input_mask[sl], sl.start,
                                               [target_text(tok, o, m) for o, m in zip(ids, input_mask[sl], strict=True)])}
                    files[s].write(json.dumps(rec) + "\n")
                    files[s].flush()
                    done[s][b.index] = rec
        finally:
            for f in files.values():
                f.close()
        for s in todo:
            _write_seed(finals[s], [done[s][b] for b in sorted(done[s])], keys[s], model, len(input_ids), batch_size, spec)
            partials[s].unlink()
    return [finals[s] for s in seeds]


def _finished(final: Path, key: dict) -> bool:
    record = final.with_suffix(".json")
    return final.is_file() and record.is_file() and json.loads(record.read_text()).get("key") == key


def _write_seed(final: Path, recs: list[dict], key: dict, model: Denoiser, n: int, batch_size: int,
                spec: SamplerSpec) -> None:
    """A seed's samples file and its record (NFE, wall seconds, throughput, device, threads, how
    many candidates shared a pass) from its finished batches."""
    with final.open("w") as f:
        for rec in recs:
            for row in rec["rows"]:
                f.write(json.dumps(row) + "\n")
    wall = sum(r["wall_s"] for r in recs)
    device = next(model.parameters()).device
    write_atomic(final.with_suffix(".json"), json.dumps({
        "seed": key["seed"], "nfe": recs[0]["nfe"], "wall_s": wall, "sentences_per_s": n / wall,
        "n_sentences": n, "batch_size": batch_size, "device": device_name(device),
        "threads": torch.get_num_threads(), "candidates_per_pass": max(r.get("candidates_per_pass", 1) for r in recs),
        "sampler": spec.model_dump(mode="json"), "key": key,
    }, indent=2).encode())


def sample_split(run_dir: Path, split: str, spec: SamplerSpec, seeds: list[int], batch_size: int,
                 out_dir: Path, limit: int | None = None, data_root: str | None = None,
                 ema: bool = True, progress: bool = False) -> list[Path]:
    """Sample a run's split once per seed; with ``spec.mbr > 1`` also pick by MBR over the first
    ``spec.mbr`` seeds. Returns the written jsonl paths (per seed, then MBR)."""
    from diffuseq.family import check_decodes
    from diffuseq.rundir import load_model
    from diffuseq.train import checkpoint_dirs

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
    k = candidates_per_pass(model, batch_size, data.seq_len, len(seeds)) if is_continuous(spec.sampler) else 1
    paths = [p for i in range(0, len(seeds), k)
             for p in _sample_seeds(model, tok, train.diffusion, spec, pairs, enc.input_ids, enc.input_mask,
                                    seeds[i : i + k], batch_size, out_dir, meta, progress)]
    if spec.mbr > 1:
        chosen = seeds[: spec.mbr]
        per_seed = {s: [json.loads(line) for line in p.open()] for s, p in zip(seeds, paths, strict=True) if s in chosen}
        mbr_path = out_dir / "samples.mbr.jsonl"
        mbr_path.write_text("".join(json.dumps(r) + "\n" for r in mbr_rows(per_seed)))
        paths.append(mbr_path)
    return paths
