#!/usr/bin/env bash
# The GPU check of issue 20, prepared to run as one command on a bare CUDA node (no Swift, maybe
# no OpenBLAS, libpng or OpenMPI) from the repository root, with the pack of launch/pack-static.sh
# in .pack/ (carried):
#   launch/gpu-check.sh [.pack]        (writes everything to $OUT/gpu-check.log, ends in ~5 min)
# 1 segdist verify --device cuda on the PyTorch fixtures; 2 the default recipe trained on the
# GPU and on the CPU, and their predictions compared; 3 two ranks sharing the GPU against one
# (sync_bn, 5 steps; where mpirun exists); 4 segdist bench --device cuda beside PyTorch CUDA
# (launch/torch_unet_cuda.py) for UNet w=16 B=32, w=64 B=32, w=16 B=8 at 128 px; 5 the default
# recipe's time to Dice 0.95 on the GPU. Each step has its own time limit and all end within
# 450 s (GPU_CHECK_SECONDS); a failing step is logged and the next one runs.
set -u
pack=${1:-.pack}
out=${OUT:-/tmp/gpu-check-out}
mkdir -p "$out"
log=$out/gpu-check.log
work=$(mktemp -d)
exec > >(tee -a "$log") 2>&1
# every step within its own limit, and all of them within 450 s (the lease's command limit is 600)
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-450}))
say() { echo "== $(date +%H:%M:%S) $*"; }
step() {
  local limit=$1; shift
  local left=$((deadline - SECONDS))
  if [ "$left" -lt 5 ]; then say "skipped (out of time): $*"; return 0; fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "$*"; timeout "$limit" "$@"; local rc=$?; echo "-- exit $rc"; return 0
}

say "unpacking $pack/segdist-pack.tar.xz"
tar -xJf "$pack/segdist-pack.tar.xz" -C "$work" || { echo "no pack in $pack: run launch/pack-static.sh .pack here first"; exit 2; }
S=$work/segdist/segdist
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
nproc; python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' || true
# CUDA's libraries where the loader does not find them: PyPI's nvidia-* packages of the node's python3
site=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null || true)
find_lib() { [ -n "$site" ] && find "$site/nvidia" -name "$1" 2>/dev/null | sort | head -1; }
ldconfig -p | grep -q libnvrtc.so || export SEGDIST_NVRTC=${SEGDIST_NVRTC:-$(find_lib 'libnvrtc.so.*')}
ldconfig -p | grep -q libcublas.so || export SEGDIST_CUBLAS=${SEGDIST_CUBLAS:-$(find_lib 'libcublas.so.*')}
ldconfig -p | grep -q libcudnn.so || export SEGDIST_CUDNN=${SEGDIST_CUDNN:-$(find_lib 'libcudnn.so.9')}
[ -n "$site" ] && export LD_LIBRARY_PATH="$(find "$site/nvidia" -name lib -type d 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}"
env | grep '^SEGDIST_' || true
$S --version

step 150 $S verify --device cuda --fixtures "$work/segdist/torch-reference.safetensors"

# 2: the default recipe on the GPU and on the CPU, the same seed; predictions compared
step 90 $S --device cuda --set checkpoint_dir="$work/gpu" --set log_every=50
step 90 $S --device cpu --set checkpoint_dir="$work/cpu" --set log_every=50
step 30 $S generate --count 8 --output "$work/val"
for d in gpu cpu; do step 30 $S predict --device cpu --checkpoint "$work/$d/step-000150.safetensors" --input "$work/val/images" --output "$work/pred-$d"; done
python3 - "$work" <<'PY' || true
import glob, os, sys, numpy as np
w = sys.argv[1]
worst = 0.0; same = []
for f in sorted(glob.glob(os.path.join(w, "pred-gpu", "*", "probabilities.npy"))):
    g = np.load(f); c = np.load(f.replace("pred-gpu", "pred-cpu"))
    worst = max(worst, float(np.abs(g - c).max())); same.append(float((g.argmax(0) == c.argmax(0)).mean()))
print(f"GPU-trained vs CPU-trained predictions: max |p_gpu - p_cpu| = {worst:.3e}, same class on {np.mean(same):.4%} of pixels (bar: 1e-4)"
      if same else "GPU-trained vs CPU-trained predictions: none to compare (a run above failed)")
PY
grep '"kind":"eval"' "$work/gpu/metrics.jsonl" | tail -1; grep '"kind":"eval"' "$work/cpu/metrics.jsonl" | tail -1

# 3: two ranks sharing the GPU against one (sync_bn, 5 steps)
if command -v mpirun >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  tiny=(--device cuda --set sync_bn=true --set epochs=1 --set steps_per_epoch=5 --set eval_every=5)
  step 60 $S "${tiny[@]}" --set checkpoint_dir="$work/one"
  step 60 $S --ranks 2 --share-gpu "${tiny[@]}" --set checkpoint_dir="$work/two"
  python3 - "$work" <<'PY' || true
import sys
from safetensors.numpy import load_file
w = sys.argv[1]
a = load_file(f"{w}/one/step-000005.safetensors"); b = load_file(f"{w}/two/step-000005.safetensors")
d = max(float(abs(a[k].astype("float64") - b[k].astype("float64")).max()) for k in a if not k.startswith("optimizer.") and a[k].dtype.kind == "f")
print(f"2 ranks sharing the GPU vs 1 after 5 steps: max parameter difference {d:.3e}")
PY
else
  say "skipped: 2 ranks = 1 (no mpirun on this node)"
fi

# 4: speed beside PyTorch CUDA, interleaved
for cfg in "16 32" "64 32" "16 8"; do
  set -- $cfg
  step 45 $S bench --device cuda --model unet --width "$1" --batch "$2" --size 128 --steps 20
  step 60 python3 launch/torch_unet_cuda.py "$work/segdist" "$1" "$2" 128 20
done

# 5: time to Dice 0.95 on the GPU (evaluating every 10 steps)
step 90 $S --device cuda --set eval_every=10 --set epochs=6 --set checkpoint_dir="$work/ttd"
python3 - "$work/ttd/metrics.jsonl" <<'PY' || true
import json, os, sys
for line in (open(sys.argv[1]) if os.path.exists(sys.argv[1]) else []):
    r = json.loads(line)
    if r.get("kind") == "eval" and r["foreground_dice"] >= 0.95:
        print(f"time to Dice 0.95: step {r['step']}, {r['elapsed_s']:.1f} s"); break
else:
    print("Dice 0.95 not reached")
PY
say "done; log in $log"
