#!/usr/bin/env bash
# The prepared device run: one command for a lent GPU machine. Needs only torch (>= 2.4) and torchvision.
#   bash benchmarks/gpu_run.sh            # on the GPU machine; writes under $OUT (default benchmarks/results/gpu)
# Steps: 1. the optimizer-step benchmark, with nonfinite='raise' (the default: one host sync per step)
#        and 'skip' (none); 2. the training-throughput benchmark; 3. a CIFAR-10 run (Bop vs Bop2ndOrder,
#        fp32) when the data is there: DATA=DIR (DIR/train/<class>/*, DIR/test/<class>/*), or the
#        archive .device/cifar10-jpeg.tar.gz (not committed); without either, step 3 is skipped, saying so;
#        4. the notebooks' `#| cuda` tests, only if nbdev is installed (skipped, saying so, otherwise).
# Toy-size check of the very same script on a CPU:
#   DEVICE=cpu WIDTH=8 EPOCHS=1 SUBSET=500 STEPS=3 WIDTHS=16 OUT=/some/dir bash benchmarks/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}; DEVICE=${DEVICE:-cuda}; EPOCHS=${EPOCHS:-10}; WIDTH=${WIDTH:-128}
STEPS=${STEPS:-50}; WIDTHS=${WIDTHS:-128}; SUBSET=${SUBSET:-}; DATA=${DATA:-}
ARCHIVE=.device/cifar10-jpeg.tar.gz
export PYTHONPATH=. PYTHONUNBUFFERED=1
mkdir -p "$OUT"
status=0
{ date -u; nvidia-smi -L 2>/dev/null || echo "no nvidia-smi (CPU run)"
  python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"; } | tee "$OUT/device.txt"

for nf in raise skip; do
  python benchmarks/optimizer_step.py --device "$DEVICE" --steps "$STEPS" --nonfinite "$nf" \
    --out "$OUT/optimizer_step_$nf.json" 2>&1 | tee "$OUT/optimizer_step_$nf.log" || status=1
done
python benchmarks/train_throughput.py --device "$DEVICE" --widths $WIDTHS --steps "$STEPS" --channels-last on --epoch \
  --out "$OUT/train_throughput.json" 2>&1 | tee "$OUT/train_throughput.log" || status=1

# a real CIFAR-10 run at paper width: Bop vs Bop2ndOrder, same epochs, same seed, fp32
if [ -z "$DATA" ] && [ -f "$ARCHIVE" ]; then
  tmp=$(mktemp -d) && tar -xzf "$ARCHIVE" -C "$tmp" && DATA="$tmp/cifar10-jpeg" || { echo "could not unpack $ARCHIVE"; DATA=; status=1; }
fi
if [ -n "$DATA" ]; then
  for preset in bop bop2ndorder; do
    python -m bnn_opt.cli train --preset "$preset" --dataset cifar10 --data "$DATA" --width "$WIDTH" --epochs "$EPOCHS" \
      ${SUBSET:+--subset $SUBSET} --device "$DEVICE" --no-progress --out "$OUT/runs/$preset" 2>&1 | tee "$OUT/train_$preset.log" || status=1
  done
else
  echo "CIFAR-10 part skipped: no DATA=DIR given and no $ARCHIVE (the benchmarks above ran)" | tee "$OUT/cifar10_skipped.txt"
fi

# the notebooks' GPU tests (nbdev is a development requirement, not a dependency of this script)
if [ "$DEVICE" != cuda ]; then
  echo "cuda notebook tests skipped: DEVICE=$DEVICE" | tee "$OUT/cuda_tests_skipped.txt"
elif python -c "import nbdev" 2>/dev/null; then
  for nb in 02_optimizers 02a_pbop 02b_hybrid 06_data; do
    nbdev_test --flags cuda --path "nbs/$nb.ipynb" 2>&1 | tee "$OUT/cuda_test_$nb.log" || status=1
  done
else
  echo "cuda notebook tests skipped: nbdev is not installed (pip install nbdev to run them)" | tee "$OUT/cuda_tests_skipped.txt"
fi
echo "done: $OUT (exit status $status)"
exit $status
