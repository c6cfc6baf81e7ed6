//! The OpenSSH client configuration (`-F`), jump hosts (`ProxyJump`, `-J`)
//! and `ProxyCommand`, against real sshd instances on loopback. Every SSH
//! setting comes from a configuration file the test writes; the jump
//! hosts' logs (at DEBUG1) show each connection they forwarded.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// How long a mount may take to reconnect through its route.
const RECONNECT_LIMIT: Duration = Duration::from_secs(60);
/// How long one call may take while the route is broken (a few timeouts).
const CALL_LIMIT: Duration = Duration::from_secs(90);

/// A jump host: an sshd that allows `direct-tcpip`.
fn jump_server() -> Server {
    let mut jump = Server::sftp();
    jump.make_jump_host();
    jump
}

/// The `Host` block that logs in to `server` as the test user.
fn host_block(alias: &str, server: &Server, extra: &str) -> String {
    format!(
        "Host {alias}\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile {}\n    \
         UserKnownHostsFile {}\n    IdentitiesOnly yes\n{extra}",
        server.port,
        server.user(),
        server.identity().display(),
        server.known_hosts().display(),
    )
}

/// Writes `text` as an ssh_config file in a fresh directory.
struct ConfigFile {
    dir: tempfile::TempDir,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let dir = tempfile::Builder::new()
            .prefix("rmount-test-sshcfg-")
            .tempdir()
            .expect("temp dir");
        fs::write(dir.path().join("config"), text).expect("write ssh_config");
        ConfigFile { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("config").display().to_string()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Connections `jump`'s log shows it forwarded to `port` on loopback.
fn forwarded_to(jump: &Server, port: u16) -> usize {
    fs::read_to_string(jump.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(&format!("connected to 127.0.0.1 port {port}")))
        .count()
}

/// Writes a file through the mount and checks it on the server.
fn write_through(m: &Mount, target: &Server, name: &str) {
    fs::write(m.path(name), b"through the route").expect("write through the mount");
    assert_eq!(target.read_file(name), b"through the route");
}

/// After the target restarts (every connection cut), the mount reconnects
/// through the same route: a file made on the server since is readable.
fn reconnects(m: &Mount, target: &mut Server) {
    target.restart();
    target.put_file("after-restart", b"new");
    let path = m.path("after-restart");
    assert!(
        poll_until(RECONNECT_LIMIT, || fs::read(&path)
            .is_ok_and(|d| d == b"new")),
        "the mount did not reconnect; target log:\n{}",
        target.log_tail(20)
    );
}

/// Mounts `alias:` + the target's export with `-F config` (and the usual
/// target key and known_hosts options, which apply to the target only).
fn mount_with(target: &Server, config: &ConfigFile, alias: &str) -> Mount {
    let url = format!("{alias}:{}", target.remote_path(""));
    Mount::with_url(target, &url, &["-F", &config.path()])
}

/// Only `-F`: host, port, user, key and known_hosts all come from the
/// file, for the URL form too; a `Match` rmount cannot evaluate is skipped
/// with a warning, and a later `Port` does not override the first.
#[test]
fn an_alias_alone_mounts_as_ssh_would_connect() {
    let target = Server::sftp();
    let config = ConfigFile::new(&format!(
        "Match exec \"true\"\n    Port 1\n{}Host *\n    Port 1\n",
        host_block("myalias", &target, "")
    ));
    for url in [
        format!("myalias:{}", target.remote_path("")),
        format!("sftp://myalias{}", target.remote_path("")),
    ] {
        let mnt = MountPoint::new("rmount-test-sshcfg-");
        let out = run_rmount(&["-F", &config.path(), &url, mnt.arg()], &[], None);
        assert!(out.status.success(), "{url}: {}", describe_output(&out));
        let err = stderr_text(&out);
        assert!(
            err.contains("Match exec") && err.contains("config:1"),
            "{err}"
        );
        fs::write(mnt.path("alias.txt"), url.as_bytes()).expect("write through the mount");
        assert_eq!(target.read_file("alias.txt"), url.as_bytes());
    }
}

#[test]
fn through_a_jump_host_and_again_after_a_reconnect() {
    let jump = jump_server();
    let mut target = Server::sftp();
    let config = ConfigFile::new(&format!(
        "{}{}",
        host_block("target", &target, "    ProxyJump jump\n"),
        host_block("jump", &jump, ""),
    ));
    assert_eq!(forwarded_to(&jump, target.port), 0);
    let m = mount_with(&target, &config, "target");
    write_through(&m, &target, "via-jump");
    let before = forwarded_to(&jump, target.port);
    assert!(
        before >= 1,
        "the jump host forwarded nothing:\n{}",
        jump.log_tail(30)
    );
    reconnects(&m, &mut target);
    assert!(
        forwarded_to(&jump, target.port) > before,
        "the reconnect did not go through the jump host"
    );
}

#[test]
fn a_dead_jump_host_fails_calls_and_the_mount_comes_back_through_it() {
    let mut jump = jump_server();
    let target = Server::sftp();
    let config = ConfigFile::new(&format!(
        "{}{}",
        host_block("target", &target, "    ProxyJump jump\n"),
        host_block("jump", &jump, ""),
    ));
    let m = mount_with(&target, &config, "target");
    write_through(&m, &target, "before");
    jump.stop();
    target.put_file("while-down", b"x");
    let path = m.path("while-down");
    // The mount's timeout is 20 s: a call may wait for it, never hang.
    let (r, _) = within(
        "a call while the jump host is down",
        CALL_LIMIT,
        move || fs::read(path),
    );
    assert!(r.is_err(), "read through a dead jump host: {r:?}");
    jump.restart();
    target.put_file("after-jump", b"back");
    let path = m.path("after-jump");
    assert!(
        poll_until(RECONNECT_LIMIT, || fs::read(&path)
            .is_ok_and(|d| d == b"back")),
        "the mount did not come back through the restarted jump host"
    );
}

#[test]
fn through_two_jump_hosts_given_with_dash_j() {
    let jump1 = jump_server();
    let jump2 = jump_server();
    let target = Server::sftp();
    let config = ConfigFile::new(&format!(
        "{}{}{}",
        host_block("target", &target, ""),
        host_block("hop1", &jump1, ""),
        host_block("hop2", &jump2, ""),
    ));
    let url = format!("target:{}", target.remote_path(""));
    let m = Mount::with_url(&target, &url, &["-F", &config.path(), "-J", "hop1,hop2"]);
    write_through(&m, &target, "via-two");
    assert!(
        forwarded_to(&jump1, jump2.port) >= 1,
        "hop1 did not forward to hop2"
    );
    assert!(
        forwarded_to(&jump2, target.port) >= 1,
        "hop2 did not forward to the target"
    );
    assert_eq!(
        forwarded_to(&jump1, target.port),
        0,
        "hop1 reached the target itself"
    );
}

#[test]
fn a_jump_host_with_a_wrong_key_is_refused() {
    let jump = jump_server();
    let target = Server::sftp();
    let config = ConfigFile::new("");
    // The jump host's known_hosts holds another server's key for its address.
    let wrong = config.file("jump_known_hosts");
    fs::write(
        &wrong,
        format!(
            "[127.0.0.1]:{} {}\n",
            jump.port,
            target.host_public_key_line()
        ),
    )
    .unwrap();
    let text = format!(
        "{}Host jump\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile {}\n    \
         UserKnownHostsFile {}\n",
        host_block("target", &target, "    ProxyJump jump\n"),
        jump.port,
        jump.user(),
        jump.identity().display(),
        wrong.display(),
    );
    fs::write(config.dir.path().join("config"), text).unwrap();
    let url = format!("target:{}", target.remote_path(""));
    let err = match Mount::try_new(&target, &url, &["-F", &config.path()]) {
        Ok(_) => panic!("mounted through a jump host whose key does not match"),
        Err(out) => stderr_text(&out),
    };
    assert!(
        err.contains(&format!("jump host 127.0.0.1:{}", jump.port)) && err.contains("host key"),
        "{err}"
    );
    assert_eq!(forwarded_to(&jump, target.port), 0, "it forwarded anyway");
}

#[test]
fn through_a_proxy_command() {
    let mut target = Server::sftp();
    let config = ConfigFile::new("");
    let marker = config.file("proxy-runs");
    let script = config.file("forward.py");
    fs::write(&script, FORWARD_PY).unwrap();
    let text = host_block(
        "proxied",
        &target,
        &format!(
            "    ProxyCommand /usr/bin/python3 {} %h %p {}\n",
            script.display(),
            marker.display()
        ),
    );
    fs::write(config.dir.path().join("config"), text).unwrap();
    let m = mount_with(&target, &config, "proxied");
    write_through(&m, &target, "via-command");
    let runs = |p: &Path| fs::read_to_string(p).unwrap_or_default().lines().count();
    let before = runs(&marker);
    assert!(before >= 1, "the ProxyCommand never ran");
    reconnects(&m, &mut target);
    assert!(
        runs(&marker) > before,
        "the reconnect did not run the ProxyCommand"
    );
}

#[test]
fn a_jump_host_reached_through_its_own_proxy_command() {
    let jump = jump_server();
    let target = Server::sftp();
    let config = ConfigFile::new("");
    let marker = config.file("proxy-runs");
    let script = config.file("forward.py");
    fs::write(&script, FORWARD_PY).unwrap();
    let text = format!(
        "{}{}",
        host_block("target", &target, "    ProxyJump jump\n"),
        host_block(
            "jump",
            &jump,
            &format!(
                "    ProxyCommand /usr/bin/python3 {} %h %p {}\n",
                script.display(),
                marker.display()
            ),
        ),
    );
    fs::write(config.dir.path().join("config"), text).unwrap();
    let m = mount_with(&target, &config, "target");
    write_through(&m, &target, "via-command-and-jump");
    assert!(
        !fs::read_to_string(&marker).unwrap_or_default().is_empty(),
        "the command never ran"
    );
    assert!(
        forwarded_to(&jump, target.port) >= 1,
        "the jump host forwarded nothing"
    );
}

/// An `nc`-like forwarder: connects to HOST PORT, copies stdin to the
/// socket and the socket to stdout, and appends a line to MARKER.
const FORWARD_PY: &str = r#"
import os, socket, sys, threading
host, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(marker, "a") as f:
    f.write("run\n")
s = socket.create_connection((host, port))
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    view = memoryview(data)
    while view:
        n = os.write(1, view)
        view = view[n:]
"#;
