//! Applying the `-o opt[,opt...]` options: splitting a `-o` argument into
//! items, finding each in the table (`option_table`), parsing and
//! range-checking its value, and setting it in the configuration being
//! built.
//!
//! Options are applied one at a time, in order; checks that need all of them
//! at once belong to the caller. The help text for the table is in `help`.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{AddressFamily, HostKeyPolicy, IdMap, IdentityAgent, MountConfig};

pub(super) use super::option_table::{find_option, Opt, OptSpec, IGNORED_HELP, OPTIONS};
use super::remote_arg::{parse_port, to_path};
use super::{set_debug, CliError, Pending};

const MAX_SECONDS: f64 = 1_000_000.0;
const MAX_CONNS_LIMIT: usize = 64;

/// Splits one `-o` argument at commas. A backslash escapes the next byte, as
/// in libfuse, so a path can contain a comma: `-o IdentityFile=a\,b`.
/// Empty items (`ro,,rw`, a trailing comma) are skipped.
pub(super) fn split_option_list(list: &[u8]) -> Vec<Vec<u8>> {
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
pub(super) fn apply_option_item(pending: &mut Pending, item: &[u8]) -> Result<(), CliError> {
    let (name, value) = match item.iter().position(|&c| c == b'=') {
        Some(eq) => (&item[..eq], Some(&item[eq + 1..])),
        None => (item, None),
    };
    let name = String::from_utf8_lossy(name);
    apply_option(pending, &name, value)
}

pub(super) fn apply_option(
    pending: &mut Pending,
    name: &str,
    value: Option<&[u8]>,
) -> Result<(), CliError> {
    let spec = find_option(name, value.is_some())
        .ok_or_else(|| CliError::UnknownOption(name.to_string()))?;
    if spec.opt == Opt::Ignored {
        let item = match value {
            Some(value) => format!("{name}={}", String::from_utf8_lossy(value)),
            None => name.to_string(),
        };
        pending.config.ignored_options.push(item);
        return Ok(());
    }
    if spec.ssh_style && !pending.ssh_given.contains(&spec.opt) {
        pending.ssh_given.push(spec.opt);
    }
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
        Opt::NoExec => config.no_exec = true,
        Opt::Exec => config.no_exec = false,
        Opt::Sync => config.sync_writes = true,
        Opt::Async => config.sync_writes = false,
        Opt::DirSync => config.dir_sync = true,
        Opt::NoAtime => config.no_atime = true,
        Opt::Atime => config.no_atime = false,
        // The kernel mount always has these (fuse/mount.rs).
        Opt::NoSuid | Opt::NoDev => {}
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
                // ssh's other words: `ask` would prompt for an unknown
                // key; rmount refuses it, as with `yes`.
                ("ask", HostKeyPolicy::Yes),
                ("off", HostKeyPolicy::No),
            ])?
        }
        Opt::Idmap => {
            config.idmap = v.choice(&[
                ("none", IdMap::None),
                ("user", IdMap::User),
                ("names", IdMap::Names),
            ])?
        }
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
        Opt::HostName => pending.host_name = Some(v.text()?),
        Opt::User => config.target.user = Some(v.text()?),
        Opt::IdentitiesOnly => {
            config.ssh_options.identities_only = v.choice(&[("yes", true), ("no", false)])?
        }
        Opt::IdentityAgent => {
            config.ssh_options.identity_agent = match v.text()?.as_str() {
                "none" => IdentityAgent::None,
                "SSH_AUTH_SOCK" => IdentityAgent::Environment,
                _ => IdentityAgent::Socket(v.path()?),
            }
        }
        Opt::GlobalKnownHostsFile => config.global_known_hosts = Some(v.path()?),
        Opt::HostKeyAlias => config.ssh_options.host_key_alias = Some(v.text()?),
        Opt::ConnectTimeout => config.ssh_options.connect_timeout = Some(v.seconds(false)?),
        Opt::ProxyJump => pending.proxy_jump = Some(v.text()?),
        Opt::ProxyCommand => pending.proxy_command = Some(v.text()?),
        Opt::AddressFamily => {
            config.ssh_options.address_family = v.choice(&[
                ("any", AddressFamily::Any),
                ("inet", AddressFamily::Inet),
                ("inet6", AddressFamily::Inet6),
            ])?
        }
        Opt::Ciphers => config.ssh_options.algorithms.ciphers = Some(v.text()?),
        Opt::KexAlgorithms => config.ssh_options.algorithms.kex = Some(v.text()?),
        Opt::HostKeyAlgorithms => config.ssh_options.algorithms.host_key = Some(v.text()?),
        Opt::Macs => config.ssh_options.algorithms.macs = Some(v.text()?),
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

    /// Non-empty UTF-8 text without NUL.
    fn text(&self) -> Result<String, CliError> {
        match std::str::from_utf8(self.raw) {
            Ok(t) if !t.is_empty() && !t.contains('\0') => Ok(t.to_string()),
            _ => Err(self.bad("non-empty text")),
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
    /// ssh also takes `true` and `false` for `yes` and `no`.
    fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, CliError> {
        let mut text = std::str::from_utf8(self.raw).unwrap_or_default();
        if self.spec.ssh_style {
            if text.eq_ignore_ascii_case("true") {
                text = "yes";
            } else if text.eq_ignore_ascii_case("false") {
                text = "no";
            }
        }
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

/// Property tests: no `-o` text makes the parser panic, and escaped values
/// split back to what was escaped.
#[cfg(test)]
mod proptests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::split_option_list;
    use crate::cli::{parse, Parsed};

    use crate::testing::proptest_config as config;

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

    proptest! {
        #![proptest_config(config())]

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
