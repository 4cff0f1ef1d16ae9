#!/usr/bin/env bash
# Builds a tiny Linux guest for the cloud-init / direct-kernel-boot tests: a Debian cloud kernel
# (vmlinuz) and a busybox initramfs (initrd.img) whose /init reads a NoCloud seed (ISO label
# `cidata`), sets the hostname from meta-data, runs udhcpc sending that hostname, prints
# `vf-marker: TEXT` for each `#vf-marker: TEXT` line of user-data and the leased address to the
# serial console, then stays up so the VM keeps its lease.
#
# Only Debian packages are used, and nothing is installed on the host: `apt-get download` fetches
# linux-image-<version>-cloud-amd64 (the package the linux-image-cloud-amd64 metapackage depends on)
# and busybox-static, `dpkg-deb -x` unpacks them into a temporary directory.
#
# Idempotent and cached: the result lives in $CACHE/<kernel-pkg>_<ver>+busybox_<ver>+<script-hash>/
# (CACHE defaults to /var/cache/virtform/tiny-guest; override with VIRTFORM_TINY_GUEST_CACHE).
# A second run with the same package versions and the same script prints the cached directory and
# downloads nothing. $CACHE/current is a symlink to the latest build. The directory holds
# vmlinuz, initrd.img, kernel-version and modules.txt (the modules in the initramfs, in load order).
#
# Output: the build directory's path is the only line on stdout; progress goes to stderr.
# Needs root (apt-get download as root, writes under /var/cache), gzip and cpio (Debian: cpio).
set -euo pipefail

log() { printf '[tiny-guest] %s\n' "$*" >&2; }
die() { printf '[tiny-guest] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get download, writes under /var/cache)"

CACHE="${VIRTFORM_TINY_GUEST_CACHE:-/var/cache/virtform/tiny-guest}"
META_PKG=linux-image-cloud-amd64
BUSYBOX_PKG=busybox-static
# Drivers: the seed CD-ROM on the PIIX IDE controller of a `pc` (i440FX) machine, or on virtio-scsi
# (q35's own CD-ROM bus is SATA/AHCI, and the cloud kernel has no AHCI driver at all); ISO 9660
# with Joliet; virtio NIC, disk and SCSI. Their dependencies (libata, scsi_mod, cdrom, virtio,
# virtio_ring, net_failover, ...) are added from each module's own `depends=` field. virtio_balloon
# (CONFIG_VIRTIO_BALLOON=m) lets the guest apply a live memory change; a kernel command line with
# `modprobe.blacklist=virtio_balloon` (comma list, as modprobe reads it) makes /init skip it.
ROOT_MODULES=(ata_piix ata_generic sr_mod isofs virtio_pci virtio_net virtio_blk virtio_scsi virtio_balloon)

SCRIPT_HASH=$(sha256sum "$0" | cut -c1-12)

command -v cpio >/dev/null || die "cpio not found (Debian package: cpio)"
command -v gzip >/dev/null || die "gzip not found"

mkdir -p "$CACHE/debs"
# apt-get download fetches as the _apt sandbox user when that user can write the directory.
if getent passwd _apt >/dev/null; then chown _apt "$CACHE/debs" 2>/dev/null || true; fi
exec 9>"$CACHE/.lock"
flock 9

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }

resolve() {
  META_VER=$(candidate "$META_PKG")
  if [ -z "$META_VER" ] || [ "$META_VER" = "(none)" ]; then
    log "no candidate for $META_PKG: running apt-get update"
    apt-get update -q >&2 || return 1
    META_VER=$(candidate "$META_PKG")
  fi
  [ -n "$META_VER" ] && [ "$META_VER" != "(none)" ] || return 1
  # The metapackage's (candidate's) dependency on the real versioned image package.
  KPKG=$(apt-cache show "$META_PKG=$META_VER" | awk -F': ' '/^Depends:/ {print $2; exit}' |
    tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -E '^linux-image-[0-9].*-cloud-amd64$' | head -1)
  [ -n "$KPKG" ] || return 1
  KVER=$(candidate "$KPKG")
  BVER=$(candidate "$BUSYBOX_PKG")
  [ -n "$KVER" ] && [ "$KVER" != "(none)" ] && [ -n "$BVER" ] && [ "$BVER" != "(none)" ]
}

if ! resolve; then
  if [ -e "$CACHE/current/initrd.img" ]; then
    log "cannot resolve package versions (no package index?): using the cached $(readlink -f "$CACHE/current")"
    readlink -f "$CACHE/current"
    exit 0
  fi
  die "cannot resolve $META_PKG / $BUSYBOX_PKG versions from apt (is the Debian package index reachable?)"
fi

KEY="${KPKG}_${KVER}+busybox_${BVER}+${SCRIPT_HASH}"
KEY=${KEY//[:~]/_}
OUT="$CACHE/$KEY"
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ]; then
  log "cached: $OUT"
  ln -sfn "$KEY" "$CACHE/current"
  echo "$OUT"
  exit 0
fi

log "building $KEY"
WORK=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

deb_of() { ls "$CACHE/debs/$1"_*.deb 2>/dev/null | grep -F "_$(printf '%s' "$2" | sed 's/:/%3a/')_" | head -1 || true; }
fetch() {
  local pkg=$1 ver=$2
  if [ -z "$(deb_of "$pkg" "$ver")" ]; then
    log "apt-get download $pkg=$ver"
    (cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" >&2)
  fi
  local f
  f=$(deb_of "$pkg" "$ver")
  [ -n "$f" ] || die "download of $pkg=$ver left no .deb in $CACHE/debs"
  printf '%s\n' "$f"
}
KDEB=$(fetch "$KPKG" "$KVER")
BDEB=$(fetch "$BUSYBOX_PKG" "$BVER")

dpkg-deb -x "$KDEB" "$WORK/kernel"
dpkg-deb -x "$BDEB" "$WORK/busybox"
KREL=$(ls "$WORK/kernel/lib/modules")
[ "$(printf '%s\n' "$KREL" | wc -l)" -eq 1 ] || die "expected one kernel release in $KDEB, found: $KREL"
MODDIR="$WORK/kernel/lib/modules/$KREL"
VMLINUZ="$WORK/kernel/boot/vmlinuz-$KREL"
[ -f "$VMLINUZ" ] || die "no /boot/vmlinuz-$KREL in $KDEB"

# Module name -> file (relative to MODDIR). Names compare with '-' and '_' as the same character.
declare -A MODFILE=()
while IFS= read -r rel; do
  base=${rel##*/}; base=${base%%.ko*}; MODFILE[${base//-/_}]=$rel
done < <(cd "$MODDIR" && find kernel -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')

modinfo_depends() { # prints the module's dependencies (comma list) from its .modinfo strings
  local f="$MODDIR/$1"
  case "$f" in
    *.ko.xz) xz -dc "$f" ;; *.ko.zst) zstd -dc "$f" ;; *.ko.gz) gzip -dc "$f" ;; *) cat "$f" ;;
  esac | tr '\0' '\n' | grep -a -m1 '^depends=' | cut -d= -f2 || true
}

ORDER=()
declare -A SEEN=()
visit() { # depth first: dependencies before the module
  local m=${1//-/_}
  [ -n "${SEEN[$m]:-}" ] && return 0
  SEEN[$m]=1
  if [ -z "${MODFILE[$m]:-}" ]; then
    grep -qE "/${m}\.ko" "$MODDIR/modules.builtin" 2>/dev/null && { log "module $m is built in"; return 0; }
    die "module $m not found in $KPKG"
  fi
  local d
  for d in $(modinfo_depends "${MODFILE[$m]}" | tr ',' ' '); do visit "$d"; done
  ORDER+=("$m")
}
for m in "${ROOT_MODULES[@]}"; do visit "$m"; done
log "modules (load order): ${ORDER[*]}"

ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,run,tmp,mnt/seed,lib/modules}
cp "$WORK/busybox/bin/busybox" "$ROOT/bin/busybox"
for applet in sh mount umount mkdir cat sed grep hostname ip udhcpc insmod sleep findfs ls echo tr head cut dmesg uname; do
  ln -s busybox "$ROOT/bin/$applet"
done
: > "$ROOT/etc/modules.order"
for m in "${ORDER[@]}"; do
  rel=${MODFILE[$m]}
  case "$rel" in # store plain .ko files: busybox insmod then needs no decompressor
    *.ko.xz) xz -dc "$MODDIR/$rel" > "$ROOT/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$MODDIR/$rel" > "$ROOT/lib/modules/$m.ko" ;;
    *.ko.gz) gzip -dc "$MODDIR/$rel" > "$ROOT/lib/modules/$m.ko" ;;
    *) cp "$MODDIR/$rel" "$ROOT/lib/modules/$m.ko" ;;
  esac
  echo "$m" >> "$ROOT/etc/modules.order"
done

cat > "$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc hook: configures the interface and writes the address for /init to report.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && for r in $router; do ip -4 route add default via "$r" dev "$interface"; break; done
    echo "$ip" > /run/vf-ip
    [ "$1" = renew ] && echo "vf-guest: renewed $ip" > /dev/console
    ;;
esac
exit 0
EOF

cat > "$ROOT/init" <<'EOF'
#!/bin/sh
# tiny-guest /init (virtform test guest). Console protocol, one line each, on /dev/console:
#   vf-guest: boot                 /init started
#   vf-guest: skip MODULE          MODULE is in the command line's modprobe.blacklist=, not loaded
#   vf-guest: seed DEVICE          the NoCloud seed (ISO label cidata) was mounted from DEVICE
#   vf-guest: hostname NAME        meta-data local-hostname was set
#   vf-guest: instance-id ID       meta-data instance-id
#   vf-marker: TEXT                for each user-data line `#vf-marker: TEXT`
#   vf-guest: ip ADDRESS           udhcpc obtained ADDRESS on eth0
#   vf-guest: error TEXT           something failed (the guest stays up)
#   vf-guest: log: TEXT            udhcpc's output up to the lease
#   vf-guest: uptime seed=S ip=S   seconds since kernel start when the seed was read / lease taken
#   vf-guest: ready                all done; the guest idles (udhcpc keeps renewing)
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1
say() { echo "vf-guest: $*"; }
say boot "$(uname -r)"
up() { cut -d' ' -f1 /proc/uptime; }
# modprobe.blacklist=a,b on the kernel command line (the kernel leaves it to userspace): not loaded.
skip=" $(tr ' ' '\n' < /proc/cmdline | sed -n 's/^modprobe\.blacklist=//p' | tr ',-' ' _') "
while read -r m; do
  case "$skip" in *" $m "*) say skip "$m"; continue ;; esac
  insmod "/lib/modules/$m.ko" || say error "insmod $m"
done < /etc/modules.order

seed=
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  dev=$(findfs LABEL=cidata 2>/dev/null || findfs LABEL=CIDATA 2>/dev/null || true)
  for d in $dev /dev/sr0 /dev/sr1 /dev/vdb /dev/vda; do
    [ -b "$d" ] || continue
    if mount -t iso9660 -o ro "$d" /mnt/seed 2>/dev/null; then
      if [ -f /mnt/seed/meta-data ]; then seed=$d; break; fi
      umount /mnt/seed
    fi
  done
  [ -n "$seed" ] && break
  sleep 0.5
done
t_seed=$(up)

# meta-data is YAML; the flat `key: value` lines are enough here (quotes stripped).
md() { sed -n "s/^$1:[[:space:]]*//p" /mnt/seed/meta-data | head -1 | sed "s/^[\"']//; s/[\"'][[:space:]]*\$//; s/[[:space:]]*\$//"; }
name=
if [ -n "$seed" ]; then
  say seed "$seed"
  name=$(md local-hostname)
  [ -n "$name" ] || name=$(md hostname)
  say instance-id "$(md instance-id)"
  if [ -n "$name" ]; then hostname "$name"; say hostname "$(hostname)"; else say error "no local-hostname in meta-data"; fi
  if [ -f /mnt/seed/user-data ]; then
    sed -n 's/^#vf-marker:[[:space:]]*\(.*\)$/vf-marker: \1/p' /mnt/seed/user-data
  else
    say error "no user-data on the seed"
  fi
else
  say error "no NoCloud seed (ISO label cidata) found"
fi

ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  # A discover sent before the link has carrier is lost (udhcpc then waits its -T seconds).
  ip link set eth0 up
  n=0
  while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
  # Foreground udhcpc in the background: it keeps renewing the lease while the guest runs.
  udhcpc -f -i eth0 -s /etc/udhcpc.script -t 60 -T 1 ${name:+-x hostname:$name} >/run/udhcpc.log 2>&1 &
  n=0
  while [ ! -s /run/vf-ip ] && [ $n -lt 300 ]; do sleep 0.2; n=$((n+1)); done
  t_ip=$(up)
  if [ -s /run/vf-ip ]; then say ip "$(cat /run/vf-ip)"; else say error "no DHCP lease"; fi
  sed 's/^/vf-guest: log: /' /run/udhcpc.log
else
  say error "no eth0"
fi
say uptime "seed=$t_seed ip=${t_ip:-none}"
say ready
while :; do sleep 3600; done
EOF
chmod 0755 "$ROOT/init" "$ROOT/etc/udhcpc.script"

# Deterministic archive: fixed mtimes, sorted names, root-owned, inodes renumbered (--reproducible).
find "$ROOT" -exec touch -h -d @0 {} +
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -n -9 > "$WORK/initrd.img"

mkdir -p "$WORK/out"
cp "$VMLINUZ" "$WORK/out/vmlinuz"
mv "$WORK/initrd.img" "$WORK/out/initrd.img"
echo "$KREL" > "$WORK/out/kernel-version"
printf '%s\n' "${ORDER[@]}" > "$WORK/out/modules.txt"
chmod 0644 "$WORK/out"/*
chmod 0755 "$WORK/out"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
ln -sfn "$KEY" "$CACHE/current"
# Builds of older packages are not used again: keep this build, those of the same packages (other
# versions of this script, e.g. in other worktrees, use them) and this build's two .debs.
for d in "$CACHE"/linux-image-*; do case "$d" in "$OUT"|"${OUT%+*}+"*) ;; *) rm -rf "$d" ;; esac; done
for f in "$CACHE"/debs/*.deb; do [ "$f" = "$KDEB" ] || [ "$f" = "$BDEB" ] || rm -f "$f"; done
log "built $OUT ($(du -h "$OUT/initrd.img" | cut -f1) initrd)"
echo "$OUT"
