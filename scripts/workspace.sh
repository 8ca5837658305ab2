# The flags of every whole-workspace step: scripts/test.sh's clippy, doc and
# test runs, and scripts/interop.sh's build, which then reuses that test build.
# The workspace is built with the tls feature (its rediss:// tests run with
# the others); the library's builds without tls are scripts/test.sh's own.
# shellcheck shell=bash disable=SC2034 # used by the scripts that source it
workspace=(--workspace --features statehouse-tests/tls --locked)

# The unit and example tests' run: every package but statehouse-tests, whose
# library and binaries have no unit tests (its manifest leaves their test
# builds out; naming --lib would build them anyway), with the features the
# tls feature of statehouse-tests turns on, so that it reuses the build above.
units=(--workspace --exclude statehouse-tests --features statehouse/tls --locked)
