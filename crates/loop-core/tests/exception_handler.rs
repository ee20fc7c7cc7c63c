//! The exception handler: CORE-52 .. CORE-55, and a panic in every kind of callback.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use common::*;
use loop_core::internal::IoHandler;
use loop_core::internal::LoopInternals;
use loop_core::{
    fatal, Error, EventLoop, ExceptionContext, ExceptionHandler, Fatal, Mode, Readiness, TaskSpec,
};

#[test]
fn core_52_get_and_set_exception_handler() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    assert!(
        lp.get_exception_handler().is_none(),
        "default handler in use"
    );
    let h: ExceptionHandler = Rc::new(|_lp: &EventLoop, _ctx: &ExceptionContext| {});
    lp.set_exception_handler(Some(h.clone()));
    assert!(Rc::ptr_eq(&lp.get_exception_handler().unwrap(), &h));
    lp.set_exception_handler(None);
    assert!(lp.get_exception_handler().is_none());
    // None restores the default handler, which logs.
    let ((), logs) =
        capture_logs(|| lp.call_exception_handler(&ExceptionContext::new("back to default")));
    assert!(logs.contains("back to default"), "{logs}");
}

#[test]
fn core_53_custom_handler_gets_the_loop_and_the_context_unchanged() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<(EventLoop, ExceptionContext)>>> = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |lp: &EventLoop, ctx: &ExceptionContext| {
            g.borrow_mut().push((lp.clone(), ctx.clone()))
        },
    )));
    let t = lp.create_named_task("ctx task", async {}).unwrap();
    let ctx = ExceptionContext::new("custom report")
        .with_exception(Error::TimedOut)
        .with_extra("transport", "<Transport fd=3>")
        .with_extra("protocol", "<Echo>")
        .with_task(t.task_ref());
    let ((), logs) = capture_logs(|| lp.call_exception_handler(&ctx));
    assert!(logs.is_empty(), "the default handler is not called: {logs}");
    let got = got.borrow();
    assert_eq!(got.len(), 1);
    assert!(got[0].0.ptr_eq(&lp));
    let seen = &got[0].1;
    assert_eq!(seen.message, "custom report");
    assert!(matches!(seen.exception, Some(Error::TimedOut)));
    assert_eq!(seen.extra, ctx.extra);
    assert!(seen.task.as_ref().unwrap().ptr_eq(&t.task_ref()));
    assert_eq!(seen.render(), ctx.render());
    drop(got);
    lp.run_until_complete(t).unwrap().unwrap();
    // The handler holds a clone of the loop: closing drops the handler and ends the cycle.
    lp.close().unwrap();
}

#[test]
fn core_54_a_failing_custom_handler_falls_back_to_the_default_one() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_lp: &EventLoop, _ctx: &ExceptionContext| {
            c.set(c.get() + 1);
            panic!("handler is broken")
        },
    )));
    let ((), logs) = capture_logs(|| {
        lp.call_soon(|_| panic!("original failure")).unwrap();
        let after = lp.clone();
        lp.call_soon(move |_| after.stop()).unwrap();
        lp.run_forever().unwrap();
    });
    assert_eq!(calls.get(), 1);
    assert!(
        logs.contains("Unhandled error in exception handler"),
        "{logs}"
    );
    assert!(
        logs.contains("panic: handler is broken"),
        "the handler's error: {logs}"
    );
    assert!(
        logs.contains("context: Exception in callback"),
        "the original context: {logs}"
    );
    assert_eq!(logs.matches("ERROR").count(), 1, "{logs}");

    // The default handler failing too: one plain log line, nothing escapes.
    let ((), logs) = capture_logs(|| {
        panic_on_next_log_write();
        lp.call_exception_handler(&ExceptionContext::new("x"));
    });
    assert!(
        logs.contains("Exception in default exception handler while handling an unexpected error in custom exception handler"),
        "{logs}"
    );
    assert_eq!(calls.get(), 2);

    // Without a custom handler, the default handler failing gives a plain line too.
    lp.set_exception_handler(None);
    let ((), logs) = capture_logs(|| {
        panic_on_next_log_write();
        lp.call_exception_handler(&ExceptionContext::new("y"));
    });
    assert!(
        logs.contains("Exception in default exception handler"),
        "{logs}"
    );
    assert!(!logs.contains("custom"), "{logs}");

    // Only a Fatal escapes call_exception_handler.
    lp.set_exception_handler(Some(Rc::new(|_lp: &EventLoop, _ctx: &ExceptionContext| {
        fatal("stop now")
    })));
    let p = catch_unwind(AssertUnwindSafe(|| {
        lp.call_exception_handler(&ExceptionContext::new("z"))
    }))
    .unwrap_err();
    assert_eq!(p.downcast_ref::<Fatal>().unwrap().0, "stop now");
}

#[test]
fn core_55_default_handler_log_format() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let ctx = ExceptionContext::new("Something failed")
        .with_exception(Error::invalid_state("the cause"))
        .with_extra("transport", "<T>")
        .with_extra("protocol", "<P>")
        .with_extra("asyncgen", "<A>")
        .with_source(std::panic::Location::caller());
    let ((), logs) = capture_logs(|| lp.default_exception_handler(&ctx));
    assert_eq!(logs.matches("ERROR").count(), 1, "one ERROR record: {logs}");
    let first = logs.find("Something failed").unwrap();
    let keys: Vec<usize> = [
        "asyncgen: <A>",
        "protocol: <P>",
        "source_traceback: ",
        "transport: <T>",
    ]
    .iter()
    .map(|k| {
        logs.find(k)
            .unwrap_or_else(|| panic!("{k} missing in {logs}"))
    })
    .collect();
    assert!(first < keys[0], "message first: {logs}");
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys sorted: {logs}");
    assert!(
        logs.contains("Object created at (most recent call last):"),
        "{logs}"
    );
    assert!(logs.contains(file!()));
    // The exception is attached as a field, not as a `key:` line.
    assert!(logs.contains("error=the cause"), "{logs}");
    assert!(!logs.lines().any(|l| l.starts_with("exception:")), "{logs}");

    // No message: the generic one.
    let ((), logs) = capture_logs(|| lp.default_exception_handler(&ExceptionContext::new("")));
    assert!(logs.contains("Unhandled exception in event loop"), "{logs}");

    // Debug mode, during a callback, without a source location: handle_traceback is added.
    lp.set_debug(true);
    let (line, logs) = capture_logs(|| {
        let line = line!() + 1;
        lp.call_soon(move |lp| {
            lp.default_exception_handler(&ExceptionContext::new("from a callback"))
        })
        .unwrap();
        run_once(&lp);
        line
    });
    assert!(
        logs.contains("handle_traceback: Handle created at (most recent call last):"),
        "{logs}"
    );
    assert!(logs.contains(&format!("{}:{line}", file!())), "{logs}");
    // Not outside a callback.
    let ((), logs) =
        capture_logs(|| lp.default_exception_handler(&ExceptionContext::new("outside")));
    assert!(!logs.contains("handle_traceback"), "{logs}");

    // A panicking callback through the default handler: message, handle key, error field.
    lp.set_debug(false);
    let ((), logs) = capture_logs(|| {
        lp.call_soon(|_| panic!("logged panic")).unwrap();
        run_once(&lp);
    });
    assert!(
        logs.contains("Exception in callback scheduled at"),
        "{logs}"
    );
    assert!(logs.contains("handle: <Handle scheduled at"), "{logs}");
    assert!(logs.contains("error=panic: logged panic"), "{logs}");
}

struct PanickingIo;
impl IoHandler for PanickingIo {
    fn ready(&self, _lp: &EventLoop, _r: Readiness) {
        panic!("io handler failure")
    }
}

#[test]
fn panics_in_every_kind_of_callback_are_reported_once_and_the_loop_goes_on() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    let seen = record_exceptions(&lp);
    let count = |what: &str| {
        seen.borrow()
            .iter()
            .filter(|c| matches!(&c.exception, Some(Error::Exception(e)) if e.to_string().contains(what)))
            .count()
    };

    // call_soon callback.
    lp.call_soon(|_| panic!("soon failure")).unwrap();
    // Remote callback.
    let remote = lp.remote();
    std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(|_| panic!("remote failure"))
            .unwrap()
    })
    .join()
    .unwrap();
    // Done-callback of a future.
    let f = lp.create_future::<()>();
    f.add_done_callback(|_| panic!("future callback failure"));
    f.set_result(()).unwrap();
    // Done-callback of a task.
    let t = lp.create_task(async {}).unwrap();
    t.add_done_callback(|_| panic!("task callback failure"));
    // fd watcher: the reader panics; it is reported once and then removed.
    let (rsock, mut wsock) = UnixStream::pair().unwrap();
    wsock.write_all(b"x").unwrap();
    let watcher_calls = Rc::new(Cell::new(0));
    let w = watcher_calls.clone();
    lp.add_reader(&rsock, move |_| {
        w.set(w.get() + 1);
        panic!("watcher failure")
    })
    .unwrap();
    // I/O handler.
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"y").unwrap();
    let _reg = loop_core::internal::Registered::new(
        &lp,
        &a,
        Mode::Edge,
        true,
        false,
        "panicking",
        Rc::new(PanickingIo),
    )
    .unwrap();
    // Task step: the task fails; reported once, when its last handle goes, unretrieved.
    let failing = lp.create_task(async { panic!("step failure") }).unwrap();

    for _ in 0..10 {
        run_once(&lp);
    }
    assert_eq!(count("soon failure"), 1);
    assert_eq!(count("remote failure"), 1);
    assert_eq!(count("future callback failure"), 1);
    assert_eq!(count("task callback failure"), 1);
    assert_eq!(count("watcher failure"), 1);
    assert_eq!(
        watcher_calls.get(),
        1,
        "a watcher that panicked is disabled"
    );
    assert_eq!(
        lp.stats().fds_registered,
        1,
        "and its registration removed (the io handler's stays)"
    );
    assert_eq!(count("io handler failure"), 1, "edge-triggered: one event");
    assert_eq!(count("step failure"), 0);
    drop(failing);
    assert_eq!(count("step failure"), 1);
    assert_eq!(seen.borrow().len(), 7);

    // Task factory: the panic goes to the caller, not to the handler.
    lp.set_task_factory(Some(Rc::new(
        |_lp: &EventLoop, _s: TaskSpec| -> loop_core::Result<TaskSpec> {
            panic!("factory failure")
        },
    )));
    assert!(lp.create_task(async {}).is_err());
    lp.set_task_factory(None);
    assert_eq!(count("factory failure"), 0);

    // The loop goes on.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);

    // Close hook: reported, the other hooks still run, close() succeeds.
    let later = Rc::new(Cell::new(false));
    lp.on_close(|_| panic!("close hook failure"));
    let l = later.clone();
    lp.on_close(move |_| l.set(true));
    drop(wd);
    lp.close().unwrap();
    assert_eq!(count("close hook failure"), 1);
    assert!(later.get());
    assert!(seen
        .borrow()
        .last()
        .unwrap()
        .message
        .starts_with("Exception in close hook"));
}

#[test]
fn a_fatal_close_hook_unwinds_after_the_loop_is_closed() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let later = Rc::new(Cell::new(false));
    lp.on_close(|_| fatal("from a hook"));
    let l = later.clone();
    lp.on_close(move |_| l.set(true));
    let p = catch_unwind(AssertUnwindSafe(|| lp.close())).unwrap_err();
    assert!(p.is::<Fatal>());
    assert!(later.get(), "the other hooks ran");
    assert!(lp.is_closed());
    assert!(matches!(lp.call_soon(|_| {}), Err(Error::Closed)));
}
