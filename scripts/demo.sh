#!/usr/bin/env bash
# Demo: start a throwaway SFTP server on loopback, mount it with rmount,
# and use the mount like any directory.
#
#   scripts/demo.sh            keep the mount and server running afterwards
#                              when run from a terminal; tear them down when
#                              run non-interactively (no terminal on stdout)
#   scripts/demo.sh --keep     always keep them (prints how to stop them)
#   scripts/demo.sh --cleanup  always tear them down at the end
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -t 1 ]]; then keep=1; else keep=0; fi
case "${1:-}" in
    --keep) keep=1 ;;
    --cleanup) keep=0 ;;
    "") ;;
    *) echo "usage: $0 [--keep|--cleanup]" >&2; exit 2 ;;
esac

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
run() { say "$*"; "$@"; }

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
build_release

work=$(mktemp -d "${TMPDIR:-/tmp}/rmount-demo.XXXXXX")
chmod 755 "$work"
export_dir=$work/export
mnt=$work/mnt
mkdir -p "$export_dir" "$mnt"
sshd_pid=

teardown() {
    if grep -qF " $mnt " /proc/self/mountinfo 2>/dev/null; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
    fi
    if [[ -n $sshd_pid ]]; then
        kill "$sshd_pid" 2>/dev/null || true
    fi
    if grep -qF " $mnt " /proc/self/mountinfo 2>/dev/null; then
        echo "warning: $mnt is still mounted; leaving $work in place" >&2
    else
        rm -rf "$work"
    fi
}
# On any failure or interruption, leave nothing behind.
on_exit() {
    local status=$?
    set +e
    trap '' PIPE # the terminal or pipe may be gone: never die half-way through cleanup
    if ((status != 0)); then
        teardown
        echo "demo failed or was interrupted (status $status); cleaned up" >&2
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE

# --- a throwaway sshd -------------------------------------------------------
user=$(id -un)
ssh-keygen -q -t ed25519 -N '' -C rmount-demo-host -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -C rmount-demo-user -f "$work/id_ed25519"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin $([[ $(id -u) -eq 0 ]] && echo yes || echo no)
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
EOF
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host_key.pub")" >"$work/known_hosts"

setsid /usr/sbin/sshd -D -e -f "$work/sshd_config" >"$work/sshd.log" 2>&1 </dev/null &
sshd_pid=$!
for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$sshd_pid" 2>/dev/null; then
        echo "sshd did not start:" >&2; cat "$work/sshd.log" >&2; exit 1
    fi
    sleep 0.05
done
echo "Started sshd (pid $sshd_pid) on 127.0.0.1:$port, serving $export_dir"

# --- sample files on the server -----------------------------------------------
mkdir -p "$export_dir/docs" "$export_dir/data"
printf 'Hello from the server!\nThis file lives in %s.\n' "$export_dir" >"$export_dir/README.txt"
printf 'id,name\n1,alpha\n2,beta\n3,gamma\n' >"$export_dir/data/table.csv"
printf '# Notes\n\n- mounted with rmount\n' >"$export_dir/docs/notes.md"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$export_dir/data/random.bin"

# --- mount it -----------------------------------------------------------------
url="sftp://$user@127.0.0.1:$port$export_dir"
run "$rmount" -i "$work/id_ed25519" -o "UserKnownHostsFile=$work/known_hosts" "$url" "$mnt"

run ls -l "$mnt"
run cat "$mnt/README.txt"
run df -h "$mnt"
run sha256sum "$export_dir/data/random.bin" "$mnt/data/random.bin"

say "echo 'written through the mount' > $mnt/from-client.txt"
echo 'written through the mount' >"$mnt/from-client.txt"
run ls -l "$export_dir"
run cat "$export_dir/from-client.txt"

echo
if ((keep)); then
    trap - EXIT
    cat <<EOF
The mount stays up:   $mnt
Unmount it with:      fusermount3 -u $mnt
Stop the server with: kill $sshd_pid
Remove the demo with: rm -rf $work
EOF
else
    say "fusermount3 -u $mnt"
    fusermount3 -u "$mnt"
    kill "$sshd_pid"
    trap - EXIT
    rm -rf "$work"
    echo "Unmounted, stopped the server (pid $sshd_pid) and removed $work."
fi
