#!/usr/bin/env bash
# Every GPU check in one run, for a lent GPU machine (see ../shared/gpu/README.md; carry .whl):
#   bash benchmarks/gpu.sh OUTDIR
# CUDA tests, fit speed on the GPU, and a GPU-fitted .snir of the bundled clips with its decoded PNGs (to
# decode again on another machine and compare).
set -u
out=${1:-out/gpu}
mkdir -p "$out"
bash .whl/setup-device.sh
export PYTHONPATH=$PWD/.whl/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 240 python3 -m pytest -q -p no:cacheprovider -k cuda tests/ 2>&1 | tail -8
timeout 90 python3 benchmarks/speed.py --arch gru --steps 150 --eval-every 50 --devices cuda -o "$out/gru" | tail -3
timeout 60 python3 benchmarks/speed.py --arch siren --steps 600 --eval-every 200 --devices cuda -o "$out/siren" | tail -3
time timeout 180 python3 -m specnir.cli compress audio -o "$out/gpu.snir" --mode residual --quality 4 \
    --steps 200 --device cuda --quiet
timeout 60 python3 -m specnir.cli decompress "$out/gpu.snir" -o "$out" --no-audio
