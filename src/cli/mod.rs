//! The command line: turns argv into a [`MountConfig`], or into the text of
//! `--help` / `--version`. clap parses the flags; REMOTE and the `-o
//! opt[,opt...]` list are parsed by hand, in [`remote_arg`] and [`options`].
//! This file holds the entry point, the clap arguments, and the assembly of
//! the configuration: -o, -i, -p and -J applied in argv order, then (for
//! SFTP) the OpenSSH configuration for what they left unset
//! ([`ssh_config`], [`ssh_host`]), then the checks that need every option.
//!
//! This module only parses and validates. It never touches the network, and
//! of the filesystem it only reads the OpenSSH configuration files (other
//! paths are taken as given, not checked); it never handles secrets: there
//! is no password option, and a password in a URL is refused.

mod help;
mod option_table;
mod options;
mod remote_arg;
mod ssh_config;
mod ssh_host;
mod subcommand;
#[cfg(test)]
mod tests;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::config::{MountConfig, Protocol, Target};

use help::{options_help, ABOUT, AFTER_HELP, LONG_ABOUT};
use options::Opt;
use options::{apply_option, apply_option_item, split_option_list};
use remote_arg::parse_remote;
use ssh_config::ConfigSource;
pub use subcommand::Control;

/// What the command line asks for.
// Built once per run, so the size gap between the variants costs nothing;
// boxing would only make callers' matches clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    Mount(MountConfig),
    /// `rmount stats` or `rmount flush`: a request to a running mount.
    Control(Control),
    /// `--help` or `--version`: print `text` to stdout and exit with `code`.
    Exit {
        text: String,
        code: i32,
    },
}

/// A command line that cannot be used. `Display` is one line naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Rejected by clap: unknown flag, missing argument, ...
    #[error("{0} (try 'rmount --help')")]
    Usage(String),
    #[error("malformed REMOTE '{remote}': {reason}")]
    MalformedRemote { remote: String, reason: String },
    #[error("unsupported scheme '{0}' in REMOTE (expected sftp://, ftp:// or ftps://)")]
    UnknownScheme(String),
    /// Deliberately does not echo REMOTE: it contains the password.
    #[error(
        "passwords are not accepted on the command line; \
         use -o password_stdin or the RMOUNT_PASSWORD environment variable"
    )]
    PasswordInUrl,
    #[error("port must be a number 1-65535: '{0}'")]
    BadPort(String),
    #[error("MOUNTPOINT must not be empty")]
    EmptyMountpoint,
    #[error("unknown option '{0}' in -o")]
    UnknownOption(String),
    #[error("option '{0}' does not take a value")]
    UnexpectedValue(String),
    #[error("option '{name}' needs a value ({name}={hint})")]
    MissingValue { name: String, hint: String },
    #[error("invalid value '{value}' for {name}: expected {expected}")]
    BadValue {
        name: String,
        value: String,
        expected: String,
    },
    #[error("-o ftps_implicit needs an ftps:// REMOTE")]
    FtpsImplicitWithoutFtps,
    /// A line of an OpenSSH configuration file that cannot be used.
    #[error("{origin}: {message}")]
    SshConfig { origin: String, message: String },
}

/// Parses a full argv (program name first) into a mount configuration.
pub fn parse<I, T>(args: I) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if let Some(parsed) = subcommand::parse(&args) {
        return parsed;
    }
    // The raw matches are kept (not just the derived struct) because the
    // relative order of -o, -i and -p decides which one wins.
    let matches = match Args::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(err) => return clap_outcome(err),
    };
    let args = Args::from_arg_matches(&matches).map_err(|e| usage_error(&e))?;
    build_config(&args, &matches).map(Parsed::Mount)
}

// ---------------------------------------------------------------------------
// clap: flags and positionals
// ---------------------------------------------------------------------------

#[derive(Parser, Debug)]
#[command(
    name = "rmount",
    // Fixed, so usage text does not depend on how argv[0] was spelled.
    bin_name = "rmount",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    after_long_help = options_help(),
    // Repeating a flag (-f -f) is harmless; don't make it an error.
    args_override_self = true
)]
struct Args {
    /// Remote directory: [user@]host:[path] or sftp:// ftp:// ftps:// URL
    #[arg(value_name = "REMOTE")]
    remote: OsString,

    /// Local directory to mount on
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: OsString,

    /// Stay in the foreground instead of running in the background
    #[arg(short, long)]
    foreground: bool,

    /// Log debug messages (implies -f; same as -o debug)
    #[arg(short, long)]
    debug: bool,

    /// Server port; overrides a port in REMOTE (same as -o port=PORT)
    // A Vec (not Option) so that a repeated -p is allowed and the last wins,
    // like -o port=.
    #[arg(short, long, value_name = "PORT")]
    port: Vec<OsString>,

    /// SSH private key to try; repeatable (same as -o IdentityFile=PATH)
    #[arg(short, long, value_name = "PATH")]
    identity: Vec<OsString>,

    /// Mount options, comma-separated; repeatable (list under --help)
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    options: Vec<OsString>,

    /// OpenSSH client configuration file to read instead of ~/.ssh/config
    /// and /etc/ssh/ssh_config; "none": none
    #[arg(short = 'F', value_name = "FILE")]
    ssh_config: Option<OsString>,

    /// SSH jump hosts, first to last (same as -o ProxyJump=...)
    #[arg(short = 'J', value_name = "[USER@]HOST[:PORT][,...]")]
    jump: Vec<OsString>,
}

/// Maps clap's early exits: help and version are not errors.
fn clap_outcome(err: clap::Error) -> Result<Parsed, CliError> {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Ok(Parsed::Exit {
            text: err.render().to_string(),
            code: 0,
        }),
        _ => Err(usage_error(&err)),
    }
}

/// Condenses clap's multi-line report to one line: the message paragraph
/// without its "error: " prefix (the usage and tip paragraphs are dropped).
fn usage_error(err: &clap::Error) -> CliError {
    let rendered = err.render().to_string();
    let first_paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let line = first_paragraph
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    CliError::Usage(line.to_string())
}

// ---------------------------------------------------------------------------
// Putting it together
// ---------------------------------------------------------------------------

/// One occurrence of an option that sets something; applied in argv order.
enum Setting<'a> {
    /// One `-o` argument (still comma-separated).
    Options(&'a OsStr),
    /// `-i PATH`, i.e. `-o IdentityFile=PATH`.
    Identity(&'a OsStr),
    /// `-p N`, i.e. `-o port=N`.
    Port(&'a OsStr),
    /// `-J HOPS`, i.e. `-o ProxyJump=HOPS`.
    Jump(&'a OsStr),
}

/// The configuration while options are applied. The port is kept apart
/// because its default depends on options that may come later (ftps_implicit).
struct Pending {
    config: MountConfig,
    port: Option<u16>,
    /// `-F`: which OpenSSH configuration files to read.
    ssh_source: ConfigSource,
    /// The ssh-style options the command line set (they win over the files).
    ssh_given: Vec<Opt>,
    /// `HostName`, `ProxyJump` and `ProxyCommand` before expansion.
    host_name: Option<String>,
    proxy_jump: Option<String>,
    proxy_command: Option<String>,
}

fn build_config(args: &Args, matches: &ArgMatches) -> Result<MountConfig, CliError> {
    let remote = parse_remote(&args.remote)?;
    if args.mountpoint.is_empty() {
        return Err(CliError::EmptyMountpoint);
    }
    let target = Target {
        protocol: remote.protocol,
        host: remote.host,
        port: 0, // Set by `finish` once every option is known.
        user: remote.user,
        path: remote.path,
    };
    let mut pending = Pending {
        config: MountConfig::new(target, PathBuf::from(&args.mountpoint)),
        port: remote.port,
        ssh_source: ssh_source(args.ssh_config.as_deref()),
        ssh_given: Vec::new(),
        host_name: None,
        proxy_jump: None,
        proxy_command: None,
    };
    if args.foreground {
        pending.config.foreground = true;
    }
    if args.debug {
        set_debug(&mut pending.config);
    }
    for setting in settings_in_order(args, matches) {
        match setting {
            Setting::Options(list) => {
                for item in split_option_list(list.as_bytes()) {
                    apply_option_item(&mut pending, &item)?;
                }
            }
            Setting::Identity(path) => {
                apply_option(&mut pending, "IdentityFile", Some(path.as_bytes()))?
            }
            Setting::Port(port) => apply_option(&mut pending, "port", Some(port.as_bytes()))?,
            Setting::Jump(hops) => apply_option(&mut pending, "ProxyJump", Some(hops.as_bytes()))?,
        }
    }
    finish(pending)
}

/// -o, -i and -p overlap (-i adds to IdentityFile, -p sets port), so they
/// are applied in the order given: later settings override earlier ones, and
/// identity files keep their order.
fn settings_in_order<'a>(args: &'a Args, matches: &ArgMatches) -> Vec<Setting<'a>> {
    let indices = |id: &str| -> Vec<usize> {
        matches
            .indices_of(id)
            .map(|found| found.collect())
            .unwrap_or_default()
    };
    let mut all: Vec<(usize, Setting<'a>)> = Vec::new();
    let options = args.options.iter().map(|v| Setting::Options(v));
    all.extend(indices("options").into_iter().zip(options));
    let identities = args.identity.iter().map(|v| Setting::Identity(v));
    all.extend(indices("identity").into_iter().zip(identities));
    let ports = args.port.iter().map(|v| Setting::Port(v));
    all.extend(indices("port").into_iter().zip(ports));
    let jumps = args.jump.iter().map(|v| Setting::Jump(v));
    all.extend(indices("jump").into_iter().zip(jumps));
    all.sort_by_key(|(index, _)| *index);
    all.into_iter().map(|(_, setting)| setting).collect()
}

/// Checks that need every option, then fills in the protocol's default port.
fn finish(mut pending: Pending) -> Result<MountConfig, CliError> {
    if pending.config.target.protocol == Protocol::Sftp {
        ssh_host::resolve_target(&mut pending)?;
    }
    let mut config = pending.config;
    if config.ftps_implicit && config.target.protocol != Protocol::Ftps {
        return Err(CliError::FtpsImplicitWithoutFtps);
    }
    config.target.port = pending
        .port
        .unwrap_or_else(|| MountConfig::default_port(config.target.protocol, config.ftps_implicit));
    Ok(config)
}

/// `-F FILE`, `-F none`, or the default files. Unit tests read no files
/// unless they say so, so that the machine's own configuration cannot
/// change their outcome.
fn ssh_source(arg: Option<&OsStr>) -> ConfigSource {
    match arg {
        Some(a) if a == "none" => ConfigSource::None,
        Some(a) => ConfigSource::File(PathBuf::from(a)),
        None if cfg!(test) => ConfigSource::None,
        None => ConfigSource::Default,
    }
}

fn set_debug(config: &mut MountConfig) {
    // Debug output goes to the terminal, so there must be one.
    config.debug = true;
    config.foreground = true;
}
