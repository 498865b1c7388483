#!/usr/bin/env bash
# A single-node SLURM 22.05 cluster with accounting, from Debian packages, without systemd: for
# trying the harness's `executor: {kind: slurm}` on one machine and for the tests marked `slurm`.
#
#   sudo scripts/slurm-local.sh up       # install if needed, configure, start, run a first job
#   sudo scripts/slurm-local.sh down     # cancel its jobs, stop its daemons (by their PID files)
#   scripts/slurm-local.sh status        # which daemons run, and the node's state
#   export SLURM_CONF=/tmp/slurm-local/etc/slurm.conf   # then sbatch, squeue, sacct, bench run
#
# Both commands are idempotent and every wait is bounded. Nothing outside the state folder
# $SLURM_LOCAL_DIR (default /tmp/slurm-local) is written, apart from installing the packages:
# its own munge key and socket, a MariaDB on a unix socket only, slurmdbd, slurmctld and one node
# called "localhost" with this machine's CPUs and memory. Ports: $SLURM_LOCAL_PORT (default
# 6817) for slurmctld, +1 for slurmd, +2 for slurmdbd. Needs root (the daemons run as root).
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/slurm-local}
PORT=${SLURM_LOCAL_PORT:-6817}
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; stopped in reverse
export SLURM_CONF=$DIR/etc/slurm.conf

say() { echo "slurm-local: $*" >&2; }
die() { say "$*"; exit 1; }

# wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.5 s until it succeeds or time is up.
wait_for() {
  local limit=$1 what=$2 end
  shift 2
  end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${limit}s waiting for $what (logs: $DIR/log)"
    sleep 0.5
  done
}

pid_of() { cat "$DIR/run/$1.pid" 2>/dev/null || true; }

# running NAME: the PID in NAME's PID file is alive and is that program.
running() {
  local pid
  pid=$(pid_of "$1")
  [[ -n $pid && -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm") == "$1" ]]
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get (Debian or Ubuntu only)"
  say "installing ${missing[*]}"
  timeout 120 apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_configs() {
  local cpus mem
  cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mkdir -p "$DIR"/{etc,run,log,munge,spool/ctld,spool/d}
  chmod 755 "$DIR"
  cat >"$DIR/etc/slurm.conf" <<EOF
# written by scripts/slurm-local.sh
ClusterName=local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups here: track processes by their parent, bind no tasks
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
# without accounting sacct fails and submitit sees every job as UNKNOWN
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT + 2))
# for clients and slurmctld, the munge socket to reach slurmdbd through
AccountingStoragePass=$DIR/munge/munge.socket
JobCompType=jobcomp/none
# per-CPU memory, or every job would claim the whole node and jobs would run one at a time
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((mem / cpus))
SlurmdParameters=config_overrides
ReturnToService=2
# submitit ignores SIGTERM: a cancelled job would run on for KillWait seconds (default 30)
KillWait=2
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
# written by scripts/slurm-local.sh
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
DbdHost=localhost
DbdPort=$((PORT + 2))
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf"
}

start_munged() {
  [[ -s $DIR/munge/munge.key ]] || { dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none; }
  chmod 400 "$DIR/munge/munge.key"
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
  wait_for "$WAIT_S" munged munge --socket="$DIR/munge/munge.socket" -n
}

start_mariadbd() {
  local db=$DIR/mysql
  if [[ ! -d $db/mysql ]]; then
    timeout "$WAIT_S" mariadb-install-db --no-defaults --user=root --datadir="$db" --skip-test-db \
      >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: $DIR/log/mariadb-install.log"
  fi
  setsid mariadbd --no-defaults --user=root --datadir="$db" --skip-networking --socket="$DIR/run/mysqld.sock" \
    --pid-file="$DIR/run/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" </dev/null >/dev/null 2>&1 &
  wait_for "$WAIT_S" MariaDB mariadb-admin --no-defaults --socket="$DIR/run/mysqld.sock" ping
}

start_slurmdbd() {
  MYSQL_UNIX_PORT=$DIR/run/mysqld.sock slurmdbd
  wait_for "$WAIT_S" slurmdbd timeout 5 sacctmgr -n list cluster
}

start_slurmctld() {
  slurmctld
  wait_for "$WAIT_S" slurmctld timeout 5 scontrol ping
}

start_slurmd() {
  slurmd -N localhost
  wait_for "$WAIT_S" "the node to be idle" node_idle
}

node_idle() { [[ $(timeout 5 sinfo -h -n localhost -o %t) == idle* ]]; }

first_job() {
  local id
  id=$(timeout "$WAIT_S" sbatch --parsable --wait -o /dev/null -t 1 --wrap true) || die "the first job failed"
  wait_for "$WAIT_S" "job $id in the accounting database" job_recorded "$id"
  say "up: job $id ran and is in the accounting database; export SLURM_CONF=$SLURM_CONF"
}

job_recorded() { [[ $(timeout 5 sacct -n -X -P -j "$1" -o State) == COMPLETED* ]]; }

up() {
  ((EUID == 0)) || die "needs root (it installs packages and runs the daemons as root)"
  install_packages
  write_configs
  for d in "${DAEMONS[@]}"; do
    running "$d" || "start_$d"
  done
  first_job
}

stop() {
  local pid end
  pid=$(pid_of "$1")
  if running "$1"; then
    kill "$pid"
    end=$((SECONDS + WAIT_S / 2))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$1 ($pid) ignored SIGTERM; killing it"
      kill -KILL "$pid"
    fi
  fi
  rm -f "$DIR/run/$1.pid"
}

down() {
  local jobs=() i
  if running slurmctld; then  # jobs would outlive slurmd
    mapfile -t jobs < <(timeout 10 squeue -h -o %i)
    ((${#jobs[@]} == 0)) || timeout 10 scancel -s KILL "${jobs[@]}" || true
  fi
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    stop "${DAEMONS[i]}"
  done
  say "down (state kept in $DIR; remove it for a fresh cluster)"
}

status() {
  local d
  for d in "${DAEMONS[@]}"; do
    if running "$d"; then echo "$d: running ($(pid_of "$d"))"; else echo "$d: stopped"; fi
  done
  if running slurmctld; then timeout 5 sinfo; fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
