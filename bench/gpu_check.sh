#!/usr/bin/env bash
# GPU check for issue 6 item 7: the full-size SD1-architecture pipeline (random weights from the sd1 reference
# config, no download) through hubctl generate's code path beside plain diffusers, fp16, 512x512, 30 steps,
# SDPA, and xformers when it imports and its one-call probe passes. Needs no network. About 2-3 minutes.
#
#   bash bench/gpu_check.sh            # on the GPU machine, from the repo root
#   bash bench/gpu_check.sh --smoke    # here, on CPU: tiny config, 64x64, 1 step (checks the path)
#
# Missing Python packages travel as wheels in .whl/ (ignored by git; carry it): diffusers, importlib_metadata,
# and optionally xformers. hubctl itself is used from this tree through PYTHONPATH (no install, no deps).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUTDIR=${OUT:-/tmp/hubctl-gpu-out}
mkdir -p "$OUTDIR"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && ! $PY -c "import diffusers" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY - <<'PY'
import importlib, platform
for m in ("torch", "diffusers", "transformers", "safetensors", "xformers"):
    try:
        print(f"{m} {importlib.import_module(m).__version__}")
    except Exception as e:
        print(f"{m}: not importable ({type(e).__name__})")
PY

EXTRA=()
# The xformers probe runs once in its own process first: a wheel whose kernels crash the process must not
# take the benchmark with it.
if [[ " $* " != *" --smoke "* ]]; then
  if timeout 180 $PY -c "
import torch
from hubctl.run.attention import probe_xformers
ok, why = probe_xformers('cuda', torch.float16)
print('xformers probe (separate process):', 'ok' if ok else 'not used', '-', why)
"; then :; else
    echo "xformers probe process died (exit $?): benchmarking SDPA only"
    EXTRA+=(--no-xformers)
  fi
fi

$PY bench/bench_gpu_sd1.py "$@" ${EXTRA[@]+"${EXTRA[@]}"} --json "$OUTDIR/gpu_sd1.json"
echo "figures: $OUTDIR/gpu_sd1.json"
