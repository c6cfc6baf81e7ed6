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

/// A copy made on the server sees what the mount was told to write and
/// has not sent yet: the source is still open for writing (its bytes under
/// a temporary name on the server, the last of them not sent), and the
/// copy replaces an existing file.
#[test]
fn cp_of_a_file_still_being_written_copies_what_was_written() {
    let _load = light_load();
    let server = Server::start_kind(ServerKind::OpenSsh);
    server.put_file("copy.bin", b"an older, shorter file");
    let mount = Mount::new(&server, &[]);
    let data = pseudo_random_bytes(3 * MIB as usize + 12345, 13);
    let mut writer = File::create(mount.path("src.bin")).expect("create in the mount");
    writer.write_all(&data).expect("write");
    cp(&mount.path("src.bin"), &mount.path("copy.bin"));
    assert_eq!(
        sha256_file(&server.export_path("copy.bin")),
        sha256_bytes(&data),
        "the copy has every byte written"
    );
    drop(writer);
    assert_eq!(
        sha256_file(&server.export_path("src.bin")),
        sha256_bytes(&data)
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

// ----- owners by name ----------------------------------------------------------

/// The id of `name` in an account file (`/etc/passwd`, `/etc/group`).
fn id_in(file: &str, name: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {file}"))
}

/// (uid, gid) as a path shows them.
fn owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// Server and client are one machine here, so the server needs account
/// files of its own for names to map to other ids: an OpenSSH server
/// whose login is jailed (`ChrootDirectory`) names ids from the jail's
/// /etc/passwd and /etc/group. There the login's own group is called
/// `staff`, and user 54321 `daemon`, group 54322 `users`; on this machine
/// those names have other ids. With `-o idmap=names` the mount shows the
/// local ids of those names (without it, the server's numbers), and
/// `chgrp staff` gives the file the server's id of `staff`, the one group
/// the ordinary login may give. A chown to another user is the server's
/// to refuse (an ordinary login may not), and it does.
#[test]
fn idmap_names_shows_and_sets_owners_by_name() {
    let _load = light_load();
    let server = Server::start_kind(ServerKind::OpenSshChroot);
    let (login_uid, login_gid) = owner(&server.export);
    let etc = server.export.parent().expect("the jail").join("etc");
    std::fs::create_dir_all(&etc).expect("mkdir jail/etc");
    std::fs::write(
        etc.join("passwd"),
        format!(
            "{TEST_USER}:x:{login_uid}:{login_gid}::/:/bin/sh\ndaemon:x:54321:54322::/:/bin/sh\n"
        ),
    )
    .expect("write the jail's passwd");
    std::fs::write(
        etc.join("group"),
        format!("staff:x:{login_gid}:\nusers:x:54322:\n"),
    )
    .expect("write the jail's group");
    let (local_daemon, local_staff, local_users) = (
        id_in("/etc/passwd", "daemon"),
        id_in("/etc/group", "staff"),
        id_in("/etc/group", "users"),
    );
    assert_ne!(local_staff, login_gid, "the names must map to other ids");
    let file = server.put_file("theirs.txt", b"x");
    std::os::unix::fs::chown(&file, Some(54321), Some(54322)).expect("chown on the server");
    server.put_file("mine.txt", b"x");

    let plain = Mount::new(&server, &[]);
    assert_eq!(
        owner(&plain.path("theirs.txt")),
        (54321, 54322),
        "the server's ids"
    );
    assert_eq!(owner(&plain.path("mine.txt")), (login_uid, login_gid));
    drop(plain);

    let mount = Mount::new(&server, &["-o", "idmap=names"]);
    let said = stderr_text(&mount.output);
    assert!(!said.contains("idmap"), "no warning: {said}");
    assert_eq!(
        owner(&mount.path("theirs.txt")),
        (local_daemon, local_users),
        "daemon:users by name"
    );
    assert_eq!(
        owner(&mount.path("mine.txt")),
        (login_uid, local_staff),
        "the login's own group is staff there"
    );
    let out = run_cmd(
        Command::new("chgrp")
            .arg("staff")
            .arg(mount.path("theirs.txt")),
        Duration::from_secs(60),
        None,
    );
    // theirs.txt belongs to daemon there: the login may not change it.
    assert!(!out.status.success(), "chgrp of another's file must fail");
    let out = run_cmd(
        Command::new("chgrp")
            .args(["users"])
            .arg(mount.path("mine.txt")),
        Duration::from_secs(60),
        None,
    );
    assert!(
        !out.status.success(),
        "the login is not in the server's users"
    );
    std::os::unix::fs::chown(server.export_path("mine.txt"), None, Some(54322))
        .expect("chgrp on the server");
    let out = run_cmd(
        Command::new("chgrp")
            .arg("staff")
            .arg(mount.path("mine.txt")),
        Duration::from_secs(60),
        None,
    );
    assert!(
        out.status.success(),
        "chgrp staff\n{}",
        describe_output(&out)
    );
    assert_eq!(
        owner(&server.export_path("mine.txt")).1,
        login_gid,
        "the server's id of staff"
    );
    assert_eq!(owner(&mount.path("mine.txt")).1, local_staff);
    let out = run_cmd(
        Command::new("chown")
            .arg("daemon")
            .arg(mount.path("mine.txt")),
        Duration::from_secs(60),
        None,
    );
    assert!(
        !out.status.success(),
        "an ordinary login gives no file away"
    );
    assert_eq!(owner(&server.export_path("mine.txt")).0, login_uid);
}

/// A server without users-groups-by-id (gesftpserver), or FTP: the mount
/// still works, shows the server's ids, and says why once.
#[test]
fn idmap_names_without_the_extension_shows_the_servers_ids() {
    let _load = light_load();
    for kind in [ServerKind::GeSftp, ServerKind::Vsftpd] {
        let server = Server::start_kind(kind);
        server.put_file("f", b"x");
        let mount = Mount::new(&server, &["-o", "idmap=names"]);
        let said = stderr_text(&mount.output);
        assert_eq!(
            said.matches("idmap=names").count(),
            1,
            "{kind:?}: one warning at mount time: {said}"
        );
        let shown = owner(&mount.path("f"));
        let plain = Mount::new(&server, &[]);
        assert_eq!(
            shown,
            owner(&plain.path("f")),
            "{kind:?}: as without the option"
        );
    }
}
