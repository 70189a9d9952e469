//! The scripted fake backend.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pool_core::{ErrorClass, Manager};

/// The outcome of one scripted `connect` or `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Succeeds at once.
    Ok,
    /// Fails at once with a transient error (server full, refused).
    Transient,
    /// Fails at once with a fatal error (bad password, unknown database).
    Fatal,
    /// Succeeds after this long.
    Slow(Duration),
    /// Fails with a transient error after this long.
    SlowTransient(Duration),
    /// Never finishes.
    Never,
    /// Panics (a bug in the backend's driver or in the user's manager).
    Panic,
    /// Fails at once because the server is full ([`ErrorClass::ServerFull`]).
    Full,
}

/// The fake backend's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeError {
    /// How the manager classifies it.
    pub class: ErrorClass,
    /// What failed: `"connect"` or `"check"`.
    pub op: &'static str,
}

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.class {
            ErrorClass::Transient => write!(f, "fake backend: {} refused (transient)", self.op),
            ErrorClass::Fatal => write!(f, "fake backend: {} rejected (fatal)", self.op),
            ErrorClass::ServerFull => write!(f, "fake backend: {} refused, server full", self.op),
            other => write!(f, "fake backend: {} failed ({other:?})", self.op),
        }
    }
}

impl std::error::Error for FakeError {}

#[derive(Debug, Default)]
struct Script {
    connect: VecDeque<Step>,
    connect_default: Option<Step>,
    check: VecDeque<Step>,
    check_default: Option<Step>,
}

/// What the backend can do to one live connection from outside.
#[derive(Debug, Default)]
struct Flags {
    broken: AtomicBool,
    doubted: AtomicBool,
    panic_on_close: AtomicBool,
}

#[derive(Debug, Default)]
struct Backend {
    script: Mutex<Script>,
    registry: Mutex<HashMap<u64, Arc<Flags>>>,
    /// `has_broken` calls left that panic.
    has_broken_panics: AtomicUsize,
    /// Connections the server takes at most (0: no limit); a connect beyond is refused as
    /// [`Step::Full`].
    capacity: AtomicUsize,
    next_id: AtomicU64,
    connect_attempts: AtomicU64,
    connects_ok: AtomicU64,
    checks: AtomicU64,
    closed: AtomicU64,
    live: AtomicUsize,
    peak_live: AtomicUsize,
}

/// A [`Manager`] over the fake backend. Create with [`FakeManager::new`], which also returns
/// the [`FakeHandle`] that scripts and observes it.
#[derive(Debug)]
pub struct FakeManager {
    backend: Arc<Backend>,
}

/// Scripts and observes a [`FakeManager`]'s backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FakeHandle {
    backend: Arc<Backend>,
}

/// A connection to the fake backend. Dropping it closes it.
#[derive(Debug)]
pub struct FakeConn {
    id: u64,
    flags: Arc<Flags>,
    backend: Arc<Backend>,
}

impl FakeConn {
    /// The backend's id for this connection (1 for the first opened, and so on).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Marks this connection broken: `has_broken` and `check` report it dead.
    pub fn break_it(&self) {
        self.flags.broken.store(true, Ordering::Relaxed);
    }

    /// Makes dropping this connection panic (after it is counted as closed).
    pub fn panic_on_close(&self) {
        self.flags.panic_on_close.store(true, Ordering::Relaxed);
    }
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.backend.registry.lock().remove(&self.id);
        self.backend.live.fetch_sub(1, Ordering::Relaxed);
        self.backend.closed.fetch_add(1, Ordering::Relaxed);
        if self.flags.panic_on_close.load(Ordering::Relaxed) && !std::thread::panicking() {
            panic!(
                "fake backend: connection {} panicked on close (scripted)",
                self.id
            );
        }
    }
}

impl FakeManager {
    /// A fake backend on which every connect and check succeeds at once until scripted
    /// otherwise.
    pub fn new() -> (FakeManager, FakeHandle) {
        let backend = Arc::new(Backend::default());
        (
            FakeManager {
                backend: Arc::clone(&backend),
            },
            FakeHandle { backend },
        )
    }
}

async fn play(step: Step, op: &'static str) -> Result<(), FakeError> {
    match step {
        Step::Ok => Ok(()),
        Step::Transient => Err(FakeError {
            class: ErrorClass::Transient,
            op,
        }),
        Step::Fatal => Err(FakeError {
            class: ErrorClass::Fatal,
            op,
        }),
        Step::Slow(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Step::SlowTransient(d) => {
            tokio::time::sleep(d).await;
            Err(FakeError {
                class: ErrorClass::Transient,
                op,
            })
        }
        Step::Never => std::future::pending().await,
        Step::Panic => panic!("fake backend: {op} panicked (scripted)"),
        Step::Full => Err(FakeError {
            class: ErrorClass::ServerFull,
            op,
        }),
    }
}

impl Manager for FakeManager {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self) -> Result<FakeConn, FakeError> {
        let b = &self.backend;
        b.connect_attempts.fetch_add(1, Ordering::Relaxed);
        let step = {
            let mut s = b.script.lock();
            let default = s.connect_default.unwrap_or(Step::Ok);
            s.connect.pop_front().unwrap_or(default)
        };
        play(step, "connect").await?;
        let capacity = b.capacity.load(Ordering::Relaxed);
        if capacity > 0 && b.live.load(Ordering::Relaxed) >= capacity {
            return Err(FakeError {
                class: ErrorClass::ServerFull,
                op: "connect",
            });
        }
        let id = b.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let flags = Arc::new(Flags::default());
        b.registry.lock().insert(id, Arc::clone(&flags));
        b.connects_ok.fetch_add(1, Ordering::Relaxed);
        let live = b.live.fetch_add(1, Ordering::Relaxed) + 1;
        b.peak_live.fetch_max(live, Ordering::Relaxed);
        Ok(FakeConn {
            id,
            flags,
            backend: Arc::clone(b),
        })
    }

    async fn check(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        let b = &self.backend;
        b.checks.fetch_add(1, Ordering::Relaxed);
        let step = {
            let mut s = b.script.lock();
            let default = s.check_default.unwrap_or(Step::Ok);
            s.check.pop_front().unwrap_or(default)
        };
        if conn.flags.broken.load(Ordering::Relaxed) {
            return Err(FakeError {
                class: ErrorClass::Transient,
                op: "check",
            });
        }
        play(step, "check").await?;
        conn.flags.doubted.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn has_broken(&self, conn: &mut FakeConn) -> bool {
        let panics = &self.backend.has_broken_panics;
        if panics
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!(
                "fake backend: has_broken panicked on connection {} (scripted)",
                conn.id
            );
        }
        conn.flags.broken.load(Ordering::Relaxed)
    }

    fn needs_check(&self, conn: &mut FakeConn) -> bool {
        conn.flags.doubted.load(Ordering::Relaxed)
    }

    fn classify(&self, err: &FakeError) -> ErrorClass {
        err.class
    }
}

impl FakeHandle {
    /// Queues outcomes for the next connects, in order; after them the default applies.
    pub fn script_connect(&self, steps: impl IntoIterator<Item = Step>) {
        self.backend.script.lock().connect.extend(steps);
    }

    /// The outcome of every connect once the script is used up (initially [`Step::Ok`]).
    pub fn set_connect_default(&self, step: Step) {
        self.backend.script.lock().connect_default = Some(step);
    }

    /// Queues outcomes for the next checks, in order; after them the default applies.
    pub fn script_check(&self, steps: impl IntoIterator<Item = Step>) {
        self.backend.script.lock().check.extend(steps);
    }

    /// The outcome of every check once the script is used up (initially [`Step::Ok`]).
    pub fn set_check_default(&self, step: Step) {
        self.backend.script.lock().check_default = Some(step);
    }

    /// Forgets every scripted outcome not yet used (the defaults apply from now on).
    pub fn clear_scripts(&self) {
        let mut s = self.backend.script.lock();
        s.connect.clear();
        s.check.clear();
    }

    /// Breaks every live connection (as a server restart would); returns how many.
    pub fn break_all(&self) -> usize {
        let reg = self.backend.registry.lock();
        for flags in reg.values() {
            flags.broken.store(true, Ordering::Relaxed);
        }
        reg.len()
    }

    /// Makes the manager doubt every live connection (`needs_check`): each must pass a check
    /// before its next use. Returns how many.
    pub fn doubt_all(&self) -> usize {
        let reg = self.backend.registry.lock();
        for flags in reg.values() {
            flags.doubted.store(true, Ordering::Relaxed);
        }
        reg.len()
    }

    /// Limits the connections the server takes (`None`: no limit): a connect while this many
    /// are open is refused as [`Step::Full`] would be.
    pub fn set_capacity(&self, capacity: Option<usize>) {
        self.backend
            .capacity
            .store(capacity.unwrap_or(0), Ordering::Relaxed);
    }

    /// Connects refused (scripted failures, and refusals for a full server).
    pub fn refused(&self) -> u64 {
        self.connect_attempts() - self.connects()
    }

    /// Makes the next `n` calls to `has_broken` panic.
    pub fn panic_in_has_broken(&self, n: usize) {
        self.backend.has_broken_panics.store(n, Ordering::Relaxed);
    }

    /// Makes closing every live connection panic (in its `Drop`, after it is counted as
    /// closed); returns how many.
    pub fn panic_on_close_all(&self) -> usize {
        let reg = self.backend.registry.lock();
        for flags in reg.values() {
            flags.panic_on_close.store(true, Ordering::Relaxed);
        }
        reg.len()
    }

    /// Breaks the live connection with this id; returns whether it was live.
    pub fn break_conn(&self, id: u64) -> bool {
        match self.backend.registry.lock().get(&id) {
            Some(flags) => {
                flags.broken.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Connect attempts, successful or not (including ones still in progress).
    pub fn connect_attempts(&self) -> u64 {
        self.backend.connect_attempts.load(Ordering::Relaxed)
    }

    /// Connections opened.
    pub fn connects(&self) -> u64 {
        self.backend.connects_ok.load(Ordering::Relaxed)
    }

    /// Health checks run.
    pub fn checks(&self) -> u64 {
        self.backend.checks.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn live(&self) -> usize {
        self.backend.live.load(Ordering::Relaxed)
    }

    /// The most connections ever open at once.
    pub fn peak_live(&self) -> usize {
        self.backend.peak_live.load(Ordering::Relaxed)
    }

    /// Connections closed (dropped).
    pub fn closed(&self) -> u64 {
        self.backend.closed.load(Ordering::Relaxed)
    }
}
