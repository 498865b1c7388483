"""Absorbing state: the final ‖m‖ of each trained model against its embedding norms, and the
questions the ablation arms answer, seed-paired."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.absorbing import QUESTIONS, answer, answer_questions, final_norms, norm_curves
from bench.report.analysis import Analysis
from bench.report.configs import SCOPE_KEYS
from bench.report.fmt import CORRECTION_NAMES, delta_ci, gamma_text, md_table, mean_std, num, pvalue
from bench.report.options import ReportOptions
from bench.report.sections import Page, Section


@dataclass(frozen=True)
class AbsorbingState(Section):
    """The ‖m‖ table, and each question whose two arms ran: its answer and its tests."""

    norms: pd.DataFrame  # ‖m‖ and embedding norms per model, seed and step
    final_norms: pd.DataFrame  # per model over seeds
    questions: pd.DataFrame  # the absorbing-state questions, seed-paired
    options: ReportOptions

    @classmethod
    def compute(cls, a: Analysis) -> AbsorbingState:
        o, curves = a.options, a.results.curves
        norms = norm_curves(curves)
        return cls(norms, final_norms(norms), answer_questions(a.cells, curves, alpha=o.alpha, correction=o.correction),
                   o)

    def render(self, page: Page) -> str:
        name, o = page.name, self.options
        parts = ["## Absorbing state", ""]
        if self.final_norms.empty:
            parts.append("No ‖m‖ in curves.parquet (metrics `m_norm_ema`, `emb_norm_ema`).")
        else:
            rows = [
                name.scope(r) | {
                    "model (arms)": r["arms"], "γ": gamma_text(r["gamma"]), "n": r["n_seeds"],
                    "at step": f"{r['last_step']:,}",
                    "final ‖m‖ (EMA)": mean_std(r["m_norm_ema"], r["m_norm_ema_std"]),
                    "mean embedding norm (EMA)": num(r["emb_norm_ema"], 4),
                    "‖m‖ / embedding norm": num(r["ratio_ema"], 3),
                    "final ‖m‖ (trained)": num(r["m_norm"], 4),
                }
                for r in self.final_norms.to_dict("records")
            ]
            parts += ["Final ‖m‖ of each trained model (EMA weights, which are decoded; mean ± std over seeds) against "
                      "the mean word-embedding row norm; arms sharing a model share its m. ‖m‖ is 0 for models "
                      "without a learned m. The figure below draws ‖m‖ against training.", "", md_table(rows)]
        if self.questions.empty:
            asked = "; ".join(f"{q.question} (`{q.a}` vs `{q.b}`)" for q in QUESTIONS)
            parts += ["", f"No question answered: none had both of its arms in this suite ({asked})."]
            return "\n".join(parts)
        parts += ["", "Questions the ablation arms answer, each shown when both of its arms ran: A vs B paired on "
                  f"seed, Δ = A − B with its {1 - o.alpha:.0%} t interval; p-values "
                  f"{CORRECTION_NAMES[o.correction]}-corrected within each metric across the questions.", ""]
        for (question, *_), g in self.questions.groupby(["question", *SCOPE_KEYS], sort=False):
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
            for r in self.questions.to_dict("records")
        ]
        return "\n".join([*parts, "", md_table(rows)])
