//! The help text: the about lines, the REMOTE forms for `--help`, and the
//! `-o` section, generated from the option table with the defaults read
//! from [`MountConfig::new`], so neither can drift from the code.
//!
//! Text only: nothing here parses or validates a command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{HostKeyPolicy, IdMap, MountConfig, Protocol, RemotePath, Target};

use super::options::{Opt, OptSpec, IGNORED_HELP, OPTIONS};

pub(super) const ABOUT: &str = "Mount a remote SFTP, FTP or FTPS directory as a local filesystem";

pub(super) const LONG_ABOUT: &str = "\
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
the RMOUNT_PASSWORD environment variable.

A running mount answers two more commands (see 'rmount stats --help'):
  rmount stats [--json] [--watch] MOUNTPOINT   what the mount is doing
  rmount flush MOUNTPOINT                      drop every cache (as SIGHUP)";

pub(super) const AFTER_HELP: &str = "Use --help for the REMOTE forms and the list of -o options.";

/// The `-o` section of `--help`, generated from [`OPTIONS`] with the defaults
/// read from [`MountConfig::new`], so neither can drift from the code.
pub(super) fn options_help() -> String {
    let mut text =
        String::from("Mount options (-o opt[,opt...], repeatable; a backslash escapes a comma):\n");
    let defaults = default_config();
    let mut ignored_shown = false;
    for spec in OPTIONS {
        let (label, mut help) = if spec.opt != Opt::Ignored {
            (option_label(spec), spec.help.to_string())
        } else if !ignored_shown {
            // One entry for all of them, where the first one is.
            ignored_shown = true;
            (ignored_labels(), IGNORED_HELP.to_string())
        } else {
            continue;
        };
        if let Some(default) = default_text(spec.opt, &defaults) {
            help.push_str(&format!(" (default {default})"));
        }
        for line in wrap(&label, HELP_WIDTH + 8) {
            text.push_str(&format!("  {line}\n"));
        }
        for line in wrap(&help, HELP_WIDTH) {
            text.push_str(&format!("          {line}\n"));
        }
    }
    text.push_str(
        "\nNames in CamelCase (and port) are case-insensitive, as in ssh.\n\
         Later options override earlier ones, including -p and -i.\n\
         For SFTP, the OpenSSH client configuration (~/.ssh/config, then\n\
         /etc/ssh/ssh_config; -F FILE or -F none instead) supplies what the\n\
         command line leaves unset, as for ssh: REMOTE's host may be a Host\n\
         alias. Jump hosts (-J, ProxyJump) use their own settings from it.\n",
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

pub(super) fn option_label(spec: &OptSpec) -> String {
    match spec.value {
        Some(value) => format!("{}={value}", spec.name),
        None => spec.name.to_string(),
    }
}

/// The names of the ignored options, comma-separated, for their one entry.
fn ignored_labels() -> String {
    let labels: Vec<String> = OPTIONS
        .iter()
        .filter(|spec| spec.opt == Opt::Ignored)
        .map(option_label)
        .collect();
    labels.join(", ")
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
                IdMap::Names => "names",
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
}
