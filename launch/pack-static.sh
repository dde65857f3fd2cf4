#!/usr/bin/env bash
# Packs a segdist that starts on a machine without Swift and without Debian's OpenBLAS, libpng,
# TurboJPEG or OpenMPI (a bare GPU node with only a driver, CUDA and PyTorch):
#   OUT_DIR/segdist-pack.tar.xz holding segdist/ with
#     segdist            a wrapper that points the loader at lib/ and runs bin/segdist
#     bin/segdist        the release binary, Swift's runtime linked in, stripped
#     lib/               its shared-library closure beyond glibc (what ldd lists: libpng,
#                        OpenMPI's libmpi and its libraries, libstdc++, ...), and the libraries
#                        segdist dlopens with theirs: libopenblas.so.0 (gfortran) and
#                        libturbojpeg.so.0 (for JPEGs)
#     torch-reference.safetensors   the PyTorch fixtures, for `segdist verify`
#     torch_unet.py      the reference UNet (from ../shared/reference), for launch/gpu-check.sh
# A single-process run needs no MPI installed: libmpi is carried and MPI starts only under
# mpirun. CUDA, NVRTC, cuBLAS and cuDNN are the node's, loaded at run time. The kernels are built
# for AVX2 (SEGDIST_KERNELS overrides: avx512 for a node known to have it, generic for any x86-64).
#   launch/pack-static.sh OUT_DIR
# On the other machine:  tar -xJf OUT_DIR/segdist-pack.tar.xz && segdist/segdist verify --device cuda --fixtures segdist/torch-reference.safetensors
# launch/test-pack.sh OUT_DIR runs the pack in a chroot holding only glibc and the pack.
set -euo pipefail
out=${1:?usage: launch/pack-static.sh OUT_DIR}
mkdir -p "$out"; out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
SEGDIST_KERNELS=${SEGDIST_KERNELS:-avx2} swift build -c release --static-swift-stdlib --scratch-path .build-pack
stage=$(mktemp -d)
pack=$stage/segdist
mkdir -p "$pack/bin" "$pack/lib"
cp .build-pack/release/segdist "$pack/bin/segdist"
strip "$pack/bin/segdist"
# the closure beyond glibc (and the loader), under the names the binary asks for
glibc='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|ld-linux-x86-64)\.so'
# and the libraries segdist dlopens: OpenBLAS (always) and TurboJPEG (for JPEGs)
jpeg=$(ldconfig -p | awk '/libturbojpeg\.so\.0 /{if (!p) p = $NF} END {print p}')
blas=$(ldconfig -p | awk '/libopenblas\.so\.0 /{if (!p) p = $NF} END {print p}')
[ -n "$blas" ] || { echo "pack-static: libopenblas.so.0 not found (apt-get install libopenblas0)" >&2; exit 1; }
for lib in $(ldd "$pack/bin/segdist" | awk '/=> \//{print $1 "=" $3}') libopenblas.so.0=$blas ${jpeg:+libturbojpeg.so.0=$jpeg}; do
  name=${lib%%=*}; path=${lib#*=}
  [[ $name =~ $glibc ]] && continue
  cp -L "$path" "$pack/lib/$name"
done
# the dlopened libraries' own closures (OpenBLAS's gfortran, ...)
for opened in libopenblas.so.0 libturbojpeg.so.0; do
  for lib in $(ldd "$pack/lib/$opened" 2>/dev/null | awk '/=> \//{print $1 "=" $3}'); do
    name=${lib%%=*}; path=${lib#*=}
    [[ $name =~ $glibc ]] || [ -e "$pack/lib/$name" ] || cp -L "$path" "$pack/lib/$name"
  done
done
cat > "$pack/segdist" <<'WRAP'
#!/bin/sh
# segdist with the libraries it was packed with (see launch/pack-static.sh)
case "$0" in */*) here=${0%/*} ;; *) here=. ;; esac
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/bin/segdist" "$@"
WRAP
chmod +x "$pack/segdist"
shared=${SEGDIST_SHARED:-../shared}
if [ -f "$shared/fixtures/torch-reference.safetensors" ]; then cp "$shared/fixtures/torch-reference.safetensors" "$pack/"; fi
if [ -f "$shared/reference/torch_unet.py" ]; then cp "$shared/reference/torch_unet.py" "$pack/"; fi
tar -C "$stage" -cJf "$out/segdist-pack.tar.xz" segdist
rm -rf "$stage"
ls -la "$out/segdist-pack.tar.xz"
