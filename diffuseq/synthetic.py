"""The embedded default dataset: SYNTHETIC question paraphrases, generated deterministically.

This is not real data. Each pair rewrites a question template into a paraphrase template and
swaps some content words for fixed synonyms while copying the rest, so a model must learn both
a reordering and a word mapping. It exists so that a fresh clone can train and test in minutes
on 2 CPU cores without any data root. All words are in the BERT uncased vocabulary.
"""

from __future__ import annotations

import random

NAME = "default"
SIZES = {"train": 4000, "valid": 300, "test": 300}
_SEED = 20231005

# (source template, target template); {v}/{a} are replaced by synonyms in the target.
TEMPLATES = [
    ("how can i {v} a {a} {n} in {p} ?", "what is the best way to {V} a {A} {n} in {p} ?"),
    ("where can i {v} a {a} {n} ?", "where is a good place to {V} a {A} {n} ?"),
    ("what is the best way to {v} a {n} ?", "how do i {V} a {n} well ?"),
    ("is it hard to {v} a {a} {n} ?", "how difficult is it to {V} a {A} {n} ?"),
    ("why do people {v} {a} {n}s in {p} ?", "what makes people in {p} {V} {A} {n}s ?"),
    ("should i {v} a {n} in {p} ?", "is it a good idea to {V} a {n} in {p} ?"),
    ("how much does it cost to {v} a {a} {n} ?", "what is the price to {V} a {A} {n} ?"),
    ("can you {v} a {n} without money ?", "is it possible to {V} a {n} for free ?"),
]
VERBS = {
    "buy": "purchase", "build": "make", "find": "locate", "fix": "repair", "sell": "trade",
    "clean": "wash", "paint": "color", "rent": "lease", "get": "obtain", "keep": "maintain",
    "start": "begin", "choose": "pick", "move": "carry", "store": "keep", "draw": "sketch",
}
ADJECTIVES = {
    "big": "large", "small": "little", "cheap": "inexpensive", "fast": "quick", "old": "ancient",
    "new": "modern", "nice": "pleasant", "strong": "sturdy", "quiet": "silent", "simple": "easy",
    "rare": "unusual", "pretty": "beautiful",
}
NOUNS = [
    "car", "house", "boat", "bike", "phone", "computer", "garden", "table", "chair", "guitar",
    "camera", "watch", "lamp", "desk", "bag", "book", "shirt", "tent", "piano", "door",
]
PLACES = [
    "london", "paris", "india", "china", "texas", "canada", "tokyo", "berlin", "school",
    "college", "town", "winter", "summer", "america",
]


def _pair(rng: random.Random) -> tuple[str, str]:
    src_t, trg_t = rng.choice(TEMPLATES)
    v = rng.choice(sorted(VERBS))
    a = rng.choice(sorted(ADJECTIVES))
    fill = {"v": v, "V": VERBS[v], "a": a, "A": ADJECTIVES[a], "n": rng.choice(NOUNS), "p": rng.choice(PLACES)}
    return src_t.format(**fill), trg_t.format(**fill)


def generate() -> dict[str, list[tuple[str, str]]]:
    """All splits as (src, trg) lists; no source occurs in two splits."""
    rng = random.Random(_SEED)
    seen: set[str] = set()
    splits: dict[str, list[tuple[str, str]]] = {}
    for split in ("test", "valid", "train"):  # held-out splits first, so train never leaks into them
        rows: list[tuple[str, str]] = []
        while len(rows) < SIZES[split]:
            src, trg = _pair(rng)
            if src not in seen:
                seen.add(src)
                rows.append((src, trg))
        splits[split] = rows
    return splits
