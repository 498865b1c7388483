"""Decode parity on the committed official fixtures: the share of the official decoder's target
tokens that our decoders reproduce from the same noise, and which setting makes the difference.

    PYTHONPATH=. .venv/bin/python benchmarks/parity/decode_agreement.py [--out results/parity]

Each fixture of ``tests/fixtures/official`` (a checkpoint trained by the official code, and what
its decoder wrote) is imported and decoded, batch after batch, from the official decoder's own
random draws (diffuseq.official_replay), by the decoder that matches it and by variants that each
undo one of its settings. Writes ``decode_agreement.csv`` and ``decode_agreement.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import torch

from diffuseq.config import load_arm
from diffuseq.official import import_official
from diffuseq.official_replay import replay
from diffuseq.sampling.spec import build_sampler_spec

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "official"
CKPT = "ema_0.99_000300.pt"
V2_VARIANTS = [  # (our decoder: arm + sample overrides, what it changes against the official script)
    ("official_v2_exact", {}, "the official script's settings, each a SamplerSpec field"),
    ("official_v2_exact", {"time": "discrete"}, "integer table timesteps instead of its continuous grid"),
    ("official_v2_exact", {"model_time_offset": 0}, "the model fed the noise level's own step, not one table step later"),
    ("official_v2_exact", {"readout": "x0"}, "an x̂0 readout at the end instead of the solver state"),
    ("official_v2_exact", {"lower_order_final": True}, "lower-order final steps (the script lowers them only below 10 steps)"),
    ("official_v2_sampling", {}, "the script's modelling choices only (all four settings above undone)"),
    ("v2", {"mbr": 1}, "our v2 decoder (docs/design.md §9): start at m in shifted coordinates, train-matched discrete noise, no state overwrite"),
]
V1_VARIANTS = [
    ("baseline", {"mbr": 1}, "DDPM over all 2000 steps with the clamp, as the official script"),
    ("baseline", {"mbr": 1, "clamp": False}, "no clamp: x̂0 not rounded to the nearest embedding at each step"),
]
DECODERS = {"v1": ("sample_seq2seq.py --step 2000", V1_VARIANTS),
            "v2": ("sample_seq2seq_dpmSolver.py --step 10", V2_VARIANTS),
            "v2_plm": ("sample_seq2seq_dpmSolver.py --step 10", V2_VARIANTS)}
FIELDS = ["fixture", "official_decoder", "ours", "changes", "positions_agree", "positions", "rows_agree", "rows", "share"]


def agreement_rows(work: Path) -> list[dict]:
    """One row per fixture and decoder variant."""
    rows = []
    for fixture, (official, variants) in DECODERS.items():
        fx = FIXTURES / fixture
        run = work / fixture
        import_official(fx / CKPT, run, bert_cfg=fx / "bert_config.json", dataset=str(fx / "data"))
        for arm, over, what in variants:
            got = replay(run, fx, build_sampler_spec(load_arm(arm)["sample"] | over))
            ours = arm + "".join(f", {k}={v}" for k, v in over.items())
            rows.append({"fixture": fixture, "official_decoder": official, "ours": ours, "changes": what,
                         "positions_agree": got.positions_agree, "positions": got.positions,
                         "rows_agree": got.rows_agree, "rows": got.rows, "share": round(got.share, 4)})
            print(f"{fixture:7s} {ours:45s} {got.positions_agree}/{got.positions}", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| fixture | official decoder | ours | what it changes | target tokens agreeing | whole targets |",
             "| --- | --- | --- | --- | ---: | ---: |"]
    lines += [f"| `{r['fixture']}` | `{r['official_decoder']}` | `{r['ours']}` | {r['changes']} | "
              f"{r['positions_agree']}/{r['positions']} ({100 * r['share']:.1f}%) | {r['rows_agree']}/{r['rows']} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/parity"), help="folder for the CSV and Markdown table")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        rows = agreement_rows(Path(work))
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "decode_agreement.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "decode_agreement.md").write_text(markdown(rows))
    print(f"written: {args.out / 'decode_agreement.csv'}, {args.out / 'decode_agreement.md'}")


if __name__ == "__main__":
    main()
