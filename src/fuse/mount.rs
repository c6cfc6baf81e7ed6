//! Mounting and unmounting: the kernel mount options, the FUSE session that
//! serves the adapter, the mount's larger kernel read-ahead, and the lazy
//! unmount on a signal (through fusermount3).
//!
//! It answers no request itself (the adapter in `mod.rs` does) and knows
//! nothing of the remote.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::flush::Flusher;
use super::FuseAdapter;
use crate::fs::Fs;

/// The options of the mount as the kernel sees it.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// The source shown in the mount table (`host:path`).
    pub fsname: String,
    pub read_only: bool,
    /// Programs on the mount cannot be executed.
    pub no_exec: bool,
    /// `MS_SYNCHRONOUS`: the kernel follows every write(2) with an fsync.
    pub sync_writes: bool,
    pub dir_sync: bool,
    pub no_atime: bool,
    /// The kernel checks permissions from the shown modes itself.
    pub default_permissions: bool,
    /// Other local users may use the mount.
    pub allow_other: bool,
}

/// A mounted filesystem, not serving requests until [`Mount::run`].
pub struct Mount {
    session: fuser::Session<FuseAdapter>,
    flusher: Flusher,
}

impl Mount {
    /// Mounts `fs` on `mountpoint`.
    pub fn new(fs: Arc<Fs>, mountpoint: &Path, options: MountOptions) -> anyhow::Result<Mount> {
        let adapter = FuseAdapter::new(fs.clone());
        let notifier = adapter.notifier_slot();
        let session = fuser::Session::new(adapter, mountpoint, &fuser_config(options))
            .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
        let _ = notifier.set(session.notifier());
        tracing::info!("mounted {}", mountpoint.display());
        raise_kernel_read_ahead(mountpoint);
        let flusher = Flusher { fs, notifier };
        Ok(Mount { session, flusher })
    }

    /// Drops this mount's caches and the kernel's, from any thread.
    pub fn flusher(&self) -> Flusher {
        self.flusher.clone()
    }

    /// Serves requests until the filesystem is unmounted.
    pub fn run(self) -> anyhow::Result<()> {
        self.session
            .run()
            .context("FUSE session ended with an error")
    }
}

fn fuser_config(options: MountOptions) -> fuser::Config {
    use fuser::MountOption as M;
    let mut config = fuser::Config::default();
    // Always nodev and nosuid: a server's device files and set-user-ID
    // programs must not give anyone local rights (invariant 6).
    let mut mount_options = vec![
        M::FSName(options.fsname),
        M::Subtype("rmount".into()),
        M::NoDev,
        M::NoSuid,
    ];
    // fuser gives the subtype only to fusermount3; when it mounts directly
    // (as root) the kernel (Linux 5.4 and later) takes it from the data, so
    // that the mount table says fuse.rmount (as `mount -t fuse.rmount` and
    // fstab expect), not fuse. fusermount3 takes a repeated subtype= as one.
    mount_options.push(M::CUSTOM("subtype=rmount".into()));
    if options.read_only {
        mount_options.push(M::RO);
    }
    if options.no_exec {
        mount_options.push(M::NoExec);
    }
    if options.sync_writes {
        mount_options.push(M::Sync);
    }
    if options.dir_sync {
        mount_options.push(M::DirSync);
    }
    if options.no_atime {
        mount_options.push(M::NoAtime);
    }
    if options.default_permissions {
        mount_options.push(M::DefaultPermissions);
    }
    // Without -o allow_other the kernel itself keeps every other user out
    // (also of what it caches); FUSE's auto_unmount would need the kernel
    // option allow_other, so the watchdog does its job instead.
    config.acl = if options.allow_other {
        if !options.default_permissions {
            tracing::warn!(
                "allow_other without default_permissions: every local user can use this mount with your rights on the server"
            );
        }
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.mount_options = mount_options;
    config.n_threads = Some(1);
    config
}

/// The kernel reads a FUSE file in requests of at most its read-ahead
/// window (128 KiB by default). Raising the mount's window to 1 MiB (root
/// only) lets large sequential reads arrive in 1 MiB requests. Reads the
/// device number from mountinfo: a stat of the mount point would deadlock,
/// as nothing serves the mount yet.
fn raise_kernel_read_ahead(mountpoint: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let wanted = mountpoint.as_os_str().to_string_lossy();
    // Fields: id parent major:minor root mountpoint …; the last match wins.
    let device = mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields.get(4).copied() == Some(&*wanted))
                .then(|| fields.get(2).map(|d| d.to_string()))?
        })
        .next_back();
    if let Some(device) = device {
        let knob = format!("/sys/class/bdi/{device}/read_ahead_kb");
        if let Err(e) = std::fs::write(&knob, "1024") {
            tracing::debug!("cannot raise {knob}: {e}");
        }
    }
}

/// Unmounts (lazily, as libfuse does on a signal); the FUSE session then
/// ends and [`Mount::run`] returns. Asks fusermount3 (which made the mount,
/// so an unprivileged user may undo it), else the kernel directly.
pub fn unmount(mountpoint: &Path) {
    let done = std::process::Command::new("fusermount3")
        .args(["-u", "-q", "-z", "--"])
        .arg(mountpoint)
        .status()
        .is_ok_and(|status| status.success());
    if done {
        return;
    }
    let Ok(path) = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
        tracing::warn!(
            "cannot unmount {}: {}",
            mountpoint.display(),
            std::io::Error::last_os_error()
        );
    }
}
