//! [`EventLoop::stats`]: what the loop did so far, from its counters.

use std::time::Instant;

use super::EventLoop;
use crate::stats::Stats;

impl EventLoop {
    /// What the loop did so far.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert_eq!(lp.stats().iterations, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let mut in_runs = c.run_time.get();
        if let Some(mark) = c.run_mark.get() {
            // Called while running: count the current run so far too.
            in_runs += Instant::now().saturating_duration_since(mark);
        }
        // Time in `run_*` is either polling or running; only the polls are timed one by one.
        let poll_time = std::time::Duration::from_nanos(c.poll_time.get());
        let run_time = in_runs.saturating_sub(poll_time);
        let timers_pending = match self.inner.sources.try_borrow() {
            Ok(sources) => sources.iter().map(|s| s.pending() as u64).sum(),
            Err(_) => 0,
        };
        Stats {
            iterations: c.iterations.get(),
            callbacks: c.callbacks.get(),
            tasks_polled: c.tasks_polled.get(),
            io_events: c.io_events.get(),
            polls: c.polls.get(),
            ready_high_water: c.ready_high_water.get(),
            slow_callbacks: c.slow_callbacks.get(),
            poll_time,
            run_time,
            fds_registered: self.inner.reactor.len() as u64,
            timers_pending,
            last_poll_timeout: c.last_poll_timeout.get(),
        }
    }
}
