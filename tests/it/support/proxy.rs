//! A fault-injection TCP proxy, in process, between rmount and a real test
//! server: the kernel here has no netem, so delays, slow links, cut and
//! frozen connections and refused reconnects are made in user space.
//!
//! [`FaultProxy::start`] listens on a free loopback port and forwards every
//! connection to `upstream`. Its controls may be called at any time, also
//! while traffic flows:
//!
//! - [`ProxyControl::set_delay`]: a pause before each forwarded chunk;
//! - [`ProxyControl::set_latency`]: a one-way delay, as on a long link:
//!   every chunk arrives that long after it was sent, while the chunks
//!   behind it keep flowing (up to [`LATENCY_WINDOW`] bytes in flight per
//!   direction, like a TCP window);
//! - [`ProxyControl::set_bandwidth`]: a byte rate per direction and connection;
//! - [`ProxyControl::cut_after`] / [`ProxyControl::cut_now`]: close every current
//!   connection (both sides see a FIN) after so many more forwarded bytes;
//!   connections made afterwards work, so a client can reconnect;
//! - [`ProxyControl::freeze`]: forward nothing, close nothing — a hung server
//!   or a black-holed link. New connections are still accepted (and frozen);
//! - [`ProxyControl::refuse_new`]: accept new connections and close them at
//!   once (the server is unreachable); current ones are left alone;
//! - [`ProxyControl::restore`]: back to a healthy link.
//! - [`ProxyControl::set_upstream`]: send new connections to another server
//!   (current ones stay where they are); another machine answering at the
//!   same address.
//!
//! FTP: the proxy notices an FTP control connection by its `220` greeting and
//! rewrites the server's `227` (PASV) and `229` (EPSV) replies to point at a
//! one-shot listener of its own, which forwards that data connection to the
//! port the server named. Data connections therefore go through the proxy
//! too and get the same faults (and count in [`ProxyControl::connections`]).
//! After `234` (AUTH TLS accepted) the control channel is encrypted and
//! passes through untouched: for FTPS only the control connection is
//! proxied, data connections go straight to the server. Active mode
//! (`-o ftp_active`) also bypasses the proxy for data.
//!
//! This file knows nothing of the rest of the test support: the helper
//! binary (tests/helper/, its `proxy` job) includes it too, so that
//! scripts/bench.sh can put the same delays between a client and a server.
//! Mounting through a proxy is in `proxy_mount.rs`.
//!
//! Every thread polls a stop flag (sockets have short read timeouts, sleeps
//! are sliced), so dropping the proxy closes everything and joins every
//! thread within a fraction of a second.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often blocked threads look at the stop flag and the controls.
const TICK: Duration = Duration::from_millis(20);
/// Largest chunk forwarded at once.
const CHUNK: usize = 32 * 1024;
/// How long a connection to the upstream server may take.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a PASV/EPSV data listener waits for the client.
const DATA_ACCEPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes in flight per direction of a connection under `set_latency`.
pub const LATENCY_WINDOW: usize = 4 << 20;
/// An FTP control line longer than this is not FTP: stop parsing.
const MAX_CONTROL_LINE: usize = 8 * 1024;

/// A running proxy. Dropping it closes every connection and stops every
/// thread. Its controls are those of [`ProxyControl`] (through `Deref`).
pub struct FaultProxy {
    port: u16,
    control: ProxyControl,
}

/// The controls of a [`FaultProxy`]; cheap to clone and `'static`, for
/// handing to another thread. Does not keep the proxy running.
#[derive(Clone)]
pub struct ProxyControl {
    shared: Arc<Shared>,
}

struct Shared {
    /// Where new control connections go.
    upstream: Mutex<SocketAddr>,
    controls: Mutex<Controls>,
    /// Signalled whenever the controls change (a frozen pump waits on it).
    changed: Condvar,
    links: Mutex<Vec<Arc<Link>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
    accepted: AtomicU64,
    forwarded: AtomicU64,
}

#[derive(Default)]
struct Controls {
    delay: Duration,
    latency: Duration,
    /// Bytes per second, per direction of each connection.
    bandwidth: Option<u64>,
    /// Bytes that may still be forwarded before every connection is cut.
    cut_budget: Option<u64>,
    frozen: bool,
    refuse: bool,
}

/// Bytes read from one side and not yet written to the other.
#[derive(Default)]
struct InFlight {
    bytes: Mutex<usize>,
    drained: Condvar,
}

impl InFlight {
    fn sent(&self, n: usize) {
        *lock(&self.bytes) += n;
    }

    fn delivered(&self, n: usize) {
        *lock(&self.bytes) -= n;
        self.drained.notify_all();
    }

    /// Waits (at most `tick`) until no more than `window` bytes are on
    /// their way; whether they are.
    fn wait_for_room(&self, window: usize, tick: Duration) -> bool {
        let bytes = lock(&self.bytes);
        let (bytes, _) = self
            .drained
            .wait_timeout_while(bytes, tick, |b| *b > window)
            .unwrap_or_else(|e| e.into_inner());
        *bytes <= window
    }
}

/// One proxied connection: the client side and the upstream side.
struct Link {
    /// (client, upstream); None once closed. The pumps hold clones, which
    /// they drop when they see `closed`.
    sockets: Mutex<Option<(TcpStream, TcpStream)>>,
    closed: AtomicBool,
    /// Pumps (directions) still running.
    pumps: AtomicUsize,
}

impl Link {
    /// Shuts both sides down and closes our descriptors, so a peer that is
    /// still sending gets a reset rather than writing into a void (an FTP
    /// server only answers an aborted download once its writes fail).
    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            if let Some((client, upstream)) = lock(&self.sockets).take() {
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
            }
        }
    }

    fn is_live(&self) -> bool {
        !self.closed.load(Ordering::SeqCst) && self.pumps.load(Ordering::SeqCst) > 0
    }
}

impl FaultProxy {
    /// A healthy proxy on `127.0.0.1:<free port>` forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        FaultProxy::bind(SocketAddr::from(([127, 0, 0, 1], 0)), upstream)
            .expect("proxy: listen on a loopback port")
    }

    /// A healthy proxy listening on `listen` (port 0: a free one)
    /// forwarding to `upstream`.
    pub fn bind(listen: SocketAddr, upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen)?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            controls: Mutex::new(Controls::default()),
            changed: Condvar::new(),
            links: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let s = shared.clone();
        shared.spawn(move || s.accept_loop(listener, true, None));
        Ok(FaultProxy {
            port,
            control: ProxyControl { shared },
        })
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle on the controls, for another thread.
    pub fn control(&self) -> ProxyControl {
        self.control.clone()
    }
}

impl std::ops::Deref for FaultProxy {
    type Target = ProxyControl;
    fn deref(&self) -> &ProxyControl {
        &self.control
    }
}

impl ProxyControl {
    /// Pause `d` before forwarding each chunk (zero: no delay).
    pub fn set_delay(&self, d: Duration) {
        self.shared.update(|c| c.delay = d);
    }

    /// Deliver every chunk `d` after it was read, without holding up the
    /// chunks behind it (zero: at once).
    pub fn set_latency(&self, d: Duration) {
        self.shared.update(|c| c.latency = d);
    }

    /// Limit each direction of each connection to `bytes_per_sec` (0: no limit).
    pub fn set_bandwidth(&self, bytes_per_sec: u64) {
        self.shared
            .update(|c| c.bandwidth = (bytes_per_sec > 0).then_some(bytes_per_sec));
    }

    /// Close every connection open at that moment once `n` more bytes (in
    /// total, all directions and connections) have been forwarded.
    pub fn cut_after(&self, n: u64) {
        self.shared.update(|c| c.cut_budget = Some(n));
    }

    /// Close every current connection now.
    pub fn cut_now(&self) {
        self.shared.cut_all();
    }

    /// Stop forwarding in both directions, keeping every socket open; new
    /// connections are accepted but get no data either.
    pub fn freeze(&self) {
        self.shared.update(|c| c.frozen = true);
    }

    /// With `true`, new connections are accepted and closed at once.
    pub fn refuse_new(&self, refuse: bool) {
        self.shared.update(|c| c.refuse = refuse);
    }

    /// A healthy link again: no delay, no limit, no pending cut, not frozen,
    /// accepting.
    pub fn restore(&self) {
        self.shared.update(|c| *c = Controls::default());
    }

    /// Forward connections made from now on to `upstream` instead; those
    /// already open stay connected where they are (cut them to move them).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = upstream;
    }

    /// Proxied connections (control and data) currently open.
    pub fn connections(&self) -> usize {
        let mut links = lock(&self.shared.links);
        links.retain(|l| l.is_live());
        links.len()
    }

    /// Connections accepted since the start (including refused ones).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Bytes forwarded since the start, all directions.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let shared = &self.control.shared;
        shared.stop.store(true, Ordering::SeqCst);
        shared.cut_all();
        shared.changed.notify_all();
        // Threads may start others while we join: repeat until none is left.
        // Every thread ends within a few TICKs of the stop flag.
        for _ in 0..1000 {
            let batch: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&shared.threads));
            if batch.is_empty() {
                break;
            }
            for t in batch {
                let _ = t.join();
            }
        }
    }
}

impl Shared {
    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        let handle = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(f)
            .expect("proxy: spawn thread");
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }

    fn update(&self, f: impl FnOnce(&mut Controls)) {
        f(&mut lock(&self.controls));
        self.changed.notify_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn cut_all(&self) {
        let links: Vec<Arc<Link>> = lock(&self.links).drain(..).collect();
        for l in links {
            l.close();
        }
    }

    /// Accepts until stopped (`once`: only one connection, within
    /// `DATA_ACCEPT_TIMEOUT`). `to`: where data connections go; None means
    /// the upstream control address.
    fn accept_loop(self: &Arc<Self>, listener: TcpListener, control: bool, to: Option<SocketAddr>) {
        let deadline = Instant::now() + DATA_ACCEPT_TIMEOUT;
        while !self.stopped() && (control || Instant::now() < deadline) {
            match listener.accept() {
                Ok((client, _)) => {
                    self.accepted.fetch_add(1, Ordering::SeqCst);
                    let this = self.clone();
                    let upstream = to.unwrap_or_else(|| *lock(&self.upstream));
                    self.spawn(move || this.open_link(client, upstream, control));
                    if !control {
                        return;
                    }
                }
                // Wakes at once when a client connects, else after a TICK.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(&listener, TICK),
                Err(_) => std::thread::sleep(TICK),
            }
        }
    }

    /// Connects a new client to `upstream` and starts both pumps.
    fn open_link(self: &Arc<Self>, client: TcpStream, upstream: SocketAddr, control: bool) {
        let _ = client.set_nonblocking(false);
        if control && lock(&self.controls).refuse {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        let Ok(up) = TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let clones = (
            client.try_clone(),
            client.try_clone(),
            up.try_clone(),
            up.try_clone(),
        );
        let (Ok(c_read), Ok(c_write), Ok(u_read), Ok(u_write)) = clones else {
            return;
        };
        let link = Arc::new(Link {
            sockets: Mutex::new(Some((client, up))),
            closed: AtomicBool::new(false),
            pumps: AtomicUsize::new(2),
        });
        {
            let mut links = lock(&self.links);
            links.retain(|l| l.is_live());
            links.push(link.clone());
        }
        if self.stopped() {
            link.close();
        }
        let (this, l) = (self.clone(), link.clone());
        self.spawn(move || this.pump(&l, c_read, u_write, None));
        let rewriter = control.then(FtpRewriter::default);
        let this = self.clone();
        self.spawn(move || this.pump(&link, u_read, c_write, rewriter));
    }

    /// Forwards `from` → `to` until EOF, an error, a cut or the stop flag.
    fn pump(
        self: &Arc<Self>,
        link: &Link,
        mut from: TcpStream,
        mut to: TcpStream,
        mut rewriter: Option<FtpRewriter>,
    ) {
        let _ = from.set_read_timeout(Some(TICK));
        // Reading and writing run apart, so that a latency delays every
        // chunk without stopping the ones behind it.
        // Without a latency nothing waits in between: a slow or frozen
        // write holds up the reading too, as it always did.
        // The bytes counted in `in_flight` bound what is on its way; the
        // queue only must not: a read often returns far less than CHUNK,
        // and a queue of LATENCY_WINDOW / CHUNK such reads capped a
        // delayed link at about 100 MiB/s.
        let (sent, due) =
            std::sync::mpsc::sync_channel::<Option<(Instant, Vec<u8>)>>(LATENCY_WINDOW / 512);
        let in_flight = InFlight::default();
        std::thread::scope(|scope| {
            scope.spawn(|| self.deliver(link, &mut to, due, &in_flight));
            self.pump_until_done(link, &mut from, &sent, &in_flight, rewriter.as_mut());
            let _ = sent.send(None);
        });
        // Our clones of the sockets go with this function; the last pump
        // out closes the link's own.
        drop((from, to));
        if link.pumps.fetch_sub(1, Ordering::SeqCst) == 1 {
            link.close();
        }
    }

    /// Writes what `pump_until_done` read, each chunk once its latency has
    /// passed; `None` is the end of input (passed on as a half-close).
    fn deliver(
        &self,
        link: &Link,
        to: &mut TcpStream,
        due: std::sync::mpsc::Receiver<Option<(Instant, Vec<u8>)>>,
        in_flight: &InFlight,
    ) {
        for item in due {
            let Some((at, data)) = item else {
                let _ = to.shutdown(Shutdown::Write);
                return;
            };
            let wait = at.saturating_duration_since(Instant::now());
            if !self.nap(link, wait) || self.forward(link, to, &data).is_err() {
                link.close();
                return;
            }
            in_flight.delivered(data.len());
        }
    }

    fn pump_until_done(
        self: &Arc<Self>,
        link: &Link,
        from: &mut TcpStream,
        to: &std::sync::mpsc::SyncSender<Option<(Instant, Vec<u8>)>>,
        in_flight: &InFlight,
        mut rewriter: Option<&mut FtpRewriter>,
    ) {
        let send = |data: Vec<u8>| {
            let latency = lock(&self.controls).latency;
            in_flight.sent(data.len());
            to.send(Some((Instant::now() + latency, data))).is_ok()
        };
        // Room for more: a window's worth under a latency, else nothing
        // until the writer has passed everything on.
        let window = || {
            if lock(&self.controls).latency.is_zero() {
                0
            } else {
                LATENCY_WINDOW
            }
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            if self.stopped() || link.closed.load(Ordering::SeqCst) {
                break;
            }
            if !self.wait_while_frozen(link) {
                break;
            }
            if !in_flight.wait_for_room(window(), TICK) {
                continue; // look at the stop flag and the controls again
            }
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    // Pass the half-close on (after what is still on its
                    // way); the other direction goes on.
                    if let Some(rw) = rewriter.as_mut() {
                        send(rw.flush());
                    }
                    break;
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(_) => {
                    link.close();
                    break;
                }
            };
            let out = match rewriter.as_mut() {
                Some(rw) => rw.feed(&buf[..n], self),
                None => buf[..n].to_vec(),
            };
            if !send(out) {
                link.close();
                break;
            }
        }
    }

    /// Writes `data` with the current delay, bandwidth, freeze and cut rules.
    fn forward(&self, link: &Link, to: &mut TcpStream, data: &[u8]) -> io::Result<()> {
        let broken = || io::Error::new(io::ErrorKind::BrokenPipe, "proxy: link closed");
        let mut rest = data;
        while !rest.is_empty() {
            let (delay, bandwidth) = {
                let c = lock(&self.controls);
                (c.delay, c.bandwidth)
            };
            let size = match bandwidth {
                // Small chunks keep the rate smooth.
                Some(bw) => rest.len().min((bw / 50).clamp(256, CHUNK as u64) as usize),
                None => rest.len().min(CHUNK),
            };
            let mut pause = delay;
            if let Some(bw) = bandwidth {
                pause += Duration::from_secs_f64(size as f64 / bw as f64);
            }
            if !self.nap(link, pause) || !self.wait_while_frozen(link) {
                return Err(broken());
            }
            let (allowed, cut) = self.take_budget(size);
            to.write_all(&rest[..allowed])?;
            self.forwarded.fetch_add(allowed as u64, Ordering::SeqCst);
            if cut {
                self.cut_all();
                return Err(broken());
            }
            rest = &rest[size..];
        }
        Ok(())
    }

    /// How much of `len` bytes may go, and whether the cut is due after them.
    fn take_budget(&self, len: usize) -> (usize, bool) {
        let mut c = lock(&self.controls);
        match c.cut_budget {
            None => (len, false),
            Some(budget) => {
                let allowed = budget.min(len as u64);
                if allowed == budget {
                    c.cut_budget = None;
                    (allowed as usize, true)
                } else {
                    c.cut_budget = Some(budget - allowed);
                    (allowed as usize, false)
                }
            }
        }
    }

    /// Sleeps `d` in slices; false if the link or the proxy went away.
    fn nap(&self, link: &Link, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopped() || link.closed.load(Ordering::SeqCst) {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(TICK));
        }
    }

    /// Blocks while frozen; false if the link or the proxy went away.
    fn wait_while_frozen(&self, link: &Link) -> bool {
        let mut c = lock(&self.controls);
        while c.frozen {
            if self.stopped() || link.closed.load(Ordering::SeqCst) {
                return false;
            }
            c = self
                .changed
                .wait_timeout(c, TICK)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        !self.stopped() && !link.closed.load(Ordering::SeqCst)
    }

    /// Opens a one-shot listener that forwards one data connection to
    /// `target`; returns its port.
    fn data_relay(self: &Arc<Self>, target: SocketAddr) -> Option<u16> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).ok()?;
        listener.set_nonblocking(true).ok()?;
        let port = listener.local_addr().ok()?.port();
        let this = self.clone();
        self.spawn(move || this.accept_loop(listener, false, Some(target)));
        Some(port)
    }
}

/// Rewrites PASV/EPSV replies on an FTP control connection (server → client).
#[derive(Default)]
struct FtpRewriter {
    /// Not yet a complete line.
    partial: Vec<u8>,
    /// Decided: `Some(true)` FTP (line mode), `Some(false)` pass through.
    ftp: Option<bool>,
}

impl FtpRewriter {
    fn feed(&mut self, data: &[u8], proxy: &Arc<Shared>) -> Vec<u8> {
        if self.ftp.is_none() {
            self.partial.extend_from_slice(data);
            if self.partial.len() < 3 {
                return Vec::new();
            }
            self.ftp = Some(self.partial.starts_with(b"220"));
            let held = std::mem::take(&mut self.partial);
            return self.feed(&held, proxy);
        }
        if self.ftp == Some(false) {
            return data.to_vec();
        }
        self.partial.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            out.extend(self.rewrite_line(&line, proxy));
            if line.starts_with(b"234") {
                // AUTH TLS accepted: from now on the bytes are TLS records.
                self.ftp = Some(false);
                out.append(&mut self.partial);
                return out;
            }
        }
        if self.partial.len() > MAX_CONTROL_LINE {
            self.ftp = Some(false);
            out.append(&mut self.partial);
        }
        out
    }

    fn flush(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }

    fn rewrite_line(&self, line: &[u8], proxy: &Arc<Shared>) -> Vec<u8> {
        let text = String::from_utf8_lossy(line);
        let rewritten = if text.starts_with("227 ") {
            parse_pasv(&text).and_then(|target| {
                let port = proxy.data_relay(target)?;
                Some(format!(
                    "227 Entering Passive Mode (127,0,0,1,{},{}).\r\n",
                    port >> 8,
                    port & 0xff
                ))
            })
        } else if text.starts_with("229 ") {
            parse_epsv(&text).and_then(|p| {
                let target = SocketAddr::new(lock(&proxy.upstream).ip(), p);
                let port = proxy.data_relay(target)?;
                Some(format!(
                    "229 Entering Extended Passive Mode (|||{port}|).\r\n"
                ))
            })
        } else {
            None
        };
        match rewritten {
            Some(l) => l.into_bytes(),
            None => line.to_vec(),
        }
    }
}

/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` → the address.
fn parse_pasv(line: &str) -> Option<SocketAddr> {
    let body = line.get(4..)?;
    let open = body.find('(').map(|i| i + 1).unwrap_or(0);
    let nums: Vec<u16> = body[open..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u16>>>()?;
    if nums.len() != 6 || nums.iter().any(|&n| n > 255) {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
    Some(SocketAddr::new(IpAddr::V4(ip), nums[4] * 256 + nums[5]))
}

/// `229 Entering Extended Passive Mode (|||port|)` → the port.
fn parse_epsv(line: &str) -> Option<u16> {
    let open = line.find('(')?;
    let inner = &line[open + 1..line[open..].find(')')? + open];
    let delim = inner.chars().next()?;
    let fields: Vec<&str> = inner.split(delim).collect();
    // "", "", "", "port", ""
    fields.get(3)?.parse().ok()
}

/// Blocks until `listener` has a connection to accept, at most `timeout`.
fn wait_readable(listener: &TcpListener, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) on one valid descriptor we own, for a bounded time.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ----- connection accounting --------------------------------------------------

/// ESTABLISHED TCP connections whose remote end is `127.0.0.1:port` (the
/// client sides of connections to a loopback server), from /proc/net/tcp.
pub fn established_connections_to(port: u16) -> usize {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...
            let (Some(rem), Some(st)) = (f.get(2), f.get(3)) else {
                return false;
            };
            let rem_port = rem
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            *st == "01" && rem_port == Some(port) && rem.starts_with("0100007F")
        })
        .count()
}
