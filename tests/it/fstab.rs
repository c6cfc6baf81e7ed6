//! mount(8), /etc/fstab and systemd, end to end: `mount -t fuse.rmount
//! REMOTE MNT -o OPTS` and `mount --fstab FILE MNT` start the real binary
//! through mount.fuse3, with the options only mount(8), fstab and systemd
//! use, a key or a password on mount's stdin; rmount itself takes options
//! after the positionals, as mount.fuse3 gives them; and the README's fstab
//! line and units pass systemd-fstab-generator and `systemd-analyze verify`.
//!
//! mount(8) runs its helpers without PATH, so mount.fuse3's `/bin/sh -c
//! 'rmount' ...` finds rmount only in the shell's default path, which starts
//! with /usr/local/sbin. Each mount(8) test therefore runs in a private mount
//! namespace (unshare) where a directory holding a link to the built binary
//! is bound over /usr/local/sbin: the machine's own directories, mounts and
//! /etc/fstab are untouched. The FUSE mount exists only in that namespace,
//! which the rmount daemon keeps alive; the test reaches the mount through
//! /proc/PID/root, reads its flags from /proc/PID/mountinfo, and runs
//! `umount` there with nsenter. Guards kill the daemon by PID (which ends
//! the namespace and its mount) and remove the directories.
//!
//! Run: `cargo test --test it -- fstab::`.

use std::fs::{self, File};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::*;

/// How long mount(8) may take (it returns once rmount's mount is ready).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long rmount may take to exit after its mount is gone.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A script that prints a word, to test noexec.
const SCRIPT: &[u8] = b"#!/bin/sh\necho ran-from-rmount\n";

/// A mount made by mount(8) in a private mount namespace. Dropping it
/// unmounts (umount in the namespace, then SIGKILL of the daemon, which ends
/// the namespace) and removes the mount point's directory.
struct NsMount {
    mnt: MountPoint,
    /// The rmount daemon serving the mount; it holds the namespace.
    daemon: u32,
    /// mount(8)'s output.
    output: Output,
}

impl NsMount {
    /// Runs `mount ARGS...` in a fresh private namespace in which rmount is
    /// found. `args` may name `mnt` and files under `mnt.base`. Err(output)
    /// if mount(8) failed; panics if it broke the contract (success without
    /// a mount, or failure leaving a daemon).
    fn try_mount(mnt: MountPoint, args: &[&str]) -> Result<NsMount, (MountPoint, Output)> {
        NsMount::try_mount_with_stdin(mnt, args, None)
    }

    /// Like `try_mount`, with `stdin` as mount(8)'s standard input.
    fn try_mount_with_stdin(
        mnt: MountPoint,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<NsMount, (MountPoint, Output)> {
        let bin = mnt.base.join("bin");
        fs::create_dir(&bin).expect("create bin dir");
        symlink(rmount_bin(), bin.join("rmount")).expect("link rmount");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(r#"mount --bind "$0" /usr/local/sbin && exec mount "$@""#)
            .arg(&bin)
            .args(args)
            .env_remove("RMOUNT_PASSWORD")
            .env_remove("SSH_AUTH_SOCK");
        let output = run_cmd(&mut cmd, MOUNT_TIMEOUT, stdin);
        let daemons = rmount_processes_for(&mnt.dir);
        match (output.status.success(), daemons.as_slice()) {
            (true, [daemon]) => {
                let m = NsMount {
                    daemon: *daemon,
                    mnt,
                    output,
                };
                assert!(
                    m.entry().is_some(),
                    "mount {args:?} succeeded but {} is not mounted in its namespace\n{}",
                    m.mnt.dir.display(),
                    describe_output(&m.output)
                );
                Ok(m)
            }
            (false, []) => Err((mnt, output)),
            (_, daemons) => panic!(
                "mount {args:?}: exit {}, rmount daemons {daemons:?}\n{}",
                output.status,
                describe_output(&output)
            ),
        }
    }

    fn mount(server: &Server, mnt: MountPoint, args: &[&str]) -> NsMount {
        NsMount::try_mount(mnt, args).unwrap_or_else(|(_, out)| {
            panic!(
                "mount {args:?} failed\n{}\n--- server log ---\n{}",
                describe_output(&out),
                server.log_tail(15)
            )
        })
    }

    /// `rel` in the mount, as this process reaches it: through the daemon's
    /// view of the file system.
    fn path(&self, rel: &str) -> PathBuf {
        let dir = self
            .mnt
            .dir
            .strip_prefix("/")
            .expect("absolute mount point");
        Path::new(&format!("/proc/{}/root", self.daemon))
            .join(dir)
            .join(rel)
    }

    /// (fs type, source, per-mount options) of the mount in its namespace.
    fn entry(&self) -> Option<(String, String, Vec<String>)> {
        let info = fs::read_to_string(format!("/proc/{}/mountinfo", self.daemon)).ok()?;
        let want = self.mnt.dir.to_str().expect("utf-8 temp path");
        info.lines().rev().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            (l.get(4) == Some(&want)).then(|| {
                // The mount's own options, then the superblock's (sync is one).
                let options = [l.get(5), r.get(2)]
                    .into_iter()
                    .flat_map(|o| o.unwrap_or(&"").split(','))
                    .map(String::from);
                (
                    r.first().unwrap_or(&"").to_string(),
                    r.get(1).unwrap_or(&"").to_string(),
                    options.collect(),
                )
            })
        })
    }

    /// `umount MNT` in the mount's namespace; waits for the daemon to exit.
    fn umount(&mut self) {
        let out = run_cmd(
            Command::new("nsenter")
                .arg("-t")
                .arg(self.daemon.to_string())
                .args(["-m", "--", "umount"])
                .arg(&self.mnt.dir),
            EXIT_TIMEOUT,
            None,
        );
        assert!(out.status.success(), "umount: {}", describe_output(&out));
        let dir = self.mnt.dir.clone();
        let exited = poll_until(EXIT_TIMEOUT, || rmount_processes_for(&dir).is_empty());
        assert!(exited, "rmount did not exit after umount");
    }
}

impl Drop for NsMount {
    fn drop(&mut self) {
        if !rmount_processes_for(&self.mnt.dir).is_empty() {
            let _ = run_cmd_timeout(
                Command::new("nsenter")
                    .arg("-t")
                    .arg(self.daemon.to_string())
                    .args(["-m", "--", "umount", "-l"])
                    .arg(&self.mnt.dir),
                EXIT_TIMEOUT,
                None,
            );
            poll_until(EXIT_TIMEOUT, || {
                rmount_processes_for(&self.mnt.dir).is_empty()
            });
        }
        // Then `mnt` kills what is left, by PID, and removes the directory.
    }
}

/// `-o` items that log in to `server` with its key (no password anywhere).
fn key_options(server: &Server) -> String {
    format!(
        "IdentityFile={},UserKnownHostsFile={}",
        server.identity().display(),
        server.known_hosts().display()
    )
}

/// Runs the file at `path`; its output, or the error of exec.
fn run_script(path: &Path) -> std::io::Result<String> {
    let out = Command::new(path).stdin(Stdio::null()).output()?;
    assert!(out.status.success(), "{path:?}: {}", describe_output(&out));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn has(options: &[String], flag: &str) -> bool {
    options.iter().any(|o| o == flag)
}

// `mount -t fuse.rmount sftp://... MNT -o ...` mounts read-write, nosuid,
// nodev and executable; a file written through it lands on the server;
// `umount` ends the daemon.
#[test]
fn mount_t_fuse_rmount() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new("rmount-test-fstab-");
    let dir = mnt.arg().to_string();
    let url = server.remote_url();
    // Kernel flags an fstab line may carry: passed on to the kernel
    // (noatime, sync) or accepted (nodiratime).
    let opts = format!("{},noatime,sync,nodiratime", key_options(&server));
    let mut m = NsMount::mount(
        &server,
        mnt,
        &["-t", "fuse.rmount", &url, &dir, "-o", &opts],
    );

    let (fs_type, source, options) = m.entry().expect("mounted");
    assert_eq!(fs_type, "fuse.rmount");
    assert_eq!(
        source,
        format!("127.0.0.1:{}", server.remote_path("").trim_end_matches('/'))
    );
    for flag in ["rw", "nosuid", "nodev", "noatime", "sync"] {
        assert!(has(&options, flag), "{flag} missing in {options:?}");
    }
    assert!(!has(&options, "noexec"), "{options:?}");

    fs::write(m.path("via-mount.txt"), b"written through mount(8)\n").expect("write");
    assert_eq!(
        fs::read(server.export.join("via-mount.txt")).expect("file on the server"),
        b"written through mount(8)\n"
    );
    // The baseline for noexec below: without it, a script runs.
    let script = m.path("run.sh");
    fs::write(&script, SCRIPT).expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(run_script(&script).expect("exec").trim(), "ran-from-rmount");

    m.umount();
}

// An fstab line with an scp-style REMOTE, the options only mount(8), fstab
// and systemd use, and ro,noexec: `mount --fstab FILE MNT` mounts it, the
// kernel mount is ro and noexec, writes fail with EROFS and exec with EACCES.
#[test]
fn fstab_line() {
    let _load = light_load();
    let server = Server::sftp();
    server.put_file("run.sh", SCRIPT);
    fs::set_permissions(
        server.export.join("run.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod on the server");

    let mnt = MountPoint::new("rmount-test-fstab-");
    let remote = format!(
        "{TEST_USER}@127.0.0.1:{}",
        server.remote_path("").trim_end_matches('/')
    );
    let options = format!(
        "port={},{},ro,noexec,_netdev,noauto,nofail,users,defaults,\
         x-systemd.automount,x-systemd.idle-timeout=60,comment=rmount-test",
        server.port,
        key_options(&server)
    );
    let fstab = mnt.base.join("fstab");
    fs::write(
        &fstab,
        format!(
            "# rmount test\n{remote} {} fuse.rmount {options} 0 0\n",
            mnt.arg()
        ),
    )
    .expect("write fstab");
    let fstab = fstab.to_str().expect("utf-8 temp path").to_string();
    let dir = mnt.arg().to_string();
    let mut m = NsMount::mount(&server, mnt, &["--fstab", &fstab, &dir]);

    let (fs_type, source, options) = m.entry().expect("mounted");
    assert_eq!(fs_type, "fuse.rmount");
    assert_eq!(
        source,
        format!("127.0.0.1:{}", server.remote_path("").trim_end_matches('/'))
    );
    for flag in ["ro", "noexec", "nosuid", "nodev"] {
        assert!(has(&options, flag), "{flag} missing in {options:?}");
    }
    assert_eq!(fs::read(m.path("run.sh")).expect("read"), SCRIPT);
    let err = fs::write(m.path("new.txt"), b"x").expect_err("write on a ro mount");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert!(!server.export.join("new.txt").exists());
    let err = run_script(&m.path("run.sh")).expect_err("exec on a noexec mount");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

    m.umount();
}

// When rmount cannot mount (here: the host key is unknown), mount(8) fails
// with rmount's message and nothing is left behind.
#[test]
fn mount_failure_is_reported() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new("rmount-test-fstab-");
    let empty_known_hosts = mnt.base.join("known_hosts");
    File::create(&empty_known_hosts).expect("create known_hosts");
    let opts = format!(
        "IdentityFile={},UserKnownHostsFile={}",
        server.identity().display(),
        empty_known_hosts.display()
    );
    let dir = mnt.arg().to_string();
    let url = server.remote_url();
    match NsMount::try_mount(mnt, &["-t", "fuse.rmount", &url, &dir, "-o", &opts]) {
        Ok(m) => panic!(
            "mounted with an unknown host key\n{}",
            describe_output(&m.output)
        ),
        Err((mnt, out)) => {
            let stderr = stderr_text(&out);
            assert!(stderr.contains("rmount: "), "{}", describe_output(&out));
            assert!(stderr.contains("host key"), "{}", describe_output(&out));
            assert!(rmount_processes_for(&mnt.dir).is_empty());
        }
    }
}

// A password login through mount(8): `-o password_stdin` reads the password
// from mount's standard input (no password in argv or fstab).
#[test]
fn password_stdin_through_mount() {
    let _load = light_load();
    let server = Server::sftp();
    server.put_file("seen-by-password-login.txt", b"hello\n");
    let mnt = MountPoint::new("rmount-test-fstab-");
    let dir = mnt.arg().to_string();
    let url = server.url_for_user(SFTP_PW_USER);
    let opts = format!(
        "UserKnownHostsFile={},password_stdin",
        server.known_hosts().display()
    );
    let stdin = format!("{SFTP_PW_PASSWORD}\n");
    let args = ["-t", "fuse.rmount", &url, &dir, "-o", &opts];
    let mut m = match NsMount::try_mount_with_stdin(mnt, &args, Some(stdin.as_bytes())) {
        Ok(m) => m,
        Err((_, out)) => panic!(
            "mount {args:?} failed\n{}\n--- server log ---\n{}",
            describe_output(&out),
            server.log_tail(15)
        ),
    };
    assert_eq!(
        fs::read(m.path("seen-by-password-login.txt")).expect("read"),
        b"hello\n"
    );
    let want = format!("Accepted password for {SFTP_PW_USER}");
    let logged = poll_until(Duration::from_secs(10), || {
        fs::read_to_string(server.log_path()).is_ok_and(|log| log.contains(&want))
    });
    assert!(logged, "sshd did not log {want:?}\n{}", server.log_tail(20));
    let out = describe_output(&m.output);
    assert!(!out.contains(SFTP_PW_PASSWORD), "password echoed: {out}");
    m.umount();
}

/// A foreground rmount; dropping it kills it by PID.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

// rmount itself, as mount.fuse3 runs it: options after the positionals
// apply (noexec), and the mount(8)-only ones are accepted and named in the
// debug log.
#[test]
fn options_after_positionals() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new("rmount-test-fstab-");
    let stderr_path = mnt.base.join("stderr");
    let child = Command::new(rmount_bin())
        .arg(server.remote_url())
        .arg(&mnt.dir)
        .args([
            "-o",
            "noexec,_netdev,x-systemd.automount,comment=fstab,dev,suid",
        ])
        .arg("-i")
        .arg(server.identity())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            server.known_hosts().display()
        ))
        .arg("-d")
        .env_remove("RUST_LOG")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start rmount");
    let mut rmount = Running(child);
    let stderr = || fs::read_to_string(&stderr_path).unwrap_or_default();
    let mut exited = None;
    let mounted = poll_until(MOUNT_TIMEOUT, || {
        exited = rmount.0.try_wait().expect("try_wait");
        exited.is_some() || is_mounted(&mnt.dir)
    });
    assert!(
        mounted && exited.is_none(),
        "not mounted ({exited:?})\n{}",
        stderr()
    );

    let entry = mount_entry(&mnt.dir).expect("mounted");
    assert_eq!(entry.fs_type, "fuse.rmount");
    let options = entry.options;
    for flag in ["noexec", "nosuid", "nodev"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "{flag} missing in {options}"
        );
    }
    let log = stderr();
    assert!(
        log.contains("ignored options")
            && log.contains("_netdev,x-systemd.automount,comment=fstab,dev,suid"),
        "{log}"
    );

    unmount_path(&mnt.dir).expect("unmount");
    let mut status = None;
    poll_until(EXIT_TIMEOUT, || {
        status = rmount.0.try_wait().expect("try_wait");
        status.is_some()
    });
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        stderr()
    );
}

/// The fenced code blocks of README.md whose first line is `# PATH`
/// (`# /etc/fstab`, `# /etc/systemd/system/NAME`), as (PATH, text).
fn readme_files() -> Vec<(String, String)> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = fs::read_to_string(&readme).expect("read README.md");
    let mut files = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut block, line.starts_with("```")) {
            (None, true) => block = Some(Vec::new()),
            (Some(lines), true) => {
                if let Some(path) = lines.first().and_then(|l| l.strip_prefix("# /etc/")) {
                    files.push((format!("/etc/{path}"), lines.join("\n") + "\n"));
                }
                block = None;
            }
            (Some(lines), false) => lines.push(line),
            (None, false) => {}
        }
    }
    files
}

/// One `key=value` line of a unit file.
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// rmount must take `options` as they are: with them and a mount point
/// that does not exist, it fails on the mount point, not on the options.
fn assert_rmount_accepts(remote: &str, options: &str) {
    let mnt = MountPoint::named("rmount-test-fstab-", "missing");
    let out = run_rmount(&[remote, mnt.arg(), "-o", options], &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", describe_output(&out));
    assert!(
        stderr_text(&out).contains("does not exist"),
        "{}",
        describe_output(&out)
    );
}

// The fstab line and the units in README.md: systemd-fstab-generator makes
// an automount unit under remote-fs.target from the line, systemd-analyze
// verify accepts what it made and the README's units, and rmount accepts
// their options. (Units cannot be started without systemd as PID 1.)
#[test]
fn readme_fstab_line_and_units_verify() {
    let _load = light_load();
    let files = readme_files();
    let fstab = files
        .iter()
        .find(|(path, _)| path == "/etc/fstab")
        .map(|(_, text)| text.clone())
        .expect("README has an /etc/fstab example");
    let units: Vec<&(String, String)> = files
        .iter()
        .filter(|(path, _)| path.starts_with("/etc/systemd/system/"))
        .collect();
    assert!(
        units.len() >= 2,
        "README has no .mount and .automount units"
    );

    let dir = MountPoint::named("rmount-test-fstab-units-", "fstab");
    fs::write(&dir.dir, &fstab).expect("write fstab");
    let generated: Vec<PathBuf> = ["normal", "early", "late"]
        .iter()
        .map(|d| dir.base.join(d))
        .collect();
    for d in &generated {
        fs::create_dir(d).expect("create generator dir");
    }
    let generator = [
        "/usr/lib/systemd/system-generators/systemd-fstab-generator",
        "/lib/systemd/system-generators/systemd-fstab-generator",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("systemd-fstab-generator (package systemd) is installed");
    let out = run_cmd(
        Command::new(generator)
            .args(&generated)
            .env("SYSTEMD_FSTAB", &dir.dir)
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .env("SYSTEMD_LOG_TARGET", "console"),
        Duration::from_secs(30),
        None,
    );
    assert!(out.status.success(), "{}", describe_output(&out));
    let normal = &generated[0];
    let mount_unit = fs::read_to_string(normal.join("mnt-data.mount"))
        .unwrap_or_else(|e| panic!("no mnt-data.mount ({e})\n{}", describe_output(&out)));
    assert_eq!(unit_value(&mount_unit, "Type"), Some("fuse.rmount"));
    assert!(normal.join("mnt-data.automount").exists());
    assert!(
        normal
            .join("remote-fs.target.wants/mnt-data.automount")
            .exists(),
        "_netdev must put the automount under remote-fs.target"
    );
    let what = unit_value(&mount_unit, "What").expect("What=");
    let options = unit_value(&mount_unit, "Options").expect("Options=");
    assert_rmount_accepts(what, options);

    verify_units(&[
        normal.join("mnt-data.mount"),
        normal.join("mnt-data.automount"),
    ]);

    let written = dir.base.join("units");
    fs::create_dir(&written).expect("create units dir");
    let mut files = Vec::new();
    for (path, text) in units {
        let name = Path::new(path).file_name().expect("unit name");
        let file = written.join(name);
        fs::write(&file, text).expect("write unit");
        files.push(file);
        if let (Some(what), Some(options)) = (unit_value(text, "What"), unit_value(text, "Options"))
        {
            assert_rmount_accepts(what, options);
        }
    }
    // Separately: of two units with one name, verify would read the first.
    verify_units(&files);
}

/// `systemd-analyze verify UNITS...` finds nothing to say about them.
fn verify_units(units: &[PathBuf]) {
    let out = run_cmd(
        Command::new("systemd-analyze")
            .arg("verify")
            .args(units)
            // Without a terminal it would log to the journal.
            .env("SYSTEMD_LOG_TARGET", "console"),
        Duration::from_secs(60),
        None,
    );
    let stderr = stderr_text(&out);
    assert!(
        out.status.success() && !stderr.contains("mnt-data"),
        "{units:?}\n{}",
        describe_output(&out)
    );
}
