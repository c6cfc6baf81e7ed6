//! access(2): whether a caller may read, write or execute a file, judged
//! from its mode bits and owner as the mount shows them, the way a local
//! filesystem judges (owner, else group, else other; root reads and writes
//! anything and executes what has an x bit, and any directory).
//!
//! Pure logic over `Attr`; reading the caller's supplementary groups is the
//! only I/O here (best effort, from /proc).

use crate::remote::{Attr, Kind};

/// Bits of an access request, as access(2) numbers them.
pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 1;

/// Who asks: the ids of the calling process and its pid, for its
/// supplementary groups.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// Whether `mask` (of `READ`, `WRITE`, `EXEC`) is granted on `attr` to a
/// caller with `uid` and `gid`; `in_groups` answers whether a gid is one of
/// the caller's supplementary groups, and is asked only when that decides.
/// An empty mask (F_OK) asks only for existence.
pub fn permitted(
    attr: &Attr,
    uid: u32,
    gid: u32,
    mask: u32,
    in_groups: impl FnOnce(u32) -> bool,
) -> bool {
    let mask = mask & (READ | WRITE | EXEC);
    if mask == 0 {
        return true;
    }
    let perm = u32::from(attr.perm);
    if uid == 0 {
        // Root passes read and write checks; execute needs an x bit
        // somewhere, except on directories (search).
        return mask & EXEC == 0 || attr.kind == Kind::Dir || perm & 0o111 != 0;
    }
    let granted = if uid == attr.uid {
        perm >> 6
    } else if gid == attr.gid || in_groups(attr.gid) {
        perm >> 3
    } else {
        perm
    } & 0o7;
    granted & mask == mask
}

/// The supplementary groups of process `pid`, from the `Groups:` line of
/// /proc/<pid>/status; empty if that cannot be read (the process ended).
pub fn supplementary_groups(pid: u32) -> Vec<u32> {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => parse_groups(&status),
        Err(e) => {
            tracing::debug!("cannot read the groups of process {pid}: {e}");
            Vec::new()
        }
    }
}

fn parse_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn attr(kind: Kind, perm: u16, uid: u32, gid: u32) -> Attr {
        Attr {
            kind,
            size: 0,
            perm,
            uid,
            gid,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            nlink: 1,
        }
    }

    fn never(_: u32) -> bool {
        false
    }

    #[test]
    fn owner_group_and_other_bits_as_a_local_filesystem() {
        let f = attr(Kind::File, 0o640, 1000, 100);
        // Owner: rw-.
        assert!(permitted(&f, 1000, 1, READ | WRITE, never));
        assert!(!permitted(&f, 1000, 1, EXEC, never));
        // Group, by primary gid or a supplementary group: r--.
        assert!(permitted(&f, 2000, 100, READ, never));
        assert!(!permitted(&f, 2000, 100, WRITE, never));
        assert!(permitted(&f, 2000, 1, READ, |g| g == 100));
        // Other: ---.
        assert!(!permitted(&f, 2000, 1, READ, never));
        // Existence alone is always granted.
        assert!(permitted(&f, 2000, 1, 0, never));
    }

    #[test]
    fn the_owner_class_decides_even_when_others_may_more() {
        let f = attr(Kind::File, 0o077, 1000, 100);
        assert!(!permitted(&f, 1000, 100, READ, never), "owner: ---");
        assert!(permitted(&f, 2000, 1, READ | WRITE | EXEC, never));
        let g = attr(Kind::File, 0o707, 1000, 100);
        assert!(!permitted(&g, 2000, 100, READ, never), "group: ---");
    }

    #[test]
    fn groups_are_read_only_when_they_decide() {
        let f = attr(Kind::File, 0o644, 1000, 100);
        let asked = std::cell::Cell::new(false);
        let ask = |_| {
            asked.set(true);
            false
        };
        assert!(permitted(&f, 1000, 1, READ, ask));
        assert!(!asked.get(), "the owner needs no groups");
        assert!(permitted(&f, 0, 0, WRITE, |_| panic!(
            "root needs no groups"
        )));
    }

    #[test]
    fn root_reads_and_writes_anything_and_executes_what_has_an_x_bit() {
        let f = attr(Kind::File, 0o000, 1000, 100);
        assert!(permitted(&f, 0, 0, READ | WRITE, never));
        assert!(!permitted(&f, 0, 0, EXEC, never), "no x bit at all");
        let plain = attr(Kind::File, 0o644, 0, 0);
        assert!(
            !permitted(&plain, 0, 0, EXEC, never),
            "0644: not executable"
        );
        let other_x = attr(Kind::File, 0o601, 1000, 100);
        assert!(permitted(&other_x, 0, 0, EXEC, never), "any x bit will do");
        let dir = attr(Kind::Dir, 0o000, 1000, 100);
        assert!(permitted(&dir, 0, 0, READ | WRITE | EXEC, never));
    }

    #[test]
    fn groups_come_from_the_status_line() {
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(parse_groups(status), vec![4, 24, 27]);
        assert_eq!(parse_groups("Groups:\n"), Vec::<u32>::new());
        assert_eq!(parse_groups("Name:\tx\n"), Vec::<u32>::new());
        let own = supplementary_groups(std::process::id());
        let mut want: Vec<u32> = nix_groups();
        want.sort_unstable();
        let mut got = own;
        got.sort_unstable();
        assert_eq!(got, want);
    }

    /// This process's supplementary groups, from getgroups(2).
    fn nix_groups() -> Vec<u32> {
        // SAFETY: a zero-size call returns the count; the second fills a
        // buffer of exactly that many entries.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let mut groups = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(0)];
        let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
        groups.truncate(usize::try_from(got).unwrap_or(0));
        groups
    }
}
