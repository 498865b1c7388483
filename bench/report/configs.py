"""What a configuration is (a cell without its seed), how to name it, and which one is the reference."""

from __future__ import annotations

import json

import pandas as pd

# Comparisons never cross a scope: an arm is compared with the baseline of its own suite/preset/dataset.
SCOPE_KEYS = ["suite", "preset", "dataset"]
# A configuration: everything that identifies a cell except its seed (and its bookkeeping). `label`
# tells sampler variants with equal sampler/steps/MBR apart, `sweep` the sweep points of one arm.
CONFIG_KEYS = [*SCOPE_KEYS, "arm", "gamma", "sweep", "sampler", "label", "steps", "nfe", "mbr", "batch_size"]
# A trained model, across seeds: the arms that share it (joined by " / "), its γ and sweep point.
MODEL_KEYS = [*SCOPE_KEYS, "arms", "gamma", "sweep"]
# One training curve: one model (one train_key) for one seed.
CURVE_KEYS = [*MODEL_KEYS, "seed", "train_key"]
NO_SWEEP = "{}"
ARM_SEPARATOR = " / "


def default_label(sampler: str, steps: int) -> str:
    """The label the runner gives a sampler variant without a label of its own."""
    return f"{sampler}-{int(steps)}"


def custom_label(frame: pd.DataFrame) -> pd.Series:
    """Each row's ``label`` where it differs from the default ``sampler-steps``, else ""."""
    default = [default_label(s, n) for s, n in zip(frame["sampler"], frame["steps"], strict=True)]
    custom = frame["label"].where(frame["label"].ne(default) & frame["label"].notna(), "")
    return custom.astype(str)


def sweep_text(sweep: object) -> str:
    """A sweep point's overrides in short (``lr=0.0001, warmup=10``), "" without a sweep.

    γ is left out: names show it on their own when it varies.
    """
    if pd.isna(sweep) or sweep == NO_SWEEP:
        return ""
    try:
        point = json.loads(sweep)
    except (TypeError, ValueError):
        return str(sweep)
    if not isinstance(point, dict):
        return str(sweep)
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items() if k.split(".")[-1] != "gamma")


def has_arm(arms: pd.Series, arm: str) -> pd.Series:
    """Rows whose ``arms`` (arms joined by " / ") include ``arm``."""
    return arms.map(lambda a: arm in str(a).split(ARM_SEPARATOR))


def config_labels(frame: pd.DataFrame) -> pd.Series:
    """Readable names such as ``v2 dpm_solver++-10`` or ``baseline ddpm-2000 MBR-10``.

    A label other than the default ``sampler-steps`` is appended in brackets, the sweep point when
    there is one, and γ only for arms that occur with several γ in ``frame``.
    """
    several = frame.groupby("arm")["gamma"].transform(lambda g: g.nunique(dropna=False)) > 1
    custom = custom_label(frame)
    labels = [
        f"{r['arm']} {r['sampler']}-{int(r['steps'])}"
        + (f" [{label}]" if label else "")
        + (f" MBR-{int(r['mbr'])}" if r["mbr"] > 1 else "")
        + (f" γ={r['gamma']:g}" if with_gamma else "")
        + (f" ({sweep})" if (sweep := sweep_text(r["sweep"])) else "")
        for r, with_gamma, label in zip(frame.to_dict("records"), several, custom, strict=True)
    ]
    return pd.Series(labels, index=frame.index, dtype=str)


def _prefer_plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Tie-breakers appended to a ranking: the default label and no sweep first, then by name."""
    return frame.assign(_custom=custom_label(frame).ne(""), _swept=frame["sweep"].ne(NO_SWEEP))


def reference_configs(cells: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per scope, the baseline configuration every other one is compared against.

    The paper's reference: the baseline's DDPM sampler with the most steps, and among those the
    largest MBR (DiffuSeq's DDPM-2000 with MBR-10). Without a DDPM config, its most-steps config.
    Ties (sampler variants, sweep points) go to the default label, then no sweep, then the first
    sweep point and label by name. Scopes without the baseline arm have no row.
    """
    configs = _prefer_plain(cells.loc[cells["arm"] == baseline, CONFIG_KEYS].drop_duplicates())
    ranked = configs.assign(ddpm=configs["sampler"].eq("ddpm")).sort_values(
        ["ddpm", "steps", "mbr", "_custom", "_swept", "sweep", "label"],
        ascending=[False, False, False, True, True, True, True], kind="stable",
    )
    return ranked.drop_duplicates(SCOPE_KEYS)[CONFIG_KEYS].reset_index(drop=True)


def is_reference(frame: pd.DataFrame, references: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows of ``frame`` whose configuration is a reference."""
    marked = frame[CONFIG_KEYS].merge(references.assign(reference=True), on=CONFIG_KEYS, how="left")
    return pd.Series(marked["reference"].eq(True).to_numpy(), index=frame.index)
