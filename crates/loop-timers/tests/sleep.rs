//! `sleep` and `timeout`: TIMER-18, CORE-48.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{virtual_loop, DropFlag};
use futures_lite::future;
use loop_core::{Error, EventLoop};
use loop_timers::{sleep, sleep_secs, sleep_until, timeout, timeout_at, TimersExt};

/// A live timer at the head of the heap (30 s out, never reached by these tests), so that
/// cancelled timers behind it (60 s and more) stay in the heap to be counted.
fn anchor(lp: &EventLoop) {
    lp.call_later(Duration::from_secs(30), |_| {}).unwrap();
}

// ---------------------------------------------------------------------------------------------
// TIMER-18: sleep is a future completed by call_later; cancelling the sleeping task cancels
// the timer.

#[test]
fn timer_18_sleep_is_completed_by_a_timer() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let during = Rc::new(Cell::new(None));
    let d = during.clone();
    lp.call_later(Duration::from_millis(10), move |lp| {
        d.set(Some(lp.timer_stats().scheduled))
    })
    .unwrap();
    let start = lp.now();
    lp.run_until_complete(sleep(Duration::from_millis(150)))
        .unwrap()
        .unwrap();
    assert_eq!(lp.now() - start, Duration::from_millis(150));
    // While sleeping, the sleep's timer (and nothing else) was in the timer queue.
    assert_eq!(during.get(), Some(1));
    assert_eq!(lp.timer_stats().scheduled, 0);
}

#[test]
fn timer_18_sleep_timer_is_located_where_sleep_was_called() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let mut s = lp.sleep(Duration::from_secs(5));
    let line = line!() - 1;
    assert!(future::block_on(future::poll_once(&mut s)).is_none());
    let timer = s.timer().expect("started").clone();
    assert_eq!(timer.handle().location().line(), line);
    assert_eq!(timer.handle().location().file(), file!());
    assert!(!timer.cancelled());
    drop(s);
    assert!(timer.cancelled(), "dropping the sleep cancels its timer");
}

#[test]
fn timer_18_cancelling_the_sleeping_task_cancels_the_timer() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    anchor(&lp);
    let task = lp
        .create_task(async { sleep(Duration::from_secs(60)).await })
        .unwrap();
    let t = task.task_ref();
    lp.call_later(Duration::from_millis(10), move |_| {
        assert!(t.cancel_with("enough"));
    })
    .unwrap();
    let start = lp.now();
    match lp.run_until_complete(task) {
        Err(Error::Cancelled(c)) => assert_eq!(c.message(), Some("enough")),
        other => panic!("expected a cancellation, got {other:?}"),
    }
    assert_eq!(lp.now() - start, Duration::from_millis(10));
    let st = lp.timer_stats();
    // The anchor, and the sleep's timer: cancelled, lazily deleted.
    assert_eq!((st.scheduled, st.cancelled), (2, 1), "{st:?}");
}

#[test]
fn timer_18_a_task_may_catch_the_cancellation_of_its_sleep() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    anchor(&lp);
    let task = lp
        .create_task(async {
            match sleep(Duration::from_secs(60)).await {
                Err(e) if e.is_cancelled() => {
                    sleep(Duration::from_millis(2)).await?;
                    Ok("caught")
                }
                other => other.map(|()| "slept"),
            }
        })
        .unwrap();
    let t = task.task_ref();
    lp.call_later(Duration::from_millis(10), move |_| {
        t.cancel();
    })
    .unwrap();
    let r = lp.run_until_complete(task).unwrap().unwrap();
    assert_eq!(r.unwrap(), "caught");
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled), (2, 1), "{st:?}");
}

#[test]
fn timer_18_a_dropped_sleep_cancels_its_timer() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    anchor(&lp);
    let winner = lp
        .run_until_complete(future::or(
            async {
                sleep(Duration::from_secs(60)).await.unwrap();
                "slow"
            },
            async {
                sleep(Duration::from_millis(5)).await.unwrap();
                "fast"
            },
        ))
        .unwrap();
    assert_eq!(winner, "fast");
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled), (2, 1), "{st:?}");
}

#[test]
fn timer_18_sleep_errors_are_returned_not_panics() {
    let _w = loop_testkit::watchdog();
    // No running loop.
    let r = future::block_on(sleep(Duration::from_millis(1)));
    assert!(matches!(r, Err(Error::NoRunningLoop)), "{r:?}");
    // A closed loop.
    let closed = EventLoop::new().unwrap();
    let s = closed.sleep(Duration::from_millis(1));
    closed.close().unwrap();
    let lp = EventLoop::new().unwrap();
    let r = lp.run_until_complete(s).unwrap();
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    // Polled again after completion.
    let mut s = lp.sleep(Duration::ZERO);
    let r = lp
        .run_until_complete(async move {
            (&mut s).await.unwrap();
            (&mut s).await
        })
        .unwrap();
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
}

#[test]
fn timer_18_sleep_until_an_instant() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let at = lp.now() + Duration::from_millis(20);
    lp.run_until_complete(sleep_until(at)).unwrap().unwrap();
    assert_eq!(lp.now(), at);
    // In the past: done soon, without waiting.
    let before = lp.stats().iterations;
    lp.run_until_complete(sleep_until(lp.now() - Duration::from_secs(1)))
        .unwrap()
        .unwrap();
    assert!(lp.stats().iterations - before <= 4);
    assert_eq!(lp.now(), at, "no time passed");
}

// ---------------------------------------------------------------------------------------------
// CORE-48: sleep(0) yields exactly one iteration; sleep(NaN) is a value error.

#[test]
fn core_48_sleep_zero_yields_one_iteration() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        for variant in 0..4 {
            let ran = Rc::new(Cell::new(false));
            let r = ran.clone();
            lp2.call_soon(move |_| r.set(true))?;
            let before = lp2.stats().iterations;
            match variant {
                0 => sleep(Duration::ZERO).await?,
                1 => sleep_secs(0.0).await?,
                2 => sleep_secs(-3.0).await?,
                _ => lp2.sleep(Duration::ZERO).await?,
            }
            assert!(ran.get(), "variant {variant}: the callback ran first");
            assert_eq!(lp2.stats().iterations, before + 1, "variant {variant}");
        }
        Ok::<(), Error>(())
    })
    .unwrap()
    .unwrap();
    // A zero sleep needs no timer.
    assert_eq!(lp.timer_stats().scheduled, 0);
}

#[test]
fn core_48_sleep_nan_is_an_invalid_argument() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let errs = lp
        .run_until_complete(async move {
            let before = lp2.stats().iterations;
            let mut errs = Vec::new();
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                errs.push(sleep_secs(bad).await.unwrap_err());
                errs.push(lp2.sleep_secs(bad).await.unwrap_err());
            }
            // Rejected at once, without suspending.
            assert_eq!(lp2.stats().iterations, before);
            errs
        })
        .unwrap();
    assert_eq!(errs.len(), 6);
    for e in errs {
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("delay")),
            "{e}"
        );
    }
    assert_eq!(lp.timer_stats().scheduled, 0);
}

#[test]
fn core_48_cancel_during_sleep_zero_is_delivered_at_the_await() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let task = lp
        .create_task(async move {
            let me = loop_core::current_task().unwrap().unwrap();
            // Runs in the next iteration, before this task resumes.
            lp2.call_soon(move |_| {
                me.cancel_with("stop sleeping");
            })
            .unwrap();
            match sleep(Duration::ZERO).await {
                Err(Error::Cancelled(c)) => format!("caught {}", c.message().unwrap_or("")),
                other => format!("not cancelled: {other:?}"),
            }
        })
        .unwrap();
    let r = lp.run_until_complete(task).unwrap().unwrap();
    assert_eq!(r, "caught stop sleeping");
}

// ---------------------------------------------------------------------------------------------
// timeout / timeout_at (asyncio's wait_for / timeout; no SPEC id of their own).

#[test]
fn timeout_returns_the_output_when_the_future_wins() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    anchor(&lp);
    let r = lp
        .run_until_complete(timeout(Duration::from_secs(60), async { 7 }))
        .unwrap();
    assert_eq!(r.unwrap(), 7);
    // Ready at the first poll: no timer was ever scheduled.
    assert_eq!(lp.timer_stats().scheduled, 1);
    let r = lp
        .run_until_complete(timeout(Duration::from_secs(60), async {
            sleep(Duration::from_millis(5)).await.map(|()| "slept")
        }))
        .unwrap();
    assert_eq!(r.unwrap().unwrap(), "slept");
    // Its timer was cancelled when the future won.
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled), (2, 1), "{st:?}");
}

#[test]
fn timeout_expiry_drops_the_inner_future_and_returns_timed_out() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let d2 = dropped.clone();
    let start = lp.now();
    let r = lp
        .run_until_complete(async move {
            let r = timeout(Duration::from_millis(20), async move {
                let _guard = DropFlag(d);
                std::future::pending::<()>().await
            })
            .await;
            assert!(d2.get(), "dropped before the timeout returned");
            r
        })
        .unwrap();
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    assert!(dropped.get());
    assert_eq!(lp.now() - start, Duration::from_millis(20));
    assert_eq!(lp.timer_stats().scheduled, 0);
}

#[test]
fn timeout_at_a_past_deadline_still_polls_once() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let past = Instant::now() - Duration::from_secs(1);
    let r = lp
        .run_until_complete(timeout_at(past, async { "ready" }))
        .unwrap();
    assert_eq!(r.unwrap(), "ready");
    let r = lp
        .run_until_complete(timeout_at(past, sleep(Duration::from_millis(50))))
        .unwrap();
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
}

#[test]
fn timeout_cancelling_the_task_reaches_the_inner_future_and_cancels_both_timers() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    anchor(&lp);
    let task = lp
        .create_task(async {
            let inner = timeout(Duration::from_secs(300), sleep(Duration::from_secs(200))).await?;
            inner // Err(Cancelled) from the inner sleep
        })
        .unwrap();
    let t = task.task_ref();
    lp.call_later(Duration::from_millis(10), move |_| {
        t.cancel();
    })
    .unwrap();
    let r = lp.run_until_complete(task);
    assert!(matches!(r, Err(Error::Cancelled(_))), "{r:?}");
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled), (3, 2), "{st:?}");
}

#[test]
fn timeout_dropped_before_expiry_cancels_its_timer() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    anchor(&lp);
    let r = lp
        .run_until_complete(future::or(
            async {
                timeout(Duration::from_secs(60), std::future::pending::<()>())
                    .await
                    .map(|()| "timeout")
            },
            async { sleep(Duration::from_millis(5)).await.map(|()| "sleep") },
        ))
        .unwrap();
    assert_eq!(r.unwrap(), "sleep");
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled), (2, 1), "{st:?}");
}

#[test]
fn timeout_outside_a_running_loop_is_an_error() {
    let _w = loop_testkit::watchdog();
    let r = future::block_on(timeout(Duration::from_millis(1), async { 1 }));
    assert!(matches!(r, Err(Error::NoRunningLoop)), "{r:?}");
}
