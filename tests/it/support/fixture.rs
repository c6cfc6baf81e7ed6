//! Per-test fixtures for the filesystem-operation and tool suites
//! (tests/it/fs_ops.rs, tests/it/tools.rs): one server per kind shared by
//! the tests that run at the same time, one mount per test on its own
//! subdirectory of the export, and small helpers for errno, times and
//! statvfs. Also the macros that generate a test per server kind or
//! protocol (`on_every_server!`, `per_protocol!`), in scope for every test
//! module through `#[macro_use]` (see tests/it/main.rs).

/// `per_protocol!(a, b; sftp_only: c)` makes the tests `sftp::a`,
/// `sftp::b`, `sftp::c`, `ftp::a` and `ftp::b`, each calling `a(Proto::…)`
/// (and so on) of the test file, against the usual server of each protocol
/// (OpenSSH, vsftpd). `sftp_only` is for what FTP cannot do at all, so that
/// no FTP test passes without checking anything. The cases take their own
/// load guard (see `load.rs`): some of them load the whole machine.
macro_rules! per_protocol {
    ($($case:ident),* $(,)? $(; sftp_only: $($only:ident),* $(,)?)?) => {
        mod sftp {
            $( #[test] fn $case() { super::$case(super::Proto::Sftp) } )*
            $($( #[test] fn $only() { super::$only(super::Proto::Sftp) } )*)?
        }
        mod ftp {
            $( #[test] fn $case() { super::$case(super::Proto::Ftp) } )*
        }
    };
}

/// `on_every_server!(a, b; sftp_only: c)` runs the cases on every server of
/// the matrix ([`ServerKind`]): it makes the tests `sftp::a`, `sftp::b`,
/// `sftp::c`, `sftp_chroot::a`, `gesftp::a`, …, `ftp::a` (vsftpd),
/// `ftps::a` (vsftpd with TLS), `proftpd::a`, `pureftpd::a`, each calling
/// `a(ServerKind::…)` of the test file. `sftp_only` is for what FTP cannot
/// do at all, so that no FTP test passes without checking anything. Each
/// test holds [`light_load`](crate::support::light_load) for its whole run.
macro_rules! on_every_server {
    ($($case:ident),* $(,)? $(; sftp_only: $($only:ident),* $(,)?)?) => {
        per_server!(sftp, OpenSsh, $($case,)* $($($only,)*)?);
        per_server!(sftp_chroot, OpenSshChroot, $($case,)* $($($only,)*)?);
        per_server!(gesftp, GeSftp, $($case,)* $($($only,)*)?);
        per_server!(ftp, Vsftpd, $($case,)*);
        per_server!(ftps, VsftpdTls, $($case,)*);
        per_server!(proftpd, ProFtpd, $($case,)*);
        per_server!(pureftpd, PureFtpd, $($case,)*);
    };
}

/// One module of [`on_every_server!`]: the cases against one server kind.
macro_rules! per_server {
    ($module:ident, $kind:ident, $($case:ident,)*) => {
        mod $module {
            $( #[test] fn $case() {
                let _load = crate::support::light_load();
                super::$case(super::ServerKind::$kind)
            } )*
        }
    };
}

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use crate::support::{Mount, Server, ServerKind};

/// The server of `kind`, shared with every test (of any module) that runs
/// at the same time. Held through `Arc`s: when the last test using it ends,
/// the server is dropped (stopped, temp dir removed), so nothing outlives
/// the test process. With `--test-threads=N > 1` the server is almost always
/// alive when the next test asks, so it is started only a few times per run.
pub fn shared_server(kind: ServerKind) -> Arc<Server> {
    static SLOTS: Mutex<Vec<(ServerKind, Weak<Server>)>> = Mutex::new(Vec::new());
    let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slots
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, w)| w.upgrade())
    {
        return server;
    }
    let server = Arc::new(Server::start_kind(kind));
    slots.retain(|(k, _)| *k != kind);
    slots.push((kind, Arc::downgrade(&server)));
    server
}

/// One test's world: a shared server, a directory `export/<sub>` of its
/// own, and a mount of exactly that directory, made on first use of
/// [`Fixture::m`] / [`Fixture::mount`]. So what a test puts on the server
/// before its first `m()` existed before the mount (no cache can hide it);
/// server changes after that are subject to the cache timeout, as for users.
/// Dropping it unmounts, then removes `export/<sub>` on the server side
/// (never through the mount).
pub struct Fixture {
    mount: OnceLock<Mount>,
    extra: Vec<String>,
    pub server: Arc<Server>,
    /// This test's directory, relative to the export.
    pub sub: String,
}

impl Fixture {
    /// A fresh `export/<name>-<n>`, to be mounted with `extra` rmount options.
    pub fn new(kind: ServerKind, name: &str, extra: &[&str]) -> Fixture {
        static N: AtomicU64 = AtomicU64::new(0);
        let server = shared_server(kind);
        let sub = format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed));
        server.make_dir(&sub);
        Fixture {
            mount: OnceLock::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            server,
            sub,
        }
    }

    /// The mount, made now if not yet (panics with rmount's output if that fails).
    pub fn mount(&self) -> &Mount {
        self.mount.get_or_init(|| {
            let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
            Mount::with_url(&self.server, &self.server.remote_url_for(&self.sub), &extra)
        })
    }

    /// `rel` through the mount (mounting first if needed).
    pub fn m(&self, rel: &str) -> PathBuf {
        self.mount().path(rel)
    }

    /// `rel` as the server sees it (a real path in `export/<sub>`).
    pub fn s(&self, rel: &str) -> PathBuf {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            self.server.export_path(&self.sub)
        } else {
            self.server.export_path(&format!("{}/{rel}", self.sub))
        }
    }

    /// Writes `rel` on the server side, owned by the login (FTP can change it).
    pub fn put(&self, rel: &str, data: &[u8]) -> PathBuf {
        self.server.put_file(&format!("{}/{rel}", self.sub), data)
    }

    /// Creates directory `rel` on the server side, owned by the login.
    pub fn put_dir(&self, rel: &str) -> PathBuf {
        self.server.make_dir(&format!("{}/{rel}", self.sub))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Unmount first: then the server-side cleanup can never race the
        // mount, and never walks through it (it only touches `export`).
        drop(self.mount.take());
        let dir = self.server.export_path(&self.sub);
        if dir.starts_with(&self.server.export) && dir != self.server.export {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// Prints why a test (or part of one) does not apply to this server kind.
pub fn skip(kind: ServerKind, reason: &str) {
    eprintln!("skipped ({kind:?}): {reason}");
}

/// The errno of a failed call; panics if it succeeded.
pub fn errno_of<T: std::fmt::Debug>(r: io::Result<T>, what: &str) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

/// Asserts that `r` failed with one of `codes`.
pub fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, codes: &[i32], what: &str) {
    let got = errno_of(r, what);
    assert!(
        codes.contains(&got),
        "{what}: expected errno {}, got {} ({})",
        codes
            .iter()
            .map(|c| errno_name(*c))
            .collect::<Vec<_>>()
            .join(" or "),
        errno_name(got),
        io::Error::from_raw_os_error(got)
    );
}

pub fn errno_name(code: i32) -> String {
    let name = match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOTSUP => "ENOTSUP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("errno {code}"),
    };
    name.to_string()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// A `timespec` for [`utimens`]: seconds, or `UTIME_NOW` / `UTIME_OMIT`.
#[derive(Clone, Copy, Debug)]
pub enum T {
    At(i64),
    Now,
    Omit,
}

fn timespec(t: T) -> libc::timespec {
    match t {
        T::At(s) => libc::timespec {
            tv_sec: s as libc::time_t,
            tv_nsec: 0,
        },
        T::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        T::Omit => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    }
}

/// utimensat(AT_FDCWD, p, [atime, mtime], nofollow ? AT_SYMLINK_NOFOLLOW : 0).
pub fn utimens(p: &Path, atime: T, mtime: T, nofollow: bool) -> io::Result<()> {
    let times = [timespec(atime), timespec(mtime)];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: valid C string and a two-element timespec array.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, cpath(p).as_ptr(), times.as_ptr(), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// statvfs(2) of a path.
pub fn statvfs(p: &Path) -> io::Result<libc::statvfs> {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    let rc = unsafe { libc::statvfs(cpath(p).as_ptr(), &mut st) };
    if rc == 0 {
        Ok(st)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// truncate(2) by path (no open file).
pub fn truncate_path(p: &Path, len: u64) -> io::Result<()> {
    // SAFETY: valid C string.
    let rc = unsafe { libc::truncate(cpath(p).as_ptr(), len as libc::off_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// renameat2(.., RENAME_NOREPLACE).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cpath(from).as_ptr(),
            libc::AT_FDCWD,
            cpath(to).as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a server-side file's atime and mtime (whole seconds), not following symlinks.
pub fn set_server_times(p: &Path, atime: i64, mtime: i64) {
    utimens(p, T::At(atime), T::At(mtime), true)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

/// The marker a running mount keeps in its root (`.rmount-live-<id>`): on
/// the server side while mounted, never a leftover.
pub fn is_live_marker(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b".rmount-live-")
}

/// Names in a directory (sorted), without `.` and `..`, nor a mount's
/// live marker.
pub fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .filter(|n| !is_live_marker(n))
        .collect();
    v.sort();
    v
}

/// Names under `dir` (recursively, server side) that rmount keeps for
/// itself (`.rmount-tmp-*`, `.rmount-hidden-*`; not the live marker of a
/// running mount); must be empty at rest.
pub fn private_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name.as_bytes().starts_with(b".rmount-") && !is_live_marker(&name) {
            found.push(p.clone());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            found.extend(private_leftovers(&p));
        }
    }
    found
}

/// What a tree looks like, for comparing copies (a live marker left out):
/// per relative path, the
/// kind, permission bits, mtime (whole seconds), size and symlink target.
/// Symlinks carry no mode or mtime (neither protocol sets a link's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub mtime: i64,
    pub size: u64,
    pub target: Option<PathBuf>,
}

pub fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
            let e = e.expect("dir entry");
            if is_live_marker(&e.file_name()) {
                continue;
            }
            let p = e.path();
            let md =
                fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            let ft = md.file_type();
            let node = if ft.is_symlink() {
                Node {
                    kind: 'l',
                    mode: 0,
                    mtime: 0,
                    size: 0,
                    target: Some(fs::read_link(&p).expect("readlink")),
                }
            } else {
                Node {
                    kind: if ft.is_dir() { 'd' } else { 'f' },
                    mode: md.permissions().mode() & 0o7777,
                    mtime: md.mtime(),
                    size: if ft.is_dir() { 0 } else { md.len() },
                    target: None,
                }
            };
            out.insert(rel, node);
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two trees (from [`tree`]) are equal, naming the first differences.
pub fn assert_same_tree(want: &BTreeMap<PathBuf, Node>, got: &BTreeMap<PathBuf, Node>, what: &str) {
    if want == got {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => diffs.push(format!("missing {}", k.display())),
            Some(g) if g != v => diffs.push(format!("{}: want {v:?}, got {g:?}", k.display())),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        diffs.push(format!("extra {}", k.display()));
    }
    diffs.truncate(15);
    panic!("{what}: trees differ:\n  {}", diffs.join("\n  "));
}

/// Deadline for "the mount catches up with the server" polls.
pub const COHERENCE_DEADLINE: Duration = Duration::from_secs(5);

/// Asserts the file at `p` holds exactly `want`; on a mismatch names the
/// lengths, the first differing offset and the directory's entries.
pub fn assert_file_is(p: &Path, want: &[u8], what: &str) {
    let got = fs::read(p).unwrap_or_else(|e| panic!("{what}: read {}: {e}", p.display()));
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let entries = p
        .parent()
        .map(|d| fs::read_dir(d).map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>()));
    panic!(
        "{what}: {} has {} bytes, want {}; first difference at offset {first}; dir entries: {entries:?}",
        p.display(),
        got.len(),
        want.len()
    );
}

/// `t` with the mtimes of nodes of the given kinds (`'f'`, `'d'`) zeroed,
/// for comparisons where a protocol cannot keep them.
pub fn without_mtimes(t: &BTreeMap<PathBuf, Node>, kinds: &[char]) -> BTreeMap<PathBuf, Node> {
    t.iter()
        .map(|(k, n)| {
            let mut n = n.clone();
            if kinds.contains(&n.kind) {
                n.mtime = 0;
            }
            (k.clone(), n)
        })
        .collect()
}
