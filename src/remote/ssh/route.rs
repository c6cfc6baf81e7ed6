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
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use ssh2::{BlockDirections, Channel, Session};

use super::connect::{display_addr, session_over, tcp_connect};
use super::{Credentials, Route, SshSettings};
use crate::remote::Error;

/// What a session reads and writes.
pub(super) enum Stream {
    Tcp(TcpStream),
    /// Our end of the socket pair; the other is the command's stdin/stdout.
    Command {
        sock: UnixStream,
        child: Child,
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
            Stream::Command { sock, child } => {
                let _ = sock.shutdown(Shutdown::Both);
                // Our own child: killing and reaping it by its handle.
                let _ = child.kill();
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
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
        .spawn()
        .map_err(fail)?;
    tracing::debug!("ProxyCommand started: {command}");
    Ok(Stream::Command { sock: ours, child })
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
    std::thread::Builder::new()
        .name("jump-pump".into())
        .spawn(move || pump(sess, channel, theirs, sess_fd))
        .map_err(fail)?;
    tracing::debug!("forwarding to {addr} through the jump host");
    Ok(Stream::Jump(ours))
}

/// Copies bytes both ways between `local` and `channel` until either side
/// ends or fails, then closes `local` (the session over it sees end of file).
fn pump(sess: Session, mut channel: Channel, mut local: UnixStream, sess_fd: RawFd) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut to_remote: Vec<u8> = Vec::new();
    let mut to_local: Vec<u8> = Vec::new();
    loop {
        let mut progress = false;
        if to_remote.is_empty() {
            match local.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    to_remote.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
        }
        if !to_remote.is_empty() {
            match channel.write(&to_remote) {
                Ok(n) => {
                    to_remote.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
        }
        if to_local.is_empty() {
            match channel.read(&mut buf) {
                Ok(0) if channel.eof() => break,
                Ok(0) => {}
                Ok(n) => {
                    to_local.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
        }
        if !to_local.is_empty() {
            match local.write(&to_local) {
                Ok(n) => {
                    to_local.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
        }
        if !progress {
            wait(&sess, sess_fd, &local, &to_remote, &to_local);
        }
    }
    let _ = local.shutdown(Shutdown::Both);
    tracing::debug!("jump forwarding ended");
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Waits (at most a second) until either socket can make progress on
/// what is pending.
fn wait(sess: &Session, sess_fd: RawFd, local: &UnixStream, to_remote: &[u8], to_local: &[u8]) {
    let mut sess_events = 0;
    // Incoming data, or the window adjustment a blocked write waits for.
    if to_local.is_empty() || !to_remote.is_empty() {
        sess_events |= libc::POLLIN;
    }
    if matches!(
        sess.block_directions(),
        BlockDirections::Outbound | BlockDirections::Both
    ) {
        sess_events |= libc::POLLOUT;
    }
    let mut local_events = 0;
    if to_remote.is_empty() {
        local_events |= libc::POLLIN;
    }
    if !to_local.is_empty() {
        local_events |= libc::POLLOUT;
    }
    let mut fds = [
        libc::pollfd {
            fd: sess_fd,
            events: sess_events,
            revents: 0,
        },
        libc::pollfd {
            fd: local.as_raw_fd(),
            events: local_events,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a valid array of two pollfd for the whole call.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
}
