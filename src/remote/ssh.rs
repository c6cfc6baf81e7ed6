//! Opening an authenticated SSH session: TCP connect, SSH handshake, host key
//! verification against known_hosts, and user authentication (keys, agent,
//! password, keyboard-interactive), in the order and with the checks of ssh.
//!
//! This module hands back a ready `ssh2::Session` and nothing more: no SFTP
//! operations, no FUSE, no pooling. Secrets obtained here (password, key
//! passphrases) live only in [`Credentials`], are never logged, and are never
//! put into the environment.
//!
//! known_hosts is parsed here rather than by libssh2's `KnownHosts`: libssh2
//! also matches a plain `host` entry when connecting to another port (a false
//! "changed key" for a second server on the same machine), misreads
//! `@revoked`/`@cert-authority` lines (so revocations would be ignored), and
//! stops reading a file at its first line it cannot parse. Matching follows
//! OpenSSH: `[host]:port` for ports other than 22, comma-separated patterns
//! with `*`, `?` and `!`, and hashed `|1|salt|hmac` names.
//!
//! Errors: address and TCP problems, host key refusals and authentication
//! failures are [`Error::Setup`] (one line, shown to the user as is); an SSH
//! protocol step that runs out of time is [`Error::TimedOut`]; a connection
//! the server closes or garbles during the handshake or authentication is
//! [`Error::Transport`].

use std::collections::HashMap;
use std::ffi::{CStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libssh2_sys as raw;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use ssh2::{ErrorCode, KeyboardInteractivePrompt, MethodType, Prompt, Session};

use super::secrets::{
    env_secret, prompt_secret, read_stdin_line, stdin_is_tty, Secret, PASSPHRASE_ENV, PASSWORD_ENV,
};
use super::text::printable;
use super::Error;

/// How to treat a host key that known_hosts does not vouch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse unknown and changed keys (the default).
    Yes,
    /// Record an unknown key; refuse a changed one.
    AcceptNew,
    /// Warn and go on.
    No,
}

/// Key files tried when no identity file is given, in this order (in `~/.ssh`).
const DEFAULT_KEY_FILES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];
/// How often a wrong password or passphrase typed on the terminal is asked again.
const PROMPT_ATTEMPTS: usize = 3;

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

/// Password and key passphrases, obtained at most once and reused by every
/// later connection (reconnects from a daemon without a terminal never
/// prompt). Safe to share between threads. Each secret is held once, in a
/// [`Secret`] (zeroed when dropped); connections borrow it through an `Arc`
/// instead of copying it.
pub struct Credentials {
    password_stdin: bool,
    /// The terminal may be asked (until the mount is ready: a reconnect
    /// never prompts, which would stall the mount behind a terminal).
    may_prompt: std::sync::atomic::AtomicBool,
    state: Mutex<Secrets>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Stdin,
    Env,
    Terminal,
}

#[derive(Default)]
struct Secrets {
    password: Option<(Arc<Secret>, Source)>,
    /// Standard input has been consumed (it is read at most once).
    stdin_read: bool,
    passphrases: HashMap<PathBuf, (Arc<Secret>, Source)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never shows a secret, only whether one is held.
        let s = self.lock();
        f.debug_struct("Credentials")
            .field("password_stdin", &self.password_stdin)
            .field("has_password", &s.password.is_some())
            .field("passphrases", &s.passphrases.len())
            .finish()
    }
}

impl Credentials {
    /// `password_stdin`: the password is the first line of standard input
    /// (read once, on first need) instead of `RMOUNT_PASSWORD` or a prompt.
    pub fn new(password_stdin: bool) -> Credentials {
        Credentials {
            password_stdin,
            may_prompt: std::sync::atomic::AtomicBool::new(true),
            state: Mutex::new(Secrets::default()),
        }
    }

    /// Start-up is over: from now on only what is cached, the environment
    /// or standard input are used, never a prompt.
    pub fn end_prompts(&self) {
        self.may_prompt
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn prompts(&self) -> bool {
        self.may_prompt.load(std::sync::atomic::Ordering::SeqCst) && stdin_is_tty()
    }

    fn lock(&self) -> MutexGuard<'_, Secrets> {
        crate::sync::lock(&self.state)
    }

    /// The password to try: cached, else from its source. The lock is held
    /// while prompting so that concurrent connections ask only once.
    fn password(&self, user: &str, host: &str) -> Option<(Arc<Secret>, Source)> {
        let mut s = self.lock();
        if let Some((p, source)) = &s.password {
            return Some((Arc::clone(p), *source));
        }
        let got = if self.password_stdin {
            if s.stdin_read {
                None
            } else {
                s.stdin_read = true;
                read_stdin_line().map(|p| (Arc::new(p), Source::Stdin))
            }
        } else if let Some(p) = env_secret(PASSWORD_ENV) {
            Some((Arc::new(p), Source::Env))
        } else if self.prompts() {
            prompt_secret(&format!("{user}@{host}'s password: "))
                .map(|p| (Arc::new(p), Source::Terminal))
        } else {
            None
        };
        s.password = got.as_ref().map(|(p, source)| (Arc::clone(p), *source));
        got
    }

    /// Forgets a password typed on the terminal that the server refused, so
    /// that the next attempt asks again. Passwords from stdin or the
    /// environment cannot be asked again and stay.
    fn refused_password(&self) {
        let mut s = self.lock();
        if matches!(s.password, Some((_, Source::Terminal))) {
            s.password = None;
        }
    }

    fn passphrase(&self, key: &Path) -> Option<(Arc<Secret>, Source)> {
        let mut s = self.lock();
        if let Some((p, source)) = s.passphrases.get(key) {
            return Some((Arc::clone(p), *source));
        }
        let got = if let Some(p) = env_secret(PASSPHRASE_ENV) {
            Some((Arc::new(p), Source::Env))
        } else if self.prompts() {
            prompt_secret(&format!("Enter passphrase for key '{}': ", key.display()))
                .map(|p| (Arc::new(p), Source::Terminal))
        } else {
            None
        };
        if let Some((p, source)) = &got {
            s.passphrases
                .insert(key.to_path_buf(), (Arc::clone(p), *source));
        }
        got
    }

    fn wrong_passphrase(&self, key: &Path) {
        self.lock().passphrases.remove(key);
    }
}

/// The host key a mount accepted on its first connection. Every later
/// connection (reconnects included) accepts that key and no other, whatever
/// `StrictHostKeyChecking` says, and keeps the first connection's verdict on
/// whether a password may be sent. Safe to share between threads.
#[derive(Debug, Default)]
pub struct HostKeyPin(OnceLock<PinnedKey>);

#[derive(Debug)]
struct PinnedKey {
    blob: Vec<u8>,
    /// `ED25519 SHA256:...`, for messages.
    shown: String,
    passwords: PasswordUse,
}

/// Whether password and keyboard-interactive authentication may be used on
/// a connection, decided by the host key check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PasswordUse {
    Allowed,
    /// The host key does not match known_hosts and the connection goes on
    /// only because `StrictHostKeyChecking=no`: as ssh does, no password is
    /// sent to a server that may be a man in the middle.
    DisabledChangedKey,
}

/// Opens a TCP connection, performs the SSH handshake, verifies the host key
/// (against `pin` once it holds one, otherwise against known_hosts, and then
/// pins it) and authenticates. The session is in blocking mode with
/// `settings.timeout` on every call.
pub fn connect(
    settings: &SshSettings,
    creds: &Credentials,
    pin: &HostKeyPin,
) -> Result<Session, Error> {
    let s = settings;
    if s.host.is_empty() || s.host.contains('\0') {
        return Err(Error::Setup(format!("invalid host name {:?}", s.host)));
    }
    if s.user.is_empty() || s.user.contains('\0') {
        return Err(Error::Setup(format!("invalid user name {:?}", s.user)));
    }
    let name = known_hosts_name(&s.host, s.port);

    let tcp = tcp_connect(s)?;
    let mut sess = Session::new()
        .map_err(|e| Error::Setup(format!("cannot create an SSH session: {}", e.message())))?;
    sess.set_timeout(timeout_ms(s.timeout));

    // Offer first the host key types known_hosts holds for this host, so
    // that a host with several keys presents one we can check.
    let known = read_known_hosts(s);
    let known_types = known_key_types(&known, &name);
    match sess.supported_algs(MethodType::HostKey) {
        Ok(supported) => {
            let prefs = hostkey_preference(&known_types, &supported);
            if !prefs.is_empty() {
                if let Err(e) = sess.method_pref(MethodType::HostKey, &prefs) {
                    tracing::debug!("cannot set the host key preference {prefs}: {e}");
                }
            }
        }
        Err(e) => tracing::debug!("cannot list supported host key algorithms: {e}"),
    }

    sess.set_tcp_stream(tcp);
    sess.handshake()
        .map_err(|e| handshake_error(&e, &display_addr(&s.host, s.port)))?;

    let passwords = verify_host_key(&sess, s, &name, pin)?;
    authenticate(&sess, s, creds, passwords)?;
    Ok(sess)
}

fn timeout_ms(t: Duration) -> u32 {
    u32::try_from(t.as_millis()).unwrap_or(u32::MAX)
}

/// `host:port`, with brackets around an IPv6 literal.
fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn tcp_connect(s: &SshSettings) -> Result<TcpStream, Error> {
    let addr = display_addr(&s.host, s.port);
    let fail = |reason: String| Error::Setup(format!("cannot connect to {addr}: {reason}"));
    let addrs: Vec<SocketAddr> = match super::resolve::resolve(&s.host, s.port, s.timeout) {
        Ok(addrs) => addrs,
        Err(Error::TimedOut) => return Err(Error::TimedOut),
        Err(e) => return Err(fail(e.to_string())),
    };
    if addrs.is_empty() {
        return Err(fail("the name has no address".into()));
    }
    let mut last = None;
    for a in &addrs {
        let r = if s.timeout.is_zero() {
            TcpStream::connect(a)
        } else {
            TcpStream::connect_timeout(a, s.timeout)
        };
        match r {
            Ok(stream) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY: {e}");
                }
                tracing::debug!("connected to {a}");
                return Ok(stream);
            }
            Err(e) => {
                tracing::debug!("connect to {a}: {e}");
                last = Some(e);
            }
        }
    }
    let reason = match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
            format!("timed out after {}s", s.timeout.as_secs_f64())
        }
        Some(e) => e.to_string(),
        None => "no address to connect to".into(),
    };
    Err(fail(reason))
}

// ---------------------------------------------------------------------------
// Error mapping

fn session_code(e: &ssh2::Error) -> Option<i32> {
    match e.code() {
        ErrorCode::Session(c) => Some(c),
        ErrorCode::SFTP(_) => None,
    }
}

fn is_timeout(e: &ssh2::Error) -> bool {
    matches!(
        session_code(e),
        Some(raw::LIBSSH2_ERROR_TIMEOUT | raw::LIBSSH2_ERROR_SOCKET_TIMEOUT)
    )
}

/// Errors after which the connection is unusable.
fn is_transport(e: &ssh2::Error) -> bool {
    matches!(
        session_code(e),
        Some(
            raw::LIBSSH2_ERROR_BANNER_RECV
                | raw::LIBSSH2_ERROR_BANNER_SEND
                | raw::LIBSSH2_ERROR_INVALID_MAC
                | raw::LIBSSH2_ERROR_SOCKET_SEND
                | raw::LIBSSH2_ERROR_DECRYPT
                | raw::LIBSSH2_ERROR_SOCKET_DISCONNECT
                | raw::LIBSSH2_ERROR_PROTO
                | raw::LIBSSH2_ERROR_SOCKET_RECV
                | raw::LIBSSH2_ERROR_ENCRYPT
                | raw::LIBSSH2_ERROR_BAD_SOCKET
        )
    )
}

fn is_fatal(e: &ssh2::Error) -> bool {
    is_timeout(e) || is_transport(e)
}

fn handshake_error(e: &ssh2::Error, addr: &str) -> Error {
    tracing::debug!("SSH handshake with {addr}: {e}");
    if is_timeout(e) {
        Error::TimedOut
    } else if is_transport(e) {
        Error::Transport(format!("SSH handshake with {addr} failed: {}", e.message()))
    } else {
        Error::Setup(format!("SSH handshake with {addr} failed: {}", e.message()))
    }
}

// ---------------------------------------------------------------------------
// known_hosts

/// The name a host is recorded under: `host`, or `[host]:port` for ports
/// other than 22. Lower case, as ssh does.
fn known_hosts_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// One usable line of a known_hosts file.
#[derive(Clone, Debug)]
struct KnownHost {
    file: PathBuf,
    line: usize,
    marker: Marker,
    /// The host field: comma-separated patterns, or one `|1|salt|hash`.
    hosts: String,
    key_type: String,
    blob: Vec<u8>,
}

impl KnownHost {
    fn location(&self) -> String {
        format!("{}:{}", display_path(&self.file), self.line)
    }
}

/// The usable lines of known_hosts text. Comments, blank lines, unknown
/// markers, obsolete SSH1 keys and malformed lines are skipped.
fn parse_known_hosts(text: &str, file: &Path) -> Vec<KnownHost> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let mut first = fields.next().unwrap_or("");
        let marker = if first.starts_with('@') {
            let m = match first {
                "@revoked" => Marker::Revoked,
                "@cert-authority" => Marker::CertAuthority,
                _ => {
                    tracing::debug!("{}:{}: unknown marker {first}", file.display(), i + 1);
                    continue;
                }
            };
            first = fields.next().unwrap_or("");
            m
        } else {
            Marker::None
        };
        let (Some(key_type), Some(key)) = (fields.next(), fields.next()) else {
            tracing::debug!("{}:{}: malformed line skipped", file.display(), i + 1);
            continue;
        };
        if first.is_empty() || key_type.starts_with(|c: char| c.is_ascii_digit()) {
            continue; // SSH1 "bits e n" key, or nothing usable
        }
        let Ok(blob) = STANDARD.decode(key) else {
            tracing::debug!("{}:{}: bad key encoding", file.display(), i + 1);
            continue;
        };
        out.push(KnownHost {
            file: file.to_path_buf(),
            line: i + 1,
            marker,
            hosts: first.to_string(),
            key_type: key_type.to_string(),
            blob,
        });
    }
    out
}

/// Both known_hosts files (user first). A missing file is empty.
fn read_known_hosts(s: &SshSettings) -> Vec<KnownHost> {
    let mut all = Vec::new();
    for file in [&s.user_known_hosts, &s.global_known_hosts] {
        match fs::read(file) {
            Ok(bytes) => all.extend(parse_known_hosts(&String::from_utf8_lossy(&bytes), file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot read {}: {e}", file.display()),
        }
    }
    all
}

/// Whether a known_hosts host field names `name` (already lower case).
fn host_field_matches(field: &str, name: &str) -> bool {
    if let Some(rest) = field.strip_prefix("|1|") {
        return hashed_name_matches(rest, name);
    }
    let mut matched = false;
    for pat in field.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if wildcard_match(pat.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `salt|hash` (both base64) of a hashed entry: HMAC-SHA1(salt, name) == hash.
fn hashed_name_matches(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Glob matching with `*` (any run) and `?` (one character), as ssh's
/// `match_pattern`.
fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Key types (`ssh-ed25519`, `ssh-rsa`, …) recorded for `name`, in file
/// order, without duplicates. Marker lines do not count.
fn known_key_types(known: &[KnownHost], name: &str) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for k in known {
        if k.marker == Marker::None
            && host_field_matches(&k.hosts, name)
            && !types.contains(&k.key_type)
        {
            types.push(k.key_type.clone());
        }
    }
    types
}

/// Host key algorithms a known_hosts key type can be presented with.
fn algorithms_for_key_type(key_type: &str) -> Vec<&str> {
    match key_type {
        "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        other => vec![other],
    }
}

/// The host key algorithm preference: those matching `known_types` first,
/// then the other supported ones, both in libssh2's order. Certificate
/// algorithms are left out: libssh2 prefers them by default, and a host
/// certificate is neither a known_hosts key nor verified here.
fn hostkey_preference(known_types: &[String], supported: &[&str]) -> String {
    let wanted: Vec<&str> = known_types
        .iter()
        .flat_map(|t| algorithms_for_key_type(t))
        .collect();
    let plain = supported.iter().copied().filter(|a| !a.contains("-cert-"));
    let (first, rest): (Vec<&str>, Vec<&str>) = plain.partition(|a| wanted.contains(a));
    first.into_iter().chain(rest).collect::<Vec<_>>().join(",")
}

/// The key type name inside a public key blob (its first SSH string).
fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

/// OpenSSH's fingerprint: `SHA256:` and the unpadded base64 of SHA-256(blob).
fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// How ssh names a key type in messages (`ED25519`, `ECDSA`, `RSA`, …).
fn key_type_label(key_type: &str) -> String {
    match key_type {
        "ssh-ed25519" => "ED25519".into(),
        "ssh-rsa" => "RSA".into(),
        "ssh-dss" => "DSA".into(),
        "ssh-ed448" => "ED448".into(),
        "sk-ssh-ed25519@openssh.com" => "ED25519-SK".into(),
        t if t.starts_with("sk-ecdsa-") => "ECDSA-SK".into(),
        t if t.starts_with("ecdsa-") => "ECDSA".into(),
        t => t.to_ascii_uppercase(),
    }
}

/// The line recorded for a newly accepted key.
fn known_hosts_line(name: &str, key_type: &str, blob: &[u8]) -> String {
    format!("{name} {key_type} {}\n", STANDARD.encode(blob))
}

/// A path for messages: the home directory shown as `~`.
fn display_path(p: &Path) -> String {
    if let Some(home) = home_dir() {
        if let Ok(rest) = p.strip_prefix(&home) {
            if !home.as_os_str().is_empty() && home != Path::new("/") {
                return format!("~/{}", rest.display());
            }
        }
    }
    p.display().to_string()
}

/// The local user's home directory: HOME, else the passwd entry.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    // SAFETY: getpwuid_r writes into our buffer; pw_dir is read before the
    // buffer goes away.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = CStr::from_ptr(pwd.pw_dir).to_bytes().to_vec();
        Some(PathBuf::from(OsString::from_vec(dir)))
    }
}

/// What known_hosts says about a presented key.
#[derive(Debug)]
enum HostKeyStatus<'a> {
    Known,
    /// No entry for this host at all.
    Unknown,
    /// An entry of the same type holds another key.
    Changed(&'a KnownHost),
    /// Only keys of other types are recorded (and the server did not use them).
    OtherType(&'a KnownHost),
    Revoked(&'a KnownHost),
}

fn check_known_hosts<'a>(
    known: &'a [KnownHost],
    name: &str,
    key_type: &str,
    blob: &[u8],
) -> HostKeyStatus<'a> {
    let mine: Vec<&KnownHost> = known
        .iter()
        .filter(|k| k.marker != Marker::CertAuthority && host_field_matches(&k.hosts, name))
        .collect();
    if let Some(k) = mine
        .iter()
        .find(|k| k.marker == Marker::Revoked && k.blob == blob)
    {
        return HostKeyStatus::Revoked(k);
    }
    let plain: Vec<&KnownHost> = mine
        .into_iter()
        .filter(|k| k.marker == Marker::None)
        .collect();
    if plain.iter().any(|k| k.blob == blob) {
        HostKeyStatus::Known
    } else if let Some(k) = plain.iter().find(|k| k.key_type == key_type) {
        HostKeyStatus::Changed(k)
    } else if let Some(k) = plain.first() {
        HostKeyStatus::OtherType(k)
    } else {
        HostKeyStatus::Unknown
    }
}

/// Added to the warning when a changed key is let through.
const NO_PASSWORDS: &str = "; password and keyboard-interactive authentication are disabled to \
                            avoid man-in-the-middle attacks";

/// Serializes check-and-append of known_hosts between the connections of
/// this process, so accept-new records a key once.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

fn verify_host_key(
    sess: &Session,
    s: &SshSettings,
    name: &str,
    pin: &HostKeyPin,
) -> Result<PasswordUse, Error> {
    let Some((blob, kind)) = sess.host_key() else {
        return Err(Error::Transport(format!(
            "{}: the server sent no host key",
            display_addr(&s.host, s.port)
        )));
    };
    let key_type = match blob_key_type(blob) {
        Some(t) => t.to_string(),
        None => format!("{kind:?}").to_ascii_lowercase(),
    };
    let fp = fingerprint(blob);
    let label = key_type_label(&key_type);
    tracing::debug!("host key for {name}: {label} {fp}");
    let shown = format!("{label} key {fp}");

    if let Some(pinned) = pin.0.get() {
        return check_pinned(pinned, name, blob, &shown);
    }
    let passwords = check_known_hosts_policy(s, name, blob, &key_type, &label, &fp)?;
    // Concurrent first connections: the first to get here pins its key,
    // and the others must have met the same one.
    let pinned = pin.0.get_or_init(|| PinnedKey {
        blob: blob.to_vec(),
        shown: shown.clone(),
        passwords,
    });
    check_pinned(pinned, name, blob, &shown)
}

/// A later connection: only the pinned key is accepted.
fn check_pinned(
    pinned: &PinnedKey,
    name: &str,
    blob: &[u8],
    shown: &str,
) -> Result<PasswordUse, Error> {
    if pinned.blob == blob {
        return Ok(pinned.passwords);
    }
    Err(Error::Setup(format!(
        "host key for {name} differs from the one this mount verified: the server now presents \
         {shown}, but the mount accepts only {}; not authenticating (someone could be \
         eavesdropping, or another server answers at this address); if the server's key really \
         changed, unmount and mount again",
        pinned.shown
    )))
}

/// The known_hosts check of a first connection under the configured
/// `StrictHostKeyChecking` policy.
fn check_known_hosts_policy(
    s: &SshSettings,
    name: &str,
    blob: &[u8],
    key_type: &str,
    label: &str,
    fp: &str,
) -> Result<PasswordUse, Error> {
    let _guard = crate::sync::lock(&KNOWN_HOSTS_LOCK);
    let known = read_known_hosts(s);
    let policy = s.host_key_policy;
    let user_file = display_path(&s.user_known_hosts);
    match check_known_hosts(&known, name, key_type, blob) {
        HostKeyStatus::Known => Ok(PasswordUse::Allowed),
        HostKeyStatus::Revoked(k) => Err(Error::Setup(format!(
            "host key for {name} ({label} key {fp}) is marked @revoked in {}; refusing to connect",
            k.location()
        ))),
        HostKeyStatus::Changed(k) => {
            let msg = format!(
                "host key for {name} has CHANGED: the server presents {label} key {fp}, which does \
                 not match {}; someone could be eavesdropping (man-in-the-middle attack), or the \
                 host key was replaced; if you trust the new key, remove the old entry \
                 (ssh-keygen -R '{name}') and connect again",
                k.location()
            );
            if policy == HostKeyPolicy::No {
                tracing::warn!("{msg}; continuing because StrictHostKeyChecking=no{NO_PASSWORDS}");
                Ok(PasswordUse::DisabledChangedKey)
            } else {
                Err(Error::Setup(msg))
            }
        }
        HostKeyStatus::OtherType(k) => {
            let msg = format!(
                "host key for {name} does not match known_hosts: the server presents {label} key \
                 {fp}, but {} records a {} key for this host and the server did not offer that \
                 type (possible man-in-the-middle attack); if the server's keys really changed, \
                 update {user_file}",
                k.location(),
                k.key_type
            );
            if policy == HostKeyPolicy::No {
                tracing::warn!("{msg}; continuing because StrictHostKeyChecking=no{NO_PASSWORDS}");
                Ok(PasswordUse::DisabledChangedKey)
            } else {
                Err(Error::Setup(msg))
            }
        }
        HostKeyStatus::Unknown => match policy {
            HostKeyPolicy::Yes => Err(Error::Setup(format!(
                "host key for {name} is unknown ({label} key {fp}); add it to {user_file} or use \
                 -o StrictHostKeyChecking=accept-new"
            ))),
            HostKeyPolicy::AcceptNew => {
                let line = known_hosts_line(name, key_type, blob);
                match append_known_host(&s.user_known_hosts, &line) {
                    Ok(()) => {
                        tracing::warn!("permanently added {name} ({label} key {fp}) to {user_file}")
                    }
                    Err(e) => tracing::warn!(
                        "accepted the new host key for {name} ({label} key {fp}) but cannot \
                         record it in {user_file}: {e}"
                    ),
                }
                Ok(PasswordUse::Allowed)
            }
            HostKeyPolicy::No => {
                tracing::warn!(
                    "host key for {name} is unknown ({label} key {fp}); continuing because \
                     StrictHostKeyChecking=no"
                );
                Ok(PasswordUse::Allowed)
            }
        },
    }
}

/// Appends `line` to a known_hosts file, creating its directory (0700) and
/// the file (0600) if they are missing.
fn append_known_host(path: &Path, line: &str) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    let needs_newline = match fs::read(path) {
        Ok(old) => old.last().is_some_and(|&b| b != b'\n'),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mut text = String::with_capacity(line.len() + 1);
    if needs_newline {
        text.push('\n');
    }
    text.push_str(line);
    f.write_all(text.as_bytes())?;
    f.flush()
}

// ---------------------------------------------------------------------------
// Authentication

/// Methods actually attempted, for the failure message.
#[derive(Default)]
struct Tried(Vec<&'static str>);

impl Tried {
    fn add(&mut self, m: &'static str) {
        if !self.0.contains(&m) {
            self.0.push(m);
        }
    }
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&self.0.join(", "))
        }
    }
}

/// How the authentication stage failed on a broken or slow connection.
fn auth_error(e: &ssh2::Error, who: &str, tried: &Tried) -> Error {
    tracing::debug!("authentication of {who}: {e}");
    if is_timeout(e) {
        Error::TimedOut
    } else {
        Error::Transport(format!(
            "the server closed the connection while authenticating {who} (tried: {tried}; too \
             many failed attempts?): {}",
            e.message()
        ))
    }
}

/// The authentication methods the server offers (`None`: the "none" method
/// already succeeded), control characters escaped as they are shown in
/// messages. Goes to libssh2 directly because ssh2's
/// `auth_methods` panics on a list that is not UTF-8.
fn auth_methods(sess: &Session, user: &str) -> Result<Option<String>, ssh2::Error> {
    let len = libc::c_uint::try_from(user.len()).unwrap_or(libc::c_uint::MAX);
    let list = {
        let mut raw = sess.raw();
        // SAFETY: the session pointer is valid while `raw` holds its lock;
        // libssh2 reads `len` bytes of `user`; the returned string is owned
        // by the session and copied before the lock is released.
        unsafe {
            let p = raw::libssh2_userauth_list(&mut *raw, user.as_ptr().cast(), len);
            if p.is_null() {
                None
            } else {
                Some(printable(CStr::from_ptr(p).to_bytes()))
            }
        }
    };
    match list {
        Some(l) => Ok(Some(l)),
        None if sess.authenticated() => Ok(None),
        None => Err(ssh2::Error::last_session_error(sess).unwrap_or_else(ssh2::Error::unknown)),
    }
}

fn authenticate(
    sess: &Session,
    s: &SshSettings,
    creds: &Credentials,
    passwords: PasswordUse,
) -> Result<(), Error> {
    let who = format!("{}@{}", s.user, s.host);
    let mut tried = Tried::default();
    let methods = match auth_methods(sess, &s.user) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(()),
        Err(e) => return Err(auth_error(&e, &who, &tried)),
    };
    tracing::debug!("server offers authentication methods: {methods}");
    let offers = |m: &str| methods.split(',').any(|x| x == m);

    if offers("publickey")
        && try_public_keys(sess, s, creds, &mut tried).map_err(|e| auth_error(&e, &who, &tried))?
    {
        return Ok(());
    }

    let mut no_password = false;
    let password_offered = offers("password") || offers("keyboard-interactive");
    if password_offered && passwords == PasswordUse::Allowed {
        match try_password(sess, s, creds, &offers, &mut tried) {
            Ok(Some(true)) => return Ok(()),
            Ok(Some(false)) => {}
            Ok(None) => no_password = true,
            Err(e) => return Err(auth_error(&e, &who, &tried)),
        }
    }

    let mut msg = format!("authentication failed for {who} (tried: {tried})");
    if tried.0.is_empty() {
        msg.push_str(&format!("; the server accepts: {methods}"));
    }
    if password_offered && passwords == PasswordUse::DisabledChangedKey {
        msg.push_str(
            "; password and keyboard-interactive authentication are disabled because the host \
             key does not match known_hosts (possible man-in-the-middle attack)",
        );
    }
    if no_password {
        msg.push_str(if creds.password_stdin {
            "; no password on standard input"
        } else {
            "; no password available: standard input is not a terminal (use -o password_stdin \
             or set RMOUNT_PASSWORD)"
        });
    }
    Err(Error::Setup(msg))
}

/// Identity files if given; otherwise the agent, then the default key files.
fn try_public_keys(
    sess: &Session,
    s: &SshSettings,
    creds: &Credentials,
    tried: &mut Tried,
) -> Result<bool, ssh2::Error> {
    if !s.identity_files.is_empty() {
        for key in &s.identity_files {
            if try_key_file(sess, &s.user, creds, key, true, tried)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if try_agent(sess, &s.user, tried)? {
        return Ok(true);
    }
    let Some(home) = home_dir() else {
        return Ok(false);
    };
    for name in DEFAULT_KEY_FILES {
        let key = home.join(".ssh").join(name);
        if key.is_file() && try_key_file(sess, &s.user, creds, &key, false, tried)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every identity of a running ssh-agent. Agent trouble is not an error.
fn try_agent(sess: &Session, user: &str, tried: &mut Tried) -> Result<bool, ssh2::Error> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return Ok(false);
    }
    let mut agent = match sess.agent() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("ssh-agent: {e}");
            return Ok(false);
        }
    };
    if let Err(e) = agent.connect() {
        tracing::debug!("ssh-agent: cannot connect: {e}");
        return Ok(false);
    }
    let ids = match agent.list_identities().and_then(|()| agent.identities()) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::debug!("ssh-agent: cannot list keys: {e}");
            Vec::new()
        }
    };
    let mut result = Ok(false);
    for id in &ids {
        tried.add("publickey");
        match agent.userauth(user, id) {
            Ok(()) => {
                tracing::debug!("authenticated with agent key {}", id.comment());
                result = Ok(true);
                break;
            }
            Err(e) if is_fatal(&e) => {
                result = Err(e);
                break;
            }
            Err(e) => tracing::debug!("agent key {} refused: {e}", id.comment()),
        }
    }
    let _ = agent.disconnect();
    result
}

fn path_with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether the libssh2 error after offering a key with a passphrase means
/// the private key could not be used (wrong passphrase), as opposed to the
/// server refusing the key.
fn is_key_unusable(e: &ssh2::Error) -> bool {
    matches!(
        session_code(e),
        Some(
            raw::LIBSSH2_ERROR_FILE
                | raw::LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED
                | raw::LIBSSH2_ERROR_KEYFILE_AUTH_FAILED
        )
    )
}

fn try_key_file(
    sess: &Session,
    user: &str,
    creds: &Credentials,
    key: &Path,
    explicit: bool,
    tried: &mut Tried,
) -> Result<bool, ssh2::Error> {
    let text = match fs::read(key) {
        Ok(t) => t,
        Err(e) => {
            if explicit {
                tracing::warn!("identity file {}: {e}", key.display());
            }
            return Ok(false);
        }
    };
    let pub_path = path_with_suffix(key, ".pub");
    let pubkey = pub_path.is_file().then_some(pub_path.as_path());
    tried.add("publickey");

    if !private_key_is_encrypted(&text) {
        return match sess.userauth_pubkey_file(user, pubkey, key, None) {
            Ok(()) => {
                tracing::debug!("authenticated with {}", key.display());
                Ok(true)
            }
            Err(e) if is_fatal(&e) => Err(e),
            Err(e) => {
                tracing::debug!("key {} not accepted: {e}", key.display());
                Ok(false)
            }
        };
    }

    // Encrypted key. With its public half at hand, ask the server first
    // whether it would accept the key at all (libssh2 offers the public key
    // before it needs the private one), so that no passphrase is asked for
    // a key the server refuses.
    let have_cached = creds.lock().passphrases.contains_key(key);
    if pubkey.is_some() && !have_cached {
        match sess.userauth_pubkey_file(user, pubkey, key, None) {
            Ok(()) => return Ok(true),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) if !is_key_unusable(&e) => {
                tracing::debug!("key {} not accepted: {e}", key.display());
                return Ok(false);
            }
            Err(_) => {} // accepted; the private key needs its passphrase
        }
    }
    for _ in 0..PROMPT_ATTEMPTS {
        let Some((passphrase, source)) = creds.passphrase(key) else {
            tracing::debug!("no passphrase available for {}", key.display());
            return Ok(false);
        };
        match sess.userauth_pubkey_file(user, pubkey, key, Some(passphrase.expose())) {
            Ok(()) => {
                tracing::debug!("authenticated with {}", key.display());
                return Ok(true);
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) if is_key_unusable(&e) => {
                creds.wrong_passphrase(key);
                let from = match source {
                    Source::Env => format!(" (from {PASSPHRASE_ENV})"),
                    _ => String::new(),
                };
                tracing::warn!("wrong passphrase{from} for key {}", key.display());
                if source != Source::Terminal {
                    return Ok(false);
                }
            }
            Err(e) => {
                tracing::debug!("key {} not accepted: {e}", key.display());
                return Ok(false);
            }
        }
    }
    Ok(false)
}

/// Whether a private key file needs a passphrase: OpenSSH format with a
/// cipher other than "none", or encrypted PEM.
fn private_key_is_encrypted(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const END: &str = "-----END OPENSSH PRIVATE KEY-----";
    if let Some(start) = text.find(BEGIN) {
        let body = &text[start + BEGIN.len()..];
        let body = body.find(END).map_or(body, |end| &body[..end]);
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let Ok(bin) = STANDARD.decode(b64) else {
            return false;
        };
        const MAGIC: &[u8] = b"openssh-key-v1\0";
        return match bin.strip_prefix(MAGIC).and_then(blob_key_type) {
            Some(cipher) => cipher != "none",
            None => false,
        };
    }
    text.contains("Proc-Type: 4,ENCRYPTED")
        || text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Answers every keyboard-interactive prompt with the password. ssh2 takes
/// the answers as owned `String`s and drops them unzeroed right after the
/// call: a short-lived copy that this crate cannot avoid.
struct PasswordPrompter<'a> {
    password: &'a str,
}

impl KeyboardInteractivePrompt for PasswordPrompter<'_> {
    fn prompt<'b>(
        &mut self,
        _user: &str,
        _instructions: &str,
        prompts: &[Prompt<'b>],
    ) -> Vec<String> {
        prompts.iter().map(|_| self.password.to_string()).collect()
    }
}

/// Password, or keyboard-interactive answered with the password when the
/// server does not offer "password". `Ok(None)`: no password was available.
fn try_password(
    sess: &Session,
    s: &SshSettings,
    creds: &Credentials,
    offers: &dyn Fn(&str) -> bool,
    tried: &mut Tried,
) -> Result<Option<bool>, ssh2::Error> {
    let method = if offers("password") {
        "password"
    } else {
        "keyboard-interactive"
    };
    for _ in 0..PROMPT_ATTEMPTS {
        let Some((password, source)) = creds.password(&s.user, &s.host) else {
            return Ok(if tried.0.contains(&method) {
                Some(false)
            } else {
                None
            });
        };
        tried.add(method);
        let r = if method == "password" {
            sess.userauth_password(&s.user, password.expose())
        } else {
            sess.userauth_keyboard_interactive(
                &s.user,
                &mut PasswordPrompter {
                    password: password.expose(),
                },
            )
        };
        match r {
            Ok(()) if sess.authenticated() => {
                tracing::debug!("authenticated with {method}");
                return Ok(Some(true));
            }
            Ok(()) => tracing::debug!("{method}: more authentication required"),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) if session_code(&e) == Some(raw::LIBSSH2_ERROR_PASSWORD_EXPIRED) => {
                tracing::warn!("the password of {}@{} has expired", s.user, s.host);
                return Ok(Some(false));
            }
            Err(e) => tracing::debug!("{method} refused: {e}"),
        }
        creds.refused_password();
        if source != Source::Terminal {
            break;
        }
        eprintln!("Permission denied, please try again.");
    }
    Ok(Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("hmac key");
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    // A throwaway ed25519 key (ssh-keygen -t ed25519 -C test) and the
    // fingerprint `ssh-keygen -lf` printed for it.
    const ED25519_PUB: &str =
        "AAAAC3NzaC1lZDI1NTE5AAAAIN+DZTM2PttOLx/liOAuSgU3OsP/hQbhQS71cJXM3G3y";
    const ED25519_FP: &str = "SHA256:D5KFNrcOFQQGsI7faouCIHjEdWrdh8APqj8HFMhbSgY";

    fn blob(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).expect("test key")
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        assert_eq!(fingerprint(&blob(ED25519_PUB)), ED25519_FP);
        assert_eq!(blob_key_type(&blob(ED25519_PUB)), Some("ssh-ed25519"));
        assert_eq!(key_type_label("ssh-ed25519"), "ED25519");
        assert_eq!(key_type_label("ecdsa-sha2-nistp256"), "ECDSA");
    }

    #[test]
    fn lookup_names() {
        assert_eq!(known_hosts_name("Example.COM", 22), "example.com");
        assert_eq!(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
        assert_eq!(known_hosts_name("::1", 2222), "[::1]:2222");
        assert_eq!(known_hosts_name("::1", 22), "::1");
        assert_eq!(display_addr("::1", 22), "[::1]:22");
        assert_eq!(display_addr("host", 22), "host:22");
    }

    #[test]
    fn key_types_for_host() {
        let text = format!(
            "# comment\n\
             \n\
             example.com,10.0.0.1 ssh-ed25519 {ED25519_PUB}\n\
             example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ== comment here\n\
             [127.0.0.1]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=\n\
             {} ssh-ed25519 {ED25519_PUB}\n\
             @cert-authority *.example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==\n\
             @revoked example.com ssh-dss AAAAB3NzaC1kc3M=\n\
             @bogus example.com ssh-dss AAAAB3NzaC1kc3M=\n\
             *.wild.org,!bad.wild.org ssh-ed25519 {ED25519_PUB}\n\
             example.com 1024 35 1234567\n\
             broken-line-without-key\n\
             bad.base64 ssh-ed25519 !!!!\n\
             {} ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQ=\n",
            hashed("[127.0.0.1]:2222", b"0123456789abcdefghij"),
            hashed("hashed.example", b"saltsaltsaltsaltsalt"),
        );
        let known = parse_known_hosts(&text, Path::new("/k"));
        assert_eq!(
            known_key_types(&known, "example.com"),
            ["ssh-ed25519", "ssh-rsa"]
        );
        assert_eq!(known_key_types(&known, "10.0.0.1"), ["ssh-ed25519"]);
        assert_eq!(
            known_key_types(&known, "[127.0.0.1]:2222"),
            ["ecdsa-sha2-nistp256", "ssh-ed25519"]
        );
        // A plain entry is for port 22 only, and a port entry for its port only.
        assert!(known_key_types(&known, "127.0.0.1").is_empty());
        assert!(known_key_types(&known, "[127.0.0.1]:2223").is_empty());
        assert!(known_key_types(&known, "[example.com]:2222").is_empty());
        assert_eq!(
            known_key_types(&known, "hashed.example"),
            ["ecdsa-sha2-nistp384"]
        );
        assert_eq!(known_key_types(&known, "a.wild.org"), ["ssh-ed25519"]);
        assert!(known_key_types(&known, "bad.wild.org").is_empty());
        assert!(known_key_types(&known, "wild.org").is_empty());
        // Marker lines are parsed but are not keys of the host.
        assert!(known.iter().any(|k| k.marker == Marker::Revoked));
        assert!(known.iter().any(|k| k.marker == Marker::CertAuthority));
        assert!(!known.iter().any(|k| k.hosts == "bad.base64"));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"*", b"anything"));
        assert!(wildcard_match(b"a*c", b"abbbc"));
        assert!(wildcard_match(b"a?c", b"abc"));
        assert!(!wildcard_match(b"a?c", b"ac"));
        assert!(wildcard_match(b"*.b.*", b"x.b.y"));
        assert!(!wildcard_match(b"*.b", b"x.bc"));
        assert!(wildcard_match(b"[10.0.0.*]:2222", b"[10.0.0.7]:2222"));
        assert!(host_field_matches("Example.COM", "example.com"));
    }

    #[test]
    fn check_statuses() {
        let other = "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let text = format!(
            "[h]:2222 ssh-ed25519 {ED25519_PUB}\n\
             changed ssh-ed25519 {other}\n\
             rsaonly ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==\n\
             @revoked revoked ssh-ed25519 {ED25519_PUB}\n\
             revoked ssh-ed25519 {ED25519_PUB}\n\
             @cert-authority * ssh-ed25519 {other}\n\
             multi ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==\n\
             multi ssh-ed25519 {ED25519_PUB}\n"
        );
        let known = parse_known_hosts(&text, Path::new("/k"));
        let key = blob(ED25519_PUB);
        let check = |name| check_known_hosts(&known, name, "ssh-ed25519", &key);
        assert!(matches!(check("[h]:2222"), HostKeyStatus::Known));
        assert!(matches!(check("multi"), HostKeyStatus::Known));
        assert!(matches!(check("h"), HostKeyStatus::Unknown));
        assert!(matches!(check("[h]:2223"), HostKeyStatus::Unknown));
        assert!(matches!(check("changed"), HostKeyStatus::Changed(k) if k.line == 2));
        assert!(matches!(check("rsaonly"), HostKeyStatus::OtherType(_)));
        assert!(matches!(check("revoked"), HostKeyStatus::Revoked(k) if k.line == 4));
    }

    #[test]
    fn only_the_pinned_key_is_accepted() {
        let other = blob("AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let pinned = PinnedKey {
            blob: blob(ED25519_PUB),
            shown: format!("ED25519 key {ED25519_FP}"),
            passwords: PasswordUse::DisabledChangedKey,
        };
        // The same key keeps the first connection's verdict on passwords.
        assert!(matches!(
            check_pinned(&pinned, "[h]:2222", &blob(ED25519_PUB), "x"),
            Ok(PasswordUse::DisabledChangedKey)
        ));
        let shown = format!("ED25519 key {}", fingerprint(&other));
        match check_pinned(&pinned, "[h]:2222", &other, &shown) {
            Err(Error::Setup(msg)) => {
                assert!(msg.contains(ED25519_FP), "{msg}");
                assert!(msg.contains(&fingerprint(&other)), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
            }
            other => panic!("another key must be refused: {other:?}"),
        }
    }

    #[test]
    fn hostkey_preference_puts_known_types_first() {
        let supported = [
            "ssh-ed25519",
            "ssh-ed25519-cert-v01@openssh.com",
            "ecdsa-sha2-nistp256",
            "rsa-sha2-512",
            "rsa-sha2-256",
            "ssh-rsa",
        ];
        assert_eq!(
            hostkey_preference(&["ssh-rsa".into()], &supported),
            "rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519,ecdsa-sha2-nistp256"
        );
        assert_eq!(
            hostkey_preference(
                &["ecdsa-sha2-nistp256".into(), "sk-ssh-x".into()],
                &supported
            ),
            "ecdsa-sha2-nistp256,ssh-ed25519,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
        assert_eq!(
            hostkey_preference(&[], &supported),
            "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
    }

    #[test]
    fn appended_line() {
        let key = blob(ED25519_PUB);
        let name = known_hosts_name("127.0.0.1", 2222);
        let line = known_hosts_line(&name, "ssh-ed25519", &key);
        assert_eq!(
            line,
            format!("[127.0.0.1]:2222 ssh-ed25519 {ED25519_PUB}\n")
        );
        assert_eq!(
            known_hosts_line(&known_hosts_name("Host.Example", 22), "ssh-ed25519", &key),
            format!("host.example ssh-ed25519 {ED25519_PUB}\n")
        );
        // What we write, we read back as the same key.
        let known = parse_known_hosts(&line, Path::new("/k"));
        assert!(matches!(
            check_known_hosts(&known, &name, "ssh-ed25519", &key),
            HostKeyStatus::Known
        ));
    }

    #[test]
    fn append_creates_dir_and_file_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("new/.ssh/known_hosts");
        append_known_host(&file, "a ssh-ed25519 AAAA\n").expect("append");
        // An existing file without a final newline gets one before our line.
        fs::write(&file, "a ssh-ed25519 AAAA").expect("write");
        append_known_host(&file, "b ssh-ed25519 BBBB\n").expect("append");
        let text = fs::read_to_string(&file).expect("read");
        assert_eq!(text, "a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB\n");
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(file.parent().expect("dir")), 0o700);
        let fresh = tmp.path().join("other");
        append_known_host(&fresh, "c ssh-ed25519 CCCC\n").expect("append");
        assert_eq!(mode(&fresh), 0o600);
    }

    #[test]
    fn encrypted_key_detection() {
        assert!(!private_key_is_encrypted(PLAIN_KEY.as_bytes()));
        assert!(private_key_is_encrypted(ENCRYPTED_KEY.as_bytes()));
        assert!(private_key_is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"
        ));
        assert!(!private_key_is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"
        ));
        assert!(!private_key_is_encrypted(b"garbage"));
    }

    #[test]
    fn no_prompt_after_start_up() {
        let c = Credentials::new(false);
        assert!(c.may_prompt.load(std::sync::atomic::Ordering::SeqCst));
        c.end_prompts();
        assert!(!c.prompts(), "never a prompt once the mount is ready");
        // Nothing cached, nothing in the environment's name for this test:
        // no password, and no terminal touched.
        assert!(c.password("u", "h").is_none() || std::env::var_os(PASSWORD_ENV).is_some());
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials::new(false);
        c.lock().password = Some((Arc::new(Secret::from("hunter2")), Source::Env));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"));
        c.refused_password();
        assert!(c.lock().password.is_some(), "an env password is kept");
        c.lock().password = Some((Arc::new(Secret::from("typed")), Source::Terminal));
        c.refused_password();
        assert!(
            c.lock().password.is_none(),
            "a typed password is asked again"
        );
    }

    /// Every connection borrows the one stored copy: a reconnect never
    /// duplicates the password.
    #[test]
    fn credentials_hand_out_the_one_stored_copy() {
        let c = Credentials::new(false);
        let stored = Arc::new(Secret::from("hunter2"));
        c.lock().password = Some((Arc::clone(&stored), Source::Env));
        for _ in 0..3 {
            let (got, source) = c.password("u", "h").expect("cached password");
            assert!(Arc::ptr_eq(&got, &stored));
            assert_eq!(source, Source::Env);
        }
        let key = Path::new("/k");
        c.lock()
            .passphrases
            .insert(key.to_path_buf(), (Arc::clone(&stored), Source::Env));
        let (got, _) = c.passphrase(key).expect("cached passphrase");
        assert!(Arc::ptr_eq(&got, &stored));
        drop(got);
        c.wrong_passphrase(key);
        drop(c);
        // Nothing else holds it: dropping this last handle zeroes it.
        assert_eq!(Arc::strong_count(&stored), 1);
    }

    /// libssh2's own check (which we do not use) does handle hashed
    /// `[host]:port` entries, but also applies a plain `host` entry to every
    /// port, reporting a false mismatch; this pins down why we match ourselves.
    #[test]
    fn libssh2_known_hosts_behaviour() {
        let sess = Session::new().expect("session");
        let mut kh = sess.known_hosts().expect("known hosts");
        let key = blob(ED25519_PUB);
        let line = format!(
            "{} ssh-ed25519 {ED25519_PUB}",
            hashed("[127.0.0.1]:2222", b"0123456789abcdefghij")
        );
        kh.read_str(&line, ssh2::KnownHostFileKind::OpenSSH)
            .expect("read");
        assert!(matches!(
            kh.check_port("127.0.0.1", 2222, &key),
            ssh2::CheckResult::Match
        ));
        let other = "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        kh.read_str(
            &format!("10.1.1.1 ssh-ed25519 {other}"),
            ssh2::KnownHostFileKind::OpenSSH,
        )
        .expect("read");
        assert!(matches!(
            kh.check_port("10.1.1.1", 2222, &key),
            ssh2::CheckResult::Mismatch
        ));
        // Ours: a different port is simply unknown.
        let ours = parse_known_hosts(&format!("10.1.1.1 ssh-ed25519 {other}"), Path::new("/k"));
        assert!(matches!(
            check_known_hosts(&ours, "[10.1.1.1]:2222", "ssh-ed25519", &key),
            HostKeyStatus::Unknown
        ));
    }

    // The private half of ED25519_PUB (unencrypted) and another key encrypted
    // with the passphrase "pw"; test material only.
    const PLAIN_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDfg2UzNj7bTi8f5YjgLkoFNzrD/4UG4UEu9XCVzNxt8gAAAIhP5KrGT+Sq
xgAAAAtzc2gtZWQyNTUxOQAAACDfg2UzNj7bTi8f5YjgLkoFNzrD/4UG4UEu9XCVzNxt8g
AAAEC8EsW8zIyLW1SGyFYGkassI5E+ERRLfX0zD4iaAsOPw9+DZTM2PttOLx/liOAuSgU3
OsP/hQbhQS71cJXM3G3yAAAABHRlc3QB
-----END OPENSSH PRIVATE KEY-----
";
    const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABC2n0tXji
hbBDZRFpwvmimfAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIEcYS1A0C3VWVvf/
sTQa6UeqysfViyZDempy8ByU8ZRMAAAAkPhL6PMREumLIW6W7GgXNgo/9M0wUER0Dnch22
3JojeL7K8B0JYjIxfRcbxzGZjwLNmJyBgG2nOSo6++TFwxyyjSXzHkNfodNeiA08H0BW0H
5zw/ZBK4z5yQq3RceP6MNcWrHsJ6tBXMFteDpZOIrjNMnXaMVbNERxS7ty+JhNA38ZTh/q
1YFBbXLj1PmyIelg==
-----END OPENSSH PRIVATE KEY-----
";
}

/// Property tests: no known_hosts text makes the parser panic or yield more
/// keys than lines, and a line written from its parts reads back.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    use crate::testing::proptest_config as config;

    fn text() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            "\\PC{0,60}",
            "(@revoked |@cert-authority |@x )?[a-z0-9.,*?!\\[\\]:|=/+]{0,30} (ssh-ed25519|ssh-rsa|1024) [A-Za-z0-9+/=]{0,40}( .{0,10})?",
        ];
        proptest::collection::vec(line, 0..10).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_text_parses_to_at_most_one_key_a_line(text in text()) {
            let keys = parse_known_hosts(&text, Path::new("known_hosts"));
            prop_assert!(keys.len() <= text.lines().count());
            for k in &keys {
                prop_assert!(!k.hosts.is_empty() && !k.key_type.is_empty());
                prop_assert!(!k.hosts.contains(char::is_whitespace));
                prop_assert!(k.line >= 1 && k.line <= text.lines().count());
            }
        }

        #[test]
        fn a_line_reads_back(
            hosts in "[a-z0-9][a-z0-9.-]{0,15}(,\\[[a-z0-9.]{1,10}\\]:[0-9]{1,5}){0,2}",
            key_type in "(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256)",
            blob in proptest::collection::vec(any::<u8>(), 1..64),
            comment in "( [ -~]{0,20})?",
            revoked in any::<bool>(),
        ) {
            let marker = if revoked { "@revoked " } else { "" };
            let line = format!("{marker}{hosts} {key_type} {}{comment}", STANDARD.encode(&blob));
            let text = format!("# header\n\n{line}\n");
            let keys = parse_known_hosts(&text, Path::new("kh"));
            prop_assert_eq!(keys.len(), 1);
            let k = &keys[0];
            prop_assert_eq!(&k.hosts, &hosts);
            prop_assert_eq!(&k.key_type, &key_type);
            prop_assert_eq!(&k.blob, &blob);
            prop_assert_eq!(k.line, 3);
            prop_assert_eq!(matches!(k.marker, Marker::Revoked), revoked);
        }
    }
}
