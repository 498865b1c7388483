"""The report's first lines: where the models stand against copying the source, the scale every
verdict holds at, where a configuration fails to beat a trivial row, and missing evidence."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.configs import COPY_SOURCE, SCOPE_KEYS, TRIVIAL_ARMS, is_trivial
from bench.report.fmt import Namer, distinct, md_table, signed, with_ci
from bench.report.sections import Page, Section
from bench.report.timing import NO_TIMING, device_note
from bench.report.trivial import FAILS, NO_TRIVIAL, UNCLEAR
from diffuseq.config import DEFAULT_FAMILY
from diffuseq.family import family_of


def _scale(cells: pd.DataFrame) -> str:
    """The sentence naming the scale every verdict holds at: preset and training length."""
    models = cells[~is_trivial(cells)]
    length = ""
    if "train_steps" in models and models["train_steps"].notna().any():
        length = f"; {distinct(models['train_steps'].dropna().astype(int))} training steps"
        if "train_examples" in models and models["train_examples"].notna().any():
            length += f", {distinct(models['train_examples'].dropna().astype(int))} examples seen,"
        length += " per model"
    return (f"**Every verdict below is about this suite's scale** (the `{distinct(cells['preset'])}` preset as the "
            f"suite sets it up{length}) and says nothing on its own about larger models or longer training.")


def _against_copying(margins: pd.DataFrame, name: Namer) -> list[str]:
    """Per scope (suite, preset, dataset): copy_source's BLEU, the best model configuration's and
    the best DiffuSeq-family one's."""
    rows = margins[(margins["trivial"] == COPY_SOURCE) & (margins["metric"] == "bleu")]
    lines = []
    for (*_, dataset), g in rows.groupby(SCOPE_KEYS, sort=True):
        best = g["mean"].idxmax()
        own = g[[family_of(s) == DEFAULT_FAMILY for s in g["sampler"]]]
        shown = [best] + ([own["mean"].idxmax()] if len(own) and best not in own.index else [])
        parts = [f"`{r['config']}` {r['mean']:.4f} ({signed(r['margin'], 4)})" for r in name.configs(g.loc[shown])]
        what = ("the best model configuration, then the best of the continuous (DiffuSeq) family"
                if len(shown) > 1 else "the best model configuration")
        lines.append(f"**Against copying the source** on `{dataset}` (`copy_source` BLEU "
                     f"{g['trivial_value'].iloc[0]:.4f}), {what}: {'; '.join(parts)}.")
    return lines


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
    """The best BLEU against copying the source and the scale, failures to beat a trivial row (a
    table of them), unclear BLEU margins, and notes on devices and timing."""

    margins: pd.DataFrame
    has_trivial: bool
    scale: str
    notes: list[str]

    @classmethod
    def compute(cls, a: Analysis) -> ReadFirst:
        return cls(a.margins, bool(is_trivial(a.cells).any()), _scale(a.cells), _notes(a))

    def render(self, page: Page) -> str:
        name, margins = page.name, self.margins
        lines = [*_against_copying(margins, name), self.scale]
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
