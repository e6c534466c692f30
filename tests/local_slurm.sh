#!/usr/bin/env bash
# A real one-node SLURM on this machine, for the tests that submit batch jobs (tests/test_slurm.py).
#
#   tests/local_slurm.sh start [DIR]   install Debian's SLURM and munge if missing (root), write a one-node configuration
#                                      from this machine's cores and memory into DIR, start munged, slurmctld and slurmd
#                                      (no systemd), wait until the node is idle; prints `export SLURM_CONF=DIR/slurm.conf`
#   tests/local_slurm.sh install       only the install (CI runs it beside the venv's install)
#   tests/local_slurm.sh stop [DIR]    cancel every job, stop the job steps and the three daemons by their PIDs; nothing
#                                      of DIR's SLURM is left running (safe to call twice, or when start failed half-way)
#
# DIR (default $HIT_NB_SLURM_DIR or /tmp/hit_nb_slurm) holds everything: configuration, munge key and socket, state,
# logs, PID files. Nothing under /etc is changed, so a SLURM the machine already has is left alone. Exit codes of start:
# 0 ready, 3 SLURM is missing and cannot be installed here (not root), 1 anything else (the daemons' logs are printed).
set -euo pipefail
cmd=${1:-}
DIR=$(realpath -m "${2:-${HIT_NB_SLURM_DIR:-/tmp/hit_nb_slurm}}")
export SLURM_CONF=$DIR/slurm.conf
# start empties DIR: never a folder that holds anything else
case $DIR in /|/tmp|/root|/home|"$HOME") echo "local_slurm: DIR=$DIR: give a folder of its own" >&2; exit 2 ;; esac
PIDS=(slurmd slurmctld munged)            # the order they are stopped in

log() { echo "local_slurm: $*" >&2; }

port() {   # a free TCP port on loopback
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install() {
    local missing=()
    for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged; do
        [[ -x $b ]] || missing+=("$b")
    done
    (( ${#missing[@]} == 0 )) && return 0
    if [[ $(id -u) != 0 ]]; then
        log "SLURM is not installed (${missing[*]}) and installing it needs root: apt-get install slurmctld slurmd" \
            "slurm-client munge"
        exit 3
    fi
    log "installing Debian's slurmctld, slurmd, slurm-client and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # the packages' own service start is refused without systemd (policy-rc.d), which is what we want
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

wait_for() {   # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds
    local t=$1 what=$2; shift 2
    for _ in $(seq $((t * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "timed out after ${t} s waiting for $what"
    return 1
}

node_idle() { [[ $(sinfo -h -n hitnode -o %T 2>/dev/null) == idle ]]; }

dump_logs() {
    for f in "$DIR"/*.log; do [[ -f $f ]] && { log "--- $f"; tail -n 30 "$f" >&2; }; done
}

start() {
    install
    stop_daemons quiet
    rm -rf "$DIR"
    mkdir -p "$DIR"/{state,spool,munge}
    chmod 700 "$DIR/munge"
    # munge: a key and a socket of our own
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    /usr/sbin/munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/munge.seed"
    wait_for 10 "munged's socket" test -S "$DIR/munge/munge.socket" || { dump_logs; exit 1; }
    # the node as slurmd sees it: its CPUs (one per core, so that jobs of 1 CPU share the machine) and memory
    local cpus mem
    cpus=$(slurmd -C | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p')
    mem=$(slurmd -C | sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p')
    mem=$(( mem * 9 / 10 ))                # leave the rest to this machine's own processes
    cat > "$SLURM_CONF" <<EOF
# written by tests/local_slurm.sh: a one-node cluster on this machine
ClusterName=hitnb
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(port)
SlurmdPort=$(port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
DefMemPerCPU=$(( mem / cpus ))
KillWait=5
MinJobAge=60
NodeName=hitnode NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=hitnode Default=YES MaxTime=INFINITE State=UP
EOF
    /usr/sbin/slurmctld -f "$SLURM_CONF" -i
    /usr/sbin/slurmd -f "$SLURM_CONF" -N hitnode
    if ! wait_for 60 "the node to be idle" node_idle; then
        sinfo -N -l >&2 || true
        dump_logs
        exit 1
    fi
    log "one node, $cpus CPUs, $mem MB, partition debug: idle (SLURM_CONF=$SLURM_CONF)"
    echo "export SLURM_CONF=$SLURM_CONF"
}

pid_of() { local f=$DIR/$1.pid; [[ -s $f ]] && cat "$f" || true; }

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

stop_pid() {   # stop_pid PID: TERM, then KILL after 10 s
    local pid=$1
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_daemons() {
    [[ -f $SLURM_CONF ]] || return 0
    # the jobs first, while slurmctld can still cancel them, and the job steps' processes by their PIDs
    if alive "$(pid_of slurmctld)"; then
        scancel --full --user=root >/dev/null 2>&1 || true
        wait_for 20 "the jobs to end" bash -c "[[ -z \$(squeue -h -o %i 2>/dev/null) ]]" || true
    fi
    local steps
    steps=$(scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' || true)
    for d in "${PIDS[@]}"; do stop_pid "$(pid_of "$d")"; done
    for pid in $steps; do stop_pid "$pid"; done
    # slurmstepd daemons of this configuration that outlived slurmd (their spool is ours)
    for pid in $(pgrep -x slurmstepd || true); do
        if tr '\0' ' ' < "/proc/$pid/environ" 2>/dev/null | grep -q "SLURM_CONF=$SLURM_CONF"; then
            stop_pid "$pid"
        fi
    done
    [[ ${1:-} == quiet ]] || log "stopped (logs in $DIR)"
}

case $cmd in
    install) install ;;
    start) start ;;
    stop) stop_daemons ;;
    *) echo "usage: $0 install | start [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
