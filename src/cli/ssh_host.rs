//! Resolving the SSH settings of the target and of each jump host as ssh
//! does: the command line first (REMOTE, -p, -i, -J and ssh-style `-o`
//! options win), then the values the OpenSSH configuration gives for that
//! host (`ssh_config`), then the defaults; then `HostName`, the `%` tokens
//! and `~` are expanded and `ProxyJump` becomes a list of jump hosts, each
//! resolved the same way from its own configuration (the first one may be
//! reached through its own `ProxyJump` or `ProxyCommand`).
//!
//! Values are parsed and checked by the `-o` table (`options`), so a file
//! and the command line accept the same words. Nothing here connects.

use std::path::{Path, PathBuf};

use crate::config::{IdentityAgent, JumpHost, MountConfig, Protocol, RemotePath, Target};
use crate::remote::open::local_user;
use crate::remote::ssh::home_dir;

use super::options::{apply_option, find_option, Opt};
use super::ssh_config::{lookup, ConfigSource, HostValues, Query};
use super::{CliError, Pending};

/// Jump hosts reached through jump hosts' own `ProxyJump`, at most this deep.
const MAX_JUMP_DEPTH: usize = 8;

/// Fills in the target's SSH settings from the configuration files and
/// resolves its jump hosts or proxy command.
pub(super) fn resolve_target(pending: &mut Pending) -> Result<(), CliError> {
    let home = home_dir().unwrap_or_else(|| PathBuf::from("/"));
    let local = local_user();
    let values = values_for(pending, &home, &local)?;
    pending
        .config
        .config_warnings
        .extend(values.warnings.iter().cloned());
    apply_values(pending, &values)?;
    let tokens = finish_host(pending, &home, &local)?;
    if let Some(spec) = pending.proxy_jump.clone() {
        let mut warnings = Vec::new();
        pending.config.jumps =
            resolve_jumps(&spec, &pending.ssh_source, &home, &local, 0, &mut warnings)?;
        pending.config.config_warnings.extend(warnings);
    }
    if pending.config.jumps.is_empty() {
        if let Some(command) = pending.proxy_command.as_deref() {
            if command != "none" {
                pending.config.proxy_command = Some(tokens.expand(command, "ProxyCommand")?);
            }
        }
    }
    Ok(())
}

fn values_for(pending: &Pending, home: &Path, local: &str) -> Result<HostValues, CliError> {
    let query = Query {
        original_host: &pending.config.target.host,
        user: pending.config.target.user.as_deref(),
        local_user: local,
        home,
    };
    lookup(&pending.ssh_source, &query)
}

/// Applies the file's values for every ssh-style option the command line
/// did not set. `IdentityFile`s are added after the command line's.
fn apply_values(pending: &mut Pending, values: &HostValues) -> Result<(), CliError> {
    let given = pending.ssh_given.clone();
    let proxy_given = given.contains(&Opt::ProxyJump) || given.contains(&Opt::ProxyCommand);
    // ProxyJump and ProxyCommand exclude each other: the first one wins.
    let first_proxy = values
        .entries()
        .into_iter()
        .find(|(key, _)| *key == "proxyjump" || *key == "proxycommand")
        .map(|(key, _)| key.to_string());
    for (key, entry) in values.entries() {
        let Some(spec) = find_option(key, true).filter(|s| s.ssh_style) else {
            tracing::debug!("{}: {key} is not used by rmount", entry.origin);
            continue;
        };
        let skip = given.contains(&spec.opt)
            || (spec.opt == Opt::Port && pending.port.is_some())
            || (spec.opt == Opt::User && pending.config.target.user.is_some())
            || (matches!(spec.opt, Opt::ProxyJump | Opt::ProxyCommand)
                && (proxy_given || first_proxy.as_deref() != Some(key)));
        if skip {
            continue;
        }
        let value = match spec.opt {
            Opt::ProxyCommand => entry.raw.clone(),
            _ => entry.args[0].clone(),
        };
        apply_option(pending, spec.name, Some(value.as_bytes())).map_err(|e| {
            CliError::SshConfig {
                origin: entry.origin.clone(),
                message: e.to_string(),
            }
        })?;
    }
    for entry in &values.identity_files {
        if entry.args[0] == "none" {
            continue;
        }
        apply_option(pending, "IdentityFile", Some(entry.args[0].as_bytes())).map_err(|e| {
            CliError::SshConfig {
                origin: entry.origin.clone(),
                message: e.to_string(),
            }
        })?;
    }
    Ok(())
}

/// The `%` tokens of one host.
struct Tokens {
    host: String,
    original: String,
    port: u16,
    user: String,
    local: String,
    home: String,
}

impl Tokens {
    /// Expands `%h %n %p %r %u %d %%` in `text`; another token is an error.
    fn expand(&self, text: &str, key: &str) -> Result<String, CliError> {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('h') => out.push_str(&self.host),
                Some('n') => out.push_str(&self.original),
                Some('p') => out.push_str(&self.port.to_string()),
                Some('r') => out.push_str(&self.user),
                Some('u') => out.push_str(&self.local),
                Some('d') => out.push_str(&self.home),
                other => {
                    return Err(CliError::BadValue {
                        name: key.to_string(),
                        value: text.to_string(),
                        expected: format!(
                            "only the tokens %h %n %p %r %u %d %% (not %{})",
                            other.map(String::from).unwrap_or_default()
                        ),
                    })
                }
            }
        }
        Ok(out)
    }

    /// `~/` then the tokens, for a local path (left alone if not UTF-8).
    fn path(&self, path: &Path, key: &str) -> Result<PathBuf, CliError> {
        let Some(text) = path.to_str() else {
            return Ok(path.to_path_buf());
        };
        let text = match text.strip_prefix("~/") {
            Some(rest) => format!("{}/{rest}", self.home.trim_end_matches('/')),
            None if text == "~" => self.home.clone(),
            None => text.to_string(),
        };
        Ok(PathBuf::from(self.expand(&text, key)?))
    }
}

/// `HostName`, the port's default, and `~`/tokens in the local paths.
fn finish_host(pending: &mut Pending, home: &Path, local: &str) -> Result<Tokens, CliError> {
    let original = pending.config.target.host.clone();
    let port = pending
        .port
        .unwrap_or_else(|| MountConfig::default_port(Protocol::Sftp, false));
    let mut tokens = Tokens {
        host: original.clone(),
        original: original.clone(),
        port,
        user: pending
            .config
            .target
            .user
            .clone()
            .unwrap_or_else(|| local.to_string()),
        local: local.to_string(),
        home: home.to_string_lossy().into_owned(),
    };
    if let Some(name) = pending.host_name.clone() {
        let host = tokens.expand(&name, "HostName")?;
        if host.is_empty() || host.contains(['/', '\0']) || host.contains(char::is_whitespace) {
            return Err(CliError::BadValue {
                name: "HostName".into(),
                value: name,
                expected: "a host name or address".into(),
            });
        }
        tokens.host = host.clone();
        pending.config.target.host = host;
    }
    let cfg = &mut pending.config;
    for file in &mut cfg.identity_files {
        *file = tokens.path(file, "IdentityFile")?;
    }
    for p in [&mut cfg.user_known_hosts, &mut cfg.global_known_hosts]
        .into_iter()
        .flatten()
    {
        *p = tokens.path(p, "known hosts file")?;
    }
    if let IdentityAgent::Socket(p) = &mut cfg.ssh_options.identity_agent {
        *p = tokens.path(p, "IdentityAgent")?;
    }
    pending.port = Some(port);
    Ok(tokens)
}

/// One `ProxyJump` element: `[user@]host[:port]` or `ssh://[user@]host[:port]`.
pub(super) fn parse_jump(spec: &str) -> Result<(Option<String>, String, Option<u16>), CliError> {
    let bad = |why: &str| CliError::BadValue {
        name: "ProxyJump".into(),
        value: spec.to_string(),
        expected: format!("[user@]host[:port][,...] ({why})"),
    };
    let text = spec.strip_prefix("ssh://").unwrap_or(spec);
    let text = text.strip_suffix('/').unwrap_or(text);
    let (user, hostport) = match text.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err(bad("empty user")),
        None => (None, text),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(bad("text after ']'")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.contains(['/', '\0', ',']) || host.contains(char::is_whitespace) {
        return Err(bad("bad host"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(bad("bad port")),
        },
    };
    Ok((user, host.to_string(), port))
}

/// The jump hosts of a `ProxyJump` value, each with its own settings. The
/// first one's own `ProxyJump` goes in front, as ssh chains them.
fn resolve_jumps(
    spec: &str,
    source: &ConfigSource,
    home: &Path,
    local: &str,
    depth: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<JumpHost>, CliError> {
    if spec.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    if depth >= MAX_JUMP_DEPTH {
        return Err(CliError::BadValue {
            name: "ProxyJump".into(),
            value: spec.to_string(),
            expected: format!("at most {MAX_JUMP_DEPTH} nested jump hosts"),
        });
    }
    let mut hops = Vec::new();
    for (i, part) in spec.split(',').enumerate() {
        let (user, host, port) = parse_jump(part)?;
        let target = Target {
            protocol: Protocol::Sftp,
            host,
            port: 0,
            user,
            path: RemotePath::Home(PathBuf::new()),
        };
        let mut p = Pending {
            config: MountConfig::new(target, PathBuf::new()),
            port,
            ssh_source: source.clone(),
            ssh_given: Vec::new(),
            host_name: None,
            proxy_jump: None,
            proxy_command: None,
        };
        let values = values_for(&p, home, local)?;
        warnings.extend(values.warnings.iter().cloned());
        apply_values(&mut p, &values)?;
        let tokens = finish_host(&mut p, home, local)?;
        let mut proxy_command = None;
        let own_command = p.proxy_command.as_deref().filter(|c| *c != "none");
        if i == 0 {
            if let Some(inner) = p.proxy_jump.clone() {
                hops.extend(resolve_jumps(
                    &inner,
                    source,
                    home,
                    local,
                    depth + 1,
                    warnings,
                )?);
            } else if let Some(command) = own_command {
                proxy_command = Some(tokens.expand(command, "ProxyCommand")?);
            }
        } else if own_command.is_some() {
            warnings.push(format!(
                "ProxyCommand of jump host {} is not used: it is reached through the jump host \
                 before it",
                p.config.target.host
            ));
        }
        let cfg = p.config;
        hops.push(JumpHost {
            host: cfg.target.host,
            port: p.port.unwrap_or(22),
            user: cfg.target.user,
            identity_files: cfg.identity_files,
            host_key_policy: cfg.host_key_policy,
            user_known_hosts: cfg.user_known_hosts,
            global_known_hosts: cfg.global_known_hosts,
            options: cfg.ssh_options,
            proxy_command,
        });
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::parse_jump;
    use crate::cli::{parse, CliError, Parsed};
    use crate::config::{AddressFamily, HostKeyPolicy, IdentityAgent, MountConfig};
    use crate::remote::ssh::home_dir;

    fn mount(config: &str, args: &[&str]) -> Result<MountConfig, CliError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssh_config");
        std::fs::write(&path, config).unwrap();
        let mut argv = vec!["rmount", "-F", path.to_str().unwrap()];
        argv.extend_from_slice(args);
        match parse(argv)? {
            Parsed::Mount(cfg) => Ok(cfg),
            Parsed::Exit { text, .. } => panic!("exit: {text}"),
            Parsed::Control(_) => panic!("a subcommand, not a mount"),
        }
    }

    const CONFIG: &str = "\
Host myalias
    HostName %h.example.net
    User alice
    Port 2222
    IdentityFile ~/.ssh/id_%h_%r_%p
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile ~/kh
    GlobalKnownHostsFile /etc/kh
    StrictHostKeyChecking accept-new
    HostKeyAlias pinned
    ServerAliveInterval 7
    ServerAliveCountMax 5
    ConnectTimeout 3
    AddressFamily inet
    Ciphers aes256-ctr
    KexAlgorithms -diffie-hellman-group1-sha1
    HostKeyAlgorithms ssh-ed25519
    MACs hmac-sha2-256
    SendEnv LANG
    SomeFutureKey whatever
Host jump1
    HostName 10.0.0.1
    User hopper
    Port 2200
    IdentityFile /keys/jump1
    ProxyJump gate
Host gate
    User gatekeeper
Host cmd
    ProxyCommand nc -x proxy %h %p # ours
    ProxyJump jump1
Host viacmd
    HostName 10.0.0.9
    ProxyCommand connect-to %h %p
";

    #[test]
    fn an_alias_resolves_as_ssh_would() {
        let cfg = mount(CONFIG, &["myalias:srv", "/mnt"]).unwrap();
        let home = home_dir().unwrap_or_else(|| PathBuf::from("/"));
        assert_eq!(cfg.target.host, "myalias.example.net");
        assert_eq!(cfg.target.user.as_deref(), Some("alice"));
        assert_eq!(cfg.target.port, 2222);
        assert_eq!(
            cfg.identity_files,
            [home.join(".ssh/id_myalias.example.net_alice_2222")]
        );
        assert!(cfg.ssh_options.identities_only);
        assert_eq!(cfg.ssh_options.identity_agent, IdentityAgent::None);
        assert_eq!(cfg.user_known_hosts, Some(home.join("kh")));
        assert_eq!(cfg.global_known_hosts, Some(PathBuf::from("/etc/kh")));
        assert_eq!(cfg.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(cfg.ssh_options.host_key_alias.as_deref(), Some("pinned"));
        assert_eq!(cfg.server_alive_interval.as_secs(), 7);
        assert_eq!(cfg.server_alive_count_max, 5);
        assert_eq!(cfg.ssh_options.connect_timeout.unwrap().as_secs(), 3);
        assert_eq!(cfg.ssh_options.address_family, AddressFamily::Inet);
        let algs = &cfg.ssh_options.algorithms;
        assert_eq!(algs.ciphers.as_deref(), Some("aes256-ctr"));
        assert_eq!(algs.kex.as_deref(), Some("-diffie-hellman-group1-sha1"));
        assert_eq!(algs.host_key.as_deref(), Some("ssh-ed25519"));
        assert_eq!(algs.macs.as_deref(), Some("hmac-sha2-256"));
        assert!(cfg.jumps.is_empty() && cfg.proxy_command.is_none());
        // The URL form resolves the same way.
        let url = mount(CONFIG, &["sftp://myalias/srv", "/mnt"]).unwrap();
        assert_eq!(url.target.host, cfg.target.host);
        assert_eq!(url.target.port, 2222);
        assert_eq!(url.target.user.as_deref(), Some("alice"));
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let cfg = mount(
            CONFIG,
            &[
                "-o",
                "port=1,USER=bob,stricthostkeychecking=yes,IdentitiesOnly=no",
                "-i",
                "/cli/key",
                "myalias:",
                "/mnt",
            ],
        )
        .unwrap();
        assert_eq!(cfg.target.port, 1);
        assert_eq!(cfg.target.user.as_deref(), Some("bob"));
        assert_eq!(cfg.host_key_policy, HostKeyPolicy::Yes);
        assert!(!cfg.ssh_options.identities_only);
        // -i first, then the file's IdentityFile, with %r from the command line.
        assert_eq!(cfg.identity_files[0], PathBuf::from("/cli/key"));
        assert!(cfg.identity_files[1].ends_with("id_myalias.example.net_bob_1"));
        let cfg = mount(CONFIG, &["carol@myalias:", "/mnt", "-p", "9"]).unwrap();
        assert_eq!(
            (cfg.target.user.as_deref(), cfg.target.port),
            (Some("carol"), 9)
        );
        let cfg = mount(CONFIG, &["-o", "HostName=direct", "myalias:", "/mnt"]).unwrap();
        assert_eq!(cfg.target.host, "direct");
    }

    #[test]
    fn unknown_keys_in_the_file_are_ignored_but_not_in_o() {
        assert!(mount(CONFIG, &["myalias:", "/mnt"]).is_ok());
        let err = mount(CONFIG, &["-o", "SomeFutureKey=1", "myalias:", "/mnt"]).unwrap_err();
        assert!(matches!(err, CliError::UnknownOption(_)), "{err}");
    }

    #[test]
    fn a_bad_value_in_the_file_names_its_line() {
        let err = mount(
            "Host *\n  Port 22\n  ServerAliveCountMax zero\n",
            &["h:", "/mnt"],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ssh_config:3") && text.contains("ServerAliveCountMax"),
            "{text}"
        );
    }

    #[test]
    fn jump_hosts_each_get_their_own_settings() {
        let cfg = mount(CONFIG, &["-J", "jump1,eve@other:2022", "myalias:", "/mnt"]).unwrap();
        let hops: Vec<(&str, Option<&str>, u16)> = cfg
            .jumps
            .iter()
            .map(|j| (j.host.as_str(), j.user.as_deref(), j.port))
            .collect();
        // jump1's own ProxyJump (gate) comes first.
        assert_eq!(
            hops,
            [
                ("gate", Some("gatekeeper"), 22),
                ("10.0.0.1", Some("hopper"), 2200),
                ("other", Some("eve"), 2022),
            ]
        );
        assert_eq!(cfg.jumps[1].identity_files, [PathBuf::from("/keys/jump1")]);
        // Command-line options apply to the target only.
        let cfg = mount(
            CONFIG,
            &["-o", "ProxyJump=jump1:2", "-o", "User=x", "h:", "/mnt"],
        )
        .unwrap();
        assert_eq!(cfg.jumps.last().unwrap().port, 2);
        assert_eq!(cfg.jumps.last().unwrap().user.as_deref(), Some("hopper"));
        let cfg = mount(CONFIG, &["-J", "none", "h:", "/mnt"]).unwrap();
        assert!(cfg.jumps.is_empty());
        // The first jump host's own ProxyCommand reaches it; a later one's
        // is not used (it is reached through the one before), with a warning.
        let cfg = mount(CONFIG, &["-J", "viacmd,cmd", "h:", "/mnt"]).unwrap();
        assert_eq!(
            cfg.jumps[0].proxy_command.as_deref(),
            Some("connect-to 10.0.0.9 22")
        );
        assert_eq!(cfg.jumps[1].proxy_command, None);
        let cfg = mount(CONFIG, &["-J", "jump1,viacmd", "h:", "/mnt"]).unwrap();
        assert_eq!(cfg.jumps.last().unwrap().proxy_command, None);
        assert!(
            cfg.config_warnings.iter().any(|w| w.contains("10.0.0.9")),
            "{:?}",
            cfg.config_warnings
        );
    }

    #[test]
    fn proxy_command_tokens_and_the_first_of_jump_or_command() {
        let cfg = mount(CONFIG, &["bob@cmd:", "/mnt"]).unwrap();
        assert_eq!(
            cfg.proxy_command.as_deref(),
            Some("nc -x proxy cmd 22 # ours")
        );
        assert!(cfg.jumps.is_empty());
        let cfg = mount(
            CONFIG,
            &["-o", "ProxyCommand=ssh -W %h:%p %r@gw %%", "h:", "/mnt"],
        )
        .unwrap();
        let user = crate::remote::open::local_user();
        assert_eq!(cfg.proxy_command, Some(format!("ssh -W h:22 {user}@gw %")));
        let err = mount(CONFIG, &["-o", "ProxyCommand=x %z", "h:", "/mnt"]).unwrap_err();
        assert!(err.to_string().contains("%z"), "{err}");
        let cfg = mount(CONFIG, &["-o", "ProxyCommand=none", "cmd:", "/mnt"]).unwrap();
        assert!(cfg.proxy_command.is_none() && cfg.jumps.is_empty());
    }

    #[test]
    fn ssh_synonyms_for_yes_and_no() {
        let cfg = mount(
            "IdentitiesOnly true\nStrictHostKeyChecking ask\n",
            &["h:", "/mnt"],
        )
        .unwrap();
        assert!(cfg.ssh_options.identities_only);
        assert_eq!(cfg.host_key_policy, HostKeyPolicy::Yes);
        let cfg = mount("StrictHostKeyChecking off\n", &["h:", "/mnt"]).unwrap();
        assert_eq!(cfg.host_key_policy, HostKeyPolicy::No);
        let cfg = mount("", &["-o", "IdentitiesOnly=FALSE", "h:", "/mnt"]).unwrap();
        assert!(!cfg.ssh_options.identities_only);
    }

    #[test]
    fn jump_syntax() {
        assert_eq!(parse_jump("h").unwrap(), (None, "h".into(), None));
        assert_eq!(
            parse_jump("u@h:2").unwrap(),
            (Some("u".into()), "h".into(), Some(2))
        );
        assert_eq!(
            parse_jump("ssh://u@[::1]:2").unwrap(),
            (Some("u".into()), "::1".into(), Some(2))
        );
        for bad in ["", "@h", "h:0", "h:x", "[::1", "a/b", "h:70000"] {
            assert!(parse_jump(bad).is_err(), "{bad}");
        }
    }
}
