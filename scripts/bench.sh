#!/usr/bin/env bash
# Benchmark rmount against sshfs (SFTP) and rclone mount (FTP) on loopback.
#
#   scripts/bench.sh            run every row (as root: FUSE, sshd, vsftpd)
#   scripts/bench.sh -h         this help
#
# Environment:
#   BENCH_SIZE_MIB=512   size of the file read and of the file written
#   BENCH_RUNS=3         runs per measurement; the table shows the median
#   BENCH_TIMEOUT=300    seconds one measurement may take ("timeout" if more)
#   BENCH_PROTOCOLS="sftp ftp"   which halves of the table to run
#
# One run starts a throwaway sshd and vsftpd on 127.0.0.1 (own temp dir,
# generated keys, a dedicated system user "rmount-bench" for FTP), creates a
# BENCH_SIZE_MIB file of random bytes and a tree of 5000 small files (50 dirs
# x 100 files) on the server side, then times, for rmount and the other tool
# side by side:
#   seq read    dd bs=1M of the big file to /dev/null; fresh mount, page cache
#               dropped (cold)
#   seq write   dd bs=1M conv=fsync from /dev/zero into the mount, until the
#               complete file is on the server (includes close and upload,
#               also for rclone, which uploads after close)
#   ls cold     ls -lR of the tree on a fresh mount, page cache dropped
#   ls warm     ls -lR again on the same mount
# SFTP: rmount vs sshfs (its defaults; key, known_hosts, port and BatchMode=yes
#       given).
# FTP:  rmount vs rclone mount --vfs-cache-mode writes (needed for sequential
#       writes; used for every FTP row) --vfs-write-back 0s (upload right after
#       close instead of 5 s later).
# A row that fails prints "error" (or "timeout"); the run goes on. The table
# goes to stdout and target/bench/results.txt; logs of the mounts and servers
# to target/bench/logs/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [-h]" >&2; exit 2 ;;
esac

size_mib=${BENCH_SIZE_MIB:-512}
runs=${BENCH_RUNS:-3}
op_timeout=${BENCH_TIMEOUT:-300}
protocols=${BENCH_PROTOCOLS:-sftp ftp}
for v in size_mib runs op_timeout; do
    if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
        echo "bench.sh: $v must be a positive integer, got '${!v}'" >&2
        exit 2
    fi
done
for p in $protocols; do
    case $p in sftp | ftp) ;; *) echo "bench.sh: unknown protocol '$p' in BENCH_PROTOCOLS" >&2; exit 2 ;; esac
done
if [[ $(id -u) -ne 0 ]]; then
    echo "bench.sh: must run as root (FUSE, sshd, vsftpd, drop_caches)" >&2
    exit 1
fi

size_bytes=$((size_mib * 1024 * 1024))
tree_dirs=50
tree_files=100
ftp_user=rmount-bench

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
build_release
out_dir=$PWD/target/bench
logs=$out_dir/logs
mkdir -p "$out_dir"
rm -rf "$logs"
mkdir -p "$logs"

# Everything lives under one temp dir; 755 so that the FTP user (vsftpd drops
# to it) can reach the served tree.
work=$(mktemp -d "${TMPDIR:-/tmp}/rmount-bench.XXXXXX")
chmod 755 "$work"
srv=$work/srv # served by both servers, outside every mount point's parents
mkdir -p "$srv" "$work/sshd" "$work/ftp/empty" "$work/mnt" "$work/rclone"

declare -A mount_pid=() # mount point -> PID of its FUSE process
server_pids=()

# --- cleanup --------------------------------------------------------------------
is_mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }

# Waits up to $2 tenths of a second for PID $1 to exit.
wait_gone() {
    local pid=$1 n=$2
    while ((n-- > 0)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null
}

# Stops PID $1 (started by us): TERM, then KILL; reaps it.
stop_pid() {
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 50; then
            kill -9 "$pid" 2>/dev/null || true
            wait_gone "$pid" 50 || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# Unmounts $1 and makes sure the FUSE process that served it has exited.
unmount_fs() {
    local mnt=$1 pid=${mount_pid[$1]:-}
    if is_mounted "$mnt"; then
        timeout 20 fusermount3 -u "$mnt" 2>/dev/null ||
            timeout 10 fusermount3 -uz "$mnt" 2>/dev/null || true
    fi
    if [[ -n $pid ]]; then
        # A clean unmount ends the process by itself; give it a moment.
        wait_gone "$pid" 100 || true
        stop_pid "$pid"
    fi
    unset "mount_pid[$mnt]"
}

on_exit() {
    local status=$?
    set +e
    trap '' PIPE INT TERM HUP
    for mnt in "${!mount_pid[@]}"; do unmount_fs "$mnt"; done
    # A mount whose process we lost track of (should not happen): detach.
    for mnt in "$work"/mnt/*; do
        if [[ -d $mnt ]] && is_mounted "$mnt"; then timeout 10 fusermount3 -uz "$mnt" 2>/dev/null; fi
    done
    for pid in "${server_pids[@]}"; do
        stop_pid "$pid"
        # Session processes the server forked and left in its process group
        # (started by setsid, so the group is ours alone).
        kill -- "-$pid" 2>/dev/null
    done
    if awk -v w="$work/" 'index($5, w) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        echo "bench.sh: warning: a mount under $work remains; leaving $work in place" >&2
    else
        rm -rf "$work"
    fi
    if ((status != 0 && status != 130)); then echo "bench.sh: failed (status $status); cleaned up" >&2; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

# --- helpers --------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A base port B such that B..B+$1-1 are all free right now (FTP passive range).
free_port_range() {
    python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(30000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no free port range")
EOF
}

# Waits until something listens on 127.0.0.1:$1, while PID $2 is alive.
wait_port() {
    local port=$1 pid=$2
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

drop_caches() {
    timeout 60 sync || true
    { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || true
}

# --- servers --------------------------------------------------------------------
echo "$(date +%T) Starting sshd and vsftpd on 127.0.0.1, creating test data in $srv..."
sshd_dir=$work/sshd
ssh-keygen -q -t ed25519 -N '' -C rmount-bench-host -f "$sshd_dir/host_key"
ssh-keygen -q -t ed25519 -N '' -C rmount-bench-user -f "$sshd_dir/id_ed25519"
cp "$sshd_dir/id_ed25519.pub" "$sshd_dir/authorized_keys"
sshd_port=$(free_port)
cat >"$sshd_dir/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $sshd_dir/host_key
PidFile $sshd_dir/sshd.pid
AuthorizedKeysFile $sshd_dir/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin yes
AllowUsers root
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxSessions 64
MaxStartups 64
Subsystem sftp internal-sftp
EOF
echo "[127.0.0.1]:$sshd_port $(cut -d' ' -f1,2 "$sshd_dir/host_key.pub")" >"$sshd_dir/known_hosts"
mkdir -p /run/sshd
setsid /usr/sbin/sshd -D -e -f "$sshd_dir/sshd_config" >"$logs/sshd.log" 2>&1 </dev/null &
server_pids+=($!)
if ! wait_port "$sshd_port" "$!"; then
    echo "bench.sh: sshd did not start:" >&2; cat "$logs/sshd.log" >&2; exit 1
fi

# A dedicated FTP user (vsftpd refuses root), with a fresh random password.
# vsftpd changes to the home directory before local_root, so it must exist.
ftp_home=/var/lib/$ftp_user
if ! id -u "$ftp_user" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir "$ftp_home" --shell /bin/bash "$ftp_user"
fi
if [[ $(getent passwd "$ftp_user" | cut -d: -f6) != "$ftp_home" ]]; then
    usermod --home "$ftp_home" "$ftp_user"
fi
mkdir -p "$ftp_home"
chown "$ftp_user:" "$ftp_home"
ftp_pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$ftp_user:$ftp_pass" | chpasswd

ftp_dir=$work/ftp
ftp_port=$(free_port)
pasv_min=$(free_port_range 64)
echo "$ftp_user" >"$ftp_dir/user_list"
cat >"$ftp_dir/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$ftp_port
background=NO
seccomp_sandbox=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chmod_enable=YES
utf8_filesystem=YES
force_dot_files=YES
local_root=$srv
pam_service_name=vsftpd
userlist_enable=YES
userlist_deny=NO
userlist_file=$ftp_dir/user_list
secure_chroot_dir=$ftp_dir/empty
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$pasv_min
pasv_max_port=$((pasv_min + 63))
max_clients=32
max_per_ip=32
dirmessage_enable=NO
xferlog_enable=NO
vsftpd_log_file=$logs/vsftpd.log
EOF
setsid /usr/sbin/vsftpd "$ftp_dir/vsftpd.conf" >"$logs/vsftpd.out" 2>&1 </dev/null &
server_pids+=($!)
if ! wait_port "$ftp_port" "$!"; then
    echo "bench.sh: vsftpd did not start:" >&2; cat "$logs/vsftpd.out" >&2; exit 1
fi

# rclone's FTP remote, in a config of its own.
rclone_conf=$work/rclone/rclone.conf
cat >"$rclone_conf" <<EOF
[benchftp]
type = ftp
host = 127.0.0.1
port = $ftp_port
user = $ftp_user
pass = $(rclone obscure "$ftp_pass")
EOF
chmod 600 "$rclone_conf"

# --- test data --------------------------------------------------------------------
head -c "$size_bytes" /dev/urandom >"$srv/big.bin"
for ((d = 0; d < tree_dirs; d++)); do
    dir=$(printf '%s/tree/d%02d' "$srv" "$d")
    mkdir -p "$dir"
    for ((f = 0; f < tree_files; f++)); do
        printf 'small file %d of directory %d\n' "$f" "$d" >"$(printf '%s/f%03d.txt' "$dir" "$f")"
    done
done
chown -R "$ftp_user:" "$srv"
tree_total=$((tree_dirs * tree_files))

# --- mounts ---------------------------------------------------------------------
# Starts tool $1 on mount point $2 in the foreground (so we own its PID) and
# waits until the mount is there. Returns 1 (with a note) if it does not come up.
mount_fs() {
    local tool=$1 mnt=$2 log=$logs/$1.log pid
    mkdir -p "$mnt"
    echo "=== mount $(date +%T)" >>"$log"
    local start_line
    start_line=$(wc -l <"$log")
    case $tool in
        rmount-sftp)
            setsid "$rmount" -f -i "$sshd_dir/id_ed25519" -o "UserKnownHostsFile=$sshd_dir/known_hosts" \
                "sftp://root@127.0.0.1:$sshd_port$srv" "$mnt" >>"$log" 2>&1 </dev/null &
            ;;
        sshfs)
            setsid sshfs -f -o "IdentityFile=$sshd_dir/id_ed25519,UserKnownHostsFile=$sshd_dir/known_hosts,port=$sshd_port,BatchMode=yes" \
                "root@127.0.0.1:$srv" "$mnt" >>"$log" 2>&1 </dev/null &
            ;;
        rmount-ftp)
            RMOUNT_PASSWORD=$ftp_pass setsid "$rmount" -f \
                "ftp://$ftp_user@127.0.0.1:$ftp_port/" "$mnt" >>"$log" 2>&1 </dev/null &
            ;;
        rclone)
            rm -rf "$work/rclone/cache"
            setsid rclone --config "$rclone_conf" mount benchftp: "$mnt" \
                --vfs-cache-mode writes --vfs-write-back 0s --cache-dir "$work/rclone/cache" \
                >>"$log" 2>&1 </dev/null &
            ;;
    esac
    pid=$!
    mount_pid[$mnt]=$pid
    for _ in $(seq 300); do
        if is_mounted "$mnt"; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    unmount_fs "$mnt"
    # What the tool said this time (its last two lines), on one line.
    mount_error=$(tail -n +"$((start_line + 1))" "$log" | tail -n 2 |
        sed -E 's#^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9:]{8} ##' | tr -s '\n' ' ')
    [[ -n $mount_error ]] || mount_error="no mount after 30 s"
    note "$tool: mount failed: $mount_error"
    return 1
}

# --- results --------------------------------------------------------------------
declare -A times=()  # "row|tool" -> space-separated seconds
declare -A failed=() # "row|tool" -> error | timeout
notes=()
note() { # each distinct note once
    local n
    for n in "${notes[@]}"; do [[ $n == "$*" ]] && return 0; done
    notes+=("$*")
    echo "  note: $*" >&2
}

# record ROW TOOL STATUS SECONDS-or-REASON
record() {
    local key="$1|$2"
    case $3 in
        ok) times[$key]+="$4 " ;;
        timeout) failed[$key]=timeout; note "$2, $1: timeout after ${op_timeout}s" ;;
        mount) failed[$key]=error ;; # mount_fs has noted why
        *) failed[$key]=error; note "$2, $1: $4" ;;
    esac
}

# Runs "$@" under the per-measurement timeout; sets t_elapsed; returns
# 0 ok, 124 timeout, else the command's status.
timed() {
    local t0 rc=0
    t0=$(now)
    timeout -k 5 "$op_timeout" "$@" || rc=$?
    t_elapsed=$(elapsed "$t0" "$(now)")
    if ((rc == 124 || rc == 137)); then return 124; fi
    return "$rc"
}

median() {
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# --- workloads --------------------------------------------------------------------
row_read="seq read ${size_mib} MiB (cold)"
row_write="seq write ${size_mib} MiB"
row_ls_cold="ls -lR ${tree_total} files (cold)"
row_ls_warm="ls -lR ${tree_total} files (warm)"

skip() { [[ -n ${failed["$1|$2"]:-} ]]; }

bench_read() { # proto tool mnt
    local row="$1 $row_read" tool=$2 mnt=$3 rc=0 bytes
    skip "$row" "$tool" && return 0
    mount_fs "$tool" "$mnt" || { record "$row" "$tool" mount; return 0; }
    drop_caches
    timed dd if="$mnt/big.bin" of=/dev/null bs=1M 2>"$work/dd.err" || rc=$?
    bytes=$(awk '/bytes/ { print $1; exit }' "$work/dd.err")
    if ((rc == 124)); then
        record "$row" "$tool" timeout
    elif ((rc != 0)); then
        record "$row" "$tool" error "dd failed (status $rc): $(head -n 1 "$work/dd.err")"
    elif [[ ${bytes:-} != "$size_bytes" ]]; then
        record "$row" "$tool" error "read ${bytes:-?} bytes, expected $size_bytes"
    else
        record "$row" "$tool" ok "$t_elapsed"
    fi
    unmount_fs "$mnt"
}

bench_write() { # proto tool mnt
    local row="$1 $row_write" tool=$2 mnt=$3 rc=0 name="written-by-$2.bin" t0 t1 size deadline
    skip "$row" "$tool" && return 0
    rm -f "$srv/$name"
    mount_fs "$tool" "$mnt" || { record "$row" "$tool" mount; return 0; }
    t0=$(now)
    timeout -k 5 "$op_timeout" dd if=/dev/zero of="$mnt/$name" bs=1M count="$size_mib" conv=fsync \
        2>"$work/dd.err" || rc=$?
    # Until the whole file is on the server under its name (rclone uploads
    # after close; rmount may upload under a temporary name, then rename).
    deadline=$(awk -v t="$t0" -v d="$op_timeout" 'BEGIN { printf "%d", t + d + 1 }')
    size=
    while ((rc == 0)); do
        size=$(stat -c %s "$srv/$name" 2>/dev/null || true)
        [[ $size == "$size_bytes" ]] && break
        if (($(date +%s) >= deadline)); then rc=124; break; fi
        sleep 0.02
    done
    t1=$(now)
    if ((rc == 124 || rc == 137)); then
        record "$row" "$tool" timeout
    elif ((rc != 0)); then
        record "$row" "$tool" error "dd failed (status $rc): $(grep -v records "$work/dd.err" | head -n 1)"
    else
        record "$row" "$tool" ok "$(elapsed "$t0" "$t1")"
    fi
    unmount_fs "$mnt"
    rm -f "$srv/$name"
}

# Checks an ls -lR listing of the tree: every directory and file present.
check_listing() {
    local files dirs
    files=$(grep -c '^-' "$1" || true)
    dirs=$(grep -c '^d' "$1" || true)
    if [[ $files != "$tree_total" || $dirs != "$tree_dirs" ]]; then
        echo "listing has $files files and $dirs dirs, expected $tree_total and $tree_dirs"
        return 1
    fi
}

bench_ls() { # proto tool mnt
    local row_c="$1 $row_ls_cold" row_w="$1 $row_ls_warm" tool=$2 mnt=$3 rc=0 why
    if skip "$row_c" "$tool" && skip "$row_w" "$tool"; then return 0; fi
    if ! mount_fs "$tool" "$mnt"; then
        record "$row_c" "$tool" mount
        record "$row_w" "$tool" mount
        return 0
    fi
    drop_caches
    timed ls -lR "$mnt/tree" >"$work/ls.out" 2>"$work/ls.err" || rc=$?
    if ((rc == 124)); then
        record "$row_c" "$tool" timeout
        record "$row_w" "$tool" error "not run: the cold listing timed out"
        unmount_fs "$mnt"
        return 0
    elif ((rc != 0)); then
        record "$row_c" "$tool" error "ls failed (status $rc): $(head -n 1 "$work/ls.err")"
    elif ! why=$(check_listing "$work/ls.out"); then
        record "$row_c" "$tool" error "$why"
    else
        record "$row_c" "$tool" ok "$t_elapsed"
    fi
    rc=0
    timed ls -lR "$mnt/tree" >"$work/ls.out" 2>"$work/ls.err" || rc=$?
    if ((rc == 124)); then
        record "$row_w" "$tool" timeout
    elif ((rc != 0)); then
        record "$row_w" "$tool" error "ls failed (status $rc): $(head -n 1 "$work/ls.err")"
    elif ! why=$(check_listing "$work/ls.out"); then
        record "$row_w" "$tool" error "$why"
    else
        record "$row_w" "$tool" ok "$t_elapsed"
    fi
    unmount_fs "$mnt"
}

# --- the runs -------------------------------------------------------------------
declare -A other=([sftp]=sshfs [ftp]=rclone)
rows=()
for proto in $protocols; do
    for r in "$row_read" "$row_write" "$row_ls_cold" "$row_ls_warm"; do rows+=("$proto $r"); done
done

echo "$(date +%T) Benchmarking: file ${size_mib} MiB, tree ${tree_total} files, $runs run(s), timeout ${op_timeout}s"
for ((run = 1; run <= runs; run++)); do
    for proto in $protocols; do
        for tool in "rmount-$proto" "${other[$proto]}"; do
            echo "$(date +%T) run $run/$runs: $proto, $tool" >&2
            mnt=$work/mnt/$tool
            bench_read "$proto" "$tool" "$mnt"
            bench_write "$proto" "$tool" "$mnt"
            bench_ls "$proto" "$tool" "$mnt"
        done
    done
done

# --- the table ------------------------------------------------------------------
cell() { # row tool -> median, or error / timeout
    local key="$1|$2"
    if [[ -n ${failed[$key]:-} ]]; then
        echo "${failed[$key]}"
    elif [[ -n ${times[$key]:-} ]]; then
        median "${times[$key]}"
    else
        echo "error"
    fi
}

results=$out_dir/results.txt
{
    echo "# rmount benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ): loopback, file ${size_mib} MiB, tree ${tree_total} files,"
    echo "# median of $runs run(s), seconds; load average at the end:$(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/ /')"
    echo "# other = sshfs ($(sshfs --version 2>&1 | awk '/SSHFS version/ { print $3 }')) for SFTP, rclone mount ($(rclone version 2>/dev/null | awk 'NR == 1 { print $2 }'), --vfs-cache-mode writes) for FTP"
    echo "# ratio = rmount / other: < 1 means rmount is faster, > 1 means rmount is slower"
    printf '%-36s %10s %10s %-7s %7s\n' "row" "rmount" "other" "(other)" "ratio"
    for row in "${rows[@]}"; do
        proto=${row%% *}
        a=$(cell "$row" "rmount-$proto")
        b=$(cell "$row" "${other[$proto]}")
        if [[ $a =~ ^[0-9.]+$ && $b =~ ^[0-9.]+$ ]]; then
            ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        else
            ratio=-
        fi
        printf '%-36s %10s %10s %-7s %7s\n' "$row" "$a" "$b" "${other[$proto]}" "$ratio"
    done
    echo
    echo "raw seconds per run (rmount | other):"
    for row in "${rows[@]}"; do
        proto=${row%% *}
        printf '  %-34s %s| %s\n' "$row" "${times["$row|rmount-$proto"]:-- }" "${times["$row|${other[$proto]}"]:--}"
    done
    if ((${#notes[@]})); then
        echo
        echo "notes:"
        printf -- '- %s\n' "${notes[@]}"
    fi
} >"$results"
echo
cat "$results"
echo
echo "(written to $results; logs in $logs)"
