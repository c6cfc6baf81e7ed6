//! SSH host keys against a server that is not the one the mount was made
//! with: the key verified at mount time is pinned for the life of the
//! mount, and a key that does not match known_hosts never gets a password.
//!
//! "Another server at the same address" is made with two real sshd
//! instances (each with its own host key, both accepting the same logins)
//! and the [`FaultProxy`] in front of them: the mount is made through the
//! proxy to server A, then the proxy is pointed at server B and the open
//! connections are cut, so rmount's reconnects meet B's key.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::*;

/// How long a call through the mount may take while the proxy points at
/// the wrong server (the mount's timeout is 5 s).
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and waits at most `limit` for it, so that a
/// hanging filesystem call fails the test instead of hanging it.
fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not return within {limit:?}"))
}

fn addr_of(server: &Server) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port))
}

/// Lines of `server`'s log that mention `user` and `word`.
/// How many connections the server's sshd has logged so far.
fn connections_logged(server: &Server) -> usize {
    fs::read_to_string(server.log_path())
        .unwrap_or_default()
        .matches("Connection from")
        .count()
}

fn log_lines(server: &Server, user: &str, word: &str) -> Vec<String> {
    fs::read_to_string(server.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(user) && l.contains(word))
        .map(str::to_string)
        .collect()
}

/// Authorizes server `a`'s login key on server `b` too, so that B would
/// accept the key login if rmount ever authenticated to it.
fn authorize_on(a: &Server, b: &Server) {
    let mut pub_path = a.identity().as_os_str().to_os_string();
    pub_path.push(".pub");
    let key = fs::read(&pub_path).expect("read the login's public key");
    let mut f = OpenOptions::new()
        .append(true)
        .open(b.dir().join("authorized_keys"))
        .expect("open B's authorized_keys");
    f.write_all(&key).expect("append to B's authorized_keys");
}

/// The errno of a failed call through the mount (panics if it succeeded).
fn errno_of<T: std::fmt::Debug>(r: io::Result<T>, what: &str) -> i32 {
    match r {
        Ok(v) => panic!("{what} succeeded ({v:?}) while the proxy pointed at the other server"),
        Err(e) => e.raw_os_error().unwrap_or(0),
    }
}

/// The SHA256 fingerprint of `server`'s host key, as ssh-keygen shows it.
fn host_fingerprint(server: &Server) -> String {
    let out = run_cmd(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(server.dir().join("ssh_host_ed25519_key.pub")),
        Duration::from_secs(30),
        None,
    );
    assert!(out.status.success(), "ssh-keygen -lf: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .expect("a SHA256 fingerprint")
        .to_string()
}

/// rmount in the foreground (`-f`), its stderr (the log) in a file.
/// Dropping it stops the process by its pid; the mount point's own drop
/// then unmounts and removes the directory.
struct Foreground {
    child: Child,
    stderr_path: PathBuf,
    mnt: MountPoint,
}

impl Foreground {
    fn spawn(args: &[String], env: &[(&str, &str)]) -> Foreground {
        let mnt = MountPoint::new("rmount-test-hostkeys-");
        let stderr_path = mnt.base.join("stderr");
        let mut cmd = Command::new(rmount_bin());
        cmd.arg("-f")
            .args(args)
            .arg(&mnt.dir)
            .env_remove("RMOUNT_PASSWORD")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).expect("create the stderr file"))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut fg = Foreground {
            child,
            stderr_path,
            mnt,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_mounted(&fg.mnt.dir) {
            let exited = fg.child.try_wait().expect("try_wait").is_some();
            assert!(
                !exited && Instant::now() < deadline,
                "rmount did not mount\n{}",
                fg.stderr()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
        fg
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.path(rel)
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let stopped = poll_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Login {
    /// TEST_USER with its key (authorized on both servers).
    Key,
    /// SFTP_PW_USER with its password (valid on both servers: one machine).
    Password,
}

/// Mounts server A through a proxy, points the proxy at server B, cuts the
/// connections, and checks that calls fail with EIO, that B saw no
/// successful login (and, for a password login, no password at all), and
/// that the mount works again once the proxy points back at A.
fn reconnect_to_another_host_key_is_refused(policy: &str, login: Login) {
    let a = Server::sftp();
    let b = Server::sftp();
    assert_ne!(a.host_public_key_line(), b.host_public_key_line());
    authorize_on(&a, &b);
    a.put_file("f.txt", b"from A");

    let proxy = FaultProxy::for_server(&a);
    let home = tempfile::tempdir().expect("a HOME without keys");
    // No known_hosts entry unless StrictHostKeyChecking=yes needs one: with
    // accept-new and no, the key the mount meets first is not a key
    // known_hosts already held.
    let kh = home.path().join("known_hosts");
    if policy == "yes" {
        fs::write(
            &kh,
            format!(
                "[127.0.0.1]:{} {}\n",
                proxy.port(),
                a.host_public_key_line()
            ),
        )
        .expect("write known_hosts");
    }
    let (user, identity) = match login {
        Login::Key => (TEST_USER, Some(a.identity().display().to_string())),
        Login::Password => (SFTP_PW_USER, None),
    };
    let url =
        a.url_for_user(user)
            .replacen(&format!(":{}/", a.port), &format!(":{}/", proxy.port()), 1);
    let mut args: Vec<String> = vec![
        "-o".into(),
        format!("UserKnownHostsFile={}", kh.display()),
        "-o".into(),
        format!("StrictHostKeyChecking={policy}"),
        "-o".into(),
        "timeout=5,cache_timeout=0".into(),
    ];
    if let Some(key) = identity {
        args.push("-i".into());
        args.push(key);
    }
    args.push(url.clone());
    let home_dir = home.path().to_str().expect("utf-8 temp path");
    let mut env = vec![("HOME", home_dir)];
    if matches!(login, Login::Password) {
        env.push(("RMOUNT_PASSWORD", SFTP_PW_PASSWORD));
    }
    let mnt = Foreground::spawn(&args, &env);
    assert_eq!(
        fs::read(mnt.path("f.txt")).expect("read through the mount"),
        b"from A"
    );

    // Another server answers at the same address.
    let b_connections = connections_logged(&b);
    proxy.set_upstream(addr_of(&b));
    proxy.cut_now();
    for what in ["stat", "read"] {
        let p = mnt.path("f.txt");
        let r = within(what, CALL_LIMIT, move || match what {
            "stat" => fs::metadata(&p).map(|m| m.len() as usize),
            _ => fs::read(&p).map(|d| d.len()),
        });
        let errno = errno_of(r, what);
        assert_eq!(
            errno,
            libc::EIO,
            "{what} through the mount while B answers: errno {errno}, want EIO"
        );
    }
    assert!(
        is_mounted(&mnt.mnt.dir),
        "the mount must stay while B answers"
    );
    // The log says why, naming both keys.
    let (fp_a, fp_b) = (host_fingerprint(&a), host_fingerprint(&b));
    let log = mnt.stderr();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("differs from the one this mount verified"))
        .unwrap_or_else(|| panic!("no warning about the other host key in the log:\n{log}"));
    assert!(
        warning.contains(&fp_a) && warning.contains(&fp_b),
        "the warning should name A's key {fp_a} and B's key {fp_b}: {warning}"
    );
    assert!(
        proxy.accepted() >= 2,
        "rmount did not try to reconnect (through the proxy to B)"
    );
    // The reconnect reached B (its sshd logged the connection), and B
    // authenticated nobody and received no password.
    wait_until(
        "B's sshd logs the reconnect",
        Duration::from_secs(10),
        || connections_logged(&b) > b_connections,
    );
    let accepted = log_lines(&b, user, "Accepted");
    assert!(
        accepted.is_empty(),
        "B authenticated the mount's login: {accepted:?}"
    );
    if matches!(login, Login::Password) {
        let passwords = log_lines(&b, user, "password");
        assert!(
            passwords.is_empty(),
            "B's sshd saw a password attempt: {passwords:?}"
        );
    }

    // The right server again: the mount works without a remount.
    proxy.set_upstream(addr_of(&a));
    wait_until(
        "the mount to recover after the proxy pointed back at A",
        Duration::from_secs(60),
        || {
            let p = mnt.path("f.txt");
            within("read after pointing back", CALL_LIMIT, move || fs::read(p))
                .is_ok_and(|d| d == b"from A")
        },
    );
    let accepted = log_lines(&b, user, "Accepted");
    assert!(accepted.is_empty(), "B authenticated: {accepted:?}");
}

// StrictHostKeyChecking=no: nothing in known_hosts would stop B; only the pin does.
#[test]
fn password_login_reconnect_to_another_host_key_with_no_checking() {
    let _load = light_load();
    reconnect_to_another_host_key_is_refused("no", Login::Password);
}

#[test]
fn key_login_reconnect_to_another_host_key_with_no_checking() {
    let _load = light_load();
    reconnect_to_another_host_key_is_refused("no", Login::Key);
}

#[test]
fn key_login_reconnect_to_another_host_key_with_accept_new() {
    let _load = light_load();
    reconnect_to_another_host_key_is_refused("accept-new", Login::Key);
}

#[test]
fn password_login_reconnect_to_another_host_key_with_strict_checking() {
    let _load = light_load();
    reconnect_to_another_host_key_is_refused("yes", Login::Password);
}

/// With StrictHostKeyChecking=no and a known_hosts entry holding another
/// key for the host, a password login is refused before the password is
/// sent: one error line, a non-zero exit, nothing mounted, and sshd never
/// sees a password attempt.
#[test]
fn changed_key_gets_no_password_even_without_checking() {
    let _load = light_load();
    let server = Server::sftp();
    let home = tempfile::tempdir().expect("a HOME without keys");
    let kh = home.path().join("known_hosts");
    // A well-formed ed25519 key that is not the server's.
    let wrong = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    fs::write(&kh, format!("[127.0.0.1]:{} {wrong}\n", server.port)).expect("write known_hosts");
    let mnt = MountPoint::new("rmount-test-hostkeys-");
    let url = server.url_for_user(SFTP_PW_USER);
    let khopt = format!("UserKnownHostsFile={}", kh.display());
    let connections = connections_logged(&server);
    let out = run_rmount(
        &[
            "-o",
            &khopt,
            "-o",
            "StrictHostKeyChecking=no",
            &url,
            mnt.arg(),
        ],
        &[
            ("HOME", home.path().to_str().expect("utf-8 temp path")),
            ("RMOUNT_PASSWORD", SFTP_PW_PASSWORD),
        ],
        None,
    );
    let err = stderr_text(&out);
    eprintln!("rmount said: {err}");
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "rmount should have exited with an error\n{}",
        describe_output(&out)
    );
    assert!(!is_mounted(&mnt.dir), "mounted despite the refusal");
    assert!(!err.contains(SFTP_PW_PASSWORD), "password echoed: {err}");
    // Warnings are log lines; the error itself is one line.
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("rmount:")).collect();
    assert_eq!(errors.len(), 1, "want one error line, got:\n{err}");
    let error = errors[0].to_lowercase();
    assert!(
        error.contains("password") && error.contains("disabled"),
        "the error should say why no password was sent: {err}"
    );
    assert!(
        err.contains("CHANGED"),
        "the changed host key should be reported: {err}"
    );
    // The connection reached sshd, which saw no password.
    wait_until(
        "sshd logs rmount's connection",
        Duration::from_secs(10),
        || connections_logged(&server) > connections,
    );
    let lines = log_lines(&server, SFTP_PW_USER, "password");
    assert!(lines.is_empty(), "sshd saw a password attempt: {lines:?}");
    assert!(
        log_lines(&server, SFTP_PW_USER, "Accepted").is_empty(),
        "sshd authenticated the login"
    );
}
