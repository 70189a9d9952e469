//! The housekeeper's side and control: idle shrink, lifetime, the leak watch, the waiters'
//! deadlines, the idle sweep, `resize` and `close`.

use std::task::Waker;
use std::time::Duration;

use super::*;

impl<C, E> State<C, E> {
    // ---- control ----

    /// New floor and ceiling (already validated): the housekeeper looks again (idle above the
    /// new ceiling closes), and the connector if the pool may grow.
    pub(crate) fn resize(&mut self, min_size: usize, max_size: usize) -> After<C, E> {
        self.min_size = min_size;
        self.max_size = max_size;
        if self.full.is_none() {
            self.ceiling = max_size;
        }
        After {
            wake_connector: self.wants_connect(),
            wake_housekeeper: true,
            ..After::new()
        }
    }

    /// Closes the pool: every waiter is failed and the idle connections are closed; both
    /// background tasks look again (and stop). Nothing to do if it was closed already.
    pub(crate) fn close(&mut self) -> After<C, E> {
        let mut after = After::new();
        if self.closed {
            return after;
        }
        self.closed = true;
        let failed = self
            .waiters
            .fail_all(|| Err(Box::new(PoolError::Closed)), &mut after.bulk().wake);
        self.stats.requests_errors += failed as u64;
        let n = self.idle.len();
        self.size -= n;
        self.stats.connections_closed += n as u64;
        after.bulk().close.extend(self.idle.take_all());
        after.wake_connector = true;
        after.wake_housekeeper = true;
        after.size_changed = true;
        after
    }

    // ---- the housekeeper ----

    /// One housekeeping pass: idle shrink, lifetime, the ceiling after a resize, the leak
    /// watch, and waiters past their deadline. Fills `after`; returns when to look again (at
    /// most `cap`).
    pub(crate) fn housekeep(
        &mut self,
        now: Instant,
        cap: Instant,
        after: &mut After<C, E>,
    ) -> Instant {
        let bulk = after.bulk();
        let closing = bulk.close.len();
        let next = self.reap(now, &mut bulk.close);
        let next = earliest(next, self.watch_leaks(now, &mut bulk.leaks));
        let before = bulk.wake.len();
        let next = earliest(next, self.expire_waiters(now, &mut bulk.wake));
        bulk.expired += bulk.wake.len() - before;
        let closed = bulk.close.len() > closing;
        let at = next.map_or(cap, |n| n.min(cap));
        self.timer_at = Some(at);
        after.wake_connector |= self.wants_connect();
        after.size_changed |= closed;
        at
    }

    /// The idle sweep, first half: every idle connection moves to `out` (longest idle first)
    /// for a `has_broken` look outside the lock. Until [`State::sweep_in`] they still count as
    /// idle in the status, and as supply for the callers that queue meanwhile.
    pub(crate) fn sweep_out(&mut self, out: &mut Vec<Conn<C>>) {
        if self.closed {
            return;
        }
        let before = out.len();
        out.extend(self.idle.take_all());
        self.sweeping += out.len() - before;
    }

    /// The idle sweep, second half: `lost` connections were found broken (the caller closes
    /// them); the ones in `kept` (in `sweep_out`'s order) go to the callers that queued
    /// meanwhile, oldest first, and the rest back to the front of the idle list, where they
    /// were (they have been idle longer than any returned meanwhile). Closes them instead if
    /// the pool closed meanwhile. Fills `after` (what to close, whom to wake).
    pub(crate) fn sweep_in(
        &mut self,
        kept: &mut Vec<Conn<C>>,
        gone: Gone,
        now: Instant,
        after: &mut After<C, E>,
    ) {
        if gone.lost + gone.retired > 0 {
            after.size_changed = true;
            after.wake_connector = true;
        }
        if self.closed && !kept.is_empty() {
            after.size_changed = true;
        }
        let Bulk { close, wake, .. } = after.bulk();
        let removed = gone.lost + gone.retired;
        self.sweeping -= kept.len() + removed;
        self.size -= removed;
        self.stats.connections_lost += gone.lost as u64;
        self.stats.closed_retain += gone.retired as u64;
        self.stats.connections_closed += removed as u64;
        if self.closed {
            self.size -= kept.len();
            self.stats.connections_closed += kept.len() as u64;
            close.append(kept);
            return;
        }
        // In stamp order: another sweep may have put its connections back meanwhile.
        for conn in kept.drain(..) {
            let idle = self.idle.as_deque();
            let at = idle.partition_point(|c| c.stamp <= conn.stamp);
            idle.insert(at, conn);
        }
        while !self.waiters.is_empty() {
            let conn = self.pop_idle();
            let Some(mut conn) = conn else { break };
            conn.stamp = now;
            match self.waiters.hand_off(conn, Ok) {
                Ok((waker, since)) => {
                    self.count_hand_off(since, now);
                    wake.extend(waker);
                }
                Err(conn) => {
                    self.idle.push_newest(conn);
                    break;
                }
            }
        }
    }

    /// Fails the waiters whose pool-wide deadline has passed; returns the next deadline.
    pub(super) fn expire_waiters(
        &mut self,
        now: Instant,
        wake: &mut Vec<Waker>,
    ) -> Option<Instant> {
        if self.waiters.is_empty() {
            return None;
        }
        let mut status = self.status();
        let stalled = self.stalled(now);
        let last = &self.last_error;
        let stats = &mut self.stats;
        // Each one's status is the pool as it left it.
        self.waiters.expire(
            now,
            |since| {
                status.waiting -= 1;
                stats.requests_errors += 1;
                stats.requests_timeouts += 1;
                Err(Box::new(PoolError::Timeout(TimeoutError {
                    waited: now.saturating_duration_since(since),
                    status,
                    last_connect_error: last.clone(),
                    stalled,
                })))
            },
            wake,
        )
    }

    /// Idle shrink, lifetime and the ceiling: moves the connections to close into `out`;
    /// returns the next deadline.
    pub(super) fn reap(&mut self, now: Instant, out: &mut Vec<Conn<C>>) -> Option<Instant> {
        let before = out.len();
        // Above the ceiling (after a resize): close the longest idle first.
        while self.size - (out.len() - before) > self.max_size {
            match self.idle.pop_oldest() {
                Some(c) => out.push(c),
                None => break,
            }
        }
        // Idle shrink, down to the floor. Idle connections sit in return order, so the
        // longest idle is at the front.
        if let Some(max_idle) = self.rules.max_idle {
            while self.size - (out.len() - before) > self.min_size {
                match self.idle.oldest() {
                    Some(c) if c.stamp + max_idle <= now => {
                        out.extend(self.idle.pop_oldest());
                        self.stats.closed_idle += 1;
                    }
                    _ => break,
                }
            }
        }
        // Lifetime: close expired ones while above the floor; at the floor keep them until the
        // connector has opened their replacement.
        let mut pending = 0;
        let mut i = 0;
        let idle = self.idle.as_deque();
        while i < idle.len() {
            if idle[i].expires.is_some_and(|t| t <= now) {
                let open = self.size - (out.len() - before);
                // Keep it only while a replacement can still be opened below the ceiling.
                let room = open + self.connecting + pending < self.max_size;
                if open > self.min_size || !room {
                    out.extend(idle.remove(i));
                    self.stats.closed_lifetime += 1;
                    continue;
                }
                pending += 1;
            }
            i += 1;
        }
        self.retire_pending = pending;
        let closed = out.len() - before;
        self.size -= closed;
        self.stats.connections_closed += closed as u64;

        let mut next: Option<Instant> = None;
        if let (Some(max_idle), Some(front)) = (self.rules.max_idle, self.idle.oldest()) {
            if self.size > self.min_size {
                next = earliest(next, Some(front.stamp + max_idle));
            }
        }
        for c in self.idle.iter() {
            // Expired ones still here wait for their replacement, which wakes the housekeeper.
            next = earliest(next, c.expires.filter(|&t| t > now));
        }
        next
    }

    /// Marks checkouts held past the leak threshold (each once) into `out`; returns when the
    /// next one will be due.
    pub(super) fn watch_leaks(
        &mut self,
        now: Instant,
        out: &mut Vec<(&'static Location<'static>, Duration)>,
    ) -> Option<Instant> {
        let threshold = self.rules.leak_threshold?;
        if self.checkouts.len() == 0 {
            return None;
        }
        let mut next: Option<Instant> = None;
        for c in self.checkouts.iter_mut().filter(|c| !c.warned) {
            let due = c.since + threshold;
            if due <= now {
                c.warned = true;
                out.push((c.caller, now.saturating_duration_since(c.since)));
            } else {
                next = earliest(next, Some(due));
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn the_timer_expires_waiters_in_order_and_asks_to_be_woken_only_when_earlier() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        let mut after = After::new();
        // The housekeeper sleeps until its cap, 1 s from now.
        let at = st.housekeep(t0, t0 + secs(1), &mut after);
        assert_eq!(at, t0 + secs(1));
        let admit = |st: &mut S, deadline| match st.admit(
            Arrival::New,
            t0,
            || Seat::new(waker()),
            Some(deadline),
        ) {
            Admit::Queued {
                queued, wake_timer, ..
            } => (queued.seat, wake_timer),
            _ => panic!(),
        };
        // A deadline after the timer's next look needs no wake-up...
        let (late, woke) = admit(&mut st, t0 + secs(30));
        assert!(!woke);
        // ...an earlier one does, once.
        let (_, woke) = admit(&mut st, t0 + secs(30));
        assert!(!woke);
        let mut st2 = state(0, 1);
        let _ = st2.housekeep(t0, t0 + secs(1), &mut after);
        let (_, woke) = admit(&mut st2, t0 + Duration::from_millis(100));
        assert!(woke, "earlier than the timer's next look");
        let (_, woke) = admit(&mut st2, t0 + Duration::from_millis(200));
        assert!(!woke, "the timer already looks before this one");

        // The housekeeper now sleeps until the head's deadline, and expires it there.
        let at = st.housekeep(t0 + secs(29), t0 + secs(60), &mut after);
        assert_eq!(at, t0 + secs(30));
        let _ = st.housekeep(t0 + secs(30), t0 + secs(60), &mut after);
        assert_eq!(after.expired(), 2);
        assert_eq!(after.waking(), 2);
        match late.poll(&waker()).map(|h| h.map_err(|e| *e)) {
            Some(Err(PoolError::Timeout(t))) => {
                assert_eq!(t.waited, secs(30));
                assert_eq!(t.status.waiting, 1, "the other one still waited");
            }
            _ => panic!("the waiter should have timed out"),
        }
        // Counted as they expire, whether or not their callers have looked yet.
        assert_eq!(st.stats().requests_errors, 2);
        assert_eq!(st.stats().requests_timeouts, 2);
    }

    #[test]
    fn reap_shrinks_idle_to_the_floor_and_retires_at_the_floor_only_after_replacement() {
        let t0 = Instant::now();
        let config = Config {
            min_size: 1,
            max_size: 3,
            max_idle: Some(secs(10)),
            max_lifetime: Some(secs(100)),
            ..Config::default()
        };
        let mut st: S = State::new(&config, 3);
        for raw in 0..3 {
            let _ = open(&mut st, raw, t0);
        }
        let mut after = After::new();
        let next = st.housekeep(t0 + secs(5), t0 + secs(60), &mut after);
        assert_eq!(next, t0 + secs(10));
        assert!((after.closing() == 0));
        let _ = st.housekeep(t0 + secs(10), t0 + secs(60), &mut after);
        assert_eq!(after.closing(), 2, "down to the floor");
        assert_eq!(st.status().size, 1);
        after = After::new();
        // Past its lifetime (jitter up to 5 %): at the floor it stays until replaced.
        after.wake_connector = false;
        let _ = st.housekeep(t0 + secs(100), t0 + secs(200), &mut after);
        let wake_connector = after.wake_connector;
        assert!((after.closing() == 0));
        assert!(wake_connector, "a replacement is wanted");
        let _ = open(&mut st, 9, t0 + secs(100));
        let _ = st.housekeep(t0 + secs(100), t0 + secs(200), &mut after);
        assert_eq!(after.closing(), 1, "the expired one goes once replaced");
        assert_eq!(st.status().size, 1);
    }

    #[test]
    fn resize_below_the_size_closes_returns_and_idle_above_the_ceiling() {
        let t0 = Instant::now();
        let mut st = state(0, 3);
        for raw in 0..3 {
            let _ = open(&mut st, raw, t0);
        }
        let first = take_idle(&mut st, t0);
        let second = take_idle(&mut st, t0);
        assert!(!st.resize(0, 1).wake_connector);
        let mut after = After::new();
        let _ = st.housekeep(t0, t0 + secs(1), &mut after);
        assert_eq!(after.closing(), 1, "the idle one closed: size 3 -> 2");
        let r = st.release(first, Outcome::Healthy, t0);
        assert!(r.closing() != 0, "over the ceiling: closed on return");
        let r = st.release(second, Outcome::Healthy, t0);
        assert!((r.closing() == 0), "at the ceiling: kept");
        let s = st.status();
        assert_eq!((s.size, s.idle), (1, 1));
    }

    #[test]
    fn close_fails_waiters_hands_back_idle_and_closes_returns() {
        let t0 = Instant::now();
        let mut st = state(0, 2);
        let _ = open(&mut st, 1, t0);
        let _ = open(&mut st, 2, t0);
        let held = take_idle(&mut st, t0);
        let other = take_idle(&mut st, t0);
        let _ = st.release(other, Outcome::Healthy, t0);
        assert_eq!(st.status().idle, 1);
        let mut st_waiting = state(0, 1);
        let _ = open(&mut st_waiting, 3, t0);
        let held_w = take_idle(&mut st_waiting, t0);
        let Admit::Queued { queued, .. } =
            st_waiting.admit(Arrival::New, t0, || Seat::new(waker()), None)
        else {
            panic!()
        };

        let closed = st.close();
        assert_eq!(closed.closing(), 1);
        let again = st.close();
        assert!(
            (again.closing() == 0) && !again.size_changed && !again.wake_housekeeper,
            "closing twice does nothing"
        );
        assert!(st.release(held, Outcome::Healthy, t0).close.is_some());
        assert!(st.is_drained());
        assert!(matches!(
            st.admit(Arrival::New, t0, || Seat::new(waker()), None),
            Admit::Refused(PoolError::Closed)
        ));

        let closed = st_waiting.close();
        assert_eq!(closed.waking(), 1);
        assert!(matches!(
            queued.seat.poll(&waker()).map(|h| h.map_err(|e| *e)),
            Some(Err(PoolError::Closed))
        ));
        assert!(st_waiting
            .release(held_w, Outcome::Healthy, t0)
            .close
            .is_some());
        assert_eq!(st_waiting.stats().connections_closed, 1);
    }

    #[test]
    fn the_sweep_closes_the_broken_and_puts_the_rest_back_in_their_places() {
        let t0 = Instant::now();
        let mut st = state(1, 4);
        for raw in 1..=3 {
            let _ = open(&mut st, raw, t0 + secs(u64::from(raw)));
        }
        let mut out = Vec::new();
        st.sweep_out(&mut out);
        assert_eq!(out.iter().map(|c| c.raw).collect::<Vec<_>>(), [1, 2, 3]);
        let s = st.status();
        assert_eq!(
            (s.size, s.idle, s.in_use),
            (3, 3, 0),
            "out for the look, still idle"
        );
        assert!(!st.wants_connect());
        // 2 is broken; meanwhile a connection opened at t0+10 was returned.
        let _broken = out.remove(1);
        let _ = open(&mut st, 4, t0 + secs(10));
        let mut after = After::new();
        st.sweep_in(
            &mut out,
            Gone {
                lost: 1,
                retired: 0,
            },
            t0 + secs(11),
            &mut after,
        );
        assert!(out.is_empty() && (after.closing() == 0) && (after.waking() == 0));
        let s = st.status();
        assert_eq!((s.size, s.idle), (3, 3));
        let stats = st.stats();
        assert_eq!((stats.connections_lost, stats.connections_closed), (1, 1));
        let order: Vec<_> = st.idle.iter().map(|c| (c.raw, c.stamp)).collect();
        assert_eq!(
            order,
            [(1, t0 + secs(1)), (3, t0 + secs(3)), (4, t0 + secs(10))],
            "longest idle first, stamps kept"
        );
    }

    #[test]
    fn callers_queued_during_the_sweep_are_served_by_it_without_a_connect() {
        let t0 = Instant::now();
        let mut st = state(0, 4);
        let _ = open(&mut st, 1, t0);
        let _ = st.resize(0, 4);
        let mut out = Vec::new();
        st.sweep_out(&mut out);
        let Admit::Queued {
            queued,
            wake_connector,
            ..
        } = st.admit(Arrival::New, t0 + secs(1), || Seat::new(waker()), None)
        else {
            panic!("nothing idle during the look: it queues")
        };
        assert!(!wake_connector, "the swept connection covers it");
        assert!(matches!(st.approve_connect(t0), Next::Sleep));
        let mut after = After::new();
        st.sweep_in(&mut out, Gone::default(), t0 + secs(2), &mut after);
        assert_eq!(after.waking(), 1, "the waiter is woken");
        let Some(Ok(conn)) = queued.seat.poll(&waker()) else {
            panic!("the waiter was handed the swept connection")
        };
        assert_eq!((conn.raw, conn.stamp), (1, t0 + secs(2)));
        let s = st.status();
        assert_eq!((s.size, s.idle, s.in_use, s.waiting), (1, 0, 1, 0));
    }

    #[test]
    fn a_pool_closed_during_the_sweep_closes_what_comes_back() {
        let t0 = Instant::now();
        let mut st = state(2, 4);
        let _ = open(&mut st, 1, t0);
        let _ = open(&mut st, 2, t0);
        let mut out = Vec::new();
        st.sweep_out(&mut out);
        let closed = st.close();
        assert!((closed.closing() == 0));
        let mut after = After::new();
        st.sweep_in(&mut out, Gone::default(), t0, &mut after);
        assert_eq!(after.closing(), 2);
        assert!(st.is_drained());
        assert_eq!(st.stats().connections_closed, 2);
    }
}
