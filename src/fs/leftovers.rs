//! Leftovers of other mounts: this mount's marker on the server (made,
//! refreshed, removed), and the removal of private names whose mount is
//! gone, as listings find them. It must never remove this mount's own
//! names nor a name whose maker cannot be told.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::names::NAME_MAX;
use super::Fs;
use crate::remote::private_names;
use crate::remote::{self, Attr, SetAttr};
use crate::sync::lock;

impl Fs {
    /// Whether a listed name is shown. Our private names are not (and
    /// another mount's leftovers are removed on sight, see `abandoned`);
    /// names longer than NAME_MAX are not either, as the kernel would fail
    /// the whole readdir with EIO.
    pub(super) fn listable(&self, dir: &Path, name: &OsStr, attr: &Attr) -> bool {
        let bytes = name.as_bytes();
        if bytes.len() > NAME_MAX {
            tracing::debug!("hiding a {}-byte name in {}", bytes.len(), dir.display());
            return false;
        }
        if !private_names::is_private_name(bytes) {
            return true;
        }
        if self.abandoned(dir, bytes, attr) {
            let path = dir.join(name);
            match self.remote.unlink(&path) {
                Ok(()) => tracing::info!("removed leftover {}", path.display()),
                Err(e) => tracing::debug!("cannot remove leftover {}: {e}", path.display()),
            }
        }
        false
    }

    /// Whether a private name in `dir` is a leftover of a mount that is
    /// gone: one with another mount's id whose marker is missing or stale.
    /// Only a mount that has its own marker removes anything (it then
    /// knows markers can be made here), never its own names, and never a
    /// name whose maker cannot be told (see `private_names::Owner`). A marker is
    /// itself removed once long forgotten.
    fn abandoned(&self, dir: &Path, name: &[u8], attr: &Attr) -> bool {
        if self.cfg.read_only || !self.marked.load(Ordering::SeqCst) {
            return false;
        }
        let Some(owner) = private_names::owner_of(name) else {
            return false;
        };
        let private_names::Owner::Mount(id) = &owner else {
            return false;
        };
        if name.starts_with(private_names::LIVE_PREFIX.as_bytes()) {
            return SystemTime::now()
                .duration_since(attr.mtime)
                .is_ok_and(|age| age > private_names::MARKER_FORGOTTEN);
        }
        private_names::abandoned(&owner, self.marker_of(dir, id))
    }

    /// The marker of mount `id`, whose names are in `dir`: that mount's
    /// root is `dir` or one of its parents (its private names are all
    /// under its root), so each is looked at, nearest first.
    fn marker_of(&self, dir: &Path, id: &str) -> private_names::Marker {
        let marker = private_names::marker_name(id);
        let now = SystemTime::now();
        for at in dir.ancestors() {
            match self.remote.stat(&at.join(&marker)) {
                Ok(attr) => return private_names::Marker::of(attr.mtime, now),
                Err(remote::Error::NotFound) => {}
                Err(e) => {
                    tracing::debug!("cannot look for {marker} in {}: {e}", at.display());
                    return private_names::Marker::Unknown;
                }
            }
        }
        private_names::Marker::Missing
    }

    fn marker_path(&self) -> PathBuf {
        self.cfg
            .root
            .join(private_names::marker_name(private_names::mount_id()))
    }

    /// Creates this mount's marker in its root. Without it (a read-only
    /// mount, or a root the login cannot write) the mount removes no
    /// leftovers, and its own private names say they have no marker.
    pub fn start_marker(&self) {
        if self.cfg.read_only {
            return;
        }
        match self.remote.create(&self.marker_path(), 0o600, true) {
            Ok(()) => {
                self.marked.store(true, Ordering::SeqCst);
                private_names::set_marked(true);
            }
            Err(e) => tracing::info!(
                "cannot create {}: {e}; leftovers of other mounts are not removed",
                self.marker_path().display()
            ),
        }
    }

    /// Shows that this mount still runs: the marker gets a new mtime (or,
    /// if it went, is made again). Called every `private_names::MARKER_REFRESH`.
    pub fn refresh_marker(&self) {
        let _serial = lock(&self.marker_lock);
        if !self.marked.load(Ordering::SeqCst) {
            return;
        }
        let path = self.marker_path();
        let now = SystemTime::now();
        let refreshed = match self.remote.setattr(
            &path,
            SetAttr::Times {
                atime: now,
                mtime: now,
            },
        ) {
            Err(remote::Error::NotFound) => {
                tracing::warn!("{} was removed; making it again", path.display());
                self.remote.create(&path, 0o600, true)
            }
            // A server that cannot set times gets a new (empty) file,
            // which it dates itself.
            Err(remote::Error::Unsupported(_)) => self.remote.create(&path, 0o600, false),
            other => other,
        };
        if let Err(e) = refreshed {
            tracing::warn!("cannot refresh {}: {e}", path.display());
        }
    }

    /// At a clean unmount: removes the marker, so that other mounts may
    /// remove whatever this one left behind.
    pub fn remove_marker(&self) {
        let _serial = lock(&self.marker_lock);
        if self.marked.swap(false, Ordering::SeqCst) {
            private_names::set_marked(false);
            if !private_names::remove(&*self.remote, &self.marker_path()) {
                tracing::warn!("cannot remove {}", self.marker_path().display());
            }
        }
    }

    /// Lists the root once, removing leftovers of other mounts there.
    pub fn sweep_root(&self) {
        if let Err(e) = self.list(&self.cfg.root) {
            tracing::debug!("cannot list the root: {e}");
        }
    }
}
