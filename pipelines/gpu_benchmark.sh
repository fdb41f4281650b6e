#!/usr/bin/env bash
# OGNet at the paper's network width on one CUDA GPU: the README's GPU rows.
#
#   bash pipelines/gpu_benchmark.sh smoke                    # train/score/watch on synthetic clips
#   bash pipelines/gpu_benchmark.sh ped2 DATA [RESULTS_DIR]  # the GPU rows (~6 min on one H100)
#
# ped2 runs, at once: configs/ped2-cpu.yaml with model.preset=paper (one network, as the rows were measured)
# for seeds 0, 1, 2, and the paper's own
# recipe configs/ped2-paper.yaml (each through pipelines/ped2_benchmark.py); then model-only throughput
# (pipelines/model_cost.py) and end-to-end `ognet-video score` throughput on the 12 test clips.
# LIMIT (seconds, default 330) caps each training so the script always reaches the throughput steps.
set -uo pipefail
mode=${1:?usage: gpu_benchmark.sh smoke | ped2 DATA [RESULTS_DIR]}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} PYTHONUNBUFFERED=1
device=${DEVICE:-cuda}  # DEVICE=cpu PRESET=cpu runs the smoke test without a GPU
[ "$device" = cpu ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || exit 1

if [ "$mode" = smoke ]; then
    tmp=$(mktemp -d)
    python -c "from ognet_video.data.synthetic import write_walkway; write_walkway('$tmp/w', 4, 2, 40)" || exit 1
    set -e
    ognet-video train folder --data "$tmp/w" --device "$device" --project "$tmp/runs" "model.preset=${PRESET:-paper}" \
        patches.channels=flow train.epochs=1 train.max_patches=1000 train.phase2_steps=20 train.holdout_clips=1
    ognet-video score "$tmp"/w/testing/frames/* -m "$tmp/runs/folder-1" --device "$device" --workers 2 --project "$tmp/score"
    ognet-video watch "$tmp/w/testing/frames/01" -m "$tmp/runs/folder-1" --device "$device" --project "$tmp/watch"
    echo "smoke: ok"
    exit 0
fi

data=${2:?usage: gpu_benchmark.sh ped2 DATA [RESULTS_DIR]}
res=${3:-pipelines/results/gpu}
limit=${LIMIT:-330}
mkdir -p "$res"
for s in 0 1 2; do
    timeout "$limit" python pipelines/ped2_benchmark.py --config configs/ped2-cpu.yaml --data "$data" \
        --name "gpu-paper-flow-s$s" --results "$res" model.preset=paper train.members=1 "train.seed=$s" >"$res/gpu-paper-flow-s$s.log" 2>&1 &
done
timeout "$limit" python pipelines/ped2_benchmark.py --config configs/ped2-paper.yaml --data "$data" \
    --name gpu-paper --results "$res" >"$res/gpu-paper.log" 2>&1 &
wait
python pipelines/model_cost.py --device cuda --out "$res/model_cost-cuda.json" 2>&1 | tee "$res/model_cost-cuda.log"
for run in gpu-paper-flow-s0 gpu-paper; do
    dir=$(ls -d runs/bench/"$run"-* 2>/dev/null | sort -V | tail -1)
    [ -f "$dir/model.safetensors" ] || { echo "$run: no finished model"; continue; }
    for w in 4 12; do
        echo "== score $run, $w workers"
        timeout 90 ognet-video score "$data"/testing/frames/* -m "$dir" --device cuda --workers "$w" \
            --project "$(mktemp -d)" 2>&1 | grep -v "━" | tail -4
    done
done 2>&1 | tee "$res/score-e2e.log"
grep -h "wrote\|Error\|error" "$res"/*.log
