//! `rmount stats` and `rmount flush` against a real mount: the counters are
//! read before and after known work and must have moved by the right
//! amounts; a flush (or SIGHUP) makes the next access see a change made on
//! the server behind the mount's back, even with a long cache timeout;
//! another local user is refused; `--watch` refreshes.
//!
//! Run: `cargo test --test it -- stats::`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::fixture::*;
use crate::support::*;

per_protocol! {
    counters_move_by_the_work_done,
    flush_and_sighup_drop_every_cache,
    connections_busy_lost_and_reconnected,
    another_user_is_refused,
    watch_refreshes_until_stopped,
}

const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Ever held by the cache for a day: only a flush can make it look again.
const LONG_CACHE: &str = "cache_timeout=86400";

fn rmount(args: &[&str]) -> Output {
    run_rmount(args, &[], None)
}

/// `rmount stats --json` of the mount on `dir`, parsed.
fn stats(dir: &Path) -> Value {
    let out = rmount(&["stats", "--json", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "rmount stats failed\n{}",
        describe_output(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The number at `pointer` (e.g. "/bytes/written") of a stats object.
fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {v}"))
}

fn counters_move_by_the_work_done(p: Proto) {
    let _load = light_load();
    let fx = Fixture::new(p.default_kind(), "stats-count", &["-o", LONG_CACHE]);
    // Made before the mount: with its long cache timeout, it would not see
    // names that appear later.
    const N: u64 = 7;
    fx.put_dir("fresh");
    for i in 0..N {
        fx.put(&format!("fresh/f{i}"), b"x");
    }
    fx.put("small", &pseudo_random_bytes(10_000, 3));
    let dir = &fx.mount().dir;

    let first = stats(dir);
    assert_eq!(first["protocol"], p.scheme(), "{first}");
    assert_eq!(first["mountpoint"], dir.to_str().unwrap(), "{first}");
    assert!(n(&first, "/connections/open") >= 1, "{first}");
    let keys = [
        "version",
        "pid",
        "server",
        "root",
        "uptime_seconds",
        "connections",
        "operations",
        "bytes",
        "cache",
        "uploads_pending",
        "flushes",
        "errors",
    ];
    for key in keys {
        assert!(first.get(key).is_some(), "no {key} in {first}");
    }

    // 3 MiB written: the bytes sent move by that, and a little more at most
    // (the mount's own marker).
    // Copied by cp, not written by this process: a child that another test
    // forks meanwhile would close a copy of our descriptor, a flush that
    // commits half the file and makes the rest a second upload.
    let data = pseudo_random_bytes(3 << 20, 7);
    let local = unique_dir("rmount-test-stats-");
    fs::write(local.join("big"), &data).unwrap();
    let before = stats(dir);
    let out = run_cmd(
        Command::new("cp").arg(local.join("big")).arg(fx.m("big")),
        CMD_TIMEOUT,
        None,
    );
    assert!(out.status.success(), "{}", describe_output(&out));
    let after = stats(dir);
    let _ = fs::remove_dir_all(&local);
    assert_eq!(fs::read(fx.s("big")).unwrap(), data, "on the server");
    let written = n(&after, "/bytes/written") - n(&before, "/bytes/written");
    assert!(
        (3 << 20..(3 << 20) + 64 * 1024).contains(&written),
        "3 MiB written moved bytes/written by {written}"
    );
    assert_eq!(n(&after, "/uploads_pending"), 0, "all uploaded: {after}");

    // A file written and still open has its upload pending until closed.
    // Written by another process (dd): any process this one forks (each
    // `rmount stats`) would close a copy of the descriptor, which FUSE
    // reports as a flush, and the mount commits at a flush.
    let mut dd = Command::new("dd")
        .arg(format!("of={}", fx.m("open").display()))
        .arg("status=none")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = dd.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, b"not yet committed").unwrap();
    std::io::Write::flush(&mut input).unwrap();
    wait_until("an upload pending", CMD_TIMEOUT, || {
        n(&stats(dir), "/uploads_pending") == 1
    });
    drop(input);
    assert!(dd.wait().unwrap().success());
    assert_eq!(n(&stats(dir), "/uploads_pending"), 0, "none after close");
    assert_eq!(fs::read(fx.s("open")).unwrap(), b"not yet committed");

    // N files that the mount has never seen, in one directory: the first
    // miss is one stat, the second lists the directory, and the rest are
    // answered from that listing — except that a listing's times are
    // coarse on FTP without MLSD (vsftpd), so each file answered from it
    // is completed with one exact-time stat.
    fs::metadata(fx.m("fresh")).unwrap();
    let before = stats(dir);
    for i in 0..N {
        fs::metadata(fx.m(&format!("fresh/f{i}"))).unwrap();
    }
    let after = stats(dir);
    let stat_count = "/operations/stat/count";
    let list_count = "/operations/list/count";
    let stats_asked = match p {
        Proto::Sftp => 1,
        _ => N,
    };
    assert_eq!(
        n(&after, stat_count) - n(&before, stat_count),
        stats_asked,
        "stats of {N} uncached files in one directory"
    );
    assert_eq!(
        n(&after, list_count) - n(&before, list_count),
        1,
        "one listing for {N} uncached files in one directory"
    );
    let misses = "/cache/attributes/misses";
    // At least the first name was a miss; the rest came from the listing.
    assert!(n(&after, misses) - n(&before, misses) >= 1, "{after}");
    // Again: the cache answers, the server is not asked.
    for i in 0..N {
        fs::metadata(fx.m(&format!("fresh/f{i}"))).unwrap();
    }
    let again = stats(dir);
    assert_eq!(n(&again, stat_count), n(&after, stat_count), "cached");

    // A block read twice: the second read (once the kernel dropped its
    // pages) is a hit of the block cache, and reads nothing from the server.
    // The first read fetches the file's one block: its bytes exactly.
    let file = fs::File::open(fx.m("small")).unwrap();
    let mut buf = vec![0; 10_000];
    let before = stats(dir);
    file.read_exact_at(&mut buf, 0).unwrap();
    let after = stats(dir);
    let moved = |key: &str| n(&after, key) - n(&before, key);
    assert_eq!(moved("/bytes/read"), 10_000, "{after}");
    assert_eq!(moved("/cache/blocks/misses"), 1, "{after}");
    assert!(moved("/operations/read/count") >= 1, "{after}");
    let read = &after["operations"]["read"];
    let (mean, p99) = (read["mean_ms"].as_f64(), read["p99_ms"].as_f64());
    assert!(mean > Some(0.0) && p99 >= mean, "{read}");
    // SAFETY: an open descriptor; drops its clean pages from the page cache.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "fadvise");
    let before = stats(dir);
    file.read_exact_at(&mut buf, 0).unwrap();
    let after = stats(dir);
    assert_eq!(buf, pseudo_random_bytes(10_000, 3));
    let hits = "/cache/blocks/hits";
    assert!(
        n(&after, hits) > n(&before, hits),
        "a block cache hit: {after}"
    );
    assert_eq!(
        n(&after, "/bytes/read"),
        n(&before, "/bytes/read"),
        "nothing read from the server"
    );
    assert!(n(&after, "/cache/blocks/bytes") >= 10_000, "{after}");
    assert!(n(&after, "/cache/attributes/entries") >= N, "{after}");

    // An error reply counts under its errno.
    let before = stats(dir);
    assert!(fs::metadata(fx.m("fresh/none")).is_err());
    let after = stats(dir);
    let enoent = |v: &Value| v["errors"]["ENOENT"].as_u64().unwrap_or(0);
    assert!(enoent(&after) > enoent(&before), "{after}");

    // The text form names the server and the counters.
    let out = rmount(&["stats", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe_output(&out));
    assert!(
        text.contains("connections:") && text.contains("stat"),
        "{text}"
    );
}

fn flush_and_sighup_drop_every_cache(p: Proto) {
    let _load = light_load();
    let fx = Fixture::new(p.default_kind(), "stats-flush", &["-o", LONG_CACHE]);
    let old = b"old content, twenty-six!!";
    let new = b"NEW CONTENT, twenty-six!!";
    assert_eq!(old.len(), new.len());
    let on_server = fx.put("f", old);
    set_server_times(&on_server, 1_600_000_000, 1_600_000_000);
    fx.put("g", b"abc");
    let dir = fx.mount().dir.clone();
    assert_eq!(fs::read(fx.m("f")).unwrap(), old);

    // Changed behind the mount's back, keeping size and mtime: the caches
    // cannot tell, so the mount still shows the old content...
    fs::write(&on_server, new).unwrap();
    set_server_times(&on_server, 1_600_000_000, 1_600_000_000);
    assert_eq!(fs::read(fx.m("f")).unwrap(), old, "cached, as it should be");

    // ... until a flush.
    let before = n(&stats(&dir), "/flushes");
    let out = rmount(&["flush", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe_output(&out));
    assert_eq!(n(&stats(&dir), "/flushes"), before + 1);
    assert_eq!(fs::read(fx.m("f")).unwrap(), new, "read after the flush");

    // SIGHUP does the same, for attributes and listings too: changes the
    // caches hide (same size and mtime; a new size the kernel and the
    // mount hold the old one of; a name added to a cached listing)...
    let listed = |fx: &Fixture| -> Vec<_> {
        fs::read_dir(fx.m(""))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    assert!(!listed(&fx).iter().any(|n| n == "appeared"));
    assert_eq!(fs::metadata(fx.m("g")).unwrap().len(), 3);
    let newer = b"newer, content twenty-six";
    assert_eq!(newer.len(), old.len());
    fs::write(&on_server, newer).unwrap();
    set_server_times(&on_server, 1_600_000_000, 1_600_000_000);
    fs::write(fx.s("g"), b"0123456789").unwrap();
    fx.put("appeared", b"1");
    assert_eq!(fs::read(fx.m("f")).unwrap(), new, "cached again");
    assert_eq!(fs::metadata(fx.m("g")).unwrap().len(), 3, "size cached");
    assert!(
        !listed(&fx).iter().any(|n| n == "appeared"),
        "listing cached"
    );
    // ... all seen after it.
    let pid = fx.mount().daemon_pid().expect("rmount's pid");
    // SAFETY: a signal to the rmount process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    wait_until("the SIGHUP flush", CMD_TIMEOUT, || {
        n(&stats(&dir), "/flushes") == before + 2
    });
    assert_eq!(fs::read(fx.m("f")).unwrap(), newer, "read after SIGHUP");
    assert_eq!(
        fs::metadata(fx.m("g")).unwrap().len(),
        10,
        "size after SIGHUP"
    );
    assert!(
        listed(&fx).iter().any(|n| n == "appeared"),
        "listing after SIGHUP"
    );
    assert!(fx.mount().is_mounted(), "a SIGHUP does not unmount");
}

fn connections_busy_lost_and_reconnected(p: Proto) {
    let _load = light_load();
    let server = Server::start(p);
    for name in ["a", "b", "c"] {
        server.put_file(name, b"x");
    }
    let proxy = FaultProxy::for_server(&server);
    let mount = mount_via_proxy(&server, &proxy, &[]);
    let dir = mount.dir.clone();
    let first = stats(&dir);
    assert!(n(&first, "/connections/open") >= 1, "{first}");
    assert_eq!(n(&first, "/connections/busy"), 0, "idle: {first}");

    // A read held up on a frozen link keeps a connection busy meanwhile.
    proxy.freeze();
    let read = std::thread::spawn({
        let path = mount.path("a");
        move || fs::read(path)
    });
    wait_until("a busy connection", CMD_TIMEOUT, || {
        n(&stats(&dir), "/connections/busy") >= 1
    });
    proxy.restore();
    let data = read.join().unwrap().unwrap();
    assert_eq!(data, b"x", "the read ends once thawed");
    wait_until("no busy connection", CMD_TIMEOUT, || {
        n(&stats(&dir), "/connections/busy") == 0
    });

    // Every connection cut: the next calls find their connections broken,
    // drop them and go on over new ones (a call may fail if its retry
    // met another broken one).
    let before = stats(&dir);
    proxy.cut_now();
    wait_until("a read after the cut", CMD_TIMEOUT, || {
        fs::read(mount.path("b")).is_ok_and(|data| data == b"x")
    });
    let after = stats(&dir);
    let moved = |key: &str| n(&after, key) - n(&before, key);
    assert!(moved("/connections/lost") >= 1, "{after}");
    assert!(moved("/connections/reconnects") >= 1, "{after}");
    assert!(n(&after, "/connections/open") >= 1, "{after}");
}

fn another_user_is_refused(p: Proto) {
    let _load = light_load();
    let fx = Fixture::new(p.default_kind(), "stats-user", &[]);
    let dir = fx.mount().dir.to_str().unwrap().to_string();
    for request in [&["stats", "--json"][..], &["flush"][..]] {
        let out = run_cmd(
            Command::new("setpriv")
                .args(["--reuid", TEST_USER, "--regid", TEST_USER])
                .args(["--init-groups", "--"])
                .arg(rmount_bin())
                .args(request)
                .arg(&dir),
            CMD_TIMEOUT,
            None,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", describe_output(&out));
        assert!(out.stdout.is_empty(), "{}", describe_output(&out));
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("permission denied") && err.contains("only that user and root"),
            "{err}"
        );
    }
    // The owner (root here) still gets answers.
    assert!(n(&stats(Path::new(&dir)), "/pid") > 0);
    // Not a mount at all: a clear error too.
    let out = rmount(&["stats", "/"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an rmount mount"),
        "{}",
        describe_output(&out)
    );
}

fn watch_refreshes_until_stopped(p: Proto) {
    let _load = light_load();
    let fx = Fixture::new(p.default_kind(), "stats-watch", &[]);
    let mut child = Command::new(rmount_bin())
        .args(["stats", "--watch", "--json"])
        .arg(&fx.mount().dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut frames = Vec::new();
    while frames.len() < 3 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => frames.push(line),
            Err(e) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "only {} frames of --watch ({e}): {frames:?}\n{}",
                    frames.len(),
                    describe_output(&out)
                );
            }
        }
    }
    assert!(child.try_wait().unwrap().is_none(), "still watching");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = reader.join();
    let uptimes: Vec<f64> = frames
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_str(f).unwrap();
            v["uptime_seconds"].as_f64().unwrap()
        })
        .collect();
    assert!(
        uptimes.windows(2).all(|w| w[1] > w[0]),
        "each frame is fresh: {uptimes:?}"
    );
}
