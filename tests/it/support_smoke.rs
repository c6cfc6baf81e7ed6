//! Proves the test support itself (tests/it/support/) without rmount: the
//! SFTP, FTP and FTPS test servers accept logins from standard clients
//! (OpenSSH's ssh/sftp, sshfs, Python's ftplib), serve `export`, and stop and
//! restart cleanly; the small helpers behave.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `ssh` with only the options given here (no user config, agent or default keys).
fn ssh_cmd(server: &Server, user: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
    ])
    .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
    .args([
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
    ])
    .arg("-o")
    .arg(format!(
        "UserKnownHostsFile={}",
        server.known_hosts().display()
    ))
    .arg("-i")
    .arg(server.identity())
    .args(["-p", &server.port.to_string()])
    .arg(format!("{user}@127.0.0.1"));
    c
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed\n{}",
        describe_output(out)
    );
}

#[test]
fn sftp_server_accepts_key_login() {
    let _load = light_load();
    let server = Server::sftp();
    server.put_file("hello.txt", b"hello from the export\n");
    let cat = format!("cat {}", server.export_path("hello.txt").display());
    let out = run_cmd(
        ssh_cmd(&server, server.user()).arg(cat),
        CLIENT_TIMEOUT,
        None,
    );
    ok(&out, "ssh with the test key");
    assert_eq!(out.stdout, b"hello from the export\n");
    let kh = fs::read_to_string(server.known_hosts()).unwrap();
    assert_eq!(kh.trim(), server.known_hosts_line());
    assert!(server
        .known_hosts_line()
        .starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", server.port)));
}

#[test]
fn sftp_subsystem_reads_and_writes_export() {
    let _load = light_load();
    let server = Server::sftp();
    server.put_file("sub/a.txt", b"aaa");
    let local = unique_dir("rmount-test-local-");
    fs::write(local.join("up.bin"), pseudo_random_bytes(100_000, 7)).unwrap();
    let batch = format!(
        "cd {}\nput {} up.bin\nget sub/a.txt {}\nls -l\n",
        server.export.display(),
        local.join("up.bin").display(),
        local.join("a.txt").display()
    );
    let mut sftp = Command::new("sftp");
    sftp.args(["-F", "/dev/null", "-b", "-", "-o", "IdentitiesOnly=yes"])
        .args([
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            server.known_hosts().display()
        ))
        .arg("-i")
        .arg(server.identity())
        .args(["-P", &server.port.to_string()])
        .arg(format!("{}@127.0.0.1", server.user()));
    let out = run_cmd(&mut sftp, CLIENT_TIMEOUT, Some(batch.as_bytes()));
    ok(&out, "sftp batch");
    assert_eq!(
        sha256_file(&server.export_path("up.bin")),
        sha256_bytes(&pseudo_random_bytes(100_000, 7))
    );
    assert_eq!(fs::read(local.join("a.txt")).unwrap(), b"aaa");
    // internal-sftp applies umask 022.
    let mode = fs::metadata(server.export_path("up.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "uploaded file mode");
    fs::remove_dir_all(local).unwrap();
}

#[test]
fn sftp_password_user_logs_in_with_password_only() {
    let _load = light_load();
    let server = Server::sftp();
    let dir = tempfile::tempdir().unwrap();
    let try_password = |pw: &str| {
        // OpenSSH asks SSH_ASKPASS for the password when forced to.
        let askpass = dir.path().join(format!("askpass-{}", pw.len()));
        fs::write(&askpass, format!("#!/bin/sh\necho '{pw}'\n")).unwrap();
        fs::set_permissions(&askpass, fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=yes"])
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
            ])
            .args([
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "IdentityAgent=none",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                server.known_hosts().display()
            ))
            .args(["-p", &server.port.to_string()])
            .arg(format!("{SFTP_PW_USER}@127.0.0.1"))
            .arg("id -un")
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        run_cmd(&mut c, CLIENT_TIMEOUT, None)
    };
    let good = try_password(SFTP_PW_PASSWORD);
    ok(&good, "ssh with the test password");
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), SFTP_PW_USER);
    let bad = try_password("wrong");
    assert!(!bad.status.success(), "a wrong password was accepted");
    // The password user can read the export (for password mounts).
    let meta = fs::metadata(&server.export).unwrap();
    assert_eq!(meta.mode() & 0o005, 0o005, "export must be world-readable");
    assert!(server
        .url_for_user(SFTP_PW_USER)
        .starts_with("sftp://rmount-pw@127.0.0.1:"));
}

#[test]
fn sftp_stop_cuts_sessions_and_restart_keeps_port() {
    let _load = light_load();
    let mut server = Server::sftp();
    let first_pid = server.pid();
    // An open session: ssh running a long remote command.
    let mut session = ssh_cmd(&server, server.user())
        .arg("echo started; sleep 120")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Read;
        let mut buf = [0u8; 8];
        session
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
        assert_eq!(&buf, b"started\n");
    }
    server.stop();
    assert!(!server.is_running());
    wait_until(
        "the ssh session to be cut by stop()",
        Duration::from_secs(10),
        || session.try_wait().unwrap().is_some(),
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err(),
        "port still accepts connections after stop()"
    );
    server.restart();
    assert_ne!(server.pid(), first_pid);
    let out = run_cmd(
        ssh_cmd(&server, server.user()).arg("true"),
        CLIENT_TIMEOUT,
        None,
    );
    ok(&out, "ssh after restart (same port, same host key)");
}

#[test]
fn frozen_server_accepts_but_never_answers_until_thawed() {
    let _load = light_load();
    use std::io::Read;
    let server = Server::sftp();
    server.freeze();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 8];
    let err = s.read_exact(&mut buf).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "a frozen server must not answer: {err}"
    );
    server.thaw();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"SSH-2.0-");
}

#[test]
fn sshfs_mounts_the_sftp_export() {
    let _load = light_load();
    // A real FUSE client against the test server: proves FUSE works here and
    // exercises the mount helpers.
    let server = Server::sftp();
    server.put_file("x/y.txt", b"via sshfs");
    let mnt = MountPoint::new("rmount-test-sshfs-");
    let mut c = Command::new("sshfs");
    c.arg(format!("{}@127.0.0.1:{}", server.user(), server.export.display()))
        .arg(&mnt.dir)
        .args(["-p", &server.port.to_string()])
        .arg("-o")
        .arg(format!(
            "IdentityFile={},UserKnownHostsFile={},StrictHostKeyChecking=yes,IdentitiesOnly=yes,BatchMode=yes",
            server.identity().display(),
            server.known_hosts().display()
        ));
    let out = run_cmd(&mut c, CLIENT_TIMEOUT, None);
    ok(&out, "sshfs");
    let entry = mount_entry(&mnt.dir).expect("sshfs mount in mountinfo");
    assert_eq!(entry.fs_type, "fuse.sshfs");
    assert!(is_mounted(&mnt.dir));
    let read = fs::read(mnt.path("x/y.txt"));
    unmount_path(&mnt.dir).unwrap();
    assert!(!is_mounted(&mnt.dir));
    assert_eq!(read.unwrap(), b"via sshfs");
}

/// A Python ftplib client; prints one line per step, "ERR <reply>" on failure.
const FTP_CLIENT: &str = r#"
import ftplib, io, ssl, sys
mode, port, user, pw, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

class ReuseTLS(ftplib.FTP_TLS):
    # vsftpd (require_ssl_reuse=YES) demands that data connections resume
    # the control connection's TLS session; stock ftplib does not do that.
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

def step(name, fn):
    try:
        r = fn()
        print(name, "OK" if r is None else r)
    except ftplib.Error as e:
        print(name, "ERR", str(e).splitlines()[0])
        sys.exit(0)

if mode in ("plain", "plain-on-tls"):
    f = ftplib.FTP()
else:
    ctx = ssl.create_default_context(cafile=cafile)
    if mode.endswith("1.2"):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    f = (ReuseTLS if "reuse" in mode and "noreuse" not in mode else ftplib.FTP_TLS)(context=ctx)
f.connect("127.0.0.1", port, timeout=20)
if mode == "plain-on-tls":
    step("login", lambda: f.login(user, pw).split()[0])
    sys.exit(0)
step("login", lambda: f.login(user, pw).split()[0])
if mode != "plain":
    f.prot_p()
    print("tls", f.sock.version())
step("pwd", lambda: f.pwd())
step("stor", lambda: f.storbinary("STOR up.txt", io.BytesIO(b"uploaded " + mode.encode())).split()[0])
step("list", lambda: ",".join(sorted(f.nlst())))
buf = io.BytesIO()
step("retr", lambda: f.retrbinary("RETR seed.txt", buf.write).split()[0])
print("content", buf.getvalue().decode())
f.quit()
"#;

/// Runs [`FTP_CLIENT`] in `mode` against `server`; returns its stdout lines.
fn ftp_client(server: &Server, mode: &str, password: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ftp_client.py");
    fs::write(&script, FTP_CLIENT).unwrap();
    let ca = if server.proto == Proto::Ftps {
        server.ca_file().display().to_string()
    } else {
        String::new()
    };
    let mut c = Command::new("python3");
    c.arg(&script)
        .args([mode, &server.port.to_string(), server.user(), password, &ca]);
    let out = run_cmd(&mut c, CLIENT_TIMEOUT, None);
    ok(&out, &format!("python ftp client ({mode})"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_full_session(server: &Server, lines: &[String], mode: &str) {
    let has = |l: &str| lines.iter().any(|x| x == l);
    for want in [
        "login 230",
        "pwd /",
        "stor 226",
        "list seed.txt,up.txt",
        "retr 226",
        "content seed",
    ] {
        assert!(
            has(want),
            "{mode}: expected line {want:?} in {lines:#?}\nserver log:\n{}",
            server.log_tail(20)
        );
    }
    // The upload landed in export, owned by the FTP user, mode 0644.
    let up = server.export_path("up.txt");
    assert_eq!(
        fs::read(&up).unwrap(),
        format!("uploaded {mode}").as_bytes()
    );
    let meta = fs::metadata(&up).unwrap();
    assert_eq!(meta.uid(), fs::metadata(&server.export).unwrap().uid());
    assert_ne!(meta.uid(), 0, "FTP uploads must belong to the FTP user");
    assert_eq!(meta.mode() & 0o777, 0o644);
}

#[test]
fn ftp_server_accepts_login_into_export() {
    let _load = light_load();
    let server = Server::ftp();
    server.put_file("seed.txt", b"seed");
    let lines = ftp_client(&server, "plain", TEST_PASSWORD);
    assert_full_session(&server, &lines, "plain");
    assert_eq!(
        server.remote_url(),
        format!("ftp://{TEST_USER}@127.0.0.1:{}/", server.port)
    );
    assert_eq!(
        server.password_env(),
        Some(("RMOUNT_PASSWORD".to_string(), TEST_PASSWORD.to_string()))
    );
    assert!(server.mount_args().is_empty());

    // Files made on the server side belong to the FTP login, so it can change them.
    server.put_file("d1/d2/f.txt", b"f");
    let owner = fs::metadata(&server.export).unwrap().uid();
    for rel in ["d1", "d1/d2", "d1/d2/f.txt"] {
        let meta = fs::metadata(server.export_path(rel)).unwrap();
        assert_eq!(meta.uid(), owner, "{rel} must belong to the FTP user");
    }
    fs::create_dir_all(server.export_path("t/u")).unwrap();
    server.chown_tree("t");
    assert_eq!(
        fs::metadata(server.export_path("t/u")).unwrap().uid(),
        owner
    );

    let wrong = ftp_client(&server, "plain", "wrong");
    assert!(
        wrong.iter().any(|l| l.starts_with("login ERR 530")),
        "{wrong:?}"
    );
}

#[test]
fn ftps_server_requires_tls_with_session_reuse() {
    let _load = light_load();
    let server = Server::ftps();
    server.put_file("seed.txt", b"seed");
    // Plain login is refused (force_local_logins_ssl).
    let plain = ftp_client(&server, "plain-on-tls", TEST_PASSWORD);
    assert!(
        plain.iter().any(|l| l.starts_with("login ERR 530")),
        "{plain:?}"
    );
    // TLS 1.3 and 1.2 both work when data connections resume the session.
    for mode in ["reuse-1.3", "reuse-1.2"] {
        let lines = ftp_client(&server, mode, TEST_PASSWORD);
        assert_full_session(&server, &lines, mode);
        let want_tls = if mode.ends_with("1.2") {
            "tls TLSv1.2"
        } else {
            "tls TLSv1.3"
        };
        assert!(lines.iter().any(|l| l == want_tls), "{mode}: {lines:?}");
    }
    // Without session reuse the data connection is refused (522).
    let lines = ftp_client(&server, "noreuse-1.3", TEST_PASSWORD);
    assert!(
        lines.iter().any(|l| l.starts_with("stor ERR 522")),
        "{lines:?}"
    );
    assert!(server
        .mount_args()
        .contains(&format!("cafile={}", server.ca_file().display())));
    assert!(server
        .remote_url()
        .starts_with("ftps://rmount-test@127.0.0.1:"));
}

#[test]
fn ftp_stop_and_restart_on_same_port() {
    let _load = light_load();
    let mut server = Server::ftp();
    server.put_file("seed.txt", b"seed");
    let first = server.pid();
    server.stop();
    server.stop(); // idempotent
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
    server.restart();
    assert_ne!(server.pid(), first);
    let lines = ftp_client(&server, "plain", TEST_PASSWORD);
    assert_full_session(&server, &lines, "plain");
}

/// Parallel sessions, as a connection pool makes them: each of N threads
/// logs in and does store / list / retrieve cycles (FTPS: with TLS session reuse).
const FTP_PARALLEL_CLIENT: &str = r#"
import ftplib, io, ssl, sys, threading
port, user, pw, ca, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
class ReuseTLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
errors = []
def worker(i):
    try:
        f = ReuseTLS(context=ssl.create_default_context(cafile=ca)) if ca else ftplib.FTP()
        f.connect("127.0.0.1", port, timeout=30)
        f.login(user, pw)
        if ca:
            f.prot_p()
        for j in range(8):
            f.storbinary(f"STOR p{i}_{j}", io.BytesIO(b"x" * 5000))
            f.nlst()
            b = io.BytesIO()
            f.retrbinary(f"RETR p{i}_{j}", b.write)
            assert len(b.getvalue()) == 5000
        f.quit()
    except Exception as e:
        errors.append(f"session {i}: {e!r}")
threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(f"errors {len(errors)}")
print("\n".join(errors))
"#;

#[test]
fn ftps_server_serves_16_parallel_sessions() {
    let _load = light_load();
    // Guards the vsftpd limits (max_clients, max_per_ip) and the passive
    // port range size against "500 OOPS" failures under a pool's load.
    let server = Server::ftps();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("parallel.py");
    fs::write(&script, FTP_PARALLEL_CLIENT).unwrap();
    let mut c = Command::new("python3");
    c.arg(&script).args([
        &server.port.to_string(),
        TEST_USER,
        TEST_PASSWORD,
        server.ca_file().to_str().unwrap(),
        "16",
    ]);
    let out = run_cmd(&mut c, Duration::from_secs(120), None);
    ok(&out, "parallel ftp client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("errors 0"),
        "{text}\nserver log:\n{}",
        server.log_tail(20)
    );
}

#[test]
fn many_servers_start_in_parallel() {
    let _load = light_load();
    let handles: Vec<_> = (0..6)
        .map(|i| std::thread::spawn(move || Server::start(Proto::all()[i % 3])))
        .collect();
    let servers: Vec<Server> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len(), "ports must be distinct");
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    drop(servers);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.contains(") Z")
            },
            "server {pid} still running after drop"
        );
    }
}

#[test]
fn server_drop_removes_its_directory() {
    let _load = light_load();
    let server = Server::ftps();
    let dir = server.dir().to_path_buf();
    assert!(server.export.starts_with(&dir));
    drop(server);
    assert!(!dir.exists());
}

#[test]
#[should_panic(expected = "timed out after 100ms waiting for the impossible")]
fn wait_until_panics_with_what() {
    let _load = light_load();
    wait_until("the impossible", Duration::from_millis(100), || false);
}

#[test]
fn helpers() {
    let _load = light_load();
    assert!(is_mounted(Path::new("/")));
    let d = unique_dir("rmount-test-helpers-");
    assert!(!is_mounted(&d));
    fs::remove_dir(&d).unwrap();
    assert_eq!(
        sha256_bytes(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let a = free_port();
    let b = free_port();
    assert_ne!(a, b);
    assert!(std::net::TcpStream::connect(("127.0.0.1", a)).is_err());
    let slow = run_cmd_timeout(
        Command::new("sleep").arg("30"),
        Duration::from_millis(200),
        None,
    );
    assert!(
        slow.is_none(),
        "run_cmd_timeout must give up on a slow command"
    );
    let echo = run_cmd(
        &mut Command::new("cat"),
        Duration::from_secs(10),
        Some(b"in"),
    );
    assert_eq!(echo.stdout, b"in");
    assert_eq!(pseudo_random_bytes(10, 1), pseudo_random_bytes(10, 1));
}

/// Kills and reaps a child process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP echo server on a free loopback port, for one connection, in a
/// thread that ends when the client closes (or after a minute of silence).
fn echo_server() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the echo server");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    });
    port
}

/// The `proxy` job of the helper binary (what scripts/bench.sh puts between
/// the tools and the servers): prints its port, delays each direction by
/// the latency given, passes bytes through intact, and exits when its stdin
/// closes.
#[test]
fn helper_proxy_job_delays_and_forwards_intact() {
    let _load = light_load();
    let latency = Duration::from_millis(100);
    let upstream = echo_server();
    let mut child = KillOnDrop(
        Command::new(helper_bin())
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .args(["--upstream", &format!("127.0.0.1:{upstream}")])
            .args(["--latency-ms", &latency.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the proxy job"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the proxy job prints its port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the proxy job printed {line:?}, not a port"));
    assert_ne!(port, upstream);

    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // One small round trip: through the proxy twice, so at least 2 x latency.
    let t0 = Instant::now();
    conn.write_all(b"ping").unwrap();
    let mut pong = [0u8; 4];
    conn.read_exact(&mut pong).expect("the echo comes back");
    let round_trip = t0.elapsed();
    assert_eq!(&pong, b"ping");
    assert!(
        round_trip >= 2 * latency,
        "a round trip through the proxy took {round_trip:?}, less than 2 x {latency:?}"
    );
    // A larger stream, written while it comes back, arrives byte for byte.
    let payload = pseudo_random_bytes(3 << 20, 11);
    let mut writer = conn.try_clone().unwrap();
    let sent = payload.clone();
    let w = std::thread::spawn(move || writer.write_all(&sent));
    let mut back = vec![0u8; payload.len()];
    conn.read_exact(&mut back)
        .expect("the whole stream comes back");
    w.join().unwrap().expect("write through the proxy");
    assert!(back == payload, "the bytes came back changed");
    drop(conn);

    // Closing its stdin ends the job, cleanly.
    drop(child.0.stdin.take());
    let mut ended = None;
    wait_until(
        "the proxy job ends once its stdin is closed",
        Duration::from_secs(30),
        || {
            ended = child.0.try_wait().expect("try_wait");
            ended.is_some()
        },
    );
    let status = ended.expect("ended");
    assert!(status.success(), "the proxy job ended with {status}");

    // A bad argument: usage, status 2.
    let bad = run_cmd(
        Command::new(helper_bin()).args(["proxy", "--listen", "nowhere"]),
        Duration::from_secs(30),
        None,
    );
    assert_eq!(bad.status.code(), Some(2), "{}", describe_output(&bad));
}
