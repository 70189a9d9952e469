//! Time: the engine's [`Instant`], read through `tokio::time::Instant` ([`now`]), so tests
//! under tokio's paused clock see the pool's timers move with the mocked time, or through a
//! [`Clock`], which stamps the hot path from the kernel's coarse clock in the runtime's time
//! base and falls back to [`now`] whenever the runtime's clock is not the real one.
//!
//! The engine keeps time as its own [`Instant`]: nanoseconds on one process-wide base, so a
//! stamp, a hold or a wait is one integer operation, not `std`'s seconds-and-nanoseconds
//! arithmetic (about 30 instructions an addition, 56 a difference). It becomes tokio's
//! instant only where it leaves the engine: timers (`rt::sleep_until`, `rt::timeout_at`) and
//! the public API ([`Instant::to_tokio`]).

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// An instant on the runtime's clock, as nanoseconds from a process-wide base ([`base`]) plus
/// [`Instant::ZERO_AT`], so instants before the base (a test's `now - 1 h`) still order and
/// subtract. Additions and differences saturate instead of panicking. Never zero, so an
/// `Option<Instant>` is one word too (the queue's places, a waiter's start, a checkout's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Instant(NonZeroU64);

/// The instant the engine's [`Instant`] counts from: the first one it converted.
fn base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Instant {
    /// Where the base sits: 2^62 ns (146 years) from zero, to either side.
    const ZERO_AT: u64 = 1 << 62;

    /// The instant `nanos` on the engine's scale; zero, the one value it has not, is 1.
    #[inline]
    fn at(nanos: u64) -> Self {
        Instant(NonZeroU64::new(nanos).unwrap_or(NonZeroU64::MIN))
    }

    #[inline]
    fn nanos(self) -> u64 {
        self.0.get()
    }

    /// The runtime's clock now ([`now`]).
    #[cfg(test)]
    pub(crate) fn now() -> Self {
        now()
    }

    /// The engine's instant for tokio's `t`.
    pub(crate) fn from_tokio(t: tokio::time::Instant) -> Self {
        let t = t.into_std();
        let base = base();
        Instant::at(match t.checked_duration_since(base) {
            Some(after) => Self::ZERO_AT.saturating_add(nanos_of(after)),
            None => Self::ZERO_AT.saturating_sub(nanos_of(base.saturating_duration_since(t))),
        })
    }

    /// Tokio's instant for this one (for timers and the public API).
    pub(crate) fn to_tokio(self) -> tokio::time::Instant {
        let base = base();
        let n = self.nanos();
        let at = if n >= Self::ZERO_AT {
            base.checked_add(Duration::from_nanos(n - Self::ZERO_AT))
        } else {
            base.checked_sub(Duration::from_nanos(Self::ZERO_AT - n))
        };
        tokio::time::Instant::from_std(at.unwrap_or(base))
    }

    /// The time from `earlier` to this one; zero if `earlier` is later.
    #[inline]
    pub(crate) fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos().saturating_sub(earlier.nanos()))
    }

    /// Whole microseconds from `earlier` to this one; zero if `earlier` is later. (One
    /// subtraction and one division, for the statistics the hot path adds to.)
    #[inline]
    pub(crate) fn micros_since(self, earlier: Instant) -> u64 {
        self.nanos().saturating_sub(earlier.nanos()) / 1_000
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn add(self, d: Duration) -> Instant {
        Instant::at(self.nanos().saturating_add(nanos_of(d)))
    }
}

impl std::ops::AddAssign<Duration> for Instant {
    #[inline]
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl std::ops::Sub<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn sub(self, d: Duration) -> Instant {
        Instant::at(self.nanos().saturating_sub(nanos_of(d)))
    }
}

/// The current instant on the runtime's clock (the mocked one under a paused test clock).
#[inline]
pub(crate) fn now() -> Instant {
    Instant::from_tokio(tokio::time::Instant::now())
}

/// The hot path's clock: stamps for checkouts, returns and arrivals in the queue.
///
/// An exact read of the runtime's clock ([`now`], a vDSO `clock_gettime`) costs about 27 ns
/// on the machines the benchmarks run on, and a checkout and its return would each pay one.
/// On Linux a stamp instead reads `CLOCK_MONOTONIC_COARSE` (about 5 ns), the same clock as
/// the kernel last updated it, at its tick (4 ms on these machines), mapped onto the runtime's
/// instants. A stamp never runs ahead of [`now`]. It trails it by up to a tick plus the delay
/// of the kernel's update, which [`Clock::lag`] bounds by two ticks (the worst seen on these
/// machines, under a loaded test run, was 6.1 ms with a 4 ms tick). So an idle age, a hold or
/// a wait measured from stamps is off by less than that, and the errors average out over many
/// of them. Deadlines set from a stamp add the lag ([`Clock::deadline`]), so they fire late by
/// at most about that much, not early.
///
/// A paused or advanced runtime clock (tokio's `test-util`) has no coarse counterpart, so a
/// stamp is then [`now`] itself:
/// - a clock already paused when the pool is built is found by [`Clock::new`] (the runtime's
///   clock does not move while real time does);
/// - a clock paused or moved later is found by the housekeeper's [`Clock::now_checked`], which
///   compares the two at every pass; from then on the pool stamps exactly.
///
/// Without a cheap coarse clock (other systems, a tick coarser than [`MAX_TICK`], or a coarse
/// read that costs more than twice an exact one, as where a sandbox serves it by a system
/// call) every stamp is exact.
pub(crate) struct Clock {
    /// Stamps read the runtime's clock.
    exact: AtomicBool,
    #[cfg(target_os = "linux")]
    coarse: Option<coarse::Coarse>,
}

/// The coarsest tick the coarse clock may have to be used.
#[cfg(target_os = "linux")]
pub(crate) const MAX_TICK: Duration = Duration::from_millis(10);

/// Slack for the few nanoseconds between the readings [`Clock::now_checked`] compares.
const SLACK: Duration = Duration::from_millis(1);

/// How far the runtime's clock must be ahead of the stamps, beyond their lag, for
/// [`Clock::now_checked`] to call it moved: generous, since a late kernel update only costs
/// a stamp a few milliseconds, and a moved clock (`advance`) moves by more.
const MOVED: Duration = Duration::from_millis(50);

impl Clock {
    /// A clock for a new pool: coarse if this system has a fine enough coarse clock and the
    /// runtime's clock is running.
    pub(crate) fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            let coarse = coarse::Coarse::new(MAX_TICK);
            let exact = coarse.is_none() || runtime_clock_is_paused();
            Clock {
                exact: AtomicBool::new(exact),
                coarse,
            }
        }
        #[cfg(not(target_os = "linux"))]
        Clock {
            exact: AtomicBool::new(true),
        }
    }

    /// Do stamps read the runtime's clock?
    #[inline]
    pub(crate) fn is_exact(&self) -> bool {
        self.exact.load(Ordering::Relaxed)
    }

    /// The coarse clock, while stamps read it.
    #[cfg(target_os = "linux")]
    #[inline]
    fn coarse(&self) -> Option<&coarse::Coarse> {
        if self.is_exact() {
            return None;
        }
        self.coarse.as_ref()
    }

    /// A stamp: [`now`], or up to [`lag`](Clock::lag) before it.
    #[inline]
    pub(crate) fn stamp(&self) -> Instant {
        #[cfg(target_os = "linux")]
        if let Some(c) = self.coarse() {
            return c.read();
        }
        now()
    }

    /// How far a stamp may trail [`now`]: two ticks of the coarse clock (one for its
    /// resolution, one for a late update), or zero when stamps are exact.
    #[inline]
    pub(crate) fn lag(&self) -> Duration {
        #[cfg(target_os = "linux")]
        if let Some(c) = self.coarse() {
            return c.tick * 2;
        }
        Duration::ZERO
    }

    /// The deadline `limit` after `since` (a stamp), padded by the stamp's possible lag so it
    /// never comes early.
    #[inline]
    pub(crate) fn deadline(&self, since: Instant, limit: Duration) -> Instant {
        #[cfg(target_os = "linux")]
        if let Some(c) = self.coarse() {
            // In nanoseconds throughout: the lag is kept so, and one conversion is saved.
            return Instant::at(
                since
                    .nanos()
                    .saturating_add(nanos_of(limit))
                    .saturating_add(c.lag_ns),
            );
        }
        since + limit
    }

    /// [`now`], after checking that stamps still follow the runtime's clock: if the two have
    /// parted (the runtime's clock was paused or moved since the pool was built), stamps read
    /// the runtime's clock from then on.
    pub(crate) fn now_checked(&self) -> Instant {
        if self.is_exact() {
            return now();
        }
        let before = self.stamp();
        let exact = now();
        let after = self.stamp();
        if parted(before, exact, after, self.lag()) {
            self.exact.store(true, Ordering::Relaxed);
            tracing::debug!(target: "pool_core", "the runtime's clock is paused or was moved: the pool reads it exactly from now on");
        }
        exact
    }
}

/// Do stamps read `before` and `after` an exact reading `exact` show the two clocks apart?
/// On one clock, `before <= exact` (a stamp never runs ahead) and `exact <= after + lag`,
/// whatever the delay between the readings. A paused clock breaks the first as soon as real
/// time moves on; a clock moved ahead breaks the second, judged with [`MOVED`] to spare.
fn parted(before: Instant, exact: Instant, after: Instant, lag: Duration) -> bool {
    before > exact + SLACK || exact > after + lag + MOVED
}

/// Is the runtime's clock standing still (paused) while real time passes?
#[cfg(target_os = "linux")]
fn runtime_clock_is_paused() -> bool {
    let first = tokio::time::Instant::now();
    let real = std::time::Instant::now();
    while real.elapsed() < Duration::from_micros(2) {
        std::hint::spin_loop();
    }
    tokio::time::Instant::now() == first
}

#[cfg(target_os = "linux")]
mod coarse {
    use std::time::Duration;

    // Through libc (rustix's `use-libc`), not rustix's own reader of the vDSO: libc falls back
    // to the system call where no vDSO is mapped (under Valgrind, which crashed rustix's
    // reader: `tests/pool_valgrind.rs`).
    use rustix::time::{clock_getres, clock_gettime, ClockId, Timespec};

    use super::Instant;

    /// `CLOCK_MONOTONIC_COARSE` mapped onto the runtime's instants.
    pub(super) struct Coarse {
        /// The runtime's instant at coarse reading `base_ns`, in the engine's nanoseconds.
        base: u64,
        base_ns: u64,
        /// The coarse clock's resolution.
        pub(super) tick: Duration,
        /// Two ticks in nanoseconds: the most a stamp trails ([`super::Clock::lag`]).
        pub(super) lag_ns: u64,
    }

    fn nanos(t: Timespec) -> u64 {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let sub = u64::try_from(t.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(sub)
    }

    /// Reads of each clock timed to pick the faster one.
    const TRIES: usize = 16;

    /// Is a coarse read not clearly dearer than an exact one here? Where the vDSO serves the
    /// coarse clock it is about five times cheaper; in a sandbox that serves it by a system
    /// call (some seccomp and gVisor setups) it can be a hundred times dearer. The fastest of
    /// a few reads of each is compared, so a preempted read does not decide it.
    fn not_dearer_than_exact() -> bool {
        let fastest = |read: &dyn Fn()| {
            (0..TRIES)
                .map(|_| {
                    let t = std::time::Instant::now();
                    read();
                    t.elapsed()
                })
                .min()
                .unwrap_or(Duration::MAX)
        };
        let coarse = fastest(&|| {
            std::hint::black_box(clock_gettime(ClockId::MonotonicCoarse));
        });
        let exact = fastest(&|| {
            std::hint::black_box(tokio::time::Instant::now());
        });
        // A system call costs tens of vDSO reads: twice an exact read is a clear sign of
        // one, and leaves room for noise where the two are close (unoptimised builds).
        coarse <= exact * 2
    }

    impl Coarse {
        /// `None` if the coarse clock's tick is zero or coarser than `max_tick`, or a coarse
        /// read costs more than twice an exact one.
        pub(super) fn new(max_tick: Duration) -> Option<Self> {
            let res = nanos(clock_getres(ClockId::MonotonicCoarse));
            let tick = Duration::from_nanos(res);
            if tick.is_zero() || tick > max_tick || !not_dearer_than_exact() {
                return None;
            }
            // The runtime's instant `at` is matched with the fine monotonic reading `fine`
            // taken just after it (the same kernel clock the coarse one follows), so a coarse
            // reading `c` is the runtime's `at + (c - fine)`: never ahead, since `at` was
            // read first. The base is the older of the two readings, so every later coarse
            // reading is at or after it.
            let at = super::now();
            let fine = nanos(clock_gettime(ClockId::Monotonic));
            let first = nanos(clock_gettime(ClockId::MonotonicCoarse));
            let base_ns = first.min(fine);
            let base = at.nanos().saturating_sub(fine - base_ns);
            Some(Coarse {
                base,
                base_ns,
                tick,
                lag_ns: super::nanos_of(tick * 2),
            })
        }

        #[inline]
        pub(super) fn read(&self) -> Instant {
            let c = nanos(clock_gettime(ClockId::MonotonicCoarse));
            Instant::at(self.base + c.saturating_sub(self.base_ns))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_instants_convert_to_tokios_and_back_exactly() {
        let t = tokio::time::Instant::now();
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::from_secs(3 * 3600),
        ] {
            // After the base and before it (a test's `now - 3 h`).
            for at in [Some(t + d), t.checked_sub(d)].into_iter().flatten() {
                let ours = Instant::from_tokio(at);
                assert_eq!(ours.to_tokio(), at, "{d:?}");
            }
        }
        let (a, b) = (t, t + Duration::from_micros(2500));
        let (ia, ib) = (Instant::from_tokio(a), Instant::from_tokio(b));
        assert!(ia < ib);
        assert_eq!(ib.saturating_duration_since(ia), b - a);
        assert_eq!(ib.micros_since(ia), 2500);
        assert_eq!(ia.micros_since(ib), 0, "an earlier end saturates to zero");
        assert_eq!(ia.saturating_duration_since(ib), Duration::ZERO);
        assert_eq!((ia + Duration::from_micros(2500)), ib);
        assert_eq!((ib - Duration::from_micros(2500)), ia);
        let mut c = ia;
        c += Duration::from_micros(2500);
        assert_eq!(c, ib);
        // A limit too long for the clock saturates instead of panicking.
        assert_eq!(ia + Duration::MAX, Instant::at(u64::MAX));
        assert_eq!(Instant::at(1) - Duration::from_secs(1), Instant::at(1));
        assert_eq!(
            Instant::at(0),
            Instant::at(1),
            "zero is the one value it has not"
        );
        assert_eq!(std::mem::size_of::<Option<Instant>>(), 8);
    }

    #[test]
    fn parted_clocks_are_told_from_one_clock_read_late() {
        let t = Instant::now();
        let tick = Duration::from_millis(4);
        // One clock: stamps trail by up to the lag, the reads may be far apart, and a late
        // kernel update may add a little more.
        assert!(!parted(t, t, t, tick));
        assert!(!parted(t - tick, t, t - tick, tick));
        assert!(!parted(t - 3 * tick, t, t - 3 * tick, tick));
        assert!(!parted(
            t,
            t + Duration::from_secs(2),
            t + Duration::from_secs(2),
            tick
        ));
        // The runtime's clock stood still while stamps moved on.
        assert!(parted(
            t + Duration::from_millis(5),
            t,
            t + Duration::from_millis(5),
            tick
        ));
        // The runtime's clock was moved ahead.
        assert!(parted(t, t + Duration::from_secs(10), t, tick));
        assert!(parted(t, t + Duration::from_millis(60), t, tick));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn coarse_stamps_never_run_ahead_and_follow_the_real_clock() {
        let Some(c) = coarse::Coarse::new(MAX_TICK) else {
            panic!("this Linux system has no cheap coarse clock of at most {MAX_TICK:?}");
        };
        for _ in 0..1000 {
            let before = now();
            let stamp = c.read();
            let after = now();
            assert!(
                stamp <= after,
                "a stamp ran ahead of the clock: {stamp:?} > {after:?}"
            );
            // Two ticks bound the lag in practice; a loaded machine may delay the kernel's
            // update more, so this only checks that the stamps follow the clock at all.
            let trail = before.saturating_duration_since(stamp);
            assert!(trail <= c.tick * 2 + MOVED, "a stamp trailed by {trail:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_running_clock_stamps_coarsely() {
        let clock = Clock::new();
        assert!(!clock.is_exact());
        assert!(clock.lag() > Duration::ZERO && clock.lag() <= MAX_TICK * 2);
        let exact = clock.now_checked();
        assert!(
            !clock.is_exact(),
            "a running clock was taken for a paused one"
        );
        assert!(clock.stamp() <= now() && exact <= now());
        let since = clock.stamp();
        assert_eq!(
            clock.deadline(since, Duration::from_secs(1)),
            since + Duration::from_secs(1) + clock.lag()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_paused_at_build_stamps_exactly() {
        let clock = Clock::new();
        assert!(clock.is_exact());
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.stamp(), now());
        assert_eq!(clock.lag(), Duration::ZERO);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_clock_paused_after_build_is_found_by_the_check() {
        let clock = Clock::new();
        assert!(!clock.is_exact());
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(10)).await;
        let exact = clock.now_checked();
        assert!(clock.is_exact(), "the moved clock went unnoticed");
        assert_eq!(clock.stamp(), exact);
    }
}
