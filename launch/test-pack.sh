#!/usr/bin/env bash
# Runs a pack (launch/pack-static.sh OUT_DIR) in a chroot that holds glibc, /bin/sh and the pack
# and nothing else — no Swift, OpenBLAS, libpng, TurboJPEG or OpenMPI — as a bare GPU node would
# have it, so a missing library shows here, not on the GPU. Needs root (chroot, mount).
#   launch/test-pack.sh OUT_DIR
set -euo pipefail
out=$(cd "${1:?usage: launch/test-pack.sh OUT_DIR}" && pwd)
root=$(mktemp -d)
cleanup() { umount "$root/proc" 2>/dev/null || true; umount "$root/dev" 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT
tar -xJf "$out/segdist-pack.tar.xz" -C "$root"
mkdir -p "$root/bin" "$root/lib64" "$root/lib/x86_64-linux-gnu" "$root/tmp" "$root/proc" "$root/dev"
cp -L /bin/sh "$root/bin/sh"
# glibc: the libraries of the binary, of the pack's libraries and of sh that the pack does not carry
for f in "$root"/segdist/bin/segdist "$root"/segdist/lib/*.so* /bin/sh; do
  LD_LIBRARY_PATH="$root/segdist/lib" ldd "$f" 2>/dev/null | awk '/=> \//{print $1 " " $3} /^[ \t]*\/lib64\//{print "ld " $1}'
done | sort -u | while read -r name path; do
  if [ "$name" = ld ]; then cp -L "$path" "$root/lib64/"; continue; fi
  [ -e "$root/segdist/lib/$name" ] || cp -L "$path" "$root/lib/x86_64-linux-gnu/$name"
done
echo "chroot holds: $(cd "$root" && find lib lib64 bin -type f | sort | tr '\n' ' ')"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
chroot "$root" /segdist/segdist --version
chroot "$root" /segdist/segdist --ranks 1 --device auto --set width=2 --set image_size=32 --set epochs=1 --set steps_per_epoch=2 \
  --set val_images=2 --set checkpoint_dir=/tmp/run 2>&1 | tail -3
chroot "$root" /segdist/segdist generate --count 2 --set image_size=32 --output /tmp/gen
chroot "$root" /segdist/segdist predict --checkpoint /tmp/run/step-000002.safetensors --input /tmp/gen/images --output /tmp/pred | tail -1
chroot "$root" /segdist/segdist verify --device cpu --fixtures /segdist/torch-reference.safetensors | tail -3
# no MPI installed: --ranks 2 says what is missing instead of failing to start
chroot "$root" /segdist/segdist --ranks 2 --set checkpoint_dir=/tmp/run2 2>&1 | tail -1 || true
echo "test-pack: OK: the pack starts, trains, predicts and verifies with only glibc beside it"
