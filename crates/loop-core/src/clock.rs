//! The loop's clock, real or virtual, and [`Builder`], which chooses it.
//!
//! # Why a virtual clock
//!
//! Code built on timers — retries with back-off, idle timeouts, rate limiters, a scheduler that
//! runs a job every hour — is slow and flaky to test against the real clock: a test of "the
//! job runs every hour for a day" cannot wait a day, and one that waits 50 ms for a 10 ms
//! timer fails on a loaded machine. A loop built with [`Builder::virtual_clock`] keeps its own
//! time instead. Nothing runs differently; only the *waiting* is skipped: whenever the loop
//! would sleep until a deadline, its clock jumps straight to that deadline. A day of hourly
//! timers runs in microseconds, in exactly the order a real day would give, and
//! [`EventLoop::now`](crate::EventLoop::now) (hence `time()` of the timers crate) reports the virtual time, so the
//! results can be asserted exactly.
//!
//! # The rules
//!
//! * **What advances the clock.** Only two things: an iteration that finds nothing to do but
//!   wait for the earliest deadline of an event source (a timer), and
//!   [`EventLoop::advance_clock`](crate::EventLoop::advance_clock). Running callbacks and tasks takes no virtual time, however
//!   long they take for real.
//! * **I/O is still polled when jumping.** An iteration that would sleep polls epoll with a
//!   zero timeout first. If that poll finds I/O ready (or work queued from another thread), the
//!   loop did not really have to wait: the clock stays where it is and the ready work runs, as
//!   a real loop whose `epoll_wait` returned early would. Only when the poll finds nothing does
//!   the clock jump to the deadline, and the timers due then run in that same iteration, after
//!   its I/O callbacks (the usual iteration order).
//! * **No long waits for the poller.** A jump goes straight to the deadline, however far out:
//!   the one-day cap of the poll timeout ([`MAX_POLL_TIMEOUT`](crate::MAX_POLL_TIMEOUT))
//!   concerns only real waits.
//! * **No timers, nothing ready: the loop blocks on I/O as usual.** With no deadline to jump
//!   to, the loop waits in `epoll_wait` without a timeout until I/O or a wake-up from another
//!   thread arrives. That real waiting does not move the virtual clock: real time does not pass
//!   for timers.
//! * **The outside world does not hold the clock back.** I/O that is not ready yet, a child
//!   process that has not exited, work another thread will queue later: none of them stops a
//!   jump. A timeout wrapped around real I/O may therefore expire at once in virtual time. Use
//!   the virtual clock for logic driven by the loop's own timers, the real clock where the
//!   test waits for the outside world.
//! * **A loop that never idles never advances.** While work is ready every iteration (a
//!   callback that keeps rescheduling itself, an fd that is always readable), the clock stands
//!   still and timers do not become due; [`EventLoop::advance_clock`](crate::EventLoop::advance_clock) moves it by hand.
//! * **Instants are virtual too.** The clock starts at the real [`Instant`] at which the loop
//!   was built and moves only as described; deadlines given as an `Instant` should be derived
//!   from [`EventLoop::now`](crate::EventLoop::now), not from [`Instant::now`].
//!
//! The loop's own measurements stay real: [`Stats::poll_time`](crate::Stats::poll_time) and
//! [`Stats::run_time`](crate::Stats::run_time) are wall-clock durations, and debug mode's
//! slow-callback check times callbacks with the real clock.

use std::time::Instant;

/// Configures an [`EventLoop`](crate::EventLoop) before it is built: the clock (real or virtual) and debug mode.
///
/// [`EventLoop::new`](crate::EventLoop::new) is `EventLoop::builder().build()`.
///
/// ```
/// use loop_core::EventLoop;
///
/// let lp = EventLoop::builder().virtual_clock().debug(true).build()?;
/// assert!(lp.is_virtual_clock());
/// assert!(lp.get_debug());
/// # Ok::<(), loop_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct Builder {
    /// Use a virtual clock (see [`Builder::virtual_clock`]).
    pub(crate) virtual_clock: bool,
    /// Debug mode; `None`: from the `EVLOOP_DEBUG` environment variable.
    pub(crate) debug: Option<bool>,
}

impl Builder {
    /// A builder with the defaults of [`EventLoop::new`](crate::EventLoop::new): the real monotonic clock, debug mode
    /// from the environment.
    ///
    /// ```
    /// let lp = loop_core::Builder::new().build()?;
    /// assert!(!lp.is_virtual_clock());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Gives the loop a virtual clock, for deterministic tests of timer-driven code: an hour of
    /// delay runs at once, in exact order. [`EventLoop::now`](crate::EventLoop::now) starts at the real instant the
    /// loop is built, then:
    ///
    /// * it advances only when an iteration finds nothing to do but wait for the earliest
    ///   deadline (a timer): it jumps straight to that deadline, however far out, and the timers
    ///   due then run in that iteration; or by hand, with [`EventLoop::advance_clock`](crate::EventLoop::advance_clock);
    /// * before jumping, the iteration still polls I/O with a zero timeout; if that finds I/O
    ///   ready (or work from another thread), the clock stays put and that work runs first;
    /// * with no deadline and nothing ready, the loop blocks on I/O as usual, and that real
    ///   waiting does not move the clock;
    /// * I/O that is not ready yet does not hold the clock back, so a timeout around real I/O
    ///   can expire at once; and a loop that never idles never advances the clock;
    /// * callbacks take no virtual time; [`Stats`](crate::Stats) durations stay real.
    ///
    /// ```
    /// use loop_core::internal::{LoopInternals, Source};
    /// use loop_core::EventLoop;
    /// use std::time::{Duration, Instant};
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// /// A source with one deadline an hour out, which stops the loop when due.
    /// struct InAnHour(Instant, Cell<bool>);
    /// impl Source for InAnHour {
    ///     fn next_deadline(&self, _: &EventLoop) -> Option<Instant> {
    ///         (!self.1.get()).then_some(self.0)
    ///     }
    ///     fn dispatch(&self, lp: &EventLoop, now: Instant) {
    ///         if now >= self.0 && !self.1.replace(true) {
    ///             lp.stop();
    ///         }
    ///     }
    ///     fn close(&self, _: &EventLoop) {}
    /// }
    ///
    /// let lp = EventLoop::builder().virtual_clock().build()?;
    /// let start = lp.now();
    /// let hour = Duration::from_secs(3600);
    /// lp.add_source(Rc::new(InAnHour(start + hour, Cell::new(false))));
    /// lp.run_forever()?; // returns at once
    /// assert_eq!(lp.now() - start, hour);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn virtual_clock(mut self) -> Builder {
        self.virtual_clock = true;
        self
    }

    /// Debug mode on or off from the start, whatever `EVLOOP_DEBUG` says.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::builder().debug(false).build()?;
    /// assert!(!lp.get_debug());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }
}

/// The clock state of a loop: `None` for the real clock, else the virtual "now".
pub(crate) type VirtualNow = std::cell::Cell<Option<Instant>>;
