//! `MountConfig`: every setting of a mount, resolved, with every default in
//! this one file. The command line (`cli/`) produces it; nothing else parses
//! arguments, and nothing here talks to the network.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::remote::open::JumpHost;
pub use crate::remote::ssh::{AddressFamily, HostKeyPolicy, HostOptions, IdentityAgent};

/// Which protocol the REMOTE argument named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Sftp,
    Ftp,
    /// FTP with explicit TLS (AUTH TLS).
    Ftps,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdMap {
    None,
    /// Files owned by the remote login user appear owned by the local user.
    User,
    /// Owners and groups are matched by name between the server and this
    /// machine (the server must tell names: SFTP `users-groups-by-id`).
    Names,
}

/// The remote location, from REMOTE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub protocol: Protocol,
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
    /// `None`: the default (local user name for SFTP; .netrc or anonymous for FTP).
    pub user: Option<String>,
    /// The path as the user gave it. `RemotePath::Home(rel)` is relative to
    /// the login directory (empty = the login directory itself).
    pub path: RemotePath,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemotePath {
    Absolute(PathBuf),
    Home(PathBuf),
}

#[derive(Clone, Debug)]
pub struct MountConfig {
    pub target: Target,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    pub debug: bool,

    // Authentication.
    pub identity_files: Vec<PathBuf>,
    pub password_stdin: bool,
    pub host_key_policy: HostKeyPolicy,
    pub user_known_hosts: Option<PathBuf>,
    pub global_known_hosts: Option<PathBuf>,
    /// The rest of the target's OpenSSH settings (IdentitiesOnly, HostKeyAlias, ...).
    pub ssh_options: HostOptions,
    /// `-J` / `ProxyJump`: jump hosts, first to last, each with its own settings.
    pub jumps: Vec<JumpHost>,
    /// `ProxyCommand`, tokens expanded; unused when there are jump hosts.
    pub proxy_command: Option<String>,
    /// Warnings from reading the OpenSSH configuration, shown at start-up.
    pub config_warnings: Vec<String>,

    // Mount behaviour.
    pub read_only: bool,
    /// `-o noexec`: programs on the mount cannot be executed.
    pub no_exec: bool,
    /// `-o sync`: the kernel asks for every write(2) to reach the server.
    pub sync_writes: bool,
    /// `-o dirsync`: passed to the kernel (directory changes are synchronous anyway).
    pub dir_sync: bool,
    /// `-o noatime`: passed to the kernel.
    pub no_atime: bool,
    /// Options accepted for mount(8), fstab and systemd and otherwise
    /// ignored (`_netdev`, `x-systemd.automount`, `suid`, ...), as given, so
    /// that the debug log can say so once logging is set up.
    pub ignored_options: Vec<String>,
    pub allow_other: bool,
    pub default_permissions: bool,
    pub idmap: IdMap,
    /// `-o uid=N` / `-o gid=N`: the owner every file is shown with.
    pub uid: Option<u32>,
    pub gid: Option<u32>,

    // Performance and robustness.
    pub max_conns: usize,
    pub timeout: Duration,
    pub cache_timeout: Duration,
    pub cache_size: u64,
    pub block_size: u64,
    pub read_ahead_blocks: usize,
    pub server_alive_interval: Duration,
    pub server_alive_count_max: u32,
    pub atomic_writes: bool,
    /// Close-to-open consistency: every open checks the file on the server
    /// (`-o nocto` turns it off).
    pub close_to_open: bool,
    /// `-o contain_symlinks`: symlinks never lead out of the mount.
    pub contain_symlinks: bool,

    // FTP.
    pub ftp_active: bool,
    pub ftps_implicit: bool,
    pub cafile: Option<PathBuf>,
    pub no_verify_cert: bool,
}

impl MountConfig {
    pub const DEFAULT_MAX_CONNS: usize = 4;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
    pub const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_secs(20);
    pub const DEFAULT_CACHE_SIZE_MIB: u64 = 64;
    pub const BLOCK_SIZE: u64 = 1 << 20;
    pub const READ_AHEAD_BLOCKS: usize = 8;

    /// A configuration with every default, for `target` on `mountpoint`.
    pub fn new(target: Target, mountpoint: PathBuf) -> MountConfig {
        MountConfig {
            target,
            mountpoint,
            foreground: false,
            debug: false,
            identity_files: Vec::new(),
            password_stdin: false,
            host_key_policy: HostKeyPolicy::Yes,
            user_known_hosts: None,
            global_known_hosts: None,
            ssh_options: HostOptions::default(),
            jumps: Vec::new(),
            proxy_command: None,
            config_warnings: Vec::new(),
            read_only: false,
            no_exec: false,
            sync_writes: false,
            dir_sync: false,
            no_atime: false,
            ignored_options: Vec::new(),
            allow_other: false,
            default_permissions: false,
            idmap: IdMap::None,
            uid: None,
            gid: None,
            max_conns: Self::DEFAULT_MAX_CONNS,
            timeout: Self::DEFAULT_TIMEOUT,
            cache_timeout: Self::DEFAULT_CACHE_TIMEOUT,
            cache_size: Self::DEFAULT_CACHE_SIZE_MIB << 20,
            block_size: Self::BLOCK_SIZE,
            read_ahead_blocks: Self::READ_AHEAD_BLOCKS,
            server_alive_interval: Duration::from_secs(15),
            server_alive_count_max: 3,
            atomic_writes: true,
            close_to_open: true,
            contain_symlinks: false,
            ftp_active: false,
            ftps_implicit: false,
            cafile: None,
            no_verify_cert: false,
        }
    }

    pub fn default_port(protocol: Protocol, ftps_implicit: bool) -> u16 {
        match protocol {
            Protocol::Sftp => 22,
            Protocol::Ftps if ftps_implicit => 990,
            Protocol::Ftp | Protocol::Ftps => 21,
        }
    }
}
