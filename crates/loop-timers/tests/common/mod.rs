//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use loop_core::EventLoop;

/// A shared log of events.
pub type Log<T> = Rc<RefCell<Vec<T>>>;

/// An empty log.
pub fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

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

/// Sets a flag when dropped (to see when a callback's captures are released).
pub struct DropFlag(pub Rc<std::cell::Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A loop with a virtual clock: timers run without waiting, at exact virtual times.
pub fn virtual_loop() -> EventLoop {
    EventLoop::builder().virtual_clock().build().unwrap()
}
