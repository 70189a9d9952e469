//! Connections come back (one verb, `release`, with an [`Outcome`]), leave for good
//! (`detach`), and the leak watch that follows each checkout.

use super::*;

impl<C, E> State<C, E> {
    /// A connection comes back: to the oldest waiter, to the idle list, or closed (by
    /// outcome, closed pool, over the ceiling, past its lifetime).
    ///
    /// Always inlined into `Shared::release`: left to the compiler it is sometimes not (it
    /// depends on the crate it is built into), and a call here, with `After` handed back
    /// through memory, cost A and C a few percent in `rounds`.
    #[inline(always)]
    pub(crate) fn release(
        &mut self,
        mut conn: Conn<C>,
        outcome: Outcome,
        now: Instant,
    ) -> After<C, E> {
        if let Some(taken) = conn.taken.take() {
            self.usage_us = self.usage_us.saturating_add(now.micros_since(taken));
        }
        let leak_returned = self.end_watch(conn.watch.take());
        match outcome {
            Outcome::Healthy => {}
            Outcome::Broken => self.stats.returns_bad += 1,
            Outcome::Lost => self.stats.connections_lost += 1,
            Outcome::Discarded => {}
        }
        let aged = conn.expires.is_some_and(|t| t <= now);
        let worn = conn.use_limit.is_some_and(|limit| conn.uses >= limit);
        if outcome != Outcome::Healthy || self.closed || self.size > self.max_size || aged || worn {
            if outcome == Outcome::Healthy && !self.closed && self.size <= self.max_size {
                if worn {
                    self.stats.closed_max_uses += 1;
                } else {
                    self.stats.closed_lifetime += 1;
                }
            }
            self.size -= 1;
            self.stats.connections_closed += 1;
            return After {
                close: Some(conn),
                wake_connector: self.wants_connect(),
                leak_returned,
                size_changed: true,
                ..After::new()
            };
        }
        conn.stamp = now;
        let fill = match self.waiters.pop() {
            Some((seat, since)) => {
                self.count_hand_off(since, now);
                Some((seat, conn))
            }
            None => {
                self.idle.push_newest(conn);
                None
            }
        };
        After {
            fill,
            leak_returned,
            ..After::new()
        }
    }

    /// A checked-out connection leaves the pool for good (`Object::take`): not counted as
    /// closed, and the pool may open a replacement.
    pub(crate) fn detach(&mut self, watch: Option<usize>) -> After<C, E> {
        let leak_returned = self.end_watch(watch);
        self.size -= 1;
        After {
            wake_connector: self.wants_connect(),
            leak_returned,
            size_changed: true,
            ..After::new()
        }
    }

    /// Starts the leak watch on a checkout; returns its key.
    pub(crate) fn watch(&mut self, caller: &'static Location<'static>, since: Instant) -> usize {
        self.checkouts.insert(Checkout {
            caller,
            since,
            warned: false,
        })
    }

    /// Ends a leak watch; returns it if it had been reported.
    pub(super) fn end_watch(&mut self, key: Option<usize>) -> Option<Checkout> {
        self.checkouts.remove(key?).filter(|c| c.warned)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn release_outcomes_close_and_count() {
        let t0 = Instant::now();
        let mut st = state(0, 4);
        for raw in 0..4 {
            let _ = open(&mut st, raw, t0);
        }
        let mut conns: Vec<_> = (0..4).map(|_| take_idle(&mut st, t0)).collect();
        for c in &mut conns {
            c.taken = Some(t0);
        }
        let t1 = t0 + secs(1);
        let outcomes = [
            Outcome::Healthy,
            Outcome::Broken,
            Outcome::Lost,
            Outcome::Discarded,
        ];
        for (c, o) in conns.into_iter().zip(outcomes) {
            let r = st.release(c, o, t1);
            assert_eq!(r.closing() != 0, o != Outcome::Healthy, "{o:?}");
        }
        let s = st.stats();
        assert_eq!(
            (s.returns_bad, s.connections_lost, s.connections_closed),
            (1, 1, 3)
        );
        assert_eq!(s.usage_ms, 4000);
        assert_eq!(st.status().size, 1);
    }

    #[test]
    fn detach_frees_the_slot_without_counting_a_close() {
        let t0 = Instant::now();
        let mut st = state(1, 2);
        let _ = open(&mut st, 1, t0);
        let c = take_idle(&mut st, t0);
        let r = st.detach(c.watch);
        assert!(r.wake_connector, "below the floor: a replacement is wanted");
        assert_eq!(st.status().size, 0);
        assert_eq!(st.stats().connections_closed, 0);
    }
}
