//! The OpenSSH client configuration files, read as ssh reads them: `-F FILE`
//! or else `~/.ssh/config` then `/etc/ssh/ssh_config`; the first value
//! obtained for a key wins (`IdentityFile` accumulates); `Host` patterns
//! with `*`, `?` and `!`; `Include` (globs, relative to `~/.ssh` or
//! `/etc/ssh`); `Match` on `all`, `host`, `originalhost`, `user` and
//! `localuser`, with a warning for criteria it cannot evaluate (the block is
//! then skipped). Keys it does not know are ignored.
//!
//! It only collects the values that apply to one host, as text with their
//! origin (`file:line`); what a value means is the `-o` table's business
//! (`options`), and which values win over the command line is `ssh_host`'s.
//! It reads files and never touches the network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::CliError;

/// Where the configuration comes from (`-F`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ConfigSource {
    /// `~/.ssh/config`, then `/etc/ssh/ssh_config`; missing files are fine.
    Default,
    /// `-F FILE`: this file only, which must exist.
    File(PathBuf),
    /// `-F none`.
    None,
}

pub(super) const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// What a lookup is about.
#[derive(Clone, Debug)]
pub(super) struct Query<'a> {
    /// The host as given (an alias, perhaps), for `Host` and `Match originalhost`.
    pub original_host: &'a str,
    /// The remote user given on the command line, if any.
    pub user: Option<&'a str>,
    pub local_user: &'a str,
    pub home: &'a Path,
}

/// One value from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// The arguments, unquoted.
    pub args: Vec<String>,
    /// The rest of the line after the key, as written (for `ProxyCommand`).
    pub raw: String,
    /// `file:line`, for messages.
    pub origin: String,
    /// Position among all values applied, for "whichever came first".
    pub order: usize,
}

/// The values that apply to one host.
#[derive(Clone, Debug, Default)]
pub(super) struct HostValues {
    /// Lower-case key → the first value.
    first: HashMap<String, Entry>,
    /// Every `IdentityFile`, in order.
    pub identity_files: Vec<Entry>,
    /// Things the user should know (a `Match` that cannot be evaluated).
    pub warnings: Vec<String>,
}

impl HostValues {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.first.get(&key.to_ascii_lowercase())
    }

    /// Every key with its first value, in file order.
    pub fn entries(&self) -> Vec<(&str, &Entry)> {
        let mut all: Vec<(&str, &Entry)> =
            self.first.iter().map(|(k, e)| (k.as_str(), e)).collect();
        all.sort_by_key(|(_, e)| e.order);
        all
    }

    fn set(&mut self, key: &str, entry: Entry) {
        if key == "identityfile" {
            self.identity_files.push(entry);
        } else {
            self.first.entry(key.to_string()).or_insert(entry);
        }
    }
}

/// Nested `Include`s deeper than this are refused, as ssh does.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Collects the values for `q` from `source`.
pub(super) fn lookup(source: &ConfigSource, q: &Query) -> Result<HostValues, CliError> {
    let mut reader = Reader {
        q,
        values: HostValues::default(),
        order: 0,
    };
    match source {
        ConfigSource::None => {}
        ConfigSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::SshConfig {
                origin: path.display().to_string(),
                message: format!("cannot read: {e}"),
            })?;
            reader.read(&text, path, Base::User, 0)?;
        }
        ConfigSource::Default => {
            for (path, base) in [
                (q.home.join(".ssh/config"), Base::User),
                (PathBuf::from(SYSTEM_CONFIG), Base::System),
            ] {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    reader.read(&text, &path, base, 0)?;
                }
            }
        }
    }
    Ok(reader.values)
}

/// What a relative `Include` is relative to.
#[derive(Clone, Copy)]
enum Base {
    User,
    System,
}

struct Reader<'q, 'a> {
    q: &'q Query<'a>,
    values: HostValues,
    order: usize,
}

impl Reader<'_, '_> {
    fn read(&mut self, text: &str, file: &Path, base: Base, depth: usize) -> Result<(), CliError> {
        let mut active = true;
        for (n, line) in text.lines().enumerate() {
            let origin = format!("{}:{}", file.display(), n + 1);
            let Some((key, raw)) = split_key(line) else {
                continue;
            };
            let args = split_args(raw).map_err(|message| CliError::SshConfig {
                origin: origin.clone(),
                message,
            })?;
            match key.as_str() {
                "host" => active = host_matches(&args, self.q.original_host),
                "match" => active = self.match_line(&args, &origin)?,
                "include" if active => {
                    for arg in &args {
                        for path in include_paths(arg, base, self.q.home) {
                            if depth + 1 > MAX_INCLUDE_DEPTH {
                                return Err(CliError::SshConfig {
                                    origin,
                                    message: "Include nested too deeply".into(),
                                });
                            }
                            if let Ok(text) = std::fs::read_to_string(&path) {
                                self.read(&text, &path, base, depth + 1)?;
                            }
                        }
                    }
                }
                "include" => {}
                _ if active && !args.is_empty() => {
                    self.order += 1;
                    let entry = Entry {
                        args,
                        raw: raw.trim().to_string(),
                        origin,
                        order: self.order,
                    };
                    self.values.set(&key, entry);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Evaluates a `Match` line's criteria (all must hold).
    fn match_line(&mut self, args: &[String], origin: &str) -> Result<bool, CliError> {
        let bad = |message: String| CliError::SshConfig {
            origin: origin.to_string(),
            message,
        };
        let mut result = true;
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let (negate, criterion) = match word.strip_prefix('!') {
                Some(rest) => (true, rest.to_ascii_lowercase()),
                None => (false, word.to_ascii_lowercase()),
            };
            if criterion == "all" {
                result &= !negate;
                continue;
            }
            if criterion == "canonical" || criterion == "final" {
                self.values.warnings.push(format!(
                    "{origin}: 'Match {criterion}' cannot be evaluated (rmount reads the \
                     configuration once); the block is skipped"
                ));
                return Ok(false);
            }
            let Some(arg) = words.next() else {
                return Err(bad(format!("Match {criterion} needs an argument")));
            };
            let patterns: Vec<&str> = arg.split(',').collect();
            let holds = match criterion.as_str() {
                "host" => {
                    let host = self.current_host();
                    list_matches(&patterns, &host.to_ascii_lowercase(), true)
                }
                "originalhost" => {
                    list_matches(&patterns, &self.q.original_host.to_ascii_lowercase(), true)
                }
                "user" => list_matches(&patterns, &self.current_user(), false),
                "localuser" => list_matches(&patterns, self.q.local_user, false),
                other => {
                    self.values.warnings.push(format!(
                        "{origin}: 'Match {other}' cannot be evaluated by rmount; the block is \
                         skipped"
                    ));
                    return Ok(false);
                }
            };
            result &= holds != negate;
        }
        Ok(result)
    }

    /// The host name as ssh knows it at this point: `HostName` if set.
    fn current_host(&self) -> String {
        match self.values.get("hostname").and_then(|e| e.args.first()) {
            Some(name) => name.replace("%h", self.q.original_host),
            None => self.q.original_host.to_string(),
        }
    }

    /// The remote user at this point: the command line's, else `User`,
    /// else the local user.
    fn current_user(&self) -> String {
        if let Some(user) = self.q.user {
            return user.to_string();
        }
        match self.values.get("user").and_then(|e| e.args.first()) {
            Some(user) => user.clone(),
            None => self.q.local_user.to_string(),
        }
    }
}

/// The lower-case key and the rest of a line; `None` for blank and comment
/// lines. `Key value` and `Key=value` are both accepted.
fn split_key(line: &str) -> Option<(String, &str)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start();
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start();
    }
    if key.is_empty() {
        return None;
    }
    Some((key, rest))
}

/// Splits arguments as ssh does: whitespace separates, double or single
/// quotes group, a backslash escapes a quote or backslash, and an unquoted
/// `#` at the start of an argument ends the line.
pub(super) fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) if matches!(chars.peek(), Some('"' | '\'' | '\\')) => {
                    arg.extend(chars.next());
                }
                (q @ ('"' | '\''), None) => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => arg.push(c),
            }
        }
        if quote.is_some() {
            return Err("unterminated quote".into());
        }
        args.push(arg);
    }
    Ok(args)
}

/// ssh's `*`/`?` pattern match.
pub(super) fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| wildcard(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && wildcard(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && wildcard(rest, &s[1..]),
    }
}

/// A pattern list: false if a `!pattern` matches, else whether any other
/// pattern matches. Host names compare case-insensitively.
pub(super) fn list_matches(patterns: &[&str], name: &str, fold_case: bool) -> bool {
    let mut any = false;
    for p in patterns {
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, *p),
        };
        let p = if fold_case {
            p.to_ascii_lowercase()
        } else {
            p.to_string()
        };
        if wildcard(p.as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            any = true;
        }
    }
    any
}

fn host_matches(args: &[String], host: &str) -> bool {
    let patterns: Vec<&str> = args.iter().map(String::as_str).collect();
    list_matches(&patterns, &host.to_ascii_lowercase(), true)
}

/// The files an `Include` argument names, sorted, as ssh's glob(3) gives them.
fn include_paths(arg: &str, base: Base, home: &Path) -> Vec<PathBuf> {
    let expanded = if let Some(rest) = arg.strip_prefix("~/") {
        home.join(rest)
    } else if Path::new(arg).is_absolute() {
        PathBuf::from(arg)
    } else {
        match base {
            Base::User => home.join(".ssh").join(arg),
            Base::System => Path::new("/etc/ssh").join(arg),
        }
    };
    let Some(pattern) = expanded.to_str() else {
        return Vec::new();
    };
    match glob::glob(pattern) {
        Ok(paths) => {
            let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            found.sort();
            found
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, host: &str, user: Option<&str>) -> HostValues {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let q = Query {
            original_host: host,
            user,
            local_user: "me",
            home: dir.path(),
        };
        lookup(&ConfigSource::File(path), &q).unwrap()
    }

    fn first(v: &HostValues, key: &str) -> Option<String> {
        v.get(key).map(|e| e.args.join(" "))
    }

    #[test]
    fn first_value_wins_and_host_patterns() {
        let text = "\
# comment
Host web?? !web13
    HostName %h.example.com
    Port 2200
Host web*
    Port 2300
    User=deploy
Host *
    Port 22
    IdentityFile ~/.ssh/a
    IdentityFile \"/keys/with space\"
";
        let v = values(text, "WEB12", None);
        assert_eq!(first(&v, "HostName").as_deref(), Some("%h.example.com"));
        assert_eq!(first(&v, "port").as_deref(), Some("2200"));
        assert_eq!(first(&v, "user").as_deref(), Some("deploy"));
        let files: Vec<&str> = v
            .identity_files
            .iter()
            .map(|e| e.args[0].as_str())
            .collect();
        assert_eq!(files, ["~/.ssh/a", "/keys/with space"]);
        let v = values(text, "web13", None);
        assert_eq!(first(&v, "hostname"), None);
        assert_eq!(first(&v, "port").as_deref(), Some("2300"));
        let v = values(text, "other", None);
        assert_eq!(first(&v, "port").as_deref(), Some("22"));
        assert_eq!(first(&v, "user"), None);
        assert!(v.get("port").unwrap().origin.ends_with(":9"));
    }

    #[test]
    fn match_criteria() {
        let text = "\
Host alias
    HostName real.example
Match host real.example user alice
    Port 1
Match originalhost alias !user bob
    Port 2
Match exec \"true\"
    Port 3
Match localuser me
    User fromlocal
Match all
    Port 4
";
        assert_eq!(
            first(&values(text, "alias", Some("alice")), "port").as_deref(),
            Some("1")
        );
        assert_eq!(
            first(&values(text, "alias", Some("carol")), "port").as_deref(),
            Some("2")
        );
        let v = values(text, "alias", Some("bob"));
        assert_eq!(first(&v, "port").as_deref(), Some("4"));
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(v.warnings[0].contains("Match exec"), "{:?}", v.warnings);
        assert_eq!(first(&v, "user").as_deref(), Some("fromlocal"));
        // `Match user` sees the User set so far when none is given.
        let v = values("User alice\nMatch user alice\n Port 7\n", "h", None);
        assert_eq!(first(&v, "port").as_deref(), Some("7"));
    }

    #[test]
    fn include_globs_relative_to_dot_ssh_and_keeps_the_block() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
        std::fs::write(ssh.join("conf.d/b.conf"), "Host two\n  Port 2\n").unwrap();
        std::fs::write(ssh.join("conf.d/a.conf"), "Port 1\nHost *\n  User inc\n").unwrap();
        let main = ssh.join("config");
        std::fs::write(
            &main,
            "Host one two\n  Include conf.d/*.conf\n  HostKeyAlias after\nHost skipped\n  Include conf.d/*\n",
        )
        .unwrap();
        let look = |host: &str| {
            let q = Query {
                original_host: host,
                user: None,
                local_user: "me",
                home: dir.path(),
            };
            lookup(&ConfigSource::File(main.clone()), &q).unwrap()
        };
        let v = look("one");
        assert_eq!(first(&v, "port").as_deref(), Some("1"));
        assert_eq!(first(&v, "user").as_deref(), Some("inc"));
        // After the Include, the including block's state is back.
        assert_eq!(first(&v, "hostkeyalias").as_deref(), Some("after"));
        let v = look("other");
        assert_eq!(first(&v, "port"), None);
        assert_eq!(first(&v, "hostkeyalias"), None);
    }

    #[test]
    fn missing_file_is_an_error_and_none_reads_nothing() {
        let q = Query {
            original_host: "h",
            user: None,
            local_user: "me",
            home: Path::new("/nonexistent"),
        };
        let err = lookup(&ConfigSource::File("/nonexistent/cfg".into()), &q).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cfg"), "{err}");
        assert!(lookup(&ConfigSource::None, &q)
            .unwrap()
            .entries()
            .is_empty());
    }

    #[test]
    fn argument_splitting() {
        assert_eq!(
            split_args("a  \"b c\" 'd\"e' f\\\"g # x").unwrap(),
            ["a", "b c", "d\"e", "f\"g"]
        );
        assert!(split_args("\"open").is_err());
        assert_eq!(split_key("  Port=22").unwrap(), ("port".to_string(), "22"));
        assert_eq!(split_key("Port = 22").unwrap(), ("port".to_string(), "22"));
        assert_eq!(split_key("   # c"), None);
    }

    #[test]
    fn pattern_lists() {
        assert!(list_matches(
            &["*.example", "!bad.example"],
            "good.example",
            true
        ));
        assert!(!list_matches(
            &["*.example", "!bad.example"],
            "bad.example",
            true
        ));
        assert!(!list_matches(&["!x"], "y", true));
        assert!(list_matches(&["h?st"], "host", true));
    }
}

/// Property tests: any file text is read or refused without panicking, and
/// the first value for a key is the first one written in a matching block.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::proptest_config as config;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_text_is_read_or_refused(text in "[ -~\\n\\t]{0,200}", host in "[a-z.]{1,8}") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config");
            std::fs::write(&path, &text).unwrap();
            let q = Query { original_host: &host, user: None, local_user: "me", home: dir.path() };
            let _ = lookup(&ConfigSource::File(path), &q);
        }

        #[test]
        fn first_matching_value_wins(
            blocks in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec((0usize..3, 0u16..1000), 0..4)),
                0..6,
            ),
        ) {
            const KEYS: [&str; 3] = ["Port", "User", "HostKeyAlias"];
            let mut text = String::new();
            let mut want: [Option<String>; 3] = Default::default();
            for (matches, lines) in &blocks {
                text.push_str(if *matches { "Host target*\n" } else { "Host other\n" });
                for (k, v) in lines {
                    text.push_str(&format!("  {} v{v}\n", KEYS[*k]));
                    if *matches && want[*k].is_none() {
                        want[*k] = Some(format!("v{v}"));
                    }
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config");
            std::fs::write(&path, &text).unwrap();
            let q = Query { original_host: "target1", user: None, local_user: "me", home: dir.path() };
            let v = lookup(&ConfigSource::File(path), &q).unwrap();
            for (k, key) in KEYS.iter().enumerate() {
                let got = v.get(key).map(|e| e.args[0].clone());
                prop_assert_eq!(&got, &want[k], "{}", text);
            }
        }

        #[test]
        fn quoted_arguments_split_back(args in proptest::collection::vec("[a-z0-9 #'\\\\/.-]{1,10}", 1..5)) {
            let line: Vec<String> = args
                .iter()
                .map(|a| format!("\"{}\"", a.replace('\\', "\\\\")))
                .collect();
            prop_assert_eq!(split_args(&line.join(" ")).unwrap(), args);
        }
    }
}
