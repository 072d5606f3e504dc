#!/usr/bin/env bash
# A real one-node SLURM cluster for the duration of one command:  tests/slurm/cluster.sh CMD ...
#
# Installs Debian's slurm-wlm and munge when missing (root only), writes a one-node slurm.conf
# (select/cons_tres, proctrack/linuxproc, task/none, no accounting, this machine's CPUs as
# `slurmd -C` reports them, free ports) and a munge key into a temporary folder, starts munged,
# slurmctld and slurmd there in the foreground of this script (no systemd), waits for the node to
# be idle, runs CMD with SLURM_CONF pointing at the cluster, and on every exit path (CMD's end, an
# error, Ctrl-C, SIGTERM) cancels the cluster's jobs and stops exactly the daemons it started (their
# PIDs), then removes the folder. The exit status is CMD's.
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: slurm-wlm and munge are missing and this is not root: apt-get install slurm-wlm munge" >&2
        exit 2
    fi
    echo "cluster: installing slurm-wlm and munge (apt-get) ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

DIR=$(mktemp -d /tmp/slurm-test.XXXXXX)
chmod 0755 "$DIR"   # munged wants its socket folder searchable by every user
PIDS=()
COMMAND=
stop() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$COMMAND" ] && kill -0 "$COMMAND" 2>/dev/null; then   # interrupted: end CMD first
        kill -TERM "$COMMAND" 2>/dev/null
        wait "$COMMAND" 2>/dev/null
    fi
    if [ ${#PIDS[@]} -ge 2 ]; then   # slurmctld is up: cancel what is left, so no job step outlives slurmd
        scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 60); do
            [ -z "$(squeue --noheader --states=RUNNING,COMPLETING,PENDING 2>/dev/null)" ] && break
            sleep 1
        done
    fi
    local i
    for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do   # slurmd, slurmctld, munged: the reverse of starting
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    rm -rf "$DIR"
    exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HOST=$(hostname -s)
NODE=$(slurmd -C | head -n 1)   # NodeName=HOST CPUs=... RealMemory=...
mkdir -p "$DIR/state" "$DIR/spool"
cat > "$DIR/slurm.conf" <<EOF
ClusterName=test
SlurmctldHost=$HOST
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=3600
KillWait=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
$NODE State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$DIR/slurm.conf

mungekey --create --keyfile="$DIR/munge.key" >/dev/null 2>&1 || dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
chmod 0400 "$DIR/munge.key"
munged --foreground --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed" 2>>"$DIR/munged.err" &
PIDS+=($!)
slurmctld -D -f "$SLURM_CONF" 2>>"$DIR/slurmctld.err" &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" 2>>"$DIR/slurmd.err" &
PIDS+=($!)

for _ in $(seq 60); do
    [ "$(sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null)" = idle ] && break
    sleep 1
done
if [ "$(sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null)" != idle ]; then
    echo "error: the test cluster's node did not become idle within 60 s; logs:" >&2
    tail -n 20 "$DIR"/*.log "$DIR"/*.err >&2 || true
    exit 1
fi
echo "cluster: one node ($NODE) up, SLURM_CONF=$SLURM_CONF, daemons ${PIDS[*]}" >&2
set +e
"$@" &   # waited for with `wait`, which a signal interrupts (a foreground command would delay the trap)
COMMAND=$!
wait "$COMMAND"
