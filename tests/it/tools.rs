//! Real tools (cp, tar, git, rsync, vim, sh, truncate, chmod, touch, ln, df)
//! working in a real rmount mount; every test checks the result in the
//! server's own directory too.
//!
//! Run on every server of the matrix like tests/it/fs_ops.rs (`on_every_server!`),
//! with the tools run as the ordinary local account that logs in
//! ([`TEST_USER`]), as users work. Where a server cannot do something
//! (symlinks over FTP, so no Python venv) the test asserts what happens.
//! Run: `cargo test --test it -- tools:: --test-threads=2`.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::fixture::*;
use crate::support::*;

on_every_server! {
    cp_a_round_trip,
    tar_extract,
    git_workflow,
    git_clone_into_mount,
    rsync_archive,
    unzip_archive,
    python_venv,
    sqlite_transaction,
    make_c_project,
    editor_style_save,
    vim_edit_and_save,
    shell_append_and_redirect,
    truncate_command,
    chmod_command,
    touch_with_date,
    ln_s,
    df_shows_server_figures,
}

const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs a tool; panics with its output unless it succeeds; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run_cmd(cmd, TOOL_TIMEOUT, None);
    assert!(
        out.status.success(),
        "{what} failed\n{}",
        describe_output(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    run_cmd(cmd, TOOL_TIMEOUT, None)
}

/// A tool run as the ordinary local user [`TEST_USER`], the same account
/// that logs in to the servers: a user who mounts their own account and
/// works as themselves. (Root, who must run the tests here, would make
/// tar and rsync assume they may write into read-only directories, and cp
/// -a insist on giving files to root.)
fn cmd(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        TEST_USER,
        "--regid",
        TEST_USER,
        "--init-groups",
        "--",
    ])
    .arg(program)
    .env("HOME", format!("/home/{TEST_USER}"));
    c
}

/// A command run as root, the test process itself (set-up, not the tools
/// under test).
fn as_root(program: &str) -> Command {
    Command::new(program)
}

/// A fixture whose mount the tools' user may use (`allow_other`: the test
/// process mounts as root). FTP cannot tell owners, so its files appear to
/// belong to the mounting user: here root, not the tools' user, who gets
/// that by default by mounting as themselves, so `uid=`/`gid=` say it.
fn tool_fixture(p: ServerKind, name: &str) -> Fixture {
    if p.is_ftp() {
        let (uid, gid) = test_user_ids();
        let owner = format!("allow_other,uid={uid},gid={gid}");
        Fixture::new(p, name, &["-o", &owner])
    } else {
        Fixture::new(p, name, &["-o", "allow_other"])
    }
}

/// The uid and gid of [`TEST_USER`].
fn test_user_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = run_cmd(as_root("id").arg(flag).arg(TEST_USER), TOOL_TIMEOUT, None);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Whole-second mtime of `p` from `date -d SPEC` in the local time zone, as touch reads it.
fn date_secs(spec: &str) -> i64 {
    ok(cmd("date").args(["-d", spec, "+%s"]))
        .trim()
        .parse()
        .unwrap()
}

/// A small source tree with files of several sizes, subdirectories, modes
/// 0600..0755, (optionally) symlinks, and whole-second mtimes (both
/// protocols keep whole seconds), directories' mtimes set last.
fn make_tree(root: &Path, with_symlinks: bool) {
    let files: &[(&str, usize, u32)] = &[
        ("README", 300, 0o644),
        ("empty", 0, 0o644),
        ("bin/run.sh", 120, 0o755),
        ("secret.key", 64, 0o600),
        ("data/big.bin", 3 << 20, 0o640),
        ("data/ro.txt", 10, 0o444),
        ("data/owner-only-ro.txt", 20, 0o400),
        ("readonly/inside.txt", 30, 0o644),
        ("private/note.txt", 40, 0o600),
        ("src/a/b/c.rs", 5000, 0o644),
        ("src/a/d.rs", 70_000, 0o644),
        ("name with spaces.txt", 12, 0o644),
    ];
    for (i, (rel, len, m)) in files.iter().enumerate() {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, pseudo_random_bytes(*len, 40 + i as u64)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*m)).unwrap();
        set_times(
            &p,
            1_500_000_000 + i as i64,
            1_600_000_000 + i as i64 * 3600,
        );
    }
    fs::create_dir_all(root.join("emptydir")).unwrap();
    for (dir, m) in [("emptydir", 0o700), ("private", 0o700), ("readonly", 0o555)] {
        fs::set_permissions(root.join(dir), fs::Permissions::from_mode(m)).unwrap();
    }
    if with_symlinks {
        symlink("README", root.join("link-to-readme")).unwrap();
        symlink("../../README", root.join("src/a/up")).unwrap();
    }
    for (i, d) in [
        "src/a/b", "src/a", "src", "data", "bin", "emptydir", "private", "readonly",
    ]
    .iter()
    .enumerate()
    {
        set_times(&root.join(d), 1_400_000_000, 1_400_000_000 + i as i64 * 60);
    }
}

/// Sets a local file's atime and mtime (whole seconds).
fn set_times(p: &Path, atime: i64, mtime: i64) {
    set_server_times(p, atime, mtime);
}

/// What a tree comparison leaves out on `p`: directory times where the
/// server cannot set them (the mount shows them until its cache expires).
fn unkept(p: ServerKind) -> &'static [char] {
    if p.dir_times() {
        &[]
    } else {
        &['d']
    }
}

/// A local scratch directory that belongs to the tools' user; call
/// [`give_to_user`] on trees the test process (root) builds in it.
fn local_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("rmount-test-local-")
        .tempdir()
        .unwrap();
    give_to_user(dir.path());
    dir
}

/// Hands a local tree to the tools' user, as a user's own files are.
fn give_to_user(root: &Path) {
    let out = run_cmd(
        as_root("chown")
            .args(["-R", "--no-dereference"])
            .arg(format!("{TEST_USER}:{TEST_USER}"))
            .arg(root),
        TOOL_TIMEOUT,
        None,
    );
    assert!(
        out.status.success(),
        "chown failed\n{}",
        describe_output(&out)
    );
}

fn diff_r(a: &Path, b: &Path) {
    ok(cmd("diff").arg("-r").arg("--no-dereference").arg(a).arg(b));
}

// `cp -a` into the mount and back out keeps bytes, modes, mtimes and
// symlinks (SFTP), with read-only files and read-only or private directories.
fn cp_a_round_trip(p: ServerKind) {
    let fx = tool_fixture(p, "cpa");
    let local = local_dir();
    let src = local.path().join("tree");
    make_tree(&src, p.symlinks());
    give_to_user(&src);
    ok(cmd("cp").arg("-a").arg(&src).arg(fx.m("")));
    let strip = unkept(p);
    let want = without_mtimes(&tree(&src), strip);
    assert_same_tree(
        &want,
        &without_mtimes(&tree(&fx.s("tree")), strip),
        "server copy",
    );
    diff_r(&src, &fx.s("tree"));
    assert_same_tree(
        &want,
        &without_mtimes(&tree(&fx.m("tree")), strip),
        "seen through the mount",
    );

    let back = local.path().join("back");
    ok(cmd("cp").arg("-a").arg(fx.m("tree")).arg(&back));
    diff_r(&src, &back);
    assert_same_tree(
        &want,
        &without_mtimes(&tree(&back), strip),
        "copied back out",
    );
    assert!(
        private_leftovers(&fx.s("")).is_empty(),
        "no .rmount-* leftovers"
    );
}

// `tar x` of a source tree into the mount reproduces it exactly.
fn tar_extract(p: ServerKind) {
    let fx = tool_fixture(p, "tar");
    let local = local_dir();
    let src = local.path().join("proj");
    make_tree(&src, p.symlinks());
    for i in 0..150 {
        let f = src.join(format!("src/gen/m{:03}/f{i}.c", i % 10));
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(
            &f,
            format!("int f{i}(void) {{ return {i}; }}\n").repeat(i + 1),
        )
        .unwrap();
        set_times(&f, 1_600_000_000, 1_600_000_000 + i as i64);
    }
    for i in 0..10 {
        set_times(
            &src.join(format!("src/gen/m{i:03}")),
            1_600_000_000,
            1_600_000_000,
        );
    }
    set_times(&src.join("src/gen"), 1_600_000_000, 1_600_000_000);
    set_times(&src.join("src"), 1_600_000_000, 1_600_000_000);
    give_to_user(&src);
    let archive = local.path().join("proj.tar");
    ok(cmd("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(local.path())
        .arg("proj"));

    ok(cmd("tar").arg("-xf").arg(&archive).arg("-C").arg(fx.m("")));
    let strip = unkept(p);
    let want = without_mtimes(&tree(&src), strip);
    assert_same_tree(
        &want,
        &without_mtimes(&tree(&fx.s("proj")), strip),
        "server tree after tar x",
    );
    diff_r(&src, &fx.s("proj"));
    diff_r(&src, &fx.m("proj"));
    let count = ok(cmd("find").arg(fx.m("proj")).args(["-type", "f"]))
        .lines()
        .count();
    assert_eq!(
        count,
        want.values().filter(|n| n.kind == 'f').count(),
        "find through the mount"
    );
}

/// A global git configuration that trusts every repository: git refuses
/// a repository whose files another user owns, and which owner a mount
/// shows depends on the server and the options, not on what git tests.
fn git_config() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("rmount-test-gitconfig-{}", std::process::id()));
        fs::write(&p, "[safe]\n\tdirectory = *\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    })
    .clone()
}

fn git(dir: &Path) -> Command {
    let mut c = cmd("git");
    c.arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=rmount test",
            "-c",
            "user.email=test@rmount.invalid",
        ])
        .args([
            "-c",
            "safe.directory=*",
            "-c",
            "gc.auto=0",
            "-c",
            "init.defaultBranch=main",
        ])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", git_config())
        .env("HOME", "/nonexistent");
    c
}

// git init/add/commit/status/log/fsck work inside the mount; the server repo is valid.
fn git_workflow(p: ServerKind) {
    let fx = tool_fixture(p, "git");
    let repo = fx.m("repo");
    ok(git(&fx.m("")).args(["init", "-q", "repo"]));
    for i in 0..20 {
        let f = repo.join(format!("src/mod{}/file{i}.txt", i % 4));
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, format!("line {i}\n").repeat(50 + i)).unwrap();
    }
    fs::write(repo.join("README.md"), "# test\n").unwrap();
    ok(git(&repo).args(["add", "-A"]));
    ok(git(&repo).args(["commit", "-q", "-m", "first"]));
    assert_eq!(
        ok(git(&repo).args(["status", "--porcelain"])),
        "",
        "clean after commit"
    );

    fs::write(repo.join("README.md"), "# test\n\nmore\n").unwrap();
    fs::remove_file(repo.join("src/mod0/file0.txt")).unwrap();
    fs::write(repo.join("new.txt"), "new\n").unwrap();
    ok(git(&repo).args(["add", "-A"]));
    ok(git(&repo).args(["commit", "-q", "-m", "second"]));
    assert_eq!(
        ok(git(&repo).args(["status", "--porcelain"])),
        "",
        "clean after second commit"
    );
    let log = ok(git(&repo).args(["log", "--oneline"]));
    assert_eq!(log.lines().count(), 2, "log: {log}");
    ok(git(&repo).args(["fsck", "--full", "--strict"]));
    ok(git(&repo).args(["gc", "-q"]));
    ok(git(&repo).args(["fsck", "--full", "--strict"]));
    assert_eq!(
        ok(git(&repo).args(["log", "--oneline"])),
        log,
        "log after gc"
    );

    // The server's copy is a valid repository with the same history.
    let srv = fx.s("repo");
    assert!(srv.join(".git/HEAD").is_file());
    assert_eq!(
        ok(git(&srv).args(["log", "--oneline"])),
        log,
        "history on the server"
    );
    ok(git(&srv).args(["fsck", "--full"]));
    assert_eq!(
        ok(git(&srv).args(["status", "--porcelain"])),
        "",
        "server work tree matches HEAD"
    );

    let local = local_dir();
    let clone = local.path().join("clone");
    ok(cmd("git")
        .arg("clone")
        .arg("-q")
        .arg(&repo)
        .arg(&clone)
        .env("HOME", "/nonexistent"));
    ok(cmd("diff")
        .args(["-r", "--exclude=.git"])
        .arg(&clone)
        .arg(&srv));
    assert!(private_leftovers(&srv).is_empty(), "no .rmount-* leftovers");
}

// `git clone` of a local repository into the mount, and back out of it:
// the objects are byte-identical and `git fsck` passes on every copy.
fn git_clone_into_mount(p: ServerKind) {
    let fx = tool_fixture(p, "gitclone");
    let local = local_dir();
    let origin = local.path().join("origin");
    ok(git(local.path()).args(["init", "-q", "origin"]));
    for i in 0..30 {
        let f = origin.join(format!("dir{}/file{i}.txt", i % 5));
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, pseudo_random_bytes(2000 + i * 300, i as u64)).unwrap();
    }
    give_to_user(&origin);
    ok(git(&origin).args(["add", "-A"]));
    ok(git(&origin).args(["commit", "-q", "-m", "one"]));
    fs::write(origin.join("dir0/file0.txt"), "changed\n").unwrap();
    ok(git(&origin).args(["commit", "-q", "-a", "-m", "two"]));
    let head = ok(git(&origin).args(["rev-parse", "HEAD"]));

    // --no-local: objects go through git's pack transfer and index-pack,
    // which writes read-only pack files and reads them back.
    ok(git(local.path())
        .args(["clone", "-q", "--no-local"])
        .arg(&origin)
        .arg(fx.m("clone")));
    let clone = fx.m("clone");
    ok(git(&clone).args(["fsck", "--full", "--strict"]));
    assert_eq!(ok(git(&clone).args(["rev-parse", "HEAD"])), head);
    assert_eq!(ok(git(&clone).args(["status", "--porcelain"])), "");
    ok(git(&fx.s("clone")).args(["fsck", "--full", "--strict"]));
    diff_r_excluding_git(&origin, &fx.s("clone"));

    let out = local.path().join("out");
    ok(git(local.path())
        .args(["clone", "-q", "--no-local"])
        .arg(&clone)
        .arg(&out));
    ok(git(&out).args(["fsck", "--full", "--strict"]));
    assert_eq!(ok(git(&out).args(["rev-parse", "HEAD"])), head);
    diff_r_excluding_git(&origin, &out);
    assert!(
        private_leftovers(&fx.s("")).is_empty(),
        "no .rmount-* leftovers"
    );
}

fn diff_r_excluding_git(a: &Path, b: &Path) {
    ok(cmd("diff").args(["-r", "--exclude=.git"]).arg(a).arg(b));
}

// `rsync -a` into the mount keeps modes and mtimes; a second run has nothing to do.
fn rsync_archive(p: ServerKind) {
    let fx = tool_fixture(p, "rsync");
    let local = local_dir();
    let src = local.path().join("src");
    make_tree(&src, p.symlinks());
    give_to_user(&src);
    let rsync = |extra: &[&str], from: &Path, to: &Path| {
        let mut c = cmd("rsync");
        c.arg("-a").args(extra);
        let mut from = from.as_os_str().to_owned();
        from.push("/");
        c.arg(from).arg(to);
        ok(&mut c)
    };
    let strip = unkept(p);
    rsync(&[], &src, &fx.m("dst"));
    let want = without_mtimes(&tree(&src), strip);
    assert_same_tree(
        &want,
        &without_mtimes(&tree(&fx.s("dst")), strip),
        "server tree after rsync -a",
    );
    diff_r(&src, &fx.s("dst"));

    let again = rsync(&["-i"], &src, &fx.m("dst"));
    assert!(
        again.trim().is_empty(),
        "a second rsync -ai found differences:\n{again}"
    );

    let back = local.path().join("back");
    rsync(&[], &fx.m("dst"), &back);
    assert_same_tree(
        &want,
        &without_mtimes(&tree(&back), strip),
        "rsync back out",
    );
    wait_until("no .rmount-* leftovers", Duration::from_secs(10), || {
        private_leftovers(&fx.s("")).is_empty()
    });
}

// `unzip` of an ordinary archive (read-only files, old times) leaves every
// file with its bytes and mode on the server.
fn unzip_archive(p: ServerKind) {
    let fx = tool_fixture(p, "unzip");
    let local = local_dir();
    let src = local.path().join("z");
    make_tree(&src, false);
    give_to_user(&src);
    let archive = local.path().join("z.zip");
    ok(cmd("zip")
        .args(["-q", "-r", "-X"])
        .arg(&archive)
        .arg("z")
        .current_dir(local.path()));
    ok(cmd("unzip").arg("-q").arg(&archive).arg("-d").arg(fx.m("")));
    diff_r(&src, &fx.s("z"));
    for (rel, want) in [
        ("README", 0o644),
        ("data/ro.txt", 0o444),
        ("data/owner-only-ro.txt", 0o400),
        ("bin/run.sh", 0o755),
    ] {
        let md = fs::metadata(fx.s(&format!("z/{rel}"))).unwrap();
        assert_eq!(
            md.permissions().mode() & 0o7777,
            want,
            "server mode of {rel}"
        );
        let local = fs::metadata(src.join(rel)).unwrap();
        assert_eq!(md.len(), local.len(), "server size of {rel}");
        assert_eq!(md.mtime(), local.mtime(), "server mtime of {rel}");
    }
}

// A Python virtual environment made on the mount runs its interpreter.
// venv always makes one symlink (lib64 -> lib), which FTP cannot: there the
// documented failure is asserted (EPERM on that link).
fn python_venv(p: ServerKind) {
    let fx = tool_fixture(p, "venv");
    // Debian's interpreter: the user's own, as on any machine.
    let mut venv = cmd("/usr/bin/python3");
    venv.args(["-m", "venv", "--without-pip"]).arg(fx.m("env"));
    if !p.symlinks() {
        let out = run(venv.arg("--copies"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("Operation not permitted")
                && err.contains("lib64"),
            "venv on FTP should fail on its lib64 symlink\n{}",
            describe_output(&out)
        );
        return;
    }
    ok(&mut venv);
    fs::write(fx.m("hello.py"), "import sys\nprint(sys.prefix)\n").unwrap();
    let out = ok(cmd(fx.m("env/bin/python").to_str().unwrap()).arg(fx.m("hello.py")));
    assert_eq!(
        out.trim(),
        fx.m("env").to_str().unwrap(),
        "the venv's prefix"
    );
    assert!(fx.s("env/pyvenv.cfg").is_file(), "pyvenv.cfg on the server");
}

// A SQLite database on the mount takes 500 inserts in one transaction and
// is intact after reopening, also as the server sees it.
fn sqlite_transaction(p: ServerKind) {
    let fx = tool_fixture(p, "sqlite");
    let mut sql = String::from("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\nBEGIN;\n");
    for i in 0..500 {
        sql.push_str(&format!(
            "INSERT INTO t(v) VALUES('row {i} {}');\n",
            "x".repeat(i % 50)
        ));
    }
    sql.push_str("COMMIT;\n");
    let db = fx.m("db.sqlite");
    let out = run_cmd(cmd("sqlite3").arg(&db), TOOL_TIMEOUT, Some(sql.as_bytes()));
    assert!(
        out.status.success(),
        "sqlite3 failed\n{}",
        describe_output(&out)
    );
    let check = |db: &Path| {
        ok(cmd("sqlite3")
            .arg(db)
            .arg("PRAGMA integrity_check; SELECT count(*), sum(length(v)) FROM t;"))
    };
    let want = "ok\n500|";
    assert!(
        check(&db).starts_with(want),
        "through the mount: {}",
        check(&db)
    );
    assert!(check(&fx.s("db.sqlite")).starts_with(want), "on the server");
    assert_eq!(
        check(&db),
        check(&fx.s("db.sqlite")),
        "same rows on both sides"
    );
}

// A tiny C project builds with `make` on the mount, and the program it
// links runs at once, through the mount and on the server itself (no
// handle left open for writing there: ETXTBSY).
fn make_c_project(p: ServerKind) {
    let fx = tool_fixture(p, "make");
    let dir = fx.m("proj");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("util.c"), "int twice(int x) { return 2 * x; }\n").unwrap();
    fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\nint twice(int);\nint main(void) { printf(\"%d\\n\", twice(21)); return 0; }\n",
    )
    .unwrap();
    fs::write(
        dir.join("Makefile"),
        "hello: main.o util.o\n\tcc -o $@ main.o util.o\n%.o: %.c\n\tcc -c -o $@ $<\n",
    )
    .unwrap();
    ok(cmd("make").arg("-s").arg("-C").arg(&dir));
    let on_server = fx.s("proj/hello");
    assert_eq!(
        ok(&mut cmd(on_server.to_str().unwrap())).trim(),
        "42",
        "run on the server"
    );
    assert_eq!(
        ok(&mut cmd(dir.join("hello").to_str().unwrap())).trim(),
        "42",
        "run through the mount"
    );
    assert_eq!(mode(&on_server) & 0o111, 0o111, "executable on the server");
    // Nothing to do the second time: the times are right.
    assert_eq!(ok(cmd("make").arg("-q").arg("-C").arg(&dir)), "");
}

// Editor-style save (write a swap file, fsync, rename over) replaces the target; nothing left over.
fn editor_style_save(p: ServerKind) {
    let fx = tool_fixture(p, "editor");
    fx.put("doc.txt", b"old text\n");
    fs::set_permissions(fx.s("doc.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    let swp = fx.m(".doc.txt.swp");
    {
        use std::io::Write;
        let mut f = fs::File::create(&swp).unwrap();
        f.write_all(b"new text\n").unwrap();
        f.sync_all().unwrap();
        fs::set_permissions(&swp, fs::Permissions::from_mode(0o640)).unwrap();
    }
    fs::rename(&swp, fx.m("doc.txt")).unwrap();
    assert_eq!(fs::read(fx.s("doc.txt")).unwrap(), b"new text\n");
    assert_eq!(fs::read(fx.m("doc.txt")).unwrap(), b"new text\n");
    assert_eq!(mode(&fx.s("doc.txt")), 0o640);
    wait_until_only(&fx, "doc.txt");
}

/// Waits until `ls -A` of the fixture's server directory shows `name`
/// alone (the mount's live marker aside): the save left nothing behind.
fn wait_until_only(fx: &Fixture, name: &str) {
    wait_until(
        &format!("only {name} on the server (ls -A)"),
        Duration::from_secs(10),
        || {
            ok(cmd("ls")
                .args(["-A", "--ignore=.rmount-live-*"])
                .arg(fx.s("")))
                == format!("{name}\n")
        },
    );
}

// vim edits and saves a file in the mount (backup, swap and 4913 probe files come and go).
fn vim_edit_and_save(p: ServerKind) {
    let fx = tool_fixture(p, "vim");
    fx.put("notes.txt", b"alpha\nbeta\n");
    let out = run(cmd("vim")
        .args([
            "-Nu",
            "NONE",
            "-i",
            "NONE",
            "-es",
            "-c",
            "%s/beta/gamma/",
            "-c",
            "wq",
        ])
        .arg(fx.m("notes.txt"))
        .env("HOME", "/nonexistent"));
    assert!(out.status.success(), "vim\n{}", describe_output(&out));
    assert_eq!(
        fs::read(fx.s("notes.txt")).unwrap(),
        b"alpha\ngamma\n",
        "server content"
    );
    assert_eq!(
        fs::read(fx.m("notes.txt")).unwrap(),
        b"alpha\ngamma\n",
        "mount content"
    );
    wait_until_only(&fx, "notes.txt");
}

// `>>` from a shell appends; `>` truncates and rewrites.
fn shell_append_and_redirect(p: ServerKind) {
    let fx = tool_fixture(p, "shell");
    fx.put("log.txt", b"zero\n");
    ok(cmd("sh")
        .args([
            "-c",
            "echo one >> log.txt && echo two >> log.txt && echo fresh > new.txt",
        ])
        .current_dir(fx.m("")));
    assert_eq!(fs::read(fx.s("log.txt")).unwrap(), b"zero\none\ntwo\n");
    assert_eq!(fs::read(fx.s("new.txt")).unwrap(), b"fresh\n");
    ok(cmd("sh")
        .args(["-c", "echo over > log.txt; cat log.txt new.txt > both.txt"])
        .current_dir(fx.m("")));
    assert_eq!(fs::read(fx.s("log.txt")).unwrap(), b"over\n");
    assert_eq!(fs::read(fx.s("both.txt")).unwrap(), b"over\nfresh\n");
}

// `truncate -s` shrinks, grows (zero-filled) and creates files.
fn truncate_command(p: ServerKind) {
    let fx = tool_fixture(p, "truncate");
    let data = pseudo_random_bytes(100_000, 9);
    fx.put("t.bin", &data);
    ok(cmd("truncate").args(["-s", "10"]).arg(fx.m("t.bin")));
    assert_eq!(fs::read(fx.s("t.bin")).unwrap(), &data[..10]);
    ok(cmd("truncate").args(["-s", "1M"]).arg(fx.m("t.bin")));
    let got = fs::read(fx.s("t.bin")).unwrap();
    assert_eq!(got.len(), 1 << 20);
    assert!(
        got[..10] == data[..10] && got[10..].iter().all(|&b| b == 0),
        "grown with zeros"
    );
    ok(cmd("truncate").args(["-s", "5"]).arg(fx.m("fresh")));
    assert_eq!(fs::read(fx.s("fresh")).unwrap(), vec![0u8; 5]);
    ok(cmd("truncate").args(["-s", "0"]).arg(fx.m("t.bin")));
    assert_eq!(fs::metadata(fx.s("t.bin")).unwrap().len(), 0);
}

// `chmod` (octal, symbolic, recursive) sets modes on the server.
fn chmod_command(p: ServerKind) {
    let fx = tool_fixture(p, "chmodcmd");
    fx.put("f", b"x");
    fx.put("d/inner", b"y");
    ok(cmd("chmod").arg("0640").arg(fx.m("f")));
    assert_eq!(mode(&fx.s("f")), 0o640);
    ok(cmd("chmod").arg("u+x,g-r").arg(fx.m("f")));
    assert_eq!(mode(&fx.s("f")), 0o700);
    ok(cmd("chmod").args(["-R", "go-rwx"]).arg(fx.m("d")));
    assert_eq!(mode(&fx.s("d")), 0o700);
    assert_eq!(mode(&fx.s("d/inner")), 0o600);
    assert_eq!(mode(&fx.m("d/inner")), 0o600);
}

// `touch -d` sets the mtime on the server; plain touch creates a file.
fn touch_with_date(p: ServerKind) {
    let fx = tool_fixture(p, "touch");
    fx.put("f", b"x");
    ok(cmd("touch")
        .args(["-d", "2020-01-02 03:04:05"])
        .arg(fx.m("f")));
    let want = date_secs("2020-01-02 03:04:05");
    let md = fs::metadata(fx.s("f")).unwrap();
    assert_eq!(md.mtime(), want, "server mtime");
    assert_eq!(
        fs::metadata(fx.m("f")).unwrap().mtime(),
        want,
        "mount mtime"
    );
    if p == Proto::Sftp {
        assert_eq!(md.atime(), want, "server atime");
    }
    ok(cmd("touch")
        .args(["-m", "-d", "2021-06-07 08:09:10"])
        .arg(fx.m("f")));
    let md = fs::metadata(fx.s("f")).unwrap();
    assert_eq!(md.mtime(), date_secs("2021-06-07 08:09:10"), "touch -m");
    if p == Proto::Sftp {
        assert_eq!(md.atime(), want, "touch -m keeps atime");
    }
    ok(cmd("touch").arg(fx.m("created")));
    let md = fs::metadata(fx.s("created")).unwrap();
    assert_eq!(md.len(), 0);
    let now = date_secs("now");
    assert!(
        (md.mtime() - now).abs() <= 5,
        "new file mtime {} vs now {now}",
        md.mtime()
    );
}

// `ln -s` makes symlinks on the server (SFTP); FTP refuses with EPERM.
fn ln_s(p: ServerKind) {
    let fx = tool_fixture(p, "ln");
    fx.put("target.txt", b"target\n");
    fx.put("other.txt", b"other\n");
    if p.is_ftp() {
        let out = run(cmd("ln").args(["-s", "target.txt"]).arg(fx.m("link")));
        assert!(!out.status.success(), "ln -s succeeded over FTP");
        assert!(
            stderr_text(&out).contains("Operation not permitted"),
            "{}",
            describe_output(&out)
        );
        assert!(fs::symlink_metadata(fx.s("link")).is_err());
        return;
    }
    ok(cmd("ln")
        .args(["-s", "target.txt", "link"])
        .current_dir(fx.m("")));
    assert_eq!(
        fs::read_link(fx.s("link")).unwrap(),
        Path::new("target.txt")
    );
    assert_eq!(ok(cmd("cat").arg(fx.m("link"))), "target\n");
    assert_eq!(ok(cmd("readlink").arg(fx.m("link"))), "target.txt\n");
    ok(cmd("ln")
        .args(["-sfn", "other.txt", "link"])
        .current_dir(fx.m("")));
    assert_eq!(
        fs::read_link(fx.s("link")).unwrap(),
        Path::new("other.txt"),
        "ln -sf replaced it"
    );
    assert_eq!(ok(cmd("cat").arg(fx.m("link"))), "other\n");
    let ls = ok(cmd("ls").arg("-l").arg(fx.m("link")));
    assert!(
        ls.starts_with('l') && ls.trim_end().ends_with("link -> other.txt"),
        "{ls}"
    );
}

// `df` and `stat -f` on the mount show the server filesystem's size (SFTP).
fn df_shows_server_figures(p: ServerKind) {
    let fx = tool_fixture(p, "df");
    let df = |path: &Path| -> (u128, u128) {
        let out = ok(cmd("df").args(["-B1", "--output=size,avail"]).arg(path));
        let line = out
            .lines()
            .nth(1)
            .unwrap_or_else(|| panic!("df output: {out}"));
        let v: Vec<u128> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1])
    };
    let (size, avail) = df(&fx.m(""));
    assert!(
        size > 0 && avail <= size,
        "df on the mount: size {size}, avail {avail}"
    );
    if p.is_ftp() {
        return skip(
            p,
            "exact figures: FTP has no statvfs; df only sanity checked",
        );
    }
    let (ssize, savail) = df(&fx.s(""));
    assert_eq!(size, ssize, "df size: mount vs server");
    assert!(
        avail.abs_diff(savail) < 1 << 30,
        "df avail: {avail} vs {savail}"
    );
    let statf = |path: &Path| -> u128 {
        let out = ok(cmd("stat").args(["-f", "-c", "%b %S"]).arg(path));
        let v: Vec<u128> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
        v[0] * v[1]
    };
    assert_eq!(
        statf(&fx.m("")),
        statf(&fx.s("")),
        "stat -f blocks * fundamental block size"
    );
}
