#!/usr/bin/env bash
# The prepared device run: one command for a lent GPU machine (torch/torchvision only, no nbdev or papermill).
#   bash benchmarks/gpu_run.sh            # on the GPU machine; writes under $OUT (default benchmarks/results/gpu)
# It needs the CIFAR-10 JPEG copy as .device/cifar10-jpeg.tar.gz (not committed; see the README of the data).
# Toy-size check of the very same script on a CPU:
#   DEVICE=cpu WIDTH=8 EPOCHS=1 SUBSET=500 STEPS=3 WIDTHS=16 OUT=/some/dir bash benchmarks/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}; DEVICE=${DEVICE:-cuda}; EPOCHS=${EPOCHS:-10}; WIDTH=${WIDTH:-128}
STEPS=${STEPS:-50}; WIDTHS=${WIDTHS:-128}; SUBSET=${SUBSET:-}
export PYTHONPATH=. PYTHONUNBUFFERED=1
mkdir -p "$OUT"
{ date -u; nvidia-smi -L 2>/dev/null || echo "no nvidia-smi (CPU run)"
  python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"; } | tee "$OUT/device.txt"
DATA=$(mktemp -d)/cifar10
mkdir -p "$DATA" && tar -xzf .device/cifar10-jpeg.tar.gz -C "$DATA" && DATA="$DATA/cifar10-jpeg" || { echo "no .device/cifar10-jpeg.tar.gz"; exit 2; }
python benchmarks/optimizer_step.py --device "$DEVICE" --steps "$STEPS" --out "$OUT/optimizer_step.json" 2>&1 | tee "$OUT/optimizer_step.log"
python benchmarks/train_throughput.py --device "$DEVICE" --widths $WIDTHS --steps "$STEPS" --channels-last on --epoch \
  --out "$OUT/train_throughput.json" 2>&1 | tee "$OUT/train_throughput.log"
# a real CIFAR-10 run (JPEG q75 copy) at paper width: Bop vs Bop2ndOrder, same epochs, same seed
for preset in bop bop2ndorder; do
  python -m bnn_opt.cli train --preset "$preset" --dataset cifar10 --data "$DATA" --width "$WIDTH" --epochs "$EPOCHS" \
    ${SUBSET:+--subset $SUBSET} --device "$DEVICE" --no-progress --out "$OUT/runs/$preset" 2>&1 | tee "$OUT/train_$preset.log"
done
echo "done: $OUT"
