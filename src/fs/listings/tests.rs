//! Listings shared by lookups, readdir and listing ahead, over the
//! in-memory remote, which counts its stats and listings.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::{inodes, Fs, FsConfig, OpenFlags};
use super::ahead::AHEAD_WINDOW;
use super::LOOKUP_LISTING_BYTES;
use crate::errno::ToErrno;
use crate::fs::tests::test_config;
use crate::remote::memory::Memory;
use crate::remote::Remote;
use crate::sync::lock;

fn setup(list_ahead_threads: usize) -> (Arc<Memory>, Fs, tempfile::TempDir) {
    let mem = Arc::new(Memory::new(true));
    let staging = tempfile::tempdir().expect("tempdir");
    let cfg = FsConfig {
        list_ahead_threads,
        ..test_config(staging.path())
    };
    let fs = Fs::new(mem.clone(), cfg);
    (mem, fs, staging)
}

fn name(i: usize) -> String {
    format!("f{i:04}")
}

/// `/d` with `n` files, looked up (its attributes cached, as the kernel's
/// lookup of a directory leaves them); returns its inode.
fn dir_with_files(mem: &Memory, fs: &Fs, n: usize) -> u64 {
    mem.mkdir(Path::new("/d"), 0o755).expect("mkdir");
    for i in 0..n {
        mem.put_file(&format!("/d/{}", name(i)), b"x");
    }
    fs.lookup(inodes::ROOT, OsStr::new("d"))
        .expect("lookup d")
        .ino
}

fn counts(mem: &Memory) -> (usize, usize) {
    (
        mem.stats.load(Ordering::SeqCst),
        mem.lists.load(Ordering::SeqCst),
    )
}

fn is_enoent<T: std::fmt::Debug>(r: super::Result<T>) -> bool {
    matches!(r, Err(e) if e.to_errno() == libc::ENOENT)
}

#[test]
fn cold_stats_of_many_names_in_one_directory_cost_one_listing() {
    let (mem, fs, _s) = setup(0);
    let d = dir_with_files(&mem, &fs, 200);
    let (stats, lists) = counts(&mem);
    for i in 0..200 {
        let e = fs.lookup(d, OsStr::new(&name(i))).expect("lookup");
        assert_eq!(e.attr.size, 1);
    }
    for i in 200..250 {
        assert!(
            is_enoent(fs.lookup(d, OsStr::new(&name(i)))),
            "{i} is missing"
        );
    }
    let (stats_after, lists_after) = counts(&mem);
    assert_eq!(lists_after - lists, 1, "one listing");
    assert_eq!(stats_after - stats, 1, "one stat: the first miss");
    // The listing also serves readdir.
    let opened = fs.opendir(d).expect("opendir");
    assert_eq!(fs.readdir(opened.fh).expect("readdir").len(), 200);
    assert_eq!(counts(&mem).1, lists_after, "readdir from the caches");
}

#[test]
fn listing_answers_keep_a_stats_exact_time() {
    let (mem, fs, _s) = setup(0);
    mem.coarse_listings.store(true, Ordering::SeqCst);
    let d = dir_with_files(&mem, &fs, 20);
    let (_, lists) = counts(&mem);
    for i in 0..20 {
        let path = format!("/d/{}", name(i));
        let e = fs.lookup(d, OsStr::new(&name(i))).expect("lookup");
        let exact = mem.stat(Path::new(&path)).expect("stat").mtime;
        assert_eq!(
            e.attr.mtime, exact,
            "{path}: a stat's time, not a listing's"
        );
        assert_eq!(fs.getattr(e.ino).expect("getattr").mtime, exact);
    }
    assert_eq!(counts(&mem).1 - lists, 1, "one listing");
}

#[test]
fn names_changed_through_the_mount_stay_coherent() {
    let (mem, fs, _s) = setup(0);
    let d = dir_with_files(&mem, &fs, 10);
    for i in 0..10 {
        fs.lookup(d, OsStr::new(&name(i))).expect("lookup");
    }
    let (_, lists) = counts(&mem);
    let (created, opened) = fs
        .create(d, OsStr::new("new"), 0o644, OpenFlags::default())
        .expect("create");
    fs.release(opened.fh).expect("release");
    assert_eq!(
        fs.lookup(d, OsStr::new("new")).expect("new").ino,
        created.ino
    );
    fs.mkdir(d, OsStr::new("sub"), 0o755).expect("mkdir");
    fs.lookup(d, OsStr::new("sub")).expect("sub");
    fs.unlink(d, OsStr::new(&name(0))).expect("unlink");
    assert!(is_enoent(fs.lookup(d, OsStr::new(&name(0)))));
    fs.rename(d, OsStr::new(&name(1)), d, OsStr::new("moved"), false)
        .expect("rename");
    assert!(is_enoent(fs.lookup(d, OsStr::new(&name(1)))));
    fs.lookup(d, OsStr::new("moved")).expect("moved");
    let opened = fs.opendir(d).expect("opendir");
    let mut names: Vec<_> = fs
        .readdir(opened.fh)
        .expect("readdir")
        .iter()
        .map(|i| i.name.to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = (2..10).map(name).collect();
    want.extend(["moved", "new", "sub"].map(String::from));
    want.sort();
    assert_eq!(names, want);
    assert_eq!(counts(&mem).1, lists, "all from the kept listing");
}

#[test]
fn a_listing_that_fails_falls_back_to_a_stat_and_is_not_tried_again() {
    let (mem, fs, _s) = setup(0);
    let d = dir_with_files(&mem, &fs, 10);
    mem.fail_lists.store(true, Ordering::SeqCst);
    let (stats, lists) = counts(&mem);
    for i in 0..10 {
        fs.lookup(d, OsStr::new(&name(i))).expect("lookup by stat");
    }
    let (stats_after, lists_after) = counts(&mem);
    assert_eq!(lists_after - lists, 1, "tried once");
    assert_eq!(stats_after - stats, 10, "then a stat each");
}

#[test]
fn a_large_directory_is_not_listed_for_a_lookup() {
    let (mem, fs, _s) = setup(0);
    mem.mkdir(Path::new("/d"), 0o755).expect("mkdir");
    if let Some(node) = lock(&mem.nodes).get_mut(Path::new("/d")) {
        node.attr.size = LOOKUP_LISTING_BYTES;
    }
    for i in 0..5 {
        mem.put_file(&format!("/d/{}", name(i)), b"x");
    }
    let d = fs.lookup(inodes::ROOT, OsStr::new("d")).expect("d").ino;
    let (stats, lists) = counts(&mem);
    for i in 0..5 {
        fs.lookup(d, OsStr::new(&name(i))).expect("lookup");
    }
    let (stats_after, lists_after) = counts(&mem);
    assert_eq!(lists_after, lists, "no listing");
    assert_eq!(stats_after - stats, 5);
}

#[test]
fn concurrent_lookups_share_one_listing() {
    let (mem, fs, _s) = setup(0);
    let fs = Arc::new(fs);
    let d = dir_with_files(&mem, &fs, 50);
    fs.lookup(d, OsStr::new(&name(0))).expect("first miss");
    let (stats, lists) = counts(&mem);
    // The server answers nothing until the lookups are all under way.
    let held = lock(&mem.nodes);
    let threads: Vec<_> = (1..9)
        .map(|i| {
            let fs = fs.clone();
            std::thread::spawn(move || fs.lookup(d, OsStr::new(&name(i))).map(|e| e.attr.size))
        })
        .collect();
    // Until the other 7 wait on the one listing under way (the table and
    // its owner hold it too): answered earlier, they could find it stored
    // without ever sharing it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sharing = || {
        lock(&fs.listings.flights)
            .get(Path::new("/d"))
            .map_or(0, Arc::strong_count)
    };
    while sharing() < 2 + 7 {
        assert!(
            Instant::now() < deadline,
            "the lookups never joined one listing"
        );
        std::thread::yield_now();
    }
    drop(held);
    for t in threads {
        assert_eq!(t.join().expect("thread").expect("lookup"), 1);
    }
    let (stats_after, lists_after) = counts(&mem);
    assert_eq!(lists_after - lists, 1, "one listing for all");
    assert_eq!(stats_after, stats, "no stat");
}

/// Waits until nothing is queued or under way, with `want` listings
/// made in all.
fn settle(mem: &Memory, fs: &Fs, want: usize) {
    let settled =
        |fs: &Fs| lock(&fs.listings.queued).is_empty() && lock(&fs.listings.flights).is_empty();
    let deadline = Instant::now() + Duration::from_secs(10);
    while counts(mem).1 < want || !settled(fs) {
        assert!(Instant::now() < deadline, "listings ahead never finished");
        std::thread::yield_now();
    }
    assert_eq!(counts(mem).1, want);
}

#[test]
fn subdirectories_are_listed_ahead_within_bounds() {
    let (mem, fs, _s) = setup(2);
    for i in 0..AHEAD_WINDOW * 3 {
        mem.mkdir(&Path::new("/").join(name(i)), 0o755)
            .expect("mkdir");
    }
    let opened = fs.opendir(inodes::ROOT).expect("opendir");
    fs.releasedir(opened.fh);
    // The root, and its first subdirectories only, but the very first:
    // a walk of the tree asks for that one at once, itself.
    let mut want = AHEAD_WINDOW;
    settle(&mem, &fs, want);
    // A name made on the server after a listing made ahead is found: no
    // one was shown that listing, so it does not say the name is missing.
    let second = fs
        .lookup(inodes::ROOT, OsStr::new(&name(1)))
        .expect("lookup");
    mem.put_file(&format!("/{}/late", name(1)), b"x");
    fs.lookup(second.ino, OsStr::new("late"))
        .expect("a name the listing ahead lacks");
    // The first is listed when it is opened; of the siblings after it,
    // the others are cached, and the one past the first window is the
    // walk's next: left to it.
    let first = fs
        .lookup(inodes::ROOT, OsStr::new(&name(0)))
        .expect("lookup");
    let opened = fs.opendir(first.ino).expect("opendir");
    fs.releasedir(opened.fh);
    want += 1;
    settle(&mem, &fs, want);
    // Opening a later one lists the rest of the window after it: the
    // subdirectories up to 2 × AHEAD_WINDOW - 2, those past the cached
    // ones (0 to AHEAD_WINDOW - 1) and the walk's next (AHEAD_WINDOW).
    let later = fs
        .lookup(inodes::ROOT, OsStr::new(&name(AHEAD_WINDOW - 2)))
        .expect("lookup");
    let opened = fs.opendir(later.ino).expect("opendir");
    fs.releasedir(opened.fh);
    want += AHEAD_WINDOW - 2;
    settle(&mem, &fs, want);
}
