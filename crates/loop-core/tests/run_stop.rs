//! Running and stopping: CORE-01 .. CORE-12.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::Cell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use common::*;
use loop_core::internal::LoopInternals;
use loop_core::internal::{IoHandler, Registered, Source};
use loop_core::{
    fatal, get_running_loop, yield_now, Error, EventLoop, Fatal, Mode, Readiness, POLL_EVERY,
};

#[test]
fn core_01_run_on_closed_loop_fails() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let err = lp.run_forever().unwrap_err();
    assert!(matches!(err, Error::Closed));
    assert_eq!(err.to_string(), "Event loop is closed");

    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    let (dropped, flag) = drop_flag();
    let err = lp
        .run_until_complete(async move {
            let _flag = flag;
            p.set(true);
        })
        .unwrap_err();
    assert!(matches!(err, Error::Closed));
    assert!(!polled.get(), "the future must not run on a closed loop");
    assert!(dropped.get(), "the rejected future is dropped, not leaked");
}

#[test]
fn core_02_nested_run_fails_and_running_loop_is_unaffected() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let results = log();
    let r = results.clone();
    lp.call_soon(move |lp| {
        let e = lp.run_forever().unwrap_err();
        assert!(matches!(e, Error::AlreadyRunning));
        push(&r, e.to_string());
        let e = lp.run_until_complete(async {}).unwrap_err();
        assert!(matches!(e, Error::AlreadyRunning));
        assert!(lp.is_running());
        push(&r, "still running");
    })
    .unwrap();
    // From inside a task too.
    let r = results.clone();
    let inner = lp.clone();
    let t = lp
        .create_task(async move {
            let e = inner.run_until_complete(async { 1 }).unwrap_err();
            push(&r, format!("task: {e}"));
            yield_now().await;
            5
        })
        .unwrap();
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 5);
    errs.assert_none();
    assert_eq!(
        entries(&results),
        [
            "This event loop is already running",
            "still running",
            "task: This event loop is already running"
        ]
    );
    assert!(!lp.is_running());
    // The loop runs normally afterwards.
    assert_eq!(lp.run_until_complete(async { 9 }).unwrap(), 9);
}

#[test]
fn core_03_another_loop_running_on_this_thread_fails() {
    let _w = loop_testkit::watchdog();
    let a = EventLoop::new().unwrap();
    let b = EventLoop::new().unwrap();
    let errs = record_exceptions(&a);
    let seen = log();
    let s = seen.clone();
    let b2 = b.clone();
    a.call_soon(move |a| {
        // First, so that a failed assertion below cannot leave the loop running.
        a.stop();
        let e = b2.run_forever().unwrap_err();
        assert!(matches!(e, Error::AnotherLoopRunning));
        push(&s, e.to_string());
        let e = b2.run_until_complete(async {}).unwrap_err();
        assert!(matches!(e, Error::AnotherLoopRunning));
        assert!(!b2.is_running());
        assert!(get_running_loop().unwrap().ptr_eq(a));
    })
    .unwrap();
    a.run_forever().unwrap();
    errs.assert_none();
    assert_eq!(
        entries(&seen),
        ["Cannot run the event loop while another loop is running"]
    );
    // Once A has returned, B runs.
    assert_eq!(b.run_until_complete(async { 3 }).unwrap(), 3);

    // Loops on two threads run at the same time without interfering.
    let other = std::thread::spawn(|| {
        let lp = EventLoop::new().unwrap();
        lp.run_until_complete(async {
            for _ in 0..100 {
                yield_now().await;
            }
            7
        })
        .unwrap()
    });
    let here = a
        .run_until_complete(async {
            for _ in 0..100 {
                yield_now().await;
            }
            8
        })
        .unwrap();
    assert_eq!((here, other.join().unwrap()), (8, 7));
}

#[test]
fn core_04_running_state_and_running_loop_lookup() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    assert!(!lp.is_running());
    let e = get_running_loop().unwrap_err();
    assert!(matches!(e, Error::NoRunningLoop));
    assert_eq!(e.to_string(), "no running event loop");

    let checked = Rc::new(Cell::new(0));
    let c = checked.clone();
    let errs = record_exceptions(&lp);
    lp.call_soon(move |lp| {
        lp.stop();
        assert!(lp.is_running());
        assert!(get_running_loop().unwrap().ptr_eq(lp));
        assert!(EventLoop::current().unwrap().ptr_eq(lp));
        c.set(c.get() + 1);
    })
    .unwrap();
    lp.run_forever().unwrap();
    errs.assert_none();
    assert_eq!(checked.get(), 1);
    assert!(!lp.is_running());
    assert!(get_running_loop().is_err());

    // Reset also when run_forever is left by an unwinding Fatal.
    lp.call_soon(|_| fatal("out")).unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
    assert_eq!(p.downcast_ref::<Fatal>().unwrap().0, "out");
    assert!(!lp.is_running());
    assert!(get_running_loop().is_err());

    // And when run_until_complete returns an error.
    let r = lp.run_until_complete(async { panic!("task failure") });
    assert!(matches!(r, Err(Error::Exception(_))));
    assert!(!lp.is_running());
    assert!(get_running_loop().is_err());
}

#[test]
fn core_05_pre_stopped_run_forever_runs_one_polling_iteration() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    let events = log();

    // A readable fd: the single iteration must poll, and so see it.
    let (rsock, mut wsock) = UnixStream::pair().unwrap();
    wsock.write_all(b"x").unwrap();
    let e = events.clone();
    lp.add_reader(&rsock, move |_| push(&e, "io")).unwrap();
    let e = events.clone();
    lp.call_soon(move |lp| {
        push(&e, "a");
        let e = e.clone();
        lp.call_soon(move |_| push(&e, "c")).unwrap();
    })
    .unwrap();

    let before = lp.stats();
    lp.stop();
    lp.run_forever().unwrap();
    let after = lp.stats();
    assert_eq!(after.iterations - before.iterations, 1);
    assert_eq!(
        after.polls - before.polls,
        1,
        "the one iteration polls (timeout 0)"
    );
    assert_eq!(entries(&events), ["a", "io"]);

    // The stop request was cleared: the next run_forever runs until its own stop().
    lp.remove_reader(&rsock).unwrap();
    let n = Rc::new(Cell::new(0));
    fn again(lp: &EventLoop, n: Rc<Cell<u32>>) {
        n.set(n.get() + 1);
        if n.get() == 5 {
            lp.stop();
        } else {
            lp.call_soon(move |lp| again(lp, n)).unwrap();
        }
    }
    let n2 = n.clone();
    lp.call_soon(move |lp| again(lp, n2)).unwrap();
    let before = lp.stats();
    lp.run_forever().unwrap();
    assert_eq!(n.get(), 5);
    assert!(lp.stats().iterations - before.iterations >= 5);
    assert_eq!(entries(&events), ["a", "io", "c"]);

    // A pre-stopped loop with nothing ready does not block.
    let t = Instant::now();
    run_once(&lp);
    assert!(t.elapsed().as_secs() < 10);
    drop(wd);
}

#[test]
fn core_06_stop_in_callback_finishes_the_current_snapshot() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let events = log();
    let e = events.clone();
    lp.call_soon(move |lp| {
        push(&e, "a");
        lp.stop();
        let e = e.clone();
        lp.call_soon(move |_| push(&e, "c")).unwrap();
    })
    .unwrap();
    let e = events.clone();
    lp.call_soon(move |_| push(&e, "b")).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(entries(&events), ["a", "b"]);
    run_once(&lp);
    assert_eq!(entries(&events), ["a", "b", "c"]);
}

/// A source standing in for timers: when armed, it queues one handle per dispatch.
struct Armed {
    armed: Cell<bool>,
    events: Log,
}

impl Source for Armed {
    fn next_deadline(&self, lp: &EventLoop) -> Option<Instant> {
        self.armed.get().then(|| lp.now())
    }
    fn dispatch(&self, lp: &EventLoop, _now: Instant) {
        if self.armed.replace(false) {
            let e = self.events.clone();
            lp.schedule(&loop_core::Handle::new(move |_| push(&e, "timer")))
                .unwrap();
        }
    }
    fn close(&self, _lp: &EventLoop) {}
}

#[test]
fn core_07_iteration_order_ready_then_io_then_timers() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let events = log();
    let source = Rc::new(Armed {
        armed: Cell::new(false),
        events: events.clone(),
    });
    lp.add_source(source.clone());
    let (rsock, mut wsock) = UnixStream::pair().unwrap();
    let e = events.clone();
    lp.add_reader(&rsock, move |_| push(&e, "io")).unwrap();

    // One polling iteration: what was ready first, then I/O, then due timers; what they
    // schedule waits for the next iteration.
    let e = events.clone();
    lp.call_soon(move |lp| {
        push(&e, "ready");
        let e = e.clone();
        lp.call_soon(move |_| push(&e, "next")).unwrap();
    })
    .unwrap();
    wsock.write_all(b"x").unwrap();
    source.armed.set(true);
    run_once(&lp);
    assert_eq!(entries(&events), ["ready", "io", "timer"]);
    lp.remove_reader(&rsock).unwrap();
    run_once(&lp);
    assert_eq!(entries(&events), ["ready", "io", "timer", "next"]);

    // A handle cancelled by an earlier callback of the same iteration is skipped.
    let e = events.clone();
    let victim = Rc::new(Cell::new(None::<loop_core::Handle>));
    let v = victim.clone();
    lp.call_soon(move |_| {
        if let Some(h) = v.take() {
            h.cancel();
        }
    })
    .unwrap();
    let h = lp
        .call_soon(move |_| push(&e, "cancelled one ran"))
        .unwrap();
    victim.set(Some(h));
    run_once(&lp);
    assert_eq!(entries(&events).len(), 4);
}

/// An I/O handler that logs its name, schedules a callback logging "<name> next", and raises a
/// [`Fatal`] once when told to.
struct Logs {
    name: &'static str,
    events: Log,
    fatal: Cell<bool>,
}

impl IoHandler for Logs {
    fn ready(&self, lp: &EventLoop, _: Readiness) {
        push(&self.events, self.name);
        let (e, name) = (self.events.clone(), self.name);
        lp.call_soon(move |_| push(&e, format!("{name} next")))
            .unwrap();
        if self.fatal.replace(false) {
            fatal("stop here");
        }
    }
}

/// Two edge-triggered registrations whose handlers log to `events`; both made readable.
fn two_ready_handlers(
    lp: &EventLoop,
    events: &Log,
    fatal_first: bool,
) -> Vec<(Registered<UnixStream>, UnixStream)> {
    ["a", "b"]
        .into_iter()
        .map(|name| {
            let (r, mut w) = UnixStream::pair().unwrap();
            let h = Rc::new(Logs {
                name,
                events: events.clone(),
                fatal: Cell::new(fatal_first && name == "a"),
            });
            let reg = Registered::new(lp, r, Mode::Edge, true, false, name, h).unwrap();
            w.write_all(b"x").unwrap();
            (reg, w)
        })
        .collect()
}

#[test]
fn core_07_io_polled_with_nothing_ready_runs_before_timers_and_what_it_schedules_waits() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let events = log();
    let source = Rc::new(Armed {
        armed: Cell::new(true),
        events: events.clone(),
    });
    lp.add_source(source.clone());
    let _regs = two_ready_handlers(&lp, &events, false);
    // Nothing is ready before the poll: the handlers run in the order the poll returned
    // them, then the due timer; what the handlers scheduled waits for the next iteration.
    run_once(&lp);
    let mut first = entries(&events);
    assert_eq!(first.pop().as_deref(), Some("timer"));
    first.sort();
    assert_eq!(first, ["a", "b"]);
    run_once(&lp);
    let all = entries(&events);
    let order: Vec<String> = all[..2].iter().map(|n| format!("{n} next")).collect();
    assert_eq!(all[3..], order[..]);
    let s = lp.stats();
    assert_eq!((s.io_events, s.ready_high_water), (2, 3));
}

#[test]
fn core_07_io_handlers_polled_without_sources_count_and_what_they_schedule_waits() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let events = log();
    let _regs = two_ready_handlers(&lp, &events, false);
    // No source and nothing ready: the iteration runs the two handlers straight from the
    // poll and nothing else; they count towards the ready high-water mark.
    run_once(&lp);
    let mut first = entries(&events);
    first.sort();
    assert_eq!(first, ["a", "b"]);
    let s = lp.stats();
    assert_eq!((s.io_events, s.ready_high_water), (2, 2));
    // What they scheduled runs in the next iteration, in order.
    run_once(&lp);
    let all = entries(&events);
    let order: Vec<String> = all[..2].iter().map(|n| format!("{n} next")).collect();
    assert_eq!(all[2..], order[..]);
}

#[test]
fn core_07_fatal_in_an_io_handler_keeps_the_other_events_of_its_poll() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let events = log();
    let _regs = two_ready_handlers(&lp, &events, true);
    lp.stop();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
    assert!(payload.is::<Fatal>());
    // Whichever handler ran first raised; the other's edge-triggered event was not lost: it
    // runs first in the next iteration, and what it schedules in the one after.
    run_once(&lp);
    run_once(&lp);
    let mut seen = entries(&events);
    seen.sort();
    assert_eq!(seen, ["a", "a next", "b", "b next"]);
}

#[test]
fn core_07_busy_loop_observes_io_within_poll_every_iterations() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    let (rsock, wsock) = UnixStream::pair().unwrap();
    let seen_at = Rc::new(Cell::new(None::<u64>));
    let s = seen_at.clone();
    lp.add_reader(&rsock, move |lp| {
        if s.get().is_none() {
            s.set(Some(lp.stats().iterations));
        }
    })
    .unwrap();
    // Keep the loop busy: a chain of call_soon, each scheduling the next.
    let written_at = Rc::new(Cell::new(None::<u64>));
    let w = written_at.clone();
    let seen = seen_at.clone();
    fn chain(
        lp: &EventLoop,
        n: u32,
        w: Rc<Cell<Option<u64>>>,
        seen: Rc<Cell<Option<u64>>>,
        sock: Rc<UnixStream>,
    ) {
        if n == 10 {
            (&*sock).write_all(b"x").unwrap();
            w.set(Some(lp.stats().iterations));
        }
        if seen.get().is_some() || n > 10_000 {
            lp.stop();
            return;
        }
        lp.call_soon(move |lp| chain(lp, n + 1, w, seen, sock))
            .unwrap();
    }
    let sock = Rc::new(wsock.try_clone().unwrap());
    lp.call_soon(move |lp| chain(lp, 0, w, seen, sock)).unwrap();
    lp.run_forever().unwrap();
    let (written, seen) = (
        written_at.get().unwrap(),
        seen_at.get().expect("I/O never observed"),
    );
    assert!(
        seen - written <= u64::from(POLL_EVERY) + 2,
        "readiness seen {} iterations after the write (bound {POLL_EVERY})",
        seen - written
    );
    // It was really skipping polls while busy: far fewer polls than iterations.
    let st = lp.stats();
    assert!(st.polls < st.iterations, "{st:?}");
    drop(wsock);
    drop(wd);
}

#[test]
fn core_08_run_until_complete_accepts_futures_and_tasks() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // An async block (wrapped into a task of this loop).
    assert_eq!(lp.run_until_complete(async { 1 + 1 }).unwrap(), 2);
    // A task.
    let t = lp.create_task(async { "task" }).unwrap();
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), "task");
    // A loop future completed later by a callback.
    let f = lp.create_future::<u8>();
    let f2 = f.clone();
    lp.call_soon(move |_| f2.set_result(4).unwrap()).unwrap();
    assert_eq!(lp.run_until_complete(f).unwrap().unwrap(), 4);
    // An error of the future is returned.
    let f = lp.create_future::<u8>();
    f.set_exception(Error::TimedOut).unwrap();
    assert!(matches!(
        lp.run_until_complete(f).unwrap(),
        Err(Error::TimedOut)
    ));
    // A panic of the body is returned as Error::Exception.
    let e = lp.run_until_complete(async { panic!("body") }).unwrap_err();
    assert!(matches!(&e, Error::Exception(x) if x.is_panic() && x.to_string() == "panic: body"));
    // Any other `IntoFuture` works too.
    struct Later;
    impl std::future::IntoFuture for Later {
        type Output = &'static str;
        type IntoFuture = std::future::Ready<&'static str>;
        fn into_future(self) -> Self::IntoFuture {
            std::future::ready("into")
        }
    }
    assert_eq!(lp.run_until_complete(Later).unwrap(), "into");
    // An already-done future returns at once: one iteration for the wrapping task's step,
    // one for the stop (asyncio, which does not wrap futures, needs one).
    let f = lp.create_future::<u8>();
    f.set_result(9).unwrap();
    let before = lp.stats().iterations;
    assert_eq!(lp.run_until_complete(f).unwrap().unwrap(), 9);
    assert_eq!(lp.stats().iterations - before, 2);
}

#[test]
fn core_09_run_until_complete_with_a_future_of_another_loop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let other = EventLoop::new().unwrap();
    let f = other.create_future::<i32>();
    let r = lp.run_until_complete(f.clone()).unwrap();
    let e = r.unwrap_err();
    assert!(matches!(e, Error::DifferentLoop));
    assert!(e
        .to_string()
        .starts_with("The future belongs to a different loop"));
    // The foreign future is untouched and still usable on its own loop.
    assert!(!f.done());
    let f2 = f.clone();
    other.call_soon(move |_| f2.set_result(1).unwrap()).unwrap();
    assert_eq!(other.run_until_complete(f).unwrap().unwrap(), 1);
    // Same for a task of another loop.
    let t = other.create_task(async { 5 }).unwrap();
    assert!(matches!(
        lp.run_until_complete(t).unwrap(),
        Err(Error::DifferentLoop)
    ));
}

#[test]
fn core_10_stopped_before_complete() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let inner = lp.clone();
    let e = lp
        .run_until_complete(async move {
            inner.stop();
            yield_now().await;
            yield_now().await;
            f.set(true);
        })
        .unwrap_err();
    assert!(matches!(e, Error::StoppedBeforeComplete));
    assert_eq!(e.to_string(), "Event loop stopped before Future completed.");
    assert!(!finished.get());
    assert_eq!(lp.all_tasks().len(), 1, "the wrapper task is still pending");

    // Closing now does not report the wrapper as destroyed while pending.
    lp.close().unwrap();
    assert!(messages(&seen).is_empty(), "{:?}", messages(&seen));

    // A later run can finish such a task instead.
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let f = finished.clone();
    let inner = lp.clone();
    assert!(lp
        .run_until_complete(async move {
            inner.stop();
            yield_now().await;
            f.set(true);
        })
        .is_err());
    lp.run_until_complete(async {
        for _ in 0..3 {
            yield_now().await;
        }
    })
    .unwrap();
    assert!(finished.get());
    assert!(lp.all_tasks().is_empty());
    lp.close().unwrap();
    assert!(messages(&seen).is_empty());
}

#[test]
fn core_11_fatal_escapes_run_until_complete_without_a_stale_stop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let p = catch_unwind(AssertUnwindSafe(|| {
        lp.run_until_complete(async {
            yield_now().await;
            fatal("keyboard interrupt")
        })
    }))
    .unwrap_err();
    assert_eq!(p.downcast_ref::<Fatal>().unwrap().0, "keyboard interrupt");
    assert!(!lp.is_running());

    // A following run_forever runs until its own stop(): five iterations here.
    let n = Rc::new(Cell::new(0));
    fn step(lp: &EventLoop, n: Rc<Cell<u32>>) {
        n.set(n.get() + 1);
        if n.get() == 5 {
            lp.stop();
        } else {
            lp.call_soon(move |lp| step(lp, n)).unwrap();
        }
    }
    let n2 = n.clone();
    lp.call_soon(move |lp| step(lp, n2)).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(n.get(), 5);

    // The error is not reported again ("exception never retrieved" or otherwise).
    lp.close().unwrap();
    drop(lp);
    assert!(messages(&seen).is_empty(), "{:?}", messages(&seen));
}

#[test]
fn core_11_fatal_from_a_callback_escapes_run_forever() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let after = Rc::new(Cell::new(false));
    lp.call_soon(|_| fatal("exit")).unwrap();
    let a = after.clone();
    lp.call_soon(move |lp| {
        a.set(true);
        lp.stop()
    })
    .unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
    assert!(p.is::<Fatal>());
    assert!(!after.get(), "the loop stopped at the fatal error");
    // The rest of the queue is kept and runs on the next run.
    lp.run_forever().unwrap();
    assert!(after.get());
    assert!(messages(&seen).is_empty());
}

/// A `Fatal` from one of a batch of `call_soon_threadsafe` callbacks: the rest of the batch
/// is kept, in order, in front of what the batch scheduled, and runs on the next run.
#[test]
fn core_11_core_19_fatal_from_a_threadsafe_callback_keeps_the_rest_of_its_batch() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let remote = lp.remote();
    let l = log.clone();
    remote
        .call_soon_threadsafe(move |lp| {
            l.lock().unwrap().push("1");
            let l = l.clone();
            lp.call_soon(move |_| l.lock().unwrap().push("scheduled by 1"))
                .unwrap();
        })
        .unwrap();
    remote.call_soon_threadsafe(|_| fatal("exit")).unwrap();
    let l = log.clone();
    remote
        .call_soon_threadsafe(move |_| l.lock().unwrap().push("2"))
        .unwrap();
    let l = log.clone();
    remote
        .call_soon_threadsafe(move |lp| {
            l.lock().unwrap().push("3");
            lp.stop();
        })
        .unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
    assert!(p.is::<Fatal>());
    assert_eq!(*log.lock().unwrap(), ["1"]);
    lp.run_forever().unwrap();
    assert_eq!(*log.lock().unwrap(), ["1", "2", "3", "scheduled by 1"]);
    lp.close().unwrap();
    assert!(messages(&seen).is_empty());
}

#[test]
fn core_12_fatal_detaches_the_stop_callback_of_run_until_complete() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<u8>();
    lp.call_soon(|_| fatal("interrupt")).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| lp.run_until_complete(f.clone())));
    assert!(r.is_err());

    // `f` completes during the next run; its old "stop when done" callback must not fire.
    let f2 = f.clone();
    lp.call_soon(move |_| f2.set_result(1).unwrap()).unwrap();
    let v = lp
        .run_until_complete(async {
            for _ in 0..10 {
                yield_now().await;
            }
            7
        })
        .unwrap();
    assert_eq!(v, 7);
    assert!(f.done());
    // The orphan wrapper task of the first run finished without stopping anything.
    assert!(lp.all_tasks().is_empty());
}

#[test]
fn core_07_io_handler_readiness_is_queued_like_callbacks() {
    let _w = loop_testkit::watchdog();
    // register_io handlers are queued by the poll phase in the same FIFO as callbacks.
    struct H(Log);
    impl loop_core::internal::IoHandler for H {
        fn ready(&self, _lp: &EventLoop, r: Readiness) {
            push(&self.0, format!("handler readable={}", r.is_readable()));
        }
    }
    let lp = EventLoop::new().unwrap();
    let events = log();
    let (a, mut b) = UnixStream::pair().unwrap();
    let _reg = loop_core::internal::Registered::new(
        &lp,
        &a,
        loop_core::Mode::Edge,
        true,
        false,
        "test",
        Rc::new(H(events.clone())),
    )
    .unwrap();
    let e = events.clone();
    lp.call_soon(move |_| push(&e, "ready")).unwrap();
    b.write_all(b"x").unwrap();
    run_once(&lp);
    assert_eq!(entries(&events), ["ready", "handler readable=true"]);
}
