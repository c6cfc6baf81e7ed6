//! The control channel of a running mount: `rmount stats` and `rmount
//! flush` talk to the rmount process serving a mount point over a Unix
//! socket. Owns both ends: the server thread (`serve`) and the client
//! (`run`), where the socket lives, and who may use it.
//!
//! The socket is `<dir>/<major>:<minor>.sock`, named by the mount's device
//! number as /proc/self/mountinfo shows it, in a directory only its user can
//! enter: `/run/rmount` for root, else `/run/user/UID/rmount` when
//! `/run/user/UID` exists, else `/tmp/rmount-UID`. The client finds the
//! mount's owner (`user_id=`) and device in mountinfo and looks in each of
//! that user's directories, so root can reach any user's mount. The server also checks the peer's uid (SO_PEERCRED):
//! only the mounting user and root are answered.
//!
//! A request is one line (`stats` or `flush`); the answer is one JSON
//! object and the end of the connection. This module only moves requests
//! and answers: what is counted is in `stats`, what a flush drops is the
//! caller's `flush` function.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

mod text;

use crate::cli::Control;
use crate::stats::{self, Held, Snapshot};

/// How long either end waits for the other on one connection.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `--watch` refreshes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The directories `uid`'s control sockets may be in, the preferred first:
/// the user's runtime directory when there is one. Fixed paths, not
/// `$XDG_RUNTIME_DIR` or `$TMPDIR`: root asking about another user's mount
/// has neither of that user's.
fn socket_dirs(uid: u32) -> Vec<PathBuf> {
    if uid == 0 {
        return vec![PathBuf::from("/run/rmount")];
    }
    let run = PathBuf::from(format!("/run/user/{uid}"));
    let tmp = PathBuf::from(format!("/tmp/rmount-{uid}"));
    if run.is_dir() {
        vec![run.join("rmount"), tmp]
    } else {
        vec![tmp]
    }
}

/// A mount as /proc/self/mountinfo shows it.
struct MountInfo {
    /// "major:minor".
    device: String,
    fs_type: String,
    /// The `user_id=` of a FUSE mount: who mounted it.
    owner: Option<u32>,
}

/// mountinfo's escaping of a path: space, tab, newline and backslash as
/// `\ooo`; other bytes as they are, read as mountinfo is (lossy UTF-8).
fn escaped(path: &Path) -> String {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend(format!("\\{b:03o}").bytes()),
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The topmost mount on `mountpoint` (an absolute, canonical path).
fn mount_info(mountpoint: &Path) -> Option<MountInfo> {
    let text = fs::read("/proc/self/mountinfo").ok()?;
    let text = String::from_utf8_lossy(&text);
    let wanted = escaped(mountpoint);
    text.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        if fields.get(4) != Some(&wanted.as_str()) {
            return None;
        }
        let right: Vec<&str> = right.split(' ').collect();
        let owner = right
            .get(2)?
            .split(',')
            .find_map(|o| o.strip_prefix("user_id=")?.parse().ok());
        Some(MountInfo {
            device: fields.get(2)?.to_string(),
            fs_type: right.first()?.to_string(),
            owner,
        })
    })
}

/// `path` made absolute with its parent resolved, without looking at
/// `path` itself (a stat of a hung mount point would hang).
fn canonical_mountpoint(path: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(path).with_context(|| format!("bad path {}", path.display()))?;
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = fs::canonicalize(parent)
                .with_context(|| format!("mount point {}", path.display()))?;
            Ok(parent.join(name))
        }
        _ => Ok(abs),
    }
}

fn euid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid of the process at the other end of `stream`.
fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of the given length.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// The private directory of this user's sockets: made 0700 if missing;
/// refused if someone else owns it or others may enter it.
fn private_dir(uid: u32) -> anyhow::Result<PathBuf> {
    let dir = socket_dirs(uid).swap_remove(0);
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let meta = fs::symlink_metadata(&dir).with_context(|| format!("{}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid {
        bail!("{} is not a directory of uid {uid}", dir.display());
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(dir)
}

/// The listening end of a mount's control socket; dropping it removes the
/// socket.
pub struct Server {
    path: PathBuf,
    /// Until `serve` hands it to the control thread.
    listener: Option<UnixListener>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Binds the control socket of the mount on `mountpoint` (mounted, and
/// canonical). Before rmount goes to the background, so that the socket is
/// there once the mount command returns; nothing is answered until
/// [`Server::serve`].
pub fn bind(mountpoint: &Path) -> anyhow::Result<Server> {
    let info = mount_info(mountpoint)
        .with_context(|| format!("{} is not in the mount table", mountpoint.display()))?;
    let path = private_dir(euid())?.join(format!("{}.sock", info.device));
    // A socket left by a mount that died: the device number is free again.
    let _ = fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("cannot bind {}", path.display()))?;
    Ok(Server {
        path,
        listener: Some(listener),
    })
}

impl Server {
    /// Answers requests on a thread of its own: `held` measures the caches
    /// for `stats`, `flush` drops them.
    pub fn serve(
        &mut self,
        held: impl Fn() -> Held + Send + 'static,
        flush: impl Fn() + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = self.listener.take().context("already serving")?;
        let uid = euid();
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(stream) => {
                            if let Err(e) = answer(stream, uid, &held, &flush) {
                                tracing::debug!("control request: {e}");
                            }
                        }
                        Err(e) => tracing::debug!("control socket: {e}"),
                    }
                }
            })
            .context("cannot start the control thread")?;
        Ok(())
    }
}

fn answer(
    mut stream: UnixStream,
    owner: u32,
    held: &dyn Fn() -> Held,
    flush: &dyn Fn(),
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(PEER_TIMEOUT))?;
    stream.set_write_timeout(Some(PEER_TIMEOUT))?;
    let peer = peer_uid(&stream)?;
    let reply = if !allowed(peer, owner) {
        tracing::info!("control request from uid {peer} refused");
        serde_json::json!({ "error": refusal(owner) })
    } else {
        let mut line = String::new();
        BufReader::new(std::io::Read::take(&stream, 64)).read_line(&mut line)?;
        match line.trim() {
            "stats" => serde_json::to_value(stats::get().snapshot(held()))?,
            "flush" => {
                flush();
                serde_json::json!({ "flushed": true })
            }
            other => serde_json::json!({ "error": format!("unknown request '{other}'") }),
        }
    };
    let mut text = serde_json::to_string(&reply)?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    Ok(())
}

/// Only the user who mounted, and root, may use a mount's socket.
fn allowed(peer: u32, owner: u32) -> bool {
    peer == owner || peer == 0
}

fn refusal(owner: u32) -> String {
    format!(
        "permission denied: this mount belongs to uid {owner}; only that user and root may use it"
    )
}

// ---------------------------------------------------------------------------
// The client: `rmount stats` and `rmount flush`
// ---------------------------------------------------------------------------

/// Runs a control command; the error is the one line to show.
pub fn run(command: &Control) -> anyhow::Result<()> {
    match command {
        Control::Flush { mountpoint } => {
            ask(mountpoint, "flush")?;
            Ok(())
        }
        Control::Stats {
            mountpoint,
            json,
            watch,
        } => {
            let terminal = unsafe { libc::isatty(1) } == 1;
            let mut first = true;
            loop {
                let reply = ask(mountpoint, "stats")?;
                let mut out = std::io::stdout().lock();
                let text = if *json {
                    format!("{}\n", serde_json::to_string(&reply)?)
                } else {
                    let snapshot: Snapshot =
                        serde_json::from_value(reply).context("unreadable answer")?;
                    let clear = if *watch && terminal {
                        "\x1b[H\x1b[2J"
                    } else {
                        ""
                    };
                    let gap = if *watch && !terminal && !first {
                        "\n"
                    } else {
                        ""
                    };
                    format!("{clear}{gap}{}", text::render(&snapshot))
                };
                // A closed pipe (`| head`) ends the watch quietly.
                if out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return Ok(());
                }
                drop(out);
                if !*watch {
                    return Ok(());
                }
                first = false;
                std::thread::sleep(WATCH_EVERY);
            }
        }
    }
}

/// Sends `request` to the mount on `mountpoint`; its JSON answer.
fn ask(mountpoint: &Path, request: &str) -> anyhow::Result<serde_json::Value> {
    let shown = mountpoint.display();
    let canonical = canonical_mountpoint(mountpoint)?;
    let info = mount_info(&canonical).with_context(|| format!("{shown} is not a mount point"))?;
    // "fuse.rmount", or plain "fuse" when the kernel mount was made
    // without a subtype: then only the socket can tell.
    if info.fs_type != "fuse" && info.fs_type != "fuse.rmount" {
        bail!("{shown} is not an rmount mount ({})", info.fs_type);
    }
    let owner = info
        .owner
        .with_context(|| format!("{shown}: the mount table does not say who mounted it"))?;
    let mut stream = connect(owner, &info.device).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!("{shown}: {}", refusal(owner)),
        _ => anyhow::anyhow!("{shown}: cannot reach the rmount process serving it ({e})"),
    })?;
    stream.set_read_timeout(Some(PEER_TIMEOUT))?;
    stream.set_write_timeout(Some(PEER_TIMEOUT))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .with_context(|| format!("{shown}: no answer"))?;
    if line.is_empty() {
        bail!("{shown}: the rmount process closed the connection");
    }
    let reply: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("{shown}: unreadable answer"))?;
    if let Some(error) = reply.get("error").and_then(|e| e.as_str()) {
        bail!("{shown}: {error}");
    }
    Ok(reply)
}

/// Connects to the socket of `device` in `owner`'s directories: the first
/// that answers, else the most telling error (no permission over not
/// found).
fn connect(owner: u32, device: &str) -> std::io::Result<UnixStream> {
    let mut error = std::io::Error::from(std::io::ErrorKind::NotFound);
    for dir in socket_dirs(owner) {
        let path = dir.join(format!("{device}.sock"));
        match UnixStream::connect(&path) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => error = e,
            Err(e) if error.kind() != std::io::ErrorKind::PermissionDenied => {
                error = std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            }
            Err(_) => {}
        }
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_escaped_as_the_kernel_does() {
        assert_eq!(escaped(Path::new("/tmp/a b\\c")), "/tmp/a\\040b\\134c");
        assert_eq!(escaped(Path::new("/tmp/été")), "/tmp/été");
    }

    #[test]
    fn only_the_owner_and_root_are_answered() {
        assert!(allowed(1000, 1000));
        assert!(allowed(0, 1000));
        assert!(!allowed(1001, 1000));
        assert!(!allowed(1000, 0));
    }

    #[test]
    fn the_peer_uid_is_this_process_uid() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer_uid(&a).unwrap(), euid());
    }

    #[test]
    fn sockets_of_root_and_of_users_are_apart() {
        assert_eq!(socket_dirs(0), [PathBuf::from("/run/rmount")]);
        let user = socket_dirs(12345);
        assert_eq!(user.last(), Some(&PathBuf::from("/tmp/rmount-12345")));
    }
}
