//! The command line: turns argv into a [`MountConfig`], or into the text of
//! `--help` / `--version`. clap parses the flags; REMOTE and the `-o
//! opt[,opt...]` list are parsed here by hand.
//!
//! This module only parses and validates. It never touches the network or the
//! filesystem (paths are taken as given, not checked), and it never handles
//! secrets: there is no password option, and a password in a URL is refused.

use std::ffi::{OsStr, OsString};
use std::net::Ipv6Addr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::config::{HostKeyPolicy, IdMap, MountConfig, Protocol, RemotePath, Target};

/// What the command line asks for.
// Built once per run, so the size gap between the variants costs nothing;
// boxing would only make callers' matches clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    Mount(MountConfig),
    /// `--help` or `--version`: print `text` to stdout and exit with `code`.
    Exit {
        text: String,
        code: i32,
    },
}

/// A command line that cannot be used. `Display` is one line naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Rejected by clap: unknown flag, missing argument, ...
    #[error("{0} (try 'rmount --help')")]
    Usage(String),
    #[error("malformed REMOTE '{remote}': {reason}")]
    MalformedRemote { remote: String, reason: String },
    #[error("unsupported scheme '{0}' in REMOTE (expected sftp://, ftp:// or ftps://)")]
    UnknownScheme(String),
    /// Deliberately does not echo REMOTE: it contains the password.
    #[error(
        "passwords are not accepted on the command line; \
         use -o password_stdin or the RMOUNT_PASSWORD environment variable"
    )]
    PasswordInUrl,
    #[error("port must be a number 1-65535: '{0}'")]
    BadPort(String),
    #[error("MOUNTPOINT must not be empty")]
    EmptyMountpoint,
    #[error("unknown option '{0}' in -o")]
    UnknownOption(String),
    #[error("option '{0}' does not take a value")]
    UnexpectedValue(String),
    #[error("option '{name}' needs a value ({name}={hint})")]
    MissingValue { name: String, hint: String },
    #[error("invalid value '{value}' for {name}: expected {expected}")]
    BadValue {
        name: String,
        value: String,
        expected: String,
    },
    #[error("-o ftps_implicit needs an ftps:// REMOTE")]
    FtpsImplicitWithoutFtps,
}

/// Parses a full argv (program name first) into a mount configuration.
pub fn parse<I, T>(args: I) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // The raw matches are kept (not just the derived struct) because the
    // relative order of -o, -i and -p decides which one wins.
    let matches = match Args::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(err) => return clap_outcome(err),
    };
    let args = Args::from_arg_matches(&matches).map_err(|e| usage_error(&e))?;
    build_config(&args, &matches).map(Parsed::Mount)
}

// ---------------------------------------------------------------------------
// clap: flags and positionals
// ---------------------------------------------------------------------------

const ABOUT: &str = "Mount a remote SFTP, FTP or FTPS directory as a local filesystem";

const LONG_ABOUT: &str = "\
Mount a remote SFTP, FTP or FTPS directory as a local filesystem.

REMOTE is one of:
  [user@]host:[path]                  SFTP, like sshfs; path is relative to
                                      the login directory unless it starts
                                      with '/'; empty means the login directory
  sftp://[user@]host[:port][/path]    path is absolute; /~/dir is relative to
                                      the login directory; no path means the
                                      login directory
  ftp://[user@]host[:port][/path]     path is relative to the login directory
  ftps://[user@]host[:port][/path]    (as in curl); //dir or /%2Fdir is absolute

In URLs, %XX escapes are decoded in the user name and the path. IPv6
addresses go in brackets: sftp://[::1]:2222/srv, user@[::1]:srv.
Passwords are never taken from the command line: use -o password_stdin or
the RMOUNT_PASSWORD environment variable.";

const AFTER_HELP: &str = "Use --help for the REMOTE forms and the list of -o options.";

#[derive(Parser, Debug)]
#[command(
    name = "rmount",
    // Fixed, so usage text does not depend on how argv[0] was spelled.
    bin_name = "rmount",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    after_long_help = options_help(),
    // Repeating a flag (-f -f) is harmless; don't make it an error.
    args_override_self = true
)]
struct Args {
    /// Remote directory: [user@]host:[path] or sftp:// ftp:// ftps:// URL
    #[arg(value_name = "REMOTE")]
    remote: OsString,

    /// Local directory to mount on
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: OsString,

    /// Stay in the foreground instead of running in the background
    #[arg(short, long)]
    foreground: bool,

    /// Log debug messages (implies -f; same as -o debug)
    #[arg(short, long)]
    debug: bool,

    /// Server port; overrides a port in REMOTE (same as -o port=PORT)
    // A Vec (not Option) so that a repeated -p is allowed and the last wins,
    // like -o port=.
    #[arg(short, long, value_name = "PORT")]
    port: Vec<OsString>,

    /// SSH private key to try; repeatable (same as -o IdentityFile=PATH)
    #[arg(short, long, value_name = "PATH")]
    identity: Vec<OsString>,

    /// Mount options, comma-separated; repeatable (list under --help)
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    options: Vec<OsString>,
}

/// Maps clap's early exits: help and version are not errors.
fn clap_outcome(err: clap::Error) -> Result<Parsed, CliError> {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Ok(Parsed::Exit {
            text: err.render().to_string(),
            code: 0,
        }),
        _ => Err(usage_error(&err)),
    }
}

/// Condenses clap's multi-line report to one line: the message paragraph
/// without its "error: " prefix (the usage and tip paragraphs are dropped).
fn usage_error(err: &clap::Error) -> CliError {
    let rendered = err.render().to_string();
    let first_paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let line = first_paragraph
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    CliError::Usage(line.to_string())
}

// ---------------------------------------------------------------------------
// Putting it together
// ---------------------------------------------------------------------------

/// One occurrence of an option that sets something; applied in argv order.
enum Setting<'a> {
    /// One `-o` argument (still comma-separated).
    Options(&'a OsStr),
    /// `-i PATH`, i.e. `-o IdentityFile=PATH`.
    Identity(&'a OsStr),
    /// `-p N`, i.e. `-o port=N`.
    Port(&'a OsStr),
}

/// The configuration while options are applied. The port is kept apart
/// because its default depends on options that may come later (ftps_implicit).
struct Pending {
    config: MountConfig,
    port: Option<u16>,
}

fn build_config(args: &Args, matches: &ArgMatches) -> Result<MountConfig, CliError> {
    let remote = parse_remote(&args.remote)?;
    if args.mountpoint.is_empty() {
        return Err(CliError::EmptyMountpoint);
    }
    let target = Target {
        protocol: remote.protocol,
        host: remote.host,
        port: 0, // Set by `finish` once every option is known.
        user: remote.user,
        path: remote.path,
    };
    let mut pending = Pending {
        config: MountConfig::new(target, PathBuf::from(&args.mountpoint)),
        port: remote.port,
    };
    if args.foreground {
        pending.config.foreground = true;
    }
    if args.debug {
        set_debug(&mut pending.config);
    }
    for setting in settings_in_order(args, matches) {
        match setting {
            Setting::Options(list) => {
                for item in split_option_list(list.as_bytes()) {
                    apply_option_item(&mut pending, &item)?;
                }
            }
            Setting::Identity(path) => {
                apply_option(&mut pending, "IdentityFile", Some(path.as_bytes()))?
            }
            Setting::Port(port) => apply_option(&mut pending, "port", Some(port.as_bytes()))?,
        }
    }
    finish(pending)
}

/// -o, -i and -p overlap (-i adds to IdentityFile, -p sets port), so they
/// are applied in the order given: later settings override earlier ones, and
/// identity files keep their order.
fn settings_in_order<'a>(args: &'a Args, matches: &ArgMatches) -> Vec<Setting<'a>> {
    let indices = |id: &str| -> Vec<usize> {
        matches
            .indices_of(id)
            .map(|found| found.collect())
            .unwrap_or_default()
    };
    let mut all: Vec<(usize, Setting<'a>)> = Vec::new();
    let options = args.options.iter().map(|v| Setting::Options(v));
    all.extend(indices("options").into_iter().zip(options));
    let identities = args.identity.iter().map(|v| Setting::Identity(v));
    all.extend(indices("identity").into_iter().zip(identities));
    let ports = args.port.iter().map(|v| Setting::Port(v));
    all.extend(indices("port").into_iter().zip(ports));
    all.sort_by_key(|(index, _)| *index);
    all.into_iter().map(|(_, setting)| setting).collect()
}

/// Checks that need every option, then fills in the protocol's default port.
fn finish(pending: Pending) -> Result<MountConfig, CliError> {
    let mut config = pending.config;
    if config.ftps_implicit && config.target.protocol != Protocol::Ftps {
        return Err(CliError::FtpsImplicitWithoutFtps);
    }
    config.target.port = pending
        .port
        .unwrap_or_else(|| MountConfig::default_port(config.target.protocol, config.ftps_implicit));
    Ok(config)
}

fn set_debug(config: &mut MountConfig) {
    // Debug output goes to the terminal, so there must be one.
    config.debug = true;
    config.foreground = true;
}

// ---------------------------------------------------------------------------
// REMOTE
// ---------------------------------------------------------------------------

/// REMOTE, parsed; the port is `None` when REMOTE does not name one.
#[derive(Debug, PartialEq)]
struct Remote {
    protocol: Protocol,
    host: String,
    port: Option<u16>,
    user: Option<String>,
    path: RemotePath,
}

fn parse_remote(raw: &OsStr) -> Result<Remote, CliError> {
    let bytes = raw.as_bytes();
    match split_scheme(bytes) {
        Some((scheme, rest)) => parse_url(raw, scheme, rest),
        None => parse_scp_style(raw, bytes),
    }
}

fn malformed(raw: &OsStr, reason: impl Into<String>) -> CliError {
    CliError::MalformedRemote {
        remote: raw.to_string_lossy().into_owned(),
        reason: reason.into(),
    }
}

/// `Some((scheme, rest after "://"))` when REMOTE starts with `scheme://`
/// (RFC 3986 scheme syntax). Anything else is taken as `[user@]host:path`.
fn split_scheme(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = b.windows(3).position(|w| w == b"://")?;
    let scheme = &b[..end];
    let first_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic);
    let rest_ok = scheme
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c));
    if !(first_ok && rest_ok) {
        return None;
    }
    let scheme = std::str::from_utf8(scheme).ok()?;
    Some((scheme, &b[end + 3..]))
}

/// `scheme://[user@]host[:port][/path]`.
fn parse_url(raw: &OsStr, scheme: &str, rest: &[u8]) -> Result<Remote, CliError> {
    let protocol = match scheme.to_ascii_lowercase().as_str() {
        "sftp" => Protocol::Sftp,
        "ftp" => Protocol::Ftp,
        "ftps" => Protocol::Ftps,
        _ => return Err(CliError::UnknownScheme(scheme.to_string())),
    };
    let (authority, path) = match rest.iter().position(|&c| c == b'/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, &b""[..]),
    };
    // The last '@' ends the user part, as in browsers and curl.
    let (userinfo, hostport) = match authority.iter().rposition(|&c| c == b'@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    // Checked before anything else, because every later error quotes REMOTE.
    if userinfo.is_some_and(|u| u.contains(&b':')) {
        return Err(CliError::PasswordInUrl);
    }
    // A URL's '?' and '#' start a query and a fragment; rather than silently
    // dropping part of a path, ask for the escaped form.
    if rest.iter().any(|&c| c == b'?' || c == b'#') {
        return Err(malformed(
            raw,
            "'?' and '#' must be written as %3F and %23 in a URL",
        ));
    }
    let user = match userinfo {
        Some(encoded) => {
            let decoded = percent_decode(encoded).map_err(|r| malformed(raw, r))?;
            Some(user_name(raw, &decoded)?)
        }
        None => None,
    };
    let (host, port) = split_host_port(raw, hostport, true)?;
    let path = match protocol {
        Protocol::Sftp => sftp_url_path(path),
        Protocol::Ftp | Protocol::Ftps => ftp_url_path(path),
    }
    .map_err(|reason| malformed(raw, reason))?;
    Ok(Remote {
        protocol,
        host,
        port,
        user,
        path,
    })
}

/// sftp URL path: absolute, except `/~` and `/~/...` (the login directory).
/// The `~` test runs before decoding, so `/%7E/x` names a directory "~".
fn sftp_url_path(path: &[u8]) -> Result<RemotePath, String> {
    if path.is_empty() || path == b"/~" {
        return Ok(home(b""));
    }
    if let Some(rel) = path.strip_prefix(b"/~/") {
        return Ok(home(&percent_decode(rel)?));
    }
    Ok(RemotePath::Absolute(to_path(percent_decode(path)?)))
}

/// ftp URL path (RFC 1738, as curl does it): what follows the first '/' is
/// relative to the login directory; `//abs` or `/%2Fabs` is absolute.
fn ftp_url_path(path: &[u8]) -> Result<RemotePath, String> {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    let decoded = percent_decode(rel)?;
    if decoded.starts_with(b"/") {
        Ok(RemotePath::Absolute(to_path(decoded)))
    } else {
        Ok(home(&decoded))
    }
}

/// `[user@]host:[path]`, as ssh, scp and sshfs take it. Taken literally: no
/// percent-decoding, and no port (that is what -p is for).
fn parse_scp_style(raw: &OsStr, b: &[u8]) -> Result<Remote, CliError> {
    let sep = scp_separator(b).ok_or_else(|| {
        malformed(
            raw,
            "expected [user@]host:[path] or a URL such as sftp://host/path",
        )
    })?;
    let (left, path) = (&b[..sep], &b[sep + 1..]);
    let (user, hostpart) = match left.iter().rposition(|&c| c == b'@') {
        Some(at) => (Some(user_name(raw, &left[..at])?), &left[at + 1..]),
        None => (None, left),
    };
    // A port cannot be present here: the separator is the first ':' outside
    // brackets, so `hostpart` is a bare host or exactly "[address]".
    let (host, _) = split_host_port(raw, hostpart, false)?;
    Ok(Remote {
        protocol: Protocol::Sftp,
        host,
        port: None,
        user,
        path: scp_path(path),
    })
}

/// The index of the ':' between host and path, following OpenSSH's
/// `colon()`: a ':' inside `[...]` (IPv6) does not count, and a '/' before
/// any ':' means this is no `host:path` at all.
fn scp_separator(b: &[u8]) -> Option<usize> {
    let mut in_brackets = b.first() == Some(&b'[');
    for (i, &c) in b.iter().enumerate() {
        let next = b.get(i + 1).copied();
        match c {
            b'@' if next == Some(b'[') => in_brackets = true,
            b']' if in_brackets && next == Some(b':') => return Some(i + 1),
            b':' if !in_brackets => return Some(i),
            b'/' => return None,
            _ => {}
        }
    }
    None
}

/// The path of the scp form: relative to the login directory unless it
/// starts with '/'. `~` and `~/dir` are accepted too, because that is how
/// people write "my home" to ssh.
fn scp_path(path: &[u8]) -> RemotePath {
    if path.starts_with(b"/") {
        return RemotePath::Absolute(to_path(path.to_vec()));
    }
    if path == b"~" {
        return home(b"");
    }
    home(path.strip_prefix(b"~/").unwrap_or(path))
}

/// A path relative to the login directory. Leading slashes are dropped
/// (`/~//x` means `x`) so that `Home` never holds an absolute path.
fn home(rel: &[u8]) -> RemotePath {
    let start = rel.iter().position(|&c| c != b'/').unwrap_or(rel.len());
    RemotePath::Home(to_path(rel[start..].to_vec()))
}

/// Remote paths are bytes: they need not be UTF-8.
fn to_path(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

/// A user name (already percent-decoded for URLs): non-empty UTF-8, since
/// the protocols send it as text.
fn user_name(raw: &OsStr, bytes: &[u8]) -> Result<String, CliError> {
    if bytes.is_empty() {
        return Err(malformed(raw, "empty user name before '@'"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed(raw, "user name is not valid UTF-8"))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`. In a URL an empty port
/// (`host:`) means the default, as RFC 3986 allows.
fn split_host_port(
    raw: &OsStr,
    hostport: &[u8],
    url: bool,
) -> Result<(String, Option<u16>), CliError> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix(b"[") {
        let close = bracketed
            .iter()
            .position(|&c| c == b']')
            .ok_or_else(|| malformed(raw, "missing ']' after IPv6 address"))?;
        let host = ipv6_host(raw, &bracketed[..close], url)?;
        let port = match &bracketed[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return Err(malformed(raw, "unexpected text after ']'")),
        };
        (host, port)
    } else {
        let (host, port) = match hostport.iter().position(|&c| c == b':') {
            Some(colon) => (&hostport[..colon], Some(&hostport[colon + 1..])),
            None => (hostport, None),
        };
        if port.is_some_and(|p| p.contains(&b':')) {
            return Err(malformed(
                raw,
                "IPv6 addresses must be in brackets, e.g. [::1]",
            ));
        }
        (host_name(raw, host)?, port)
    };
    let port = match port {
        Some(p) if !(url && p.is_empty()) => Some(parse_port(p)?),
        _ => None,
    };
    Ok((host, port))
}

/// The inside of `[...]`: an IPv6 address, optionally with a `%zone`
/// (written `%25zone` in a URL, RFC 6874).
fn ipv6_host(raw: &OsStr, inner: &[u8], url: bool) -> Result<String, CliError> {
    let decoded = if url {
        percent_decode(inner).map_err(|r| malformed(raw, r))?
    } else {
        inner.to_vec()
    };
    let text = String::from_utf8(decoded).unwrap_or_default();
    let address = text.split('%').next().unwrap_or_default();
    let zone_ok = text.find('%').is_none_or(|at| at + 1 < text.len());
    if address.parse::<Ipv6Addr>().is_err() || !zone_ok {
        let shown = String::from_utf8_lossy(inner);
        return Err(malformed(raw, format!("bad IPv6 address '[{shown}]'")));
    }
    Ok(text)
}

/// A host name or IPv4 address. Only characters that cannot belong to a host
/// are rejected; whether it resolves is for the connection to find out.
fn host_name(raw: &OsStr, host: &[u8]) -> Result<String, CliError> {
    if host.is_empty() {
        return Err(malformed(raw, "empty host"));
    }
    let Ok(host) = std::str::from_utf8(host) else {
        return Err(malformed(raw, "host is not valid UTF-8"));
    };
    if let Some(bad) = host
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "/@[]%?#\\".contains(*c))
    {
        return Err(malformed(raw, format!("bad character '{bad}' in host")));
    }
    // A host starting with '-' is always a mistake (a misplaced flag).
    if host.starts_with('-') {
        return Err(malformed(raw, "host may not start with '-'"));
    }
    Ok(host.to_string())
}

/// Digits only (`u16::from_str` would also take "+22"), 1..=65535.
fn parse_port(text: &[u8]) -> Result<u16, CliError> {
    let shown = || String::from_utf8_lossy(text).into_owned();
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(CliError::BadPort(shown()));
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<u16>().ok())
        .filter(|&port| port != 0)
        .ok_or_else(|| CliError::BadPort(shown()))
}

/// Decodes `%XX` escapes to bytes (so `%FF` yields a non-UTF-8 byte).
/// `%00` is refused: no name can contain NUL.
fn percent_decode(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'%' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let escape = &s[i..s.len().min(i + 3)];
        let byte = match escape {
            [_, hi, lo] => hex_value(*hi).zip(hex_value(*lo)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match byte {
            Some(0) => return Err("%00 is not allowed".to_string()),
            Some(byte) => out.push(byte),
            None => {
                let shown = String::from_utf8_lossy(escape);
                return Err(format!("bad percent-escape '{shown}'"));
            }
        }
        i += 3;
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

// ---------------------------------------------------------------------------
// -o options
// ---------------------------------------------------------------------------

/// Every `-o` option. The help text is generated from [`OPTIONS`], so an
/// option cannot be added without documenting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Debug,
    Port,
    IdentityFile,
    PasswordStdin,
    StrictHostKeyChecking,
    UserKnownHostsFile,
    ServerAliveInterval,
    ServerAliveCountMax,
    Ro,
    Rw,
    AllowOther,
    DefaultPermissions,
    Idmap,
    Uid,
    Gid,
    MaxConns,
    Timeout,
    CacheTimeout,
    CacheSize,
    AtomicWrites,
    Nocto,
    ContainSymlinks,
    FtpActive,
    FtpsImplicit,
    Cafile,
    NoVerifyCert,
}

struct OptSpec {
    name: &'static str,
    opt: Opt,
    /// How to write the value in help and errors; `None` for a flag.
    value: Option<&'static str>,
    /// ssh's options are case-insensitive in ssh, so they are here too.
    ssh_style: bool,
    help: &'static str,
}

const fn flag(name: &'static str, opt: Opt, help: &'static str) -> OptSpec {
    OptSpec {
        name,
        opt,
        value: None,
        ssh_style: false,
        help,
    }
}

const fn valued(name: &'static str, opt: Opt, value: &'static str, help: &'static str) -> OptSpec {
    OptSpec {
        name,
        opt,
        value: Some(value),
        ssh_style: false,
        help,
    }
}

const fn ssh(name: &'static str, opt: Opt, value: &'static str, help: &'static str) -> OptSpec {
    OptSpec {
        name,
        opt,
        value: Some(value),
        ssh_style: true,
        help,
    }
}

const OPTIONS: &[OptSpec] = &[
    flag(
        "debug",
        Opt::Debug,
        "log debug messages; implies -f (same as -d)",
    ),
    flag("ro", Opt::Ro, "mount read-only"),
    flag(
        "rw",
        Opt::Rw,
        "mount read-write (the default; undoes an earlier ro)",
    ),
    flag(
        "allow_other",
        Opt::AllowOther,
        "let other users use the mount (needs user_allow_other in /etc/fuse.conf)",
    ),
    flag(
        "default_permissions",
        Opt::DefaultPermissions,
        "let the kernel check every access against the file modes (without \
         it the server decides, and access(2) is answered from the modes)",
    ),
    valued(
        "idmap",
        Opt::Idmap,
        "none|user",
        "user: files of the remote login user appear as yours",
    ),
    valued(
        "uid",
        Opt::Uid,
        "N",
        "show every file as owned by user N (chown to N is then a no-op)",
    ),
    valued(
        "gid",
        Opt::Gid,
        "N",
        "show every file as owned by group N (chgrp to N is then a no-op)",
    ),
    // SSH / SFTP.
    ssh(
        "port",
        Opt::Port,
        "N",
        "server port, overriding one in REMOTE; same as -p",
    ),
    ssh(
        "IdentityFile",
        Opt::IdentityFile,
        "PATH",
        "SSH private key to try; repeatable (same as -i)",
    ),
    flag(
        "password_stdin",
        Opt::PasswordStdin,
        "read the password from standard input",
    ),
    ssh(
        "StrictHostKeyChecking",
        Opt::StrictHostKeyChecking,
        "yes|accept-new|no",
        "yes: refuse unknown and changed host keys; accept-new: record \
         unknown keys, refuse changed ones; no: warn and go on",
    ),
    ssh(
        "UserKnownHostsFile",
        Opt::UserKnownHostsFile,
        "PATH",
        "known_hosts file to use instead of ~/.ssh/known_hosts \
         (/etc/ssh/ssh_known_hosts is always read)",
    ),
    ssh(
        "ServerAliveInterval",
        Opt::ServerAliveInterval,
        "SECONDS",
        "probe idle connections this often; 0 disables",
    ),
    ssh(
        "ServerAliveCountMax",
        Opt::ServerAliveCountMax,
        "N",
        "count the server as down after N probe rounds with failures; at least 1",
    ),
    // Performance and robustness.
    valued(
        "max_conns",
        Opt::MaxConns,
        "N",
        "connections to the server, 1 to 64: one for metadata, the rest \
         (at least one) for data",
    ),
    valued(
        "timeout",
        Opt::Timeout,
        "SECONDS",
        "network timeout; may be fractional, must be > 0",
    ),
    valued(
        "cache_timeout",
        Opt::CacheTimeout,
        "SECONDS",
        "how long metadata stays cached; 0 disables",
    ),
    valued(
        "cache_size",
        Opt::CacheSize,
        "MiB",
        "size of the file content cache; 0 disables",
    ),
    valued(
        "atomic_writes",
        Opt::AtomicWrites,
        "yes|no",
        "upload under a temporary name, then rename into place",
    ),
    flag(
        "nocto",
        Opt::Nocto,
        "no close-to-open consistency: open() trusts cached attributes \
         and content for the cache timeout instead of checking the file \
         on the server (one round trip per open)",
    ),
    flag(
        "contain_symlinks",
        Opt::ContainSymlinks,
        "symlinks never lead out of the mount: absolute targets inside it \
         become relative, targets outside it cannot be read (EPERM)",
    ),
    // FTP / FTPS.
    flag(
        "ftp_active",
        Opt::FtpActive,
        "active FTP (the server connects back) instead of passive",
    ),
    flag(
        "ftps_implicit",
        Opt::FtpsImplicit,
        "implicit TLS instead of AUTH TLS (ftps:// only; port 990)",
    ),
    valued(
        "cafile",
        Opt::Cafile,
        "PATH",
        "trust the CA certificates (PEM) in PATH for FTPS",
    ),
    flag(
        "no_verify_cert",
        Opt::NoVerifyCert,
        "do not verify the FTPS server certificate (insecure)",
    ),
];

/// The longest accepted value for options in seconds, about 11.5 days. Far
/// beyond any sensible setting, and it keeps the value safe to add to an
/// `Instant` or to pass to libssh2 as u32 milliseconds.
const MAX_SECONDS: f64 = 1_000_000.0;
const MAX_CONNS_LIMIT: usize = 64;

fn find_option(name: &str) -> Option<&'static OptSpec> {
    OPTIONS
        .iter()
        .find(|spec| spec.name == name || (spec.ssh_style && spec.name.eq_ignore_ascii_case(name)))
}

/// Splits one `-o` argument at commas. A backslash escapes the next byte, as
/// in libfuse, so a path can contain a comma: `-o IdentityFile=a\,b`.
/// Empty items (`ro,,rw`, a trailing comma) are skipped.
fn split_option_list(list: &[u8]) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    let mut current = Vec::new();
    let mut bytes = list.iter();
    while let Some(&c) = bytes.next() {
        match c {
            b'\\' => current.push(bytes.next().copied().unwrap_or(b'\\')),
            b',' => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items.retain(|item| !item.is_empty());
    items
}

/// Applies one `name` or `name=value` item.
fn apply_option_item(pending: &mut Pending, item: &[u8]) -> Result<(), CliError> {
    let (name, value) = match item.iter().position(|&c| c == b'=') {
        Some(eq) => (&item[..eq], Some(&item[eq + 1..])),
        None => (item, None),
    };
    let name = String::from_utf8_lossy(name);
    apply_option(pending, &name, value)
}

fn apply_option(pending: &mut Pending, name: &str, value: Option<&[u8]>) -> Result<(), CliError> {
    let spec = find_option(name).ok_or_else(|| CliError::UnknownOption(name.to_string()))?;
    match (spec.value, value) {
        (None, Some(_)) => Err(CliError::UnexpectedValue(spec.name.to_string())),
        (Some(hint), None) => Err(CliError::MissingValue {
            name: spec.name.to_string(),
            hint: hint.to_string(),
        }),
        (None, None) => {
            set_flag(&mut pending.config, spec.opt);
            Ok(())
        }
        (Some(_), Some(value)) => set_value(pending, spec, value),
    }
}

fn set_flag(config: &mut MountConfig, opt: Opt) {
    match opt {
        Opt::Debug => set_debug(config),
        Opt::Ro => config.read_only = true,
        Opt::Rw => config.read_only = false,
        Opt::AllowOther => config.allow_other = true,
        Opt::DefaultPermissions => config.default_permissions = true,
        Opt::PasswordStdin => config.password_stdin = true,
        Opt::FtpActive => config.ftp_active = true,
        Opt::FtpsImplicit => config.ftps_implicit = true,
        Opt::NoVerifyCert => config.no_verify_cert = true,
        Opt::Nocto => config.close_to_open = false,
        Opt::ContainSymlinks => config.contain_symlinks = true,
        // Valued options never get here: `apply_option` checked the spec.
        _ => {}
    }
}

fn set_value(pending: &mut Pending, spec: &OptSpec, value: &[u8]) -> Result<(), CliError> {
    let config = &mut pending.config;
    let v = Value { spec, raw: value };
    match spec.opt {
        Opt::Port => pending.port = Some(parse_port(value)?),
        Opt::IdentityFile => config.identity_files.push(v.path()?),
        Opt::UserKnownHostsFile => config.user_known_hosts = Some(v.path()?),
        Opt::Cafile => config.cafile = Some(v.path()?),
        Opt::StrictHostKeyChecking => {
            config.host_key_policy = v.choice(&[
                ("yes", HostKeyPolicy::Yes),
                ("accept-new", HostKeyPolicy::AcceptNew),
                ("no", HostKeyPolicy::No),
            ])?
        }
        Opt::Idmap => config.idmap = v.choice(&[("none", IdMap::None), ("user", IdMap::User)])?,
        Opt::Uid => config.uid = Some(v.integer(0, u64::from(u32::MAX - 1))?),
        Opt::Gid => config.gid = Some(v.integer(0, u64::from(u32::MAX - 1))?),
        Opt::AtomicWrites => config.atomic_writes = v.choice(&[("yes", true), ("no", false)])?,
        Opt::ServerAliveInterval => config.server_alive_interval = v.seconds(true)?,
        Opt::ServerAliveCountMax => {
            config.server_alive_count_max = v.integer(1, u64::from(u32::MAX))?
        }
        Opt::MaxConns => config.max_conns = v.integer(1, MAX_CONNS_LIMIT as u64)?,
        Opt::Timeout => config.timeout = v.seconds(false)?,
        Opt::CacheTimeout => config.cache_timeout = v.seconds(true)?,
        Opt::CacheSize => config.cache_size = v.mebibytes()?,
        // Flags never get here: `apply_option` checked the spec.
        _ => {}
    }
    Ok(())
}

/// The value of one `-o name=value`, with parsers that report errors
/// naming the option.
struct Value<'a> {
    spec: &'a OptSpec,
    raw: &'a [u8],
}

impl Value<'_> {
    fn bad(&self, expected: impl Into<String>) -> CliError {
        CliError::BadValue {
            name: self.spec.name.to_string(),
            value: String::from_utf8_lossy(self.raw).into_owned(),
            expected: expected.into(),
        }
    }

    /// Local paths are bytes and need not be UTF-8.
    fn path(&self) -> Result<PathBuf, CliError> {
        if self.raw.is_empty() {
            return Err(self.bad("a non-empty path"));
        }
        Ok(to_path(self.raw.to_vec()))
    }

    /// One of a fixed set of words; case-insensitive for ssh-style options
    /// (ssh compares these values case-insensitively).
    fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, CliError> {
        let text = std::str::from_utf8(self.raw).unwrap_or_default();
        let matches =
            |word: &str| word == text || (self.spec.ssh_style && word.eq_ignore_ascii_case(text));
        choices
            .iter()
            .find(|(word, _)| matches(word))
            .map(|&(_, value)| value)
            .ok_or_else(|| {
                let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
                self.bad(words.join(", "))
            })
    }

    /// A decimal integer in `min..=max`.
    fn integer<T: TryFrom<u64>>(&self, min: u64, max: u64) -> Result<T, CliError> {
        let expected = || self.bad(format!("a whole number from {min} to {max}"));
        let text = std::str::from_utf8(self.raw).map_err(|_| expected())?;
        if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
            return Err(expected());
        }
        let n: u64 = text.parse().map_err(|_| expected())?;
        if !(min..=max).contains(&n) {
            return Err(expected());
        }
        T::try_from(n).map_err(|_| expected())
    }

    /// Seconds, possibly fractional, up to [`MAX_SECONDS`]; zero only when
    /// `zero_ok` (where 0 means "off").
    fn seconds(&self, zero_ok: bool) -> Result<Duration, CliError> {
        let expected = || {
            let low = if zero_ok { "0 or more" } else { "more than 0" };
            self.bad(format!("seconds, {low}, at most {MAX_SECONDS}"))
        };
        let text = std::str::from_utf8(self.raw).map_err(|_| expected())?;
        // f64's parser also takes "inf" and "NaN"; `is_finite` drops those.
        let secs: f64 = text.trim().parse().map_err(|_| expected())?;
        if !secs.is_finite() || !(0.0..=MAX_SECONDS).contains(&secs) {
            return Err(expected());
        }
        let duration = Duration::try_from_secs_f64(secs).map_err(|_| expected())?;
        // "1e-12" parses as positive but rounds to zero nanoseconds.
        if duration.is_zero() && !zero_ok {
            return Err(expected());
        }
        Ok(duration)
    }

    /// A size in MiB, returned in bytes.
    fn mebibytes(&self) -> Result<u64, CliError> {
        let mib: u64 = self.integer(0, u64::MAX >> 20)?;
        Ok(mib << 20)
    }
}

/// The `-o` section of `--help`, generated from [`OPTIONS`] with the defaults
/// read from [`MountConfig::new`], so neither can drift from the code.
fn options_help() -> String {
    let mut text =
        String::from("Mount options (-o opt[,opt...], repeatable; a backslash escapes a comma):\n");
    let defaults = default_config();
    for spec in OPTIONS {
        let mut help = spec.help.to_string();
        if let Some(default) = default_text(spec.opt, &defaults) {
            help.push_str(&format!(" (default {default})"));
        }
        text.push_str(&format!("  {}\n", option_label(spec)));
        for line in wrap(&help, HELP_WIDTH) {
            text.push_str(&format!("          {line}\n"));
        }
    }
    text.push_str(
        "\nNames in CamelCase (and port) are case-insensitive, as in ssh.\n\
         Later options override earlier ones, including -p and -i.\n",
    );
    text
}

/// Width of an option's description in `--help` (indented by 10).
const HELP_WIDTH: usize = 70;

/// Greedy word wrap; a word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn option_label(spec: &OptSpec) -> String {
    match spec.value {
        Some(value) => format!("{}={value}", spec.name),
        None => spec.name.to_string(),
    }
}

/// A configuration with every default, to show those defaults in help.
fn default_config() -> MountConfig {
    let target = Target {
        protocol: Protocol::Sftp,
        host: String::new(),
        port: MountConfig::default_port(Protocol::Sftp, false),
        user: None,
        path: RemotePath::Home(PathBuf::new()),
    };
    MountConfig::new(target, PathBuf::new())
}

fn default_text(opt: Opt, d: &MountConfig) -> Option<String> {
    let secs = |duration: Duration| duration.as_secs_f64().to_string();
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    match opt {
        Opt::Port => Some(format!(
            "{} for SFTP, {} for FTP/FTPS, {} with ftps_implicit",
            MountConfig::default_port(Protocol::Sftp, false),
            MountConfig::default_port(Protocol::Ftp, false),
            MountConfig::default_port(Protocol::Ftps, true),
        )),
        Opt::StrictHostKeyChecking => Some(
            match d.host_key_policy {
                HostKeyPolicy::Yes => "yes",
                HostKeyPolicy::AcceptNew => "accept-new",
                HostKeyPolicy::No => "no",
            }
            .to_string(),
        ),
        Opt::Idmap => Some(
            match d.idmap {
                IdMap::None => "none",
                IdMap::User => "user",
            }
            .to_string(),
        ),
        Opt::ServerAliveInterval => Some(secs(d.server_alive_interval)),
        Opt::ServerAliveCountMax => Some(d.server_alive_count_max.to_string()),
        Opt::MaxConns => Some(d.max_conns.to_string()),
        Opt::Timeout => Some(secs(d.timeout)),
        Opt::CacheTimeout => Some(secs(d.cache_timeout)),
        Opt::CacheSize => Some((d.cache_size >> 20).to_string()),
        Opt::AtomicWrites => Some(yes_no(d.atomic_writes)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "(default 256)",
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
        for name in ["reconnect", "password", "nodev", "noatime", "IdentityFil"] {
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
        assert_eq!(
            msg(opt_error("StrictHostKeyChecking=ask")),
            "invalid value 'ask' for StrictHostKeyChecking: expected yes, accept-new, no"
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
    fn wrap_keeps_lines_short() {
        let lines = wrap("aa bb cc dd", 5);
        assert_eq!(lines, vec!["aa bb", "cc dd"]);
        assert_eq!(wrap("toolongword x", 4), vec!["toolongword", "x"]);
        assert!(wrap("", 10).is_empty());
        for line in options_help().lines() {
            assert!(line.len() <= 80, "{line}");
        }
    }

    #[test]
    fn usage_uses_fixed_program_name() {
        let parsed = parse(["/some/where/rmount-dev", "--help"]);
        let Ok(Parsed::Exit { text, .. }) = parsed else {
            panic!("{parsed:?}");
        };
        assert!(text.contains("Usage: rmount "), "{text}");
    }

    #[test]
    fn option_table_is_consistent() {
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in &OPTIONS[i + 1..] {
                assert!(!a.name.eq_ignore_ascii_case(b.name), "{}", a.name);
                assert_ne!(a.opt, b.opt, "{}", a.name);
            }
        }
    }
}

/// Property tests: no REMOTE or `-o` text makes the parser panic, and what
/// is built from parts parses back to those parts.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    use crate::testing::proptest_config as config;

    /// Every byte but the unreserved ones as `%XX`.
    fn percent_encode(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|&b| {
                if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// Escapes `\` and `,` as the `-o` list syntax wants.
    fn option_escape(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in value {
            if b == b'\\' || b == b',' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out
    }

    fn remote_text() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..60),
            "(sftp|ftp|ftps|SFTP|http)://([^@/]{0,10}@)?(\\[[0-9a-f:%]{0,12}\\]|[a-z.%-]{0,12})(:[0-9]{0,6})?(/[^\n]{0,20})?"
                .prop_map(String::into_bytes),
            "([^@:/]{0,8}@)?(\\[[0-9a-f:]{0,12}\\]|[a-z.-]{0,12}):[^\n]{0,20}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_remote_parses_or_is_refused(raw in remote_text()) {
            // A command-line argument cannot hold NUL (argv is C strings);
            // in a URL it can be written as %00, which is refused.
            let raw: Vec<u8> = raw.into_iter().filter(|&b| b != 0).collect();
            if let Ok(r) = parse_remote(&OsString::from_vec(raw)) {
                prop_assert!(!r.host.is_empty());
                prop_assert!(!r.host.contains(['/', '@', '\0']), "{:?}", r.host);
                prop_assert!(r.port != Some(0));
                if let RemotePath::Home(rel) = &r.path {
                    prop_assert!(!rel.as_os_str().as_bytes().starts_with(b"/"), "{:?}", rel);
                }
                let path = match &r.path {
                    RemotePath::Absolute(p) | RemotePath::Home(p) => p,
                };
                prop_assert!(!path.as_os_str().as_bytes().contains(&0));
            }
        }

        #[test]
        fn a_url_reads_back(
            user in "\\PC{1,12}",
            host in "[a-z][a-z0-9-]{0,15}(\\.[a-z0-9-]{1,10}){0,2}",
            port in 1u16..,
            segments in proptest::collection::vec(
                proptest::collection::vec(1u8.., 1..10)
                    .prop_map(|s| s.into_iter().filter(|&b| b != b'/').collect::<Vec<u8>>()),
                0..4,
            ),
        ) {
            let encoded: Vec<String> = segments.iter().map(|s| percent_encode(s)).collect();
            let url = format!(
                "sftp://{}@{host}:{port}/{}",
                percent_encode(user.as_bytes()),
                encoded.join("/")
            );
            let r = parse_remote(OsStr::new(&url))
                .map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
            let mut path = b"/".to_vec();
            path.extend(segments.join(&b'/'));
            prop_assert_eq!(
                r,
                Remote {
                    protocol: Protocol::Sftp,
                    host,
                    port: Some(port),
                    user: Some(user),
                    path: RemotePath::Absolute(PathBuf::from(OsString::from_vec(path))),
                }
            );
        }

        #[test]
        fn an_ftp_url_reads_back(
            host in "[a-z][a-z0-9-]{0,15}(\\.[a-z0-9-]{1,10}){0,2}",
            rel in proptest::collection::vec(1u8.., 0..20),
            ftps in any::<bool>(),
        ) {
            // What follows the first '/' is relative to the login directory.
            let rel: Vec<u8> = rel.into_iter().skip_while(|&b| b == b'/').collect();
            let scheme = if ftps { "ftps" } else { "ftp" };
            let url = format!("{scheme}://{host}/{}", percent_encode(&rel));
            let r = parse_remote(OsStr::new(&url))
                .map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
            prop_assert_eq!(
                r,
                Remote {
                    protocol: if ftps { Protocol::Ftps } else { Protocol::Ftp },
                    host,
                    port: None,
                    user: None,
                    path: RemotePath::Home(PathBuf::from(OsString::from_vec(rel))),
                }
            );
        }

        #[test]
        fn an_scp_style_remote_reads_back(
            user in "[^@:/\\[\\]\\p{C}]{1,10}",
            host in "[a-z][a-z0-9-]{0,15}(\\.[a-z0-9-]{1,10}){0,2}",
            path in proptest::collection::vec(1u8.., 0..20),
        ) {
            // Taken literally: no percent-decoding, an absolute path stays so.
            let mut raw = format!("{user}@{host}:/").into_bytes();
            raw.extend(&path);
            let r = parse_remote(&OsString::from_vec(raw.clone()))
                .map_err(|e| TestCaseError::fail(format!("{raw:?}: {e}")))?;
            let mut want = b"/".to_vec();
            want.extend(&path);
            prop_assert_eq!(
                r,
                Remote {
                    protocol: Protocol::Sftp,
                    host,
                    port: None,
                    user: Some(user),
                    path: RemotePath::Absolute(PathBuf::from(OsString::from_vec(want))),
                }
            );
        }

        #[test]
        fn any_option_list_splits_into_nonempty_items(list in proptest::collection::vec(any::<u8>(), 0..60)) {
            let items = split_option_list(&list);
            let commas = list.iter().filter(|&&b| b == b',').count();
            prop_assert!(items.len() <= commas + 1);
            prop_assert!(items.iter().all(|i| !i.is_empty()));
        }

        #[test]
        fn an_escaped_option_list_splits_back(
            values in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 1..12),
                0..6,
            ),
        ) {
            let escaped: Vec<Vec<u8>> = values.iter().map(|v| option_escape(v)).collect();
            let list = escaped.join(&b',');
            prop_assert_eq!(split_option_list(&list), values);
        }

        #[test]
        fn any_o_argument_parses_or_is_refused(o in "\\PC{0,40}") {
            let _ = parse(["rmount", "-o", o.as_str(), "host:", "/mnt"]);
        }

        #[test]
        fn escaped_paths_in_o_read_back(
            paths in proptest::collection::vec("/[A-Za-z0-9/._ ,\\\\=-]{1,20}", 1..4),
        ) {
            let items: Vec<String> = paths
                .iter()
                .map(|p| {
                    let value = option_escape(p.as_bytes());
                    format!("IdentityFile={}", String::from_utf8_lossy(&value))
                })
                .collect();
            let list = items.join(",");
            let parsed = parse(["rmount", "-o", list.as_str(), "host:", "/mnt"])
                .map_err(|e| TestCaseError::fail(format!("{list}: {e}")))?;
            let Parsed::Mount(cfg) = parsed else {
                return Err(TestCaseError::fail("no mount"));
            };
            let want: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            prop_assert_eq!(cfg.identity_files, want);
        }
    }
}
