//! Throwaway SFTP / FTP / FTPS servers on loopback for the integration tests,
//! one per [`ServerKind`] of the matrix.
//!
//! Each [`Server`] owns a temp dir (`rmount-test-<kind>-*` under the system
//! temp dir; a chroot's under `/var/lib/rmount-test`) holding its
//! configuration, keys or certificates, its log and `export`, the directory
//! the tests mount, owned by the ordinary login [`TEST_USER`]. Nothing is
//! shared between servers except the two system accounts (see `users.rs`).
//!
//! - SFTP: `/usr/sbin/sshd -D -e -f CONFIG` with a generated ed25519 host key
//!   and user key; [`TEST_USER`] logs in with the key, [`SFTP_PW_USER`] with
//!   a password. `internal-sftp` (the URL names `export` by its absolute
//!   path), `internal-sftp` in a `ChrootDirectory` (`/export`), or
//!   gesftpserver as the subsystem.
//! - FTP: vsftpd, or pure-ftpd from `/opt/rmount-test-servers`; the login is
//!   chrooted to `export`, so the FTP path `/` and the login directory are
//!   both `export`.
//! - FTPS: vsftpd or ProFTPD with explicit TLS (AUTH TLS), a certificate
//!   signed by a per-server test CA ([`Server::ca_file`]), TLS required for
//!   login and data, and data-connection session reuse required.
//!
//! See shared/TEST-SERVERS.md for why each setting is there.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{
    kill_tree, must_run, new_session, release_ports, reserve_ports, signal_tree, tail,
};
use super::users::{sftp_pw_account, test_account, Account};
use super::users::{SFTP_PW_USER, TEST_PASSWORD, TEST_USER};
use super::POLL_INTERVAL;

/// Number of passive-mode data ports each FTP server gets. vsftpd picks a
/// random port in the range for each PASV and gives up with
/// "500 OOPS: vsf_sysutil_bind" after 10 ports in use (another session
/// listening there); measured: 16 parallel sessions on a 21-port range fail
/// within seconds. 64 keeps that improbable for a few dozen sessions;
/// pure-ftpd allows half as many sessions as it has passive ports, and a
/// listen backlog of 3 + sessions / 8: 128 gives it 64 and 11.
const PASV_PORTS: u16 = 128;
/// How long a server may take to accept connections after being started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Where chrooted SFTP servers keep their directories: every component of
/// a `ChrootDirectory` must be root-owned and writable by root only.
const CHROOT_BASE: &str = "/var/lib/rmount-test";
/// Green End's SFTP server, as Debian's gesftpserver package installs it.
const GESFTPSERVER: &str = "/usr/libexec/gesftpserver";
/// ProFTPD and pure-ftpd conflict with vsftpd as packages: scripts/setup.sh
/// unpacks them here instead of installing them.
const PROFTPD_ROOT: &str = "/opt/rmount-test-servers/proftpd";
const PURE_FTPD_ROOT: &str = "/opt/rmount-test-servers/pure-ftpd";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Sftp,
    Ftp,
    Ftps,
}

impl Proto {
    /// The URL scheme rmount takes for this protocol.
    pub fn scheme(self) -> &'static str {
        match self {
            Proto::Sftp => "sftp",
            Proto::Ftp => "ftp",
            Proto::Ftps => "ftps",
        }
    }

    /// FTP or FTPS.
    pub fn is_ftp(self) -> bool {
        matches!(self, Proto::Ftp | Proto::Ftps)
    }

    pub fn all() -> [Proto; 3] {
        [Proto::Sftp, Proto::Ftp, Proto::Ftps]
    }

    /// The server a test that only names the protocol gets.
    pub fn default_kind(self) -> ServerKind {
        match self {
            Proto::Sftp => ServerKind::OpenSsh,
            Proto::Ftp => ServerKind::Vsftpd,
            Proto::Ftps => ServerKind::VsftpdTls,
        }
    }
}

/// Which server program a test server runs: the matrix that the shared
/// filesystem and tool tests (tests/it/fs_ops.rs, tests/it/tools.rs) run against.
/// Every kind logs in [`TEST_USER`], an ordinary account that owns the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// OpenSSH `sshd` with `internal-sftp`.
    OpenSsh,
    /// OpenSSH with `ChrootDirectory` and `ForceCommand internal-sftp`, the
    /// usual hosting set-up: the login sees `/export` inside its jail.
    OpenSshChroot,
    /// `sshd` running Green End's `gesftpserver` as its sftp subsystem: a
    /// second SFTP implementation without OpenSSH's extensions
    /// (posix-rename, statvfs, fsync, hardlink).
    GeSftp,
    /// vsftpd, plain FTP: LIST only (no MLSD), no MFMT.
    Vsftpd,
    /// vsftpd with explicit TLS and required session reuse.
    VsftpdTls,
    /// ProFTPD with explicit TLS (session reuse required): MLSD/MLST, MFMT,
    /// SITE UTIME.
    ProFtpd,
    /// pure-ftpd: MLSD/MLST, SITE UTIME; cuts listings at 10 000 entries.
    PureFtpd,
}

impl ServerKind {
    pub fn proto(self) -> Proto {
        match self {
            ServerKind::OpenSsh | ServerKind::OpenSshChroot | ServerKind::GeSftp => Proto::Sftp,
            ServerKind::Vsftpd | ServerKind::PureFtpd => Proto::Ftp,
            ServerKind::VsftpdTls | ServerKind::ProFtpd => Proto::Ftps,
        }
    }

    pub fn is_ftp(self) -> bool {
        self.proto().is_ftp()
    }

    pub fn is_sftp(self) -> bool {
        self.proto() == Proto::Sftp
    }

    /// Symlinks can be made and read (SFTP).
    pub fn symlinks(self) -> bool {
        self.is_sftp()
    }

    /// The server can set a directory's modification time (SFTP setstat;
    /// FTP `MFMT` or `SITE UTIME` on ProFTPD and pure-ftpd; vsftpd cannot).
    pub fn dir_times(self) -> bool {
        !matches!(self, ServerKind::Vsftpd | ServerKind::VsftpdTls)
    }

    fn dir_prefix(self) -> &'static str {
        match self {
            ServerKind::OpenSsh => "sftp",
            ServerKind::OpenSshChroot => "sftp-chroot",
            ServerKind::GeSftp => "gesftp",
            ServerKind::Vsftpd => "ftp",
            ServerKind::VsftpdTls => "ftps",
            ServerKind::ProFtpd => "proftpd",
            ServerKind::PureFtpd => "pureftpd",
        }
    }
}

impl PartialEq<Proto> for ServerKind {
    fn eq(&self, other: &Proto) -> bool {
        self.proto() == *other
    }
}

/// A running test server. Dropping it kills the server (and every session
/// process it forked) and removes its temp dir.
pub struct Server {
    pub proto: Proto,
    pub kind: ServerKind,
    /// The served directory, as a real path on this machine.
    pub export: PathBuf,
    /// The same directory as the login sees it (SFTP: an absolute path on
    /// the server, `/export` inside a chroot; FTP: `/`, the login directory).
    remote_root: String,
    /// The control (SSH / FTP) port on 127.0.0.1.
    pub port: u16,
    /// Login name that [`Server::remote_url`] uses.
    user: String,
    /// Owner that files under `export` must have for the login to change them.
    owner: Option<Account>,
    /// First passive data port (FTP only); the range is `PASV_PORTS` long.
    pasv_min: u16,
    config: PathBuf,
    log: PathBuf,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    host_key_pub: Option<String>,
    ca: Option<PathBuf>,
    child: Option<Child>,
    // Last: dropped after the server is stopped.
    dir: TempDir,
}

impl Server {
    /// OpenSSH sshd serving SFTP; [`TEST_USER`] logs in with [`Server::identity`].
    pub fn sftp() -> Server {
        Server::start(Proto::Sftp)
    }

    /// vsftpd, plain FTP; [`TEST_USER`] logs in with [`TEST_PASSWORD`].
    pub fn ftp() -> Server {
        Server::start(Proto::Ftp)
    }

    /// vsftpd with explicit TLS; certificate signed by [`Server::ca_file`].
    pub fn ftps() -> Server {
        Server::start(Proto::Ftps)
    }

    /// The usual server for `proto` (OpenSSH, vsftpd, vsftpd with TLS).
    pub fn start(proto: Proto) -> Server {
        Server::start_kind(proto.default_kind())
    }

    pub fn start_kind(kind: ServerKind) -> Server {
        let proto = kind.proto();
        // A chroot jail must sit below directories that only root can
        // write to (sshd checks every component): not under /tmp.
        let prefix = format!("rmount-test-{}-", kind.dir_prefix());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        let dir = if kind == ServerKind::OpenSshChroot {
            fs::create_dir_all(CHROOT_BASE).expect("create the chroot base dir");
            fs::set_permissions(CHROOT_BASE, fs::Permissions::from_mode(0o755))
                .expect("chmod the chroot base dir");
            builder.tempdir_in(CHROOT_BASE)
        } else {
            builder.tempdir()
        }
        .expect("create server temp dir");
        // The login must be able to reach `export` inside it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod server temp dir");
        let (export, remote_root) = match kind {
            ServerKind::OpenSshChroot => {
                let jail = dir.path().join("jail");
                fs::create_dir(&jail).expect("create the chroot jail");
                fs::set_permissions(&jail, fs::Permissions::from_mode(0o755))
                    .expect("chmod the chroot jail");
                (jail.join("export"), "/export".to_string())
            }
            _ if proto.is_ftp() => (dir.path().join("export"), "/".to_string()),
            _ => {
                let export = dir.path().join("export");
                let root = export.to_str().expect("utf-8 temp path").to_string();
                (export, root)
            }
        };
        fs::create_dir(&export).expect("create export dir");
        let acct = test_account();
        std::os::unix::fs::chown(&export, Some(acct.uid), Some(acct.gid))
            .expect("chown export to the test login");

        let mut server = Server {
            proto,
            kind,
            export,
            remote_root,
            port: 0,
            user: TEST_USER.to_string(),
            owner: Some(acct),
            pasv_min: 0,
            config: dir.path().join(match kind {
                ServerKind::OpenSsh | ServerKind::OpenSshChroot | ServerKind::GeSftp => {
                    "sshd_config"
                }
                ServerKind::Vsftpd | ServerKind::VsftpdTls => "vsftpd.conf",
                ServerKind::ProFtpd => "proftpd.conf",
                // Takes its settings as arguments: the file stays empty.
                ServerKind::PureFtpd => "pure-ftpd.args",
            }),
            log: dir.path().join("server.log"),
            identity: None,
            known_hosts: None,
            host_key_pub: None,
            ca: None,
            child: None,
            dir,
        };
        match proto {
            Proto::Sftp => server.prepare_sftp(),
            Proto::Ftp | Proto::Ftps => server.prepare_ftp(),
        }

        // A port that was free a moment ago can be taken by the time the
        // server binds it: try a few fresh ports before giving up.
        let mut last_err = String::new();
        for _ in 0..5 {
            server.release_ports();
            server.port = reserve_ports(1);
            if proto.is_ftp() {
                server.pasv_min = reserve_ports(PASV_PORTS);
            }
            server.write_config();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start the {proto:?} test server: {last_err}");
    }

    // ----- addresses and credentials -------------------------------------

    /// The URL that mounts `export` with the default login.
    /// SFTP: `sftp://rmount-test@127.0.0.1:PORT/abs/path/to/export` (in a
    /// chroot `/export`); FTP(S): `ftp://rmount-test@127.0.0.1:PORT/` (the
    /// login is chrooted to `export`).
    pub fn remote_url(&self) -> String {
        self.remote_url_for("")
    }

    /// The URL of `export/rel` (`rel` relative, may be empty).
    pub fn remote_url_for(&self, rel: &str) -> String {
        let rel = rel.trim_start_matches('/');
        match self.proto {
            Proto::Sftp => {
                let mut path = self.remote_root.clone();
                if !rel.is_empty() {
                    path = format!("{path}/{rel}");
                }
                format!("sftp://{}@127.0.0.1:{}{path}", self.user, self.port)
            }
            Proto::Ftp | Proto::Ftps => {
                format!(
                    "{}://{}@127.0.0.1:{}/{rel}",
                    self.proto.scheme(),
                    self.user,
                    self.port
                )
            }
        }
    }

    /// SFTP: `export/rel` as the login sees it on the server (inside a
    /// chroot, `/export/rel`).
    pub fn remote_path(&self, rel: &str) -> String {
        let rel = rel.trim_start_matches('/');
        format!("{}/{rel}", self.remote_root.trim_end_matches('/'))
    }

    /// SFTP only: the URL of `export` for another login (e.g. [`SFTP_PW_USER`]).
    pub fn url_for_user(&self, user: &str) -> String {
        assert_eq!(self.proto, Proto::Sftp, "url_for_user is for SFTP servers");
        format!("sftp://{user}@127.0.0.1:{}{}", self.port, self.remote_root)
    }

    /// The login name in [`Server::remote_url`].
    pub fn user(&self) -> &str {
        &self.user
    }

    /// rmount options that authenticate to this server (besides the password
    /// in [`Server::password_env`]):
    /// SFTP `-i KEY -o UserKnownHostsFile=KH`; FTP none; FTPS `-o cafile=CA`.
    pub fn mount_args(&self) -> Vec<String> {
        match self.proto {
            Proto::Sftp => vec![
                "-i".into(),
                self.identity().display().to_string(),
                "-o".into(),
                format!("UserKnownHostsFile={}", self.known_hosts().display()),
            ],
            Proto::Ftp => vec![],
            Proto::Ftps => vec!["-o".into(), format!("cafile={}", self.ca_file().display())],
        }
    }

    /// `("RMOUNT_PASSWORD", password)` for FTP logins; None for SFTP (key login).
    pub fn password_env(&self) -> Option<(String, String)> {
        self.proto
            .is_ftp()
            .then(|| ("RMOUNT_PASSWORD".to_string(), TEST_PASSWORD.to_string()))
    }

    /// SFTP: known_hosts file holding this server's host key as `[127.0.0.1]:PORT`.
    pub fn known_hosts(&self) -> &Path {
        self.known_hosts
            .as_deref()
            .expect("known_hosts() is for SFTP servers")
    }

    /// SFTP: private key file authorized for every login on this server.
    pub fn identity(&self) -> &Path {
        self.identity
            .as_deref()
            .expect("identity() is for SFTP servers")
    }

    /// SFTP: the host public key as `ssh-ed25519 AAAA...` (no host, no comment).
    pub fn host_public_key_line(&self) -> String {
        self.host_key_pub
            .clone()
            .expect("host_public_key_line() is for SFTP servers")
    }

    /// SFTP: the known_hosts line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public_key_line())
    }

    /// FTPS: the test CA certificate (PEM) that signed the server certificate.
    pub fn ca_file(&self) -> &Path {
        self.ca.as_deref().expect("ca_file() is for FTPS servers")
    }

    /// FTP: the passive data port range (inclusive).
    pub fn pasv_ports(&self) -> (u16, u16) {
        assert!(self.proto.is_ftp(), "pasv_ports() is for FTP servers");
        (self.pasv_min, self.pasv_min + PASV_PORTS - 1)
    }

    /// This server's private temp dir (config, keys, log, `export`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file (its stderr, plus its protocol or transfer log).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    // ----- files in the export, as the server sees them ------------------

    /// `export/rel`.
    pub fn export_path(&self, rel: &str) -> PathBuf {
        self.export.join(rel.trim_start_matches('/'))
    }

    /// Writes `export/rel` directly on the server side (creating parent
    /// dirs), owned by the login user so it can later change it.
    pub fn put_file(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.export_path(rel);
        if let Some(parent) = p.parent() {
            self.make_dirs_owned(parent);
        }
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        self.give_to_login(&p);
        p
    }

    /// Creates directory `export/rel` (and parents) on the server side.
    pub fn make_dir(&self, rel: &str) -> PathBuf {
        let p = self.export_path(rel);
        self.make_dirs_owned(&p);
        p
    }

    /// Reads `export/rel` directly on the server side.
    pub fn read_file(&self, rel: &str) -> Vec<u8> {
        let p = self.export_path(rel);
        fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Hands everything under `export/rel` (recursively, not following
    /// symlinks) to the login user. Call after building a tree directly in
    /// `export` with other tools (as root), so the login may modify it.
    pub fn chown_tree(&self, rel: &str) {
        fn walk(p: &Path, acct: Account) {
            let _ = std::os::unix::fs::lchown(p, Some(acct.uid), Some(acct.gid));
            if let Ok(meta) = fs::symlink_metadata(p) {
                if meta.is_dir() {
                    for e in fs::read_dir(p).into_iter().flatten().flatten() {
                        walk(&e.path(), acct);
                    }
                }
            }
        }
        if let Some(acct) = self.owner {
            walk(&self.export_path(rel), acct);
        }
    }

    fn make_dirs_owned(&self, dir: &Path) {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", dir.display()));
        // Chown every directory from `dir` up to (not including) export.
        let mut d = dir;
        while d != self.export && d.starts_with(&self.export) {
            self.give_to_login(d);
            d = d.parent().expect("parent");
        }
    }

    fn give_to_login(&self, p: &Path) {
        if let Some(acct) = self.owner {
            std::os::unix::fs::lchown(p, Some(acct.uid), Some(acct.gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        }
    }

    // ----- lifecycle ------------------------------------------------------

    /// PID of the listening server process. Panics if stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is stopped").id()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server and every session process it forked (an outage:
    /// open connections are cut, new ones are refused). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }

    /// Freezes the server and all its session processes (SIGSTOP): TCP
    /// connections stay open and the kernel still accepts new ones, but
    /// nothing answers — a hung server, for timeout tests. Undo with
    /// [`Server::thaw`]; dropping a frozen server is fine.
    pub fn freeze(&self) {
        signal_tree(self.pid(), libc::SIGSTOP);
    }

    /// Resumes a server frozen by [`Server::freeze`].
    pub fn thaw(&self) {
        signal_tree(self.pid(), libc::SIGCONT);
    }

    /// Stops the server (if running) and starts it again on the same port
    /// with the same keys and export; returns once it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "could not restart the {:?} server on port {}: {e}",
                        self.proto, self.port
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// SFTP: makes this sshd a jump host: logins may open `direct-tcpip`
    /// channels, and it logs at DEBUG1, where each forwarded connection
    /// shows as `channel N: connected to 127.0.0.1 port P`. Restarts the server.
    pub fn make_jump_host(&mut self) {
        assert_eq!(
            self.proto,
            Proto::Sftp,
            "make_jump_host is for SFTP servers"
        );
        let text = fs::read_to_string(&self.config).expect("read sshd_config");
        let text = text
            .replace("AllowTcpForwarding no", "AllowTcpForwarding yes")
            .replace("LogLevel VERBOSE", "LogLevel DEBUG1");
        fs::write(&self.config, text).expect("write sshd_config");
        self.restart();
    }

    fn release_ports(&mut self) {
        if self.port != 0 {
            release_ports(self.port, 1);
            self.port = 0;
        }
        if self.pasv_min != 0 {
            release_ports(self.pasv_min, PASV_PORTS);
            self.pasv_min = 0;
        }
    }

    /// Starts the server process from the written config and waits until it
    /// greets a client on its port. On failure the process is gone again.
    fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "server already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open server log");
        let mut cmd = match self.proto {
            Proto::Sftp => {
                let mut c = Command::new("/usr/sbin/sshd");
                c.arg("-D").arg("-e").arg("-f").arg(&self.config);
                c
            }
            Proto::Ftp | Proto::Ftps => match self.kind {
                ServerKind::ProFtpd => {
                    let mut c = Command::new(format!("{PROFTPD_ROOT}/usr/sbin/proftpd"));
                    c.arg("-n").arg("-c").arg(&self.config);
                    c
                }
                ServerKind::PureFtpd => self.pure_ftpd_command(),
                _ => {
                    let mut c = Command::new("/usr/sbin/vsftpd");
                    c.arg(&self.config);
                    c
                }
            },
        };
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        new_session(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;

        let greeting = if self.proto.is_ftp() {
            "220"
        } else {
            "SSH-2.0-"
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "server exited at start-up ({status}); log tail:\n{}",
                    self.log_tail(20)
                ));
            }
            if greets(addr, greeting) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                kill_tree(&mut child);
                return Err(format!(
                    "server did not greet on {addr} within {START_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    // ----- set-up -----------------------------------------------------------

    fn prepare_sftp(&mut self) {
        let d = self.dir.path().to_path_buf();
        sftp_pw_account();

        let host_key = d.join("ssh_host_ed25519_key");
        keygen(&host_key, "rmount-test-host");
        let pub_line = fs::read_to_string(pub_path(&host_key)).expect("read host pub key");
        let mut fields = pub_line.split_whitespace();
        self.host_key_pub = Some(format!(
            "{} {}",
            fields.next().expect("key type"),
            fields.next().expect("key data")
        ));

        let identity = d.join("id_ed25519");
        keygen(&identity, "rmount-test-user");
        fs::copy(pub_path(&identity), d.join("authorized_keys")).expect("write authorized_keys");
        self.identity = Some(identity);
        self.known_hosts = Some(d.join("known_hosts"));
    }

    fn prepare_ftp(&mut self) {
        let d = self.dir.path().to_path_buf();
        // vsftpd's secure_chroot_dir: empty and root-owned.
        fs::create_dir(d.join("empty")).expect("create empty dir");
        fs::write(d.join("user_list"), format!("{TEST_USER}\n")).expect("write user_list");

        if self.proto == Proto::Ftps {
            make_test_pki(&d);
            self.ca = Some(d.join("ca.pem"));
        }
        if self.kind == ServerKind::PureFtpd {
            // Its own password database, with the login chrooted to
            // `export` (the `/./` in the home directory). An `openssl
            // passwd -6` hash: pure-pw's argon2 makes each login take 4 s.
            let acct = self.owner.expect("the login account");
            let out = must_run(Command::new("openssl").args(["passwd", "-6", TEST_PASSWORD]));
            let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let line = format!(
                "{TEST_USER}:{hash}:{}:{}::{}/./::::::::::::\n",
                acct.uid,
                acct.gid,
                self.export.display()
            );
            fs::write(d.join("pureftpd.passwd"), line).expect("write pureftpd.passwd");
            must_run(
                Command::new(format!("{PURE_FTPD_ROOT}/usr/bin/pure-pw"))
                    .arg("mkdb")
                    .arg(d.join("pureftpd.pdb"))
                    .arg("-f")
                    .arg(d.join("pureftpd.passwd")),
            );
        }
    }

    /// pure-ftpd takes its settings as arguments, in the foreground:
    /// listing cut at its default 10 000 entries, dotfiles allowed.
    fn pure_ftpd_command(&self) -> Command {
        let d = self.dir.path();
        let (pmin, pmax) = self.pasv_ports();
        let mut c = Command::new(format!("{PURE_FTPD_ROOT}/usr/sbin/pure-ftpd"));
        c.arg("-S")
            .arg(format!("127.0.0.1,{}", self.port))
            .arg("-l")
            .arg(format!("puredb:{}", d.join("pureftpd.pdb").display()))
            .args(["-E", "-4", "-H"])
            .arg("-p")
            .arg(format!("{pmin}:{pmax}"))
            .args(["-P", "127.0.0.1", "-c", "64", "-C", "64", "-u", "1"])
            .arg("-O")
            .arg(format!("clf:{}", d.join("xfer.log").display()));
        c
    }

    /// (Re)writes the server config for the current ports.
    fn write_config(&self) {
        let d = self.dir.path();
        let mut c = String::new();
        match self.proto {
            Proto::Sftp => {
                let lines = [
                    format!("Port {}", self.port),
                    "ListenAddress 127.0.0.1".into(),
                    "AddressFamily inet".into(),
                    format!("HostKey {}", d.join("ssh_host_ed25519_key").display()),
                    format!("PidFile {}", d.join("sshd.pid").display()),
                    format!("AuthorizedKeysFile {}", d.join("authorized_keys").display()),
                    // The key files sit under a world-writable temp dir.
                    "StrictModes no".into(),
                    "UsePAM no".into(),
                    // Ordinary accounts only, as on real servers.
                    "PermitRootLogin no".into(),
                    format!("AllowUsers {} {SFTP_PW_USER}", self.user),
                    "PubkeyAuthentication yes".into(),
                    "PasswordAuthentication yes".into(),
                    "KbdInteractiveAuthentication no".into(),
                    "PermitEmptyPasswords no".into(),
                    "UseDNS no".into(),
                    // Connection pools open several sessions at once.
                    "MaxStartups 100:30:200".into(),
                    "MaxSessions 100".into(),
                    "MaxAuthTries 10".into(),
                    "X11Forwarding no".into(),
                    "AllowTcpForwarding no".into(),
                    "PrintMotd no".into(),
                    "LogLevel VERBOSE".into(),
                    match self.kind {
                        ServerKind::GeSftp => format!("Subsystem sftp {GESFTPSERVER}"),
                        _ => "Subsystem sftp internal-sftp".into(),
                    },
                ];
                for l in lines {
                    writeln!(c, "{l}").unwrap();
                }
                if self.kind == ServerKind::OpenSshChroot {
                    // The jail is `export`'s parent; the login starts there.
                    let jail = self.export.parent().expect("jail");
                    writeln!(c, "Match User {}", self.user).unwrap();
                    writeln!(c, "    ChrootDirectory {}", jail.display()).unwrap();
                    writeln!(c, "    ForceCommand internal-sftp -d {}", self.remote_root).unwrap();
                }
                fs::write(self.known_hosts(), format!("{}\n", self.known_hosts_line()))
                    .expect("write known_hosts");
            }
            Proto::Ftp | Proto::Ftps if self.kind == ServerKind::ProFtpd => {
                let (pmin, pmax) = self.pasv_ports();
                let lines = [
                    "ServerName \"rmount test\"".to_string(),
                    "ServerType standalone".into(),
                    "UseIPv6 off".into(),
                    "DefaultAddress 127.0.0.1".into(),
                    "SocketBindTight on".into(),
                    format!("Port {}", self.port),
                    format!("PassivePorts {pmin} {pmax}"),
                    format!("ModulePath {PROFTPD_ROOT}/usr/lib/proftpd"),
                    // SITE UTIME; MFMT is built in.
                    "LoadModule mod_site_misc.c".into(),
                    "LoadModule mod_tls.c".into(),
                    "User nobody".into(),
                    "Group nogroup".into(),
                    format!("PidFile {}", d.join("proftpd.pid").display()),
                    format!("ScoreboardFile {}", d.join("proftpd.scoreboard").display()),
                    "DelayTable none".into(),
                    "WtmpLog off".into(),
                    "UseReverseDNS off".into(),
                    "RequireValidShell off".into(),
                    "UseFtpUsers off".into(),
                    "AuthOrder mod_auth_unix.c".into(),
                    "AuthPAM off".into(),
                    format!("DefaultRoot {}", self.export.display()),
                    "Umask 022".into(),
                    "AllowOverwrite on".into(),
                    "AllowStoreRestart on".into(),
                    "MaxInstances 200".into(),
                    "MaxClientsPerHost none".into(),
                    "MaxLoginAttempts 10".into(),
                    format!("ExtendedLog {} ALL", self.log.display()),
                    // Explicit TLS, required; data connections must resume
                    // the control connection's session (the default).
                    "TLSEngine on".into(),
                    format!("TLSLog {}", d.join("tls.log").display()),
                    "TLSProtocol TLSv1.2 TLSv1.3".into(),
                    format!("TLSECCertificateFile {}", d.join("server.pem").display()),
                    format!("TLSECCertificateKeyFile {}", d.join("server.key").display()),
                    "TLSRequired on".into(),
                    "TLSVerifyClient off".into(),
                ];
                for l in lines {
                    writeln!(c, "{l}").unwrap();
                }
            }
            Proto::Ftp | Proto::Ftps if self.kind == ServerKind::PureFtpd => {}
            Proto::Ftp | Proto::Ftps => {
                let (pmin, pmax) = self.pasv_ports();
                let mut lines = vec![
                    "listen=YES".to_string(),
                    "listen_ipv6=NO".into(),
                    "listen_address=127.0.0.1".into(),
                    format!("listen_port={}", self.port),
                    "background=NO".into(),
                    "seccomp_sandbox=NO".into(),
                    "anonymous_enable=NO".into(),
                    "local_enable=YES".into(),
                    "write_enable=YES".into(),
                    "local_umask=022".into(),
                    "chmod_enable=YES".into(),
                    "utf8_filesystem=YES".into(),
                    "pasv_enable=YES".into(),
                    format!("pasv_min_port={pmin}"),
                    format!("pasv_max_port={pmax}"),
                    "pasv_address=127.0.0.1".into(),
                    format!("secure_chroot_dir={}", d.join("empty").display()),
                    "userlist_enable=YES".into(),
                    "userlist_deny=NO".into(),
                    format!("userlist_file={}", d.join("user_list").display()),
                    "pam_service_name=vsftpd".into(),
                    "max_clients=200".into(),
                    "max_per_ip=100".into(),
                    // Land in `export` and make it "/": the login directory
                    // and the FTP root are the same.
                    format!("local_root={}", self.export.display()),
                    "chroot_local_user=YES".into(),
                    "allow_writeable_chroot=YES".into(),
                    format!("vsftpd_log_file={}", self.log.display()),
                    "xferlog_enable=YES".into(),
                    "log_ftp_protocol=YES".into(),
                ];
                if self.proto == Proto::Ftps {
                    lines.extend([
                        "ssl_enable=YES".to_string(),
                        format!("rsa_cert_file={}", d.join("server.pem").display()),
                        format!("rsa_private_key_file={}", d.join("server.key").display()),
                        "require_ssl_reuse=YES".into(),
                        "force_local_logins_ssl=YES".into(),
                        "force_local_data_ssl=YES".into(),
                        // The built-in default (DES-CBC3-SHA) is useless today.
                        "ssl_ciphers=HIGH".into(),
                    ]);
                }
                for l in lines {
                    writeln!(c, "{l}").unwrap();
                }
            }
        }
        fs::write(&self.config, c).expect("write server config");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- {:?} test server on port {} (log {}), last lines ---\n{}",
                self.proto,
                self.port,
                self.log.display(),
                self.log_tail(30)
            );
        }
        self.release_ports();
    }
}

/// True if something on `addr` accepts a connection and its first bytes
/// start with `greeting`.
fn greets(addr: SocketAddr, greeting: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = vec![0u8; greeting.len()];
    s.read_exact(&mut buf).is_ok() && buf == greeting.as_bytes()
}

/// `ssh-keygen -t ed25519` without a passphrase.
fn keygen(path: &Path, comment: &str) {
    must_run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    );
}

/// `KEY.pub` for a private key file `KEY` (as ssh-keygen names it).
fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_os_string();
    s.push(".pub");
    PathBuf::from(s)
}

/// Generates a new ed25519 key pair at `path` (+ `.pub`) and returns the
/// public key as `ssh-ed25519 AAAA...` (e.g. to write a known_hosts entry
/// with the wrong key for a host).
pub fn ssh_keygen_ed25519(path: &Path) -> String {
    keygen(path, "rmount-test-other");
    let text = fs::read_to_string(pub_path(path)).expect("read .pub");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A test CA (`ca.pem`) and a server certificate signed by it (`server.pem`,
/// `server.key`) for 127.0.0.1, in `d`. rustls refuses a self-signed CA
/// certificate used directly as the server's certificate, hence two levels.
#[rustfmt::skip]
fn make_test_pki(d: &Path) {
    let openssl = |args: &[&str]| {
        must_run(Command::new("openssl").args(args).current_dir(d));
    };
    openssl(&[
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=rmount test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
    ]);
    fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(&[
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "3650", "-extfile", "server.ext",
    ]);
}
