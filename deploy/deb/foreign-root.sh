#!/usr/bin/env bash
# Run a package build for another architecture (arm64: Raspberry Pi OS bookworm, 64-bit) inside a
# Debian bookworm root of that architecture, emulated by qemu-user-static. Called by build.sh:
#   deploy/deb/foreign-root.sh ARCH OUT_DIR COMMAND...    (runs COMMAND in OUT_DIR/src, as /build/src)
# The kernels and the wheels' shared libraries must be the target's, so this is a native build under
# emulation, not a cross build, and many times slower than natively. Needs root, the packages
# qemu-user-static and binfmt-support on the host, and the kernel's binfmt_misc (not available in
# every container or VM). On a Pi itself, run deploy/deb/build.sh natively instead.
set -euo pipefail
ARCH=$1
OUT=$2
shift 2
QEMU_ARCH=$(case "$ARCH" in arm64) echo aarch64 ;; armhf) echo arm ;; *) echo "$ARCH" ;; esac)
MIRROR=${V2G_DEB_MIRROR:-http://deb.debian.org/debian}
CACHE=/var/cache/v2g-edge-ci
# Build-Depends of debian/control, and what dpkg-buildpackage needs.
INCLUDE=build-essential,debhelper,dh-virtualenv,python3.11,python3-dev,python3-venv,libsystemd-dev,pkg-config,fakeroot
key=$(printf '%s %s %s' "$ARCH" "$INCLUDE" "$MIRROR" | sha256sum | cut -c1-12)
TARBALL=$CACHE/bookworm-build-$ARCH-$key.tar.gz
CHROOT=$OUT/root-$ARCH

[ "$(id -u)" -eq 0 ] || { echo "foreign build: needs root" >&2; exit 1; }
if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$QEMU_ARCH" ]; then
    echo "foreign build: no binfmt_misc handler for $QEMU_ARCH on this machine." >&2
    echo "  apt-get install qemu-user-static binfmt-support (the handler must be registered by the host's" >&2
    echo "  kernel; containers often cannot), or build natively on the target: deploy/deb/build.sh" >&2
    exit 1
fi

unmount() {
    for m in build root/.cache/pip proc dev; do
        mountpoint -q "$CHROOT/$m" 2>/dev/null && umount -l "$CHROOT/$m"
    done
    return 0
}
trap unmount EXIT

if [ ! -f "$TARBALL" ]; then
    mkdir -p "$CACHE"
    tmp=$(mktemp -d "$CACHE/root.XXXXXX")
    chmod 755 "$tmp"
    debootstrap --arch="$ARCH" --variant=buildd --include="$INCLUDE" bookworm "$tmp" "$MIRROR"
    rm -rf "$tmp"/var/cache/apt/archives/*.deb
    tar -C "$tmp" -czf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
    rm -rf "$tmp"
fi
unmount
rm -rf "$CHROOT"
mkdir -p "$CHROOT"
tar -C "$CHROOT" -xzf "$TARBALL"
chmod 755 "$CHROOT"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
mkdir -p "$CHROOT/build" "$CHROOT/root/.cache/pip" "$CACHE/pip-$ARCH"
mount -t proc proc "$CHROOT/proc"
mount --bind /dev "$CHROOT/dev"
mount --bind "$OUT" "$CHROOT/build"
# pip's cache for this architecture's wheels survives the throw-away root.
mount --bind "$CACHE/pip-$ARCH" "$CHROOT/root/.cache/pip"
chroot "$CHROOT" /bin/sh -c 'cd /build/src && exec "$@"' sh "$@"
unmount
rm -rf "$CHROOT"
