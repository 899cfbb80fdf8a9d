#!/usr/bin/env bash
# One lent-GPU session's measurements (issues #9, #16, #28), sized to finish within 8 minutes on one H100 or H200:
#   1. lmm:          LLaVA-1.5-7B shape: matmul ceiling, forward soft-scoring, end to end from JPEGs through the
#                    runner, padded 128-token generate, end to end with the JPEGs decoded and preprocessed on the
#                    GPU, continuous batching (goals: scoring >= 0.75 x ceiling; a continuous-batching row with
#                    a failed request is a failed row)
#   2. lmm-static:   padded 128-token generate with a static KV cache (transformers compiles the decoding step:
#                    CUDA graphs), warmed up at the full length (goal: explanations >= 20/s)
#   3. lmm-compiled: end-to-end scoring with torch.compile, in a process of its own, over 256 JPEGs
#   4. detectors:    CNNSpot / UnivFD / FreDect stages and end to end from JPEG files, PIL vs nvJPEG decoding
#                    (goal: >= 3,000 img/s from JPEG files)
#   5. agreement:    the same harness run on --device cpu and cuda (tiny FakeScope-LLaVA fp32 and bf16, CNNSpot):
#                    max |score difference| within tolerance
# Every step runs on its own, under its own time limit; a failing or timed-out step does not stop the others,
# and each finished mode is already in its JSON. All output is kept: $OUT/<step>.log, $OUT/<step>-<card>.json,
# $OUT/summary.txt (each step's exit code and seconds), $OUT/gpu-info.csv.
#   run:        bash benchmarks/gpu_session.sh                       (results in $OUT, else benchmarks/results/)
#   rehearse:   GPU_SESSION_REHEARSAL=1 OUT=/tmp/x bash benchmarks/gpu_session.sh   (CPU, tiny shapes, the
#               eager compile backend (inductor's C++ build alone takes a minute on 2 cores), under a minute;
#               tests/test_benchmarks.py runs it so the script cannot rot)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
py="${PYTHON:-python3}"
rehearsal="${GPU_SESSION_REHEARSAL:-0}"
summary="$out/summary.txt"
: >"$summary"

step() {  # step NAME SECONDS COMMAND...: run under a time limit, keep all output, record exit code and time
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc seconds=$((SECONDS - start)) limit=$limit" | tee -a "$summary"
    tail -n 25 "$out/$name.log"
}

if [ "$rehearsal" = 1 ]; then
    card=cpu-rehearsal
    lmm=(--shape tiny --device cpu --e2e-images 8 --batch-sizes 1,2 --repeats 1 --new-tokens 4
         --generate-batch-sizes 1 --cb-requests 2 --compile-backend eager)
    det=(--device cpu --tiny --repeats 1 --batch-size 4 --e2e 8 --workers 2)
    agreement=(--images 4)
    limits=(300 300 300 300 300)
else
    # the lent machine has torch, transformers, torchvision, pluggy, tabulate, scikit-learn and scikit-image but
    # no network: install the harness itself from this checkout, nothing else
    step install 30 "$py" -m pip install -q --no-deps --no-build-isolation --no-index -e .
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu-info.csv" 2>&1
    cat "$out/gpu-info.csv"
    # the card's model ("NVIDIA H100 80GB HBM3" -> h100, "NVIDIA A100-SXM4-80GB" -> a100), not its last word
    card=$("$py" -c "import sys, torch; sys.path.insert(0, 'benchmarks'); from bench_data import card_name
print(card_name(torch.cuda.get_device_name(0)))")
    lmm=(--device cuda)
    det=(--device cuda --batch-size 128 --e2e 4096 --workers "$(nproc)")
    agreement=(--images 16)
    limits=(160 60 90 90 45)  # with the 30 s install: at most 475 s (under 8 minutes)
fi
echo "card: $card" | tee -a "$summary"

step lmm "${limits[0]}" "$py" benchmarks/lmm_throughput.py "${lmm[@]}" \
    --modes ceiling,score,score-e2e,generate,score-e2e-device,generate-cb --output "$out/lmm-$card.json"
step lmm-static "${limits[1]}" "$py" benchmarks/lmm_throughput.py "${lmm[@]}" \
    --modes generate-static --output "$out/lmm-static-$card.json"
step lmm-compiled "${limits[2]}" "$py" benchmarks/lmm_throughput.py "${lmm[@]}" --e2e-images 256 \
    --modes score-e2e-compiled --output "$out/lmm-compiled-$card.json"
step detectors "${limits[3]}" "$py" benchmarks/detector_throughput.py "${det[@]}" \
    --output "$out/detectors-$card.json"
step agreement "${limits[4]}" "$py" benchmarks/device_agreement.py "${agreement[@]}" \
    --output "$out/agreement-$card.json"
echo "all output in $out"
