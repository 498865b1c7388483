"""``diffuseq sample``: decode a trained run's split with any sampler spec.

Examples::

    diffuseq sample --run-dir runs/x --arm v2                          # the arm's sample section
    diffuseq sample --run-dir runs/x --arm baseline --limit 100        # DDPM-2000 + clamp, MBR-10
    diffuseq sample --run-dir runs/x --sampler dpm_solver++ --steps 20 --set order=3
    diffuseq sample --run-dir runs/x --arm official_v2_sampling --num-samples 3

The spec is built as: defaults ⊕ the arm's ``sample:`` section ⊕ --sampler/--steps ⊕ --set.
Writes ``samples.seed{S}.jsonl`` (one line per source: index, source, reference, recover,
and refs for multi-reference splits) and ``samples.seed{S}.json`` (NFE, wall time,
sentences/s, batch size, device, spec, seed) per seed, and ``samples.mbr.jsonl`` when the
spec's mbr > 1. Re-running the same command resumes an interrupted run at the last
finished batch.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from diffuseq.config import ConfigError, load_arm, parse_overrides
from diffuseq.data import SPLITS
from diffuseq.samples import sample_split
from diffuseq.sampling.spec import SamplerSpec, build_sampler_spec, overlay, sampler_names

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to sample")
    g.add_argument("--run-dir", type=Path, required=True, help="run directory written by `diffuseq train`")
    g.add_argument("--split", choices=[s for s in SPLITS if s != "train"], default="test")
    g.add_argument("--weights", choices=["ema", "model"], default="ema", help="checkpoint weights (default: ema)")
    g.add_argument("--data-root", help="folder of datasets (else the run's data.data_root or $DIFFUSEQ_DATA_ROOT)")
    g.add_argument("--limit", type=int, help="only the first N sources")
    g = p.add_argument_group("how to sample")
    g.add_argument("--arm", help="arm name (built in, or NAME.yaml in $DIFFUSEQ_ARMS_DIR or ./ablations/arms) or file: use its sample section")
    g.add_argument("--sampler", choices=sampler_names())
    g.add_argument("--steps", type=int, help="model evaluations per sample (NFE)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a sampler field, e.g. --set order=3 (fields: {', '.join(SamplerSpec.model_fields)})")
    g.add_argument("--num-samples", type=int, help="samples per source, seeds seed..seed+N-1 (default: the spec's mbr)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--batch-size", type=int, default=64)
    g = p.add_argument_group("where")
    g.add_argument("--out", type=Path, help="output folder (default: <run-dir>/samples/<split>-<arm>-<spec hash>)")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def spec_from_args(args: argparse.Namespace) -> SamplerSpec:
    raw: dict[str, Any] = {}
    source = "command line"
    if args.arm:
        raw = dict(load_arm(args.arm)["sample"])
        source = f"arm {args.arm} (sample section) + command line"
    flags = {"sampler": args.sampler, "steps": args.steps}
    raw = overlay(raw, {k: v for k, v in flags.items() if v is not None})
    return build_sampler_spec(overlay(raw, parse_overrides(args.overrides)), source)


def default_out(args: argparse.Namespace, spec: SamplerSpec) -> Path:
    name = Path(args.arm).stem if args.arm else spec.sampler
    return args.run_dir / "samples" / f"{args.split}-{name}-{spec.key()}"


def run(args: argparse.Namespace) -> int:
    """Sample; 0 on success (configuration, data and file errors are raised for the CLI to report)."""
    spec = spec_from_args(args)
    n = args.num_samples or spec.mbr
    for name in ("num_samples", "batch_size", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or default_out(args, spec)
    result = sample_split(args.run_dir, args.split, spec, list(range(args.seed, args.seed + n)),
                          args.batch_size, out, args.limit, args.data_root, args.weights == "ema",
                          progress=not args.no_progress)
    for p in result.paths:
        print(p)
    return 0
