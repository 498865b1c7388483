#!/usr/bin/env bash
# The GPU probe: what a lent GPU shows in at most 10 minutes, in one command.
#
#   DIFFUSEQ_DATA_ROOT=../shared/data scripts/gpu-probe.sh            # on a CUDA machine
#   scripts/gpu-probe.sh --dry-run [--out DIR]                        # the CPU rehearsal (CI)
#   scripts/gpu-probe.sh --skip cuda-tests,paper-step                 # a second try of the rest
#
# Stages, each logged with its exit status and seconds in $OUT/stages.tsv:
#   1. machine     the device and library versions (machine.json)
#   2. cuda-tests  pytest -m cuda: bf16 and fp32 training on the GPU, CPU/GPU agreement of the
#                  denoiser, NCCL and a DDP step, device-synchronised timing (cuda_tests.xml)
#   3. paper-step  one training step of the `paper` preset (batch 2048, seq_len 128, bf16) as the
#                  preset runs it (microbatch 64) and in microbatches of 512 (paper_step.json)
#   4. suite       the gpu_probe suite: baseline and v2 on QQP at the gpu_mid preset, steps sized
#                  so both train in $PROBE_TRAIN_BUDGET_S (default 200) s; DDPM-2000 and
#                  DPM-Solver++ 10/20 decodes of 200 test pairs; the timing pass (suite.yaml,
#                  suite.sizing.json, then the results directory's usual files)
#   5. report      the Markdown report of the suite
# --dry-run shrinks every size (smoke model, 20 steps, 8 sources, 20-step chains) and runs the same
# stages on whatever device there is; the CUDA tests then skip. The exit status is 0 only if every
# stage passed. Output: results/gpu_probe (--dry-run: a temporary folder), or --out DIR.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0 OUT="" SKIP=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --out) OUT=$2; shift ;;
    --skip) SKIP=",$2,"; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1; see scripts/gpu-probe.sh --help" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
DRYFLAG=() ; [ $DRY = 1 ] && DRYFLAG=(--dry-run)
if [ -z "$OUT" ]; then
  if [ $DRY = 1 ]; then OUT=$(mktemp -d -t gpu-probe-dry.XXXX); else OUT=results/gpu_probe; fi
fi
if [ $DRY = 0 ]; then
  if ! $PY -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
    echo "error: no CUDA device visible to torch; run with --dry-run to rehearse on a CPU" >&2; exit 2
  fi
  if [ ! -f "${DIFFUSEQ_DATA_ROOT:-/nonexistent}/qqp/train.jsonl" ]; then
    echo "error: \$DIFFUSEQ_DATA_ROOT/qqp/train.jsonl not found; export DIFFUSEQ_DATA_ROOT=<folder holding qqp/>" >&2
    exit 2
  fi
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: > "$OUT/stages.tsv"
FAILED=0

# stage NAME COMMAND...: run, tee into probe.log, record status and seconds (unless --skip names it).
stage() {
  local name=$1 t0=$SECONDS rc
  shift
  if [[ $SKIP == *",$name,"* ]]; then printf '%s\tskipped\t0\n' "$name" | tee -a "$OUT/stages.tsv"; return 0; fi
  echo "== $name: $*" | tee -a "$OUT/probe.log"
  "$@" 2>&1 | tee -a "$OUT/probe.log"
  rc=${PIPESTATUS[0]}
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$OUT/stages.tsv"
  [ "$rc" = 0 ] || FAILED=1
  return "$rc"
}

stage machine $PY -m bench.gpu_probe machine --out "$OUT/machine.json"
stage cuda-tests $PY -m pytest -m cuda tests/test_cuda.py -p no:cacheprovider -q -rs --junitxml="$OUT/cuda_tests.xml"
stage paper-step $PY -m bench.gpu_probe paper-step --out "$OUT/paper_step.json" "${DRYFLAG[@]}"
if stage suite-size $PY -m bench.gpu_probe suite --out "$OUT/suite.yaml" \
     --train-budget-s "${PROBE_TRAIN_BUDGET_S:-200}" "${DRYFLAG[@]}"; then
  stage suite $PY -m bench run "$OUT/suite.yaml" --results "$OUT" --no-progress &&
    stage report $PY -m bench report --results "$OUT" --out "$OUT/report"
fi
echo "gpu-probe: stages (name, exit status, seconds) in $OUT/stages.tsv:"
cat "$OUT/stages.tsv"
exit $FAILED
