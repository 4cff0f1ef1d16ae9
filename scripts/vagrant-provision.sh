#!/usr/bin/env bash
# Provision the virtform Vagrant VM (Debian 12, run as root by `vagrant up`; safe to re-run with
# `vagrant provision`): Node 20, build tools, then `make setup` (libvirt, QEMU, libvirtd, npm ci,
# build) and `make demo` (converge manifests/examples on qemu:///system) in /vagrant.
#
# Node 20 comes from the NodeSource apt repository (https://deb.nodesource.com/node_20.x): Debian
# 12's own nodejs is 18, and virtform needs >= 20.19. This needs internet access from the VM,
# which a developer laptop has.
#
# VIRTFORM_SRC (default /vagrant) names the checkout to set up; `make vagrant-check PROVISION=1`
# points it at a copy to run this script on a Debian 12 host without a VM.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SRC="${VIRTFORM_SRC:-/vagrant}"

log() { printf '[provision] %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "run as root (vagrant provisions with privileged: true)" >&2; exit 1; }

node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  local v major minor
  v=$(node -p 'process.versions.node')
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  [ "$major" -gt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -ge 19 ]; }
}

log "base packages"
apt-get update -q
apt-get install -y -q --no-install-recommends ca-certificates curl gnupg make git rsync build-essential python3

if node_ok; then
  log "node $(node -v) present"
else
  log "installing Node 20 from the NodeSource apt repository"
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
  chmod 0644 /etc/apt/keyrings/nodesource.gpg
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_20.x nodistro main" >/etc/apt/sources.list.d/nodesource.list
  apt-get update -q
  apt-get install -y -q nodejs
  node_ok || { echo "node $(node -v 2>/dev/null) is older than 20.19" >&2; exit 1; }
fi

if [ -e /dev/kvm ]; then
  log "/dev/kvm present: nested virtualization works, VMs use KVM"
else
  log "WARNING: no /dev/kvm (nested virtualization off on the host?): VMs will use TCG, slower"
fi

cd "$SRC"
log "make setup in $SRC"
make setup
log "make demo"
make demo
log "done: vagrant ssh -c 'cd /vagrant && sudo make test'"
