"""What only a CUDA device can check: bf16 autocast training, CPU/GPU agreement of the denoiser,
NCCL, and device-synchronised timing. Marked ``cuda`` and skipped without a GPU (CI has none);
``scripts/gpu-probe.sh`` runs them on a GPU machine (``pytest -m cuda``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.timing import _seconds
from diffuseq.config import build_train_spec, parse_overrides
from diffuseq.decode import device_name
from diffuseq.rundir import load_model
from diffuseq.train import Dist, setup_run, train_step

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY = ["model.layers=1", "data.seq_len=32", "optim.batch_size=32"]


def tiny_spec(steps: int, *extra: str):
    return build_train_spec("smoke", "v2", parse_overrides([*TINY, f"optim.steps={steps}", *extra]))


@pytest.mark.parametrize("bf16", [False, True])
def test_training_on_cuda_lowers_the_loss(tmp_path, bf16):
    run = setup_run(tiny_spec(120, f"optim.bf16={str(bf16).lower()}"), tmp_path, Dist(device=torch.device("cuda")))
    assert {p.device.type for p in run.params} == {"cuda"}
    losses = [train_step(run)[0].item() for _ in range(120)]
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert sum(losses[-20:]) / 20 < 0.7 * sum(losses[:20]) / 20


def test_cpu_and_cuda_denoisers_agree(tmp_path):
    """The same weights and input give the same x0 prediction on both devices (fp32, TF32 off)."""
    run = setup_run(tiny_spec(1), tmp_path, Dist())
    model = run.model.eval()
    ids = run.valid_set.input_ids[:16]
    z = model.embed(ids) + torch.randn(*ids.shape, model.spec.embed_dim, generator=torch.Generator().manual_seed(0))
    t = torch.full((16,), 1000)
    with torch.no_grad():
        cpu = model(z, t, 2000)
        torch.backends.cuda.matmul.allow_tf32 = False
        gpu = model.to("cuda")(z.cuda(), t.cuda(), 2000).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4, rtol=1e-4), (cpu - gpu).abs().max()


def test_a_checkpoint_trained_on_cuda_loads_and_decodes_on_cpu(tmp_path):
    from diffuseq.config import LoopSpec
    from diffuseq.train import train

    train(tiny_spec(20), tmp_path, LoopSpec(save_every=20, eval_every=20), progress=False)
    model, _, _ = load_model(tmp_path)
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_nccl_all_reduce_and_a_ddp_step(tmp_path):
    """One rank on one GPU (NCCL refuses two ranks on one device): the process group, an
    all-reduce and a DDP-wrapped training step under torchrun."""
    script = tmp_path / "nccl_step.py"
    script.write_text(
        "import json, sys, torch, torch.distributed as dist\n"
        "from torch.nn.parallel import DistributedDataParallel\n"
        "dist.init_process_group('nccl'); torch.cuda.set_device(0)\n"
        "x = torch.ones(4, device='cuda'); dist.all_reduce(x)\n"
        "m = DistributedDataParallel(torch.nn.Linear(8, 1).cuda())\n"
        "m(torch.randn(16, 8, device='cuda')).sum().backward()\n"
        "json.dump({'sum': x.sum().item(), 'grad': m.module.weight.grad.abs().sum().item(),\n"
        "           'backend': dist.get_backend()}, open(sys.argv[1], 'w'))\n"
        "dist.destroy_process_group()\n")
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                           str(script), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["backend"] == "nccl" and res["sum"] == 4.0 and res["grad"] > 0


def test_timing_waits_for_the_gpu():
    """A timed unit of GPU work lasts as long as CUDA events say: the unit synchronises, so it
    does not time only the kernel launches."""
    a = torch.randn(4096, 4096, device="cuda")
    work = lambda: (a @ a).sum().item()  # noqa: E731  .item() synchronises, as train_step's float does
    work()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    timed = _seconds(work, 20)
    end.record()
    torch.cuda.synchronize()
    events_s = start.elapsed_time(end) / 1000 / 20
    assert 0.5 * events_s < timed.wall < 2.0 * events_s
    assert device_name(a.device).startswith("cuda:")


def test_rounding_on_cuda_takes_one_chunk_and_agrees_with_the_cpu():
    """200 sources × 64 positions against a BERT-sized table: the GPU's chunk holds them all, and
    its tokens are the CPU's (fp32, TF32 off; a near-tie may flip, so 99.9%)."""
    from diffuseq.sampling import rounding

    g = torch.Generator().manual_seed(0)
    emb, z, bias = torch.randn(30522, 128, generator=g), torch.randn(200 * 64, 128, generator=g), torch.randn(30522, generator=g)
    assert rounding._CHUNK_ELEMENTS["cuda"] // emb.shape[0] >= z.shape[0]
    torch.backends.cuda.matmul.allow_tf32 = False
    cpu, gpu = rounding.logit_ids(z, emb, bias), rounding.logit_ids(z.cuda(), emb.cuda(), bias.cuda()).cpu()
    assert (cpu == gpu).float().mean() > 0.999
