//! Helpers shared by the integration tests: loop-testkit's, under the names these tests use,
//! and the timer-specific ones.
#![allow(dead_code, unused_imports)]

use loop_core::EventLoop;

pub use loop_testkit::{
    entries, exclusive, log, record_exceptions, run_once, watchdog, watchdog_for, DropFlag,
    Exceptions, Log,
};

/// A callback that pushes `v` to `log`.
pub fn push<T: 'static>(log: &Log<T>, v: T) -> impl FnOnce(&EventLoop) + 'static {
    let log = log.clone();
    move |_| log.borrow_mut().push(v)
}

/// A callback that pushes `(v, iteration number)` to `log`.
pub fn push_iter<T: 'static>(log: &Log<(T, u64)>, v: T) -> impl FnOnce(&EventLoop) + 'static {
    let log = log.clone();
    move |lp| log.borrow_mut().push((v, lp.stats().iterations))
}

/// A loop with a virtual clock: timers run without waiting, at exact virtual times.
pub fn virtual_loop() -> EventLoop {
    EventLoop::builder().virtual_clock().build().unwrap()
}
