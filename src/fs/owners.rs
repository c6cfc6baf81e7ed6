//! `-o idmap=names`: owners and groups matched by name between the server
//! and this machine. The server tells the name of each id the mount meets
//! (`Remote::id_names`, asked in batches, once per id for the mount's
//! life); the local account database gives that name's local id. An id
//! the server has no name for, or whose name is no local account, is shown
//! as it is.
//!
//! Back (chown, chgrp): the server cannot look a name up, so a local id
//! goes back to the server id learned for it; one not learned goes as the
//! same number if that number shows as itself, and is refused otherwise.
//!
//! Showing attributes only reads what was learned: it never waits on the
//! network (the dispatcher shows them). Learning happens where attributes
//! come from the server (a stat, a listing), on the workers.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::{Fs, Result};
use crate::remote::{self, Attr, IdNames};
use crate::sync::lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    User,
    Group,
}

/// What is known of one kind of id.
#[derive(Default)]
struct Table {
    /// Server id → the local id shown for it.
    shown: HashMap<u32, u32>,
    /// Server ids asked for right now (asked once at a time).
    asking: HashSet<u32>,
    /// Local id → the server id whose name is its name.
    remote_of: HashMap<u32, u32>,
}

impl Table {
    fn shown(&self, id: u32) -> u32 {
        self.shown.get(&id).copied().unwrap_or(id)
    }

    /// Those of `ids` neither known nor being asked for; they are asked
    /// for from now on.
    fn unasked(&mut self, ids: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let mut new = Vec::new();
        for id in ids {
            if !self.shown.contains_key(&id) && self.asking.insert(id) {
                new.push(id);
            }
        }
        new
    }

    fn learn(&mut self, which: Which, ids: &[u32], names: &[std::ffi::OsString]) {
        for (&id, name) in ids.iter().zip(names) {
            self.asking.remove(&id);
            let local = if name.is_empty() {
                None
            } else {
                local_id(which, name)
            };
            match local {
                Some(local) => {
                    self.shown.insert(id, local);
                    self.remote_of.insert(local, id);
                }
                None => {
                    self.shown.insert(id, id);
                }
            }
        }
    }
}

/// The owners' names as learned, when `-o idmap=names` is on.
pub(super) struct Owners {
    on: AtomicBool,
    users: Mutex<Table>,
    groups: Mutex<Table>,
}

impl Owners {
    pub(super) fn new(on: bool) -> Owners {
        Owners {
            on: AtomicBool::new(on),
            users: Mutex::default(),
            groups: Mutex::default(),
        }
    }

    pub(super) fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn table(&self, which: Which) -> &Mutex<Table> {
        match which {
            Which::User => &self.users,
            Which::Group => &self.groups,
        }
    }

    /// The local ids shown for the server's `uid` and `gid`. Never waits
    /// on the network.
    pub(super) fn shown(&self, uid: u32, gid: u32) -> (u32, u32) {
        if !self.on() {
            return (uid, gid);
        }
        (lock(&self.users).shown(uid), lock(&self.groups).shown(gid))
    }
}

impl Fs {
    /// At mount time, with `-o idmap=names`: learns the names of the root's
    /// owner and group, which tells at once (one warning) whether the
    /// server can name owners at all; if not, ids are shown as they are.
    pub fn start_owner_names(&self) {
        if self.owners.on() {
            if let Err(e) = self.stat_fresh(&self.cfg.root) {
                tracing::debug!("idmap=names: cannot look at the root: {e}");
            }
        }
    }

    /// Learns the names of the owners and groups in `attrs` not known yet,
    /// in one request.
    pub(super) fn learn_owners<'a>(&self, attrs: impl IntoIterator<Item = &'a Attr>) {
        if !self.owners.on() {
            return;
        }
        let (uids, gids): (Vec<u32>, Vec<u32>) = attrs.into_iter().map(|a| (a.uid, a.gid)).unzip();
        let uids = lock(&self.owners.users).unasked(uids);
        let gids = lock(&self.owners.groups).unasked(gids);
        self.ask_names(&uids, &gids);
    }

    /// Asks the server for the names of `uids` and `gids` (marked as
    /// being asked for) and records them.
    fn ask_names(&self, uids: &[u32], gids: &[u32]) {
        if uids.is_empty() && gids.is_empty() {
            return;
        }
        match self.remote.id_names(uids, gids) {
            Ok(IdNames { users, groups }) => {
                lock(&self.owners.users).learn(Which::User, uids, &users);
                lock(&self.owners.groups).learn(Which::Group, gids, &groups);
            }
            Err(remote::Error::Unsupported(why)) => {
                if self.owners.on.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "-o idmap=names: the server cannot tell owners' names ({why}); \
                         owners are shown by the server's ids"
                    );
                }
            }
            Err(e) => {
                tracing::debug!("cannot learn owners' names now: {e}");
                let forget = |table: &Mutex<Table>, ids: &[u32]| {
                    let mut table = lock(table);
                    ids.iter().for_each(|id| {
                        table.asking.remove(id);
                    });
                };
                forget(&self.owners.users, uids);
                forget(&self.owners.groups, gids);
            }
        }
    }

    /// The server's ids for the local `uid` and `gid` of a chown. With
    /// `-o idmap=names`: the ids whose names are theirs, as learned; a
    /// local id not learned is sent as it is if the server's id of that
    /// number shows as itself, and refused (`Invalid`) otherwise: the file
    /// would be given to someone else.
    pub(super) fn remote_owner(
        &self,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(Option<u32>, Option<u32>)> {
        if !self.owners.on() {
            return Ok((uid, gid));
        }
        let uid = uid.map(|u| self.remote_id(Which::User, u)).transpose()?;
        let gid = gid.map(|g| self.remote_id(Which::Group, g)).transpose()?;
        Ok((uid, gid))
    }

    fn remote_id(&self, which: Which, local: u32) -> Result<u32> {
        let table = self.owners.table(which);
        if let Some(&id) = lock(table).remote_of.get(&local) {
            return Ok(id);
        }
        let ask = lock(table).unasked([local]);
        match which {
            Which::User => self.ask_names(&ask, &[]),
            Which::Group => self.ask_names(&[], &ask),
        }
        let table = lock(table);
        if let Some(&id) = table.remote_of.get(&local) {
            return Ok(id);
        }
        if !self.owners.on() || table.shown(local) == local {
            return Ok(local);
        }
        tracing::debug!("no server id is known for the local {which:?} id {local}");
        Err(remote::Error::Invalid.into())
    }
}

/// The local id of the user or group `name`, from the account database.
fn local_id(which: Which, name: &OsStr) -> Option<u32> {
    let name = CString::new(name.as_bytes()).ok()?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: the *_r calls write only into `entry` and `buf` (whose
        // length is passed) and set `found` to `&entry` or null; the id is
        // read before either goes away.
        let (rc, id) = unsafe {
            match which {
                Which::User => {
                    let mut entry: libc::passwd = std::mem::zeroed();
                    let mut found = std::ptr::null_mut();
                    let rc = libc::getpwnam_r(
                        name.as_ptr(),
                        &mut entry,
                        buf.as_mut_ptr(),
                        buf.len(),
                        &mut found,
                    );
                    (rc, (!found.is_null()).then_some(entry.pw_uid))
                }
                Which::Group => {
                    let mut entry: libc::group = std::mem::zeroed();
                    let mut found = std::ptr::null_mut();
                    let rc = libc::getgrnam_r(
                        name.as_ptr(),
                        &mut entry,
                        buf.as_mut_ptr(),
                        buf.len(),
                        &mut found,
                    );
                    (rc, (!found.is_null()).then_some(entry.gr_gid))
                }
            }
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return if rc == 0 { id } else { None };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::{OsStr, OsString};
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use super::super::{inodes, FsConfig, SetAttrs};
    use super::*;
    use crate::errno::ToErrno;
    use crate::fs::tests::test_config;
    use crate::remote::memory::Memory;

    /// The server's names: (id, name) of users, and of groups.
    type Names<'a> = (&'a [(u32, &'a str)], &'a [(u32, &'a str)]);

    fn setup(names: Option<Names>) -> (Arc<Memory>, Fs) {
        let mem = Arc::new(Memory::new(true));
        let table = |pairs: &[(u32, &str)]| -> HashMap<u32, OsString> {
            pairs.iter().map(|(i, n)| (*i, OsString::from(n))).collect()
        };
        *lock(&mem.id_names) = names.map(|(u, g)| (table(u), table(g)));
        let cfg = FsConfig {
            owners_by_name: true,
            ..test_config(&std::env::temp_dir())
        };
        (mem.clone(), Fs::new(mem, cfg))
    }

    fn put_owned(mem: &Memory, path: &str, uid: u32, gid: u32) {
        mem.put_file(path, b"x");
        let mut nodes = lock(&mem.nodes);
        let node = nodes.get_mut(Path::new(path)).expect("node");
        node.attr.uid = uid;
        node.attr.gid = gid;
    }

    fn ids(fs: &Fs, name: &str) -> (u32, u32) {
        let e = fs.lookup(inodes::ROOT, OsStr::new(name)).expect("lookup");
        (e.attr.uid, e.attr.gid)
    }

    /// An account every system has besides root: (name, uid, gid).
    fn daemon() -> (&'static str, u32, u32) {
        let uid = local_id(Which::User, OsStr::new("daemon")).expect("a daemon user");
        let gid = local_id(Which::Group, OsStr::new("daemon")).expect("a daemon group");
        ("daemon", uid, gid)
    }

    #[test]
    fn owners_show_as_the_local_accounts_of_their_names() {
        let (daemon, duid, dgid) = daemon();
        let users: &[(u32, &str)] = &[(5000, daemon), (7000, "no-such-account-here")];
        let groups: &[(u32, &str)] = &[(5001, daemon)];
        let (mem, fs) = setup(Some((users, groups)));
        put_owned(&mem, "/a", 5000, 5001);
        put_owned(&mem, "/b", 6000, 6001); // no name on the server
        put_owned(&mem, "/c", 7000, 5001); // a name with no local account
        assert_eq!(ids(&fs, "a"), (duid, dgid));
        assert_eq!(ids(&fs, "b"), (6000, 6001));
        assert_eq!(ids(&fs, "c"), (7000, dgid));
    }

    #[test]
    fn a_listing_asks_once_for_all_its_new_owners_and_then_never_again() {
        let (daemon, duid, _) = daemon();
        let (mem, fs) = setup(Some((&[(5000, daemon)], &[])));
        for i in 0..50 {
            put_owned(&mem, &format!("/f{i}"), 5000 + i % 3, 100);
        }
        let opened = fs.opendir(inodes::ROOT).expect("opendir");
        let items = fs.readdir(opened.fh).expect("readdir");
        assert!(items.iter().filter(|i| i.attr.uid == duid).count() >= 16);
        assert_eq!(mem.id_name_calls.load(Ordering::SeqCst), 1);
        // Three owners and one group, each asked once.
        assert_eq!(mem.ids_asked.load(Ordering::SeqCst), 3 + 1);
        fs.releasedir(opened.fh);
        fs.lookup(inodes::ROOT, OsStr::new("f1")).expect("lookup");
        assert_eq!(mem.id_name_calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn chown_by_local_id_sends_the_server_id_of_that_name() {
        let (daemon, duid, dgid) = daemon();
        let (mem, fs) = setup(Some((&[(5000, daemon), (0, daemon)], &[(5001, daemon)])));
        put_owned(&mem, "/a", 5000, 5001);
        put_owned(&mem, "/b", 6000, 6001);
        let b = fs.lookup(inodes::ROOT, OsStr::new("b")).expect("lookup");
        ids(&fs, "a");
        let chown = |uid, gid| SetAttrs {
            uid,
            gid,
            ..Default::default()
        };
        let shown = fs
            .setattr(b.ino, chown(Some(duid), Some(dgid)))
            .expect("chown");
        assert_eq!((shown.uid, shown.gid), (duid, dgid));
        let server = |p: &str| {
            lock(&mem.nodes)
                .get(Path::new(p))
                .map(|n| (n.attr.uid, n.attr.gid))
        };
        assert_eq!(
            server("/b"),
            Some((5000, 5001)),
            "the server's ids of the names"
        );
        // A number without a name goes as it is...
        fs.setattr(b.ino, chown(Some(6100), None)).expect("chown");
        assert_eq!(server("/b"), Some((6100, 5001)));
        // ... but not one the server names as another account: root's 0
        // is the server's daemon, which shows as the local daemon.
        let e = fs
            .setattr(b.ino, chown(Some(0), None))
            .expect_err("ambiguous");
        assert_eq!(e.to_errno(), libc::EINVAL);
        assert_eq!(server("/b"), Some((6100, 5001)), "unchanged");
    }

    #[test]
    fn a_server_that_cannot_name_owners_shows_its_ids() {
        let (mem, fs) = setup(None);
        put_owned(&mem, "/a", 5000, 5001);
        fs.start_owner_names();
        assert!(!fs.owners.on(), "off after the first refusal");
        assert_eq!(ids(&fs, "a"), (5000, 5001));
        assert_eq!(mem.id_name_calls.load(Ordering::SeqCst), 1, "asked once");
    }
}
