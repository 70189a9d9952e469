//! The smallest pool that does the job: one mutex over an idle `Vec` and a FIFO of waiter
//! slots, a connection handed straight to the oldest waiter, no timeouts, stamps or
//! statistics. It is what a pool costs before any feature: `rounds` runs it beside the others
//! under `PROBE=1`, to show how much of our pool's time its features take.
//!
//! `Probe<L>` adds our pool's hot-path features to it one level at a time, each level keeping
//! the ones below, so the distance from one level to the next is what that feature costs on
//! its own (`PROBE=1` runs every level):
//! - `L = 0`: the bare probe.
//! - `L = 1`: stamps and statistics, as our pool takes them: a coarse clock read
//!   (`CLOCK_MONOTONIC_COARSE`) when a caller takes an idle connection, when it queues and when
//!   a connection comes back; under the lock, the hold time added to a usage total, the wait
//!   added to a wait total, and a request count.
//! - `L = 2`: recycled waiter slots instead of one allocation per queued caller: a store in a
//!   few shards picked by thread, a slot reused once nobody else holds it.
//! - `L = 3`: a place in line like our pool's: a ticket (a caller going round again keeps its
//!   place), the moment it queued and a deadline from the wait timeout (never earlier than the
//!   one ahead of it, and the earliest one kept for a timer), FIFO by ticket.
//! - `L = 4`: the looks our pool takes at a connection: `has_broken` (behind `catch_unwind`)
//!   and the `retain` epoch when it leaves the idle list and when it comes back, its use count,
//!   and on return the lifetime, use-limit, closed and over-size checks.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::peers::{BenchPool, Conn};

/// A connection and what the pool keeps beside it (read and written from level 4), boxed as
/// our pool's is, so a checkout moves one pointer (carried by value, its 48 bytes made every
/// level about 0.2x the floor slower in A).
type Held = Box<Rec>;

struct Rec {
    conn: Conn,
    uses: u64,
    use_limit: Option<u64>,
    expires: Option<u64>,
    /// The `retain` epoch it was last judged in.
    epoch: u64,
}

struct Slot {
    conn: Option<Held>,
    waker: Option<Waker>,
    /// The stamp of the hand-off (levels 1 and up).
    at: u64,
}

impl Slot {
    fn empty() -> Self {
        Slot {
            conn: None,
            waker: None,
            at: 0,
        }
    }
}

type SlotRef = Arc<Mutex<Slot>>;

/// A waiter's place in line.
struct Place {
    slot: SlotRef,
    /// When it queued (levels 1 and up).
    since: u64,
    /// Its ticket and deadline (level 3).
    ticket: u64,
    deadline: u64,
}

#[derive(Default)]
struct Counts {
    requests: u64,
    usage_ns: u64,
    wait_ns: u64,
}

struct Inner {
    idle: Vec<(Held, u64)>,
    closed: bool,
    size: usize,
    max_size: usize,
    waiters: VecDeque<Place>,
    counts: Counts,
    next_ticket: u64,
    last_deadline: u64,
    timer_at: Option<u64>,
}

/// How long a queued caller may wait (level 3 keeps its deadline, no timer fires in a run).
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
const SHARDS: usize = 4;
const SCAN: usize = 8;
const KEPT: usize = 256;

/// Spare slots in a shard, on a cache line of its own.
#[repr(align(64))]
struct Shard(Mutex<VecDeque<SlotRef>>);

struct Pool {
    inner: Mutex<Inner>,
    /// Callers are queueing: the next one takes its stamp and slot before the lock.
    queueing: AtomicBool,
    /// The `retain` epoch (level 4 reads it).
    retain_epoch: AtomicU64,
    store: [Shard; SHARDS],
}

/// The probe pool, with our pool's hot-path features up to level `L` (see the module docs).
pub struct Probe<const L: u8>(Arc<Pool>);

impl<const L: u8> Clone for Probe<L> {
    fn clone(&self) -> Self {
        Probe(Arc::clone(&self.0))
    }
}

/// A coarse clock read, in nanoseconds.
fn stamp() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl<const L: u8> Probe<L> {
    pub fn new(size: usize) -> Self {
        Probe(Arc::new(Pool {
            inner: Mutex::new(Inner {
                idle: (0..size)
                    .map(|i| {
                        let rec = Box::new(Rec {
                            conn: Conn(i),
                            uses: 0,
                            use_limit: None,
                            expires: None,
                            epoch: 0,
                        });
                        (rec, 0)
                    })
                    .collect(),
                closed: false,
                size,
                max_size: size,
                waiters: VecDeque::new(),
                counts: Counts::default(),
                next_ticket: 0,
                last_deadline: 0,
                timer_at: None,
            }),
            queueing: AtomicBool::new(false),
            retain_epoch: AtomicU64::new(0),
            store: std::array::from_fn(|_| Shard(Mutex::new(VecDeque::new()))),
        }))
    }

    fn slot(&self, waker: &Waker) -> SlotRef {
        if L >= 2 {
            let home = thread_shard();
            for i in 0..2 {
                let mut spares = self.0.store[(home + i) % SHARDS].0.lock().unwrap();
                if let Some(at) = spares
                    .iter()
                    .take(SCAN)
                    .position(|s| Arc::strong_count(s) == 1)
                {
                    let slot = spares.swap_remove_front(at).expect("just looked at");
                    drop(spares);
                    slot.lock().unwrap().waker = Some(waker.clone());
                    return slot;
                }
            }
        }
        Arc::new(Mutex::new(Slot {
            conn: None,
            waker: Some(waker.clone()),
            at: 0,
        }))
    }

    fn spare(&self, slot: SlotRef) {
        if L >= 2 {
            let mut spares = self.0.store[thread_shard()].0.lock().unwrap();
            if spares.len() < KEPT {
                spares.push_back(slot);
            }
        }
    }

    /// Level 4: the looks our pool takes at a connection it hands out or gets back, on a
    /// connection that always passes them: the `retain` epoch, and `has_broken` (a manager's
    /// answer the compiler cannot see through) behind `catch_unwind`.
    fn looks_fine(&self, rec: &mut Rec) -> bool {
        if L < 4 {
            return true;
        }
        let current = self.0.retain_epoch.load(Ordering::Acquire);
        if rec.epoch < current {
            return false;
        }
        let broken =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| std::hint::black_box(false)));
        !matches!(broken, Ok(true) | Err(_))
    }

    fn put(&self, mut conn: Held, taken: u64) {
        if !self.looks_fine(&mut conn) {
            unreachable!("the bench's connections stay healthy");
        }
        let now = if L >= 1 { stamp() } else { 0 };
        let mut inner = self.0.inner.lock().unwrap();
        if L >= 4 {
            let aged = conn.expires.is_some_and(|t| t <= now);
            let worn = conn.use_limit.is_some_and(|l| conn.uses >= l);
            if inner.closed || inner.size > inner.max_size || aged || worn {
                unreachable!("the bench's connections are kept");
            }
        }
        if L >= 1 {
            inner.counts.usage_ns += now.saturating_sub(taken);
        }
        match inner.waiters.pop_front() {
            Some(place) => {
                if L >= 1 {
                    inner.counts.wait_ns += now.saturating_sub(place.since);
                }
                drop(inner);
                let waker = {
                    let mut s = place.slot.lock().unwrap();
                    s.conn = Some(conn);
                    s.at = now;
                    s.waker.take()
                };
                self.spare(place.slot);
                if let Some(w) = waker {
                    w.wake();
                }
            }
            None => inner.idle.push((conn, now)),
        }
    }
}

pub struct ProbeGuard<const L: u8> {
    pool: Probe<L>,
    conn: Option<Held>,
    taken: u64,
}

impl<const L: u8> Drop for ProbeGuard<L> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn, self.taken);
        }
    }
}

/// Leaves the queue if dropped before its slot was filled (passing a late fill on).
struct Waiting<'a, const L: u8> {
    pool: &'a Probe<L>,
    slot: SlotRef,
    done: bool,
}

impl<const L: u8> Drop for Waiting<'_, L> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.pool.0.inner.lock().unwrap();
        inner.waiters.retain(|p| !Arc::ptr_eq(&p.slot, &self.slot));
        drop(inner);
        let late = {
            let mut s = self.slot.lock().unwrap();
            s.conn.take().map(|conn| (conn, s.at))
        };
        // Handed over as it left: back to the pool, held from the hand-off.
        if let Some((conn, at)) = late {
            self.pool.put(conn, at);
        }
    }
}

impl<const L: u8> BenchPool for Probe<L> {
    type Guard<'a> = ProbeGuard<L>;
    async fn get(&self) -> Result<ProbeGuard<L>, String> {
        let mut waiting = None;
        poll_fn(|cx| {
            let w = match &mut waiting {
                None => {
                    // As our pool does while callers queue: the stamp and the slot are taken
                    // before the lock (levels 1 and up), else under it once it must queue.
                    let queueing = L >= 1 && self.0.queueing.load(Ordering::Relaxed);
                    let early = queueing.then(stamp);
                    let mut ready_slot = queueing.then(|| self.slot(cx.waker()));
                    let mut inner = self.0.inner.lock().unwrap();
                    if L >= 1 {
                        inner.counts.requests += 1;
                    }
                    if inner.waiters.is_empty() {
                        if let Some((mut conn, _)) = inner.idle.pop() {
                            drop(inner);
                            if L >= 4 {
                                conn.uses += 1;
                                if !self.looks_fine(&mut conn) {
                                    unreachable!("the bench's connections stay healthy");
                                }
                            }
                            if queueing {
                                self.0.queueing.store(false, Ordering::Relaxed);
                            }
                            if let Some(slot) = ready_slot {
                                *slot.lock().unwrap() = Slot::empty();
                                self.spare(slot);
                            }
                            return Poll::Ready(Ok(ProbeGuard {
                                pool: self.clone(),
                                conn: Some(conn),
                                taken: if L >= 1 {
                                    early.unwrap_or_else(stamp)
                                } else {
                                    0
                                },
                            }));
                        }
                    }
                    let since = if L >= 1 {
                        early.unwrap_or_else(stamp)
                    } else {
                        0
                    };
                    let slot = ready_slot.take().unwrap_or_else(|| self.slot(cx.waker()));
                    let (ticket, deadline) = if L >= 3 {
                        let t = inner.next_ticket;
                        inner.next_ticket += 1;
                        let d = (since + WAIT_TIMEOUT.as_nanos() as u64).max(inner.last_deadline);
                        inner.last_deadline = d;
                        if inner.timer_at.is_none_or(|t| d < t) {
                            inner.timer_at = Some(d);
                        }
                        (t, d)
                    } else {
                        (0, 0)
                    };
                    let place = Place {
                        slot: Arc::clone(&slot),
                        since,
                        ticket,
                        deadline,
                    };
                    match inner.waiters.back() {
                        Some(last) if L >= 3 && last.ticket > ticket => {
                            let at = inner.waiters.partition_point(|p| p.ticket < ticket);
                            inner.waiters.insert(at, place);
                        }
                        _ => inner.waiters.push_back(place),
                    }
                    drop(inner);
                    if L >= 1 && !queueing {
                        self.0.queueing.store(true, Ordering::Relaxed);
                    }
                    waiting = Some(Waiting {
                        pool: self,
                        slot,
                        done: false,
                    });
                    return Poll::Pending;
                }
                Some(w) => w,
            };
            let mut s = w.slot.lock().unwrap();
            match s.conn.take() {
                Some(mut conn) => {
                    let taken = s.at;
                    drop(s);
                    if L >= 4 {
                        conn.uses += 1;
                        if self.0.retain_epoch.load(Ordering::Acquire) > conn.epoch {
                            unreachable!("no retain runs in the bench");
                        }
                    }
                    w.done = true;
                    Poll::Ready(Ok(ProbeGuard {
                        pool: self.clone(),
                        conn: Some(conn),
                        taken,
                    }))
                }
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
    fn opened(&self) -> usize {
        0
    }
}
