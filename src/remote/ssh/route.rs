//! The byte stream an SSH session runs over: a TCP connection, the standard
//! input and output of a `ProxyCommand`, or a `direct-tcpip` channel of the
//! previous jump host's session. libssh2 needs a socket, so the last two
//! hand it one end of a Unix socket pair; the other end is the command's
//! stdin/stdout, or is pumped to and from the jump host's channel by a
//! thread that alone uses that jump host's session.
//!
//! A stream ends what it started when dropped: the command is killed, the
//! pump sees the socket close and drops its jump session. A dead jump host
//! ends the pump, and the session over it sees end of file. Every
//! reconnect builds the whole chain again. Host keys and authentication of
//! each hop are `connect`'s business.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use ssh2::{BlockDirections, Channel, Session};

use super::connect::{display_addr, session_over, tcp_connect};
use super::{Credentials, Route, SshSettings};
use crate::remote::Error;

/// What a session reads and writes.
pub(super) enum Stream {
    Tcp(TcpStream),
    /// Our end of the socket pair; the other is the command's stdin/stdout.
    /// `pidfd` names the process even once it is not our child any more
    /// (after the fork to the background), so a kill never hits another.
    Command {
        sock: UnixStream,
        child: Child,
        pidfd: Option<OwnedFd>,
    },
    /// Our end of the socket pair; a pump thread serves the other.
    Jump(UnixStream),
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Command { sock, .. } | Stream::Jump(sock) => sock.as_raw_fd(),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        match self {
            Stream::Tcp(_) => {}
            Stream::Command { sock, child, pidfd } => {
                let _ = sock.shutdown(Shutdown::Both);
                // The process we started, named by its pidfd (without one,
                // by its handle); reaped if it is still our child (else
                // init reaps it).
                if pidfd.is_none() {
                    let _ = child.kill();
                }
                if let Some(fd) = pidfd {
                    // SAFETY: a valid pidfd; no siginfo.
                    unsafe {
                        libc::syscall(
                            libc::SYS_pidfd_send_signal,
                            fd.as_raw_fd(),
                            libc::SIGKILL,
                            std::ptr::null::<libc::siginfo_t>(),
                            0,
                        )
                    };
                }
                let _ = child.wait();
            }
            Stream::Jump(sock) => {
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Opens the stream to `s.host:s.port` the way `s.route` says; jump hosts
/// are connected, verified and logged in to on the way.
pub(super) fn open(s: &SshSettings, creds: &Credentials) -> Result<Stream, Error> {
    match &s.route {
        Route::Direct => Ok(Stream::Tcp(tcp_connect(s)?)),
        Route::Command(command) => run_command(command),
        Route::Jump(hops) => {
            let mut previous: Option<(Session, RawFd)> = None;
            for hop in hops {
                let hs = &hop.settings;
                let stream = match previous.take() {
                    None => open(hs, creds)?,
                    Some((sess, fd)) => forward(sess, fd, &hs.host, hs.port)?,
                };
                let fd = stream.as_raw_fd();
                let sess = session_over(hs, creds, &hop.pin, stream).map_err(|e| match e {
                    Error::Setup(m) => Error::Setup(format!(
                        "jump host {}: {m}",
                        display_addr(&hs.host, hs.port)
                    )),
                    e => e,
                })?;
                tracing::debug!("logged in to jump host {}", display_addr(&hs.host, hs.port));
                previous = Some((sess, fd));
            }
            match previous {
                Some((sess, fd)) => forward(sess, fd, &s.host, s.port),
                None => Ok(Stream::Tcp(tcp_connect(s)?)),
            }
        }
    }
}

/// Runs `command` with `sh -c`, its stdin and stdout one end of a socket
/// pair; its stderr stays ours, as with ssh.
fn run_command(command: &str) -> Result<Stream, Error> {
    let fail = |e: io::Error| Error::Setup(format!("ProxyCommand '{command}': {e}"));
    let (ours, theirs) = UnixStream::pair().map_err(fail)?;
    let theirs_out = theirs.try_clone().map_err(fail)?;
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        // Its own process group: a terminal's signals are not for it.
        .process_group(0)
        .spawn()
        .map_err(fail)?;
    // SAFETY: pidfd_open on our child's pid; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    tracing::debug!("ProxyCommand started: {command}");
    Ok(Stream::Command {
        sock: ours,
        child,
        pidfd,
    })
}

/// Opens a `direct-tcpip` channel from the jump session `sess` to
/// `host:port` and starts the pump between it and a new socket pair.
fn forward(sess: Session, sess_fd: RawFd, host: &str, port: u16) -> Result<Stream, Error> {
    let addr = display_addr(host, port);
    let channel = sess.channel_direct_tcpip(host, port, None).map_err(|e| {
        Error::Setup(format!(
            "the jump host cannot open a connection to {addr}: {}",
            e.message()
        ))
    })?;
    let fail = |e: io::Error| Error::Setup(format!("cannot forward to {addr}: {e}"));
    let (ours, theirs) = UnixStream::pair().map_err(fail)?;
    theirs.set_nonblocking(true).map_err(fail)?;
    sess.set_blocking(false);
    start(Pump {
        sess,
        channel,
        local: theirs,
        sess_fd,
        to_remote: Vec::new(),
        to_local: Vec::new(),
    })
    .map_err(fail)?;
    tracing::debug!("forwarding to {addr} through the jump host");
    Ok(Stream::Jump(ours))
}

/// One forwarding: a jump session used by nothing else, its channel, our
/// socket end, and the bytes read but not yet written either way.
struct Pump {
    sess: Session,
    channel: Channel,
    local: UnixStream,
    sess_fd: RawFd,
    to_remote: Vec<u8>,
    to_local: Vec<u8>,
}

/// Set while the pumps are to park (see [`pause_forwarding`]).
static PAUSE: AtomicBool = AtomicBool::new(false);
/// The running pump threads.
static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());
/// Pumps parked by [`pause_forwarding`].
static PARKED: Mutex<Vec<Pump>> = Mutex::new(Vec::new());
/// How long a pump sleeps without traffic, hence how fast it parks.
const IDLE_WAKE: Duration = Duration::from_millis(250);

fn start(pump: Pump) -> io::Result<()> {
    let handle = std::thread::Builder::new()
        .name("jump-pump".into())
        .spawn(move || {
            if let Some(parked) = pump.run() {
                crate::sync::lock(&PARKED).push(parked);
            }
        })?;
    let mut threads = crate::sync::lock(&THREADS);
    threads.retain(|t| !t.is_finished());
    threads.push(handle);
    Ok(())
}

/// Parks every forwarding and waits until no pump thread is left, so that
/// a fork copies none. Connections made meanwhile would block: call it
/// only where no connection is being made.
pub fn pause_forwarding() {
    PAUSE.store(true, Ordering::SeqCst);
    let threads = std::mem::take(&mut *crate::sync::lock(&THREADS));
    for t in threads {
        let _ = t.join();
    }
}

/// Starts a thread again for every parked forwarding.
pub fn resume_forwarding() {
    PAUSE.store(false, Ordering::SeqCst);
    let parked = std::mem::take(&mut *crate::sync::lock(&PARKED));
    for pump in parked {
        if let Err(e) = start(pump) {
            tracing::warn!("cannot restart a jump host forwarding: {e}");
        }
    }
}

impl Pump {
    /// Copies bytes both ways between `local` and `channel` until either
    /// side ends or fails, then closes `local` (the session over it sees
    /// end of file). Returns itself when told to park.
    fn run(mut self) -> Option<Pump> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if PAUSE.load(Ordering::SeqCst) {
                return Some(self);
            }
            match self.step(&mut buf) {
                Ok(true) => {}
                Ok(false) => self.wait(),
                Err(()) => break,
            }
        }
        let _ = self.local.shutdown(Shutdown::Both);
        tracing::debug!("jump forwarding ended");
        None
    }

    /// One round of copying: whether anything moved; `Err` when done.
    fn step(&mut self, buf: &mut [u8]) -> Result<bool, ()> {
        let mut progress = false;
        if self.to_remote.is_empty() {
            match self.local.read(buf) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.to_remote.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => return Err(()),
            }
        }
        if !self.to_remote.is_empty() {
            match self.channel.write(&self.to_remote) {
                Ok(n) => {
                    self.to_remote.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => return Err(()),
            }
        }
        if self.to_local.is_empty() {
            match self.channel.read(buf) {
                Ok(0) if self.channel.eof() => return Err(()),
                Ok(0) => {}
                Ok(n) => {
                    self.to_local.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => return Err(()),
            }
        }
        if !self.to_local.is_empty() {
            match self.local.write(&self.to_local) {
                Ok(n) => {
                    self.to_local.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => return Err(()),
            }
        }
        Ok(progress)
    }

    /// Waits (at most [`IDLE_WAKE`]) until either socket can make progress
    /// on what is pending.
    fn wait(&self) {
        let mut sess_events = 0;
        // Incoming data, or the window adjustment a blocked write waits for.
        if self.to_local.is_empty() || !self.to_remote.is_empty() {
            sess_events |= libc::POLLIN;
        }
        if matches!(
            self.sess.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            sess_events |= libc::POLLOUT;
        }
        let mut local_events = 0;
        if self.to_remote.is_empty() {
            local_events |= libc::POLLIN;
        }
        if !self.to_local.is_empty() {
            local_events |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd {
                fd: self.sess_fd,
                events: sess_events,
                revents: 0,
            },
            libc::pollfd {
                fd: self.local.as_raw_fd(),
                events: local_events,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the whole call.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, IDLE_WAKE.as_millis() as libc::c_int) };
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn child_pid(stream: &Stream) -> u32 {
        match stream {
            Stream::Command { child, .. } => child.id(),
            _ => panic!("not a command stream"),
        }
    }

    #[test]
    fn a_proxy_command_carries_bytes_both_ways() {
        let stream = run_command("cat").unwrap();
        let Stream::Command { sock, .. } = &stream else {
            panic!("not a command stream");
        };
        let mut sock = sock.try_clone().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(b"SSH-2.0-test\r\n").unwrap();
        let mut back = [0u8; 14];
        sock.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"SSH-2.0-test\r\n");
    }

    #[test]
    fn a_proxy_command_ends_with_its_stream() {
        // It ignores end of file on its stdin: only the kill ends it.
        let stream = run_command("sleep 1000").unwrap();
        let proc_dir = format!("/proc/{}", child_pid(&stream));
        assert!(Path::new(&proc_dir).exists());
        drop(stream);
        assert!(!Path::new(&proc_dir).exists(), "{proc_dir} still there");
    }

    #[test]
    fn a_command_that_cannot_start_ends_the_stream() {
        // `sh` starts; the command inside it does not: the stream ends.
        let stream = run_command("/nonexistent/proxy").unwrap();
        let Stream::Command { sock, .. } = &stream else {
            panic!("not a command stream");
        };
        let mut sock = sock.try_clone().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(sock.read(&mut buf).unwrap(), 0);
    }
}
