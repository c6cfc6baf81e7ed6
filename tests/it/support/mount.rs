//! Mounting with the real `rmount` binary, and never leaving a mount behind.
//!
//! A [`Mount`] gets a fresh mount point `rmount-test-mnt-*/mnt` under the
//! system temp dir (never under a server's directory), runs rmount in its
//! default daemonizing mode and checks the mount is there when rmount
//! returns. Dropping it unmounts (`fusermount3 -u`, then `-uz`), waits for
//! the rmount daemon to exit (killing it by PID if it does not) and removes
//! the mount point with non-recursive removes only, so cleanup can never
//! delete files through a mount that is still alive.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::process::{is_alive, run_cmd_timeout, signal};
use super::{describe_output, poll_until, run_rmount, Server};

/// How long an unmount may take before we escalate.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the rmount daemon may take to exit after its mount is gone.
const DAEMON_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A live rmount mount. Dropping it unmounts.
pub struct Mount {
    /// The mount point (absolute, canonical).
    pub dir: PathBuf,
    /// Parent of `dir`, created for this mount only.
    base: PathBuf,
    /// Every argument rmount was started with.
    pub args: Vec<String>,
    /// rmount's own output from the mount command.
    pub output: Output,
    /// The daemon serving the mount, found right after mounting.
    daemon: Option<u32>,
    mounted: bool,
}

impl Mount {
    /// Mounts `server.remote_url()` with `server.mount_args()` and `extra`
    /// options (e.g. `&["-o", "ro"]`). Panics with rmount's output if that
    /// fails or if the mount is not there when rmount returns.
    pub fn new(server: &Server, extra: &[&str]) -> Mount {
        Mount::with_url(server, &server.remote_url(), extra)
    }

    /// Like [`Mount::new`] with another REMOTE (e.g. `server.remote_url_for("sub")`).
    pub fn with_url(server: &Server, url: &str, extra: &[&str]) -> Mount {
        match Mount::try_new(server, url, extra) {
            Ok(m) => m,
            Err(out) => panic!(
                "rmount failed to mount {url} (extra options {extra:?})\n{}\n\
                 --- server log (last lines) ---\n{}",
                describe_output(&out),
                server.log_tail(15)
            ),
        }
    }

    /// Runs `rmount <server.mount_args()> <extra> <url> <fresh dir>` with the
    /// server's password in the environment. `Err(output)` if rmount failed
    /// (the mount point is removed again). Panics if rmount broke its
    /// contract: exit 0 without a mount, or failure with a mount left behind.
    pub fn try_new(server: &Server, url: &str, extra: &[&str]) -> Result<Mount, Output> {
        let base = unique_dir("rmount-test-mnt-");
        let dir = base.join("mnt");
        fs::create_dir(&dir).expect("create mount point");

        let mut args = server.mount_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(url.to_string());
        args.push(dir.to_str().expect("utf-8 temp path").to_string());
        let env = server.password_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        // If rmount hangs (run_rmount panics at its deadline), a daemon it
        // forked may already be serving a mount: clean that up before the
        // panic goes on, since no Mount exists yet to do it.
        let output =
            match std::panic::catch_unwind(AssertUnwindSafe(|| run_rmount(&argv, &env, None))) {
                Ok(output) => output,
                Err(panic) => {
                    let _ = unmount_path(&dir);
                    kill_daemons_for(&dir);
                    let _ = fs::remove_dir(&dir);
                    let _ = fs::remove_dir(&base);
                    std::panic::resume_unwind(panic);
                }
            };

        let mut m = Mount {
            daemon: None,
            mounted: is_mounted(&dir),
            dir,
            base,
            args,
            output,
        };
        match (m.output.status.success(), m.mounted) {
            (true, true) => {
                m.daemon = m.daemon_pid();
                Ok(m)
            }
            (true, false) => panic!(
                "rmount exited successfully but {} is not a mount point \
                 (in daemon mode rmount must return only once the mount is ready)\nargs: {:?}\n{}",
                m.dir.display(),
                m.args,
                describe_output(&m.output)
            ),
            (false, true) => panic!(
                "rmount failed but left {} mounted\nargs: {:?}\n{}",
                m.dir.display(),
                m.args,
                describe_output(&m.output)
            ), // Drop unmounts it.
            (false, false) => {
                // Nothing mounted: just make sure no stray daemon remains.
                m.reap_daemons(DAEMON_EXIT_TIMEOUT);
                Err(m.output.clone())
            }
        }
    }

    /// `dir/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel.trim_start_matches('/'))
    }

    /// True while the mount point is in /proc/self/mountinfo.
    pub fn is_mounted(&self) -> bool {
        is_mounted(&self.dir)
    }

    /// PID of the rmount process serving this mount: the live process whose
    /// command line has the mount point as an argument and whose program is
    /// rmount (fuser's `fusermount3` helper has the same argument, hence the
    /// program check).
    pub fn daemon_pid(&self) -> Option<u32> {
        rmount_processes_for(&self.dir).into_iter().next()
    }

    fn try_unmount(&mut self) -> Result<(), String> {
        let mut patience = DAEMON_EXIT_TIMEOUT;
        if self.mounted && unmount(&self.dir)? == Unmounted::Lazily {
            // Files are still open on the detached mount, so the daemon
            // may legitimately keep serving them: do not wait long.
            patience = Duration::from_secs(2);
        }
        self.mounted = false;
        self.reap_daemons(patience);
        Ok(())
    }

    /// Waits (at most `patience`) for the daemon(s) of this mount point to
    /// exit after the mount is gone; kills them by PID if they do not.
    fn reap_daemons(&mut self, patience: Duration) {
        let dir = self.dir.clone();
        let gone = poll_until(patience, || rmount_processes_for(&dir).is_empty());
        if !gone {
            eprintln!(
                "warning: rmount daemon(s) {:?} for {} did not exit after unmount; killing",
                rmount_processes_for(&dir),
                dir.display()
            );
            kill_daemons_for(&dir);
        }
        if let Some(pid) = self.daemon.take() {
            if is_alive(pid) && rmount_processes_for(&dir).contains(&pid) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        match self.try_unmount() {
            // Non-recursive removes: these fail harmlessly rather than ever
            // walking into a live mount.
            Ok(()) => {
                let _ = fs::remove_dir(&self.dir);
                let _ = fs::remove_dir(&self.base);
            }
            Err(e) => eprintln!("warning: {e} (leaving {} in place)", self.base.display()),
        }
    }
}

/// A fresh mount point `<prefix>…/mnt` for tests that run rmount (or
/// another FUSE client) themselves. Dropping it unmounts whatever is
/// mounted there, kills rmount processes still serving it, and removes its
/// parent directory with anything a test put there — only once nothing is
/// mounted, so it never walks into a mount.
pub struct MountPoint {
    /// Parent of `dir`, made for this mount point only.
    pub base: PathBuf,
    pub dir: PathBuf,
}

impl MountPoint {
    /// An empty directory, ready to be mounted on.
    pub fn new(prefix: &str) -> MountPoint {
        let mnt = MountPoint::named(prefix, "mnt");
        fs::create_dir(&mnt.dir).expect("create mount point");
        mnt
    }

    /// `name` in a fresh directory, not created (for bad mount points).
    pub fn named(prefix: &str, name: &str) -> MountPoint {
        let base = unique_dir(prefix);
        let dir = base.join(name);
        MountPoint { base, dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The mount point as a command-line argument.
    pub fn arg(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp path")
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        let unmounted = unmount_path(&self.dir);
        kill_daemons_for(&self.dir);
        match unmounted {
            Ok(()) if !is_mounted(&self.dir) => {
                let _ = fs::remove_dir_all(&self.base);
            }
            Ok(()) => eprintln!("warning: {} is mounted again", self.dir.display()),
            Err(e) => eprintln!("warning: {e} (leaving {} in place)", self.base.display()),
        }
    }
}

/// One line of /proc/self/mountinfo.
#[derive(Clone, Debug)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    /// e.g. `fuse.rmount` or `fuse`.
    pub fs_type: String,
    /// The "mount source" field (what rmount gave as FsName).
    pub source: String,
    /// Per-mount options (ro/rw, nosuid, ...).
    pub options: String,
    /// Super-block options (user_id=, group_id=, allow_other, ...).
    pub super_options: String,
    /// For FUSE, the connection number under /sys/fs/fuse/connections.
    pub minor: u32,
}

/// The (topmost) mount whose mount point is `dir`, if any. Reads only
/// /proc/self/mountinfo: never touches `dir` itself, so it is safe on a hung
/// FUSE mount.
pub fn mount_entry(dir: &Path) -> Option<MountEntry> {
    let target = canonical_no_follow(dir);
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rev()
        .filter_map(parse_mountinfo_line)
        .find(|e| e.mount_point == target)
}

/// True if `dir` is a mount point (see [`mount_entry`]).
pub fn is_mounted(dir: &Path) -> bool {
    mount_entry(dir).is_some()
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    let (_major, minor) = l.get(2)?.split_once(':')?;
    Some(MountEntry {
        mount_point: PathBuf::from(OsStr::from_bytes(&unescape(l.get(4)?))),
        options: l.get(5)?.to_string(),
        fs_type: r.first()?.to_string(),
        source: String::from_utf8_lossy(&unescape(r.get(1).unwrap_or(&""))).into_owned(),
        super_options: r.get(2).unwrap_or(&"").to_string(),
        minor: minor.parse().ok()?,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let is_octal = |c: u8| (b'0'..=b'7').contains(&c);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|&c| is_octal(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// `dir` with its parent canonicalized, without stat-ing `dir` itself (which
/// could block on a hung FUSE mount).
fn canonical_no_follow(dir: &Path) -> PathBuf {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().expect("cwd").join(dir)
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}

/// Kills (by PID) every rmount process serving `dir`, and waits for them.
pub fn kill_daemons_for(dir: &Path) {
    for pid in rmount_processes_for(dir) {
        signal(pid, libc::SIGKILL);
    }
    poll_until(DAEMON_EXIT_TIMEOUT, || rmount_processes_for(dir).is_empty());
}

/// Live rmount processes that have `dir` as a command-line argument.
pub fn rmount_processes_for(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let want = dir.as_os_str().as_bytes();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !is_alive(pid) {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|&b| b == 0);
        let argv0 = args.next().unwrap_or_default();
        let is_rmount = Path::new(OsStr::from_bytes(argv0))
            .file_name()
            .is_some_and(|n| n == "rmount");
        if is_rmount && cmdline.split(|&b| b == 0).any(|a| a == want) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Unmounts whatever FUSE filesystem is mounted on `dir` (for mounts made
/// by other tools, e.g. sshfs in comparisons): `fusermount3 -u`, then a lazy
/// `-uz`, then aborting the connection. Ok if nothing is mounted there.
pub fn unmount_path(dir: &Path) -> Result<(), String> {
    unmount(dir).map(|_| ())
}

#[derive(Debug, PartialEq, Eq)]
enum Unmounted {
    /// Nothing was mounted, or `fusermount3 -u` worked.
    Cleanly,
    /// Only a lazy unmount (`-uz`) worked: the mount was busy.
    Lazily,
}

fn unmount(dir: &Path) -> Result<Unmounted, String> {
    if !is_mounted(dir) {
        return Ok(Unmounted::Cleanly);
    }
    let gentle = fusermount(&["-u"], dir);
    if !is_mounted(dir) {
        return Ok(Unmounted::Cleanly);
    }
    let minor = mount_entry(dir).map(|e| e.minor);
    let lazy = fusermount(&["-uz"], dir);
    if poll_until(UNMOUNT_TIMEOUT, || !is_mounted(dir)) {
        return Ok(Unmounted::Lazily);
    }
    if let Some(minor) = minor {
        let _ = fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), "1");
    }
    Err(format!(
        "cannot unmount {}\nfusermount3 -u: {gentle}\nfusermount3 -uz: {lazy}",
        dir.display()
    ))
}

/// Runs `fusermount3 FLAGS DIR`; returns a one-line account of the result.
fn fusermount(flags: &[&str], dir: &Path) -> String {
    let mut cmd = Command::new("fusermount3");
    cmd.args(flags).arg(dir);
    match run_cmd_timeout(&mut cmd, UNMOUNT_TIMEOUT, None) {
        Some(out) if out.status.success() => "ok".to_string(),
        Some(out) => format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        None => format!("timed out after {UNMOUNT_TIMEOUT:?}"),
    }
}

/// A new, empty, uniquely named directory under the system temp dir
/// (canonical path).
pub fn unique_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = fs::canonicalize(std::env::temp_dir()).expect("temp dir");
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = tmp.join(format!("{prefix}{}-{n}-{nanos:x}", std::process::id()));
        match fs::create_dir(&p) {
            Ok(()) => return p,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", p.display()),
        }
    }
}
