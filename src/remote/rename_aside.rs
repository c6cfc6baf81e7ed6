//! Rename over an existing file where the server cannot replace it in one
//! step (SFTP without posix-rename answers `Exists`): the old file is moved
//! aside under a hidden private name, the new one takes its name, and the
//! aside is removed — as sshfs's rename workaround does; for a moment the
//! name is missing. This is how `Remote::rename` keeps its promise to
//! replace the target on such a server.
//!
//! It only sequences plain renames, stats and unlinks the pool gives it;
//! it must not know about a protocol, nor about open files or caches.

use std::path::Path;
use std::time::Duration;

use super::private_names::{self, HIDDEN_PREFIX};
use super::{Error, Remote, Result};

/// Attempts of each rename step, and of putting the old file back. After
/// a broken connection the pool makes the next attempt on a fresh one.
const RENAME_TRIES: u32 = 3;
const RESTORE_TRIES: u32 = 5;

/// The pause before attempt `n` (from 1) of a step.
fn pause(n: u32) {
    if !cfg!(test) {
        std::thread::sleep(Duration::from_millis(200 * u64::from(n)));
    }
}

/// What a rename over a file is made of.
pub struct RenameAside<'a> {
    /// For `stat` and `unlink`; its own `rename` is not used (that is
    /// what this serves).
    pub remote: &'a dyn Remote,
    /// One plain rename on the server: `Exists` where it cannot replace
    /// the target.
    pub rename_once: &'a dyn Fn(&Path, &Path) -> Result<()>,
    /// The mount the aside names are made for.
    pub mount_id: &'a str,
}

impl RenameAside<'_> {
    /// Renames `from` over `to`. A server that cannot replace a file in one
    /// step answers `Exists`: `to` is then moved aside first and removed
    /// after. Each step is checked: an error may come after the server did
    /// it (its reply was lost with the connection), so the names are looked
    /// at before a step is tried again. If the new file cannot take the
    /// name, the old one is put back, checked and retried the same way,
    /// before the error is returned; if even that fails, the error is
    /// `KeptAside`, naming where the old file is, and the caller keeps the
    /// new one too.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        match self.rename_checked(from, to) {
            Ok(()) => return Ok(()),
            Err(Error::Exists) => {}
            Err(e) => return Err(e),
        }
        let aside = private_names::private_sibling_of(self.mount_id, to, HIDDEN_PREFIX);
        let step = self
            .rename_checked(to, &aside)
            .and_then(|()| self.rename_checked(from, to));
        match step {
            Ok(()) => {
                if !private_names::remove(self.remote, &aside) {
                    tracing::warn!("cannot remove {}", aside.display());
                }
                Ok(())
            }
            Err(e) if self.restore(&aside, to) => Err(e),
            Err(e) => {
                tracing::error!(
                    "cannot put {} back: the old file is under {}, the new one under {}",
                    to.display(),
                    aside.display(),
                    from.display()
                );
                Err(Error::KeptAside {
                    error: Box::new(e),
                    aside,
                })
            }
        }
    }

    /// Renames `from` to `to`, checked and retried (see `rename`).
    /// `Exists` (a server that cannot rename over a file) is returned as
    /// it is.
    fn rename_checked(&self, from: &Path, to: &Path) -> Result<()> {
        let mut attempt = 0;
        loop {
            let e = match (self.rename_once)(from, to) {
                Ok(()) => return Ok(()),
                // The server answered: it did not do it.
                Err(e) if !e.breaks_connection() => return Err(e),
                Err(e) => e,
            };
            if self.moved(from, to) {
                return Ok(());
            }
            attempt += 1;
            if attempt == RENAME_TRIES {
                return Err(e);
            }
            pause(attempt);
        }
    }

    /// Whether `from` has been renamed to `to` as far as the server shows:
    /// `from` is gone and `to` is there.
    fn moved(&self, from: &Path, to: &Path) -> bool {
        matches!(self.remote.stat(from), Err(Error::NotFound)) && self.remote.stat(to).is_ok()
    }

    /// Puts the old file back from `aside` to `to` after a failed step of
    /// `rename`. True when the old file is at `to` again (or never left).
    fn restore(&self, aside: &Path, to: &Path) -> bool {
        for attempt in 0..RESTORE_TRIES {
            if attempt > 0 {
                pause(attempt);
            }
            match self.remote.stat(aside) {
                // Never moved aside, or put back by an attempt whose reply
                // was lost.
                Err(Error::NotFound) => return self.remote.stat(to).is_ok(),
                Ok(_) => {}
                Err(_) => continue,
            }
            if (self.rename_once)(aside, to).is_ok() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::Ordering;

    use crate::remote::memory::{Fault, Memory};
    use crate::remote::private_names::tests::name_of;
    use crate::remote::private_names::{mount_id, owner_of, Owner};

    /// A rename over `to` on `mem` standing for one connection, as the
    /// pool makes it.
    fn rename_over(mem: &Memory, from: &Path, to: &Path) -> Result<()> {
        RenameAside {
            remote: mem,
            rename_once: &|from, to| mem.rename(from, to),
            mount_id: mount_id(),
        }
        .rename(from, to)
    }

    /// Every way the renames of a rename over a file can fail or lose their reply
    /// (on a server that cannot rename over a file): the target holds the
    /// old or the new bytes, never nothing, unless the link goes down for
    /// good before the old file can go back, and then both are kept;
    /// success means the new bytes.
    #[test]
    fn rename_over_never_leaves_the_target_empty() {
        use Fault::{Fail, LoseReply};
        let faults = [Fault::None, Fail, LoseReply];
        let mut scripts = vec![vec![]];
        for len in 1..=4 {
            let mut next = Vec::new();
            for s in scripts.iter().filter(|s| s.len() == len - 1) {
                for f in faults {
                    let mut s: Vec<Fault> = s.clone();
                    s.push(f);
                    next.push(s);
                }
            }
            scripts.extend(next);
        }
        // Then the link goes down for good after the k-th rename.
        let mut cases: Vec<(Vec<Fault>, Option<usize>)> =
            scripts.into_iter().map(|s| (s, None)).collect();
        for k in 1..=3 {
            cases.push((vec![], Some(k)));
            cases.push((vec![LoseReply; k], Some(k)));
        }
        for (script, down_after) in cases {
            let what = format!("{script:?}, down after {down_after:?}");
            let mem = Memory::new(true);
            mem.no_rename_over.store(true, Ordering::SeqCst);
            mem.put_file("/f", b"old");
            mem.put_file("/new", b"new");
            let mut script: Vec<Fault> = script;
            if let Some(k) = down_after {
                script.resize(k, Fault::None);
                script.extend([Fail; 40]);
            }
            *crate::sync::lock(&mem.rename_faults) = script.into_iter().collect();
            let result = rename_over(&mem, Path::new("/new"), Path::new("/f"));
            if let Err(Error::KeptAside { aside, .. }) = &result {
                // Only with the link down for good before the old file
                // could go back: both are kept.
                assert!(down_after.is_some(), "{what}: old file left aside");
                let aside = aside.to_string_lossy().into_owned();
                assert_eq!(mem.content(&aside).as_deref(), Some(&b"old"[..]), "{what}");
                assert_eq!(mem.content("/new").as_deref(), Some(&b"new"[..]), "{what}");
                continue;
            }
            let at_target = mem.content("/f");
            assert!(
                matches!(at_target.as_deref(), Some(b"old") | Some(b"new")),
                "{what}: target holds {at_target:?}"
            );
            match &result {
                Ok(()) => {
                    assert_eq!(at_target.as_deref(), Some(&b"new"[..]), "{what}");
                    assert_eq!(mem.names().len(), 2, "{what}: {:?}", mem.names());
                }
                Err(_) => {
                    if at_target.as_deref() == Some(b"old") {
                        assert_eq!(mem.content("/new").as_deref(), Some(&b"new"[..]), "{what}");
                    }
                }
            }
        }
    }

    /// With the link down for good between moving the old file aside and
    /// putting it back, nothing is removed: the old bytes stay under the
    /// aside name the error gives, the new ones under theirs.
    #[test]
    fn rename_over_keeps_both_files_when_the_old_cannot_go_back() {
        let mem = Memory::new(true);
        mem.no_rename_over.store(true, Ordering::SeqCst);
        mem.put_file("/f", b"old");
        mem.put_file("/new", b"new");
        let mut script = vec![Fault::None, Fault::None];
        script.extend([Fault::Fail; 40]);
        *crate::sync::lock(&mem.rename_faults) = script.into_iter().collect();
        let result = rename_over(&mem, Path::new("/new"), Path::new("/f"));
        let Err(Error::KeptAside { aside, .. }) = result else {
            panic!("expected the old file aside, got {result:?}");
        };
        assert_eq!(owner_of(&name_of(&aside)), Some(Owner::Ours));
        let aside = aside.to_string_lossy().into_owned();
        assert_eq!(mem.content(&aside).as_deref(), Some(&b"old"[..]));
        assert_eq!(mem.content("/new").as_deref(), Some(&b"new"[..]));
    }
}
