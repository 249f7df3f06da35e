#!/usr/bin/env bash
# Every CUDA path of curvmia, on one GPU, offline, with synthetic CIFAR-shaped data, in under
# 5 minutes (docs/cluster.md: first GPU). Run it once on a new GPU node / image:
#   benchmarks/gpu_check.sh                # on a GPU (needs CUDA; stops otherwise)
#   benchmarks/gpu_check.sh --cpu-smoke    # the same steps at tiny size on the CPU (tests)
# Inside the image: apptainer exec --nv containers/curvmia.sif benchmarks/gpu_check.sh
# Prints: training img/s, eager fp32 against channels_last + bf16 + torch.compile; the ZO
# engine's efficiency against plain inference and its speedup over the paper-style loop
# (eager and compiled); Hutchinson HVP cost in forward-equivalents; then scoring checks:
# identical scores across two runs, 2 shards merged = unsharded, TF32 off against on, the
# compiled ZO path. Exits non-zero when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}

if [[ "${1:-}" == "--cpu-smoke" ]]; then
  DEV=cpu
  ARCH=(--arch cifar_resnet --model-kwargs '{"width": 8, "layers": [1, 1]}')
  TRAIN=(--arch cifar_resnet10 --n 64 --batch 8 --steps 2 --threads 1)
  FAST=(--amp bf16)  # torch.compile is exercised on a GPU only (a CPU compile takes minutes)
  ZO=(--batch-sizes 8 --reference-sizes 8 --niter 1 --min-samples 8 --nprobes 1
      --hutch-batch 8 --memory-mb 32 --rounds 1 --scan-rounds 1)
  ZO_COMPILE=()
  CHECK=(--n 48 --n-test 16 --niter 1 --nprobes 1 --memory-mb 32)
elif [[ $# -eq 0 ]]; then
  DEV=cuda
  ARCH=(--arch cifar_resnet18 --model-kwargs '{}')
  TRAIN=(--arch cifar_resnet18 --n 50000 --batch 256 --steps 60)
  FAST=(--amp bf16 --compile)
  ZO=(--batch-sizes 256,1024 --reference-sizes 256 --niter 10 --min-samples 2048 --nprobes 2
      --hutch-batch 256 --memory-mb 8192 --rounds 2 --scan-rounds 1)
  ZO_COMPILE=(--compile)
  CHECK=(--n 4096 --n-test 1024 --niter 10 --nprobes 2 --memory-mb 8192)
  $PY -c "import sys, torch; from curvmia.device import pick_device; d = pick_device('cuda');
print('GPU:', torch.cuda.get_device_name(d), '| torch', torch.__version__, 'CUDA', torch.version.cuda)"
else
  echo "usage: $0 [--cpu-smoke]" >&2
  exit 2
fi

echo "== training: eager fp32 (channels_last), then bf16 autocast + torch.compile"
$PY benchmarks/train.py --shape 3 32 32 --device "$DEV" "${TRAIN[@]}" --amp none
$PY benchmarks/train.py --shape 3 32 32 --device "$DEV" "${TRAIN[@]}" "${FAST[@]}"
echo "== ZO scoring engine, Hutchinson (TF32 off, as scoring runs)"
$PY benchmarks/curvature.py --input 3,32,32 --device "$DEV" "${ARCH[@]}" "${ZO[@]}"
if [[ ${#ZO_COMPILE[@]} -gt 0 ]]; then
  echo "== ZO scoring engine, compiled forward"
  $PY benchmarks/curvature.py --input 3,32,32 --device "$DEV" "${ARCH[@]}" "${ZO[@]}" \
    --nprobes 0 "${ZO_COMPILE[@]}"
fi
echo "== scoring checks: determinism, shards, TF32 on/off, compiled path"
$PY benchmarks/gpu_check.py --device "$DEV" "${ARCH[@]}" "${CHECK[@]}"
echo "gpu_check: all steps passed ($DEV)"
