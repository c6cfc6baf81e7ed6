//! Resolving the SSH settings of the target and of each jump host as ssh
//! does: the command line first (REMOTE, -p, -i, -J and ssh-style `-o`
//! options win), then the values the OpenSSH configuration gives for that
//! host (`ssh_config`), then the defaults; then `HostName`, the `%` tokens
//! and `~` are expanded and `ProxyJump` becomes a list of jump hosts, each
//! resolved the same way from its own configuration.
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
        let Some(spec) = find_option(key).filter(|s| s.ssh_style) else {
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
        finish_host(&mut p, home, local)?;
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
            } else if p.proxy_command.as_deref().is_some_and(|c| c != "none") {
                warnings.push(format!(
                    "ProxyCommand of jump host {} is not used",
                    p.config.target.host
                ));
            }
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
        });
    }
    Ok(hops)
}
