//! run_coroutine_threadsafe and its thread-side `ConcurrentFuture`: EXEC-10, CORE-51.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use loop_core::{Error, EventLoop, Remote};

/// Generous bound for anything that should happen "soon" on a loaded machine.
const LONG: Duration = Duration::from_secs(30);

/// Stops the loop when dropped (also when the thread's test code panics).
struct StopOnDrop(Remote);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

/// Runs the loop on this thread while `f` runs on another with the loop's `Remote`; the loop
/// stops when `f` returns. Returns what `f` returned.
fn with_thread<R: Send + 'static>(
    lp: &EventLoop,
    f: impl FnOnce(Remote) -> R + Send + 'static,
) -> R {
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        let _stop = StopOnDrop(remote.clone());
        f(remote)
    });
    let dog = watchdog_for(lp);
    lp.run_forever().unwrap();
    let r = t.join().unwrap();
    drop(dog);
    r
}

#[test]
fn exec_10_result_reaches_the_submitting_thread() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let (v, ran_on, again) = with_thread(&lp, |remote| {
        let f = remote
            .run_coroutine_threadsafe(|_| async { (6 * 7, std::thread::current().id()) })
            .unwrap();
        let (v, ran_on) = f.wait_timeout(LONG).unwrap();
        assert!(f.done() && !f.cancelled());
        (v, ran_on, f.wait())
    });
    assert_eq!(v, 42);
    assert_eq!(ran_on, loop_thread, "the future runs on the loop's thread");
    assert!(
        matches!(again, Err(Error::InvalidState(_))),
        "the outcome is taken once: {again:?}"
    );
    lp.close().unwrap();
}

#[test]
fn exec_10_made_on_the_loop_and_awaitable_from_another_executor() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let v = with_thread(&lp, |remote| {
        let fut = remote
            .run_coroutine_threadsafe(|lp| {
                // Loop objects are not `Send`: made here, on the loop's thread.
                let f = lp.create_future::<u32>();
                let g = f.clone();
                lp.call_soon(move |_| g.set_result(9).unwrap()).unwrap();
                f
            })
            .unwrap();
        // A foreign executor awaits it: its waker is woken from the loop's thread.
        futures_lite::future::block_on(fut).unwrap().unwrap()
    });
    assert_eq!(v, 9);
    lp.close().unwrap();
}

#[test]
fn exec_10_core_51_panics_come_back_as_errors() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let (body, make) = with_thread(&lp, |remote| {
        let body = remote
            .run_coroutine_threadsafe(|_| async { panic!("body panicked") })
            .unwrap()
            .wait_timeout(LONG);
        let make = remote
            .run_coroutine_threadsafe(|_| -> std::future::Ready<()> { panic!("make panicked") })
            .unwrap()
            .wait_timeout(LONG);
        (body, make)
    });
    assert!(
        matches!(&body, Err(Error::Exception(e)) if e.is_panic() && e.to_string() == "panic: body panicked"),
        "{body:?}"
    );
    // A panic of the closure that makes the future: set on the future, reported once.
    assert!(
        matches!(&make, Err(Error::Exception(e)) if e.to_string() == "panic: make panicked"),
        "{make:?}"
    );
    let msgs = messages(&seen);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].starts_with("Exception in callback"), "{msgs:?}");
    lp.close().unwrap();
}

/// Makes, on the loop, a task that waits for a future nobody completes and reports on `tx`
/// whether its wait ended cancelled.
fn wait_forever(
    remote: &Remote,
    tx: mpsc::Sender<bool>,
) -> loop_core::ConcurrentFuture<loop_core::Result<()>> {
    remote
        .run_coroutine_threadsafe(move |lp| {
            let never = lp.create_future::<()>();
            async move {
                let r = never.await;
                let _ = tx.send(matches!(r, Err(Error::Cancelled(_))));
                r
            }
        })
        .unwrap()
}

#[test]
fn exec_10_thread_side_timeout_cancels_the_task_in_the_loop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (err, cancelled, seen, later) = with_thread(&lp, |remote| {
        let (tx, rx) = mpsc::channel();
        let fut = wait_forever(&remote, tx);
        let err = fut.wait_timeout(Duration::from_millis(50)).unwrap_err();
        let cancelled = fut.cancelled();
        let seen = rx.recv_timeout(LONG);
        (err, cancelled, seen, fut.wait())
    });
    assert!(matches!(err, Error::TimedOut), "{err:?}");
    assert!(cancelled, "the thread side is cancelled at once");
    assert_eq!(seen, Ok(true), "the task inside the loop was cancelled");
    assert!(later.unwrap_err().is_cancelled());
    run_once(&lp);
    assert!(lp.all_tasks().is_empty(), "the cancelled task ended");
    lp.close().unwrap();
}

#[test]
fn exec_10_cancel_from_the_thread_cancels_the_task_in_the_loop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (first, second, seen, r) = with_thread(&lp, |remote| {
        let (tx, rx) = mpsc::channel();
        let fut = wait_forever(&remote, tx);
        // The loop has started the task once a second submission (queued after it) is done.
        remote
            .run_coroutine_threadsafe(|_| async {})
            .unwrap()
            .wait_timeout(LONG)
            .unwrap();
        let first = fut.cancel();
        assert!(fut.cancelled());
        let second = fut.cancel();
        let seen = rx.recv_timeout(LONG);
        (first, second, seen, fut.wait())
    });
    assert!(first, "the first cancel wins");
    assert!(!second, "a done future cannot be cancelled again");
    assert_eq!(seen, Ok(true), "the task inside the loop was cancelled");
    assert!(r.unwrap_err().is_cancelled());
    run_once(&lp);
    assert!(lp.all_tasks().is_empty());
    lp.close().unwrap();
}

#[test]
fn exec_10_task_cancelled_inside_the_loop_gives_cancelled() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let err = with_thread(&lp, |remote| {
        remote
            .run_coroutine_threadsafe(|_| async {
                loop_core::current_task()
                    .unwrap()
                    .unwrap()
                    .cancel_with("inside");
                loop_core::yield_now().await;
                1
            })
            .unwrap()
            .wait_timeout(LONG)
            .unwrap_err()
    });
    assert_eq!(
        err.as_cancelled().map(|c| c.message()),
        Some(Some("inside"))
    );
    lp.close().unwrap();
}

#[test]
fn exec_10_cancel_before_the_loop_starts_it_never_runs() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let made = Arc::new(AtomicBool::new(false));
    let m = made.clone();
    let fut = lp
        .remote()
        .run_coroutine_threadsafe(move |_| {
            m.store(true, Ordering::SeqCst);
            std::future::ready(())
        })
        .unwrap();
    assert!(fut.cancel());
    assert!(fut.done());
    run_once(&lp);
    run_once(&lp);
    assert!(!made.load(Ordering::SeqCst), "the future is never made");
    assert!(lp.all_tasks().is_empty());
    assert!(fut.wait().unwrap_err().is_cancelled());
    lp.close().unwrap();
}

#[test]
fn exec_10_closed_loop_gives_closed() {
    let _w = loop_testkit::watchdog();
    // Closed before the submission: refused at once.
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    lp.close().unwrap();
    assert!(matches!(
        remote.run_coroutine_threadsafe(|_| async {}),
        Err(Error::Closed)
    ));

    // Closed while the task waits, and closed before the loop started the task.
    let lp = EventLoop::new().unwrap();
    let _quiet = record_exceptions(&lp);
    let remote = lp.remote();
    let waiting = remote
        .run_coroutine_threadsafe(|_| std::future::pending::<()>())
        .unwrap();
    run_once(&lp);
    assert!(!waiting.done());
    let unstarted = remote.run_coroutine_threadsafe(|_| async {}).unwrap();
    lp.close().unwrap();
    assert!(waiting.done() && unstarted.done());
    let t = std::thread::spawn(move || (waiting.wait_timeout(LONG), unstarted.wait()));
    let (a, b) = t.join().unwrap();
    assert!(matches!(a, Err(Error::Closed)), "{a:?}");
    assert!(matches!(b, Err(Error::Closed)), "{b:?}");
}

#[test]
fn exec_10_waiting_on_the_loop_thread_is_refused_awaiting_works() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let fut = lp
        .remote()
        .run_coroutine_threadsafe(|_| async { 1 })
        .unwrap();
    let err = fut.wait_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    assert!(matches!(fut.wait(), Err(Error::InvalidState(_))));
    assert!(!fut.cancelled(), "a refused wait does not cancel");
    // On the loop's thread the future is awaited instead.
    assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), 1);
    lp.close().unwrap();
}
