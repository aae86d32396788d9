#!/usr/bin/env bash
# Set up a development/bench environment on a Debian-like machine: the Debian packages the tests and
# the bench need (when missing), a virtual environment, the Python packages at the versions pinned in
# constraints.txt, and the project itself in editable mode. Idempotent: a second run only checks (a
# stamp in the venv records what was installed; changing pyproject.toml, setup.py or constraints.txt
# re-installs). The kernels are compiled by `./dev.sh ext`, which fails when a compile fails.
#   deploy/setup-dev.sh [VENV] [--deb]    --deb: also the tools that build and test the Debian package
set -euo pipefail
VENV=.venv
DEB_TOOLS=0
for arg in "$@"; do
    case "$arg" in
        --deb) DEB_TOOLS=1 ;;
        *) VENV=$arg ;;
    esac
done
cd "$(dirname "$0")/.."

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
{ have mosquitto || [ -x /usr/sbin/mosquitto ]; } || missing+=(mosquitto)
have socat || missing+=(socat)
# The departure's local time needs the zone database (zoneinfo reads /usr/share/zoneinfo).
[ -e /usr/share/zoneinfo/Europe/Berlin ] || missing+=(tzdata)
have systemd-analyze || missing+=(systemd)
have gcc || missing+=(gcc)
have pkg-config || missing+=(pkg-config)
{ have pkg-config && pkg-config --exists libsystemd; } || missing+=(libsystemd-dev)
python3 - <<'PY' || missing+=(python3-dev)
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
PY
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ "$DEB_TOOLS" = 1 ]; then
    # The package is built against Debian's own Python (/usr/bin/python3), whatever python3 is first on PATH.
    [ -e /usr/include/python3.11/Python.h ] || missing+=(python3-dev)
    /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    have dh || missing+=(debhelper)
    have dh_virtualenv || missing+=(dh-virtualenv)
    have dpkg-buildpackage || missing+=(dpkg-dev)
    have fakeroot || missing+=(fakeroot)
    have debootstrap || missing+=(debootstrap)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python >= 3.11 is needed, this is {sys.version.split()[0]}")
PY

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
stamp="$VENV/.v2g-edge-setup"
want=$(cat pyproject.toml setup.py constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("v2g-edge")' 2>/dev/null; then
    echo "setup: up to date ($("$VENV/bin/python" --version), venv $VENV)"
    exit 0
fi
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
# The build requirements first, so the editable install can skip build isolation (faster, same pins).
"${PIP[@]}" install -c constraints.txt pip setuptools cython wheel
# setuptools warns on every editable install that a folder named like the package may shadow it: in
# this flat layout that folder is the package itself, so that one warning is silenced.
PYTHONWARNINGS="ignore:Editable installation" \
    "${PIP[@]}" install -c constraints.txt --no-build-isolation -e ".[test,systemd]"
echo "$want" >"$stamp"
echo "setup: ready ($("$VENV/bin/python" --version), venv $VENV)"
