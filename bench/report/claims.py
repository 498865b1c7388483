"""The papers' claims, each judged from the tables: confirmed / refuted / inconclusive.

Every claim is a one-sided test in the claimed direction and one in the opposite direction; the
p-values of each direction are corrected across the claims table (one family each).
**confirmed**: the claim's test rejects at α after correction; **refuted**: the opposite test
does; **inconclusive**: neither, with the seeds a normal-approximation sample size says would
decide at the observed effect and spread. **not tested**: the suite did not run the arms (or the
γ sweep) the claim needs.

Two readings of the comparisons: *equal recipe* (``baseline`` vs ``v2`` under the same optimizer
settings) and *as published* (``baseline_v1_recipe`` vs ``v2_recipe``: the published batch-size
ratio, 8192 vs 850 sequences per step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.configs import (
    CONFIG_KEYS,
    PAPER_GAMMA,
    SCOPE_KEYS,
    arm_label,
    config_labels,
    has_arm,
    headline_configs,
    is_trivial,
    reference_configs,
    sweep_without_gamma,
)
from bench.report.fmt import NA, num, seeds, signed, speedup, with_ci
from bench.report.stats import adjust, one_sided_p, paired_test, seeds_needed
from bench.report.timing import NO_TIMING, match_speed, speed_ratios
from bench.report.trivial import copy_source_margin

__all__ = ["CLAIMS", "GAMMA_RANGE", "MUCH_FASTER", "PAPER_GAMMA", "READINGS", "Reading", "headline_configs",
           "judge_claims"]

CLAIM_ARM = "v2"
MUCH_FASTER = 10.0  # "much faster" = at least an order of magnitude more outputs per second
GAMMA_RANGE = (0.5, 0.6)  # the paper's best γ (Fig. 4)
CONFIRMED, REFUTED, INCONCLUSIVE, NOT_TESTED = "confirmed", "refuted", "inconclusive", "not tested"
NOT_RUN = "not tested by this suite: "  # how a NOT_TESTED row's evidence begins; the reason follows


@dataclass(frozen=True)
class Claim:
    key: str
    text: str  # the claim in words
    paper: str  # the paper's figure
    test: str  # the test, in words


CLAIMS = {
    "a": Claim("a", "(a) training converges faster",
               "~4x claimed; Fig. 2 shows 1.75x in hours",
               "one-sided t on the log speedup in calibrated seconds (> 1), across seeds"),
    "b": Claim("b", "(b) sampling is much faster at similar quality",
               "~800x incl. DiffuSeq's MBR-10, at QQP BLEU .2411 vs .2413, BERTScore .8393 vs .8365",
               f"speed from the timing pass (≥ {MUCH_FASTER:g}x outputs/s incl. MBR); BLEU non-inferiority t "
               "(Δ > −margin) across seeds"),
    "c": Claim("c", "(c) quality is similar",
               "QQP BLEU .2411 (v2) vs .2413 (DiffuSeq); BERTScore .8393 vs .8365",
               "TOST on the BLEU difference (|Δ| < margin), across seeds"),
    "gamma": Claim("gamma", "(d) γ is best around 0.5–0.6",
                   "Fig. 4: the best curves at γ = 0.5–0.6",
                   "paired t: the best γ in [0.5, 0.6] vs the best γ outside it, across seeds"),
}


@dataclass(frozen=True)
class Reading:
    name: str
    baseline: str  # the DiffuSeq arm
    arm: str  # the v2 arm


PUBLISHED_BASELINE, PUBLISHED_ARM = "baseline_v1_recipe", "v2_recipe"


def readings(baseline: str) -> tuple[Reading, Reading]:
    return Reading("equal recipe", baseline, CLAIM_ARM), Reading("as published", PUBLISHED_BASELINE, PUBLISHED_ARM)


READINGS = readings("baseline")
CLAIM_COLUMNS = [
    "claim", "reading", *SCOPE_KEYS, "compared", "paper", "figure", "estimate", "low", "high", "n", "test",
    "p", "p_opposite", "p_adj", "p_opposite_adj", "verdict", "n_needed", "to_decide", "copy_margin", "evidence",
]


# ---------------------------------------------------------------- helpers


def _match(frame: pd.DataFrame, **keys: object) -> pd.Series | None:
    """The first row of ``frame`` whose columns equal ``keys`` (NaN matches NaN), else None."""
    if not len(frame):
        return None
    rows = frame.merge(pd.DataFrame([keys]), on=list(keys))
    return rows.iloc[0] if len(rows) else None


def _name(config: dict) -> str:
    """``v2`` (v2 as the paper describes it) dpm_solver++-10: the arm's label where it is introduced."""
    label = config_labels(pd.DataFrame([config])).iloc[0]
    own = arm_label(config["arm"], config.get("arm_label"))
    return f"{label} ({own})" if own != config["arm"] else label


def _paired(cells: pd.DataFrame, a: dict, b: dict, metric: str) -> pd.DataFrame:
    """Values of ``metric`` for configurations a and b on their matched seeds (columns a, b)."""
    if metric not in cells:
        return pd.DataFrame(columns=["a", "b"])
    values = [cells.merge(pd.DataFrame([{k: c[k] for k in CONFIG_KEYS}])).set_index("seed")[metric].dropna()
              for c in (a, b)]
    return pd.concat(values, axis=1, keys=["a", "b"], join="inner").sort_index()


def _quality(test: dict, metric: str) -> str:
    delta = with_ci(test["diff"], test["diff_low"], test["diff_high"], lambda x: signed(x, 4))
    return f"{metric} {num(test['mean_a'], 4)} vs {num(test['mean_b'], 4)}, Δ {delta} ({seeds(test['n'])})"


def _margin_text(margins: pd.DataFrame, configs: list[dict]) -> str:
    parts = []
    for config in configs:
        m = copy_source_margin(margins, config)
        if m is not None:
            parts.append(f"{config['arm']} {with_ci(m['margin'], m['margin_low'], m['margin_high'], lambda x: signed(x, 4))}")
    return "; ".join(parts) or NA


def _row(claim: str, reading: str, scope: dict, **fields: object) -> dict:
    c = CLAIMS[claim]
    base = dict.fromkeys(CLAIM_COLUMNS, np.nan) | {"claim": c.text, "reading": reading, **scope,
                                                   "paper": c.paper, "test": c.test, "compared": NA,
                                                   "figure": NA, "copy_margin": NA, "n": 0}
    return base | fields


# ---------------------------------------------------------------- claims


def _convergence(reading: Reading, scope: dict, head: dict, ref: dict, conv: dict | None,
                 timed: bool, margins: pd.DataFrame, alpha: float) -> dict:
    """Claim (a): the speedup in calibrated seconds to the BLEU level (steps × timed s/step)."""
    compared = f"{_name(head)} vs {_name(ref)}"
    fields = {"compared": compared, "copy_margin": _margin_text(margins, [head, ref])}
    if conv is None:
        return _row("a", reading.name, scope, **fields, verdict=INCONCLUSIVE,
                    evidence=f"no own-decoder validation-BLEU curve of `{reading.baseline}` to set the level.")
    runs, summary, level_text = conv["runs"], conv["summary"], conv["level_text"]
    own = summary[has_arm(summary["arms"], head["arm"])].merge(pd.DataFrame([scope | {
        "gamma": head["gamma"], "sweep": head["sweep"]}]))
    base = _match(summary, **scope, baseline=True)
    if own.empty or base is None:
        return _row("a", reading.name, scope, **fields, verdict=INCONCLUSIVE,
                    evidence=f"no `{head['arm']}` training curve with a `{reading.baseline}` curve to compare.")
    row = own.iloc[0]
    model = {k: row[k] for k in ["arms", "gamma", "sweep", "decoder"]}
    per_seed = runs.merge(pd.DataFrame([scope | model]))
    reached = (
        f"`{row['arms']}` (own decoder {row['decoder'] or NA}) reached {level_text} in {row['n_reached']}/"
        f"{row['n_seeds']} seeds, `{reading.baseline}` in {base['n_reached']}/{base['n_seeds']}"
    )
    others = ", ".join(
        f"{what} {with_ci(row[f'speedup_{m}'], row[f'speedup_{m}_low'], row[f'speedup_{m}_high'], speedup)}"
        for what, m in [("examples seen", "examples"), ("steps", "steps"), ("raw wall time", "wall")]
    )
    calibrated = with_ci(row["speedup_calibrated"], row["speedup_calibrated_low"], row["speedup_calibrated_high"],
                         speedup)
    fields |= {"figure": f"{calibrated} calibrated s; {others}", "estimate": row["speedup_calibrated"],
               "low": row["speedup_calibrated_low"], "high": row["speedup_calibrated_high"]}
    if row["n_reached"] == 0:
        verdict = REFUTED if base["n_reached"] else INCONCLUSIVE
        return _row("a", reading.name, scope, **fields, verdict=verdict,
                    evidence=f"{reached}; {others}.")
    if not timed:
        return _row("a", reading.name, scope, **fields, verdict=INCONCLUSIVE,
                    evidence=f"{reached}; {NO_TIMING} Not a time: {others}.")
    logs = np.log(per_seed["speedup_calibrated"].to_numpy(dtype=float))
    logs = logs[np.isfinite(logs)]
    evidence = (f"{reached}; speedup in calibrated seconds (steps to the level × the model's timed seconds per "
                f"optimizer step) {calibrated}, {others} (geometric mean over the {seeds(logs.size)} where both "
                f"reached it, {1 - alpha:.0%} t interval)")
    untimed = logs.size == 0 and per_seed["reached"].any()
    if untimed:
        evidence += "; no seed where both runs were timed on one device and reached the level"
    sd = logs.std(ddof=1) if logs.size > 1 else np.nan
    return _row("a", reading.name, scope, **fields, n=logs.size, evidence=evidence + ".",
                speed="unknown" if untimed else "",
                p=one_sided_p(logs, 0.0, "greater"), p_opposite=one_sided_p(logs, 0.0, "less"),
                n_needed_args=(logs.mean() if logs.size else np.nan, sd, 0.0))


def _sampling(reading: Reading, scope: dict, head: dict, ref: dict, cells: pd.DataFrame, speeds: pd.DataFrame,
              timed: bool, margin_fraction: float, margins: pd.DataFrame, alpha: float) -> dict:
    """Claim (b): ≥ MUCH_FASTER outputs/s counting MBR (timing pass), BLEU not worse by > margin."""
    fields = {"compared": f"{_name(head)} vs {_name(ref)}", "copy_margin": _margin_text(margins, [head, ref])}
    speed_a, speed_b = match_speed(speeds, head), match_speed(speeds, ref)
    ratios = speed_ratios(speed_a, speed_b)
    pairs = _paired(cells, head, ref, "bleu")
    test = paired_test(pairs["a"], pairs["b"], alpha=alpha) if len(pairs) else None
    margin = margin_fraction * test["mean_b"] if test else np.nan
    if not timed:
        speed_text, speed = NO_TIMING, "unknown"
    elif np.isnan(ratios["speedup_mbr"]):
        speed_text, speed = "no timing of both configurations on one device.", "unknown"
    else:
        speed_text = (
            f"{speedup(ratios['speedup_mbr'])} outputs/s counting MBR from min_s ({speedup(ratios['speedup_mbr_median'])} "
            f"from median_s, {speedup(ratios['speedup_floor_mbr'])} between the NFE × forward floors), "
            f"{speedup(ratios['speedup'])} without MBR (per sampled sequence), on `{speed_a['device']}`"
        )
        fast = min(ratios["speedup_mbr"], ratios["speedup_mbr_median"]) >= MUCH_FASTER
        slow = max(ratios["speedup_mbr"], ratios["speedup_mbr_median"]) < MUCH_FASTER
        speed = "ok" if fast else "bad" if slow else "unknown"
    figure = (f"{speedup(ratios['speedup_mbr'])} incl. MBR, {speedup(ratios['speedup'])} without"
              if not np.isnan(ratios["speedup_mbr"]) else "speed n/a")
    if test is None:
        return _row("b", reading.name, scope, **fields, figure=figure, estimate=ratios["speedup_mbr"], speed=speed,
                    verdict=REFUTED if speed == "bad" else INCONCLUSIVE, evidence=f"{speed_text.rstrip('.')}; no paired BLEU.")
    d = (pairs["a"] - pairs["b"]).to_numpy(dtype=float)
    delta = with_ci(test["diff"], test["diff_low"], test["diff_high"], lambda x: signed(x, 4))
    fields |= {"figure": f"{figure}; BLEU Δ {delta}", "estimate": ratios["speedup_mbr"], "n": test["n"],
               "low": test["diff_low"], "high": test["diff_high"]}
    evidence = (f"{speed_text.rstrip('.')}; 'much faster' means ≥ {MUCH_FASTER:g}x (from min_s and median_s alike); "
                f"{_quality(test, 'BLEU')}, non-inferiority margin −{margin:.4f}.")
    return _row("b", reading.name, scope, **fields, evidence=evidence,
                p=one_sided_p(d, -margin, "greater"), p_opposite=one_sided_p(d, -margin, "less"),
                speed=speed,
                n_needed_args=(d.mean(), d.std(ddof=1) if d.size > 1 else np.nan, -margin))


def _quality_claim(reading: Reading, scope: dict, head: dict, ref: dict, cells: pd.DataFrame,
                   margin_fraction: float, margins: pd.DataFrame, alpha: float) -> dict:
    """Claim (c): the BLEU difference lies within ±margin (TOST)."""
    fields = {"compared": f"{_name(head)} vs {_name(ref)}", "copy_margin": _margin_text(margins, [head, ref])}
    pairs = _paired(cells, head, ref, "bleu")
    if pairs.empty:
        return _row("c", reading.name, scope, **fields, verdict=INCONCLUSIVE,
                    evidence="no paired BLEU comparison on matched seeds.")
    test = paired_test(pairs["a"], pairs["b"], alpha=alpha)
    margin = margin_fraction * test["mean_b"]
    d = (pairs["a"] - pairs["b"]).to_numpy(dtype=float)
    evidence = f"{_quality(test, 'BLEU')}, equivalence margin ±{margin:.4f}"
    bert = _paired(cells, head, ref, "bertscore")
    if len(bert):
        evidence += f"; {_quality(paired_test(bert['a'], bert['b'], alpha=alpha), 'BERTScore')}"
    delta = with_ci(test["diff"], test["diff_low"], test["diff_high"], lambda x: signed(x, 4))
    p_low, p_high = one_sided_p(d, -margin, "greater"), one_sided_p(d, margin, "less")
    out_low, out_high = one_sided_p(d, -margin, "less"), one_sided_p(d, margin, "greater")
    return _row("c", reading.name, scope, **fields, figure=f"BLEU Δ {delta} (margin ±{margin:.4f})",
                estimate=test["diff"], low=test["diff_low"], high=test["diff_high"], n=test["n"],
                evidence=evidence + ".", p=_either(max, p_low, p_high),
                p_opposite=min(1.0, 2 * _either(min, out_low, out_high)),
                n_needed_args=(abs(d.mean()), d.std(ddof=1) if d.size > 1 else np.nan, margin))


def _either(pick: Callable[[float, float], float], p: float, q: float) -> float:
    """``pick`` (max or min) of two p-values; NaN when either test did not run."""
    return np.nan if np.isnan(p) or np.isnan(q) else float(pick(p, q))


def _gamma_values(cells: pd.DataFrame, finals: pd.DataFrame, arm: str) -> tuple[pd.DataFrame, str, dict | None]:
    """Per (γ, seed) the BLEU the γ claim is judged on: test BLEU of the arm's γ-swept
    configuration with the most γ values (else the final own-curve validation BLEU of its
    γ-swept models), the source in words, and one configuration (for the copy_source margin)."""
    own = cells[(cells["arm"] == arm) & ~is_trivial(cells)]
    if len(own) and "bleu" in own:
        own = own.assign(rest=own["sweep"].map(sweep_without_gamma))
        keys = ["sampler", "label", "steps", "nfe", "mbr", "batch_size", "rest"]
        counts = own.groupby(keys, dropna=False)["gamma"].nunique().rename("n_gamma").reset_index()
        counts = counts.assign(solver=counts["sampler"].eq("dpm_solver++")).sort_values(
            ["n_gamma", "solver", "steps", "label"], ascending=[False, False, False, True], kind="stable")
        if len(counts) and counts["n_gamma"].iloc[0] >= 2:
            best = own.merge(counts.iloc[:1][keys])
            values = best[["gamma", "seed", "bleu"]].rename(columns={"bleu": "value"})
            label = config_labels(best.iloc[:1].assign(gamma=np.nan)).iloc[0]
            return values, f"test BLEU of `{label}` across γ", best.iloc[0].to_dict()
    if len(finals):
        curves = finals[has_arm(finals["arms"], arm)]
        curves = curves.assign(rest=curves["sweep"].map(sweep_without_gamma))
        if curves["gamma"].nunique() >= 2:
            rest = curves.groupby("rest")["gamma"].nunique().sort_values(ascending=False, kind="stable").index[0]
            chosen = curves[curves["rest"] == rest]
            return (chosen[["gamma", "seed", "value"]],
                    f"final own-curve validation BLEU of `{arm}` (no γ-swept test cells)", None)
    return pd.DataFrame(columns=["gamma", "seed", "value"]), "", None


def _gamma_claim(scope: dict, cells: pd.DataFrame, finals: pd.DataFrame, margins: pd.DataFrame,
                 alpha: float) -> dict:
    """Claim (d): the best γ lies in GAMMA_RANGE: the best γ inside vs the best outside, paired."""
    values, source, config = _gamma_values(cells, finals, CLAIM_ARM)
    low, high = GAMMA_RANGE
    inside = values["gamma"].between(low - 1e-9, high + 1e-9)
    if values.empty or not inside.any() or inside.all():
        why = ("this suite does not sweep γ" if values["gamma"].nunique() < 2 else
               f"the swept γ ({', '.join(f'{g:g}' for g in sorted(values['gamma'].unique()))}) do not fall both "
               f"inside and outside [{low:g}, {high:g}]")
        return _row("gamma", "equal recipe", scope, verdict=NOT_TESTED, evidence=f"{NOT_RUN}{why}.")
    means = values.groupby("gamma")["value"].mean()
    best_in = means[means.index.to_series().between(low - 1e-9, high + 1e-9)].idxmax()
    best_out = means[~means.index.to_series().between(low - 1e-9, high + 1e-9)].idxmax()
    wide = values.pivot_table(index="seed", columns="gamma", values="value")
    pairs = wide[[best_in, best_out]].dropna()
    d = (pairs[best_in] - pairs[best_out]).to_numpy(dtype=float)
    test = paired_test(pairs[best_in], pairs[best_out], alpha=alpha)
    delta = with_ci(test["diff"], test["diff_low"], test["diff_high"], lambda x: signed(x, 4))
    best = means.idxmax()
    listing = ", ".join(f"γ={g:g}: {num(v, 4)}" for g, v in means.items())
    fields = {
        "compared": f"{CLAIM_ARM} ({arm_label(CLAIM_ARM)}) at γ = {best_in:g} (best in [{low:g}, {high:g}]) vs "
                    f"γ = {best_out:g} (best outside)",
        "figure": f"best γ = {best:g}; Δ(γ={best_in:g} − γ={best_out:g}) {delta}",
        "estimate": test["diff"], "low": test["diff_low"], "high": test["diff_high"], "n": test["n"],
        "copy_margin": _margin_text(margins, [config]) if config is not None else NA,
    }
    n_in = int(means.index.to_series().between(low - 1e-9, high + 1e-9).sum())
    evidence = (f"{source}, mean over seeds: {listing}; best γ inside the range {best_in:g} vs best outside "
                f"{best_out:g}: Δ {delta} ({seeds(test['n'])}). Each side's best is picked by its mean, which "
                f"favours the side with more γ values ({n_in} inside, {len(means) - n_in} outside).")
    return _row("gamma", "equal recipe", scope, **fields, evidence=evidence,
                p=one_sided_p(d, 0.0, "greater"), p_opposite=one_sided_p(d, 0.0, "less"),
                n_needed_args=(d.mean() if d.size else np.nan, d.std(ddof=1) if d.size > 1 else np.nan, 0.0))


# ---------------------------------------------------------------- the table


def _verdicts(rows: pd.DataFrame, *, alpha: float, correction: str) -> pd.DataFrame:
    """Correct each direction's p-values across the table; verdicts and seeds needed."""
    rows = rows.copy()
    rows["p_adj"] = adjust(rows["p"].to_numpy(dtype=float), correction)
    rows["p_opposite_adj"] = adjust(rows["p_opposite"].to_numpy(dtype=float), correction)
    verdicts, needed, decide = [], [], []
    for r in rows.to_dict("records"):
        if isinstance(r["verdict"], str):
            verdict = r["verdict"]
        elif r["p_opposite_adj"] < alpha or r["speed"] == "bad":
            verdict = REFUTED
        elif r["p_adj"] < alpha and r["speed"] in ("", "ok"):
            verdict = CONFIRMED
        else:
            verdict = INCONCLUSIVE
        args = r.get("n_needed_args")
        n = seeds_needed(*args, alpha=alpha) if verdict == INCONCLUSIVE and isinstance(args, tuple) else np.nan
        if np.isfinite(n) and r["n"] and n <= r["n"]:
            n = float(r["n"] + 1)  # the approximation undershoots (t, correction): at least one more seed
        verdicts.append(verdict)
        needed.append(n)
        decide.append(_to_decide(r, verdict, n))
    rows["verdict"], rows["n_needed"], rows["to_decide"] = verdicts, needed, decide
    return rows[CLAIM_COLUMNS]


def _to_decide(r: dict, verdict: str, n: float) -> str:
    """What an inconclusive claim lacks, in words: a timing pass, seeds, or its evidence."""
    if verdict != INCONCLUSIVE:
        return ""
    if r["speed"] == "unknown" or NO_TIMING in str(r["evidence"]):
        return "needs a timing pass of both configurations on one device"
    if isinstance(r.get("n_needed_args"), tuple):
        if np.isnan(n):
            return "needs ≥ 2 paired seeds to estimate the spread"
        if np.isinf(n):
            return "no effect observed: no n decides"
        return f"n ≈ {int(n)} seeds would decide"
    return "needs the evidence named in its row"


def judge_claims(
    *,
    cells: pd.DataFrame,
    speeds: pd.DataFrame,
    convergence: dict[str, dict],
    finals: pd.DataFrame,
    margins: pd.DataFrame,
    timed: bool,
    baseline: str,
    margin_fraction: float,
    alpha: float,
    correction: str,
) -> pd.DataFrame:
    """One row per (claim, reading, scope): the paper's figure, this suite's with its interval, the
    test and corrected p-value, the verdict, the seeds that would decide, the margin over copy_source.

    ``convergence`` maps a baseline arm to its convergence tables (``runs``, ``summary``,
    ``level_text``); ``finals`` holds the last point of every own-decoder curve (for γ without
    γ-swept test cells). The quality margin is ``margin_fraction`` × the reference's mean BLEU.
    """
    models = cells[~is_trivial(cells)]
    scopes = models[SCOPE_KEYS].drop_duplicates().sort_values(SCOPE_KEYS).to_dict("records")
    rows = []
    for reading in readings(baseline):
        heads = headline_configs(models, reading.arm)
        refs = reference_configs(models, reading.baseline)
        for scope in scopes:
            head, ref = _match(heads, **scope), _match(refs, **scope)
            if head is None or ref is None:
                missing = " or ".join(f"`{a}`" for a, r in [(reading.arm, head), (reading.baseline, ref)] if r is None)
                rows += [_row(c, reading.name, scope, verdict=NOT_TESTED,
                              evidence=f"{NOT_RUN}it did not run {missing}.")
                         for c in ("a", "b", "c")]
                continue
            head, ref = _with_label(head.to_dict(), models), _with_label(ref.to_dict(), models)
            conv = convergence.get(reading.baseline)
            rows += [
                _convergence(reading, scope, head, ref, conv, timed, margins, alpha),
                _sampling(reading, scope, head, ref, models, speeds, timed, margin_fraction, margins, alpha),
                _quality_claim(reading, scope, head, ref, models, margin_fraction, margins, alpha),
            ]
    for scope in scopes:
        scoped = finals.merge(pd.DataFrame([scope])) if len(finals) else finals
        rows.append(_gamma_claim(scope, models.merge(pd.DataFrame([scope])), scoped, margins, alpha))
    frame = pd.DataFrame(rows)
    frame["speed"] = frame["speed"].fillna("") if "speed" in frame else ""
    if "n_needed_args" not in frame:
        frame["n_needed_args"] = None
    return _verdicts(frame, alpha=alpha, correction=correction)


def _with_label(config: dict, cells: pd.DataFrame) -> dict:
    labels = cells.loc[cells["arm"] == config["arm"], "arm_label"] if "arm_label" in cells else pd.Series()
    return config | {"arm_label": labels.iloc[0] if len(labels) else None}
