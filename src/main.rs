//! rmount: mount a remote SFTP, FTP or FTPS server as a local directory.
//!
//! Start-up only: parse the command line, set up logging, open the remote
//! (`remote::open`), mount (`fuse::mount`), go to the background once the
//! mount is ready (like sshfs), and unmount cleanly on SIGINT/SIGTERM. It
//! only turns the configuration into each layer's options; the layers are
//! described in ARCHITECTURE.md.

mod cache;
mod cli;
mod config;
mod control;
mod errno;
mod fs;
mod fuse;
mod remote;
mod stats;
mod sync;
#[cfg(test)]
mod testing;
mod types;
mod workers;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use config::{IdMap, MountConfig, Protocol, RemotePath};
use fs::{Fs, FsConfig, IdMapping};
use fuse::mount::{unmount, Mount, MountOptions};
use fuse::watchdog::Watchdog;
use remote::ftp::Security;
use remote::open;

/// Allocations up to this size come from the allocator's heaps, whatever
/// was freed before: file blocks (1 MiB) are then reused from there, not
/// mapped, faulted in and unmapped each time (which doubled rmount's CPU
/// time per byte read over FTP), and the fixed value also keeps glibc's
/// trim threshold low, so freed memory at the top of a heap goes back.
const MMAP_THRESHOLD: libc::c_int = 4 << 20;
/// Heaps for all threads: each heap keeps freed blocks for its own reuse,
/// so many heaps (glibc allows 8 per core) hold many idle blocks.
const ARENAS: libc::c_int = 2;

/// Keeps resident memory close to what is in use (see `MMAP_THRESHOLD`).
#[cfg(target_env = "gnu")]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator settings; called before any
    // other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

#[cfg(not(target_env = "gnu"))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
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
        cli::Parsed::Control(command) => return run_control(&command),
        cli::Parsed::Exit { text, code } => {
            print!("{text}");
            return ExitCode::from(code.clamp(0, 255) as u8);
        }
    };
    init_logging(cfg.debug);
    if !cfg.ignored_options.is_empty() {
        tracing::debug!(
            "ignored options (for mount(8), fstab or systemd): {}",
            cfg.ignored_options.join(",")
        );
    }
    for warning in &cfg.config_warnings {
        tracing::warn!("{warning}");
    }
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

/// `rmount stats` and `rmount flush`: one line on failure, exit 1.
fn run_control(command: &cli::Control) -> ExitCode {
    match control::run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain = format!("{e:#}").replace('\n', " ");
            eprintln!("rmount: {}", remote::text::escape_controls(&chain));
            ExitCode::from(1)
        }
    }
}

/// What `rmount stats` names as the mount.
fn identity(cfg: &MountConfig, root: &Path, mountpoint: &Path) -> stats::Identity {
    let target = &cfg.target;
    let host = match target.host.contains(':') {
        true => format!("[{}]", target.host),
        false => target.host.clone(),
    };
    let user = target
        .user
        .as_ref()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    stats::Identity {
        protocol: match target.protocol {
            Protocol::Sftp => "sftp",
            Protocol::Ftp => "ftp",
            Protocol::Ftps => "ftps",
        }
        .into(),
        server: format!("{user}{host}:{}", target.port),
        root: root.display().to_string(),
        mountpoint: mountpoint.display().to_string(),
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

/// What the remote layer needs of the configuration to connect.
fn open_options(cfg: &MountConfig) -> open::Options {
    let target = &cfg.target;
    let protocol = match target.protocol {
        Protocol::Sftp => open::Protocol::Sftp(open::SshOptions {
            identity_files: cfg.identity_files.clone(),
            host_key_policy: cfg.host_key_policy,
            user_known_hosts: cfg.user_known_hosts.clone(),
            global_known_hosts: cfg.global_known_hosts.clone(),
            host_options: cfg.ssh_options.clone(),
            jumps: cfg.jumps.clone(),
            proxy_command: cfg.proxy_command.clone(),
        }),
        Protocol::Ftp | Protocol::Ftps => open::Protocol::Ftp(open::FtpOptions {
            security: match target.protocol {
                Protocol::Ftps if cfg.ftps_implicit => Security::ImplicitTls,
                Protocol::Ftps => Security::ExplicitTls,
                _ => Security::Plain,
            },
            active: cfg.ftp_active,
            cafile: cfg.cafile.clone(),
            no_verify_cert: cfg.no_verify_cert,
        }),
    };
    open::Options {
        protocol,
        host: target.host.clone(),
        port: target.port,
        user: target.user.clone(),
        root: match &target.path {
            RemotePath::Absolute(p) => open::Root::Absolute(p.clone()),
            RemotePath::Home(rel) => open::Root::Home(rel.clone()),
        },
        password_stdin: cfg.password_stdin,
        timeout: cfg.timeout,
        max_conns: cfg.max_conns,
        alive_count_max: cfg.server_alive_count_max,
    }
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
    if let Some(p) = &mut cfg.global_known_hosts {
        *p = abs(p)?;
    }
    for jump in &mut cfg.jumps {
        for file in &mut jump.identity_files {
            *file = abs(file)?;
        }
        for p in [&mut jump.user_known_hosts, &mut jump.global_known_hosts]
            .into_iter()
            .flatten()
        {
            *p = abs(p)?;
        }
    }
    if let Some(p) = &mut cfg.cafile {
        *p = abs(p)?;
    }
    Ok(())
}

fn run(mut cfg: MountConfig) -> anyhow::Result<()> {
    absolutize(&mut cfg)?;
    check_mountpoint(&cfg.mountpoint)?;
    let connected = open::open(&open_options(&cfg))?;
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
        owners_by_name: cfg.idmap == IdMap::Names,
        owner: (cfg.uid, cfg.gid),
        staging_dir: staging.path().to_path_buf(),
        prefetch_threads: cfg.max_conns.saturating_sub(1).max(1),
        list_ahead_threads: cfg.max_conns.saturating_sub(1).min(3),
    };
    let fs = Arc::new(Fs::new(connected.remote, fs_cfg));
    fs.start_marker();
    fs.sweep_root();
    fs.start_owner_names();
    scrub_secret_env();
    let options = MountOptions {
        fsname: format!("{}:{}", cfg.target.host, connected.root.display()),
        read_only: cfg.read_only,
        no_exec: cfg.no_exec,
        sync_writes: cfg.sync_writes,
        dir_sync: cfg.dir_sync,
        no_atime: cfg.no_atime,
        default_permissions: cfg.default_permissions,
        allow_other: cfg.allow_other,
    };
    // Resolved before the mount covers it: the mount table shows it so.
    let canonical = std::fs::canonicalize(&cfg.mountpoint)
        .with_context(|| format!("mount point {}", cfg.mountpoint.display()))?;
    let mount = Mount::new(fs.clone(), &cfg.mountpoint, options)?;
    // Bound now, so that it is there when the mount command returns.
    let mut control = match control::bind(&canonical) {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::warn!("no control socket, so no rmount stats or flush: {e:#}");
            None
        }
    };

    // Jump host forwardings run on threads: parked across the forks below,
    // so that each copies one thread.
    remote::ssh::pause_forwarding();
    if !cfg.foreground {
        daemonize()?;
    }
    // Still one thread: the watchdog's fork copies nothing else.
    let watchdog = match Watchdog::start(&cfg.mountpoint) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("no watchdog: a crash would leave a dead mount point ({e})");
            None
        }
    };
    remote::ssh::resume_forwarding();
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
    stats::get().started(identity(&cfg, &connected.root, &canonical));
    let flusher = mount.flusher();
    let held_fs = fs.clone();
    if let Some(server) = &mut control {
        let flusher = flusher.clone();
        server.serve(move || held_fs.held(), move || flusher.flush())?;
    }
    let mut hangups = signal_hook::iterator::Signals::new([libc::SIGHUP])
        .context("cannot install the SIGHUP handler")?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in hangups.forever() {
                tracing::info!("SIGHUP: dropping every cache");
                flusher.flush();
            }
        })
        .context("cannot start the SIGHUP thread")?;
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
    let ran = mount.run();
    drop(control);
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
/// place, so that no child (the unmount helper) inherits them and
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
