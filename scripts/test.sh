#!/usr/bin/env bash
# Runs every check and test of the workspace, the same way on a laptop and in CI:
#   1. makes sure a `redis-server` binary exists (installing it with the system
#      package manager when it is missing; the tests spawn their own servers on
#      free loopback ports and never use a server that is already running),
#   2. cargo fmt --check, 3. cargo clippy -D warnings (also with the tls feature),
#      and the library in each build of its adapter features (redis, memory,
#      neither), with a check that it has no command-line dependency,
#   4. cargo doc -D warnings, 5. cargo test (all crates: unit, integration,
#      contract and doc tests, the examples' tests), then the rediss:// tests
#      with the tls feature and the library's unit and features tests in each build.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
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

if [ -n "${STATEHOUSE_REDIS_SERVER:-}" ]; then
    if [ ! -x "$STATEHOUSE_REDIS_SERVER" ]; then
        echo "error: STATEHOUSE_REDIS_SERVER=$STATEHOUSE_REDIS_SERVER is not an executable redis-server" >&2
        exit 1
    fi
    redis_bin="$STATEHOUSE_REDIS_SERVER"
else
    redis_bin=redis-server
    if ! command -v redis-server >/dev/null 2>&1; then
        say "redis-server not found; installing it with the system package manager"
        if ! install_redis || ! command -v redis-server >/dev/null 2>&1; then
            cat >&2 <<'MSG'
error: could not install redis-server (no supported package manager, or no root/sudo).
Install Redis 6.2 or newer yourself (e.g. `apt-get install redis-server`,
`brew install redis`), or point STATEHOUSE_REDIS_SERVER at a redis-server binary,
then run scripts/test.sh again.
MSG
            exit 1
        fi
    fi
fi
say "using $("$redis_bin" --version)"

# The workspace's rust-version is the toolchain CI really builds with: say
# which one this is, and refuse an older one (cargo would too, less clearly).
declared=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
actual=$(rustc --version | awk '{print $2}')
say "using rustc $actual (rust-version $declared)"
if [ "$(printf '%s\n%s\n' "$declared" "$actual" | sort -V | head -n 1)" != "$declared" ]; then
    echo "error: rustc $actual is older than the declared rust-version $declared" >&2
    exit 1
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --workspace --all-targets -D warnings (default features, then with tls)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p statehouse-tests --all-targets --features tls --locked -- -D warnings

# The library's adapter features, as sqlx's: each build compiles and is
# clippy-clean, its tests and examples included (a test that needs an adapter
# says so with `required-features` in app/Cargo.toml).
library_builds=(
    "--no-default-features --features redis"
    "--no-default-features --features memory"
    "--no-default-features"
)
for build in "${library_builds[@]}"; do
    say "cargo clippy -p statehouse $build --all-targets"
    # shellcheck disable=SC2086 # the build's flags are separate words
    cargo clippy -p statehouse $build --all-targets --locked -- -D warnings
done

say "the library has no command-line dependency (clap, tracing-subscriber, tokio's signal)"
if cargo tree -p statehouse -e normal,features --locked |
    grep -E '(^|[^[:alnum:]_-])(clap|tracing-subscriber) v|tokio feature "signal"'; then
    echo "error: the statehouse library depends on the above; it belongs to statehouse-cli" >&2
    exit 1
fi

say "cargo doc (broken intra-doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

say "cargo test --workspace"
cargo test --workspace --locked "$@"

say "cargo test: rediss:// end to end (feature tls)"
cargo test -p statehouse-tests --features tls --test tls --locked "$@"

for build in "${library_builds[@]}"; do
    say "cargo test -p statehouse $build --lib --test features"
    # shellcheck disable=SC2086 # the build's flags are separate words
    cargo test -p statehouse $build --lib --test features --locked "$@"
done
