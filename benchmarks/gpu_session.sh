#!/usr/bin/env bash
# One lent-GPU session's measurements (issue #9), sized to finish in about 6 minutes on one H100:
# the LMM benchmark at the LLaVA-1.5-7B shape (ceiling, forward, end to end from JPEGs with and
# without torch.compile, padded generate, continuous batching) and the detectors end to end from
# JPEGs with PIL vs nvJPEG decoding. Results land in $OUT (or benchmarks/results/) named by the card.
#   run:  bash benchmarks/gpu_session.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
py="${PYTHON:-python3}"
# the lent machine's image has torch, transformers, torchvision, pluggy, tabulate, scikit-learn and
# scikit-image but no network: install the harness itself from this checkout, nothing else
"$py" -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu-info.csv"
card=$("$py" -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())")
"$py" benchmarks/lmm_throughput.py --device cuda --compile --output "$out/lmm-$card.json" 2>&1 | tail -20
"$py" benchmarks/detector_throughput.py --device cuda --batch-size 128 --e2e 4096 --workers "$(nproc)" \
    --output "$out/detectors-$card.json" 2>&1 | tail -12
