//! The FIFO queue of callers waiting for a connection.
//!
//! # Implementation details
//!
//! Each waiter owns a slot in a slab (a `Vec` with a free list), so enqueueing and leaving
//! reuse memory and allocate nothing once the slab has grown to the peak number of waiters.
//! `queue` holds `(ticket, key)` for the slots still waiting, sorted by ticket: a caller draws
//! a ticket when it first queues and keeps it if it has to queue again (its connection failed
//! the health check), so it goes back to the place its arrival earned, ahead of later callers. A slot moves from
//! `Waiting` to `Ready` (a connection handed off) or `Failed` (an error handed over) when it is
//! popped from the queue; only the waiter that owns the key frees it, so keys never alias.
//! Everything here is guarded by the pool's state lock.

use std::collections::VecDeque;
use std::task::Waker;

use crate::error::PoolError;
use crate::inner::Conn;

pub(crate) enum Slot<C, E> {
    /// Still queued; the waker of the task to wake on hand-off.
    Waiting(Option<Waker>),
    /// A connection was handed to this waiter.
    Ready(Conn<C>),
    /// An error was handed to this waiter.
    Failed(PoolError<E>),
    /// Free; the next free slot, if any.
    Vacant(Option<usize>),
}

pub(crate) struct Waiters<C, E> {
    slots: Vec<Slot<C, E>>,
    free: Option<usize>,
    queue: VecDeque<(u64, usize)>,
    next_ticket: u64,
}

impl<C, E> Waiters<C, E> {
    pub(crate) fn new() -> Self {
        Waiters {
            slots: Vec::new(),
            free: None,
            queue: VecDeque::new(),
            next_ticket: 0,
        }
    }

    /// Callers still queued.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues a waiter and returns its key and ticket: a new caller (`ticket: None`) at the
    /// back; one going round again in the place its ticket earned.
    pub(crate) fn push(&mut self, ticket: Option<u64>, waker: Waker) -> (usize, u64) {
        let key = match self.free {
            Some(key) => {
                let Slot::Vacant(next) = self.slots[key] else {
                    unreachable!("free list points at an occupied slot")
                };
                self.free = next;
                self.slots[key] = Slot::Waiting(Some(waker));
                key
            }
            None => {
                self.slots.push(Slot::Waiting(Some(waker)));
                self.slots.len() - 1
            }
        };
        let ticket = match ticket {
            Some(t) => {
                let at = self.queue.partition_point(|&(other, _)| other < t);
                self.queue.insert(at, (t, key));
                t
            }
            None => {
                let t = self.next_ticket;
                self.next_ticket += 1;
                self.queue.push_back((t, key));
                t
            }
        };
        (key, ticket)
    }

    pub(crate) fn slot_mut(&mut self, key: usize) -> &mut Slot<C, E> {
        &mut self.slots[key]
    }

    /// Takes the oldest queued waiter out of the queue and gives it `conn`; returns the waker
    /// to call once the lock is released. `Err(conn)` if nobody is waiting.
    pub(crate) fn hand_off(&mut self, conn: Conn<C>) -> Result<Option<Waker>, Conn<C>> {
        let Some((_, key)) = self.queue.pop_front() else {
            return Err(conn);
        };
        Ok(self.fill(key, Slot::Ready(conn)))
    }

    /// Fails every queued waiter with the error `make` builds; pushes their wakers to `wake`.
    pub(crate) fn fail_all(
        &mut self,
        mut make: impl FnMut() -> PoolError<E>,
        wake: &mut Vec<Waker>,
    ) {
        while let Some((_, key)) = self.queue.pop_front() {
            if let Some(w) = self.fill(key, Slot::Failed(make())) {
                wake.push(w);
            }
        }
    }

    fn fill(&mut self, key: usize, with: Slot<C, E>) -> Option<Waker> {
        match std::mem::replace(&mut self.slots[key], with) {
            Slot::Waiting(waker) => waker,
            _ => unreachable!("a queued key always names a waiting slot"),
        }
    }

    /// Frees the waiter's slot and returns what was in it; a still-waiting one also leaves the
    /// queue.
    pub(crate) fn remove(&mut self, key: usize) -> Slot<C, E> {
        let slot = std::mem::replace(&mut self.slots[key], Slot::Vacant(self.free));
        self.free = Some(key);
        if matches!(slot, Slot::Waiting(_)) {
            if let Some(pos) = self.queue.iter().position(|&(_, k)| k == key) {
                self.queue.remove(pos);
            }
        }
        slot
    }
}
