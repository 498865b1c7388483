"""Per-sentence overlap metrics on cleaned token lists (DiffuSeq conventions) and corpus BLEU.

Every score is in [0, 1]. ``refs`` is a list of reference token lists (one or more references).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from diffuseq.metrics.registry import metric

Tokens = Sequence[str]
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@cache
def _nltk_bleu():
    """nltk's sentence BLEU and smoothing method4, imported on first use (nltk loads scipy)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return sentence_bleu, SmoothingFunction().method4


@metric("bleu")
def sentence_bleu(refs: Sequence[Tokens], hyp: Tokens) -> float:
    """DiffuSeq's BLEU: nltk ``sentence_bleu`` with smoothing method4 and weights (0.25,) * 4.

    nltk gives 0 for an empty hypothesis, and 1 for a one-word hypothesis equal to a one-word
    reference (orders with no n-grams drop out).
    """
    bleu, smoothing = _nltk_bleu()
    return float(bleu(list(refs), hyp, smoothing_function=smoothing))


@metric("rouge_l")
def rouge_l(refs: Sequence[Tokens], hyp: Tokens) -> float:
    """ROUGE-L F1 as torchmetrics' ``ROUGEScore()`` (DiffuSeq's call) computes it.

    Its default normaliser is applied to the tokens joined by spaces: lowercase, every run of
    characters outside [a-z0-9] becomes a space (``"python?"`` → ``python``). F1 = 2PR/(P+R) with
    P = LCS/|hyp|, R = LCS/|ref|; 0 when either side is empty. With several references, the best
    F1 over them (torchmetrics >= 1.x, ``accumulate="best"``).
    """
    pred = _rouge_tokens(hyp)
    return max(_rouge_l_f1(_rouge_tokens(ref), pred) for ref in refs)


@metric("dist1", scope="output", higher_is_better=None)
def dist1(hyp: Tokens) -> float:
    """Distinct unigrams / tokens of one hypothesis; 0 for an empty one (DiffuSeq's value)."""
    return len(set(hyp)) / len(hyp) if hyp else 0.0


@metric("length", scope="output", higher_is_better=None)
def length(hyp: Tokens) -> float:
    """Tokens after cleaning (DiffuSeq counted ``split(" ")`` pieces, blanks included)."""
    return float(len(hyp))


@metric("corpus_bleu", scope="corpus")
def corpus_bleu(refs: Sequence[Sequence[Tokens]], hyps: Sequence[Tokens]) -> tuple[float, str]:
    """sacrebleu corpus BLEU of cleaned sentences joined by spaces: (score / 100, signature).

    ``refs[i]`` holds the references of ``hyps[i]``; sentences may have different numbers of
    references. sacrebleu's defaults are kept (``tokenize="13a"``, case-sensitive, exp smoothing)
    so the signature is the standard one: the cleaned text is lowercase words with punctuation
    glued as detokenised text has it (``me?``), which is the input 13a is made for.
    """
    from sacrebleu.metrics import BLEU

    n_refs = max(map(len, refs))
    streams = [[" ".join(r[k]) if k < len(r) else None for r in refs] for k in range(n_refs)]
    metric = BLEU()
    score = metric.corpus_score([" ".join(h) for h in hyps], streams)
    return score.score / 100, str(metric.get_signature())


def _rouge_tokens(tokens: Tokens) -> list[str]:
    """torchmetrics' default ROUGE normalisation of ``" ".join(tokens)``."""
    return _NOT_ALNUM.sub(" ", " ".join(tokens).lower()).split()


def _rouge_l_f1(target: list[str], pred: list[str]) -> float:
    return _f1(_lcs_length(target, pred), len(pred), len(target))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence; O(|a|·|b|) time, O(|b|) memory."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def _f1(hits: int, pred_len: int, target_len: int) -> float:
    if hits == 0:
        return 0.0
    precision, recall = hits / pred_len, hits / target_len
    return 2 * precision * recall / (precision + recall)
