#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests of `bnn-opt reproduce --launcher slurm`.
#
#   tools/slurm_cluster.sh install     install munge, slurmctld, slurmd and the client from the Debian packages when
#                                      missing (needs root and apt-get; says why not otherwise, exit 1)
#   tools/slurm_cluster.sh start DIR   write DIR/slurm.conf (NodeName=localhost with this machine's cores), start
#                                      munged, slurmctld and slurmd with their key, state, spool, logs and pid files in
#                                      DIR; wait until the node takes jobs; print `export SLURM_CONF=DIR/slurm.conf`
#   tools/slurm_cluster.sh stop DIR    stop exactly the daemons `start DIR` started (the pids in DIR/*.pid)
#
# Exit status 3: Slurm cannot be had here (not root, packages missing and not installable); 1: it failed to start.
# The daemons use their own ports and munge socket, so a Slurm or munge already running here is left alone.
set -euo pipefail

SLURM_BINS=(munged mungekey slurmctld slurmd sbatch srun squeue scancel scontrol)
missing() { for b in "${SLURM_BINS[@]}"; do command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 || echo "$b"; done; }

install() {
  local miss; miss=$(missing)
  if [ -z "$miss" ]; then echo "slurm_cluster: Slurm and munge are installed"; return 0; fi
  if [ "$(id -u)" != 0 ]; then echo "slurm_cluster: cannot install Slurm (missing: $(echo $miss)): not root"; return 3; fi
  if ! command -v apt-get >/dev/null; then echo "slurm_cluster: cannot install Slurm (missing: $(echo $miss)): no apt-get"; return 3; fi
  echo "slurm_cluster: installing munge slurmctld slurmd slurm-client (missing: $(echo $miss))"
  # the packages' own services are not needed (this script starts its own daemons)
  if ! { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
           munge slurmctld slurmd slurm-client >/dev/null; }; then
    echo "slurm_cluster: apt-get could not install munge slurmctld slurmd slurm-client"; return 3
  fi
  [ -z "$(missing)" ] || { echo "slurm_cluster: still missing after apt-get: $(echo $(missing))"; return 3; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {
  local dir; dir=$(mkdir -p "$1" && cd "$1" && pwd)
  export PATH="$PATH:/usr/sbin:/sbin"
  [ -z "$(missing)" ] || { echo "slurm_cluster: not installed (missing: $(echo $(missing))); run: $0 install"; return 3; }
  [ "$(id -u)" = 0 ] || { echo "slurm_cluster: slurmd must run as root to start jobs"; return 3; }
  mkdir -p "$dir"/{state,spool,munge,log}
  chmod 700 "$dir/munge"
  mungekey --create --keyfile "$dir/munge/munge.key" --force 2>/dev/null || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  munged --key-file "$dir/munge/munge.key" --socket "$dir/munge/munge.socket" --pid-file "$dir/munged.pid" \
         --log-file "$dir/log/munged.log" --seed-file "$dir/munge/munge.seed" --force
  local mem; mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat > "$dir/slurm.conf" <<EOF
# one-node cluster written by tools/slurm_cluster.sh
ClusterName=bnnopt
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=10
MinJobAge=600
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -i
  slurmd -N localhost
  local i
  for i in $(seq 1 60); do  # up in a few seconds: the node idle (takes jobs)
    if sinfo -h -n localhost -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      echo "export SLURM_CONF=$dir/slurm.conf"; return 0
    fi
    sleep 0.5
  done
  echo "slurm_cluster: the node did not come up in 30 s; logs in $dir/log"; stop "$dir" >/dev/null; return 1
}

stop() {
  local dir=$1 f pid ids
  # first the jobs of this cluster (their slurmstepd processes outlive slurmd): cancel them and let them end
  if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    export SLURM_CONF="$dir/slurm.conf"
    ids=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$ids" ]; then
      scancel $ids 2>/dev/null || true
      for _ in $(seq 1 150); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
    fi
  fi
  for f in slurmd slurmctld munged; do  # the pids this script's daemons wrote, nothing found by name
    [ -f "$dir/$f.pid" ] || continue
    pid=$(cat "$dir/$f.pid")
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$dir/$f.pid"
  done
  echo "slurm_cluster: stopped the daemons of $dir"
}

case "${1:-}" in
  install) install ;;
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR"; exit 2; }; start "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR"; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 install | start DIR | stop DIR"; exit 2 ;;
esac
