"""The absorbing state m made visible: ‖m‖ against training, and seed-paired answers to the
questions the ablation arms exist to answer (each shown only when both of its arms ran)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.configs import (
    ARM_SEPARATOR,
    CONFIG_KEYS,
    SCOPE_KEYS,
    config_labels,
    headline_configs,
    is_trivial,
)
from bench.report.stats import adjust, paired_test

NORM_METRICS = ["m_norm_ema", "emb_norm_ema", "m_norm", "emb_norm"]
# A model, across seeds, for the norms: arms sharing the trained weights share their norms.
NORM_MODEL_KEYS = [*SCOPE_KEYS, "arms", "gamma", "sweep"]


@dataclass(frozen=True)
class Question:
    """A question one pair of arms answers: A vs B on matched seeds."""

    question: str
    a: str
    b: str
    reading: str  # what a difference means


QUESTIONS = (
    Question("Does learning m matter?", "v2", "zero_absorb",
             "v2 learns m; zero_absorb fixes m at the origin (what a collapsed v2 is), all else equal."),
    Question("Does the ‖m‖ penalty matter?", "v2", "v2_noreg",
             "v2 trains with the 0.01·‖m‖ penalty the shipped code applies; v2_noreg without it."),
    Question("Does the [MASK] row differ from a free vector?", "hard_mask", "v2_noreg",
             "hard_mask's m is the [MASK] embedding row; v2_noreg's m is a free vector, both without "
             "the penalty."),
    Question("Does decoding from m matter (same model)?", "v2", "absorb_train_only",
             "one trained model; v2 starts decoding at m with discrete noise, absorb_train_only from a "
             "plain Gaussian without them."),
    Question("Does the shipped decoder differ from the paper's (same model)?", "v2", "official_v2_sampling",
             "one trained model, decoded as the paper describes it vs as the shipped code decodes it."),
)
QUESTION_METRICS = ["bleu", "bertscore", "m_norm_ema"]


def norm_curves(curves: pd.DataFrame | None) -> pd.DataFrame:
    """‖m‖ and the mean word-embedding row norm (trained and EMA weights) per model, seed and step,
    wide: one column per norm metric. Arms sharing a model (train_key) are one model (``arms``)."""
    columns = [*NORM_MODEL_KEYS, "seed", "train_key", "step", *NORM_METRICS]
    if curves is None or not curves["metric"].isin(NORM_METRICS).any():
        return pd.DataFrame(columns=columns)
    rows = curves[curves["metric"].isin(NORM_METRICS)]
    arms = rows.groupby("train_key")["arm"].agg(lambda a: ARM_SEPARATOR.join(sorted(set(a))))
    rows = rows.drop_duplicates(["train_key", "step", "metric"]).assign(arms=lambda f: f["train_key"].map(arms))
    wide = rows.pivot_table(index=[*NORM_MODEL_KEYS, "seed", "train_key", "step"], columns="metric",
                            values="value", dropna=False, observed=True).reset_index()
    wide = wide.dropna(subset=[m for m in NORM_METRICS if m in wide], how="all")
    return wide.reindex(columns=columns).sort_values([*NORM_MODEL_KEYS, "seed", "step"]).reset_index(drop=True)


def final_norms(norms: pd.DataFrame) -> pd.DataFrame:
    """Per model over seeds: the final ‖m‖ and embedding norm (EMA and trained), their ratio."""
    columns = [*NORM_MODEL_KEYS, "n_seeds", "last_step", "m_norm_ema", "m_norm_ema_std", "emb_norm_ema",
               "ratio_ema", "m_norm", "emb_norm"]
    if norms.empty:
        return pd.DataFrame(columns=columns)
    last = norms.groupby([*NORM_MODEL_KEYS, "seed"], dropna=False, sort=False).tail(1)
    out = last.groupby(NORM_MODEL_KEYS, dropna=False, sort=False).agg(
        n_seeds=("seed", "nunique"), last_step=("step", "max"), m_norm_ema=("m_norm_ema", "mean"),
        m_norm_ema_std=("m_norm_ema", "std"), emb_norm_ema=("emb_norm_ema", "mean"),
        m_norm=("m_norm", "mean"), emb_norm=("emb_norm", "mean")).reset_index()
    out["ratio_ema"] = out["m_norm_ema"] / out["emb_norm_ema"]
    return out[columns]


def _pick_configs(cells: pd.DataFrame, a: str, b: str) -> tuple[dict, dict] | None:
    """The configurations of arms a and b compared in one scope: the headline configuration of a
    among those b also ran (same sampler, label, steps, MBR, γ, sweep point), with b's match; else
    each arm's own headline configuration. None when either arm is missing."""
    heads_a, heads_b = headline_configs(cells, a), headline_configs(cells, b)
    if heads_a.empty or heads_b.empty:
        return None
    shared = [k for k in CONFIG_KEYS if k not in [*SCOPE_KEYS, "arm"]]
    configs_b = cells.loc[cells["arm"] == b, CONFIG_KEYS].drop_duplicates()
    common = headline_configs(cells[cells["arm"] == a].merge(configs_b[shared].drop_duplicates()), a)
    if common.empty:
        return heads_a.iloc[0].to_dict(), heads_b.iloc[0].to_dict()
    config_a = common.iloc[0].to_dict()
    return config_a, configs_b.merge(pd.DataFrame([{k: config_a[k] for k in shared}])).iloc[0].to_dict()


def _final_m(curves: pd.DataFrame | None, scope: dict, config: dict) -> pd.Series:
    """Final ‖m‖ (EMA) of the arm's model per seed."""
    if curves is None:
        return pd.Series(dtype=float)
    rows = curves
    keep = (rows["metric"] == "m_norm_ema") & (rows["arm"] == config["arm"])
    for k, v in scope.items():
        keep &= rows[k] == v
    keep &= (rows["gamma"] == config["gamma"]) | (rows["gamma"].isna() & pd.isna(config["gamma"]))
    keep &= rows["sweep"] == config["sweep"]
    rows = rows[keep].sort_values("step")
    return rows.groupby("seed")["value"].last()


QUESTION_COLUMNS = [
    "question", *SCOPE_KEYS, "arm_a", "arm_b", "config_a", "config_b", "metric", "n", "mean_a", "mean_b",
    "diff", "diff_low", "diff_high", "t_p", "note", "t_p_adj", "significant",
]


def answer_questions(
    cells: pd.DataFrame, curves: pd.DataFrame | None, *, alpha: float, correction: str,
    questions: tuple[Question, ...] = QUESTIONS,
) -> pd.DataFrame:
    """Per question whose two arms both ran in a scope: A vs B paired on seed, on BLEU, BERTScore
    and the final ‖m‖ (EMA); t-test p-values corrected within each metric across the questions."""
    models = cells[~is_trivial(cells)]
    rows = []
    for q in questions:
        for scope_key, scope_cells in models.groupby(SCOPE_KEYS, sort=True):
            scope = dict(zip(SCOPE_KEYS, scope_key, strict=True))
            picked = _pick_configs(scope_cells, q.a, q.b)
            if picked is None:
                continue
            config_a, config_b = picked
            names = config_labels(pd.DataFrame([config_a, config_b]))
            keys = [set(scope_cells.merge(pd.DataFrame([{k: c[k] for k in CONFIG_KEYS}]))["train_key"])
                    for c in (config_a, config_b)]
            for metric in QUESTION_METRICS:
                if metric == "m_norm_ema" and keys[0] == keys[1]:
                    continue  # one trained model: one m
                if metric == "m_norm_ema":
                    va, vb = _final_m(curves, scope, config_a), _final_m(curves, scope, config_b)
                elif metric in scope_cells:
                    va, vb = (scope_cells.merge(pd.DataFrame([{k: c[k] for k in CONFIG_KEYS}]))
                              .set_index("seed")[metric].dropna() for c in (config_a, config_b))
                else:
                    continue
                both = pd.concat([va, vb], axis=1, keys=["a", "b"], join="inner").sort_index()
                if both.empty:
                    continue
                rows.append({"question": q.question, **scope, "arm_a": q.a, "arm_b": q.b,
                             "config_a": names.iloc[0], "config_b": names.iloc[1], "metric": metric}
                            | paired_test(both["a"], both["b"], alpha=alpha))
    tests = pd.DataFrame(rows, columns=QUESTION_COLUMNS[:-2])
    tests["t_p_adj"] = tests.groupby("metric")["t_p"].transform(adjust, method=correction) if len(tests) else []
    tests["significant"] = tests["t_p_adj"] < alpha
    return tests[QUESTION_COLUMNS]


def answer(rows: pd.DataFrame) -> str:
    """A one-line answer from a question's BLEU row (and its ‖m‖ row where present)."""
    bleu = rows[rows["metric"] == "bleu"]
    if bleu.empty:
        return "not answered: no BLEU for both arms."
    r = bleu.iloc[0]
    if pd.isna(r["t_p"]):
        return f"not answerable yet ({r['note']})."
    if r["significant"]:
        better = r["arm_a"] if r["diff"] > 0 else r["arm_b"]
        text = f"yes: `{better}` has the higher BLEU (significant after correction)"
    else:
        text = "no detectable BLEU difference at this n (not significant after correction)"
    norm = rows[rows["metric"] == "m_norm_ema"]
    if len(norm) and pd.notna(norm["mean_a"].iloc[0]):
        m = norm.iloc[0]
        text += (f"; final ‖m‖ {m['mean_a']:.3g} (`{m['arm_a']}`) vs {m['mean_b']:.3g} (`{m['arm_b']}`)"
                 + (", significantly different" if m["significant"] else ""))
    return text + "."
