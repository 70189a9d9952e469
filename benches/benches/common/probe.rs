//! The smallest pool that does the job: one mutex over an idle `Vec` and a FIFO of waiter
//! slots, a connection handed straight to the oldest waiter, no timeouts, stamps or
//! statistics. It is what a pool costs before any feature: `rounds` runs it beside the others
//! under `PROBE=1`, to show how much of our pool's time its features take.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::peers::{BenchPool, Conn};

struct Slot {
    conn: Option<Conn>,
    waker: Option<Waker>,
}

struct Inner {
    idle: Vec<Conn>,
    waiters: VecDeque<Arc<Mutex<Slot>>>,
}

#[derive(Clone)]
pub struct Probe(Arc<Mutex<Inner>>);

impl Probe {
    pub fn new(size: usize) -> Self {
        Probe(Arc::new(Mutex::new(Inner {
            idle: (0..size).map(Conn).collect(),
            waiters: VecDeque::new(),
        })))
    }

    fn put(&self, conn: Conn) {
        let mut inner = self.0.lock().unwrap();
        match inner.waiters.pop_front() {
            Some(slot) => {
                drop(inner);
                let waker = {
                    let mut s = slot.lock().unwrap();
                    s.conn = Some(conn);
                    s.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            }
            None => inner.idle.push(conn),
        }
    }
}

pub struct ProbeGuard {
    pool: Probe,
    conn: Option<Conn>,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}

/// Leaves the queue if dropped before its slot was filled (passing a late fill on).
struct Waiting<'a> {
    pool: &'a Probe,
    slot: Arc<Mutex<Slot>>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.pool.0.lock().unwrap();
        inner.waiters.retain(|s| !Arc::ptr_eq(s, &self.slot));
        drop(inner);
        let late = self.slot.lock().unwrap().conn.take();
        if let Some(conn) = late {
            self.pool.put(conn);
        }
    }
}

impl BenchPool for Probe {
    type Guard<'a> = ProbeGuard;
    async fn get(&self) -> Result<ProbeGuard, String> {
        let mut waiting = None;
        poll_fn(|cx| {
            let w = match &mut waiting {
                None => {
                    let mut inner = self.0.lock().unwrap();
                    if inner.waiters.is_empty() {
                        if let Some(conn) = inner.idle.pop() {
                            return Poll::Ready(Ok(ProbeGuard {
                                pool: self.clone(),
                                conn: Some(conn),
                            }));
                        }
                    }
                    let slot = Arc::new(Mutex::new(Slot {
                        conn: None,
                        waker: Some(cx.waker().clone()),
                    }));
                    inner.waiters.push_back(Arc::clone(&slot));
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
                Some(conn) => {
                    drop(s);
                    w.done = true;
                    Poll::Ready(Ok(ProbeGuard {
                        pool: self.clone(),
                        conn: Some(conn),
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
