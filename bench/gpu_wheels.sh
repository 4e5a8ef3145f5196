#!/usr/bin/env bash
# Wheels that bench/train_gpu.py needs on a bare GPU machine whose Python (3.12) has torch, transformers,
# peft and accelerate but not bitsandbytes, trl or datasets: the versions requirements*.txt pin, for
# CPython 3.12 on x86-64 Linux, into .whl/ (git-ignored; ~59 MB). transformers and peft travel too, so
# the GPU runs the versions tested here. On the GPU machine, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site && PYTHONUNBUFFERED=1 python3 bench/train_gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { grep -h "^$1==" requirements.txt requirements-dev.txt | cut -d' ' -f1; }
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl \
  "$(pin bitsandbytes)" "$(pin trl)" "$(pin datasets)" "$(pin transformers)" "$(pin peft)" \
  "dill>=0.3.0,<0.4.2" "multiprocess<0.70.20"
ls -l .whl
