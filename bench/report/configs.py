"""What a configuration is (a cell without its seed), how to name it, and which one is the reference."""

from __future__ import annotations

import json

import pandas as pd

from bench.schema import ARM_SEPARATOR

# Comparisons never cross a scope: an arm is compared with the baseline of its own suite/preset/dataset.
SCOPE_KEYS = ["suite", "preset", "dataset"]
# A configuration: everything that identifies a cell except its seed (and its bookkeeping). `label`
# tells sampler variants with equal sampler/steps/MBR apart, `sweep` the sweep points of one arm.
CONFIG_KEYS = [*SCOPE_KEYS, "arm", "gamma", "sweep", "sampler", "label", "steps", "nfe", "mbr", "batch_size"]
# A training curve across seeds: a trained model decoded by one arm's own decoder. Arms that share
# a model and a decoder share the curve (their names joined by " / "); its γ, sweep point, decoder.
MODEL_KEYS = [*SCOPE_KEYS, "arms", "gamma", "sweep", "decoder"]
# One training curve: one model (one train_key) and decoder for one seed.
CURVE_KEYS = [*MODEL_KEYS, "seed", "train_key"]
NO_SWEEP = "{}"
PAPER_GAMMA = 0.5  # headline configurations use the paper's γ, or the nearest one in the suite
# Cells that need no model (kind "trivial"): the source copied as the output, and the target of
# the most similar training source under TF-IDF. Deterministic: one cell (seed 0) per scope.
MODEL, TRIVIAL = "model", "trivial"
COPY_SOURCE = "copy_source"
TRIVIAL_ARMS = (COPY_SOURCE, "nearest_train_target")
TRIVIAL_SAMPLER = "none"
# Labels of arms whose results predate the `arm_label` column (the arm files' own labels).
ARM_LABELS = {
    "v2": "v2 as the paper describes it",
    "official_v2_sampling": "v2 as the shipped code decodes it",
    COPY_SOURCE: "copy_source: the source sentence as the output (no model)",
    "nearest_train_target": "nearest_train_target: the target of the most similar training source "
                            "under TF-IDF (no model)",
}


def arm_label(arm: str, label: object = None) -> str:
    """The arm's one-line label: the table's ``arm_label`` when given, else a known one, else the arm."""
    if isinstance(label, str) and label:
        return label
    return ARM_LABELS.get(arm, arm)


def is_trivial(frame: pd.DataFrame) -> pd.Series:
    """Rows of trivial cells: kind "trivial" where the frame has it, else sampler "none"."""
    if "kind" in frame:
        return frame["kind"].eq(TRIVIAL)
    return frame["sampler"].eq(TRIVIAL_SAMPLER)


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


def sweep_without_gamma(sweep: object) -> str:
    """A sweep point's overrides without γ, as JSON ("{}" when γ was the only one)."""
    try:
        point = json.loads(sweep) if isinstance(sweep, str) else {}
    except ValueError:
        return str(sweep)
    if not isinstance(point, dict):
        return str(sweep)
    rest = {k: v for k, v in point.items() if k.split(".")[-1] != "gamma"}
    return json.dumps(rest, sort_keys=True) if rest else NO_SWEEP


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
        f"{r['arm']} (trivial)" if r["sampler"] == TRIVIAL_SAMPLER else
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
    sweep point and label by name. Scopes without the baseline arm have no row. Trivial cells are
    never a reference.
    """
    own = cells["arm"].eq(baseline) & ~is_trivial(cells)
    configs = _prefer_plain(cells.loc[own, CONFIG_KEYS].drop_duplicates())
    ranked = configs.assign(ddpm=configs["sampler"].eq("ddpm")).sort_values(
        ["ddpm", "steps", "mbr", "_custom", "_swept", "sweep", "label"],
        ascending=[False, False, False, True, True, True, True], kind="stable",
    )
    return ranked.drop_duplicates(SCOPE_KEYS)[CONFIG_KEYS].reset_index(drop=True)


def is_reference(frame: pd.DataFrame, references: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows of ``frame`` whose configuration is a reference."""
    marked = frame[CONFIG_KEYS].merge(references.assign(reference=True), on=CONFIG_KEYS, how="left")
    return pd.Series(marked["reference"].eq(True).to_numpy(), index=frame.index)


def headline_configs(configs: pd.DataFrame, arm: str) -> pd.DataFrame:
    """Per scope, the configuration of ``arm`` a claim or question is judged on, fixed before
    looking at results: DPM-Solver++ if present, γ nearest the paper's, then the most solver steps;
    among equals, the default sampler label and no sweep point first (then by name)."""
    own = configs.loc[configs["arm"] == arm, CONFIG_KEYS].drop_duplicates()
    ranked = own.assign(
        solver=own["sampler"].eq("dpm_solver++"), gap=(own["gamma"] - PAPER_GAMMA).abs(),
        custom=custom_label(own).ne(""), swept=own["sweep"].ne(NO_SWEEP),
    ).sort_values(["solver", "gap", "steps", "custom", "swept", "sweep", "label"],
                  ascending=[False, True, False, True, True, True, True], kind="stable")
    return ranked.drop_duplicates(SCOPE_KEYS)[CONFIG_KEYS].reset_index(drop=True)
