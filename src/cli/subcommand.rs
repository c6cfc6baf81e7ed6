//! The two commands that talk to a running mount instead of making one:
//! `rmount stats [--json] [--watch] MOUNTPOINT` and `rmount flush
//! MOUNTPOINT`. They are taken only when the first argument is exactly
//! `stats` or `flush`; that is never a REMOTE, which always has a `:` or
//! a `scheme://` (a host named `stats` is written `stats:`).
//!
//! Parsing only: what they do is in `control`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use super::{clap_outcome, CliError, Parsed};

/// A request to the rmount process serving a mount point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Stats {
        mountpoint: PathBuf,
        json: bool,
        watch: bool,
    },
    Flush {
        mountpoint: PathBuf,
    },
}

/// Show what a mounted rmount is doing: connections, operations and their
/// latency, bytes transferred, cache hit rates, uploads pending, errors
#[derive(Parser, Debug)]
#[command(name = "stats", bin_name = "rmount stats")]
struct StatsArgs {
    /// Print one JSON object (keys in the README)
    #[arg(long)]
    json: bool,
    /// Refresh every second until interrupted
    #[arg(long)]
    watch: bool,
    /// Where the mount is
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
}

/// Drop every cache of a mounted rmount, the kernel's included, so that
/// the next access asks the server (as SIGHUP to the rmount process does)
#[derive(Parser, Debug)]
#[command(name = "flush", bin_name = "rmount flush")]
struct FlushArgs {
    /// Where the mount is
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
}

/// `None` unless `args` (program name first) name a subcommand.
pub(super) fn parse(args: &[OsString]) -> Option<Result<Parsed, CliError>> {
    let rest = args.get(1..)?;
    let parsed = match rest.first()?.to_str()? {
        "stats" => parse_with::<StatsArgs>(rest).map(|a| Control::Stats {
            mountpoint: a.mountpoint,
            json: a.json,
            watch: a.watch,
        }),
        "flush" => parse_with::<FlushArgs>(rest).map(|a| Control::Flush {
            mountpoint: a.mountpoint,
        }),
        _ => return None,
    };
    Some(match parsed {
        Ok(control) => Ok(Parsed::Control(control)),
        Err(err) => clap_outcome(err),
    })
}

fn parse_with<T: Parser>(args: &[OsString]) -> Result<T, clap::Error> {
    T::from_arg_matches(&T::command().try_get_matches_from(args)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Option<Result<Parsed, CliError>> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args)
    }

    #[test]
    fn stats_and_flush_take_a_mount_point() {
        let stats = parse_args(&["rmount", "stats", "--json", "--watch", "/mnt/x"]);
        assert!(matches!(
            stats,
            Some(Ok(Parsed::Control(Control::Stats { json: true, watch: true, ref mountpoint })))
                if mountpoint == &PathBuf::from("/mnt/x")
        ));
        let flush = parse_args(&["rmount", "flush", "/mnt/x"]);
        assert!(matches!(
            flush,
            Some(Ok(Parsed::Control(Control::Flush { .. })))
        ));
    }

    #[test]
    fn a_remote_is_never_a_subcommand() {
        assert!(parse_args(&["rmount", "stats:", "/mnt/x"]).is_none());
        assert!(parse_args(&["rmount", "host:stats", "/mnt/x"]).is_none());
        assert!(parse_args(&["rmount", "--", "stats", "/mnt/x"]).is_none());
        assert!(parse_args(&["rmount"]).is_none());
    }

    #[test]
    fn misuse_is_a_usage_error_and_help_is_not() {
        assert!(matches!(
            parse_args(&["rmount", "flush"]),
            Some(Err(CliError::Usage(_)))
        ));
        assert!(matches!(
            parse_args(&["rmount", "stats", "--bogus", "/m"]),
            Some(Err(CliError::Usage(_)))
        ));
        match parse_args(&["rmount", "stats", "--help"]) {
            Some(Ok(Parsed::Exit { text, code: 0 })) => assert!(text.contains("--watch")),
            other => panic!("{other:?}"),
        }
    }
}
