#!/usr/bin/env bash
# Removes every libvirt object on qemu:///system whose name starts with a test prefix (default
# "vftest"), and the test pool directories under /var/lib/virtform-test. Safe to run at any time,
# including after a failed or killed test run; touches nothing outside the prefix.
set -uo pipefail
PREFIX="${1:-vftest}"
URI="${VIRTFORM_TEST_URI:-qemu:///system}"
V() { virsh -q -c "$URI" "$@" 2>/dev/null; }

for d in $(V list --all --name | grep "^${PREFIX}" || true); do
  # --snapshots-metadata: a domain with snapshots (kind Snapshot) cannot be undefined otherwise
  V destroy "$d" >/dev/null; V undefine "$d" --nvram --snapshots-metadata >/dev/null || V undefine "$d" --snapshots-metadata >/dev/null || V undefine "$d" >/dev/null
done
for n in $(V net-list --all --name | grep "^${PREFIX}" || true); do
  V net-destroy "$n" >/dev/null; V net-undefine "$n" >/dev/null
done
for p in $(V pool-list --all --name | grep "^${PREFIX}" || true); do
  V pool-start "$p" >/dev/null
  for vol in $(V vol-list "$p" | awk '{print $1}'); do V vol-delete --pool "$p" "$vol" >/dev/null; done
  V pool-destroy "$p" >/dev/null; V pool-delete "$p" >/dev/null; V pool-undefine "$p" >/dev/null
done
if [ -d /var/lib/virtform-test ]; then
  find /var/lib/virtform-test -mindepth 1 -maxdepth 1 -name "${PREFIX}*" -exec rm -rf {} + 2>/dev/null || true
fi
exit 0
