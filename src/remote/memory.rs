//! An in-memory `Remote` for unit tests of the filesystem logic. It keeps
//! POSIX-like semantics (rename over, ENOTEMPTY, …) as an ordinary login
//! sees them (no writing to a file without its owner's write bit), counts
//! calls, and can be told to fail writes, refuse a rename over an
//! existing file (as SFTP without posix-rename), or fail the next renames
//! in a scripted way. It copies on the "server" (unless told it cannot)
//! and names owners from a table the test fills. It logs every call
//! (`calls`), one line each, so tests can assert how many round trips an
//! operation costs; a kept writer's handles are simulated (one open per
//! writer, one close at `close_writer`). Never a replacement for the
//! real-server tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::{
    Attr, Caps, DirEntry, Error, IdNames, Kind, Remote, Result, SetAttr, StatFs, TimeRange,
    WriterId,
};

#[derive(Clone, Debug)]
pub struct Node {
    pub attr: Attr,
    pub data: Vec<u8>,
    pub link: Option<PathBuf>,
}

pub struct Memory {
    pub nodes: Mutex<BTreeMap<PathBuf, Node>>,
    pub caps: Caps,
    pub fail_writes: AtomicBool,
    /// The server is full: writes fail with `NoSpace`.
    pub full: AtomicBool,
    /// Creating files fails (as a server that refuses to close them).
    pub fail_creates: AtomicBool,
    pub reads: AtomicUsize,
    pub stats: AtomicUsize,
    pub lists: AtomicUsize,
    /// Listings are refused (a directory that can be entered, not read).
    pub fail_lists: AtomicBool,
    /// Listings give mtimes cut to the minute, as an FTP `LIST` does
    /// (stat stays exact, as with `MDTM`).
    pub coarse_listings: AtomicBool,
    /// `rename` over an existing file answers `Exists`.
    pub no_rename_over: AtomicBool,
    /// What the next renames do, one entry each; renames work as usual
    /// once it is empty.
    pub rename_faults: Mutex<VecDeque<Fault>>,
    /// `copy_range` answers `Unsupported`, as a server without copy-data.
    pub no_server_copy: AtomicBool,
    /// Copies made on the "server".
    pub copies: AtomicUsize,
    /// The server's names of user and group ids; `None`: it cannot tell.
    pub id_names: Mutex<Option<NameTables>>,
    /// `id_names` calls, and ids asked in all.
    pub id_name_calls: AtomicUsize,
    pub ids_asked: AtomicUsize,
    /// Every call so far, as `op path [details]` (see `take_calls`).
    pub calls: Mutex<Vec<String>>,
    /// Writers holding a kept handle.
    kept: Mutex<BTreeSet<WriterId>>,
    /// Closing a kept writer's handles fails (as a server that reports a
    /// failed write only at CLOSE); the bytes stay written.
    pub fail_closes: AtomicBool,
    /// `create_kept` answers with the new file's attributes, as SFTP does
    /// where it creates on the extensions' channel.
    pub created_attrs: AtomicBool,
}

/// The server's names of user ids and of group ids.
pub type NameTables = (HashMap<u32, OsString>, HashMap<u32, OsString>);

/// A scripted fault of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Works as usual.
    None,
    /// The connection breaks before the server does it.
    Fail,
    /// The server does it, then the connection breaks before its reply.
    LoseReply,
}

/// An ordinary login may not change the content of a file whose mode has
/// no owner's write bit (root could).
fn writable(node: &Node) -> Result<()> {
    if node.attr.perm & 0o200 == 0 {
        return Err(Error::PermissionDenied);
    }
    Ok(())
}

fn attr(kind: Kind, perm: u16) -> Attr {
    let now = SystemTime::now();
    Attr {
        kind,
        size: 0,
        perm,
        uid: 0,
        gid: 0,
        atime: now,
        mtime: now,
        // As SFTP v3 servers: no ctime, no link count.
        ctime: now,
        nlink: 1,
    }
}

/// Attributes as an SFTP v3 server gives them: no ctime but the mtime.
fn shown(attr: &Attr) -> Attr {
    Attr {
        ctime: attr.mtime,
        ..attr.clone()
    }
}

fn to_the_minute(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs - secs % 60)
}

impl Memory {
    pub fn new(random_write: bool) -> Memory {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            PathBuf::from("/"),
            Node {
                attr: attr(Kind::Dir, 0o755),
                data: Vec::new(),
                link: None,
            },
        );
        Memory {
            nodes: Mutex::new(nodes),
            caps: Caps {
                random_write,
                // As SFTP (random writes) or FTP (uploads) keeps them.
                exact_times: random_write,
                resize_rewrites: false,
                symlinks: true,
                atomic_rename: true,
                times: TimeRange::SFTP_V3,
                // As the SFTP servers it stands in for.
                setattr_follows_symlinks: true,
            },
            fail_writes: AtomicBool::new(false),
            full: AtomicBool::new(false),
            fail_creates: AtomicBool::new(false),
            reads: AtomicUsize::new(0),
            stats: AtomicUsize::new(0),
            lists: AtomicUsize::new(0),
            fail_lists: AtomicBool::new(false),
            coarse_listings: AtomicBool::new(false),
            no_rename_over: AtomicBool::new(false),
            rename_faults: Mutex::new(VecDeque::new()),
            no_server_copy: AtomicBool::new(false),
            copies: AtomicUsize::new(0),
            id_names: Mutex::new(None),
            id_name_calls: AtomicUsize::new(0),
            ids_asked: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
            kept: Mutex::new(BTreeSet::new()),
            fail_closes: AtomicBool::new(false),
            created_attrs: AtomicBool::new(false),
        }
    }

    /// The calls logged since the last take, oldest first.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *crate::sync::lock(&self.calls))
    }

    fn log(&self, op: &str, path: &Path, details: std::fmt::Arguments<'_>) {
        let line = format!("{op} {}{details}", path.display());
        crate::sync::lock(&self.calls).push(line);
    }

    fn nodes(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Node>> {
        crate::sync::lock(&self.nodes)
    }

    pub fn put_file(&self, path: &str, data: &[u8]) {
        let mut a = attr(Kind::File, 0o644);
        a.size = data.len() as u64;
        self.nodes().insert(
            PathBuf::from(path),
            Node {
                attr: a,
                data: data.to_vec(),
                link: None,
            },
        );
    }

    pub fn content(&self, path: &str) -> Option<Vec<u8>> {
        self.nodes().get(Path::new(path)).map(|n| n.data.clone())
    }

    pub fn names(&self) -> Vec<PathBuf> {
        self.nodes().keys().cloned().collect()
    }

    fn check_parent(nodes: &BTreeMap<PathBuf, Node>, path: &Path) -> Result<()> {
        let parent = path.parent().ok_or(Error::Invalid)?;
        match nodes.get(parent) {
            Some(n) if n.attr.kind == Kind::Dir => Ok(()),
            Some(_) => Err(Error::NotADirectory),
            None => Err(Error::NotFound),
        }
    }

    fn children<'a>(
        nodes: &'a BTreeMap<PathBuf, Node>,
        dir: &'a Path,
    ) -> impl Iterator<Item = &'a PathBuf> + 'a {
        nodes
            .keys()
            .filter(move |p| p.parent() == Some(dir) && p.as_path() != dir)
    }

    fn rename_now(&self, from: &Path, to: &Path) -> Result<()> {
        let mut nodes = self.nodes();
        Self::check_parent(&nodes, to)?;
        if !nodes.contains_key(from) {
            return Err(Error::NotFound);
        }
        if let Some(t) = nodes.get(to) {
            if t.attr.kind != Kind::Dir && self.no_rename_over.load(Ordering::SeqCst) {
                return Err(Error::Exists);
            }
            if t.attr.kind == Kind::Dir && Self::children(&nodes, to).next().is_some() {
                return Err(Error::NotEmpty);
            }
        }
        let moved: Vec<PathBuf> = nodes
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        nodes.remove(to);
        for old in moved {
            if let Some(node) = nodes.remove(&old) {
                let rest = old
                    .strip_prefix(from)
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let new = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
                nodes.insert(new, node);
            }
        }
        Ok(())
    }

    fn write_now(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        self.failing()?;
        let mut nodes = self.nodes();
        let node = nodes.get_mut(path).ok_or(Error::NotFound)?;
        writable(node)?;
        let end = offset as usize + data.len();
        if node.data.len() < end {
            node.data.resize(end, 0);
        }
        node.data[offset as usize..end].copy_from_slice(data);
        node.attr.size = node.data.len() as u64;
        node.attr.mtime = SystemTime::now();
        Ok(())
    }

    fn upload_now(&self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()> {
        self.failing()?;
        let mut data = Vec::new();
        src.read_to_end(&mut data)?;
        let mut nodes = self.nodes();
        Self::check_parent(&nodes, path)?;
        let node = nodes.entry(path.to_path_buf()).or_insert(Node {
            attr: attr(Kind::File, 0o644),
            data: Vec::new(),
            link: None,
        });
        if !append {
            node.data.clear();
        }
        node.data.extend_from_slice(&data);
        node.attr.size = node.data.len() as u64;
        Ok(())
    }

    fn create_now(&self, path: &Path, mode: u32, exclusive: bool) -> Result<()> {
        if self.fail_creates.load(Ordering::SeqCst) {
            return Err(Error::Failure("create refused".into()));
        }
        let mut nodes = self.nodes();
        Self::check_parent(&nodes, path)?;
        if nodes.contains_key(path) && exclusive {
            return Err(Error::Exists);
        }
        nodes.insert(
            path.to_path_buf(),
            Node {
                attr: attr(Kind::File, (mode & 0o7777) as u16),
                data: Vec::new(),
                link: None,
            },
        );
        Ok(())
    }

    fn failing(&self) -> Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(Error::NoSpace);
        }
        if self.fail_writes.load(Ordering::SeqCst) {
            Err(Error::Transport("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

impl Remote for Memory {
    fn caps(&self) -> Caps {
        self.caps
    }

    fn same_version(&self, _path: &Path, cached: &Attr, fresh: &Attr) -> bool {
        cached.version() == fresh.version()
            || (self.coarse_listings.load(Ordering::SeqCst)
                && cached.size == fresh.size
                && cached.mtime == to_the_minute(fresh.mtime))
    }

    fn stat(&self, path: &Path) -> Result<Attr> {
        self.log("stat", path, format_args!(""));
        self.stats.fetch_add(1, Ordering::SeqCst);
        self.nodes()
            .get(path)
            .map(|n| shown(&n.attr))
            .ok_or(Error::NotFound)
    }

    /// With coarse listings, a file's listed time is not a stat's.
    fn listed_as_stat(&self, _path: &Path, listed: &Attr) -> bool {
        listed.kind != Kind::File || !self.coarse_listings.load(Ordering::SeqCst)
    }

    fn list(&self, path: &Path) -> Result<Vec<DirEntry>> {
        self.log("list", path, format_args!(""));
        self.lists.fetch_add(1, Ordering::SeqCst);
        if self.fail_lists.load(Ordering::SeqCst) {
            return Err(Error::PermissionDenied);
        }
        let nodes = self.nodes();
        match nodes.get(path) {
            Some(n) if n.attr.kind == Kind::Dir => {}
            Some(_) => return Err(Error::NotADirectory),
            None => return Err(Error::NotFound),
        }
        let coarse = self.coarse_listings.load(Ordering::SeqCst);
        Ok(Self::children(&nodes, path)
            .filter_map(|p| {
                let mut attr = shown(&nodes.get(p)?.attr);
                if coarse {
                    attr.mtime = to_the_minute(attr.mtime);
                    attr.atime = attr.mtime;
                    attr.ctime = attr.mtime;
                }
                Some(DirEntry {
                    name: p.file_name()?.to_os_string(),
                    attr,
                })
            })
            .collect())
    }

    fn read(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.log("read", path, format_args!(" {offset}+{len}"));
        self.reads.fetch_add(1, Ordering::SeqCst);
        let nodes = self.nodes();
        let node = nodes.get(path).ok_or(Error::NotFound)?;
        let start = (offset as usize).min(node.data.len());
        let end = (start + len).min(node.data.len());
        Ok(node.data[start..end].to_vec())
    }

    fn write(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        self.log("write", path, format_args!(" {offset}+{}", data.len()));
        self.write_now(path, offset, data)
    }

    fn create_kept(
        &self,
        writer: WriterId,
        path: &Path,
        mode: u32,
        exclusive: bool,
    ) -> Result<Option<Attr>> {
        self.log("create_kept", path, format_args!(" {mode:o}"));
        self.create_now(path, mode, exclusive)?;
        crate::sync::lock(&self.kept).insert(writer);
        if !self.created_attrs.load(Ordering::SeqCst) {
            return Ok(None);
        }
        Ok(self.nodes().get(path).map(|n| n.attr.clone()))
    }

    fn write_kept(&self, writer: WriterId, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        let opened = crate::sync::lock(&self.kept).insert(writer);
        let open = if opened { " (open)" } else { "" };
        self.log(
            "write_kept",
            path,
            format_args!(" {offset}+{}{open}", data.len()),
        );
        self.write_now(path, offset, data)
    }

    fn close_writer(&self, writer: WriterId) -> Result<()> {
        if !crate::sync::lock(&self.kept).remove(&writer) {
            return Ok(());
        }
        crate::sync::lock(&self.calls).push("close_writer".into());
        if self.fail_closes.load(Ordering::SeqCst) {
            return Err(Error::Failure("close refused".into()));
        }
        Ok(())
    }

    fn upload(&self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()> {
        self.log(
            "upload",
            path,
            format_args!("{}", if append { " append" } else { "" }),
        );
        self.upload_now(path, src, append)
    }

    fn create(&self, path: &Path, mode: u32, exclusive: bool) -> Result<()> {
        self.log("create", path, format_args!(" {mode:o}"));
        self.create_now(path, mode, exclusive)
    }

    fn setattr(&self, path: &Path, change: SetAttr) -> Result<()> {
        self.log("setattr", path, format_args!(" {change:?}"));
        let mut nodes = self.nodes();
        let node = nodes.get_mut(path).ok_or(Error::NotFound)?;
        match change {
            SetAttr::Mode(m) => node.attr.perm = (m & 0o7777) as u16,
            SetAttr::Owner(u, g) => {
                node.attr.uid = u.unwrap_or(node.attr.uid);
                node.attr.gid = g.unwrap_or(node.attr.gid);
            }
            // As FTP, which can only append: no shrinking in place.
            SetAttr::Size(s) if !self.caps.random_write && s < node.attr.size => {
                return Err(Error::Unsupported("shrinking a file".into()));
            }
            SetAttr::Size(s) => {
                writable(node)?;
                node.data.resize(s as usize, 0);
                node.attr.size = s;
            }
            SetAttr::Times { atime, mtime } => {
                // What SFTP v3 can carry, as the real servers.
                self.caps.times.secs(atime)?;
                self.caps.times.secs(mtime)?;
                node.attr.atime = atime;
                node.attr.mtime = mtime;
            }
        }
        Ok(())
    }

    fn mkdir(&self, path: &Path, mode: u32) -> Result<()> {
        self.log("mkdir", path, format_args!(""));
        let mut nodes = self.nodes();
        Self::check_parent(&nodes, path)?;
        if nodes.contains_key(path) {
            return Err(Error::Exists);
        }
        nodes.insert(
            path.to_path_buf(),
            Node {
                attr: attr(Kind::Dir, (mode & 0o7777) as u16),
                data: Vec::new(),
                link: None,
            },
        );
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> Result<()> {
        let mut nodes = self.nodes();
        match nodes.get(path) {
            Some(n) if n.attr.kind != Kind::Dir => return Err(Error::NotADirectory),
            None => return Err(Error::NotFound),
            _ => {}
        }
        if Self::children(&nodes, path).next().is_some() {
            return Err(Error::NotEmpty);
        }
        nodes.remove(path);
        Ok(())
    }

    fn unlink(&self, path: &Path) -> Result<()> {
        self.log("unlink", path, format_args!(""));
        let mut nodes = self.nodes();
        match nodes.get(path) {
            Some(n) if n.attr.kind == Kind::Dir => Err(Error::IsADirectory),
            Some(_) => {
                nodes.remove(path);
                Ok(())
            }
            None => Err(Error::NotFound),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.log("rename", from, format_args!(" {}", to.display()));
        self.failing()?;
        for p in [from, to] {
            assert!(
                !p.as_os_str().as_encoded_bytes().contains(&0),
                "a name with NUL reached the server: {p:?}"
            );
        }
        let fault = crate::sync::lock(&self.rename_faults)
            .pop_front()
            .unwrap_or(Fault::None);
        if fault == Fault::Fail {
            return Err(Error::Transport("injected failure".into()));
        }
        self.rename_now(from, to)?;
        if fault == Fault::LoseReply {
            return Err(Error::Transport("injected lost reply".into()));
        }
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        let mut nodes = self.nodes();
        Self::check_parent(&nodes, link)?;
        if nodes.contains_key(link) {
            return Err(Error::Exists);
        }
        nodes.insert(
            link.to_path_buf(),
            Node {
                attr: attr(Kind::Symlink, 0o777),
                data: Vec::new(),
                link: Some(target.to_path_buf()),
            },
        );
        Ok(())
    }

    /// The new name gets a copy of the node: enough for tests of names and
    /// caches (a write through one name does not show in the other).
    fn link(&self, from: &Path, to: &Path) -> Result<()> {
        let mut nodes = self.nodes();
        Self::check_parent(&nodes, to)?;
        if nodes.contains_key(to) {
            return Err(Error::Exists);
        }
        let node = nodes.get(from).ok_or(Error::NotFound)?.clone();
        if node.attr.kind == Kind::Dir {
            return Err(Error::NotPermitted);
        }
        nodes.insert(to.to_path_buf(), node);
        Ok(())
    }

    fn readlink(&self, path: &Path) -> Result<PathBuf> {
        self.nodes()
            .get(path)
            .and_then(|n| n.link.clone())
            .ok_or(Error::Invalid)
    }

    fn statfs(&self, _path: &Path) -> Result<StatFs> {
        Ok(StatFs {
            bsize: 4096,
            frsize: 4096,
            blocks: 1000,
            bfree: 500,
            bavail: 500,
            files: 100,
            ffree: 50,
            namelen: 255,
        })
    }

    fn fsync(&self, _path: &Path) -> Result<()> {
        self.log("fsync", _path, format_args!(""));
        Ok(())
    }

    fn copy_range(
        &self,
        from: &Path,
        from_off: u64,
        to: &Path,
        to_off: u64,
        len: u64,
    ) -> Result<u64> {
        if self.no_server_copy.load(Ordering::SeqCst) {
            return Err(Error::Unsupported("copy-data".into()));
        }
        self.failing()?;
        assert_ne!(from, to, "a copy of a file onto itself reached the server");
        let mut nodes = self.nodes();
        let data = nodes.get(from).ok_or(Error::NotFound)?.data.clone();
        let node = nodes.get_mut(to).ok_or(Error::NotFound)?;
        writable(node)?;
        let start = (from_off as usize).min(data.len());
        let end = (start + len as usize).min(data.len());
        let at = to_off as usize;
        if node.data.len() < at + (end - start) {
            node.data.resize(at + (end - start), 0);
        }
        node.data[at..at + (end - start)].copy_from_slice(&data[start..end]);
        node.attr.size = node.data.len() as u64;
        node.attr.mtime = SystemTime::now();
        self.copies.fetch_add(1, Ordering::SeqCst);
        Ok((end - start) as u64)
    }

    fn id_names(&self, uids: &[u32], gids: &[u32]) -> Result<IdNames> {
        self.id_name_calls.fetch_add(1, Ordering::SeqCst);
        self.ids_asked
            .fetch_add(uids.len() + gids.len(), Ordering::SeqCst);
        let table = crate::sync::lock(&self.id_names);
        let Some((users, groups)) = table.as_ref() else {
            return Err(Error::Unsupported("users-groups-by-id".into()));
        };
        let names = |ids: &[u32], map: &HashMap<u32, OsString>| {
            ids.iter()
                .map(|i| map.get(i).cloned().unwrap_or_default())
                .collect()
        };
        Ok(IdNames {
            users: names(uids, users),
            groups: names(gids, groups),
        })
    }
}
