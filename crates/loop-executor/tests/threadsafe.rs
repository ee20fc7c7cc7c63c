//! EXEC-10 (and CORE-51 through it): run_coroutine_threadsafe as `RemoteExt::spawn`.

mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, one_iteration, Watchdog, LONG};
use loop_core::{Error, EventLoop, ExceptionContext, Remote, TaskSpec};
use loop_executor::{run_coroutine_threadsafe, ExecutorExt, RemoteExt, ThreadFuture};

/// Stops the loop when dropped (also when the thread's test code panics).
struct StopOnDrop(Remote);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

/// Runs the loop on this thread while `f` runs on another; returns what `f` returned.
fn with_thread<R: Send + 'static>(
    lp: &EventLoop,
    f: impl FnOnce(Remote) -> R + Send + 'static,
) -> R {
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        let _stop = StopOnDrop(remote.clone());
        f(remote)
    });
    let dog = Watchdog::new(lp);
    lp.run_forever().unwrap();
    let fired = dog.fired();
    let r = t.join().unwrap();
    assert!(!fired, "the loop had to be stopped by the watchdog");
    r
}

#[test]
fn exec_10_result_reaches_the_submitting_thread() {
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let (v, ran_on) = with_thread(&lp, |remote| {
        remote
            .spawn(async move { (6 * 7, std::thread::current().id()) })
            .wait_timeout(LONG)
            .unwrap()
    });
    assert_eq!(v, 42);
    assert_eq!(
        ran_on, loop_thread,
        "the future must run on the loop's thread"
    );
    lp.close().unwrap();
}

#[test]
fn exec_10_free_function_and_spawn_with_use_the_loop() {
    let lp = EventLoop::new().unwrap();
    let (a, b) = with_thread(&lp, |remote| {
        let a = run_coroutine_threadsafe(async { "a" }, &remote);
        let b = remote.spawn_with(|lp| {
            let job = lp.run_in_executor(None, || "b");
            async move { job?.await }
        });
        (a.wait().unwrap(), b.wait().unwrap().unwrap())
    });
    assert_eq!((a, b), ("a", "b"));
    lp.close().unwrap();
}

#[test]
fn exec_10_awaitable_from_another_executor() {
    let lp = EventLoop::new().unwrap();
    let v = with_thread(&lp, |remote| {
        let fut = remote.spawn_with(|lp| {
            let f = lp.create_future::<u32>();
            let g = f.clone();
            lp.call_soon(move |_| g.set_result(9).unwrap()).unwrap();
            f
        });
        // A foreign executor awaits it: the waker must be woken from the loop's thread.
        futures_lite::future::block_on(fut).unwrap().unwrap()
    });
    assert_eq!(v, 9);
    lp.close().unwrap();
}

#[test]
fn exec_10_panic_in_the_task_comes_back_as_error() {
    let lp = EventLoop::new().unwrap();
    let err = with_thread(&lp, |remote| {
        remote
            .spawn(async {
                if true {
                    panic!("task blew up");
                }
                1
            })
            .wait_timeout(LONG)
            .unwrap_err()
    });
    match &err {
        Error::Exception(e) => assert!(e.is_panic()),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(err.to_string().contains("task blew up"));
    // A panic while building the future is an error too.
    let err = with_thread(&lp, |remote| {
        remote
            .spawn_with(|_| -> std::future::Ready<u8> { panic!("build failed") })
            .wait_timeout(LONG)
            .unwrap_err()
    });
    assert!(err.to_string().contains("build failed"), "{err}");
    lp.close().unwrap();
}

#[test]
fn exec_10_thread_side_timeout_cancels_the_task_in_the_loop() {
    let lp = EventLoop::new().unwrap();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let s = saw_cancel.clone();
    let (err, seen) = with_thread(&lp, move |remote| {
        let s2 = s.clone();
        let fut = remote.spawn_with(move |lp| {
            // Never completed by anyone: only a cancellation ends the wait.
            let never = lp.create_future::<()>();
            async move {
                let r = never.await;
                if matches!(r, Err(Error::Cancelled(_))) {
                    s2.store(true, Ordering::SeqCst);
                }
                r
            }
        });
        let err = fut.wait_timeout(Duration::from_millis(50)).unwrap_err();
        (err, eventually(|| s.load(Ordering::SeqCst)))
    });
    assert!(matches!(err, Error::TimedOut), "{err:?}");
    assert!(seen, "the task inside the loop was not cancelled");
    assert!(saw_cancel.load(Ordering::SeqCst));
    assert!(lp.all_tasks().is_empty());
    lp.close().unwrap();
}

#[test]
fn exec_10_task_cancelled_inside_the_loop_gives_cancelled() {
    let lp = EventLoop::new().unwrap();
    let err = with_thread(&lp, |remote| {
        remote
            .spawn(async {
                loop_core::current_task()
                    .unwrap()
                    .unwrap()
                    .cancel(Some("inside".into()));
                loop_core::yield_now().await;
                1
            })
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
    let lp = EventLoop::new().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let fut = lp
        .remote()
        .spawn(async move { r.store(true, Ordering::SeqCst) });
    assert!(fut.cancel());
    assert!(fut.done());
    one_iteration(&lp);
    one_iteration(&lp);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(lp.all_tasks().is_empty());
    assert!(fut.wait().unwrap_err().is_cancelled());
    lp.close().unwrap();
}

#[test]
fn exec_10_closed_loop_gives_closed() {
    // Closed before the submission.
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    lp.close().unwrap();
    let fut = remote.spawn(async { 1 });
    assert!(fut.done());
    assert!(matches!(fut.wait(), Err(Error::Closed)));

    // Closed while the task waits.
    let lp = EventLoop::new().unwrap();
    lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, _: &ExceptionContext| {})));
    let fut = lp.remote().spawn_with(|lp| lp.create_future::<()>());
    one_iteration(&lp);
    assert!(!fut.done());
    lp.close().unwrap();
    let t = std::thread::spawn(move || fut.wait_timeout(LONG));
    assert!(matches!(t.join().unwrap(), Err(Error::Closed)));
}

#[test]
fn exec_10_task_factory_refusal_reaches_thread_and_handler_once() {
    let lp = EventLoop::new().unwrap();
    lp.set_task_factory(Some(Rc::new(|_: &EventLoop, _spec: TaskSpec| {
        Err(Error::invalid_argument("factory says no"))
    })));
    let reports = Rc::new(AtomicUsize::new(0));
    let r = reports.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| {
            assert!(ctx
                .exception
                .as_ref()
                .unwrap()
                .to_string()
                .contains("factory says no"));
            r.fetch_add(1, Ordering::SeqCst);
        },
    )));
    let fut = lp.remote().spawn(async { 1 });
    one_iteration(&lp);
    one_iteration(&lp);
    let err = fut.wait().unwrap_err();
    assert_eq!(err.to_string(), "invalid argument: factory says no");
    assert_eq!(reports.load(Ordering::SeqCst), 1);
    lp.set_task_factory(None);
    lp.close().unwrap();
}

#[test]
fn exec_10_waiting_on_the_loop_thread_is_refused() {
    let lp = EventLoop::new().unwrap();
    let fut = lp.remote().spawn(async { 1 });
    let err = fut.wait_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    lp.close().unwrap();
}

#[test]
fn exec_10_thread_future_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<ThreadFuture<u8>>();
    assert_send::<ThreadFuture<String>>();
}
