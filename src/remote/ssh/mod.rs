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
//! errors end a connection) and `home` (the local user's home directory).
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

mod auth;
mod connect;
mod credentials;
mod errors;
mod home;
mod host_key;
mod known_hosts;
#[cfg(test)]
mod test_keys;

use std::path::PathBuf;
use std::time::Duration;

pub use connect::connect;
pub use credentials::Credentials;
pub use home::home_dir;
pub use host_key::{HostKeyPin, HostKeyPolicy};

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
}
