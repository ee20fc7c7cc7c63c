//! [`Sleep`]: a future completed by a timer (asyncio's `sleep`).

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use loop_core::{Error, EventLoop, LoopFuture, Result};

use crate::clock;
use crate::handle::{key_after, schedule_key, TimerHandle};
use crate::queue::Timers;

/// How long a [`Sleep`] lasts, as it was given.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Delay {
    /// A `Duration` from the first poll.
    After(Duration),
    /// Float seconds from the first poll (checked then).
    Secs(f64),
    /// Until an instant.
    Until(Instant),
}

/// Where a [`Sleep`] is.
#[derive(Debug)]
enum State {
    /// Not polled yet: nothing scheduled.
    Start(Delay),
    /// `sleep(0)`: yielded once; the future only catches a cancellation meanwhile.
    Yielded(LoopFuture<()>),
    /// Waiting for the timer, which completes the future.
    Waiting {
        /// Completed by the timer.
        fut: LoopFuture<()>,
        /// The timer.
        timer: TimerHandle,
    },
    /// Finished.
    Done,
}

/// A future that completes after a delay: asyncio's `sleep`, built on a loop future that a
/// [`call_later`](crate::TimersExt::call_later) timer completes.
///
/// Made by [`sleep`], [`sleep_secs`], [`sleep_until`] (on the loop running the task that polls
/// it) or [`TimersExt::sleep`](crate::TimersExt::sleep) (on a given loop). Nothing happens
/// until it is first polled: the delay counts from then.
///
/// * Its output is `Ok(())`, or the error that stopped it: [`Error::Cancelled`] when the task
///   awaiting it was cancelled (TIMER-18), [`Error::InvalidArgument`] for a NaN or infinite
///   delay in seconds, [`Error::NoRunningLoop`], [`Error::Closed`].
/// * **A zero or negative delay yields exactly one loop iteration** (CORE-48): the task
///   resumes on the next iteration, after every callback that was ready before it.
/// * **Cancel safety.** Cancelling the task that awaits a `Sleep`, or dropping the `Sleep`,
///   cancels its timer: nothing stays scheduled.
///
/// ```
/// use loop_core::EventLoop;
/// use std::time::{Duration, Instant};
///
/// let lp = EventLoop::new()?;
/// let start = Instant::now();
/// lp.run_until_complete(async {
///     loop_timers::sleep(Duration::from_millis(10)).await?;
///     loop_timers::sleep_secs(0.01).await
/// })??;
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// # Ok::<(), loop_core::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    /// The loop to sleep on; `None`: the running loop, found at the first poll.
    lp: Option<EventLoop>,
    /// Progress.
    state: State,
    /// Where the sleep was made (its timer's location).
    location: &'static Location<'static>,
}

impl Sleep {
    pub(crate) fn new(
        lp: Option<EventLoop>,
        delay: Delay,
        location: &'static Location<'static>,
    ) -> Sleep {
        Sleep {
            lp,
            state: State::Start(delay),
            location,
        }
    }

    /// The timer, once the sleep started (first poll) and until it ends; `None` for a sleep of
    /// zero, which needs no timer.
    ///
    /// ```
    /// use futures_lite::future::{block_on, poll_once};
    /// use loop_timers::TimersExt;
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let mut s = lp.sleep_secs(10.0);
    /// assert!(s.timer().is_none());
    /// assert!(block_on(poll_once(&mut s)).is_none()); // started, pending
    /// assert!(s.timer().unwrap().when_secs() > lp.time() + 9.0);
    /// drop(s); // cancels the timer
    /// assert_eq!(lp.timer_stats().cancelled, 1);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn timer(&self) -> Option<&TimerHandle> {
        match &self.state {
            State::Waiting { timer, .. } => Some(timer),
            _ => None,
        }
    }

    /// First poll: schedules the timer (or yields, for a zero delay).
    fn start(&mut self, delay: Delay, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let lp = match self.lp.take() {
            Some(lp) => lp,
            None => match EventLoop::current() {
                Ok(lp) => lp,
                Err(e) => return Poll::Ready(Err(e)),
            },
        };
        if lp.is_closed() {
            return Poll::Ready(Err(Error::Closed));
        }
        let delay_ns = match delay {
            Delay::After(d) if d.is_zero() => return self.yield_once(&lp, cx),
            Delay::After(d) => Some(clock::duration_ns(d)),
            Delay::Secs(s) => match clock::secs_to_ns(s, "delay") {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(_) if s <= 0.0 => return self.yield_once(&lp, cx),
                Ok(ns) => Some(ns),
            },
            Delay::Until(_) => None,
        };
        let timers = Timers::of(&lp);
        let key = match (delay_ns, delay) {
            (Some(ns), _) => key_after(&lp, &timers, ns),
            (None, Delay::Until(t)) => clock::key_of(t, timers.epoch),
            (None, _) => unreachable!("only `Until` has no delay"),
        };
        let fut = lp.create_future::<()>();
        let done = fut.clone();
        let timer = schedule_key(&timers, key, self.location, move |_| {
            // Fails only if the sleep was cancelled meanwhile, which cancels this timer too.
            let _ = done.set_result(());
        });
        self.state = State::Waiting { fut, timer };
        self.poll_waiting(cx)
    }

    /// `sleep(0)`: asyncio's bare yield. The task is woken at once, so it runs again on the
    /// next iteration, after what was ready before it. A loop future is polled on the way so
    /// that a cancellation of the task meanwhile is delivered here, as at any loop `await`.
    fn yield_once(&mut self, lp: &EventLoop, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut fut = lp.create_future::<()>();
        if let Poll::Ready(r) = Pin::new(&mut fut).poll(cx) {
            // A cancellation of the task that was already pending, or a future of another loop.
            return Poll::Ready(r);
        }
        cx.waker().wake_by_ref();
        self.state = State::Yielded(fut);
        Poll::Pending
    }

    /// Polls the loop future the timer completes.
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let State::Waiting { fut, timer } = &mut self.state else {
            unreachable!("called in the waiting state")
        };
        match Pin::new(fut).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                if r.is_err() {
                    // Cancelled (TIMER-18): the timer must not stay scheduled.
                    timer.cancel();
                }
                self.state = State::Done;
                Poll::Ready(r)
            }
        }
    }
}

impl Future for Sleep {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        match &mut this.state {
            State::Start(delay) => {
                let delay = *delay;
                this.state = State::Done;
                this.start(delay, cx)
            }
            State::Waiting { .. } => this.poll_waiting(cx),
            State::Yielded(fut) => {
                // Not polled again unless it was cancelled: polling a pending loop future would
                // leave it registered as what the task waits on.
                let r = if fut.done() {
                    Pin::new(fut).poll(cx)
                } else {
                    Poll::Ready(Ok(()))
                };
                this.state = State::Done;
                r
            }
            State::Done => Poll::Ready(Err(Error::invalid_state(
                "the sleep was polled after it completed",
            ))),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let State::Waiting { timer, .. } = &self.state {
            timer.cancel();
        }
    }
}

/// Sleeps for `delay` on the loop running the task that awaits it (asyncio's
/// `asyncio.sleep(delay)`); see [`Sleep`]. `sleep(Duration::ZERO)` yields exactly one
/// iteration.
///
/// Awaiting it outside a running loop gives [`Error::NoRunningLoop`].
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// let lp = loop_core::EventLoop::new()?;
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// let lp2 = lp.clone();
/// lp.run_until_complete(async move {
///     lp2.call_soon(move |_| r.set(true))?;
///     loop_timers::sleep(Duration::ZERO).await?; // one iteration: the callback ran
///     assert!(ran.get());
///     Ok::<(), loop_core::Error>(())
/// })??;
/// # Ok::<(), loop_core::Error>(())
/// ```
#[track_caller]
pub fn sleep(delay: Duration) -> Sleep {
    Sleep::new(None, Delay::After(delay), Location::caller())
}

/// [`sleep`] with the delay in seconds, as asyncio takes it. Zero and negative delays yield one
/// iteration; NaN and infinities fail with [`Error::InvalidArgument`] when awaited.
///
/// ```
/// let lp = loop_core::EventLoop::new()?;
/// let r = lp.run_until_complete(async {
///     loop_timers::sleep_secs(0.001).await?;
///     loop_timers::sleep_secs(f64::NAN).await
/// })?;
/// assert!(matches!(r, Err(loop_core::Error::InvalidArgument(_))));
/// # Ok::<(), loop_core::Error>(())
/// ```
#[track_caller]
pub fn sleep_secs(delay: f64) -> Sleep {
    Sleep::new(None, Delay::Secs(delay), Location::caller())
}

/// Sleeps until `deadline` on the loop running the task that awaits it; a deadline in the past
/// completes on the next iteration but one (the timer is due at once).
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let lp = loop_core::EventLoop::new()?;
/// let at = Instant::now() + Duration::from_millis(5);
/// lp.run_until_complete(loop_timers::sleep_until(at))??;
/// assert!(Instant::now() >= at);
/// # Ok::<(), loop_core::Error>(())
/// ```
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(None, Delay::Until(deadline), Location::caller())
}
