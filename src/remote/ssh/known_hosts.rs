//! known_hosts files: reading them, matching a host against their lines,
//! what they say about a presented key, and appending an accepted key.
//!
//! known_hosts is parsed here rather than by libssh2's `KnownHosts`: libssh2
//! also matches a plain `host` entry when connecting to another port (a false
//! "changed key" for a second server on the same machine), misreads
//! `@revoked`/`@cert-authority` lines (so revocations would be ignored), and
//! stops reading a file at its first line it cannot parse. Matching follows
//! OpenSSH: `[host]:port` for ports other than 22, comma-separated patterns
//! with `*`, `?` and `!`, and hashed `|1|salt|hmac` names.
//!
//! What to do about a key (the `StrictHostKeyChecking` policy) is decided in
//! `host_key`, not here.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::home::display_path;
use super::SshSettings;

/// The name a host is recorded under: `host`, or `[host]:port` for ports
/// other than 22. Lower case, as ssh does.
pub(super) fn known_hosts_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// One usable line of a known_hosts file.
#[derive(Clone, Debug)]
pub(super) struct KnownHost {
    file: PathBuf,
    line: usize,
    marker: Marker,
    /// The host field: comma-separated patterns, or one `|1|salt|hash`.
    hosts: String,
    pub(super) key_type: String,
    blob: Vec<u8>,
}

impl KnownHost {
    pub(super) fn location(&self) -> String {
        format!("{}:{}", display_path(&self.file), self.line)
    }
}

/// The usable lines of known_hosts text. Comments, blank lines, unknown
/// markers, obsolete SSH1 keys and malformed lines are skipped.
pub(super) fn parse_known_hosts(text: &str, file: &Path) -> Vec<KnownHost> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let mut first = fields.next().unwrap_or("");
        let marker = if first.starts_with('@') {
            let m = match first {
                "@revoked" => Marker::Revoked,
                "@cert-authority" => Marker::CertAuthority,
                _ => {
                    tracing::debug!("{}:{}: unknown marker {first}", file.display(), i + 1);
                    continue;
                }
            };
            first = fields.next().unwrap_or("");
            m
        } else {
            Marker::None
        };
        let (Some(key_type), Some(key)) = (fields.next(), fields.next()) else {
            tracing::debug!("{}:{}: malformed line skipped", file.display(), i + 1);
            continue;
        };
        if first.is_empty() || key_type.starts_with(|c: char| c.is_ascii_digit()) {
            continue; // SSH1 "bits e n" key, or nothing usable
        }
        let Ok(blob) = STANDARD.decode(key) else {
            tracing::debug!("{}:{}: bad key encoding", file.display(), i + 1);
            continue;
        };
        out.push(KnownHost {
            file: file.to_path_buf(),
            line: i + 1,
            marker,
            hosts: first.to_string(),
            key_type: key_type.to_string(),
            blob,
        });
    }
    out
}

/// Both known_hosts files (user first). A missing file is empty.
pub(super) fn read_known_hosts(s: &SshSettings) -> Vec<KnownHost> {
    let mut all = Vec::new();
    for file in [&s.user_known_hosts, &s.global_known_hosts] {
        match fs::read(file) {
            Ok(bytes) => all.extend(parse_known_hosts(&String::from_utf8_lossy(&bytes), file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot read {}: {e}", file.display()),
        }
    }
    all
}

/// Whether a known_hosts host field names `name` (already lower case).
fn host_field_matches(field: &str, name: &str) -> bool {
    if let Some(rest) = field.strip_prefix("|1|") {
        return hashed_name_matches(rest, name);
    }
    let mut matched = false;
    for pat in field.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if wildcard_match(pat.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `salt|hash` (both base64) of a hashed entry: HMAC-SHA1(salt, name) == hash.
fn hashed_name_matches(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Glob matching with `*` (any run) and `?` (one character), as ssh's
/// `match_pattern`.
fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Key types (`ssh-ed25519`, `ssh-rsa`, …) recorded for `name`, in file
/// order, without duplicates. Marker lines do not count.
pub(super) fn known_key_types(known: &[KnownHost], name: &str) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for k in known {
        if k.marker == Marker::None
            && host_field_matches(&k.hosts, name)
            && !types.contains(&k.key_type)
        {
            types.push(k.key_type.clone());
        }
    }
    types
}

/// The line recorded for a newly accepted key.
pub(super) fn known_hosts_line(name: &str, key_type: &str, blob: &[u8]) -> String {
    format!("{name} {key_type} {}\n", STANDARD.encode(blob))
}

/// What known_hosts says about a presented key.
#[derive(Debug)]
pub(super) enum HostKeyStatus<'a> {
    Known,
    /// No entry for this host at all.
    Unknown,
    /// An entry of the same type holds another key.
    Changed(&'a KnownHost),
    /// Only keys of other types are recorded (and the server did not use them).
    OtherType(&'a KnownHost),
    Revoked(&'a KnownHost),
}

pub(super) fn check_known_hosts<'a>(
    known: &'a [KnownHost],
    name: &str,
    key_type: &str,
    blob: &[u8],
) -> HostKeyStatus<'a> {
    let mine: Vec<&KnownHost> = known
        .iter()
        .filter(|k| k.marker != Marker::CertAuthority && host_field_matches(&k.hosts, name))
        .collect();
    if let Some(k) = mine
        .iter()
        .find(|k| k.marker == Marker::Revoked && k.blob == blob)
    {
        return HostKeyStatus::Revoked(k);
    }
    let plain: Vec<&KnownHost> = mine
        .into_iter()
        .filter(|k| k.marker == Marker::None)
        .collect();
    if plain.iter().any(|k| k.blob == blob) {
        HostKeyStatus::Known
    } else if let Some(k) = plain.iter().find(|k| k.key_type == key_type) {
        HostKeyStatus::Changed(k)
    } else if let Some(k) = plain.first() {
        HostKeyStatus::OtherType(k)
    } else {
        HostKeyStatus::Unknown
    }
}

/// Appends `line` to a known_hosts file, creating its directory (0700) and
/// the file (0600) if they are missing.
pub(super) fn append_known_host(path: &Path, line: &str) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    let needs_newline = match fs::read(path) {
        Ok(old) => old.last().is_some_and(|&b| b != b'\n'),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mut text = String::with_capacity(line.len() + 1);
    if needs_newline {
        text.push('\n');
    }
    text.push_str(line);
    f.write_all(text.as_bytes())?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::remote::ssh::test_keys::{blob, hashed, ED25519_PUB};
    use ssh2::Session;

    #[test]
    fn lookup_names() {
        assert_eq!(known_hosts_name("Example.COM", 22), "example.com");
        assert_eq!(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
        assert_eq!(known_hosts_name("::1", 2222), "[::1]:2222");
        assert_eq!(known_hosts_name("::1", 22), "::1");
    }

    #[test]
    fn key_types_for_host() {
        let text = format!(
            "# comment\n\
             \n\
             example.com,10.0.0.1 ssh-ed25519 {ED25519_PUB}\n\
             example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ== comment here\n\
             [127.0.0.1]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=\n\
             {} ssh-ed25519 {ED25519_PUB}\n\
             @cert-authority *.example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==\n\
             @revoked example.com ssh-dss AAAAB3NzaC1kc3M=\n\
             @bogus example.com ssh-dss AAAAB3NzaC1kc3M=\n\
             *.wild.org,!bad.wild.org ssh-ed25519 {ED25519_PUB}\n\
             example.com 1024 35 1234567\n\
             broken-line-without-key\n\
             bad.base64 ssh-ed25519 !!!!\n\
             {} ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQ=\n",
            hashed("[127.0.0.1]:2222", b"0123456789abcdefghij"),
            hashed("hashed.example", b"saltsaltsaltsaltsalt"),
        );
        let known = parse_known_hosts(&text, Path::new("/k"));
        assert_eq!(
            known_key_types(&known, "example.com"),
            ["ssh-ed25519", "ssh-rsa"]
        );
        assert_eq!(known_key_types(&known, "10.0.0.1"), ["ssh-ed25519"]);
        assert_eq!(
            known_key_types(&known, "[127.0.0.1]:2222"),
            ["ecdsa-sha2-nistp256", "ssh-ed25519"]
        );
        // A plain entry is for port 22 only, and a port entry for its port only.
        assert!(known_key_types(&known, "127.0.0.1").is_empty());
        assert!(known_key_types(&known, "[127.0.0.1]:2223").is_empty());
        assert!(known_key_types(&known, "[example.com]:2222").is_empty());
        assert_eq!(
            known_key_types(&known, "hashed.example"),
            ["ecdsa-sha2-nistp384"]
        );
        assert_eq!(known_key_types(&known, "a.wild.org"), ["ssh-ed25519"]);
        assert!(known_key_types(&known, "bad.wild.org").is_empty());
        assert!(known_key_types(&known, "wild.org").is_empty());
        // Marker lines are parsed but are not keys of the host.
        assert!(known.iter().any(|k| k.marker == Marker::Revoked));
        assert!(known.iter().any(|k| k.marker == Marker::CertAuthority));
        assert!(!known.iter().any(|k| k.hosts == "bad.base64"));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"*", b"anything"));
        assert!(wildcard_match(b"a*c", b"abbbc"));
        assert!(wildcard_match(b"a?c", b"abc"));
        assert!(!wildcard_match(b"a?c", b"ac"));
        assert!(wildcard_match(b"*.b.*", b"x.b.y"));
        assert!(!wildcard_match(b"*.b", b"x.bc"));
        assert!(wildcard_match(b"[10.0.0.*]:2222", b"[10.0.0.7]:2222"));
        assert!(host_field_matches("Example.COM", "example.com"));
    }

    #[test]
    fn check_statuses() {
        let other = "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let text = format!(
            "[h]:2222 ssh-ed25519 {ED25519_PUB}\n\
             changed ssh-ed25519 {other}\n\
             rsaonly ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==\n\
             @revoked revoked ssh-ed25519 {ED25519_PUB}\n\
             revoked ssh-ed25519 {ED25519_PUB}\n\
             @cert-authority * ssh-ed25519 {other}\n\
             multi ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==\n\
             multi ssh-ed25519 {ED25519_PUB}\n"
        );
        let known = parse_known_hosts(&text, Path::new("/k"));
        let key = blob(ED25519_PUB);
        let check = |name| check_known_hosts(&known, name, "ssh-ed25519", &key);
        assert!(matches!(check("[h]:2222"), HostKeyStatus::Known));
        assert!(matches!(check("multi"), HostKeyStatus::Known));
        assert!(matches!(check("h"), HostKeyStatus::Unknown));
        assert!(matches!(check("[h]:2223"), HostKeyStatus::Unknown));
        assert!(matches!(check("changed"), HostKeyStatus::Changed(k) if k.line == 2));
        assert!(matches!(check("rsaonly"), HostKeyStatus::OtherType(_)));
        assert!(matches!(check("revoked"), HostKeyStatus::Revoked(k) if k.line == 4));
    }

    #[test]
    fn appended_line() {
        let key = blob(ED25519_PUB);
        let name = known_hosts_name("127.0.0.1", 2222);
        let line = known_hosts_line(&name, "ssh-ed25519", &key);
        assert_eq!(
            line,
            format!("[127.0.0.1]:2222 ssh-ed25519 {ED25519_PUB}\n")
        );
        assert_eq!(
            known_hosts_line(&known_hosts_name("Host.Example", 22), "ssh-ed25519", &key),
            format!("host.example ssh-ed25519 {ED25519_PUB}\n")
        );
        // What we write, we read back as the same key.
        let known = parse_known_hosts(&line, Path::new("/k"));
        assert!(matches!(
            check_known_hosts(&known, &name, "ssh-ed25519", &key),
            HostKeyStatus::Known
        ));
    }

    #[test]
    fn append_creates_dir_and_file_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("new/.ssh/known_hosts");
        append_known_host(&file, "a ssh-ed25519 AAAA\n").expect("append");
        // An existing file without a final newline gets one before our line.
        fs::write(&file, "a ssh-ed25519 AAAA").expect("write");
        append_known_host(&file, "b ssh-ed25519 BBBB\n").expect("append");
        let text = fs::read_to_string(&file).expect("read");
        assert_eq!(text, "a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB\n");
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(file.parent().expect("dir")), 0o700);
        let fresh = tmp.path().join("other");
        append_known_host(&fresh, "c ssh-ed25519 CCCC\n").expect("append");
        assert_eq!(mode(&fresh), 0o600);
    }

    /// libssh2's own check (which we do not use) does handle hashed
    /// `[host]:port` entries, but also applies a plain `host` entry to every
    /// port, reporting a false mismatch; this pins down why we match ourselves.
    #[test]
    fn libssh2_known_hosts_behaviour() {
        let sess = Session::new().expect("session");
        let mut kh = sess.known_hosts().expect("known hosts");
        let key = blob(ED25519_PUB);
        let line = format!(
            "{} ssh-ed25519 {ED25519_PUB}",
            hashed("[127.0.0.1]:2222", b"0123456789abcdefghij")
        );
        kh.read_str(&line, ssh2::KnownHostFileKind::OpenSSH)
            .expect("read");
        assert!(matches!(
            kh.check_port("127.0.0.1", 2222, &key),
            ssh2::CheckResult::Match
        ));
        let other = "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        kh.read_str(
            &format!("10.1.1.1 ssh-ed25519 {other}"),
            ssh2::KnownHostFileKind::OpenSSH,
        )
        .expect("read");
        assert!(matches!(
            kh.check_port("10.1.1.1", 2222, &key),
            ssh2::CheckResult::Mismatch
        ));
        // Ours: a different port is simply unknown.
        let ours = parse_known_hosts(&format!("10.1.1.1 ssh-ed25519 {other}"), Path::new("/k"));
        assert!(matches!(
            check_known_hosts(&ours, "[10.1.1.1]:2222", "ssh-ed25519", &key),
            HostKeyStatus::Unknown
        ));
    }
}

/// Property tests: no known_hosts text makes the parser panic or yield more
/// keys than lines, and a line written from its parts reads back.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    use crate::testing::proptest_config as config;

    fn text() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            "\\PC{0,60}",
            "(@revoked |@cert-authority |@x )?[a-z0-9.,*?!\\[\\]:|=/+]{0,30} (ssh-ed25519|ssh-rsa|1024) [A-Za-z0-9+/=]{0,40}( .{0,10})?",
        ];
        proptest::collection::vec(line, 0..10).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_text_parses_to_at_most_one_key_a_line(text in text()) {
            let keys = parse_known_hosts(&text, Path::new("known_hosts"));
            prop_assert!(keys.len() <= text.lines().count());
            for k in &keys {
                prop_assert!(!k.hosts.is_empty() && !k.key_type.is_empty());
                prop_assert!(!k.hosts.contains(char::is_whitespace));
                prop_assert!(k.line >= 1 && k.line <= text.lines().count());
            }
        }

        #[test]
        fn a_line_reads_back(
            hosts in "[a-z0-9][a-z0-9.-]{0,15}(,\\[[a-z0-9.]{1,10}\\]:[0-9]{1,5}){0,2}",
            key_type in "(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256)",
            blob in proptest::collection::vec(any::<u8>(), 1..64),
            comment in "( [ -~]{0,20})?",
            revoked in any::<bool>(),
        ) {
            let marker = if revoked { "@revoked " } else { "" };
            let line = format!("{marker}{hosts} {key_type} {}{comment}", STANDARD.encode(&blob));
            let text = format!("# header\n\n{line}\n");
            let keys = parse_known_hosts(&text, Path::new("kh"));
            prop_assert_eq!(keys.len(), 1);
            let k = &keys[0];
            prop_assert_eq!(&k.hosts, &hosts);
            prop_assert_eq!(&k.key_type, &key_type);
            prop_assert_eq!(&k.blob, &blob);
            prop_assert_eq!(k.line, 3);
            prop_assert_eq!(matches!(k.marker, Marker::Revoked), revoked);
        }
    }
}
