//! [`timeout`] and [`timeout_at`]: run a future with a deadline.

use std::cell::{Cell, RefCell};
use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use loop_core::{Error, EventLoop, Result};

use crate::clock;
use crate::handle::{key_after, open_timers, schedule_key, TimerHandle};

/// When a timeout expires, as it was given.
#[derive(Clone, Copy)]
enum Deadline {
    /// A delay from the first poll.
    After(Duration),
    /// An instant.
    At(Instant),
}

/// Shared by a timeout and its timer.
#[derive(Default)]
struct Fired {
    /// The timer ran.
    fired: Cell<bool>,
    /// The waker of the task awaiting the timeout.
    waker: RefCell<Option<Waker>>,
}

/// Cancels the timer when the timeout future goes away, however it ends.
struct CancelOnDrop(TimerHandle);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Runs `fut` with a time limit of `delay` (asyncio's `wait_for` / `timeout`, tokio's
/// `timeout`): `Ok(output)` if it completes first, `Err(Error::TimedOut)` if the delay passes
/// first. The delay counts from the first poll. It uses the loop running the task that awaits
/// it.
///
/// # Errors
///
/// [`Error::TimedOut`] when the deadline passes first; [`Error::NoRunningLoop`] when awaited
/// outside a running loop; [`Error::Closed`] on a closed loop.
///
/// # Cancel safety
///
/// * When the deadline passes, the inner future is **dropped** before `Err(TimedOut)` is
///   returned: that is how it is cancelled. Whatever it had done but not returned is lost, so
///   wrap only futures that are themselves cancel safe (or that own their partial state), as
///   with any select.
/// * The deadline wins a tie: once the timer has run, the inner future is not polled again,
///   even if it could complete now (asyncio behaves the same when the timeout callback runs
///   before the task's step).
/// * Dropping the timeout future (for instance because the task awaiting it was cancelled)
///   drops the inner future and cancels the timer; nothing stays scheduled. Cancelling the
///   awaiting task is delivered to the inner future as usual: an inner loop `await` returns
///   `Err(Cancelled)`.
/// * A future that completes on its first poll never schedules a timer.
///
/// ```
/// use loop_core::Error;
/// use std::time::Duration;
///
/// let lp = loop_core::EventLoop::new()?;
/// let (fast, slow) = lp.run_until_complete(async {
///     let fast = loop_timers::timeout(Duration::from_secs(5), async { 7 }).await;
///     let slow = loop_timers::timeout(
///         Duration::from_millis(5),
///         loop_timers::sleep(Duration::from_secs(60)),
///     )
///     .await;
///     (fast, slow)
/// })?;
/// assert_eq!(fast?, 7);
/// assert!(matches!(slow, Err(Error::TimedOut)));
/// # Ok::<(), loop_core::Error>(())
/// ```
#[track_caller]
pub fn timeout<F>(delay: Duration, fut: F) -> impl Future<Output = Result<F::Output>>
where
    F: IntoFuture,
{
    run(
        Deadline::After(delay),
        fut.into_future(),
        Location::caller(),
    )
}

/// [`timeout`] with an absolute deadline; a deadline in the past still gives the future one
/// poll, and until the next iteration to complete.
///
/// # Errors
///
/// As for [`timeout`].
///
/// # Cancel safety
///
/// As for [`timeout`].
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let lp = loop_core::EventLoop::new()?;
/// let deadline = Instant::now() + Duration::from_millis(5);
/// let r = lp.run_until_complete(loop_timers::timeout_at(
///     deadline,
///     std::future::pending::<()>(),
/// ))?;
/// assert!(matches!(r, Err(loop_core::Error::TimedOut)));
/// assert!(Instant::now() >= deadline);
/// # Ok::<(), loop_core::Error>(())
/// ```
#[track_caller]
pub fn timeout_at<F>(deadline: Instant, fut: F) -> impl Future<Output = Result<F::Output>>
where
    F: IntoFuture,
{
    run(
        Deadline::At(deadline),
        fut.into_future(),
        Location::caller(),
    )
}

/// The body of [`timeout`] and [`timeout_at`].
async fn run<F: Future>(
    deadline: Deadline,
    fut: F,
    location: &'static Location<'static>,
) -> Result<F::Output> {
    let lp = EventLoop::current()?;
    let timers = open_timers(&lp)?;
    let key = match deadline {
        Deadline::After(d) => key_after(&lp, &timers, clock::duration_ns(d)),
        Deadline::At(t) => clock::key_of(t, timers.epoch),
    };
    let mut slot = pin!(Some(fut));
    let mut timer: Option<(CancelOnDrop, Rc<Fired>)> = None;
    std::future::poll_fn(move |cx| {
        if let Some((_, fired)) = &timer {
            if fired.fired.get() {
                slot.set(None);
                return Poll::Ready(Err(Error::TimedOut));
            }
        }
        let Some(inner) = slot.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Error::invalid_state(
                "the timeout was polled after it completed",
            )));
        };
        if let Poll::Ready(v) = inner.poll(cx) {
            slot.set(None);
            return Poll::Ready(Ok(v));
        }
        let fired = match &timer {
            Some((_, fired)) => fired.clone(),
            None => {
                let fired = Rc::new(Fired::default());
                let f = fired.clone();
                let h = schedule_key(&timers, key, location, move |_| {
                    f.fired.set(true);
                    let w = f.waker.borrow_mut().take();
                    if let Some(w) = w {
                        w.wake();
                    }
                });
                timer = Some((CancelOnDrop(h), fired.clone()));
                fired
            }
        };
        let mut w = fired.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    })
    .await
}
