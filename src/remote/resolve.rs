//! Name resolution with a deadline. `getaddrinfo` has none of its own (a
//! dead DNS server makes it wait for its own retries, far longer than the
//! mount's `timeout`), so it runs on a thread of its own while the caller
//! waits at most the deadline. A late answer is dropped with the thread.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

use super::{Error, Result};

/// The addresses of `host:port`, within `timeout` (zero: no deadline).
pub fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>> {
    let target = (host.to_string(), port);
    resolve_with(timeout, move || {
        target
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| e.to_string())
    })
    .map_err(|e| match e {
        Error::Setup(why) => Error::Setup(format!("cannot resolve {host}: {why}")),
        other => other,
    })
}

/// Runs `lookup` on its own thread and waits for it at most `timeout`.
fn resolve_with(
    timeout: Duration,
    lookup: impl FnOnce() -> std::result::Result<Vec<SocketAddr>, String> + Send + 'static,
) -> Result<Vec<SocketAddr>> {
    if timeout.is_zero() {
        return lookup().map_err(Error::Setup);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(lookup());
        })
        .map_err(Error::Io)?;
    match rx.recv_timeout(timeout) {
        Ok(found) => found.map_err(Error::Setup),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::TimedOut),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Setup(
            "the name lookup ended without an answer".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_lookup_that_hangs_times_out_at_the_deadline() {
        let started = Instant::now();
        let r = resolve_with(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(Vec::new())
        });
        assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "did not wait for the lookup"
        );
    }

    #[test]
    fn answers_and_failures_come_through() {
        let addr: SocketAddr = "127.0.0.1:22".parse().expect("address");
        let r = resolve_with(Duration::from_secs(5), move || Ok(vec![addr]));
        assert_eq!(r.ok(), Some(vec![addr]));
        let r = resolve_with(Duration::from_secs(5), || Err("no such name".into()));
        assert!(matches!(r, Err(Error::Setup(m)) if m.contains("no such name")));
        let found = resolve("127.0.0.1", 21, Duration::from_secs(5)).expect("a literal");
        assert_eq!(
            found,
            vec!["127.0.0.1:21".parse::<SocketAddr>().expect("address")]
        );
    }
}
