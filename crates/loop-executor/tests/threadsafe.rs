//! EXEC-10 (and CORE-51 through it): `RemoteExt::spawn`, the `Send`-future shorthand over the
//! kernel's run_coroutine_threadsafe. The thread-side future itself (timeouts, cancellation,
//! closed loops, waiting on the loop's thread) is tested in loop-core's tests/threadsafe.rs;
//! these tests check what the shorthand adds or must pass through.

mod common;

use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use common::{Watchdog, LONG};
use loop_core::{Error, EventLoop, ExceptionContext, TaskSpec};
use loop_executor::RemoteExt;

/// Sends on its channel when dropped: shows that a future was dropped (cancelled) on the loop.
struct SendOnDrop(mpsc::Sender<()>);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn exec_10_spawn_outcomes_reach_the_submitting_thread() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            // A value, made on the loop's thread.
            let (v, ran_on) = remote
                .spawn(async { (6 * 7, std::thread::current().id()) })
                .unwrap()
                .wait_timeout(LONG)
                .unwrap();
            // A panic of the task.
            let panicked = remote
                .spawn(async {
                    if true {
                        panic!("task blew up");
                    }
                    1
                })
                .unwrap()
                .wait_timeout(LONG)
                .unwrap_err();
            // A thread-side timeout: the future is dropped (cancelled) inside the loop.
            let (tx, rx) = mpsc::channel();
            let guard = SendOnDrop(tx);
            let waiting = remote
                .spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await
                })
                .unwrap();
            let timed_out = waiting.wait_timeout(Duration::from_millis(50)).unwrap_err();
            let dropped = rx.recv_timeout(LONG);
            // Awaited from another executor.
            let awaited = futures_lite::future::block_on(remote.spawn(async { 5 }).unwrap());
            (v, ran_on, panicked, timed_out, dropped, awaited)
        });
        remote.stop().unwrap();
        r
    });
    let dog = Watchdog::new(&lp);
    lp.run_forever().unwrap();
    assert!(!dog.fired(), "the loop had to be stopped by the watchdog");
    let (v, ran_on, panicked, timed_out, dropped, awaited) = t.join().unwrap().unwrap();
    assert_eq!(v, 42);
    assert_eq!(ran_on, loop_thread, "the future runs on the loop's thread");
    assert!(
        matches!(&panicked, Error::Exception(e) if e.is_panic() && e.to_string().contains("task blew up")),
        "{panicked:?}"
    );
    assert!(matches!(timed_out, Error::TimedOut), "{timed_out:?}");
    assert_eq!(dropped, Ok(()), "the task inside the loop was cancelled");
    assert_eq!(awaited.unwrap(), 5);
    lp.stop();
    lp.run_forever().unwrap();
    assert!(lp.all_tasks().is_empty());
    lp.close().unwrap();
}

#[test]
fn exec_10_spawn_from_the_loop_thread_is_awaited_there() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let fut = lp.remote().spawn(async { 2 + 2 }).unwrap();
    // Waiting would block the loop; awaiting lets the loop run the task.
    assert!(matches!(fut.wait(), Err(Error::InvalidState(_))));
    assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), 4);
    lp.close().unwrap();
}

#[test]
fn exec_10_spawn_on_a_closed_loop_gives_closed() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    lp.close().unwrap();
    assert!(matches!(remote.spawn(async { 1 }), Err(Error::Closed)));
}

#[test]
fn core_51_spawn_factory_refusal_is_reported_at_the_callers_line() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_task_factory(Some(Rc::new(|_: &EventLoop, _spec: TaskSpec| {
        Err(Error::invalid_argument("factory says no"))
    })));
    let (tx, rx) = mpsc::channel();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| {
            let _ = tx.send((ctx.message.clone(), ctx.exception.clone()));
        },
    )));
    let fut = lp.remote().spawn(async { 1 }).unwrap();
    let line = line!() - 1;
    lp.stop();
    lp.run_forever().unwrap();
    let err = fut.wait().unwrap_err();
    assert_eq!(err.to_string(), "invalid argument: factory says no");
    let reports: Vec<_> = rx.try_iter().collect();
    assert_eq!(reports.len(), 1, "reported once: {reports:?}");
    let (message, exception) = &reports[0];
    assert!(
        matches!(exception, Some(Error::InvalidArgument(_))),
        "{exception:?}"
    );
    // `spawn` passes its caller's location through.
    assert!(
        message.contains(&format!("{}:{line}", file!())),
        "{message}"
    );
    lp.set_task_factory(None);
    lp.close().unwrap();
}
