"""Training convergence (paper Fig. 2): steps, examples seen and calibrated seconds to the BLEU level
per own-decoder curve, as published too where it ran, and the curve decoder against the full one."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench import schema
from bench.report.analysis import Analysis
from bench.report.claims import CLAIM_ARM, PUBLISHED_ARM, PUBLISHED_BASELINE
from bench.report.configs import CONFIG_KEYS, has_arm, is_trivial, sweep_text
from bench.report.fmt import NA, Namer, gamma_text, md_table, mean_std, num, seeds, speedup, with_ci
from bench.report.options import ReportOptions
from bench.report.sections import Page, Section
from bench.report.speedups import extra_curves, own_decoders
from bench.report.timing import NO_TIMING, clock_note


def _curve_gaps(cells: pd.DataFrame) -> pd.DataFrame:
    """Per model configuration over seeds: the last point of its arm's own validation curve, the
    cell's full decoder on the same subset, and the gap (full − curve)."""
    columns = [*CONFIG_KEYS, "n", "curve_bleu_final", "valid_bleu_full", "gap", "gap_std"]
    if not set(schema.CURVE_CHECK_METRICS) <= set(cells):
        return pd.DataFrame(columns=columns)
    rows = cells[~is_trivial(cells)].dropna(subset=schema.CURVE_CHECK_METRICS)
    rows = rows.assign(gap=rows["valid_bleu_full"] - rows["curve_bleu_final"])
    out = rows.groupby(CONFIG_KEYS, dropna=False, sort=False).agg(
        n=("seed", "nunique"), curve_bleu_final=("curve_bleu_final", "mean"),
        valid_bleu_full=("valid_bleu_full", "mean"), gap=("gap", "mean"), gap_std=("gap", "std")).reset_index()
    return out[columns]


def _amount(x: float, places: int = 0) -> str:
    return NA if pd.isna(x) else f"{x:,.{places}f}"


def _tables(name: Namer, runs: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The summary over seeds and the per-seed table of one reading."""
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


@dataclass(frozen=True)
class TrainingConvergence(Section):
    """The level, the speedup tables (equal recipe, and as published where its arms ran), the other
    decoders' curves (listed, never used) and the curve check."""

    levels: pd.DataFrame
    runs: pd.DataFrame  # per own-decoder curve and seed, against the suite's baseline
    summary: pd.DataFrame  # per curve over seeds
    published: dict | None  # the as-published reading (``Convergence.readings``), if it ran
    skipped: str | None  # why there are no runs
    extra: pd.DataFrame  # curves of other decoders
    own_decoders: pd.DataFrame  # per scope and arm, its own curve's decoder
    curve_check: pd.DataFrame  # per config: last curve point vs the cell's full decoder
    timing: pd.DataFrame | None
    options: ReportOptions

    @classmethod
    def compute(cls, a: Analysis) -> TrainingConvergence:
        o, c = a.options, a.convergence
        main = c.readings.get(o.baseline, {})
        published = c.readings.get(PUBLISHED_BASELINE) if o.baseline != PUBLISHED_BASELINE else None
        return cls(
            levels=c.levels, runs=main.get("runs", pd.DataFrame()), summary=main.get("summary", pd.DataFrame()),
            published=published, skipped=c.skipped,
            extra=extra_curves(a.results.curves), own_decoders=own_decoders(c.models),
            curve_check=_curve_gaps(a.cells), timing=a.results.timing, options=o,
        )

    def _extra_text(self, name: Namer) -> str:
        if self.extra.empty:
            return "No other decoder's curves in curves.parquet."
        listed = "; ".join(
            "".join(f"{v}: " for v in name.scope(r).values())
            + f"`{r['arm']}` with {r['decoder'] or 'an unnamed decoder'} ({seeds(r['n_seeds'])})"
            for r in self.extra.to_dict("records")
        )
        return (f"Curves of other decoders, in curves.parquet but never used for a level or a speedup (not the arm's "
                f"own decoder): {listed}.")

    def _check_text(self, name: Namer) -> str:
        if self.curve_check.empty:
            return ("No curve check: the table has no `curve_bleu_final`/`valid_bleu_full` (the last curve point "
                    "against the cell's full decoder).")
        decoders = {(r["arm"], r["dataset"]): r["decoder"] for r in self.own_decoders.to_dict("records")}
        rows = [
            name.scope(r) | {
                "config (full decoder)": r["config"],
                "curve decoder": decoders.get((r["arm"], r["dataset"]), NA) or NA,
                "n": r["n"],
                "curve_bleu_final": num(r["curve_bleu_final"], 4),
                "valid_bleu_full": num(r["valid_bleu_full"], 4),
                "gap (full − curve)": mean_std(r["gap"], r["gap_std"]),
            }
            for r in name.configs(self.curve_check)
        ]
        return "\n".join([
            "The last point of each arm's own validation curve, cross-checked against the cell's full decoder (e.g. "
            "DDPM over all steps, one sample, seed 0) on the same validation subset at the end of training; mean over "
            "seeds. A large gap means the cheap curve decoder misjudges the real one, and so may the speedups.",
            "", md_table(rows),
        ])

    def render(self, page: Page) -> str:
        head = "## Training convergence (paper Fig. 2)"
        name = page.name
        if self.skipped is not None:
            return "\n\n".join([f"{head}\n\nSkipped: {self.skipped}", self._extra_text(name),
                                 self._check_text(name)])
        o = self.options
        levels = "; ".join(
            f"{r['dataset']}: **{r['level']:.4f}**" + ("" if o.level_bleu is not None else
                                                     f" = {o.level_fraction:g} × {r['weakest_final']:.4f} (the weakest "
                                                     f"of {int(r['weakest_runs'])} final points)")
            for r in self.levels.to_dict("records")
        )
        timing = ("Calibrated seconds = steps to the level × the model's seconds per optimizer step from the timing "
                  f"pass (min over repetitions, one device). {clock_note(self.timing)}" if self.timing is not None else
                  f"No calibrated seconds: {NO_TIMING}")
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
            "", *_tables(name, self.runs, self.summary), "", self._extra_text(name),
        ]
        if self.published:
            runs, summary = self.published["runs"], self.published["summary"]
            mine = [has_arm(f["arms"], PUBLISHED_ARM) | f["baseline"] for f in (runs, summary)]
            parts += ["", f"### As published: `{PUBLISHED_ARM}` against `{PUBLISHED_BASELINE}`", "",
                      f"Level: {self.published['level_text']}. The published recipes differ in global batch (and so in "
                      "cost per step): compare examples seen and calibrated seconds, not steps.", "",
                      *_tables(name, runs[mine[0]], summary[mine[1]])]
        parts += ["", "### Curve decoder vs full decoder", "", self._check_text(name)]
        return "\n".join(parts)
