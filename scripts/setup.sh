#!/usr/bin/env bash
# Prepare this machine for building, testing, demoing and benchmarking rmount.
#
# Idempotent and quiet on success. Needs a Rust toolchain already installed.
# Installs (as root, only what is missing) the
# system packages the build, the integration tests (real sshd / vsftpd /
# gesftpserver servers, FUSE), scripts/demo.sh and the benchmarks use,
# unpacks ProFTPD and pure-ftpd under /opt/rmount-test-servers, creates sshd's
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
    # test servers and clients; gesftpserver is a second SFTP server
    # (/usr/libexec/gesftpserver, run as sshd's sftp subsystem)
    openssh-server openssh-client vsftpd gesftpserver openssl python3
    # libraries of ProFTPD (proftpd-core, proftpd-mod-crypto) and pure-ftpd,
    # which are unpacked privately below, not installed
    libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libsodium23
    # tools the tests run against files on the servers and through a mount
    unzip zip sqlite3 make gcc python3-venv
    # tools the tests and benchmarks drive through a mount, and comparisons
    rsync git tar sshfs rclone vim diffutils findutils
    # the benchmark's reference transfers (FTP; ssh and sftp: openssh-client)
    curl
    # process / mount / user helpers: ps, fuser, mountpoint, useradd, chpasswd
    procps psmisc util-linux passwd coreutils
    # mount(8)/fstab tests: systemd-fstab-generator, systemd-analyze verify
    systemd
)

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: not root; skipping package installation (tests need root for FUSE and the servers)" >&2
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    # (Not `dpkg -s | grep -q`: with pipefail, grep's early exit makes dpkg
    # die of SIGPIPE on a long entry and the package looks missing.)
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
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

# ProFTPD and pure-ftpd cannot be installed next to vsftpd (each Provides and
# Conflicts ftp-server), but their binaries run from any directory: fetch the
# .debs and unpack them into a private directory each, e.g.
# /opt/rmount-test-servers/proftpd/usr/sbin/proftpd with its modules in
# .../usr/lib/proftpd (mod_tls comes from proftpd-mod-crypto), and
# /opt/rmount-test-servers/pure-ftpd/usr/sbin/pure-ftpd. Their shared
# libraries are in the package list above. Unpacked again only when apt's
# candidate version changes.
servers_root=/opt/rmount-test-servers

# "PKG VERSION" lines for the candidate versions of the given packages, or
# nothing if apt does not know one of them (no package lists yet).
candidate_versions() {
    local lines
    lines=$(apt-cache policy "$@" 2>/dev/null |
        awk '/^[^ ]/ {sub(/:$/, ""); p = $1} /^  Candidate:/ && $2 != "(none)" {print p, $2}')
    if [[ $(wc -l <<<"$lines") -eq $# && -n $lines ]]; then
        printf '%s\n' "$lines"
    fi
}

# unpack_debs NAME PKG...: PKGs' files under $servers_root/NAME.
unpack_debs() {
    local name=$1
    shift
    local dest=$servers_root/$name
    local stamp=$dest/.rmount-versions
    local want
    want=$(candidate_versions "$@")
    if [[ -f $stamp ]] && [[ -z $want || $(<"$stamp") == "$want" ]]; then
        return 0
    fi
    local log tmp p v
    log=$(mktemp)
    if [[ -z $want ]]; then
        apt-get update -q >"$log" 2>&1 || true
        want=$(candidate_versions "$@")
        if [[ -z $want ]]; then
            cat "$log" >&2
            rm -f "$log"
            echo "setup.sh: apt knows no version of one of: $*" >&2
            exit 1
        fi
    fi
    tmp=$(mktemp -d)
    local specs=()
    while read -r p v; do specs+=("$p=$v"); done <<<"$want"
    # A stale package list names files the mirror no longer has: update once.
    if ! (cd "$tmp" && apt-get download -q "${specs[@]}") >>"$log" 2>&1; then
        apt-get update -q >>"$log" 2>&1 || true
        want=$(candidate_versions "$@")
        specs=()
        while read -r p v; do specs+=("$p=$v"); done <<<"$want"
        if ! (cd "$tmp" && apt-get download -q "${specs[@]}") >>"$log" 2>&1; then
            cat "$log" >&2
            rm -rf "$log" "$tmp"
            echo "setup.sh: apt-get download $* failed" >&2
            exit 1
        fi
    fi
    rm -f "$log"
    mkdir -p "$servers_root"
    rm -rf "$dest.new"
    mkdir "$dest.new"
    local deb
    for deb in "$tmp"/*.deb; do
        dpkg-deb -x "$deb" "$dest.new"
    done
    rm -rf "$tmp"
    # Every binary and module must find its libraries.
    local f missing_libs=""
    while IFS= read -r -d '' f; do
        if ldd "$f" 2>/dev/null | grep -q 'not found'; then
            missing_libs+="$f: $(ldd "$f" | grep 'not found' | tr -s ' \t\n' ' ')"$'\n'
        fi
    done < <(find "$dest.new" -type f \( -name '*.so' -o -perm -u+x \) -print0)
    if [[ -n $missing_libs ]]; then
        printf '%s' "$missing_libs" >&2
        rm -rf "$dest.new"
        echo "setup.sh: $name unpacked in $dest misses shared libraries" >&2
        exit 1
    fi
    printf '%s\n' "$want" >"$dest.new/.rmount-versions"
    rm -rf "$dest"
    mv "$dest.new" "$dest"
}

unpack_debs proftpd proftpd-core proftpd-mod-crypto
unpack_debs pure-ftpd pure-ftpd

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
