//! What the loop counts: [`Stats`], the snapshot users read, and the counters behind it.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// What the loop did so far, from [`EventLoop::stats`](crate::EventLoop::stats).
///
/// The counters are always on: each is a plain integer add on the loop's thread, and the two
/// durations come from the clock readings an iteration that blocks takes anyway (busy
/// iterations, which skip the poll, read no clock for them). All counts start at zero when the
/// loop is built and never reset; subtract two snapshots to measure a stretch of work.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// lp.call_soon(|lp| lp.stop()).unwrap();
/// lp.run_forever().unwrap();
/// let s = lp.stats();
/// assert_eq!(s.iterations, 1);
/// assert_eq!(s.callbacks, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Loop iterations (asyncio's `_run_once` calls).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.call_soon(|lp| { lp.call_soon(|lp| lp.stop()).unwrap(); }).unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(lp.stats().iterations, 2);
    /// ```
    pub iterations: u64,
    /// Callbacks run: `call_soon`, `call_soon_threadsafe`, timers, fd watchers and I/O
    /// handlers. Cancelled handles that were skipped do not count.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.call_soon(|_| {}).unwrap();
    /// lp.call_soon(|_| {}).unwrap().cancel();
    /// lp.stop();
    /// lp.run_forever().unwrap();
    /// assert_eq!(lp.stats().callbacks, 1);
    /// ```
    pub callbacks: u64,
    /// Task steps run (each poll of a task's future by the loop).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.run_until_complete(async { loop_core::yield_now().await }).unwrap();
    /// assert_eq!(lp.stats().tasks_polled, 2); // one step before the yield, one after
    /// ```
    pub tasks_polled: u64,
    /// I/O readiness events the poller delivered (fd watchers, transports).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// std::io::Write::write_all(&mut &b, b"x").unwrap();
    /// lp.add_reader(&a, |lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(lp.stats().io_events, 1);
    /// lp.remove_reader(&a).unwrap();
    /// ```
    pub io_events: u64,
    /// `epoll_wait` calls. While work is ready the poll is skipped for up to [`POLL_EVERY`](crate::POLL_EVERY)
    /// iterations, so this is usually well below [`iterations`](Stats::iterations).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.stop();
    /// lp.run_forever().unwrap(); // a pre-stopped run polls once, with a zero timeout
    /// assert_eq!(lp.stats().polls, 1);
    /// ```
    pub polls: u64,
    /// The longest ready queue seen at the start of a run phase: the most work one iteration
    /// had to run.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// for _ in 0..10 {
    ///     lp.call_soon(|_| {}).unwrap();
    /// }
    /// lp.stop();
    /// lp.run_forever().unwrap();
    /// assert_eq!(lp.stats().ready_high_water, 10);
    /// ```
    pub ready_high_water: u64,
    /// Callbacks or task steps that took at least the slow-callback threshold
    /// ([`EventLoop::slow_callback_duration`](crate::EventLoop::slow_callback_duration)). Timing each callback costs two clock readings,
    /// so this is counted in debug mode only (where each is also logged); 0 otherwise.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.set_debug(true);
    /// lp.set_slow_callback_duration(Duration::from_millis(1));
    /// lp.call_soon(|lp| { std::thread::sleep(Duration::from_millis(2)); lp.stop() }).unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(lp.stats().slow_callbacks, 1);
    /// ```
    pub slow_callbacks: u64,
    /// Wall-clock time spent waiting in `epoll_wait` for I/O, a deadline or a wake-up: the
    /// loop's idle time. Zero-timeout polls of a busy loop count as running time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = lp.remote();
    /// let t = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     r.stop().unwrap();
    /// });
    /// lp.run_forever().unwrap(); // idle until the stop arrives
    /// t.join().unwrap();
    /// assert!(lp.stats().poll_time >= Duration::from_millis(10));
    /// ```
    pub poll_time: Duration,
    /// Wall-clock time spent inside `run_forever` / `run_until_complete` but not waiting in
    /// `epoll_wait`: running callbacks and tasks, dispatching I/O and timers. Together with
    /// [`poll_time`](Stats::poll_time) it adds up to the time spent in `run_*`; busy
    /// iterations are accounted at the next blocking poll or when the run returns (or when
    /// `stats()` is called).
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.call_soon(|lp| { std::thread::sleep(Duration::from_millis(5)); lp.stop() }).unwrap();
    /// lp.run_forever().unwrap();
    /// assert!(lp.stats().run_time >= Duration::from_millis(5));
    /// ```
    pub run_time: Duration,
    /// File descriptors registered with the poller now (fd watchers and transports).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// lp.add_reader(&a, |_| {}).unwrap();
    /// assert_eq!(lp.stats().fds_registered, 1);
    /// lp.remove_reader(&a).unwrap();
    /// assert_eq!(lp.stats().fds_registered, 0);
    /// ```
    pub fds_registered: u64,
    /// Entries waiting in the loop's event sources now, as each source reports them: with the
    /// timers crate, the timers scheduled and not cancelled yet (sleeps and timeouts included).
    ///
    /// ```
    /// use loop_core::internal::{LoopInternals, Source};
    /// use loop_core::EventLoop;
    /// use std::time::Instant;
    ///
    /// struct Two;
    /// impl Source for Two {
    ///     fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> { None }
    ///     fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
    ///     fn close(&self, _lp: &EventLoop) {}
    ///     fn pending(&self) -> usize { 2 }
    /// }
    /// let lp = EventLoop::new().unwrap();
    /// assert_eq!(lp.stats().timers_pending, 0);
    /// lp.add_source(std::rc::Rc::new(Two));
    /// assert_eq!(lp.stats().timers_pending, 2);
    /// ```
    pub timers_pending: u64,
    /// The timeout the loop passed to its most recent poll of the reactor: `Some(ZERO)` for a
    /// poll that must not block (work ready, a stop requested, a deadline already due, a
    /// virtual-clock loop jumping ahead), `Some(d)` for a wait until the nearest deadline —
    /// never more than [`MAX_POLL_TIMEOUT`](crate::MAX_POLL_TIMEOUT), however far out that deadline is (TIMER-14) — and
    /// `None` if the last poll waited for I/O or a wake-up only, with no deadline, or if the
    /// loop has not polled yet ([`polls`](Stats::polls) is 0 then).
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert_eq!(lp.stats().last_poll_timeout, None); // no poll yet
    /// lp.stop();
    /// lp.run_forever().unwrap(); // a pre-stopped run polls once, with a zero timeout
    /// assert_eq!(lp.stats().last_poll_timeout, Some(Duration::ZERO));
    /// ```
    pub last_poll_timeout: Option<Duration>,
}

/// Stats counters (cells, so updating them is a plain add).
#[derive(Default)]
pub(crate) struct Counters {
    /// See [`Stats::iterations`](crate::Stats::iterations).
    pub(crate) iterations: Cell<u64>,
    /// See [`Stats::callbacks`](crate::Stats::callbacks).
    pub(crate) callbacks: Cell<u64>,
    /// See [`Stats::tasks_polled`](crate::Stats::tasks_polled).
    pub(crate) tasks_polled: Cell<u64>,
    /// See [`Stats::io_events`](crate::Stats::io_events).
    pub(crate) io_events: Cell<u64>,
    /// See [`Stats::polls`](crate::Stats::polls).
    pub(crate) polls: Cell<u64>,
    /// See [`Stats::ready_high_water`](crate::Stats::ready_high_water).
    pub(crate) ready_high_water: Cell<u64>,
    /// See [`Stats::slow_callbacks`](crate::Stats::slow_callbacks).
    pub(crate) slow_callbacks: Cell<u64>,
    /// See [`Stats::poll_time`](crate::Stats::poll_time), in nanoseconds.
    pub(crate) poll_time: Cell<u64>,
    /// Time spent inside the `run_*` calls that returned, polling included: [`Stats::run_time`](crate::Stats::run_time)
    /// is this (plus the current run) less [`poll_time`](Counters::poll_time), so that an
    /// iteration times its poll only, with the two clock readings around it.
    pub(crate) run_time: Cell<Duration>,
    /// When the current `run_*` call started; `None` outside `run_*`.
    pub(crate) run_mark: Cell<Option<Instant>>,
    /// See [`Stats::last_poll_timeout`](crate::Stats::last_poll_timeout).
    pub(crate) last_poll_timeout: Cell<Option<Duration>>,
}

impl Counters {
    /// Adds the time from the start of the current run to `now` (the run's end).
    #[inline]
    pub(crate) fn account_run(&self, now: Instant) {
        if let Some(mark) = self.run_mark.get() {
            let c = &self.run_time;
            c.set(c.get() + now.saturating_duration_since(mark));
        }
    }
}

pub(crate) fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}
