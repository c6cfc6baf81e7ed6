//! What the server does for the mount: copies made by the server itself
//! (`cp` inside a mount, through copy_file_range and SFTP `copy-data`), and
//! owners shown by name (`-o idmap=names`, `users-groups-by-id`).
//!
//! Copies are checked on the server's own directory, and the bytes that
//! crossed the link are counted by the proxy between the mount and the
//! server: a copy made by the server moves almost none of them.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const MIB: u64 = 1 << 20;

/// Writes a pseudo-random file of `mib` MiB at `export/rel` on the server,
/// owned by the login.
fn put_random_file(server: &Server, rel: &str, mib: u64, seed: u64) {
    let p = server.export_path(rel);
    let mut f = File::create(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    for i in 0..mib {
        f.write_all(&mib_chunk(seed, i)).expect("write server file");
    }
    drop(f);
    server.chown_tree(rel);
}

/// `cp from to`, both paths in the mount; panics with its output on failure.
fn cp(from: &Path, to: &Path) {
    let out = run_cmd(
        Command::new("cp").arg(from).arg(to),
        Duration::from_secs(300),
        None,
    );
    assert!(out.status.success(), "cp failed\n{}", describe_output(&out));
}

/// Copies `src.bin` (`mib` MiB) to `copy.bin` inside a mount of `server`
/// made through a proxy; returns the bytes that crossed the proxy during
/// the copy. Checks that the copy on the server is the source's bytes.
fn copy_through_proxy(server: &Server, mib: u64) -> u64 {
    put_random_file(server, "src.bin", mib, 11);
    let proxy = FaultProxy::for_server(server);
    let mount = mount_via_proxy(server, &proxy, &[]);
    // The mount has looked at its root; the source's stat is part of cp.
    let before = proxy.forwarded();
    cp(&mount.path("src.bin"), &mount.path("copy.bin"));
    let moved = proxy.forwarded() - before;
    let want = sha256_file(&server.export_path("src.bin"));
    assert_eq!(
        sha256_file(&server.export_path("copy.bin")),
        want,
        "the copy on the server has the source's bytes"
    );
    assert_eq!(
        sha256_file(&mount.path("copy.bin")),
        want,
        "and the mount shows them"
    );
    eprintln!("{:?}: a {mib} MiB copy moved {moved} bytes", server.kind);
    moved
}

/// OpenSSH (9.0 and later) copies on the server: of a 64 MiB copy, less
/// than 1 MiB crosses the link.
#[test]
fn cp_inside_an_sftp_mount_copies_on_the_server() {
    let _load = light_load();
    let server = Server::start_kind(ServerKind::OpenSsh);
    let moved = copy_through_proxy(&server, 64);
    assert!(
        moved < MIB,
        "{moved} bytes crossed the link for a server-side copy"
    );
}

/// A server without copy-data (gesftpserver) gets an ordinary copy: the
/// bytes cross the link twice (read and written back), and the copy is
/// whole.
#[test]
fn cp_inside_a_mount_of_a_server_without_copy_data_copies_normally() {
    let _load = light_load();
    let server = Server::start_kind(ServerKind::GeSftp);
    let moved = copy_through_proxy(&server, 16);
    assert!(
        moved > 2 * 16 * MIB,
        "only {moved} bytes crossed the link for an ordinary copy"
    );
}

/// FTP has no copy on the server: `cp` copies through the mount, whole.
#[test]
fn cp_inside_an_ftp_mount_copies_normally() {
    let _load = light_load();
    let server = Server::start_kind(ServerKind::Vsftpd);
    put_random_file(&server, "src.bin", 16, 12);
    let mount = Mount::new(&server, &[]);
    cp(&mount.path("src.bin"), &mount.path("copy.bin"));
    assert_eq!(
        sha256_file(&server.export_path("copy.bin")),
        sha256_file(&server.export_path("src.bin")),
        "the copy on the server has the source's bytes"
    );
}
