"""Render an ``Analysis`` as ``report.md``: setup, claims, tables, figures and methods."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.analysis import Analysis
from bench.report.claims import CLAIM_ARM, CLAIMS, MUCH_FASTER, PAPER_GAMMA
from bench.report.configs import CONFIG_KEYS, NO_SWEEP, SCOPE_KEYS, config_labels, sweep_text
from bench.report.fmt import NA, decimals, md_table, num, pvalue, seeds, signed, speedup, with_ci
from bench.report.plots import Plot


def _gamma(g: float) -> str:
    return "—" if pd.isna(g) else f"{g:g}"


def _values(series: pd.Series) -> str:
    return ", ".join(map(str, sorted(series.dropna().unique(), key=str))) or NA


class _Namer:
    """Names rows the same way in every table: the scope keys that vary, then the config label."""

    def __init__(self, cells: pd.DataFrame) -> None:
        self.varying = [k for k in SCOPE_KEYS if cells[k].nunique() > 1]
        configs = cells[CONFIG_KEYS].drop_duplicates()
        self.labels = configs.assign(config=config_labels(configs))

    def scope(self, row: dict) -> dict:
        return {k: row[k] for k in self.varying}

    def configs(self, frame: pd.DataFrame) -> list[dict]:
        """Records of ``frame`` with a ``config`` label (frame must hold CONFIG_KEYS)."""
        return frame.merge(self.labels, on=CONFIG_KEYS, how="left").to_dict("records")


# ---------------------------------------------------------------- sections


def _setup(a: Analysis) -> str:
    cells = a.cells
    seed_list = sorted(cells["seed"].unique())
    facts = {
        "Suite": _values(cells["suite"]),
        "Scale preset": _values(cells["preset"]),
        "Datasets": _values(cells["dataset"]),
        "Seeds": f"{', '.join(map(str, seed_list))} ({seeds(len(seed_list))})",
        "Arms": _values(cells["arm"]),
        "Configurations": ", ".join(dict.fromkeys(config_labels(cells))),
        "Sampling batch size": _values(cells["batch_size"]),
        "Training steps": _values(cells["train_steps"].astype(int)) if "train_steps" in cells else NA,
        "Device": _values(cells["device"]),
        "Code version": _values(cells["code_version"]),
        "BERTScore model": _values(cells["bertscore_model"]),
        "Results": f"`{a.results.directory}` ({len(cells)} cells, {len(a.results.table)} table rows)",
    }
    if a.references.empty:
        facts["Reference"] = a.missing["references"]
    else:
        refs = a.references.assign(label=config_labels(a.references))
        facts["Reference for all comparisons"] = "; ".join(f"{r.dataset}: {r.label}" for r in refs.itertuples())
    return "## Setup\n\n" + "\n".join(f"- **{k}:** {v}" for k, v in facts.items())


def _claims(a: Analysis) -> str:
    lines = [
        "## Paper claims at this scale",
        "",
        f"Judged on one `{CLAIM_ARM}` configuration fixed in advance (DPM-Solver++, γ nearest {PAPER_GAMMA:g}, "
        "most steps) against the reference. **confirmed**: the interval lies on the claimed side; "
        "**not confirmed**: it lies on the other side; **inconclusive**: neither, or too little data. "
        f"Preset {_values(a.cells['preset'])}, {seeds(a.cells['seed'].nunique())}.",
    ]
    for claim, text in CLAIMS.items():
        lines += ["", f"### {text}", ""]
        for row in a.claims[a.claims["claim"] == claim].to_dict("records"):
            where = f"{row['dataset']}: " if "dataset" in row else ""
            config = f" {row['config']}:" if "config" in row else ""
            lines.append(f"- {where}**{row['verdict']}.**{config} {row['evidence']}")
    return "\n".join(lines)


def _mean_std(mean: float, std: float) -> str:
    places = decimals(mean)
    return num(mean, places) + ("" if pd.isna(std) else f" ± {num(std, places)}")


def _mean_cell(r: dict, n_row: int) -> str:
    """``mean ± std`` (n if it differs from the row's), and the bootstrap CI below it."""
    if pd.isna(r["mean"]):
        return NA
    places = decimals(r["mean"])
    n = "" if r["n"] == n_row else f" (n = {int(r['n'])})"
    ci = "" if pd.isna(r["ci_low"]) else f"<br>[{num(r['ci_low'], places)}, {num(r['ci_high'], places)}]"
    return f"{_mean_std(r['mean'], r['std'])}{n}{ci}"


def _main_table(a: Analysis, name: _Namer) -> str:
    quality = a.summary[a.summary["metric"].isin(a.metrics)]
    configs = quality.groupby(CONFIG_KEYS, dropna=False, sort=False)["n"].max().reset_index()
    rows = [name.scope(c) | {"config": c["config"], "n": c["n"]} for c in name.configs(configs)]
    for metric in a.metrics:
        merged = configs.merge(quality[quality["metric"] == metric], on=CONFIG_KEYS, how="left", suffixes=("_row", ""))
        for row, r in zip(rows, merged.to_dict("records"), strict=True):
            row[metric] = _mean_cell(r, r["n_row"])
    return "\n".join([
        "## Main results",
        "",
        f"Mean ± std over seeds; below it the {1 - a.options.alpha:.0%} percentile-bootstrap CI of the mean "
        "(too narrow with few seeds: see Methods). n = seeds. Corpus BLEU is sacrebleu's, on the same 0-1 scale as the other scores.",
        "",
        md_table(rows),
    ])


def _convergence(a: Analysis, name: _Namer) -> str:
    head = "## Training convergence (paper Fig. 2)"
    if "convergence" in a.missing:
        return f"{head}\n\nSkipped: {a.missing['convergence']}"
    o = a.options
    levels = "; ".join(
        f"{r['dataset']}: **{r['level']:.4f}**" + ("" if o.level_bleu is not None else
                                                 f" = {o.level_fraction:g} × {r['baseline_final']:.4f} "
                                                 f"(n = {int(r['baseline_seeds'])} seeds)")
        for r in a.levels.to_dict("records")
    )
    swept = bool(a.convergence["sweep"].ne(NO_SWEEP).any())

    def model(r: dict) -> dict:
        return {"model (arms)": r["arms"], "γ": _gamma(r["gamma"])} | (
            {"sweep": sweep_text(r["sweep"]) or "—"} if swept else {})

    summary = [
        name.scope(r) | model(r) | {
            "reached": f"{r['n_reached']}/{r['n_seeds']}",
            "mean steps to level": f"{r['steps_to_level']:,.0f}" if r["n_reached"] else "not reached",
            "mean wall to level (s)": f"{r['wall_to_level']:,.1f}" if r["n_reached"] else "not reached",
            "speedup, steps": "reference" if r["baseline"] else with_ci(
                r["speedup_steps"], r["speedup_steps_low"], r["speedup_steps_high"], speedup),
            "speedup, wall time": "reference" if r["baseline"] else with_ci(
                r["speedup_wall"], r["speedup_wall_low"], r["speedup_wall_high"], speedup),
            "n paired": r["n_pairs"],
        }
        for r in a.convergence_summary.to_dict("records")
    ]
    runs = [
        name.scope(r) | model(r) | {
            "seed": r["seed"],
            "steps to level": f"{r['steps_to_level']:,.0f}" if r["reached"] else
            f"not reached (best {r['best_bleu']:.4f} by step {r['last_step']:,})",
            "wall to level (s)": f"{r['wall_to_level']:,.1f}" if r["reached"] else "not reached",
            "speedup, steps": speedup(r["speedup_steps"]),
            "speedup, wall time": speedup(r["speedup_wall"]),
        }
        for r in a.convergence.to_dict("records")
    ]
    return "\n".join([
        head, "", f"Level: {o.level_text}. Per dataset: {levels}.", "",
        "One row per trained model: arms that share a model (same training spec, e.g. `absorb_train_only` "
        "and `v2`) are one row, named together. "
        "Steps and wall time to the level are interpolated linearly between the last evaluation below it and "
        "the first at or above it. Speedup = baseline model ÷ model on the same seed (> 1: the model is faster), "
        "aggregated as the geometric mean over the seeds where both runs reached the level, with a "
        f"{1 - o.alpha:.0%} Student-t interval on the log ratios. A run that never reached the level is "
        "listed as not reached (and is outside the mean: count it from the `reached` column).",
        "", md_table(summary), "", "Per seed:", "", md_table(runs),
    ])


def _sampling(a: Analysis, name: _Namer) -> str:
    head = "## Sampling speed and quality (paper Fig. 3)"
    if "sampling" in a.missing:
        return f"{head}\n\nSkipped: {a.missing['sampling']}"
    frame = a.sampling.sort_values([*SCOPE_KEYS, "outputs_per_s"], ascending=[True] * len(SCOPE_KEYS) + [False])
    rows = [
        name.scope(r) | {
            "config": r["config"], "NFE": r["nfe"], "batch": r["batch_size"], "n": r["n"],
            "sampled seq/s": _mean_std(r["sentences_per_s"], r["sentences_per_s_std"]),
            "outputs/s (÷ MBR)": num(r["outputs_per_s"]),
            "speedup": speedup(r["speedup"]),
            "speedup incl. MBR": speedup(r["speedup_mbr"]),
            "BLEU [CI]": with_ci(r.get("bleu_mean", np.nan), r.get("bleu_ci_low"), r.get("bleu_ci_high")),
            "BERTScore": num(r.get("bertscore_f1_mean", np.nan)),
        }
        for r in name.configs(frame)
    ]
    return "\n".join([
        head, "",
        "Throughput is measured at the cell's sampling batch size. `sampled seq/s` counts every sampled "
        "sequence; an MBR-n configuration delivers 1/n of them as outputs. `speedup` compares sampled "
        "sequences per second with the reference (the baseline's DDPM with the most steps); `speedup incl. "
        "MBR` compares outputs per second, charging the reference for its MBR candidates (the paper's "
        "~800x counts this way). BLEU: mean over seeds with its percentile-bootstrap CI.",
        "", md_table(rows),
    ])


def _delta(r: dict) -> str:
    places = decimals(r["mean_b"])
    return with_ci(r["diff"], r["diff_low"], r["diff_high"], lambda x: signed(x, places))


def _seed_verdict(r: dict) -> str:
    if pd.isna(r["t_p"]):
        return f"n/a: {r['note']}"
    if not r["significant"]:
        return "not significant"
    return ("higher" if r["diff"] > 0 else "lower") + ", significant"


_CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg"}


def _metric_order(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(metrics)}
    return frame.sort_values("metric", key=lambda m: m.map(rank), kind="stable")


def _seed_significance(a: Analysis, name: _Namer) -> str:
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
            "A": num(r["mean_a"]), "B": num(r["mean_b"]), "Δ [CI]": _delta(r),
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
        f"sd Δ; n = matched seeds. Two-sided p-values, {_CORRECTION_NAMES[o.correction]}-corrected within each "
        f"metric (t-tests and Wilcoxon tests separately); **significant** = corrected t-test p < {o.alpha:g}; "
        f"anything else is reported as not significant.{wilcoxon}",
        "", md_table(rows),
    ])


def _sentence_significance(a: Analysis, name: _Namer) -> str:
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
        f"{_CORRECTION_NAMES[o.correction]}-corrected within each metric (m = {family} comparisons at most). "
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
        "**Paired tests on seeds.** scipy.stats.ttest_rel and scipy.stats.wilcoxon (two-sided; zero differences "
        "dropped), effect size d_z. With fewer than 2 matched seeds, all-zero differences, or a constant "
        "difference, the t-test is reported as n/a with the reason.",
        "**Paired bootstrap over sentences** (Koehn 2004), per seed: an index matrix of "
        f"{o.n_boot} × n_sentences draws shared by both cells; P(A > B) is the fraction of resamples where A's "
        "mean is higher; p = (1 + #{|Δ*ᵦ − Δ| ≥ |Δ|}) / (B + 1); the CI is the percentile interval of Δ*.",
        f"**Multiple comparisons.** {correction}; one family per metric and kind of test (t-tests, Wilcoxon "
        f"tests, within-seed bootstraps), across configurations, datasets and seeds. α = {o.alpha:g}.",
        f"**Convergence.** Level: {o.level_text}. Crossing points are interpolated linearly between evaluations "
        "(a curve at the level at its first evaluation reports that evaluation, an upper bound).",
        "**Sampling.** `sentences_per_s` is read as sampled sequences per second at `batch_size`; outputs per "
        "second = sentences_per_s / MBR.",
        f"**Claims.** `{CLAIM_ARM}` config: DPM-Solver++ if present, γ nearest {PAPER_GAMMA:g}, most steps. "
        f"Quality margin = {o.equivalence_margin:.0%} of the reference's mean BLEU. (a) the wall-time speedup's "
        f"t interval above 1; (b) at least {MUCH_FASTER:g}x more outputs per second counting MBR, and the BLEU "
        "difference's lower bound above −margin (non-inferiority); (c) the BLEU difference's interval inside "
        "±margin (equivalence; a 95% interval inside the margin is TOST at 2.5% per side). Intervals are the "
        "paired Student-t intervals of the across-seed tests.",
    ]
    return "## Methods\n\n" + "\n".join(f"- {item}" for item in items)


def render(a: Analysis, plots: list[Plot], tables: list[Path], out_dir: Path) -> str:
    """The whole report as Markdown, with links relative to ``out_dir``."""
    name = _Namer(a.cells)
    files = ", ".join(f"[{p.name}]({p.name})" for p in tables)
    sections = [
        f"# Benchmark report: {_values(a.cells['suite'])}",
        f"Generated by `python -m bench report` from `{a.results.directory}` only (no model or checkpoint "
        f"is read). Tables as CSV: {files}.",
        _setup(a), _claims(a), _main_table(a, name), _convergence(a, name), _sampling(a, name),
        "## Significance", _seed_significance(a, name), _sentence_significance(a, name), _figures(plots, out_dir), _methods(a),
    ]
    return "\n\n".join(sections) + "\n"
