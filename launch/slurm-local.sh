#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurmctld + slurmd, no munge, no cgroups),
# and the preemption check of launch/slurm.sbatch run on it.
#
#   launch/slurm-local.sh up [DIR]          start the daemons; prints the SLURM_CONF to export
#   launch/slurm-local.sh down [DIR]        stop them
#   launch/slurm-local.sh check [DIR]       up, then: sbatch launch/slurm.sbatch on a small
#       recipe, `scontrol requeue` it once its first checkpoint exists (Slurm sends SIGTERM: the
#       ranks checkpoint at the step boundary and exit), let it start again (it resumes from the
#       run's own newest checkpoint), check that the run completed every step exactly once, down.
#
# Needs root and `apt-get install slurmctld slurmd slurm-client` (and OpenMPI with PMIx, which
# Debian's has). Ports 16817/16818 on 127.0.0.1. SEGDIST names the binary (default: release).
set -euo pipefail
cd "$(dirname "$0")/.."
command=${1:?usage: launch/slurm-local.sh up|down|check [DIR]}
dir=$(realpath -m "${2:-${TMPDIR:-/tmp}/segdist-slurm}")
export SLURM_CONF="$dir/slurm.conf"

up() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    || { echo "slurm-local: slurmctld/slurmd are not installed (apt-get install slurmctld slurmd slurm-client)" >&2; exit 3; }
  [ "$(id -u)" = 0 ] || { echo "slurm-local: the daemons run as root here" >&2; exit 3; }
  mkdir -p "$dir/state" "$dir/spool"
  local host; host=$(hostname -s)
  cat > "$SLURM_CONF" <<CONF
ClusterName=segdist-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
KillWait=30
# a requeued job may start again after cred_expire seconds (120 by default); schedule promptly
AuthInfo=cred_expire=5
SchedulerParameters=sched_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc)
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld -D >"$dir/slurmctld.out" 2>&1 &
  slurmd -D >"$dir/slurmd.out" 2>&1 &
  for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -q idle && { echo "export SLURM_CONF=$SLURM_CONF"; return; }
    sleep 0.5
  done
  echo "slurm-local: the node did not become idle in 30 s; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  down; exit 1
}

down() {
  scontrol shutdown >/dev/null 2>&1 || true
  for f in slurmctld slurmd; do
    [ -f "$dir/$f.pid" ] && kill "$(cat "$dir/$f.pid")" 2>/dev/null || true
  done
  sleep 1
}

state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }

check() {
  up >/dev/null
  trap down EXIT
  local run="$dir/run" cfg="$dir/recipe.cfg" steps=240
  rm -rf "$run"
  cat > "$cfg" <<CFG
model: unet
width: 2
image_size: 32
batch_size: 8
epochs: 2
steps_per_epoch: $((steps / 2))
val_images: 4
checkpoint_every: 20
log_every: 1
checkpoint_dir: $run
CFG
  local job
  job=$(SEGDIST="${SEGDIST:-$PWD/.build/release/segdist}" sbatch --parsable --nodes=1 --ntasks=2 --ntasks-per-node=2 \
        --cpus-per-task=1 --output="$dir/job-%j.out" --export=ALL launch/slurm.sbatch "$cfg")
  echo "slurm-local: job $job submitted (2 ranks, $steps steps)"
  for _ in $(seq 600); do ls "$run"/step-*.safetensors >/dev/null 2>&1 && break; sleep 0.1; done
  ls "$run"/step-*.safetensors >/dev/null 2>&1 || { echo "slurm-local: no checkpoint appeared; job state $(state "$job")"; cat "$dir/job-$job.out"; exit 1; }
  scontrol requeue "$job"
  echo "slurm-local: job $job requeued (preempted) after its first checkpoint"
  for _ in $(seq 1200); do
    [ "$(state "$job")" = COMPLETED ] && break
    case "$(state "$job")" in FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break;; esac
    sleep 0.25
  done
  local out="$dir/job-$job.out"
  echo "----- $out"; cat "$out"; echo "-----"
  [ "$(state "$job")" = COMPLETED ] || { echo "slurm-local: FAILED: job $job ended $(state "$job")"; exit 1; }
  grep -q '"stopped_by_signal":[1-9]' "$out" || { echo "slurm-local: FAILED: the first start was not stopped by the preemption signal"; exit 1; }
  grep -q "resum" "$out" || { echo "slurm-local: FAILED: the second start did not resume"; exit 1; }
  grep -q "\"steps\":$steps" "$out" || { echo "slurm-local: FAILED: the run did not reach step $steps"; exit 1; }
  # every training step trained (and logged) exactly once across both starts
  local logged repeated
  logged=$(grep '"kind":"train"' "$run/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/' | sort -n)
  repeated=$(echo "$logged" | uniq -d | head -3 | tr '\n' ' ')
  [ -z "$repeated" ] && [ "$(echo "$logged" | wc -l)" = "$steps" ] && [ "$(echo "$logged" | tail -1)" = "$steps" ] \
    || { echo "slurm-local: FAILED: metrics.jsonl logs $(echo "$logged" | wc -l) train steps (repeated: ${repeated:-none}), not 1..$steps once each"; exit 1; }
  echo "slurm-local: OK: preempted at a step boundary with a checkpoint, requeued, resumed, and trained steps 1..$steps exactly once"
}

case "$command" in
  up) up ;;
  down) down ;;
  check) check ;;
  *) echo "usage: launch/slurm-local.sh up|down|check [DIR]" >&2; exit 2 ;;
esac
