//! Mount options and invocation forms, end to end with the real binary: the
//! sshfs-style REMOTE, password logins (environment and stdin), host-key
//! policies, foreground mode and signals, `umount`, idmap, max_conns, ro,
//! debug logging, and `--help` / `--version`.
//!
//! Every mount, temp dir and process a test makes is owned by a guard whose
//! `Drop` unmounts / kills it by PID, so a failing test leaves nothing behind.
//! Run: `cargo test --test it -- mount_options:: --test-threads=2`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

/// How long a mount may take to appear.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long rmount may take to exit after a signal or an unmount.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Private guards and helpers
// ---------------------------------------------------------------------------

/// A background (daemonizing) rmount mount made with arguments chosen by the
/// test (unlike `Mount`, which always adds the server's key and known_hosts).
/// Dropping it unmounts and kills any daemon left for its mount point.
struct BgMount {
    mnt: MountPoint,
    output: Output,
}

impl BgMount {
    /// `rmount ARGS... REMOTE <fresh dir>` with `env` added (after
    /// `RMOUNT_PASSWORD` and `SSH_AUTH_SOCK` were removed) and `stdin`.
    /// Err(output) if rmount failed; panics if it broke its contract.
    fn try_mount(
        args: &[&str],
        remote: &str,
        env: &[(&str, &str)],
        stdin: Option<&[u8]>,
    ) -> Result<BgMount, Output> {
        // A guard first, so that a panic in run_rmount still cleans up.
        let mut m = BgMount {
            mnt: MountPoint::new("rmount-test-opts-"),
            output: Output {
                status: ExitStatus::default(),
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
        };
        let mut argv: Vec<&str> = args.to_vec();
        argv.push(remote);
        argv.push(m.mnt.arg());
        m.output = run_rmount(&argv, env, stdin);
        let mounted = is_mounted(&m.mnt.dir);
        match (m.output.status.success(), mounted) {
            (true, true) => Ok(m),
            (false, false) => Err(m.output.clone()),
            (true, false) => panic!(
                "rmount {argv:?} exited 0 but nothing is mounted\n{}",
                describe_output(&m.output)
            ),
            (false, true) => panic!(
                "rmount {argv:?} failed but left a mount\n{}",
                describe_output(&m.output)
            ),
        }
    }

    /// Like `try_mount`, panicking (with rmount's output and the server log)
    /// if the mount fails.
    fn mount(
        server: &Server,
        args: &[&str],
        remote: &str,
        env: &[(&str, &str)],
        stdin: Option<&[u8]>,
    ) -> BgMount {
        BgMount::try_mount(args, remote, env, stdin).unwrap_or_else(|out| {
            panic!(
                "rmount {args:?} {remote} failed\n{}\n--- server log ---\n{}",
                describe_output(&out),
                server.log_tail(15)
            )
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.path(rel)
    }
}

/// An rmount started by the test in the foreground (`-f` / `-d`), with
/// stdout and stderr going to files. Dropping it stops the process (SIGTERM,
/// then SIGKILL), unmounts and removes the mount point.
struct Foreground {
    child: Child,
    mnt: MountPoint,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Foreground {
    /// Spawns `rmount ARGS... REMOTE <fresh dir>` with `env` added after
    /// removing RMOUNT_PASSWORD, SSH_AUTH_SOCK and RUST_LOG; stdin is /dev/null.
    fn spawn(args: &[&str], remote: &str, env: &[(&str, &str)]) -> Foreground {
        let mnt = MountPoint::new("rmount-test-opts-fg-");
        let stdout_path = mnt.base.join("stdout");
        let stderr_path = mnt.base.join("stderr");
        let mut cmd = Command::new(rmount_bin());
        cmd.args(args)
            .arg(remote)
            .arg(&mnt.dir)
            .env_remove("RMOUNT_PASSWORD")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create stdout file"))
            .stderr(File::create(&stderr_path).expect("create stderr file"))
            // Its own process group: a Ctrl-C of cargo test does not reach it.
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Foreground {
            child,
            mnt,
            stderr_path,
            stdout_path,
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stdout_path).unwrap_or_default()).into_owned()
    }

    /// Waits until the mount point is mounted; panics (with rmount's stderr)
    /// if rmount exits first or the deadline passes.
    fn wait_mounted(&mut self, server: &Server) {
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        loop {
            if is_mounted(&self.mnt.dir) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                panic!(
                    "foreground rmount exited ({status}) before mounting\n--- stderr ---\n{}\n\
                     --- server log ---\n{}",
                    self.stderr(),
                    server.log_tail(15)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "foreground rmount did not mount within {MOUNT_TIMEOUT:?}\n--- stderr ---\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The exit status, if rmount exits within `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            let child = &mut self.child;
            let mut status = None;
            poll_until(timeout, || {
                status = child.try_wait().expect("try_wait");
                status.is_some()
            });
            self.status = status;
        }
        self.status
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            // Short: a test that cares has already waited EXIT_TIMEOUT.
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                self.status = self.child.wait().ok();
            }
        }
        // Then `mnt` unmounts and removes the directory with the logs.
    }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// (uid, gid) of a local account.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = run_cmd(
            Command::new("id").arg(flag).arg(user),
            Duration::from_secs(30),
            None,
        );
        assert!(out.status.success(), "id {flag} {user}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// A directory `export/name` owned by the password user (so it can write).
fn dir_for_pw_user(server: &Server, name: &str) -> PathBuf {
    let (uid, gid) = ids_of(SFTP_PW_USER);
    let dir = server.export.join(name);
    fs::create_dir(&dir).expect("mkdir for the password user");
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown to the password user");
    dir
}

/// `-o UserKnownHostsFile=...` for the server's own known_hosts, with no key:
/// the password user must log in with its password.
fn known_hosts_only(server: &Server) -> Vec<String> {
    vec![
        "-o".into(),
        format!("UserKnownHostsFile={}", server.known_hosts().display()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Waits until the server log shows a password login of the password user.
fn assert_password_login_logged(server: &Server) {
    let want = format!("Accepted password for {SFTP_PW_USER}");
    let seen = poll_until(Duration::from_secs(10), || {
        fs::read_to_string(server.log_path()).is_ok_and(|log| log.contains(&want))
    });
    assert!(seen, "sshd did not log {want:?}\n{}", server.log_tail(20));
}

/// Writes a file through the mount as the password user and checks that it
/// arrived on the server, owned by that user.
fn check_pw_user_writes(server_dir: &Path, m: &BgMount, name: &str) {
    let body = format!("written by {SFTP_PW_USER}\n");
    fs::write(m.path(name), &body).expect("write through the mount");
    let on_server = server_dir.join(name);
    assert_eq!(
        fs::read_to_string(&on_server).expect("file on the server"),
        body
    );
    let (uid, gid) = ids_of(SFTP_PW_USER);
    let meta = fs::metadata(&on_server).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid, gid),
        "the server-side file must belong to {SFTP_PW_USER}"
    );
}

/// Names in a directory (sorted), without rmount's hidden temporaries.
fn names(dir: &Path) -> BTreeSet<OsString> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .filter(|n| !n.to_string_lossy().starts_with(".rmount-"))
        .collect()
}

/// True if `word` occurs in `text` with no identifier character on either side.
fn has_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

// `user@host:/abs` with -p mounts that path; `user@host:` mounts the login directory.
#[test]
fn sshfs_style_remote() {
    let _load = light_load();
    let server = Server::sftp();
    let port = server.port.to_string();
    let export = server.export.to_str().unwrap();

    let remote = format!("{TEST_USER}@127.0.0.1:{export}");
    let m = Mount::with_url(&server, &remote, &["-p", &port]);
    fs::write(m.path("hello.txt"), b"sshfs style\n").unwrap();
    assert_eq!(
        fs::read(server.export.join("hello.txt")).unwrap(),
        b"sshfs style\n",
        "the file written through the mount must be in export"
    );
    assert!(names(&m.dir).contains(&OsString::from("hello.txt")));
    let entry = mount_entry(&m.dir).expect("mountinfo entry");
    assert_eq!(entry.source, format!("127.0.0.1:{export}"));

    // Empty path: the login directory, the login's home on this machine.
    let home_dir = PathBuf::from(format!("/home/{TEST_USER}"));
    let marker = home_dir.join("rmount-home-marker");
    fs::write(&marker, b"home\n").unwrap();
    let home = Mount::with_url(&server, &format!("{TEST_USER}@127.0.0.1:"), &["-p", &port]);
    let entry = mount_entry(&home.dir).expect("mountinfo entry");
    assert_eq!(
        entry.source,
        format!("127.0.0.1:{}", home_dir.display()),
        "{entry:?}"
    );
    let through_mount = names(&home.dir);
    let local = names(&home_dir);
    assert!(local.contains(&OsString::from("rmount-home-marker")));
    assert_eq!(
        through_mount, local,
        "listing {TEST_USER}@127.0.0.1: must show the login's home directory"
    );
    drop(home);
    let _ = fs::remove_file(&marker);
}

// A password login with RMOUNT_PASSWORD (no key, no agent) mounts and writes as that user.
#[test]
fn sftp_password_login_env() {
    let _load = light_load();
    let server = Server::sftp();
    let home = tempfile::tempdir().unwrap();
    let dir = dir_for_pw_user(&server, "pw-env");
    let remote = format!("{}/pw-env", server.url_for_user(SFTP_PW_USER));
    let args = known_hosts_only(&server);
    let m = BgMount::mount(
        &server,
        &strs(&args),
        &remote,
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("RMOUNT_PASSWORD", SFTP_PW_PASSWORD),
        ],
        None,
    );
    assert_password_login_logged(&server);
    check_pw_user_writes(&dir, &m, "from-env.txt");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&m.output.stdout),
        String::from_utf8_lossy(&m.output.stderr)
    );
    assert!(!out.contains(SFTP_PW_PASSWORD), "password echoed: {out}");
}

// A password login with -o password_stdin (password on stdin) mounts and writes as that user.
#[test]
fn sftp_password_login_stdin() {
    let _load = light_load();
    let server = Server::sftp();
    let home = tempfile::tempdir().unwrap();
    let dir = dir_for_pw_user(&server, "pw-stdin");
    let remote = format!("{}/pw-stdin", server.url_for_user(SFTP_PW_USER));
    let mut args = known_hosts_only(&server);
    args.extend(["-o".to_string(), "password_stdin".to_string()]);
    let stdin = format!("{SFTP_PW_PASSWORD}\n");
    let m = BgMount::mount(
        &server,
        &strs(&args),
        &remote,
        &[("HOME", home.path().to_str().unwrap())],
        Some(stdin.as_bytes()),
    );
    assert_password_login_logged(&server);
    check_pw_user_writes(&dir, &m, "from-stdin.txt");
}

// accept-new with an empty known_hosts mounts, records [127.0.0.1]:PORT's key, and the default policy then accepts it.
#[test]
fn accept_new_records_the_host_key() {
    let _load = light_load();
    let server = Server::sftp();
    let scratch = tempfile::tempdir().unwrap();
    let kh = scratch.path().join("known_hosts");
    fs::write(&kh, "").unwrap();
    let kh_opt = format!("UserKnownHostsFile={}", kh.display());
    let key = server.identity().to_str().unwrap();

    let first = BgMount::mount(
        &server,
        &[
            "-i",
            key,
            "-o",
            &kh_opt,
            "-o",
            "StrictHostKeyChecking=accept-new",
        ],
        &server.remote_url(),
        &[],
        None,
    );
    let recorded = fs::read_to_string(&kh).unwrap();
    let lines: Vec<&str> = recorded.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines,
        vec![server.known_hosts_line().as_str()],
        "known_hosts after accept-new"
    );
    drop(first);

    let second = BgMount::mount(
        &server,
        &["-i", key, "-o", &kh_opt],
        &server.remote_url(),
        &[],
        None,
    );
    fs::write(second.path("after-accept.txt"), b"ok").unwrap();
    assert_eq!(
        fs::read(server.export.join("after-accept.txt")).unwrap(),
        b"ok"
    );
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        recorded,
        "a known key must not be recorded again"
    );
}

// StrictHostKeyChecking=no mounts a server whose key is not in known_hosts (with a warning).
#[test]
fn strict_no_mounts_without_known_host() {
    let _load = light_load();
    let server = Server::sftp();
    let scratch = tempfile::tempdir().unwrap();
    let kh = scratch.path().join("known_hosts");
    fs::write(&kh, "").unwrap();
    let kh_opt = format!("UserKnownHostsFile={}", kh.display());
    fs::write(server.export.join("seen.txt"), b"x").unwrap();
    let m = BgMount::mount(
        &server,
        &[
            "-i",
            server.identity().to_str().unwrap(),
            "-o",
            &kh_opt,
            "-o",
            "StrictHostKeyChecking=no",
        ],
        &server.remote_url(),
        &[],
        None,
    );
    assert!(names(&m.mnt.dir).contains(&OsString::from("seen.txt")));
    let err = stderr_text(&m.output).to_lowercase();
    assert!(
        err.contains("host key"),
        "StrictHostKeyChecking=no should warn about the host key, stderr: {err:?}"
    );
}

// `rmount -f` unmounts and exits 0 within 10 s on SIGTERM and on SIGINT.
#[test]
fn foreground_unmounts_on_sigterm() {
    let _load = light_load();
    let server = Server::sftp();
    let mut args = vec!["-f".to_string()];
    args.extend(server.mount_args());
    // Both signals are always tried; the failures are reported together.
    let mut failures = Vec::new();
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        // Made before mounting: the root listing is cached from the start.
        fs::write(server.export.join(format!("{name}.txt")), b"x").unwrap();
        let mut fg = Foreground::spawn(&strs(&args), &server.remote_url(), &[]);
        fg.wait_mounted(&server);
        assert!(
            names(&fg.mnt.dir).contains(&OsString::from(format!("{name}.txt"))),
            "the foreground mount serves"
        );
        fg.signal(sig);
        match fg.wait_exit(EXIT_TIMEOUT) {
            None => failures.push(format!(
                "{name}: rmount -f still running {EXIT_TIMEOUT:?} later (mounted: {})",
                is_mounted(&fg.mnt.dir)
            )),
            Some(status) if !status.success() => failures.push(format!(
                "{name}: rmount -f exited with {status}; stderr: {}",
                fg.stderr().trim()
            )),
            Some(_) if is_mounted(&fg.mnt.dir) => failures.push(format!(
                "{name}: rmount -f exited 0 but {} is still mounted",
                fg.mnt.dir.display()
            )),
            Some(_) => {}
        }
        // Drop kills a process that did not exit and unmounts.
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// The real `umount MNT` removes a background mount and its daemon exits within 10 s.
#[test]
fn umount_command_unmounts_and_daemon_exits() {
    let _load = light_load();
    let server = Server::sftp();
    let m = Mount::new(&server, &[]);
    let pid = m.daemon_pid().expect("daemon pid of the mount");
    assert!(alive(pid));
    let out = run_cmd(
        Command::new("umount").arg(&m.dir),
        Duration::from_secs(30),
        None,
    );
    assert!(out.status.success(), "umount: {}", describe_output(&out));
    assert!(!m.is_mounted(), "still mounted after umount");
    let exited = poll_until(EXIT_TIMEOUT, || !alive(pid));
    assert!(
        exited,
        "rmount daemon {pid} still running {EXIT_TIMEOUT:?} after umount"
    );
}

// -o idmap=user shows files of the remote login user as the local user (root); without it, the real uid.
#[test]
fn idmap_user_maps_login_owner() {
    let _load = light_load();
    let server = Server::sftp();
    let home = tempfile::tempdir().unwrap();
    let dir = dir_for_pw_user(&server, "idmap");
    let (uid, gid) = ids_of(SFTP_PW_USER);
    let file = dir.join("owned.txt");
    fs::write(&file, b"mine").unwrap();
    std::os::unix::fs::chown(&file, Some(uid), Some(gid)).unwrap();
    assert_ne!(uid, 0);

    let remote = format!("{}/idmap", server.url_for_user(SFTP_PW_USER));
    let env = [
        ("HOME", home.path().to_str().unwrap()),
        ("RMOUNT_PASSWORD", SFTP_PW_PASSWORD),
    ];
    let mut args = known_hosts_only(&server);
    args.extend(["-o".to_string(), "idmap=user".to_string()]);
    let mapped = BgMount::mount(&server, &strs(&args), &remote, &env, None);
    let meta = fs::metadata(mapped.path("owned.txt")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "with idmap=user the login user's file must appear as root's"
    );

    let plain = BgMount::mount(
        &server,
        &strs(&known_hosts_only(&server)),
        &remote,
        &env,
        None,
    );
    let meta = fs::metadata(plain.path("owned.txt")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid, gid),
        "without idmap the real owner must show"
    );
}

/// Reads `names` through a fresh mount made with `extra`, all in parallel,
/// checks their contents, and returns the largest number of ESTABLISHED
/// connections to the server seen meanwhile.
fn peak_connections_during_parallel_reads(
    server: &Server,
    extra: &[&str],
    files: &[(String, String)],
) -> usize {
    let m = Mount::new(server, extra);
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, peak, port) = (done.clone(), peak.clone(), server.port);
        std::thread::spawn(move || loop {
            peak.fetch_max(established_connections_to(port), Ordering::SeqCst);
            if done.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        })
    };
    let readers: Vec<_> = files
        .iter()
        .map(|(name, _)| {
            let p = m.path(name);
            std::thread::spawn(move || {
                let mut data = Vec::new();
                File::open(&p).unwrap().read_to_end(&mut data).unwrap();
                sha256_bytes(&data)
            })
        })
        .collect();
    let got: Vec<String> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    peak.fetch_max(established_connections_to(server.port), Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let want: Vec<String> = files.iter().map(|(_, sha)| sha.clone()).collect();
    assert_eq!(got, want, "contents read through the mount ({extra:?})");
    peak.load(Ordering::SeqCst)
}

// -o max_conns=2 never opens more than 2 connections during 4 parallel 8 MiB
// reads; max_conns=4 does open more under the same load (shown over FTP, which
// connects on demand: SFTP opens all its connections at mount, so growth
// there would prove nothing).
#[test]
fn max_conns_is_honoured() {
    let _load = light_load();
    const SIZE: usize = 8 << 20;
    let big_files = |server: &Server| -> Vec<(String, String)> {
        (0..4u64)
            .map(|i| {
                let data = pseudo_random_bytes(SIZE, 0x5eed + i);
                let name = format!("big{i}");
                fs::write(server.export.join(&name), &data).unwrap();
                (name, sha256_bytes(&data))
            })
            .collect()
    };
    let sftp = Server::sftp();
    let files = big_files(&sftp);
    let peak = peak_connections_during_parallel_reads(&sftp, &["-o", "max_conns=2"], &files);
    assert!(peak >= 1, "no connection to the server was ever seen");
    assert!(
        peak <= 2,
        "max_conns=2, but {peak} connections to the server were open at once"
    );

    // Control: with room for 4, the same load opens more than the 1 an FTP
    // mount starts with, and more than 2, so the limit above is what kept
    // the count down.
    let ftp = Server::ftp();
    let files = big_files(&ftp);
    let peak = peak_connections_during_parallel_reads(&ftp, &["-o", "max_conns=4"], &files);
    assert!(
        (3..=4).contains(&peak),
        "max_conns=4 with 4 parallel readers: {peak} connections at once"
    );
}

/// The server's SFTP subsystem processes (one per channel), found as the
/// descendants of its sshd that run `internal-sftp`.
fn sftp_channels(server: &Server) -> usize {
    descendants(server.pid())
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("internal-sftp"))
        })
        .count()
}

// SFTP opens all max_conns connections before the mount is ready (the first
// transfer then pays no SSH handshake); FTP opens only its first one.
#[test]
fn sftp_connects_fully_while_mounting_ftp_on_demand() {
    let _load = light_load();
    let sftp = Server::sftp();
    let m = Mount::new(&sftp, &["-o", "max_conns=3"]);
    assert_eq!(
        established_connections_to(sftp.port),
        3,
        "SFTP connections right after the mount returned"
    );
    // One SFTP channel (a server process) each; the extensions' channel
    // only where one is used, as by df.
    assert_eq!(sftp_channels(&sftp), 3, "SFTP channels after mounting");
    let df = run_cmd(Command::new("df").arg(&m.dir), MOUNT_TIMEOUT, None);
    assert!(df.status.success(), "df: {}", describe_output(&df));
    assert_eq!(sftp_channels(&sftp), 4, "SFTP channels after df");
    drop(m);

    let ftp = Server::ftp();
    let m = Mount::new(&ftp, &["-o", "max_conns=3"]);
    assert_eq!(
        established_connections_to(ftp.port),
        1,
        "FTP control connections right after the mount returned"
    );
    drop(m);
}

// -o ro shows `ro` in mountinfo and refuses writes; -d logs DEBUG lines to stderr without the password.
#[test]
fn read_only_and_debug() {
    let _load = light_load();
    let server = Server::sftp();

    let ro = Mount::new(&server, &["-o", "ro"]);
    let entry = mount_entry(&ro.dir).expect("mountinfo entry");
    assert!(
        entry.options.split(',').any(|o| o == "ro"),
        "mount options {:?} lack ro",
        entry.options
    );
    let err = fs::write(ro.path("nope.txt"), b"x").expect_err("write on a ro mount");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert!(!server.export.join("nope.txt").exists());
    drop(ro);

    let home = tempfile::tempdir().unwrap();
    dir_for_pw_user(&server, "dbg");
    fs::write(server.export.join("dbg/file.txt"), b"debug me").unwrap();
    let remote = format!("{}/dbg", server.url_for_user(SFTP_PW_USER));
    let mut args = vec!["-d".to_string()];
    args.extend(known_hosts_only(&server));
    let mut fg = Foreground::spawn(
        &strs(&args),
        &remote,
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("RMOUNT_PASSWORD", SFTP_PW_PASSWORD),
        ],
    );
    fg.wait_mounted(&server);
    assert_eq!(fs::read(fg.mnt.dir.join("file.txt")).unwrap(), b"debug me");
    // Ended by unmounting (signals are foreground_unmounts_on_sigterm's
    // subject), then waited for, so that stderr is complete.
    unmount_path(&fg.mnt.dir).expect("unmount the -d mount");
    assert!(
        fg.wait_exit(EXIT_TIMEOUT).is_some(),
        "rmount -d did not exit {EXIT_TIMEOUT:?} after its mount was unmounted"
    );
    let stderr = fg.stderr();
    assert!(
        stderr.lines().any(|l| l.contains("DEBUG")),
        "-d printed no DEBUG line on stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains(SFTP_PW_PASSWORD),
        "the password appears in the debug log"
    );
    assert!(
        !fg.stdout().contains(SFTP_PW_PASSWORD),
        "the password appears on stdout"
    );
}

// --help exits 0 and names every -o option of the README table; --version prints the version.
#[test]
fn help_and_version() {
    let _load = light_load();
    const OPTIONS: &[&str] = &[
        "debug",
        "ro",
        "rw",
        "noexec",
        "exec",
        "nosuid",
        "nodev",
        "sync",
        "async",
        "dirsync",
        "atime",
        "noatime",
        "relatime",
        "_netdev",
        "allow_other",
        "default_permissions",
        "idmap",
        "port",
        "IdentityFile",
        "password_stdin",
        "StrictHostKeyChecking",
        "UserKnownHostsFile",
        "ServerAliveInterval",
        "ServerAliveCountMax",
        // OpenSSH configuration keys.
        "HostName",
        "User",
        "IdentitiesOnly",
        "IdentityAgent",
        "GlobalKnownHostsFile",
        "HostKeyAlias",
        "ConnectTimeout",
        "ProxyJump",
        "ProxyCommand",
        "AddressFamily",
        "Ciphers",
        "KexAlgorithms",
        "HostKeyAlgorithms",
        "MACs",
        "max_conns",
        "timeout",
        "cache_timeout",
        "cache_size",
        "atomic_writes",
        "nocto",
        "contain_symlinks",
        "uid",
        "gid",
        "ftp_active",
        "ftps_implicit",
        "cafile",
        "no_verify_cert",
    ];
    // The README's option table, so the list above cannot silently go stale.
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let mut from_readme = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split(" | ").next().unwrap_or("");
        for part in first_cell.split("`-o ").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            from_readme.insert(name);
        }
    }
    assert!(
        from_readme.len() >= OPTIONS.len(),
        "README table parsed to {from_readme:?}"
    );
    for name in &from_readme {
        assert!(
            OPTIONS.contains(&name.as_str()),
            "README documents -o {name}, missing from this test's list"
        );
    }

    let help = run_rmount(&["--help"], &[], None);
    assert!(help.status.success(), "{}", describe_output(&help));
    let text = String::from_utf8_lossy(&help.stdout);
    for name in OPTIONS {
        assert!(has_word(&text, name), "--help does not mention {name}");
    }

    let version = run_rmount(&["--version"], &[], None);
    assert!(version.status.success(), "{}", describe_output(&version));
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        text.contains("rmount") && text.contains(env!("CARGO_PKG_VERSION")),
        "--version printed {text:?}"
    );
}

// A rewrite (O_TRUNC, then writes) is staged under a temporary name and the
// server keeps the old content until close; -o atomic_writes=no truncates
// and writes in place, so fsync puts the new bytes under the real name.
#[test]
fn atomic_writes_on_and_off() {
    let _load = light_load();
    use std::io::Write;
    let server = Server::sftp();
    for atomic in [true, false] {
        let (name, extra): (&str, &[&str]) = if atomic {
            ("atomic.txt", &[])
        } else {
            ("in-place.txt", &["-o", "atomic_writes=no"])
        };
        let on_server = server.put_file(name, b"old content");
        let m = Mount::new(&server, extra);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(m.path(name))
            .expect("open with O_TRUNC");
        f.write_all(b"new").expect("write");
        if !atomic {
            f.sync_all().expect("fsync");
        }
        let before_close = fs::read(&on_server).expect("read on the server");
        let temps = private_names(&server.export, b".rmount-tmp-");
        drop(f);
        if atomic {
            assert_eq!(
                before_close, b"old content",
                "atomic: old content until close"
            );
            assert_eq!(temps.len(), 1, "atomic: one temporary file ({temps:?})");
        } else {
            assert_eq!(before_close, b"new", "in place: new bytes after fsync");
            assert!(temps.is_empty(), "in place: no temporary file ({temps:?})");
        }
        assert_eq!(
            fs::read(&on_server).expect("read"),
            b"new",
            "after close ({name})"
        );
        assert!(
            private_names(&server.export, b".rmount-tmp-").is_empty(),
            "no temporary file left ({name})"
        );
    }
}

/// Names in a server directory that start with `prefix` (rmount's own).
fn private_names(dir: &Path, prefix: &[u8]) -> Vec<OsString> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .filter(|n| n.as_encoded_bytes().starts_with(prefix))
        .collect()
}

// Leftovers are recognised by name and removed by the next mount only
// when the mount that made them is gone: their name carries its id, and
// its marker (`.rmount-live-<id>`) is missing or stale. Names that carry
// no mount id, and names of a mount whose marker is fresh, are kept
// whatever their age.
#[test]
fn crash_leftovers_are_removed_at_the_next_mount() {
    let _load = light_load();
    let server = Server::sftp();
    let gone = ".rmount-tmp-00000000000000aa-0";
    let stale = ".rmount-hidden-00000000000000bb-1";
    let live = ".rmount-hidden-00000000000000cc-2";
    let old_format = ".rmount-tmp-otherhost-1-0-0";
    for name in [gone, stale, live, old_format] {
        fs::write(server.export.join(name), b"partial").expect("put a leftover");
        set_mtime(&server.export.join(name), now_secs() - 2 * 86400);
    }
    for (id, age) in [("00000000000000bb", 3600), ("00000000000000cc", 0)] {
        let marker = server.export.join(format!(".rmount-live-{id}"));
        fs::write(&marker, b"").expect("put a marker");
        set_mtime(&marker, now_secs() - age);
    }

    let m = Mount::new(&server, &[]);
    // Unfiltered: names() itself drops rmount's private names.
    let listed: Vec<OsString> = fs::read_dir(m.path(""))
        .expect("list the mount")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    assert!(listed.is_empty(), "leftovers are never listed: {listed:?}");
    wait_until(
        "the leftovers of gone mounts to go",
        Duration::from_secs(10),
        || {
            let left = private_names(&server.export, b".rmount-");
            !left.contains(&OsString::from(gone)) && !left.contains(&OsString::from(stale))
        },
    );
    for kept in [live, old_format] {
        assert!(
            server.export.join(kept).exists(),
            "{kept}: its maker may still use it: kept"
        );
    }
    let markers = private_names(&server.export, b".rmount-live-");
    assert_eq!(markers.len(), 3, "the mount's own marker too: {markers:?}");
    drop(m);
    let markers = private_names(&server.export, b".rmount-live-");
    assert_eq!(markers.len(), 2, "its marker goes at unmount: {markers:?}");
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn set_mtime(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    // SAFETY: a valid path and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

// Without -o allow_other no other local user reaches the mount, not even
// what the owner has just looked at (the kernel would answer that from its
// cache); with -o allow_other they do.
#[test]
fn other_users_see_nothing_without_allow_other() {
    let _load = light_load();
    let server = Server::sftp();
    server.put_file("f", b"seen");
    let stat_as_other = |p: &Path| {
        run_cmd(
            Command::new("setpriv")
                .args(["--reuid", SFTP_PW_USER, "--regid", SFTP_PW_USER])
                .args(["--init-groups", "--", "stat", "-c", "%s"])
                .arg(p),
            Duration::from_secs(30),
            None,
        )
    };
    let m = Mount::new(&server, &[]);
    assert_eq!(
        fs::read(m.path("f")).unwrap(),
        b"seen",
        "the owner reads it"
    );
    let out = stat_as_other(&m.path("f"));
    assert!(
        !out.status.success() && stderr_text(&out).contains("Permission denied"),
        "another user must not reach the mount\n{}",
        describe_output(&out)
    );
    let entry = mount_entry(&m.dir).expect("mountinfo entry");
    assert!(
        !entry.super_options.contains("allow_other"),
        "the kernel mount carries no allow_other: {entry:?}"
    );
    drop(m);

    let m = Mount::new(&server, &["-o", "allow_other,default_permissions"]);
    let out = stat_as_other(&m.path("f"));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "4",
        "with allow_other another user reaches the mount\n{}",
        describe_output(&out)
    );
}
