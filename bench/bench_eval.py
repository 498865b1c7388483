"""Time ``diffuseq eval`` on QQP-sized input: seconds per metric and in total.

No model samples exist yet, so run k's hypotheses are the test references shuffled with seed k,
each with one random word dropped (so no hypothesis equals a reference and BERTScore's sentence
de-duplication cannot skip work), written as DiffuSeq-style word pieces like ``diffuseq sample``::

    python bench/bench_eval.py --data-root ../shared/data            # 2500 sentences x 3 runs
    python bench/bench_eval.py --data-root ../shared/data -n 500 --runs 10 --no-bertscore
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from diffuseq.metrics import (
    BertScorer,
    Sample,
    clean,
    corpus_bleu,
    dist1,
    evaluate,
    rouge_l,
    sentence_bleu,
    set_scores,
)
from diffuseq.tokenizer import TextTokenizer


def stand_in_runs(pairs: list[dict[str, str]], n_runs: int) -> dict[str, list[Sample]]:
    """``n_runs`` runs of :class:`Sample` with raw word-piece strings, as the sampler writes them."""
    tok = TextTokenizer.bert()

    def pieces(texts: list[str]) -> list[str]:
        return [f"[CLS] {tok.tokens(ids)} [SEP]" for ids in tok.encode_batch(texts)]

    sources, references = pieces([p["src"] for p in pairs]), pieces([p["trg"] for p in pairs])
    runs = {}
    for seed in range(n_runs):
        rng = random.Random(seed)
        shuffled = [p["trg"].split() for p in rng.sample(pairs, len(pairs))]
        hyps = pieces([" ".join(w[:i] + w[i + 1:]) for w in shuffled for i in [rng.randrange(len(w))]])
        runs[f"seed{seed}"] = [Sample(i, s, (r,), h) for i, (s, r, h) in enumerate(zip(sources, references, hyps, strict=True))]
    return runs


def timed(label: str, fn: Callable[[], object], times: dict[str, float]) -> object:
    start = time.perf_counter()
    out = fn()
    times[label] = time.perf_counter() - start
    return out


def measure(runs: dict[str, list[Sample]], bertscore: bool, batch_size: int) -> dict[str, float]:
    """Seconds per stage: each metric alone over all runs, then evaluate() and BERTScore."""
    times: dict[str, float] = {}
    refs = timed("clean (refs)", lambda: [[clean(r) for r in s.refs] for s in next(iter(runs.values()))], times)
    outs = timed("clean (hyps, all runs)", lambda: [[clean(s.hyp) for s in run] for run in runs.values()], times)
    for name, metric in [("sentence_bleu", sentence_bleu), ("rouge_l", rouge_l)]:
        timed(f"{name} (all runs)", lambda m=metric: [[m(r, h) for r, h in zip(refs, hyps, strict=True)] for hyps in outs], times)
    timed("dist1 (all runs)", lambda: [[dist1(h) for h in hyps] for hyps in outs], times)
    timed("corpus_bleu (all runs)", lambda: [corpus_bleu(refs, hyps) for hyps in outs], times)
    if len(runs) > 1:
        timed("self_bleu+div4+mbr", lambda: [set_scores(c) for c in zip(*outs, strict=True)], times)
    timed("evaluate() without BERTScore", lambda: evaluate(runs), times)
    if bertscore:
        scorer = timed("BERTScore model load", lambda: BertScorer(batch_size=batch_size), times)
        hyps = [" ".join(h) for hyps in outs for h in hyps] + [" ".join(h) for h in outs[0]]  # runs + MBR
        ref_texts = [[" ".join(r[0])] for r in refs] * (len(runs) + 1)
        timed("BERTScore F1 (runs + MBR)", lambda: scorer.f1(hyps, ref_texts), times)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=os.environ.get("DIFFUSEQ_DATA_ROOT"),
                        help="folder with <dataset>/test.jsonl (default: $DIFFUSEQ_DATA_ROOT)")
    parser.add_argument("--dataset", default="qqp")
    parser.add_argument("-n", "--sentences", type=int, help="first N test pairs (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="sample files (seeds); 2+ adds self-BLEU, div-4, MBR")
    parser.add_argument("--batch-size", type=int, default=64, help="BERTScore batch size")
    parser.add_argument("--no-bertscore", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.data_root is None:
        parser.error("give --data-root or set DIFFUSEQ_DATA_ROOT")
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = (args.data_root / args.dataset / "test.jsonl").read_text().splitlines()
    runs = stand_in_runs([json.loads(line) for line in lines[: args.sentences]], args.runs)
    n = len(runs["seed0"])
    print(f"{args.dataset} test: {n} sentences x {args.runs} runs, torch threads {torch.get_num_threads()}")
    times = measure(runs, not args.no_bertscore, args.batch_size)
    for label, seconds in times.items():
        print(f"{label:32s} {seconds:8.2f} s")
    total = sum(v for k, v in times.items() if k.startswith(("evaluate()", "BERTScore")))
    label = "total: evaluate()" + ("" if args.no_bertscore else " + BERTScore")
    print(f"{label:32s} {total:8.2f} s   ({1e3 * total / (n * args.runs):.2f} ms per sentence and run)")


if __name__ == "__main__":
    main()
