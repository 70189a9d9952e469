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

#[derive(Debug, Default)]
struct Backend {
    script: Mutex<Script>,
    registry: Mutex<HashMap<u64, Arc<AtomicBool>>>,
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
    broken: Arc<AtomicBool>,
    backend: Arc<Backend>,
}

impl FakeConn {
    /// The backend's id for this connection (1 for the first opened, and so on).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Marks this connection broken: `has_broken` and `check` report it dead.
    pub fn break_it(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.backend.registry.lock().remove(&self.id);
        self.backend.live.fetch_sub(1, Ordering::Relaxed);
        self.backend.closed.fetch_add(1, Ordering::Relaxed);
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
        let id = b.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let broken = Arc::new(AtomicBool::new(false));
        b.registry.lock().insert(id, Arc::clone(&broken));
        b.connects_ok.fetch_add(1, Ordering::Relaxed);
        let live = b.live.fetch_add(1, Ordering::Relaxed) + 1;
        b.peak_live.fetch_max(live, Ordering::Relaxed);
        Ok(FakeConn {
            id,
            broken,
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
        if conn.broken.load(Ordering::Relaxed) {
            return Err(FakeError {
                class: ErrorClass::Transient,
                op: "check",
            });
        }
        play(step, "check").await
    }

    fn has_broken(&self, conn: &mut FakeConn) -> bool {
        conn.broken.load(Ordering::Relaxed)
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
        for flag in reg.values() {
            flag.store(true, Ordering::Relaxed);
        }
        reg.len()
    }

    /// Breaks the live connection with this id; returns whether it was live.
    pub fn break_conn(&self, id: u64) -> bool {
        match self.backend.registry.lock().get(&id) {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
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
