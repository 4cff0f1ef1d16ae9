#!/usr/bin/env bash
# Unpacks Debian's cloud-init and the python3-* packages it depends on (recursively) into a cache
# directory WITHOUT installing them on the host (an installed cloud-init would configure this host
# on its next boot), so tests can run cloud-init's own NoCloud datasource code with Debian's
# /usr/bin/python3 and PYTHONPATH=<dir>/usr/lib/python3/dist-packages.
#
# Cached under $VIRTFORM_CLOUD_INIT_CACHE (default /var/cache/virtform/cloud-init)/<version>/;
# a second run with the same cloud-init version downloads nothing. Prints the dist-packages
# directory (the only line on stdout). Root (apt-get download as root, writes under /var/cache).
set -euo pipefail

log() { printf '[cloud-init] %s\n' "$*" >&2; }
die() { printf '[cloud-init] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

CACHE="${VIRTFORM_CLOUD_INIT_CACHE:-/var/cache/virtform/cloud-init}"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }
VER=$(candidate cloud-init)
if [ -z "$VER" ] || [ "$VER" = "(none)" ]; then
  log "no candidate for cloud-init: running apt-get update"
  apt-get update -q >&2
  VER=$(candidate cloud-init)
fi
[ -n "$VER" ] && [ "$VER" != "(none)" ] || die "cloud-init is not in the Debian package index"

KEY=${VER//[:~]/_}
OUT="$CACHE/$KEY"
SITE="$OUT/root/usr/lib/python3/dist-packages"
if [ -f "$OUT/.done" ]; then
  log "cached: $OUT"
  echo "$SITE"
  exit 0
fi

log "fetching cloud-init $VER and its python3 dependencies"
WORK=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mapfile -t DEPS < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances --no-pre-depends cloud-init 2>/dev/null | grep -E '^python3-[a-z0-9.+-]+$' | sort -u)
mkdir -p "$WORK/debs" "$WORK/out/root"
chown _apt "$WORK/debs" 2>/dev/null || true
(cd "$WORK/debs" && apt-get download -q "cloud-init=$VER" "${DEPS[@]}" >&2)
for d in "$WORK"/debs/*.deb; do dpkg-deb -x "$d" "$WORK/out/root"; done
[ -d "$WORK/out/root/usr/lib/python3/dist-packages/cloudinit" ] || die "no cloudinit package in the cloud-init .deb"
printf '%s\n' cloud-init "${DEPS[@]}" > "$WORK/out/packages.txt"
touch "$WORK/out/.done"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
for d in "$CACHE"/*; do [ "$d" = "$OUT" ] || rm -rf "$d"; done
log "unpacked $((${#DEPS[@]} + 1)) packages into $OUT"
echo "$SITE"
