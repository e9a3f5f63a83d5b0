#!/usr/bin/env bash
# Installs what building and testing nightjar needs on a fresh Debian machine.
# Idempotent and quiet: does nothing when everything is already there.
set -euo pipefail

need=()
command -v tor >/dev/null 2>&1 || need+=(tor)
command -v tor-gencert >/dev/null 2>&1 || need+=(tor)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v perl >/dev/null 2>&1 || need+=(perl)

if ((${#need[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "setup: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
fi

# The system tor service is not used (nightjar starts its own tor processes); make
# sure a packaged one does not hold the default ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet tor 2>/dev/null; then
    systemctl stop tor || true
fi

command -v cargo >/dev/null 2>&1 || {
    echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 1
}

# python-potr, the independent OTR v3 implementation the `otr3` SMP interop test
# runs against, in nightjar's Python venv. It declares pycrypto, which no longer
# builds; pycryptodome provides the same `Crypto` modules, so potr goes in
# without its declared dependencies.
potr_bin="${NIGHTJAR_PYTHON_BIN:-$HOME/.cache/nightjar/python/bin}"
if ! "$potr_bin/python3" -c 'import potr.crypt' >/dev/null 2>&1; then
    echo "setup: installing python-potr into $potr_bin" >&2
    [[ -x $potr_bin/python3 ]] || python3 -m venv "$(dirname "$potr_bin")"
    "$potr_bin/python3" -m pip install -q --disable-pip-version-check pycryptodome==4.4.0 >/dev/null
    "$potr_bin/python3" -m pip install -q --disable-pip-version-check --no-deps python-potr==1.0.2 >/dev/null
fi
