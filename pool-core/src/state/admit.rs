//! Callers come to the pool: the fast path, a place in the queue, `try_get`, a caller's own
//! timer, a caller leaving.

use super::*;

/// What `try_get()` found: an idle connection, nothing (`None`), or the pool closed.
pub(crate) type Tried<C, E> = Result<Option<Conn<C>>, PoolError<E>>;

impl<C, E> State<C, E> {
    // ---- callers ----

    /// The next idle connection to hand out: the warmest (LIFO) or the longest idle (FIFO).
    #[inline]
    pub(super) fn pop_idle(&mut self) -> Option<Conn<C>> {
        match self.rules.queue_mode {
            QueueMode::Lifo => self.idle.pop_newest(),
            QueueMode::Fifo => self.idle.pop_oldest(),
        }
    }

    /// The fast path of a new `get()`: an idle connection if one is free and nobody is queued
    /// ahead (counted as a request), else `None` and nothing counted; the caller then comes to
    /// [`State::admit`] under the same lock.
    #[inline]
    pub(crate) fn take_idle(&mut self) -> Option<Conn<C>> {
        if self.closed || !self.waiters.is_empty() {
            return None;
        }
        let conn = self.pop_idle()?;
        self.requests_num += 1;
        Some(conn)
    }

    /// A caller asks for a connection: an idle one if nobody is queued ahead, else a place in
    /// the queue (in the seat `seat` gives, already waiting with the caller's waker, and with
    /// `deadline` for the pool-wide timer), or a refusal.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        arrival: Arrival,
        now: Instant,
        seat: impl FnOnce() -> Seat<Handed<C, E>>,
        deadline: Option<Instant>,
    ) -> Admit<C, E> {
        let ticket = match arrival {
            Arrival::New => {
                self.requests_num += 1;
                None
            }
            Arrival::Again { ticket } => ticket,
        };
        if self.closed {
            self.stats.requests_errors += 1;
            return Admit::Refused(PoolError::Closed);
        }
        if self.waiters.is_empty() {
            let conn = self.pop_idle();
            if let Some(conn) = conn {
                return Admit::Idle(conn);
            }
        }
        if let Some(max_waiting) = self.rules.max_waiting {
            if self.waiters.len() >= max_waiting {
                self.stats.requests_errors += 1;
                return Admit::Refused(PoolError::TooManyWaiters { max_waiting });
            }
        }
        // `requests_queued` is the queue's count of tickets issued (`State::stats`): a first
        // arrival takes a new one, so the arrival writes no line of the statistics.
        let queued = self.waiters.push(ticket, seat(), now, deadline);
        if self.last_error_fatal {
            // A fatal error answered earlier callers at once; this one gets its own attempt.
            self.retry_at = None;
        } else if let Some(t) = self.retry_at {
            // A backoff drawn while nobody waited may run to the configured cap: a caller
            // brings the next attempt forward to within `WAITING_CAP`.
            self.retry_at = Some(t.min(now + WAITING_CAP.min(self.rules.backoff_cap)));
        }
        let wake_timer = match queued.deadline {
            Some(d) if self.timer_at.is_none_or(|t| d < t) => {
                self.timer_at = Some(d);
                true
            }
            _ => false,
        };
        Admit::Queued {
            queued,
            wake_connector: self.wants_connect(),
            wake_timer,
        }
    }

    /// `Pool::retain`: a new epoch; returns it.
    pub(crate) fn next_retain_epoch(&mut self) -> u64 {
        self.retain_epoch += 1;
        self.retain_epoch
    }

    /// `try_get()`: an idle connection if nobody is queued ahead, else `None` and a note of
    /// the demand (whether to wake the connector comes second). Counted as a request only when
    /// served; never as an error.
    pub(crate) fn try_admit(&mut self) -> (Tried<C, E>, After<C, E>) {
        if self.closed {
            return (Err(PoolError::Closed), After::new());
        }
        if self.waiters.is_empty() {
            let conn = self.pop_idle();
            if let Some(conn) = conn {
                self.requests_num += 1;
                return (Ok(Some(conn)), After::new());
            }
        }
        self.tries = (self.tries + 1).min(self.max_size);
        let after = After {
            wake_connector: self.wants_connect(),
            ..After::new()
        };
        (Ok(None), after)
    }

    /// A queued caller's own timer fired (`get_timeout` with a timeout of its own): a
    /// connection handed over at the last moment is still taken, else it leaves with a
    /// timeout. `None`: its place was popped and the fill is on its way; it keeps waiting.
    pub(crate) fn time_out_waiter(
        &mut self,
        seat: &Seat<Handed<C, E>>,
        ticket: u64,
        since: Instant,
        now: Instant,
    ) -> Option<Handed<C, E>> {
        match self.waiters.remove(seat, ticket) {
            Out::Removed => {
                self.count_timeout();
                Some(Err(Box::new(self.timeout_error(since, now))))
            }
            // Whatever it was handed was counted when it was handed.
            Out::Handed(handed) => Some(handed),
            Out::InFlight => None,
        }
    }

    /// A connection handed to a waiter that queued at `since`: its wait ends now.
    pub(super) fn count_hand_off(&mut self, since: Instant, now: Instant) {
        self.wait_us = self.wait_us.saturating_add(now.micros_since(since));
    }

    /// A caller timed out without having waited in the queue (its connection failed the
    /// check as its time ran out).
    pub(crate) fn count_timeout(&mut self) {
        self.stats.requests_errors += 1;
        self.stats.requests_timeouts += 1;
    }

    /// A queued caller goes away (cancelled): its seat is given up, and a connection handed to it
    /// in the meantime goes on to the next waiter or the idle list.
    pub(crate) fn leave(&mut self, seat: &Seat<Handed<C, E>>, ticket: u64) -> After<C, E> {
        let handed = match self.waiters.remove(seat, ticket) {
            Out::Removed => None,
            Out::Handed(handed) => Some(handed),
            // Popped, not yet filled: marked left, the fill gets the connection back (or it
            // landed just now).
            Out::InFlight => seat.leave(),
        };
        match handed {
            Some(Ok(conn)) => {
                let stamp = conn.stamp;
                self.release(conn, Outcome::Healthy, stamp)
            }
            Some(Err(_)) | None => After::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn a_waiter_is_handed_the_next_return_and_idle_stays_empty_meanwhile() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        let _ = open(&mut st, 1, t0);
        let conn = take_idle(&mut st, t0);
        let Admit::Queued {
            queued,
            wake_connector,
            ..
        } = st.admit(Arrival::New, t0, || Seat::new(waker()), None)
        else {
            panic!("should queue")
        };
        assert!(!wake_connector, "at the ceiling");
        assert!(queued.seat.poll(&waker()).is_none());
        let t1 = t0 + secs(2);
        let r = st.release(conn, Outcome::Healthy, t1);
        assert_eq!(st.status().idle, 0);
        let (seat, conn) = r.fill.expect("the waiter's seat is to be filled");
        assert!(seat.is(&queued.seat));
        assert!(
            seat.fill(Ok(conn)).is_ok(),
            "filled, and its waker handed back"
        );
        let got = queued.seat.poll(&waker()).unwrap().ok().unwrap();
        assert_eq!(got.raw, 1);
        assert_eq!(
            st.stats().requests_wait_ms,
            2000,
            "wait ends at the hand-off"
        );
    }

    /// Holds and waits shorter than a millisecond still add up: 0.6 ms held three times is
    /// 1.8 ms of use, and 0.7 ms waited three times is 2.1 ms of waiting (reported whole
    /// milliseconds, rounded down once, not per event).
    #[test]
    fn sub_millisecond_holds_and_waits_add_up() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        let _ = open(&mut st, 1, t0);
        let mut now = t0;
        for _ in 0..3 {
            let mut conn = take_idle(&mut st, now);
            conn.taken = Some(now);
            now += Duration::from_micros(600);
            let r = st.release(conn, Outcome::Healthy, now);
            assert!(r.fill.is_none() && (r.closing() == 0));
        }
        assert_eq!(st.stats().usage_ms, 1, "1.8 ms of use");
        let mut conn = take_idle(&mut st, now);
        for _ in 0..3 {
            let Admit::Queued { queued, .. } =
                st.admit(Arrival::New, now, || Seat::new(waker()), None)
            else {
                panic!("should queue")
            };
            conn.taken = Some(now);
            now += Duration::from_micros(700);
            let (seat, handed) = st
                .release(conn, Outcome::Healthy, now)
                .fill
                .expect("handed to the waiter");
            assert!(seat.fill(Ok(handed)).is_ok());
            conn = queued.seat.poll(&waker()).unwrap().ok().unwrap();
        }
        let s = st.stats();
        assert_eq!(s.requests_wait_ms, 2, "2.1 ms of waiting");
        assert_eq!(s.usage_ms, 3, "3.9 ms of use in all");
    }

    #[test]
    fn an_own_timer_firing_during_a_fill_in_flight_waits_for_the_connection() {
        let t0 = Instant::now();
        let (mut st, conn, queued) = one_out_one_queued(t0);
        let r = st.release(conn, Outcome::Healthy, t0);
        // Popped, not yet filled: the timer does not fail it.
        assert!(st
            .time_out_waiter(&queued.seat, queued.ticket, t0, t0 + secs(5))
            .is_none());
        assert_eq!(st.stats().requests_timeouts, 0);
        let (seat, conn) = r.fill.expect("popped for the waiter");
        assert!(seat.fill(Ok(conn)).is_ok());
        let got = st.time_out_waiter(&queued.seat, queued.ticket, t0, t0 + secs(5));
        assert!(
            matches!(got, Some(Ok(c)) if c.raw == 1),
            "the last-moment hand-off is taken"
        );
        assert_eq!(st.stats().requests_timeouts, 0);
    }

    #[test]
    fn a_new_caller_never_barges_past_the_queue() {
        let t0 = Instant::now();
        let (mut st, conn, queued) = one_out_one_queued(t0);
        let r = st.release(conn, Outcome::Healthy, t0);
        // The connection is on its way to the waiter's seat; a new caller must queue.
        let Admit::Queued { queued: second, .. } =
            st.admit(Arrival::New, t0, || Seat::new(waker()), None)
        else {
            panic!("a new caller queues behind the hand-off")
        };
        // The first waiter leaves before the fill lands: the fill gets the connection back,
        // and releasing it again hands it to the second.
        assert!(st.leave(&queued.seat, queued.ticket).fill.is_none());
        let (seat, conn) = r.fill.expect("popped for the first waiter");
        let Err(Ok(conn)) = seat.fill(Ok(conn)) else {
            panic!("the seat was left")
        };
        let r = st.release(conn, Outcome::Healthy, t0);
        let (seat, conn) = r.fill.expect("on to the second waiter");
        assert!(seat.is(&second.seat));
        assert_eq!(st.status().waiting, 0);
        // The second leaves after the fill: it passes the connection on to the idle list.
        assert!(seat.fill(Ok(conn)).is_ok());
        let r = st.leave(&second.seat, second.ticket);
        assert!(r.fill.is_none() && (r.closing() == 0));
        assert_eq!(st.status().idle, 1);
    }

    #[test]
    fn each_queued_caller_counts_once_in_requests_queued() {
        let t0 = Instant::now();
        let (mut st, conn, queued) = one_out_one_queued(t0);
        assert_eq!(st.stats().requests_queued, 1);
        // Served, its connection fails the check: it comes back with its ticket and queues
        // again without counting twice; a new caller after it counts once.
        let r = st.release(conn, Outcome::Healthy, t0);
        let (seat, conn) = r.fill.expect("handed to the waiter");
        assert!(seat.fill(Ok(conn)).is_ok());
        let Some(Ok(conn)) = queued.seat.take() else {
            panic!("the waiter was handed the connection")
        };
        let r = st.release(conn, Outcome::Lost, t0);
        assert!(r.closing() != 0);
        let again = Arrival::Again {
            ticket: Some(queued.ticket),
        };
        assert!(matches!(
            st.admit(again, t0, || Seat::new(waker()), None),
            Admit::Queued { .. }
        ));
        assert_eq!(
            st.stats().requests_queued,
            1,
            "the same caller, its old ticket"
        );
        assert!(matches!(
            st.admit(Arrival::New, t0, || Seat::new(waker()), None),
            Admit::Queued { .. }
        ));
        let s = st.stats();
        assert_eq!((s.requests_queued, s.requests_num), (2, 3));
    }

    #[test]
    fn max_waiting_sheds_the_next_caller() {
        let t0 = Instant::now();
        let config = Config {
            max_size: 1,
            max_waiting: Some(1),
            ..Config::default()
        };
        let mut st: S = State::new(&config, 1);
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        assert!(matches!(
            st.admit(Arrival::New, t0, || Seat::new(waker()), None),
            Admit::Refused(PoolError::TooManyWaiters { max_waiting: 1 })
        ));
        assert_eq!(st.stats().requests_errors, 1);
    }
}
