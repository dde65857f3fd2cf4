#!/usr/bin/env bash
# Multi-host without a cluster: two network namespaces on this machine, segdist-a (10.99.0.1) and
# segdist-b (10.99.0.2), joined by a veth pair, stand in for two hosts. OpenMPI runs inside
# segdist-a, starts the remote side through this script as its `plm_rsh_agent` (`ip netns exec`
# instead of ssh), and the ranks talk TCP over the veth link only.
#
#   launch/netns-two-hosts.sh up | down
#   launch/netns-two-hosts.sh run ARGS...    mpirun -n 2, one rank per "host", of segdist ARGS
#   launch/netns-two-hosts.sh check DIR      5 steps on 1 rank (DIR/one), then on the two hosts
#                                            (DIR/two); with sync_bn the checkpoints must agree
#                                            (swift test compares them)
#   launch/netns-two-hosts.sh agent HOST COMMAND...   (what mpirun calls instead of ssh)
#
# Needs root (CAP_SYS_ADMIN for namespaces), iproute2 and OpenMPI. SEGDIST names the binary
# (default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
here="$PWD/launch/$(basename "$0")"
binary="${SEGDIST:-$PWD/.build/release/segdist}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

up() {
  down 2>/dev/null || true
  ip netns add segdist-a
  ip netns add segdist-b
  ip link add segdist-va type veth peer name segdist-vb
  ip link set segdist-va netns segdist-a
  ip link set segdist-vb netns segdist-b
  ip -n segdist-a addr add 10.99.0.1/24 dev segdist-va
  ip -n segdist-b addr add 10.99.0.2/24 dev segdist-vb
  for ns in segdist-a segdist-b; do ip -n $ns link set lo up; done
  ip -n segdist-a link set segdist-va up
  ip -n segdist-b link set segdist-vb up
  ip -n segdist-a neigh flush all 2>/dev/null || true
}

down() {
  ip netns del segdist-a 2>/dev/null || true
  ip netns del segdist-b 2>/dev/null || true
}

run() {
  ip netns exec segdist-a mpirun -n 2 --host 10.99.0.1:1,10.99.0.2:1 \
    --mca plm_rsh_agent "$here agent" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl tcp,self --mca btl_tcp_if_include 10.99.0.0/24 --mca oob_tcp_if_include 10.99.0.0/24 \
    --bind-to none -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "$binary" "$@"
}

check() {
  local dir=${1:?usage: launch/netns-two-hosts.sh check DIR}
  mkdir -p "$dir"
  up
  trap down EXIT
  export SEGDIST_NETNS_LOG="$dir/agent.log"
  local recipe=(--set model=unet_shallow --set width=2 --set image_size=16 --set radius_min=2 --set radius_max=6
                --set batch_size=8 --set epochs=1 --set steps_per_epoch=5 --set val_images=6 --set sync_bn=true
                --set threads=1 --set lr=0.05)
  "$binary" "${recipe[@]}" --set checkpoint_dir="$dir/one" >/dev/null
  run "${recipe[@]}" --set checkpoint_dir="$dir/two" > "$dir/two.out"
  grep -q '"ranks":2' "$dir/two.out" || { echo "netns: FAILED: the two-host run did not report 2 ranks"; cat "$dir/two.out"; exit 1; }
  grep -q "segdist-b" "$dir/agent.log" || { echo "netns: FAILED: mpirun did not start a rank in segdist-b"; exit 1; }
  echo "netns: OK: 2 ranks in two network namespaces over TCP (veth 10.99.0.0/24) trained 5 steps; checkpoints in $dir/one and $dir/two"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  run) shift; run "$@" ;;
  check) check "${2:-}" ;;
  agent)
    # mpirun calls: agent HOST COMMAND... (as it would call ssh); run COMMAND in HOST's namespace
    host=$2; shift 2
    case "$host" in
      10.99.0.1) ns=segdist-a ;;
      10.99.0.2) ns=segdist-b ;;
      *) echo "netns agent: unknown host $host" >&2; exit 1 ;;
    esac
    [ -n "${SEGDIST_NETNS_LOG:-}" ] && echo "$ns: $*" >> "$SEGDIST_NETNS_LOG"
    exec ip netns exec "$ns" /bin/sh -c "$*" ;;
  *) echo "usage: launch/netns-two-hosts.sh up|down|run ARGS...|check" >&2; exit 2 ;;
esac
