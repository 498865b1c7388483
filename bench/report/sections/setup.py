"""Setup: the suite, preset, datasets, seeds, devices and code version, the reference of every
comparison, and a legend of the arms."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.configs import CONFIG_KEYS, config_labels, is_trivial
from bench.report.fmt import NA, distinct, md_table, seeds
from bench.report.load import Results
from bench.report.sections import Page, Section
from bench.schema import IMPORTED_KEY_PREFIX


def _arms_legend(cells: pd.DataFrame) -> str:
    arms = cells.drop_duplicates("arm").sort_values(["kind", "arm"])[["arm", "arm_label", "kind"]]
    rows = [
        {"arm": f"`{r['arm']}`", "label": r["arm_label"], "kind": r["kind"],
         "configurations": ", ".join(dict.fromkeys(config_labels(
             cells.loc[cells["arm"] == r["arm"], CONFIG_KEYS].drop_duplicates())))}
        for r in arms.to_dict("records")
    ]
    return md_table(rows)


@dataclass(frozen=True)
class Setup(Section):
    """What ran, where, and what every comparison is against."""

    results: Results
    cells: pd.DataFrame
    references: pd.DataFrame
    no_reference: str | None

    @classmethod
    def compute(cls, a: Analysis) -> Setup:
        return cls(a.results, a.cells, a.references, a.no_reference)

    def render(self, page: Page) -> str:
        cells, results = self.cells, self.results
        models = cells[~is_trivial(cells)]
        imported = models["train_key"].str.startswith(IMPORTED_KEY_PREFIX)  # decoded, not trained here
        trained = models[~imported]
        seed_list = sorted(models["seed"].unique())
        facts = {
            "Suite": distinct(cells["suite"]),
            "Scale preset": distinct(cells["preset"]),
            "Datasets": distinct(cells["dataset"]),
            "Seeds": f"{', '.join(map(str, seed_list))} ({seeds(len(seed_list))}); trivial rows are deterministic "
                     "(seed 0)",
            "Sampling batch size": distinct(models["batch_size"]),
            "Training steps": distinct(trained["train_steps"].dropna().astype(int)) if "train_steps" in models else NA,
            "Training examples seen": distinct(trained["train_examples"].dropna().astype(int))
            if "train_examples" in models else NA,
            "Device (cells)": distinct(models["device"]),
            "Device (timing pass)": distinct(results.timing["device"]) if results.timing is not None else
            "no timing pass",
            "Code version": distinct(cells["code_version"]),
            "BERTScore model": distinct(cells["bertscore_model"]),
            "Results": f"`{results.directory}` ({len(cells)} cells, {len(results.table)} table rows)",
        }
        if imported.any():
            runs = models[imported].drop_duplicates("arm").sort_values("arm")
            facts["Imported runs (decoded, not trained here)"] = "; ".join(
                f"`{r.arm}`: {int(r.train_steps)} steps" for r in runs.itertuples())
        if self.no_reference is not None:
            facts["Reference"] = self.no_reference
        else:
            refs = self.references.assign(label=config_labels(self.references))
            facts["Reference for all comparisons"] = "; ".join(f"{r.dataset}: {r.label}" for r in refs.itertuples())
        return "\n".join([
            "## Setup", "", *(f"- **{k}:** {v}" for k, v in facts.items()), "",
            "Arms (label from the arm file; trivial arms need no model):", "", _arms_legend(cells),
        ])
