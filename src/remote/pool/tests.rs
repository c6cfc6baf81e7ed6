//! Unit tests of the pool, against scripted connections (`scripted.rs`):
//! how changes are counted for cached handles, how connections are opened,
//! dropped after a timeout and retired, which calls are retried, what a
//! busy server makes the pool do, how reconnects back off, and that the
//! metadata lane never queues behind bulk transfers. Threads meet at
//! gates, never by sleeping; the only clock a test waits on is a pool's
//! own operation deadline, where that deadline is what is tested.

use super::scripted::{self, Gate, Script, ScriptedConnector, Step};
use super::*;
use crate::remote::{Attr, Remote, SetAttr};

/// Long enough that no test meets the operation deadline by chance.
const LONG: Duration = Duration::from_secs(60);

fn options(max_conns: usize, timeout: Duration) -> PoolOptions {
    PoolOptions {
        max_conns,
        timeout,
        alive_count_max: 3,
        mount_id: "0123456789abcdef",
    }
}

/// A pool of `max_conns` connections (connection 0 for metadata) whose
/// operation deadline is `timeout`.
fn pool_timing_out(
    script: &Script,
    max_conns: usize,
    timeout: Duration,
) -> Pool<ScriptedConnector> {
    let opts = options(max_conns, timeout);
    Pool::new(script.connector(), script.connection(), opts)
}

fn pool(script: &Script, max_conns: usize) -> Pool<ScriptedConnector> {
    pool_timing_out(script, max_conns, LONG)
}

#[test]
fn a_change_is_counted_again_once_it_is_done() {
    let pool = pool(&Script::new(), 2);
    let before = pool.generation().names;
    let mut during = 0;
    let _ = pool.renaming(|| {
        // What a read opening a handle on another connection would see.
        during = pool.generation().names;
        Ok(())
    });
    assert!(during > before, "handles opened during it are new");
    assert!(
        pool.generation().names > during,
        "a handle opened while it ran is not reused after it"
    );
}

#[test]
fn only_changes_of_what_a_path_names_make_handles_stale() {
    let script = Script::new();
    let mut connector = script.connector();
    connector.caps.resize_rewrites = true;
    let pool = Pool::new(connector, script.connection(), options(2, LONG));
    let path = Path::new("/f");
    let before = pool.generation().names;
    let writes = pool.generation().writes;
    let _ = pool.write(path, 0, b"x");
    let _ = pool.setattr(path, SetAttr::Mode(0o600));
    assert_eq!(
        pool.generation().names,
        before,
        "writes and chmod keep cached handles"
    );
    assert!(
        pool.generation().writes >= writes + 2,
        "a write is counted before and after, so handles drop what they read ahead"
    );
    let _ = pool.setattr(path, SetAttr::Size(0));
    let resized = pool.generation().names;
    assert!(resized > before, "a resize does not");
    let _ = pool.rename(path, Path::new("/g"));
    assert!(pool.generation().names > resized, "nor does a rename");
}

#[test]
fn a_resize_in_place_counts_as_a_write() {
    let pool = pool(&Script::new(), 2);
    let before = pool.generation();
    pool.setattr(Path::new("/f"), SetAttr::Size(0))
        .expect("resized");
    let after = pool.generation();
    assert_eq!(after.names, before.names, "cached handles are kept");
    assert_eq!(
        after.writes,
        before.writes + 2,
        "counted before and after, so handles drop what they read ahead"
    );
}

#[test]
fn open_all_opens_every_data_connection_a_few_at_a_time() {
    let script = Script::new();
    let pool = pool(&script, 21);
    // 20 data connections: batches of 8, 8 and 4, each held at its own
    // gate until all of the batch are connecting at once.
    let batches = [Gate::new(), Gate::new(), Gate::new()];
    for (gate, size) in batches.iter().zip([8, 8, 4]) {
        for _ in 0..size {
            script.on_connect(Step::ok().held(gate));
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| pool.open_all());
        for (gate, size) in batches.iter().zip([8, 8, 4]) {
            gate.until_waiting(size);
            gate.open();
        }
    });
    assert_eq!(script.connects(), 20, "all but the first");
    assert_eq!(lock(&pool.bulk).idle.len(), 20);
    assert_eq!(lock(&pool.bulk).open, 20);
    let most = script.most_connecting();
    assert_eq!(most, 8, "{most} handshakes at once");
    pool.open_all();
    assert_eq!(script.connects(), 20, "nothing missing");
}

#[test]
fn open_all_stops_at_the_first_refusal_and_leaves_the_rest_on_demand() {
    let script = Script::new();
    let pool = pool(&script, 21);
    // The server takes 10 more connections and refuses the rest.
    for _ in 0..10 {
        script.on_connect(Step::ok());
    }
    for _ in 0..6 {
        script.on_connect(Step::broken());
    }
    pool.open_all();
    // The first batch of 8 worked; the second met the limit and ended it.
    assert_eq!(script.connects(), 16);
    let bulk = lock(&pool.bulk);
    assert_eq!(bulk.idle.len(), 10);
    assert_eq!(bulk.open, 10, "refused connections are not counted");
}

#[test]
fn a_read_gets_the_idle_connection_it_continues_and_other_work_another() {
    let script = Script::new();
    let pool = pool(&script, 4);
    pool.open_all();
    let (a, b) = (Path::new("/a"), Path::new("/b"));
    pool.read(a, 0, 10).expect("read a");
    pool.read(b, 0, 10).expect("read b");
    let reads = script.conns_asked("read");
    assert_ne!(reads[0], reads[1], "b's read leaves a's stream alone");
    // The last one returned is b's, but a's read continues on a's.
    pool.read(a, 10, 10).expect("read a on");
    pool.read(b, 10, 10).expect("read b on");
    // The metadata connection is busy: a stat borrows the idle data
    // connection that holds no read.
    let slot = lock(&pool.meta);
    stat(&pool, "/c").expect("stat");
    drop(slot);
    let reads = script.conns_asked("read");
    assert_eq!(reads[2], reads[0]);
    assert_eq!(reads[3], reads[1]);
    let stats = script.conns_asked("stat");
    assert!(
        !reads.contains(&stats[0]),
        "the stat took a stream's connection: {stats:?}, reads {reads:?}"
    );
}

/// As if the reconnect backoff had run out: tests do not wait for it.
fn backoff_over(pool: &Pool<ScriptedConnector>) {
    lock(&pool.outage).retry_at = None;
}

fn read(pool: &Pool<ScriptedConnector>, path: &str) -> Result<Vec<u8>> {
    pool.read(Path::new(path), 0, 1)
}

fn stat(pool: &Pool<ScriptedConnector>, path: &str) -> Result<Attr> {
    pool.stat(Path::new(path))
}

#[test]
fn a_metadata_connection_that_timed_out_is_closed_and_never_used_again() {
    let script = Script::new();
    let pool = pool(&script, 2);
    script.on_conn(0, Step::timed_out());
    assert!(matches!(stat(&pool, "/a"), Err(Error::TimedOut)));
    assert_eq!(script.conns_asked("stat"), [0], "no retry after a timeout");
    script.until_closed(0);
    backoff_over(&pool);
    stat(&pool, "/b").expect("a stat on a new connection");
    assert_eq!(script.conns_asked("stat"), [0, 1]);
}

#[test]
fn a_data_connection_that_timed_out_is_closed_and_never_used_again() {
    let script = Script::new();
    let pool = pool(&script, 3);
    script.on_conn(1, Step::timed_out());
    assert!(matches!(read(&pool, "/a"), Err(Error::TimedOut)));
    assert_eq!(script.conns_asked("read"), [1], "no retry after a timeout");
    script.until_closed(1);
    {
        let bulk = lock(&pool.bulk);
        assert!(bulk.idle.is_empty(), "not put back");
        assert_eq!(bulk.open, 0, "nor counted");
    }
    backoff_over(&pool);
    read(&pool, "/b").expect("a read on a new connection");
    assert_eq!(script.conns_asked("read"), [1, 2]);
}

#[test]
fn after_a_timeout_every_older_connection_retires() {
    let script = Script::new();
    let pool = pool(&script, 4);
    pool.open_all();
    assert_eq!(script.made(), 4, "0 for metadata, 1 to 3 for data");
    // One read is in flight on an old connection while another times out.
    let held = Gate::new();
    script.on_call(Step::ok().held(&held));
    script.on_call(Step::timed_out());
    std::thread::scope(|s| {
        let in_flight = s.spawn(|| read(&pool, "/held"));
        held.until_waiting(1);
        assert!(matches!(read(&pool, "/late"), Err(Error::TimedOut)));
        held.open();
        let finished = in_flight.join().expect("no panic");
        assert!(finished.is_ok(), "a call in flight still finishes");
    });
    // ... and its connection is closed then, not put back.
    script.until_closed(script.asked()[0].conn);
    backoff_over(&pool);
    stat(&pool, "/a").expect("a stat on a new connection");
    read(&pool, "/b").expect("a read on a new connection");
    for old in 0..4 {
        script.until_closed(old);
    }
    let after = &script.asked()[2..];
    assert!(
        after.iter().all(|call| call.conn >= 4),
        "no old connection is used again: {after:?}"
    );
    assert_eq!(lock(&pool.bulk).open, 1, "retired ones are not counted");
}

#[test]
fn idempotent_calls_are_retried_once_on_a_new_connection() {
    type Call = fn(&Pool<ScriptedConnector>) -> Result<()>;
    let p = Path::new("/f");
    let retried: [(&str, Call); 6] = [
        ("stat", |pool| pool.stat(Path::new("/f")).map(drop)),
        ("stat_again", |pool| {
            pool.stat_again(Path::new("/f"), &scripted::file())
                .map(drop)
        }),
        ("list", |pool| pool.list(Path::new("/f")).map(drop)),
        ("read", |pool| pool.read(Path::new("/f"), 0, 1).map(drop)),
        ("readlink", |pool| pool.readlink(Path::new("/f")).map(drop)),
        ("statfs", |pool| pool.statfs(Path::new("/f")).map(drop)),
    ];
    for (op, call) in retried {
        let script = Script::new();
        let pool = pool(&script, 3);
        script.on_call(Step::broken());
        call(&pool).unwrap_or_else(|e| panic!("{op} failed: {e}"));
        let conns = script.conns_asked(op);
        assert_eq!(conns.len(), 2, "{op} is asked twice");
        assert_ne!(conns[0], conns[1], "{op} is retried on a new connection");
        script.until_closed(conns[0]);
        assert!(script.asked().iter().all(|c| c.path == p));
    }
}

#[test]
fn calls_that_change_something_are_not_retried() {
    type Call = fn(&Pool<ScriptedConnector>) -> Result<()>;
    let (f, g) = (Path::new("/f"), Path::new("/g"));
    let not_retried: [(&str, Call); 10] = [
        ("write", |pool| pool.write(Path::new("/f"), 0, b"x")),
        ("upload", |pool| {
            pool.upload(Path::new("/f"), &mut &b"x"[..], false)
        }),
        ("create", |pool| pool.create(Path::new("/f"), 0o644, true)),
        ("setattr", |pool| {
            pool.setattr(Path::new("/f"), SetAttr::Mode(0o600))
        }),
        ("mkdir", |pool| pool.mkdir(Path::new("/f"), 0o755)),
        ("rmdir", |pool| pool.rmdir(Path::new("/f"))),
        ("unlink", |pool| pool.unlink(Path::new("/f"))),
        ("symlink", |pool| {
            pool.symlink(Path::new("/g"), Path::new("/f"))
        }),
        ("link", |pool| pool.link(Path::new("/f"), Path::new("/g"))),
        ("fsync", |pool| pool.fsync(Path::new("/f"))),
    ];
    for (op, call) in not_retried {
        let script = Script::new();
        let pool = pool(&script, 3);
        script.on_call(Step::broken());
        let result = call(&pool);
        assert!(
            matches!(result, Err(Error::Transport(_))),
            "{op}: {result:?}"
        );
        assert_eq!(script.conns_asked(op).len(), 1, "{op} is asked once");
        assert!(script.asked().iter().all(|c| c.path == f || c.path == g));
    }
}

/// A rename is not blindly retried either: after a broken link the names
/// are looked at first (the reply may have been lost after the server did
/// it), and only a source still there is renamed again.
#[test]
fn a_rename_after_a_broken_link_is_looked_at_before_it_is_retried() {
    let script = Script::new();
    let pool = pool(&script, 3);
    script.on_call(Step::broken());
    assert!(pool.rename(Path::new("/f"), Path::new("/g")).is_ok());
    let ops: Vec<&str> = script.asked().iter().map(|c| c.op).collect();
    let renames: Vec<usize> = (0..ops.len()).filter(|&i| ops[i] == "rename").collect();
    assert_eq!(renames.len(), 2, "asked again once: {ops:?}");
    assert!(
        ops[renames[0]..renames[1]].contains(&"stat"),
        "looked at the names before asking again: {ops:?}"
    );
}

#[test]
fn a_retry_is_made_only_once() {
    let script = Script::new();
    let pool = pool(&script, 2);
    script.on_call(Step::broken());
    script.on_call(Step::broken());
    assert!(matches!(stat(&pool, "/f"), Err(Error::Transport(_))));
    assert_eq!(script.conns_asked("stat"), [0, 1]);
}

#[test]
fn a_failure_that_took_long_is_not_retried() {
    let script = Script::new();
    // A quarter of the deadline: the retry would likely wait as long.
    let timeout = Duration::from_millis(200);
    let pool = pool_timing_out(&script, 2, timeout);
    script.on_call(Step::broken().taking(timeout / 4));
    assert!(matches!(stat(&pool, "/f"), Err(Error::Transport(_))));
    assert_eq!(script.conns_asked("stat"), [0]);
}

#[test]
fn a_busy_server_makes_a_call_wait_for_one_of_the_pools_own_connections() {
    let script = Script::new();
    let pool = pool(&script, 3);
    // The first read holds data connection 1; the server refuses a second.
    let held = Gate::new();
    script.on_call(Step::ok().held(&held));
    let refusing = Gate::new();
    script.on_connect(Step::ok());
    script.on_connect(Step::busy().held(&refusing));
    std::thread::scope(|s| {
        let first = s.spawn(|| read(&pool, "/first"));
        held.until_waiting(1);
        let second = s.spawn(|| read(&pool, "/second"));
        refusing.until_waiting(1);
        refusing.open();
        held.open();
        assert!(first.join().expect("no panic").is_ok());
        let second = second.join().expect("no panic");
        assert!(second.is_ok(), "a 421 is not an error: {second:?}");
    });
    assert_eq!(
        script.conns_asked("read"),
        [1, 1],
        "the second read ran on the first one's connection"
    );
    assert_eq!(script.connects(), 2, "and did not ask for another");
}

#[test]
fn while_the_server_is_full_the_pool_opens_no_connection() {
    let script = Script::new();
    // Calls wait for a connection this long at most.
    let pool = pool_timing_out(&script, 3, Duration::from_millis(300));
    let held = Gate::new();
    script.on_call(Step::ok().held(&held));
    script.on_connect(Step::ok());
    script.on_connect(Step::busy());
    std::thread::scope(|s| {
        let first = s.spawn(|| read(&pool, "/first"));
        held.until_waiting(1);
        // Connection 1 stays held: the second read waits for it in vain.
        let second = read(&pool, "/second");
        assert!(matches!(second, Err(Error::TimedOut)), "{second:?}");
        held.open();
        assert!(first.join().expect("no panic").is_ok());
    });
    // There is room for a second data connection, but the server said it
    // is full a moment ago: a read waits for connection 1 instead.
    let again = Gate::new();
    script.on_call(Step::ok().held(&again));
    std::thread::scope(|s| {
        let third = s.spawn(|| read(&pool, "/third"));
        again.until_waiting(1);
        let fourth = read(&pool, "/fourth");
        assert!(matches!(fourth, Err(Error::TimedOut)), "{fourth:?}");
        again.open();
        assert!(third.join().expect("no panic").is_ok());
    });
    assert_eq!(script.connects(), 2, "no connection asked for while full");
}

#[test]
fn a_busy_server_fails_a_call_when_the_pool_has_no_connection_to_wait_for() {
    let script = Script::new();
    let pool = pool(&script, 3);
    script.on_connect(Step::busy());
    // A write, which is not retried: the error is the pool's first answer.
    let result = pool.write(Path::new("/f"), 0, b"x");
    assert!(
        matches!(&result, Err(Error::Transport(msg)) if msg.contains("busy")),
        "{result:?}"
    );
    assert_eq!(script.connects(), 1, "at once, without waiting");
}

#[test]
fn a_busy_server_makes_a_stat_borrow_an_idle_data_connection() {
    let script = Script::new();
    let pool = pool(&script, 3);
    pool.open_all();
    // The metadata connection breaks; the server refuses a new one.
    script.on_conn(0, Step::broken());
    script.on_connect(Step::busy());
    stat(&pool, "/f").expect("answered on a data connection");
    let conns = script.conns_asked("stat");
    assert_eq!(conns.len(), 2);
    assert!([1, 2].contains(&conns[1]), "{conns:?}");
    assert_eq!(lock(&pool.bulk).idle.len(), 2, "and given back");
}

#[test]
fn reconnects_back_off_and_calls_fail_fast_meanwhile() {
    let script = Script::new();
    let pool = pool(&script, 2);
    script.on_conn(0, Step::timed_out());
    assert!(matches!(stat(&pool, "/f"), Err(Error::TimedOut)));
    let fast = stat(&pool, "/f");
    assert!(
        matches!(&fast, Err(Error::Transport(m)) if m.contains("unreachable")),
        "{fast:?}"
    );
    assert_eq!(script.connects(), 0, "no connect tried during the backoff");
    // Each failed attempt doubles the wait (from 0.5 s), up to MAX_BACKOFF.
    let expected_ms = [1000, 2000, 4000, 5000, 5000];
    for ms in expected_ms {
        backoff_over(&pool);
        script.on_connect(Step::broken());
        let before = Instant::now();
        assert!(stat(&pool, "/f").is_err());
        let after = Instant::now();
        let retry_at = lock(&pool.outage).retry_at.expect("a backoff");
        let backoff = Duration::from_millis(ms);
        assert!(retry_at >= before + backoff, "at least {ms} ms");
        assert!(retry_at <= after + backoff, "at most {ms} ms");
    }
    assert_eq!(script.connects(), 5, "one attempt each, not retried");
    // A connect that works ends the outage.
    backoff_over(&pool);
    stat(&pool, "/f").expect("reconnected");
    let outage = lock(&pool.outage);
    assert_eq!(outage.failures, 0);
    assert!(outage.retry_at.is_none());
}

#[test]
fn a_stat_never_waits_for_a_bulk_transfer() {
    let script = Script::new();
    // One data connection, held by a read, and a second read queued for it.
    let pool = pool(&script, 2);
    let held = Gate::new();
    script.on_call(Step::ok().held(&held));
    std::thread::scope(|s| {
        let first = s.spawn(|| read(&pool, "/big"));
        held.until_waiting(1);
        let queued = s.spawn(|| read(&pool, "/next"));
        stat(&pool, "/small").expect("answered while the reads wait");
        assert_eq!(script.conns_asked("stat"), [0]);
        held.open();
        assert!(first.join().expect("no panic").is_ok());
        assert!(queued.join().expect("no panic").is_ok());
    });
    assert_eq!(script.conns_asked("read"), [1, 1]);
}

#[test]
fn a_busy_metadata_connection_makes_a_stat_borrow_an_idle_data_connection() {
    let script = Script::new();
    let pool = pool(&script, 3);
    pool.open_all();
    let held = Gate::new();
    script.on_conn(0, Step::ok().held(&held));
    std::thread::scope(|s| {
        let slow = s.spawn(|| stat(&pool, "/slow"));
        held.until_waiting(1);
        stat(&pool, "/quick").expect("answered while the first waits");
        held.open();
        assert!(slow.join().expect("no panic").is_ok());
    });
    let conns = script.conns_asked("stat");
    assert_eq!(conns[0], 0);
    assert!([1, 2].contains(&conns[1]), "{conns:?}");
    assert_eq!(lock(&pool.bulk).idle.len(), 2, "given back");
}

#[test]
fn a_listing_in_the_background_runs_only_on_an_idle_data_connection() {
    let script = Script::new();
    let pool = pool(&script, 3);
    // No data connection is open: refused at once; none is opened, and
    // the metadata connection is left to stats.
    let refused = pool.list_in_background(Path::new("/d"));
    assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
    assert_eq!(script.connects(), 0, "no connection opened for it");
    assert!(script.conns_asked("list").is_empty(), "nothing asked");
    // A read opened one and let it go: the listing runs there.
    read(&pool, "/f").expect("read");
    pool.list_in_background(Path::new("/d")).expect("listed");
    assert_eq!(script.conns_asked("list"), [1], "on the data connection");
}

/// What each call of `script` was, as (connection, op, path).
fn asked(script: &Script) -> Vec<(usize, &'static str, String)> {
    script
        .asked()
        .into_iter()
        .map(|c| (c.conn, c.op, c.path.display().to_string()))
        .collect()
}

#[test]
fn a_writers_kept_handle_stays_on_its_connection_until_closed() {
    let script = Script::new();
    let pool = pool(&script, 3);
    let f = Path::new("/f");
    pool.write_kept(7, f, 0, b"a").expect("write");
    pool.write_kept(7, f, 1, b"b").expect("write");
    // Another call meanwhile takes another connection: the parked one
    // serves only its writer.
    pool.read(Path::new("/g"), 0, 1).expect("read");
    pool.close_writer(7).expect("close");
    assert_eq!(
        asked(&script),
        [
            (1, "write_kept", "/f".into()),
            (1, "write_kept", "/f".into()),
            (2, "read", "/g".into()),
            (1, "close_kept", "/f".into()),
        ]
    );
    assert!(pool.close_writer(7).is_ok(), "nothing left to close");
}

#[test]
fn a_kept_handle_is_closed_to_free_its_connection_and_its_failure_kept() {
    let script = Script::new();
    // One data connection: a read must take back the parked one.
    let pool = pool(&script, 2);
    let f = Path::new("/f");
    pool.write_kept(7, f, 0, b"a").expect("write");
    // That close breaks the link: the connection goes, a new one reads.
    script.on_call(Step::broken());
    pool.read(Path::new("/g"), 0, 1).expect("read");
    assert_eq!(
        asked(&script),
        [
            (1, "write_kept", "/f".into()),
            (1, "close_kept", "/f".into()),
            (2, "read", "/g".into()),
        ]
    );
    let closed = pool.close_writer(7);
    assert!(
        matches!(closed, Err(Error::Transport(_))),
        "the writer is told its close failed: {closed:?}"
    );
    assert!(pool.close_writer(7).is_ok(), "once");
}

#[test]
fn a_spare_data_connection_is_opened_only_with_room_and_none_idle() {
    let script = Script::new();
    let pool = pool(&script, 3);
    // None open: one is opened, and the listing in the background runs
    // there (not on the metadata connection).
    assert!(pool.open_spare());
    assert_eq!(script.connects(), 1, "one data connection opened");
    pool.list_in_background(Path::new("/d")).expect("listed");
    assert_eq!(
        script.conns_asked("list"),
        [1],
        "on the new data connection"
    );
    // One idle: nothing opened.
    assert!(pool.open_spare());
    assert_eq!(script.connects(), 1, "the idle one serves");
    // Both data connections busy: none idle, and no room for a third.
    let held = [
        pool.take_idle_bulk().expect("the idle one"),
        pool.acquire_bulk(None).expect("a second one"),
    ];
    assert_eq!(script.connects(), 2);
    assert!(!pool.open_spare(), "no more than the pool's max");
    assert_eq!(script.connects(), 2);
    drop(held);
}
