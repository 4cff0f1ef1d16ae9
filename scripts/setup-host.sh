#!/usr/bin/env bash
# virtform host set-up: installs libvirt + QEMU, fixes /dev/kvm permissions, starts virtlogd and
# libvirtd without systemd, installs npm dependencies and builds. Idempotent: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }
need_root() { [ "$(id -u)" -eq 0 ] || { echo "setup-host.sh must run as root (it installs packages and starts libvirtd)" >&2; exit 1; }; }
need_root

# xorriso, genisoimage (isoinfo): the unit tests read the NoCloud seed images back with them;
# python3-yaml: PyYAML, the parser cloud-init reads meta-data with, checks the seed's YAML;
# cpio: scripts/build-tiny-guest.sh packs the tiny guest's initramfs.
# ovmf: UEFI firmware for spec.boot.firmware: uefi (libvirt's firmware autoselection reads its
# descriptors in /usr/share/qemu/firmware).
# git: the --git manifest source runs Debian's git (fetch, checkout, verify-commit); openssh-client
# for ssh remotes and ssh commit signatures (ssh-keygen -Y verify; the tests make keys with it).
# iproute2 (ip netns, veth) and util-linux (unshare, nsenter, mount): scripts/test-host.sh, the
# private libvirt hosts of the tests (test/support/test-host.ts).
# postgresql: `make test-postgres` runs the state store and the engine on PostgreSQL, each run in a
# private cluster of its own (test/support/postgres.ts: initdb in a temp dir, a free port on
# 127.0.0.1). Installing the package creates (and, where an init system runs, starts) Debian's own
# cluster `15/main` on port 5432: this script LEAVES IT ALONE (it neither starts nor stops it) and
# nothing in virtform's tests connects to it.
# openssh-server, netcat-openbsd, openssl: the transport suites (test/fleet/transport*.test.ts) run
# an sshd of their own inside a test host (its own host keys, port and pid file; virt-ssh-helper
# from libvirt-clients, or nc, reaches that host's libvirtd) and make a CA and certificates with
# openssl for qemu+tls. Installing openssh-server must not start the machine's own sshd: see below.
# curl: the dashboard's non-loopback test (test/integration/dashboard/netns-auth.test.ts) asks the
# watcher from inside a network namespace of its own.
PKGS=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base procps xorriso genisoimage cpio python3-yaml ovmf git openssh-client iproute2 util-linux postgresql openssh-server netcat-openbsd openssl curl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -q
  # Keep the packages' init scripts from starting services while they install (openssh-server
  # would start a system sshd on port 22 of this machine; the tests start their own, inside a
  # test host). A policy-rc.d of the machine's own is left as it is; an sshd that already ran
  # before is not touched.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# virtform setup-host.sh: no service starts during package installation\nexit 101\n' >"$policy"
    chmod 0755 "$policy"; own_policy=1
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
  if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
  [ "$rc" = 0 ] || exit "$rc"
else
  log "Debian packages present"
fi

# /dev/kvm: udev on a normal host makes it root:kvm 0660. Left root:root 0600, libvirt re-probes QEMU
# capabilities on every call (about 30 s per define/start).
if [ -e /dev/kvm ]; then
  getent group kvm >/dev/null || groupadd -r kvm
  if [ "$(stat -c '%G:%a' /dev/kvm)" != "kvm:660" ]; then
    log "setting /dev/kvm to root:kvm 0660"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
else
  log "no /dev/kvm: domains will use TCG (type='qemu')"
fi

mkdir -p /var/run/libvirt /var/lib/virtform
# A daemon counts only when it runs in this mount namespace: the private test hosts
# (scripts/test-host.sh) share the pid namespace, so their libvirtd/virtlogd are listed by pgrep
# too, and a root libvirtd that died beside them was never started again. Zombies (killed a moment
# ago, not yet reaped, still holding the pid file) do not count either.
alive_here() {
  local self p; self=$(readlink /proc/self/ns/mnt)
  for p in $(pgrep -x "$1"); do
    [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$self" ] || continue
    ps -o stat= -p "$p" 2>/dev/null | grep -qv '^Z' && return 0
  done
  return 1
}
if ! alive_here virtlogd; then log "starting virtlogd"; virtlogd -d; fi
# Decide by "does it answer", not by pgrep alone.
libvirtd_alive() { alive_here libvirtd; }
for i in $(seq 1 120); do
  if virsh -c qemu:///system version >/dev/null 2>&1; then break; fi
  if ! libvirtd_alive; then log "starting libvirtd"; libvirtd -d || true; fi
  [ "$i" -eq 120 ] && { echo "libvirtd did not answer within 60 s" >&2; exit 1; }
  sleep 0.5
done
# The tiny guest (Debian cloud kernel + busybox initramfs reading a NoCloud seed) that the example
# manifests boot: built or taken from the cache by scripts/build-tiny-guest.sh, then copied to a
# stable place the manifests name (copies, not links into the cache: libvirt changes the owner of
# a kernel and initrd while a domain runs from them, and a rebuild replaces the cache directory).
TINY=/var/lib/virtform/tiny-guest
if [ "${VIRTFORM_SKIP_TINY_GUEST:-0}" != "1" ]; then
  built=$(bash scripts/build-tiny-guest.sh)
  mkdir -p "$TINY"
  for f in vmlinuz initrd.img kernel-version; do
    if ! cmp -s "$built/$f" "$TINY/$f"; then
      log "tiny guest: $TINY/$f (from $built)"
      install -m 0644 "$built/$f" "$TINY/.$f.tmp" && mv -f "$TINY/.$f.tmp" "$TINY/$f"
    fi
  done
fi

if command -v pg_lsclusters >/dev/null; then
  log "PostgreSQL: Debian's own cluster left as it is (tests use private clusters): $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2" port "$3" "$4}' | tr '\n' ' ')"
fi
log "libvirtd answers: $(virsh -c qemu:///system version 2>/dev/null | grep -i 'running hypervisor' || true)"

if [ "${VIRTFORM_SKIP_NPM:-0}" != "1" ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"; npm ci --no-audit --no-fund
  fi
  log "building"; npm run -s build
fi
log "host ready"
