//! The names a mount makes on the server for its own purposes (temporary
//! copies, hidden files, the rename-aside, its live marker): their
//! prefixes, the random mount id every one of them carries, who made a
//! given one, and the rule of when another mount's leftover may be
//! removed (its marker is missing or stale).
//!
//! It only makes and reads names, and removes one when asked; it must not
//! decide when to look for leftovers (the filesystem logic does, as
//! listings find them).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::{Error, Remote};

/// Names we create on the server for our own purposes. Listings through the
/// mount hide them; leftovers carry the prefix so they are recognisable.
pub const TEMP_PREFIX: &str = ".rmount-tmp-";
pub const HIDDEN_PREFIX: &str = ".rmount-hidden-";
/// Each mount's marker in its root: `LIVE_PREFIX<mount id>`. The mount
/// creates it at start, refreshes its mtime while it runs and removes it
/// at a clean unmount; it vouches for every private name with that id.
pub const LIVE_PREFIX: &str = ".rmount-live-";

/// Every prefix of the names a mount makes for itself.
const PRIVATE_PREFIXES: [&str; 3] = [TEMP_PREFIX, HIDDEN_PREFIX, LIVE_PREFIX];

pub fn is_private_name(name: &[u8]) -> bool {
    PRIVATE_PREFIXES
        .iter()
        .any(|p| name.starts_with(p.as_bytes()))
}

/// Length of a mount id: hex digits of 64 random bits.
const MOUNT_ID_LEN: usize = 16;

/// This mount's random id, carried by every private name it makes.
pub fn mount_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut bytes = [0u8; MOUNT_ID_LEN / 2];
        if !fill_random(&mut bytes) {
            // No kernel randomness: time and pid still make a collision
            // between two mounts of one directory unlikely.
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let mixed = nanos ^ (u64::from(std::process::id()) << 40);
            bytes = mixed.to_le_bytes();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

fn fill_random(buf: &mut [u8]) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most the given length into the buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
    true
}

/// Whether this mount has its marker on the server. Until it has, its
/// private names say so (`u` after the id), and no mount removes them:
/// nothing could ever prove their maker gone.
static MARKED: AtomicBool = AtomicBool::new(false);

pub fn set_marked(marked: bool) {
    MARKED.store(marked, Ordering::SeqCst);
}

/// The name of the marker of the mount `id`.
pub fn marker_name(id: &str) -> String {
    format!("{LIVE_PREFIX}{id}")
}

/// A name in the same directory as `path`, unique to this mount:
/// `PREFIX<mount id>-<n>` (`PREFIX<mount id>u-<n>` while the mount has no
/// marker), so a leftover can be traced to its maker.
pub fn private_sibling(path: &Path, prefix: &str) -> PathBuf {
    private_sibling_of(mount_id(), path, prefix)
}

/// `private_sibling` for the mount `id` (this mount's, handed to whoever
/// makes names for it). The count is shared by all names of the process,
/// so no two are ever the same.
pub fn private_sibling_of(id: &str, path: &Path, prefix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let unmarked = if MARKED.load(Ordering::SeqCst) {
        ""
    } else {
        "u"
    };
    let name = format!("{prefix}{id}{unmarked}-{n}");
    path.parent().unwrap_or(Path::new("/")).join(name)
}

/// Who made a private name.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// This mount.
    Ours,
    /// The mount with this id, whose marker vouches for it.
    Mount(String),
    /// Made without a marker (by a mount that could not leave one, or by
    /// an rmount older than markers): never removed automatically.
    Unproven,
}

/// The maker of a private name (`None` for names that are not private).
/// A marker's owner is the mount it stands for.
pub fn owner_of(name: &[u8]) -> Option<Owner> {
    let rest = PRIVATE_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p.as_bytes()))?;
    let is_id = |id: &[u8]| id.len() == MOUNT_ID_LEN && id.iter().all(u8::is_ascii_hexdigit);
    // `<id>` for a marker; `<id>-<n>`, or `<id>u-<n>` without a marker.
    let (id, proven) = if name.starts_with(LIVE_PREFIX.as_bytes()) {
        (Some(rest).filter(|id| is_id(id)), true)
    } else {
        match rest.split_first_chunk::<MOUNT_ID_LEN>() {
            Some((id, tail)) if is_id(&id[..]) => {
                let (proven, tail) = match tail.strip_prefix(b"u") {
                    Some(tail) => (false, tail),
                    None => (true, tail),
                };
                let counted = tail
                    .strip_prefix(b"-")
                    .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit));
                (Some(&id[..]).filter(|_| counted), proven)
            }
            _ => (None, false),
        }
    };
    let Some(id) = id else {
        return Some(Owner::Unproven);
    };
    Some(if id == mount_id().as_bytes() {
        Owner::Ours
    } else if proven {
        Owner::Mount(String::from_utf8_lossy(id).into_owned())
    } else {
        Owner::Unproven
    })
}

/// How often a mount refreshes its marker.
pub const MARKER_REFRESH: Duration = Duration::from_secs(60);

/// A marker not refreshed for this long belongs to a mount that is gone
/// (or has been stopped for as long). Generous: thirty refresh intervals,
/// which also covers clocks of two machines that disagree by minutes.
pub const MARKER_STALE: Duration = Duration::from_secs(30 * 60);

/// A stale marker itself is removed once it is this old.
pub const MARKER_FORGOTTEN: Duration = Duration::from_secs(24 * 3600);

/// What the server says of a mount's marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// Present, refreshed within `MARKER_STALE` (or dated in the future).
    Fresh,
    /// Present but not refreshed for longer.
    Stale,
    /// In none of the directories where its mount's root can be.
    Missing,
    /// Could not be looked up (an error other than "no such file").
    Unknown,
}

impl Marker {
    pub fn of(mtime: SystemTime, now: SystemTime) -> Marker {
        match now.duration_since(mtime) {
            Ok(age) if age > MARKER_STALE => Marker::Stale,
            _ => Marker::Fresh,
        }
    }
}

/// Whether a private name of `owner` may be removed, given its owner's
/// marker: only another mount's name whose marker is missing or stale.
/// Our own names and unproven ones never are.
pub fn abandoned(owner: &Owner, marker: Marker) -> bool {
    matches!(owner, Owner::Mount(_)) && matches!(marker, Marker::Missing | Marker::Stale)
}

/// Removes a private name; whether it is gone (removed now, or already).
pub fn remove(remote: &dyn Remote, path: &Path) -> bool {
    matches!(remote.unlink(path), Ok(()) | Err(Error::NotFound))
}

/// A private name `path`, if it lies below directory `from`, as it is
/// after `from` was renamed to `to`.
pub fn move_under(path: &mut PathBuf, from: &Path, to: &Path) {
    if let Ok(rest) = path.strip_prefix(from) {
        if !rest.as_os_str().is_empty() {
            *path = to.join(rest);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The last component of `path`, as bytes.
    pub(crate) fn name_of(path: &Path) -> Vec<u8> {
        path.file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn private_names_carry_their_mount_and_only_a_gone_mount_loses_them() {
        let ours = name_of(&private_sibling(Path::new("/d/f"), TEMP_PREFIX));
        assert!(is_private_name(&ours));
        assert_eq!(owner_of(&ours), Some(Owner::Ours));
        assert_eq!(
            owner_of(marker_name(mount_id()).as_bytes()),
            Some(Owner::Ours)
        );
        let other = format!("{HIDDEN_PREFIX}0123456789abcdef-7");
        let mount = Owner::Mount("0123456789abcdef".into());
        assert_eq!(owner_of(other.as_bytes()), Some(mount));
        assert_eq!(
            owner_of(b".rmount-live-0123456789abcdef"),
            Some(Owner::Mount("0123456789abcdef".into()))
        );
        // Names of a mount without a marker, and of older rmounts.
        for unproven in [
            format!("{TEMP_PREFIX}0123456789abcdefu-7"),
            format!("{TEMP_PREFIX}somehost-1234-0-0badcafe"),
            format!("{HIDDEN_PREFIX}0123456789abcdef-"),
        ] {
            assert_eq!(owner_of(unproven.as_bytes()), Some(Owner::Unproven));
        }
        assert_eq!(owner_of(b"ordinary-name"), None);

        for marker in [
            Marker::Fresh,
            Marker::Stale,
            Marker::Missing,
            Marker::Unknown,
        ] {
            assert!(!abandoned(&Owner::Ours, marker), "ours, {marker:?}");
            assert!(!abandoned(&Owner::Unproven, marker), "unproven, {marker:?}");
        }
        let mount = Owner::Mount("0123456789abcdef".into());
        assert!(!abandoned(&mount, Marker::Fresh));
        assert!(!abandoned(&mount, Marker::Unknown));
        assert!(abandoned(&mount, Marker::Stale));
        assert!(abandoned(&mount, Marker::Missing));

        let now = SystemTime::now();
        assert_eq!(Marker::of(now, now), Marker::Fresh);
        assert_eq!(Marker::of(now + MARKER_STALE, now), Marker::Fresh);
        assert_eq!(
            Marker::of(now - MARKER_STALE + Duration::from_secs(60), now),
            Marker::Fresh
        );
        assert_eq!(
            Marker::of(now - MARKER_STALE - Duration::from_secs(1), now),
            Marker::Stale
        );
    }
}
