# The flags of every whole-workspace step: scripts/test.sh's clippy, doc and
# test runs, and scripts/interop.sh's build, which then reuses that test build.
# The workspace is built with the tls feature (its rediss:// tests run with
# the others); the library's builds without tls are scripts/test.sh's own.
# shellcheck shell=bash disable=SC2034 # used by the scripts that source it
workspace=(--workspace --features statehouse-tests/tls --locked)
