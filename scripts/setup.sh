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
# The terminal interface's end-to-end test drives it inside tmux.
command -v tmux >/dev/null 2>&1 || need+=(tmux)
# The leak tests watch nightjar's system calls under strace.
command -v strace >/dev/null 2>&1 || need+=(strace)

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

# Python tools the tests run against, in a virtualenv of their own so the system
# Python stays untouched: the reference magic-wormhole server and client, and
# python-potr, an independent OTR v3 implementation for the SMP interop test.
python_bin="${NIGHTJAR_PYTHON_BIN:-$HOME/.cache/nightjar/python/bin}"
[[ "$python_bin" == */bin ]] || {
    echo "setup: NIGHTJAR_PYTHON_BIN must name a virtualenv's bin directory" >&2
    exit 1
}
python_dir="${python_bin%/bin}"
if [[ ! -x "$python_dir/bin/twist" || ! -x "$python_dir/bin/wormhole" ]] ||
    ! "$python_dir/bin/python3" -c 'import potr.crypt' >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        echo "setup: installing python3 and python3-venv" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            python3 python3-venv >/dev/null
    fi
    echo "setup: installing the Python test tools into $python_dir" >&2
    [[ -x "$python_dir/bin/pip" ]] || python3 -m venv "$python_dir"
    pip=("$python_dir/bin/pip" install -q --disable-pip-version-check)
    "${pip[@]}" magic-wormhole==0.24.0 magic-wormhole-mailbox-server==0.8.0
    # python-potr declares pycrypto, which no longer builds; pycryptodome
    # provides the same `Crypto` modules, so potr goes in without its declared
    # dependencies.
    "${pip[@]}" pycryptodome==4.4.0
    "${pip[@]}" --no-deps python-potr==1.0.2
fi
