"""Reference DiffuSeq / DiffuSeq-v2: data, tokenizer, denoiser, diffusion, samplers, metrics."""

__version__ = "0.1.0"
