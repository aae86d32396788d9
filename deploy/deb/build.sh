#!/usr/bin/env bash
# Build the Debian package v2g-edge with Debian's tools (dpkg-buildpackage, debhelper, dh-virtualenv)
# from a copy of the working tree in build/deb/src, so the checkout stays clean. The .deb lands in
# build/deb/. Python packages come from pip's cache when they are there (~/.cache/pip).
#   deploy/deb/build.sh                 for this machine's architecture (amd64 in CI)
#   deploy/deb/build.sh --arch arm64    for a Raspberry Pi (bookworm, 64-bit): natively on an arm64
#                                       machine, or in an arm64 Debian root under qemu-user-static
#                                       (see docs/deploy.md); there is no cross build (the venv's
#                                       compiled wheels and kernels must match the target).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/build/deb
ARCH=$(dpkg --print-architecture)
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        *) echo "usage: $0 [--arch amd64|arm64]" >&2; exit 2 ;;
    esac
done
rm -rf "$OUT/src"
mkdir -p "$OUT/src"
# The tracked and new (not ignored) files as they are now: what the developer is testing.
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$OUT/src"
rm -f "$OUT"/v2g-edge_*"_$ARCH".deb "$OUT"/v2g-edge_*"_$ARCH".buildinfo "$OUT"/v2g-edge_*"_$ARCH".changes

# Debian's own python3 (the package runs on it), whatever is first on PATH here; no bytecode-writing
# switches from the caller's environment.
BUILD=(env -u PYTHONDONTWRITEBYTECODE -u VIRTUAL_ENV PATH="/usr/sbin:/usr/bin:/sbin:/bin"
    dpkg-buildpackage -b -us -uc --no-sign)
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
    (cd "$OUT/src" && "${BUILD[@]}") >"$OUT/build.log" 2>&1 || build_failed=1
else
    bash deploy/deb/foreign-root.sh "$ARCH" "$OUT" "${BUILD[@]}" >"$OUT/build.log" 2>&1 || build_failed=1
fi
[ -z "${build_failed:-}" ] || {
    tail -40 "$OUT/build.log" >&2
    echo "deb: dpkg-buildpackage failed (full log: $OUT/build.log)" >&2
    exit 1
}
cd "$ROOT"
deb=$(ls "$OUT"/v2g-edge_*"_$ARCH".deb)
echo "deb: $deb ($(du -k "$deb" | cut -f1) kB; installed $(dpkg-deb -f "$deb" Installed-Size) kB)"
