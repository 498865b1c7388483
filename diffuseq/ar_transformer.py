"""The autoregressive baseline: an encoder-decoder Transformer (BART) from a ``transformers`` config.

Random initialisation, no pretrained weights; the project's tokenizer ids: [PAD] is padding,
[CLS] the decoder's start (and bos) token, [SEP] its end (eos) token. On the z layout of
:mod:`diffuseq.data`,

    z = [CLS] x [SEP] [SEP] | [CLS] y [SEP] [PAD] …     (mask 0 | mask 1)

the encoder reads the source part [CLS] x [SEP] [SEP]; the target slot [CLS] y [SEP] [PAD] … is
the decoder's sequence: input [CLS] y, labels y [SEP]. The loss is the token cross-entropy, per
example the mean over its label tokens (nats). Decoding runs the library's ``generate``:
``greedy``, or ``beam`` with the sampler spec's ``steps`` as the beam width (HF's default length
penalty 1, stopping as soon as that many hypotheses have ended), for at most one token fewer
than the batch's longest slot; its output [CLS] ŷ [SEP] [PAD] … is laid back into each row's
slot, cut or padded with [PAD] to the slot's length, so the rest of the pipeline (ids → text) is
unchanged.

NFE is the number of decoder steps the batch is given: its longest target slot minus one (the
decoder's start token is given). ``generate`` stops earlier once every row has produced [SEP],
so this bounds the decoder calls actually made (:func:`generate_targets` counts them); the
harness keys its tables by NFE, which must not depend on what a seed's model generated. The
timed decoding does stop early, so speed figures are the real cost.

Size: width, heads and dropout are the preset's ``ModelSpec``; its layers are split between
encoder (⌈layers/2⌉) and decoder (max(1, ⌊layers/2⌋)); the FFN width is then solved, in steps of 8,
so that the parameter count matches the preset's Denoiser (:func:`matched_ffn`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

from diffuseq.config import TrainSpec
from diffuseq.family import DecodeOptions, Family
from diffuseq.model import Denoiser
from diffuseq.tokenizer import TextTokenizer

FFN_STEP = 8  # granularity of the solved FFN width


def ar_config(spec: TrainSpec, vocab_size: int, ffn: int, *, pad_id: int, start_id: int, eos_id: int) -> BartConfig:
    """A BART config with the preset's width and heads, its layers split encoder/decoder, FFN
    width ``ffn``, and no generation defaults beyond the token ids."""
    m = spec.model
    return BartConfig(
        vocab_size=vocab_size, d_model=m.hidden, max_position_embeddings=spec.data.seq_len,
        encoder_layers=-(-m.layers // 2), decoder_layers=max(1, m.layers // 2),
        encoder_attention_heads=m.heads, decoder_attention_heads=m.heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        dropout=m.dropout, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=pad_id, bos_token_id=start_id, eos_token_id=eos_id, decoder_start_token_id=start_id,
        forced_bos_token_id=None, forced_eos_token_id=None,
    )


def count_params(make: type[nn.Module], *args: object) -> int:
    """Parameters of ``make(*args)``, built on the meta device (no memory, no init cost); tied
    tensors count once."""
    with torch.device("meta"):
        return sum(p.numel() for p in make(*args).parameters())


def denoiser_params(spec: TrainSpec, vocab_size: int) -> int:
    """Parameters of the preset's Denoiser (no learned absorbing vector: it adds d ≤ 128)."""
    return count_params(Denoiser, spec.model, vocab_size, spec.data.seq_len)


def matched_ffn(spec: TrainSpec, vocab_size: int) -> int:
    """The FFN width (a multiple of 8, at least 8) whose BART has the Denoiser's parameter count;
    the count is linear in the width, so two meta-device builds solve it."""
    def count(ffn: int) -> int:
        cfg = ar_config(spec, vocab_size, ffn, pad_id=0, start_id=1, eos_id=2)
        return count_params(BartForConditionalGeneration, cfg)

    base, per_step = count(FFN_STEP), count(2 * FFN_STEP) - count(FFN_STEP)
    steps = round((denoiser_params(spec, vocab_size) - base) / per_step)
    return FFN_STEP * max(1, 1 + steps)


class Seq2SeqLM(nn.Module):
    """``BartForConditionalGeneration`` whose state dict holds each tied tensor once.

    BART ties the shared embedding, the encoder's and decoder's token embeddings and the output
    head; its own state dict lists all four. Checkpoints (safetensors refuses aliases) and the
    loop's EMA (one copy per key) need each tensor once, under the name ``named_parameters``
    gives it; loading fills the aliases back in.
    """

    def __init__(self, config: BartConfig):
        super().__init__()
        self.net = BartForConditionalGeneration(config)
        self.net.generation_config = GenerationConfig(
            pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id, decoder_start_token_id=config.decoder_start_token_id)
        first: dict[int, str] = {}  # parameter → the name named_parameters() gives it
        self.aliases: dict[str, str] = {}  # every other name of a tied parameter → that name
        for name, p in self.named_parameters(remove_duplicate=False):
            if first.setdefault(id(p), name) != name:
                self.aliases[name] = first[id(p)]
        self.register_state_dict_post_hook(_drop_aliases)
        self.register_load_state_dict_pre_hook(_fill_aliases)

    @property
    def config(self) -> BartConfig:
        return self.net.config


def _drop_aliases(module: Seq2SeqLM, state: dict[str, Tensor], prefix: str, _meta: object) -> None:
    for alias in module.aliases:
        del state[prefix + alias]


def _fill_aliases(module: Seq2SeqLM, state: dict[str, Tensor], prefix: str, *_: object) -> None:
    for alias, name in module.aliases.items():
        if prefix + name in state:
            state[prefix + alias] = state[prefix + name]


def source_part(ids: Tensor, mask: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """The encoder's input: ids, mask (B, L) → source ids (B, S) padded with ``pad_id`` and their
    attention mask (B, S), S the longest source of the batch (the source is each row's prefix)."""
    src_len = (mask == 0).sum(1)
    attn = torch.arange(int(src_len.max()), device=ids.device)[None] < src_len[:, None]
    return torch.where(attn, ids[:, : attn.shape[1]], pad_id), attn.long()


def target_slots(ids: Tensor, mask: Tensor, pad_id: int) -> Tensor:
    """Each row's target part (mask 1, a suffix of the row) left-aligned: (B, T) padded with
    ``pad_id``, T the longest slot of the batch."""
    length = mask.sum(1)
    valid = torch.arange(int(length.max()), device=ids.device)[None] < length[:, None]
    slots = torch.full(valid.shape, pad_id, dtype=ids.dtype, device=ids.device)
    slots[valid] = ids[mask.bool()]  # both in row-major order, row by row
    return slots


def place_targets(ids: Tensor, mask: Tensor, tokens: Tensor, pad_id: int) -> Tensor:
    """ids (B, L) with each row's target part replaced by ``tokens`` (B, n), cut or padded with
    ``pad_id`` to the slot's length; the source is copied."""
    length = mask.sum(1)
    width = int(length.max())
    tokens = F.pad(tokens[:, :width], (0, max(0, width - tokens.shape[1])), value=pad_id)
    valid = torch.arange(width, device=ids.device)[None] < length[:, None]
    out = ids.clone()
    out[mask.bool()] = tokens[valid]
    return out


def token_losses(model: Seq2SeqLM, ids: Tensor, mask: Tensor) -> Tensor:
    """Teacher-forced cross-entropy per example, the mean over its label tokens y [SEP]: (B,)."""
    pad = model.config.pad_token_id
    src, attn = source_part(ids, mask, pad)
    slots = target_slots(ids, mask, pad)
    labels = slots[:, 1:]
    logits = model.net(input_ids=src, attention_mask=attn, decoder_input_ids=slots[:, :-1]).logits
    ce = F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none")
    keep = labels != pad
    return (ce * keep).sum(1) / keep.sum(1)


class _CallCounter:
    """A forward pre-hook counting the calls of the module it is registered on."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *_: object) -> None:
        self.calls += 1


def decoder_budget(mask: Tensor) -> int:
    """The decoder steps a batch is given: its longest target slot minus the start token."""
    return int(mask.sum(1).max()) - 1


@torch.no_grad()
def generate_targets(model: Seq2SeqLM, ids: Tensor, mask: Tensor, num_beams: int) -> tuple[Tensor, int]:
    """``generate`` (greedy when ``num_beams`` = 1): ids, mask (B, L) → ids (B, L) with the
    generated slots, and the decoder calls made (at most the budget)."""
    pad = model.config.pad_token_id
    src, attn = source_part(ids, mask, pad)
    counter = _CallCounter()
    hook = model.net.get_decoder().register_forward_pre_hook(counter)
    try:
        beam = {"num_beams": num_beams, "early_stopping": True} if num_beams > 1 else {}
        out = model.net.generate(input_ids=src, attention_mask=attn, do_sample=False, max_new_tokens=decoder_budget(mask),
                                 **beam)
    finally:
        hook.remove()
    return place_targets(ids, mask, out, pad), counter.calls


class ARTransformerFamily(Family):
    """BART at the preset's size, trained with target-token CE, decoded with ``generate``."""

    name = "ar_transformer"
    samplers = ("greedy", "beam")

    def build(self, tok: TextTokenizer) -> Seq2SeqLM:
        V = tok.vocab_size
        cfg = ar_config(self.spec, V, matched_ffn(self.spec, V), pad_id=tok.pad_id, start_id=tok.cls_id, eos_id=tok.sep_id)
        return Seq2SeqLM(cfg)

    def losses(self, model: Seq2SeqLM, ids: Tensor, mask: Tensor, t: Tensor) -> dict[str, Tensor]:
        """``loss``: the per-example token CE; the loop's t is ignored."""
        return {"loss": token_losses(model, ids, mask)}

    def decode(self, model: Seq2SeqLM, ids: Tensor, mask: Tensor, options: DecodeOptions,
               generator: torch.Generator) -> tuple[Tensor, int]:
        """``greedy`` or ``beam`` (beam width ``options.steps``); deterministic, ``generator``
        unused. NFE: the batch's decoder-step budget (module docstring)."""
        self.check_sampler(options.sampler)
        out, _calls = generate_targets(model, ids, mask, 1 if options.sampler == "greedy" else options.steps)
        return out, decoder_budget(mask)

    def forward(self, model: Seq2SeqLM, ids: Tensor, mask: Tensor) -> None:
        """The encoder on the sources and one decoder step (the start token)."""
        src, attn = source_part(ids, mask, model.config.pad_token_id)
        start = torch.full((len(ids), 1), model.config.decoder_start_token_id, device=ids.device)
        model.net(input_ids=src, attention_mask=attn, decoder_input_ids=start)
