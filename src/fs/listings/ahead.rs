//! Listing ahead: when a directory is shown, its first subdirectories
//! and the siblings after it are listed in the background on data
//! connections, so a cold `ls -lR` overlaps its round trips; the walk's
//! own next directory is left to it (it lists that one on the metadata
//! connection meanwhile).
//!
//! Owns the plans (each shown directory's sorted subdirectories), the
//! queue and the list-ahead workers. It must not block the FUSE
//! dispatcher (queuing never waits), nor list on the metadata connection,
//! nor decide what a listing shows (`Listings::fetch` and the caches do).

use std::ffi::OsStr;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{For, Got, Listings};
use crate::cache::meta::MetaCache;
use crate::fs::names::NAME_MAX;
use crate::fs::{DirItem, Fs};
use crate::remote::{private_names, Attr, Kind, Remote};
use crate::sync::lock;
use crate::workers::Workers;

/// Subdirectories listed ahead when a directory is shown: its first ones,
/// and the siblings after it (in name order), so that a walk in that
/// order finds the next ones listed.
pub(in crate::fs) const AHEAD_WINDOW: usize = 8;
/// Directories whose sorted subdirectories are kept for `AHEAD_WINDOW`.
pub(super) const PLANS: NonZeroUsize = match NonZeroUsize::new(64) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};
/// Listings waiting to be made ahead, at most (more are not queued).
const AHEAD_QUEUE: usize = 64;
/// Listing ahead may open a data connection (see
/// `Remote::open_spare_connection`) when at least this many listings wait
/// behind the one at hand: a login costs about what two listings cost.
const OPEN_FOR_WAITING: usize = 2;

impl Listings {
    /// Whether `dir` is the next directory a walk of the tree (`ls -R`,
    /// `find`: in name order, each directory's subdirectories first) needs
    /// and nobody lists yet: the walk lists it itself, at once, on the
    /// metadata connection (it asks for it before any stat of its names),
    /// so listing it ahead would only leave that connection idle while the
    /// walk waits. The data connections list the directories after it.
    fn left_to_walker(&self, meta: &MetaCache, dir: &Path) -> bool {
        let Some(shown) = lock(&self.shown).clone() else {
            return false;
        };
        let Some(parent) = dir.parent() else {
            return false;
        };
        let (plan, shown_plan) = {
            let plans = lock(&self.plans);
            let plan = plans.peek(parent).cloned();
            (plan, plans.peek(&shown).is_some())
        };
        let Some(plan) = plan else {
            return false;
        };
        let from = if shown == parent {
            0
        } else if shown.parent() == Some(parent) && !shown_plan {
            // A shown sibling with subdirectories is walked into first.
            match plan.binary_search_by(|p| p.as_path().cmp(&shown)) {
                Ok(at) => at + 1,
                Err(_) => return false,
            }
        } else {
            return false;
        };
        let next = plan[from..]
            .iter()
            .find(|p| meta.listing_at(p).is_none() && !self.in_flight(p));
        next.is_some_and(|p| p == dir)
    }

    /// Queues `dir` to be listed ahead; false when the queue is full.
    fn queue_ahead(
        self: &Arc<Self>,
        remote: Arc<dyn Remote>,
        meta: Arc<MetaCache>,
        dir: PathBuf,
    ) -> bool {
        if !lock(&self.queued).insert(dir.clone()) {
            return true; // queued already
        }
        let workers = self
            .ahead
            .get_or_init(|| Workers::new("list-ahead", self.ahead_threads, AHEAD_QUEUE));
        let listings = self.clone();
        let job_dir = dir.clone();
        let queued = workers.try_spawn(Box::new(move || {
            let waiting = {
                let mut queued = lock(&listings.queued);
                queued.remove(&job_dir);
                queued.len()
            };
            // Much waiting: a data connection is opened first if none is
            // idle, before this directory counts as under way, so a walk
            // that needs it meanwhile lists it itself rather than wait for
            // a login.
            if waiting >= OPEN_FOR_WAITING && meta.listing_at(&job_dir).is_none() {
                remote.open_spare_connection();
            }
            // Cached meanwhile (shown, or listed by a lookup): nothing to do.
            if meta.listing_at(&job_dir).is_some() || listings.left_to_walker(&meta, &job_dir) {
                return;
            }
            let got = listings.fetch(
                &*remote,
                &meta,
                &job_dir,
                (true, For::Ahead),
                &mut quietly_listable,
            );
            if let Got::Own(Err(e)) = got {
                tracing::debug!("listing {} ahead failed: {e}", job_dir.display());
            }
        }));
        if !queued {
            lock(&self.queued).remove(&dir);
        }
        queued
    }
}

/// The filter of a listing made ahead: what the mount shows, except that
/// a private name leaves the listing unstored, for the one made when the
/// directory is shown (it removes other mounts' leftovers, see
/// `leftovers.rs`).
fn quietly_listable(name: &OsStr, _attr: &Attr) -> Option<bool> {
    let bytes = name.as_bytes();
    if private_names::is_private_name(bytes) {
        return None;
    }
    Some(bytes.len() <= NAME_MAX)
}

impl Fs {
    /// `dir` is being shown with `items`: its first `AHEAD_WINDOW`
    /// subdirectories, and the `AHEAD_WINDOW` siblings after it, in name
    /// order (as `ls -R` visits them), are listed ahead in the background
    /// unless cached or under way. Never waits: runs on the FUSE
    /// dispatcher too.
    pub(in crate::fs) fn list_ahead(&self, dir: &Path, items: &[DirItem]) {
        if self.listings.ahead_threads == 0 || self.meta.ttl().is_zero() {
            return;
        }
        let mut subdirs: Vec<PathBuf> = items
            .iter()
            .filter(|i| i.attr.kind == Kind::Dir)
            .map(|i| i.path.clone())
            .collect();
        subdirs.sort_unstable();
        let plan: Arc<[PathBuf]> = subdirs.into();
        let siblings = dir.parent().and_then(|parent| {
            let plan = lock(&self.listings.plans).get(parent)?.clone();
            let at = plan.binary_search_by(|p| p.as_path().cmp(dir)).ok()?;
            Some((plan, at + 1))
        });
        if !plan.is_empty() {
            lock(&self.listings.plans).put(dir.to_path_buf(), plan.clone());
        }
        *lock(&self.listings.shown) = Some(dir.to_path_buf());
        self.queue_window(&plan, 0);
        if let Some((plan, from)) = siblings {
            self.queue_window(&plan, from);
        }
    }

    /// Queues the directories of `plan[from..]` not yet listed, up to
    /// `AHEAD_WINDOW` of them.
    fn queue_window(&self, plan: &[PathBuf], from: usize) {
        for path in plan.iter().skip(from).take(AHEAD_WINDOW) {
            if self.meta.listing_at(path).is_some() || self.listings.in_flight(path) {
                continue;
            }
            let (remote, meta) = (self.remote.clone(), self.meta.clone());
            if !self.listings.queue_ahead(remote, meta, path.clone()) {
                return;
            }
        }
    }
}
