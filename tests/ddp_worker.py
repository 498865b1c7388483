"""Run by test_train.py under torchrun: a few DDP steps, then each rank writes a weight digest."""

import hashlib
import json
import sys
from pathlib import Path

import torch

import diffuseq.train as train_mod
from diffuseq.config import LoopSpec, build_train_spec, parse_overrides


def main(out: Path) -> None:
    spec = build_train_spec("smoke", "v2", parse_overrides(
        ["model.layers=1", "model.hidden=32", "model.ffn=64", "data.seq_len=32", "optim.batch_size=16", "optim.steps=6"]))
    captured = {}
    real = train_mod.Objective.forward

    def spy(self, *args):
        captured["model"] = self.model
        return real(self, *args)

    train_mod.Objective.forward = spy
    train_mod.train(spec, out / "run", LoopSpec(save_every=3, eval_every=3), progress=False)
    rank = torch.distributed.get_rank()
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in captured["model"].parameters())).hexdigest()
    (out / f"rank{rank}.json").write_text(json.dumps({"step": spec.optim.steps, "params": digest}))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
