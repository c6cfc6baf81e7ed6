//! REMOTE, the first positional argument: an `sftp://`, `ftp://` or
//! `ftps://` URL, or the scp-style `[user@]host:[path]`. Owns that grammar:
//! user, host (IPv6 in brackets), port, path, and the URL's percent-decoding.
//!
//! It only parses text and knows nothing of -o options. It never resolves a
//! host or checks a path: whether they exist is for the connection to find.

use std::ffi::{OsStr, OsString};
use std::net::Ipv6Addr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::config::{Protocol, RemotePath};

use super::CliError;

/// REMOTE, parsed; the port is `None` when REMOTE does not name one.
#[derive(Debug, PartialEq)]
pub(super) struct Remote {
    pub(super) protocol: Protocol,
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) user: Option<String>,
    pub(super) path: RemotePath,
}

pub(super) fn parse_remote(raw: &OsStr) -> Result<Remote, CliError> {
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
pub(super) fn to_path(bytes: Vec<u8>) -> PathBuf {
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
pub(super) fn parse_port(text: &[u8]) -> Result<u16, CliError> {
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

/// Property tests: no REMOTE text makes the parser panic, and a REMOTE built
/// from parts parses back to those parts.
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
    }
}
