//! Reliability under faults: signals interrupting the poll wait, and a panic in every kind of
//! user code the loop runs, each reported once while the loop goes on.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::signals::consts::{SIGUSR1, SIGUSR2};
use evloop::ExceptionContext;

/// The calling thread's pthread id, as a plain integer that can cross threads.
fn pthread_self() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions and always succeeds.
    unsafe { libc::pthread_self() }
}

#[test]
fn reliability_eintr_signal_every_millisecond_during_poll_surfaces_no_error() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let delivered = Rc::new(Cell::new(0u32));
    let d = delivered.clone();
    lp.add_signal_handler(SIGUSR1, move |_| d.set(d.get() + 1))
        .unwrap();
    let errors = Rc::new(RefCell::new(Vec::<String>::new()));
    let e = errors.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| e.borrow_mut().push(ctx.message.clone()),
    )));

    // The signal goes to the loop's own thread, so it lands while that thread blocks in
    // epoll_wait (which the kernel never restarts, whatever SA_RESTART says).
    let target = pthread_self();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u32;
        let start = Instant::now();
        while !s.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
            // SAFETY: `target` is the loop thread, alive until this thread is joined below.
            let rc = unsafe { libc::pthread_kill(target, SIGUSR1) };
            assert_eq!(rc, 0, "pthread_kill failed");
            sent += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    });

    // About a second of sleeping in many short waits, each one a poll the signals interrupt.
    let sleeper = lp.clone();
    let slept = lp
        .run_until_complete(async move {
            let mut n = 0;
            for _ in 0..100 {
                sleeper.sleep(Duration::from_millis(10)).await?;
                n += 1;
            }
            Ok::<_, evloop::Error>(n)
        })
        .expect("the loop ran through the signal storm");
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    // Deliver whatever is still in the self-pipe.
    lp.run_until_complete(lp.sleep(Duration::from_millis(20)))
        .unwrap()
        .unwrap();

    assert_eq!(slept.unwrap(), 100, "every sleep completed");
    assert!(sent > 0);
    assert!(delivered.get() > 0, "the handler ran ({sent} signals sent)");
    assert!(
        errors.borrow().is_empty(),
        "no error surfaced: {:?}",
        errors.borrow()
    );
    lp.close().unwrap();
}

#[test]
fn reliability_panic_in_every_kind_of_loop_callback_reported_once_loop_goes_on() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let reported = Rc::new(RefCell::new(Vec::<String>::new()));
    let r = reported.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| {
            let what = ctx
                .exception
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default();
            r.borrow_mut().push(what);
        },
    )));

    // A heartbeat that must keep running through every panic below.
    let beats = Rc::new(Cell::new(0u32));
    fn beat(lp: &EventLoop, beats: Rc<Cell<u32>>) {
        beats.set(beats.get() + 1);
        if beats.get() < 50 {
            lp.call_later(Duration::from_millis(1), move |lp| beat(lp, beats))
                .unwrap();
        }
    }
    let b = beats.clone();
    lp.call_soon(move |lp| beat(lp, b)).unwrap();

    // 1. A plain callback.
    lp.call_soon(|_| panic!("in call_soon")).unwrap();
    // 2. A timer callback.
    lp.call_later(Duration::from_millis(2), |_| panic!("in call_later"))
        .unwrap();
    // 3. A future's done-callback.
    let fut = lp.create_future::<u8>();
    fut.add_done_callback(|_| panic!("in done-callback"));
    fut.set_result(1).unwrap();
    // 4. A task (its panic is its result; dropping the task unawaited reports it).
    let task = lp.create_task(async { panic!("in task") }).unwrap();
    // 5. A signal handler.
    lp.add_signal_handler(SIGUSR2, |_| panic!("in signal handler"))
        .unwrap();
    // SAFETY: sending a signal to the own thread; its handler is installed just above.
    assert_eq!(unsafe { libc::pthread_kill(pthread_self(), SIGUSR2) }, 0);
    // 6. An executor job: the panic comes back as the future's error, never lost.
    let job = lp
        .run_in_executor(None, || -> u8 { panic!("in executor job") })
        .unwrap();

    let waiter = lp.clone();
    let b = beats.clone();
    let (task_result, job_result) = lp
        .run_until_complete(async move {
            let t = task.await;
            let j = job.await;
            // Every panic above has been raised by now; the heartbeat must still finish.
            while b.get() < 50 {
                waiter.sleep(Duration::from_millis(5)).await.unwrap();
            }
            (t, j)
        })
        .unwrap();
    let task_err = task_result.unwrap_err().to_string();
    assert!(
        task_err.contains("in task"),
        "the task's panic is its result: {task_err}"
    );
    let job_err = job_result.unwrap_err().to_string();
    assert!(
        job_err.contains("in executor job"),
        "the job's panic is its result: {job_err}"
    );

    // 7. A task factory that panics: create_task returns the error, the loop is unharmed.
    lp.set_task_factory(Some(Rc::new(|_: &EventLoop, _spec| {
        panic!("in task factory")
    })));
    let err = lp.create_task(async {}).unwrap_err().to_string();
    assert!(err.contains("in task factory"), "{err}");
    lp.set_task_factory(None);

    // 8. The exception handler itself: its panic goes to the default handler, and the next
    // report reaches a working handler again.
    lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, _: &ExceptionContext| {
        panic!("in exception handler")
    })));
    lp.call_soon(|_| panic!("reported to a panicking handler"))
        .unwrap();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    lp.call_soon(move |lp| {
        a.set(true);
        lp.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert!(after.get(), "the loop went on after the handler panicked");

    let reported = reported.borrow();
    for what in [
        "in call_soon",
        "in call_later",
        "in done-callback",
        "in signal handler",
    ] {
        let n = reported.iter().filter(|r| r.contains(what)).count();
        assert_eq!(
            n, 1,
            "a panic {what} is reported exactly once: {reported:?}"
        );
    }
    assert_eq!(beats.get(), 50, "the heartbeat ran through every panic");
    lp.close().unwrap();
}
