//! [`TimerHandle`]: a scheduled timer, to cancel it or ask when it is due.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::time::Instant;

use loop_core::{Error, EventLoop, Handle, Result};

use crate::clock;
use crate::queue::{self, Timers};

/// A timer scheduled with [`call_later`](crate::TimersExt::call_later) or
/// [`call_at`](crate::TimersExt::call_at): asyncio's `TimerHandle`.
///
/// Cheap to clone; clones refer to the same timer. Dropping a handle does **not** cancel the
/// timer.
///
/// Handles order by their deadline ([`when`](TimerHandle::when)); timers with the same deadline
/// order by scheduling order, which is also the order they run in (TIMER-06, TIMER-09). Two
/// handles are equal only if they refer to the same timer.
///
/// # Examples
///
/// ```
/// use loop_timers::TimersExt;
/// use std::time::Duration;
///
/// let lp = loop_core::EventLoop::new()?;
/// let late = lp.call_later(Duration::from_secs(60), |_| unreachable!())?;
/// let soon = lp.call_later(Duration::from_millis(1), |lp| lp.stop())?;
/// assert!(soon < late);
/// late.cancel();
/// assert!(late.cancelled());
/// lp.run_forever()?;
/// # Ok::<(), loop_core::Error>(())
/// ```
///
/// Like the loop, a timer handle stays on the loop's thread (asyncio checks this in debug mode
/// only; here it is a compile error):
///
/// ```compile_fail
/// use loop_timers::TimersExt;
/// let lp = loop_core::EventLoop::new().unwrap();
/// let h = lp.call_later_secs(1.0, |_| {}).unwrap();
/// std::thread::spawn(move || h.cancel());
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    /// The loop_core handle that runs the callback.
    pub(crate) handle: Handle,
    /// Deadline, nanoseconds since the clock epoch.
    pub(crate) key: i64,
    /// Scheduling order (unique among the timers of this thread).
    pub(crate) seq: u64,
    /// The timer's slot in the queue while it is in the heap.
    pub(crate) slot: u32,
    /// The queue, to count a cancellation while the entry is in the heap.
    pub(crate) timers: Weak<Timers>,
}

impl TimerHandle {
    /// The absolute time the timer is due (TIMER-07). For `call_later(d, ..)` this is the loop's
    /// clock at the call plus `d`; delays beyond [`MAX_DELAY`](crate::MAX_DELAY) are clamped.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    /// use std::time::{Duration, Instant};
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let at = Instant::now() + Duration::from_secs(3);
    /// let h = lp.call_at(at, |_| {})?;
    /// assert_eq!(h.when(), at);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn when(&self) -> Instant {
        clock::instant_of(self.key, clock::epoch())
    }

    /// [`when`](TimerHandle::when) in the base of [`time()`](crate::TimersExt::time), in seconds
    /// (asyncio's `TimerHandle.when()`).
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let t = lp.time();
    /// let h = lp.call_at_secs(t + 10.0, |_| {})?;
    /// assert!((h.when_secs() - (t + 10.0)).abs() < 1e-6);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn when_secs(&self) -> f64 {
        clock::secs_of(self.key)
    }

    /// Cancels the timer: it will not run, and its callback (with what it captured) is dropped
    /// now. Repeated calls do nothing. O(1): the entry stays in the timer heap until it reaches
    /// the head or a bulk clean-up removes it (see the [crate docs](crate)).
    ///
    /// Cancelling a timer that already moved to the ready queue (it is due, and runs later in
    /// this iteration) still prevents it from running.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    /// use std::time::Duration;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let h = lp.call_later(Duration::ZERO, |_| unreachable!())?;
    /// h.cancel();
    /// h.cancel();
    /// lp.call_later(Duration::from_millis(1), |lp| lp.stop())?;
    /// lp.run_forever()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn cancel(&self) {
        let timers = self.timers.upgrade();
        // Cancelled before: nothing to do or count. Unless the inner handle was given out,
        // only this method cancels, and it frees the slot: the queue's `cancel` below then
        // finds nothing and counts nothing, without asking the handle.
        if timers.as_ref().map_or(true, |t| t.exposed()) && self.handle.cancelled() {
            return;
        }
        // The queue's reference, if the timer is still in the heap: dropped last, with ours.
        let queued = timers.and_then(|t| t.cancel(self.slot, self.seq));
        // Last: dropping the callback may run user code that touches the queue again.
        self.handle.cancel();
        drop(queued);
    }

    /// True once the timer was cancelled.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let h = lp.call_later_secs(5.0, |_| {})?;
    /// assert!(!h.cancelled());
    /// h.cancel();
    /// assert!(h.cancelled());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        self.handle.cancelled()
    }

    /// The loop_core [`Handle`] that runs the callback: its [`location`](Handle::location) is
    /// where the timer was scheduled.
    ///
    /// Cancel through [`TimerHandle::cancel`] rather than through this handle: both stop the
    /// timer, but only the former is counted towards the bulk clean-up of the timer heap.
    ///
    /// ```
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let h = lp.call_later_secs(1.0, |_| {})?;
    /// assert_eq!(h.handle().location().line(), line!() - 1);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn handle(&self) -> &Handle {
        // It can be cancelled through this handle from now on: the queue must ask it.
        if let Some(t) = self.timers.upgrade() {
            t.expose();
        }
        &self.handle
    }
}

impl PartialEq for TimerHandle {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.seq == other.seq
    }
}

impl Eq for TimerHandle {}

impl PartialOrd for TimerHandle {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimerHandle {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.seq).cmp(&(other.key, other.seq))
    }
}

impl Hash for TimerHandle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
        self.seq.hash(state);
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<TimerHandle when={:.6}{} scheduled at {}>",
            self.when_secs(),
            if self.cancelled() { " cancelled" } else { "" },
            self.handle.location()
        )
    }
}

/// Schedules `f` at the deadline `key` (nanoseconds since the clock epoch) on `timers`.
#[inline]
pub(crate) fn schedule_key(
    timers: &Rc<Timers>,
    key: i64,
    location: &'static Location<'static>,
    f: impl FnOnce(&EventLoop) + 'static,
) -> TimerHandle {
    let handle = Handle::with_location(location, f);
    let seq = queue::next_seq();
    let slot = timers.push(key, seq, handle.clone());
    TimerHandle {
        handle,
        key,
        seq,
        slot,
        timers: Rc::downgrade(timers),
    }
}

/// The queue of an open loop.
#[inline]
pub(crate) fn open_timers(lp: &EventLoop) -> Result<Rc<Timers>> {
    if lp.is_closed() {
        return Err(Error::Closed);
    }
    Ok(Timers::of(lp))
}

/// The deadline key of `delay_ns` from now on `timers`' loop.
#[inline]
pub(crate) fn key_after(lp: &EventLoop, timers: &Timers, delay_ns: i64) -> i64 {
    let now = if lp.is_virtual_clock() {
        clock::key_of(lp.now(), timers.epoch)
    } else {
        clock::now_key(timers.epoch_ns, timers.epoch)
    };
    now.saturating_add(delay_ns)
}
