//! Unstable, for evloop's own crates; no semver promise.
//!
//! The hooks the sibling crates (timers, transports, networking, pipes, subprocesses, signals,
//! the executor) build on: per-loop extension state, close hooks, event sources, scheduling a
//! handle or an I/O readiness, the owning fd registration [`Registered`], and [`WeakLoop`], the
//! loop handle that internals keep so that they never keep the loop alive. None of it is part of
//! evloop's public API: it changes whenever the loop's internals do, without a major version.
//!
//! ```
//! use loop_core::internal::LoopInternals;
//! use std::cell::Cell;
//!
//! let lp = loop_core::EventLoop::new().unwrap();
//! let weak = lp.downgrade();
//! let count = lp.extension(|_| Cell::new(0u32));
//! count.set(1);
//! assert_eq!(weak.upgrade().unwrap().extension(|_| Cell::new(0u32)).get(), 1);
//! ```

use std::panic::Location;
use std::rc::Rc;

pub use crate::event_loop::{IoHandler, Source, WeakLoop};
pub use crate::io::Registered;

/// True if the reactor reports hang-ups and errors ([`Readiness::ERROR`],
/// [`Readiness::READ_CLOSED`]): on the epoll backend (Linux). The `polling` backend (macOS, the
/// BSDs, Linux with the `reactor-polling` feature) reports only readable and writable, so a
/// transport learns of EOF and errors by reading and writing, and a write pipe watches for
/// readability to notice that its reader went away (asyncio's way on every platform).
///
/// ```
/// # #[cfg(all(target_os = "linux", not(feature = "reactor-polling")))]
/// assert!(loop_core::internal::HANGUP_REPORTED);
/// ```
pub const HANGUP_REPORTED: bool = crate::sys::HANGUP_REPORTED;

/// How many fds an open loop holds: 2 on the epoll backend (the epoll fd and the wake-up
/// eventfd); on the `polling` backend, `polling`'s own (3 on Linux, 1 on macOS and FreeBSD).
/// For tests that count fds.
///
/// ```
/// let before = loop_testkit::fd_count();
/// let lp = loop_core::EventLoop::new()?;
/// assert_eq!(loop_testkit::fd_count(), before + loop_core::internal::LOOP_FDS);
/// # Ok::<(), loop_core::Error>(())
/// ```
pub const LOOP_FDS: usize = crate::sys::LOOP_FDS;
/// The monotonic clock in nanoseconds, read directly: on Linux one
/// `clock_gettime(CLOCK_MONOTONIC)` through the vDSO, the clock `Instant` reads, without
/// `Instant`'s arithmetic (elsewhere, `Instant`'s clock counted from its first reading). For
/// sources that read the clock on a hot path (the timers' `call_later`).
///
/// ```
/// let a = loop_core::internal::monotonic_ns();
/// assert!(loop_core::internal::monotonic_ns() >= a);
/// ```
#[inline]
pub fn monotonic_ns() -> u64 {
    crate::sys::monotonic_ns()
}

use crate::event_loop::Work;
use crate::{EventLoop, Handle, Readiness, Result};

mod sealed {
    /// Only [`EventLoop`](crate::EventLoop) implements the internal hooks.
    pub trait Sealed {}
    impl Sealed for crate::EventLoop {}
}

/// The loop's internal hooks, implemented for [`EventLoop`]. Sealed.
pub trait LoopInternals: sealed::Sealed {
    /// A handle that does not keep the loop alive.
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let w = lp.downgrade();
    /// drop(lp);
    /// assert!(w.upgrade().is_none());
    /// ```
    fn downgrade(&self) -> WeakLoop;

    /// Per-loop state of type `T`, created by `init` on first use (extension crates keep their
    /// state here). The loop drops it at `close()` (or when the loop is dropped).
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let a = lp.extension(|_| std::cell::Cell::new(5u32));
    /// let b = lp.extension(|_| std::cell::Cell::new(0u32));
    /// assert_eq!(b.get(), 5);
    /// # drop(a);
    /// ```
    fn extension<T: 'static>(&self, init: impl FnOnce(&EventLoop) -> T) -> Rc<T>;

    /// Registers `f` to run once when the loop is closed, after the loop is marked closed and
    /// before pending work is dropped. Hooks run in registration order; a hook that panics is
    /// reported to the exception handler and the others still run. Extension crates use this
    /// for what `close()` must do without waiting (the executor is shut down without waiting,
    /// signal handlers are removed). Hooks also run when the last handle of an unclosed loop is
    /// dropped.
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let closed = Rc::new(Cell::new(false));
    /// let c = closed.clone();
    /// lp.on_close(move |_| c.set(true));
    /// lp.close().unwrap();
    /// assert!(closed.get());
    /// ```
    #[track_caller]
    fn on_close(&self, f: impl FnOnce(&EventLoop) + 'static);

    /// Adds an event source, polled every iteration (the timers crate is one).
    ///
    /// ```
    /// use loop_core::internal::{LoopInternals, Source};
    /// use loop_core::EventLoop;
    /// use std::time::Instant;
    ///
    /// struct Never;
    /// impl Source for Never {
    ///     fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> { None }
    ///     fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
    ///     fn close(&self, _lp: &EventLoop) {}
    /// }
    /// let lp = EventLoop::new().unwrap();
    /// lp.add_source(std::rc::Rc::new(Never));
    /// lp.close().unwrap();
    /// ```
    fn add_source(&self, s: Rc<dyn Source>);

    /// Queues an existing handle (event sources use this for due work).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) after `close()`.
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.schedule(&loop_core::Handle::new(|lp| lp.stop())).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    fn schedule(&self, h: &Handle) -> Result<()>;

    /// Queues the handles of `hs` in order, leaving `hs` empty with its capacity: what
    /// [`schedule`](LoopInternals::schedule) does for each, with one borrow of the ready queue
    /// for all of them (for a source that moves many due handles at once).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) after `close()`; nothing is queued and `hs` is
    /// left as it was.
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// use loop_core::Handle;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut due = vec![Handle::new(|_| {}), Handle::new(|lp| lp.stop())];
    /// lp.schedule_all(&mut due).unwrap();
    /// assert!(due.is_empty());
    /// lp.run_forever().unwrap();
    /// ```
    fn schedule_all(&self, hs: &mut Vec<Handle>) -> Result<()>;

    /// Queues readiness for an [`IoHandler`] as if the poller had reported it (used by
    /// transports to retry a read after `resume_reading` on an edge-triggered fd).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) after `close()`.
    ///
    /// ```
    /// use loop_core::internal::{IoHandler, LoopInternals};
    /// use loop_core::{EventLoop, Readiness};
    /// struct Stop;
    /// impl IoHandler for Stop { fn ready(&self, lp: &EventLoop, _: Readiness) { lp.stop() } }
    /// let lp = EventLoop::new().unwrap();
    /// lp.schedule_io(std::rc::Rc::new(Stop), Readiness::READABLE).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    fn schedule_io(&self, handler: Rc<dyn IoHandler>, r: Readiness) -> Result<()>;
}

impl LoopInternals for EventLoop {
    #[inline]
    fn downgrade(&self) -> WeakLoop {
        EventLoop::downgrade(self)
    }

    #[inline]
    fn extension<T: 'static>(&self, init: impl FnOnce(&EventLoop) -> T) -> Rc<T> {
        EventLoop::extension(self, init)
    }

    #[track_caller]
    fn on_close(&self, f: impl FnOnce(&EventLoop) + 'static) {
        self.on_close_at(Box::new(f), Location::caller());
    }

    #[inline]
    fn add_source(&self, s: Rc<dyn Source>) {
        EventLoop::add_source(self, s)
    }

    #[inline]
    fn schedule(&self, h: &Handle) -> Result<()> {
        EventLoop::schedule(self, h)
    }

    fn schedule_all(&self, hs: &mut Vec<Handle>) -> Result<()> {
        self.check_open()?;
        let mut rest = hs.drain(..);
        if let Some(first) = rest.next() {
            // The first through `push_ready`, which moves in what other threads queued before.
            self.push_ready(Work::Call(first.cb));
            self.inner
                .ready
                .borrow_mut()
                .extend(rest.map(|h| Work::Call(h.cb)));
        }
        Ok(())
    }

    #[inline]
    fn schedule_io(&self, handler: Rc<dyn IoHandler>, r: Readiness) -> Result<()> {
        EventLoop::schedule_io(self, handler, r)
    }
}
