"""``diffuseq import-official``: a checkpoint of the official DiffuSeq code as a run directory.

Examples::

    diffuseq import-official diffusion_models/RUN/ema_0.9999_050000.pt --out runs/official-qqp
    diffuseq import-official RUN/ema_0.99_000300.pt --args RUN/training_args.json \\
        --bert-config bert-config/config.json --vocab RUN/vocab.json --dataset data/qqp --out runs/x
    diffuseq sample --run-dir runs/x --arm official_v2_exact     # as the official v2 script decodes
    diffuseq sample --run-dir runs/x --arm baseline --set mbr=1  # as the official v1 script decodes

The official code (Shark-NLP/DiffuSeq: branch ``main`` is DiffuSeq, ``diffuseq-v2`` is v2) saves
``ema_<rate>_<step>.pt``, a torch state dict of its ``TransformerNetModel``, and beside it
``training_args.json`` (its flags) and, for a ``--vocab FILE`` run, ``vocab.json``. This command
maps every tensor into :class:`~diffuseq.model.Denoiser` (docs/design.md §11 has the table), the
flags into a :class:`~diffuseq.config.TrainSpec`, the vocabulary into ``tokenizer.json``, and
writes a run directory that ``diffuseq sample`` (and ``diffuseq.rundir.load_model``, which the
harness's worker and timing pass use) reads like one of ours.

Two facts of the official checkpoints it follows:

- ``word_embedding.weight`` and ``lm_head.weight`` are one tied tensor in the model, but the EMA
  file holds the EMA value under the first key and the live (non-EMA) weights under the second;
  ``load_state_dict`` copies the second last, so the official decoders embed and round with the
  live table. The import does the same (``lm_head.weight`` → ``word_emb.weight``) and records
  how far the EMA table was from it.
- the flag ``--reg_rate`` is not passed to the diffusion, which applies its default 0.01; the
  spec records 0.01 (it matters only to a run that continues training).

Options the Denoiser cannot represent are a one-line error naming the option (exit code 2).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors.torch import save_file

from diffuseq.checkpoint import EMA, MODEL, STATE, verify_checkpoint
from diffuseq.config import TrainSpec, format_validation_error
from diffuseq.errors import UserError
from diffuseq.family import ContinuousFamily
from diffuseq.io import write_atomic
from diffuseq.timesteps import make_timesteps
from diffuseq.tokenizer import TextTokenizer
from diffuseq.version import code_version

log = logging.getLogger(__name__)

# Official tensor → ours, outside the BERT layers (docs/design.md §11).
TOP_LEVEL = {
    "lm_head.weight": "word_emb.weight",  # the tied E as the official decoders load it (module docstring)
    "lm_head.bias": "lm_bias",
    "mean_embed": "m",
    "time_embed.0.weight": "time_mlp.0.weight", "time_embed.0.bias": "time_mlp.0.bias",
    "time_embed.2.weight": "time_mlp.2.weight", "time_embed.2.bias": "time_mlp.2.bias",
    "input_up_proj.0.weight": "in_proj.0.weight", "input_up_proj.0.bias": "in_proj.0.bias",
    "input_up_proj.2.weight": "in_proj.2.weight", "input_up_proj.2.bias": "in_proj.2.bias",
    "position_embeddings.weight": "pos_emb.weight",  # the first seq_len rows
    "LayerNorm.weight": "ln.weight", "LayerNorm.bias": "ln.bias",
    "output_down_proj.0.weight": "out_proj.0.weight", "output_down_proj.0.bias": "out_proj.0.bias",
    "output_down_proj.2.weight": "out_proj.2.weight", "output_down_proj.2.bias": "out_proj.2.bias",
}
# Read and checked, not copied: the EMA embedding table, and the position-id buffer (0..max-1).
CHECKED = ("word_embedding.weight", "position_ids")
# input_transformers.layer.N.<official> → layers.N.<ours>; query/key/value are fused into qkv.
LAYER = {
    "attention.output.dense": "attn_out", "attention.output.LayerNorm": "ln1",
    "intermediate.dense": "ff.0", "output.dense": "ff.2", "output.LayerNorm": "ln2",
}
QKV = ("query", "key", "value")
LAYER_KEY = re.compile(r"input_transformers\.layer\.(\d+)\.(.+)\.(weight|bias)")
REQUIRED_FLAGS = ("seq_len", "hidden_dim", "hidden_t_dim", "diffusion_steps", "learning_steps", "batch_size", "lr")
SCHEDULES = ("sqrt", "cosine", "linear")  # the official names diffuseq implements with the same formulas
BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
             "max_position_embeddings": 512, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
BERT_SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
KNOWN_CONFIGS = {"bert-base-uncased": BERT_BASE, "google-bert/bert-base-uncased": BERT_BASE}
OFFICIAL_SPECIALS = {"[START]": "[CLS]", "[END]": "[SEP]", "[UNK]": "[UNK]", "[PAD]": "[PAD]"}


class OfficialImportError(UserError):
    """An official checkpoint, its flags or vocabulary that cannot be imported; the message names
    the file and the option."""


# ---------------------------------------------------------------------------------------------
# Reading the official files
def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or malformed file is an error naming ``what`` it should be."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OfficialImportError(f"{path}: not found; give the official run's {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OfficialImportError(f"{path}: not readable as JSON ({err}); give the official run's {what}") from None
    if not isinstance(doc, dict):
        raise OfficialImportError(f"{path}: expected a JSON object; give the official run's {what}")
    return doc


def load_official_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in an official ``.pt`` file, on the CPU, detached."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise OfficialImportError(f"{path}: not found; give an official ema_*.pt or model*.pt file") from None
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise OfficialImportError(f"{path}: not a torch checkpoint ({type(err).__name__}); give an official ema_*.pt file") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise OfficialImportError(f"{path}: not a state dict of tensors; give an official ema_*.pt file")
    return {k: v.detach() for k, v in sd.items()}


def bert_config(args: dict[str, Any], explicit: Path | None) -> tuple[dict[str, Any], str]:
    """The BERT config the official run built its encoder from, and where it came from:
    ``--bert-config`` (a config.json or its folder), else ``config_name`` when it is a local folder
    or a known hub name."""
    name = str(args.get("config_name", ""))
    path = explicit or Path(name)
    if path.is_dir():
        path = path / "config.json"
    if explicit is None and not path.is_file():
        if name in KNOWN_CONFIGS:
            return KNOWN_CONFIGS[name], name
        raise OfficialImportError(f"config_name {name!r}: no such folder here and not a known config; "
                                  "pass --bert-config with the config.json the official run used")
    cfg = read_json(path, "BERT config.json (--bert-config)")
    if missing := [k for k in BERT_SIZES if not isinstance(cfg.get(k), int)]:
        raise OfficialImportError(f"{path}: no integer {', '.join(missing)}; give the BERT config.json the official run used")
    return cfg, str(path)


def official_vocab(args: dict[str, Any], ckpt: Path, explicit: Path | None) -> tuple[TextTokenizer, str, str]:
    """(tokenizer, DataSpec.tokenizer, source) for the official vocabulary.

    ``--vocab bert`` runs: ``--vocab`` (a tokenizer.json or an uncased vocab.txt), else the
    ``config_name`` folder's, else the bundled BERT uncased vocabulary. ``--vocab FILE`` runs: the
    ``vocab.json`` the official code saved beside the checkpoint, ``--vocab`` (that json or the
    word list) or the recorded path; ``[START]``/``[END]`` are named ``[CLS]``/``[SEP]`` here.
    """
    if str(args.get("vocab", "bert")) == "bert":
        folder = Path(str(args.get("config_name", "")))
        for path in [explicit] if explicit else [folder / "tokenizer.json", folder / "vocab.txt"]:
            if path.is_file():
                return _bert_vocab(path), "imported", str(path)
        if explicit:
            raise OfficialImportError(f"{explicit}: --vocab not found; give a tokenizer.json or vocab.txt")
        return TextTokenizer.bert(), "bert", "bundled BERT uncased"
    for path in [explicit] if explicit else [ckpt.parent / "vocab.json", Path(str(args["vocab"]))]:
        if path.is_file():
            return TextTokenizer.from_word_vocab(_renamed(_word_vocab(path), path)), "imported", str(path)
    raise OfficialImportError(f"vocab {args['vocab']!r}: no vocab.json beside the checkpoint and no such file here; "
                              "pass --vocab with the official run's vocab.json or vocabulary file")


def _bert_vocab(path: Path) -> TextTokenizer:
    """A BERT tokenizer from a ``tokenizer.json``, or an uncased WordPiece over a ``vocab.txt`` (line i is id i)."""
    if path.suffix == ".json":
        return TextTokenizer.load(path)
    with path.open(encoding="utf-8") as f:  # lines as BERT's loader reads them (not str.splitlines, which splits at U+2028)
        return TextTokenizer.from_wordpiece_vocab({line.rstrip("\n"): i for i, line in enumerate(f)})


def _word_vocab(path: Path) -> dict[str, int]:
    """token → id of an official word vocabulary: its saved ``vocab.json``, or a vocabulary file
    read as the official loader does (the 4 specials, then each line's first word)."""
    if path.suffix == ".json":
        return {str(k): int(v) for k, v in read_json(path, "vocab.json").items()}
    vocab = {s: i for i, s in enumerate(OFFICIAL_SPECIALS)}
    with path.open(encoding="utf-8") as f:
        for row in f:
            vocab[row.strip().split(" ")[0]] = len(vocab)
    return vocab


def _renamed(vocab: dict[str, int], path: Path) -> dict[str, int]:
    """The official specials under diffuseq's names; ids must be 0..V-1, each once."""
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise OfficialImportError(f"{path}: token ids are not 0..{len(vocab) - 1}, each once (a repeated or special "
                                  "word in the vocabulary file?); give the vocab.json the official run saved")
    if clash := sorted(set(vocab) & {"[CLS]", "[SEP]", "[MASK]"}):
        raise OfficialImportError(f"{path}: holds {clash} as words, names diffuseq keeps for specials; rename them")
    missing = sorted(set(OFFICIAL_SPECIALS) - set(vocab))
    if missing:
        raise OfficialImportError(f"{path}: lacks the official specials {missing}; give the vocab.json the official run saved")
    return {OFFICIAL_SPECIALS.get(k, k): v for k, v in vocab.items()}


# ---------------------------------------------------------------------------------------------
# Flags → TrainSpec
def unsupported(args: dict[str, Any], cfg: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(option, value, why and what to do) for every official option the import cannot represent."""
    plm = args.get("use_plm_init", "no") == "bert"
    same_width = int(args.get("hidden_dim", 128)) == int(cfg.get("hidden_size", -1))
    checks = [
        ("noise_schedule", args.get("noise_schedule", "sqrt") not in SCHEDULES,
         f"diffuseq implements the schedules {', '.join(SCHEDULES)}"),
        ("timestep_respacing", bool(args.get("timestep_respacing", "")),
         "a respaced model is fed remapped timesteps; import a run trained without respacing"),
        ("learn_sigma", bool(args.get("learn_sigma", False)),
         "its model outputs learned variances (2·hidden_dim channels), which the Denoiser does not have"),
        ("predict_xstart", not args.get("predict_xstart", True), "the Denoiser predicts x0 (predict_xstart True)"),
        ("rescale_timesteps", not args.get("rescale_timesteps", True), "the Denoiser is fed t·1000/T (rescale_timesteps True)"),
        ("use_kl", bool(args.get("use_kl", False)), "diffuseq trains with DiffuSeq's MSE objective, not the KL bound"),
        ("use_plm_init", args.get("use_plm_init", "no") not in ("no", "bert"),
         "the official model initialises from a PLM with 'bert' only"),
        ("denoise", bool(args.get("denoise", False)) and not args.get("learned_mean_embed", False),
         "discrete noise replaces tokens by mean_embed, which exists only with learned_mean_embed True"),
        ("schedule_sampler", args.get("schedule_sampler", "uniform") not in ("uniform", "lossaware"),
         "diffuseq samples training timesteps uniformly or loss-aware"),
        ("hidden_dim", plm and not same_width,
         "--use_plm_init bert embeds tokens with the BERT word embeddings, so hidden_dim must equal its hidden size"),
        ("hidden_dim", same_width and not plm,
         "with hidden_dim equal to the BERT hidden size the official model has no input/output projections, "
         "which the Denoiser has unless PLM-initialised (--use_plm_init bert, model.init plm)"),
        ("hidden_act", cfg.get("hidden_act", "gelu") != "gelu", "the Denoiser's BERT layers use the exact (erf) GELU"),
        ("layer_norm_eps", cfg.get("layer_norm_eps", 1e-12) != 1e-12, "the Denoiser's LayerNorms use eps 1e-12"),
        ("position_embedding_type", cfg.get("position_embedding_type", "absolute") != "absolute",
         "the Denoiser has absolute position embeddings"),
        ("seq_len", int(args.get("seq_len", 128)) > int(cfg.get("max_position_embeddings", 512)),
         "seq_len exceeds the BERT config's max_position_embeddings"),
    ]
    return [(key, args.get(key, cfg.get(key)), why) for key, bad, why in checks if bad]


def train_spec(args: dict[str, Any], cfg: dict[str, Any], rate: float, vocab_size: int, tokenizer: str,
               dataset: str, source: str) -> TrainSpec:
    """The :class:`TrainSpec` of an official run (the mapping table of docs/design.md §11)."""
    if missing := [k for k in REQUIRED_FLAGS if k not in args]:
        raise OfficialImportError(f"{source}: no flag {', '.join(missing)}; give the training_args.json the official run saved")
    if problems := unsupported(args, cfg):
        key, value, why = problems[0]
        raise OfficialImportError(f"{source}: {key} = {value!r} is not supported: {why}")
    learned = bool(args.get("learned_mean_embed", False))
    clip, micro = float(args.get("gradient_clipping", -1.0)), int(args.get("microbatch") or 0)
    raw = {
        "data": {"dataset": dataset, "tokenizer": tokenizer, "vocab_size": vocab_size, "seq_len": args["seq_len"]},
        "model": {"layers": cfg["num_hidden_layers"], "hidden": cfg["hidden_size"], "heads": cfg["num_attention_heads"],
                  "ffn": cfg["intermediate_size"], "embed_dim": args["hidden_dim"], "time_embed_dim": args["hidden_t_dim"],
                  "dropout": args.get("dropout", 0.1),
                  "init": "plm" if args.get("use_plm_init", "no") == "bert" else "random"},
        "diffusion": {"steps": args["diffusion_steps"], "schedule": args.get("noise_schedule", "sqrt"),
                      "absorbing": "learned" if learned else "none",
                      "gamma": float(args.get("denoise_rate", 0.2)) if args.get("denoise", False) else 0.0,
                      "reg_rate": 0.01,  # the diffusion's default: the flag is not passed on (module docstring)
                      "timestep_sampler": "loss_aware" if args.get("schedule_sampler") == "lossaware" else "uniform"},
        "optim": {"steps": args["learning_steps"], "batch_size": args["batch_size"],
                  "microbatch": micro if micro > 0 else None, "lr": args["lr"],
                  "weight_decay": args.get("weight_decay", 0.0), "grad_clip": max(clip, 0.0), "ema_rate": rate,
                  "seed": args.get("seed", 0)},
    }
    try:
        return TrainSpec.model_validate(raw)
    except ValidationError as err:
        raise OfficialImportError(format_validation_error(err, source).splitlines()[0]) from None


# ---------------------------------------------------------------------------------------------
# Tensors
def map_state_dict(sd: dict[str, torch.Tensor], seq_len: int, source: str) -> dict[str, torch.Tensor]:
    """Official state dict → the Denoiser's (every official key used, see the tables above);
    a key the import does not know is an error naming it."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key in TOP_LEVEL:
            out[TOP_LEVEL[key]] = value[:seq_len] if key == "position_embeddings.weight" else value
        elif key in CHECKED:
            continue
        elif (m := LAYER_KEY.fullmatch(key)) and m[2] in LAYER:
            out[f"layers.{m[1]}.{LAYER[m[2]]}.{m[3]}"] = value
        elif m and m[2].startswith("attention.self.") and m[2].removeprefix("attention.self.") in QKV:
            qkv.setdefault((int(m[1]), m[3]), {})[m[2].removeprefix("attention.self.")] = value
        else:
            raise OfficialImportError(f"{source}: tensor {key!r} has no counterpart in diffuseq's Denoiser; "
                                      "it was not saved by a supported official TransformerNetModel")
    for (layer, kind), parts in sorted(qkv.items()):
        if len(parts) != 3:
            raise OfficialImportError(f"{source}: layer {layer} lacks attention.self {sorted(set(QKV) - set(parts))} {kind}")
        out[f"layers.{layer}.qkv.{kind}"] = torch.cat([parts[p] for p in QKV])
    ids = sd.get("position_ids")
    if ids is not None and not torch.equal(ids.flatten(), torch.arange(ids.numel())):
        raise OfficialImportError(f"{source}: position_ids is not 0..{ids.numel() - 1}; the model would read "
                                  "other position rows than the Denoiser")
    return {k: v.contiguous().float() for k, v in out.items()}


def checkpoint_step(ckpt: Path, args: dict[str, Any]) -> tuple[int, float | None]:
    """(training step, EMA rate or None) from an official file name ``ema_<rate>_<step>.pt`` or
    ``model<step>.pt``; else the run's learning_steps."""
    if m := re.fullmatch(r"ema_([0-9.]+)_(\d+)\.pt", ckpt.name):
        return int(m[2]), float(m[1])
    if m := re.fullmatch(r"model(\d+)\.pt", ckpt.name):
        return int(m[1]), None
    return int(args.get("learning_steps", 0)), None


# ---------------------------------------------------------------------------------------------
def import_official(ckpt: Path, out: Path, args_path: Path | None = None, vocab: Path | None = None,
                    bert_cfg: Path | None = None, dataset: str | None = None) -> Path:
    """Write the run directory ``out`` for the official checkpoint ``ckpt``; returns its checkpoint folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OfficialImportError(f"{out}: exists and is not empty; give --out a new folder")
    args_path = args_path or ckpt.parent / "training_args.json"
    args = read_json(args_path, "training_args.json (--args)")
    cfg, cfg_source = bert_config(args, bert_cfg)
    sd = load_official_state(ckpt)
    tok, tok_kind, vocab_source = official_vocab(args, ckpt, vocab)
    rows = sd.get("lm_head.weight", sd.get("word_embedding.weight"))
    if rows is None or rows.shape[0] != tok.vocab_size:
        raise OfficialImportError(f"{vocab_source}: {tok.vocab_size} tokens, but {ckpt.name} has "
                                  f"{None if rows is None else rows.shape[0]} embedding rows; give the run's own vocabulary")
    step, rate = checkpoint_step(ckpt, args)
    rate = rate if rate is not None else float(str(args.get("ema_rate", "0.9999")).split(",")[0])
    spec = train_spec(args, cfg, rate, tok.vocab_size, tok_kind, dataset or str(args.get("data_dir", "")), str(args_path))
    tensors = map_state_dict(sd, spec.data.seq_len, str(ckpt))
    family = ContinuousFamily(spec)
    model = family.build(tok)
    if missing := sorted(set(model.state_dict()) - set(tensors)):
        raise OfficialImportError(f"{ckpt}: no tensor for {missing}; is the checkpoint from a "
                                  f"{'v2 run with learned_mean_embed' if 'm' in missing else 'complete'} official model?")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise OfficialImportError(f"{ckpt}: tensor shapes disagree with {args_path} and {cfg_source}: "
                                  f"{str(err).splitlines()[-1].strip()}") from None
    drift = float((sd["word_embedding.weight"] - sd["lm_head.weight"]).abs().max()) if "word_embedding.weight" in sd else 0.0
    return _write_run(out, spec, tok, tensors, step, {
        "checkpoint": str(ckpt.resolve()), "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
        "training_args": str(args_path.resolve()), "bert_config": cfg_source, "vocab": vocab_source,
        "official_branch": "diffuseq-v2" if "mean_embed" in sd or "denoise" in args else "main",
        "weights": f"model.safetensors and ema.safetensors both hold {ckpt.name}",
        "embedding": "lm_head.weight (what the official decoders load); max |word_embedding.weight - lm_head.weight| "
                     f"= {drift:.3g}",
        "reg_rate_flag": args.get("reg_rate"),
        "not_in_checkpoint": "optimizer moments and timestep-sampler history: a resumed run starts them fresh",
    }, model)


def _write_run(out: Path, spec: TrainSpec, tok: TextTokenizer, tensors: dict[str, torch.Tensor], step: int,
               origin: dict[str, Any], model: torch.nn.Module) -> Path:
    """config.json, tokenizer.json and checkpoints/step_<step>/ (model, EMA, a fresh optimizer state)."""
    ckpt_dir = out / "checkpoints" / f"step_{step:07d}"
    ckpt_dir.mkdir(parents=True)
    tok.save(out / "tokenizer.json")
    save_file(tensors, ckpt_dir / MODEL)
    save_file(tensors, ckpt_dir / EMA)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.optim.lr, weight_decay=spec.optim.weight_decay)
    sampler = make_timesteps(spec.diffusion.timestep_sampler, spec.diffusion.steps)
    torch.save({"step": step, "optimizer": opt.state_dict(), "sampler": sampler.state_dict(), "wall": 0.0}, ckpt_dir / STATE)
    verify_checkpoint(ckpt_dir)
    meta = {"train": spec.model_dump(mode="json"), "key": spec.key(), "vocab_size": tok.vocab_size,
            "code_version": code_version(), "imported_from": origin}
    write_atomic(out / "config.json", json.dumps(meta, indent=2).encode())
    log.info("imported %s as %s (spec %s, step %d)", origin["checkpoint"], out, spec.key(), step)
    return ckpt_dir


# ---------------------------------------------------------------------------------------------
# CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, metavar="CKPT", help="the official ema_<rate>_<step>.pt (or model<step>.pt)")
    p.add_argument("--args", dest="args_path", type=Path, metavar="JSON",
                   help="the run's training_args.json (default: beside CKPT, where the official code writes it)")
    p.add_argument("--vocab", type=Path, metavar="FILE",
                   help="the vocabulary: for a --vocab FILE run its vocab.json (default: beside CKPT) or word list; "
                   "for a --vocab bert run a tokenizer.json or vocab.txt (default: config_name's, else bundled BERT uncased)")
    p.add_argument("--bert-config", type=Path, metavar="JSON",
                   help="the BERT config.json (or its folder) of the run's config_name (default: config_name, when it "
                   "is a local folder or bert-base-uncased); gives the heads, which no tensor shape does")
    p.add_argument("--dataset", help="data.dataset of the run: a folder with {train,valid,test}.jsonl or a name under "
                   "the data root (default: the run's data_dir)")
    p.add_argument("--out", type=Path, required=True, help="the run directory to write (new or empty)")


def run(args: argparse.Namespace) -> int:
    """Import; 0 on success (an unsupported option or a bad file is raised for the CLI to report)."""
    ckpt_dir = import_official(args.checkpoint, args.out, args.args_path, args.vocab, args.bert_config, args.dataset)
    print(f"imported: {ckpt_dir}")
    return 0
