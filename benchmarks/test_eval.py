"""Evaluation without BERTScore (``diffuseq.metrics.evaluate``) on stand-in runs of the embedded
synthetic test pairs: run k's hypotheses are the references shuffled with seed k, each with one
word dropped (so no hypothesis equals a reference), as DiffuSeq-style word pieces. BERTScore is
left out: it needs the BERT model in the cache, and its cost is a model forward per sentence.
"""

from __future__ import annotations

import random

from diffuseq.config import DataSpec
from diffuseq.data import Pair, load_split
from diffuseq.metrics import Sample, evaluate
from diffuseq.tokenizer import TextTokenizer

RUNS = 3


def stand_in_runs(pairs: list[Pair], n_runs: int) -> dict[str, list[Sample]]:
    tok = TextTokenizer.bert()

    def pieces(texts: list[str]) -> list[str]:
        return [f"[CLS] {tok.tokens(ids)} [SEP]" for ids in tok.encode_batch(texts)]

    sources, references = pieces([p.src for p in pairs]), pieces([p.trg for p in pairs])
    runs = {}
    for seed in range(n_runs):
        rng = random.Random(seed)
        shuffled = [p.trg.split() for p in rng.sample(pairs, len(pairs))]
        hyps = pieces([" ".join(w[:i] + w[i + 1 :]) for w in shuffled for i in [rng.randrange(len(w))]])
        runs[f"seed{seed}"] = [Sample(i, s, (r,), h) for i, (s, r, h) in enumerate(zip(sources, references, hyps, strict=True))]
    return runs


def test_evaluate_without_bertscore(compare):
    pairs = load_split(DataSpec(), "test")
    runs = stand_in_runs(pairs, RUNS)
    compare(f"evaluate() without BERTScore, {len(pairs)} sentences x {RUNS} runs", {"new": lambda: evaluate(runs)}, rounds=3)
