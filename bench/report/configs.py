"""What a configuration is (a cell without its seed), how to name it, and which one is the reference."""

from __future__ import annotations

import pandas as pd

# Comparisons never cross a scope: an arm is compared with the baseline of its own suite/preset/dataset.
SCOPE_KEYS = ["suite", "preset", "dataset"]
# A configuration: everything that identifies a cell except its seed (and its bookkeeping).
CONFIG_KEYS = [*SCOPE_KEYS, "arm", "gamma", "sampler", "steps", "nfe", "mbr", "batch_size"]
# One training curve: the model an arm uses, for one seed.
CURVE_KEYS = [*SCOPE_KEYS, "arm", "gamma", "seed"]


def config_labels(frame: pd.DataFrame) -> pd.Series:
    """Readable names such as ``v2 dpm_solver++-10`` or ``baseline ddpm-2000 MBR-10``.

    γ is appended only for arms that occur with several γ in ``frame``.
    """
    several = frame.groupby("arm")["gamma"].transform(lambda g: g.nunique(dropna=False)) > 1
    labels = [
        f"{r['arm']} {r['sampler']}-{int(r['steps'])}"
        + (f" MBR-{int(r['mbr'])}" if r["mbr"] > 1 else "")
        + (f" γ={r['gamma']:g}" if with_gamma else "")
        for r, with_gamma in zip(frame.to_dict("records"), several, strict=True)
    ]
    return pd.Series(labels, index=frame.index, dtype=str)


def reference_configs(cells: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per scope, the baseline configuration every other one is compared against.

    The paper's reference: the baseline's DDPM sampler with the most steps, and among those the
    largest MBR (DiffuSeq's DDPM-2000 with MBR-10). Without a DDPM config, its most-steps config.
    Scopes without the baseline arm have no row.
    """
    configs = cells.loc[cells["arm"] == baseline, CONFIG_KEYS].drop_duplicates()
    ranked = configs.assign(ddpm=configs["sampler"].eq("ddpm")).sort_values(
        ["ddpm", "steps", "mbr"], ascending=False
    )
    return ranked.drop_duplicates(SCOPE_KEYS)[CONFIG_KEYS].reset_index(drop=True)


def is_reference(frame: pd.DataFrame, references: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows of ``frame`` whose configuration is a reference."""
    marked = frame[CONFIG_KEYS].merge(references.assign(reference=True), on=CONFIG_KEYS, how="left")
    return pd.Series(marked["reference"].eq(True).to_numpy(), index=frame.index)
