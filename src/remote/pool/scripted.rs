//! A scripted `Connection` and `Connector` for the pool's unit tests (test
//! builds only). Each connect and each call succeeds, times out, breaks the
//! link or finds the server busy, as the test scripted it per call or per
//! connection; it may take a scripted time, and may be held at a `Gate`
//! until the test lets it go. Everything asked is recorded.
//!
//! It knows no protocol and serves no data worth reading. A delay here is
//! only ever the scripted duration of a call: tests meet other threads at
//! gates, never by waiting on the clock.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{Connection, Connector, Generation};
use crate::remote::{Attr, Caps, DirEntry, Error, Kind, Result, SetAttr, StatFs, TimeRange};
use crate::sync::{lock, wait_timeout};

/// Longest a test waits for another thread before it fails instead of
/// hanging: a guard against a broken pool, never a way to meet a thread.
const STUCK: Duration = Duration::from_secs(30);

/// How a scripted connect or call ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    TimedOut,
    /// The link broke (`Error::Transport`).
    Broken,
    /// The server has too many connections (FTP's 421 at connect).
    Busy,
}

/// One scripted connect or call.
#[derive(Clone)]
pub struct Step {
    outcome: Outcome,
    takes: Duration,
    gate: Option<Gate>,
}

impl Step {
    pub fn ok() -> Step {
        Step::ends(Outcome::Ok)
    }
    pub fn timed_out() -> Step {
        Step::ends(Outcome::TimedOut)
    }
    pub fn broken() -> Step {
        Step::ends(Outcome::Broken)
    }
    pub fn busy() -> Step {
        Step::ends(Outcome::Busy)
    }
    fn ends(outcome: Outcome) -> Step {
        Step {
            outcome,
            takes: Duration::ZERO,
            gate: None,
        }
    }

    /// The call takes this long (after its gate, if any, opened).
    pub fn taking(mut self, takes: Duration) -> Step {
        self.takes = takes;
        self
    }

    /// The call waits at `gate` until the test opens it.
    pub fn held(mut self, gate: &Gate) -> Step {
        self.gate = Some(gate.clone());
        self
    }

    fn play(&self) -> Result<()> {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        if !self.takes.is_zero() {
            std::thread::sleep(self.takes);
        }
        match self.outcome {
            Outcome::Ok => Ok(()),
            Outcome::TimedOut => Err(Error::TimedOut),
            Outcome::Broken => Err(Error::Transport("scripted: link broken".into())),
            Outcome::Busy => Err(Error::Busy("421 scripted: too many connections".into())),
        }
    }
}

/// Where held calls wait until the test opens it. The test can wait until
/// a number of calls have arrived, so it knows they are in flight.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Default)]
struct GateState {
    waiting: usize,
    open: bool,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    fn pass(&self) {
        let (state, changed) = &*self.0;
        let mut s = lock(state);
        s.waiting += 1;
        changed.notify_all();
        s = wait_until(changed, s, |s| s.open, "a gate to open");
        s.waiting -= 1;
    }

    /// Waits until `n` calls are held here.
    pub fn until_waiting(&self, n: usize) {
        let (state, changed) = &*self.0;
        let _held = wait_until(changed, lock(state), |s| s.waiting >= n, "calls at a gate");
    }

    /// Lets every call held here, and every later one, go on.
    pub fn open(&self) {
        let (state, changed) = &*self.0;
        lock(state).open = true;
        changed.notify_all();
    }
}

/// Waits on `cond` until `done`; panics after `STUCK` rather than hang.
fn wait_until<'a, T>(
    cond: &Condvar,
    mut guard: MutexGuard<'a, T>,
    done: impl Fn(&T) -> bool,
    what: &str,
) -> MutexGuard<'a, T> {
    let deadline = Instant::now() + STUCK;
    while !done(&guard) {
        let now = Instant::now();
        assert!(now < deadline, "stuck waiting for {what}");
        guard = wait_timeout(cond, guard, deadline - now);
    }
    guard
}

/// One call a connection was asked to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The connection: 0 is the one `Script::connection` made first, the
    /// rest are numbered as the connector made them.
    pub conn: usize,
    pub op: &'static str,
    pub path: PathBuf,
}

#[derive(Default)]
struct State {
    connects: VecDeque<Step>,
    calls: VecDeque<Step>,
    per_conn: HashMap<usize, VecDeque<Step>>,
    next_conn: usize,
    connects_asked: usize,
    connecting: usize,
    most_connecting: usize,
    asked: Vec<Call>,
    closed: Vec<usize>,
}

/// The script and the record, shared by the connector and its connections.
/// Unscripted connects and calls succeed at once.
#[derive(Clone, Default)]
pub struct Script(Arc<(Mutex<State>, Condvar)>);

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.0 .0)
    }

    /// A connection made without the connector (the pool's first).
    pub fn connection(&self) -> Scripted {
        let mut s = self.state();
        let id = s.next_conn;
        s.next_conn += 1;
        Scripted {
            id,
            script: self.clone(),
            kept: None,
            stream: None,
        }
    }

    /// A connector with SFTP-like caps; tests may change them.
    pub fn connector(&self) -> ScriptedConnector {
        ScriptedConnector {
            script: self.clone(),
            caps: Caps {
                random_write: true,
                exact_times: true,
                resize_rewrites: false,
                symlinks: true,
                atomic_rename: true,
                setattr_follows_symlinks: true,
                times: TimeRange::SFTP_V3,
            },
        }
    }

    /// How the next unscripted connect attempt ends.
    pub fn on_connect(&self, step: Step) {
        self.state().connects.push_back(step);
    }

    /// How the next call ends, on whichever connection it comes.
    pub fn on_call(&self, step: Step) {
        self.state().calls.push_back(step);
    }

    /// How the next call on connection `conn` ends (before `on_call`'s).
    pub fn on_conn(&self, conn: usize, step: Step) {
        self.state()
            .per_conn
            .entry(conn)
            .or_default()
            .push_back(step);
    }

    /// Every call asked so far, in order.
    pub fn asked(&self) -> Vec<Call> {
        self.state().asked.clone()
    }

    /// Which connections answered `op`, in order.
    pub fn conns_asked(&self, op: &str) -> Vec<usize> {
        let s = self.state();
        s.asked
            .iter()
            .filter(|c| c.op == op)
            .map(|c| c.conn)
            .collect()
    }

    /// Connect attempts so far, failed ones included.
    pub fn connects(&self) -> usize {
        self.state().connects_asked
    }

    /// Most connect attempts that were in flight at once.
    pub fn most_connecting(&self) -> usize {
        self.state().most_connecting
    }

    /// Connections made so far (the first included).
    pub fn made(&self) -> usize {
        self.state().next_conn
    }

    /// Waits until connection `conn` is closed (the pool closes discarded
    /// connections on another thread).
    pub fn until_closed(&self, conn: usize) {
        let (state, changed) = &*self.0;
        let what = format!("connection {conn} to close");
        let _s = wait_until(changed, lock(state), |s| s.closed.contains(&conn), &what);
    }
}

pub struct ScriptedConnector {
    script: Script,
    pub caps: Caps,
}

impl Connector for ScriptedConnector {
    type Conn = Scripted;

    fn connect(&self) -> Result<Scripted> {
        let step = {
            let mut s = self.script.state();
            s.connects_asked += 1;
            s.connecting += 1;
            s.most_connecting = s.most_connecting.max(s.connecting);
            s.connects.pop_front().unwrap_or_else(Step::ok)
        };
        let result = step.play();
        self.script.state().connecting -= 1;
        result.map(|()| self.script.connection())
    }

    fn caps(&self) -> Caps {
        self.caps
    }
}

/// A connection that plays its script.
pub struct Scripted {
    id: usize,
    script: Script,
    /// The path of the write handle it keeps open, if any.
    kept: Option<PathBuf>,
    /// Where a successful read left off, as a download kept open would:
    /// the path and the offset a next read would continue at.
    stream: Option<(PathBuf, u64)>,
}

impl Scripted {
    fn call(&mut self, op: &'static str, path: &Path) -> Result<()> {
        let step = {
            let mut s = self.script.state();
            s.asked.push(Call {
                conn: self.id,
                op,
                path: path.to_path_buf(),
            });
            let mine = s.per_conn.get_mut(&self.id).and_then(VecDeque::pop_front);
            mine.or_else(|| s.calls.pop_front())
                .unwrap_or_else(Step::ok)
        };
        step.play()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let (state, changed) = &*self.script.0;
        lock(state).closed.push(self.id);
        changed.notify_all();
    }
}

/// The attributes every scripted stat answers.
pub fn file() -> Attr {
    Attr {
        kind: Kind::File,
        size: 0,
        perm: 0o644,
        uid: 0,
        gid: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        nlink: 1,
    }
}

impl Connection for Scripted {
    fn stat(&mut self, path: &Path) -> Result<Attr> {
        self.call("stat", path).map(|()| file())
    }
    fn stat_again(&mut self, path: &Path, known: &Attr) -> Result<Attr> {
        self.call("stat_again", path).map(|()| known.clone())
    }
    fn list(&mut self, path: &Path) -> Result<Vec<DirEntry>> {
        self.call("list", path).map(|()| Vec::new())
    }
    fn read(&mut self, path: &Path, offset: u64, len: usize, _: Generation) -> Result<Vec<u8>> {
        self.stream = None;
        self.call("read", path)?;
        self.stream = Some((path.to_path_buf(), offset + len as u64));
        Ok(vec![0; len])
    }
    fn continues_read(&self, path: &Path, offset: u64) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|(p, at)| p == path && *at == offset)
    }
    fn holds_read(&self) -> bool {
        self.stream.is_some()
    }
    fn write(&mut self, path: &Path, _: u64, _: &[u8]) -> Result<()> {
        self.call("write", path)
    }
    fn write_kept(&mut self, path: &Path, _: u64, _: &[u8]) -> Result<bool> {
        self.call("write_kept", path)?;
        self.kept = Some(path.to_path_buf());
        Ok(true)
    }
    fn close_kept(&mut self) -> Result<()> {
        match self.kept.take() {
            Some(path) => self.call("close_kept", &path),
            None => Ok(()),
        }
    }
    fn upload(&mut self, path: &Path, _: &mut dyn io::Read, _: bool) -> Result<()> {
        self.call("upload", path)
    }
    fn create(&mut self, path: &Path, _: u32, _: bool) -> Result<()> {
        self.call("create", path)
    }
    fn setattr(&mut self, path: &Path, _: SetAttr) -> Result<()> {
        self.call("setattr", path)
    }
    fn mkdir(&mut self, path: &Path, _: u32) -> Result<()> {
        self.call("mkdir", path)
    }
    fn rmdir(&mut self, path: &Path) -> Result<()> {
        self.call("rmdir", path)
    }
    fn unlink(&mut self, path: &Path) -> Result<()> {
        self.call("unlink", path)
    }
    fn rename(&mut self, from: &Path, _: &Path) -> Result<()> {
        self.call("rename", from)
    }
    fn symlink(&mut self, _: &Path, link: &Path) -> Result<()> {
        self.call("symlink", link)
    }
    fn readlink(&mut self, path: &Path) -> Result<PathBuf> {
        self.call("readlink", path)
            .map(|()| PathBuf::from("target"))
    }
    fn link(&mut self, from: &Path, _: &Path) -> Result<()> {
        self.call("link", from)
    }
    fn statfs(&mut self, path: &Path) -> Result<StatFs> {
        self.call("statfs", path).map(|()| StatFs::unknown())
    }
    fn fsync(&mut self, path: &Path) -> Result<()> {
        self.call("fsync", path)
    }
    fn keepalive(&mut self) -> Result<()> {
        self.call("keepalive", Path::new(""))
    }
}
