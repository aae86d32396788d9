#!/usr/bin/env bash
# One entry point for developers and CI on a Debian-like machine (make is not assumed installed).
#   ./dev.sh run     set up, then run the daemon against the simulated bench (live values shown)
#   ./dev.sh test    set up, then lint, type-check and run the whole test suite
#   ./dev.sh setup | ext | lint | typecheck | pytest [ARGS] | bench [NAME ...] | wheel | lock
#   ./dev.sh deb [--arch arm64] | deb-test     build the Debian package | install-test it in a Debian root
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

# v2g-edged refuses to run as root unless told; the bench and the tests start it for you, so as root
# (CI, a bench PC) they tell it through the environment. The packaged service runs as v2g-edge.
if [ "$(id -u)" -eq 0 ]; then
    export V2G_EDGE_ALLOW_ROOT=1
fi

setup() { bash deploy/setup-dev.sh "$VENV"; }
# Compile the kernels in place; a compile error fails this step (and CI), and every kernel must then
# import as a compiled module (a missing one would otherwise fall back to Python with a warning).
ext() {
    local out
    # The kernels' layout includes are generated from the Python declarations: a stale one would
    # compile a kernel that disagrees with its reference.
    "$PY" -m ext.gen_layouts --check || return 1
    if ! out=$("$PY" setup.py -q build_ext --inplace 2>&1); then
        printf '%s\n' "$out" >&2
        echo "ext: the Cython kernels did not compile" >&2
        return 1
    fi
    [ -z "$out" ] || printf '%s\n' "$out" | { grep -v -E '^(running|copying|creating)' || true; }
    "$PY" deploy/check-kernels.py
}
lint() { "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .; }
typecheck() { "$VENV/bin/mypy"; }
run_pytest() { "$PY" -m pytest --cov --cov-report=term:skip-covered --durations=30 "$@"; }
# Exact versions for constraints.txt, resolved afresh in a throw-away environment.
lock() {
    local tmp
    tmp=$(mktemp -d)
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q --upgrade pip setuptools wheel "cython==3.3.1"
    "$tmp/venv/bin/pip" install -q --no-build-isolation ".[test,systemd]"
    { sed -n '1,3p' constraints.txt; "$tmp/venv/bin/pip" freeze --all --exclude v2g-edge; } >constraints.txt.new
    mv constraints.txt.new constraints.txt
    rm -rf "$tmp"
    echo "lock: constraints.txt rewritten; review the diff"
}
deb() { bash deploy/setup-dev.sh "$VENV" --deb && bash deploy/deb/build.sh "$@"; }
deb_test() { bash deploy/deb/test-install.sh "$@"; }

cmd=${1:-help}
shift || true
case "$cmd" in
    setup) setup ;;
    ext) ext ;;
    lint) lint ;;
    typecheck) typecheck ;;
    pytest) run_pytest "$@" ;;
    # Two processes (PYTEST_WORKERS): the suite's wall time is mostly real-time scenarios waiting on
    # the clock; a test file stays in one process (its module fixtures, its order).
    test) setup && ext && lint && typecheck && run_pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@" ;;
    run) setup && ext && exec "$VENV/bin/v2g-hil" demo "$@" ;;
    bench) setup && ext && exec "$VENV/bin/v2g-hil" bench "$@" ;;
    wheel) setup && "$PY" -m build --no-isolation --outdir dist . ;;
    lock) lock ;;
    deb) deb "$@" ;;
    deb-test) deb && deb_test "$@" ;;
    *) sed -n '2,6p' "$0"; exit 2 ;;
esac
