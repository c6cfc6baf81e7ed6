//! Tests of the whole command line, through [`parse`]: REMOTE forms, flags,
//! -o options and their order, help and errors. Tests of one piece alone
//! (the option table, word wrap, property tests) live with that piece.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use super::help::option_label;
use super::options::OPTIONS;
use super::*;
use crate::config::{HostKeyPolicy, IdMap, RemotePath};

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

fn try_parse(args: &[&str]) -> Result<Parsed, CliError> {
    parse(std::iter::once("rmount").chain(args.iter().copied()))
}

/// Parses `rmount ARGS...`, which must yield a mount.
fn mount(args: &[&str]) -> MountConfig {
    match try_parse(args) {
        Ok(Parsed::Mount(config)) => config,
        other => panic!("{args:?}: expected a mount, got {other:?}"),
    }
}

fn error(args: &[&str]) -> CliError {
    match try_parse(args) {
        Err(err) => err,
        Ok(parsed) => panic!("{args:?}: expected an error, got {parsed:?}"),
    }
}

fn target(remote: &str) -> Target {
    mount(&[remote, "/mnt"]).target
}

/// Parses `rmount REMOTE /mnt -o OPTS`.
fn with_opts(opts: &str) -> MountConfig {
    mount(&["host:", "/mnt", "-o", opts])
}

fn opt_error(opts: &str) -> CliError {
    error(&["host:", "/mnt", "-o", opts])
}

fn abs(p: &str) -> RemotePath {
    RemotePath::Absolute(PathBuf::from(p))
}

fn home_path(p: &str) -> RemotePath {
    RemotePath::Home(PathBuf::from(p))
}

fn msg(err: CliError) -> String {
    err.to_string()
}

// --- REMOTE: sftp:// -------------------------------------------------

#[test]
fn sftp_url_full() {
    let t = target("sftp://alice@example.com:2222/srv/data");
    assert_eq!(t.protocol, Protocol::Sftp);
    assert_eq!(t.host, "example.com");
    assert_eq!(t.port, 2222);
    assert_eq!(t.user.as_deref(), Some("alice"));
    assert_eq!(t.path, abs("/srv/data"));
}

#[test]
fn sftp_url_defaults() {
    let t = target("sftp://example.com");
    assert_eq!(t.port, 22);
    assert_eq!(t.user, None);
    assert_eq!(t.path, home_path(""));
}

#[test]
fn sftp_url_root_is_absolute() {
    assert_eq!(target("sftp://h/").path, abs("/"));
}

#[test]
fn sftp_url_home_forms() {
    assert_eq!(target("sftp://h/~").path, home_path(""));
    assert_eq!(target("sftp://h/~/").path, home_path(""));
    assert_eq!(target("sftp://h/~/dir/x").path, home_path("dir/x"));
    assert_eq!(target("sftp://h/~//dir").path, home_path("dir"));
    // "~user" is not expanded; an escaped "~" is a literal directory.
    assert_eq!(target("sftp://h/~bob/x").path, abs("/~bob/x"));
    assert_eq!(target("sftp://h/%7E/x").path, abs("/~/x"));
}

#[test]
fn scheme_is_case_insensitive() {
    assert_eq!(target("SFTP://h/x").protocol, Protocol::Sftp);
    assert_eq!(target("Ftps://h/x").protocol, Protocol::Ftps);
}

#[test]
fn url_percent_decoding() {
    let t = target("sftp://j%40doe@h/a%20b/c%2Cd");
    assert_eq!(t.user.as_deref(), Some("j@doe"));
    assert_eq!(t.path, abs("/a b/c,d"));
    // Unescaped '@' in the user part: the last '@' ends it.
    assert_eq!(target("sftp://a@b@h/").user.as_deref(), Some("a@b"));
}

#[test]
fn url_non_utf8_path() {
    let t = target("sftp://h/caf%E9/%ff");
    assert_eq!(
        t.path,
        RemotePath::Absolute(PathBuf::from(os(b"/caf\xe9/\xff")))
    );
}

#[test]
fn url_bad_percent_escapes() {
    for remote in [
        "sftp://h/a%zz",
        "sftp://h/a%4",
        "sftp://h/a%",
        "sftp://h/%00",
    ] {
        let err = error(&[remote, "/mnt"]);
        assert!(
            matches!(err, CliError::MalformedRemote { .. }),
            "{remote}: {err}"
        );
    }
    assert!(msg(error(&["sftp://h/a%zz", "/m"])).contains("'%zz'"));
    assert!(msg(error(&["sftp://h/%00", "/m"])).contains("%00"));
}

#[test]
fn url_user_must_be_utf8_and_non_empty() {
    assert!(msg(error(&["sftp://%FF@h/", "/m"])).contains("UTF-8"));
    assert!(msg(error(&["sftp://@h/", "/m"])).contains("empty user"));
}

#[test]
fn url_ipv6() {
    let t = target("sftp://[::1]:2222/x");
    assert_eq!(t.host, "::1");
    assert_eq!(t.port, 2222);
    assert_eq!(t.path, abs("/x"));
    let t = target("sftp://bob@[2001:db8::7]");
    assert_eq!(t.host, "2001:db8::7");
    assert_eq!(t.user.as_deref(), Some("bob"));
    assert_eq!(t.port, 22);
    // RFC 6874 zone, escaped as %25.
    assert_eq!(target("sftp://[fe80::1%25eth0]/").host, "fe80::1%eth0");
}

#[test]
fn url_bad_ipv6() {
    for remote in [
        "sftp://[::1/x",
        "sftp://[nothex]/x",
        "sftp://[]/x",
        "sftp://[::1]x/",
        "sftp://[fe80::1%25]/",
        "sftp://::1/x",
    ] {
        let err = error(&[remote, "/mnt"]);
        assert!(
            matches!(err, CliError::MalformedRemote { .. }),
            "{remote}: {err}"
        );
    }
    assert!(msg(error(&["sftp://::1/x", "/m"])).contains("brackets"));
}

#[test]
fn url_ports() {
    assert_eq!(target("sftp://h:1/").port, 1);
    assert_eq!(target("sftp://h:65535/").port, 65535);
    // An empty port means the default (RFC 3986).
    assert_eq!(target("sftp://h:/x").port, 22);
    for bad in ["0", "65536", "abc", "+22", "-1", "99999999999"] {
        let err = error(&[&format!("sftp://h:{bad}/x"), "/m"]);
        assert_eq!(msg(err), format!("port must be a number 1-65535: '{bad}'"));
    }
}

#[test]
fn url_empty_or_bad_host() {
    for remote in ["sftp://", "sftp:///x", "sftp://u@/x", "sftp://:22/x"] {
        let err = error(&[remote, "/m"]);
        assert!(msg(err).contains("empty host"), "{remote}");
    }
    assert!(msg(error(&["sftp://h%41/x", "/m"])).contains("bad character '%'"));
    assert!(msg(error(&["sftp://-oProxy/x", "/m"])).contains("'-'"));
    assert!(msg(error(&["sftp://a b/x", "/m"])).contains("bad character ' '"));
}

#[test]
fn url_query_and_fragment_rejected() {
    assert!(msg(error(&["sftp://h/a?b", "/m"])).contains("%3F"));
    assert!(msg(error(&["ftp://h/a#b", "/m"])).contains("%23"));
    assert_eq!(target("sftp://h/a%3Fb%23").path, abs("/a?b#"));
}

#[test]
fn unknown_scheme() {
    let err = error(&["http://h/x", "/m"]);
    assert!(matches!(&err, CliError::UnknownScheme(s) if s == "http"));
    assert!(msg(err).contains("'http'"));
    assert!(matches!(
        error(&["ssh://h/x", "/m"]),
        CliError::UnknownScheme(_)
    ));
}

#[test]
fn password_in_url_is_refused_and_not_echoed() {
    for remote in [
        "sftp://bob:hunter2@h/x",
        "ftp://bob:hunter2@h/",
        "ftps://bob:@h",
        // Even when the rest of the URL is broken too.
        "sftp://bob:hunter2@h:badport/x?y",
    ] {
        let err = error(&[remote, "/m"]);
        assert!(matches!(err, CliError::PasswordInUrl), "{remote}");
        let text = msg(err);
        assert!(!text.contains("hunter2"));
        assert!(text.contains("password_stdin") && text.contains("RMOUNT_PASSWORD"));
    }
}

// --- REMOTE: ftp:// and ftps:// ----------------------------------------

#[test]
fn ftp_url_paths_are_relative_to_login_dir() {
    let t = target("ftp://h/dir/x");
    assert_eq!(t.protocol, Protocol::Ftp);
    assert_eq!(t.port, 21);
    assert_eq!(t.path, home_path("dir/x"));
    assert_eq!(target("ftp://h").path, home_path(""));
    assert_eq!(target("ftp://h/").path, home_path(""));
    assert_eq!(target("ftp://h/~/x").path, home_path("~/x"));
}

#[test]
fn ftp_url_absolute_paths() {
    assert_eq!(target("ftp://h//abs").path, abs("/abs"));
    assert_eq!(target("ftp://h/%2Fabs/x").path, abs("/abs/x"));
    assert_eq!(target("ftp://h/%2fabs").path, abs("/abs"));
    assert_eq!(target("ftp://h//").path, abs("/"));
}

#[test]
fn ftps_url() {
    let t = target("ftps://u%20x@[::1]:2121/pub%FF");
    assert_eq!(t.protocol, Protocol::Ftps);
    assert_eq!(t.host, "::1");
    assert_eq!(t.port, 2121);
    assert_eq!(t.user.as_deref(), Some("u x"));
    assert_eq!(t.path, RemotePath::Home(PathBuf::from(os(b"pub\xff"))));
    assert_eq!(target("ftps://h").port, 21);
}

// --- REMOTE: [user@]host:[path] ----------------------------------------

#[test]
fn scp_style_forms() {
    let t = target("alice@example.com:data/x");
    assert_eq!(t.protocol, Protocol::Sftp);
    assert_eq!(t.host, "example.com");
    assert_eq!(t.port, 22);
    assert_eq!(t.user.as_deref(), Some("alice"));
    assert_eq!(t.path, home_path("data/x"));

    let t = target("example.com:");
    assert_eq!(t.user, None);
    assert_eq!(t.path, home_path(""));

    assert_eq!(target("h:/srv").path, abs("/srv"));
    assert_eq!(target("h:~").path, home_path(""));
    assert_eq!(target("h:~/x").path, home_path("x"));
    // The path is literal: no percent-decoding, and ':' or '@' are fine.
    assert_eq!(target("h:a%20b").path, home_path("a%20b"));
    assert_eq!(target("h:/a:b@c").path, abs("/a:b@c"));
    assert_eq!(target("a@b@h:x").user.as_deref(), Some("a@b"));
}

#[test]
fn scp_style_ipv6() {
    let t = target("user@[::1]:path");
    assert_eq!(t.host, "::1");
    assert_eq!(t.user.as_deref(), Some("user"));
    assert_eq!(t.path, home_path("path"));
    assert_eq!(target("[2001:db8::1]:/srv").path, abs("/srv"));
    assert_eq!(target("[fe80::1%eth0]:").host, "fe80::1%eth0");
}

#[test]
fn scp_style_non_utf8_path() {
    let mut remote = b"h:/d\xff".to_vec();
    let config = match parse([os(b"rmount"), os(&remote), os(b"/mnt")]) {
        Ok(Parsed::Mount(config)) => config,
        other => panic!("{other:?}"),
    };
    remote.drain(..2);
    assert_eq!(
        config.target.path,
        RemotePath::Absolute(PathBuf::from(os(&remote)))
    );
}

#[test]
fn scp_style_malformed() {
    for remote in ["example.com", "/local/dir", "dir/h:x", "[::1]", "u@[::1]"] {
        let text = msg(error(&[remote, "/m"]));
        assert!(
            text.contains("expected [user@]host:[path] or a URL"),
            "{remote}: {text}"
        );
    }
    assert!(msg(error(&[":x", "/m"])).contains("empty host"));
    assert!(msg(error(&["@h:x", "/m"])).contains("empty user"));
    assert!(msg(error(&["[nope]:x", "/m"])).contains("bad IPv6"));
    assert!(msg(error(&["[::1]x:y", "/m"])).starts_with("malformed REMOTE '[::1]x:y'"));
}

#[test]
fn malformed_remote_message_names_remote() {
    assert_eq!(
        msg(error(&["nohost", "/m"])),
        "malformed REMOTE 'nohost': expected [user@]host:[path] \
         or a URL such as sftp://host/path"
    );
}

// --- positionals, help, version, clap errors ----------------------------

#[test]
fn mountpoint_and_defaults() {
    let c = mount(&["h:", "/mnt/x"]);
    assert_eq!(c.mountpoint, PathBuf::from("/mnt/x"));
    assert!(!c.foreground && !c.debug && !c.read_only);
    assert_eq!(c.max_conns, MountConfig::DEFAULT_MAX_CONNS);
    assert_eq!(c.timeout, MountConfig::DEFAULT_TIMEOUT);
    assert!(c.identity_files.is_empty());
    assert_eq!(c.host_key_policy, HostKeyPolicy::Yes);
}

#[test]
fn non_utf8_mountpoint() {
    let parsed = parse([os(b"rmount"), os(b"h:"), os(b"/mnt/\xfe")]);
    match parsed {
        Ok(Parsed::Mount(c)) => assert_eq!(c.mountpoint, PathBuf::from(os(b"/mnt/\xfe"))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_mountpoint() {
    assert!(matches!(error(&["h:", ""]), CliError::EmptyMountpoint));
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["-h", "--help"] {
        match try_parse(&[flag]) {
            Ok(Parsed::Exit { text, code }) => {
                assert_eq!(code, 0);
                assert!(text.contains("Usage: rmount [OPTIONS] <REMOTE> <MOUNTPOINT>"));
            }
            other => panic!("{flag}: {other:?}"),
        }
    }
    for flag in ["-V", "--version"] {
        match try_parse(&[flag]) {
            Ok(Parsed::Exit { text, code }) => {
                assert_eq!(code, 0);
                assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
            }
            other => panic!("{flag}: {other:?}"),
        }
    }
}

#[test]
fn long_help_documents_every_option() {
    let Ok(Parsed::Exit { text, .. }) = try_parse(&["--help"]) else {
        panic!("no help");
    };
    for spec in OPTIONS {
        assert!(text.contains(&option_label(spec)), "{}", spec.name);
    }
    for needle in [
        "--foreground",
        "--debug",
        "--port",
        "--identity",
        "sftp://",
        "ftps://",
        "/~/",
        "%2F",
        "RMOUNT_PASSWORD",
        "(default 20)",
        "(default 64)",
        "(default yes)",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
}

#[test]
fn short_help_points_to_long_help() {
    let Ok(Parsed::Exit { text, .. }) = try_parse(&["-h"]) else {
        panic!("no help");
    };
    assert!(text.contains("--help"));
}

#[test]
fn clap_errors_are_one_line() {
    for args in [
        &["--bogus", "h:", "/m"][..],
        &["h:"][..],
        &[][..],
        &["h:", "/m", "extra"][..],
        &["h:", "/m", "-o"][..],
    ] {
        let err = error(args);
        assert!(matches!(err, CliError::Usage(_)), "{args:?}");
        let text = msg(err);
        assert!(!text.contains('\n'), "{text}");
        assert!(!text.starts_with("error:"), "{text}");
        assert!(text.ends_with("(try 'rmount --help')"), "{text}");
    }
    assert!(msg(error(&["h:"])).contains("<MOUNTPOINT>"));
    assert!(msg(error(&["--bogus", "h:", "/m"])).contains("--bogus"));
}

// --- flags -------------------------------------------------------------

#[test]
fn foreground_flag() {
    assert!(mount(&["-f", "h:", "/m"]).foreground);
    assert!(mount(&["h:", "/m", "--foreground"]).foreground);
    assert!(mount(&["-f", "-f", "h:", "/m"]).foreground);
}

#[test]
fn debug_implies_foreground() {
    for args in [
        &["-d", "h:", "/m"][..],
        &["--debug", "h:", "/m"][..],
        &["h:", "/m", "-o", "debug"][..],
    ] {
        let c = mount(args);
        assert!(c.debug && c.foreground, "{args:?}");
    }
    assert!(matches!(
        opt_error("debug=1"),
        CliError::UnexpectedValue(n) if n == "debug"
    ));
}

#[test]
fn port_option_overrides_url() {
    assert_eq!(
        mount(&["-p", "2200", "sftp://h:2222/", "/m"]).target.port,
        2200
    );
    assert_eq!(mount(&["--port", "2200", "h:", "/m"]).target.port, 2200);
    assert_eq!(
        mount(&["sftp://h:2222/", "/m", "-o", "port=7"]).target.port,
        7
    );
    assert_eq!(mount(&["h:", "/m", "-o", "Port=7"]).target.port, 7);
    // The last of -p and -o port wins.
    assert_eq!(
        mount(&["-p", "1", "-o", "port=2", "h:", "/m"]).target.port,
        2
    );
    assert_eq!(
        mount(&["-o", "port=2", "-p", "1", "h:", "/m"]).target.port,
        1
    );
    assert_eq!(mount(&["-p", "1", "-p", "3", "h:", "/m"]).target.port, 3);
}

#[test]
fn bad_ports_in_options() {
    assert_eq!(
        msg(error(&["-p", "abc", "h:", "/m"])),
        "port must be a number 1-65535: 'abc'"
    );
    for bad in ["0", "65536", "", " 22", "2 2"] {
        assert!(
            matches!(opt_error(&format!("port={bad}")), CliError::BadPort(_)),
            "{bad}"
        );
    }
    assert!(matches!(
        opt_error("port"),
        CliError::MissingValue { name, .. } if name == "port"
    ));
}

#[test]
fn identity_files_in_order() {
    let c = mount(&[
        "-i",
        "/k1",
        "h:",
        "-o",
        "IdentityFile=/k2,identityfile=/k3",
        "/m",
        "--identity",
        "/k4",
        "-i/k5",
    ]);
    let want: Vec<PathBuf> = ["/k1", "/k2", "/k3", "/k4", "/k5"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(c.identity_files, want);
}

#[test]
fn identity_file_errors_and_escapes() {
    assert!(matches!(
        error(&["-i", "", "h:", "/m"]),
        CliError::BadValue { name, .. } if name == "IdentityFile"
    ));
    assert!(matches!(
        opt_error("IdentityFile"),
        CliError::MissingValue { .. }
    ));
    let c = with_opts(r"IdentityFile=/a\,b\\c,ro");
    assert_eq!(c.identity_files, vec![PathBuf::from(r"/a,b\c")]);
    assert!(c.read_only);
    // A value may contain '=' after the first one.
    assert_eq!(
        with_opts("IdentityFile=/a=b").identity_files,
        vec![PathBuf::from("/a=b")]
    );
}

#[test]
fn non_utf8_option_path() {
    let args = [
        os(b"rmount"),
        os(b"h:"),
        os(b"/m"),
        os(b"-o"),
        os(b"IdentityFile=/k\xff"),
    ];
    match parse(args) {
        Ok(Parsed::Mount(c)) => {
            assert_eq!(c.identity_files, vec![PathBuf::from(os(b"/k\xff"))])
        }
        other => panic!("{other:?}"),
    }
}

// --- -o options --------------------------------------------------------

#[test]
fn boolean_options() {
    let c = with_opts(
        "ro,allow_other,default_permissions,password_stdin,ftp_active,no_verify_cert,nocto",
    );
    assert!(c.read_only && c.allow_other && c.default_permissions);
    assert!(!c.close_to_open);
    assert!(with_opts("ro").close_to_open, "close-to-open by default");
    assert!(c.password_stdin && c.ftp_active && c.no_verify_cert);
    assert!(!c.foreground && !c.debug);
    for name in [
        "ro",
        "rw",
        "allow_other",
        "default_permissions",
        "password_stdin",
        "ftp_active",
        "ftps_implicit",
        "no_verify_cert",
        "nocto",
    ] {
        let err = opt_error(&format!("{name}=yes"));
        assert_eq!(msg(err), format!("option '{name}' does not take a value"));
    }
}

#[test]
fn ro_and_rw_last_wins() {
    assert!(!with_opts("ro,rw").read_only);
    assert!(mount(&["h:", "/m", "-o", "rw", "-o", "ro"]).read_only);
}

#[test]
fn lowercase_options_are_case_sensitive() {
    assert!(matches!(opt_error("RO"), CliError::UnknownOption(n) if n == "RO"));
    assert!(matches!(
        opt_error("Max_Conns=2"),
        CliError::UnknownOption(_)
    ));
}

#[test]
fn unknown_options() {
    assert_eq!(msg(opt_error("foo")), "unknown option 'foo' in -o");
    assert_eq!(msg(opt_error("ro,foo=1")), "unknown option 'foo' in -o");
    for name in ["reconnect", "password", "noatimes", "IdentityFil"] {
        assert!(matches!(opt_error(name), CliError::UnknownOption(n) if n == name));
    }
}

#[test]
fn empty_option_items_are_skipped() {
    assert!(with_opts("ro,,").read_only);
    assert!(!mount(&["h:", "/m", "-o", ""]).read_only);
}

#[test]
fn strict_host_key_checking() {
    let policy = |v: &str| with_opts(&format!("StrictHostKeyChecking={v}")).host_key_policy;
    assert_eq!(policy("yes"), HostKeyPolicy::Yes);
    assert_eq!(policy("accept-new"), HostKeyPolicy::AcceptNew);
    assert_eq!(policy("no"), HostKeyPolicy::No);
    assert_eq!(policy("NO"), HostKeyPolicy::No);
    assert_eq!(
        with_opts("stricthostkeychecking=Accept-New").host_key_policy,
        HostKeyPolicy::AcceptNew
    );
    // ssh's `ask` refuses an unknown key here (there is no asking).
    assert_eq!(policy("ask"), HostKeyPolicy::Yes);
    assert_eq!(policy("off"), HostKeyPolicy::No);
    assert_eq!(
        msg(opt_error("StrictHostKeyChecking=maybe")),
        "invalid value 'maybe' for StrictHostKeyChecking: expected yes, accept-new, no, ask, off"
    );
    assert!(matches!(
        opt_error("StrictHostKeyChecking"),
        CliError::MissingValue { .. }
    ));
    assert_eq!(
        msg(opt_error("StrictHostKeyChecking")),
        "option 'StrictHostKeyChecking' needs a value \
         (StrictHostKeyChecking=yes|accept-new|no)"
    );
}

#[test]
fn known_hosts_and_cafile() {
    let c = with_opts("UserKnownHostsFile=/kh,cafile=/ca.pem");
    assert_eq!(c.user_known_hosts, Some(PathBuf::from("/kh")));
    assert_eq!(c.cafile, Some(PathBuf::from("/ca.pem")));
    assert!(matches!(
        opt_error("userknownhostsfile="),
        CliError::BadValue { .. }
    ));
    assert!(matches!(opt_error("cafile"), CliError::MissingValue { .. }));
    assert!(matches!(opt_error("CAFILE=/x"), CliError::UnknownOption(_)));
}

#[test]
fn idmap() {
    assert_eq!(with_opts("idmap=user").idmap, IdMap::User);
    assert_eq!(with_opts("idmap=names").idmap, IdMap::Names);
    assert_eq!(with_opts("idmap=user,idmap=none").idmap, IdMap::None);
    assert!(matches!(opt_error("idmap=file"), CliError::BadValue { .. }));
    assert!(matches!(opt_error("idmap=USER"), CliError::BadValue { .. }));
    assert!(matches!(opt_error("idmap"), CliError::MissingValue { .. }));
}

#[test]
fn max_conns() {
    assert_eq!(with_opts("max_conns=1").max_conns, 1);
    assert_eq!(with_opts("max_conns=64").max_conns, 64);
    for bad in ["0", "65", "-1", "x", "", "1.5", "+2"] {
        let err = opt_error(&format!("max_conns={bad}"));
        assert!(msg(err).contains("a whole number from 1 to 64"), "{bad}");
    }
}

#[test]
fn timeout() {
    assert_eq!(with_opts("timeout=5").timeout, Duration::from_secs(5));
    assert_eq!(
        with_opts("timeout=0.25").timeout,
        Duration::from_millis(250)
    );
    assert_eq!(with_opts("timeout=1e3").timeout, Duration::from_secs(1000));
    for bad in [
        "0", "0.0", "-1", "abc", "inf", "NaN", "", "1e-12", "1000001",
    ] {
        let err = opt_error(&format!("timeout={bad}"));
        assert!(
            matches!(&err, CliError::BadValue { name, .. } if name == "timeout"),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        msg(opt_error("timeout=0")),
        "invalid value '0' for timeout: expected seconds, more than 0, at most 1000000"
    );
}

#[test]
fn cache_timeout() {
    assert_eq!(with_opts("cache_timeout=0").cache_timeout, Duration::ZERO);
    assert_eq!(
        with_opts("cache_timeout=1.5").cache_timeout,
        Duration::from_millis(1500)
    );
    for bad in ["-0.5", "x", "inf"] {
        assert!(matches!(
            opt_error(&format!("cache_timeout={bad}")),
            CliError::BadValue { .. }
        ));
    }
}

#[test]
fn cache_size() {
    assert_eq!(with_opts("cache_size=1").cache_size, 1 << 20);
    assert_eq!(with_opts("cache_size=0").cache_size, 0);
    assert_eq!(with_opts("cache_size=1024").cache_size, 1 << 30);
    let too_big = (u64::MAX >> 20) + 1;
    for bad in [
        "-1".to_string(),
        "1.5".into(),
        "x".into(),
        too_big.to_string(),
    ] {
        assert!(matches!(
            opt_error(&format!("cache_size={bad}")),
            CliError::BadValue { .. }
        ));
    }
}

#[test]
fn server_alive() {
    let c = with_opts("ServerAliveInterval=30,serveralivecountmax=5");
    assert_eq!(c.server_alive_interval, Duration::from_secs(30));
    assert_eq!(c.server_alive_count_max, 5);
    assert_eq!(
        with_opts("ServerAliveInterval=0").server_alive_interval,
        Duration::ZERO
    );
    for bad in [
        "ServerAliveInterval=-1",
        "ServerAliveInterval=x",
        "ServerAliveCountMax=0",
        "ServerAliveCountMax=4294967296",
        "ServerAliveCountMax=1.5",
    ] {
        assert!(matches!(opt_error(bad), CliError::BadValue { .. }), "{bad}");
    }
    assert!(matches!(
        opt_error("ServerAliveCountMax"),
        CliError::MissingValue { .. }
    ));
}

#[test]
fn atomic_writes() {
    assert!(!with_opts("atomic_writes=no").atomic_writes);
    assert!(with_opts("atomic_writes=no,atomic_writes=yes").atomic_writes);
    assert!(matches!(
        opt_error("atomic_writes=1"),
        CliError::BadValue { .. }
    ));
    assert!(matches!(
        opt_error("atomic_writes"),
        CliError::MissingValue { .. }
    ));
}

#[test]
fn ftps_implicit() {
    let c = mount(&["ftps://h/", "/m", "-o", "ftps_implicit"]);
    assert!(c.ftps_implicit);
    assert_eq!(c.target.port, 990);
    // An explicit port still wins.
    let c = mount(&["ftps://h:2990/", "/m", "-o", "ftps_implicit"]);
    assert_eq!(c.target.port, 2990);
    for remote in ["ftp://h/", "sftp://h/", "h:"] {
        let err = error(&[remote, "/m", "-o", "ftps_implicit"]);
        assert!(matches!(err, CliError::FtpsImplicitWithoutFtps), "{remote}");
    }
}

#[test]
fn errors_in_later_options_are_reported() {
    assert!(matches!(
        error(&["h:", "/m", "-o", "ro", "-o", "max_conns=0"]),
        CliError::BadValue { .. }
    ));
}

#[test]
fn remote_error_comes_before_option_errors() {
    assert!(matches!(
        error(&["nohost", "/m", "-o", "bogus"]),
        CliError::MalformedRemote { .. }
    ));
}

#[test]
fn usage_uses_fixed_program_name() {
    let parsed = parse(["/some/where/rmount-dev", "--help"]);
    let Ok(Parsed::Exit { text, .. }) = parsed else {
        panic!("{parsed:?}");
    };
    assert!(text.contains("Usage: rmount "), "{text}");
}

// --- mount(8), /etc/fstab and systemd -------------------------------------

/// What mount(8) and mount.fuse3 hand rmount (`/bin/sh -c 'rmount' SRC MNT
/// '-o' OPTS`): the options come after the positionals, mount.fuse3 adds
/// `dev,suid` unless `nodev,nosuid` are there, and a bare `defaults` line
/// arrives as `rw,dev,suid`.
#[test]
fn mount_fuse3_argument_forms() {
    let c = mount(&["sftp://alice@h:2222/srv", "/mnt", "-o", "rw,dev,suid"]);
    assert!(!c.read_only && !c.no_exec);
    assert_eq!(c.ignored_options, ["dev", "suid"]);
    assert_eq!(c.target.port, 2222);

    let c = mount(&["alice@h:srv", "/mnt", "-o", "ro,noexec,nosuid,nodev"]);
    assert!(c.read_only && c.no_exec);
    assert!(c.ignored_options.is_empty(), "{:?}", c.ignored_options);
    assert_eq!(c.target.path, home_path("srv"));
}

#[test]
fn fstab_only_options_are_accepted_and_ignored() {
    let c = with_opts(
        "_netdev,noauto,auto,nofail,user,users,nouser,defaults,\
         x-systemd.automount,x-systemd.idle-timeout=60,x-gvfs-show,comment=a\\,b=c",
    );
    assert_eq!(
        c.ignored_options,
        [
            "_netdev",
            "noauto",
            "auto",
            "nofail",
            "user",
            "users",
            "nouser",
            "defaults",
            "x-systemd.automount",
            "x-systemd.idle-timeout=60",
            "x-gvfs-show",
            "comment=a,b=c",
        ]
    );
    // Nothing else changed.
    let plain = with_opts("");
    assert_eq!(c.read_only, plain.read_only);
    assert_eq!(c.no_exec, plain.no_exec);
    assert_eq!(c.allow_other, plain.allow_other);
    assert_eq!(c.foreground, plain.foreground);
    assert!(plain.ignored_options.is_empty());
}

#[test]
fn ignored_options_do_not_hide_unknown_ones() {
    assert!(matches!(
        opt_error("_netdev,noatimes"),
        CliError::UnknownOption(name) if name == "noatimes"
    ));
    // The x- prefix is exact, as in mount(8).
    assert!(matches!(
        opt_error("X-systemd.automount"),
        CliError::UnknownOption(_)
    ));
    assert!(matches!(opt_error("x"), CliError::UnknownOption(_)));
}

#[test]
fn kernel_flags_from_fstab_lines() {
    let plain = with_opts("");
    assert!(!plain.sync_writes && !plain.dir_sync && !plain.no_atime);
    let c = with_opts("sync,dirsync,noatime,relatime,nodiratime,lazytime");
    assert!(c.sync_writes && c.dir_sync && c.no_atime);
    assert_eq!(c.ignored_options, ["relatime", "nodiratime", "lazytime"]);
    // The later of a pair wins, as in mount(8).
    assert!(!with_opts("sync,async").sync_writes);
    assert!(with_opts("async,sync").sync_writes);
    assert!(!with_opts("noatime,atime").no_atime);
    assert!(matches!(opt_error("sync=1"), CliError::UnexpectedValue(_)));
}

#[test]
fn noexec_and_exec_last_wins() {
    assert!(with_opts("noexec").no_exec);
    assert!(!with_opts("noexec,exec").no_exec);
    assert!(with_opts("exec,noexec").no_exec);
    assert!(matches!(
        opt_error("noexec=1"),
        CliError::UnexpectedValue(_)
    ));
    // Always in effect: accepted, nothing to set.
    let c = with_opts("nosuid,nodev");
    assert!(c.ignored_options.is_empty());
}

/// Options may come before, between and after the positionals, as with
/// sshfs and mount(8); they are still applied in argv order.
#[test]
fn options_after_positionals() {
    let c = mount(&[
        "-o", "ro", "host:dir", "-o", "noexec", "/mnt", "-o", "rw", "-p", "2200",
    ]);
    assert!(!c.read_only && c.no_exec);
    assert_eq!(c.target.port, 2200);
    assert_eq!(c.mountpoint, PathBuf::from("/mnt"));
    assert_eq!(c.target.path, home_path("dir"));

    let c = mount(&["host:", "/mnt", "-i", "/k1", "-o", "IdentityFile=/k2", "-d"]);
    assert_eq!(
        c.identity_files,
        [PathBuf::from("/k1"), PathBuf::from("/k2")]
    );
    assert!(c.debug && c.foreground);
}

/// `user` alone is mount(8)'s flag (ignored); `User=NAME` (any case) is
/// ssh's login name.
#[test]
fn user_flag_and_ssh_user_option_are_told_apart_by_the_value() {
    let flag = with_opts("user");
    assert_eq!(flag.ignored_options, ["user"]);
    assert_eq!(flag.target.user, None);
    for opts in ["User=alice", "user=alice"] {
        let c = with_opts(opts);
        assert_eq!(c.target.user.as_deref(), Some("alice"), "{opts}");
        assert!(c.ignored_options.is_empty(), "{opts}");
    }
}
