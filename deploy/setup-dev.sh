#!/usr/bin/env bash
# Set up a development/bench environment on a Debian-like machine: the Debian packages the tests and
# the bench need (when missing), a virtual environment, the Python packages, and the project itself
# in editable mode with its Cython kernels compiled. Idempotent: a second run only checks.
set -euo pipefail
VENV=${1:-.venv}
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

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python >= 3.11 is needed, this is {sys.version.split()[0]}")
PY

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# The build requirements, so the editable install can skip build isolation (faster, same pins).
"$VENV/bin/python" -m pip install -q "setuptools>=77" "cython==3.3.1" wheel
"$VENV/bin/python" -m pip install -q --no-build-isolation -e ".[test,systemd]"
echo "setup: ready ($("$VENV/bin/python" --version), venv $VENV)"
