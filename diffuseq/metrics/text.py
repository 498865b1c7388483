"""Text clean-up before scoring: one function, the same for hypotheses, references and sources.

DiffuSeq scores the strings its BERT tokenizer's ``decode`` produced, with ``[CLS]``, ``[SEP]``
and ``[PAD]`` removed afterwards and a whitespace split. :func:`clean` rebuilds that token stream
from either DiffuSeq-style raw tokens (``"[CLS] how do i learn py ##thon ? [SEP] [PAD]"``) or
plain text (``"How do I learn Python?"``); both give ``["how", "do", "i", "learn", "python?"]``.
"""

from __future__ import annotations

import re

from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

STRIPPED = ("[CLS]", "[SEP]", "[PAD]")
"""Removed, as DiffuSeq's eval does. ``[UNK]`` and ``[MASK]`` are kept as tokens, as there."""
_STRIPPED = re.compile("|".join(map(re.escape, STRIPPED)))
_SPECIAL = re.compile(r"(\[(?:CLS|SEP|PAD|UNK|MASK)\])")
_NORMALIZER = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
_PRE_TOKENIZER = BertPreTokenizer()
_DETOK = (  # transformers' ``clean_up_tokenization``, applied by the decode DiffuSeq's samples went through
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)


def clean(text: str, *, detok: bool = True) -> list[str]:
    """Tokens to score: word pieces merged, BERT-uncased words, DiffuSeq detok, specials stripped.

    Steps, in the order DiffuSeq's decode-then-replace applied them: merge ``##`` pieces into the
    word before them (a leading piece stands alone); lowercase, strip accents and split off
    punctuation as BERT's basic tokenizer does, so raw references and word-piece outputs agree;
    with ``detok``, re-attach punctuation and contractions as HF ``decode`` did (``me ?`` → ``me?``,
    ``i ' m`` → ``i'm``; the text counts as followed by the ``[SEP]`` DiffuSeq's strings ended
    with); last, delete ``[CLS]``/``[SEP]``/``[PAD]``. ``detok=False`` keeps punctuation apart.
    """
    tokens = [tok for part in _SPECIAL.split(_merge_pieces(text)) for tok in _basic_tokens(part)]
    joined = " ".join(tokens) + " "
    if detok:
        for spaced, glued in _DETOK:
            joined = joined.replace(spaced, glued)
    return _STRIPPED.sub(" ", joined).split()


def _merge_pieces(text: str) -> str:
    """``"py ##thon ##ic"`` → ``"pythonic"``; a piece with no word before it loses its ``##``."""
    words: list[str] = []
    for word in text.split():
        if word.startswith("##") and len(word) > 2:
            if words:
                words[-1] += word[2:]
                continue
            word = word[2:]
        words.append(word)
    return " ".join(words)


def _basic_tokens(part: str) -> list[str]:
    """BERT basic tokens of ``part``; a special token such as ``[SEP]`` passes whole."""
    if _SPECIAL.fullmatch(part):
        return [part]
    return [tok for tok, _ in _PRE_TOKENIZER.pre_tokenize_str(_NORMALIZER.normalize_str(part))]
