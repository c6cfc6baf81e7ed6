//! The `proxy` job: the tests' fault/delay proxy (tests/it/support/proxy.rs,
//! the same code) as a process of its own, so that scripts/bench.sh can put
//! a long link between a client and a loopback server. It only forwards, with
//! a one-way delay; it never changes the bytes (apart from the FTP passive
//! replies the proxy rewrites so that data connections go through it too).
//!
//! Usage: `rmount-test-helper proxy --listen ADDR --upstream ADDR
//! [--latency-ms N]`. Prints the port it listens on (one line on stdout),
//! then forwards until its stdin closes (or it is killed).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::fault_proxy::FaultProxy;

const USAGE: &str =
    "usage: rmount-test-helper proxy --listen ADDR --upstream ADDR [--latency-ms N]";

/// The job's settings, from its arguments (those after `proxy`).
struct Settings {
    listen: SocketAddr,
    upstream: SocketAddr,
    latency: Duration,
}

fn parse(args: &[String]) -> Result<Settings, String> {
    let (mut listen, mut upstream, mut latency) = (None, None, Duration::ZERO);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let addr = || -> Result<SocketAddr, String> {
            value
                .parse()
                .map_err(|_| format!("{flag}: not an address (IP:PORT): {value}"))
        };
        match flag.as_str() {
            "--listen" => listen = Some(addr()?),
            "--upstream" => upstream = Some(addr()?),
            "--latency-ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| format!("--latency-ms: not a number of milliseconds: {value}"))?;
                latency = Duration::from_millis(ms);
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(Settings {
        listen: listen.ok_or("--listen is missing")?,
        upstream: upstream.ok_or("--upstream is missing")?,
        latency,
    })
}

pub fn run(args: &[String]) {
    let settings = parse(args).unwrap_or_else(|e| {
        eprintln!("rmount-test-helper proxy: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let proxy = FaultProxy::bind(settings.listen, settings.upstream).unwrap_or_else(|e| {
        eprintln!(
            "rmount-test-helper proxy: cannot listen on {}: {e}",
            settings.listen
        );
        std::process::exit(1);
    });
    proxy.set_latency(settings.latency);
    let mut out = io::stdout().lock();
    if writeln!(out, "{}", proxy.port())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(1);
    }
    drop(out);
    // Until stdin closes: whoever started us decides how long we live.
    let mut sink = [0u8; 512];
    let mut stdin = io::stdin().lock();
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(proxy); // closes every connection, joins every thread
}
