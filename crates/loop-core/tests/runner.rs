//! Shutdown helpers and the runner: CORE-59, CORE-60.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use common::*;
use loop_core::internal::LoopInternals;
use loop_core::{
    fatal, get_running_loop, run, yield_now, Error, EventLoop, ExceptionContext, Fatal,
};

#[test]
fn core_59_async_resources_are_finalized_concurrently_at_shutdown() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let events = log();

    // A waits for something B does: only possible if they are finalized concurrently.
    let gate = lp.create_future::<()>();
    let (g, e) = (gate.clone(), events.clone());
    let a = lp.track_async_resource("A", move |_lp| async move {
        g.await?;
        push(&e, "A closed");
        Ok(())
    });
    let (g, e) = (gate.clone(), events.clone());
    let b = lp.track_async_resource("B", move |_lp| async move {
        yield_now().await;
        push(&e, "B closed");
        g.set_result(())
    });
    // Failures are reported with the resource's name, and do not stop the others.
    let c = lp.track_async_resource("C", |_lp| async {
        Err(Error::invalid_state("flush failed"))
    });
    let d = lp.track_async_resource("D", |_lp| async {
        yield_now().await;
        panic!("finalizer panicked")
    });
    // Closed normally before shutdown: dropping the guard unregisters it.
    let (e2, flag) = drop_flag();
    let normal = lp.track_async_resource("closed early", move |_lp| {
        let _f = flag;
        async { panic!("must not be finalized") }
    });
    assert!(normal.is_tracked());
    drop(normal);
    assert!(e2.get(), "unregistered and released");

    lp.run_until_complete(lp.shutdown_asyncgens()).unwrap();
    assert_eq!(entries(&events), ["B closed", "A closed"]);
    for r in [&a, &b, &c, &d] {
        assert!(!r.is_tracked());
    }
    let seen = seen.borrow();
    assert_eq!(
        seen.len(),
        2,
        "{:?}",
        seen.iter().map(|c| &c.message).collect::<Vec<_>>()
    );
    for (ctx, name) in seen.iter().zip(["C", "D"]) {
        assert_eq!(
            ctx.message,
            format!("an error occurred during closing of asynchronous resource {name}")
        );
        assert!(ctx.exception.is_some());
        assert_eq!(ctx.extra, [("asyncgen", name.to_string())]);
    }
    assert!(
        matches!(&seen[1].exception, Some(Error::Exception(e)) if e.to_string() == "panic: finalizer panicked")
    );
    drop(seen);

    // After shutdown: a new registration is refused with a warning (asyncio's ResourceWarning).
    let (reg, logs) = capture_logs(|| lp.track_async_resource("too late", |_lp| async { Ok(()) }));
    assert!(!reg.is_tracked());
    assert!(
        logs.contains("WARN") && logs.contains("\"too late\" registered"),
        "{logs}"
    );
    // Nothing left to do on a second call.
    lp.run_until_complete(lp.shutdown_asyncgens()).unwrap();
}

#[test]
fn core_59_unfinalized_resources_are_dropped_at_close() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let (dropped, flag) = drop_flag();
    let reg = lp.track_async_resource("left open", move |_lp| {
        let _f = flag;
        r.set(true);
        async { Ok(()) }
    });
    lp.close().unwrap();
    assert!(!ran.get(), "close() does not finalize");
    assert!(
        dropped.get(),
        "but drops the finalizer; the resource's own Drop applies"
    );
    assert!(!reg.is_tracked());
    // After close, registering tracks nothing.
    assert!(!lp
        .track_async_resource("x", |_lp| async { Ok(()) })
        .is_tracked());
}

#[test]
fn core_60_run_cancels_and_awaits_remaining_tasks_then_shuts_down_in_order() {
    let _w = loop_testkit::watchdog();
    let events = log();
    let e = events.clone();
    // Holds the resource's registration past the main future, so it is still open at shutdown.
    let kept = Rc::new(RefCell::new(None));
    let k = kept.clone();
    let v = run(async move {
        let lp = get_running_loop().unwrap();
        let seen: Rc<RefCell<Vec<ExceptionContext>>> = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let e2 = e.clone();
        lp.set_exception_handler(Some(Rc::new(move |_lp: &EventLoop, ctx: &ExceptionContext| {
            push(&e2, format!("report: {}", ctx.message));
            s.borrow_mut().push(ctx.clone())
        })));
        // A hanging task that cleans up over several steps once cancelled.
        let e3 = e.clone();
        let forever = lp.create_future::<()>();
        lp.create_named_task("hanging", async move {
            let r = forever.await;
            assert!(r.unwrap_err().is_cancelled());
            yield_now().await;
            yield_now().await;
            push(&e3, "hanging task cleaned up");
        })
        .unwrap();
        // A task that fails while being cancelled.
        let never = lp.create_future::<()>();
        lp.create_named_task("failing", async move {
            let _ = never.await;
            panic!("failed during cancellation")
        })
        .unwrap();
        // Finalizer, shutdown hook, close hook: recorded in the order they run.
        let e4 = e.clone();
        let reg = lp.track_async_resource("gen", move |_lp| async move {
            push(&e4, "asyncgens finalized");
            Ok(())
        });
        *k.borrow_mut() = Some(reg); // still open at shutdown
        let e5 = e.clone();
        lp.on_shutdown(move |lp| {
            let lp = lp.clone();
            async move {
                assert!(!lp.is_closed());
                yield_now().await;
                push(&e5, "shutdown hook");
            }
        });
        let e6 = e.clone();
        lp.on_close(move |lp| {
            assert!(lp.is_closed());
            push(&e6, "close hook")
        });
        let e7 = e.clone();
        lp.on_close(move |_| {
            let seen = seen.borrow();
            let failing = seen
                .iter()
                .find(|c| c.message == "unhandled exception during evloop::run() shutdown")
                .expect("the failing task is reported");
            assert_eq!(failing.task.as_ref().unwrap().get_name(), "failing");
            assert!(matches!(&failing.exception, Some(Error::Exception(x)) if x.to_string() == "panic: failed during cancellation"));
            push(&e7, format!("reports: {}", seen.len()));
        });
        push(&e, "main done");
        42
    })
    .unwrap();
    drop(kept);
    assert_eq!(v, 42);
    assert_eq!(
        entries(&events),
        [
            "main done",
            "hanging task cleaned up",
            "report: unhandled exception during evloop::run() shutdown",
            "asyncgens finalized",
            "shutdown hook",
            "close hook",
            "reports: 1",
        ]
    );
}

#[test]
fn core_60_run_main_on_a_configured_loop_and_its_errors() {
    let _w = loop_testkit::watchdog();
    // The main future's failure is returned; the loop is closed anyway.
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let e = lp.run_main(async { panic!("main failed") }).unwrap_err();
    assert!(matches!(&e, Error::Exception(x) if x.to_string() == "panic: main failed"));
    assert!(lp.is_closed());
    assert!(
        messages(&seen).is_empty(),
        "the main task's failure is returned, not reported"
    );

    // Stopped before the main future finished: the main task is cancelled at shutdown.
    let lp = EventLoop::new().unwrap();
    let cleaned = Rc::new(Cell::new(false));
    let c = cleaned.clone();
    let inner = lp.clone();
    let e = lp
        .run_main(async move {
            let f = inner.create_future::<()>();
            inner.stop();
            if f.await.is_err() {
                c.set(true);
            }
        })
        .unwrap_err();
    assert!(matches!(e, Error::StoppedBeforeComplete));
    assert!(
        cleaned.get(),
        "the main task got its cancellation at shutdown"
    );
    assert!(lp.is_closed());

    // A closed loop, or a loop already running: error, loop left as it was.
    let closed = EventLoop::new().unwrap();
    closed.close().unwrap();
    assert!(matches!(closed.run_main(async {}), Err(Error::Closed)));
    let lp = EventLoop::new().unwrap();
    let inner = lp.clone();
    let nested = lp
        .run_until_complete(async move {
            let r = inner.run_main(async {}).map(|_| ());
            let r2 = run(async {}).map(|_| ());
            (r, r2)
        })
        .unwrap();
    assert!(matches!(nested.0, Err(Error::AlreadyRunning)));
    assert!(matches!(nested.1, Err(Error::AnotherLoopRunning)));
    assert!(!lp.is_closed());
    // The loop's own run_main from outside works.
    assert_eq!(lp.run_main(async { 1 }).unwrap(), 1);
    assert!(lp.is_closed());
}

#[test]
fn core_60_a_fatal_error_in_main_closes_the_loop_on_the_way_out() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let closed_hook = Rc::new(Cell::new(false));
    let c = closed_hook.clone();
    lp.on_close(move |_| c.set(true));
    let p = catch_unwind(AssertUnwindSafe(|| {
        lp.run_main(async { fatal("interrupted") })
    }))
    .unwrap_err();
    assert_eq!(p.downcast_ref::<Fatal>().unwrap().0, "interrupted");
    assert!(lp.is_closed());
    assert!(closed_hook.get());
}
