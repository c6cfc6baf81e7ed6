//! Unit tests of the filesystem logic over the in-memory remote: write
//! staging and commit, atomic rewrites, unlink while open, cache coherence.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::names::contained_target;
use super::*;
use crate::errno::ToErrno;
use crate::remote::memory::Memory;
use crate::remote::private_names;
use crate::remote::SetAttr;
use crate::sync::lock;

/// The configuration the unit tests of the filesystem logic use, staging
/// in `staging`.
pub(crate) fn test_config(staging: &Path) -> FsConfig {
    FsConfig {
        root: PathBuf::from("/"),
        read_only: false,
        atomic_writes: true,
        close_to_open: true,
        contain_symlinks: false,
        block_size: 4,
        read_ahead_blocks: 2,
        cache_timeout: Duration::from_secs(60),
        cache_size: 1 << 20,
        idmap: None,
        owners_by_name: false,
        owner: (None, None),
        staging_dir: staging.to_path_buf(),
        prefetch_threads: 1,
        list_ahead_threads: 0,
    }
}

/// An in-memory server (with or without random writes), a filesystem
/// over it, and its staging directory (kept alive by the caller).
pub(crate) fn setup(random_write: bool) -> (Arc<Memory>, Fs, tempfile::TempDir) {
    let mem = Arc::new(Memory::new(random_write));
    let staging = tempfile::tempdir().expect("tempdir");
    let fs = Fs::new(mem.clone(), test_config(staging.path()));
    (mem, fs, staging)
}

fn rw() -> OpenFlags {
    OpenFlags {
        write: true,
        ..Default::default()
    }
}

/// As `O_WRONLY | O_TRUNC`.
fn rewrite() -> OpenFlags {
    OpenFlags {
        truncate: true,
        ..rw()
    }
}

#[test]
fn create_write_close_writes_a_new_file_under_its_own_name() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        let (entry, opened) = fs
            .create(inodes::ROOT, OsStr::new("f"), 0o640, rw())
            .expect("create");
        fs.write(opened.fh, 0, b"hello ").expect("write");
        fs.write(opened.fh, 6, b"world").expect("write");
        assert_eq!(fs.getattr(entry.ino).expect("getattr").size, 11);
        assert_eq!(fs.read(opened.fh, 0, 100).expect("read"), b"hello world");
        fs.flush(opened.fh).expect("flush");
        fs.release(opened.fh).expect("release");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"hello world"[..]));
        assert_eq!(mem.names().len(), 2, "no stray names: {:?}", mem.names());
        let shown = fs.getattr(entry.ino).expect("getattr");
        assert_eq!(
            (shown.size, shown.perm),
            (11, 0o640),
            "random_write={random_write}"
        );
    }
}

/// The calls logged since the last take, with temporary names shown as
/// `<temp>`.
fn calls(mem: &Memory) -> Vec<String> {
    mem.take_calls()
        .into_iter()
        .map(|call| {
            call.split(' ')
                .map(|word| {
                    if word.contains(private_names::TEMP_PREFIX) {
                        "<temp>"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Every remote call of "create, write 4 KiB, close" of a new file, and of
/// a rewrite (O_TRUNC) of an existing one: each is a round trip (or more)
/// on a real server, so one more is a regression this test shows.
#[test]
fn a_small_file_costs_only_the_calls_it_needs() {
    let data = [7u8; 4096];
    // Random writes: the create's handle stays open for the write and is
    // closed (its status checked) at close(); no temporary name, no stat
    // after the commit, no mode to set (the create set it).
    let (mem, fs, _s) = setup(true);
    let (_, opened) = fs
        .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
        .expect("create");
    fs.write(opened.fh, 0, &data).expect("write");
    fs.flush(opened.fh).expect("flush");
    fs.release(opened.fh).expect("release");
    assert_eq!(
        calls(&mem),
        [
            "create_kept /f 644",
            "stat /f",
            "write_kept /f 0+4096",
            "close_writer"
        ]
    );
    assert_eq!(mem.content("/f").as_deref(), Some(&data[..]));

    // Where the create brings the new file's attributes along, no stat.
    let (mem, fs, _s) = setup(true);
    mem.created_attrs.store(true, Ordering::SeqCst);
    let (entry, opened) = fs
        .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
        .expect("create");
    assert_eq!((entry.attr.size, entry.attr.perm), (0, 0o644));
    fs.write(opened.fh, 0, &data).expect("write");
    fs.flush(opened.fh).expect("flush");
    fs.release(opened.fh).expect("release");
    assert_eq!(
        calls(&mem),
        ["create_kept /f 644", "write_kept /f 0+4096", "close_writer"]
    );
    assert_eq!(mem.content("/f").as_deref(), Some(&data[..]));

    // A rewrite of an existing file still goes through a temporary name,
    // whose handle is kept from its create to the commit.
    mem.put_file("/g", b"old");
    let g = fs.lookup(inodes::ROOT, OsStr::new("g")).expect("lookup");
    mem.take_calls();
    let opened = fs.open(g.ino, rewrite()).expect("open");
    fs.write(opened.fh, 0, &data).expect("write");
    fs.flush(opened.fh).expect("flush");
    fs.release(opened.fh).expect("release");
    assert_eq!(
        calls(&mem),
        [
            "stat /g",
            "create_kept <temp> 644",
            "write_kept <temp> 0+4096",
            "close_writer",
            "rename <temp> /g"
        ]
    );
    assert_eq!(mem.content("/g").as_deref(), Some(&data[..]));

    // Without random writes: uploaded whole under its own name at close
    // (no stream to a temporary name: that needs atomic writes, and one
    // stream at a time in the process, which another test could hold);
    // the upload may give it the server's default mode, which the commit
    // corrects. Then one stat: a server with coarse times shows the new
    // version only there.
    let mem = Arc::new(Memory::new(false));
    let staging = tempfile::tempdir().expect("tempdir");
    let cfg = FsConfig {
        atomic_writes: false,
        ..test_config(staging.path())
    };
    let fs = Fs::new(mem.clone(), cfg);
    let (_, opened) = fs
        .create(inodes::ROOT, OsStr::new("f"), 0o640, rw())
        .expect("create");
    fs.write(opened.fh, 0, &data).expect("write");
    fs.flush(opened.fh).expect("flush");
    fs.release(opened.fh).expect("release");
    assert_eq!(
        calls(&mem),
        [
            "create /f 640",
            "stat /f",
            "upload /f",
            "setattr /f Mode(416)",
            "stat /f",
        ]
    );
    assert_eq!(mem.content("/f").as_deref(), Some(&data[..]));
}

/// A new file written under its own name whose close the server refuses:
/// the close fails, and the name is left empty as it was created, never
/// holding the bytes as if they had arrived.
#[test]
fn a_refused_close_of_a_new_file_leaves_it_empty() {
    let (mem, fs, _s) = setup(true);
    mem.fail_closes.store(true, Ordering::SeqCst);
    let (_, opened) = fs
        .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
        .expect("create");
    fs.write(opened.fh, 0, b"never confirmed").expect("write");
    let closed = fs.flush(opened.fh);
    assert!(closed.is_err(), "the refused close is reported");
    assert!(fs.release(opened.fh).is_err(), "and again at release");
    assert_eq!(mem.content("/f"), Some(Vec::new()));
    assert_eq!(mem.names().len(), 2, "no stray names: {:?}", mem.names());
}

#[test]
fn failed_rewrite_keeps_old_version_and_no_temp() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"old content");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let flags = rewrite();
    let opened = fs.open(entry.ino, flags).expect("open");
    fs.write(opened.fh, 0, b"new").expect("buffered write");
    mem.fail_writes.store(true, Ordering::SeqCst);
    assert!(
        fs.flush(opened.fh).is_err(),
        "close must report the failure"
    );
    mem.fail_writes.store(false, Ordering::SeqCst);
    let _ = fs.release(opened.fh);
    assert_eq!(mem.content("/f").as_deref(), Some(&b"old content"[..]));
    assert_eq!(mem.names().len(), 2, "{:?}", mem.names());
}

#[test]
fn a_later_close_reports_the_errno_of_the_lost_write() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"old content");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let opened = fs.open(entry.ino, rewrite()).expect("open");
    fs.write(opened.fh, 0, b"new").expect("buffered write");
    mem.full.store(true, Ordering::SeqCst);
    let first = fs
        .flush(opened.fh)
        .expect_err("close must report the failure");
    assert_eq!(first.to_errno(), libc::ENOSPC, "{first}");
    mem.full.store(false, Ordering::SeqCst);
    // A later close of the same file (a dup's, then the release) reports
    // the loss again, with the errno of the failure itself.
    let later = fs.flush(opened.fh).expect_err("a later close");
    assert!(matches!(later, Error::WriteFailed(_)), "{later}");
    assert_eq!(later.to_errno(), libc::ENOSPC, "{later}");
    let last = fs.release(opened.fh).expect_err("the release");
    assert_eq!(last.to_errno(), libc::ENOSPC, "{last}");
    assert_eq!(mem.content("/f").as_deref(), Some(&b"old content"[..]));
}

#[test]
fn a_readers_close_neither_commits_nor_takes_the_writers_error() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"old content");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let flags = rewrite();
    let writer = fs.open(entry.ino, flags).expect("open to write");
    let reader = fs
        .open(entry.ino, OpenFlags::default())
        .expect("open to read");
    fs.write(writer.fh, 0, b"new").expect("buffered write");
    mem.fail_writes.store(true, Ordering::SeqCst);
    fs.flush(reader.fh).expect("the reader's close");
    fs.release(reader.fh).expect("the reader's release");
    assert_eq!(
        mem.content("/f").as_deref(),
        Some(&b"old content"[..]),
        "no half-way commit"
    );
    assert!(
        fs.flush(writer.fh).is_err(),
        "the writer's close reports its own failure"
    );
    mem.fail_writes.store(false, Ordering::SeqCst);
    assert!(
        fs.release(writer.fh).is_err(),
        "the last release meets the lost write too"
    );
    assert_eq!(mem.content("/f").as_deref(), Some(&b"old content"[..]));
}

#[test]
fn writes_after_the_writers_close_are_committed_by_the_last_release() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"abc");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let writer = fs.open(entry.ino, rw()).expect("open to write");
    let reader = fs
        .open(entry.ino, OpenFlags::default())
        .expect("open to read");
    fs.flush(writer.fh).expect("close");
    // A write that arrives after close (as from a shared mapping).
    fs.write(writer.fh, 0, b"X").expect("late write");
    fs.release(writer.fh)
        .expect("the writer's release, not the last");
    fs.release(reader.fh).expect("the last release, read-only");
    assert_eq!(mem.content("/f").as_deref(), Some(&b"Xbc"[..]));
}

#[test]
fn in_place_edit_and_sparse_extension() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"abcdef");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let opened = fs.open(entry.ino, rw()).expect("open");
    fs.write(opened.fh, 2, b"XY").expect("write");
    fs.write(opened.fh, 10, b"Z").expect("write past end");
    fs.release(opened.fh).expect("release");
    assert_eq!(mem.content("/f").as_deref(), Some(&b"abXYef\0\0\0\0Z"[..]));
}

#[test]
fn append_writes_at_end_whatever_the_offset() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        mem.put_file("/log", b"one\n");
        let entry = fs.lookup(inodes::ROOT, OsStr::new("log")).expect("lookup");
        let flags = OpenFlags {
            write: true,
            append: true,
            ..Default::default()
        };
        let opened = fs.open(entry.ino, flags).expect("open");
        fs.write(opened.fh, 0, b"two\n").expect("append");
        fs.release(opened.fh).expect("release");
        assert_eq!(mem.content("/log").as_deref(), Some(&b"one\ntwo\n"[..]));
    }
}

#[test]
fn unlinked_open_file_stays_readable_then_vanishes() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"keep me");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let opened = fs.open(entry.ino, OpenFlags::default()).expect("open");
    fs.unlink(inodes::ROOT, OsStr::new("f")).expect("unlink");
    assert!(matches!(
        fs.lookup(inodes::ROOT, OsStr::new("f")),
        Err(Error::Remote(remote::Error::NotFound))
    ));
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    assert!(
        fs.readdir(dir.fh).expect("readdir").is_empty(),
        "hidden name must not be listed"
    );
    assert_eq!(fs.read(opened.fh, 0, 100).expect("read"), b"keep me");
    fs.release(opened.fh).expect("release");
    assert_eq!(mem.names().len(), 1, "{:?}", mem.names());
}

#[test]
fn kernel_keeps_a_directory_listing_only_while_it_is_unchanged() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/a", b"1");
    let reopen = |fs: &Fs| {
        let dir = fs.opendir(inodes::ROOT).expect("opendir");
        // What readdirplus does: each entry gets its inode number.
        for item in fs.readdir(dir.fh).expect("readdir").iter() {
            fs.remember(item);
        }
        fs.releasedir(dir.fh);
        dir.keep_cache
    };
    assert!(!reopen(&fs), "first opening: nothing cached yet");
    assert!(reopen(&fs), "same entries: the kernel's copy is right");
    let (_, created) = fs
        .create(inodes::ROOT, OsStr::new("b"), 0o644, rw())
        .expect("create");
    fs.release(created.fh).expect("release");
    assert!(!reopen(&fs), "a new entry: the kernel must read again");
    assert!(reopen(&fs));
    let b = fs.lookup(inodes::ROOT, OsStr::new("b")).expect("lookup");
    // The kernel forgets an entry's inode: its cached copy names a number
    // that a new lookup would not give back.
    fs.forget(b.ino, 1000);
    assert!(!reopen(&fs), "an entry without its inode: read again");
}

#[test]
fn dispatcher_answers_only_from_caches_and_never_for_open_files() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/a", b"1");
    assert!(fs.opendir_cached(inodes::ROOT).is_none(), "not listed yet");
    fs.mkdir(inodes::ROOT, OsStr::new("d"), 0o755)
        .expect("mkdir");
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    fs.releasedir(dir.fh);
    let before = mem.stats.load(Ordering::SeqCst);
    let cached = fs.opendir_cached(inodes::ROOT).expect("from the caches");
    assert_eq!(fs.readdir(cached.fh).expect("readdir").len(), 2);
    fs.releasedir(cached.fh);
    let d = fs.lookup(inodes::ROOT, OsStr::new("d")).expect("lookup");
    assert!(fs.getattr_cached_dir(d.ino).is_some());
    let a = fs.lookup(inodes::ROOT, OsStr::new("a")).expect("lookup");
    assert!(
        fs.getattr_cached_dir(a.ino).is_none(),
        "files go to a worker"
    );
    assert_eq!(mem.stats.load(Ordering::SeqCst), before, "no remote call");
    // An open file's state may be locked across network I/O: a listing
    // that shows it goes to a worker.
    let opened = fs.open(a.ino, OpenFlags::default()).expect("open");
    assert!(fs.opendir_cached(inodes::ROOT).is_none());
    fs.release(opened.fh).expect("release");
    assert!(fs.opendir_cached(inodes::ROOT).is_some());

    // What is answered from the caches follows changes made through the
    // mount at once (the dispatcher reuses its last listing only while
    // the caches did not change).
    let perm_of_a = |fs: &Fs| {
        let dir = fs.opendir_cached(inodes::ROOT).expect("from the caches");
        let items = fs.readdir(dir.fh).expect("readdir");
        fs.releasedir(dir.fh);
        items.iter().find(|i| i.name == "a").map(|i| i.attr.perm)
    };
    assert_eq!(perm_of_a(&fs), Some(0o644));
    let chmod = SetAttrs {
        mode: Some(0o600),
        ..Default::default()
    };
    fs.setattr(a.ino, chmod).expect("chmod");
    assert_eq!(perm_of_a(&fs), Some(0o600));
}

#[test]
fn truncate_by_path_reaches_the_server_while_a_close_is_on_its_way() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        let (entry, opened) = fs
            .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
            .expect("create");
        fs.write(opened.fh, 0, b"abcdef").expect("write");
        fs.flush(opened.fh).expect("close");
        // The kernel sends the release later; truncate(2) may come first.
        let grow = SetAttrs {
            size: Some(8),
            ..Default::default()
        };
        let attr = fs.setattr(entry.ino, grow).expect("truncate up");
        assert_eq!(attr.size, 8);
        assert_eq!(
            mem.content("/f").as_deref(),
            Some(&b"abcdef\0\0"[..]),
            "random_write={random_write}"
        );
        fs.release(opened.fh).expect("release");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"abcdef\0\0"[..]));
    }
}

#[test]
fn caches_answer_repeated_lookups_and_follow_changes() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/a", b"1");
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    assert_eq!(fs.readdir(dir.fh).expect("readdir").len(), 1);
    let before = mem.stats.load(Ordering::SeqCst);
    fs.lookup(inodes::ROOT, OsStr::new("a")).expect("lookup");
    assert!(matches!(
        fs.lookup(inodes::ROOT, OsStr::new("zz")),
        Err(Error::Remote(remote::Error::NotFound))
    ));
    assert_eq!(
        mem.stats.load(Ordering::SeqCst),
        before,
        "listing must answer lookups"
    );
    fs.rename(
        inodes::ROOT,
        OsStr::new("a"),
        inodes::ROOT,
        OsStr::new("b"),
        false,
    )
    .expect("rename");
    assert!(matches!(
        fs.lookup(inodes::ROOT, OsStr::new("a")),
        Err(Error::Remote(remote::Error::NotFound))
    ));
    assert_eq!(
        fs.lookup(inodes::ROOT, OsStr::new("b"))
            .expect("lookup b")
            .attr
            .size,
        1
    );
}

#[test]
fn blocks_are_cached_and_keyed_by_version() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"0123456789");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let h = fs.open(entry.ino, OpenFlags::default()).expect("open");
    assert_eq!(fs.read(h.fh, 0, 10).expect("read"), b"0123456789");
    let reads = mem.reads.load(Ordering::SeqCst);
    assert_eq!(fs.read(h.fh, 2, 5).expect("read"), b"23456");
    assert_eq!(
        mem.reads.load(Ordering::SeqCst),
        reads,
        "second read from cache"
    );
    fs.release(h.fh).expect("release");
    // A write through the mount is seen by the next reader.
    let w = fs.open(entry.ino, rw()).expect("open rw");
    fs.write(w.fh, 0, b"AB").expect("write");
    fs.release(w.fh).expect("release");
    let r = fs.open(entry.ino, OpenFlags::default()).expect("open");
    assert_eq!(fs.read(r.fh, 0, 4).expect("read"), b"AB23");
}

#[test]
fn errors_for_names_and_directories() {
    let (_mem, fs, _s) = setup(true);
    let long = "x".repeat(300);
    assert!(matches!(
        fs.lookup(inodes::ROOT, OsStr::new(&long)),
        Err(Error::NameTooLong)
    ));
    let d = fs
        .mkdir(inodes::ROOT, OsStr::new("d"), 0o755)
        .expect("mkdir");
    fs.create(d.ino, OsStr::new("x"), 0o644, rw())
        .and_then(|(_, o)| fs.release(o.fh))
        .expect("create");
    assert!(matches!(
        fs.rmdir(inodes::ROOT, OsStr::new("d")),
        Err(Error::Remote(remote::Error::NotEmpty))
    ));
    assert!(matches!(
        fs.open(d.ino, OpenFlags::default()),
        Err(Error::Remote(remote::Error::IsADirectory))
    ));
}

#[test]
fn failure_after_a_mid_rewrite_flush_keeps_the_flushed_version() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        let (_, opened) = fs
            .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
            .expect("create");
        fs.write(opened.fh, 0, b"AAAA").expect("write");
        fs.flush(opened.fh).expect("flush of a dup");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"AAAA"[..]));
        fs.write(opened.fh, 4, b"BBBB").expect("buffered write");
        mem.fail_writes.store(true, Ordering::SeqCst);
        assert!(fs.flush(opened.fh).is_err(), "random_write={random_write}");
        mem.fail_writes.store(false, Ordering::SeqCst);
        let _ = fs.release(opened.fh);
        assert_eq!(
            mem.content("/f").as_deref(),
            Some(&b"AAAA"[..]),
            "random_write={random_write}"
        );
        assert_eq!(mem.names().len(), 2, "{:?}", mem.names());
    }
}

#[test]
fn a_failure_seen_by_a_forked_close_is_still_reported_to_the_writer() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        mem.put_file("/f", b"old");
        let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
        let flags = rewrite();
        let opened = fs.open(entry.ino, flags).expect("open");
        fs.write(opened.fh, 0, b"new content").expect("write");
        // A forked child closes its copy of the descriptor: the same flush.
        mem.fail_writes.store(true, Ordering::SeqCst);
        assert!(fs.flush(opened.fh).is_err(), "random_write={random_write}");
        mem.fail_writes.store(false, Ordering::SeqCst);
        // The link is back, but the data is not on the server: the
        // writer's own calls must not report success.
        assert!(fs.write(opened.fh, 11, b"!").is_err(), "later write");
        assert!(fs.fsync(opened.fh).is_err(), "fsync");
        assert!(fs.flush(opened.fh).is_err(), "the writer's close");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"old"[..]));
        // A truncate by path still acts on the server's file.
        let cut = SetAttrs {
            size: Some(1),
            ..Default::default()
        };
        fs.setattr(entry.ino, cut).expect("truncate by path");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"o"[..]));
        // A writer that opens now starts from the server's file; the one
        // that lost its writes keeps being told.
        let next = fs.open(entry.ino, rw()).expect("open for a new writer");
        fs.write(next.fh, 1, b"k").expect("the new writer's write");
        fs.flush(next.fh).expect("the new writer's close");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"ok"[..]));
        assert!(fs.flush(opened.fh).is_err(), "the first writer's close");
        fs.release(next.fh).expect("release the new writer");
        fs.release(opened.fh).expect("nothing left to commit");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"ok"[..]));
        // A new rewrite starts clean.
        let opened = fs.open(entry.ino, flags).expect("open again");
        fs.write(opened.fh, 0, b"again").expect("write again");
        fs.flush(opened.fh).expect("close");
        fs.release(opened.fh).expect("release");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"again"[..]));
    }
}

#[test]
fn a_failed_open_leaves_no_open_state() {
    let (mem, fs, staging) = setup(false);
    mem.put_file("/f", b"x");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    std::fs::remove_dir_all(staging.path()).expect("remove the staging dir");
    assert!(fs.open(entry.ino, rw()).is_err(), "nowhere to stage");
    assert!(
        lock(&fs.open).is_empty(),
        "the failed open left a counted handle"
    );
}

#[test]
fn a_file_busy_in_a_long_commit_still_answers_stat_and_listing() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/a", b"old");
    let fs = Arc::new(fs);
    let a = fs.lookup(inodes::ROOT, OsStr::new("a")).expect("lookup a");
    let opened = fs.open(a.ino, rw()).expect("open a");
    fs.write(opened.fh, 3, b" and new").expect("write");
    let state = fs.handle(opened.fh).expect("handle").file;
    // What a commit does for the length of an upload.
    let busy = state.lock();
    let (tx, answer) = std::sync::mpsc::channel();
    let observer = {
        let fs = fs.clone();
        std::thread::spawn(move || {
            let size = fs.getattr(a.ino).map(|attr| attr.size);
            let listed = fs.opendir(inodes::ROOT).and_then(|d| {
                let items = fs.readdir(d.fh)?;
                fs.releasedir(d.fh);
                Ok(items.iter().map(|i| i.attr.size).collect::<Vec<_>>())
            });
            let _ = tx.send((size, listed));
        })
    };
    let (size, listed) = answer
        .recv_timeout(Duration::from_secs(5))
        .expect("stat and listing of a busy file answer without waiting for it");
    assert_eq!(size.expect("getattr"), 11, "the size written so far");
    assert!(
        listed.expect("listing").contains(&11),
        "the listing shows the size written so far"
    );
    drop(busy);
    observer.join().expect("observer");
    fs.flush(opened.fh).expect("close");
    fs.release(opened.fh).expect("release");
    assert_eq!(mem.content("/a").as_deref(), Some(&b"old and new"[..]));
}

#[test]
fn a_file_busy_in_a_long_commit_stalls_no_stat_of_another() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/a", b"a");
    mem.put_file("/b", b"b");
    let fs = Arc::new(fs);
    let a = fs.lookup(inodes::ROOT, OsStr::new("a")).expect("lookup a");
    let b = fs.lookup(inodes::ROOT, OsStr::new("b")).expect("lookup b");
    let first = fs.open(a.ino, OpenFlags::default()).expect("open a");
    let state = fs.handle(first.fh).expect("handle").file;
    // What a commit does for the length of an upload.
    let busy = state.lock();
    let (started_tx, started) = std::sync::mpsc::channel();
    let opener = {
        let fs = fs.clone();
        // Waits for the busy state, as it must.
        std::thread::spawn(move || {
            let _ = started_tx.send(());
            fs.open(a.ino, OpenFlags::default()).map(|o| o.fh)
        })
    };
    started.recv().expect("the opener runs");
    // Stats of another file keep answering while that open waits.
    let (tx, answers) = std::sync::mpsc::channel();
    let stats = {
        let fs = fs.clone();
        std::thread::spawn(move || {
            let until = std::time::Instant::now() + Duration::from_millis(200);
            while std::time::Instant::now() < until {
                if tx.send(fs.getattr(b.ino).is_ok()).is_err() {
                    return;
                }
            }
        })
    };
    let mut answered = 0;
    loop {
        match answers.recv_timeout(Duration::from_secs(5)) {
            Ok(ok) => {
                assert!(ok, "stat b failed");
                answered += 1;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("a stat of another file waited for a busy file's state")
            }
        }
    }
    assert!(answered > 0);
    assert!(
        !opener.is_finished(),
        "the open of the busy file did not wait for its state"
    );
    drop(busy);
    let reopened = opener.join().expect("opener").expect("open a again");
    stats.join().expect("stats thread");
    fs.release(reopened).expect("release");
    fs.release(first.fh).expect("release");
    assert!(
        lock(&fs.open).is_empty(),
        "both handles counted and released"
    );
}

#[test]
fn a_time_the_protocol_cannot_carry_is_refused_and_changes_nothing() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"x");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let before = fs.getattr(entry.ino).expect("getattr");
    let pre_1970 = std::time::UNIX_EPOCH - Duration::from_secs(86_400);
    let after_2106 = std::time::UNIX_EPOCH + Duration::from_secs(1 << 32);
    for t in [pre_1970, after_2106] {
        let change = SetAttrs {
            mode: Some(0o600),
            atime: Some(TimeSet::Now),
            mtime: Some(TimeSet::At(t)),
            ..Default::default()
        };
        assert!(matches!(
            fs.setattr(entry.ino, change),
            Err(Error::Remote(remote::Error::TimeOutOfRange))
        ));
        let after = fs.getattr(entry.ino).expect("getattr");
        assert_eq!(after.mtime, before.mtime, "no time stored");
        assert_eq!(after.perm, 0o644, "nothing else changed either");
    }
    let fine = SetAttrs {
        mtime: Some(TimeSet::At(std::time::UNIX_EPOCH)),
        ..Default::default()
    };
    let attr = fs.setattr(entry.ino, fine).expect("1970 itself is fine");
    assert_eq!(attr.mtime, std::time::UNIX_EPOCH);
}

#[test]
fn ctime_moves_forward_with_every_change_through_the_mount() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"abc");
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let times = SetAttr::Times {
        atime: old,
        mtime: old,
    };
    mem.setattr(Path::new("/f"), times).expect("old times");
    let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    assert_eq!(f.attr.ctime, old, "nothing changed yet: the mtime");
    let started = SystemTime::now();
    let mut last = old;
    let mut step = |what: &str, ino: u64| {
        let attr = fs.getattr(ino).expect("getattr");
        assert!(
            attr.ctime > last,
            "{what}: ctime {:?} <= {last:?}",
            attr.ctime
        );
        assert!(attr.ctime >= started, "{what}");
        assert!(attr.ctime >= attr.mtime, "{what}");
        last = attr.ctime;
    };
    let set = |changes: SetAttrs| fs.setattr(f.ino, changes).expect("setattr");
    set(SetAttrs {
        mode: Some(0o600),
        ..Default::default()
    });
    step("chmod", f.ino);
    set(SetAttrs {
        uid: Some(7),
        gid: Some(8),
        ..Default::default()
    });
    step("chown", f.ino);
    let touched = set(SetAttrs {
        atime: Some(TimeSet::At(old)),
        mtime: Some(TimeSet::At(old)),
        ..Default::default()
    });
    assert_eq!(touched.mtime, old, "utimens sets the mtime it was given");
    step("utimens to an old time", f.ino);
    let w = fs.open(f.ino, rw()).expect("open");
    fs.write(w.fh, 0, b"X").expect("write");
    step("write", f.ino);
    fs.release(w.fh).expect("release");
    set(SetAttrs {
        size: Some(1),
        ..Default::default()
    });
    step("truncate", f.ino);
    fs.rename(
        inodes::ROOT,
        OsStr::new("f"),
        inodes::ROOT,
        OsStr::new("g"),
        false,
    )
    .expect("rename");
    let g = fs.lookup(inodes::ROOT, OsStr::new("g")).expect("lookup g");
    assert_eq!(g.ino, f.ino, "the same file");
    step("rename", g.ino);
    mem.put_file("/other", b"o");
    // Listings show it too (readdirplus gives the kernel these attributes).
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    let items = fs.readdir(dir.fh).expect("readdir");
    fs.releasedir(dir.fh);
    let listed = items.iter().find(|i| i.name == "g").expect("g listed");
    assert_eq!(listed.attr.ctime, last, "the listing's ctime");
    // Another file keeps its own.
    let other = fs
        .lookup(inodes::ROOT, OsStr::new("other"))
        .expect("lookup");
    assert_eq!(other.attr.ctime, other.attr.mtime);
}

#[test]
fn an_open_file_whose_name_is_gone_has_no_links() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        mem.put_file("/f", b"data");
        mem.setattr(Path::new("/f"), SetAttr::Owner(Some(7), Some(8)))
            .expect("chown");
        mem.setattr(Path::new("/f"), SetAttr::Mode(0o640))
            .expect("chmod");
        let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
        let h = fs.open(f.ino, rw()).expect("open");
        assert_eq!(fs.getattr(f.ino).expect("fstat").nlink, 1);
        fs.unlink(inodes::ROOT, OsStr::new("f")).expect("unlink");
        let attr = fs.getattr(f.ino).expect("fstat after unlink");
        assert_eq!(attr.nlink, 0, "random_write={random_write}");
        assert_eq!(attr.size, 4);
        assert_eq!((attr.uid, attr.gid, attr.perm), (7, 8, 0o640), "as it was");
        assert_eq!(attr.mtime, f.attr.mtime);
        fs.write(h.fh, 4, b"!").expect("write after unlink");
        assert_eq!(fs.getattr(f.ino).expect("fstat").nlink, 0);
        fs.release(h.fh).expect("release");
    }
}

#[test]
fn access_judges_the_attributes_as_the_mount_shows_them() {
    let mem = Arc::new(Memory::new(true));
    let (_, plain, _s) = setup(true);
    let cfg = FsConfig {
        idmap: Some(IdMapping {
            remote_uid: 500,
            remote_gid: 600,
            local_uid: 1000,
            local_gid: 1000,
        }),
        ..plain.cfg.clone()
    };
    let fs = Fs::new(mem.clone(), cfg);
    mem.put_file("/f", b"x");
    mem.setattr(Path::new("/f"), SetAttr::Mode(0o640))
        .expect("chmod");
    mem.setattr(Path::new("/f"), SetAttr::Owner(Some(500), Some(600)))
        .expect("chown");
    let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let who = |uid, gid| access::Caller {
        uid,
        gid,
        pid: std::process::id(),
    };
    let (r, w, x) = (access::READ, access::WRITE, access::EXEC);
    fs.access(f.ino, who(1000, 1000), r | w)
        .expect("the remote owner appears as the local user");
    assert!(matches!(
        fs.access(f.ino, who(500, 1), r),
        Err(Error::Remote(remote::Error::PermissionDenied))
    ));
    fs.access(f.ino, who(2000, 1000), r)
        .expect("the mapped group");
    assert!(matches!(
        fs.access(f.ino, who(2000, 1000), w),
        Err(Error::Remote(remote::Error::PermissionDenied))
    ));
    fs.access(f.ino, who(0, 0), r | w).expect("root");
    assert!(
        matches!(
            fs.access(f.ino, who(0, 0), x),
            Err(Error::Remote(remote::Error::PermissionDenied))
        ),
        "X_OK on a file without x bits, even for root"
    );
    fs.access(f.ino, who(4321, 4321), 0)
        .expect("F_OK: it exists");
    fs.access(inodes::ROOT, who(0, 0), x)
        .expect("a directory is searchable by root");
}

#[test]
fn access_for_writing_on_a_read_only_mount_is_erofs() {
    let mem = Arc::new(Memory::new(true));
    let (_, plain, _s) = setup(true);
    let cfg = FsConfig {
        read_only: true,
        ..plain.cfg.clone()
    };
    let fs = Fs::new(mem.clone(), cfg);
    mem.put_file("/f", b"x");
    let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let root = access::Caller {
        uid: 0,
        gid: 0,
        pid: std::process::id(),
    };
    fs.access(f.ino, root, access::READ).expect("read");
    assert!(matches!(
        fs.access(f.ino, root, access::WRITE),
        Err(Error::Remote(remote::Error::ReadOnly))
    ));
}

#[test]
fn link_gives_a_second_name_and_moves_the_files_ctime() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"shared");
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    fs.releasedir(dir.fh);
    let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let before = fs.getattr(f.ino).expect("getattr").ctime;
    let g = fs.link(f.ino, inodes::ROOT, OsStr::new("g")).expect("link");
    assert_ne!(g.ino, f.ino, "a name of its own");
    assert_eq!(g.attr.size, 6, "the new name's attributes");
    let linked = fs.getattr(f.ino).expect("getattr").ctime;
    assert!(linked > before, "the file's ctime moved");
    assert!(g.attr.ctime >= linked, "the new name shows that change");
    assert_eq!(fs.getattr(g.ino).expect("getattr").ctime, g.attr.ctime);
    let found = fs.lookup(inodes::ROOT, OsStr::new("g")).expect("lookup g");
    assert_eq!(found.ino, g.ino);
    let h = fs.open(g.ino, OpenFlags::default()).expect("open g");
    assert_eq!(fs.read(h.fh, 0, 100).expect("read"), b"shared");
    fs.release(h.fh).expect("release");
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    let names: Vec<_> = fs
        .readdir(dir.fh)
        .expect("readdir")
        .iter()
        .map(|i| i.name.clone())
        .collect();
    fs.releasedir(dir.fh);
    assert_eq!(
        names.len(),
        2,
        "the cached listing has the new name: {names:?}"
    );
    assert!(matches!(
        fs.link(f.ino, inodes::ROOT, OsStr::new("g")),
        Err(Error::Remote(remote::Error::Exists))
    ));
}

#[test]
fn link_of_a_file_being_written_shows_what_was_written() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        let (f, opened) = fs
            .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
            .expect("create");
        fs.write(opened.fh, 0, b"written").expect("write");
        fs.link(f.ino, inodes::ROOT, OsStr::new("g")).expect("link");
        assert_eq!(
            mem.content("/g").as_deref(),
            Some(&b"written"[..]),
            "random_write={random_write}"
        );
        fs.release(opened.fh).expect("release");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"written"[..]));
    }
}

/// Changes the server's copy of `path` behind the mount's back, with an
/// mtime of its own.
fn change_on_server(mem: &Memory, path: &str, data: &[u8], mtime_secs: u64) {
    mem.put_file(path, data);
    let t = std::time::UNIX_EPOCH + Duration::from_secs(mtime_secs);
    mem.setattr(Path::new(path), SetAttr::Times { atime: t, mtime: t })
        .expect("times");
}

fn read_all(fs: &Fs, ino: u64) -> (Vec<u8>, Opened) {
    let h = fs.open(ino, OpenFlags::default()).expect("open");
    let data = fs.read(h.fh, 0, 1000).expect("read").to_vec();
    fs.release(h.fh).expect("release");
    (data, h)
}

#[test]
fn an_open_sees_what_changed_on_the_server_before_it_for_one_stat() {
    let (mem, fs, _s) = setup(true);
    change_on_server(&mem, "/f", b"one", 1_000_000_000);
    let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let (data, _) = read_all(&fs, f.ino);
    assert_eq!(data, b"one");
    let (_, again) = read_all(&fs, f.ino);
    assert!(again.keep_cache && !again.attrs_changed, "unchanged");

    // Same size, another mtime: only the version tells.
    change_on_server(&mem, "/f", b"two", 1_000_000_001);
    let stats = mem.stats.load(Ordering::SeqCst);
    let (data, opened) = read_all(&fs, f.ino);
    assert_eq!(data, b"two", "the open saw the server's change");
    assert_eq!(mem.stats.load(Ordering::SeqCst), stats + 1, "one stat");
    assert!(!opened.keep_cache, "the kernel drops its pages");
    assert!(opened.attrs_changed, "and its attributes");

    // stat keeps using the cache.
    change_on_server(&mem, "/f", b"three!", 1_000_000_002);
    let stats = mem.stats.load(Ordering::SeqCst);
    assert_eq!(fs.getattr(f.ino).expect("getattr").size, 3, "cached");
    assert_eq!(mem.stats.load(Ordering::SeqCst), stats, "no stat");
    assert_eq!(read_all(&fs, f.ino).0, b"three!", "a longer file");
    assert_eq!(fs.getattr(f.ino).expect("getattr").size, 6);
}

#[test]
fn without_close_to_open_an_open_trusts_the_cache() {
    let (mem, plain, _s) = setup(true);
    let cfg = FsConfig {
        close_to_open: false,
        ..plain.cfg.clone()
    };
    let fs = Fs::new(mem.clone(), cfg);
    change_on_server(&mem, "/f", b"one", 1_000_000_000);
    let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    assert_eq!(read_all(&fs, f.ino).0, b"one");
    change_on_server(&mem, "/f", b"two", 1_000_000_001);
    let stats = mem.stats.load(Ordering::SeqCst);
    let (data, opened) = read_all(&fs, f.ino);
    assert_eq!(data, b"one", "served from the cache, as asked");
    assert!(opened.keep_cache && !opened.attrs_changed);
    assert_eq!(mem.stats.load(Ordering::SeqCst), stats, "no stat");
}

#[test]
fn an_open_of_a_file_being_written_keeps_the_writers_state() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        change_on_server(&mem, "/f", b"old", 1_000_000_000);
        let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
        let w = fs.open(f.ino, rw()).expect("open to write");
        fs.write(w.fh, 3, b" and new").expect("write");
        let stats = mem.stats.load(Ordering::SeqCst);
        let r = fs.open(f.ino, OpenFlags::default()).expect("open to read");
        assert_eq!(
            mem.stats.load(Ordering::SeqCst),
            stats,
            "no stat of the server's older copy"
        );
        assert!(!r.attrs_changed);
        assert_eq!(
            fs.read(r.fh, 0, 100).expect("read"),
            b"old and new",
            "random_write={random_write}"
        );
        assert_eq!(fs.getattr(f.ino).expect("getattr").size, 11);
        fs.release(r.fh).expect("release the reader");
        fs.release(w.fh).expect("release the writer");
        assert_eq!(mem.content("/f").as_deref(), Some(&b"old and new"[..]));
    }
}

#[test]
fn an_open_keeps_a_listings_coarser_time_while_the_file_is_the_same() {
    let (mem, fs, _s) = setup(true);
    mem.coarse_listings.store(true, Ordering::SeqCst);
    change_on_server(&mem, "/f", b"one", 1_000_000_042);
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    fs.releasedir(dir.fh);
    let f = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let listed = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_020);
    assert_eq!(f.attr.mtime, listed, "the listing's time, to the minute");
    let (data, opened) = read_all(&fs, f.ino);
    assert_eq!(data, b"one");
    assert!(
        !opened.attrs_changed,
        "the exact time of the open's stat is the same file"
    );
    assert_eq!(
        fs.getattr(f.ino).expect("getattr").mtime,
        listed,
        "so the file does not seem to change (editors would warn)"
    );
    // A real change is still one.
    change_on_server(&mem, "/f", b"two", 1_000_000_100);
    let (data, opened) = read_all(&fs, f.ino);
    assert_eq!(data, b"two");
    assert!(opened.attrs_changed && !opened.keep_cache);
}

#[test]
fn a_file_created_read_only_stays_writable_until_its_close() {
    for random_write in [true, false] {
        let (mem, fs, _s) = setup(random_write);
        let (entry, opened) = fs
            .create(inodes::ROOT, OsStr::new("ro"), 0o444, rw())
            .expect("create");
        fs.write(opened.fh, 0, b"first").expect("write");
        fs.fsync(opened.fh).expect("fsync");
        fs.write(opened.fh, 5, b" second")
            .expect("a write after fsync");
        fs.flush(opened.fh).expect("close");
        fs.release(opened.fh).expect("release");
        assert_eq!(mem.content("/ro").as_deref(), Some(&b"first second"[..]));
        let attr = mem.stat(Path::new("/ro")).expect("stat");
        assert_eq!(attr.perm, 0o444, "random_write={random_write}");
        assert_eq!(fs.getattr(entry.ino).expect("getattr").perm, 0o444);
    }
}

#[test]
fn chmod_to_read_only_does_not_break_a_writer() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/w", b"");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("w")).expect("lookup");
    let opened = fs.open(entry.ino, rw()).expect("open");
    fs.write(opened.fh, 0, b"before").expect("write");
    let shown = fs
        .setattr(
            entry.ino,
            SetAttrs {
                mode: Some(0o444),
                ..Default::default()
            },
        )
        .expect("chmod");
    assert_eq!(shown.perm, 0o444, "the mode shown at once");
    fs.write(opened.fh, 6, b" after")
        .expect("a write after chmod");
    fs.fsync(opened.fh).expect("fsync");
    fs.write(opened.fh, 12, b" more")
        .expect("a write after fsync");
    fs.flush(opened.fh).expect("close");
    fs.release(opened.fh).expect("release");
    assert_eq!(
        mem.content("/w").as_deref(),
        Some(&b"before after more"[..])
    );
    assert_eq!(mem.stat(Path::new("/w")).expect("stat").perm, 0o444);
}

#[test]
fn a_descriptor_that_lost_its_writes_reads_an_error_not_other_bytes() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"server bytes");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let opened = fs.open(entry.ino, rw()).expect("open");
    fs.write(opened.fh, 0, b"lost").expect("buffered write");
    mem.fail_writes.store(true, Ordering::SeqCst);
    assert!(fs.fsync(opened.fh).is_err(), "fsync reports the loss");
    mem.fail_writes.store(false, Ordering::SeqCst);
    assert!(
        fs.read(opened.fh, 0, 100).is_err(),
        "a read through it must not return the server's other bytes"
    );
    let _ = fs.release(opened.fh);
}

#[test]
fn chown_to_the_owner_shown_is_a_no_op() {
    let (mem, fs, _s) = setup(false);
    mem.put_file("/f", b"x");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let attr = fs
        .setattr(
            entry.ino,
            SetAttrs {
                uid: Some(entry.attr.uid),
                gid: Some(entry.attr.gid),
                ..Default::default()
            },
        )
        .expect("chown to the same owner");
    assert_eq!((attr.uid, attr.gid), (entry.attr.uid, entry.attr.gid));
}

#[test]
fn truncate_by_path_without_remote_truncate_rewrites_the_file() {
    let (mem, fs, _s) = setup(false);
    mem.put_file("/f", b"0123456789");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    fs.setattr(
        entry.ino,
        SetAttrs {
            size: Some(4),
            ..Default::default()
        },
    )
    .expect("truncate");
    assert_eq!(mem.content("/f").as_deref(), Some(&b"0123"[..]));
}

#[test]
fn a_rewrite_whose_temporary_copy_fails_keeps_the_old_file() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/f", b"old content");
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let opened = fs.open(entry.ino, rewrite()).expect("open with O_TRUNC");
    mem.fail_creates.store(true, Ordering::SeqCst);
    assert!(fs.write(opened.fh, 0, b"new").is_err(), "the write fails");
    mem.fail_creates.store(false, Ordering::SeqCst);
    assert!(fs.flush(opened.fh).is_err(), "and so does the close");
    let _ = fs.release(opened.fh);
    assert_eq!(
        mem.content("/f").as_deref(),
        Some(&b"old content"[..]),
        "the truncation of a failed rewrite is not committed"
    );
}

/// Renames `from` (in the root) to `to` (in the root) through the mount.
fn mv(fs: &Fs, from: &str, to: &str) {
    fs.rename(
        inodes::ROOT,
        OsStr::new(from),
        inodes::ROOT,
        OsStr::new(to),
        false,
    )
    .unwrap_or_else(|e| panic!("mv {from} {to}: {e}"));
}

#[test]
fn a_rewrite_follows_its_directory_when_the_directory_is_renamed() {
    let (mem, fs, _s) = setup(true);
    let d = fs
        .mkdir(inodes::ROOT, OsStr::new("d"), 0o755)
        .expect("mkdir");
    let (f, opened) = fs
        .create(d.ino, OsStr::new("f"), 0o644, rw())
        .expect("create");
    fs.write(opened.fh, 0, b"new bytes").expect("write");
    mv(&fs, "d", "e");
    fs.write(opened.fh, 9, b"!")
        .expect("a write after the rename");
    fs.flush(opened.fh).expect("close");
    fs.release(opened.fh).expect("release");
    assert_eq!(mem.content("/e/f").as_deref(), Some(&b"new bytes!"[..]));
    assert_eq!(fs.getattr(f.ino).expect("getattr").size, 10);
    let names = mem.names();
    assert!(
        names.iter().all(|p| !p.starts_with("/d")),
        "nothing left under the old name: {names:?}"
    );
    assert_eq!(names.len(), 3, "/, /e, /e/f: {names:?}");
}

#[test]
fn an_unlinked_open_file_follows_its_directory_when_the_directory_is_renamed() {
    let (mem, fs, _s) = setup(true);
    let d = fs
        .mkdir(inodes::ROOT, OsStr::new("d"), 0o755)
        .expect("mkdir");
    mem.put_file("/d/f", b"kept by the descriptor");
    let f = fs.lookup(d.ino, OsStr::new("f")).expect("lookup");
    let opened = fs.open(f.ino, OpenFlags::default()).expect("open");
    fs.unlink(d.ino, OsStr::new("f")).expect("unlink");
    mv(&fs, "d", "e");
    assert_eq!(
        fs.read(opened.fh, 0, 100).expect("read after the rename"),
        b"kept by the descriptor"
    );
    fs.release(opened.fh).expect("release");
    assert_eq!(
        mem.names().len(),
        2,
        "the hidden copy is gone: {:?}",
        mem.names()
    );
}

#[test]
fn a_rewrite_whose_name_was_taken_by_mv_commits_nothing_over_it() {
    let (mem, fs, _s) = setup(true);
    mem.put_file("/a", b"old a");
    mem.put_file("/b", b"bbb");
    let a = fs.lookup(inodes::ROOT, OsStr::new("a")).expect("lookup");
    let opened = fs.open(a.ino, rewrite()).expect("open a with O_TRUNC");
    fs.write(opened.fh, 0, b"new a").expect("write");
    mv(&fs, "b", "a");
    assert_eq!(
        fs.read(opened.fh, 0, 100).expect("read through the old a"),
        b"new a"
    );
    fs.flush(opened.fh)
        .expect("close, as on a local filesystem");
    fs.release(opened.fh).expect("release");
    assert_eq!(mem.content("/a").as_deref(), Some(&b"bbb"[..]), "mv's file");
    assert_eq!(mem.names().len(), 2, "nothing else: {:?}", mem.names());
}

#[test]
fn contained_symlink_targets_never_leave_the_root() {
    let root = Path::new("/srv/export");
    let link = Path::new("/srv/export/a/b/link");
    let shown = |target: &str| contained_target(root, link, Path::new(target));
    assert_eq!(shown("/srv/export/a/x"), Some(PathBuf::from("../x")));
    assert_eq!(shown("/srv/export/a/b/y"), Some(PathBuf::from("y")));
    assert_eq!(shown("/srv/export"), Some(PathBuf::from("../..")));
    assert_eq!(shown("/srv/export/a/b"), Some(PathBuf::from(".")));
    assert_eq!(shown("../c/../d"), Some(PathBuf::from("../c/../d")));
    assert_eq!(shown("/etc/passwd"), None, "absolute, outside");
    assert_eq!(
        shown("/srv/exported"),
        None,
        "a sibling with the same prefix"
    );
    assert_eq!(shown("../../../x"), None, "relative, out through ..");
    assert_eq!(shown("../../../../../../x"), None, "above /");
}

/// Sets the server's times of `path`, as another client would.
fn date(mem: &Memory, path: &str, ago: Duration) {
    let t = SystemTime::now() - ago;
    mem.setattr(Path::new(path), SetAttr::Times { atime: t, mtime: t })
        .expect("set times");
}

const DAYS_2: Duration = Duration::from_secs(2 * 24 * 3600);

fn listed(fs: &Fs) -> Vec<DirItem> {
    let dir = fs.opendir(inodes::ROOT).expect("opendir");
    let items = fs.readdir(dir.fh).expect("readdir").to_vec();
    fs.releasedir(dir.fh);
    items
}

/// Private names of other mounts are removed only when their mount's
/// marker is missing or stale; ours, a live mount's (whatever their
/// mtime) and names that carry no mount id stay.
#[test]
fn a_listing_removes_only_names_of_gone_mounts() {
    let (mem, fs, _s) = setup(true);
    fs.start_marker();
    let ours_marker = format!("/{}", private_names::marker_name(private_names::mount_id()));
    assert!(mem.content(&ours_marker).is_some(), "{:?}", mem.names());
    let live = "1111111111111111";
    let stale = "2222222222222222";
    let gone = "3333333333333333";
    mem.put_file(&format!("/{}", private_names::marker_name(live)), b"");
    mem.put_file(&format!("/{}", private_names::marker_name(stale)), b"");
    date(
        &mem,
        &format!("/{}", private_names::marker_name(stale)),
        Duration::from_secs(3600),
    );
    mem.mkdir(Path::new("/sub"), 0o755).expect("mkdir");
    let keep = [
        format!("/{}{live}-1", private_names::HIDDEN_PREFIX),
        format!("/sub/{}{live}-2", private_names::TEMP_PREFIX),
        format!("/{}{gone}u-3", private_names::TEMP_PREFIX),
        format!("/{}somehost-1-0-0", private_names::TEMP_PREFIX),
        private_names::private_sibling(Path::new("/f"), private_names::HIDDEN_PREFIX)
            .to_string_lossy()
            .into_owned(),
    ];
    let swept = [
        format!("/{}{stale}-1", private_names::HIDDEN_PREFIX),
        format!("/sub/{}{gone}-2", private_names::TEMP_PREFIX),
        format!("/{}{gone}-4", private_names::TEMP_PREFIX),
    ];
    for name in keep.iter().chain(&swept) {
        mem.put_file(name, b"data");
        date(&mem, name, DAYS_2);
    }
    mem.put_file("/plain", b"x");
    let shown: Vec<OsString> = listed(&fs).into_iter().map(|i| i.name).collect();
    assert_eq!(shown, vec![OsString::from("plain"), OsString::from("sub")]);
    let sub = fs.lookup(inodes::ROOT, OsStr::new("sub")).expect("lookup");
    let dir = fs.opendir(sub.ino).expect("opendir");
    assert!(fs.readdir(dir.fh).expect("readdir").is_empty());
    for name in &keep {
        assert!(mem.content(name).is_some(), "{name} was removed");
    }
    for name in &swept {
        assert!(mem.content(name).is_none(), "{name} was kept");
    }
    assert!(mem.content(&ours_marker).is_some());
    assert!(mem
        .content(&format!("/{}", private_names::marker_name(live)))
        .is_some());

    // The marker is refreshed, made again if it went, removed at unmount.
    date(&mem, &ours_marker, Duration::from_secs(3600));
    fs.refresh_marker();
    let attr = mem.stat(Path::new(&ours_marker)).expect("marker");
    assert_eq!(
        private_names::Marker::of(attr.mtime, SystemTime::now()),
        private_names::Marker::Fresh
    );
    mem.unlink(Path::new(&ours_marker)).expect("unlink");
    fs.refresh_marker();
    assert!(mem.content(&ours_marker).is_some());
    fs.remove_marker();
    assert!(mem.content(&ours_marker).is_none());
}

/// A mount without its own marker (it could not make one, or it is
/// read-only) removes nothing.
#[test]
fn a_mount_without_a_marker_removes_nothing() {
    let (mem, fs, _s) = setup(true);
    let gone = format!("/{}4444444444444444-1", private_names::TEMP_PREFIX);
    mem.put_file(&gone, b"data");
    date(&mem, &gone, DAYS_2);
    assert!(listed(&fs).is_empty());
    assert!(mem.content(&gone).is_some());
}

/// An open file unlinked in this mount lives under a hidden name that its
/// own listings never remove, whatever its mtime.
#[test]
fn our_hidden_file_survives_our_listings() {
    let (mem, fs, _s) = setup(true);
    fs.start_marker();
    mem.put_file("/f", b"keep me");
    date(&mem, "/f", DAYS_2);
    let entry = fs.lookup(inodes::ROOT, OsStr::new("f")).expect("lookup");
    let opened = fs.open(entry.ino, OpenFlags::default()).expect("open");
    fs.unlink(inodes::ROOT, OsStr::new("f")).expect("unlink");
    for _ in 0..3 {
        fs.meta.forget_tree(Path::new("/"));
        assert!(listed(&fs).is_empty());
    }
    assert_eq!(fs.read(opened.fh, 0, 100).expect("read"), b"keep me");
    fs.release(opened.fh).expect("release");
    fs.remove_marker();
}

/// A new file counts as an upload pending from its creation (its handle
/// is kept open) until the close commits it.
#[test]
fn a_new_file_is_pending_from_its_creation_until_its_close() {
    let (_mem, fs, _s) = setup(true);
    let (_, opened) = fs
        .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
        .expect("create");
    assert_eq!(fs.held().uploads_pending, 1, "created");
    fs.write(opened.fh, 0, b"not yet committed").expect("write");
    assert_eq!(fs.held().uploads_pending, 1, "written");
    fs.flush(opened.fh).expect("flush");
    fs.release(opened.fh).expect("release");
    assert_eq!(fs.held().uploads_pending, 0, "closed");
}

/// `tar x` sets each file's times through its open descriptor after the
/// last write: with the attributes known from the create, neither a stat
/// before nor one after; the times are the ones set, in whole seconds.
#[test]
fn times_set_on_a_new_open_file_need_no_stat() {
    let (mem, fs, _s) = setup(true);
    mem.created_attrs.store(true, Ordering::SeqCst);
    let (entry, opened) = fs
        .create(inodes::ROOT, OsStr::new("f"), 0o644, rw())
        .expect("create");
    fs.write(opened.fh, 0, &[1u8; 3000]).expect("write");
    let t = std::time::UNIX_EPOCH + Duration::from_millis(1_000_000_000_700);
    let change = SetAttrs {
        by_handle: true,
        atime: Some(TimeSet::At(t)),
        mtime: Some(TimeSet::At(t)),
        ..Default::default()
    };
    let attr = fs.setattr(entry.ino, change).expect("utimens");
    let whole = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    assert_eq!((attr.mtime, attr.size), (whole, 3000));
    fs.flush(opened.fh).expect("flush");
    fs.release(opened.fh).expect("release");
    let made = calls(&mem);
    assert!(!made.iter().any(|c| c.starts_with("stat")), "{made:?}");
    assert_eq!(made.len(), 4, "create, write, times, close: {made:?}");
    // (The in-memory server keeps sub-seconds; SFTP keeps whole ones.)
    let server = mem.stat(Path::new("/f")).expect("on the server");
    assert_eq!(
        (crate::types::unix_secs(server.mtime), server.size),
        (1_000_000_000, 3000)
    );
}
