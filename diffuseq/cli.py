"""``diffuseq`` command line: ``train``, ``sample``, ``eval`` and ``import-official``.

Examples::

    diffuseq train --preset smoke --arm v2                       # embedded synthetic data
    diffuseq train --preset cpu --arm baseline --dataset qqp --data-root ../shared/data
    diffuseq train --preset cpu --arm v2 --set model.layers=2 --set optim.steps=2000
    torchrun --standalone --nproc_per_node 2 -m diffuseq train --preset smoke --arm v2   # DDP
    diffuseq sample --run-dir runs/RUN --arm v2 --split test --out samples/
    diffuseq eval samples/samples.seed*.jsonl --out scores/
    diffuseq import-official RUN/ema_0.9999_050000.pt --out runs/official      # an official checkpoint
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from diffuseq import evaluate, official, sample
from diffuseq.config import (
    PRESETS,
    ConfigError,
    LoopSpec,
    build_train_spec,
    merge,
    parse_overrides,
    read_yaml,
)
from diffuseq.errors import UserError, report
from diffuseq.runtime import flush_denormals


def _train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to train")
    g.add_argument("--preset", choices=sorted(PRESETS), default="smoke", help="model/data/optimiser sizes (default: smoke)")
    g.add_argument("--arm", default="v2", help="arm name (built in, or NAME.yaml in $DIFFUSEQ_ARMS_DIR or ./ablations/arms) or an arm file; sets the diffusion section (default: v2)")
    g.add_argument("--config", type=Path, help="YAML file with TrainSpec sections (data, model, diffusion, optim) applied after the arm")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one field, e.g. --set model.layers=2 --set diffusion.gamma=0.3 (repeatable)")
    g.add_argument("--dataset", help="'default' (embedded synthetic), a name under the data root, or a folder")
    g.add_argument("--data-root", help="folder of datasets (else $DIFFUSEQ_DATA_ROOT)")
    g.add_argument("--steps", type=int, help="training steps (optim.steps)")
    g.add_argument("--batch-size", type=int, help="global batch size (optim.batch_size)")
    g.add_argument("--seed", type=int, help="optim.seed")
    g = p.add_argument_group("where and how often")
    g.add_argument("--run-dir", type=Path, help="output folder (default: runs/<dataset>-<arm>-<spec hash>); re-running resumes")
    g.add_argument("--log-every", type=int, default=LoopSpec().log_every)
    g.add_argument("--eval-every", type=int, default=LoopSpec().eval_every, help="validation loss every N steps")
    g.add_argument("--save-every", type=int, default=LoopSpec().save_every, help="checkpoint every N steps")
    g.add_argument("--keep-checkpoints", type=int, default=LoopSpec().keep_checkpoints,
                   help="how many of the newest checkpoints to keep (default %(default)s)")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_file(path: Path) -> dict[str, Any]:
    """The TrainSpec sections of a ``--config`` file (a YAML mapping)."""
    doc = read_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data, model, diffusion, optim), "
                          f"got a {type(doc).__name__}; write e.g. 'model: {{layers: 2}}'")
    return doc


def loop_spec(args: argparse.Namespace) -> LoopSpec:
    """The ``--log-every`` … ``--threads`` flags as a LoopSpec; a bad value is a ConfigError naming the flag."""
    flags = {"log_every": args.log_every, "eval_every": args.eval_every, "save_every": args.save_every,
             "keep_checkpoints": args.keep_checkpoints, "threads": args.threads}
    try:
        return LoopSpec(**flags)
    except ValidationError as err:
        raise ConfigError("; ".join(f"--{e['loc'][0].replace('_', '-')}: {e['msg']}" for e in err.errors())) from None


def _cmd_train(args: argparse.Namespace) -> int:
    from diffuseq.train import train

    over: dict = {}
    if args.config:
        over = merge(over, config_file(args.config))
    flags = {"data": {"dataset": args.dataset, "data_root": args.data_root},
             "optim": {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed}}
    over = merge(over, {s: {k: v for k, v in kv.items() if v is not None} for s, kv in flags.items()})
    over = merge(over, parse_overrides(args.overrides))
    spec = build_train_spec(args.preset, args.arm, over, source=str(args.config or "command line"))
    arm_name = Path(args.arm).stem
    run_dir = args.run_dir or Path("runs") / f"{Path(spec.data.dataset).name}-{arm_name}-{spec.key()}"
    loop = loop_spec(args)
    logging.getLogger("diffuseq").info("training %s (spec %s) in %s", arm_name, spec.key(), run_dir)
    result = train(spec, run_dir, loop, progress=not args.no_progress)
    print(f"done: {result.checkpoint} ({result.steps} steps, {result.wall_s:.0f} s of training)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffuseq", description="DiffuSeq / DiffuSeq-v2 reference implementation.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a denoiser (resumes if the run directory has checkpoints)",
                       description=_cmd_train.__doc__ or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _train_args(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("sample", help="decode a trained run's split (DDPM, DDIM, DPM-Solver++; resumable)",
                       description=sample.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sample.add_arguments(p)
    p.set_defaults(func=sample.run)
    p = sub.add_parser("eval", help="score sample files (BLEU, ROUGE-L, BERTScore, diversity, MBR)",
                       description=evaluate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_arguments(p)
    p.set_defaults(func=evaluate.run)
    p = sub.add_parser("import-official", help="turn an official DiffuSeq / DiffuSeq-v2 checkpoint into a run directory",
                       description=official.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    official.add_arguments(p)
    p.set_defaults(func=official.run)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse, run the chosen subcommand; a bad config, bad data, a corrupt or missing file is one
    ``error: ...`` line on stderr and exit code 2, never a traceback (that is kept for bugs: 1)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flush_denormals()  # before any torch work starts its threads
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UserError, FileNotFoundError) as err:
        return report(err)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
