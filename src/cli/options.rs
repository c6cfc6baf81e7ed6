//! The `-o opt[,opt...]` options: the table of every option ([`OPTIONS`]),
//! splitting a `-o` argument into items, parsing and range-checking each
//! value, and setting it in the configuration being built.
//!
//! Options are applied one at a time, in order; checks that need all of them
//! at once belong to the caller. The help text for the table is in `help`.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{AddressFamily, HostKeyPolicy, IdMap, IdentityAgent, MountConfig};

use super::remote_arg::{parse_port, to_path};
use super::{set_debug, CliError, Pending};

/// Every `-o` option. The help text is generated from [`OPTIONS`], so an
/// option cannot be added without documenting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Opt {
    Debug,
    Port,
    IdentityFile,
    PasswordStdin,
    StrictHostKeyChecking,
    UserKnownHostsFile,
    ServerAliveInterval,
    ServerAliveCountMax,
    // OpenSSH configuration keys (also read from ssh_config).
    HostName,
    User,
    IdentitiesOnly,
    IdentityAgent,
    GlobalKnownHostsFile,
    HostKeyAlias,
    ConnectTimeout,
    ProxyJump,
    ProxyCommand,
    AddressFamily,
    Ciphers,
    KexAlgorithms,
    HostKeyAlgorithms,
    Macs,
    Ro,
    Rw,
    // For mount(8), /etc/fstab and systemd.
    NoExec,
    Exec,
    NoSuid,
    NoDev,
    /// Accepted and ignored: options for mount(8), fstab and systemd, and
    /// `suid`/`dev` (rmount always mounts nosuid,nodev). Several names share
    /// it; `--help` lists them in one entry.
    Ignored,
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

pub(super) struct OptSpec {
    pub(super) name: &'static str,
    pub(super) opt: Opt,
    /// How to write the value in help and errors; `None` for a flag.
    pub(super) value: Option<&'static str>,
    /// ssh's options are case-insensitive in ssh, so they are here too;
    /// these are also the keys read from ssh_config.
    pub(super) ssh_style: bool,
    pub(super) help: &'static str,
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

/// An option that is accepted with or without a value and ignored.
const fn ignored(name: &'static str, value: Option<&'static str>) -> OptSpec {
    OptSpec {
        name,
        opt: Opt::Ignored,
        value,
        ssh_style: false,
        help: "",
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

pub(super) const OPTIONS: &[OptSpec] = &[
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
    // mount(8), /etc/fstab and systemd: what mount(8) and mount.fuse3 pass on.
    flag(
        "noexec",
        Opt::NoExec,
        "do not let programs on the mount run",
    ),
    flag(
        "exec",
        Opt::Exec,
        "let programs on the mount run (the default; undoes an earlier noexec)",
    ),
    flag(
        "nosuid",
        Opt::NoSuid,
        "ignore set-user-ID and set-group-ID bits (always in effect)",
    ),
    flag("nodev", Opt::NoDev, "no device files (always in effect)"),
    // `--help` shows these in one entry, with IGNORED_HELP.
    ignored("_netdev", None),
    ignored("noauto", None),
    ignored("auto", None),
    ignored("nofail", None),
    ignored("user", None),
    ignored("users", None),
    ignored("nouser", None),
    ignored("defaults", None),
    ignored("comment", Some("TEXT")),
    // Any name starting with "x-": x-systemd.automount, x-gvfs-show, ...
    ignored("x-*", None),
    ignored("suid", None),
    ignored("dev", None),
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
        "none|user|names",
        "user: files of the remote login user appear as yours; names: owners \
         and groups are matched by name (SFTP, OpenSSH 9.1 or later)",
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
    // OpenSSH configuration keys: also read from ssh_config (see -F); a
    // value given here wins over the file's.
    ssh(
        "HostName",
        Opt::HostName,
        "NAME",
        "the host to connect to (%h: the host in REMOTE)",
    ),
    ssh(
        "User",
        Opt::User,
        "NAME",
        "the remote user, unless REMOTE names one",
    ),
    ssh(
        "IdentitiesOnly",
        Opt::IdentitiesOnly,
        "yes|no",
        "yes: only the identity files, never the agent's keys",
    ),
    ssh(
        "IdentityAgent",
        Opt::IdentityAgent,
        "PATH|none|SSH_AUTH_SOCK",
        "the ssh-agent socket (default: $SSH_AUTH_SOCK)",
    ),
    ssh(
        "GlobalKnownHostsFile",
        Opt::GlobalKnownHostsFile,
        "PATH",
        "system known_hosts file (default /etc/ssh/ssh_known_hosts)",
    ),
    ssh(
        "HostKeyAlias",
        Opt::HostKeyAlias,
        "NAME",
        "the name the host key is looked up and recorded under in known_hosts",
    ),
    ssh(
        "ConnectTimeout",
        Opt::ConnectTimeout,
        "SECONDS",
        "bound on the TCP connect (default: timeout)",
    ),
    ssh(
        "ProxyJump",
        Opt::ProxyJump,
        "[USER@]HOST[:PORT][,...]|none",
        "reach the server through these SSH jump hosts (same as -J)",
    ),
    ssh(
        "ProxyCommand",
        Opt::ProxyCommand,
        "COMMAND|none",
        "speak SSH over this command's stdin/stdout (%h %p %r: host, port, user)",
    ),
    ssh(
        "AddressFamily",
        Opt::AddressFamily,
        "any|inet|inet6",
        "which addresses of the host name to use",
    ),
    ssh(
        "Ciphers",
        Opt::Ciphers,
        "LIST",
        "ciphers, as in ssh (LIST, +LIST, -LIST, ^LIST)",
    ),
    ssh(
        "KexAlgorithms",
        Opt::KexAlgorithms,
        "LIST",
        "key exchange algorithms, as in ssh",
    ),
    ssh(
        "HostKeyAlgorithms",
        Opt::HostKeyAlgorithms,
        "LIST",
        "host key algorithms, as in ssh",
    ),
    ssh("MACs", Opt::Macs, "LIST", "MAC algorithms, as in ssh"),
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

/// The help of every [`Opt::Ignored`] option, shown once for all of them.
pub(super) const IGNORED_HELP: &str = "for mount(8), /etc/fstab and systemd: accepted, \
     with any value, and ignored (-d logs them). rmount always mounts \
     nosuid,nodev, so suid and dev (which mount.fuse3 adds) change nothing";

/// The option `name` names. `user` is both mount(8)'s flag (no value) and
/// ssh's `User=NAME`: an ssh-style option wins when a value is given.
pub(super) fn find_option(name: &str, has_value: bool) -> Option<&'static OptSpec> {
    let ssh_style = || {
        OPTIONS
            .iter()
            .find(|spec| spec.ssh_style && spec.name.eq_ignore_ascii_case(name))
    };
    if has_value {
        if let Some(spec) = ssh_style() {
            return Some(spec);
        }
    }
    OPTIONS
        .iter()
        .find(|spec| {
            spec.name == name
                || spec
                    .name
                    .strip_suffix('*')
                    .is_some_and(|prefix| name.starts_with(prefix))
        })
        .or_else(ssh_style)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_table_is_consistent() {
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in &OPTIONS[i + 1..] {
                // mount(8)'s `user` flag and ssh's `User=NAME` share a
                // name; `find_option` tells them apart by the value.
                let user_pair = a.name.eq_ignore_ascii_case("user") && a.ssh_style != b.ssh_style;
                assert!(
                    !a.name.eq_ignore_ascii_case(b.name) || user_pair,
                    "{}",
                    a.name
                );
                if a.opt != Opt::Ignored {
                    assert_ne!(a.opt, b.opt, "{}", a.name);
                }
            }
            // Only ignored options may lack their own help.
            assert_eq!(a.help.is_empty(), a.opt == Opt::Ignored, "{}", a.name);
        }
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
