//! Opening the connection: name resolution and a TCP connect bounded by the
//! timeout (or the route `route` makes), the SSH handshake with the
//! configured algorithms, offering first the host key types known_hosts can
//! vouch for, then the host key check and authentication, in that order.
//!
//! It decides nothing about trust or users: host keys are judged in
//! `host_key`, users authenticated in `auth`.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ssh2::{MethodType, Session};

use super::algorithms;
use super::auth::authenticate;
use super::errors::{is_timeout, is_transport};
use super::host_key::{hostkey_preference, verify_host_key, HostKeyPin};
use super::known_hosts::{known_hosts_name, known_key_types, read_known_hosts};
use super::route::{self, Stream};
use super::{AddressFamily, Credentials, SshSettings};
use crate::remote::{resolve, Error};

/// Opens the byte stream (TCP, `ProxyCommand` or jump hosts), performs the
/// SSH handshake, verifies the host key (against `pin` once it holds one,
/// otherwise against known_hosts, and then pins it) and authenticates. The
/// session is in blocking mode with `settings.timeout` on every call.
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
    let stream = route::open(s, creds)?;
    session_over(s, creds, pin, stream)
}

/// The SSH part of [`connect`], over a stream already open.
pub(super) fn session_over(
    s: &SshSettings,
    creds: &Credentials,
    pin: &HostKeyPin,
    stream: Stream,
) -> Result<Session, Error> {
    let name = match &s.options.host_key_alias {
        Some(alias) => alias.to_ascii_lowercase(),
        None => known_hosts_name(&s.host, s.port),
    };
    let mut sess = Session::new()
        .map_err(|e| Error::Setup(format!("cannot create an SSH session: {}", e.message())))?;
    sess.set_timeout(timeout_ms(s.timeout));
    algorithms::apply(&sess, &s.options.algorithms)?;

    let host_key_set = match &s.options.algorithms.host_key {
        Some(spec) => algorithms::set(&sess, MethodType::HostKey, spec, "HostKeyAlgorithms")?,
        None => false,
    };
    if !host_key_set {
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
    }

    sess.set_tcp_stream(stream);
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
pub(super) fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) fn tcp_connect(s: &SshSettings) -> Result<TcpStream, Error> {
    let addr = display_addr(&s.host, s.port);
    let fail = |reason: String| Error::Setup(format!("cannot connect to {addr}: {reason}"));
    let timeout = s.options.connect_timeout.unwrap_or(s.timeout);
    let addrs: Vec<SocketAddr> = match resolve::resolve(&s.host, s.port, timeout) {
        Ok(addrs) => addrs
            .into_iter()
            .filter(|a| match s.options.address_family {
                AddressFamily::Any => true,
                AddressFamily::Inet => a.is_ipv4(),
                AddressFamily::Inet6 => a.is_ipv6(),
            })
            .collect(),
        Err(Error::TimedOut) => return Err(Error::TimedOut),
        Err(e) => return Err(fail(e.to_string())),
    };
    if addrs.is_empty() {
        return Err(fail(
            "the name has no address (of the AddressFamily asked for)".into(),
        ));
    }
    let mut last = None;
    for a in &addrs {
        let r = if timeout.is_zero() {
            TcpStream::connect(a)
        } else {
            TcpStream::connect_timeout(a, timeout)
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
            format!("timed out after {}s", timeout.as_secs_f64())
        }
        Some(e) => e.to_string(),
        None => "no address to connect to".into(),
    };
    Err(fail(reason))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_addresses() {
        assert_eq!(display_addr("::1", 22), "[::1]:22");
        assert_eq!(display_addr("host", 22), "host:22");
    }
}
