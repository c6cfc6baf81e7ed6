//! Bad input to `rmount`: each case must fail with a non-zero exit status,
//! print exactly one line on stderr that names the cause, and leave nothing
//! mounted (and no daemon running) at the mount point.
//!
//! The keyword lists below are deliberately a little broad (several
//! wordings are fine); each inner list must be matched by at least one of
//! its words, case-insensitively.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::*;

const PREFIX: &str = "rmount-test-cli-";

/// Checks the common contract of a failed invocation and returns the error
/// line: non-zero exit (not a signal), one line on stderr matching every
/// group of `keywords`, nothing mounted at `mnt`, no rmount process left.
fn assert_fails(out: &Output, mnt: &Path, keywords: &[&[&str]]) -> String {
    let err = stderr_text(out);
    eprintln!("rmount said: {err}");
    assert!(
        !out.status.success(),
        "rmount should have failed\n{}",
        describe_output(out)
    );
    assert!(
        out.status.code().is_some(),
        "rmount was killed by a signal instead of exiting\n{}",
        describe_output(out)
    );
    assert_eq!(
        err.lines().count(),
        1,
        "stderr must be exactly one line\n{}",
        describe_output(out)
    );
    let lower = err.to_lowercase();
    for group in keywords {
        assert!(
            group.iter().any(|k| lower.contains(&k.to_lowercase())),
            "the error should name the cause (one of {group:?}), got: {err:?}"
        );
    }
    assert!(
        !is_mounted(mnt),
        "{} is mounted after a failed rmount",
        mnt.display()
    );
    let left = poll_until(Duration::from_secs(5), || {
        rmount_processes_for(mnt).is_empty()
    });
    assert!(
        left,
        "an rmount process for {} is still running after the failure: {:?}",
        mnt.display(),
        rmount_processes_for(mnt)
    );
    err
}

/// `rmount ARGS... URL MNT` with the given environment.
fn rmount(args: &[&str], url: &str, mnt: &MountPoint, env: &[(&str, &str)]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.push(url);
    all.push(mnt.arg());
    run_rmount(&all, env, None)
}

/// The key and known_hosts options for an SFTP server.
fn sftp_auth(server: &Server) -> Vec<String> {
    server.mount_args()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const AUTH_WORDS: &[&str] = &["authenticat", "password", "denied", "login"];
const HOST_KEY_WORDS: &[&str] = &["host key", "hostkey", "known_hosts", "known hosts"];
const NOT_FOUND_WORDS: &[&str] = &["no such", "not exist", "not found", "does not exist"];

#[test]
fn wrong_password_is_refused() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new(PREFIX);
    let wrong = "Wr0ng-pw-7731";
    let kh = format!("UserKnownHostsFile={}", server.known_hosts().display());
    let out = rmount(
        &["-o", &kh],
        &server.url_for_user(SFTP_PW_USER),
        &mnt,
        &[("RMOUNT_PASSWORD", wrong)],
    );
    let err = assert_fails(&out, &mnt.dir, &[AUTH_WORDS]);
    assert!(
        !err.contains(wrong),
        "the password must not be echoed: {err}"
    );
}

#[test]
fn wrong_ftp_password_is_refused() {
    let _load = light_load();
    let server = Server::ftp();
    let mnt = MountPoint::new(PREFIX);
    let wrong = "Wr0ng-pw-7732";
    let out = rmount(
        &[],
        &server.remote_url(),
        &mnt,
        &[("RMOUNT_PASSWORD", wrong)],
    );
    let err = assert_fails(&out, &mnt.dir, &[AUTH_WORDS]);
    assert!(
        !err.contains(wrong),
        "the password must not be echoed: {err}"
    );
}

#[test]
fn unknown_host_key_is_refused() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new(PREFIX);
    let empty_kh = mnt.base.join("known_hosts");
    fs::write(&empty_kh, "").unwrap();
    let out = rmount(
        &[
            "-i",
            server.identity().to_str().unwrap(),
            "-o",
            &format!("UserKnownHostsFile={}", empty_kh.display()),
        ],
        &server.remote_url(),
        &mnt,
        &[],
    );
    assert_fails(
        &out,
        &mnt.dir,
        &[
            HOST_KEY_WORDS,
            &[
                "unknown",
                "not known",
                "not found",
                "no entry",
                "not in",
                "unverified",
            ],
        ],
    );
    assert_eq!(
        fs::read_to_string(&empty_kh).unwrap(),
        "",
        "known_hosts must not be changed without accept-new"
    );
}

#[test]
fn changed_host_key_is_refused() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new(PREFIX);
    let other = ssh_keygen_ed25519(&mnt.base.join("other_host_key"));
    assert_ne!(other, server.host_public_key_line());
    let kh = mnt.base.join("known_hosts");
    fs::write(&kh, format!("[127.0.0.1]:{} {other}\n", server.port)).unwrap();
    let out = rmount(
        &[
            "-i",
            server.identity().to_str().unwrap(),
            "-o",
            &format!("UserKnownHostsFile={}", kh.display()),
        ],
        &server.remote_url(),
        &mnt,
        &[],
    );
    assert_fails(
        &out,
        &mnt.dir,
        &[
            HOST_KEY_WORDS,
            &[
                "changed",
                "mismatch",
                "does not match",
                "doesn't match",
                "differ",
            ],
        ],
    );
}

#[test]
fn unreachable_host_is_reported() {
    let _load = light_load();
    let port = free_port(); // nobody listens there
    let mnt = MountPoint::new(PREFIX);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    ssh_keygen_ed25519(&key);
    let url = format!("sftp://{TEST_USER}@127.0.0.1:{port}/tmp");
    let out = rmount(&["-i", key.to_str().unwrap()], &url, &mnt, &[]);
    assert_fails(&out, &mnt.dir, &[&["connect", "refused", "unreachable"]]);
}

#[test]
fn unreachable_ftp_host_is_reported() {
    let _load = light_load();
    let port = free_port();
    let mnt = MountPoint::new(PREFIX);
    let url = format!("ftp://{TEST_USER}@127.0.0.1:{port}/");
    let out = rmount(&[], &url, &mnt, &[("RMOUNT_PASSWORD", TEST_PASSWORD)]);
    assert_fails(&out, &mnt.dir, &[&["connect", "refused", "unreachable"]]);
}

#[test]
fn missing_remote_path_is_reported() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new(PREFIX);
    let auth = sftp_auth(&server);
    let out = rmount(
        &strs(&auth),
        &server.remote_url_for("does-not-exist"),
        &mnt,
        &[],
    );
    assert_fails(&out, &mnt.dir, &[NOT_FOUND_WORDS]);
}

#[test]
fn missing_ftp_remote_path_is_reported() {
    let _load = light_load();
    let server = Server::ftp();
    let mnt = MountPoint::new(PREFIX);
    let out = rmount(
        &[],
        &server.remote_url_for("does-not-exist"),
        &mnt,
        &[("RMOUNT_PASSWORD", TEST_PASSWORD)],
    );
    assert_fails(&out, &mnt.dir, &[NOT_FOUND_WORDS]);
}

#[test]
fn malformed_remote_is_rejected() {
    let _load = light_load();
    let mnt = MountPoint::new(PREFIX);
    let out = rmount(&[], "not a url", &mnt, &[]);
    assert_fails(&out, &mnt.dir, &[&["url", "remote", "invalid", "scheme"]]);
}

#[test]
fn remote_without_host_is_rejected() {
    let _load = light_load();
    let mnt = MountPoint::new(PREFIX);
    let out = rmount(&[], "sftp://", &mnt, &[]);
    assert_fails(
        &out,
        &mnt.dir,
        &[&["host", "url", "remote", "invalid", "empty"]],
    );
}

#[test]
fn missing_mount_point_is_reported() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::named(PREFIX, "no-such-dir");
    let auth = sftp_auth(&server);
    let out = rmount(&strs(&auth), &server.remote_url(), &mnt, &[]);
    assert_fails(
        &out,
        &mnt.dir,
        &[&[
            "mount point",
            "mountpoint",
            "no such",
            "not exist",
            "not found",
        ]],
    );
    assert!(!mnt.dir.exists(), "rmount must not create the mount point");
}

#[test]
fn mount_point_that_is_a_file_is_rejected() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::named(PREFIX, "a-file");
    fs::write(&mnt.dir, b"not a directory").expect("write a file");
    let auth = sftp_auth(&server);
    let out = rmount(&strs(&auth), &server.remote_url(), &mnt, &[]);
    assert_fails(&out, &mnt.dir, &[&["not a directory", "directory"]]);
    assert_eq!(fs::read(&mnt.dir).unwrap(), b"not a directory");
}

#[test]
fn unknown_option_is_rejected() {
    let _load = light_load();
    let server = Server::sftp();
    let mnt = MountPoint::new(PREFIX);
    let mut args = sftp_auth(&server);
    args.extend(["-o".to_string(), "bogus_opt".to_string()]);
    let out = rmount(&strs(&args), &server.remote_url(), &mnt, &[]);
    assert_fails(
        &out,
        &mnt.dir,
        &[
            &["bogus_opt"],
            &["unknown", "unrecognized", "invalid", "unsupported"],
        ],
    );
}
