#!/usr/bin/env bash
# A private libvirt host on this machine, for tests and parallel work: its own libvirtd (and
# virtlogd) in its own network namespace (a veth pair, a private /24), its own UTS namespace
# (hostname vfh-NAME, and a fixed host_uuid of its own in libvirtd.conf, so virtform tells hosts
# apart) and its own mount namespace (private dirs bind-mounted over /var/run/libvirt,
# /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt, /etc/libvirt and /var/lib/virtform-test;
# only libvirt's *.conf copied), pid files inside its state folder. Inside, qemu:///system is that
# host's libvirtd; from outside it answers on qemu+tcp://ADDR/system (no auth: reachable only from
# this machine's own namespaces).
#
#   test-host.sh up NAME [INDEX]     start (idempotent); INDEX 1-250 picks the /24 10.251.INDEX.0
#                                    (without INDEX the first free one of 1-200; 230-249 are the test suites')
#   test-host.sh exec NAME -- CMD…   run CMD inside (network, UTS + mount namespace), env VIRTFORM_LIBVIRTD_PIDFILE set
#   test-host.sh addr NAME           the host's address (for qemu+tcp://ADDR/system)
#   test-host.sh down NAME           stop its domains, its daemons (by pid), remove the namespace and state
#   test-host.sh list                hosts that are up
#
# NAME: 1-8 of [a-z0-9] (it becomes part of interface names, at most 15 characters).
# Everything is found by its pid files and names under /run/virtform-test-hosts/NAME, never by
# process name, so other libvirtd processes (the machine's own, other hosts) are left alone.
set -euo pipefail

STATE_ROOT=/run/virtform-test-hosts
DATA_ROOT=/var/lib/virtform-test-hosts

die() { echo "test-host.sh: $*" >&2; exit 2; }
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, libvirtd)"

check_name() {
  [[ "${1:-}" =~ ^[a-z0-9]{1,8}$ ]] || die "NAME must be 1-8 of [a-z0-9], got '${1:-}'"
}

alive() { # pid file -> 0 when its process is alive and not a zombie
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && ! awk '{exit !($3=="Z")}' "/proc/$pid/stat"
}

# A UUID of its own for each host, the same across restarts (this machine has no DMI product UUID:
# libvirtd would make up a new one at every start, and every namespace host would report the
# machine's hostname, so virtform could not tell two of them apart).
host_uuid() {
  local h; h=$(printf 'virtform-test-host-%s' "$1" | sha256sum | cut -c1-32)
  echo "${h:0:8}-${h:8:4}-4${h:13:3}-8${h:17:3}-${h:20:12}"
}

index_of() { cat "$STATE_ROOT/$1/index"; }
addr_of() { echo "10.251.$(index_of "$1").2"; }

ns_exec() { # NAME CMD... : run inside the host's namespaces
  local name=$1; shift
  local holder
  holder=$(cat "$STATE_ROOT/$name/holder.pid")
  VIRTFORM_LIBVIRTD_PIDFILE="$STATE_ROOT/$name/libvirtd.pid" nsenter -t "$holder" -m -n -u -- "$@"
}

wait_answers() { # NAME: wait until qemu:///system answers inside
  local name=$1 i
  for i in $(seq 1 120); do
    if ns_exec "$name" virsh -c qemu:///system version >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "libvirtd of host $name did not answer within 60 s (log: $DATA_ROOT/$name/log/libvirtd.log)"
}

cmd_up() {
  local name=$1 index=${2:-}
  check_name "$name"
  local st="$STATE_ROOT/$name" dd="$DATA_ROOT/$name"
  if [ -f "$st/holder.pid" ] && alive "$st/holder.pid"; then
    if ! alive "$st/libvirtd.pid"; then start_daemons "$name"; fi
    wait_answers "$name"
    echo "host $name up at $(addr_of "$name") (already)"
    return 0
  fi
  [ -f "$st/holder.pid" ] && cmd_down "$name" >/dev/null 2>&1 || true
  if [ -z "$index" ]; then # first free index
    for index in $(seq 1 200); do
      grep -qx "$index" "$STATE_ROOT"/*/index 2>/dev/null || break
    done
  fi
  [[ "$index" =~ ^[0-9]+$ ]] && [ "$index" -ge 1 ] && [ "$index" -le 250 ] || die "INDEX must be 1-250"
  mkdir -p "$st" "$dd"/{run,lib,log,cache,etc,vftest}
  echo "$index" >"$st/index"
  local ns="vfh-$name" hv="vh-$name" nv="vn-$name"
  ip netns add "$ns" 2>/dev/null || true
  ip link del "$hv" 2>/dev/null || true
  ip link add "$hv" type veth peer name "$nv"
  ip link set "$nv" netns "$ns"
  ip addr add "10.251.$index.1/24" dev "$hv"
  ip link set "$hv" up
  ip -n "$ns" addr add "10.251.$index.2/24" dev "$nv"
  ip -n "$ns" link set "$nv" up
  ip -n "$ns" link set lo up
  # libvirt's own configuration files only (not its state: networks, pools, domains of the machine)
  rm -rf "$dd/etc"/* && mkdir -p "$dd/etc/qemu"
  cp /etc/libvirt/*.conf "$dd/etc/" 2>/dev/null || true
  cat >>"$dd/etc/libvirtd.conf" <<EOF

# virtform test host $name
listen_tls = 0
listen_tcp = 1
auth_tcp = "none"
listen_addr = "10.251.$index.2"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
host_uuid = "$(host_uuid "$name")"
EOF
  # The holder: a process whose network namespace is $ns and whose mount namespace is private,
  # with the private dirs bind-mounted; every later command enters it by its pid.
  local mounts="mount --make-rprivate / &&
    mount --bind '$dd/run' /run/libvirt 2>/dev/null || { mkdir -p /run/libvirt && mount --bind '$dd/run' /run/libvirt; }
    mount --bind '$dd/lib' /var/lib/libvirt &&
    mount --bind '$dd/log' /var/log/libvirt &&
    mount --bind '$dd/cache' /var/cache/libvirt &&
    mount --bind '$dd/etc' /etc/libvirt &&
    mkdir -p /var/lib/virtform-test && mount --bind '$dd/vftest' /var/lib/virtform-test"
  mkdir -p /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirt
  setsid ip netns exec "$ns" unshare --mount --uts --propagation private -- \
    bash -c "$mounts && hostname 'vfh-$name' && echo \$\$ > '$st/holder.pid' && exec sleep infinity" </dev/null >"$st/holder.log" 2>&1 &
  local i
  for i in $(seq 1 50); do [ -s "$st/holder.pid" ] && alive "$st/holder.pid" && break; sleep 0.1; done
  alive "$st/holder.pid" || die "the namespace holder did not start: $(cat "$st/holder.log")"
  start_daemons "$name"
  wait_answers "$name"
  echo "host $name up at 10.251.$index.2 (qemu+tcp://10.251.$index.2/system; inside: scripts/test-host.sh exec $name -- CMD)"
}

start_daemons() {
  local name=$1 st="$STATE_ROOT/$1"
  # after a libvirtd killed alone (a test's SIGKILL), its virtlogd still runs: start only what is not
  alive "$st/virtlogd.pid" || ns_exec "$name" virtlogd -d -p "$st/virtlogd.pid"
  alive "$st/libvirtd.pid" || ns_exec "$name" libvirtd -d -l -p "$st/libvirtd.pid"
}

cmd_down() {
  local name=$1 st="$STATE_ROOT/$1"
  check_name "$name"
  [ -d "$st" ] || { echo "host $name is not up"; return 0; }
  if alive "$st/holder.pid" && alive "$st/libvirtd.pid"; then
    # stop its domains first so their QEMU processes go with it
    local d
    for d in $(ns_exec "$name" virsh -c qemu:///system list --name 2>/dev/null); do
      ns_exec "$name" virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    done
  fi
  local f pid
  for f in libvirtd virtlogd holder; do
    if alive "$st/$f.pid"; then pid=$(cat "$st/$f.pid"); kill "$pid" 2>/dev/null || true; fi
  done
  sleep 0.5
  for f in libvirtd virtlogd holder; do
    if alive "$st/$f.pid"; then pid=$(cat "$st/$f.pid"); kill -9 "$pid" 2>/dev/null || true; fi
  done
  # QEMU and dnsmasq processes of this host still in its network namespace
  local ns="vfh-$name"
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip link del "vh-$name" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$st" "${DATA_ROOT:?}/$name"
  echo "host $name down"
}

cmd_list() {
  local d
  for d in "$STATE_ROOT"/*/; do
    [ -d "$d" ] || continue
    local n; n=$(basename "$d")
    if alive "$d/libvirtd.pid"; then echo "$n $(addr_of "$n") up"; else echo "$n $(addr_of "$n" 2>/dev/null) down"; fi
  done
}

case "${1:-}" in
  up) shift; [ $# -ge 1 ] || die "usage: up NAME [INDEX]"; cmd_up "$@" ;;
  down) shift; [ $# -eq 1 ] || die "usage: down NAME"; cmd_down "$1" ;;
  addr) shift; check_name "${1:-}"; addr_of "$1" ;;
  exec)
    shift; name=${1:-}; check_name "$name"; shift
    [ "${1:-}" = "--" ] && shift
    [ $# -ge 1 ] || die "usage: exec NAME -- CMD..."
    [ -f "$STATE_ROOT/$name/holder.pid" ] && alive "$STATE_ROOT/$name/holder.pid" || die "host $name is not up"
    ns_exec "$name" "$@" ;;
  list) cmd_list ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
