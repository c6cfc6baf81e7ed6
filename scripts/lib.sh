# Shared by demo.sh and bench.sh (sourced, not run): set up the machine and
# build the release binary quietly, printing the build log only on failure.
# Sets $rmount to the binary's path, and $rmount_helper to the helper binary's
# (tests/helper/, built alongside). Runs from the repository root; honours
# CARGO_TARGET_DIR.

build_release() {
    bash scripts/setup.sh
    echo "Building rmount (release)..."
    local build_log
    build_log=$(mktemp)
    if ! cargo build --release >"$build_log" 2>&1; then
        cat "$build_log" >&2
        rm -f "$build_log"
        exit 1
    fi
    rm -f "$build_log"
    local target_dir
    target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
    rmount=$target_dir/release/rmount
    rmount_helper=$target_dir/release/rmount-test-helper
}
