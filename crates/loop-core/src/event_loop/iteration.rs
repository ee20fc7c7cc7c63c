//! One iteration of the loop (asyncio's `_run_once`): take what other threads queued, poll
//! (or skip the poll while busy), let the sources queue what is due, run exactly the work that
//! is ready; and how each unit of work runs (counted, its location current, its context
//! entered, a panic reported).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::IoHandler;
use super::{EventLoop, RemoteNode, WaitHook, Work};
use crate::reactor::Polled;
use crate::readiness::Readiness;
use crate::remote_queue::Batch;
use crate::stats::bump;
use crate::work::{leave_unentered, Callback, EnterContext};
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

/// Puts the wait hook back when the wait it wrapped ends (also by unwinding), unless another
/// hook was set meanwhile.
struct HookBack<'a>(&'a super::Inner, Option<WaitHook>);

impl Drop for HookBack<'_> {
    fn drop(&mut self) {
        let newer = self.0.wait_hook.take();
        self.0.wait_hook.set(newer.or_else(|| self.1.take()));
    }
}

/// When a poll that may block started (real clock): its time is idle time.
#[derive(Clone, Copy)]
enum PollStart {
    /// With a deadline: the reading the timeout came from. The poll's end is read the same
    /// way and is the timers' "now".
    At(Instant),
    /// Without one: the cheaper reading of [`monotonic_ns`](crate::sys::monotonic_ns), as
    /// nothing needs the poll's end as an `Instant`.
    Ns(u64),
}

/// What [`EventLoop::dispatch_events`] did.
#[derive(Default)]
struct Dispatched {
    /// The loop's wake-up was among the events.
    woken: bool,
    /// Watch callbacks were among the events: cancelled ones may have been found, to remove.
    watched: bool,
    /// Ready work the events gave (run or queued).
    polled: usize,
    /// Queued work, at the front of the ready queue, that I/O handlers run straight from the
    /// poll scheduled: it runs next iteration.
    later: usize,
    /// I/O handlers run straight from the poll.
    ran: usize,
    /// Every event went straight to its I/O handler (nothing was queued, before the poll or by
    /// it): what the handlers scheduled is all the ready queue holds, for the next iteration.
    direct: bool,
}

/// The events of a wait not delivered yet: queued (in front, in order) if a handler's panic
/// unwinds out of [`EventLoop::dispatch_events`], so that the loop, usable after a
/// [`Fatal`](crate::Fatal), still runs them.
struct Undelivered<'a> {
    lp: &'a EventLoop,
    /// The first event not delivered.
    next: usize,
    /// One past the last event.
    end: usize,
}

impl Drop for Undelivered<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.next < self.end {
            self.queue();
        }
    }
}

impl Undelivered<'_> {
    #[cold]
    fn queue(&mut self) {
        let inner = &*self.lp.inner;
        let mut rest = Vec::new();
        for i in self.next..self.end {
            match inner.reactor.event(i) {
                Polled::Wake | Polled::Nothing => {}
                Polled::Io(h, r) => rest.push(Work::Io(h, r)),
                Polled::Watch(reader, writer) => {
                    rest.extend(reader.map(Work::Call));
                    rest.extend(writer.map(Work::Call));
                }
            }
        }
        // The cancelled watches among them stay: the next poll reports them again.
        inner.reactor.forget_cancelled();
        put_back_in_front(self.lp, rest);
    }
}

/// Puts `rest` (work that was taken to run and did not) back at the front of the ready queue,
/// in its order: what a [`Fatal`](crate::Fatal) interrupted runs first once the loop runs again.
fn put_back_in_front(lp: &EventLoop, rest: Vec<Work>) {
    let mut q = lp.inner.ready.borrow_mut();
    for w in rest.into_iter().rev() {
        q.push_front(w);
    }
}

/// The rest of a remote batch that [`EventLoop::run_remote_batch`] runs: queued (in front, in
/// order) if a [`Fatal`](crate::Fatal) unwinds out of one of its items, so that the loop, usable
/// after it, still runs them.
struct Unrun<'a, 'b> {
    lp: &'a EventLoop,
    /// The items not run yet.
    batch: &'b mut Batch<dyn RemoteNode>,
}

impl Drop for Unrun<'_, '_> {
    #[inline]
    fn drop(&mut self) {
        if self.batch.len() != 0 {
            self.queue();
        }
    }
}

impl Unrun<'_, '_> {
    #[cold]
    fn queue(&mut self) {
        let rest: Vec<Work> = self.batch.by_ref().map(RemoteNode::into_work).collect();
        put_back_in_front(self.lp, rest);
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
    /// let (about_to_wait, waiting) = std::sync::mpsc::channel();
    /// lp.set_wait_hook(move |wait: &mut dyn FnMut()| {
    ///     w.set(w.get() + 1); // e.g. release a lock here ...
    ///     let _ = about_to_wait.send(());
    ///     wait();
    ///     // ... and take it back here.
    /// });
    /// // Nothing is ready: the loop waits until another thread stops it.
    /// let remote = lp.remote();
    /// let t = std::thread::spawn(move || {
    ///     waiting.recv().unwrap();
    ///     remote.stop()
    /// });
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

    /// The reactor's wait inside the wait hook; returns how many events arrived.
    #[cold]
    #[inline(never)]
    fn wait_hooked(&self, hook: WaitHook, timeout: Option<Duration>) -> usize {
        let mut back = HookBack(&self.inner, Some(hook));
        let mut out = None;
        if let Some(hook) = back.1.as_mut() {
            hook(&mut || {
                if out.is_none() {
                    out = Some(self.inner.reactor.wait(timeout));
                }
            });
        }
        drop(back);
        match out {
            Some(out) => out,
            None => self.inner.reactor.wait(timeout),
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
        // Work from other threads is taken before a poll (below: it goes before what the poll
        // finds), else when the ready work runs (`run_ready`); behind what was ready before it.
        let pending = inner.shared.has_pending();
        let busy = pending || !inner.ready.borrow().is_empty();
        let stopping = inner.stopping.get();
        let sources = inner.has_sources.get();
        // When a poll that may block starts: its time is idle time.
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
                None => match deadline {
                    Some(d) => {
                        // One clock reading for the timeout and the start of the idle time.
                        let now = Instant::now();
                        let t = d.saturating_duration_since(now).min(MAX_POLL_TIMEOUT);
                        if t != Duration::ZERO {
                            poll_start = Some(PollStart::At(now));
                        }
                        Some(Some(t))
                    }
                    None => {
                        poll_start = Some(PollStart::Ns(crate::sys::monotonic_ns()));
                        Some(None)
                    }
                },
                Some(vnow) => match deadline {
                    // Nothing to jump to: block on I/O as usual (real waiting, virtual time
                    // stands still).
                    None => {
                        poll_start = Some(PollStart::Ns(crate::sys::monotonic_ns()));
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
        let Some(timeout) = timeout else {
            // A busy iteration that skips the poll: sources, then what is ready.
            self.dispatch_sources(None);
            if pending && self.ran_remote_batch(0, 0) {
                return;
            }
            self.run_ready(0, 0);
            return;
        };
        if pending {
            self.take_remote();
        }
        // The real time the blocking poll returned, reused as the timers' "now".
        let mut polled_at = None;
        inner.skipped_polls.set(0);
        bump(&inner.counters.polls, 1);
        inner.counters.last_poll_timeout.set(timeout);
        // The hook wraps only a wait that may block.
        let hook = match timeout {
            Some(Duration::ZERO) => None,
            _ => inner.wait_hook.take(),
        };
        let events = match hook {
            None => inner.reactor.wait(timeout),
            Some(hook) => self.wait_hooked(hook, timeout),
        };
        let waited = match poll_start {
            None => 0,
            Some(PollStart::At(start)) => {
                let end = Instant::now();
                polled_at = Some(end);
                end.saturating_duration_since(start).as_nanos() as u64
            }
            Some(PollStart::Ns(start)) => crate::sys::monotonic_ns().saturating_sub(start),
        };
        let c = &inner.counters;
        c.poll_time.set(c.poll_time.get() + waited);
        let d = self.dispatch_events(events);
        if d.watched {
            inner.reactor.remove_cancelled();
        }
        bump(&inner.counters.io_events, d.polled as u64);
        // The eventfd was readable: drain it and re-arm wake-ups. What came is taken when the
        // ready work runs (behind the I/O work, before what the timers queue).
        if d.woken {
            inner.shared.wake.drain_and_rearm();
        }
        // Virtual clock: the loop would have slept until `t`. If the poll found nothing
        // either, nothing could have happened before `t`: jump there.
        if let Some(t) = jump_to {
            if d.polled == 0 && inner.ready.borrow().is_empty() && !inner.shared.has_pending() {
                inner.virtual_now.set(Some(t));
            }
        }
        // Only I/O handlers ran, from the poll, and nothing else can become ready in this
        // iteration (no sources, no wake-up): what they scheduled runs next iteration, so
        // nothing runs now; the high-water mark counts the handlers.
        if d.direct && !d.woken && !sources {
            self.note_ready_high_water(d.ran);
            return;
        }
        // Sources (timers) after I/O.
        self.dispatch_sources(polled_at);
        if d.woken && inner.shared.has_pending() && self.ran_remote_batch(d.later, d.ran) {
            return;
        }
        self.run_ready(d.later, d.ran);
    }

    /// Lets every source queue what is due: at `polled_at` (when the poll returned), or now.
    #[inline(always)]
    fn dispatch_sources(&self, polled_at: Option<Instant>) {
        let inner = &*self.inner;
        if !inner.has_sources.get() {
            return;
        }
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
    }

    /// Runs exactly what is ready now, except the `later` items at the front of the queue
    /// (what I/O handlers that ran straight from the poll scheduled), which go behind it for
    /// the next iteration. `ran`: how many handlers ran so (for the high-water mark).
    #[inline(always)]
    fn run_ready(&self, later: usize, ran: usize) {
        let inner = &*self.inner;
        // Work other threads queued goes behind what is ready; if nothing is, it runs straight
        // from its batch.
        let n = if later == 0 {
            inner.ready.borrow().len()
        } else {
            let mut q = inner.ready.borrow_mut();
            if later < q.len() {
                q.rotate_left(later);
            }
            q.len() - later
        };
        self.note_ready_high_water(n + ran);
        for _ in 0..n {
            let w = inner.ready.borrow_mut().pop_front();
            match w {
                Some(w) => self.run_work(w),
                None => break,
            }
        }
    }

    /// Raises the ready high-water mark to `high` work items run by one iteration.
    #[inline(always)]
    fn note_ready_high_water(&self, high: usize) {
        let c = &self.inner.counters;
        if high as u64 > c.ready_high_water.get() {
            c.ready_high_water.set(high as u64);
        }
    }

    /// Work other threads queued, just before [`run_ready`](EventLoop::run_ready): run straight
    /// from its batch if nothing else is ready (true), else moved into the ready queue, behind
    /// what is ready. Out of line, so that the ready queue's loop stays as small as a chain of
    /// local callbacks needs.
    #[inline(never)]
    fn ran_remote_batch(&self, later: usize, ran: usize) -> bool {
        if later == 0 && self.inner.ready.borrow().is_empty() {
            self.run_remote_batch(ran);
            return true;
        }
        self.take_remote();
        false
    }

    /// Runs a batch of work queued by other threads straight from the batch, in the order it
    /// was queued, when nothing else is ready: as if it were moved into the ready queue first
    /// (what it schedules runs next iteration, and it counts towards the ready high-water mark
    /// the same way), without the move. Should a [`Fatal`](crate::Fatal) unwind, what did not
    /// run yet goes to the front of the ready queue, in order.
    /// `ran`: how many I/O handlers ran straight from the poll before it (for the high-water
    /// mark).
    #[inline(always)]
    fn run_remote_batch(&self, ran: usize) {
        let inner = &*self.inner;
        let mut batch = inner.shared.wake.take_batch();
        let high = (batch.len() + ran) as u64;
        if high > inner.counters.ready_high_water.get() {
            inner.counters.ready_high_water.set(high);
        }
        let rest = Unrun {
            lp: self,
            batch: &mut batch,
        };
        for w in rest.batch.by_ref() {
            w.run_queued(self);
        }
    }

    /// Delivers the `events` of the last wait in the order the poll returned them. If nothing
    /// was queued before the poll, the I/O handlers run right here, one event after the other,
    /// without a trip through the ready queue: they are the first work of the iteration either
    /// way, and what they schedule runs next iteration (`later` counts it). The first watch
    /// callback (`add_reader` / `add_writer`), and every event after it, is queued instead, as
    /// all events are when work was queued before the poll: a watch callback runs as the poll
    /// found it, even if an earlier callback replaces it.
    #[inline(always)]
    fn dispatch_events(&self, events: usize) -> Dispatched {
        let inner = &*self.inner;
        let mut direct = inner.ready.borrow().is_empty();
        let mut d = Dispatched::default();
        // Should a handler's panic unwind (a `Fatal`), the events not yet delivered are queued.
        let mut rest = Undelivered {
            lp: self,
            next: 0,
            end: events,
        };
        for i in 0..events {
            let work = match inner.reactor.event(i) {
                Polled::Wake => {
                    d.woken = true;
                    continue;
                }
                Polled::Nothing => continue,
                Polled::Io(h, r) if direct => {
                    d.polled += 1;
                    d.ran += 1;
                    rest.next = i + 1;
                    self.run_io(&h, r);
                    continue;
                }
                Polled::Io(h, r) => [Some(Work::Io(h, r)), None],
                Polled::Watch(reader, writer) => {
                    d.watched = true;
                    [reader.map(Work::Call), writer.map(Work::Call)]
                }
            };
            let mut q = inner.ready.borrow_mut();
            if direct {
                direct = false;
                d.later = q.len();
            }
            for w in work.into_iter().flatten() {
                d.polled += 1;
                q.push_back(w);
            }
        }
        rest.next = events;
        if direct {
            d.later = inner.ready.borrow().len();
        }
        d.direct = direct;
        d
    }

    /// The earliest deadline any source reports.
    fn next_deadline(&self) -> Option<Instant> {
        if !self.inner.has_sources.get() {
            return None;
        }
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

    #[inline(always)]
    pub(super) fn run_work(&self, w: Work) {
        let inner = &*self.inner;
        match w {
            // Runs it, then keeps its allocation for reuse.
            Work::Call(cb) => cb.run_queued(self),
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
            Work::Io(h, r) => self.run_io_queued(&h, r),
            Work::Stop => self.stop(),
        }
    }

    /// Runs an I/O handler: counted, in the empty context, a panic reported.
    #[inline(always)]
    fn run_io(&self, h: &Rc<dyn IoHandler>, r: Readiness) {
        let inner = &*self.inner;
        bump(&inner.counters.callbacks, 1);
        if inner.debug.get() || crate::context::active() {
            return self.run_io_entered(h, r);
        }
        // Contexts are not in use on this thread: the current one is empty already.
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.ready(self, r))) {
            self.report_panic(p, "Exception in I/O handler", None);
        }
        // The handler started using contexts: what it set does not outlive it.
        if crate::context::active() {
            drop(crate::context::enter(None));
        }
    }

    /// [`run_io`](EventLoop::run_io) for readiness that went through the ready queue: out of
    /// line, so that the queue's loop stays as small as the callbacks' path needs.
    #[inline(never)]
    fn run_io_queued(&self, h: &Rc<dyn IoHandler>, r: Readiness) {
        self.run_io(h, r);
    }

    /// [`run_io`](EventLoop::run_io) in debug mode or while contexts are in use: the empty
    /// context entered around the handler, a slow handler logged.
    #[inline(never)]
    fn run_io_entered(&self, h: &Rc<dyn IoHandler>, r: Readiness) {
        let _ctx = EmptyContext::enter();
        let start = self.inner.debug.get().then(Instant::now);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.ready(self, r))) {
            self.report_panic(p, "Exception in I/O handler", None);
        }
        if let Some(start) = start {
            self.check_slow(start, &format_args!("<I/O handler {r:?}>"));
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
        if inner.debug.get() || crate::context::active() {
            return self.run_callback_entered(cb, loc);
        }
        // Contexts are not in use on this thread: the callback's context and the current one
        // are both empty, nothing to switch. A panic is reported in the context the callback
        // left current, which is its own (CORE-53).
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
            self.report_panic(p, "Exception in callback", Some(loc));
        }
        inner.current_location.set(None);
        leave_unentered(cb);
    }

    /// [`run_callback`](EventLoop::run_callback) in debug mode or while contexts are in use:
    /// the callback's context entered around it, a slow callback logged.
    #[inline(never)]
    fn run_callback_entered<C: Callback<EventLoop>>(
        &self,
        cb: &C,
        loc: &'static Location<'static>,
    ) {
        let inner = &*self.inner;
        // The callback's context stays current while a panic of it is reported, so the
        // exception handler runs in it (CORE-53).
        let ctx = EnterContext::new(cb);
        let start = inner.debug.get().then(Instant::now);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
            self.report_panic(p, "Exception in callback", Some(loc));
        }
        if let Some(start) = start {
            self.check_slow(start, &format_args!("<Handle scheduled at {loc}>"));
        }
        inner.current_location.set(None);
        drop(ctx);
    }

    /// Runs the closure `f` of a queued `call_soon_threadsafe` callback scheduled at `loc`,
    /// which the caller took from it (so no cancel can win any more): counted, its location
    /// current, in an empty context (it was scheduled on another thread), a panic reported.
    /// Generic over the closure's type, so that everything here is dispatched statically (see
    /// [`RemoteCallback::run_queued`](crate::work::RemoteCallback::run_queued)).
    #[inline]
    pub(crate) fn run_remote<F: FnOnce(&EventLoop)>(&self, loc: &'static Location<'static>, f: F) {
        let inner = &*self.inner;
        bump(&inner.counters.callbacks, 1);
        if inner.debug.get() || crate::context::active() {
            return self.run_remote_entered(loc, f);
        }
        // Contexts are not in use on this thread: the current one is empty already.
        inner.current_location.set(Some(loc));
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(self))) {
            self.report_panic(p, "Exception in callback", Some(loc));
        }
        inner.current_location.set(None);
        // The callback started using contexts: what it set does not outlive it.
        if crate::context::active() {
            drop(crate::context::enter(None));
        }
    }

    /// [`run_remote`](EventLoop::run_remote) in debug mode or while contexts are in use: the
    /// empty context entered around the callback, a slow callback logged.
    #[inline(never)]
    fn run_remote_entered<F: FnOnce(&EventLoop)>(&self, loc: &'static Location<'static>, f: F) {
        let inner = &*self.inner;
        inner.current_location.set(Some(loc));
        let entered = EmptyContext::enter();
        let start = inner.debug.get().then(Instant::now);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(self))) {
            self.report_panic(p, "Exception in callback", Some(loc));
        }
        if let Some(start) = start {
            self.check_slow(start, &format_args!("<RemoteHandle scheduled at {loc}>"));
        }
        inner.current_location.set(None);
        drop(entered);
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
