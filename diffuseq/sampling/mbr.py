"""Minimum Bayes risk selection over several samples (seeds) per source (DiffuSeq's MBR)."""

from __future__ import annotations

from diffuseq.metrics import clean, mbr_select


def mbr_rows(per_seed: dict[int, list[dict]]) -> list[dict]:
    """Per source, the row whose ``recover`` has the highest summed sentence-BLEU against the
    other seeds' rows; rows gain ``seed`` (the chosen one) and ``mbr_seeds`` (all candidates)."""
    seeds = list(per_seed)
    out = []
    for rows in zip(*per_seed.values(), strict=True):
        best = mbr_select([clean(r["recover"]) for r in rows])
        out.append({**rows[best], "seed": seeds[best], "mbr_seeds": seeds})
    return out
