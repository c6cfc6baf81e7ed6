//! `~/.netrc`: FTP login names and passwords per host, read the way ftp(1)
//! and curl read them.
//!
//! Tokens are separated by blanks and newlines; `"…"` quotes a token (with
//! `\"`, `\\`, `\n`, `\t`, `\r` escapes), a backslash outside quotes escapes the
//! next character, and a `#` at the start of a token comments out the rest of
//! the line (curl's extension). Keywords: `machine NAME`, `default`,
//! `login NAME`, `password PW` (or `passwd`), `account A` (ignored), and
//! `macdef NAME` whose body, up to the next blank line, is skipped. The first
//! `machine` matching the host (case-insensitively) wins; `default` is used
//! only when none does. When the user is known, entries for another login are
//! passed over.
//!
//! Like ftp(1), a file that gives a password (for a login other than
//! `anonymous`) while group or others can read it is refused with a warning.
//!
//! Owns no network access and logs no secret: neither passwords nor the
//! contents of unknown tokens appear in messages or `Debug` output.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::secrets::{secret_from_bytes, Secret};

/// One `machine` (or `default`) entry. Not `Clone`: the password is a
/// [`Secret`], zeroed when the entry is dropped.
#[derive(Default, PartialEq, Eq)]
pub struct Entry {
    /// `None` for the `default` entry.
    pub machine: Option<String>,
    pub login: Option<String>,
    pub password: Option<Secret>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("machine", &self.machine)
            .field("login", &self.login)
            .field("has_password", &self.password.is_some())
            .finish()
    }
}

/// A parsed netrc file.
#[derive(Debug, Default)]
pub struct Netrc {
    pub entries: Vec<Entry>,
}

impl Netrc {
    #[cfg(test)]
    pub fn parse(text: &str) -> Netrc {
        Netrc::parse_bytes(text.as_bytes())
    }

    /// As [`Netrc::parse`]; invalid UTF-8 in a token is replaced.
    pub fn parse_bytes(text: &[u8]) -> Netrc {
        let mut lexer = Lexer::new(text);
        let mut entries = Vec::new();
        let mut current: Option<Entry> = None;
        while let Some(token) = lexer.token() {
            match token.as_str() {
                "machine" | "default" => {
                    entries.extend(current.take());
                    let machine = if token == "machine" {
                        Some(lexer.token().unwrap_or_default())
                    } else {
                        None
                    };
                    current = Some(Entry {
                        machine,
                        ..Entry::default()
                    });
                }
                "login" => {
                    let value = lexer.token();
                    if let Some(entry) = current.as_mut() {
                        entry.login = value;
                    }
                }
                "password" | "passwd" => {
                    let value = lexer.secret_token();
                    if let Some(entry) = current.as_mut() {
                        entry.password = value;
                    }
                }
                "account" => {
                    lexer.token();
                }
                "macdef" => {
                    lexer.token();
                    lexer.skip_macro_body();
                }
                // The token itself could be a secret: do not show it.
                _ => tracing::debug!(".netrc: ignoring an unknown token"),
            }
        }
        entries.extend(current);
        Netrc { entries }
    }

    /// The entry for `host`: the first matching `machine`, else `default`.
    /// With `user`, entries naming another login are skipped.
    #[cfg(test)]
    pub fn find(&self, host: &str, user: Option<&str>) -> Option<&Entry> {
        self.position(host, user).map(|i| &self.entries[i])
    }

    /// Takes the entry [`Netrc::find`] would return out of the file.
    pub fn take(mut self, host: &str, user: Option<&str>) -> Option<Entry> {
        let i = self.position(host, user)?;
        Some(self.entries.swap_remove(i))
    }

    fn position(&self, host: &str, user: Option<&str>) -> Option<usize> {
        let fits = |e: &Entry| match (user, &e.login) {
            (Some(user), Some(login)) => user == login,
            _ => true,
        };
        let machine = self.entries.iter().position(|e| {
            e.machine
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(host))
                && fits(e)
        });
        machine.or_else(|| {
            self.entries
                .iter()
                .position(|e| e.machine.is_none() && fits(e))
        })
    }
}

/// `$NETRC` if set, else `~/.netrc`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETRC").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".netrc"))
}

/// The entry of the netrc file at `path` for `host` (and `user`, if known).
/// `None` when the file is absent, unreadable, has no entry, or is refused
/// for its permissions.
pub fn lookup(path: &Path, host: &str, user: Option<&str>) -> Option<Entry> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot read {}: {e}", path.display());
            }
            return None;
        }
    };
    // The file holds passwords: its text is zeroed once parsed.
    let bytes = match fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) => {
            tracing::warn!("cannot read {}: {e}", path.display());
            return None;
        }
    };
    let entry = Netrc::parse_bytes(&bytes).take(host, user)?;
    if !permissions_allow(&entry, meta.mode()) {
        tracing::warn!("Error: {} file is readable by others.", path.display());
        tracing::warn!("Remove password or make file unreadable by others.");
        return None;
    }
    Some(entry)
}

/// ftp(1)'s rule: a password for a real login must not be readable by group
/// or others.
fn permissions_allow(entry: &Entry, mode: u32) -> bool {
    let has_secret = entry.password.is_some() && entry.login.as_deref() != Some("anonymous");
    !(has_secret && mode & 0o077 != 0)
}

struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a [u8]) -> Lexer<'a> {
        Lexer { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    /// The next token, or `None` at the end.
    fn token(&mut self) -> Option<String> {
        self.token_bytes()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The next token as a secret: no unzeroed copy is left behind.
    fn secret_token(&mut self) -> Option<Secret> {
        self.token_bytes()
            .map(|mut bytes| secret_from_bytes(std::mem::take(&mut *bytes)))
    }

    fn token_bytes(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        loop {
            while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                self.pos += 1;
            }
            match self.peek()? {
                b'#' => self.skip_line(),
                b'"' => {
                    self.pos += 1;
                    return Some(self.quoted());
                }
                _ => return Some(self.bare()),
            }
        }
    }

    /// A token's buffer, reserved up front: growing it would leave
    /// unzeroed copies of a password behind.
    fn buffer(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(Vec::with_capacity(self.text.len() - self.pos))
    }

    fn bare(&mut self) -> Zeroizing<Vec<u8>> {
        let mut out = self.buffer();
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                break;
            }
            self.pos += 1;
            if c == b'\\' {
                if let Some(next) = self.peek() {
                    self.pos += 1;
                    out.push(next);
                    continue;
                }
            }
            out.push(c);
        }
        out
    }

    fn quoted(&mut self) -> Zeroizing<Vec<u8>> {
        let mut out = self.buffer();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(next) = self.peek() else { break };
                    self.pos += 1;
                    out.push(match next {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                other => out.push(other),
            }
        }
        out
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == b'\n' {
                break;
            }
        }
    }

    /// Skips the rest of the `macdef` line and the macro body, which ends at
    /// the first blank line.
    fn skip_macro_body(&mut self) {
        self.skip_line();
        while self.pos < self.text.len() {
            let start = self.pos;
            self.skip_line();
            if self.text[start..self.pos]
                .iter()
                .all(u8::is_ascii_whitespace)
            {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entry(machine: Option<&str>, login: Option<&str>, password: Option<&str>) -> Entry {
        Entry {
            machine: machine.map(str::to_string),
            login: login.map(str::to_string),
            password: password.map(Secret::from),
        }
    }

    #[test]
    fn parses_machines_on_one_or_many_lines() {
        let n = Netrc::parse(
            "machine a.example login alice password s3cret\n\
             machine b.example\n  login bob\n  password hunter2\n  account acct\n",
        );
        assert_eq!(
            n.entries,
            vec![
                entry(Some("a.example"), Some("alice"), Some("s3cret")),
                entry(Some("b.example"), Some("bob"), Some("hunter2")),
            ]
        );
    }

    #[test]
    fn machine_match_ignores_case_and_falls_back_to_default() {
        let n =
            Netrc::parse("machine Host.Example login m password p1\ndefault login d password p2\n");
        assert_eq!(
            n.find("host.example", None)
                .and_then(|e| e.login.as_deref()),
            Some("m")
        );
        assert_eq!(
            n.find("other", None).and_then(|e| e.login.as_deref()),
            Some("d")
        );
        assert!(Netrc::parse("machine x login a").find("y", None).is_none());
    }

    #[test]
    fn a_known_user_skips_entries_for_other_logins() {
        let n = Netrc::parse(
            "machine h login alice password pa\n\
             machine h login bob password pb\n\
             machine h password shared\n",
        );
        assert_eq!(
            n.find("h", Some("bob"))
                .and_then(|e| e.password.as_ref().map(Secret::expose)),
            Some("pb")
        );
        assert_eq!(
            n.find("h", None)
                .and_then(|e| e.password.as_ref().map(Secret::expose)),
            Some("pa")
        );
        // An entry without a login gives its password to any user.
        assert_eq!(
            n.find("h", Some("carol"))
                .and_then(|e| e.password.as_ref().map(Secret::expose)),
            Some("shared")
        );
    }

    #[test]
    fn quotes_and_escapes() {
        let n = Netrc::parse(r#"machine h login "a user" password "pa\"ss word\\" "#);
        assert_eq!(
            n.entries,
            vec![entry(Some("h"), Some("a user"), Some("pa\"ss word\\"))]
        );
        let n = Netrc::parse(r"machine h password back\ slash");
        assert_eq!(
            n.entries[0].password.as_ref().map(Secret::expose),
            Some("back slash")
        );
    }

    #[test]
    fn macdef_bodies_and_comments_are_skipped() {
        let n = Netrc::parse(
            "# my hosts\n\
             machine h login u password p\n\
             macdef init\n\
             cd /pub\n\
             machine fake login evil password evil\n\
             \n\
             machine h2 login u2 # trailing comment\n\
             password p2\n",
        );
        assert_eq!(
            n.entries,
            vec![
                entry(Some("h"), Some("u"), Some("p")),
                entry(Some("h2"), Some("u2"), Some("p2"))
            ]
        );
    }

    #[test]
    fn passwd_is_a_synonym_and_unknown_tokens_are_ignored() {
        let n = Netrc::parse("machine h login u passwd p port 21\n");
        assert_eq!(n.entries, vec![entry(Some("h"), Some("u"), Some("p"))]);
    }

    #[test]
    fn tokens_before_any_machine_are_ignored() {
        let n = Netrc::parse("login stray password stray\nmachine h login u\n");
        assert_eq!(n.entries, vec![entry(Some("h"), Some("u"), None)]);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let text = format!("{:?}", entry(Some("h"), Some("u"), Some("topsecret")));
        assert!(!text.contains("topsecret"), "{text}");
    }

    #[test]
    fn group_or_world_readable_files_with_passwords_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("netrc");
        fs::write(
            &path,
            "machine h login u password p\nmachine anon login anonymous password me@\n",
        )
        .expect("write");
        let set_mode =
            |mode| fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");

        set_mode(0o600);
        assert_eq!(
            lookup(&path, "h", None).and_then(|e| e.password),
            Some("p".into())
        );
        set_mode(0o640);
        assert!(lookup(&path, "h", None).is_none());
        set_mode(0o604);
        assert!(lookup(&path, "h", None).is_none());
        // Anonymous "passwords" are no secret (ftp(1) allows them).
        assert_eq!(
            lookup(&path, "anon", None).and_then(|e| e.login),
            Some("anonymous".into())
        );
    }

    #[test]
    fn entries_without_a_password_are_fine_at_any_mode() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("netrc");
        fs::write(&path, "machine h login u\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            lookup(&path, "h", None).and_then(|e| e.login),
            Some("u".into())
        );
    }

    #[test]
    fn a_missing_file_is_no_entry() {
        assert!(lookup(Path::new("/nonexistent/.netrc"), "h", None).is_none());
    }
}

/// Property tests: no file makes the parser panic or invent entries, and a
/// quoted login and password read back as written.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    use crate::testing::proptest_config as config;

    fn quote(token: &str) -> String {
        let mut out = String::from("\"");
        for c in token.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn text() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(&b"machine"[..]).prop_map(<[u8]>::to_vec),
            Just(&b"default"[..]).prop_map(<[u8]>::to_vec),
            Just(&b"login"[..]).prop_map(<[u8]>::to_vec),
            Just(&b"password"[..]).prop_map(<[u8]>::to_vec),
            Just(&b"macdef"[..]).prop_map(<[u8]>::to_vec),
            Just(&b"\n\n"[..]).prop_map(<[u8]>::to_vec),
            proptest::collection::vec(any::<u8>(), 0..12),
        ];
        proptest::collection::vec(token, 0..24).prop_map(|t| t.join(&b" "[..]))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_file_parses_without_inventing_entries(text in text()) {
            let n = Netrc::parse_bytes(&text);
            // Each entry needs its own `machine` or `default` token.
            prop_assert!(n.entries.len() * 7 <= text.len(), "{} entries", n.entries.len());
            let _ = n.find("host", Some("user"));
            let _ = n.take("host", None);
        }

        #[test]
        fn quoted_tokens_read_back(
            machine in "[a-z0-9][a-z0-9.-]{0,20}",
            login in "\\PC{1,16}",
            password in "(\\PC|[ \t\r\n\"\\\\]){0,24}",
        ) {
            let text = format!(
                "# comment\nmachine {machine}\n\tlogin {} password {}\n",
                quote(&login),
                quote(&password)
            );
            let n = Netrc::parse(&text);
            let e = n.find(&machine, None).ok_or_else(|| TestCaseError::fail(text.clone()))?;
            prop_assert_eq!(e.login.as_deref(), Some(login.as_str()));
            prop_assert_eq!(e.password.as_ref().map(Secret::expose), Some(password.as_str()));
        }
    }
}
