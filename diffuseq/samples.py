"""A run's sample files: one per seed, resumable, and the MBR pick.

:func:`sample_split` decodes a run directory's split once per seed into ``samples.seed{S}.jsonl``
with a ``samples.seed{S}.json`` record of NFE, timing and spec, plus ``samples.mbr.jsonl``.
Batches are seeded by (seed, batch index) (:mod:`diffuseq.decode`), so an interrupted run
resumes at batch granularity with output identical to an uninterrupted one: finished batches
are appended to ``samples.seed{S}.partial.jsonl`` and skipped on restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from diffuseq.checkpoint import checkpoint_dirs
from diffuseq.config import ConfigError
from diffuseq.data import Encoded, Pair, encode_pairs, load_split
from diffuseq.decode import Decoding, candidates_per_pass, device_name, target_text
from diffuseq.family import check_decodes
from diffuseq.io import write_atomic
from diffuseq.rundir import load_model
from diffuseq.sampling.mbr import mbr_rows
from diffuseq.sampling.spec import SamplerSpec, is_continuous
from diffuseq.tokenizer import TextTokenizer


@dataclass(frozen=True)
class SampleResult:
    """The files of one :func:`sample_split` and the figures of its seeds' records."""

    seed_paths: tuple[Path, ...]  # samples.seed{S}.jsonl, in the order of the seeds
    mbr_path: Path | None  # samples.mbr.jsonl (spec.mbr > 1)
    nfe: int  # model evaluations per sample (equal across seeds)
    wall_s: float  # decoding seconds, all seeds together
    n_sentences: int  # sentences decoded, all seeds together
    device: str  # where the first seed was decoded (:func:`~diffuseq.decode.device_name`)

    @property
    def paths(self) -> list[Path]:
        """Every written samples file: per seed, then MBR."""
        return [*self.seed_paths, *([self.mbr_path] if self.mbr_path else [])]

    @property
    def sentences_per_s(self) -> float:
        return self.n_sentences / self.wall_s


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


def _sample_seeds(dec: Decoding, pairs: list[Pair], enc: Encoded, seeds: list[int], out_dir: Path,
                  meta: dict) -> list[Path]:
    """Write samples.seed{S}.jsonl and .json of each seed, decoding the seeds together and
    resuming from each seed's partial file of finished batches (a batch unfinished for any seed
    is decoded again for all: its tokens come out the same)."""
    tok, size, n = dec.tok, dec.batch_size, len(enc.input_ids)
    finals = {s: out_dir / f"samples.seed{s}.jsonl" for s in seeds}
    keys = {s: {"spec": dec.spec.model_dump(mode="json"), "seed": s, "batch_size": size, "n": n, **meta}
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
            for b in dec.batches(enc.input_ids, enc.input_mask, todo, skip):
                sl = slice(b.index * size, (b.index + 1) * size)
                ids, mask = enc.input_ids[sl], enc.input_mask[sl]
                for s, out in zip(todo, b.ids, strict=True):
                    rec = {"batch": b.index, "nfe": b.nfe, "wall_s": b.wall_s / len(todo), "candidates_per_pass": len(todo),
                           "rows": sample_rows(tok, pairs, ids, mask, sl.start,
                                               [target_text(tok, o, m) for o, m in zip(out, mask, strict=True)])}
                    files[s].write(json.dumps(rec) + "\n")
                    files[s].flush()
                    done[s][b.index] = rec
        finally:
            for f in files.values():
                f.close()
        for s in todo:
            _write_seed(finals[s], [done[s][b] for b in sorted(done[s])], keys[s], dec, n)
            partials[s].unlink()
    return [finals[s] for s in seeds]


def _finished(final: Path, key: dict) -> bool:
    record = final.with_suffix(".json")
    return final.is_file() and record.is_file() and json.loads(record.read_text()).get("key") == key


def _write_seed(final: Path, recs: list[dict], key: dict, dec: Decoding, n: int) -> None:
    """A seed's samples file and its record (NFE, wall seconds, throughput, device, threads, how
    many candidates shared a pass) from its finished batches of ``n`` sources in all."""
    with final.open("w") as f:
        for rec in recs:
            for row in rec["rows"]:
                f.write(json.dumps(row) + "\n")
    wall = sum(r["wall_s"] for r in recs)
    write_atomic(final.with_suffix(".json"), json.dumps({
        "seed": key["seed"], "nfe": recs[0]["nfe"], "wall_s": wall, "sentences_per_s": n / wall,
        "n_sentences": n, "batch_size": dec.batch_size, "device": device_name(dec.device),
        "threads": torch.get_num_threads(), "candidates_per_pass": max(r.get("candidates_per_pass", 1) for r in recs),
        "sampler": dec.spec.model_dump(mode="json"), "key": key,
    }, indent=2).encode())


def sample_split(run_dir: Path, split: str, spec: SamplerSpec, seeds: list[int], batch_size: int,
                 out_dir: Path, limit: int | None = None, data_root: str | None = None,
                 ema: bool = True, progress: bool = False) -> SampleResult:
    """Sample a run's split once per seed; with ``spec.mbr > 1`` also pick by MBR over the first
    ``spec.mbr`` seeds. Seeds already sampled with the same key are read from their records."""
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
    dec = Decoding(model, tok, train, spec, batch_size, progress)
    meta = {"run_dir": str(run_dir.resolve()), "checkpoint": checkpoint_dirs(run_dir)[-1].name,
            "weights": "ema" if ema else "model", "split": split, "limit": limit}
    k = candidates_per_pass(model, batch_size, data.seq_len, len(seeds)) if is_continuous(spec.sampler) else 1
    paths = [p for i in range(0, len(seeds), k) for p in _sample_seeds(dec, pairs, enc, seeds[i : i + k], out_dir, meta)]
    mbr_path = None
    if spec.mbr > 1:
        chosen = seeds[: spec.mbr]
        per_seed = {s: [json.loads(line) for line in p.open()] for s, p in zip(seeds, paths, strict=True) if s in chosen}
        mbr_path = out_dir / "samples.mbr.jsonl"
        mbr_path.write_text("".join(json.dumps(r) + "\n" for r in mbr_rows(per_seed)))
    records = [json.loads(p.with_suffix(".json").read_text()) for p in paths]
    return SampleResult(tuple(paths), mbr_path, records[0]["nfe"], sum(r["wall_s"] for r in records),
                        sum(r["n_sentences"] for r in records), records[0]["device"])
