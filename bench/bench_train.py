"""Training throughput at PEER-CPU: the real loop's tokens/s and peak memory, and the bare
denoiser forward+backward at the same shapes (so the loop's overhead is visible).

PEER-CPU: BERT encoder 4 layers, hidden 256, 4 heads, FFN 1024; embedding 128; seq_len 64;
T = 2000 sqrt; loss-aware timesteps; v2 (learned m, γ = 0.5); fp32; batch 32; 2 threads.
Each configuration runs in its own process so peak RSS is its own.

    python bench/bench_train.py [--steps 40] [--dataset qqp --data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER_CPU = [
    "model.layers=4", "model.hidden=256", "model.heads=4", "model.ffn=1024", "model.embed_dim=128",
    "data.seq_len=64", "diffusion.steps=2000", "diffusion.schedule=sqrt", "diffusion.timestep_sampler=loss_aware",
    "optim.batch_size=32", "optim.bf16=false",
]


def _loop(dataset: str, tokenizer: str, steps: int) -> dict:
    """Child process: run the real training loop; report steady-state tokens/s and peak RSS."""
    import torch

    from diffuseq.config import LoopSpec, build_train_spec, parse_overrides
    from diffuseq.train import train

    torch.set_num_threads(2)
    over = [*PEER_CPU, f"data.dataset={dataset}", f"data.tokenizer={tokenizer}", "data.vocab_size=8000", f"optim.steps={steps}"]
    spec = build_train_spec("cpu", "v2", parse_overrides(over))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        train(spec, run, LoopSpec(log_every=10, eval_every=10**9, save_every=10**9), progress=False)
        rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        vocab = json.loads((run / "config.json").read_text())["vocab_size"]
    steady = [r["tokens_per_s"] for r in rows if r["split"] == "train"][1:]  # drop the warm-up window
    tps = sum(steady) / len(steady)
    return {"what": f"train loop, {tokenizer} vocab {vocab}", "tokens_per_s": tps,
            "s_per_step": 32 * 64 / tps, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _bare(vocab: int, steps: int) -> dict:
    """Child process: denoiser forward + MSE backward only, no embedding loss, no optimizer."""
    import torch

    from diffuseq.config import build_train_spec, parse_overrides
    from diffuseq.model import Denoiser

    torch.set_num_threads(2)
    spec = build_train_spec("cpu", "v2", parse_overrides(PEER_CPU))
    model = Denoiser(spec.model, vocab, 64, "learned")
    z, t = torch.randn(32, 64, 128), torch.randint(0, 2000, (32,))
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        ((model(z, t, 2000) - z) ** 2).mean().backward()
    dt = (time.perf_counter() - t0) / steps
    return {"what": "bare denoiser fwd+bwd", "tokens_per_s": 32 * 64 / dt, "s_per_step": dt,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--dataset", default="qqp" if os.environ.get("DIFFUSEQ_DATA_ROOT") else "default")
    p.add_argument("--data-root")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.data_root:
        os.environ["DIFFUSEQ_DATA_ROOT"] = args.data_root
    if args.child:
        kind, arg = args.child.split(":")
        out = _bare(int(arg), args.steps) if kind == "bare" else _loop(args.dataset, arg, args.steps)
        print(json.dumps(out))
        return
    print(f"PEER-CPU training benchmark on {args.dataset!r}, {args.steps} steps per config, 2 threads")
    print(f"{'configuration':42s} {'tokens/s':>9s} {'s/step':>7s} {'peak RSS GiB':>12s}")
    for child in ("bert:bert", "bert:wordpiece", "bare:30522"):
        cmd = [sys.executable, __file__, "--child", child, "--steps", str(args.steps), "--dataset", args.dataset]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        if res.returncode:
            sys.exit(res.stderr)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{r['what']:42s} {r['tokens_per_s']:9.0f} {r['s_per_step']:7.3f} {r['peak_rss_gib']:12.2f}")


if __name__ == "__main__":
    main()
