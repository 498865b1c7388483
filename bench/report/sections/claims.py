"""Paper claims at this scale: each claim's figure with its interval, test, corrected p and verdict,
at an equal recipe and as published."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.claims import (
    CLAIM_ARM,
    INCONCLUSIVE,
    NOT_RUN,
    NOT_TESTED,
    PAPER_GAMMA,
    PUBLISHED_ARM,
    PUBLISHED_BASELINE,
    REFUTED,
    judge_claims,
)
from bench.report.fmt import CORRECTION_NAMES, NA, Namer, md_table, pvalue
from bench.report.options import ReportOptions
from bench.report.sections import Page, Section
from bench.report.speedups import final_points


def _verdict(r: dict) -> str:
    text = f"**{r['verdict']}**"
    if r["verdict"] == INCONCLUSIVE:
        text += f" ({r['to_decide']})"
    elif r["verdict"] == REFUTED and pd.notna(r["p_opposite"]):
        text += f" (opposite test p {pvalue(r['p_opposite'])}, adj. {pvalue(r['p_opposite_adj'])})"
    return text


def _untested(records: list[dict], name: Namer) -> list[str]:
    """One line per reason a claim was not tested, naming the claims and the scopes it applies to,
    instead of a table row per claim and dataset that all say the same."""
    def scope(r: dict) -> str:
        return ", ".join(map(str, name.scope(r).values()))

    every = {scope(r) for r in records}
    groups: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for r in records:
        if r["verdict"] == NOT_TESTED:
            claims, scopes = groups.setdefault((r["reading"], r["evidence"]), ([], []))
            at = scope(r)
            claims += [r["claim"]] if r["claim"] not in claims else []
            scopes += [at] if at not in scopes else []
    lines = []
    for (reading, evidence), (claims, scopes) in groups.items():
        where = ("" if not name.varying else f", every {' / '.join(name.varying)}" if set(scopes) == every
                 else f", {'; '.join(scopes)}")
        lines.append(f"- {'; '.join(claims)} ({reading}{where}): {evidence.removeprefix(NOT_RUN)}")
    return lines


@dataclass(frozen=True)
class Claims(Section):
    """The claims table, how to read it, and each verdict's evidence."""

    table: pd.DataFrame  # one row per claim, reading and scope (``judge_claims``)
    options: ReportOptions

    @classmethod
    def compute(cls, a: Analysis) -> Claims:
        o = a.options
        table = judge_claims(cells=a.cells, speeds=a.speeds, convergence=a.convergence.readings,
                             finals=final_points(a.convergence.models), margins=a.margins,
                             timed=a.results.timing is not None, baseline=o.baseline,
                             margin_fraction=o.equivalence_margin, alpha=o.alpha, correction=o.correction)
        return cls(table, o)

    def render(self, page: Page) -> str:
        o, name = self.options, page.name
        records = self.table.to_dict("records")
        tested = [r for r in records if r["verdict"] != NOT_TESTED]
        rows = [
            {"claim": r["claim"], "reading": r["reading"]} | name.scope(r) | {
                "compared": r["compared"], "paper": r["paper"], f"this suite ({1 - o.alpha:.0%} CI)": r["figure"],
                "n": int(r["n"]) if pd.notna(r["n"]) and r["n"] else "—", "test": r["test"],
                "p (adj.)": NA if pd.isna(r["p"]) else f"{pvalue(r['p'])} ({pvalue(r['p_adj'])})",
                "verdict": _verdict(r), "BLEU margin over copy_source": r["copy_margin"],
            }
            for r in tested
        ]
        details = [
            f"- {r['claim']}, {r['reading']}" + (f", {r['dataset']}" if "dataset" in name.varying else "")
            + f": **{r['verdict']}.** {r['evidence']}"
            for r in tested
        ]
        untested = _untested(records, name)
        return "\n".join([
            "## Paper claims at this scale",
            "",
            md_table(rows) if rows else "No claim is tested by this suite.",
            "",
            f"Judged on `{CLAIM_ARM}`'s configuration fixed in advance (DPM-Solver++, γ nearest {PAPER_GAMMA:g}, most "
            "steps) against the reference (the baseline's DDPM with the most steps, its largest MBR). *equal recipe*: "
            f"`{o.baseline}` vs `{CLAIM_ARM}` under the same optimizer settings; *as published*: "
            f"`{PUBLISHED_BASELINE}` vs `{PUBLISHED_ARM}` (the published batch sizes, 8192 vs 850 sequences per step). "
            f"p: the claim's one-sided test; adj.: {CORRECTION_NAMES[o.correction]}-corrected across this table. "
            "**confirmed**: the claim's test rejects at "
            f"{o.alpha:g} after correction; **refuted**: the opposite test does; **inconclusive**: neither, with the "
            "seeds that would decide at the observed effect and spread (Methods). The BLEU margin over copy_source is "
            "each compared configuration's mean minus copy_source's (deterministic), with the configuration's t "
            "interval.",
            *(["", "**Not tested** (left out of the table: the suite did not run what the claim needs; every row is "
               "in claims.csv):", "", *untested] if untested else []),
            *(["", "Evidence:", "", *details] if details else []),
        ])
