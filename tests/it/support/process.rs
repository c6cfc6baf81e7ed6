//! Processes and ports: running a command with a hard timeout, killing a
//! process tree we started, and handing out free loopback ports.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{rmount_bin, POLL_INTERVAL};

/// Hard limit for one `rmount` invocation in [`run_rmount`].
pub const RMOUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `rmount ARGS` and returns its exit status and output.
///
/// - `env` is added to the environment; `RMOUNT_PASSWORD` and
///   `SSH_AUTH_SOCK` from the test's own environment are removed first so
///   a test only authenticates the way it asks to.
/// - `stdin`: `None` gives `/dev/null`; `Some(bytes)` pipes them in.
/// - rmount runs in a new session (no controlling terminal), so a password
///   prompt can never wait on the developer's tty.
/// - Output goes to files, not pipes: in daemon mode the background child may
///   keep them open after the foreground process has exited.
/// - Panics if rmount has not exited after [`RMOUNT_TIMEOUT`] (after killing it).
pub fn run_rmount(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(rmount_bin());
    cmd.args(args)
        .env_remove("RMOUNT_PASSWORD")
        .env_remove("SSH_AUTH_SOCK");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_cmd(&mut cmd, RMOUNT_TIMEOUT, stdin)
}

/// Runs `cmd` in a new session, waits at most `timeout` for it to exit
/// (killing it and panicking otherwise) and returns its output. Stdout and
/// stderr are captured through temporary files (see [`run_rmount`]).
pub fn run_cmd(cmd: &mut Command, timeout: Duration, stdin: Option<&[u8]>) -> Output {
    let what = format!("{cmd:?}");
    match run_with_deadline(cmd, timeout, stdin) {
        Ok(out) => out,
        Err(partial) => panic!(
            "{what} did not exit within {timeout:?}; killed it.\nstderr so far:\n{}",
            String::from_utf8_lossy(&partial.stderr)
        ),
    }
}

/// Like [`run_cmd`], but returns None instead of panicking on the timeout.
pub fn run_cmd_timeout(
    cmd: &mut Command,
    timeout: Duration,
    stdin: Option<&[u8]>,
) -> Option<Output> {
    run_with_deadline(cmd, timeout, stdin).ok()
}

/// Err(what it printed) if it had to be killed at the deadline.
fn run_with_deadline(
    cmd: &mut Command,
    timeout: Duration,
    stdin: Option<&[u8]>,
) -> Result<Output, Output> {
    let scratch = tempfile::Builder::new()
        .prefix("rmount-test-out-")
        .tempdir()
        .expect("create temp dir for command output");
    let out_path = scratch.path().join("stdout");
    let err_path = scratch.path().join("stderr");
    let out_file = File::create(&out_path).expect("create stdout file");
    let err_file = File::create(&err_path).expect("create stderr file");
    cmd.stdout(out_file).stderr(err_file);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    new_session(cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));

    // Feed stdin from a thread: the child may not read it all, and a full
    // pipe must not block us past the deadline.
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break Ok(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                break Err(child.wait().expect("wait"));
            }
            None => std::thread::sleep(POLL_INTERVAL),
        }
    };
    if let Some(t) = feeder {
        let _ = t.join();
    }
    let collect = |status| Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    };
    status.map(collect).map_err(collect)
}

/// Makes the command's process a session leader: it has no controlling
/// terminal and does not share our process group (Ctrl-C in a terminal
/// running `cargo test` does not reach it; we stop it ourselves).
pub(crate) fn new_session(cmd: &mut Command) {
    // SAFETY: setsid() is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Sends `sig` to `pid`; true if the process existed.
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) with a plain pid and signal number.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// True if `pid` exists and is not a zombie.
pub(crate) fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat_fields(&stat).map(|(state, _)| state),
            Some('Z') | Some('X')
        ),
        Err(_) => false,
    }
}

/// (state, ppid) from the text of /proc/PID/stat. The command name is in
/// parentheses and may contain spaces, so parse after the last ')'.
fn stat_fields(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// All pids currently on the machine, with their parent pids.
fn process_table() -> Vec<(u32, u32)> {
    let mut table = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return table;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some((_, ppid)) = stat_fields(&stat) {
                table.push((pid, ppid));
            }
        }
    }
    table
}

/// Every descendant of `root` (children, grandchildren, ...).
pub fn descendants(root: u32) -> Vec<u32> {
    let table = process_table();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for &(pid, ppid) in &table {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// Sends `sig` to `root` and every descendant (parents first).
pub(crate) fn signal_tree(root: u32, sig: libc::c_int) {
    signal(root, sig);
    for p in descendants(root) {
        signal(p, sig);
    }
}

/// Kills a server we started together with every process it forked (sshd
/// and vsftpd fork one process per connection, and those must die too so a
/// "server outage" really cuts existing sessions). The root is stopped first
/// so it cannot fork while the tree is collected; then everything is killed
/// by PID and the root is reaped.
pub(crate) fn kill_tree(child: &mut Child) {
    let root = child.id();
    if child.try_wait().ok().flatten().is_none() {
        signal(root, libc::SIGSTOP);
        let mut all: Vec<u32> = Vec::new();
        // Children may be forking too: stop what we find until nothing new shows up.
        for _ in 0..20 {
            let found = descendants(root);
            let new: Vec<u32> = found.into_iter().filter(|p| !all.contains(p)).collect();
            if new.is_empty() {
                break;
            }
            for &p in &new {
                signal(p, libc::SIGSTOP);
            }
            all.extend(new);
        }
        for &p in all.iter().rev() {
            signal(p, libc::SIGKILL);
        }
        signal(root, libc::SIGKILL);
        let _ = child.wait();
        // SIGKILL is asynchronous: wait until the session processes are
        // really gone (their sockets closed) before reporting "stopped".
        let deadline = Instant::now() + Duration::from_secs(10);
        while all.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    let _ = child.wait();
}

/// Ports handed out by this process; never handed out twice.
static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback TCP port nobody listens on right now (for a server, or as a
/// "closed port" for negative tests).
pub fn free_port() -> u16 {
    reserve_ports(1)
}

/// The first of `n` consecutive free loopback ports, reserved for this
/// process. Ports come from below the kernel's ephemeral range, so an
/// outgoing connection can never be given one of them as its local port
/// while a server is stopped for an outage test.
pub(crate) fn reserve_ports(n: u16) -> u16 {
    let ephemeral_lo = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let lo: u16 = 20000;
    let hi: u16 = ephemeral_lo.clamp(lo + 1000, 32768);
    let span = u64::from(hi - lo - n);
    let mut reserved = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..2000 {
        let base = lo + (random_u64() % span) as u16;
        let ports = base..base + n;
        if ports.clone().any(|p| reserved.contains(&p)) {
            continue;
        }
        if ports
            .clone()
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            reserved.extend(ports);
            return base;
        }
    }
    panic!("no block of {n} free loopback ports in {lo}..{hi}");
}

/// Gives back ports from [`reserve_ports`] (a dropped server's), so a long
/// test run does not run out.
pub(crate) fn release_ports(base: u16, n: u16) {
    let mut reserved = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    for p in base..base + n {
        reserved.remove(&p);
    }
}

fn random_u64() -> u64 {
    // RandomState is seeded randomly per process and per instance.
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// The last `lines` lines of a (log) file, or a note that it is unreadable.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Runs a short helper command (ssh-keygen, openssl, useradd, ...) and
/// panics with its output if it fails.
pub(crate) fn must_run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let out = run_cmd(cmd, Duration::from_secs(60), None);
    if !out.status.success() {
        panic!("{what} failed\n{}", super::describe_output(&out));
    }
    out
}

/// The peak resident memory (VmHWM) of `root` plus that of each of its
/// descendants, in bytes: what a daemon and its helpers (rmount's
/// watchdog `sh`) held at most since they started. A process that has
/// exited meanwhile counts no more.
pub fn peak_rss_tree(root: u32) -> u64 {
    let peak = |pid: u32| -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib << 10)
    };
    let own = peak(root).unwrap_or_else(|| panic!("no VmHWM for process {root}"));
    own + descendants(root).into_iter().filter_map(peak).sum::<u64>()
}

/// Starts [`peak_rss_tree`] of `root` afresh (writes 5 to each process's
/// `/proc/PID/clear_refs`, root only), so one phase of a test can be
/// measured by itself.
pub fn reset_peak_rss_tree(root: u32) {
    for pid in std::iter::once(root).chain(descendants(root)) {
        let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// Resident bytes of the program file of `pid` (its code and read-only
/// data as mapped from the executable), from `/proc/PID/smaps`. A debug
/// build's code is over twice a release build's.
pub fn program_rss(pid: u32) -> u64 {
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/exe: {e}"));
    let exe = exe.to_string_lossy().into_owned();
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/smaps: {e}"));
    let mut ours = false;
    let mut kib = 0u64;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A mapping's header: its path is the sixth field.
            ours = line.split_whitespace().nth(5) == Some(exe.as_str());
        } else if ours && first == "Rss:" {
            kib += fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib << 10
}
