#!/usr/bin/env bash
# Builds a real Debian bookworm guest with Debian's cloud-init, for the end-to-end guest tests
# (make test-e2e): a root filesystem made with debootstrap, cloud-init + Debian's generic kernel
# (linux-image-amd64, installed in the guest, not on the host) + initramfs-tools inside it, an ext4
# image of it (mkfs.ext4 -d: no loop devices, no mounts of the image) converted to qcow2, and the
# guest's kernel and initrd next to it for direct kernel boot:
#
#   <kernel> <initrd> with cmdline `root=/dev/vda rw console=ttyS0 no_timer_check`, disk.qcow2 on virtio-blk
#
# Only Debian packages from the machine's configured Debian mirror are used (read from
# /etc/apt/sources.list and /etc/apt/sources.list.d/*; VIRTFORM_DEBIAN_MIRROR overrides it).
# The guest reads its configuration from a NoCloud seed (datasource_list: [NoCloud, None]).
#
# Cached and idempotent: the result lives in $CACHE/<key>/ where the key names the versions of the
# packages that make the guest (cloud-init, the kernel, initramfs-tools, systemd) and the hash of
# the build recipe (the part of this script that makes the image), so a second run prints the
# cached paths and downloads nothing; it rebuilds only when one of them changes. CACHE defaults to /var/cache/virtform/debian-guest (override with
# VIRTFORM_DEBIAN_GUEST_CACHE); $CACHE/current is a symlink to the latest build. A build happens in
# a temporary directory $CACHE/.build.* that is renamed into place at the end, every mount it makes
# lives in a private mount namespace (gone when the build process dies), so a run killed at any
# point leaves no half-built result; the next run removes the leftover and starts over. Downloaded
# .debs are kept in $CACHE/debs and $CACHE/apt-archives, so a rebuild downloads only what changed.
#
# Usage: build-debian-guest.sh [--print-paths] [--no-build] [--help]
#   (default)      build if needed; progress on stderr; the build directory is the only stdout line
#   --print-paths  the same, then print one JSON object on stdout:
#                  {"dir","kernel","initrd","image","imageFormat","imageSha256","imageVirtualSize",
#                   "cmdline","kernelRelease","key","packages":{...}}
#   --no-build     never build or download: use the build for the current package versions, or
#                  (when they cannot be resolved) $CACHE/current; exit 3 when there is none
# Exit codes: 0 ok, 1 build failure, 2 bad usage, 3 not built (--no-build).
# Needs root (debootstrap, chroot, apt, writes under /var/cache). Installs the host tools it needs
# when missing: debootstrap, e2fsprogs (mkfs.ext4 -d), qemu-utils (qemu-img).
set -euo pipefail

log() { printf '[debian-guest] %s\n' "$*" >&2; }
die() { printf '[debian-guest] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

PRINT_PATHS=0
NO_BUILD=0
for a in "$@"; do
  case "$a" in
    --print-paths) PRINT_PATHS=1 ;;
    --no-build) NO_BUILD=1 ;;
    -h | --help) usage; exit 0 ;;
    *) printf '[debian-guest] unknown argument: %s (see --help)\n' "$a" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, writes under /var/cache)"

CACHE="${VIRTFORM_DEBIAN_GUEST_CACHE:-/var/cache/virtform/debian-guest}"
SUITE=bookworm
IMAGE_SIZE="${VIRTFORM_DEBIAN_GUEST_SIZE:-2G}" # the ext4 filesystem's (and the image's virtual) size
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can time out and
# panic ("IO-APIC + timer doesn't work!", seen here at load ~20); the check is pointless in a VM.
# Not part of the image (not in the cache key): printed by --print-paths from this line.
CMDLINE='root=/dev/vda rw console=ttyS0 no_timer_check'
# Installed into the minbase system. cloud-init does not pull an init system, udev (module
# autoloading: the CD-ROM and ISO 9660 drivers for the seed) or a network stack: systemd-sysv,
# udev, ifupdown (cloud-init's ENI renderer on Debian; dhclient is a cloud-init dependency).
GUEST_PKGS=(systemd-sysv udev kmod ifupdown isc-dhcp-client zstd)
# and, at the versions of the cache key: cloud-init, initramfs-tools, systemd, the kernel.
KERNEL_META=linux-image-amd64
# What decides the image: the recipe (this script from the "--- build" line on) and the settings
# above. Edits to the option parsing or version lookup do not rebuild.
RECIPE_HASH=$( { declare -p GUEST_PKGS; echo "$SUITE $IMAGE_SIZE $KERNEL_META"; sed -n '/^# --- build /,$p' "$0"; } | sha256sum | cut -c1-12)

# Interrupted (Ctrl-C, SIGTERM): exit through the EXIT trap, which removes the temporary build.
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

valid() { [ -n "$1" ] && [ "$1" != "(none)" ]; }
# Candidate versions of several packages with one apt-cache call (each call reads the whole index).
declare -A CAND=()
candidates() {
  local pkg ver
  CAND=()
  while read -r pkg ver; do CAND[$pkg]=$ver; done < <(apt-cache policy "$@" 2>/dev/null |
    awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) } /^  Candidate:/ { print p, $2 }')
}

# --- the package versions (the cache key) ---------------------------------------------------
resolve() {
  candidates "$KERNEL_META" cloud-init initramfs-tools systemd
  if ! valid "${CAND[$KERNEL_META]:-}"; then
    [ "$NO_BUILD" -eq 1 ] && return 1
    log "no candidate for $KERNEL_META: running apt-get update"
    apt-get update -q >&2 || return 1
    candidates "$KERNEL_META" cloud-init initramfs-tools systemd
  fi
  KMETA_VER=${CAND[$KERNEL_META]:-}
  CI_VER=${CAND[cloud-init]:-}
  IT_VER=${CAND[initramfs-tools]:-}
  SD_VER=${CAND[systemd]:-}
  valid "$KMETA_VER" && valid "$CI_VER" && valid "$IT_VER" && valid "$SD_VER" || return 1
  # The metapackage depends on exactly one version of the real image package:
  # "Depends: linux-image-6.1.0-57-amd64 (= 6.1.192-3)".
  local dep
  dep=$(apt-cache show "$KERNEL_META=$KMETA_VER" | awk -F': ' '/^Depends:/ {print $2; exit}' | tr ',' '\n' |
    sed -n 's/^ *\(linux-image-[0-9][^ ]*-amd64\) (= \([^)]*\)).*/\1 \2/p' | head -1)
  KPKG=${dep% *}
  KVER=${dep#* }
  [ -n "$KPKG" ] && [ -n "$KVER" ] && [ "$KPKG" != "$dep" ]
}

paths_json() { # $1 = build directory; the command line is this script's, not the build's
  local d=$1
  sed "s|\"cmdline\": \"[^\"]*\"|\"cmdline\": \"$CMDLINE\"|" "$d/paths.json"
}

finish() { # $1 = build directory: print what was asked for
  if [ "$PRINT_PATHS" -eq 1 ]; then paths_json "$1"; else echo "$1"; fi
  exit 0
}

if ! resolve; then
  if [ -e "$CACHE/current/paths.json" ]; then
    log "cannot resolve package versions (no package index?): using the cached $(readlink -f "$CACHE/current")"
    finish "$(readlink -f "$CACHE/current")"
  fi
  [ "$NO_BUILD" -eq 1 ] && { log "not built (and package versions cannot be resolved): run scripts/build-debian-guest.sh"; exit 3; }
  die "cannot resolve the versions of $KERNEL_META, cloud-init, initramfs-tools, systemd from apt (is the Debian package index reachable?)"
fi

KEY="${SUITE}+cloud-init_${CI_VER}+${KPKG}_${KVER}+initramfs-tools_${IT_VER}+systemd_${SD_VER}+${RECIPE_HASH}"
KEY=${KEY//[:~]/_}
OUT="$CACHE/$KEY"
if [ -s "$OUT/paths.json" ] && [ -s "$OUT/disk.qcow2" ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ]; then
  log "cached: $OUT"
  ln -sfn "$KEY" "$CACHE/current"
  finish "$OUT"
fi
if [ "$NO_BUILD" -eq 1 ]; then
  log "not built for the current package versions ($KEY): run scripts/build-debian-guest.sh"
  exit 3
fi

# --- host tools ----------------------------------------------------------------------------
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v unshare >/dev/null || need+=(util-linux)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing host tools: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2; } ||
    die "cannot install ${need[*]}"
fi
mkfs.ext4 -V 2>&1 | head -1 | grep -qE '1\.(4[3-9]|[5-9][0-9])' || die "mkfs.ext4 from e2fsprogs >= 1.43 is needed (-d)"

# --- the Debian mirror ---------------------------------------------------------------------
# First `deb` source of this machine whose suite is exactly $SUITE (one-line .list or deb822
# .sources format), and the one carrying $SUITE-security.
sources_lines() { # prints "URI SUITE" for every deb entry
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' "$f" | awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i+1) }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -e '/^[[:space:]]*#/d' -e 's/#.*//' "$f" | awk 'BEGIN { RS = ""; FS = "\n" }
      { types = ""; uris = ""; suites = ""; enabled = "yes"
        for (j = 1; j <= NF; j++) {
          if ($j ~ /^Types:/) { types = $j; sub(/^Types:[ \t]*/, "", types) }
          if ($j ~ /^URIs:/) { uris = $j; sub(/^URIs:[ \t]*/, "", uris) }
          if ($j ~ /^Suites:/) { suites = $j; sub(/^Suites:[ \t]*/, "", suites) }
          if ($j ~ /^Enabled:/) { enabled = $j; sub(/^Enabled:[ \t]*/, "", enabled) }
        }
        if (types !~ /(^| )deb( |$)/ || enabled == "no") next
        nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
        for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) if (u[a] != "" && s[b] != "") print u[a], s[b] }'
  done
}
MIRROR="${VIRTFORM_DEBIAN_MIRROR:-$(sources_lines | awk -v s="$SUITE" '$2 == s { print $1; exit }')}"
SECURITY="${VIRTFORM_DEBIAN_SECURITY_MIRROR:-$(sources_lines | awk -v s="$SUITE-security" '$2 == s { print $1; exit }')}"
[ -n "$MIRROR" ] || die "no '$SUITE' Debian source in /etc/apt/sources.list*; set VIRTFORM_DEBIAN_MIRROR"
MIRROR=${MIRROR%/}
SECURITY=${SECURITY%/}
log "mirror: $MIRROR${SECURITY:+ (security: $SECURITY)}"

# --- build ---------------------------------------------------------------------------------
# Leftovers of killed runs (we hold the lock, so no other build is using them). Their mounts, if
# any, lived in a mount namespace that died with the build; check anyway before deleting.
for stale in "$CACHE"/.build.*; do
  [ -e "$stale" ] || continue
  if grep -qF " $stale/" /proc/self/mountinfo; then die "$stale has mounts in this namespace; unmount them first"; fi
  log "removing the leftover of an interrupted build: $stale"
  rm -rf --one-file-system "$stale"
done

# The build must not change the host: the device nodes package scripts like to adjust are
# compared before and after (a build that changed one fails loudly).
HOST_NODES=(/dev/kvm /dev/fuse /dev/net/tun /dev/loop-control)
nodes_state() { local n; for n in "${HOST_NODES[@]}"; do [ -e "$n" ] && stat -c '%n %u:%g %a' "$n"; done; true; }
NODES_BEFORE=$(nodes_state)

T0=$(date +%s)
log "building $KEY"
WORK=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOT="$WORK/root"
mkdir -p "$ROOT" "$CACHE/debs" "$CACHE/apt-archives/partial"

# Everything that mounts (debootstrap mounts /proc and /sys in the target; the chroot steps mount
# /proc, /sys, /dev and the .deb cache) runs in a private mount namespace: when the process dies,
# for whatever reason, its mounts go with it.
in_ns() { unshare --mount --propagation private -- "$@"; }

log "debootstrap --variant=minbase $SUITE ($(( $(date +%s) - T0 )) s)"
in_ns debootstrap --variant=minbase --cache-dir="$CACHE/debs" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  { tail -30 "$WORK/debootstrap.log" >&2; [ -f "$ROOT/debootstrap/debootstrap.log" ] && tail -30 "$ROOT/debootstrap/debootstrap.log" >&2; die "debootstrap failed"; }

# Not in the image: documentation, manual pages, translations, and the kernel's drivers for
# hardware a VM never has (graphics, wireless, media, sound, InfiniBand, Bluetooth, staging).
# The CD-ROM (ata_piix, sr_mod, ahci), ISO 9660, virtio and ext4 modules all stay.
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/90virtform-excludes" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/lib/modules/*/kernel/drivers/gpu/*
path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*
path-exclude=/lib/modules/*/kernel/drivers/media/*
path-exclude=/lib/modules/*/kernel/drivers/infiniband/*
path-exclude=/lib/modules/*/kernel/drivers/staging/*
path-exclude=/lib/modules/*/kernel/drivers/bluetooth/*
path-exclude=/lib/modules/*/kernel/sound/*
path-exclude=/lib/modules/*/kernel/net/wireless/*
path-exclude=/lib/modules/*/kernel/net/mac80211/*
path-exclude=/lib/modules/*/kernel/net/bluetooth/*
EOF
{
  echo "deb $MIRROR $SUITE main"
  echo "deb $MIRROR $SUITE-updates main"
  [ -n "$SECURITY" ] && echo "deb $SECURITY $SUITE-security main"
} > "$ROOT/etc/apt/sources.list"
# No service starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
# The initrd mounts /dev/vda (virtio-blk, ext4): initramfs-tools' default MODULES=most has them.
mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
printf 'MODULES=most\nCOMPRESS=zstd\n' > "$ROOT/etc/initramfs-tools/conf.d/virtform.conf"
echo 'do_symlinks = no' > "$ROOT/etc/kernel-img.conf"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$ROOT/etc/fstab"

# The host's /dev is NOT bound into the chroot: package scripts there (systemd-tmpfiles'
# static-nodes rules) would set the host's /dev/kvm, /dev/fuse, ... to the chroot's groups. The
# chroot keeps the device nodes debootstrap made in its own /dev; /sys is read-only; /proc is
# that of a new PID namespace, and the hostname is a new UTS namespace's.
cat > "$WORK/chroot-install.sh" <<EOF
set -eu
mount -t proc proc "$ROOT/proc"
mount -t sysfs -o ro sysfs "$ROOT/sys"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOT/dev/pts"
mount --bind "$CACHE/apt-archives" "$ROOT/var/cache/apt/archives"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
chroot "$ROOT" apt-get update -q
chroot "$ROOT" apt-get install -y -q --no-install-recommends \
  ${GUEST_PKGS[*]} cloud-init=$CI_VER initramfs-tools=$IT_VER systemd=$SD_VER $KPKG=$KVER
chroot "$ROOT" dpkg-query -W -f '\${Package}\t\${Version}\t\${Architecture}\n' > "$WORK/packages.tsv"
EOF
log "apt-get install ${GUEST_PKGS[*]} cloud-init initramfs-tools $KPKG in the chroot ($(( $(date +%s) - T0 )) s)"
unshare --mount --propagation private --pid --fork --uts --ipc -- bash "$WORK/chroot-install.sh" >"$WORK/install.log" 2>&1 || { tail -40 "$WORK/install.log" >&2; die "installing the guest packages failed"; }

[ "$(nodes_state)" = "$NODES_BEFORE" ] || die "the host's device nodes changed during the package install: before: $NODES_BEFORE; after: $(nodes_state)"

KREL=${KPKG#linux-image-}
[ -f "$ROOT/boot/vmlinuz-$KREL" ] || die "no /boot/vmlinuz-$KREL in the guest"
[ -f "$ROOT/boot/initrd.img-$KREL" ] || { tail -40 "$WORK/install.log" >&2; die "no /boot/initrd.img-$KREL in the guest (update-initramfs)"; }
for m in isofs sr_mod cdrom virtio_blk virtio_net ext4 ata_piix; do
  grep -qE "/$m\.ko" "$ROOT/lib/modules/$KREL/modules.dep" "$ROOT/lib/modules/$KREL/modules.builtin" ||
    die "module $m missing from the guest's /lib/modules/$KREL"
done

# Guest configuration.
mkdir -p "$ROOT/etc/cloud/cloud.cfg.d"
cat > "$ROOT/etc/cloud/cloud.cfg.d/90_virtform.cfg" <<'EOF'
# virtform test guest: configuration comes from a NoCloud seed (a CD-ROM labelled cidata).
datasource_list: [NoCloud, None]
# No SSH server in this image: no host keys to generate (cc_ssh would warn for each type).
ssh_genkeytypes: []
# The libc's built-in locale: nothing to generate (Debian's default en_US.UTF-8 would need
# locale-gen, and update-locale fails on it in this minimal image).
locale: C.UTF-8
EOF
rm -f "$ROOT/usr/sbin/policy-rc.d"
# A new machine-id at first boot (systemd), no hostname of the build host, no cloud-init state.
: > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
echo localhost > "$ROOT/etc/hostname"
rm -rf "$ROOT/var/lib/cloud" "$ROOT/var/lib/apt/lists"/* "$ROOT/var/cache/apt"/*.bin "$ROOT/var/log"/*.log \
  "$ROOT/var/log/apt"/* "$ROOT/debootstrap"
mkdir -p "$ROOT/var/lib/apt/lists/partial"

log "mkfs.ext4 -d ($IMAGE_SIZE, $(du -sh --apparent-size "$ROOT" | cut -f1) of files) ($(( $(date +%s) - T0 )) s)"
mkdir -p "$WORK/out"
cp "$ROOT/boot/vmlinuz-$KREL" "$WORK/out/vmlinuz"
cp "$ROOT/boot/initrd.img-$KREL" "$WORK/out/initrd.img"
mkfs.ext4 -q -F -L vfroot -d "$ROOT" "$WORK/disk.raw" "$IMAGE_SIZE" >&2
rm -rf --one-file-system "$ROOT"
log "qemu-img convert -O qcow2 ($(( $(date +%s) - T0 )) s)"
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/out/disk.qcow2"
rm -f "$WORK/disk.raw"
SHA=$(sha256sum "$WORK/out/disk.qcow2" | cut -d' ' -f1)
echo "$SHA  disk.qcow2" > "$WORK/out/disk.qcow2.sha256"
VSIZE=$(qemu-img info --output=json "$WORK/out/disk.qcow2" | awk -F': *' '/"virtual-size"/ {gsub(/[ ,]/, "", $2); print $2; exit}')
sed 's/\t/ /g' "$WORK/packages.tsv" > "$WORK/out/packages.txt"
echo "$KREL" > "$WORK/out/kernel-version"
echo "$KEY" > "$WORK/out/key"

pkgv() { awk -v p="$1" -F'\t' '$1 == p { print $2; exit }' "$WORK/packages.tsv"; }
cat > "$WORK/out/paths.json" <<EOF
{"dir": "$OUT", "kernel": "$OUT/vmlinuz", "initrd": "$OUT/initrd.img", "image": "$OUT/disk.qcow2", "imageFormat": "qcow2", "imageSha256": "$SHA", "imageVirtualSize": $VSIZE, "cmdline": "$CMDLINE", "kernelRelease": "$KREL", "key": "$KEY", "packages": {"cloud-init": "$(pkgv cloud-init)", "$KPKG": "$(pkgv "$KPKG")", "initramfs-tools": "$(pkgv initramfs-tools)", "systemd": "$(pkgv systemd)"}}
EOF
chmod 0644 "$WORK/out"/*
chmod 0755 "$WORK/out"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
ln -sfn "$KEY" "$CACHE/current"

# Older builds are not used again; neither are .debs no longer in the guest.
for d in "$CACHE"/*/; do
  d=${d%/}
  case "${d##*/}" in debs | apt-archives | current) continue ;; esac
  [ "$d" = "$OUT" ] || { log "removing the older build ${d##*/}"; rm -rf "$d"; }
done
declare -A KEEP=()
# apt names its .debs pkg_EPOCH%3aVERSION_ARCH.deb, debootstrap (like the pool) without the epoch.
while IFS=$'\t' read -r p v a; do KEEP["${p}_${v//:/%3a}_${a}.deb"]=1; KEEP["${p}_${v#*:}_${a}.deb"]=1; done < "$WORK/packages.tsv"
for f in "$CACHE"/debs/*.deb "$CACHE"/apt-archives/*.deb; do
  [ -e "$f" ] || continue
  [ -n "${KEEP[${f##*/}]:-}" ] || rm -f "$f"
done

log "built in $(( $(date +%s) - T0 )) s: $OUT"
log "  kernel  $OUT/vmlinuz ($KREL)"
log "  initrd  $OUT/initrd.img ($(du -h "$OUT/initrd.img" | cut -f1))"
log "  image   $OUT/disk.qcow2 ($(du -h "$OUT/disk.qcow2" | cut -f1), virtual $IMAGE_SIZE, sha256 $SHA)"
log "  cmdline $CMDLINE"
finish "$OUT"
