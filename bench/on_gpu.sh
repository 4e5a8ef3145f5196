#!/usr/bin/env bash
# Issue 15's GPU figures in one call on a lent GPU machine (the device tool's `run`): first, here,
# `bash bench/gpu_wheels.sh`; then run command "bash bench/on_gpu.sh", carry [".whl"], timeout_s 560.
# Installs the carried wheels beside the machine's torch, then bench/train_gpu.py (~1B Llama, LoRA and
# QLoRA nf4, engine against TRL padding-free); its log comes back in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
python3 -c "import torch, transformers, peft, trl, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'bitsandbytes', bitsandbytes.__version__)"
timeout 520 python3 bench/train_gpu.py 2>&1 | tee "${OUT:-/tmp}/train_gpu.log"
