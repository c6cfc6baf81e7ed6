# Shared by demo.sh and bench.sh (sourced, not run): set up the machine and
# build the release binary quietly, printing the build log only on failure.
# Sets $rmount to the binary's path. Runs from the repository root.

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
    rmount=$PWD/target/release/rmount
}
