//! The table of every `-o` option ([`OPTIONS`]): its name, what it sets,
//! the value it takes and its help line, and finding an option by name.
//! It only describes; applying a value is `options`, and the help text is
//! generated from it in `help`, so an option cannot be added undocumented.

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
    Sync,
    Async,
    DirSync,
    NoAtime,
    Atime,
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
    flag(
        "sync",
        Opt::Sync,
        "every write reaches the server before write(2) returns (slow)",
    ),
    flag(
        "async",
        Opt::Async,
        "writes are sent when the file is closed or synced (the default; undoes an earlier sync)",
    ),
    flag(
        "dirsync",
        Opt::DirSync,
        "directory changes are synchronous (they always are: accepted for fstab lines)",
    ),
    flag(
        "noatime",
        Opt::NoAtime,
        "the kernel keeps no access times (rmount never changes the server's on a read)",
    ),
    flag("atime", Opt::Atime, "undoes an earlier noatime"),
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
    // Access-time policies: a read never changes the server's access time,
    // so there is nothing for them to choose.
    ignored("relatime", None),
    ignored("norelatime", None),
    ignored("strictatime", None),
    ignored("nostrictatime", None),
    ignored("diratime", None),
    ignored("nodiratime", None),
    ignored("lazytime", None),
    ignored("nolazytime", None),
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
