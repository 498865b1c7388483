"""The report's first lines: where a configuration fails to beat a trivial row, and missing evidence."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.configs import TRIVIAL_ARMS, is_trivial
from bench.report.fmt import md_table, signed, with_ci
from bench.report.sections import Page, Section
from bench.report.timing import NO_TIMING, device_note
from bench.report.trivial import FAILS, NO_TRIVIAL, UNCLEAR


def _notes(a: Analysis) -> list[str]:
    """Sentences on the cells' devices and the timing pass."""
    notes = []
    if (devices := sorted(set(a.model_cells["device"]))) and len(devices) > 1:
        notes.append(f"**Cells from {len(devices)} devices** ({', '.join(f'`{d}`' for d in devices)}): a comparison "
                     "paired on seed may set a model trained on one device against one trained on another, and "
                     "the device then counts with the arm; keep one device per results folder to rule that out.")
    if a.results.timing is None:
        notes.append(f"**No timing pass:** {NO_TIMING}")
    elif (note := device_note(a.results.timing)) is not None:
        notes.append(note)
    return notes


@dataclass(frozen=True)
class ReadFirst(Section):
    """Failures to beat a trivial row (a table of them), unclear BLEU margins, and notes on devices and timing."""

    margins: pd.DataFrame
    has_trivial: bool
    notes: list[str]

    @classmethod
    def compute(cls, a: Analysis) -> ReadFirst:
        return cls(a.margins, bool(is_trivial(a.cells).any()), _notes(a))

    def render(self, page: Page) -> str:
        name, margins = page.name, self.margins
        lines = []
        failing = margins[margins["outcome"] == FAILS]
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
        unclear = margins[(margins["outcome"] == UNCLEAR) & (margins["metric"] == "bleu")]
        for trivial, g in unclear.groupby("trivial", sort=False):
            listed = "; ".join(
                f"`{r['config']}`" + (f" ({r['dataset']})" if "dataset" in name.varying else "")
                + f" {with_ci(r['margin'], r['margin_low'], r['margin_high'], lambda x: signed(x, 4))}"
                for r in name.configs(g)
            )
            lines.append(f"Above `{trivial}` on BLEU on average, but with an interval that reaches it: {listed}.")
        if not self.has_trivial:
            lines.append(f"**No trivial rows:** {NO_TRIVIAL}")
        elif not len(failing):
            shown = ", ".join(f"`{t}`" for t in sorted(set(margins["trivial"]), key=TRIVIAL_ARMS.index))
            lines.append(f"No model configuration's mean falls at or below a trivial row ({shown}) on any quality "
                         "metric.")
        lines += self.notes
        return "\n".join(f"- {line}" for line in lines) + table
