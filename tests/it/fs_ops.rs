//! Every filesystem operation through a real rmount mount, checked both
//! through the mount and directly in the server's own directory.
//!
//! One suite, run on every server of the matrix: each behaviour is a
//! function `fn xxx(p: ServerKind)`, and `on_every_server!` turns it into
//! the tests `sftp::xxx`, `sftp_chroot::xxx`, `gesftp::xxx`, `ftp::xxx`,
//! `ftps::xxx`, `proftpd::xxx` and `pureftpd::xxx`. Where a server cannot
//! do something (symlinks, chown, byte-exact names, huge sparse files over
//! FTP) its test asserts what the mount does instead.
//!
//! One server per kind is shared by the tests running at the same time
//! (see support/fixture.rs); every test mounts its own subdirectory.
//! Run: `cargo test --test it -- fs_ops:: --test-threads=2`.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::fixture::*;
use crate::support::*;

on_every_server! {
    stat_matches_server,
    readdir_names_and_types,
    readdir_2000_entries,
    create_exclusive,
    open_truncate,
    append,
    write_past_eof_is_sparse,
    overwrite_middle_in_place,
    random_reads_20mib,
    read_256mib_in_bounded_memory,
    truncate_down_and_up,
    chmod,
    chmod_while_open_for_writing,
    read_only_modes_keep_writers,
    utimens_explicit_now_omit,
    utimens_out_of_range,
    ctime_follows_changes,
    chown,
    access_follows_modes_and_owner,
    symlink_readlink_lstat,
    mkdir_rmdir,
    unlink,
    rename_file,
    rename_replaces_file,
    rename_while_open_for_writing,
    rename_racing_a_flush_keeps_data,
    renames_under_open_files,
    rename_dir_over_empty_dir,
    rename_dir_over_nonempty_dir,
    hard_link,
    statfs,
    names_spaces_unicode,
    names_leading_trailing_spaces,
    unlinked_file_stays_usable,
    two_mounts_leave_each_others_files_alone,
    fstat_after_unlink_has_no_links,
    missing_is_enoent,
    name_too_long,
    server_changes_become_visible,
    close_to_open,
    nocto_trusts_the_cache,
    own_writes_visible_at_once,
    dir_mtime_follows_changes_through_mount,
    fsync_reaches_server,
    parallel_writers_and_readers,
    sequential_readers_progress_together,
    stat_answers_during_big_read,
    read_only_mount;
    sftp_only:
    contain_symlinks,
    // FTP writes stage the whole file locally: a 5 GiB rewrite is no quick test.
    huge_sparse_file,
    // FTP has no symlinks.
    setattr_on_symlink_spares_target,
    // The FTP server speaks UTF-8 names (utf8_filesystem): no byte-exact names.
    names_non_utf8,
}

const MIB: usize = 1 << 20;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn meta(p: &Path) -> fs::Metadata {
    fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn mode(p: &Path) -> u32 {
    meta(p).permissions().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    fs::set_permissions(p, Permissions::from_mode(m))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn open_rw(p: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap_or_else(|e| panic!("open rw {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// lookup, stat, readdir
// ---------------------------------------------------------------------------

// Size, type, mode and mtime of a file and a directory match the server's.
fn stat_matches_server(p: ServerKind) {
    let fx = Fixture::new(p, "stat", &[]);
    let f = fx.put("d/f.bin", &pseudo_random_bytes(12_345, 1));
    set_mode(&f, 0o640);
    set_server_times(&f, 1_500_000_000, 1_600_000_000);
    let d = fx.s("d");
    set_mode(&d, 0o750);
    // FTP has no exact directory times (MDTM is for files; LIST shows
    // minutes for recent dates): use a recent whole minute.
    let dir_mtime = (now_secs() - 3600) / 60 * 60;
    set_server_times(&d, dir_mtime, dir_mtime);

    let fm = meta(&fx.m("d/f.bin"));
    let sm = meta(&f);
    assert!(fm.is_file());
    assert_eq!(fm.len(), 12_345);
    assert_eq!(fm.permissions().mode() & 0o7777, 0o640);
    assert_eq!(fm.mtime(), 1_600_000_000, "file mtime through the mount");
    assert_eq!((fm.len(), fm.mtime()), (sm.len(), sm.mtime()));
    if p == Proto::Sftp {
        assert_eq!((fm.uid(), fm.gid()), (sm.uid(), sm.gid()), "owner");
    }

    let dm = meta(&fx.m("d"));
    assert!(dm.is_dir());
    assert_eq!(dm.permissions().mode() & 0o7777, 0o750);
    if p == Proto::Sftp {
        assert_eq!(dm.mtime(), dir_mtime, "dir mtime through the mount");
    } else {
        assert!(
            (dm.mtime() - dir_mtime).abs() < 60,
            "dir mtime {} vs {dir_mtime}",
            dm.mtime()
        );
    }
    assert!(meta(&fx.m("")).is_dir(), "mount root is a directory");
}

// readdir lists every name with the right type; `ls -la` agrees.
fn readdir_names_and_types(p: ServerKind) {
    let fx = Fixture::new(p, "readdir", &[]);
    fx.put("a.txt", b"a");
    fx.put("sub/inner.txt", b"x");
    fx.put_dir("empty");
    let mut want = vec![("a.txt", 'f'), ("empty", 'd'), ("sub", 'd')];
    if p == Proto::Sftp {
        std::os::unix::fs::symlink("a.txt", fx.s("ln")).unwrap();
        want.push(("ln", 'l'));
    } else {
        skip(p, "no symlink entry in the listing: FTP has no symlinks");
    }
    want.sort();

    let mut got: Vec<(String, char)> = fs::read_dir(fx.m(""))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let k = if t.is_symlink() {
                'l'
            } else if t.is_dir() {
                'd'
            } else {
                'f'
            };
            (e.file_name().into_string().unwrap(), k)
        })
        .collect();
    got.sort();
    let want_owned: Vec<(String, char)> = want.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    assert_eq!(got, want_owned, "read_dir names and types");
    assert_eq!(
        names(&fx.m("sub")),
        vec![OsStr::new("inner.txt").to_os_string()]
    );

    let out = run_cmd(
        Command::new("ls").arg("-la").arg(fx.m("")),
        Duration::from_secs(30),
        None,
    );
    assert!(out.status.success(), "ls -la\n{}", describe_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for (name, kind) in &want {
        let line = text
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} -> ")))
            .unwrap_or_else(|| panic!("ls -la lacks {name}:\n{text}"));
        let first = line.chars().next().unwrap();
        let expect = if *kind == 'f' { '-' } else { *kind };
        assert_eq!(first, expect, "ls -la type of {name}: {line}");
    }
}

// A directory of 2000 entries lists completely.
fn readdir_2000_entries(p: ServerKind) {
    let fx = Fixture::new(p, "many", &[]);
    let dir = fx.put_dir("many");
    let mut want = Vec::new();
    for i in 0..2000 {
        let name = format!("entry-{i:04}");
        fs::write(dir.join(&name), i.to_string()).unwrap();
        want.push(std::ffi::OsString::from(name));
    }
    let got = names(&fx.m("many"));
    assert_eq!(got.len(), 2000, "entries listed through the mount");
    assert_eq!(got, want);
    assert_eq!(read(&fx.m("many/entry-1999")), b"1999");
}

// ---------------------------------------------------------------------------
// create, open flags, writes, reads
// ---------------------------------------------------------------------------

// O_CREAT|O_EXCL creates once; a second create (or one racing the server) is EEXIST.
fn create_exclusive(p: ServerKind) {
    let fx = Fixture::new(p, "excl", &[]);
    let excl = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(fx.m("new.txt"))
    };
    let mut f = excl().expect("first O_EXCL create");
    f.write_all(b"first").unwrap();
    drop(f);
    assert_eq!(read(&fx.s("new.txt")), b"first");
    assert_errno(excl(), &[libc::EEXIST], "second O_EXCL create");
    assert_eq!(
        read(&fx.s("new.txt")),
        b"first",
        "a failed O_EXCL must not touch the file"
    );

    // The mount saw "behind.txt" missing; then the server created it.
    assert_errno(
        fs::metadata(fx.m("behind.txt")),
        &[libc::ENOENT],
        "stat before",
    );
    fx.put("behind.txt", b"server's");
    let r = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(fx.m("behind.txt"));
    assert_errno(
        r,
        &[libc::EEXIST],
        "O_EXCL over a file the server just created",
    );
    assert_eq!(read(&fx.s("behind.txt")), b"server's");
}

// O_TRUNC empties an existing file; what is written replaces it.
fn open_truncate(p: ServerKind) {
    let fx = Fixture::new(p, "trunc", &[]);
    fx.put("t.txt", &pseudo_random_bytes(1000, 2));
    fx.put("e.txt", b"something");
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(fx.m("t.txt"))
        .unwrap();
    f.write_all(b"new").unwrap();
    drop(f);
    assert_eq!(read(&fx.s("t.txt")), b"new");
    assert_eq!(read(&fx.m("t.txt")), b"new");

    drop(
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(fx.m("e.txt"))
            .unwrap(),
    );
    assert_eq!(
        meta(&fx.s("e.txt")).len(),
        0,
        "O_TRUNC without a write empties the file"
    );
    assert_eq!(meta(&fx.m("e.txt")).len(), 0);
}

// O_APPEND adds to the end of an existing file, every time.
fn append(p: ServerKind) {
    let fx = Fixture::new(p, "append", &[]);
    fx.put("log", b"hello ");
    let app = || OpenOptions::new().append(true).open(fx.m("log")).unwrap();
    let mut f = app();
    f.write_all(b"world").unwrap();
    drop(f);
    assert_eq!(read(&fx.s("log")), b"hello world");
    let mut f = app();
    // O_APPEND ignores the file position.
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"!").unwrap();
    f.write_all(b"?").unwrap();
    drop(f);
    assert_eq!(read(&fx.s("log")), b"hello world!?");
    assert_eq!(read(&fx.m("log")), b"hello world!?");
}

// A write far beyond EOF extends the file with zeros in between.
fn write_past_eof_is_sparse(p: ServerKind) {
    let fx = Fixture::new(p, "sparse", &[]);
    fx.put("s", b"abc");
    let f = OpenOptions::new().write(true).open(fx.m("s")).unwrap();
    f.write_all_at(b"xyz", 10_000).unwrap();
    drop(f);
    let mut want = b"abc".to_vec();
    want.resize(10_000, 0);
    want.extend_from_slice(b"xyz");
    let got = read(&fx.s("s"));
    assert_eq!(got.len(), 10_003);
    assert!(
        got == want,
        "server bytes: head {:?}, tail {:?}",
        &got[..3],
        &got[9_998..]
    );
    assert!(read(&fx.m("s")) == want, "read back through the mount");
}

// Overwriting the middle of a file changes only those bytes.
fn overwrite_middle_in_place(p: ServerKind) {
    let fx = Fixture::new(p, "middle", &[]);
    let mut want = pseudo_random_bytes(MIB, 3);
    fx.put("m.bin", &want);
    let f = OpenOptions::new().write(true).open(fx.m("m.bin")).unwrap();
    f.write_all_at(&[0xAA; 1000], 500_000).unwrap();
    drop(f);
    want[500_000..501_000].fill(0xAA);
    assert_eq!(
        sha256_file(&fx.s("m.bin")),
        sha256_bytes(&want),
        "server content"
    );
    assert_eq!(
        sha256_file(&fx.m("m.bin")),
        sha256_bytes(&want),
        "mount content"
    );
}

// Reads at random offsets of a 20 MiB file return the server's bytes.
fn random_reads_20mib(p: ServerKind) {
    let fx = Fixture::new(p, "random", &[]);
    let data = pseudo_random_bytes(20 * MIB, 4);
    fx.put("r.bin", &data);
    let f = File::open(fx.m("r.bin")).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % (300 * 1024) as u64) as usize + 1;
        // A few reads straddle or pass the end of the file.
        let off = if i % 20 == 0 {
            data.len() as u64 - 100 + (x % 200)
        } else {
            (x >> 20) % data.len() as u64
        };
        let mut buf = vec![0u8; len];
        let mut n = 0;
        while n < len {
            let k = f.read_at(&mut buf[n..], off + n as u64).unwrap();
            if k == 0 {
                break;
            }
            n += k;
        }
        let start = (off as usize).min(data.len());
        let want = &data[start..(start + len).min(data.len())];
        assert_eq!(n, want.len(), "read length at offset {off}");
        assert!(
            &buf[..n] == want,
            "bytes at offset {off} (len {len}) differ"
        );
    }
    assert_eq!(sha256_file(&fx.m("r.bin")), sha256_bytes(&data));
}

// A 256 MiB file read from start to end arrives whole, and the daemon's
// peak resident memory stays under its block cache budget plus 32 MiB
// (buffers in flight, the connections, the program itself): the stream
// does not pile up blocks or transfer buffers.
fn read_256mib_in_bounded_memory(p: ServerKind) {
    const CACHE_MIB: u64 = 64;
    let cache = format!("cache_size={CACHE_MIB}");
    let fx = Fixture::new(p, "bigread", &["-o", &cache]);
    {
        let mut f = File::create(fx.s("big.bin")).expect("create the file on the server");
        for i in 0..256 {
            f.write_all(&mib_chunk(9, i))
                .expect("write the file on the server");
        }
    }
    fx.server.chown_tree(&format!("{}/big.bin", fx.sub));
    let want = sha256_file(&fx.s("big.bin"));
    let pid = fx.mount().daemon_pid().expect("the daemon's pid");
    let before = peak_rss_tree(pid);
    assert_eq!(sha256_file(&fx.m("big.bin")), want, "the bytes read");
    let peak = peak_rss_tree(pid);
    eprintln!(
        "{p:?}: peak RSS {} MiB before the read, {} MiB after 256 MiB",
        before >> 20,
        peak >> 20
    );
    let bound = (CACHE_MIB + 32) << 20;
    assert!(
        peak <= bound,
        "peak RSS {} MiB over {} MiB (cache_size {CACHE_MIB} MiB + 32 MiB)",
        peak >> 20,
        bound >> 20
    );
}

// A 5 GiB sparse file: its last bytes read right, a byte written at 4.5 GiB lands there.
fn huge_sparse_file(p: ServerKind) {
    let fx = Fixture::new(p, "huge", &[]);
    const SIZE: u64 = 5 << 30;
    let s = fx.put("big", b"");
    {
        let f = OpenOptions::new().write(true).open(&s).unwrap();
        f.set_len(SIZE).unwrap();
        f.write_all_at(b"ENDMARK!", SIZE - 8).unwrap();
    }
    let m = fx.m("big");
    assert_eq!(meta(&m).len(), SIZE);
    let f = File::open(&m).unwrap();
    let mut tail = [0u8; 8];
    f.read_exact_at(&mut tail, SIZE - 8).unwrap();
    assert_eq!(&tail, b"ENDMARK!");
    let mut mid = vec![1u8; 4096];
    f.read_exact_at(&mut mid, 4 << 30).unwrap();
    assert!(mid.iter().all(|&b| b == 0), "hole reads as zeros");
    drop(f);

    let at = (9u64 << 30) / 2;
    let w = OpenOptions::new().write(true).open(&m).unwrap();
    w.write_all_at(b"Z", at).unwrap();
    drop(w);
    let sf = File::open(&s).unwrap();
    let mut b = [0u8; 1];
    sf.read_exact_at(&mut b, at).unwrap();
    assert_eq!(&b, b"Z", "byte at 4.5 GiB on the server");
    sf.read_exact_at(&mut tail, SIZE - 8).unwrap();
    assert_eq!(&tail, b"ENDMARK!");
    assert_eq!(meta(&s).len(), SIZE, "size unchanged");
}

// ftruncate and truncate shrink and grow a file (zeros when growing).
fn truncate_down_and_up(p: ServerKind) {
    let fx = Fixture::new(p, "truncate", &[]);
    let data = pseudo_random_bytes(100, 5);
    fx.put("t", &data);
    let f = open_rw(&fx.m("t"));
    f.set_len(50).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 50, "fstat after ftruncate");
    drop(f);
    assert_eq!(read(&fx.s("t")), &data[..50]);

    truncate_path(&fx.m("t"), 200).unwrap();
    let mut want = data[..50].to_vec();
    want.resize(200, 0);
    assert_eq!(read(&fx.s("t")), want, "grown on the server, zero-filled");
    assert_eq!(meta(&fx.m("t")).len(), 200);
    assert_eq!(read(&fx.m("t")), want);

    truncate_path(&fx.m("t"), 0).unwrap();
    assert_eq!(meta(&fx.s("t")).len(), 0);
    assert_eq!(meta(&fx.m("t")).len(), 0);
}

// chmod of a file and a directory sets the mode on the server.
fn chmod(p: ServerKind) {
    let fx = Fixture::new(p, "chmod", &[]);
    fx.put("f", b"x");
    fx.put_dir("d");
    for m in [0o600, 0o755, 0o640] {
        set_mode(&fx.m("f"), m);
        assert_eq!(mode(&fx.s("f")), m, "server mode of f");
        assert_eq!(mode(&fx.m("f")), m, "mount mode of f");
    }
    set_mode(&fx.m("d"), 0o700);
    assert_eq!(mode(&fx.s("d")), 0o700);
    assert_eq!(mode(&fx.m("d")), 0o700);
    // A file created through the mount gets the mode it was created with.
    drop(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(fx.m("new"))
            .unwrap(),
    );
    assert_eq!(mode(&fx.s("new")), 0o600);
}

// fchmod/chmod (and fchown) while a file is open for writing survive the close
// (what cp -a and tar x do: create 0600, write, fchmod, close).
fn chmod_while_open_for_writing(p: ServerKind) {
    let fx = Fixture::new(p, "chmodopen", &[]);
    fx.put("old", b"old content");
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(fx.m("new"))
        .unwrap();
    f.write_all(b"data").unwrap();
    f.set_permissions(Permissions::from_mode(0o644)).unwrap();
    drop(f);
    assert_eq!(
        mode(&fx.s("new")),
        0o644,
        "server mode after fchmod + close"
    );
    assert_eq!(mode(&fx.m("new")), 0o644, "mount mode after close");

    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(fx.m("old"))
        .unwrap();
    f.write_all(b"rewritten").unwrap();
    set_mode(&fx.m("old"), 0o600);
    drop(f);
    assert_eq!(read(&fx.s("old")), b"rewritten");
    assert_eq!(
        mode(&fx.s("old")),
        0o600,
        "server mode after chmod during a rewrite"
    );
    assert_eq!(mode(&fx.m("old")), 0o600, "mount mode after close");
}

// A file created read-only stays writable through the descriptor that
// created it, and `chmod 0444` of a file open for writing does not break
// its writer, as on a local filesystem; the server ends with the data and
// the read-only mode (the login could not write to such a file itself).
fn read_only_modes_keep_writers(p: ServerKind) {
    let fx = Fixture::new(p, "romode", &[]);
    fx.put("w", b"");
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(fx.m("ro"))
        .unwrap();
    f.write_all(b"first").unwrap();
    f.sync_all().unwrap();
    f.write_all(b" second").unwrap();
    drop(f);
    assert_eq!(read(&fx.s("ro")), b"first second");
    assert_eq!(mode(&fx.s("ro")), 0o444, "server mode");
    assert_eq!(mode(&fx.m("ro")), 0o444, "mount mode");

    let mut f = OpenOptions::new().write(true).open(fx.m("w")).unwrap();
    f.write_all(b"before").unwrap();
    set_mode(&fx.m("w"), 0o444);
    assert_eq!(mode(&fx.m("w")), 0o444, "mount mode while open");
    f.write_all(b" after").unwrap();
    f.sync_all().unwrap();
    f.write_all(b" more").unwrap();
    drop(f);
    assert_eq!(read(&fx.s("w")), b"before after more");
    assert_eq!(
        mode(&fx.s("w")),
        0o444,
        "server mode after the writer closed"
    );

    File::options()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(fx.m("empty"))
        .unwrap();
    assert_eq!(mode(&fx.s("empty")), 0o400, "an empty file created 0400");
    assert_eq!(read(&fx.s("empty")), b"");
}

// utimensat: explicit times, UTIME_NOW, and UTIME_OMIT keeping the other time.
fn utimens_explicit_now_omit(p: ServerKind) {
    let fx = Fixture::new(p, "utimens", &[]);
    let sftp = p == Proto::Sftp;
    if !sftp {
        skip(
            p,
            "atime checks: FTP cannot set or report atime (MDTM is mtime only)",
        );
    }
    fx.put("f", b"x");
    let (m, s) = (fx.m("f"), fx.s("f"));
    let times = |path: &Path| {
        let md = meta(path);
        (md.atime(), md.mtime())
    };

    utimens(&m, T::At(1_000_000_000), T::At(1_100_000_000), false).unwrap();
    assert_eq!(times(&s).1, 1_100_000_000, "server mtime");
    assert_eq!(times(&m).1, 1_100_000_000, "mount mtime");
    if sftp {
        assert_eq!(times(&s).0, 1_000_000_000, "server atime");
    }

    utimens(&m, T::Omit, T::At(1_200_000_000), false).unwrap();
    assert_eq!(times(&s).1, 1_200_000_000, "mtime set with atime omitted");
    if sftp {
        assert_eq!(times(&s).0, 1_000_000_000, "omitted atime kept");
    }

    utimens(&m, T::At(1_300_000_000), T::Omit, false).unwrap();
    assert_eq!(times(&s).1, 1_200_000_000, "omitted mtime kept");
    assert_eq!(times(&m).1, 1_200_000_000);
    if sftp {
        assert_eq!(times(&s).0, 1_300_000_000, "atime set with mtime omitted");
    }

    let before = now_secs();
    utimens(&m, T::Omit, T::Now, false).unwrap();
    let after = now_secs();
    let mt = times(&s).1;
    assert!(
        mt >= before - 2 && mt <= after + 2,
        "UTIME_NOW mtime {mt} not in [{before}, {after}]"
    );
    if sftp {
        assert_eq!(
            times(&s).0,
            1_300_000_000,
            "atime kept by UTIME_NOW on mtime only"
        );
    }
}

// A time the protocol cannot carry (SFTP v3: 32-bit unsigned seconds; FTP:
// no time before 1970, four-digit years) fails with EOVERFLOW and changes
// nothing; it is never stored as 1970 or cut to 32 bits.
fn utimens_out_of_range(p: ServerKind) {
    let fx = Fixture::new(p, "timerange", &[]);
    let s = fx.put("f", b"x");
    // A recent whole minute: what an FTP listing shows exactly.
    let t0 = (now_secs() - 3600) / 60 * 60;
    set_server_times(&s, t0, t0);
    let m = fx.m("f");
    let e = &[libc::EOVERFLOW, libc::EINVAL];
    let day = 86_400;
    assert_errno(utimens(&m, T::At(-day), T::At(-day), false), e, "1969");
    assert_errno(
        utimens(&m, T::Omit, T::At(-1), false),
        e,
        "1969, mtime only",
    );
    let too_late = if p == Proto::Sftp {
        1 << 32 // 2106-02-07 06:28:16
    } else {
        253_402_300_800 // year 10000
    };
    assert_errno(
        utimens(&m, T::Omit, T::At(too_late), false),
        e,
        "past the range",
    );
    assert_eq!(meta(&s).mtime(), t0, "server mtime untouched");
    assert_eq!(meta(&m).mtime(), t0, "mount mtime untouched");
    if p == Proto::Sftp {
        // The ends of the range are fine.
        let last = i64::from(u32::MAX);
        utimens(&m, T::At(0), T::At(last), false).expect("the last second SFTP v3 can carry");
        assert_eq!((meta(&s).atime(), meta(&s).mtime()), (0, last));
        assert_eq!(meta(&m).mtime(), last);
    } else {
        utimens(&m, T::Omit, T::At(1_600_000_000), false).expect("an ordinary time");
        assert_eq!(meta(&s).mtime(), 1_600_000_000);
    }
}

/// access(2) of `name` in `dir` by a process with `uid`, `gid` and the
/// supplementary `groups`: a child that enters `dir` as root (so the path
/// above it needs no permissions), drops to those ids and asks.
fn access_as(dir: &Path, name: &str, ids: (u32, u32, &[u32]), mode: i32) -> std::io::Result<()> {
    use std::ffi::CString;
    const SETUP_FAILED: i32 = 200;
    let (uid, gid, groups) = ids;
    let dir = CString::new(dir.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: the child makes only async-signal-safe calls, on memory
    // prepared before the fork, and ends with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            let code = if libc::chdir(dir.as_ptr()) != 0
                || libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                SETUP_FAILED
            } else if libc::access(name.as_ptr(), mode) == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code);
        }
    }
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: waits for the child just made.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid");
    assert!(libc::WIFEXITED(status), "the child died: {status:#x}");
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        SETUP_FAILED => panic!("the child could not enter the mount or take ids {uid}/{gid}"),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// access(2) as this process (root).
fn access(p: &Path, mode: i32) -> std::io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    if unsafe { libc::access(c.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

// access(2) answers from the mode bits and owner as the mount shows them, as
// a local filesystem: owner, else group (primary or supplementary), else
// other bits; root reads and writes anything and executes only what has an
// x bit (or is a directory).
fn access_follows_modes_and_owner(p: ServerKind) {
    // Other users may use this mount, so that they can be asked about.
    let fx = Fixture::new(p, "access", &["-o", "allow_other"]);
    for (name, mode) in [
        ("r644", 0o644),
        ("x755", 0o755),
        ("none", 0o000),
        ("g640", 0o640),
    ] {
        set_mode(&fx.put(name, b"x"), mode);
    }
    set_mode(&fx.put("o077", b"x"), 0o077);
    set_mode(&fx.put_dir("d700"), 0o700);
    let owner = 4243;
    if p == Proto::Sftp {
        // The owner as the server has it (FTP shows every file as the
        // local user's). Only its attributes are looked at, never its data.
        std::os::unix::fs::chown(fx.s("o077"), Some(owner), Some(owner)).unwrap();
    }
    let (r, w, x) = (libc::R_OK, libc::W_OK, libc::X_OK);
    let denied = &[libc::EACCES];

    // Root.
    access(&fx.m("r644"), libc::F_OK).expect("F_OK");
    access(&fx.m("none"), r | w).expect("root reads and writes a 0000 file");
    assert_errno(access(&fx.m("r644"), x), denied, "root X_OK on a 0644 file");
    assert_errno(access(&fx.m("none"), x), denied, "root X_OK on a 0000 file");
    access(&fx.m("x755"), x).expect("root X_OK on a 0755 file");
    access(&fx.m("d700"), r | w | x).expect("root on a 0700 directory");
    assert_errno(
        access(&fx.m("missing"), libc::F_OK),
        &[libc::ENOENT],
        "F_OK of a missing name",
    );

    // Another user, in the file's group or not.
    let dir = fx.m("");
    let group = meta(&fx.m("g640")).gid();
    assert_ne!(group, 4242, "the group the test takes as 'other'");
    let other: (u32, u32, &[u32]) = (4242, 4242, &[]);
    let in_group: (u32, u32, &[u32]) = (4242, group, &[]);
    let supplementary: (u32, u32, &[u32]) = (4242, 4242, &[group]);
    access_as(&dir, "r644", other, r).expect("other reads a 0644 file");
    assert_errno(
        access_as(&dir, "r644", other, w),
        denied,
        "other writes a 0644 file",
    );
    assert_errno(
        access_as(&dir, "g640", other, r),
        denied,
        "other reads a 0640 file",
    );
    access_as(&dir, "g640", in_group, r).expect("the group reads a 0640 file");
    assert_errno(
        access_as(&dir, "g640", in_group, w),
        denied,
        "the group writes a 0640 file",
    );
    access_as(&dir, "g640", supplementary, r).expect("a supplementary group reads a 0640 file");
    access_as(&dir, "x755", other, r | x).expect("other runs a 0755 file");
    assert_errno(
        access_as(&dir, "r644", other, x),
        denied,
        "other runs a 0644 file",
    );
    access_as(&dir, "missing", other, libc::F_OK).expect_err("F_OK of a missing name");
    assert_errno(
        access_as(&dir, "d700", other, x),
        denied,
        "other searches a 0700 directory",
    );

    // The owner's bits decide for the owner, even where others may more.
    if p == Proto::Sftp {
        assert_eq!(meta(&fx.m("o077")).uid(), owner);
        let the_owner: (u32, u32, &[u32]) = (owner, owner, &[]);
        assert_errno(
            access_as(&dir, "o077", the_owner, r),
            denied,
            "the owner of a 0077 file",
        );
        access_as(&dir, "o077", other, r | w | x).expect("others on a 0077 file");
    } else {
        skip(
            p,
            "owner checks: FTP shows every file as the mounting user's",
        );
    }
}

// ctime moves forward with every change made through the mount (chmod,
// chown, utimens, write, truncate, rename), though neither protocol can
// store it; until then it is the mtime.
fn ctime_follows_changes(p: ServerKind) {
    let fx = Fixture::new(p, "ctime", &[]);
    let s = fx.put("f", b"abc");
    // A recent whole minute: what an FTP listing shows exactly.
    let t0 = (now_secs() - 3600) / 60 * 60;
    set_server_times(&s, t0, t0);
    let mut m = fx.m("f");
    let ctime_of = |path: &Path| {
        let md = meta(path);
        (md.ctime(), md.ctime_nsec())
    };
    assert_eq!(ctime_of(&m), (t0, 0), "nothing changed yet: the mtime");
    let last = std::cell::Cell::new((t0, 0));
    let check = |path: &Path, what: &str, started: i64| {
        let (c, before) = (ctime_of(path), last.get());
        assert!(c > before, "{what}: ctime {c:?} is not after {before:?}");
        assert!(
            c.0 >= started,
            "{what}: ctime {c:?} before the change ({started})"
        );
        assert!(c.0 >= meta(path).mtime(), "{what}: ctime before the mtime");
        last.set(c);
    };

    let started = now_secs();
    set_mode(&m, 0o600);
    check(&m, "chmod", started);
    if p == Proto::Sftp {
        // To the owner it has: allowed for any login, and still a change.
        let md = meta(&m);
        std::os::unix::fs::chown(&m, Some(md.uid()), Some(md.gid())).unwrap();
        check(&m, "chown", started);
    }
    utimens(&m, T::At(t0), T::At(t0), false).unwrap();
    assert_eq!(meta(&m).mtime(), t0, "utimens set an old mtime");
    check(&m, "utimens to an old time", started);
    let mut f = OpenOptions::new().append(true).open(&m).unwrap();
    f.write_all(b"d").unwrap();
    check(&m, "write, before close", started);
    drop(f);
    assert!(
        ctime_of(&m) >= last.get(),
        "the close kept the write's ctime"
    );
    // Growing: FTP can shrink a file by path only to nothing.
    truncate_path(&m, 6).unwrap();
    check(&m, "truncate", started);
    fs::rename(&m, fx.m("g")).unwrap();
    m = fx.m("g");
    check(&m, "rename", started);
    assert_eq!(read(&fx.s("g")), b"abcd\0\0");
}

// chown to the owner shown is a no-op that succeeds; to anyone else the
// ordinary login gets EPERM (FTP: EPERM or ENOTSUP).
fn chown(p: ServerKind) {
    let fx = Fixture::new(p, "chown", &[]);
    fx.put("f", b"x");
    let (m, s) = (fx.m("f"), fx.s("f"));
    let before = meta(&s);
    // To the owner and group the mount shows: a no-op that succeeds (cp -a
    // and rsync -a of one's own files ask for it), also over FTP.
    let shown = meta(&m);
    std::os::unix::fs::chown(&m, Some(shown.uid()), Some(shown.gid())).unwrap();
    std::os::unix::fs::chown(&m, None, Some(shown.gid())).unwrap();
    // To anyone else: the ordinary login may not (EPERM, as chown(2) says
    // to a non-root caller); FTP cannot change owners at all.
    let r = std::os::unix::fs::chown(&m, Some(1234), Some(2345));
    assert_errno(r, &[libc::EPERM, libc::ENOTSUP], "chown to another user");
    let r = std::os::unix::fs::chown(&m, None, Some(2345));
    assert_errno(r, &[libc::EPERM, libc::ENOTSUP], "chgrp to another group");
    let after = meta(&s);
    assert_eq!(
        (after.uid(), after.gid()),
        (before.uid(), before.gid()),
        "owner unchanged on the server"
    );
    assert_eq!(
        (meta(&m).uid(), meta(&m).gid()),
        (shown.uid(), shown.gid()),
        "owner unchanged through the mount"
    );
}

// Open files keep working when what is around them moves: a file being
// rewritten whose directory is renamed, an unlinked open file whose
// directory is renamed, and a rewrite whose name `mv` gives to another
// file (its close succeeds and commits nothing over that file).
fn renames_under_open_files(p: ServerKind) {
    let fx = Fixture::new(p, "renames", &[]);
    fx.put("d/f", b"old f");
    fx.put("d/g", b"kept by the descriptor");
    fx.put("a", b"old a");
    fx.put("b", b"the file mv brings");
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(fx.m("d/f"))
        .unwrap();
    f.write_all(b"new f").unwrap();
    let mut g = File::open(fx.m("d/g")).unwrap();
    fs::remove_file(fx.m("d/g")).unwrap();
    fs::rename(fx.m("d"), fx.m("e")).unwrap();
    f.write_all(b", longer").unwrap();
    drop(f);
    assert_eq!(read(&fx.s("e/f")), b"new f, longer", "the rewrite followed");
    let mut kept = Vec::new();
    g.read_to_end(&mut kept).unwrap();
    assert_eq!(
        kept, b"kept by the descriptor",
        "the unlinked file followed"
    );
    drop(g);

    let mut a = OpenOptions::new()
        .read(true)
        .write(true)
        .truncate(true)
        .open(fx.m("a"))
        .unwrap();
    a.write_all(b"new a").unwrap();
    fs::rename(fx.m("b"), fx.m("a")).unwrap();
    a.write_all(b"!").unwrap();
    a.flush().unwrap();
    a.sync_all().expect("fsync of the file that lost its name");
    drop(a);
    assert_eq!(
        read(&fx.s("a")),
        b"the file mv brings",
        "mv's file keeps the name"
    );
    assert_eq!(read(&fx.m("a")), b"the file mv brings");
    assert!(!fx.s("d").exists() && !fx.s("b").exists());
    wait_until("no .rmount-* leftovers", COHERENCE_DEADLINE, || {
        private_leftovers(&fx.s("")).is_empty()
    });
}

// ---------------------------------------------------------------------------
// symlinks
// ---------------------------------------------------------------------------

// symlink creates a link on the server; readlink, lstat and following work.
fn symlink_readlink_lstat(p: ServerKind) {
    let fx = Fixture::new(p, "symlink", &[]);
    fx.put("target.txt", b"pointed-to");
    fx.put("sub/inner", b"in");
    std::os::unix::fs::symlink("target.txt", fx.s("server-made")).unwrap();
    if p.is_ftp() {
        let r = std::os::unix::fs::symlink("target.txt", fx.m("ln"));
        assert_errno(r, &[libc::EPERM], "symlink over FTP");
        assert!(
            fs::symlink_metadata(fx.s("ln")).is_err(),
            "no link on the server"
        );
        return;
    }
    std::os::unix::fs::symlink("target.txt", fx.m("ln")).unwrap();
    assert_eq!(
        fs::read_link(fx.s("ln")).unwrap(),
        Path::new("target.txt"),
        "server link target"
    );
    assert!(fs::symlink_metadata(fx.s("ln"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(fx.m("ln")).unwrap(), Path::new("target.txt"));
    let lm = fs::symlink_metadata(fx.m("ln")).unwrap();
    assert!(lm.file_type().is_symlink(), "lstat sees a link");
    assert_eq!(
        lm.len(),
        "target.txt".len() as u64,
        "a link's size is its target's length"
    );
    assert_eq!(read(&fx.m("ln")), b"pointed-to");
    assert_eq!(meta(&fx.m("ln")).len(), 10, "stat follows the link");

    std::os::unix::fs::symlink("nowhere", fx.m("dangling")).unwrap();
    assert_eq!(
        fs::read_link(fx.m("dangling")).unwrap(),
        Path::new("nowhere")
    );
    assert_errno(
        fs::read(fx.m("dangling")),
        &[libc::ENOENT],
        "following a dangling link",
    );

    std::os::unix::fs::symlink("sub", fx.m("dirlink")).unwrap();
    assert_eq!(
        read(&fx.m("dirlink/inner")),
        b"in",
        "path through a dir link"
    );

    assert_eq!(
        fs::read_link(fx.m("server-made")).unwrap(),
        Path::new("target.txt")
    );

    fs::remove_file(fx.m("ln")).unwrap();
    assert!(fs::symlink_metadata(fx.s("ln")).is_err(), "link removed");
    assert_eq!(read(&fx.s("target.txt")), b"pointed-to", "target kept");
}

// Without options a symlink shows its target as the server has it, so an
// absolute target points into this machine's own tree; -o contain_symlinks
// makes absolute targets inside the mount relative and refuses (EPERM) the
// ones that lead out of it.
fn contain_symlinks(p: ServerKind) {
    let fx = Fixture::new(p, "contain", &["-o", "contain_symlinks"]);
    fx.put("dir/file", b"inside");
    let inside = fx.server.remote_path(&format!("{}/dir/file", fx.sub));
    std::os::unix::fs::symlink(&inside, fx.s("abs-in")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", fx.s("abs-out")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/hostname", fx.s("rel-out")).unwrap();
    std::os::unix::fs::symlink("dir/file", fx.s("rel-in")).unwrap();
    assert_eq!(
        fs::read_link(fx.m("abs-in")).unwrap(),
        Path::new("dir/file")
    );
    assert_eq!(
        read(&fx.m("abs-in")),
        b"inside",
        "followed inside the mount"
    );
    assert_eq!(
        fs::read_link(fx.m("rel-in")).unwrap(),
        Path::new("dir/file")
    );
    for out in ["abs-out", "rel-out"] {
        assert_errno(fs::read_link(fx.m(out)), &[libc::EPERM], out);
        assert!(fs::read(fx.m(out)).is_err(), "{out} cannot be followed");
    }
    let plain = Fixture::new(p, "plainlinks", &[]);
    std::os::unix::fs::symlink("/etc/hostname", plain.s("abs-out")).unwrap();
    assert_eq!(
        fs::read_link(plain.m("abs-out")).unwrap(),
        Path::new("/etc/hostname"),
        "without the option, as the server has it"
    );
}

// Changing a symlink's own attributes (touch -h, lchown) never changes its target.
fn setattr_on_symlink_spares_target(p: ServerKind) {
    let fx = Fixture::new(p, "lsetattr", &[]);
    let t = fx.put("target", b"t");
    set_mode(&t, 0o640);
    set_server_times(&t, 1_000_000_000, 1_100_000_000);
    std::os::unix::fs::symlink("target", fx.m("ln")).unwrap();
    let before = meta(&t);

    utimens(
        &fx.m("ln"),
        T::At(1_500_000_000),
        T::At(1_600_000_000),
        true,
    )
    .expect("utimensat(AT_SYMLINK_NOFOLLOW) on a link");
    let out = run_cmd(
        Command::new("touch").arg("-h").arg(fx.m("ln")),
        Duration::from_secs(30),
        None,
    );
    assert!(out.status.success(), "touch -h\n{}", describe_output(&out));
    std::os::unix::fs::lchown(fx.m("ln"), Some(0), Some(0)).expect("lchown on a link");

    let after = meta(&t);
    assert_eq!(after.mtime(), 1_100_000_000, "target mtime unchanged");
    assert_eq!(after.atime(), 1_000_000_000, "target atime unchanged");
    assert_eq!(
        after.permissions().mode() & 0o7777,
        0o640,
        "target mode unchanged"
    );
    assert_eq!(
        (after.uid(), after.gid()),
        (before.uid(), before.gid()),
        "target owner unchanged"
    );
    assert!(
        fs::symlink_metadata(fx.s("ln"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "still a link"
    );
}

// ---------------------------------------------------------------------------
// directories, unlink, rename, link
// ---------------------------------------------------------------------------

// mkdir/rmdir, with EEXIST, ENOTEMPTY, ENOTDIR and ENOENT where Linux gives them.
fn mkdir_rmdir(p: ServerKind) {
    let fx = Fixture::new(p, "mkdir", &[]);
    names(&fx.m("")); // prime the listing cache
    fs::DirBuilder::new().mode(0o750).create(fx.m("d")).unwrap();
    assert!(meta(&fx.s("d")).is_dir(), "dir on the server");
    assert_eq!(mode(&fx.s("d")), 0o750);
    assert!(
        names(&fx.m("")).contains(&"d".into()),
        "new dir listed at once"
    );
    assert_errno(
        fs::create_dir(fx.m("d")),
        &[libc::EEXIST],
        "mkdir of an existing dir",
    );
    assert_errno(
        fs::create_dir(fx.m("no/such")),
        &[libc::ENOENT],
        "mkdir in a missing dir",
    );

    fx.put("d/file", b"x");
    assert_errno(
        fs::remove_dir(fx.m("d")),
        &[libc::ENOTEMPTY],
        "rmdir of a non-empty dir",
    );
    assert!(fx.s("d/file").exists(), "contents kept");
    assert_errno(
        fs::remove_dir(fx.m("d/file")),
        &[libc::ENOTDIR],
        "rmdir of a file",
    );
    assert_errno(
        fs::remove_dir(fx.m("missing")),
        &[libc::ENOENT],
        "rmdir of a missing dir",
    );

    fs::remove_file(fx.m("d/file")).unwrap();
    fs::remove_dir(fx.m("d")).unwrap();
    assert!(!fx.s("d").exists(), "dir removed on the server");
    assert_errno(fs::metadata(fx.m("d")), &[libc::ENOENT], "stat after rmdir");
    assert!(!names(&fx.m("")).contains(&"d".into()));
}

// unlink removes a file; a dir gives EISDIR, a missing name ENOENT.
fn unlink(p: ServerKind) {
    let fx = Fixture::new(p, "unlink", &[]);
    fx.put("f", b"x");
    fx.put_dir("d");
    fs::remove_file(fx.m("f")).unwrap();
    assert!(!fx.s("f").exists(), "removed on the server");
    assert_errno(
        fs::metadata(fx.m("f")),
        &[libc::ENOENT],
        "stat after unlink",
    );
    assert_errno(
        fs::remove_file(fx.m("d")),
        &[libc::EISDIR],
        "unlink of a dir",
    );
    assert!(fx.s("d").is_dir());
    assert_errno(
        fs::remove_file(fx.m("missing")),
        &[libc::ENOENT],
        "unlink of a missing file",
    );
}

// rename moves a file within and across directories.
fn rename_file(p: ServerKind) {
    let fx = Fixture::new(p, "rename", &[]);
    fx.put("a", b"AAA");
    fx.put_dir("sub");
    fs::rename(fx.m("a"), fx.m("b")).unwrap();
    assert!(!fx.s("a").exists());
    assert_eq!(read(&fx.s("b")), b"AAA");
    assert_errno(fs::metadata(fx.m("a")), &[libc::ENOENT], "old name");
    assert_eq!(read(&fx.m("b")), b"AAA");
    fs::rename(fx.m("b"), fx.m("sub/c")).unwrap();
    assert_eq!(read(&fx.s("sub/c")), b"AAA");
    assert_eq!(read(&fx.m("sub/c")), b"AAA");
    assert_errno(
        fs::rename(fx.m("nope"), fx.m("x")),
        &[libc::ENOENT],
        "rename of a missing file",
    );
}

// rename over an existing file replaces it atomically; NOREPLACE refuses.
fn rename_replaces_file(p: ServerKind) {
    let fx = Fixture::new(p, "replace", &[]);
    fx.put("old", b"old content");
    fx.put("new", b"NEW");
    fx.put("x", b"x");
    fx.put("y", b"y");
    assert_eq!(read(&fx.m("old")), b"old content"); // now cached by the mount
    fs::rename(fx.m("new"), fx.m("old")).unwrap();
    assert_eq!(read(&fx.s("old")), b"NEW", "server has the new content");
    assert!(!fx.s("new").exists());
    assert_eq!(meta(&fx.m("old")).len(), 3, "no stale size");
    assert_eq!(read(&fx.m("old")), b"NEW", "no stale content");
    let want: Vec<std::ffi::OsString> = ["old", "x", "y"].iter().map(|n| n.into()).collect();
    // The kernel releases the read of "old" after close(2) returns: if the
    // rename came first, the replaced file is kept under a hidden name for
    // that descriptor until the release, then removed.
    let left = poll_until(Duration::from_secs(10), || names(&fx.s("")) == want);
    assert!(left, "leftovers on the server: {:?}", names(&fx.s("")));

    assert_errno(
        rename_noreplace(&fx.m("x"), &fx.m("y")),
        &[libc::EEXIST],
        "RENAME_NOREPLACE",
    );
    assert_eq!(
        (read(&fx.s("x")), read(&fx.s("y"))),
        (b"x".to_vec(), b"y".to_vec())
    );
}

// A file renamed while open for writing gets every byte under its new name.
fn rename_while_open_for_writing(p: ServerKind) {
    let fx = Fixture::new(p, "renameopen", &[]);
    let data = pseudo_random_bytes(3 * MIB, 10);
    fx.put("inplace", &data);
    let mut f = File::create(fx.m("part")).unwrap();
    f.write_all(&data[..MIB]).unwrap();
    fs::rename(fx.m("part"), fx.m("done")).unwrap();
    f.write_all(&data[MIB..]).unwrap();
    drop(f);
    assert_file_is(&fx.s("done"), &data, "server content under the new name");
    assert_eq!(
        sha256_file(&fx.m("done")),
        sha256_bytes(&data),
        "mount content"
    );
    wait_until(
        "only `done` and `inplace` on the server",
        Duration::from_secs(10),
        || names(&fx.s("")) == vec![std::ffi::OsString::from("done"), "inplace".into()],
    );

    // The same for an existing file rewritten in place (no O_TRUNC).
    let f = OpenOptions::new()
        .write(true)
        .open(fx.m("inplace"))
        .unwrap();
    f.write_all_at(b"HEAD", 0).unwrap();
    fs::rename(fx.m("inplace"), fx.m("moved")).unwrap();
    f.write_all_at(b"TAIL", data.len() as u64 - 4).unwrap();
    drop(f);
    let mut want = data.clone();
    want[..4].copy_from_slice(b"HEAD");
    let n = want.len();
    want[n - 4..].copy_from_slice(b"TAIL");
    assert_file_is(&fx.s("moved"), &want, "server content of the moved file");
    assert!(!fx.s("inplace").exists());
}

// A close() of a duplicate fd (a FLUSH, as when a forked child execs) racing
// a rename of the file being written loses nothing and resurrects no old name.
fn rename_racing_a_flush_keeps_data(p: ServerKind) {
    use std::os::fd::AsRawFd;
    let fx = Fixture::new(p, "renameflush", &[]);
    let data = pseudo_random_bytes(512 * 1024, 11);
    let mut bad = Vec::new();
    for i in 0..40 {
        let (a, b) = (format!("part{i}"), format!("done{i}"));
        let mut f = File::create(fx.m(&a)).unwrap();
        f.write_all(&data[..256 * 1024]).unwrap();
        let fd = f.as_raw_fd();
        let (stop, flushes) = (AtomicBool::new(false), AtomicU64::new(0));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Start at a different moment each time to sweep the window.
                for _ in 0..i * 20_000 {
                    std::hint::spin_loop();
                }
                while !stop.load(Ordering::SeqCst) {
                    // SAFETY: dup of an fd that stays open for the whole scope.
                    unsafe { libc::close(libc::dup(fd)) };
                    flushes.fetch_add(1, Ordering::SeqCst);
                }
            });
            fs::rename(fx.m(&a), fx.m(&b)).unwrap();
            while flushes.load(Ordering::SeqCst) == 0 {
                std::hint::spin_loop();
            }
            stop.store(true, Ordering::SeqCst);
        });
        f.write_all(&data[256 * 1024..]).unwrap();
        drop(f);
        let ok = fs::read(fx.s(&b)).map(|d| d == data).unwrap_or(false);
        if !ok || fx.s(&a).exists() {
            bad.push(format!(
                "#{i}: {b} ok={ok}, {a} exists={} ({} bytes)",
                fx.s(&a).exists(),
                fs::metadata(fx.s(&a)).map(|m| m.len()).unwrap_or(0)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 40 rename-during-write rounds went wrong:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

// A directory renamed over an empty directory replaces it.
fn rename_dir_over_empty_dir(p: ServerKind) {
    let fx = Fixture::new(p, "rendir", &[]);
    fx.put("d1/f", b"inside");
    fx.put_dir("d2");
    fs::rename(fx.m("d1"), fx.m("d2")).unwrap();
    assert_eq!(read(&fx.s("d2/f")), b"inside");
    assert!(!fx.s("d1").exists());
    assert_eq!(read(&fx.m("d2/f")), b"inside");
    assert_errno(fs::metadata(fx.m("d1")), &[libc::ENOENT], "old dir name");
}

// A directory renamed over a non-empty directory fails with ENOTEMPTY; nothing moves.
fn rename_dir_over_nonempty_dir(p: ServerKind) {
    let fx = Fixture::new(p, "rendirfull", &[]);
    fx.put("d1/f", b"one");
    fx.put("d3/g", b"three");
    fx.put("file", b"f");
    assert_errno(
        fs::rename(fx.m("d1"), fx.m("d3")),
        &[libc::ENOTEMPTY],
        "dir over a non-empty dir",
    );
    assert_eq!(read(&fx.s("d1/f")), b"one");
    assert_eq!(read(&fx.s("d3/g")), b"three");
    assert_errno(
        fs::rename(fx.m("file"), fx.m("d3")),
        &[libc::EISDIR],
        "file over a dir",
    );
    assert_errno(
        fs::rename(fx.m("d1"), fx.m("file")),
        &[libc::ENOTDIR],
        "dir over a file",
    );
    assert_eq!(read(&fx.s("file")), b"f");
    assert_eq!(read(&fx.m("d1/f")), b"one");
}

// Hard links: SFTP makes them with hardlink@openssh.com (OpenSSH and
// gesftpserver offer it), and both names then work, through the mount and
// on the server; FTP cannot, and says EPERM.
fn hard_link(p: ServerKind) {
    let fx = Fixture::new(p, "link", &[]);
    let s = fx.put("f", b"linked content");
    // An old mtime, so that a write through the mount makes a new version.
    set_server_times(&s, 1_600_000_000, 1_600_000_000);
    names(&fx.m("")); // the listing is cached: the new name must join it
    if p.is_ftp() {
        assert_errno(
            fs::hard_link(fx.m("f"), fx.m("g")),
            &[libc::EPERM],
            "link() over FTP",
        );
        assert!(!fx.s("g").exists());
        return;
    }
    let ctime = |md: &fs::Metadata| (md.ctime(), md.ctime_nsec());
    let before = ctime(&meta(&fx.m("f")));
    fs::hard_link(fx.m("f"), fx.m("g")).expect("link()");
    let (sf, sg) = (meta(&fx.s("f")), meta(&fx.s("g")));
    assert_eq!(sf.ino(), sg.ino(), "one file with two names on the server");
    assert_eq!(sg.nlink(), 2);
    assert_eq!(read(&fx.m("g")), b"linked content");
    assert_eq!(meta(&fx.m("g")).len(), 14);
    assert_eq!(mode(&fx.m("g")), mode(&fx.m("f")));
    assert!(names(&fx.m("")).contains(&"g".into()), "listed at once");
    assert!(
        ctime(&meta(&fx.m("f"))) > before,
        "the linked file's ctime moved"
    );
    assert!(
        ctime(&meta(&fx.m("g"))) > before,
        "and the new name shows that change"
    );
    assert_errno(
        fs::hard_link(fx.m("f"), fx.m("g")),
        &[libc::EEXIST],
        "link() to a name that exists",
    );
    assert_errno(
        fs::hard_link(fx.m("missing"), fx.m("h")),
        &[libc::ENOENT],
        "link() of a missing file",
    );
    // An edit in place through one name shows through the other (its next
    // open looks at the server: close-to-open).
    open_rw(&fx.m("f")).write_all_at(b"LINKED", 0).unwrap();
    assert_eq!(read(&fx.m("g")), b"LINKED content", "the edit, through g");
    assert_eq!(read(&fx.s("g")), b"LINKED content", "on the server");
    fs::remove_file(fx.m("f")).unwrap();
    assert_eq!(
        read(&fx.m("g")),
        b"LINKED content",
        "the other name keeps it"
    );
    assert_eq!(meta(&fx.s("g")).nlink(), 1);
}

// statfs reports the server filesystem's figures (SFTP) or sane ones (FTP).
fn statfs(p: ServerKind) {
    let fx = Fixture::new(p, "statfs", &[]);
    let mv = statvfs(&fx.m("")).expect("statvfs through the mount");
    assert!(
        mv.f_blocks > 0 && mv.f_bsize > 0 && mv.f_frsize > 0,
        "{mv:?}"
    );
    assert!(
        mv.f_bfree <= mv.f_blocks && mv.f_bavail <= mv.f_bfree,
        "free <= total: {mv:?}"
    );
    assert!(mv.f_namemax > 0);
    if p.is_ftp() {
        return skip(p, "exact figures: FTP has no statvfs; only sanity checked");
    }
    let sv = statvfs(&fx.s("")).unwrap();
    let bytes = |blocks: libc::fsblkcnt_t, st: &libc::statvfs| blocks as u128 * st.f_frsize as u128;
    assert_eq!(
        bytes(mv.f_blocks, &mv),
        bytes(sv.f_blocks, &sv),
        "total size"
    );
    let avail_diff = bytes(mv.f_bavail, &mv).abs_diff(bytes(sv.f_bavail, &sv));
    assert!(
        avail_diff < 1 << 30,
        "available differs by {avail_diff} bytes"
    );
    assert_eq!(mv.f_files, sv.f_files, "inodes");
    assert!(mv.f_ffree.abs_diff(sv.f_ffree) < 100_000, "free inodes");
    assert_eq!(mv.f_namemax, sv.f_namemax, "name length limit");
}

// ---------------------------------------------------------------------------
// names
// ---------------------------------------------------------------------------

// Names that are not UTF-8 round-trip byte for byte (SFTP).
fn names_non_utf8(p: ServerKind) {
    let fx = Fixture::new(p, "nonutf8", &[]);
    let name = OsStr::from_bytes(b"caf\xe9-\xff.bin");
    fs::write(
        fx.s("").join(OsStr::from_bytes(b"srv-\x80\x81")),
        b"from server",
    )
    .unwrap();
    fs::write(fx.m("").join(name), b"bytes").unwrap();
    assert_eq!(
        read(&fx.s("").join(name)),
        b"bytes",
        "server has the exact name"
    );
    let listed = names(&fx.m(""));
    assert!(
        listed.iter().any(|n| n == name),
        "listing has the name: {listed:?}"
    );
    assert_eq!(
        read(&fx.m("").join(OsStr::from_bytes(b"srv-\x80\x81"))),
        b"from server"
    );
    let renamed = OsStr::from_bytes(b"\xfe\xfd");
    fs::rename(fx.m("").join(name), fx.m("").join(renamed)).unwrap();
    assert_eq!(read(&fx.s("").join(renamed)), b"bytes");
}

// Names with spaces, punctuation and Unicode round-trip both ways.
fn names_spaces_unicode(p: ServerKind) {
    let fx = Fixture::new(p, "names", &[]);
    let list = [
        "with space.txt",
        "two  spaces",
        "ünïcödé-日本語.txt",
        "emoji-😀",
        "#%&()[]{}'=+,;@!~$.txt",
        "-dash",
    ];
    for n in list {
        fx.put(&format!("srv {n}"), n.as_bytes());
    }
    for n in list {
        fs::write(fx.m(n), n).unwrap_or_else(|e| panic!("create {n:?}: {e}"));
        assert_eq!(read(&fx.s(n)), n.as_bytes(), "server content of {n:?}");
    }
    let listed = names(&fx.m(""));
    for n in list {
        assert!(
            listed.iter().any(|l| l == n),
            "{n:?} not listed: {listed:?}"
        );
        let srv = format!("srv {n}");
        assert!(
            listed.iter().any(|l| *l == *srv),
            "{srv:?} not listed: {listed:?}"
        );
        assert_eq!(read(&fx.m(&srv)), n.as_bytes());
    }
    assert_eq!(listed.len(), 2 * list.len(), "nothing extra: {listed:?}");
}

// Leading and trailing spaces in names survive (listing parsers must keep them).
fn names_leading_trailing_spaces(p: ServerKind) {
    let fx = Fixture::new(p, "edgespaces", &[]);
    let list = [" leading", "trailing ", "  both  "];
    for n in list {
        fx.put(n, n.as_bytes());
    }
    let mut want: Vec<std::ffi::OsString> = list.iter().map(|n| n.into()).collect();
    want.sort();
    assert_eq!(names(&fx.m("")), want, "names listed exactly");
    for n in list {
        assert_eq!(read(&fx.m(n)), n.as_bytes(), "read {n:?}");
    }
    if p == ServerKind::PureFtpd {
        // pure-ftpd turns a trailing space of a new name into `_`: the name
        // asked for never exists, which the mount reports.
        let r = fs::write(fx.m(" made "), b"m");
        assert_errno(r, &[libc::ENOENT], "creating a name ending in a space");
        assert!(!fx.s(" made ").exists(), "no such name on the server");
        return;
    }
    fs::write(fx.m(" made "), b"m").unwrap();
    assert_eq!(read(&fx.s(" made ")), b"m");
}

// An open file keeps working after unlink; nothing is left on the server after close.
fn unlinked_file_stays_usable(p: ServerKind) {
    let fx = Fixture::new(p, "unlinked", &[]);
    fx.put("u", b"original");
    fx.put("r", b"read only");
    let f = open_rw(&fx.m("u"));
    let ro = File::open(fx.m("r")).unwrap();
    fs::remove_file(fx.m("u")).unwrap();
    fs::remove_file(fx.m("r")).unwrap();
    assert_errno(
        fs::metadata(fx.m("u")),
        &[libc::ENOENT],
        "stat after unlink",
    );
    let srv = names(&fx.s(""));
    assert!(
        !srv.iter().any(|n| n == "u" || n == "r"),
        "names gone on the server: {srv:?}"
    );
    assert!(
        !names(&fx.m(""))
            .iter()
            .any(|n| n.as_bytes().starts_with(b".rmount")),
        "hidden names not listed"
    );

    let mut buf = [0u8; 9];
    ro.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"read only", "read-only fd after unlink");
    let mut buf = [0u8; 8];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"original", "read after unlink");
    f.write_all_at(b"MORE", 8).unwrap();
    let mut buf = [0u8; 12];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"originalMORE", "write then read after unlink");
    assert_eq!(f.metadata().unwrap().len(), 12, "fstat after unlink");
    drop(f);
    drop(ro);
    wait_until(
        "no .rmount-* leftovers on the server",
        Duration::from_secs(10),
        || private_leftovers(&fx.s("")).is_empty(),
    );
    assert!(
        names(&fx.s("")).is_empty(),
        "server dir empty: {:?}",
        names(&fx.s(""))
    );
}

// fstat of an open file whose name is gone shows no links (st_nlink 0), as
// on a local filesystem; before the unlink it shows one.
fn fstat_after_unlink_has_no_links(p: ServerKind) {
    let fx = Fixture::new(p, "nlink", &[]);
    set_mode(&fx.put("w", b"written"), 0o640);
    fx.put("r", b"read only");
    let w = open_rw(&fx.m("w"));
    let r = File::open(fx.m("r")).unwrap();
    let before = w.metadata().unwrap();
    assert_eq!(before.nlink(), 1, "fstat before unlink");
    assert_eq!(r.metadata().unwrap().nlink(), 1, "fstat before unlink");
    fs::remove_file(fx.m("w")).unwrap();
    fs::remove_file(fx.m("r")).unwrap();
    let md = w.metadata().unwrap();
    assert_eq!(md.nlink(), 0, "fstat of a writer after unlink");
    assert_eq!(md.len(), 7, "and its size is still right");
    assert_eq!(
        (md.mode(), md.uid(), md.gid(), md.mtime()),
        (before.mode(), before.uid(), before.gid(), before.mtime()),
        "and its mode, owner and mtime"
    );
    assert_eq!(
        r.metadata().unwrap().nlink(),
        0,
        "fstat of a reader after unlink"
    );
    w.write_all_at(b"!", 7).unwrap();
    assert_eq!(w.metadata().unwrap().nlink(), 0, "after a write too");
    drop(w);
    drop(r);
    wait_until(
        "no .rmount-* leftovers on the server",
        Duration::from_secs(10),
        || private_leftovers(&fx.s("")).is_empty(),
    );
}

// Missing names give ENOENT for every kind of access.
fn missing_is_enoent(p: ServerKind) {
    let fx = Fixture::new(p, "enoent", &[]);
    let e = &[libc::ENOENT];
    assert_errno(fs::metadata(fx.m("nope")), e, "stat");
    assert_errno(File::open(fx.m("nope")), e, "open");
    assert_errno(fs::read_dir(fx.m("nope")), e, "opendir");
    assert_errno(File::create(fx.m("nodir/f")), e, "create in a missing dir");
    assert_errno(
        fs::set_permissions(fx.m("nope"), Permissions::from_mode(0o600)),
        e,
        "chmod",
    );
    assert_errno(fs::read_link(fx.m("nope")), e, "readlink");
}

// A 300-byte name gives ENAMETOOLONG; 255 bytes works.
fn name_too_long(p: ServerKind) {
    let fx = Fixture::new(p, "namemax", &[]);
    let long = "n".repeat(300);
    fx.put("f", b"x");
    let e = &[libc::ENAMETOOLONG];
    assert_errno(fs::metadata(fx.m(&long)), e, "stat");
    assert_errno(File::create(fx.m(&long)), e, "create");
    assert_errno(fs::create_dir(fx.m(&long)), e, "mkdir");
    assert_errno(fs::rename(fx.m("f"), fx.m(&long)), e, "rename");
    let max = "m".repeat(255);
    fs::write(fx.m(&max), b"ok").unwrap();
    assert_eq!(read(&fx.s(&max)), b"ok");
}

// ---------------------------------------------------------------------------
// caches and coherence
// ---------------------------------------------------------------------------

// Server-side changes show through the mount within the cache timeout (1 s).
fn server_changes_become_visible(p: ServerKind) {
    let fx = Fixture::new(p, "coherence", &["-o", "cache_timeout=1"]);
    fx.put("c", b"v1");
    let m = fx.m("c");
    assert_eq!(read(&m), b"v1");
    assert_errno(
        fs::metadata(fx.m("late")),
        &[libc::ENOENT],
        "before the server creates it",
    );
    names(&fx.m(""));

    fs::write(fx.s("c"), b"version two").unwrap();
    wait_until("the new content (new size)", COHERENCE_DEADLINE, || {
        fs::read(&m).ok().as_deref() == Some(b"version two")
    });
    assert_eq!(meta(&m).len(), 11);

    // Same size, later mtime: only the version (size + mtime) tells.
    fs::write(fx.s("c"), b"version TWO").unwrap();
    set_server_times(&fx.s("c"), now_secs() + 5, now_secs() + 5);
    wait_until("the new content (same size)", COHERENCE_DEADLINE, || {
        fs::read(&m).ok().as_deref() == Some(b"version TWO")
    });

    fx.put("late", b"here");
    wait_until("a new server file to appear", COHERENCE_DEADLINE, || {
        fs::read(fx.m("late")).is_ok()
    });
    wait_until("the listing to show it", COHERENCE_DEADLINE, || {
        names(&fx.m("")).contains(&"late".into())
    });
    fs::remove_file(fx.s("late")).unwrap();
    wait_until(
        "a removed server file to vanish",
        COHERENCE_DEADLINE,
        || fs::metadata(fx.m("late")).is_err() && !names(&fx.m("")).contains(&"late".into()),
    );
}

// Close-to-open, as NFS: a change made on the server before open() is seen
// by that open, even within the cache timeout (20 s here), while stat keeps
// answering from the cache until then.
fn close_to_open(p: ServerKind) {
    let fx = Fixture::new(p, "cto", &[]);
    let s = fx.put("c", b"version one");
    set_server_times(&s, 1_600_000_000, 1_600_000_000);
    let m = fx.m("c");
    assert_eq!(read(&m), b"version one");
    assert_eq!(read(&m), b"version one", "again, from the caches");

    fs::write(&s, b"version two, longer").unwrap();
    assert_eq!(meta(&m).len(), 11, "stat still answers from the cache");
    let mut f = File::open(&m).unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"version two, longer", "the next open sees it, whole");
    assert_eq!(f.metadata().unwrap().len(), 19, "fstat of that open");
    drop(f);

    // Same size, another mtime: only the version tells.
    fs::write(&s, b"VERSION TWO, LONGER").unwrap();
    set_server_times(&s, 1_600_000_100, 1_600_000_100);
    assert_eq!(read(&m), b"VERSION TWO, LONGER", "same size, new mtime");

    // Shorter.
    fs::write(&s, b"three").unwrap();
    assert_eq!(read(&m), b"three", "a shorter file");

    if matches!(p, ServerKind::Vsftpd | ServerKind::VsftpdTls) {
        // Over FTP without MLST a stat lists the whole directory: an open
        // asks SIZE and MDTM instead (no data connection). Counted in
        // vsftpd's protocol log.
        let count = |what: String| {
            fs::read_to_string(fx.server.log_path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&what))
                .count()
        };
        let listings = || count(format!("\"CWD /{}\"", fx.sub));
        let sizes = || count(format!("\"SIZE /{}/c\"", fx.sub));
        let (listed, sized) = (listings(), sizes());
        assert!(listed > 0, "stats listed the directory: the count can tell");
        for _ in 0..3 {
            assert_eq!(read(&m), b"three");
        }
        assert_eq!(listings(), listed, "an open lists no directory");
        assert!(sizes() >= sized + 3, "each open asks SIZE");
    }
}

// -o nocto: open() trusts the caches for the cache timeout (today's
// behaviour before close-to-open), so a server change is not seen at once.
fn nocto_trusts_the_cache(p: ServerKind) {
    let fx = Fixture::new(p, "nocto", &["-o", "nocto"]);
    let s = fx.put("c", b"version one");
    set_server_times(&s, 1_600_000_000, 1_600_000_000);
    let m = fx.m("c");
    assert_eq!(read(&m), b"version one");
    fs::write(&s, b"version two, longer").unwrap();
    assert_eq!(read(&m), b"version one", "served from the caches");
}

// What is written through the mount is visible through it at once, and on the server at close.
fn own_writes_visible_at_once(p: ServerKind) {
    let fx = Fixture::new(p, "ownwrites", &[]);
    names(&fx.m("")); // prime the listing cache (default 20 s timeout)
    let data = pseudo_random_bytes(100_000, 6);
    let mut f = File::create(fx.m("w")).unwrap();
    f.write_all(&data).unwrap();
    assert_eq!(meta(&fx.m("w")).len(), 100_000, "size before close");
    assert!(
        read(&fx.m("w")) == data,
        "content through another fd before close"
    );
    assert!(
        names(&fx.m("")).contains(&"w".into()),
        "listed before close"
    );
    drop(f);
    assert!(read(&fx.s("w")) == data, "on the server when close returns");

    fs::write(fx.m("w"), b"short").unwrap();
    assert_eq!(meta(&fx.m("w")).len(), 5);
    assert_eq!(read(&fx.m("w")), b"short");
    assert_eq!(read(&fx.s("w")), b"short");
    fs::remove_file(fx.m("w")).unwrap();
    assert!(
        !names(&fx.m("")).contains(&"w".into()),
        "unlisted after unlink"
    );
    fs::create_dir(fx.m("newdir")).unwrap();
    assert!(
        names(&fx.m("")).contains(&"newdir".into()),
        "new dir listed"
    );
}

// A directory's mtime seen through the mount follows entry changes made
// through the mount (rsync -a relies on it to restore directory times).
fn dir_mtime_follows_changes_through_mount(p: ServerKind) {
    // A short cache timeout only so the server-side resets below show up quickly.
    let fx = Fixture::new(p, "dirmtime", &["-o", "cache_timeout=2"]);
    let d = fx.put_dir("d");
    fx.put("d/victim", b"v");
    fx.put_dir("d/olddir");
    fx.put("outside", b"o");
    // FTP shows directory times from LIST: to the minute, for recent dates.
    let (old, slack) = if p.is_ftp() {
        ((now_secs() - 3600) / 60 * 60, 60)
    } else {
        (1_400_000_000, 0)
    };
    let ops: [(&str, &dyn Fn()); 5] = [
        ("create", &|| fs::write(fx.m("d/new"), b"n").unwrap()),
        ("mkdir", &|| fs::create_dir(fx.m("d/sub")).unwrap()),
        ("rename into", &|| {
            fs::rename(fx.m("outside"), fx.m("d/moved")).unwrap()
        }),
        ("unlink", &|| fs::remove_file(fx.m("d/victim")).unwrap()),
        ("rmdir", &|| fs::remove_dir(fx.m("d/olddir")).unwrap()),
    ];
    for (what, op) in ops {
        set_server_times(&d, old, old);
        // Let the mount see the old time (it may cache it).
        wait_until(
            "the mount to see the reset dir time",
            COHERENCE_DEADLINE,
            || meta(&fx.m("d")).mtime().abs_diff(old) <= slack,
        );
        op();
        let server = meta(&d).mtime();
        assert!(
            server.abs_diff(old) > 600,
            "{what}: the server changed the dir's mtime"
        );
        let seen = meta(&fx.m("d")).mtime();
        assert!(
            seen.abs_diff(server) <= slack,
            "{what}: dir mtime through the mount right after is {seen}, the server's is {server}"
        );
    }
}

// A successful fsync means the bytes are on the server, before close.
fn fsync_reaches_server(p: ServerKind) {
    let fx = Fixture::new(p, "fsync", &[]);
    let data = pseudo_random_bytes(4 * MIB, 7);
    let mut f = File::create(fx.m("f")).unwrap();
    f.write_all(&data[..3 * MIB]).unwrap();
    f.sync_all().unwrap();
    assert_eq!(
        sha256_file(&fx.s("f")),
        sha256_bytes(&data[..3 * MIB]),
        "after the first fsync"
    );
    f.write_all(&data[3 * MIB..]).unwrap();
    f.sync_data().unwrap();
    assert_eq!(
        sha256_file(&fx.s("f")),
        sha256_bytes(&data),
        "after the second fsync"
    );
    drop(f);
    assert_eq!(sha256_file(&fx.s("f")), sha256_bytes(&data), "after close");
    assert!(private_leftovers(&fx.s("")).is_empty());
}

// 8 threads write and read back 8 different 8 MiB files at once.
fn parallel_writers_and_readers(p: ServerKind) {
    let fx = Fixture::new(p, "parallel", &[]);
    let hashes: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|i| {
                let m = fx.m(&format!("p{i}"));
                scope.spawn(move || {
                    let data = pseudo_random_bytes(8 * MIB, 100 + i);
                    let mut f = File::create(&m).unwrap();
                    for chunk in data.chunks(MIB) {
                        f.write_all(chunk).unwrap();
                    }
                    drop(f);
                    let want = sha256_bytes(&data);
                    assert_eq!(sha256_file(&m), want, "read back p{i} through the mount");
                    want
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    for (i, want) in hashes.iter().enumerate() {
        assert_eq!(&sha256_file(&fx.s(&format!("p{i}"))), want, "server p{i}");
    }
}

// Three sequential readers of three files progress together even when only
// one read-ahead worker exists (max_conns=2): no reader waits for another's
// read-ahead to finish.
fn sequential_readers_progress_together(p: ServerKind) {
    const SIZE: u64 = 32;
    let fx = Fixture::new(p, "seqtogether", &["-o", "max_conns=2"]);
    for i in 0..3u8 {
        let mut f = File::create(fx.put(&format!("r{i}"), b"")).unwrap();
        for b in 0..SIZE {
            f.write_all(&vec![i.wrapping_mul(64).wrapping_add(b as u8); MIB])
                .unwrap();
        }
    }
    let progress: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
    // How far the others had come when the first reader finished.
    let others_at_first_end = Mutex::new(None::<Vec<u64>>);
    std::thread::scope(|scope| {
        for i in 0..3u8 {
            let (m, progress, at_end) = (fx.m(&format!("r{i}")), &progress, &others_at_first_end);
            scope.spawn(move || {
                let mut f = File::open(&m).unwrap();
                let mut buf = vec![0u8; MIB];
                for b in 0..SIZE {
                    f.read_exact(&mut buf).unwrap();
                    let want = i.wrapping_mul(64).wrapping_add(b as u8);
                    assert!(buf.iter().all(|&x| x == want), "r{i} block {b}");
                    progress[i as usize].store(b + 1, Ordering::SeqCst);
                }
                let snapshot: Vec<u64> =
                    progress.iter().map(|p| p.load(Ordering::SeqCst)).collect();
                at_end.lock().unwrap().get_or_insert(snapshot);
            });
        }
    });
    let at_end = others_at_first_end
        .into_inner()
        .unwrap()
        .expect("a reader finished");
    assert!(
        at_end.iter().all(|&blocks| blocks >= SIZE / 4),
        "when the first reader finished, the others had read {at_end:?} of {SIZE} MiB"
    );
}

/// futimens(2) of an open file, both times to `secs`.
fn futimens(f: &File, secs: i64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    // SAFETY: a descriptor we own and a two-element timespec array.
    if unsafe { libc::futimens(f.as_raw_fd(), [t, t].as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// close(2) of a file, with its result (dropping a `File` ignores it).
fn close(f: File) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    // SAFETY: the descriptor is ours and closed once.
    if unsafe { libc::close(f.into_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

// Two mounts of one directory. In A, a file dated two days ago is open
// after its unlink (so it lives under a hidden name), and another one is
// being rewritten with its times set two days back (so its temporary file
// is dated so). B, which caches nothing, lists the directory again and
// again: it must leave both alone, as A is running. Once A unmounts, its
// marker is gone, and B removes a leftover of A's on sight.
fn two_mounts_leave_each_others_files_alone(p: ServerKind) {
    let fx = Fixture::new(p, "twomounts", &[]);
    let old = now_secs() - 2 * 86400;
    fx.put("gone", b"unlinked but open");
    fx.put("rewritten", b"old bytes");
    set_server_times(&fx.s("gone"), old, old);
    set_server_times(&fx.s("rewritten"), old, old);
    let markers = || {
        let mut m: Vec<String> = fs::read_dir(fx.s(""))
            .expect("list the server directory")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_prefix(".rmount-live-").map(str::to_owned))
            .collect();
        m.sort();
        m
    };
    let url = fx.server.remote_url_for(&fx.sub);
    let a = Mount::with_url(&fx.server, &url, &[]);
    let [a_id] = &markers()[..] else {
        panic!("one marker for A: {:?}", markers());
    };
    let a_id = a_id.clone();
    let b = Mount::with_url(&fx.server, &url, &["-o", "cache_timeout=0"]);
    assert_eq!(markers().len(), 2, "one marker per mount: {:?}", markers());

    let mut held = File::open(a.path("gone")).expect("open");
    fs::remove_file(a.path("gone")).expect("unlink while open");
    let mut w = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(a.path("rewritten"))
        .expect("open with O_TRUNC");
    w.write_all(b"new bytes").expect("write");
    futimens(&w, old).expect("futimens");
    for _ in 0..5 {
        let listed = names(&b.path(""));
        assert_eq!(listed, ["rewritten"], "B lists");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut content = Vec::new();
    held.read_to_end(&mut content)
        .expect("read the unlinked file");
    assert_eq!(content, b"unlinked but open", "through the open descriptor");
    close(w).expect("close of the rewrite");
    assert_eq!(
        read(&fx.s("rewritten")),
        b"new bytes",
        "server has the rewrite"
    );
    drop(held);

    // A leftover of A's, as a crash would leave it: kept while A runs,
    // removed by B once A is gone.
    let leftover = format!(".rmount-tmp-{a_id}-999");
    fx.put(&leftover, b"partial");
    set_server_times(&fx.s(&leftover), old, old);
    names(&b.path(""));
    assert!(fx.s(&leftover).exists(), "A runs: its names stay");
    drop(a);
    assert!(
        !markers().contains(&a_id),
        "A's marker goes at unmount: {:?}",
        markers()
    );
    wait_until("B to remove A's leftover", Duration::from_secs(10), || {
        names(&b.path(""));
        !fx.s(&leftover).exists()
    });
}

// While a 200 MiB read is going on, stats of another file still answer quickly.
fn stat_answers_during_big_read(p: ServerKind) {
    // No metadata caching: every stat must reach the server.
    let fx = Fixture::new(p, "statwhileread", &["-o", "cache_timeout=0"]);
    let block = pseudo_random_bytes(MIB, 8);
    {
        let s = fx.put("big", b"");
        let mut f = OpenOptions::new().write(true).open(&s).unwrap();
        for i in 0..200u64 {
            let mut b = block.clone();
            b[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&b).unwrap();
        }
    }
    fx.put("small", b"s");
    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut f = File::open(fx.m("big")).unwrap();
            let mut b = vec![0u8; MIB];
            for i in 0..200u64 {
                f.read_exact(&mut b).unwrap();
                assert!(
                    b[..8] == i.to_le_bytes() && b[8..] == block[8..],
                    "block {i} content"
                );
                progress.store(i + 1, Ordering::SeqCst);
            }
            let mut rest = Vec::new();
            f.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "no bytes past 200 MiB");
            done.store(true, Ordering::SeqCst);
        });
        wait_until("the big read to get going", Duration::from_secs(60), || {
            progress.load(Ordering::SeqCst) >= 4 || reader.is_finished()
        });
        let mut overlapping = 0;
        for k in 0..20 {
            let t = Instant::now();
            let md = fs::metadata(fx.m("small")).unwrap();
            let took = t.elapsed();
            assert_eq!(md.len(), 1);
            assert!(
                took < Duration::from_secs(2),
                "stat {k} took {took:?} during the big read"
            );
            if !done.load(Ordering::SeqCst) {
                overlapping += 1;
            }
        }
        eprintln!("{overlapping} of 20 stats ran while the big read was going on");
        assert!(
            overlapping >= 1,
            "the read finished before any stat ran; the test proved nothing"
        );
        reader.join().expect("reader thread");
    });
}

// A read-only mount reads, and refuses every change with EROFS.
fn read_only_mount(p: ServerKind) {
    let fx = Fixture::new(p, "ro", &["-o", "ro"]);
    fx.put("f", b"keep");
    fx.put_dir("d");
    assert_eq!(read(&fx.m("f")), b"keep");
    let entry = mount_entry(&fx.mount().dir).expect("mountinfo entry");
    assert!(
        entry.options.split(',').any(|o| o == "ro"),
        "mounted ro: {}",
        entry.options
    );
    let e = &[libc::EROFS];
    assert_errno(File::create(fx.m("new")), e, "create");
    assert_errno(
        OpenOptions::new().write(true).open(fx.m("f")),
        e,
        "open for writing",
    );
    assert_errno(fs::create_dir(fx.m("nd")), e, "mkdir");
    assert_errno(fs::remove_file(fx.m("f")), e, "unlink");
    assert_errno(fs::remove_dir(fx.m("d")), e, "rmdir");
    assert_errno(fs::rename(fx.m("f"), fx.m("g")), e, "rename");
    assert_errno(
        fs::set_permissions(fx.m("f"), Permissions::from_mode(0o600)),
        e,
        "chmod",
    );
    assert_errno(utimens(&fx.m("f"), T::Now, T::Now, false), e, "utimens");
    assert_errno(truncate_path(&fx.m("f"), 0), e, "truncate");
    assert_errno(std::os::unix::fs::symlink("f", fx.m("ln")), e, "symlink");
    assert_eq!(read(&fx.s("f")), b"keep");
    assert!(fx.s("d").is_dir());
    assert_eq!(names(&fx.s("")).len(), 2, "nothing created on the server");
}
