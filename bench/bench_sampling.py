"""Sampling speed at the PEER-CPU configuration: sentences/s per sampler and the overhead per NFE.

Model: 4 layers, hidden 256, 4 heads, FFN 1024, embedding 128, seq_len 64, BERT vocabulary
(30522), T = 2000 sqrt schedule, untrained (timing does not depend on the weights). Sources are
the embedded synthetic test pairs. Every row runs :func:`diffuseq.sampling.generate.generate`
(embedding, sampler, rounding) on one batch after a warm-up.

DDPM over all 2000 steps is extrapolated from two respaced chains of k and 2k steps
(``--ddpm-probe`` k): a respaced step costs what a full-chain step costs (one forward, the
clamp, one posterior update), so per step = (wall(2k) - wall(k))/k and
wall(T) = wall(k) + (T - k)·per step (setup and the final rounding are counted once).

    python bench/bench_sampling.py                    # 2 threads, batch 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffuseq.config import DataSpec, DiffusionSpec, ModelSpec
from diffuseq.data import encode_pairs, load_split
from diffuseq.model import Denoiser
from diffuseq.sampling import SamplerSpec, nearest_ids, round_to_ids
from diffuseq.sampling.generate import generate
from diffuseq.tokenizer import TextTokenizer

PEER_CPU = ModelSpec(layers=4, hidden=256, heads=4, ffn=1024, embed_dim=128, dropout=0.0)
SEQ_LEN, T = 64, 2000


def median_seconds(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--ddpm-probe", type=int, default=20, help="k: DDPM chains of k and 2k steps are timed")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    tok = TextTokenizer.bert()
    enc = encode_pairs(tok, load_split(DataSpec(), "test")[: args.batch_size], SEQ_LEN)
    model = Denoiser(PEER_CPU, tok.vocab_size, SEQ_LEN, absorbing="learned").eval()
    diffusion = DiffusionSpec(steps=T, absorbing="learned", gamma=0.5)
    emb = model.word_emb.weight.detach()
    z = model.embed(enc.input_ids).detach()
    t = torch.full((z.shape[0],), T // 2)
    with torch.no_grad():
        fwd = median_seconds(lambda: model(z, t, T), repeats=20)
    search = median_seconds(lambda: nearest_ids(z[enc.input_mask.bool()], emb))
    rounding = median_seconds(lambda: round_to_ids(z, emb, "logits"))

    def run(spec: SamplerSpec) -> tuple[int, float]:
        out = generate(model, tok, diffusion, spec, enc.input_ids, enc.input_mask, 0, args.batch_size)
        return out.nfe, out.wall_s

    run(SamplerSpec(steps=2))  # warm-up
    k = args.ddpm_probe
    ddpm = [run(SamplerSpec(sampler="ddpm", steps=n, clamp=True, start="gaussian", discrete_noise="none"))[1]
            for n in (k, 2 * k)]
    rows = [("bare denoiser forward", 1, fwd),
            (f"ddpm-{T} + clamp (extrapolated)", T, ddpm[0] + (T - k) * (ddpm[1] - ddpm[0]) / k)]
    for name, spec in [("ddim-100", SamplerSpec(sampler="ddim", steps=100)),
                       *((f"dpm_solver++ {n}", SamplerSpec(sampler="dpm_solver++", steps=n)) for n in (5, 10, 20))]:
        rows.append((name, *run(spec)))

    print(f"PEER-CPU model ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), batch "
          f"{args.batch_size}, seq_len {SEQ_LEN}, vocab {tok.vocab_size}, {args.threads} threads, "
          f"torch {torch.__version__}")
    print(f"| {'sampler':<33} | {'NFE':>5} | {'wall s / batch':>14} | {'sentences/s':>11} | {'ms / NFE':>8} | "
          f"{'overhead / NFE':>14} |")
    print(f"|{'-' * 35}|{'-' * 7}|{'-' * 16}|{'-' * 13}|{'-' * 10}|{'-' * 16}|")
    for name, nfe, wall in rows:
        per = wall / nfe
        print(f"| {name:<33} | {nfe:>5} | {wall:>14.2f} | {args.batch_size / wall:>11.2f} | "
              f"{per * 1e3:>8.1f} | {(per - fwd) / fwd:>14.0%} |")
    n_target = int(enc.input_mask.sum())
    print(f"nearest-embedding search of the clamp ({n_target} target positions x {tok.vocab_size} words, "
          f"once per DDPM step): {search * 1e3:.0f} ms = {search / fwd:.2f} forwards")
    print(f"final rounding (argmax logits over all {z.shape[0] * z.shape[1]} positions, once per batch): "
          f"{rounding * 1e3:.0f} ms = {rounding / fwd:.2f} forwards")


if __name__ == "__main__":
    main()
