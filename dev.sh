#!/usr/bin/env bash
# One entry point for developers and CI on a Debian-like machine (make is not assumed installed).
#   ./dev.sh run     set up, then run the daemon against the simulated bench (live values shown)
#   ./dev.sh test    set up, then lint, type-check and run the whole test suite
#   ./dev.sh setup | ext | lint | typecheck | pytest [ARGS] | bench [NAME ...] | wheel
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

setup() { bash deploy/setup-dev.sh "$VENV"; }
ext() { "$PY" setup.py -q build_ext --inplace 2>&1 | grep -v -E '^(running|copying|creating)' || true; }
lint() { "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .; }
typecheck() { "$VENV/bin/mypy"; }
run_pytest() { "$PY" -m pytest --cov --cov-report=term:skip-covered "$@"; }

cmd=${1:-help}
shift || true
case "$cmd" in
    setup) setup ;;
    ext) ext ;;
    lint) lint ;;
    typecheck) typecheck ;;
    pytest) run_pytest "$@" ;;
    test) setup && ext && lint && typecheck && run_pytest "$@" ;;
    run) setup && ext && exec "$VENV/bin/v2g-hil" demo "$@" ;;
    bench) setup && ext && exec "$VENV/bin/v2g-hil" bench "$@" ;;
    wheel) setup && "$PY" -m build --no-isolation --outdir dist . ;;
    *) sed -n '2,6p' "$0"; exit 2 ;;
esac
