//! Opening an authenticated SSH session: TCP connect, SSH handshake, host key
//! verification against known_hosts, and user authentication (keys, agent,
//! password, keyboard-interactive), in the order and with the checks of ssh.
//!
//! This module hands back a ready `ssh2::Session` and nothing more: no SFTP
//! operations, no FUSE, no pooling. Secrets obtained here (password, key
//! passphrases) live only in [`Credentials`], are never logged, and are never
//! put into the environment.
//!
//! Its parts: `connect` (TCP, handshake and the order of the steps),
//! `host_key` (the `StrictHostKeyChecking` policy and the key a mount pins),
//! `known_hosts` (reading, matching and appending known_hosts files),
//! `auth` (the authentication methods), `credentials` (where passwords and
//! passphrases come from, kept for reconnects), `errors` (which libssh2
//! errors end a connection), `home` (the local user's home directory),
//! `route` (the byte stream a session runs over: TCP, a `ProxyCommand`, or
//! a chain of jump hosts) and `algorithms` (ssh-style algorithm lists).
//!
//! Errors: address and TCP problems, host key refusals and authentication
//! failures are [`Error::Setup`] (one line, shown to the user as is); an SSH
//! protocol step that runs out of time is [`Error::TimedOut`]; a connection
//! the server closes or garbles during the handshake or authentication is
//! [`Error::Transport`].
//!
//! [`Error::Setup`]: super::Error::Setup
//! [`Error::TimedOut`]: super::Error::TimedOut
//! [`Error::Transport`]: super::Error::Transport

mod algorithms;
mod auth;
mod connect;
mod credentials;
mod errors;
mod home;
mod host_key;
mod known_hosts;
mod route;
#[cfg(test)]
mod test_keys;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use connect::connect;
pub use credentials::Credentials;
pub use home::home_dir;
pub use host_key::{HostKeyPin, HostKeyPolicy};
pub use route::{pause_forwarding, resume_forwarding};

/// The system-wide known_hosts file ssh reads by default.
pub const GLOBAL_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// Where and how to connect. The caller resolves every default (paths included).
#[derive(Clone, Debug)]
pub struct SshSettings {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key files (`-i`). Empty: ssh-agent, then `~/.ssh/id_ed25519`,
    /// `id_ecdsa`, `id_rsa` where they exist.
    pub identity_files: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    /// The known_hosts file that is read and, under accept-new, appended to.
    pub user_known_hosts: PathBuf,
    /// The system-wide known_hosts file (read only).
    pub global_known_hosts: PathBuf,
    /// Bound on the TCP connect and on every blocking libssh2 call of the
    /// returned session (`Session::set_timeout`). Zero: no bound.
    pub timeout: Duration,
    /// The per-host details from the OpenSSH configuration.
    pub options: HostOptions,
    /// How the byte stream to the server is made.
    pub route: Route,
}

/// Which address family a host name may resolve to (`AddressFamily`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressFamily {
    #[default]
    Any,
    Inet,
    Inet6,
}

/// Which ssh-agent to ask for keys (`IdentityAgent`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IdentityAgent {
    /// The socket named by `SSH_AUTH_SOCK`, if set.
    #[default]
    Environment,
    /// No agent.
    None,
    /// This socket.
    Socket(PathBuf),
}

/// Algorithm lists in ssh's syntax (`a,b`, `+a`, `-a*`, `^a`); `None`:
/// libssh2's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Algorithms {
    pub kex: Option<String>,
    pub ciphers: Option<String>,
    pub macs: Option<String>,
    pub host_key: Option<String>,
}

/// Per-host settings of the OpenSSH configuration, resolved by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// Only the identity files given, never the agent (`IdentitiesOnly`).
    pub identities_only: bool,
    pub identity_agent: IdentityAgent,
    /// The name host keys are looked up and recorded under (`HostKeyAlias`).
    pub host_key_alias: Option<String>,
    /// Bound on the TCP connect (`ConnectTimeout`); `None`: the timeout.
    pub connect_timeout: Option<Duration>,
    pub address_family: AddressFamily,
    pub algorithms: Algorithms,
}

/// How the session's byte stream is made.
#[derive(Clone, Debug, Default)]
pub enum Route {
    /// A TCP connection to `host:port`.
    #[default]
    Direct,
    /// A shell command (`ProxyCommand`, tokens already expanded) whose
    /// standard input and output carry the SSH stream.
    Command(String),
    /// Through these jump hosts, first to last: each one is reached through
    /// a `direct-tcpip` channel of the one before, the target through the
    /// last one's.
    Jump(Vec<Arc<JumpHop>>),
}

/// One jump host: how to reach and log in to it, and the host key it
/// showed first (later connections of the mount accept only that key).
#[derive(Debug)]
pub struct JumpHop {
    pub settings: SshSettings,
    pub pin: HostKeyPin,
}
