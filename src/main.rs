//! rmount: mount a remote SFTP, FTP or FTPS server as a local directory.
//!
//! Start-up only: parse the command line, connect and check the remote path,
//! mount, go to the background once the mount is ready (like sshfs), and
//! unmount cleanly on SIGINT/SIGTERM. The layers are described in DESIGN.md.

mod cache;
mod cli;
mod config;
mod fs;
mod fuse;
mod remote;
mod sync;
#[cfg(test)]
mod testing;
mod types;
mod watchdog;
mod workers;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use config::{HostKeyPolicy, IdMap, MountConfig, Protocol, RemotePath};
use fs::{Fs, FsConfig, IdMapping};
use remote::pool::{Connector, Pool, PoolOptions};
use remote::sftp::SftpConnector;
use remote::ssh::{Credentials, SshSettings};
use remote::{Kind, Remote};

fn main() -> ExitCode {
    // Before any secret is read: no core file and no ptrace by other
    // processes of this user, which could otherwise read the password
    // kept in memory for reconnects.
    let dumpable = remote::secrets::forbid_core_dumps();
    let parsed = match cli::parse(std::env::args_os()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rmount: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match parsed {
        cli::Parsed::Mount(cfg) => cfg,
        cli::Parsed::Exit { text, code } => {
            print!("{text}");
            return ExitCode::from(code.clamp(0, 255) as u8);
        }
    };
    init_logging(cfg.debug);
    if let Err(e) = dumpable {
        tracing::warn!("cannot make the process non-dumpable: {e}");
    }
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the cause chain joined with ": ", and whatever the
            // server said in it with its control characters escaped.
            let chain = format!("{e:#}").replace('\n', " ");
            eprintln!("rmount: {}", remote::text::escape_controls(&chain));
            ExitCode::from(1)
        }
    }
}

fn init_logging(debug: bool) {
    let default = if debug { "rmount=debug" } else { "rmount=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EscapedLines(std::io::stderr()))
        .with_ansi(false)
        .with_target(false)
        .init();
}

/// Standard error for log lines. Log messages quote what servers said (error
/// texts, names): each line is written with its control characters escaped
/// but its final newline, so that no server can forge log lines or drive
/// the terminal. The formatter writes each event with one `write` call.
struct EscapedLines<W>(W);

impl<W: std::io::Write> std::io::Write for EscapedLines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let line = format!("{}{end}", remote::text::escape_controls(body));
        self.0.write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn check_mountpoint(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("mount point {} is not a directory", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("mount point {} does not exist", path.display())
        }
        Err(e) => bail!("mount point {}: {e}", path.display()),
    }
}

fn local_user() -> String {
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

/// The connected remote, its root directory and the login user's ids.
struct Connected {
    remote: Arc<dyn Remote>,
    root: PathBuf,
    /// Called periodically to keep idle connections alive or drop dead ones.
    keepalive: Box<dyn Fn() + Send>,
    login_ids: Option<(u32, u32)>,
}

fn connect_sftp(cfg: &MountConfig) -> anyhow::Result<Connected> {
    let target = &cfg.target;
    let settings = SshSettings {
        host: target.host.clone(),
        port: target.port,
        user: target.user.clone().unwrap_or_else(local_user),
        identity_files: cfg.identity_files.clone(),
        host_key_policy: cfg.host_key_policy,
        user_known_hosts: cfg.user_known_hosts.clone().unwrap_or_else(|| {
            // The user's own file, found as ssh finds it (HOME, else
            // the passwd entry).
            remote::ssh::home_dir()
                .unwrap_or_else(|| PathBuf::from("/"))
                .join(".ssh/known_hosts")
        }),
        global_known_hosts: PathBuf::from("/etc/ssh/ssh_known_hosts"),
        timeout: cfg.timeout,
    };
    let credentials = Arc::new(Credentials::new(cfg.password_stdin));
    let connector = SftpConnector {
        settings,
        credentials: Arc::clone(&credentials),
        host_key: Default::default(),
        symlink_order: Default::default(),
    };
    if cfg.host_key_policy == HostKeyPolicy::No {
        tracing::warn!("host key checking is off (StrictHostKeyChecking=no)");
    }
    let mut first = connector.connect()?;
    let home = first.home().context("cannot find the login directory")?;
    let root = match &target.path {
        RemotePath::Absolute(p) => p.clone(),
        RemotePath::Home(rel) if rel.as_os_str().is_empty() => home.clone(),
        RemotePath::Home(rel) => home.join(rel),
    };
    let login_ids = remote::pool::Connection::stat(&mut first, &home)
        .ok()
        .map(|a| (a.uid, a.gid));
    // SSH handshakes cost noticeable CPU (key exchange): have them done
    // before the mount is ready rather than during its first transfer.
    let connected = into_pool(cfg, connector, first, root, login_ids, true);
    credentials.end_prompts();
    connected
}

fn connect_ftp(cfg: &MountConfig) -> anyhow::Result<Connected> {
    use remote::ftp::{FtpConnector, FtpSettings, Login, Security};
    let target = &cfg.target;
    let security = match target.protocol {
        Protocol::Ftps if cfg.ftps_implicit => Security::ImplicitTls,
        Protocol::Ftps => Security::ExplicitTls,
        _ => Security::Plain,
    };
    let settings = FtpSettings {
        host: target.host.clone(),
        port: target.port,
        security,
        active: cfg.ftp_active,
        timeout: cfg.timeout,
        cafile: cfg.cafile.clone(),
        no_verify_cert: cfg.no_verify_cert,
    };
    // Resolved now, while standard input and the terminal are ours.
    let netrc = remote::netrc::default_path();
    let login = Login::resolve(
        target.user.as_deref(),
        &target.host,
        cfg.password_stdin,
        netrc.as_deref(),
    );
    let connector = FtpConnector::new(settings, login)?;
    let mut first = connector.connect()?;
    let root = match &target.path {
        RemotePath::Absolute(p) => p.clone(),
        RemotePath::Home(rel) => {
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
    into_pool(cfg, connector, first, root, None, false)
}

/// Checks that the remote root is a directory and puts the first
/// connection into a pool; with `open_all`, opens the others too.
fn into_pool<C: Connector>(
    cfg: &MountConfig,
    connector: C,
    mut first: C::Conn,
    root: PathBuf,
    login_ids: Option<(u32, u32)>,
    open_all: bool,
) -> anyhow::Result<Connected> {
    use remote::pool::Connection;
    let attr = first
        .stat(&root)
        .with_context(|| format!("remote path {}", root.display()))?;
    if attr.kind != Kind::Dir {
        bail!("remote path {} is not a directory", root.display());
    }
    let pool = Arc::new(Pool::new(connector, first, pool_options(cfg)));
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

/// The daemon changes to `/`, and reconnects read key and known_hosts files
/// later: every local path must be absolute.
fn absolutize(cfg: &mut MountConfig) -> anyhow::Result<()> {
    let abs =
        |p: &Path| std::path::absolute(p).with_context(|| format!("bad path {}", p.display()));
    cfg.mountpoint = abs(&cfg.mountpoint)?;
    for file in &mut cfg.identity_files {
        *file = abs(file)?;
    }
    if let Some(p) = &mut cfg.user_known_hosts {
        *p = abs(p)?;
    }
    if let Some(p) = &mut cfg.cafile {
        *p = abs(p)?;
    }
    Ok(())
}

/// Unmounts (lazily, as libfuse does on a signal); the FUSE session then
/// ends and `run` returns. Asks fusermount3 (which made the mount, so an
/// unprivileged user may undo it), else the kernel directly.
fn unmount(mountpoint: &Path) {
    let done = std::process::Command::new("fusermount3")
        .args(["-u", "-q", "-z", "--"])
        .arg(mountpoint)
        .status()
        .is_ok_and(|status| status.success());
    if done {
        return;
    }
    let Ok(path) = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
        tracing::warn!(
            "cannot unmount {}: {}",
            mountpoint.display(),
            std::io::Error::last_os_error()
        );
    }
}

fn pool_options(cfg: &MountConfig) -> PoolOptions {
    PoolOptions {
        max_conns: cfg.max_conns,
        timeout: cfg.timeout,
        alive_count_max: cfg.server_alive_count_max,
        mount_id: remote::private_names::mount_id(),
    }
}

fn run(mut cfg: MountConfig) -> anyhow::Result<()> {
    absolutize(&mut cfg)?;
    check_mountpoint(&cfg.mountpoint)?;
    let connected = match cfg.target.protocol {
        Protocol::Sftp => connect_sftp(&cfg)?,
        Protocol::Ftp | Protocol::Ftps => connect_ftp(&cfg)?,
    };
    // Private staging area for protocols without random writes: 0700.
    let staging = fs::write::staging::staging_dir().context("cannot create a staging directory")?;
    let idmap = match (cfg.idmap, connected.login_ids) {
        (IdMap::User, Some((remote_uid, remote_gid))) => Some(IdMapping {
            remote_uid,
            remote_gid,
            local_uid: unsafe { libc::getuid() },
            local_gid: unsafe { libc::getgid() },
        }),
        _ => None,
    };
    let fs_cfg = FsConfig {
        root: connected.root.clone(),
        read_only: cfg.read_only,
        atomic_writes: cfg.atomic_writes,
        close_to_open: cfg.close_to_open,
        contain_symlinks: cfg.contain_symlinks,
        block_size: cfg.block_size,
        read_ahead_blocks: cfg.read_ahead_blocks,
        cache_timeout: cfg.cache_timeout,
        cache_size: cfg.cache_size,
        idmap,
        owner: (cfg.uid, cfg.gid),
        staging_dir: staging.path().to_path_buf(),
        prefetch_threads: cfg.max_conns.saturating_sub(1).max(1),
    };
    let fs = Arc::new(Fs::new(connected.remote, fs_cfg));
    fs.start_marker();
    fs.sweep_root();
    scrub_secret_env();
    let adapter = fuse::FuseAdapter::new(fs.clone());
    let notifier = adapter.notifier_slot();
    let fsname = format!("{}:{}", cfg.target.host, connected.root.display());
    let session = fuser::Session::new(adapter, &cfg.mountpoint, &fuser_config(&cfg, fsname))
        .with_context(|| format!("cannot mount on {}", cfg.mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    tracing::info!("mounted {}", cfg.mountpoint.display());
    raise_kernel_read_ahead(&cfg.mountpoint);

    if !cfg.foreground {
        daemonize()?;
    }
    // Still one thread: the watchdog's fork copies nothing else.
    let watchdog = match watchdog::Watchdog::start(&cfg.mountpoint) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("no watchdog: a crash would leave a dead mount point ({e})");
            None
        }
    };
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .context("cannot install signal handlers")?;
    let mountpoint = cfg.mountpoint.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                tracing::info!("signal received, unmounting");
                unmount(&mountpoint);
            }
        })
        .context("cannot start the signal thread")?;
    let interval = cfg.server_alive_interval;
    let keepalive = connected.keepalive;
    if !interval.is_zero() {
        std::thread::Builder::new()
            .name("keepalive".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                keepalive();
            })
            .context("cannot start the keepalive thread")?;
    }
    let marker_fs = fs.clone();
    std::thread::Builder::new()
        .name("marker".into())
        .spawn(move || loop {
            std::thread::sleep(remote::private_names::MARKER_REFRESH);
            marker_fs.refresh_marker();
        })
        .context("cannot start the marker thread")?;
    let ran = session.run().context("FUSE session ended with an error");
    fs.remove_marker();
    if let Some(w) = watchdog {
        w.disarm();
    }
    ran?;
    drop(staging);
    Ok(())
}

/// Secrets given in the environment were read by the first connection and
/// are kept in memory for reconnects. Wipe them from the environment, in
/// place, so that no child (fusermount3) inherits them and
/// /proc/PID/environ does not show them.
fn scrub_secret_env() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    for name in [
        remote::secrets::PASSWORD_ENV,
        remote::secrets::PASSPHRASE_ENV,
    ] {
        let prefix = format!("{name}=");
        // SAFETY: single-threaded start-up; environ is a NULL-terminated
        // array of NUL-terminated strings that this process may write.
        unsafe {
            let mut entry = environ;
            while !entry.is_null() && !(*entry).is_null() {
                let var = *entry;
                let bytes = std::ffi::CStr::from_ptr(var).to_bytes();
                if bytes.starts_with(prefix.as_bytes()) {
                    std::ptr::write_bytes(var.add(prefix.len()), b'x', bytes.len() - prefix.len());
                }
                entry = entry.add(1);
            }
            std::env::remove_var(name);
        }
    }
}

fn fuser_config(cfg: &MountConfig, fsname: String) -> fuser::Config {
    use fuser::MountOption as M;
    let mut config = fuser::Config::default();
    let mut options = vec![
        M::FSName(fsname),
        M::Subtype("rmount".into()),
        M::NoDev,
        M::NoSuid,
    ];
    if cfg.read_only {
        options.push(M::RO);
    }
    if cfg.default_permissions {
        options.push(M::DefaultPermissions);
    }
    // Without -o allow_other the kernel itself keeps every other user out
    // (also of what it caches); FUSE's auto_unmount would need the kernel
    // option allow_other, so the watchdog does its job instead.
    config.acl = if cfg.allow_other {
        if !cfg.default_permissions {
            tracing::warn!(
                "allow_other without default_permissions: every local user can use this mount with your rights on the server"
            );
        }
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.mount_options = options;
    config.n_threads = Some(1);
    config
}

/// The kernel reads a FUSE file in requests of at most its read-ahead
/// window (128 KiB by default). Raising the mount's window to 1 MiB (root
/// only) lets large sequential reads arrive in 1 MiB requests. Reads the
/// device number from mountinfo: a stat of the mount point would deadlock,
/// as nothing serves the mount yet.
fn raise_kernel_read_ahead(mountpoint: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let wanted = mountpoint.as_os_str().to_string_lossy();
    // Fields: id parent major:minor root mountpoint …; the last match wins.
    let device = mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields.get(4).copied() == Some(&*wanted))
                .then(|| fields.get(2).map(|d| d.to_string()))?
        })
        .next_back();
    if let Some(device) = device {
        let knob = format!("/sys/class/bdi/{device}/read_ahead_kb");
        if let Err(e) = std::fs::write(&knob, "1024") {
            tracing::debug!("cannot raise {knob}: {e}");
        }
    }
}

/// Goes to the background once the mount works, like sshfs: the parent exits
/// 0, the child keeps serving with stdio on /dev/null. No other thread
/// exists yet (workers start on first request), so fork is safe.
fn daemonize() -> anyhow::Result<()> {
    // SAFETY: single-threaded at this point; the parent only calls _exit.
    match unsafe { libc::fork() } {
        -1 => bail!("fork failed: {}", std::io::Error::last_os_error()),
        0 => {}
        _ => unsafe { libc::_exit(0) },
    }
    unsafe {
        libc::setsid();
    }
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("cannot open /dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        unsafe {
            libc::dup2(devnull.as_raw_fd(), fd);
        }
    }
    let _ = std::env::set_current_dir("/");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn log_lines_keep_their_newline_and_escape_the_rest() {
        let mut out = EscapedLines(Vec::new());
        let line = b"WARN cannot reconnect: 421 \x1b[2Jbye\r\nINFO forged\n";
        assert_eq!(out.write(line).ok(), Some(line.len()));
        assert_eq!(
            String::from_utf8_lossy(&out.0),
            "WARN cannot reconnect: 421 \\u{1b}[2Jbye\\r\\nINFO forged\n"
        );
    }
}
