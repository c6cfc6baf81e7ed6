//! Real tools (cp, tar, git, rsync, vim, sh, truncate, chmod, touch, ln, df)
//! working in a real rmount mount; every test checks the result in the
//! server's own directory too.
//!
//! Parametrised over protocols like tests/fs_ops.rs: `sftp::xxx`, `ftp::xxx`.
//! FTP cannot change owners or make symlinks: where a tool would try
//! (cp -a, tar and rsync as root preserve owners), the FTP variant tells it
//! not to, and says so.
//! Run: `cargo test --test tools -- --test-threads=2`.

#[macro_use]
#[path = "support/fixture.rs"]
mod fixture;
mod support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use fixture::*;
use support::*;

per_protocol! {
    cp_a_round_trip,
    tar_extract,
    git_workflow,
    rsync_archive,
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

fn cmd(program: &str) -> Command {
    Command::new(program)
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
    fs::set_permissions(root.join("emptydir"), fs::Permissions::from_mode(0o700)).unwrap();
    if with_symlinks {
        symlink("README", root.join("link-to-readme")).unwrap();
        symlink("../../README", root.join("src/a/up")).unwrap();
    }
    for (i, d) in ["src/a/b", "src/a", "src", "data", "bin", "emptydir"]
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

fn local_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rmount-test-local-")
        .tempdir()
        .unwrap()
}

fn diff_r(a: &Path, b: &Path) {
    ok(cmd("diff").arg("-r").arg("--no-dereference").arg(a).arg(b));
}

// `cp -a` into the mount and back out keeps bytes, modes, mtimes and symlinks.
fn cp_a_round_trip(p: Proto) {
    let fx = Fixture::new(p, "cpa", &[]);
    let local = local_dir();
    let src = local.path().join("tree");
    make_tree(&src, p == Proto::Sftp);
    let mut cp = cmd("cp");
    // What FTP cannot keep is left out of the comparison.
    let strip: &[char] = if p.is_ftp() {
        skip(
            p,
            "symlinks, owners and times (vsftpd sets no directory times): cp -R --preserve=mode",
        );
        cp.args(["-R", "--preserve=mode"]);
        &['f', 'd']
    } else {
        cp.arg("-a");
        &[]
    };
    ok(cp.arg(&src).arg(fx.m("")));
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
fn tar_extract(p: Proto) {
    let fx = Fixture::new(p, "tar", &[]);
    let local = local_dir();
    let src = local.path().join("proj");
    make_tree(&src, p == Proto::Sftp);
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
    let archive = local.path().join("proj.tar");
    ok(cmd("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(local.path())
        .arg("proj"));

    let mut tar = cmd("tar");
    tar.arg("-xf").arg(&archive).arg("-C").arg(fx.m(""));
    let strip: &[char] = if p.is_ftp() {
        skip(
            p,
            "owners, symlinks and times (vsftpd sets no directory times): tar --no-same-owner -m",
        );
        tar.args(["--no-same-owner", "-m"]);
        &['f', 'd']
    } else {
        &[]
    };
    ok(&mut tar);
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
        .env("HOME", "/nonexistent");
    c
}

// git init/add/commit/status/log/fsck work inside the mount; the server repo is valid.
fn git_workflow(p: Proto) {
    let fx = Fixture::new(p, "git", &[]);
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

// `rsync -a` into the mount keeps modes and mtimes; a second run has nothing to do.
fn rsync_archive(p: Proto) {
    let fx = Fixture::new(p, "rsync", &[]);
    let local = local_dir();
    let src = local.path().join("src");
    make_tree(&src, p == Proto::Sftp);
    let rsync = |extra: &[&str], from: &Path, to: &Path| {
        let mut c = cmd("rsync");
        c.arg("-a").args(extra);
        if p.is_ftp() {
            c.args(["--no-o", "--no-g", "--omit-dir-times"]);
        }
        let mut from = from.as_os_str().to_owned();
        from.push("/");
        c.arg(from).arg(to);
        ok(&mut c)
    };
    let strip: &[char] = if p.is_ftp() {
        skip(
            p,
            "owners, symlinks, dir times: FTP can do none (rsync --no-o --no-g --omit-dir-times)",
        );
        &['d']
    } else {
        &[]
    };
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

// Editor-style save (write a swap file, fsync, rename over) replaces the target; nothing left over.
fn editor_style_save(p: Proto) {
    let fx = Fixture::new(p, "editor", &[]);
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
    wait_until(
        "only doc.txt on the server (ls -A)",
        Duration::from_secs(10),
        || ok(cmd("ls").arg("-A").arg(fx.s(""))) == "doc.txt\n",
    );
}

// vim edits and saves a file in the mount (backup, swap and 4913 probe files come and go).
fn vim_edit_and_save(p: Proto) {
    let fx = Fixture::new(p, "vim", &[]);
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
    wait_until(
        "only notes.txt on the server (ls -A)",
        Duration::from_secs(10),
        || ok(cmd("ls").arg("-A").arg(fx.s(""))) == "notes.txt\n",
    );
}

// `>>` from a shell appends; `>` truncates and rewrites.
fn shell_append_and_redirect(p: Proto) {
    let fx = Fixture::new(p, "shell", &[]);
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
fn truncate_command(p: Proto) {
    let fx = Fixture::new(p, "truncate", &[]);
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
fn chmod_command(p: Proto) {
    let fx = Fixture::new(p, "chmodcmd", &[]);
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
fn touch_with_date(p: Proto) {
    let fx = Fixture::new(p, "touch", &[]);
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
fn ln_s(p: Proto) {
    let fx = Fixture::new(p, "ln", &[]);
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
fn df_shows_server_figures(p: Proto) {
    let fx = Fixture::new(p, "df", &[]);
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
