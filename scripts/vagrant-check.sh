#!/usr/bin/env bash
# Check the developer VM definition without booting a VM (this host cannot: no Vagrant Cloud box
# download, and vagrant-libvirt's management network is NAT + SSH to a private range):
#
#   1. `vagrant validate` with the libvirt provider (the vagrant-libvirt plugin checks every
#      `lv.*` setting), then with the VirtualBox provider (Vagrant's own checks of every `vb.*`
#      setting; where VirtualBox is not installed, a stand-in VBoxManage that only answers
#      --version gets Vagrant past its "is VirtualBox installed" probe: nothing else calls it).
#   2. With PROVISION=1: run scripts/vagrant-provision.sh, as `vagrant up` would inside the VM,
#      on this host (Debian 12 like the box) against a copy of the repo made with the Vagrantfile's
#      rsync excludes, with a throwaway state DB; then tear the demo down and check that nothing
#      of it is left.
#
#   bash scripts/vagrant-check.sh            # or: make vagrant-check [PROVISION=1]
#
# Installs Debian's vagrant and vagrant-libvirt packages when missing (root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[vagrant-check] %s\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive

if ! command -v vagrant >/dev/null 2>&1 || ! vagrant plugin list 2>/dev/null | grep -q '^vagrant-libvirt'; then
  [ "$(id -u)" -eq 0 ] || { echo "vagrant and vagrant-libvirt are missing; run as root to install them" >&2; exit 1; }
  log "installing Debian's vagrant and vagrant-libvirt"
  apt-get update -q
  apt-get install -y -q --no-install-recommends vagrant vagrant-libvirt rsync
fi
log "$(vagrant --version), $(vagrant plugin list | grep '^vagrant-libvirt')"

WORK=$(mktemp -d /tmp/virtform-vagrant-check-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# Validate a copy: vagrant writes .vagrant/ next to the Vagrantfile.
mkdir -p "$WORK/vf/scripts"
cp Vagrantfile "$WORK/vf/"
cp scripts/vagrant-provision.sh "$WORK/vf/scripts/"

log "vagrant validate (libvirt provider)"
(cd "$WORK/vf" && VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate)

log "vagrant validate (virtualbox provider)"
VBPATH=$PATH
if ! command -v VBoxManage >/dev/null 2>&1; then
  mkdir -p "$WORK/vbox"
  printf '#!/bin/sh\n[ "$1" = "--version" ] && echo 7.0.20r163906\nexit 0\n' >"$WORK/vbox/VBoxManage"
  chmod +x "$WORK/vbox/VBoxManage"
  VBPATH="$WORK/vbox:$PATH"
  log "(VirtualBox not installed: stand-in VBoxManage for the version probe only)"
fi
(cd "$WORK/vf" && PATH="$VBPATH" VAGRANT_DEFAULT_PROVIDER=virtualbox vagrant validate)

[ "${PROVISION:-0}" = 1 ] || { log "ok (PROVISION=1 also runs the provisioning script on this host)"; exit 0; }

[ "$(id -u)" -eq 0 ] || { echo "PROVISION=1 needs root (the provisioning script runs as root in the VM)" >&2; exit 1; }
# Domains, networks and pools of manifests/examples that exist on this host, one per line.
example_objects() {
  for list in list net-list pool-list; do
    virsh -q -c qemu:///system "$list" --all --name 2>/dev/null
  done | grep -E '^(web-1|db-1|lab-net|lab-pool)$' || true
}
if [ -n "$(example_objects)" ]; then
  echo "the example objects (web-1, db-1, lab-net, lab-pool) already exist on this host: run 'make demo-destroy' first" >&2
  exit 1
fi

SRC="$WORK/src"
# The Vagrantfile's own rsync__exclude list, read from it so the two cannot drift apart.
excludes=()
while IFS= read -r pattern; do excludes+=(--exclude "$pattern"); done < <(
  sed -n 's/.*rsync__exclude: \[\(.*\)\].*/\1/p' Vagrantfile | grep -o '"[^"]*"' | tr -d '"')
[ "${#excludes[@]}" -gt 0 ] || { echo "no rsync__exclude list found in the Vagrantfile" >&2; exit 1; }
log "copying the repo to $SRC with the Vagrantfile's rsync excludes (${excludes[*]})"
rsync -a "${excludes[@]}" "$ROOT/" "$SRC/"
export VIRTFORM_DB="$WORK/state.db"
status=0
log "scripts/vagrant-provision.sh (VIRTFORM_SRC=$SRC, VIRTFORM_DB=$VIRTFORM_DB)"
VIRTFORM_SRC="$SRC" bash "$SRC/scripts/vagrant-provision.sh" || status=$?
log "tearing the demo down"
make -C "$SRC" -s demo-destroy || status=1
left=$(example_objects)
if [ -n "$left" ]; then echo "left behind after demo-destroy: $left" >&2; status=1; fi
[ "$status" -eq 0 ] && log "ok: provisioned, demo converged and torn down" || log "FAILED (exit $status)"
exit "$status"
