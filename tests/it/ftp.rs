//! FTP and FTPS specifics through the real `rmount` binary: certificate
//! checking, logins from `~/.netrc` and standard input, active mode, appends
//! and implicit TLS. Every test checks the server's export directory itself,
//! not only what the mount shows.
//!
//! Run: `cargo test --test it -- ftp:: --skip ::ftp:: --skip sftp::
//! --test-threads=2` (the filter is a substring: the skips drop the
//! `ftp`/`sftp` server modules of the other suites).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

// ----- helpers ---------------------------------------------------------------

const PREFIX: &str = "rmount-test-ftp-";

/// `rmount ARGS... URL MNT` with `env` added (run_rmount removes
/// RMOUNT_PASSWORD and SSH_AUTH_SOCK first) and `stdin` piped in.
fn rmount_at(
    mnt: &MountPoint,
    args: &[&str],
    url: &str,
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Output {
    let mut all = args.to_vec();
    all.push(url);
    all.push(mnt.dir.to_str().expect("utf-8 temp path"));
    run_rmount(&all, env, stdin)
}

/// rmount succeeded and the mount is there.
fn assert_mounted(out: &Output, mnt: &MountPoint, server: &Server) {
    assert!(
        out.status.success() && is_mounted(&mnt.dir),
        "rmount should have mounted {} (mounted: {})\n{}\n--- server log ---\n{}",
        mnt.dir.display(),
        is_mounted(&mnt.dir),
        describe_output(out),
        server.log_tail(15)
    );
}

/// rmount failed cleanly: an exit status (not a signal) other than 0,
/// nothing mounted, no daemon left. Returns stderr.
fn assert_refused(out: &Output, mnt: &MountPoint) -> String {
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "rmount should have exited with an error\n{}",
        describe_output(out)
    );
    assert!(
        !is_mounted(&mnt.dir),
        "{} is mounted after a failed rmount",
        mnt.dir.display()
    );
    let gone = poll_until(Duration::from_secs(5), || {
        rmount_processes_for(&mnt.dir).is_empty()
    });
    assert!(gone, "an rmount process is left after the failure");
    stderr_text(out)
}

/// stderr without terminal colour codes (tracing may add them).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A CA certificate (PEM) that signed nothing the test servers use.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let pem = dir.join("other-ca.pem");
    let key = dir.join("other-ca.key");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/CN=other", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&pem);
    let out = run_cmd(&mut cmd, Duration::from_secs(60), None);
    assert!(
        out.status.success(),
        "openssl req failed\n{}",
        describe_output(&out)
    );
    pem
}

/// `$HOME` with a `.netrc` of the given mode holding the FTP test login for
/// 127.0.0.1.
fn home_with_netrc(mode: u32) -> tempfile::TempDir {
    let home = tempfile::Builder::new()
        .prefix("rmount-test-home-")
        .tempdir()
        .expect("temp HOME");
    let netrc = home.path().join(".netrc");
    fs::write(
        &netrc,
        format!("machine 127.0.0.1 login {TEST_USER} password {TEST_PASSWORD}\n"),
    )
    .expect("write .netrc");
    fs::set_permissions(&netrc, fs::Permissions::from_mode(mode)).expect("chmod .netrc");
    home
}

/// `ftp://127.0.0.1:PORT/`: no user in the URL.
fn url_without_user(server: &Server) -> String {
    format!("{}://127.0.0.1:{}/", server.proto.scheme(), server.port)
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: {} bytes (sha256 {}) instead of {} bytes (sha256 {})",
        got.len(),
        sha256_bytes(got),
        want.len(),
        sha256_bytes(want)
    );
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| !n.starts_with(".rmount-live-"))
        .collect();
    names.sort();
    names
}

/// Writes `name` through the mount at `mnt`, lists it, reads it back,
/// renames it to `renamed`, and checks the server's export at each step.
fn round_trip(server: &Server, mnt: &Path, name: &str, renamed: &str, data: &[u8]) {
    fs::write(mnt.join(name), data).expect("write through the mount");
    assert_same(&server.read_file(name), data, "server copy after close");

    let listed = names_in(mnt);
    assert!(
        listed.iter().any(|n| n == name),
        "{name} not listed: {listed:?}"
    );
    assert_eq!(
        fs::metadata(mnt.join(name)).expect("stat").len(),
        data.len() as u64
    );
    assert_same(
        &fs::read(mnt.join(name)).expect("read back"),
        data,
        "read back",
    );

    fs::rename(mnt.join(name), mnt.join(renamed)).expect("rename through the mount");
    assert!(
        !server.export_path(name).exists(),
        "{name} still on the server after rename"
    );
    assert_same(&server.read_file(renamed), data, "server copy after rename");
    let listed = names_in(mnt);
    assert!(
        listed.iter().any(|n| n == renamed) && !listed.iter().any(|n| n == name),
        "listing after rename: {listed:?}"
    );
    assert_same(
        &fs::read(mnt.join(renamed)).expect("read renamed"),
        data,
        "read after rename",
    );
}

// ----- tests -------------------------------------------------------------------

// Explicit FTPS (AUTH TLS) verified against the server's CA moves data intact.
#[test]
fn ftps_explicit_round_trip() {
    let _load = light_load();
    let server = Server::ftps();
    let m = Mount::new(&server, &[]);
    let data = pseudo_random_bytes(300_000, 11);
    round_trip(&server, &m.dir, "tls.bin", "tls-renamed.bin", &data);
}

// A certificate not signed by the given cafile is refused, in one line.
#[test]
fn ftps_untrusted_certificate_is_refused() {
    let _load = light_load();
    let server = Server::ftps();
    let scratch = tempfile::tempdir().expect("temp dir");
    let wrong_ca = unrelated_ca(scratch.path());
    let mnt = MountPoint::new(PREFIX);
    let cafile = format!("cafile={}", wrong_ca.display());
    let out = rmount_at(
        &mnt,
        &["-o", &cafile],
        &server.remote_url(),
        &[("RMOUNT_PASSWORD", TEST_PASSWORD)],
        None,
    );
    let err = plain(&assert_refused(&out, &mnt));
    assert_eq!(err.lines().count(), 1, "one line expected:\n{err}");
    let lower = err.to_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("verify"),
        "the error should name the certificate: {err}"
    );
    assert!(!err.contains(TEST_PASSWORD), "password echoed: {err}");
    assert!(
        names_in(&server.export).is_empty(),
        "the export must be untouched"
    );
}

// -o no_verify_cert accepts that certificate, warns, and the mount works.
#[test]
fn ftps_no_verify_cert_works_with_warning() {
    let _load = light_load();
    let server = Server::ftps();
    let scratch = tempfile::tempdir().expect("temp dir");
    let wrong_ca = unrelated_ca(scratch.path());
    let mnt = MountPoint::new(PREFIX);
    let cafile = format!("cafile={}", wrong_ca.display());
    let out = rmount_at(
        &mnt,
        &["-o", &cafile, "-o", "no_verify_cert"],
        &server.remote_url(),
        &[("RMOUNT_PASSWORD", TEST_PASSWORD)],
        None,
    );
    assert_mounted(&out, &mnt, &server);
    // The warning is printed before rmount goes to the background, so the
    // captured stderr holds it.
    let err = plain(&stderr_text(&out)).to_lowercase();
    assert!(
        err.contains("warn") && err.contains("verification is off"),
        "expected a warning that certificates are not checked, got: {err:?}"
    );
    fs::write(mnt.path("unverified.txt"), b"still encrypted\n").expect("write");
    assert_eq!(server.read_file("unverified.txt"), b"still encrypted\n");
}

// Without a user in the URL or RMOUNT_PASSWORD, a 0600 ~/.netrc gives the login.
#[test]
fn netrc_login() {
    let _load = light_load();
    let server = Server::ftp();
    let home = home_with_netrc(0o600);
    let home_str = home.path().to_str().expect("utf-8 temp path");
    let mnt = MountPoint::new(PREFIX);
    // NETRC="" makes rmount fall back to $HOME/.netrc.
    let out = rmount_at(
        &mnt,
        &[],
        &url_without_user(&server),
        &[("HOME", home_str), ("NETRC", "")],
        None,
    );
    assert_mounted(&out, &mnt, &server);
    fs::write(mnt.path("from-netrc.txt"), b"netrc login\n").expect("write");
    assert_eq!(server.read_file("from-netrc.txt"), b"netrc login\n");
    let owner = fs::metadata(server.export_path("from-netrc.txt"))
        .expect("stat on the server")
        .uid();
    let login_uid = fs::metadata(&server.export).expect("stat export").uid();
    assert_eq!(owner, login_uid, "the file should belong to {TEST_USER}");
}

// A .netrc password readable by others is ignored with a warning (as ftp(1)
// does): rmount falls back to anonymous, which the server refuses.
#[test]
fn netrc_readable_by_others_is_refused() {
    let _load = light_load();
    let server = Server::ftp();
    let home = home_with_netrc(0o644);
    let home_str = home.path().to_str().expect("utf-8 temp path");
    let mnt = MountPoint::new(PREFIX);
    let out = rmount_at(
        &mnt,
        &[],
        &url_without_user(&server),
        &[("HOME", home_str), ("NETRC", "")],
        None,
    );
    let err = plain(&assert_refused(&out, &mnt));
    assert_eq!(out.status.code(), Some(1), "{}", describe_output(&out));
    assert!(!err.contains(TEST_PASSWORD), "password echoed: {err}");

    // Two warning lines from the netrc check, then the one error line.
    let netrc = home.path().join(".netrc");
    let warning = format!("{} file is readable by others", netrc.display());
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "stderr:\n{err}");
    assert!(lines[0].contains(&warning), "stderr:\n{err}");
    assert!(
        lines[1].contains("Remove password or make file unreadable by others"),
        "stderr:\n{err}"
    );
    let error = lines[2];
    assert!(
        error.starts_with("rmount: ")
            && error.contains("login failed for anonymous on 127.0.0.1")
            && !error.contains("(password from .netrc)"),
        "the netrc login must not have been used: {error}"
    );
    assert!(names_in(&server.export).is_empty(), "export changed");
}

// Active mode (PORT/EPRT, the server connects back) moves 3 MiB intact.
#[test]
fn active_mode_round_trip() {
    let _load = light_load();
    let server = Server::ftp();
    let m = Mount::new(&server, &["-o", "ftp_active"]);
    let data = pseudo_random_bytes(3 << 20, 66);
    round_trip(&server, &m.dir, "active.bin", "active-renamed.bin", &data);
    let log = fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(
        log.contains("\"PORT ") || log.contains("\"EPRT "),
        "the server log shows no active-mode transfer"
    );
    assert!(
        !log.contains("\"PASV") && !log.contains("\"EPSV"),
        "passive mode was used with -o ftp_active"
    );
}

// -o password_stdin logs in with the first line of standard input.
#[test]
fn password_stdin_login() {
    let _load = light_load();
    let server = Server::ftp();
    let mnt = MountPoint::new(PREFIX);
    let stdin = format!("{TEST_PASSWORD}\n");
    let out = rmount_at(
        &mnt,
        &["-o", "password_stdin"],
        &server.remote_url(),
        &[],
        Some(stdin.as_bytes()),
    );
    assert_mounted(&out, &mnt, &server);
    fs::write(mnt.path("stdin.txt"), b"password from stdin\n").expect("write");
    assert_eq!(server.read_file("stdin.txt"), b"password from stdin\n");
    assert_eq!(names_in(&mnt.dir), ["stdin.txt"]);
}

// Appends (O_APPEND, ours and another process's) extend the server's content.
#[test]
fn append_uses_server_content() {
    let _load = light_load();
    let server = Server::ftp();
    server.put_file("log", b"one\n");
    let m = Mount::new(&server, &[]);

    let mut f = OpenOptions::new()
        .append(true)
        .open(m.path("log"))
        .expect("open for append");
    f.write_all(b"two\n").expect("append");
    drop(f);
    assert_eq!(
        String::from_utf8_lossy(&server.read_file("log")),
        "one\ntwo\n"
    );

    let target = m.path("log");
    let out = run_cmd(
        Command::new("sh")
            .arg("-c")
            .arg("echo three >> \"$1\"")
            .arg("sh")
            .arg(&target),
        Duration::from_secs(60),
        None,
    );
    assert!(out.status.success(), "{}", describe_output(&out));
    assert_eq!(
        String::from_utf8_lossy(&server.read_file("log")),
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        fs::read_to_string(m.path("log")).expect("read through the mount"),
        "one\ntwo\nthree\n"
    );
}

/// The FTPS test server restarted with `implicit_ssl=YES` (TLS from the
/// first byte), on the same port, export and certificate. Dropping it kills
/// that vsftpd and its session processes (its own process group).
struct ImplicitFtps {
    server: Server,
    child: Child,
}

impl ImplicitFtps {
    fn start() -> ImplicitFtps {
        let mut server = Server::ftps();
        server.stop();
        let config = server.dir().join("vsftpd.conf");
        let mut text = fs::read_to_string(&config).expect("read vsftpd.conf");
        assert!(text.contains("ssl_enable=YES"), "not an FTPS config");
        text.push_str("implicit_ssl=YES\n");
        fs::write(&config, text).expect("write vsftpd.conf");

        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(server.log_path())
            .expect("open server log");
        let mut cmd = Command::new("/usr/sbin/vsftpd");
        cmd.arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // SAFETY: setsid() is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start vsftpd");
        // No plain-text greeting to wait for: wait until the port accepts.
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "implicit-TLS vsftpd exited ({status}):\n{}",
                    server.log_tail(20)
                );
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("implicit-TLS vsftpd does not listen on {addr}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        ImplicitFtps { server, child }
    }
}

impl Drop for ImplicitFtps {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: killpg on the process group of the vsftpd we started
        // (it is its own session leader).
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// True if the server on `port` sends a plain-text `220` greeting. An
/// implicit-TLS server waits for a TLS ClientHello instead and drops a
/// client that sends anything else.
fn greets_in_plain_text(port: u16) -> bool {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let _ = s.write_all(b"QUIT\r\n");
    let mut buf = [0u8; 3];
    s.read_exact(&mut buf).is_ok() && &buf == b"220"
}

// Implicit TLS (-o ftps_implicit): TLS from the first byte, data intact.
#[test]
fn implicit_tls() {
    let _load = light_load();
    let implicit = ImplicitFtps::start();
    let server = &implicit.server;
    assert!(
        !greets_in_plain_text(server.port),
        "the server answered in plain text: not implicit TLS"
    );
    let m = Mount::new(server, &["-o", "ftps_implicit"]);
    let data = pseudo_random_bytes(200_000, 99);
    round_trip(
        server,
        &m.dir,
        "implicit.bin",
        "implicit-renamed.bin",
        &data,
    );
}

// pure-ftpd cuts every listing at 10 000 entries by default (`-L`) and
// still answers `226`, so nothing tells a client. The mount shows what the
// server sent: `ls` lists at most that many names. A listing it holds also
// answers "no such file" for names it lacks, so a name past the cut can be
// opened only while no listing of its directory is cached (here:
// `cache_timeout=0`). README: "What the mount does", pure-ftpd.
#[test]
fn pure_ftpd_listing_cut_at_10000() {
    let _load = light_load();
    const TOTAL: usize = 10_050;
    let server = Server::start_kind(ServerKind::PureFtpd);
    let dir = server.make_dir("many");
    for i in 0..TOTAL {
        fs::write(dir.join(format!("f{i:05}")), b"x").unwrap();
    }
    server.chown_tree("many");
    let url = server.remote_url_for("many");
    let m = Mount::with_url(&server, &url, &["-o", "cache_timeout=0"]);
    let listed: Vec<String> = names_in(&m.dir);
    assert!(
        (9_990..=10_000).contains(&listed.len()),
        "pure-ftpd sends at most 10 000 names; the mount listed {}",
        listed.len()
    );
    let shown: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
    let missing = (0..TOTAL)
        .map(|i| format!("f{i:05}"))
        .find(|n| !shown.contains(n.as_str()))
        .expect("a name past the cut");
    assert_eq!(fs::read(m.path(&missing)).unwrap(), b"x", "read {missing}");
    fs::write(m.path(&missing), b"changed").unwrap();
    assert_eq!(fs::read(dir.join(&missing)).unwrap(), b"changed");
}
