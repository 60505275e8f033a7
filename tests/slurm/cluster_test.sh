#!/usr/bin/env bash
# One-node SLURM cluster on this machine, private to this process: run under
#   unshare -m --propagation private bash cluster_test.sh WORKDIR CONFIG
# It bind-mounts its own folder onto /etc/slurm (so nothing global changes), starts
# munged (if none runs), slurmctld and slurmd on free ports of their own (another SLURM
# controller on this machine keeps the default ports and its jobs), runs the workflow
# through `snakemake --profile slurm` (its output in WORKDIR/snakemake_slurm.log, which
# names the job ids it submitted), lists the SLURM jobs, and stops the daemons it started.
# DECOY=1 first starts an unrelated controller on the default ports (if they are free)
# with a job of its own queued: the situation the isolation is for.
set -euo pipefail
WORK=$(realpath "$1"); CFG=$(realpath "$2")
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SNAKEMAKE=${SNAKEMAKE:-$REPO/.venv/bin/snakemake}
STATE=$WORK/slurm-state
mkdir -p "$STATE"/spool "$STATE"/state "$STATE"/log /etc/slurm
NODE_LINE=$(slurmd -C | head -1)
NODE=$(echo "$NODE_LINE" | sed -E 's/^NodeName=([^ ]+).*/\1/')
# the settings both controllers (ours and the decoy) share
COMMON="SlurmctldHost=$(hostname -s)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port)
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT=$(free_port); done
cat > "$STATE/slurm.conf" <<CONF
ClusterName=prunebiastest
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
$COMMON
ReturnToService=2
MinJobAge=3600
$NODE_LINE State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES State=UP MaxTime=INFINITE
CONF

DECOY_DIR=$WORK/decoy-slurm
STARTED_DECOY=0
port_free() { python3 -c "import socket, sys; s = socket.socket(); s.bind(('', $1))" 2>/dev/null; }
if [ "${DECOY:-0}" = 1 ] && ! { port_free 6817 && port_free 6818; }; then
  echo "decoy: the default ports are taken (another controller is running already)"
fi
if [ "${DECOY:-0}" = 1 ] && port_free 6817 && port_free 6818; then
  mkdir -p "$DECOY_DIR"/state "$DECOY_DIR"/log
  cat > "$DECOY_DIR/slurm.conf" <<CONF
ClusterName=decoy
StateSaveLocation=$DECOY_DIR/state
SlurmctldPidFile=$DECOY_DIR/slurmctld.pid
SlurmctldLogFile=$DECOY_DIR/log/slurmctld.log
$COMMON
MinJobAge=3600
NodeName=decoynode NodeAddr=127.0.0.1 CPUs=1 RealMemory=100 State=UNKNOWN
PartitionName=decoy Nodes=decoynode Default=YES State=UP MaxTime=INFINITE
CONF
fi
mount --bind "$STATE" /etc/slurm

STARTED_MUNGE=0
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  runuser -u munge -- munged
  STARTED_MUNGE=1
fi
cleanup() {
  [ "$STARTED_DECOY" = 1 ] && [ -f "$DECOY_DIR/slurmctld.pid" ] && kill "$(cat "$DECOY_DIR/slurmctld.pid")" 2>/dev/null || true
  [ -f "$STATE/slurmd.pid" ] && kill "$(cat "$STATE/slurmd.pid")" 2>/dev/null || true
  [ -f "$STATE/slurmctld.pid" ] && kill "$(cat "$STATE/slurmctld.pid")" 2>/dev/null || true
  [ "$STARTED_MUNGE" = 1 ] && pkill -x munged 2>/dev/null || true
  sleep 1
}
trap cleanup EXIT
if [ -f "$DECOY_DIR/slurm.conf" ]; then  # the unrelated controller, on the default ports, with a queued job
  slurmctld -f "$DECOY_DIR/slurm.conf" && STARTED_DECOY=1
  for _ in $(seq 1 40); do SLURM_CONF=$DECOY_DIR/slurm.conf squeue -h >/dev/null 2>&1 && break; sleep 0.5; done
  SLURM_CONF=$DECOY_DIR/slurm.conf sbatch -p decoy -J foreign --wrap "sleep 600" || true
  echo "decoy controller jobs: $(SLURM_CONF=$DECOY_DIR/slurm.conf squeue -h -o %i | tr '\n' ' ')"
fi
slurmctld
slurmd
for _ in $(seq 1 60); do
  state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
  [ "$state" = "idle" ] && break
  sleep 0.5
done
echo "node state: $(sinfo -h -o %t | head -1)"

cd "$WORK"
start=$(date +%s)
"$SNAKEMAKE" -s "$REPO/Snakefile" --directory "$WORK" --profile "$REPO/slurm" --configfile "$CFG" \
  --default-resources slurm_partition=debug mem_mb=1500 runtime=30 \
  --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2 --jobs 2 \
  2>&1 | tee "$WORK/snakemake_slurm.log"
echo "workflow through SLURM took $(( $(date +%s) - start )) s"
squeue --states=all -h -o "%i|%T|%k" > "$WORK/slurm_jobs.txt"
cat "$WORK/slurm_jobs.txt"
