"""The papers' three claims, each judged from the tables: confirmed / not confirmed / inconclusive.

A claim is confirmed when its interval lies on the claimed side, not confirmed when it lies on
the other side, and inconclusive otherwise (including too few seeds or missing data).
"""

from __future__ import annotations

import pandas as pd

from bench.report.configs import CONFIG_KEYS, SCOPE_KEYS, config_labels, custom_label, has_arm
from bench.report.fmt import num, seeds, signed, speedup, with_ci

CLAIM_ARM = "v2"
PAPER_GAMMA = 0.5  # the headline config uses the paper's γ, or the nearest one in the suite
MUCH_FASTER = 10.0  # "much faster" = at least an order of magnitude more outputs per second
CLAIMS = {
    "a": "(a) training converges faster (paper: 1.75x in hours to a BLEU level, Fig. 2; ~4x claimed)",
    "b": "(b) sampling is much faster at similar quality (paper: ~800x incl. DiffuSeq's MBR-10)",
    "c": "(c) quality is similar (paper, QQP BLEU: .2411 v2 vs .2413 DiffuSeq)",
}


def headline_configs(configs: pd.DataFrame, arm: str = CLAIM_ARM) -> pd.DataFrame:
    """Per scope, the configuration of ``arm`` the claims are judged on, fixed before looking at
    results: DPM-Solver++ if present, γ nearest the paper's, then the most solver steps; among
    equals, the default sampler label and no sweep point first (then by name)."""
    own = configs.loc[configs["arm"] == arm, CONFIG_KEYS].drop_duplicates()
    ranked = own.assign(
        solver=own["sampler"].eq("dpm_solver++"), gap=(own["gamma"] - PAPER_GAMMA).abs(),
        custom=custom_label(own).ne(""), swept=own["sweep"].ne("{}"),
    ).sort_values(["solver", "gap", "steps", "custom", "swept", "sweep", "label"],
                  ascending=[False, True, False, True, True, True, True], kind="stable")
    return ranked.drop_duplicates(SCOPE_KEYS)[CONFIG_KEYS].reset_index(drop=True)


def convergence_claim(row: pd.Series | None, baseline: pd.Series | None, level_text: str) -> tuple[str, str]:
    """Claim (a) from the rows of ``convergence_summary`` of the claimed arm and of the baseline:
    the wall-time speedup's interval above 1 (confirmed) or below 1 (not confirmed)."""
    if row is None or baseline is None:
        return "inconclusive", f"no {CLAIM_ARM} training curve with a baseline curve to compare."
    reached = (
        f"{CLAIM_ARM} reached {level_text} in {row['n_reached']}/{row['n_seeds']} seeds, the baseline in "
        f"{baseline['n_reached']}/{baseline['n_seeds']}"
    )
    if row["n_reached"] == 0:
        verdict = "not confirmed" if baseline["n_reached"] else "inconclusive"
        return verdict, f"{reached}."
    speed = (
        f"wall-time speedup {with_ci(row['speedup_wall'], row['speedup_wall_low'], row['speedup_wall_high'], speedup)}, "
        f"in steps {with_ci(row['speedup_steps'], row['speedup_steps_low'], row['speedup_steps_high'], speedup)} "
        f"(geometric mean over the {seeds(row['n_pairs'])} where both reached it, 95% t interval)"
    )
    if row["n_pairs"] < 2:
        return "inconclusive", f"{reached}; {speed}: fewer than 2 paired seeds."
    if row["speedup_wall_low"] > 1:
        return "confirmed", f"{reached}; {speed}."
    if row["speedup_wall_high"] < 1:
        return "not confirmed", f"{reached}; {speed}."
    return "inconclusive", f"{reached}; {speed}."


def _quality_text(test: pd.Series, metric: str) -> str:
    delta = with_ci(test["diff"], test["diff_low"], test["diff_high"], lambda x: signed(x, 4))
    return f"{metric} {num(test['mean_a'], 4)} vs {num(test['mean_b'], 4)}, difference {delta} (95% t interval, {seeds(test['n'])})"


def sampling_claim(speed: pd.Series | None, test: pd.Series | None, margin: float) -> tuple[str, str]:
    """Claim (b): at least ``MUCH_FASTER`` counting MBR, and BLEU not worse by more than ``margin``."""
    if speed is None or pd.isna(speed["speedup_mbr"]):
        return "inconclusive", "no sampling speed for the config or its reference."
    text = (
        f"{num(speed['outputs_per_s'])} outputs/s vs the reference's {num(speed['outputs_per_s_ref'])}: "
        f"{speedup(speed['speedup_mbr'])} counting the reference's MBR-{int(speed['mbr_ref'])} "
        f"({speedup(speed['speedup'])} per sampled sequence); 'much faster' means ≥ {MUCH_FASTER:g}x"
    )
    if test is None or test["n"] < 2:
        return "inconclusive", f"{text}; quality needs ≥ 2 matched seeds."
    text = f"{text}; {_quality_text(test, 'BLEU')}, non-inferiority margin -{margin:.4f}"
    if speed["speedup_mbr"] < 1 or test["diff_high"] < -margin:
        return "not confirmed", f"{text}."
    if speed["speedup_mbr"] >= MUCH_FASTER and test["diff_low"] > -margin:
        return "confirmed", f"{text}."
    return "inconclusive", f"{text}."


def quality_claim(test: pd.Series | None, bertscore: pd.Series | None, margin: float) -> tuple[str, str]:
    """Claim (c): the BLEU difference's interval lies within ±``margin`` (equivalence)."""
    if test is None:
        return "inconclusive", "no paired BLEU comparison with the baseline."
    text = f"{_quality_text(test, 'BLEU')}, equivalence margin ±{margin:.4f}"
    if bertscore is not None:
        text += f"; {_quality_text(bertscore, 'BERTScore')}"
    if test["n"] < 2:
        return "inconclusive", f"{text}; fewer than 2 matched seeds."
    if test["diff_low"] > -margin and test["diff_high"] < margin:
        return "confirmed", f"{text}."
    if test["diff_low"] > margin or test["diff_high"] < -margin:
        return "not confirmed", f"{text}."
    return "inconclusive", f"{text}."


def _match(frame: pd.DataFrame, **keys: object) -> pd.Series | None:
    """The first row of ``frame`` whose columns equal ``keys`` (NaN matches NaN), else None."""
    rows = frame.merge(pd.DataFrame([keys]), on=list(keys))
    return rows.iloc[0] if len(rows) else None


def _model_row(convergence: pd.DataFrame, scope: dict, head: dict) -> pd.Series | None:
    """The ``convergence_summary`` row of the model the headline config samples from: its arms
    include the config's arm (a shared model is named ``absorb_train_only / v2``), same γ and sweep."""
    if not len(convergence):
        return None
    rows = convergence[has_arm(convergence["arms"], head["arm"])]
    rows = rows.merge(pd.DataFrame([scope | {"gamma": head["gamma"], "sweep": head["sweep"]}]))
    return rows.iloc[0] if len(rows) else None


def judge_claims(
    *,
    summary: pd.DataFrame,
    seed_tests: pd.DataFrame,
    sampling: pd.DataFrame,
    convergence: pd.DataFrame,
    references: pd.DataFrame,
    level_text: str,
    margin_fraction: float,
) -> pd.DataFrame:
    """One row per (claim, scope): the verdict and the evidence behind it, in words and numbers.

    The quality margin is ``margin_fraction`` × the reference's mean BLEU.
    """
    heads = headline_configs(summary)
    if heads.empty:
        return pd.DataFrame(
            [{"claim": c, "verdict": "inconclusive", "evidence": f"no {CLAIM_ARM} arm in the results."} for c in CLAIMS]
        )
    ref_labels = references.assign(reference=config_labels(references))
    rows = []
    for head in heads.to_dict("records"):
        scope = {k: head[k] for k in SCOPE_KEYS}
        config = {k: head[k] for k in CONFIG_KEYS}
        label = f"{config_labels(pd.DataFrame([head])).iloc[0]} (γ = {head['gamma']:g})"
        ref = _match(ref_labels, **scope)
        if ref is None:
            verdicts = dict.fromkeys(CLAIMS, ("inconclusive", "no baseline arm to compare with."))
        else:
            label = f"{label} vs {ref['reference']}"
            bleu = _match(seed_tests, **config, metric="bleu")
            margin = margin_fraction * bleu["mean_b"] if bleu is not None else float("nan")
            verdicts = {
                "a": convergence_claim(
                    _model_row(convergence, scope, head),
                    _match(convergence, **scope, baseline=True) if len(convergence) else None,
                    level_text,
                ),
                "b": sampling_claim(_match(sampling, **config) if len(sampling) else None, bleu, margin),
                "c": quality_claim(bleu, _match(seed_tests, **config, metric="bertscore_f1"), margin),
            }
        rows += [scope | {"claim": c, "config": label, "verdict": v, "evidence": e} for c, (v, e) in verdicts.items()]
    return pd.DataFrame(rows)
