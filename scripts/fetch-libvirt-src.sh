#!/usr/bin/env bash
# Fetches libvirt's sources (Debian's `libvirt` source package, the same release as the daemon
# Debian 12 ships: 9.0.0) for scripts/gen-protocol.ts, and unpacks only the files it reads:
#   src/remote/remote_protocol.x, src/rpc/virnetprotocol.x, src/rpc/virkeepaliveprotocol.x,
#   include/libvirt/*.h
# into $CACHE/libvirt-9.0.0/. Idempotent and cached: a second run does nothing.
#
#   bash scripts/fetch-libvirt-src.sh [CACHE]      # default /var/cache/virtform/libvirt-src
#
# When no deb-src entry for the machine's Debian mirror exists, it adds one
# (/etc/apt/sources.list.d/virtform-deb-src.sources, root only) and runs apt-get update.
# Exit codes: 0 ok (prints the unpacked directory), 2 the package could not be fetched.
set -euo pipefail
VERSION=9.0.0
CACHE="${1:-${VIRTFORM_LIBVIRT_SRC:-/var/cache/virtform/libvirt-src}}"
DIR="$CACHE/libvirt-$VERSION"
ORIG="libvirt_$VERSION.orig.tar.xz"
FILES=(src/remote/remote_protocol.x src/rpc/virnetprotocol.x src/rpc/virkeepaliveprotocol.x include/libvirt)

unavailable() { echo "fetch-libvirt-src: libvirt $VERSION sources unavailable: $*" >&2; exit 2; }

if [ -f "$DIR/.complete" ]; then echo "$DIR"; exit 0; fi
mkdir -p "$CACHE"

if [ ! -f "$CACHE/$ORIG" ]; then
  command -v apt-get >/dev/null || unavailable "apt-get not found (needs a Debian host)"
  SRC_LIST=/etc/apt/sources.list.d/virtform-deb-src.sources
  has_debsrc() {
    grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
  }
  if ! has_debsrc; then
    [ "$(id -u)" = 0 ] || unavailable "no deb-src entry in apt's sources and not root to add one"
    # The mirror the machine already uses for bookworm (deb822 or one-line format).
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
    uri="${uri:-http://deb.debian.org/debian}"
    cat >"$SRC_LIST" <<SRC
# Added by virtform scripts/fetch-libvirt-src.sh: libvirt's sources for scripts/gen-protocol.ts.
Types: deb-src
URIs: $uri
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    echo "fetch-libvirt-src: added $SRC_LIST ($uri)" >&2
    apt-get update -qq >&2 || unavailable "apt-get update failed"
  fi
  tmp=$(mktemp -d "$CACHE/.dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # apt downloads as _apt where it can write (else it warns and downloads as root).
  chmod 755 "$tmp"; chown _apt "$tmp" 2>/dev/null || true
  if ! (cd "$tmp" && apt-get source --download-only -qq libvirt >&2); then
    # A stale index: refresh once and retry.
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 || true; fi
    (cd "$tmp" && apt-get source --download-only -qq libvirt >&2) || unavailable "apt-get source libvirt failed (no network, or no deb-src entry)"
  fi
  [ -f "$tmp/$ORIG" ] || unavailable "the source package has no $ORIG (got: $(ls "$tmp" | tr '\n' ' '))"
  mv "$tmp/$ORIG" "$CACHE/$ORIG"
fi

rm -rf "$DIR"
tar -xJf "$CACHE/$ORIG" -C "$CACHE" "${FILES[@]/#/libvirt-$VERSION/}" || unavailable "cannot unpack $CACHE/$ORIG"
touch "$DIR/.complete"
echo "$DIR"
