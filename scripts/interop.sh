#!/usr/bin/env bash
# The interop suite: statehouse against the real Python libraries it shares
# Redis data with, both ways, on a redis-server of its own:
#   1. makes sure Python 3 with `venv` and a `redis-server` exist (installing
#      them with the system package manager when missing, as scripts/test.sh
#      does for redis-server),
#   2. builds a virtual environment with the exact versions pinned in
#      tests/interop/requirements.txt (pydantic-state, krules-framework,
#      cledar-sdk, redis and their dependencies), kept under target/ and
#      rebuilt when the pins change,
#   3. builds the Rust side (`interop`, a binary of statehouse-tests, in the
#      workspace's test build: nothing to do right after scripts/test.sh),
#   4. starts redis-server on a free loopback port (never 6379), and per
#      library: Python writes / statehouse reads typed values; statehouse
#      writes / Python reads the same values back; and, for pydantic-state
#      and KRules, both sides update one model or subject at the same time
#      and the end state is exact.
# Exit status 0 when every step passed; the first failing step is named.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

install_python() {
    if command -v apt-get >/dev/null 2>&1; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv
    elif command -v dnf >/dev/null 2>&1; then as_root dnf install -y python3
    elif command -v yum >/dev/null 2>&1; then as_root yum install -y python3
    elif command -v apk >/dev/null 2>&1; then as_root apk add --no-cache python3
    elif command -v pacman >/dev/null 2>&1; then as_root pacman -Sy --noconfirm python
    elif command -v zypper >/dev/null 2>&1; then as_root zypper --non-interactive install python3
    elif command -v brew >/dev/null 2>&1; then brew install python
    else return 1
    fi
}

install_redis() {
    if command -v apt-get >/dev/null 2>&1; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
    elif command -v dnf >/dev/null 2>&1; then as_root dnf install -y redis
    elif command -v yum >/dev/null 2>&1; then as_root yum install -y redis
    elif command -v apk >/dev/null 2>&1; then as_root apk add --no-cache redis
    elif command -v pacman >/dev/null 2>&1; then as_root pacman -Sy --noconfirm redis
    elif command -v zypper >/dev/null 2>&1; then as_root zypper --non-interactive install redis
    elif command -v brew >/dev/null 2>&1; then brew install redis
    else return 1
    fi
}

has_python() { command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }

if ! has_python; then
    say "python3 with venv not found; installing it with the system package manager"
    if ! install_python || ! has_python; then
        echo "error: could not install Python 3 with venv; install it (e.g. apt-get install python3 python3-venv) and run scripts/interop.sh again" >&2
        exit 1
    fi
fi
say "using $(python3 --version)"

redis_bin="${STATEHOUSE_REDIS_SERVER:-redis-server}"
if ! command -v "$redis_bin" >/dev/null 2>&1; then
    say "redis-server not found; installing it with the system package manager"
    if ! install_redis || ! command -v redis-server >/dev/null 2>&1; then
        echo "error: could not install redis-server; install it or set STATEHOUSE_REDIS_SERVER" >&2
        exit 1
    fi
    redis_bin=redis-server
fi
say "using $("$redis_bin" --version)"

# The virtual environment, rebuilt when the pins change.
requirements=tests/interop/requirements.txt
venv=target/interop-venv
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
    say "building $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps --ignore-requires-python -r "$requirements"
    cp "$requirements" "$stamp"
fi
# Every pin is what is installed (and nothing else was asked for).
"$venv/bin/python" - "$requirements" <<'PY'
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, pinned = line.split("==")
    if version(name) != pinned:
        sys.exit(f"error: {name} {version(name)} is installed where {pinned} is pinned")
PY
say "python packages: $(grep -E '^(pydantic-state|krules-framework|cledar-sdk|redis)==' "$requirements" | tr '\n' ' ')"

# The interop binary is built by the workspace's test build, with its
# features: right after scripts/test.sh (as in CI) there is nothing left to
# build; a build of the binary alone would resolve other features and
# compile the whole workspace again.
# shellcheck source=scripts/workspace.sh
. scripts/workspace.sh
say "cargo test --no-run (the workspace's test build, which holds the interop binary)"
cargo test "${workspace[@]}" --no-run --quiet
rust="${CARGO_TARGET_DIR:-target}/debug/interop"
python=("$venv/bin/python" tests/interop/interop.py)

# A redis-server of this run's own, on a free loopback port.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
workdir=$(mktemp -d)
"$redis_bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" \
    --logfile "$workdir/redis.log" &
redis_pid=$!
cleanup() {
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT
url="redis://127.0.0.1:$port/0"
"$venv/bin/python" - "$port" <<'PY'
import sys, time, redis
deadline = time.monotonic() + 10
while True:
    try:
        redis.Redis(port=int(sys.argv[1]), socket_timeout=1).ping()
        break
    except redis.ConnectionError:
        if time.monotonic() > deadline:
            sys.exit("error: the interop redis-server did not answer within 10 s")
        time.sleep(0.05)
PY
say "redis-server on $url"

# How many concurrent updates each side makes in the races.
n=300

step() { "$@" || { echo "error: interop step failed: $*" >&2; exit 1; }; }

# Both sides at once; both must finish well.
race() {
    local py_step=$1 rs_step=$2
    "${python[@]}" "$url" "$py_step" "$n" &
    local py_pid=$!
    "$rust" "$url" "$rs_step" "$n" &
    local rs_pid=$!
    local failed=0
    wait "$py_pid" || failed=1
    wait "$rs_pid" || failed=1
    if [ "$failed" -ne 0 ]; then
        echo "error: interop race failed: python $py_step / rust $rs_step" >&2
        exit 1
    fi
}

say "pydantic-state: hash models {Class}:{id_}"
step "${python[@]}" "$url" pydantic-write
step "$rust" "$url" pydantic-read
step "$rust" "$url" pydantic-write
step "${python[@]}" "$url" pydantic-read
race pydantic-race pydantic-race
step "$rust" "$url" pydantic-check "$n"

say "krules-framework: subjects s:{prefix}{subject}"
step "${python[@]}" "$url" krules-write
step "$rust" "$url" krules-read
step "$rust" "$url" krules-write
step "${python[@]}" "$url" krules-read
race krules-race krules-race
step "$rust" "$url" krules-check $((2 * n))

say "cledar-sdk: JSON documents"
step "${python[@]}" "$url" cledar-write
step "$rust" "$url" cledar-read
step "$rust" "$url" cledar-write
step "${python[@]}" "$url" cledar-read

say "interop: every step passed"
