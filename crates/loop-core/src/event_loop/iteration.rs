//! One iteration of the loop (asyncio's `_run_once`): take what other threads queued, poll
//! (or skip the poll while busy), let the sources queue what is due, run exactly the work that
//! is ready; and how each unit of work runs (counted, its location current, its context
//! entered, a panic reported).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{EventLoop, Work};
use crate::reactor::Ready;
use crate::stats::bump;
use crate::work::{leave_unentered, Callback, EnterContext, RemoteCallback, PENDING};
use crate::{Error, Exception, ExceptionContext, Result};

/// While work is ready, I/O is polled at least once per this many iterations.
pub const POLL_EVERY: u32 = 64;

/// The poller is never asked to wait longer than one day (TIMER-14).
pub const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Runs what it guards in the empty context, then restores the previous one.
struct EmptyContext(Option<crate::context::Snapshot>);

impl EmptyContext {
    #[inline]
    fn enter() -> EmptyContext {
        EmptyContext(Some(crate::context::enter(None)))
    }
}

impl Drop for EmptyContext {
    #[inline]
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            crate::context::enter(prev);
        }
    }
}

/// A hook around the loop's blocking wait: called with the wait, which it must call once (see
/// [`EventLoop::set_wait_hook`]).
pub(crate) type WaitHook = Box<dyn FnMut(&mut dyn FnMut())>;

/// Puts the wait hook back when the wait it wrapped ends (also by unwinding), unless another
/// hook was set meanwhile.
struct HookBack<'a>(&'a super::Inner, Option<WaitHook>);

impl Drop for HookBack<'_> {
    fn drop(&mut self) {
        let newer = self.0.wait_hook.take();
        self.0.wait_hook.set(newer.or_else(|| self.1.take()));
    }
}

impl EventLoop {
    /// Sets a hook that the loop calls around each wait for I/O that may block, and only
    /// there: not around callbacks, and not around the zero-timeout polls of a busy loop. The
    /// hook gets the wait as a closure and must call it once; code before the call runs just
    /// before the loop may go to sleep, code after it once the loop woke up. If the hook returns
    /// without calling it, the loop waits after the hook returns. A new hook replaces the
    /// previous one.
    ///
    /// An embedding uses it for what must not stay held while the loop sleeps: a language
    /// runtime's global lock (the Python binding runs callbacks with the GIL held and releases
    /// it only here), a watchdog's "idle" mark. The hook runs on the loop's thread with the
    /// ready queue untouched; it must not run the loop itself.
    ///
    /// # Panics
    ///
    /// A panic of the hook (or of a [`Fatal`](crate::Fatal) unwinding through it) unwinds out of
    /// [`run_forever`](EventLoop::run_forever) / [`run_once`](EventLoop::run_once); the hook
    /// stays set.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use loop_core::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let waits = Rc::new(Cell::new(0));
    /// let w = waits.clone();
    /// lp.set_wait_hook(move |wait: &mut dyn FnMut()| {
    ///     w.set(w.get() + 1); // e.g. release a lock here ...
    ///     wait();
    ///     // ... and take it back here.
    /// });
    /// // Nothing is ready: the loop waits until another thread stops it.
    /// let remote = lp.remote();
    /// let t = std::thread::spawn(move || remote.stop());
    /// lp.run_forever()?;
    /// t.join().unwrap()?;
    /// assert!(waits.get() >= 1);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn set_wait_hook(&self, hook: impl FnMut(&mut dyn FnMut()) + 'static) {
        let old = self.inner.wait_hook.replace(Some(Box::new(hook)));
        drop(old);
    }

    /// Removes the hook set with [`set_wait_hook`](EventLoop::set_wait_hook); whether there was
    /// one. Called from inside the hook itself it has no effect (the running hook is put back
    /// when its wait ends).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(!lp.clear_wait_hook());
    /// lp.set_wait_hook(|wait: &mut dyn FnMut()| wait());
    /// assert!(lp.clear_wait_hook());
    /// ```
    pub fn clear_wait_hook(&self) -> bool {
        self.inner.wait_hook.take().is_some()
    }

    /// Runs one iteration of the loop, asyncio's `_run_once`: waits for I/O until the next
    /// timer is due (not at all when callbacks are ready or a stop was requested, without a
    /// deadline when nothing is scheduled), queues what became ready and due, and runs exactly
    /// the callbacks that are ready then (CORE-07). While it runs, the loop is running
    /// ([`is_running`](EventLoop::is_running), [`EventLoop::current`]). Returns whether
    /// [`stop`](EventLoop::stop) was called before or during the iteration; the request is
    /// then consumed, as at the end of [`run_forever`](EventLoop::run_forever). An embedding
    /// that drives the loop itself calls it until it returns `true`.
    ///
    /// # Errors
    ///
    /// As [`run_forever`](EventLoop::run_forever): [`Error::Closed`],
    /// [`Error::AlreadyRunning`], [`Error::AnotherLoopRunning`].
    ///
    /// # Panics
    ///
    /// Only a [`Fatal`](crate::Fatal) panic from user code unwinds out of it, as out of
    /// `run_forever`.
    ///
    /// ```
    /// use loop_core::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// lp.call_soon(|lp| {
    ///     lp.call_soon(|lp| lp.stop()).unwrap();
    /// })?;
    /// assert!(!lp.run_once()?); // ran the first callback, which queued the second
    /// assert!(lp.run_once()?); // ran the second, which asked to stop
    ///
    /// // Nothing ready: one iteration waits for I/O (here: another thread's stop).
    /// let remote = lp.remote();
    /// let t = std::thread::spawn(move || remote.stop());
    /// while !lp.run_once()? {}
    /// t.join().unwrap()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn run_once(&self) -> Result<bool> {
        let _guard = self.begin_run()?;
        self.run_iterations(true);
        Ok(self.inner.stopping.get())
    }

    /// Polls the reactor with `timeout`, appending what is ready to the ready queue. Returns
    /// whether the wake-up fd was readable, the watchers found cancelled, and how many items
    /// were appended.
    #[inline(always)]
    fn poll_ready(&self, timeout: Option<Duration>) -> (bool, crate::reactor::Cancelled, usize) {
        let inner = &*self.inner;
        let mut q = inner.ready.borrow_mut();
        let before = q.len();
        let (woken, cancelled) = inner.reactor.poll(timeout, |r| match r {
            Ready::Io(h, r) => q.push_back(Work::Io(h.clone(), r)),
            Ready::Watch(cb) => q.push_back(Work::Call(cb.clone())),
        });
        let polled = q.len() - before;
        (woken, cancelled, polled)
    }

    /// [`poll_ready`](EventLoop::poll_ready) inside the wait hook.
    #[cold]
    #[inline(never)]
    fn poll_hooked(
        &self,
        hook: WaitHook,
        timeout: Option<Duration>,
    ) -> (bool, crate::reactor::Cancelled, usize) {
        let mut back = HookBack(&self.inner, Some(hook));
        let mut out = None;
        if let Some(hook) = back.1.as_mut() {
            hook(&mut || {
                if out.is_none() {
                    out = Some(self.poll_ready(timeout));
                }
            });
        }
        drop(back);
        match out {
            Some(out) => out,
            None => self.poll_ready(timeout),
        }
    }

    /// Runs iterations until a stop is requested, or only one (`once`). The only caller of
    /// [`iterate`](EventLoop::iterate), which is inlined into its loop (a call per iteration
    /// costs some 25 instructions per callback in a chain of callbacks).
    pub(super) fn run_iterations(&self, once: bool) {
        loop {
            self.iterate();
            if once || self.inner.stopping.get() {
                break;
            }
        }
    }

    /// Runs one iteration.
    fn iterate(&self) {
        let inner = &*self.inner;
        bump(&inner.counters.iterations, 1);
        if inner.shared.has_pending() {
            self.take_remote();
        }
        let busy = !inner.ready.borrow().is_empty();
        let stopping = inner.stopping.get();
        // When a poll that may block starts (real clock): its time is idle time.
        let mut poll_start = None;
        // Virtual clock: the deadline to jump to if the zero-timeout poll finds nothing.
        let mut jump_to = None;
        // `None`: skip the poll; `Some(t)`: poll with timeout `t` (`None`: no timeout).
        let timeout = if busy || stopping {
            let skipped = inner.skipped_polls.get();
            if !stopping && skipped < POLL_EVERY {
                inner.skipped_polls.set(skipped + 1);
                None
            } else {
                Some(Some(Duration::ZERO))
            }
        } else {
            let deadline = self.next_deadline();
            match inner.virtual_now.get() {
                None => {
                    // One clock reading for the timeout and the start of the idle time.
                    let now = Instant::now();
                    let t =
                        deadline.map(|d| d.saturating_duration_since(now).min(MAX_POLL_TIMEOUT));
                    if t != Some(Duration::ZERO) {
                        poll_start = Some(now);
                    }
                    Some(t)
                }
                Some(vnow) => match deadline {
                    // Nothing to jump to: block on I/O as usual (real waiting, virtual time
                    // stands still).
                    None => {
                        poll_start = Some(Instant::now());
                        Some(None)
                    }
                    Some(d) => {
                        if d > vnow {
                            jump_to = Some(d);
                        }
                        Some(Some(Duration::ZERO))
                    }
                },
            }
        };
        // The real time the blocking poll returned, reused as the timers' "now".
        let mut polled_at = None;
        if let Some(timeout) = timeout {
            inner.skipped_polls.set(0);
            bump(&inner.counters.polls, 1);
            inner.counters.last_poll_timeout.set(timeout);
            // The hook wraps only a wait that may block.
            let hook = match timeout {
                Some(Duration::ZERO) => None,
                _ => inner.wait_hook.take(),
            };
            let (woken, cancelled, polled) = match hook {
                None => self.poll_ready(timeout),
                Some(hook) => self.poll_hooked(hook, timeout),
            };
            inner.reactor.remove_cancelled(cancelled);
            if let Some(start) = poll_start {
                let end = Instant::now();
                let c = &inner.counters;
                c.poll_time
                    .set(c.poll_time.get() + end.saturating_duration_since(start));
                polled_at = Some(end);
            }
            bump(&inner.counters.io_events, polled as u64);
            // The eventfd was readable: drain it and re-arm wake-ups, then take what came.
            if woken && inner.shared.wake.drain_and_rearm() {
                self.take_remote();
            }
            // Virtual clock: the loop would have slept until `d`. If the poll found nothing
            // either, nothing could have happened before `d`: jump there.
            if let Some(d) = jump_to {
                if inner.ready.borrow().is_empty() && !inner.shared.has_pending() {
                    inner.virtual_now.set(Some(d));
                }
            }
        }
        // Sources (timers) after I/O.
        let mut i = 0;
        let mut now = None;
        loop {
            let s = match inner.sources.borrow().get(i) {
                Some(s) => s.clone(),
                None => break,
            };
            let t = *now.get_or_insert_with(|| match inner.virtual_now.get() {
                Some(v) => v,
                None => polled_at.unwrap_or_else(Instant::now),
            });
            s.dispatch(self, t);
            i += 1;
        }
        // Run exactly what is ready now.
        let n = inner.ready.borrow().len();
        if n as u64 > inner.counters.ready_high_water.get() {
            inner.counters.ready_high_water.set(n as u64);
        }
        for _ in 0..n {
            let w = inner.ready.borrow_mut().pop_front();
            match w {
                Some(w) => self.run_work(w),
                None => break,
            }
        }
    }

    /// The earliest deadline any source reports.
    fn next_deadline(&self) -> Option<Instant> {
        let mut deadline: Option<Instant> = None;
        let mut i = 0;
        loop {
            let s = match self.inner.sources.borrow().get(i) {
                Some(s) => s.clone(),
                None => break,
            };
            if let Some(d) = s.next_deadline(self) {
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
            i += 1;
        }
        deadline
    }

    fn run_work(&self, w: Work) {
        let inner = &*self.inner;
        match w {
            Work::Call(cb) => {
                cb.run_queued(self);
                self.recycle(cb);
            }
            // Runs it, then keeps its allocation for reuse.
            Work::Remote(cb) => cb.run_queued(self),
            Work::Step(t) => {
                bump(&inner.counters.tasks_polled, 1);
                // Task steps catch panics of the task body themselves; only a Fatal unwinds here.
                t.run_step(false);
            }
            Work::Task(r) => {
                bump(&inner.counters.tasks_polled, 1);
                // Task steps catch panics of the task body themselves; only a Fatal unwinds here.
                crate::task_header::run_task(&inner.tasks, r);
            }
            Work::Io(h, r) => {
                bump(&inner.counters.callbacks, 1);
                let _ctx = EmptyContext::enter();
                let start = inner.debug.get().then(Instant::now);
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.ready(self, r))) {
                    self.report_panic(p, "Exception in I/O handler", None);
                }
                if let Some(start) = start {
                    self.check_slow(start, &format_args!("<I/O handler {r:?}>"));
                }
            }
            Work::Stop => self.stop(),
        }
    }

    /// Runs a queued local callback unless it was cancelled: counted, its location current,
    /// its context entered, a panic reported. Generic over the callback's type, so that
    /// everything here is dispatched statically (see [`Callback::run_queued`]).
    #[inline]
    pub(crate) fn run_callback<C: Callback<EventLoop>>(&self, cb: &C) {
        let inner = &*self.inner;
        if cb.is_cancelled() {
            return;
        }
        bump(&inner.counters.callbacks, 1);
        let loc = cb.location();
        inner.current_location.set(Some(loc));
        // The callback's context stays current while a panic of it is reported, so the
        // exception handler runs in it (CORE-53).
        let ctx = EnterContext::enter_if_active(cb);
        let start = inner.debug.get().then(Instant::now);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
            self.report_panic(p, "Exception in callback", Some(loc));
        }
        if let Some(start) = start {
            self.check_slow(start, &format_args!("<Handle scheduled at {loc}>"));
        }
        inner.current_location.set(None);
        match ctx {
            Some(ctx) => drop(ctx),
            None => leave_unentered(cb),
        }
    }

    /// Runs a queued `call_soon_threadsafe` callback unless it was cancelled: counted, its
    /// location current, in an empty context (it was scheduled on another thread), a panic
    /// reported. Generic over the callback's type, so that everything here is dispatched
    /// statically (see [`RemoteCallback::run_queued`]).
    #[inline]
    pub(crate) fn run_remote<C: RemoteCallback<EventLoop>>(&self, cb: &C) {
        let inner = &*self.inner;
        if cb.state() != PENDING {
            return;
        }
        bump(&inner.counters.callbacks, 1);
        let loc = cb.location();
        inner.current_location.set(Some(loc));
        // While contexts are not in use on this thread, the current one is empty already.
        let entered = crate::context::active().then(EmptyContext::enter);
        let start = inner.debug.get().then(Instant::now);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
            self.report_panic(p, "Exception in callback", Some(loc));
        }
        if let Some(start) = start {
            self.check_slow(start, &format_args!("<RemoteHandle scheduled at {loc}>"));
        }
        inner.current_location.set(None);
        match entered {
            Some(ctx) => drop(ctx),
            // The callback started using contexts: what it set does not outlive it.
            None if crate::context::active() => drop(crate::context::enter(None)),
            None => {}
        }
    }

    /// Keeps the allocation of a local handle that ran (or was cancelled) if nothing else holds
    /// it and the spare slot is free; else drops it. Its context is dropped now (its closure
    /// already is), so that the spare keeps nothing of the user's alive.
    #[inline]
    fn recycle(&self, cb: Rc<dyn Callback<EventLoop>>) {
        let slot = &self.inner.spare_handle;
        let prev = slot.take();
        if prev.is_none() && Rc::strong_count(&cb) == 1 && Rc::weak_count(&cb) == 0 {
            drop(cb.swap_context(None));
            slot.set(Some(cb.into_any()));
        } else {
            slot.set(prev);
        }
    }

    /// Debug mode: logs a step that took longer than the threshold.
    pub(crate) fn check_slow(&self, start: Instant, what: &dyn std::fmt::Display) {
        let took = start.elapsed();
        if took >= self.inner.slow_callback.get() {
            bump(&self.inner.counters.slow_callbacks, 1);
            tracing::warn!("Executing {what} took {:.3} seconds", took.as_secs_f64());
        }
    }

    /// Reports a caught panic to the exception handler (a [`Fatal`](crate::Fatal) one unwinds).
    pub(crate) fn report_panic(
        &self,
        p: Box<dyn Any + Send>,
        message: &str,
        loc: Option<&'static Location<'static>>,
    ) {
        if p.is::<crate::Fatal>() {
            resume_unwind(p);
        }
        let exc = Exception::from_panic(&*p);
        let mut ctx = match loc {
            Some(loc) => {
                let mut ctx = ExceptionContext::new(format!("{message} scheduled at {loc}"));
                ctx.handle = Some(format!("<Handle scheduled at {loc}>"));
                if self.get_debug() {
                    ctx.source_location = Some(loc);
                }
                ctx
            }
            None => ExceptionContext::new(message),
        };
        ctx.exception = Some(Error::Exception(exc));
        self.call_exception_handler(&ctx);
    }
}
