#!/usr/bin/env bash
# Packs a segdist that runs on a machine without Swift (a GPU node): the release binary with
# the Swift runtime linked in, stripped and xz-compressed, plus the PyTorch fixture file for
# `segdist verify`. Its remaining dynamic dependencies (OpenBLAS, libpng, OpenMPI 4.x) are the
# usual system libraries; CUDA, NVRTC, cuBLAS and TurboJPEG are loaded at run time if present.
#   launch/pack-static.sh OUT_DIR      -> OUT_DIR/segdist.xz, OUT_DIR/torch-reference.safetensors
# On the other machine:  xz -dk OUT_DIR/segdist.xz && chmod +x OUT_DIR/segdist && OUT_DIR/segdist verify --device cuda --fixtures OUT_DIR/torch-reference.safetensors
# The kernels are compiled for the vector instructions of the building CPU (see Package.swift):
# for a node whose CPU may have fewer, build with SEGDIST_KERNELS=avx2 or generic.
set -euo pipefail
out=${1:?usage: launch/pack-static.sh OUT_DIR}
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib
mkdir -p "$out"
cp .build/release/segdist "$out/segdist"
strip "$out/segdist"
xz -f -9 "$out/segdist"
shared=${SEGDIST_SHARED:-../shared}
if [ -f "$shared/fixtures/torch-reference.safetensors" ]; then cp "$shared/fixtures/torch-reference.safetensors" "$out/"; fi
ls -la "$out"
