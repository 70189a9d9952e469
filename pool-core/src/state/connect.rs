//! The connector's side: demand, approvals and their outcomes, the backoff, the adaptive
//! ceiling, and why nothing is connecting.

use std::sync::Arc;

use std::time::Duration;

use super::*;

impl<C, E> State<C, E> {
    // ---- the connector ----

    /// Is there demand for another connection (ignoring backoff and the connect concurrency)?
    /// Waiters not already covered by a connect in flight, or a floor not met, with room below
    /// the ceiling.
    pub(crate) fn wants_connect(&self) -> bool {
        let open = self.size + self.connecting;
        if self.closed || open >= self.max_size {
            return false;
        }
        let floor = self.min_size + self.retire_pending.min(self.max_size - self.min_size);
        // Connections out for the idle sweep come back within the housekeeper's pass.
        let wanted = self.waiters.len() + self.tries;
        let demand = wanted > self.connecting + self.sweeping || open < floor;
        if !demand {
            return false;
        }
        // At a lowered ceiling only a probe, one at a time (approve_connect says when).
        open < self.ceiling() || self.full.is_some_and(|f| !f.probing)
    }

    /// Should the connector open a connection now? Demand is re-checked here just before each
    /// connect, so a burst served by returns opens nothing more.
    pub(crate) fn approve_connect(&mut self, now: Instant) -> Next {
        if !self.wants_connect() || self.connecting >= self.rules.connect_concurrency {
            return Next::Sleep;
        }
        if let Some(t) = self.retry_at.filter(|&t| t > now) {
            return Next::WaitUntil(t);
        }
        if self.size + self.connecting >= self.ceiling() {
            if let Some(full) = &mut self.full {
                if now < full.probe_at {
                    return Next::WaitUntil(full.probe_at);
                }
                full.probing = true;
            }
        }
        self.connecting += 1;
        Next::Connect(Approval(()))
    }

    /// An approved connect whose task was dropped before it finished (its runtime shut down):
    /// not a failure of the server's, so no backoff; the demand it covered is open again.
    pub(crate) fn abandon_connect(&mut self, approval: Approval) -> After<C, E> {
        let Approval(()) = approval;
        self.connecting -= 1;
        self.tries = self.tries.saturating_sub(1);
        if let Some(full) = &mut self.full {
            full.probing = false;
        }
        After {
            wake_connector: self.wants_connect(),
            size_changed: true,
            ..After::new()
        }
    }

    /// The background connector was (re)started.
    pub(crate) fn connector_started(&mut self) {
        self.connector_down = false;
    }

    /// A background task is gone (`connector`: it was the connector): every queued caller is
    /// woken to look again, find it gone and start it on its own runtime.
    pub(crate) fn background_gone(&mut self, connector: bool) -> After<C, E> {
        if connector {
            self.connector_down = true;
        }
        let mut after = After::new();
        if !self.waiters.is_empty() {
            self.waiters.wakers(&mut after.bulk().wake);
        }
        after
    }

    /// The outcome of an approved connect: a new connection goes to the oldest waiter or idle;
    /// a failure sets the backoff and, if fatal, fails every waiter (their wakers go to
    /// `wake`). Returns the connection to close (the pool closed meanwhile) or the failure to
    /// log.
    pub(crate) fn settle_connect(
        &mut self,
        approval: Approval,
        result: Result<C, (ConnectError<E>, ErrorClass)>,
        started: Instant,
        now: Instant,
    ) -> (After<C, E>, Option<Failure>) {
        let Approval(()) = approval;
        self.connecting -= 1;
        self.tries = self.tries.saturating_sub(1);
        self.stats.connections_ms += millis(now.saturating_duration_since(started));
        match result {
            Ok(raw) => {
                self.failures = 0;
                self.retry_at = None;
                self.last_error = None;
                self.last_error_fatal = false;
                self.stats.connections_num += 1;
                self.size += 1;
                if let Some(full) = &mut self.full {
                    // Room for one more: the ceiling rises to what the pool holds, and after
                    // enough successes in a row the configured ceiling comes back.
                    full.probing = false;
                    full.successes += 1;
                    full.interval = PROBE_BASE;
                    full.probe_at = now + PROBE_BASE;
                    self.ceiling = self.ceiling.max(self.size);
                    if full.successes >= RESTORE_AFTER || self.ceiling >= self.max_size {
                        self.full = None;
                        self.ceiling = self.max_size;
                    }
                }
                self.retire_pending = self.retire_pending.saturating_sub(1);
                let expires = self.rules.max_lifetime.map(|life| {
                    let jitter = life.mul_f64(0.05 * self.random());
                    now + life.saturating_sub(jitter)
                });
                let use_limit = self.rules.max_uses.map(|max| {
                    let jitter = (max as f64 * 0.05 * self.random()) as u64;
                    max.saturating_sub(jitter).max(1)
                });
                self.last_id += 1;
                let conn = Conn::new(Record {
                    raw,
                    id: self.last_id,
                    created: now,
                    uses: 0,
                    use_limit,
                    epoch: self.retain_epoch,
                    expires,
                    stamp: now,
                    taken: None,
                    watch: None,
                    checking: false,
                });
                let mut after = self.release(conn, Outcome::Healthy, now);
                after.wake_connector = true;
                after.wake_housekeeper = true;
                after.size_changed = true;
                (after, None)
            }
            Err((err, class)) => {
                self.stats.connections_errors += 1;
                match class {
                    ErrorClass::Fatal => self.stats.connections_errors_fatal += 1,
                    ErrorClass::ServerFull => self.stats.connections_errors_full += 1,
                    ErrorClass::Transient => {}
                }
                self.failures = self.failures.saturating_add(1);
                let delay = self.backoff_delay();
                self.retry_at = Some(now + delay);
                self.last_error_fatal = class == ErrorClass::Fatal;
                self.lower_ceiling(class, now);
                let mut after = After {
                    wake_connector: true,
                    wake_housekeeper: true,
                    size_changed: true,
                    ..After::new()
                };
                if let (ErrorClass::Fatal, ConnectError::Backend(e)) = (class, &err) {
                    let failed = self.waiters.fail_all(
                        || Err(Box::new(PoolError::Backend(Arc::clone(e)))),
                        &mut after.bulk().wake,
                    );
                    self.stats.requests_errors += failed as u64;
                }
                self.last_error = Some(err);
                let failure = Failure {
                    attempt: self.failures,
                    retry_in: delay,
                    waiting: self.waiters.len(),
                };
                (after, Some(failure))
            }
        }
    }

    /// After a failed connect: a refusal for a full server starts or prolongs an episode
    /// with the ceiling at what the pool holds (at least 1); any failure ends a probe.
    pub(super) fn lower_ceiling(&mut self, class: ErrorClass, now: Instant) {
        let full_refusal = class == ErrorClass::ServerFull && self.rules.adaptive_ceiling;
        match (&mut self.full, full_refusal) {
            (None, true) => {
                self.full = Some(Full {
                    probe_at: now + PROBE_BASE,
                    interval: PROBE_BASE,
                    successes: 0,
                    probing: false,
                });
                self.ceiling = self.size.max(1);
            }
            (Some(full), true) => {
                full.probing = false;
                full.successes = 0;
                full.interval = (full.interval * 2).min(PROBE_CAP);
                full.probe_at = now + full.interval;
                self.ceiling = self.size.max(1);
            }
            (Some(full), false) => {
                if full.probing {
                    full.probing = false;
                    full.probe_at = now + full.interval;
                }
            }
            (None, false) => {}
        }
    }

    /// A uniform draw in `[0, 1)` (xorshift64*).
    pub(super) fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential backoff after `failures` consecutive failures: full jitter up to the
    /// configured cap while nobody waits; while callers wait, once the exponential reaches
    /// [`WAITING_CAP`], a draw between 60 % and 100 % of it, so the next attempt comes within
    /// a second of the last (a caller waits at most about that long after the server is
    /// back) and no sooner than 0.6 s after it (the outage stays quiet).
    pub(super) fn backoff_delay(&mut self) -> Duration {
        let exp = self
            .rules
            .backoff_base
            .checked_mul(1u32 << self.failures.saturating_sub(1).min(30))
            .unwrap_or(self.rules.backoff_cap)
            .min(self.rules.backoff_cap);
        let waiting_cap = WAITING_CAP.min(self.rules.backoff_cap);
        if !self.waiters.is_empty() && exp >= waiting_cap {
            return waiting_cap.mul_f64(0.6 + 0.4 * self.random());
        }
        exp.mul_f64(self.random())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn the_floor_is_opened_one_approved_connect_at_a_time() {
        let now = Instant::now();
        let mut st = state(2, 4);
        assert!(st.wants_connect());
        let Next::Connect(a) = st.approve_connect(now) else {
            panic!()
        };
        assert!(
            matches!(st.approve_connect(now), Next::Sleep),
            "connect_concurrency 1"
        );
        assert_eq!(st.status().connecting, 1);
        let (r, failure) = st.settle_connect(a, Ok(1), now, now);
        assert!(failure.is_none());
        assert!(r.fill.is_none() && (r.closing() == 0));
        let _ = open(&mut st, 2, now);
        assert!(!st.wants_connect(), "floor met, nobody waiting");
        assert!(st.is_ready());
        let s = st.status();
        assert_eq!((s.size, s.idle, s.connecting), (2, 2, 0));
    }

    #[test]
    fn stalled_says_why_nothing_is_connecting() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        assert_eq!(
            st.stalled(t0),
            Some(Stalled::NoBackgroundTask),
            "never started"
        );
        st.connector_started();
        assert_eq!(st.stalled(t0), None, "room to grow, nothing asked");
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        let Next::Connect(a) = st.approve_connect(t0) else {
            panic!()
        };
        assert_eq!(st.stalled(t0), None, "a connect is in flight");
        let err = ConnectError::Backend(Arc::new(Boom));
        let _ = st.settle_connect(a, Err((err, ErrorClass::Transient)), t0, t0);
        assert!(
            matches!(st.stalled(t0), Some(Stalled::BackingOff { retry_in }) if retry_in <= Duration::from_millis(10)),
            "{:?}",
            st.stalled(t0)
        );
        let later = t0 + Duration::from_millis(20);
        let Next::Connect(a) = st.approve_connect(later) else {
            panic!()
        };
        let _ = st.settle_connect(a, Ok(1), later, later);
        assert_eq!(st.stalled(later), Some(Stalled::AtCeiling));
        let _ = st.background_gone(true);
        assert_eq!(st.stalled(later), Some(Stalled::NoBackgroundTask));
        let _ = st.close();
        assert_eq!(st.stalled(later), Some(Stalled::Closed));
    }

    #[test]
    fn a_server_full_refusal_stalls_at_the_lowered_ceiling() {
        let t0 = Instant::now();
        let mut st = state(0, 4);
        st.connector_started();
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        let Next::Connect(a) = st.approve_connect(t0) else {
            panic!()
        };
        let err = ConnectError::Backend(Arc::new(Boom));
        let _ = st.settle_connect(a, Err((err, ErrorClass::ServerFull)), t0, t0);
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            st.stalled(later),
            None,
            "room for the probe, which the connector starts"
        );
        let Next::Connect(a) = st.approve_connect(later) else {
            panic!()
        };
        let _ = st.settle_connect(a, Ok(1), later, later);
        let _ = st.admit(Arrival::New, later, || Seat::new(waker()), None);
        let Next::Connect(a) = st.approve_connect(later + Duration::from_secs(30)) else {
            panic!()
        };
        let err = ConnectError::Backend(Arc::new(Boom));
        let when = later + Duration::from_secs(30);
        let _ = st.settle_connect(a, Err((err, ErrorClass::ServerFull)), when, when);
        let after_backoff = when + Duration::from_secs(3);
        assert_eq!(
            st.stalled(after_backoff),
            Some(Stalled::ServerFull { ceiling: 1 })
        );
    }

    #[test]
    fn a_fatal_connect_fails_every_waiter_and_the_next_caller_gets_an_attempt() {
        let t0 = Instant::now();
        let mut st = state(0, 2);
        let keys: Vec<_> = (0..3)
            .map(
                |_| match st.admit(Arrival::New, t0, || Seat::new(waker()), None) {
                    Admit::Queued { queued, .. } => queued.seat,
                    _ => panic!(),
                },
            )
            .collect();
        let Next::Connect(a) = st.approve_connect(t0) else {
            panic!()
        };
        let err = ConnectError::Backend(Arc::new(Boom));
        let (after, failure) = st.settle_connect(a, Err((err, ErrorClass::Fatal)), t0, t0);
        assert_eq!(failure.unwrap().attempt, 1);
        assert_eq!(after.waking(), 3);
        for k in keys {
            assert!(matches!(
                k.poll(&waker()).map(|h| h.map_err(|e| *e)),
                Some(Err(PoolError::Backend(_)))
            ));
        }
        assert_eq!(st.stats().requests_errors, 3);
        // Backing off...
        assert!(matches!(
            st.approve_connect(t0),
            Next::Sleep | Next::WaitUntil(_)
        ));
        // ...until a new caller arrives: it gets its own attempt at once.
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        assert!(matches!(st.approve_connect(t0), Next::Connect(_)));
    }

    #[test]
    fn transient_failures_back_off_exponentially_within_the_cap() {
        let t0 = Instant::now();
        let mut st = state(1, 1);
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..12 {
            let a = loop {
                match st.approve_connect(now) {
                    Next::Connect(a) => break a,
                    Next::WaitUntil(t) => now = t,
                    Next::Sleep => panic!("the floor wants a connection"),
                }
            };
            let err = ConnectError::TimedOut(secs(1));
            let (_, f) = st.settle_connect(a, Err((err, ErrorClass::Transient)), now, now);
            let f = f.unwrap();
            delays.push(f.retry_in);
        }
        let cfg = Config::default();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = cfg
                .backoff_base
                .saturating_mul(1 << i.min(30))
                .min(cfg.backoff_cap);
            assert!(*d <= ceiling, "attempt {i}: {d:?} > {ceiling:?}");
        }
        assert!(delays.iter().skip(8).any(|d| *d > secs(0)));
    }
}
