"""Process-wide numeric settings for fast CPU math."""

from __future__ import annotations

import torch


def flush_denormals() -> None:
    """Treat subnormal floats as zero (FTZ/DAZ) in torch's math threads.

    The gradient of the rounding NLL's log-softmax over the vocabulary is mostly subnormal
    (probabilities of far-away words, ~1e-40), and x86 matmul kernels slow down about tenfold
    on subnormal inputs: at 2 layers, hidden 128, vocabulary 4000, batch 64 × 48 tokens, the
    two backward matmuls of the tied logits take 170 ms instead of 20 ms. Flushing changes
    only values below 1.2e-38 (float32).

    Call it before torch's first parallel operation: worker threads inherit the floating-point
    mode of the thread that creates them, so a later call reaches the calling thread only.
    """
    torch.set_flush_denormal(True)
