#!/usr/bin/env bash
# Install-test the Debian package in a clean Debian bookworm root made with debootstrap (a chroot; no
# containers): install, the commands and checks an installer would run, a reinstall over a locally
# edited conffile (no prompt), and a purge that leaves nothing but the operator's config and state.
# Needs root (chroot, mounts). The bootstrapped root is cached as a tarball in /var/cache/v2g-edge-ci
# (keyed by its package list), so only the first run downloads; the root in build/deb/root is kept
# for inspection when a check fails.
#   deploy/deb/test-install.sh [DEB]     (default: build/deb/v2g-edge_*_<this arch>.deb)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT_DIR=$PWD
ARCH=$(dpkg --print-architecture)
DEB=${1:-$(ls build/deb/v2g-edge_*_"$ARCH".deb | tail -1)}
MIRROR=${V2G_DEB_MIRROR:-http://deb.debian.org/debian}
CACHE=/var/cache/v2g-edge-ci
# The package's run-time dependencies (dpkg -i runs offline) and util-linux's runuser (minbase).
INCLUDE=systemd,python3.11,libsystemd0,libstdc++6,zlib1g,procps
key=$(printf '%s %s %s' "$ARCH" "$INCLUDE" "$MIRROR" | sha256sum | cut -c1-12)
TARBALL=$CACHE/bookworm-$ARCH-$key.tar.gz
CHROOT=$ROOT_DIR/build/deb/root

[ "$(id -u)" -eq 0 ] || { echo "deb-test: needs root (debootstrap, chroot)" >&2; exit 1; }
fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
step() { echo "deb-test: $*"; }

unmount() {
    for m in proc dev/pts dev; do
        mountpoint -q "$CHROOT/$m" 2>/dev/null && umount -l "$CHROOT/$m"
    done
    return 0
}
trap unmount EXIT

if [ ! -f "$TARBALL" ]; then
    step "bootstrapping Debian bookworm ($ARCH, minbase + $INCLUDE) into the cache (once)"
    mkdir -p "$CACHE"
    tmp=$(mktemp -d "$CACHE/root.XXXXXX")
    chmod 755 "$tmp"  # the root directory of the root: mktemp's 0700 would lock out every other user
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; fail "debootstrap (log: $CACHE/debootstrap.log)"; }
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
    tar -C "$tmp" -czf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
    rm -rf "$tmp"
fi

unmount
rm -rf "$CHROOT"
mkdir -p "$CHROOT"
tar -C "$CHROOT" -xzf "$TARBALL"
chmod 755 "$CHROOT"
mount -t proc proc "$CHROOT/proc"
mount --bind /dev "$CHROOT/dev"
in_root() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
# Everything on the root's file system except what dpkg, apt and the logs keep for themselves.
snapshot() {
    (cd "$CHROOT" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./sys -o -path ./run -o -path ./tmp \
        -o -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache -o -path ./var/lib/apt \) -prune \
        -o -print | sort)
}
snapshot >"$CHROOT/../before.txt"

step "maintainer scripts: an upgrade never stops the daemon, it try-restarts it; removal stops it"
# The chroot has no systemd running, so these branches never run here: their text is checked instead.
scripts=$(mktemp -d)
dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$scripts"
if [ -f "$scripts/preinst" ] && grep -q "deb-systemd-invoke.*stop" "$scripts/preinst"; then
    fail "preinst stops the daemon before an upgrade (it would stay stopped)"
fi
grep -q "deb-systemd-invoke try-restart 'v2g-edged.service'" "$scripts/postinst" \
    || fail "postinst does not try-restart the daemon after an upgrade"
grep -q 'if \[ "$1" = remove \]' "$scripts/prerm" && grep -q "deb-systemd-invoke stop v2g-edged.service" "$scripts/prerm" \
    || fail "prerm does not stop the daemon on removal"
rm -rf "$scripts"

step "installing $(basename "$DEB")"
cp "$DEB" "$CHROOT/tmp/v2g-edge.deb"
in_root dpkg -i /tmp/v2g-edge.deb </dev/null >"$CHROOT/../install.log" 2>&1 \
    || { cat "$CHROOT/../install.log" >&2; fail "dpkg -i"; }

step "v2g-edged --check (embedded bench config, then the shipped conffile: valid, held at P = Q = 0)"
out=$(in_root v2g-edged --check) || fail "v2g-edged --check: $out"
grep -q "energize: allowed" <<<"$out" || fail "v2g-edged --check: $out"
out=$(in_root v2g-edged --check --config /etc/v2g-edge/v2g-edge.toml) || fail "--check of the conffile: $out"
grep -q "held at P = Q = 0" <<<"$out" || fail "an uncommissioned conffile must hold: $out"
step "v2g-edged --migrate-config (the unit's ExecStartPre): the shipped conffile is current, left alone"
before=$(md5sum <"$CHROOT/etc/v2g-edge/v2g-edge.toml")
in_root v2g-edged --migrate-config --config /etc/v2g-edge/v2g-edge.toml || fail "--migrate-config"
[ "$(md5sum <"$CHROOT/etc/v2g-edge/v2g-edge.toml")" = "$before" ] || fail "--migrate-config changed a current file"
step "v2gctl --help"
in_root v2gctl --help >/dev/null || fail "v2gctl --help"
step "systemd-analyze verify (no output at all)"
out=$(in_root systemd-analyze verify /lib/systemd/system/v2g-edged.service 2>&1) || fail "verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify printed: $out"
step "kernels compiled for $ARCH"
cp deploy/check-kernels.py setup.py "$CHROOT/tmp/"
in_root /opt/v2g-edge/bin/python /tmp/check-kernels.py /tmp/setup.py || fail "kernels"
step "user, groups, directories, enabled unit, root refusal"
in_root id -nG v2g-edge | tr ' ' '\n' | grep -qx dialout || fail "v2g-edge is not in dialout"
[ "$(in_root stat -c '%U:%G %a' /var/lib/v2g-edge)" = "v2g-edge:v2g-edge 750" ] || fail "/var/lib/v2g-edge owner/mode"
[ -L "$CHROOT/etc/systemd/system/multi-user.target.wants/v2g-edged.service" ] || fail "the unit is not enabled"
in_root runuser -u v2g-edge -- v2g-edged --check --config /etc/v2g-edge/v2g-edge.toml >/dev/null \
    || fail "v2g-edge cannot read its own configuration"
rc=0
out=$(in_root v2g-edged --config /etc/v2g-edge/v2g-edge.toml 2>&1) || rc=$?
[ "$rc" = 77 ] && grep -q "refusing to run as root" <<<"$out" || fail "root start: exit $rc: $out"

step "reinstall over a locally edited conffile: no prompt, local values kept"
echo '# local edit by the installer' >>"$CHROOT/etc/v2g-edge/v2g-edge.toml"
in_root dpkg -i /tmp/v2g-edge.deb </dev/null >>"$CHROOT/../install.log" 2>&1 || fail "reinstall"
grep -q "local edit" "$CHROOT/etc/v2g-edge/v2g-edge.toml" || fail "the local edit was lost"

step "purge leaves only the operator's config and state"
echo "operator file" >"$CHROOT/etc/v2g-edge/ca.pem"
echo "state" >"$CHROOT/var/lib/v2g-edge/audit.jsonl"
in_root dpkg --purge v2g-edge </dev/null >>"$CHROOT/../install.log" 2>&1 || fail "purge"
snapshot >"$CHROOT/../after.txt"
# The system user stays (Debian does not remove system users: files could still carry its id).
left=$(comm -13 "$CHROOT/../before.txt" "$CHROOT/../after.txt" \
    | grep -v -x -E '\./etc/(passwd|group|shadow|gshadow)-?|\./etc/v2g-edge(/ca\.pem)?|\./var/lib/v2g-edge(/audit\.jsonl)?' || true)
[ -z "$left" ] || fail "left after purge: $left"
# debootstrap makes /opt without a package owning it, so dpkg removes it once it is empty again.
changed=$(comm -23 "$CHROOT/../before.txt" "$CHROOT/../after.txt" | grep -v -x '\./opt' || true)
[ -z "$changed" ] || fail "removed by install/purge: $changed"
unmount
rm -rf "$CHROOT"
step "ok ($(basename "$DEB"))"
