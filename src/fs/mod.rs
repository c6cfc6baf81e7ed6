//! The filesystem logic: turns kernel-shaped requests (inode numbers, file
//! handles, offsets) into remote calls, through the caches.
//!
//! Owns inodes ↔ paths, open handles, read-ahead, write staging and commit,
//! and cache coherence: every change made here updates or invalidates the
//! affected cache entries at once. It must not name a fuser type (fuse.rs
//! adapts) nor a protocol (it only sees `dyn Remote`).

pub mod access;
mod file_state;
pub mod inodes;
mod open_file;
mod read;
pub mod write;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;

use crate::cache::blocks::{BlockCache, BlockKey, Reservation};
use crate::cache::meta::{Lookup, MetaCache};
use crate::remote::private_names;
use crate::remote::{self, Attr, Kind, Remote, SetAttr, StatFs};
use crate::sync::lock;
use crate::workers::Workers;
use file_state::{Content, FileState};
use inodes::Inodes;
use open_file::OpenFile;
use read::ahead::ReadAhead;
use write::behind::WriteBehind;

/// Errors of the filesystem layer; `fuse.rs` maps them to errno.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Remote(#[from] remote::Error),
    #[error("no such file or directory")]
    NotFound,
    #[error("unknown file handle")]
    BadHandle,
    #[error("read-only mount")]
    ReadOnly,
    #[error("name too long")]
    NameTooLong,
    #[error("invalid name")]
    InvalidName,
    #[error("is a directory")]
    IsADirectory,
    #[error("file exists")]
    Exists,
    #[error("permission denied")]
    PermissionDenied,
    #[error("an earlier write failed: {0}")]
    WriteFailed(String),
    #[error("local I/O error: {0}")]
    Io(std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Longest name a component may have (as most Unix filesystems).
const NAME_MAX: usize = 255;

/// Maps the remote login user's ids to the local user's (`-o idmap=user`).
#[derive(Clone, Copy, Debug)]
pub struct IdMapping {
    pub remote_uid: u32,
    pub remote_gid: u32,
    pub local_uid: u32,
    pub local_gid: u32,
}

/// What the filesystem logic needs from the mount configuration.
#[derive(Clone, Debug)]
pub struct FsConfig {
    pub root: PathBuf,
    pub read_only: bool,
    pub atomic_writes: bool,
    /// Every open looks at the file on the server (one stat) and drops
    /// what is cached of an older version.
    pub close_to_open: bool,
    /// Symlink targets are kept inside the mount (see `contained_target`).
    pub contain_symlinks: bool,
    pub block_size: u64,
    pub read_ahead_blocks: usize,
    pub cache_timeout: Duration,
    pub cache_size: u64,
    pub idmap: Option<IdMapping>,
    /// The owner and group every file is shown with (`-o uid=`, `-o gid=`).
    pub owner: (Option<u32>, Option<u32>),
    /// Where protocols without random writes stage files (0700).
    pub staging_dir: PathBuf,
    pub prefetch_threads: usize,
}

/// A name and its attributes, with the inode the kernel knows it by.
#[derive(Clone, Debug)]
pub struct Entry {
    pub ino: u64,
    pub attr: Attr,
}

/// One directory entry for readdir.
#[derive(Clone, Debug)]
pub struct DirItem {
    pub name: OsString,
    pub attr: Attr,
    /// Remote path, to assign an inode when the entry is returned.
    pub path: PathBuf,
}

/// Time values of a utimens call, before resolving "now" and "omit".
#[derive(Clone, Copy, Debug)]
pub enum TimeSet {
    Now,
    At(SystemTime),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttrs {
    /// The change names an open descriptor (ftruncate, futimens…), not
    /// only a path.
    pub by_handle: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OpenFlags {
    pub write: bool,
    pub truncate: bool,
    pub append: bool,
    pub exclusive: bool,
}

pub struct Opened {
    pub fh: u64,
    /// The kernel may keep its page cache (the file did not change).
    pub keep_cache: bool,
    /// The open found attributes newer than those the caches held: the
    /// kernel's copy (its size above all, which bounds its reads) must be
    /// dropped before the open returns.
    pub attrs_changed: bool,
}

#[derive(Clone)]
struct Handle {
    ino: u64,
    file: Arc<OpenFile>,
    write: bool,
    append: bool,
    /// `FileState::failures` when it was opened: later ones are its own.
    failures_seen: u64,
    /// Shared with this handle's read-ahead chain while one runs.
    ahead: Arc<Mutex<ReadAhead<Reservation>>>,
}

/// A directory listing built from the caches, valid while the caches show
/// no change and the listing is the same one.
struct Snapshot {
    changes: u64,
    listed_at: Instant,
    items: Arc<[DirItem]>,
    names: u64,
}

/// Directories whose last cached listing is kept ready.
const SNAPSHOTS: NonZeroUsize = match NonZeroUsize::new(256) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// Digest of a listing's names and kinds, what the kernel caches of it
/// besides inode numbers.
fn names_digest(items: &[DirItem]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for item in items {
        (&item.name, item.attr.kind).hash(&mut h);
    }
    h.finish()
}

pub struct Fs {
    remote: Arc<dyn Remote>,
    cfg: FsConfig,
    inodes: Mutex<Inodes>,
    meta: MetaCache,
    blocks: Arc<BlockCache>,
    /// Open-file state per inode, while any handle is open.
    open: Mutex<HashMap<u64, Arc<OpenFile>>>,
    handles: Mutex<HashMap<u64, Handle>>,
    /// Open directories' listing snapshots.
    dirs: Mutex<HashMap<u64, Arc<[DirItem]>>>,
    /// The last listing built from the caches, per directory inode.
    snapshots: Mutex<LruCache<u64, Snapshot>>,
    /// The content version each inode had when last opened (keep_cache).
    seen: Mutex<HashMap<u64, (u64, SystemTime)>>,
    /// What each directory listed when last opened (its keep_cache).
    listed: Mutex<HashMap<u64, u64>>,
    /// When each inode was last changed through the mount: its ctime, which
    /// neither protocol stores (shown as the later of this and the mtime).
    changed: Mutex<HashMap<u64, SystemTime>>,
    next_fh: AtomicU64,
    prefetch: OnceLock<Workers>,
    /// This mount's marker is on the server (`start_marker`).
    marked: AtomicBool,
    /// Held while the marker is refreshed or removed, so that a refresh
    /// running at unmount cannot make it again after its removal.
    marker_lock: Mutex<()>,
}

/// `-o contain_symlinks`: the target a link at `link` (a server path below
/// `root`) may show. An absolute target inside `root` becomes relative to
/// the link's directory (so it resolves inside the mount, not on this
/// machine); one that leads out of `root`, absolute or through `..`, is
/// refused (None).
fn contained_target(root: &Path, link: &Path, target: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let dir = link.parent()?;
    // Resolve lexically, as far as the root allows.
    let mut at: Vec<&OsStr> = Vec::new();
    let start = if target.is_absolute() {
        Path::new("/")
    } else {
        dir
    };
    for c in start.components().chain(target.components()) {
        match c {
            Component::RootDir => at.clear(),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                at.pop()?;
            }
            Component::Normal(n) => at.push(n),
        }
    }
    let resolved: PathBuf = std::iter::once(OsStr::new("/")).chain(at).collect();
    if !resolved.starts_with(root) {
        return None;
    }
    if !target.is_absolute() {
        return Some(target.to_path_buf());
    }
    // Relative to the link's directory: up to the common part, then down.
    let common = dir
        .components()
        .zip(resolved.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = dir.components().count() - common;
    let mut relative = PathBuf::new();
    for _ in 0..ups {
        relative.push("..");
    }
    for c in resolved.components().skip(common) {
        relative.push(c);
    }
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    Some(relative)
}

fn check_name(name: &OsStr) -> Result<()> {
    let bytes = name.as_bytes();
    if bytes.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if bytes.is_empty() || bytes.contains(&b'/') || name == "." || name == ".." {
        return Err(Error::InvalidName);
    }
    Ok(())
}

impl Fs {
    pub fn new(remote: Arc<dyn Remote>, cfg: FsConfig) -> Fs {
        Fs {
            inodes: Mutex::new(Inodes::new(&cfg.root)),
            meta: MetaCache::new(cfg.cache_timeout),
            blocks: Arc::new(BlockCache::new(cfg.cache_size)),
            open: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            listed: Mutex::new(HashMap::new()),
            changed: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(LruCache::new(SNAPSHOTS)),
            next_fh: AtomicU64::new(1),
            prefetch: OnceLock::new(),
            marked: AtomicBool::new(false),
            marker_lock: Mutex::new(()),
            remote,
            cfg,
        }
    }

    /// How long the kernel may trust entries and attributes we return.
    pub fn ttl(&self) -> Duration {
        self.meta.ttl()
    }

    /// The remote path of an inode that still has a name.
    fn path_of(&self, ino: u64) -> Result<PathBuf> {
        let path = self.any_path_of(ino)?;
        if inodes::is_detached(&path) {
            return Err(Error::NotFound);
        }
        Ok(path)
    }

    /// Like `path_of`, but also for an open file that lost its name: its
    /// content is then reached through the open state (`data_path`).
    fn any_path_of(&self, ino: u64) -> Result<PathBuf> {
        lock(&self.inodes)
            .path(ino)
            .map(Path::to_path_buf)
            .ok_or(Error::NotFound)
    }

    fn child_path(&self, parent: u64, name: &OsStr) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.path_of(parent)?.join(name))
    }

    fn writable(&self) -> Result<()> {
        if self.cfg.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Attributes as the mount shows them: ids mapped, open files' sizes
    /// and link counts, changes made through the mount in the ctime.
    fn present(&self, ino: Option<u64>, attr: Attr) -> Attr {
        let state = ino.and_then(|ino| lock(&self.open).get(&ino).cloned());
        self.present_with(attr, ino, state.as_deref())
    }

    fn present_with(&self, mut attr: Attr, ino: Option<u64>, open: Option<&OpenFile>) -> Attr {
        if let Some(map) = self.cfg.idmap {
            if attr.uid == map.remote_uid {
                attr.uid = map.local_uid;
            }
            if attr.gid == map.remote_gid {
                attr.gid = map.local_gid;
            }
        }
        attr.uid = self.cfg.owner.0.unwrap_or(attr.uid);
        attr.gid = self.cfg.owner.1.unwrap_or(attr.gid);
        if let Some(open) = open {
            if let Some(size) = open.shown_size() {
                attr.size = size;
            }
            if open.unlinked() {
                attr.nlink = 0;
            }
        }
        attr.ctime = attr.ctime.max(attr.mtime);
        if let Some(changed) = ino.and_then(|ino| lock(&self.changed).get(&ino).copied()) {
            attr.ctime = attr.ctime.max(changed);
        }
        attr
    }

    /// Records that `ino` changed through the mount now: its ctime moves
    /// forward, even within one clock tick.
    fn note_change(&self, ino: u64) {
        let now = SystemTime::now();
        let mut changed = lock(&self.changed);
        let at = match changed.get(&ino) {
            Some(&last) if last >= now => last + Duration::from_nanos(1),
            _ => now,
        };
        changed.insert(ino, at);
    }

    /// Attributes of a remote path, through the cache.
    fn stat_path(&self, path: &Path) -> Result<Attr> {
        match self.meta.get(path) {
            Some(Lookup::Found(attr)) => return Ok(attr),
            Some(Lookup::Missing) => return Err(Error::NotFound),
            None => {}
        }
        self.stat_fresh(path)
    }

    fn stat_fresh(&self, path: &Path) -> Result<Attr> {
        self.cache_stat(path, self.remote.stat(path))
    }

    /// `stat_fresh` of a file the caches know as `known`, for an open
    /// (close-to-open): the remote may ask less than a whole stat.
    fn stat_again(&self, path: &Path, known: &Attr) -> Result<Attr> {
        self.cache_stat(path, self.remote.stat_again(path, known))
    }

    /// Records the result of a stat in the caches.
    fn cache_stat(&self, path: &Path, result: remote::Result<Attr>) -> Result<Attr> {
        match result {
            Ok(attr) => {
                self.meta.put(path, attr.clone());
                Ok(attr)
            }
            Err(remote::Error::NotFound) => {
                self.meta.put_missing(path);
                Err(Error::NotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn entry_for(&self, path: &Path, attr: Attr) -> Entry {
        let ino = lock(&self.inodes).lookup(path);
        Entry {
            ino,
            attr: self.present(Some(ino), attr),
        }
    }

    // ----- names -----

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let path = self.child_path(parent, name)?;
        if private_names::is_private_name(name.as_bytes()) {
            return Err(Error::NotFound);
        }
        if self.meta.get(&path).is_none() {
            // A fresh listing of the parent that lacks the name answers
            // "no such file" without a round trip.
            if let Some(names) = path.parent().and_then(|dir| self.meta.listing(dir)) {
                if !names.iter().any(|n| n == name) {
                    return Err(Error::NotFound);
                }
            }
        }
        let attr = self.stat_path(&path)?;
        Ok(self.entry_for(&path, attr))
    }

    pub fn forget(&self, ino: u64, n: u64) {
        let gone = lock(&self.inodes).forget(ino, n);
        if gone {
            lock(&self.seen).remove(&ino);
            lock(&self.listed).remove(&ino);
            lock(&self.changed).remove(&ino);
            lock(&self.snapshots).pop(&ino);
            self.blocks.forget_file(ino);
        }
    }

    /// Counts a kernel lookup of a readdirplus entry; undone with `forget`.
    pub fn remember(&self, item: &DirItem) -> u64 {
        lock(&self.inodes).lookup(&item.path)
    }

    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let attr = self.path_of(ino).and_then(|path| self.stat_path(&path));
        let attr = match attr {
            Err(Error::NotFound) => self.open_file_attr(ino).ok_or(Error::NotFound)?,
            other => other?,
        };
        Ok(self.present(Some(ino), attr))
    }

    /// access(2): whether `caller` may do what `mask` (of `access::READ`,
    /// `WRITE`, `EXEC`; empty: existence) asks of `ino`, judged from the
    /// attributes as the mount shows them (ids mapped), as a local
    /// filesystem would. The server still decides each real operation.
    pub fn access(&self, ino: u64, caller: access::Caller, mask: u32) -> Result<()> {
        let attr = self.getattr(ino)?;
        if mask & access::WRITE != 0 {
            self.writable()?;
        }
        let in_groups = |gid| access::supplementary_groups(caller.pid).contains(&gid);
        if access::permitted(&attr, caller.uid, caller.gid, mask, in_groups) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// Attributes of a file that is open but has no name on the server.
    fn open_file_attr(&self, ino: u64) -> Option<Attr> {
        let state = lock(&self.open).get(&ino).cloned()?;
        let state = state.lock();
        let attr = match &state.last_attr {
            Some(last) => Attr {
                size: state.size,
                perm: state.perm as u16,
                nlink: 0,
                ..last.clone()
            },
            None => Attr {
                kind: Kind::File,
                size: state.size,
                perm: state.perm as u16,
                uid: 0,
                gid: 0,
                atime: state.version.1,
                mtime: state.version.1,
                ctime: state.version.1,
                nlink: 0,
            },
        };
        // No name on the server.
        Some(attr)
    }

    pub fn setattr(&self, ino: u64, changes: SetAttrs) -> Result<Attr> {
        self.writable()?;
        // An open file stays locked throughout, so a commit (which renames
        // a temporary file over the target and gives it the recorded mode)
        // cannot slip between the change on the server and its record here.
        let state = lock(&self.open).get(&ino).cloned();
        let mut open = state.as_deref().map(OpenFile::lock);
        let path = self.path_of(ino)?;
        let current = self.stat_fresh(&path)?;
        let resolve = |t: Option<TimeSet>, old: SystemTime| match t {
            Some(TimeSet::Now) => SystemTime::now(),
            Some(TimeSet::At(t)) => t,
            None => old,
        };
        if current.kind == Kind::Symlink {
            // SFTP setstat follows symlinks; changing a link must never
            // change its target, and Linux ignores a link's own mode. The
            // server cannot take a link's own times, so the mount shows the
            // ones asked for until the cache expires (rsync -a then sees
            // its links as up to date).
            drop(open);
            let mut shown = current;
            shown.atime = resolve(changes.atime, shown.atime);
            shown.mtime = resolve(changes.mtime, shown.mtime);
            self.note_change(ino);
            return Ok(self.show_times(ino, &path, shown));
        }
        // A time the protocol cannot carry fails the call before anything
        // else changes.
        let times = self.remote.caps().times;
        for time in [changes.atime, changes.mtime] {
            if let Some(TimeSet::At(t)) = time {
                times.secs(t)?;
            }
        }
        if let Some(mode) = changes.mode {
            let mode = mode & 0o7777;
            match open.as_mut() {
                None => self.remote.setattr(&path, SetAttr::Mode(mode))?,
                Some(st) => {
                    // While open, the copy that is written keeps the
                    // owner's write bit, so `chmod 0444` does not break a
                    // writer; the commit gives it `mode` (file_state::writable_perm).
                    let writable = file_state::writable_perm(mode);
                    match st.content.temp() {
                        Some(temp) => {
                            self.remote.setattr(&path, SetAttr::Mode(mode))?;
                            self.remote.setattr(temp, SetAttr::Mode(writable))?;
                        }
                        None => self.remote.setattr(&path, SetAttr::Mode(writable))?,
                    }
                    st.perm = mode;
                    st.server_perm = writable;
                }
            }
        }
        if self.owner_changes(&current, changes.uid, changes.gid) {
            let (uid, gid) = self.unmap_ids(changes.uid, changes.gid);
            // chown(2) says EPERM where SFTP says "permission denied".
            let denied = |e: remote::Error| match e {
                remote::Error::PermissionDenied => remote::Error::NotPermitted,
                e => e,
            };
            self.remote
                .setattr(&path, SetAttr::Owner(uid, gid))
                .map_err(denied)?;
            if let Some(temp) = open.as_ref().and_then(|st| st.content.temp()) {
                self.remote
                    .setattr(temp, SetAttr::Owner(uid, gid))
                    .map_err(denied)?;
            }
        }
        if let Some(size) = changes.size {
            match open.as_mut() {
                // Its writes were lost already: the server's file is what
                // a truncate by path changes.
                Some(st) if !changes.by_handle && st.error.is_some() => {
                    self.truncate_on_server(&path, &current, size)?
                }
                Some(st) => {
                    st.set_size(&*self.remote, &path, size)?;
                    if !changes.by_handle {
                        // truncate(2) names no descriptor: it acts on the
                        // server at once, as for a file nobody has open
                        // (or one whose last close is still on its way).
                        self.commit_locked(ino, st, &path)?;
                    }
                }
                None => self.truncate_on_server(&path, &current, size)?,
            }
            self.blocks.forget_file(ino);
        }
        if changes.atime.is_some() || changes.mtime.is_some() {
            let atime = resolve(changes.atime, current.atime);
            let mtime = resolve(changes.mtime, current.mtime);
            let target = match open.as_mut() {
                Some(st) => {
                    st.send_pending(&*self.remote, &path)?;
                    if matches!(st.content, Content::Local { .. }) && st.dirty {
                        st.times = Some((atime, mtime));
                    }
                    st.data_path(&path).to_path_buf()
                }
                None => path.clone(),
            };
            match self
                .remote
                .setattr(&target, SetAttr::Times { atime, mtime })
            {
                Err(remote::Error::Unsupported(why)) if current.kind == Kind::Dir => {
                    // A server that cannot set a directory's times (vsftpd):
                    // kept like a symlink's, so `tar x` and `cp -a` finish.
                    tracing::debug!("directory times not set: {why}");
                    drop(open);
                    let mut shown = self.stat_fresh(&path)?;
                    (shown.atime, shown.mtime) = (atime, mtime);
                    return Ok(self.show_times(ino, &path, shown));
                }
                other => other?,
            }
        }
        let shown_perm = open.as_ref().map(|st| st.perm as u16);
        drop(open);
        self.note_change(ino);
        self.meta.forget(&path);
        let mut attr = self.stat_fresh(&path)?;
        if let Some(perm) = shown_perm {
            attr.perm = perm;
        }
        Ok(self.present(Some(ino), attr))
    }

    /// Changes the size of the server's file. Without a remote truncate
    /// (FTP cannot shrink a file), the file is rewritten through a staging
    /// copy, as an open file would be.
    fn truncate_on_server(&self, path: &Path, current: &Attr, size: u64) -> Result<()> {
        match self.remote.setattr(path, SetAttr::Size(size)) {
            Err(remote::Error::Unsupported(_)) if !self.remote.caps().random_write => {
                self.truncate_by_rewrite(path, current, size)
            }
            other => Ok(other?),
        }
    }

    /// Stages the head of a closed file, cuts it and uploads it whole.
    fn truncate_by_rewrite(&self, path: &Path, current: &Attr, size: u64) -> Result<()> {
        let mut st = FileState::new(current.size, u32::from(current.perm), current.version());
        st.stage_locally(&self.cfg.staging_dir, false)?;
        st.set_size(&*self.remote, path, size)?;
        let committed = st.commit(&*self.remote, path);
        self.reap(&mut st);
        committed.map(|_| ())
    }

    /// Times the server cannot store (a symlink's own, a directory's on
    /// some FTP servers): the mount shows them until the cache expires, so
    /// `rsync -a` sees its copy as up to date.
    fn show_times(&self, ino: u64, path: &Path, shown: Attr) -> Attr {
        self.meta.put(path, shown.clone());
        self.present(Some(ino), shown)
    }

    /// Whether a chown asks for an owner or group other than the ones the
    /// mount shows: one that does not is a successful no-op, as on a local
    /// filesystem (`cp -a` and `rsync -a` of one's own files ask for it,
    /// also over FTP, which cannot change owners at all).
    fn owner_changes(&self, current: &Attr, uid: Option<u32>, gid: Option<u32>) -> bool {
        let shown = self.present(None, current.clone());
        uid.is_some_and(|u| u != shown.uid) || gid.is_some_and(|g| g != shown.gid)
    }

    fn unmap_ids(&self, uid: Option<u32>, gid: Option<u32>) -> (Option<u32>, Option<u32>) {
        match self.cfg.idmap {
            Some(map) => (
                uid.map(|u| {
                    if u == map.local_uid {
                        map.remote_uid
                    } else {
                        u
                    }
                }),
                gid.map(|g| {
                    if g == map.local_gid {
                        map.remote_gid
                    } else {
                        g
                    }
                }),
            ),
            None => (uid, gid),
        }
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let path = self.path_of(ino)?;
        let mut target = self.remote.readlink(&path)?;
        if self.cfg.contain_symlinks {
            target = contained_target(&self.cfg.root, &path, &target)
                .ok_or(remote::Error::NotPermitted)?;
        }
        Ok(target.into_os_string().into_encoded_bytes())
    }

    /// The directory holding `path` changed (its mtime did): forget its
    /// cached attributes. The kernel drops its own copy by itself.
    fn dir_changed(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.meta.forget(dir);
        }
    }

    /// Records a new name in the caches and returns its entry.
    fn created(&self, path: &Path) -> Result<Entry> {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            self.meta.dir_added(dir, name);
        }
        self.dir_changed(path);
        self.meta.forget(path);
        let attr = self.stat_fresh(path)?;
        Ok(self.entry_for(path, attr))
    }

    /// Records in the caches that `path` (and all below it) is gone.
    fn forget_name(&self, path: &Path) {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            self.meta.dir_removed(dir, name);
        }
        self.dir_changed(path);
        self.meta.forget_tree(path);
        self.meta.put_missing(path);
    }

    fn removed(&self, path: &Path) {
        self.forget_name(path);
        lock(&self.inodes).unlinked(path);
    }

    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32) -> Result<Entry> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        self.remote.mkdir(&path, mode)?;
        self.created(&path)
    }

    pub fn symlink(&self, parent: u64, name: &OsStr, target: &Path) -> Result<Entry> {
        self.writable()?;
        if !self.remote.caps().symlinks {
            return Err(remote::Error::NotPermitted.into());
        }
        let path = self.child_path(parent, name)?;
        self.remote.symlink(target, &path)?;
        self.created(&path)
    }

    /// A hard link: `new_name` in `new_parent` for the file `ino`, where
    /// the server can make one (`EPERM` otherwise). The new name gets an
    /// inode of its own (inodes are names here); the file's ctime moves.
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<Entry> {
        self.writable()?;
        let to = self.child_path(new_parent, new_name)?;
        if private_names::is_private_name(new_name.as_bytes()) {
            return Err(Error::InvalidName);
        }
        // An open file stays locked while it gets the name, and what it
        // holds goes to the server first, so the new name shows it (a
        // rewrite under a temporary name would otherwise leave the new
        // name on the old content).
        let state = lock(&self.open).get(&ino).cloned();
        let mut open = state.as_deref().map(OpenFile::lock);
        let from = self.path_of(ino)?;
        if let Some(st) = open.as_mut() {
            if st.error.is_none() {
                self.commit_locked(ino, st, &from)?;
            }
        }
        self.remote.link(&from, &to)?;
        drop(open);
        self.note_change(ino);
        // One file: the new name shows the same change.
        let mut entry = self.created(&to)?;
        self.note_change(entry.ino);
        if let Some(&at) = lock(&self.changed).get(&entry.ino) {
            entry.attr.ctime = entry.attr.ctime.max(at);
        }
        Ok(entry)
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        self.remote.rmdir(&path)?;
        self.removed(&path);
        Ok(())
    }

    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        let ino = lock(&self.inodes).ino(&path);
        let state = ino.and_then(|ino| lock(&self.open).get(&ino).cloned());
        match state {
            Some(state) => {
                // What fstat shows once the server has no name for it.
                let last = self.stat_path(&path).ok();
                self.unlink_open(&path, &state, last)?
            }
            None => self.remote.unlink(&path)?,
        }
        if let Some(ino) = ino {
            self.blocks.forget_file(ino);
            // One name fewer: still seen through open descriptors.
            self.note_change(ino);
        }
        self.removed(&path);
        Ok(())
    }

    /// Unlink of a file that is still open: its content must stay reachable
    /// through the open handles, so it moves to a hidden name (or, if it is
    /// being rewritten under a temporary name, the old file just goes).
    fn unlink_open(&self, path: &Path, state: &OpenFile, last: Option<Attr>) -> Result<()> {
        let mut state = state.lock();
        if state.handles == 0 {
            // The last release got here first: nothing keeps it open.
            return Ok(self.remote.unlink(path)?);
        }
        match &state.content {
            Content::Temp(_) => self.remote.unlink(path)?,
            Content::Local { .. } => {
                // The staging file must hold every byte before the server's
                // copy goes away.
                state.load_everything(&*self.remote, path)?;
                self.remote.unlink(path)?;
            }
            Content::Hidden(_) => return Err(Error::NotFound),
            Content::InPlace | Content::Truncated => {
                let hidden = private_names::private_sibling(path, private_names::HIDDEN_PREFIX);
                state.send_pending(&*self.remote, path)?;
                self.remote.rename(path, &hidden)?;
                if matches!(state.content, Content::Truncated) {
                    self.remote.setattr(&hidden, SetAttr::Size(0))?;
                }
                state.content = Content::Hidden(hidden);
            }
        }
        state.unlinked = true;
        state.last_attr = last;
        Ok(())
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<()> {
        self.writable()?;
        let from = self.child_path(parent, name)?;
        let to = self.child_path(new_parent, new_name)?;
        if private_names::is_private_name(new_name.as_bytes()) {
            return Err(Error::InvalidName);
        }
        if from == to {
            return Ok(()); // rename(2) of a name onto itself does nothing
        }
        if no_replace {
            match self.remote.stat(&to) {
                Ok(_) => return Err(Error::Exists),
                Err(remote::Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // An open file at the target loses its name, as by unlink: its
        // content moves to a hidden name first, so its descriptors keep it
        // and its commit never renames anything over the new file.
        let replaced = lock(&self.inodes).ino(&to);
        let replaced_state = replaced.and_then(|ino| lock(&self.open).get(&ino).cloned());
        if let Some(state) = &replaced_state {
            let last = self.stat_path(&to).ok();
            self.unlink_open(&to, state, last)?;
        }
        // An open source file stays locked while it moves, so that a commit
        // (which renames its temporary file over the file's current path)
        // cannot run against the old name; buffered writes land first.
        let source_ino = lock(&self.inodes).ino(&from);
        let source_state = source_ino.and_then(|ino| lock(&self.open).get(&ino).cloned());
        let mut source_guard = source_state.as_deref().map(OpenFile::lock);
        if let Some(st) = source_guard.as_mut() {
            st.send_pending(&*self.remote, &from)?;
        }
        // Open files below a renamed directory keep names of their own
        // there (temporary and hidden copies): they are locked while the
        // directory moves (in inode order), then follow it.
        let open: Vec<(u64, Arc<OpenFile>)> = lock(&self.open)
            .iter()
            .map(|(ino, state)| (*ino, state.clone()))
            .collect();
        let mut below: Vec<(u64, Arc<OpenFile>)> = {
            let inodes = lock(&self.inodes);
            open.into_iter()
                .filter(|(ino, _)| {
                    inodes
                        .path(*ino)
                        .is_some_and(|p| p != from && p.starts_with(&from))
                })
                .collect()
        };
        below.sort_by_key(|(ino, _)| *ino);
        let mut below_guards: Vec<_> = below.iter().map(|(_, state)| state.lock()).collect();
        self.remote.rename(&from, &to)?;
        for st in &mut below_guards {
            st.moved(&from, &to);
        }
        drop(below_guards);
        if let Some(ino) = replaced {
            self.blocks.forget_file(ino);
            self.note_change(ino);
        }
        if let Some(ino) = source_ino {
            self.note_change(ino);
        }
        self.forget_name(&from);
        self.meta.forget_tree(&to);
        if let (Some(dir), Some(name)) = (to.parent(), to.file_name()) {
            self.meta.dir_added(dir, name);
        }
        self.dir_changed(&to);
        lock(&self.inodes).rename(&from, &to);
        drop(source_guard);
        Ok(())
    }

    pub fn statfs(&self) -> Result<StatFs> {
        Ok(self.remote.statfs(&self.cfg.root)?)
    }

    // ----- directories -----

    /// Opens a directory on a snapshot of its listing.
    pub fn opendir(&self, ino: u64) -> Result<Opened> {
        let path = self.path_of(ino)?;
        let items: Arc<[DirItem]> = self.list(&path)?.into();
        let names = names_digest(&items);
        Ok(self.open_dir_on(ino, items, names))
    }

    /// `opendir` from the caches alone, for the FUSE dispatcher: None when
    /// that would need the server or a lock that network I/O may hold (an
    /// open file's state); the caller then goes through a worker.
    pub fn opendir_cached(&self, ino: u64) -> Option<Opened> {
        let path = lock(&self.inodes).path(ino)?.to_path_buf();
        let (items, names) = self.cached_snapshot(ino, &path)?;
        if self.lists_open_file(&items)? {
            return None;
        }
        Some(self.open_dir_on(ino, items, names))
    }

    /// A directory's attributes from the cache alone, for the dispatcher
    /// (directories have no open-file state to consult).
    pub fn getattr_cached_dir(&self, ino: u64) -> Option<Attr> {
        let path = lock(&self.inodes).path(ino)?.to_path_buf();
        match self.meta.get(&path) {
            Some(Lookup::Found(attr)) if attr.kind == Kind::Dir => {
                Some(self.present_with(attr, Some(ino), None))
            }
            _ => None,
        }
    }

    /// The listing of `dir` built from the caches (with the digest of its
    /// names), reusing the last one built while the caches did not change:
    /// an `ls -lR` opens every directory, and this runs on the dispatcher.
    fn cached_snapshot(&self, ino: u64, dir: &Path) -> Option<(Arc<[DirItem]>, u64)> {
        let changes = self.meta.changes();
        let listed_at = self.meta.listing_at(dir)?;
        if let Some(s) = lock(&self.snapshots).get(&ino) {
            if s.changes == changes && s.listed_at == listed_at {
                return Some((s.items.clone(), s.names));
            }
        }
        let items = self.cached_items(dir)?;
        let inos = self.changed_inos(&items);
        let items: Arc<[DirItem]> = items
            .into_iter()
            .zip(inos)
            .map(|(mut item, ino)| {
                item.attr = self.present_with(item.attr, ino, None);
                item
            })
            .collect();
        let names = names_digest(&items);
        let snapshot = Snapshot {
            changes,
            listed_at,
            items: items.clone(),
            names,
        };
        lock(&self.snapshots).put(ino, snapshot);
        Some((items, names))
    }

    /// Whether a listed file is open (its state then has to be consulted,
    /// and may be locked for a while); None if the open files' table is busy.
    fn lists_open_file(&self, items: &[DirItem]) -> Option<bool> {
        let open = self.open.try_lock().ok()?;
        if open.is_empty() {
            return Some(false);
        }
        let inodes = lock(&self.inodes);
        Some(items.iter().any(|i| {
            inodes
                .ino(&i.path)
                .is_some_and(|ino| open.contains_key(&ino))
        }))
    }

    /// Registers an open directory. The kernel may keep the entries it
    /// cached from the last opening if they are exactly these: the same
    /// names and kinds (`names`), and the same inode numbers, which hold as
    /// long as no inode was dropped.
    fn open_dir_on(&self, ino: u64, items: Arc<[DirItem]>, names: u64) -> Opened {
        let digest = {
            let mut h = std::hash::DefaultHasher::new();
            (names, lock(&self.inodes).removals()).hash(&mut h);
            h.finish()
        };
        let keep_cache = lock(&self.listed).insert(ino, digest) == Some(digest);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, items);
        Opened {
            fh,
            keep_cache,
            attrs_changed: false,
        }
    }

    /// A listing from the caches: a fresh listing whose every entry still
    /// has fresh attributes (as the server gave them).
    fn cached_items(&self, dir: &Path) -> Option<Vec<DirItem>> {
        let names = self.meta.listing(dir)?;
        let items: Option<Vec<DirItem>> = names
            .into_iter()
            .map(|name| {
                let path = dir.join(&name);
                match self.meta.get(&path) {
                    Some(Lookup::Found(attr)) => Some(DirItem { name, attr, path }),
                    _ => None,
                }
            })
            .collect();
        items
    }

    fn list(&self, dir: &Path) -> Result<Vec<DirItem>> {
        if let Some(items) = self.cached_items(dir) {
            return Ok(self.present_items(items));
        }
        let entries = self.remote.list(dir)?;
        let entries: Vec<(OsString, Attr)> = entries
            .into_iter()
            .filter(|e| self.listable(dir, &e.name, &e.attr))
            .map(|e| (e.name, e.attr))
            .collect();
        self.meta.put_listing(dir, &entries);
        let items = entries
            .into_iter()
            .map(|(name, attr)| DirItem {
                path: dir.join(&name),
                name,
                attr,
            })
            .collect();
        Ok(self.present_items(items))
    }

    /// Whether a listed name is shown. Our private names are not (and
    /// another mount's leftovers are removed on sight, see `abandoned`);
    /// names longer than NAME_MAX are not either, as the kernel would fail
    /// the whole readdir with EIO.
    fn listable(&self, dir: &Path, name: &OsStr, attr: &Attr) -> bool {
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

    fn present_items(&self, items: Vec<DirItem>) -> Vec<DirItem> {
        // One look at the open files for the whole listing (usually none).
        let open: Vec<Option<(u64, Arc<OpenFile>)>> = {
            let open = lock(&self.open);
            if open.is_empty() {
                vec![None; items.len()]
            } else {
                let inodes = lock(&self.inodes);
                items
                    .iter()
                    .map(|i| {
                        let ino = inodes.ino(&i.path)?;
                        Some((ino, open.get(&ino)?.clone()))
                    })
                    .collect()
            }
        };
        let changed = self.changed_inos(&items);
        items
            .into_iter()
            .zip(open.into_iter().zip(changed))
            .map(|(mut item, (state, changed))| {
                let ino = state.as_ref().map(|(ino, _)| *ino).or(changed);
                let state = state.as_ref().map(|(_, s)| &**s);
                item.attr = self.present_with(item.attr, ino, state);
                item
            })
            .collect()
    }

    /// The inode of each listed entry that changed through the mount (its
    /// ctime is then not the mtime); usually none.
    fn changed_inos(&self, items: &[DirItem]) -> Vec<Option<u64>> {
        if lock(&self.changed).is_empty() {
            return vec![None; items.len()];
        }
        let inodes = lock(&self.inodes);
        items.iter().map(|i| inodes.ino(&i.path)).collect()
    }

    /// The listing an open directory was opened on. Shared, not copied:
    /// the kernel reads a large directory in many small calls, each taking
    /// only what fits in its buffer.
    pub fn readdir(&self, fh: u64) -> Result<Arc<[DirItem]>> {
        lock(&self.dirs).get(&fh).cloned().ok_or(Error::BadHandle)
    }

    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    /// The inode number a directory entry has, if the kernel knows it.
    pub fn known_ino(&self, path: &Path) -> Option<u64> {
        lock(&self.inodes).ino(path)
    }

    // ----- files -----

    pub fn open(&self, ino: u64, flags: OpenFlags) -> Result<Opened> {
        if flags.write {
            self.writable()?;
        }
        let path = self.path_of(ino)?;
        // Close-to-open: a change made on the server before this open is
        // seen by it, for one stat. Not while the file is open with
        // content the server does not have yet: its open state is what
        // counts then. Writers always need the exact size (O_APPEND).
        let authoritative = lock(&self.open)
            .get(&ino)
            .is_some_and(|state| state.shown_size().is_some());
        let check = self.cfg.close_to_open && !authoritative;
        let cached = match self.meta.get(&path) {
            Some(Lookup::Found(attr)) => Some(attr),
            _ => None,
        };
        let mut attr = match &cached {
            Some(known) if check && !flags.write => self.stat_again(&path, known)?,
            _ if flags.write || check => self.stat_fresh(&path)?,
            _ => self.stat_path(&path)?,
        };
        let mut attrs_changed = false;
        if check {
            if let Some(cached) = &cached {
                if attr.mtime != cached.mtime && self.remote.same_version(&path, cached, &attr) {
                    // The same content, where the cache had a coarser time
                    // (an FTP listing's): keep showing that one, so that
                    // the file does not seem changed to those who saw it.
                    attr.mtime = cached.mtime;
                    attr.atime = cached.atime;
                    attr.ctime = cached.ctime;
                    self.meta.put(&path, attr.clone());
                }
            }
            attrs_changed = cached.as_ref() != Some(&attr);
        }
        if attr.kind == Kind::Dir {
            return Err(Error::IsADirectory);
        }
        let state = self.open_state(ino, &attr)?;
        let prepared = {
            let mut st = state.lock();
            self.prepare_open(ino, &path, &attr, &mut st, flags)
                .map(|keep_cache| (keep_cache, st.failures))
        };
        match prepared {
            Ok((keep_cache, failures)) => Ok(Opened {
                fh: self.add_handle(ino, state, flags, failures),
                keep_cache,
                attrs_changed,
            }),
            Err(e) => {
                let _ = self.drop_handle(ino, &state, false);
                Err(e)
            }
        }
    }

    /// Readies the shared state for one more handle; returns whether the
    /// kernel may keep its cached pages.
    fn prepare_open(
        &self,
        ino: u64,
        path: &Path,
        attr: &Attr,
        st: &mut FileState,
        flags: OpenFlags,
    ) -> Result<bool> {
        if flags.write && st.error.is_some() {
            // Those who lost writes keep being told; a new writer starts
            // from the server's file.
            st.recover(&*self.remote, attr.size, attr.version());
        }
        if flags.write
            && !self.remote.caps().random_write
            && !matches!(st.content, Content::Local { .. })
        {
            st.size = attr.size;
            st.stage_locally(&self.cfg.staging_dir, flags.truncate)?;
        }
        if flags.write {
            // One writer without O_APPEND ends the append-only state.
            let first = st.handles == 1;
            st.append_only = flags.append && !flags.truncate && (first || st.append_only);
        }
        let mut keep_cache = false;
        if flags.truncate && flags.write {
            self.truncate_on_open(st, path)?;
            self.note_change(ino);
            self.blocks.forget_file(ino);
            self.meta.update(path, |a| a.size = 0);
        } else if !st.reads_bypass_cache() {
            let version = attr.version();
            let previous = lock(&self.seen).insert(ino, version);
            keep_cache = previous == Some(version);
            if previous.is_some_and(|v| v != version) {
                // Blocks are keyed by version: the old ones are only dead
                // weight now.
                self.blocks.forget_file(ino);
            }
            st.version = version;
            st.size = attr.size;
        }
        Ok(keep_cache)
    }

    /// Starts uploading a freshly staged (empty) file while it is written,
    /// where atomic writes allow a temporary name.
    fn start_stream(&self, st: &mut FileState, path: &Path) {
        if !self.cfg.atomic_writes || !self.remote.caps().atomic_rename || st.streamer.is_some() {
            return;
        }
        if let Content::Local { file, .. } = &st.content {
            let temp = private_names::private_sibling(path, private_names::TEMP_PREFIX);
            st.streamer = write::upload_stream::Streamer::start(self.remote.clone(), file, temp);
        }
    }

    fn truncate_on_open(&self, state: &mut FileState, path: &Path) -> Result<()> {
        // A fresh rewrite: what was written before, whether it arrived or
        // was lost, no longer matters.
        if !matches!(state.content, Content::Local { .. }) {
            let _ = state.send_pending(&*self.remote, path);
        }
        state.error = None;
        if let Content::Local { .. } = state.content {
            state.stage_locally(&self.cfg.staging_dir, true)?;
            self.start_stream(state, path);
        } else if !self.cfg.atomic_writes {
            state.set_size(&*self.remote, path, 0)?;
        } else {
            state.discard_temp(&*self.remote);
            state.content = Content::Truncated;
            state.rewriting = true;
            state.size = 0;
            state.dirty = true;
        }
        Ok(())
    }

    /// The shared open state of `ino`, created on first open, with one more
    /// handle counted. The open files' table is never held while a file's
    /// state is locked: a commit holds that lock for a whole upload, and
    /// every stat and listing consults the table.
    fn open_state(&self, ino: u64, attr: &Attr) -> Result<Arc<OpenFile>> {
        loop {
            let existing = lock(&self.open).get(&ino).cloned();
            if let Some(state) = existing {
                let mut st = state.lock();
                if st.closed {
                    continue; // released meanwhile and already out of the table
                }
                st.handles += 1;
                drop(st);
                return Ok(state);
            }
            let mut state = FileState::new(attr.size, u32::from(attr.perm), attr.version());
            if self.remote.caps().random_write {
                state.write_behind = Some(WriteBehind::new(
                    self.remote.clone(),
                    self.cfg.prefetch_threads,
                ));
            }
            state.handles = 1;
            let state = Arc::new(OpenFile::new(state));
            let mut open = lock(&self.open);
            if open.contains_key(&ino) {
                continue; // another open made one first: use that
            }
            open.insert(ino, state.clone());
            return Ok(state);
        }
    }

    /// A new handle on `file`, whose state counted `failures_seen` losses
    /// when it was readied for this handle.
    fn add_handle(
        &self,
        ino: u64,
        file: Arc<OpenFile>,
        flags: OpenFlags,
        failures_seen: u64,
    ) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            ino,
            file,
            write: flags.write,
            append: flags.append,
            failures_seen,
            ahead: Arc::default(),
        };
        lock(&self.handles).insert(fh, handle);
        fh
    }

    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        if private_names::is_private_name(name.as_bytes()) {
            return Err(Error::InvalidName);
        }
        // The server's file must stay writable for the writes that follow,
        // as the descriptor of a file created read-only is on a local
        // filesystem; the commit gives it `mode` (file_state::writable_perm).
        match self
            .remote
            .create(&path, file_state::writable_perm(mode & 0o7777), true)
        {
            Ok(()) => {}
            Err(remote::Error::Exists) if !flags.exclusive => {
                // Someone created it since the kernel looked: open it.
                let entry = self.created(&path)?;
                let opened = self.open(entry.ino, flags)?;
                return Ok((entry, opened));
            }
            Err(e) => return Err(e.into()),
        }
        let entry = self.created(&path)?;
        let state = self.open_state(entry.ino, &entry.attr)?;
        let failures = {
            let mut st = state.lock();
            st.perm = mode & 0o7777;
            st.server_perm = file_state::writable_perm(st.perm);
            if !self.remote.caps().random_write {
                let staged = st.stage_locally(&self.cfg.staging_dir, true);
                if let Err(e) = staged {
                    drop(st);
                    let _ = self.drop_handle(entry.ino, &state, false);
                    return Err(e);
                }
                st.dirty = false;
                self.start_stream(&mut st, &path);
            } else if self.cfg.atomic_writes
                && st.handles == 1
                && matches!(st.content, Content::InPlace)
            {
                // New content goes to a temporary name first, so a crash
                // never leaves a half-written file under the real name.
                st.content = Content::Truncated;
                st.rewriting = true;
                st.dirty = false;
            }
            st.failures
        };
        lock(&self.seen).insert(entry.ino, entry.attr.version());
        let fh = self.add_handle(
            entry.ino,
            state,
            OpenFlags {
                write: true,
                ..flags
            },
            failures,
        );
        Ok((
            entry,
            Opened {
                fh,
                keep_cache: false,
                attrs_changed: false,
            },
        ))
    }

    /// Keeps trying, in the background, to remove temporary files that a
    /// failure left behind while the server was unreachable (bounded:
    /// about two minutes; after that the next mount's sweep removes them).
    fn reap(&self, st: &mut FileState) {
        if st.orphans.is_empty() {
            return;
        }
        let mut orphans = std::mem::take(&mut st.orphans);
        let remote = self.remote.clone();
        let spawned = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                for attempt in 0..24u32 {
                    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt.min(10) + 1)));
                    orphans.retain(|p| !private_names::remove(&*remote, p));
                    if orphans.is_empty() {
                        return;
                    }
                }
                for p in orphans {
                    tracing::warn!("cannot remove temporary file {}", p.display());
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a thread to remove temporary files: {e}");
        }
    }

    fn handle(&self, fh: u64) -> Result<Handle> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or(Error::BadHandle)
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let Handle {
            ino,
            file,
            ahead,
            failures_seen,
            ..
        } = self.handle(fh)?;
        let (path, version) = {
            let mut st = file.lock();
            if st.failures > failures_seen {
                // What this descriptor wrote never arrived: the server's
                // bytes would not be what it wrote.
                return Err(st.lost());
            }
            let path = self.any_path_of(ino)?;
            if st.reads_bypass_cache() {
                return st.read(&*self.remote, &path, offset, size as usize);
            }
            (path, st.version)
        };
        let data = self.read_blocks(ino, &path, version, offset, size as usize)?;
        self.read_ahead(&ahead, ino, &path, version, offset, data.len());
        Ok(data)
    }

    fn block_key(ino: u64, version: (u64, SystemTime), index: u64) -> BlockKey {
        BlockKey {
            file: ino,
            size: version.0,
            mtime: version.1,
            index,
        }
    }

    /// Serves a read of a clean file from whole blocks (fetched on a miss).
    fn read_blocks(
        &self,
        ino: u64,
        path: &Path,
        version: (u64, SystemTime),
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let size = version.0;
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = size.min(offset + len as u64);
        let bs = self.cfg.block_size;
        let mut out = Vec::with_capacity((end - offset) as usize);
        for index in offset / bs..=(end - 1) / bs {
            let start = index * bs;
            let key = Self::block_key(ino, version, index);
            let block = self
                .blocks
                .get_or_fetch(&key, || self.remote.read(path, start, bs as usize))?;
            let from = (offset.max(start) - start) as usize;
            let to = ((end.min(start + bs)) - start) as usize;
            if from >= block.len() {
                break;
            }
            out.extend_from_slice(&block[from..to.min(block.len())]);
            if block.len() < to {
                // The file is shorter than it was: stop at its real end.
                break;
            }
        }
        Ok(out)
    }

    /// After a sequential read, promises the blocks wanted ahead of it and
    /// makes sure this handle's read-ahead chain runs: one task that fetches
    /// them in order (see read/ahead.rs), so the reader finds them cached.
    fn read_ahead(
        &self,
        ahead: &Arc<Mutex<ReadAhead<Reservation>>>,
        ino: u64,
        path: &Path,
        version: (u64, SystemTime),
        offset: u64,
        len: usize,
    ) {
        let bs = self.cfg.block_size;
        {
            let mut ra = lock(ahead);
            let wanted = ra.after_read(
                offset,
                len,
                bs,
                version.0.div_ceil(bs),
                self.cfg.read_ahead_blocks as u64,
            );
            for index in wanted {
                // A running chain promises the block now; a starting one
                // when it begins (see read/ahead.rs).
                let promise = if ra.running() {
                    match self.blocks.reserve(&Self::block_key(ino, version, index)) {
                        Some(promise) => Some(promise),
                        None => continue, // cached, or being fetched
                    }
                } else {
                    None
                };
                ra.queue(index, promise);
            }
            if !ra.start() {
                return;
            }
        }
        let workers = self
            .prefetch
            .get_or_init(|| Workers::new("prefetch", self.cfg.prefetch_threads, 64));
        let (blocks, remote) = (self.blocks.clone(), self.remote.clone());
        let (path, chain) = (path.to_path_buf(), ahead.clone());
        let queued = workers.try_spawn(Box::new(move || {
            lock(&chain).begin(|index| blocks.reserve(&Self::block_key(ino, version, index)));
            loop {
                let Some((index, promise)) = lock(&chain).next_block() else {
                    return;
                };
                match remote.read(&path, index * bs, bs as usize) {
                    Ok(data) => promise.fill(Arc::new(data)),
                    Err(e) => {
                        tracing::debug!("read-ahead of {} failed: {e}", path.display());
                        lock(&chain).end();
                        return;
                    }
                }
            }
        }));
        if !queued {
            // Every prefetch worker is busy: a later read tries again.
            lock(ahead).end();
        }
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let h = self.handle(fh)?;
        if !h.write {
            return Err(Error::BadHandle);
        }
        let mut st = h.file.lock();
        if st.failures > h.failures_seen {
            return Err(st.lost());
        }
        let path = self.any_path_of(h.ino)?;
        let offset = if h.append { st.size } else { offset };
        let written = st.write(&*self.remote, &path, offset, data);
        self.reap(&mut st);
        written?;
        let size = st.size;
        drop(st);
        self.note_change(h.ino);
        // No need to drop cached blocks here: reads of a written file
        // bypass them until the commit, which drops them.
        self.meta.update(&path, |a| {
            a.size = size;
            a.mtime = SystemTime::now();
        });
        Ok(data.len() as u32)
    }

    /// close(): a writer's close puts the file on the server and reports
    /// what failed. A reader's close does nothing: it must neither commit
    /// another handle's rewrite half-way nor take that writer's error.
    pub fn flush(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        if !h.write {
            return Ok(());
        }
        self.commit(h.ino, &h.file, h.failures_seen)
    }

    pub fn fsync(&self, fh: u64) -> Result<()> {
        let Handle {
            ino,
            file: state,
            failures_seen,
            ..
        } = self.handle(fh)?;
        self.commit(ino, &state, failures_seen)?;
        let st = state.lock();
        let path = self.any_path_of(ino)?;
        if !st.unlinked && !matches!(st.content, Content::Local { .. }) {
            self.remote.fsync(st.data_path(&path))?;
        }
        Ok(())
    }

    /// Commits for a handle that was opened after `seen` losses.
    fn commit(&self, ino: u64, state: &OpenFile, seen: u64) -> Result<()> {
        // Path after the lock: a rename holds it while it moves the file.
        let mut st = state.lock();
        if st.failures > seen {
            return Err(st.lost());
        }
        let path = self.any_path_of(ino)?;
        self.commit_locked(ino, &mut st, &path)
    }

    fn commit_locked(&self, ino: u64, st: &mut FileState, path: &Path) -> Result<()> {
        if !st.dirty && st.error.is_none() {
            if st.perm_pending() {
                st.restore_perm(&*self.remote, path);
                self.meta.forget(path);
            }
            return Ok(());
        }
        let result = st.commit(&*self.remote, path);
        self.reap(st);
        self.blocks.forget_file(ino);
        self.meta.forget(path);
        self.dir_changed(path);
        if result.is_ok() && !st.unlinked {
            if let Ok(attr) = self.stat_fresh(path) {
                st.version = attr.version();
                st.size = attr.size;
                lock(&self.seen).insert(ino, attr.version());
            }
        }
        result.map(|_| ())
    }

    pub fn release(&self, fh: u64) -> Result<()> {
        let Some(handle) = lock(&self.handles).remove(&fh) else {
            return Err(Error::BadHandle);
        };
        // Nobody reads ahead of a closed handle: its chain ends.
        lock(&handle.ahead).stop();
        // close() already committed through flush. Only the last release
        // commits what is left (writes that came after that close, as from
        // a shared mapping), whatever its own mode: an earlier one arriving
        // late must not commit another handle's rewrite half-way.
        let result = self.drop_handle(handle.ino, &handle.file, true);
        if let Err(e) = &result {
            tracing::warn!("write-back at close failed: {e}");
        }
        result
    }

    /// One handle fewer on `state`. After the last, what is left is
    /// committed (with `commit`), the state leaves the open files' table
    /// and what only it kept alive is removed.
    fn drop_handle(&self, ino: u64, state: &Arc<OpenFile>, commit: bool) -> Result<()> {
        let mut st = state.lock();
        st.handles -= 1;
        if st.handles > 0 {
            return Ok(());
        }
        let result = if commit {
            self.any_path_of(ino)
                .and_then(|path| self.commit_locked(ino, &mut st, &path))
        } else {
            Ok(())
        };
        st.closed = true;
        let mut open = lock(&self.open);
        if open.get(&ino).is_some_and(|s| Arc::ptr_eq(s, state)) {
            open.remove(&ino);
        }
        drop(open);
        st.cleanup(&*self.remote);
        self.reap(&mut st);
        result
    }
}

#[cfg(test)]
mod tests;
