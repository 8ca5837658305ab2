#!/usr/bin/env bash
# Runs every check and test of the workspace, the same way on a laptop and in CI:
#   1. makes sure a `redis-server` binary exists (installing it with the system
#      package manager when it is missing; the tests spawn their own servers on
#      free loopback ports and never use a server that is already running),
#   2. cargo fmt --check, 3. cargo clippy -D warnings (the workspace with the
#      tls feature, then the library in each build of its adapter features:
#      redis, memory, neither; none of them with tls), with a check that it has
#      no command-line dependency,
#   4. cargo doc -D warnings, 5. cargo test (all crates, with the tls feature:
#      unit, integration, contract and doc tests, the examples' tests, the
#      rediss:// tests), then the library's unit and features tests in each
#      build of its adapter features.
# The workspace is built once, with tls (the features below): a second build
# without it would compile everything again for the few lines that differ,
# which the library's builds (all without tls) check and test.
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

# shellcheck source=scripts/workspace.sh
. scripts/workspace.sh

say "cargo clippy --workspace --all-targets -D warnings (with tls)"
cargo clippy "${workspace[@]}" --all-targets -- -D warnings

# The library's adapter features, as sqlx's: each build compiles and is
# clippy-clean, its tests and examples included (a test that needs an adapter
# says so with `required-features` in app/Cargo.toml), and its unit and
# features tests pass.
library_builds=(
    "--no-default-features --features redis"
    "--no-default-features --features memory"
    "--no-default-features"
)

# Those builds are linted and compiled in the background, at the lowest CPU
# priority, in a target directory of their own (a build holds its
# directory's lock, which every cargo step below takes): they use the CPU
# the steps below leave idle (the links, the test binaries waiting on Redis
# and on timeouts). Their tests run after the fault tests. A lint or build
# that fails fails the run there, with its output.
library_target="${CARGO_TARGET_DIR:-target}/library-builds"
library_log=$(mktemp)
(
    for build in "${library_builds[@]}"; do
        say "cargo clippy -p statehouse $build --all-targets (in the background)"
        # shellcheck disable=SC2086 # the build's flags are separate words
        nice -n 19 cargo clippy -p statehouse $build --all-targets --locked \
            --target-dir "$library_target" -- -D warnings || exit
        say "cargo test -p statehouse $build --lib --test features --no-run (in the background)"
        # shellcheck disable=SC2086 # the build's flags are separate words
        nice -n 19 cargo test -p statehouse $build --lib --test features --locked \
            --target-dir "$library_target" --no-run || exit
    done
) >"$library_log" 2>&1 &
library_pid=$!
stop_library_builds() {
    if kill -0 "$library_pid" 2>/dev/null; then
        pkill -P "$library_pid" 2>/dev/null || true
        kill "$library_pid" 2>/dev/null || true
    fi
    rm -f "$library_log"
}
trap stop_library_builds EXIT

say "the library has no command-line dependency (clap, tracing-subscriber, tokio's signal)"
if cargo tree -p statehouse -e normal,features --locked |
    grep -E '(^|[^[:alnum:]_-])(clap|tracing-subscriber) v|tokio feature "signal"'; then
    echo "error: the statehouse library depends on the above; it belongs to statehouse-cli" >&2
    exit 1
fi

say "cargo doc (broken intra-doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc "${workspace[@]}" --no-deps

# The workspace's tests, built once (with tls: the rediss:// tests end to end
# too), then run in two parts:
#   - the tests that stop, kill, pause or fail over servers (their bounds
#     include the scheduler's allowance on a busy 2-core machine, not a second
#     test binary's load beside them), one binary after the other, as cargo
#     runs them;
#   - every other test binary (the contract suite on each backend, the unit,
#     doc and example tests, ...), two binaries at a time: most of their time
#     is spent waiting on Redis or on TTLs (one after the other they took
#     300 s, two at a time 206 s, on a 2-core machine).
# Each binary's output is printed when it ends. A test file that is in
# neither list is in the second part; a fault binary that no longer exists
# fails the run (cargo: no test target named ...).
fault_tests=(failover harness metrics durability cluster_topology soak redis_faults timeouts)

say "cargo test --workspace --no-run (with tls)"
cargo test "${workspace[@]}" --no-run --quiet

# The name of every integration test target of the workspace
# (<package>/tests/<name>.rs or <package>/tests/<name>/main.rs), once each;
# the contract suite's binaries (the longest) first, so that the two at a
# time end together rather than one long run last.
integration_tests() {
    local file name
    for file in */tests/*.rs */*/tests/*.rs */tests/*/main.rs */*/tests/*/main.rs; do
        [ -e "$file" ] || continue
        case "$file" in
            */main.rs) name=$(basename "${file%/main.rs}") ;;
            *) name=$(basename "${file%.rs}") ;;
        esac
        if grep -q 'contract_suite!' "$file"; then
            echo "0 $name"
        else
            echo "1 $name"
        fi
    done | sort | cut -d' ' -f2 | awk '!seen[$0]++'
}

# Each run: its packages, features and targets (flags without spaces, split
# into words by the run).
parallel_runs=("${units[*]} --lib --bins --examples" "${workspace[*]} --doc")
while IFS= read -r name; do
    case " ${fault_tests[*]} " in
        *" $name "*) ;;
        *) parallel_runs+=("${workspace[*]} --test $name") ;;
    esac
done < <(integration_tests)

say "cargo test: ${#parallel_runs[@]} runs, two at a time (every test binary but the fault tests)"
# Each run's targets reach the inner shell as its first argument, not spliced
# into its text (BSD xargs limits a replaced argument to 255 bytes).
# shellcheck disable=SC2016 # expanded by the inner shell
printf '%s\n' "${parallel_runs[@]}" | xargs -P 2 -I '{}' bash -c '
    targets=$1
    shift
    log=$(mktemp)
    status=0
    # shellcheck disable=SC2086 # the flags are separate words
    cargo test $targets "$@" >"$log" 2>&1 || status=$?
    printf "==> cargo test %s\n" "$targets" >&2
    cat "$log" >&2
    rm -f "$log"
    exit "$status"
' run '{}' "$@" || {
    echo "error: a test run above failed" >&2
    exit 1
}

fault_runs=()
for name in "${fault_tests[@]}"; do fault_runs+=(--test "$name"); done
say "cargo test: the fault tests, one binary at a time (${fault_tests[*]})"
cargo test "${workspace[@]}" "${fault_runs[@]}" "$@"

say "the library's builds, linted and compiled beside the steps above"
if ! wait "$library_pid"; then
    cat "$library_log" >&2
    echo "error: a lint or build of the library's adapter features failed (above)" >&2
    exit 1
fi
grep '^==> ' "$library_log" >&2 || true
for build in "${library_builds[@]}"; do
    say "cargo test -p statehouse $build --lib --test features"
    # shellcheck disable=SC2086 # the build's flags are separate words
    cargo test -p statehouse $build --lib --test features --locked --target-dir "$library_target" "$@"
done
