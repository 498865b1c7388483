"""Render an ``Analysis`` as ``report.md``: setup, claims, tables, figures and methods."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.absorbing import QUESTIONS, answer
from bench.report.analysis import Analysis
from bench.report.claims import (
    CLAIM_ARM,
    GAMMA_RANGE,
    INCONCLUSIVE,
    MUCH_FASTER,
    PAPER_GAMMA,
    PUBLISHED_ARM,
    PUBLISHED_BASELINE,
    REFUTED,
)
from bench.report.configs import (
    CONFIG_KEYS,
    COPY_SOURCE,
    SCOPE_KEYS,
    TRIVIAL_ARMS,
    config_labels,
    has_arm,
    is_trivial,
    sweep_text,
)
from bench.report.fmt import (
    CORRECTION_NAMES,
    NA,
    Namer,
    decimals,
    delta_ci,
    distinct,
    gamma_text,
    md_table,
    mean_std,
    num,
    pvalue,
    seeds,
    signed,
    speedup,
    with_ci,
)
from bench.report.plots import Plot
from bench.report.timing import clock_note, elsewhere
from bench.report.trivial import FAILS, UNCLEAR

# ---------------------------------------------------------------- sections


def _read_first(a: Analysis, name: Namer) -> str:
    """The report's first lines: where an arm fails to beat a trivial row, and missing evidence."""
    lines = []
    failing = a.margins[a.margins["outcome"] == FAILS]
    table = ""
    if len(failing):
        where = ["dataset"] if "dataset" in name.varying else []
        trivials = sorted(set(failing["trivial"]), key=TRIVIAL_ARMS.index)
        rows: dict[tuple, dict] = {}
        for r in name.configs(failing):
            key = (*(r[k] for k in where), r["config"])
            row = rows.setdefault(key, {**{k: r[k] for k in where}, "configuration": f"`{r['config']}`"}
                                  | dict.fromkeys(trivials, "beats it"))
            cell = row[r["trivial"]]
            item = f"{r['metric']} {signed(r['margin'], 4)}"
            row[r["trivial"]] = item if cell == "beats it" else f"{cell}, {item}"
        lines.append(f"**{len(rows)} model configuration(s) fail to beat a trivial row** on at least one quality "
                     "metric: their mean over seeds is at or below it (the margins, configuration − trivial row, "
                     "are in the table below and in `trivial_margins.csv`).")
        table = "\n\n" + md_table(list(rows.values()))
    unclear = a.margins[(a.margins["outcome"] == UNCLEAR) & (a.margins["metric"] == "bleu")]
    for trivial, g in unclear.groupby("trivial", sort=False):
        listed = "; ".join(
            f"`{r['config']}`" + (f" ({r['dataset']})" if "dataset" in name.varying else "")
            + f" {with_ci(r['margin'], r['margin_low'], r['margin_high'], lambda x: signed(x, 4))}"
            for r in name.configs(g)
        )
        lines.append(f"Above `{trivial}` on BLEU on average, but with an interval that reaches it: {listed}.")
    if "trivial" in a.missing:
        lines.append(f"**No trivial rows:** {a.missing['trivial']}")
    elif not len(failing):
        shown = ", ".join(f"`{t}`" for t in sorted(set(a.margins["trivial"]), key=TRIVIAL_ARMS.index))
        lines.append(f"No model configuration's mean falls at or below a trivial row ({shown}) on any quality "
                     "metric.")
    lines += a.notes
    return "\n".join(f"- {line}" for line in lines) + table


def _arms_legend(a: Analysis) -> str:
    cells = a.cells
    arms = cells.drop_duplicates("arm").sort_values(["kind", "arm"])[["arm", "arm_label", "kind"]]
    rows = [
        {"arm": f"`{r['arm']}`", "label": r["arm_label"], "kind": r["kind"],
         "configurations": ", ".join(dict.fromkeys(config_labels(
             cells.loc[cells["arm"] == r["arm"], CONFIG_KEYS].drop_duplicates())))}
        for r in arms.to_dict("records")
    ]
    return md_table(rows)


def _setup(a: Analysis) -> str:
    cells = a.cells
    models = cells[~is_trivial(cells)]
    seed_list = sorted(models["seed"].unique())
    facts = {
        "Suite": distinct(cells["suite"]),
        "Scale preset": distinct(cells["preset"]),
        "Datasets": distinct(cells["dataset"]),
        "Seeds": f"{', '.join(map(str, seed_list))} ({seeds(len(seed_list))}); trivial rows are deterministic (seed 0)",
        "Sampling batch size": distinct(models["batch_size"]),
        "Training steps": distinct(models["train_steps"].dropna().astype(int)) if "train_steps" in models else NA,
        "Training examples seen": distinct(models["train_examples"].dropna().astype(int))
        if "train_examples" in models else NA,
        "Device (cells)": distinct(models["device"]),
        "Device (timing pass)": distinct(a.results.timing["device"]) if a.results.timing is not None else
        "no timing pass",
        "Code version": distinct(cells["code_version"]),
        "BERTScore model": distinct(cells["bertscore_model"]),
        "Results": f"`{a.results.directory}` ({len(cells)} cells, {len(a.results.table)} table rows)",
    }
    if a.references.empty:
        facts["Reference"] = a.missing["references"]
    else:
        refs = a.references.assign(label=config_labels(a.references))
        facts["Reference for all comparisons"] = "; ".join(f"{r.dataset}: {r.label}" for r in refs.itertuples())
    return "\n".join([
        "## Setup", "", *(f"- **{k}:** {v}" for k, v in facts.items()), "",
        "Arms (label from the arm file; trivial arms need no model):", "", _arms_legend(a),
    ])


def _verdict(r: dict) -> str:
    text = f"**{r['verdict']}**"
    if r["verdict"] == INCONCLUSIVE:
        text += f" ({r['to_decide']})"
    elif r["verdict"] == REFUTED and pd.notna(r["p_opposite"]):
        text += f" (opposite test p {pvalue(r['p_opposite'])}, adj. {pvalue(r['p_opposite_adj'])})"
    return text


def _claims(a: Analysis, name: Namer) -> str:
    o = a.options
    rows = [
        {"claim": r["claim"], "reading": r["reading"]} | name.scope(r) | {
            "compared": r["compared"], "paper": r["paper"], f"this suite ({1 - o.alpha:.0%} CI)": r["figure"],
            "n": int(r["n"]) if pd.notna(r["n"]) and r["n"] else "—", "test": r["test"],
            "p (adj.)": NA if pd.isna(r["p"]) else f"{pvalue(r['p'])} ({pvalue(r['p_adj'])})",
            "verdict": _verdict(r), "BLEU margin over copy_source": r["copy_margin"],
        }
        for r in a.claims.to_dict("records")
    ]
    details = [
        f"- {r['claim']}, {r['reading']}" + (f", {r['dataset']}" if "dataset" in name.varying else "")
        + f": **{r['verdict']}.** {r['evidence']}"
        for r in a.claims.to_dict("records")
    ]
    return "\n".join([
        "## Paper claims at this scale",
        "",
        md_table(rows),
        "",
        f"Judged on `{CLAIM_ARM}`'s configuration fixed in advance (DPM-Solver++, γ nearest {PAPER_GAMMA:g}, most "
        "steps) against the reference (the baseline's DDPM with the most steps, its largest MBR). *equal recipe*: "
        f"`{o.baseline}` vs `{CLAIM_ARM}` under the same optimizer settings; *as published*: "
        f"`{PUBLISHED_BASELINE}` vs `{PUBLISHED_ARM}` (the published batch sizes, 8192 vs 850 sequences per step). "
        f"p: the claim's one-sided test; adj.: {CORRECTION_NAMES[o.correction]}-corrected across this table. "
        "**confirmed**: the claim's test rejects at "
        f"{o.alpha:g} after correction; **refuted**: the opposite test does; **inconclusive**: neither, with the "
        "seeds that would decide at the observed effect and spread (Methods); **not tested**: the suite did not "
        "run what the claim needs. The BLEU margin over copy_source is each compared configuration's mean minus "
        "copy_source's (deterministic), with the configuration's t interval.",
        "",
        "Evidence:",
        "",
        *details,
    ])


def _mean_cell(r: dict, n_row: int) -> str:
    """``mean ± std`` (n if it differs from the row's), and the bootstrap CI below it."""
    if pd.isna(r["mean"]):
        return NA
    places = decimals(r["mean"])
    n = "" if r["n"] == n_row else f" (n = {int(r['n'])})"
    ci = "" if pd.isna(r["ci_low"]) else f"<br>[{num(r['ci_low'], places)}, {num(r['ci_high'], places)}]"
    return f"{mean_std(r['mean'], r['std'])}{n}{ci}"


def _copy_margin_cell(a: Analysis, config: dict) -> str:
    rows = a.margins.merge(pd.DataFrame([{k: config[k] for k in CONFIG_KEYS}]))
    rows = rows[(rows["trivial"] == COPY_SOURCE) & (rows["metric"] == "bleu")]
    if rows.empty:
        return "—" if config["sampler"] == "none" else NA
    r = rows.iloc[0]
    text = with_ci(r["margin"], r["margin_low"], r["margin_high"], lambda x: signed(x, 4))
    return f"**{text} (fails)**" if r["outcome"] == FAILS else text


def _main_table(a: Analysis, name: Namer) -> str:
    quality = a.summary[a.summary["metric"].isin(a.metrics)]
    configs = quality.groupby(CONFIG_KEYS, dropna=False, sort=False)["n"].max().reset_index()
    rows = [name.scope(c) | {"config": c["config"], "n": c["n"]} for c in name.configs(configs)]
    for metric in a.metrics:
        merged = configs.merge(quality[quality["metric"] == metric], on=CONFIG_KEYS, how="left", suffixes=("_row", ""))
        for row, r in zip(rows, merged.to_dict("records"), strict=True):
            row[metric] = _mean_cell(r, r["n_row"])
    if len(a.margins):
        for row, c in zip(rows, configs.to_dict("records"), strict=True):
            row["BLEU − copy_source"] = _copy_margin_cell(a, c)
    return "\n".join([
        "## Main results",
        "",
        f"Mean ± std over seeds; below it the {1 - a.options.alpha:.0%} percentile-bootstrap CI of the mean "
        "(too narrow with few seeds: see Methods). n = seeds. Corpus BLEU is sacrebleu's, on the same 0-1 scale as "
        "the other scores. Trivial rows (no model) are deterministic: n = 1, no interval. `BLEU − copy_source`: "
        "the configuration's margin over copying the source, with its t interval over seeds.",
        "",
        md_table(rows),
    ])


def _trivial(a: Analysis, name: Namer) -> str:
    head = "## Trivial rows: margins over doing nothing"
    if "trivial" in a.missing:
        return f"{head}\n\nSkipped: {a.missing['trivial']}"
    metrics = list(dict.fromkeys(a.margins["metric"]))
    keys = [*CONFIG_KEYS, "trivial"]
    rows = []
    for (_, g) in a.margins.groupby(keys, dropna=False, sort=False):
        first = name.configs(g.iloc[:1])[0]
        row = name.scope(first) | {"config": first["config"], "vs": f"`{first['trivial']}`"}
        for r in g.to_dict("records"):
            text = with_ci(r["margin"], r["margin_low"], r["margin_high"], lambda x: signed(x, 4))
            row[r["metric"]] = {FAILS: f"**{text} fails**", UNCLEAR: f"{text} unclear"}.get(r["outcome"], text)
        rows.append({k: row.get(k, NA) for k in [*row.keys(), *metrics]})
    values = a.cells[is_trivial(a.cells)]
    shown = [m for m in metrics if m in values]
    trivial_rows = [
        name.scope(r) | {"trivial row": f"`{r['arm']}`"} | {m: num(r[m], 4) for m in shown}
        for r in values.sort_values([*SCOPE_KEYS, "arm"]).to_dict("records")
    ]
    return "\n".join([
        head, "",
        "The trivial rows' values (deterministic, one cell per dataset):", "", md_table(trivial_rows), "",
        "Each model configuration's margin over each trivial row (mean over seeds − the trivial value, with the "
        f"configuration's {1 - a.options.alpha:.0%} Student-t interval; the trivial value is a constant). "
        "**fails**: the mean is at or below the trivial row; unclear: above it, but the interval reaches it.",
        "", md_table(rows),
    ])


def _per_dataset_table(a: Analysis, name: Namer, metrics: list[str]) -> tuple[str, str]:
    """Each dataset × metric: every compared configuration's mean [t CI] and the trivial rows'
    values; and the sentence naming the configurations behind the column names."""
    x = a.crossdata
    values = a.summary[a.summary["metric"].isin(metrics)]
    shown = pd.concat([values.merge(x.configs, on=CONFIG_KEYS),
                       values[is_trivial(values)].merge(x.configs[SCOPE_KEYS].drop_duplicates())])
    arms = list(dict.fromkeys([*x.configs["arm"], *sorted(set(shown["arm"]) - set(x.configs["arm"]),
                                                           key=TRIVIAL_ARMS.index)]))
    rows: dict[tuple, dict] = {}
    for r in shown.to_dict("records"):
        row = rows.setdefault((r["metric"], *(r[k] for k in SCOPE_KEYS)), name.scope(r) | {"metric": r["metric"]})
        row[f"`{r['arm']}`"] = with_ci(r["mean"], r["t_low"], r["t_high"], lambda v: num(v, 4))
    order = sorted(rows, key=lambda k: (metrics.index(k[0]), *map(str, k[1:])))
    columns = [f"`{arm}`" for arm in arms]
    table = md_table([{k: v for k, v in rows[key].items() if k not in columns}
                      | {c: rows[key].get(c, NA) for c in columns} for key in order])
    labels = x.configs.assign(config=config_labels(x.configs)).groupby("arm", sort=False)["config"]
    named = "; ".join(f"`{arm}`: {', '.join(f'`{c}`' for c in dict.fromkeys(g))}" for arm, g in labels)
    return table, named


def _effects_of(a: Analysis, r: dict) -> pd.DataFrame:
    """The per-dataset effects behind one row of the heterogeneity table."""
    return a.crossdata.effects.merge(pd.DataFrame([{k: r[k] for k in ["suite", "preset", "arm", "metric"]}]))


def _cross_answer(r: dict, effects: pd.DataFrame, a: Analysis) -> str:
    """The sentence answering whether v2's BLEU effect over the reference is the same on every dataset."""
    o = a.options
    question = "**Is v2's effect over DiffuSeq the same on every dataset?**"
    per = "; ".join(f"{e['dataset']} {signed(e['diff'], 4)} ± {num(e['se'], 4)} (n = {e['n']})"
                    for e in effects.to_dict("records"))
    excluded = f" Left out (fewer than 2 paired seeds, or no spread): {r['excluded']}." if r["excluded"] else ""
    if pd.isna(r["welch_p"]):
        return (f"{question} Not answerable here: fewer than 2 datasets where `{CLAIM_ARM}` and `{o.baseline}` share "
                f"2 or more seeds with a non-zero spread of their BLEU difference. Per dataset: {per}.{excluded}")
    tests = (f"Welch's test of equal effects F = {r['welch_f']:.2f}, p = {pvalue(r['welch_p'])}; Cochran's Q = "
             f"{r['q']:.2f} on {int(r['df'])} df (χ² p = {pvalue(r['q_p'])}), I² = {r['i2']:.0%}, τ² = {r['tau2']:.3g}")
    pooled = with_ci(r["pooled"], r["pooled_low"], r["pooled_high"], lambda v: signed(v, 4))
    what = f"BLEU, `{CLAIM_ARM}` − `{o.baseline}` paired on seeds, {int(r['k'])} datasets"
    if r["welch_p"] < o.alpha:
        return (f"{question} **No** ({what}): the difference varies between the datasets ({tests}). Per dataset "
                f"(mean ± standard error): {per}.{excluded} The random-effects mean, {pooled}, averages effects "
                "that differ; it is not an effect that each dataset shows.")
    seeds_min = int(effects["n"].min())
    return (f"{question} **Not shown to differ** ({what}): {tests}. Per dataset (mean ± standard error): "
            f"{per}.{excluded} With {seeds_min} seeds per dataset only large differences between datasets can "
            "be detected, so this is not evidence that the effect is the same. Random-effects mean over these "
            f"datasets: {pooled} (DerSimonian–Laird): an average of the per-dataset effects, not one effect "
            "measured on the datasets pooled.")


def _cross_dataset(a: Analysis, name: Namer) -> str:
    """Per-dataset results and the heterogeneity of each arm's effect (only with ≥ 2 datasets)."""
    x = a.crossdata
    if x.configs.empty:
        return ""
    o = a.options
    metrics = [m for m in a.metrics if m in set(x.effects["metric"])]
    table, named = _per_dataset_table(a, name, metrics)
    scope = [k for k in ("suite", "preset") if k in name.varying]
    answers = [
        "".join(f"{r[k]}: " for k in scope) + _cross_answer(r, _effects_of(a, r), a)
        for r in x.pooled[(x.pooled["arm"] == CLAIM_ARM) & (x.pooled["metric"] == "bleu")].to_dict("records")
    ] or [f"No `{CLAIM_ARM}` and `{o.baseline}` BLEU on two or more datasets: the question is not asked here."]
    rows = []
    for r in x.pooled.to_dict("records"):
        effects = _effects_of(a, r)
        rows.append({k: r[k] for k in scope} | {"arm − reference": f"`{r['arm']}` − `{o.baseline}`",
                                                "metric": r["metric"]}
                    | {e["dataset"]: f"{signed(e['diff'], 4)} ± {num(e['se'], 4)} (n = {e['n']})"
                       for e in effects.to_dict("records")}
                    | {"k": r["k"], "Welch p": pvalue(r["welch_p"]),
                       "Q (df)": NA if pd.isna(r["q"]) else f"{r['q']:.2f} ({int(r['df'])})",
                       "χ² p": pvalue(r["q_p"]), "I²": NA if pd.isna(r["i2"]) else f"{r['i2']:.0%}",
                       "τ²": NA if pd.isna(r["tau2"]) else f"{r['tau2']:.3g}",
                       f"random-effects mean [{1 - o.alpha:.0%} CI]": with_ci(
                           r["pooled"], r["pooled_low"], r["pooled_high"], lambda v: signed(v, 4))})
    return "\n".join([
        "## Across datasets", "", *answers, "",
        f"Per dataset: each configuration's mean over seeds with its {1 - o.alpha:.0%} Student-t interval, and "
        f"the trivial rows (deterministic, no interval). Configurations: {named}.", "", table, "",
        f"Each arm's effect over `{o.baseline}` per dataset: the mean of its seed-paired differences ± their "
        "standard error (sd / √n), n seeds. Across the k datasets with a standard error: Welch's test that the "
        "datasets share one effect (scipy.stats.f_oneway with unequal variances, on the per-seed differences), "
        "Cochran's Q = Σ w (y − ȳ_w)² with w = 1/se² against χ² on k − 1 df, I² = max(0, (Q − (k − 1)) / Q), and "
        "the DerSimonian–Laird between-dataset variance τ² and random-effects mean (weights 1/(se² + τ²), normal "
        "interval). Q's χ² p treats each standard error as known; estimated from a few seeds it is far too "
        "small (3 seeds on each of 4 datasets: about 25% false alarms at 0.05), so the answer above rests on "
        f"Welch's test, which allows for that. The `{CLAIM_ARM}` BLEU row answers the question asked in advance; the other rows are "
        "descriptive (p-values not corrected). The random-effects mean averages per-dataset effects; it is "
        "never a score of the datasets pooled into one set.", "",
        md_table(rows),
    ])


def _amount(x: float, places: int = 0) -> str:
    return NA if pd.isna(x) else f"{x:,.{places}f}"


def _convergence_tables(name: Namer, runs: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    swept = bool(runs["sweep"].map(sweep_text).ne("").any())

    def model(r: dict) -> dict:
        return {"curve (arms)": r["arms"], "own decoder": r["decoder"] or NA, "γ": gamma_text(r["gamma"])} | (
            {"sweep": sweep_text(r["sweep"]) or "—"} if swept else {})

    def ratio(r: dict, measure: str) -> str:
        return "reference" if r["baseline"] else with_ci(
            r[f"speedup_{measure}"], r[f"speedup_{measure}_low"], r[f"speedup_{measure}_high"], speedup)

    def reached(r: dict, column: str, places: int = 0) -> str:
        return _amount(r[column], places) if r["n_reached"] else "not reached"

    summary_rows = [
        name.scope(r) | model(r) | {
            "reached": f"{r['n_reached']}/{r['n_seeds']}",
            "steps to level": reached(r, "steps_to_level"),
            "examples to level": reached(r, "examples_to_level"),
            "calibrated s to level": reached(r, "calibrated_to_level", 1),
            "speedup, calibrated s": ratio(r, "calibrated"),
            "speedup, examples": ratio(r, "examples"),
            "speedup, steps": ratio(r, "steps"),
            "raw wall speedup": ratio(r, "wall"),
            "n paired": r["n_pairs"],
        }
        for r in summary.to_dict("records")
    ]
    seed_rows = [
        name.scope(r) | model(r) | {
            "seed": r["seed"],
            "steps to level": _amount(r["steps_to_level"]) if r["reached"] else
            f"not reached (best {r['best_bleu']:.4f} by step {r['last_step']:,})",
            "examples to level": _amount(r["examples_to_level"]) if r["reached"] else "not reached",
            "calibrated s": _amount(r["calibrated_to_level"], 1) if r["reached"] else "not reached",
            "raw wall s": _amount(r["wall_to_level"], 1) if r["reached"] else "not reached",
            "speedup, calibrated s": speedup(r["speedup_calibrated"]),
            "speedup, examples": speedup(r["speedup_examples"]),
            "speedup, steps": speedup(r["speedup_steps"]),
            "raw wall speedup": speedup(r["speedup_wall"]),
        }
        for r in runs.to_dict("records")
    ]
    return [md_table(summary_rows), "", "Per seed:", "", md_table(seed_rows)]


def _extra_curves(a: Analysis, name: Namer) -> str:
    if a.extra_curves.empty:
        return "No other decoder's curves in curves.parquet."
    listed = "; ".join(
        "".join(f"{v}: " for v in name.scope(r).values())
        + f"`{r['arm']}` with {r['decoder'] or 'an unnamed decoder'} ({seeds(r['n_seeds'])})"
        for r in a.extra_curves.to_dict("records")
    )
    return (f"Curves of other decoders, in curves.parquet but never used for a level or a speedup (not the arm's "
            f"own decoder): {listed}.")


def _curve_check(a: Analysis, name: Namer) -> str:
    if a.curve_check.empty:
        return ("No curve check: the table has no `curve_bleu_final`/`valid_bleu_full` (the last curve point "
                "against the cell's full decoder).")
    decoders = {(r["arm"], r["dataset"]): r["decoder"] for r in a.own_decoders.to_dict("records")}
    rows = [
        name.scope(r) | {
            "config (full decoder)": r["config"],
            "curve decoder": decoders.get((r["arm"], r["dataset"]), NA) or NA,
            "n": r["n"],
            "curve_bleu_final": num(r["curve_bleu_final"], 4),
            "valid_bleu_full": num(r["valid_bleu_full"], 4),
            "gap (full − curve)": mean_std(r["gap"], r["gap_std"]),
        }
        for r in name.configs(a.curve_check)
    ]
    return "\n".join([
        "The last point of each arm's own validation curve, cross-checked against the cell's full decoder (e.g. "
        "DDPM over all steps, one sample, seed 0) on the same validation subset at the end of training; mean over "
        "seeds. A large gap means the cheap curve decoder misjudges the real one, and so may the speedups.",
        "", md_table(rows),
    ])


def _convergence(a: Analysis, name: Namer) -> str:
    head = "## Training convergence (paper Fig. 2)"
    if "convergence" in a.missing:
        return "\n\n".join([f"{head}\n\nSkipped: {a.missing['convergence']}", _extra_curves(a, name),
                             _curve_check(a, name)])
    o = a.options
    levels = "; ".join(
        f"{r['dataset']}: **{r['level']:.4f}**" + ("" if o.level_bleu is not None else
                                                 f" = {o.level_fraction:g} × {r['weakest_final']:.4f} (the weakest "
                                                 f"of {int(r['weakest_runs'])} final points)")
        for r in a.levels.to_dict("records")
    )
    timing = ("Calibrated seconds = steps to the level × the model's seconds per optimizer step from the timing "
              f"pass (min over repetitions, one device). {clock_note(a.results.timing)}" if "timing" not in a.missing else
              f"No calibrated seconds: {a.missing['timing']}")
    parts = [
        head, "", f"Level: {o.level_text(o.baseline, CLAIM_ARM)}. Per dataset: {levels}.", "",
        "One row per own-decoder curve: each arm's validation BLEU is measured with its own decoder (named in "
        "the table); arms that share a trained model *and* a decoder share the curve and are named together. "
        "Steps, examples seen, calibrated and raw seconds to the level are interpolated linearly between the last "
        "evaluation below it and the first at or above it. Speedup = baseline curve ÷ curve on the same seed "
        "(> 1: faster), aggregated as the geometric mean over the seeds where both reached the level, with a "
        f"{1 - o.alpha:.0%} Student-t interval on the log ratios. {timing} The headline is calibrated seconds and "
        "examples seen; the raw wall time (cells that trained at different moments, on a shared machine) is only "
        "a column, and is compared only between models trained on the same device. A run that never reached the level is listed as not reached (and is outside the mean).",
        "", *_convergence_tables(name, a.convergence, a.convergence_summary), "", _extra_curves(a, name),
    ]
    if a.published:
        runs, summary = a.published["runs"], a.published["summary"]
        mine = [has_arm(f["arms"], PUBLISHED_ARM) | f["baseline"] for f in (runs, summary)]
        parts += ["", f"### As published: `{PUBLISHED_ARM}` against `{PUBLISHED_BASELINE}`", "",
                  f"Level: {a.published['level_text']}. The published recipes differ in global batch (and so in "
                  "cost per step): compare examples seen and calibrated seconds, not steps.", "",
                  *_convergence_tables(name, runs[mine[0]], summary[mine[1]])]
    parts += ["", "### Curve decoder vs full decoder", "", _curve_check(a, name)]
    return "\n".join(parts)


def _sweep_points(a: Analysis, name: Namer) -> str:
    """Each sweep point against the base point {} (only for suites with a sweep)."""
    if a.sweeps.empty:
        return ""
    o = a.options
    rows = [
        name.scope(r) | {
            "config": f"{r['arm']} {r['label']}", "point": f"`{r['sweep']}`", "metric": r["metric"], "n": r["n"],
            "point mean": num(r["mean_point"], 4), "base mean": num(r["mean_base"], 4),
            "Δ = point − base [t CI]": delta_ci(r | {"mean_b": r["mean_base"]}),
            "margin": num(r["margin"], 4),
            "non-inferior? p (adj.)": (f"{'**yes**' if r['noninferior'] else 'not shown'}: "
                                       f"{pvalue(r['noninferior_p'])} ({pvalue(r['noninferior_p_adj'])})"
                                       if pd.notna(r["noninferior_p"]) else "n/a (fewer than 2 seeds)"),
        }
        for r in a.sweeps.to_dict("records")
    ]
    return "\n".join([
        "## Sweep points against the base point", "",
        "Each sweep point of an arm against the same arm at the base point `{}` (everything else equal), paired on "
        f"seeds: the mean difference with its {1 - o.alpha:.0%} Student-t interval, and the one-sided t-test of "
        f"non-inferiority, Δ > −margin (Δ < +margin for a metric where lower is better), with margin = "
        f"{o.equivalence_margin:.0%} of the base point's mean "
        f"({o.correction}-corrected within each metric). 'Not shown' is not 'worse': it can be too few seeds.",
        "", md_table(rows),
    ])


def _absorbing(a: Analysis, name: Namer) -> str:
    head = "## Absorbing state"
    parts = [head, ""]
    if a.final_norms.empty:
        parts.append("No ‖m‖ in curves.parquet (metrics `m_norm_ema`, `emb_norm_ema`).")
    else:
        rows = [
            name.scope(r) | {
                "model (arms)": r["arms"], "γ": gamma_text(r["gamma"]), "n": r["n_seeds"], "at step": f"{r['last_step']:,}",
                "final ‖m‖ (EMA)": mean_std(r["m_norm_ema"], r["m_norm_ema_std"]),
                "mean embedding norm (EMA)": num(r["emb_norm_ema"], 4),
                "‖m‖ / embedding norm": num(r["ratio_ema"], 3),
                "final ‖m‖ (trained)": num(r["m_norm"], 4),
            }
            for r in a.final_norms.to_dict("records")
        ]
        parts += ["Final ‖m‖ of each trained model (EMA weights, which are decoded; mean ± std over seeds) against "
                  "the mean word-embedding row norm; arms sharing a model share its m. ‖m‖ is 0 for models "
                  "without a learned m. The figure below draws ‖m‖ against training.", "", md_table(rows)]
    if a.questions.empty:
        asked = "; ".join(f"{q.question} (`{q.a}` vs `{q.b}`)" for q in QUESTIONS)
        parts += ["", f"No question answered: none had both of its arms in this suite ({asked})."]
        return "\n".join(parts)
    parts += ["", "Questions the ablation arms answer, each shown when both of its arms ran: A vs B paired on "
              f"seed, Δ = A − B with its {1 - a.options.alpha:.0%} t interval; p-values "
              f"{CORRECTION_NAMES[a.options.correction]}-corrected within each metric across the questions.", ""]
    for (question, *_), g in a.questions.groupby(["question", *SCOPE_KEYS], sort=False):
        q = next(q for q in QUESTIONS if q.question == question)
        where = f" ({g['dataset'].iloc[0]})" if "dataset" in name.varying else ""
        parts.append(f"- **{question}**{where} `{g['config_a'].iloc[0]}` vs `{g['config_b'].iloc[0]}`: "
                     f"{answer(g)} {q.reading}")
    rows = [
        name.scope(r) | {
            "question": r["question"], "A": r["config_a"], "B": r["config_b"], "metric": r["metric"], "n": r["n"],
            "mean A": num(r["mean_a"], 4), "mean B": num(r["mean_b"], 4), "Δ [CI]": delta_ci(r),
            "t-test p (adj.)": f"{pvalue(r['t_p'])} ({pvalue(r['t_p_adj'])})" if pd.notna(r["t_p"])
            else f"n/a: {r['note']}",
        }
        for r in a.questions.to_dict("records")
    ]
    return "\n".join([*parts, "", md_table(rows)])


def _sampling(a: Analysis, name: Namer) -> str:
    head = "## Sampling speed and quality (paper Fig. 3)"
    if "timing" in a.missing:
        return f"{head}\n\nSkipped: {a.missing['timing']}"
    frame = a.sampling.sort_values([*SCOPE_KEYS, "outputs_per_s"], ascending=[True] * len(SCOPE_KEYS) + [False])
    rows = [
        name.scope(r) | {
            "config": r["config"], "NFE": r["nfe"], "batch": r["timed_batch"], "reps": r["reps"],
            "s/batch, 1 candidate (min; median)": f"{num(r['min_s'])}; {num(r['median_s'])}"
            + (" (extrapolated)" if r["extrapolated"] else ""),
            "floor NFE × forward (s)": num(r["floor_s"]),
            "outputs/s (÷ MBR)": num(r["outputs_per_s"]),
            "speedup without MBR": speedup(r["speedup"]),
            "speedup incl. MBR (min; median)": f"{speedup(r['speedup_mbr'])}; {speedup(r['speedup_mbr_median'])}",
            "floor speedup incl. MBR": speedup(r["speedup_floor_mbr"]),
            "BLEU [CI]": with_ci(r.get("bleu_mean", np.nan), r.get("bleu_ci_low"), r.get("bleu_ci_high")),
            "BERTScore": num(r.get("bertscore_mean", np.nan)),
        }
        for r in name.configs(frame)
    ]
    costs = a.costs.drop_duplicates([*SCOPE_KEYS, "gamma", "sweep", "device", "train_step_s"])
    timing = a.results.timing
    train = timing[timing["kind"] == "train_step"] if timing is not None else pd.DataFrame()
    train_rows = [
        {k: r[k] for k in name.varying} | {
            "model (arms)": r["arm"], "γ": gamma_text(r["gamma"]), "device": f"`{r['device']}`",
            "batch (sequences/step)": r["batch_size"], "reps": r["reps"],
            "s/step (min; median)": f"{num(r['min_s'])}; {num(r['median_s'])}",
            "wall s/step (min)": num(r["wall_min_s"]),
            "s per 1k examples (min)": num(1000 * r["min_s"] / r["batch_size"]) if r["batch_size"] else NA,
        }
        for r in train.sort_values([*SCOPE_KEYS, "arm", "device"]).to_dict("records")
    ]
    devices = distinct(costs["device"]) if len(costs) else distinct(a.speeds["device"])
    other = elsewhere(a.results.timing)
    other = other[other["kind"] == "sample_batch"]
    other_rows = [
        {k: r[k] for k in name.varying} | {
            "config": r["config"], "device": f"`{r['device']}`", "batch": r["batch_size"],
            "s/batch, 1 candidate (min; median)": f"{num(r['min_s'])}; {num(r['median_s'])}",
        }
        for r in other.assign(config=config_labels(other)).to_dict("records")
    ] if len(other) else []
    if other_rows:
        other_text = ["", "Timed on another device than the rest of its scope (listed, never divided by the "
                      "figures above):", "", md_table(other_rows)]
    else:
        other_text = []
    return "\n".join([
        head, "",
        f"From the timing pass on `{devices}`: every configuration decodes the same batch, interleaved with the others, "
        "a few repetitions after warm-up. s/batch is one candidate (MBR-n costs n of them); outputs/s = batch ÷ "
        "(MBR × min s). `speedup without MBR` compares sampled sequences per second with the reference (the "
        "baseline's DDPM with the most steps); `incl. MBR` compares outputs per second, charging each "
        "configuration for its MBR candidates (the paper's ~800x counts this way). The floor is NFE × one "
        "denoiser forward on the same batch: what the sampler would cost with nothing but the network. "
        f"Extrapolated: a long chain timed on fewer steps and scaled by steps. {clock_note(a.results.timing)} "
        "The cells' own `sentences_per_s` "
        "and wall times are kept in `summary.csv` as bookkeeping and never divided. BLEU: mean over seeds with "
        "its percentile-bootstrap CI.",
        "", md_table(rows), *other_text, "",
        "Training cost per optimizer step (the calibration of the convergence speedups), every device:",
        "", md_table(train_rows),
    ])


def _seed_verdict(r: dict) -> str:
    if pd.isna(r["t_p"]):
        return f"n/a: {r['note']}"
    if not r["significant"]:
        return "not significant"
    return ("higher" if r["diff"] > 0 else "lower") + ", significant"


def _metric_order(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(metrics)}
    return frame.sort_values("metric", key=lambda m: m.map(rank), kind="stable")


def _seed_significance(a: Analysis, name: Namer) -> str:
    o = a.options
    head = "### Across seeds: each configuration vs the reference, paired on seed"
    tests = a.seed_tests
    if tests.empty:
        reason = a.missing.get("references", "no configuration shares seeds with the reference.")
        return f"{head}\n\nNo paired comparisons: {reason}"
    n_min = int(tests["n"].min())
    wilcoxon = (
        f" With n = {n_min} seeds the smallest two-sided Wilcoxon p is {2 / 2 ** n_min:.3g}: below n = 6 it "
        "cannot reach significance at 0.05, so read it as a sign check." if 2 <= n_min < 6 else ""
    )
    rows = [
        name.scope(r) | {
            "config": r["config"], "metric": r["metric"], "n": r["n"],
            "A": num(r["mean_a"]), "B": num(r["mean_b"]), "Δ [CI]": delta_ci(r),
            "d_z": NA if pd.isna(r["d_z"]) else f"{r['d_z']:+.2f}",
            "t-test p (adj.)": f"{pvalue(r['t_p'])} ({pvalue(r['t_p_adj'])})",
            "Wilcoxon p (adj.)": f"{pvalue(r['wilcoxon_p'])} ({pvalue(r['wilcoxon_p_adj'])})",
            "verdict": _seed_verdict(r),
        }
        for r in name.configs(_metric_order(tests, a.metrics))
    ]
    return "\n".join([
        head, "",
        f"A = configuration, B = reference; Δ = A − B with its {1 - o.alpha:.0%} Student-t interval; d_z = mean Δ / "
        f"sd Δ; n = matched seeds. Two-sided p-values, {CORRECTION_NAMES[o.correction]}-corrected within each "
        f"metric (t-tests and Wilcoxon tests separately); **significant** = corrected t-test p < {o.alpha:g}; "
        f"anything else is reported as not significant.{wilcoxon}",
        "", md_table(rows),
    ])


def _sentence_significance(a: Analysis, name: Namer) -> str:
    o = a.options
    head = "### Within each seed: paired bootstrap over test sentences (Koehn 2004)"
    within = a.sentence_tests
    if within.empty:
        reason = a.missing.get("sentence_tests") or a.missing.get(
            "references", "no cell shares sentences with its reference.")
        return f"{head}\n\nSkipped: {reason}"
    counts = (
        within.assign(higher=within["significant"] & (within["diff"] > 0),
                      lower=within["significant"] & (within["diff"] < 0))
        .groupby([*CONFIG_KEYS, "metric"], dropna=False, sort=False)
        .agg(seeds=("seed", "nunique"), higher=("higher", "sum"), lower=("lower", "sum"),
             diff=("diff", "mean"), mean_b=("mean_b", "mean"), sentences=("n_sentences", "max"))
        .reset_index()
    )
    rows = [
        name.scope(r) | {
            "config": r["config"], "metric": r["metric"], "seeds": r["seeds"],
            "A > B (significant)": r["higher"], "A < B (significant)": r["lower"],
            "not significant": r["seeds"] - r["higher"] - r["lower"],
            "mean Δ over seeds": signed(r["diff"], decimals(r["mean_b"])), "sentences": r["sentences"],
        }
        for r in name.configs(_metric_order(counts, a.metrics))
    ]
    family = int(within.groupby("metric").size().max())
    floor = (
        f" **Note:** the smallest attainable p, 1/(B+1) = {1 / (o.n_boot + 1):.2g}, is not below α/m = "
        f"{o.alpha / family:.2g} for a family of m = {family} comparisons, so nothing can be significant: "
        f"raise --n-boot to at least {int(family / o.alpha) + 1}." if 1 / (o.n_boot + 1) >= o.alpha / family else ""
    )
    return "\n".join([
        head, "",
        "Per seed, A (configuration) vs B (the reference cell of the same seed) over the sentences both scored: "
        f"{o.n_boot} resamples of the sentence set (one index matrix for A and B, seed {o.seed}); two-sided p "
        "from the bootstrap distribution shifted to a zero mean difference, "
        f"{CORRECTION_NAMES[o.correction]}-corrected within each metric (m = {family} comparisons at most). "
        "Counts are seeds; `sentence_tests.csv` has every seed's Δ, its CI, P(A > B) and p." + floor,
        "", md_table(rows),
    ])


def _figures(plots: list[Plot], out_dir: Path) -> str:
    lines = ["## Figures"]
    for plot in plots:
        lines += ["", f"### {plot.title}", ""]
        if plot.png is None:
            lines.append(f"_Skipped: {plot.skipped}_")
        else:
            png, csv = (Path(os.path.relpath(p, out_dir)).as_posix() for p in (plot.png, plot.csv))
            lines += [f"![{plot.title}]({png})", "", f"Data: [{csv}]({csv})"]
    return "\n".join(lines)


def _methods(a: Analysis) -> str:
    o = a.options
    correction = {
        "holm": "Holm's step-down method (family-wise error; implemented in bench.report.stats, scipy has none)",
        "bh": "Benjamini–Hochberg (false discovery rate; scipy.stats.false_discovery_control)",
    }[o.correction]
    items = [
        f"**Across seeds.** Mean, sample std (ddof 1), and a {1 - o.alpha:.0%} percentile bootstrap CI of the mean "
        f"(scipy.stats.bootstrap, {o.n_boot} resamples, seed {o.seed}). Percentile rather than BCa because BCa's "
        "jackknife acceleration is unstable with 3-5 seeds. Any bootstrap interval is too narrow for few seeds "
        "(about 75% actual coverage for a nominal 95% at n = 3); `summary.csv` also has Student-t intervals "
        "(`t_low`, `t_high`), which are exact for normal seed-to-seed variation.",
        "**Trivial rows** (`copy_source`, `nearest_train_target`) need no model and are deterministic: one cell "
        "per dataset, no interval, never the reference of a paired test. A configuration's margin over one is "
        "its mean minus the trivial value, with its own Student-t interval shifted by that constant; it *fails* "
        "to beat the row when the mean is at or below it.",
        "**Paired tests on seeds.** scipy.stats.ttest_rel and scipy.stats.wilcoxon (two-sided; zero differences "
        "dropped), effect size d_z. With fewer than 2 matched seeds, all-zero differences, or a constant "
        "difference, the t-test is reported as n/a with the reason.",
        "**Paired bootstrap over sentences** (Koehn 2004), per seed: an index matrix of "
        f"{o.n_boot} × n_sentences draws shared by both cells; P(A > B) is the fraction of resamples where A's "
        "mean is higher; p = (1 + #{|Δ*ᵦ − Δ| ≥ |Δ|}) / (B + 1); the CI is the percentile interval of Δ*.",
        f"**Multiple comparisons.** {correction}; one family per metric and kind of test (t-tests, Wilcoxon "
        f"tests, within-seed bootstraps), across configurations, datasets and seeds; the claims table is one "
        f"family per direction of test; the absorbing-state questions one family per metric. α = {o.alpha:g}.",
        f"**Convergence.** Level: {o.level_text(o.baseline, CLAIM_ARM)}, from their own-decoder curves. Only curves of each arm's "
        "own decoder enter (curves.parquet `own_decoder`); other decoders' curves are listed, never used. Crossing "
        "points are interpolated linearly between evaluations (a curve at the level at its first evaluation "
        "reports that evaluation, an upper bound); examples seen = step × global batch. Calibrated seconds = "
        "steps to the level × the model's timed seconds per optimizer step (min over the timing pass's "
        "repetitions), so the calibrated speedup is the steps speedup × the ratio of per-step costs.",
        "**Speed.** Only from the timing pass (timing.parquet): configurations timed on the same batch, "
        "interleaved, after warm-up, on one device; min and median over repetitions. Per scope, ratios use one "
        "device (the one that timed the most configurations); results from different devices are never divided "
        "by each other. A unit is read on two clocks: a 1-thread pass on a CPU divides the process's CPU seconds "
        "(the work, not the waits while other processes ran: the ratios do not move with the machine's load), any "
        "other pass wall seconds; timing.parquet keeps both. Outputs per second = batch / seconds for the batch "
        "with all its MBR candidates, decoded as the cells decode them (stacked); the floor is NFE × one "
        "denoiser forward. Without a timing pass there is no speed claim; the cells' raw wall times are never "
        "used instead.",
        f"**Claims.** `{CLAIM_ARM}` config: DPM-Solver++ if present, γ nearest {PAPER_GAMMA:g}, most steps; the "
        "reference: the baseline's DDPM with the most steps and its largest MBR. Quality margin = "
        f"{o.equivalence_margin:.0%} of the reference's mean BLEU. (a) one-sided one-sample t on the per-seed log "
        "speedups in calibrated seconds (H1: > 0); (b) at least "
        f"{MUCH_FASTER:g}x more outputs per second counting MBR (from min_s and from median_s alike; below "
        f"{MUCH_FASTER:g}x by both refutes it), and BLEU non-inferiority: one-sided t of Δ > −margin on matched "
        "seeds; (c) equivalence by TOST: p = the larger of the one-sided p-values of Δ > −margin and Δ < +margin "
        "(the opposite: Δ outside the margin, the smaller one-sided p doubled); (d) "
        f"γ: the best γ in [{GAMMA_RANGE[0]:g}, {GAMMA_RANGE[1]:g}] vs the best γ outside it (both by mean), paired "
        "t on matched seeds, from test BLEU of the γ-swept configuration with the most γ (else the final "
        "own-curve validation BLEU). A constant, non-zero difference gives p = 0 (and 1 in the other direction).",
        "**Seeds to decide** (inconclusive claims): the normal-approximation sample size of a one-sided test at "
        "level α with 80% power, n = ⌈((z₁₋α + z₀.₈) · s / |d − d₀|)²⌉, where d is the observed mean of the "
        "claim's per-seed quantity (log speedup, BLEU Δ, |BLEU Δ| for equivalence), s its standard deviation "
        "across seeds and d₀ the threshold (0, −margin, or the margin); at least one more seed than observed, "
        "since the approximation ignores the t distribution and the correction.",
    ]
    return "## Methods\n\n" + "\n".join(f"- {item}" for item in items)


def render(a: Analysis, plots: list[Plot], tables: list[Path], out_dir: Path) -> str:
    """The whole report as Markdown, with links relative to ``out_dir``."""
    name = Namer(a.cells)
    files = ", ".join(f"[{p.name}]({p.name})" for p in tables)
    sections = [
        f"# Benchmark report: {distinct(a.cells['suite'])}",
        f"Generated by `python -m bench report` from `{a.results.directory}` only (no model or checkpoint "
        f"is read). Tables as CSV: {files}.",
        _read_first(a, name), _claims(a, name), _setup(a), _main_table(a, name), _trivial(a, name),
        _cross_dataset(a, name), _convergence(a, name), _absorbing(a, name), _sweep_points(a, name),
        _sampling(a, name),
        "## Significance", _seed_significance(a, name), _sentence_significance(a, name), _figures(plots, out_dir),
        _methods(a),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"
