//! Hostile servers: what rmount does when the server lies (ARCHITECTURE.md
//! invariants 2 and 6).
//!
//! - FTP: a scripted fake server in this process ([`FakeFtp`]), plain TCP,
//!   speaking just enough FTP to be mounted, whose listings hold names that
//!   must never reach the kernel (`../x`, `a/b`, `.`, `..`, NUL, a 5000-byte
//!   name), 100 000 entries, unparseable lines, and replies that are not
//!   replies.
//! - SFTP: a real sshd whose `Subsystem sftp` is our own script
//!   (tests/data/hostile_sftp.py), answering with hostile names, a packet
//!   that announces 2 GiB, a reply to the wrong request id, or nothing.
//!
//! In every case the mount must stay up, each call must return (an error
//! or a sane answer) within the timeout plus a grace period, and hostile
//! names must never come out of `read_dir`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::*;

/// rmount's `-o timeout` in these tests, and the grace on top of it.
const TIMEOUT: Duration = Duration::from_secs(5);
const GRACE: Duration = Duration::from_secs(5);
/// Entries in the fake FTP server's `/big` directory.
const BIG_ENTRIES: usize = 100_000;
/// The daemon's resident memory must stay below this.
const RSS_LIMIT_KB: u64 = 500 * 1024;

// ----- a mount of an arbitrary URL -------------------------------------------------

/// rmount mounted on a fresh directory with explicit arguments (the fake
/// servers are not [`Server`]s). Dropping it unmounts and kills the daemon
/// by PID if it does not exit.
///
/// With `RMOUNT_HOSTILE_LOG=FILE` in the environment, rmount runs in the
/// foreground with `-d` and its debug log goes to FILE (for debugging).
struct RawMount {
    mnt: MountPoint,
    daemon: Option<u32>,
    foreground: Option<Child>,
}

impl RawMount {
    fn new(args: &[&str], env: &[(&str, &str)]) -> RawMount {
        let mnt = MountPoint::new("rmount-test-mnt-");
        let dir_s = mnt.arg().to_string();
        let mut argv: Vec<&str> = args.to_vec();
        argv.push(&dir_s);
        let mut m = RawMount {
            mnt,
            daemon: None,
            foreground: None,
        };
        if let Some(log) = std::env::var_os("RMOUNT_HOSTILE_LOG") {
            let child = Command::new(rmount_bin())
                .arg("-d")
                .args(&argv)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stderr(File::create(log).expect("debug log"))
                .spawn()
                .expect("start rmount -d");
            m.daemon = Some(child.id());
            m.foreground = Some(child);
            wait_until("the -d mount", Duration::from_secs(30), || m.is_mounted());
            return m;
        }
        let out = run_rmount(&argv, env, None);
        assert!(
            out.status.success() && is_mounted(&m.mnt.dir),
            "rmount {argv:?} did not mount\n{}",
            describe_output(&out)
        );
        m.daemon = rmount_processes_for(&m.mnt.dir).first().copied();
        m
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.dir.join(rel)
    }

    fn is_mounted(&self) -> bool {
        is_mounted(&self.mnt.dir)
    }

    /// The daemon's resident set size in KiB, from /proc.
    fn rss_kb(&self) -> u64 {
        let pid = self.daemon.expect("daemon pid");
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RawMount {
    fn drop(&mut self) {
        let _ = unmount_path(&self.mnt.dir);
        if let Some(mut child) = self.foreground.take() {
            if !poll_until(Duration::from_secs(10), || {
                child.try_wait().ok().flatten().is_some()
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // A daemon gets time to exit by itself; then `mnt` kills what is
        // left and removes the directory.
        poll_until(Duration::from_secs(10), || {
            rmount_processes_for(&self.mnt.dir).is_empty()
        });
    }
}

/// Names from `read_dir(dir)`, or its error, within the time limit.
fn list(dir: PathBuf) -> io::Result<Vec<OsString>> {
    within(
        &format!("read_dir {}", dir.display()),
        TIMEOUT + GRACE,
        move || {
            fs::read_dir(&dir)?
                .map(|e| e.map(|e| e.file_name()))
                .collect()
        },
    )
    .0
}

/// Waits (at most 30 s) until the mount lists its root with `file` in it
/// and reads `file` as "hello": after a broken connection it must recover
/// by itself.
fn wait_until_works(mount: &RawMount, file: &str) {
    let (root, path) = (mount.mnt.dir.clone(), mount.path(file));
    wait_until("the mount to work again", Duration::from_secs(30), || {
        let listed = fs::read_dir(&root)
            .map(|d| d.flatten().any(|e| e.file_name() == file))
            .unwrap_or(false);
        listed && fs::read(&path).is_ok_and(|d| d == b"hello")
    });
    let names = list(root).expect("read_dir of the root");
    assert_sane_names(&names);
}

/// Panics if any listed name is one a server must never get through.
fn assert_sane_names(names: &[OsString]) {
    for n in names {
        let b = n.as_bytes();
        assert!(
            !b.is_empty()
                && b != b"."
                && b != b".."
                && !b.contains(&b'/')
                && !b.contains(&0)
                && b.len() <= 255,
            "read_dir yielded a hostile name: {:?}",
            String::from_utf8_lossy(&b[..b.len().min(80)])
        );
    }
}

// ----- the fake FTP server ------------------------------------------------------------

/// What the fake FTP server serves: directories (path → listing lines) and
/// files (path → content); `/garbage` answers CWD with a line that is not a
/// reply, and LIST in `/badend` ends with one.
struct FakeFtp {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

struct Tree {
    dirs: HashMap<String, Vec<u8>>,
    files: HashMap<String, Vec<u8>>,
}

fn dir_line(name: &[u8]) -> Vec<u8> {
    let mut l = b"drwxr-xr-x    2 1000     1000         4096 Jan 01  2024 ".to_vec();
    l.extend_from_slice(name);
    l.extend_from_slice(b"\r\n");
    l
}

fn file_line(name: &[u8], size: usize) -> Vec<u8> {
    let mut l = format!("-rw-r--r--    1 1000     1000     {size:>8} Jan 01  2024 ").into_bytes();
    l.extend_from_slice(name);
    l.extend_from_slice(b"\r\n");
    l
}

fn hostile_tree() -> Tree {
    let mut dirs = HashMap::new();
    let mut files = HashMap::new();
    let mut root = Vec::new();
    for d in ["hostile", "big", "garbage", "badlist", "badend"] {
        root.extend(dir_line(d.as_bytes()));
    }
    root.extend(file_line(b"ok.txt", 5));
    dirs.insert("/".to_string(), root);

    let mut hostile = Vec::new();
    for name in [
        &b"../x"[..],
        b"a/b",
        b".",
        b"..",
        b"nul\0byte",
        &[b'n'; 5000][..],
    ] {
        hostile.extend(file_line(name, 1));
    }
    hostile.extend(file_line(b"good.txt", 5));
    dirs.insert("/hostile".to_string(), hostile);

    // Long names: about 25 MB of listing.
    let mut big = Vec::with_capacity(BIG_ENTRIES * 260);
    for i in 0..BIG_ENTRIES {
        big.extend(file_line(
            format!("{i:07}-{}", "x".repeat(190)).as_bytes(),
            i,
        ));
    }
    dirs.insert("/big".to_string(), big);

    let mut badlist = b"total 12\r\n".to_vec();
    badlist.extend_from_slice(b"\x00\x01\x02\xff\xfe garbage \x1b[31m\r\n");
    badlist.extend_from_slice(b"-rw-r--r-- 1 a b\r\n");
    badlist.extend_from_slice(b"drwx this is not a listing line at all\r\n");
    badlist.extend_from_slice(&[b'z'; 3000]);
    badlist.extend_from_slice(b"\r\n");
    badlist.extend(file_line(b"good.txt", 5));
    dirs.insert("/badlist".to_string(), badlist);
    dirs.insert("/badend".to_string(), file_line(b"good.txt", 5));
    dirs.insert("/garbage".to_string(), file_line(b"good.txt", 5));

    for d in ["/hostile", "/badlist", "/badend", "/garbage"] {
        files.insert(format!("{d}/good.txt"), b"hello".to_vec());
    }
    files.insert("/ok.txt".to_string(), b"hello".to_vec());
    Tree { dirs, files }
}

impl FakeFtp {
    fn start() -> FakeFtp {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind fake FTP server");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tree = Arc::new(hostile_tree());
        let (s, t) = (stop.clone(), threads.clone());
        let acceptor = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s2, tree) = (s.clone(), tree.clone());
                        let h = std::thread::spawn(move || {
                            let _ = serve_ftp(conn, &tree, &s2);
                        });
                        t.lock().unwrap_or_else(|e| e.into_inner()).push(h);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(acceptor);
        FakeFtp {
            port,
            stop,
            threads,
        }
    }

    fn url(&self) -> String {
        format!("ftp://u@127.0.0.1:{}/", self.port)
    }
}

impl Drop for FakeFtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Session threads notice the flag within their read timeout.
        let all: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in all {
            let _ = t.join();
        }
    }
}

/// One control connection of the fake server.
fn serve_ftp(conn: TcpStream, tree: &Tree, stop: &AtomicBool) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut cwd = "/".to_string();
    let mut user = String::new();
    let mut pasv: Option<TcpListener> = None;
    out.write_all(b"220 fake FTP server\r\n")?;
    let mut line = Vec::new();
    let idle_limit = Instant::now() + Duration::from_secs(600);
    loop {
        if stop.load(Ordering::SeqCst) || Instant::now() > idle_limit {
            return Ok(());
        }
        match reader.by_ref().take(4096).read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) if !line.ends_with(b"\n") && line.len() < 4096 => continue,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        line.clear();
        let (cmd, arg) = match text.split_once(' ') {
            Some((c, a)) => (c.to_ascii_uppercase(), a.to_string()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        let resolve = |a: &str| -> String {
            let p = if a.starts_with('/') {
                a.to_string()
            } else if cwd == "/" {
                format!("/{a}")
            } else {
                format!("{cwd}/{a}")
            };
            let t = p.trim_end_matches('/');
            if t.is_empty() {
                "/".to_string()
            } else {
                t.to_string()
            }
        };
        let reply: Vec<u8> = match cmd.as_str() {
            "USER" => {
                user = arg.clone();
                b"331 password please\r\n".to_vec()
            }
            // The login `escape` is refused with terminal escape sequences:
            // clear the screen, set the window title, switch to red.
            "PASS" if user == "escape" => {
                b"530 \x1b[2J\x1b]0;pwned\x07Login\x1b[31m incorrect\r\n".to_vec()
            }
            "PASS" => b"230 logged in\r\n".to_vec(),
            "SYST" => b"215 UNIX Type: L8\r\n".to_vec(),
            "FEAT" => b"211-Features:\r\n EPSV\r\n PASV\r\n SIZE\r\n MDTM\r\n REST STREAM\r\n UTF8\r\n211 End\r\n".to_vec(),
            "OPTS" | "TYPE" | "MODE" | "STRU" | "NOOP" => b"200 ok\r\n".to_vec(),
            "PWD" | "XPWD" => format!("257 \"{cwd}\" is the current directory\r\n").into_bytes(),
            "CWD" | "XCWD" => {
                let p = resolve(&arg);
                if p == "/garbage" {
                    b"this is not a reply at all\r\n".to_vec()
                } else if tree.dirs.contains_key(&p) {
                    cwd = p;
                    b"250 ok\r\n".to_vec()
                } else {
                    b"550 no such directory\r\n".to_vec()
                }
            }
            "CDUP" => {
                cwd = "/".to_string();
                b"250 ok\r\n".to_vec()
            }
            "EPSV" | "PASV" => {
                let l = TcpListener::bind(("127.0.0.1", 0))?;
                let port = l.local_addr()?.port();
                pasv = Some(l);
                if cmd == "EPSV" {
                    format!("229 Entering Extended Passive Mode (|||{port}|)\r\n").into_bytes()
                } else {
                    format!(
                        "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
                        port >> 8,
                        port & 0xff
                    )
                    .into_bytes()
                }
            }
            "LIST" | "NLST" | "MLSD" | "RETR" => {
                let target = arg
                    .split(' ')
                    .rfind(|a| !a.is_empty() && !a.starts_with('-'))
                    .map(&resolve)
                    .unwrap_or_else(|| cwd.clone());
                let body = match cmd.as_str() {
                    "MLSD" => None,
                    "RETR" => tree.files.get(&target).cloned(),
                    _ => tree.dirs.get(&target).cloned(),
                };
                match (body, pasv.take()) {
                    (None, _) => b"550 no\r\n".to_vec(),
                    (Some(_), None) => b"425 use PASV first\r\n".to_vec(),
                    (Some(body), Some(l)) => {
                        out.write_all(b"150 here it comes\r\n")?;
                        send_data(&l, &body);
                        if target == "/badend" && cmd == "LIST" {
                            b"\x01\x02 garbage instead of 226\r\n".to_vec()
                        } else {
                            b"226 done\r\n".to_vec()
                        }
                    }
                }
            }
            "SIZE" => match tree.files.get(&resolve(&arg)) {
                Some(f) => format!("213 {}\r\n", f.len()).into_bytes(),
                None => b"550 not a file\r\n".to_vec(),
            },
            "MDTM" => match tree.files.get(&resolve(&arg)) {
                Some(_) => b"213 20240101000000\r\n".to_vec(),
                None => b"550 not a file\r\n".to_vec(),
            },
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            "STOR" | "APPE" | "DELE" | "MKD" | "RMD" | "RNFR" | "RNTO" | "SITE" | "MFMT" => {
                b"550 read-only\r\n".to_vec()
            }
            _ => b"502 not implemented\r\n".to_vec(),
        };
        out.write_all(&reply)?;
    }
}

/// Accepts the data connection (within 10 s) and sends `body` on it.
fn send_data(listener: &TcpListener, body: &[u8]) {
    let _ = listener.set_nonblocking(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
                let _ = s.write_all(body);
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn mount_fake_ftp(server: &FakeFtp) -> RawMount {
    let url = server.url();
    RawMount::new(
        &["-o", "timeout=5,cache_timeout=0", &url],
        &[("RMOUNT_PASSWORD", "x")],
    )
}

// ----- FTP tests ---------------------------------------------------------------------------------

/// A listing with `../x`, `a/b`, `.`, `..`, a NUL byte and a 5000-byte name:
/// `read_dir` shows only the good entry, lookups of the bad names fail, and
/// the mount stays up.
#[test]
fn ftp_hostile_names_are_not_exposed() {
    let _load = light_load();
    let server = FakeFtp::start();
    let mount = mount_fake_ftp(&server);
    let names = list(mount.path("hostile")).expect("read_dir of a hostile listing");
    assert_sane_names(&names);
    assert_eq!(names, ["good.txt"], "only the good entry may be listed");
    // What a careless parser would make of the bad names: a directory `a`
    // (from `a/b`), a file `nul` (the name cut at the NUL), `x` (from `../x`).
    for bad in ["a", "nul", "x", "a/b"] {
        let p = mount.path("hostile").join(bad);
        let (r, _) = within("stat of a hostile name", TIMEOUT + GRACE, move || {
            fs::metadata(p)
        });
        assert!(r.is_err(), "stat of hostile/{bad} succeeded");
    }
    assert_eq!(
        fs::read(mount.path("hostile/good.txt")).expect("read good.txt"),
        b"hello"
    );
    assert!(mount.is_mounted());
}

/// A directory of 100 000 entries (about 25 MB of listing): read_dir
/// returns all of them (or an error) in bounded time, and the daemon's
/// resident memory stays below 500 MiB.
#[test]
fn ftp_huge_listing_keeps_memory_bounded() {
    let _load = light_load();
    let server = FakeFtp::start();
    let mount = mount_fake_ftp(&server);
    let dir = mount.path("big");
    let (result, took) = within(
        "read_dir of 100 000 entries",
        Duration::from_secs(180),
        move || fs::read_dir(&dir).map(|d| d.flatten().count()),
    );
    let rss = mount.rss_kb();
    eprintln!("100 000 entries: {result:?} in {took:?}; daemon VmRSS {rss} KiB");
    if let Ok(n) = result {
        assert_eq!(n, BIG_ENTRIES, "read_dir returned a partial listing");
    }
    assert!(rss > 0 && rss < RSS_LIMIT_KB, "daemon VmRSS {rss} KiB");
    // A second listing (cached or not) does not grow memory without bound.
    let dir = mount.path("big");
    let _ = within("second read_dir", Duration::from_secs(180), move || {
        fs::read_dir(&dir).map(|d| d.flatten().count())
    });
    let rss = mount.rss_kb();
    assert!(
        rss < RSS_LIMIT_KB,
        "daemon VmRSS {rss} KiB after a second listing"
    );
    assert!(mount.is_mounted());
}

/// A refusal that carries terminal escape sequences: rmount's error shows
/// them escaped, and no control character but the line ends reaches the
/// terminal.
#[test]
fn ftp_escape_sequences_in_replies_are_shown_escaped() {
    let _load = light_load();
    let server = FakeFtp::start();
    let mnt = MountPoint::new("rmount-test-hostile-");
    let url = format!("ftp://escape@127.0.0.1:{}/", server.port);
    let out = run_rmount(
        &["-o", "timeout=5", &url, mnt.arg()],
        &[("RMOUNT_PASSWORD", "x")],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("rmount said: {err:?}");
    assert!(!out.status.success(), "a refused login mounted");
    assert!(
        err.contains("\\u{1b}[2J\\u{1b}]0;pwned\\u{7}Login\\u{1b}[31m incorrect"),
        "the server's text is not shown escaped: {err:?}"
    );
    for line in err.lines() {
        assert!(
            !line.chars().any(char::is_control),
            "a control character reached stderr: {line:?}"
        );
    }
}

/// A control reply that is not a reply (garbage instead of `250`): the call
/// gets an error within the timeout, and the mount keeps working (the
/// broken connection is replaced).
#[test]
fn ftp_garbage_reply_is_an_error() {
    let _load = light_load();
    let server = FakeFtp::start();
    let mount = mount_fake_ftp(&server);
    let r = list(mount.path("garbage"));
    eprintln!("read_dir after a garbage reply: {r:?}");
    assert!(
        r.is_err(),
        "a garbage reply to CWD was taken for success: {r:?}"
    );
    wait_until_works(&mount, "ok.txt");
    assert!(mount.is_mounted());
}

/// Unparseable listing lines (binary junk, `total`, truncated lines, a
/// 3000-byte line) never become entries; the good line still does.
#[test]
fn ftp_unparseable_listing_lines_are_skipped() {
    let _load = light_load();
    let server = FakeFtp::start();
    let mount = mount_fake_ftp(&server);
    let names = list(mount.path("badlist")).expect("read_dir of a listing with junk lines");
    assert_sane_names(&names);
    assert_eq!(names, ["good.txt"]);
}

/// A transfer that ends with garbage instead of `226`: an error or the
/// listing, within the timeout; the mount still works afterwards.
#[test]
fn ftp_garbage_after_transfer() {
    let _load = light_load();
    let server = FakeFtp::start();
    let mount = mount_fake_ftp(&server);
    let r = list(mount.path("badend"));
    eprintln!("read_dir with garbage instead of 226: {r:?}");
    if let Ok(names) = &r {
        assert_sane_names(names);
        assert_eq!(names, &["good.txt"], "a listing, if any, is the whole one");
    }
    wait_until_works(&mount, "ok.txt");
    assert!(mount.is_mounted());
}

// ----- the hostile SFTP subsystem ---------------------------------------------------------

/// What [`HostileSshd`] serves as its sftp subsystem.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subsystem {
    Hostile,
    OneChannel,
    RefusingClose,
}

/// OpenSSH's SFTP server program, as Debian installs it.
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// An sshd of our own whose `Subsystem sftp` is tests/data/hostile_sftp.py
/// (or, for [`HostileSshd::one_channel`], OpenSSH's own, allowing a single
/// channel per connection; for [`HostileSshd::refusing_close`], OpenSSH's
/// sftp-server behind tests/data/refuse_close_sftp.py). Keys come from a
/// (stopped) test [`Server`]. Dropping it kills sshd and every process it
/// forked, by PID.
struct HostileSshd {
    child: Child,
    port: u16,
    server: Server,
    known_hosts: PathBuf,
}

impl HostileSshd {
    fn start() -> HostileSshd {
        HostileSshd::start_with(Subsystem::Hostile)
    }

    /// `MaxSessions 1`: the one SFTP channel per connection that a server
    /// may allow.
    fn one_channel() -> HostileSshd {
        HostileSshd::start_with(Subsystem::OneChannel)
    }

    /// OpenSSH's sftp-server, except that closing a written file fails.
    fn refusing_close() -> HostileSshd {
        HostileSshd::start_with(Subsystem::RefusingClose)
    }

    fn start_with(kind: Subsystem) -> HostileSshd {
        let mut server = Server::start(Proto::Sftp);
        server.stop();
        let name = match kind {
            Subsystem::RefusingClose => "refuse_close_sftp.py",
            _ => "hostile_sftp.py",
        };
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name);
        // The login runs it: a copy in the server's own directory, which
        // an ordinary account can reach wherever the checkout is.
        let script = server.dir().join(name);
        fs::copy(&source, &script).unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("python3 (scripts/setup.sh installs it)");
        let original =
            fs::read_to_string(server.dir().join("sshd_config")).expect("read sshd_config");
        let port = free_port();
        let config: String = original
            .lines()
            .map(|l| {
                if l.starts_with("Port ") {
                    format!("Port {port}")
                } else if l.starts_with("PidFile ") {
                    format!(
                        "PidFile {}",
                        server.dir().join("hostile-sshd.pid").display()
                    )
                } else if l.starts_with("Subsystem ") && kind == Subsystem::Hostile {
                    format!("Subsystem sftp {python} {}", script.display())
                } else if l.starts_with("Subsystem ") && kind == Subsystem::RefusingClose {
                    format!("Subsystem sftp {python} {} {SFTP_SERVER}", script.display())
                } else if l.starts_with("MaxSessions ") && kind == Subsystem::OneChannel {
                    "MaxSessions 1".to_string()
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect();
        let config_path = server.dir().join("sshd_config_hostile");
        fs::write(&config_path, config).expect("write sshd config");
        let known_hosts = server.dir().join("known_hosts_hostile");
        fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", server.host_public_key_line()),
        )
        .expect("write known_hosts");
        let log = File::create(server.dir().join("hostile-sshd.log")).expect("log");
        use std::os::unix::process::CommandExt;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start sshd");
        let mut sshd = HostileSshd {
            child,
            port,
            server,
            known_hosts,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let up = poll_until(Duration::from_secs(20), || {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut b = [0u8; 4];
            s.read_exact(&mut b).is_ok() && &b == b"SSH-"
        });
        assert!(up, "hostile sshd did not start:\n{}", sshd.log());
        if let Ok(Some(status)) = sshd.child.try_wait() {
            panic!("hostile sshd exited: {status}\n{}", sshd.log());
        }
        sshd
    }

    fn log(&self) -> String {
        fs::read_to_string(self.server.dir().join("hostile-sshd.log")).unwrap_or_default()
    }

    fn mount(&self) -> RawMount {
        let url = format!("sftp://{TEST_USER}@127.0.0.1:{}/", self.port);
        let identity = self.server.identity().display().to_string();
        let kh = format!("UserKnownHostsFile={}", self.known_hosts.display());
        RawMount::new(
            &[
                "-i",
                &identity,
                "-o",
                &kh,
                "-o",
                "timeout=5,cache_timeout=0",
                &url,
            ],
            &[],
        )
    }
}

impl Drop for HostileSshd {
    fn drop(&mut self) {
        // sshd forks per connection: kill the whole tree we started.
        for pid in descendants(self.child.id()) {
            // SAFETY: kill(2) on processes forked by our sshd.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- hostile sshd log ---\n{}", self.log());
        }
    }
}

// ----- SFTP tests ---------------------------------------------------------------------------------

/// An SFTP server listing `../x`, `a/b`, `.`, `..` and a name with NUL:
/// `read_dir` shows only the good entry. A directory holding a 5000-byte
/// name lists as an error or without that name.
#[test]
fn sftp_hostile_names_are_not_exposed() {
    let _load = light_load();
    let sshd = HostileSshd::start();
    let mount = sshd.mount();
    let names = list(mount.path("hostile")).expect("read_dir of a hostile listing");
    assert_sane_names(&names);
    assert_eq!(names, ["good.txt"], "only the good entry may be listed");
    let long = list(mount.path("longname"));
    eprintln!("listing with a 5000-byte name: {long:?}");
    if let Ok(names) = &long {
        assert_sane_names(names);
        assert_eq!(names, &["good.txt"]);
    }
    wait_until_works(&mount, "good.txt");
    assert!(mount.is_mounted());
}

/// A reply announcing a 2 GiB packet (then silence): the listing fails
/// within the timeout, the daemon does not allocate the 2 GiB, and the
/// mount keeps working on a new connection.
#[test]
fn sftp_bad_packet_length_is_an_error() {
    let _load = light_load();
    let sshd = HostileSshd::start();
    let mount = sshd.mount();
    let r = list(mount.path("badlen"));
    eprintln!("read_dir with a 2 GiB packet length: {r:?}");
    assert!(r.is_err(), "a listing with a bad packet succeeded: {r:?}");
    let rss = mount.rss_kb();
    assert!(rss < RSS_LIMIT_KB, "daemon VmRSS {rss} KiB");
    wait_until_works(&mount, "good.txt");
    assert!(mount.is_mounted());
}

/// A reply carrying another request's id, and a request never answered:
/// each stat returns an error within the timeout (never a hang, never the
/// wrong reply's data), and the mount keeps working.
#[test]
fn sftp_wrong_id_and_silence_time_out() {
    let _load = light_load();
    let sshd = HostileSshd::start();
    let mount = sshd.mount();
    for name in ["wrongid", "silent"] {
        // After a timeout rmount may fail fast for a while: wait until it
        // talks to the server again, so each case reaches the server.
        wait_until_works(&mount, "good.txt");
        let p = mount.path(name);
        let (r, took) = within(&format!("stat {name}"), TIMEOUT + GRACE, move || {
            fs::metadata(p)
        });
        eprintln!("stat {name}: {r:?} after {took:?}");
        assert!(r.is_err(), "stat {name} succeeded: {r:?}");
    }
    wait_until_works(&mount, "good.txt");
    assert!(mount.is_mounted());
}

/// A listing that never ends (every READDIR brings 100 more names) fails
/// within a small multiple of the timeout, and the mount's memory stays
/// bounded meanwhile; the mount works afterwards.
#[test]
fn sftp_endless_listing_fails_in_time() {
    let _load = light_load();
    let sshd = HostileSshd::start();
    let mount = sshd.mount();
    let daemon = mount.daemon.expect("the daemon's pid");
    let p = mount.path("endless");
    let (r, took) = within(
        "list an endless directory",
        TIMEOUT * 3 + GRACE * 2,
        move || fs::read_dir(p).map(|d| d.count()),
    );
    eprintln!("endless listing: {r:?} after {took:?}");
    assert!(r.is_err(), "an endless listing cannot succeed: {r:?}");
    let rss_kib: u64 = fs::read_to_string(format!("/proc/{daemon}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the daemon's peak memory");
    eprintln!("peak memory of the mount: {rss_kib} KiB");
    assert!(rss_kib < 512 * 1024, "peak memory {rss_kib} KiB");
    wait_until_works(&mount, "good.txt");
}

/// A server that opens one channel per connection has no room for the
/// extensions' channel, so no posix-rename: the mount still reads, writes,
/// replaces files (moving the old one aside first), and `df` shows
/// placeholder figures, as for FTP.
#[test]
fn sftp_one_channel_per_connection_still_works() {
    let _load = light_load();
    let sshd = HostileSshd::one_channel();
    let export = sshd.server.export.clone();
    fs::write(export.join("seed.txt"), b"seed").expect("seed the export");
    let mount = sshd.mount();
    let root = format!("{}{}", mount.mnt.dir.display(), export.display());
    let root = Path::new(&root);
    assert_eq!(
        fs::read(root.join("seed.txt")).expect("read through the mount"),
        b"seed"
    );
    // fsync commits and reports what close would (fs::write ignores that).
    let write = |name: &str, data: &[u8]| {
        File::create(root.join(name))
            .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
            .unwrap_or_else(|e| panic!("write {name}: {e}\n{}", sshd.log()));
    };
    write("new.txt", b"written");
    assert_eq!(
        fs::read(export.join("new.txt")).expect("the new file on the server"),
        b"written"
    );
    // Replacing needs a rename over an existing file: plain SFTP rename
    // refuses, so the old file is moved aside first.
    write("seed.txt", b"replaced");
    assert_eq!(
        fs::read(export.join("seed.txt")).expect("the replaced file"),
        b"replaced"
    );
    fs::rename(root.join("new.txt"), root.join("seed.txt")).expect("mv over a file");
    assert_eq!(
        fs::read(export.join("seed.txt")).expect("moved"),
        b"written"
    );
    let mut names: Vec<_> = fs::read_dir(&export)
        .expect("list the export")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| !n.as_encoded_bytes().starts_with(b".rmount-live-"))
        .collect();
    names.sort();
    assert_eq!(names, ["seed.txt"], "nothing left aside");
    // No channel for hardlink@openssh.com either: link() is EPERM, as on
    // servers without the extension, and the connection still works.
    let linked = fs::hard_link(root.join("seed.txt"), root.join("link.txt"));
    assert_eq!(
        linked.map_err(|e| e.raw_os_error()),
        Err(Some(libc::EPERM)),
        "link() without the extensions' channel"
    );
    assert!(!export.join("link.txt").exists());
    // Nor for copy-data: cp inside the mount copies through it.
    let cp = run_cmd(
        Command::new("cp")
            .arg(root.join("seed.txt"))
            .arg(root.join("copy.txt")),
        Duration::from_secs(60),
        None,
    );
    assert!(cp.status.success(), "cp\n{}", describe_output(&cp));
    assert_eq!(
        fs::read(export.join("copy.txt")).expect("the copy on the server"),
        b"written"
    );
    fs::remove_file(root.join("copy.txt")).expect("rm the copy");
    assert_eq!(
        fs::read(root.join("seed.txt")).expect("read after the refused link"),
        b"written"
    );
    let df = run_cmd(
        Command::new("df").args(["-B1", "--output=size"]).arg(root),
        Duration::from_secs(30),
        None,
    );
    let text = String::from_utf8_lossy(&df.stdout);
    assert!(df.status.success(), "df: {}", describe_output(&df));
    // The placeholder figures: 1 PiB, all free.
    assert!(
        text.lines().any(|l| l.trim() == (1u64 << 50).to_string()),
        "df without statvfs: {text}"
    );
    assert!(mount.is_mounted());
}

// A successful close means the server accepted the file: every handle that
// wrote is closed, and its CLOSE status checked, before close() returns.
// A server that refuses those CLOSEs makes `cp` fail, and the target never
// gets the new bytes under its name.
#[test]
fn sftp_refused_close_fails_the_copy() {
    let _load = light_load();
    let sshd = HostileSshd::refusing_close();
    let export = sshd.server.export.clone();
    sshd.server.put_file("kept.txt", b"old content");
    let mount = sshd.mount();
    let root = format!("{}{}", mount.mnt.dir.display(), export.display());
    let root = Path::new(&root);
    assert_eq!(
        fs::read(root.join("kept.txt")).expect("reads still work"),
        b"old content"
    );
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src.bin");
    fs::write(&src, vec![7u8; 300_000]).unwrap();
    for target in ["new.bin", "kept.txt"] {
        let out = run_cmd(
            Command::new("cp").arg(&src).arg(root.join(target)),
            Duration::from_secs(60),
            None,
        );
        assert!(
            !out.status.success(),
            "cp to {target} must fail when the server refuses to close what was written\n{}\n{}",
            describe_output(&out),
            sshd.log()
        );
    }
    assert_eq!(
        fs::read(export.join("kept.txt")).unwrap(),
        b"old content",
        "the old file keeps its bytes"
    );
    assert!(
        fs::read(export.join("new.bin")).map_or(true, |d| d.len() < 300_000),
        "the new name never holds the copy as if it had succeeded"
    );
}
