#!/usr/bin/env bash
# Prepare this machine for building, testing, demoing and benchmarking rmount.
#
# Idempotent and quiet on success. Needs a Rust toolchain already installed.
# Installs (as root, only what is missing) the
# system packages the build, the integration tests (real sshd / vsftpd
# servers, FUSE), scripts/demo.sh and the benchmarks use, creates sshd's
# privilege-separation directory and mounts fusectl if it is absent.
# It never enables or starts a system service.
set -euo pipefail

# The Rust toolchain is not a Debian package we could use (too old): it has
# to be there already.
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: no Rust toolchain (cargo) on PATH; install one (rustup.rs) first" >&2
    exit 1
fi

packages=(
    # build: rustc links libssh2 (built by libssh2-sys) against OpenSSL + zlib
    build-essential pkg-config libssl-dev zlib1g-dev
    # FUSE: fusermount3 (fuser mounts through it)
    fuse3
    # test servers and clients
    openssh-server openssh-client vsftpd openssl python3
    # tools the tests and benchmarks drive through a mount, and comparisons
    rsync git tar sshfs rclone vim diffutils findutils
    # process / mount / user helpers: ps, fuser, mountpoint, useradd, chpasswd
    procps psmisc util-linux passwd coreutils
)

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: not root; skipping package installation (tests need root for FUSE and the servers)" >&2
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    # Keep package maintainer scripts from starting services (vsftpd, ssh):
    # invoke-rc.d obeys policy-rc.d exit code 101 = "action forbidden".
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup_policy() { if ((created_policy)); then rm -f /usr/sbin/policy-rc.d; fi; }
    trap cleanup_policy EXIT
    echo "setup.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "setup.sh: apt-get failed" >&2
        exit 1
    fi
    rm -f "$log"
fi

# sshd refuses to start without its privilege separation directory.
mkdir -p /run/sshd
chmod 755 /run/sshd

# fusectl lets a test abort a hung FUSE connection; harmless if unavailable.
if [[ -d /sys/fs/fuse/connections ]] && ! mountpoint -q /sys/fs/fuse/connections 2>/dev/null; then
    mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
fi

# A vsftpd started by a package install would squat on nothing we use (tests
# pick their own ports), but stop it anyway if an init system runs it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet vsftpd 2>/dev/null; then
    systemctl stop vsftpd >/dev/null 2>&1 || true
fi

exit 0
