//! Timers for evloop: asyncio's `call_later`, `call_at`, `time` and `TimerHandle`, plus the
//! `sleep` and `timeout` helpers that async code builds on.
//!
//! [`TimersExt`] adds the timer methods to [`loop_core::EventLoop`]; `use evloop::prelude::*`
//! (or `use loop_timers::TimersExt`) brings them into scope.
//!
//! ```
//! use loop_core::EventLoop;
//! use loop_timers::TimersExt;
//! use std::time::Duration;
//!
//! let lp = EventLoop::new()?;
//! lp.call_later(Duration::from_millis(20), |lp| {
//!     println!("20 ms later");
//!     lp.stop();
//! })?;
//! lp.run_forever()?;
//!
//! lp.run_until_complete(async {
//!     loop_timers::sleep(Duration::from_millis(5)).await?;
//!     let slow = loop_timers::sleep(Duration::from_secs(60));
//!     let r = loop_timers::timeout(Duration::from_millis(5), slow).await;
//!     assert!(matches!(r, Err(loop_core::Error::TimedOut)));
//!     Ok::<(), loop_core::Error>(())
//! })??;
//! lp.close()?;
//! # Ok::<(), loop_core::Error>(())
//! ```
//!
//! # How timers are kept
//!
//! Each loop has one timer queue, created on first use in the loop's extension slot and
//! registered as an event source: before the loop blocks it asks the
//! queue for its earliest deadline (the poll timeout), and once per iteration, after I/O was
//! polled, the queue moves every due timer to the ready queue. Timers that become due in an
//! iteration therefore run in that same iteration, after its I/O callbacks; what they schedule
//! runs in the next one (TIMER-10).
//!
//! The queue is a **binary min-heap of `(deadline, sequence)`**, as in asyncio, and for the
//! same reasons: scheduling is one push (O(log n) at worst, O(1) on average for random
//! deadlines), the poll timeout is a look at the head, and due timers come off the head in
//! order. A timer costs one allocation — its callback, in a loop_core [`Handle`](loop_core::Handle) — a
//! 24-byte heap entry and a 24-byte slot in a slab that holds the handles of the timers in the
//! heap (both reused, so they allocate only when they grow); moving due timers to the ready
//! queue allocates nothing. (One exception:
//! when a single iteration finds a large share of a big heap due at once — a burst of timers
//! that expired while the loop was busy — the queue stops popping them one by one and splits
//! them off in one pass, sorts them and re-heapifies the rest, which is much kinder to the
//! cache; the order they run in is the same.)
//!
//! **Cancelling is O(1): lazy deletion.** [`TimerHandle::cancel`] marks the timer's handle
//! cancelled (dropping its callback at once), frees its slot and leaves the heap entry in place,
//! counting it if it is still in the heap (TIMER-16: a timer that already moved to the ready
//! queue, or ran, does not count). Once the last `TimerHandle` of a cancelled timer is dropped
//! its allocation is released, before its entry reaches the head. Cancelled entries are popped when they reach the head, before the poll
//! timeout is computed, so a cancelled timer never wakes the loop (TIMER-15). If cancelled
//! entries pile up deep in the heap — more than 100 entries, more than half of them cancelled —
//! the heap is rebuilt without them in one O(n) pass (asyncio's bulk clean-up rule, TIMER-16),
//! which keeps memory and heap depth bounded by the live timers.
//!
//! **Equal deadlines run in scheduling order (FIFO).** The sequence number breaks ties, so
//! timers with exactly the same deadline run in the order they were scheduled. asyncio leaves
//! that order unspecified (its heap is not stable); FIFO is the stricter, compatible choice
//! (TIMER-06).
//!
//! **Due means "within the clock resolution".** A timer is due once
//! `when < now + clock_resolution` (TIMER-11), the resolution of the monotonic clock as the OS
//! reports it (1 ns on Linux). A poll that returns a hair early thus still runs the timer,
//! instead of polling again for a zero-length wait, so very short sleeps do not spin (TIMER-12).
//! [`TimersExt::set_clock_resolution`] widens the window, which coalesces timers that are due
//! close together.
//!
//! The poll timeout is capped at one day by loop-core
//! ([`MAX_POLL_TIMEOUT`](loop_core::MAX_POLL_TIMEOUT)); a timer further out simply makes the
//! loop wake once a day until it is due (TIMER-13, TIMER-14).
//!
//! # Clock
//!
//! [`TimersExt::time`] is the loop's monotonic clock ([`EventLoop::now`]) in seconds since an
//! unspecified point (the first time this crate read the clock in the process), as an `f64`;
//! it keeps working after `close()` (TIMER-01). The `*_secs` variants take and give times in
//! that base, as asyncio does; the others take `Duration` and `Instant`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod clock;
mod handle;
mod queue;
mod sleep;
mod timeout;

use std::panic::Location;
use std::time::{Duration, Instant};

use loop_core::{EventLoop, Result};

pub use clock::MAX_DELAY;
pub use handle::TimerHandle;
use handle::{key_after, open_timers, schedule_key};
pub use sleep::{sleep, sleep_secs, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at};

use queue::Timers;

/// What the timer queue of a loop holds, from [`TimersExt::timer_stats`].
///
/// ```
/// use loop_timers::TimersExt;
///
/// let lp = loop_core::EventLoop::new()?;
/// let h = lp.call_later_secs(60.0, |_| {})?;
/// h.cancel();
/// let s = lp.timer_stats();
/// assert_eq!((s.scheduled, s.cancelled), (1, 1)); // lazily deleted
/// # Ok::<(), loop_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimerStats {
    /// Entries in the timer heap, cancelled ones not yet removed included (asyncio's
    /// `len(loop._scheduled)`).
    pub scheduled: usize,
    /// Entries in the heap cancelled through [`TimerHandle::cancel`] (asyncio's
    /// `_timer_cancelled_count`).
    pub cancelled: usize,
    /// Bulk clean-ups so far: rebuilds of the heap without its cancelled entries.
    pub cleanups: u64,
}

mod sealed {
    /// Only `EventLoop` implements the extension trait.
    pub trait Sealed {}
    impl Sealed for loop_core::EventLoop {}
}

/// The timer methods of the loop: `call_later`, `call_at`, `time`, and `sleep` bound to it.
///
/// Implemented for [`EventLoop`] only. Scheduling methods are `#[track_caller]`: the handle
/// remembers where the timer was scheduled (debug mode names slow callbacks by it, and the
/// exception handler reports it).
///
/// ```
/// use loop_timers::TimersExt;
/// use std::time::Duration;
/// let lp = loop_core::EventLoop::new()?;
/// lp.call_later(Duration::from_millis(1), |lp| lp.stop())?;
/// lp.run_forever()?;
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait TimersExt: sealed::Sealed {
    /// Schedules `f` to run once `delay` has passed (asyncio's `call_later`).
    ///
    /// The timer is due at `now() + delay` and runs no earlier than that minus the clock
    /// resolution; a zero delay runs on the next iteration. Timers with equal deadlines run in
    /// the order they were scheduled. Delays longer than [`MAX_DELAY`] are clamped to it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](loop_core::Error::Closed) after `close()`.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    /// use std::time::{Duration, Instant};
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let start = Instant::now();
    /// lp.call_later(Duration::from_millis(10), |lp| lp.stop())?;
    /// lp.run_forever()?;
    /// assert!(start.elapsed() >= Duration::from_millis(10));
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    #[track_caller]
    fn call_later(
        &self,
        delay: Duration,
        f: impl FnOnce(&EventLoop) + 'static,
    ) -> Result<TimerHandle>;

    /// [`call_later`](TimersExt::call_later) with the delay in seconds, as asyncio takes it.
    /// Zero and negative delays are legal: the timer is due at once, and among past-due timers
    /// the earlier deadline runs first (TIMER-05).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) if `delay` is NaN or infinite; [`Error::Closed`](loop_core::Error::Closed) after
    /// `close()`.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let order = Rc::new(RefCell::new(Vec::new()));
    /// let o = order.clone();
    /// lp.call_later_secs(-1.0, move |_| o.borrow_mut().push("a"))?;
    /// let o = order.clone();
    /// lp.call_later_secs(-2.0, move |_| o.borrow_mut().push("b"))?;
    /// lp.call_later_secs(0.001, |lp| lp.stop())?;
    /// lp.run_forever()?;
    /// assert_eq!(*order.borrow(), ["b", "a"]);
    /// assert!(lp.call_later_secs(f64::NAN, |_| {}).is_err());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    #[track_caller]
    fn call_later_secs(
        &self,
        delay: f64,
        f: impl FnOnce(&EventLoop) + 'static,
    ) -> Result<TimerHandle>;

    /// Schedules `f` to run at `when` (asyncio's `call_at`); an instant in the past is legal and
    /// makes the timer due at once.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](loop_core::Error::Closed) after `close()`.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    /// use std::time::{Duration, Instant};
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let h = lp.call_at(Instant::now() + Duration::from_millis(5), |lp| lp.stop())?;
    /// lp.run_forever()?;
    /// assert!(Instant::now() >= h.when());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    #[track_caller]
    fn call_at(&self, when: Instant, f: impl FnOnce(&EventLoop) + 'static) -> Result<TimerHandle>;

    /// [`call_at`](TimersExt::call_at) with `when` in the [`time`](TimersExt::time) base, in
    /// seconds (asyncio's `call_at`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) if `when` is NaN or infinite; [`Error::Closed`](loop_core::Error::Closed) after
    /// `close()`.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let h = lp.call_at_secs(lp.time() + 0.005, |lp| lp.stop())?;
    /// lp.run_forever()?;
    /// assert!(lp.time() >= h.when_secs());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    #[track_caller]
    fn call_at_secs(&self, when: f64, f: impl FnOnce(&EventLoop) + 'static) -> Result<TimerHandle>;

    /// The loop's monotonic clock in seconds, from an unspecified origin (asyncio's `time()`).
    /// Works after `close()` too.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let a = lp.time();
    /// lp.close()?;
    /// assert!(lp.time() >= a);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn time(&self) -> f64;

    /// The clock resolution of this loop's timers: a timer is due once
    /// `when < now + resolution` (TIMER-11). Defaults to the resolution of the monotonic clock
    /// reported by the OS (`clock_getres`; 1 ns on Linux with high-resolution timers).
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// assert!(lp.clock_resolution() > std::time::Duration::ZERO);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn clock_resolution(&self) -> Duration;

    /// Sets the clock resolution of this loop's timers (clamped to [`MAX_DELAY`]). A wider
    /// window makes timers due up to that much early, so that timers close together run in one
    /// wake-up (timer coalescing, like Linux's timer slack).
    ///
    /// ```
    /// use loop_timers::TimersExt;
    /// use std::time::Duration;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// lp.set_clock_resolution(Duration::from_millis(1));
    /// assert_eq!(lp.clock_resolution(), Duration::from_millis(1));
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn set_clock_resolution(&self, resolution: Duration);

    /// What the timer queue holds now (see [`TimerStats`]); all zero after `close()`.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// lp.call_later_secs(1.0, |_| {})?;
    /// assert_eq!(lp.timer_stats().scheduled, 1);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn timer_stats(&self) -> TimerStats;

    /// A future that completes after `delay`, on this loop (see [`Sleep`]).
    ///
    /// ```
    /// use loop_timers::TimersExt;
    /// use std::time::Duration;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let nap = lp.sleep(Duration::from_millis(2));
    /// lp.run_until_complete(nap)??;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    #[track_caller]
    fn sleep(&self, delay: Duration) -> Sleep;

    /// [`sleep`](TimersExt::sleep) with the delay in seconds; NaN or an infinity makes the
    /// sleep fail with [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) when awaited.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// lp.run_until_complete(lp.sleep_secs(0.001))??;
    /// let bad = lp.sleep_secs(f64::NAN);
    /// assert!(matches!(lp.run_until_complete(bad)?, Err(loop_core::Error::InvalidArgument(_))));
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    #[track_caller]
    fn sleep_secs(&self, delay: f64) -> Sleep;
}

impl TimersExt for EventLoop {
    #[track_caller]
    #[inline]
    fn call_later(
        &self,
        delay: Duration,
        f: impl FnOnce(&EventLoop) + 'static,
    ) -> Result<TimerHandle> {
        let timers = open_timers(self)?;
        let key = key_after(self, &timers, clock::duration_ns(delay));
        Ok(schedule_key(&timers, key, Location::caller(), f))
    }

    #[track_caller]
    fn call_later_secs(
        &self,
        delay: f64,
        f: impl FnOnce(&EventLoop) + 'static,
    ) -> Result<TimerHandle> {
        let delay_ns = clock::secs_to_ns(delay, "delay")?;
        let timers = open_timers(self)?;
        let key = key_after(self, &timers, delay_ns);
        Ok(schedule_key(&timers, key, Location::caller(), f))
    }

    #[track_caller]
    fn call_at(&self, when: Instant, f: impl FnOnce(&EventLoop) + 'static) -> Result<TimerHandle> {
        let timers = open_timers(self)?;
        let key = clock::key_of(when, timers.epoch);
        Ok(schedule_key(&timers, key, Location::caller(), f))
    }

    #[track_caller]
    fn call_at_secs(&self, when: f64, f: impl FnOnce(&EventLoop) + 'static) -> Result<TimerHandle> {
        let key = clock::secs_to_ns(when, "when")?;
        let timers = open_timers(self)?;
        Ok(schedule_key(&timers, key, Location::caller(), f))
    }

    fn time(&self) -> f64 {
        let key = if self.is_virtual_clock() {
            clock::key_of(self.now(), clock::epoch())
        } else {
            clock::now_key(clock::epoch_ns(), clock::epoch())
        };
        clock::secs_of(key)
    }

    fn clock_resolution(&self) -> Duration {
        if self.is_closed() {
            return clock::os_clock_resolution();
        }
        Duration::from_nanos(Timers::of(self).resolution_ns() as u64)
    }

    fn set_clock_resolution(&self, resolution: Duration) {
        if !self.is_closed() {
            Timers::of(self).set_resolution_ns(clock::duration_ns(resolution));
        }
    }

    fn timer_stats(&self) -> TimerStats {
        if self.is_closed() {
            return TimerStats::default();
        }
        let (scheduled, cancelled, cleanups) = Timers::of(self).stats();
        TimerStats {
            scheduled,
            cancelled,
            cleanups,
        }
    }

    #[track_caller]
    fn sleep(&self, delay: Duration) -> Sleep {
        Sleep::new(
            Some(self.clone()),
            sleep::Delay::After(delay),
            Location::caller(),
        )
    }

    #[track_caller]
    fn sleep_secs(&self, delay: f64) -> Sleep {
        Sleep::new(
            Some(self.clone()),
            sleep::Delay::Secs(delay),
            Location::caller(),
        )
    }
}
