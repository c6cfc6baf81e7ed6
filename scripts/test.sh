#!/usr/bin/env bash
# The whole check, as CI runs it (.ci/run): set up the machine, build every
# target, check formatting, lint, then run all unit and integration tests.
# Ends with one summary line: "summary: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }
trap 'echo "test.sh: FAILED at: ${BASH_COMMAND}" >&2' ERR

step "setup"
bash scripts/setup.sh

# A previous run that was killed can leave test mounts behind; detach only
# ours (mount points under rmount-test-* temp dirs).
while read -r mnt; do
    fusermount3 -uz "$mnt" 2>/dev/null || true
done < <(awk '$0 ~ / - fuse/ && $5 ~ /\/rmount-test-/ { print $5 }' /proc/self/mountinfo)

step "cargo build --all-targets"
cargo build --all-targets

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test"
# Tests are I/O bound (servers, FUSE), so run more threads than the 2 cores.
log=$(mktemp)
trap - ERR # a failing cargo test is reported by the summary below
set +e
cargo test --no-fail-fast -- --test-threads="${TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

read -r passed failed ignored < <(awk '
    /^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/)  p += $i
            if ($(i+1) ~ /^failed/)  f += $i
            if ($(i+1) ~ /^ignored/) g += $i
        }
    }
    END { printf "%d %d %d\n", p, f, g }' "$log")
rm -f "$log"

echo
if [[ $status -ne 0 && $failed -eq 0 ]]; then
    # cargo test failed before or outside the test harness (e.g. a compile error).
    echo "test.sh: cargo test exited with status $status"
    failed=1
fi
echo "summary: ${passed} passed, ${failed} failed, ${ignored} skipped"
exit "$status"
