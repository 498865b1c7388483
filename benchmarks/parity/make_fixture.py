"""Check a prepared official DiffuSeq checkout and reproduce the import fixture with it.

    python benchmarks/parity/make_fixture.py check --checkout /work/official-v2 [--branch v2]
    python benchmarks/parity/make_fixture.py make --checkout /work/official-v2 --branch v2 \
        --python /work/official-venv/bin/python --work /work/official-work/v2
    python benchmarks/parity/make_fixture.py make --checkout /work/official-v1 --branch v1 \
        --python /work/official-venv/bin/python --work /work/official-work/v1
    python benchmarks/parity/make_fixture.py make --checkout /work/official-v2 --branch v2_plm \
        --python /work/official-venv/bin/python --work /work/official-work/v2_plm

Run it with this project's Python (it reads the embedded synthetic data from ``diffuseq``); the
official scripts run as subprocesses under ``--python``, the official code's own virtualenv.
``make`` writes the data, the vocabulary file, a BERT ``config.json`` and a no-op ``wandb``
module under ``--work``, trains a tiny model with the official ``train.py``, decodes the test
pairs with the branch's official decoder (v2: ``sample_seq2seq_dpmSolver.py``, v1:
``sample_seq2seq.py``) and copies what the tests read into ``--out``. See benchmarks/parity/README.md for the checkout, the virtualenv and each edit.
Nothing from the official repository is copied into this project: only what its code wrote.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from diffuseq import synthetic
from diffuseq.official import OFFICIAL_SPECIALS

# The fixtures: tiny models small enough to commit, one per official branch.
SIZES = {"train": 400, "valid": 64, "test": 16}
BERT_CONFIG = {
    "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 32, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "type_vocab_size": 2,
    "vocab_size": 30522, "initializer_range": 0.02, "pad_token_id": 0,
}
TRAIN_ARGS = {  # train.py's flags, as scripts/run_train.py would compose them (both branches)
    "diffusion_steps": 2000, "noise_schedule": "sqrt", "schedule_sampler": "lossaware", "seq_len": 32,
    "hidden_dim": 16, "hidden_t_dim": 16, "lr": 2e-3, "batch_size": 64, "microbatch": 64, "learning_steps": 300,
    "save_interval": 300, "log_interval": 50, "eval_interval": 1000, "ema_rate": "0.99", "seed": 102,
    "use_plm_init": "no", "use_fp16": False, "dataset": "synthetic", "notes": "fixture",
}
DECODE_ARGS = {"batch_size": 8, "seed2": 110, "split": "test", "top_p": -1, "clamp_step": 0}
DDP_EDITS = [  # train_util.py, both branches: the loss reads model.model.module, which only DDP has
    ("wrap the model in DistributedDataParallel on CPU too (the loss reads model.module)",
     r"self\.ddp_model = DDP\(", r"if th\.cuda\.is_available\(\):[^\n]*\n\s*self\.use_ddp = True"),
    ("DDP's device_ids and output_device None on CPU", r"device_ids=[^\n]*else None", r"device_ids=\[dist_util\.dev\(\)\],"),
]
# Per branch: the flags only it has, its decoder and the settings of its scripts/run_decode*.py,
# and its compatibility edits (README.md says each in words): file → [(what, pattern that must
# match, pattern that must not)].
V2 = {  # diffuseq-v2: learned absorbing state, discrete noise γ = 0.5; DPM-Solver++ 10 steps
    "train": {"learned_mean_embed": True, "denoise": True, "denoise_rate": 0.5, "reg_rate": 0.0, "data_split_num": 0},
    "decoder": "sample_seq2seq_dpmSolver.py",
    "decode": {"step": 10, "start_n": 0, "rejection_rate": 0.0, "note": "fixture"},
    "edits": {
        "train_util.py": DDP_EDITS,
        "sample_seq2seq_dpmSolver.py": [
            ("load the checkpoint with only map_location (no positional arguments)",
             r"dist_util\.load_state_dict\(\s*args\.model_path\s*,\s*map_location", r"load_state_dict\(args\.model_path,\s*False"),
            ("move the solver's output with .to(dist_util.dev()), not .cuda()", r"\.to\(dist_util\.dev\(\)\)", r"\.cuda\(\)"),
        ],
    },
}
BRANCHES = {
    "v2": V2,
    # v2 started from a pretrained BERT (--use_plm_init bert; SAVE_PRETRAINED), so hidden_dim = H
    "v2_plm": {**V2, "pretrained": True,
               "train": {**V2["train"], "use_plm_init": "bert", "hidden_dim": BERT_CONFIG["hidden_size"]}},
    "v1": {  # main (DiffuSeq): DDPM over all 2000 steps with clamp at every step
        "train": {},
        "decoder": "sample_seq2seq.py",
        "decode": {"step": 2000},
        "edits": {
            "train_util.py": DDP_EDITS,
            "diffuseq/step_sample.py": [
                ("the loss-aware sampler's counts with dtype int, not np.int (gone from numpy 1.24)", r"dtype=int\)",
                 r"dtype=np\.int\)"),
            ],
        },
    },
}
WANDB_STUB = '''"""No-op stand-in for wandb: the official train.py imports it and logs to it."""


class _Config:
    def update(self, *args, **kwargs):
        pass


config = _Config()


def init(*args, **kwargs):
    return None


def log(*args, **kwargs):
    pass
'''


# The "pretrained" BERT of v2_plm: the tiny config at random init, seeded, its word embeddings
# N(0, 1) as in a random-init official model (BERT's std 0.02 rows drown in the noise and 300 steps
# learn to decode nothing), saved as BertModel.save_pretrained writes it (the official model loads
# it with BertModel.from_pretrained(config_name)).
SAVE_PRETRAINED = """import json, sys, torch
from transformers import BertConfig, BertModel
torch.manual_seed(7)
bert = BertModel(BertConfig(**json.loads(sys.argv[2])))
torch.nn.init.normal_(bert.embeddings.word_embeddings.weight)
bert.save_pretrained(sys.argv[1])
"""


def check(checkout: Path, branch: str) -> list[str]:
    """The compatibility edits of ``branch`` missing from ``checkout`` (empty: all present)."""
    problems = []
    for name, edits in BRANCHES[branch]["edits"].items():
        path = checkout / name
        if not path.is_file():
            return [f"{path}: missing; is {checkout} a checkout of the official {branch}?"]
        text = path.read_text()
        for what, must, must_not in edits:
            if not re.search(must, text) or re.search(must_not, text):
                problems.append(f"{path}: edit missing: {what}")
    return problems


def write_pairs(folder: Path, splits: dict[str, list[tuple[str, str]]]) -> Path:
    """``{split}.jsonl`` with ``src``/``trg`` in ``folder``, the layout the official loader reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"src": s, "trg": t}) + "\n" for s, t in rows))
    return folder


def write_bert_config(folder: Path, config: dict) -> Path:
    """A local ``config_name`` folder: the BERT ``config.json`` (the official model reads only it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def write_stubs(work: Path) -> Path:
    """The no-op ``wandb`` module under ``work/stubs``; that folder goes first on PYTHONPATH."""
    stubs = work / "stubs" / "wandb"
    stubs.mkdir(parents=True, exist_ok=True)
    (stubs / "__init__.py").write_text(WANDB_STUB)
    return stubs.parent


def official_env(stubs: Path, checkout: Path, logdir: Path, home: Path) -> dict[str, str]:
    """The environment of an official script: the stand-ins first, its logger writing to ``logdir``
    (its ``configure`` truncates log.txt and progress.csv there: give a decoder its own folder),
    one thread, and the Hugging Face libraries offline."""
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{stubs}:{checkout}", "OPENAI_LOGDIR": str(logdir),
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "HOME": str(home),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def write_inputs(work: Path, python: str, pretrained: bool) -> dict[str, Path]:
    """Data splits, the vocabulary file, the BERT config folder (with ``pretrained``: a BertModel
    saved there by ``python``, its vocabulary the official one's size) and the wandb stand-in."""
    pairs = synthetic.generate()
    data = write_pairs(work / "data", {split: pairs[split][:n] for split, n in SIZES.items()})
    counts = Counter(w for s, t in pairs["train"][: SIZES["train"]] for w in f"{s} {t}".split())
    words = sorted(counts, key=lambda w: (-counts[w], w))
    (work / "vocab.txt").write_text("".join(f"{w}\n" for w in words))
    config = write_bert_config(work / "bert-config", BERT_CONFIG)
    if pretrained:
        bert = {**BERT_CONFIG, "vocab_size": len(OFFICIAL_SPECIALS) + len(words)}
        run_logged([python, "-c", SAVE_PRETRAINED, str(config), json.dumps(bert)], work, {"PATH": "/usr/bin:/bin",
                   "HOME": str(work), "HF_HUB_OFFLINE": "1"}, work / "pretrained.log")
    return {"data": data, "config": config, "vocab": work / "vocab.txt", "stubs": write_stubs(work)}


def flags(args: dict) -> list[str]:
    """``--key value`` for each item, as the official argparse reads them."""
    return [x for k, v in args.items() for x in (f"--{k}", str(v))]


def run_logged(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    """Run ``cmd`` in ``cwd`` with its output in ``log``; a failure exits naming the log."""
    with log.open("w") as f:
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(map(str, cmd[:3]))} failed (exit {done.returncode}); see {log}")


def make(checkout: Path, branch: str, python: str, work: Path, out: Path) -> None:
    """Train and decode with the official code, then copy the fixture files into ``out``."""
    conf = BRANCHES[branch]
    if problems := check(checkout, branch):
        sys.exit("\n".join(problems))
    shutil.rmtree(work, ignore_errors=True)
    inputs = write_inputs(work, python, conf.get("pretrained", False))
    model_dir, gen_dir = work / "model", work / "generation"
    model_dir.mkdir()
    gen_dir.mkdir()
    env = official_env(inputs["stubs"], checkout, model_dir, work)
    train = {**TRAIN_ARGS, **conf["train"], "checkpoint_path": model_dir, "data_dir": inputs["data"], "vocab": inputs["vocab"],
             "config_name": inputs["config"]}
    run_logged([python, "train.py", *flags(train)], checkout, env, work / "train.log")
    (ckpt,) = model_dir.glob("ema_*.pt")
    decode = {**DECODE_ARGS, **conf["decode"], "model_path": ckpt, "out_dir": gen_dir}
    run_logged([python, conf["decoder"], *flags(decode)], checkout, {**env, "OPENAI_LOGDIR": str(gen_dir)},
               work / "decode.log")
    (samples,) = gen_dir.glob("*/*.samples/*.json")
    out.mkdir(parents=True, exist_ok=True)
    for src, name in ((ckpt, ckpt.name), (model_dir / "training_args.json", "training_args.json"),
                      (model_dir / "vocab.json", "vocab.json"), (inputs["vocab"], "vocab.txt"),
                      (inputs["config"] / "config.json", "bert_config.json"),
                      (samples, "official_samples.jsonl")):
        shutil.copyfile(src, out / name)
    (out / "data").mkdir(exist_ok=True)
    shutil.copyfile(inputs["data"] / "test.jsonl", out / "data" / "test.jsonl")
    record = {"decoder": conf["decoder"], **decode, "model_path": ckpt.name, "out_dir": "."}
    (out / "decode_args.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"fixture written to {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check that an official checkout has the compatibility edits")
    m = sub.add_parser("make", help="train and decode with the official code; write the fixture")
    for q in (c, m):
        q.add_argument("--checkout", type=Path, required=True)
        q.add_argument("--branch", choices=sorted(BRANCHES), default="v2",
                       help="v2: diffuseq-v2; v2_plm: the same, --use_plm_init bert; v1: main (default: v2)")
    m.add_argument("--python", required=True, help="the official code's virtualenv python")
    m.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    m.add_argument("--out", type=Path, help="default: tests/fixtures/official/BRANCH")
    args = p.parse_args()
    if args.cmd == "check":
        problems = check(args.checkout, args.branch)
        print("\n".join(problems) or f"{args.checkout}: all compatibility edits present")
        sys.exit(1 if problems else 0)
    make(args.checkout, args.branch, args.python, args.work, args.out or Path("tests/fixtures/official") / args.branch)


if __name__ == "__main__":
    main()
