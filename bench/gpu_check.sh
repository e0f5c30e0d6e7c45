#!/usr/bin/env bash
# Every GPU number the README asks for, in one call on a lent GPU machine (the `device` tool: one H200, about
# 15 minutes of device time per session, starting included), so a session that is lent one spends it measuring.
#
#   bash bench/gpu_check.sh wheels        # here, once: .whl/ gets what the GPU image lacks or has at other versions
#   run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=600)    # there: logs come back from $OUT
#   bash bench/gpu_check.sh dry           # here: the same steps on the CPU, tiny sizes (checks the script, no numbers)
#
# The GPU image has Python 3.12 with its own torch (2.11, CUDA 13) and transformers 5.17; the wheels bring the
# lab's pinned transformers/tokenizers/huggingface_hub and the packages the benches import that it lacks (plotly,
# datasets). Each step has its own time limit, so one slow step cannot eat the others' share.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-gpu}

if [ "$MODE" = wheels ]; then
  grep -qx /.whl/ .git/info/exclude || echo /.whl/ >> .git/info/exclude  # carried, never committed
  PY=$(command -v .venv/bin/python || command -v python3)
  version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
  pins=()
  for pkg in transformers tokenizers huggingface_hub hf-xet httpx2 httpcore2 plotly narwhals datasets dill \
             multiprocess xxhash fsspec truststore; do
    pins+=("$pkg==$(version "$pkg")")
  done
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "${pins[@]}"
  du -sh .whl && ls .whl
  exit
fi

OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=python3
if [ "$MODE" = dry ]; then
  PY=.venv/bin/python DEVICE=cpu
  TRAIN="--presets micro --context 128 --vocab 512 --batch 4 --steps 2"
  SAMPLE="--released 1m --tokens 5 --repeats 1 --no-shared"
  INSPECT="--released 1m --repeats 1"
  COMPILED="--presets micro --context 128 --vocab 512 --batch 4 --steps 2"  # no --compile: minutes on a CPU
else
  DEVICE=cuda
  TRAIN="--grid --presets tinystories-1m,tinystories-3m,tinystories-8m --context 256,512 --vocab 8192 --batch 32 --steps 20 --warmup 3"
  SAMPLE="--released 1m,8m,33m --tokens 100 --repeats 3 --no-shared"
  INSPECT="--released 1m,8m,33m --repeats 3"
  COMPILED="--presets tinystories-1m --context 256 --vocab 8192 --batch 32 --steps 20 --warmup 3 --compile"
fi
if [ -d .whl ] && [ "$MODE" != dry ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi

step() {  # step NAME LIMIT_S COMMAND...: runs it under its own time limit, tees to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date +%T), limit ${limit}s): $*" | tee "$OUT/$name.log"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
  echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.log"
}

step env 30 $PY -c "import torch, transformers; print('torch', torch.__version__, '| transformers', \
transformers.__version__, '| device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', \
'| bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())"
# The app's own path first: a real training run through lab.train (bf16 autocast, fused AdamW) and its evaluation.
# Limits sum to 540 s, the whole call's share of a 15-minute lease (a machine's start takes one to two minutes);
# the most wanted numbers come first.
step lab_train 60 $PY -m lab train --runs-dir "$OUT/runs" --preset micro --steps 60 --device "$DEVICE" gpu-check
step train 120 $PY bench/train_throughput.py --device "$DEVICE" $TRAIN
step sample 120 $PY bench/sample_speed.py --device "$DEVICE" $SAMPLE
step compiled 120 $PY bench/train_throughput.py --device "$DEVICE" $COMPILED
step inspect 60 $PY bench/inspect_speed.py --device "$DEVICE" $INSPECT
step eval 30 $PY bench/eval_speed.py --device "$DEVICE"
rm -rf "$OUT/runs"  # what comes back is the logs (at most 8 files)
echo "logs: $OUT"
