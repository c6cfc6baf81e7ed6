//! Opening the remote a mount serves: the per-protocol wiring from plain
//! options to a pool of connections. Makes the first connection (prompting
//! for secrets while the terminal is still ours), finds the remote root and
//! checks that it is a directory, then hands back the pool.
//!
//! The caller fills [`Options`] from its own configuration: nothing here
//! reads the command line or knows the mount's settings. Errors carry their
//! context for the start-up message (hence `anyhow`, as in `main`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use super::ftp::{FtpConnector, FtpSettings, Login, Security};
use super::pool::{Connection, Connector, Pool, PoolOptions};
use super::sftp::SftpConnector;
use super::ssh::{
    Credentials, HostKeyPin, HostKeyPolicy, HostOptions, JumpHop, Route, SshSettings,
    GLOBAL_KNOWN_HOSTS,
};
use super::{Kind, Remote};

/// What to open and how.
#[derive(Clone, Debug)]
pub struct Options {
    pub protocol: Protocol,
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
    /// `None`: the default (local user name for SFTP; .netrc or anonymous for FTP).
    pub user: Option<String>,
    /// The remote directory to mount.
    pub root: Root,
    /// The password is the first line of standard input.
    pub password_stdin: bool,
    /// Bound on connecting and on every remote call.
    pub timeout: Duration,
    /// Connections in all, one of them for metadata.
    pub max_conns: usize,
    /// Keepalive rounds with failures before the server counts as down.
    pub alive_count_max: u32,
}

/// The protocol, with what only it needs.
// One per mount: the size gap between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Protocol {
    Sftp(SshOptions),
    Ftp(FtpOptions),
}

#[derive(Clone, Debug)]
pub struct SshOptions {
    pub identity_files: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    /// `None`: `~/.ssh/known_hosts`.
    pub user_known_hosts: Option<PathBuf>,
    /// `None`: `/etc/ssh/ssh_known_hosts`.
    pub global_known_hosts: Option<PathBuf>,
    pub host_options: HostOptions,
    /// Jump hosts, first to last (`ProxyJump`); empty: none.
    pub jumps: Vec<JumpHost>,
    /// A command whose stdin/stdout carry the connection (`ProxyCommand`,
    /// tokens expanded); used when there are no jump hosts.
    pub proxy_command: Option<String>,
}

/// One jump host, with its own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JumpHost {
    pub host: String,
    pub port: u16,
    /// `None`: the local user name.
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    pub user_known_hosts: Option<PathBuf>,
    pub global_known_hosts: Option<PathBuf>,
    pub options: HostOptions,
    /// The first jump host only: reached through this command
    /// (`ProxyCommand`, tokens expanded) instead of TCP.
    pub proxy_command: Option<String>,
}

#[derive(Clone, Debug)]
pub struct FtpOptions {
    pub security: Security,
    /// Active mode instead of passive.
    pub active: bool,
    pub cafile: Option<PathBuf>,
    pub no_verify_cert: bool,
}

/// The remote directory to mount, as the user gave it.
#[derive(Clone, Debug)]
pub enum Root {
    Absolute(PathBuf),
    /// Relative to the login directory (empty: the login directory itself).
    Home(PathBuf),
}

/// The connected remote, its root directory and the login user's ids.
pub struct Connected {
    pub remote: Arc<dyn Remote>,
    pub root: PathBuf,
    /// Called periodically to keep idle connections alive or drop dead ones.
    pub keepalive: Box<dyn Fn() + Send>,
    pub login_ids: Option<(u32, u32)>,
}

/// Connects as `options` say and puts the connections into a pool.
pub fn open(options: &Options) -> anyhow::Result<Connected> {
    match &options.protocol {
        Protocol::Sftp(ssh) => connect_sftp(options, ssh),
        Protocol::Ftp(ftp) => connect_ftp(options, ftp),
    }
}

/// The local user name, as the default remote user.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            if unsafe { libc::geteuid() } == 0 {
                "root".into()
            } else {
                "nobody".into()
            }
        })
}

fn connect_sftp(o: &Options, ssh: &SshOptions) -> anyhow::Result<Connected> {
    let hop = |j: &JumpHost, route: Route| SshSettings {
        host: j.host.clone(),
        port: j.port,
        user: j.user.clone().unwrap_or_else(local_user),
        identity_files: j.identity_files.clone(),
        host_key_policy: j.host_key_policy,
        user_known_hosts: j
            .user_known_hosts
            .clone()
            .unwrap_or_else(default_known_hosts),
        global_known_hosts: j
            .global_known_hosts
            .clone()
            .unwrap_or_else(|| PathBuf::from(GLOBAL_KNOWN_HOSTS)),
        timeout: o.timeout,
        options: j.options.clone(),
        route,
    };
    let route = if !ssh.jumps.is_empty() {
        Route::Jump(
            ssh.jumps
                .iter()
                .enumerate()
                .map(|(i, j)| {
                    let route = match &j.proxy_command {
                        Some(command) if i == 0 => Route::Command(command.clone()),
                        _ => Route::Direct,
                    };
                    Arc::new(JumpHop {
                        settings: hop(j, route),
                        pin: HostKeyPin::default(),
                    })
                })
                .collect(),
        )
    } else if let Some(command) = &ssh.proxy_command {
        Route::Command(command.clone())
    } else {
        Route::Direct
    };
    let target = JumpHost {
        host: o.host.clone(),
        port: o.port,
        user: o.user.clone(),
        identity_files: ssh.identity_files.clone(),
        host_key_policy: ssh.host_key_policy,
        user_known_hosts: ssh.user_known_hosts.clone(),
        global_known_hosts: ssh.global_known_hosts.clone(),
        options: ssh.host_options.clone(),
        proxy_command: None,
    };
    let settings = hop(&target, route);
    let credentials = Arc::new(Credentials::new(o.password_stdin));
    let connector = SftpConnector {
        settings,
        credentials: Arc::clone(&credentials),
        host_key: Default::default(),
        symlink_order: Default::default(),
    };
    if ssh.host_key_policy == HostKeyPolicy::No
        || ssh
            .jumps
            .iter()
            .any(|j| j.host_key_policy == HostKeyPolicy::No)
    {
        tracing::warn!("host key checking is off (StrictHostKeyChecking=no)");
    }
    let mut first = connector.connect()?;
    let home = first.home().context("cannot find the login directory")?;
    let root = match &o.root {
        Root::Absolute(p) => p.clone(),
        Root::Home(rel) if rel.as_os_str().is_empty() => home.clone(),
        Root::Home(rel) => home.join(rel),
    };
    let login_ids = Connection::stat(&mut first, &home)
        .ok()
        .map(|a| (a.uid, a.gid));
    // SSH handshakes cost noticeable CPU (key exchange): have them done
    // before the mount is ready rather than during its first transfer.
    let connected = into_pool(o, connector, first, root, login_ids, true);
    credentials.end_prompts();
    connected
}

/// The user's own known_hosts file, found as ssh finds it (HOME, else the
/// passwd entry).
fn default_known_hosts() -> PathBuf {
    super::ssh::home_dir()
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".ssh/known_hosts")
}

fn connect_ftp(o: &Options, ftp: &FtpOptions) -> anyhow::Result<Connected> {
    let settings = FtpSettings {
        host: o.host.clone(),
        port: o.port,
        security: ftp.security,
        active: ftp.active,
        timeout: o.timeout,
        cafile: ftp.cafile.clone(),
        no_verify_cert: ftp.no_verify_cert,
    };
    // Resolved now, while standard input and the terminal are ours.
    let netrc = super::netrc::default_path();
    let login = Login::resolve(
        o.user.as_deref(),
        &o.host,
        o.password_stdin,
        netrc.as_deref(),
    );
    let connector = FtpConnector::new(settings, login)?;
    let mut first = connector.connect()?;
    let root = match &o.root {
        Root::Absolute(p) => p.clone(),
        Root::Home(rel) => {
            let home = first.home().context("cannot find the login directory")?;
            if rel.as_os_str().is_empty() {
                home
            } else {
                home.join(rel)
            }
        }
    };
    // FTP tells no numeric owners; files show as the local user's. Its
    // data connections open on demand: logins are cheap, and FTP servers
    // often cap connections per address.
    into_pool(o, connector, first, root, None, false)
}

/// Checks that the remote root is a directory and puts the first
/// connection into a pool; with `open_all`, opens the others too.
fn into_pool<C: Connector>(
    o: &Options,
    connector: C,
    mut first: C::Conn,
    root: PathBuf,
    login_ids: Option<(u32, u32)>,
    open_all: bool,
) -> anyhow::Result<Connected> {
    let attr = first
        .stat(&root)
        .with_context(|| format!("remote path {}", root.display()))?;
    if attr.kind != Kind::Dir {
        bail!("remote path {} is not a directory", root.display());
    }
    let pool = Arc::new(Pool::new(connector, first, pool_options(o)));
    if open_all {
        pool.open_all();
    }
    let keepalive_pool = pool.clone();
    Ok(Connected {
        remote: pool,
        root,
        keepalive: Box::new(move || keepalive_pool.keepalive_idle()),
        login_ids,
    })
}

fn pool_options(o: &Options) -> PoolOptions {
    PoolOptions {
        max_conns: o.max_conns,
        timeout: o.timeout,
        alive_count_max: o.alive_count_max,
        mount_id: super::private_names::mount_id(),
    }
}
