//! The contract between the pool and a protocol: `Connection` (one link to
//! the server, used by one thread at a time), `Connector` (makes them and
//! tells what the protocol can do) and the `Generation` the pool hands to
//! reads. Only the traits and that type live here: how connections are
//! shared, retried and retired is the pool's business (`pool/mod.rs`), and
//! no protocol's details belong in this file.

use std::io;
use std::path::{Path, PathBuf};

use crate::remote::{Attr, Caps, DirEntry, Error, IdNames, Result, SetAttr, StatFs};

/// What changed through the mount, for connections that cache handles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Changes to which file a path names (create, rename, unlink) and
    /// resizes that replace the content (`Caps::resize_rewrites`): a
    /// cached handle or stream may name another file, so it is opened
    /// anew. A handle otherwise reads and writes the file's current
    /// content, whoever changed it...
    pub names: u64,
    /// ... except what it fetched ahead: after writes (other resizes
    /// included), a read seeks even to where the handle already is, which
    /// drops that.
    pub writes: u64,
}

/// One connection to the server, used by one thread at a time. The methods
/// mirror `Remote`; the generations tell a connection when a cached handle
/// or stream may be stale.
pub trait Connection: Send + 'static {
    fn stat(&mut self, path: &Path) -> Result<Attr>;
    /// As `Remote::stat_again`.
    fn stat_again(&mut self, path: &Path, known: &Attr) -> Result<Attr> {
        let _ = known;
        self.stat(path)
    }
    fn list(&mut self, path: &Path) -> Result<Vec<DirEntry>>;
    /// As `Remote::stat_listed`, for an entry `Connector::listed_as_stat`
    /// said no to.
    fn stat_listed(&mut self, path: &Path, listed: &Attr) -> Result<Attr> {
        let _ = listed;
        self.stat(path)
    }
    fn read(
        &mut self,
        path: &Path,
        offset: u64,
        len: usize,
        generation: Generation,
    ) -> Result<Vec<u8>>;
    /// Whether a read of `path` at `offset` would continue what this
    /// connection keeps open (a download positioned there, or close before
    /// it), so that the pool hands the read this connection.
    fn continues_read(&self, path: &Path, offset: u64) -> bool {
        let _ = (path, offset);
        false
    }
    /// Whether this connection keeps a read open for its reader's next
    /// block: other work gets another idle connection first.
    fn holds_read(&self) -> bool {
        false
    }
    fn write(&mut self, path: &Path, offset: u64, data: &[u8]) -> Result<()>;
    fn upload(&mut self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()>;
    fn create(&mut self, path: &Path, mode: u32, exclusive: bool) -> Result<()>;
    /// As `create`; true when the connection keeps the file's handle open
    /// for the writes that follow (`write_kept`), until `close_kept`; and
    /// the new file's attributes if they came with the create.
    fn create_kept(
        &mut self,
        path: &Path,
        mode: u32,
        exclusive: bool,
    ) -> Result<(bool, Option<Attr>)> {
        self.create(path, mode, exclusive).map(|()| (false, None))
    }
    /// As `write`; true when the connection keeps the handle open (it
    /// holds at most one, for `path`, while the pool parks it for one
    /// writer).
    fn write_kept(&mut self, path: &Path, offset: u64, data: &[u8]) -> Result<bool> {
        self.write(path, offset, data).map(|()| false)
    }
    /// Closes the kept handle, if any, and reports its close status.
    fn close_kept(&mut self) -> Result<()> {
        Ok(())
    }
    fn setattr(&mut self, path: &Path, change: SetAttr) -> Result<()>;
    fn mkdir(&mut self, path: &Path, mode: u32) -> Result<()>;
    fn rmdir(&mut self, path: &Path) -> Result<()>;
    fn unlink(&mut self, path: &Path) -> Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> Result<()>;
    fn symlink(&mut self, target: &Path, link: &Path) -> Result<()>;
    fn readlink(&mut self, path: &Path) -> Result<PathBuf>;
    /// A hard link; `NotPermitted` unless the protocol can make one.
    fn link(&mut self, from: &Path, to: &Path) -> Result<()> {
        let _ = (from, to);
        Err(Error::NotPermitted)
    }
    fn statfs(&mut self, path: &Path) -> Result<StatFs>;
    fn fsync(&mut self, path: &Path) -> Result<()>;
    /// Cheap liveness probe for idle connections (SSH keepalive, FTP NOOP).
    fn keepalive(&mut self) -> Result<()>;
    /// As `Remote::copy_range`.
    fn copy_range(
        &mut self,
        from: &Path,
        from_off: u64,
        to: &Path,
        to_off: u64,
        len: u64,
    ) -> Result<u64> {
        let _ = (from, from_off, to, to_off, len);
        Err(Error::Unsupported(
            "the protocol cannot copy on the server".into(),
        ))
    }
    /// As `Remote::id_names`.
    fn id_names(&mut self, uids: &[u32], gids: &[u32]) -> Result<IdNames> {
        let _ = (uids, gids);
        Err(Error::Unsupported(
            "the protocol cannot ask for them".into(),
        ))
    }
}

/// Makes new connections for the pool.
pub trait Connector: Send + Sync + 'static {
    type Conn: Connection;
    fn connect(&self) -> Result<Self::Conn>;
    fn caps(&self) -> Caps;
    /// As `Remote::listed_as_stat`.
    fn listed_as_stat(&self, path: &Path, listed: &Attr) -> bool {
        let _ = (path, listed);
        true
    }
    /// As `Remote::reads_in_one_stream`.
    fn reads_in_one_stream(&self) -> bool {
        false
    }
    /// As `Remote::same_version`.
    fn same_version(&self, path: &Path, cached: &Attr, fresh: &Attr) -> bool {
        let _ = path;
        cached.version() == fresh.version()
    }
}
