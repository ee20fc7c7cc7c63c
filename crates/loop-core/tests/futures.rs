//! Loop futures: CORE-26 .. CORE-33.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use loop_core::{CallbackId, Error, EventLoop, Exception, LoopFuture};

#[test]
fn core_26_create_future_is_pending_and_bound_to_the_loop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    assert!(!f.done());
    assert!(!f.cancelled());
    assert!(f.get_loop().unwrap().ptr_eq(&lp));
    let other = EventLoop::new().unwrap();
    assert!(!f.get_loop().unwrap().ptr_eq(&other));
    assert!(format!("{f:?}").contains("pending"));
}

#[test]
fn core_27_result_and_exception_of_a_pending_future() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    let e = f.result().unwrap_err();
    assert!(matches!(&e, Error::InvalidState(_)));
    assert_eq!(e.to_string(), "Result is not ready.");
    let e = f.exception().unwrap_err();
    assert!(matches!(&e, Error::InvalidState(_)));
    assert_eq!(e.to_string(), "Exception is not set.");
}

#[test]
fn core_28_set_result() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    f.set_result(5).unwrap();
    assert!(f.done());
    assert!(!f.cancelled());
    assert_eq!(f.result().unwrap(), 5);
    assert_eq!(f.result().unwrap(), 5, "result() can be read again");
    assert!(f.exception().unwrap().is_none());
    assert!(matches!(f.set_result(6), Err(Error::InvalidState(_))));
    assert!(matches!(
        f.set_exception(Error::TimedOut),
        Err(Error::InvalidState(_))
    ));
    assert!(!f.cancel());
    assert!(!f.cancelled());
    assert_eq!(f.result().unwrap(), 5);
}

#[test]
fn core_29_set_exception() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    let exc = Exception::new(std::io::Error::new(std::io::ErrorKind::InvalidData, "boom"));
    f.set_exception(exc.clone()).unwrap();
    assert!(f.done());
    match f.result() {
        Err(Error::Exception(e)) => assert!(e.ptr_eq(&exc), "result() gives the very error"),
        other => panic!("{other:?}"),
    }
    match f.exception() {
        Ok(Some(Error::Exception(e))) => {
            assert!(e.ptr_eq(&exc));
            assert_eq!(
                e.downcast_ref::<std::io::Error>().unwrap().to_string(),
                "boom"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!f.cancel());
    assert!(!f.cancelled());
    assert!(matches!(f.set_result(1), Err(Error::InvalidState(_))));
    // Any loop_core::Error can be set, io errors keep their OS error.
    let g = lp.create_future::<()>();
    g.set_exception(std::io::Error::from_raw_os_error(libc_econnreset()))
        .unwrap();
    assert_eq!(
        g.exception().unwrap().unwrap().raw_os_error(),
        Some(libc_econnreset())
    );
}

fn libc_econnreset() -> i32 {
    104
}

#[test]
fn core_30_cancel_a_pending_future() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<i32>();
    assert!(f.cancel_with("no longer needed"));
    assert!(f.cancelled());
    assert!(f.done());
    match f.result() {
        Err(Error::Cancelled(c)) => assert_eq!(c.message(), Some("no longer needed")),
        other => panic!("{other:?}"),
    }
    match f.exception() {
        Err(Error::Cancelled(c)) => assert_eq!(c.message(), Some("no longer needed")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(f.set_result(1), Err(Error::InvalidState(_))));
    assert!(matches!(
        f.set_exception(Error::TimedOut),
        Err(Error::InvalidState(_))
    ));
    assert!(!f.cancel());
    // Without a message.
    let g = lp.create_future::<i32>();
    assert!(g.cancel());
    assert!(matches!(g.result(), Err(Error::Cancelled(c)) if c.message().is_none()));
    // Awaiting gives the cancellation with its message; run_until_complete's task lets it
    // propagate, so the run itself ends cancelled (asyncio raises CancelledError).
    let h = lp.create_future::<i32>();
    h.cancel_with("m");
    let e = lp.run_until_complete(h).unwrap_err();
    assert!(matches!(e, Error::Cancelled(c) if c.message() == Some("m")));
}

#[test]
fn core_31_done_callbacks_are_scheduled_in_order_never_called_synchronously() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let events = log();
    let f = lp.create_future::<i32>();
    for name in ["first", "second", "third"] {
        let e = events.clone();
        f.add_done_callback(move |f| push(&e, format!("{name}:{}", f.result().unwrap())));
    }
    f.set_result(1).unwrap();
    assert!(entries(&events).is_empty(), "not called by set_result");
    // Scheduled with call_soon, after what was already queued.
    let e = events.clone();
    lp.call_soon(move |_| push(&e, "queued after completion"))
        .unwrap();
    run_once(&lp);
    assert_eq!(
        entries(&events),
        ["first:1", "second:1", "third:1", "queued after completion"]
    );
    // Adding to a done future schedules at once (but still through the loop).
    let e = events.clone();
    f.add_done_callback(move |_| push(&e, "late"));
    assert_eq!(entries(&events).len(), 4);
    run_once(&lp);
    assert_eq!(entries(&events).last().unwrap(), "late");
    // Same on set_exception and cancel.
    for how in 0..2 {
        let g = lp.create_future::<i32>();
        let e = events.clone();
        g.add_done_callback(move |g| push(&e, format!("done cancelled={}", g.cancelled())));
        if how == 0 {
            g.set_exception(Error::TimedOut).unwrap();
        } else {
            g.cancel();
        }
        let n = entries(&events).len();
        run_once(&lp);
        assert_eq!(entries(&events).len(), n + 1);
        let _ = g.exception();
    }
}

#[test]
fn core_32_remove_done_callback() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let events = log();
    let f = lp.create_future::<i32>();
    let mut ids: Vec<CallbackId> = Vec::new();
    for i in 0..4 {
        let e = events.clone();
        ids.push(f.add_done_callback(move |_| push(&e, i.to_string())));
    }
    assert_eq!(f.remove_done_callback(ids[0]), 1);
    assert_eq!(f.remove_done_callback(ids[2]), 1);
    assert_eq!(
        f.remove_done_callback(ids[2]),
        0,
        "a second removal finds nothing"
    );
    f.set_result(0).unwrap();
    run_once(&lp);
    assert_eq!(entries(&events), ["1", "3"]);
    // Removing after completion: the callbacks were already scheduled.
    assert_eq!(f.remove_done_callback(ids[1]), 0);

    // A callback whose captured state removes other callbacks when dropped, during removal
    // and during scheduling: no crash, no double borrow.
    type Target = Rc<RefCell<Option<(LoopFuture<i32>, CallbackId)>>>;
    struct RemoveOnDrop(Target);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            if let Some((f, id)) = self.0.borrow_mut().take() {
                f.remove_done_callback(id);
                f.add_done_callback(|_| {});
            }
        }
    }
    let g = lp.create_future::<i32>();
    let slot = Rc::new(RefCell::new(None));
    let guard = RemoveOnDrop(slot.clone());
    let a = g.add_done_callback(move |_| drop(guard));
    let e = events.clone();
    let b = g.add_done_callback(move |_| push(&e, "b"));
    *slot.borrow_mut() = Some((g.clone(), b));
    assert_eq!(g.remove_done_callback(a), 1);
    g.set_result(1).unwrap();
    run_once(&lp);
    assert_eq!(entries(&events), ["1", "3"], "b was removed by a's drop");

    // The list mutated by a callback while callbacks are being scheduled.
    let h = lp.create_future::<i32>();
    let e = events.clone();
    let h2 = h.clone();
    h.add_done_callback(move |_| {
        let e = e.clone();
        h2.add_done_callback(move |_| push(&e, "added while running"));
    });
    h.set_result(2).unwrap();
    run_once(&lp);
    run_once(&lp);
    assert_eq!(entries(&events).last().unwrap(), "added while running");
}

fn failed_future(lp: &EventLoop) -> LoopFuture<i32> {
    let f = lp.create_future::<i32>();
    f.set_exception(Exception::new("never looked at")).unwrap();
    f
}

#[test]
fn core_33_unretrieved_exception_is_reported_on_drop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let f = failed_future(&lp);
    drop(f);
    {
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].message, "Future exception was never retrieved");
        assert!(
            matches!(&seen[0].exception, Some(Error::Exception(e)) if e.to_string() == "never looked at")
        );
        assert!(seen[0].future.as_deref().unwrap().contains("LoopFuture"));
        assert!(
            seen[0].source_location.is_none(),
            "creation site only in debug mode"
        );
    }

    // Not reported when looked at, when only a result was set, or after a (late) cancel.
    let f = failed_future(&lp);
    let _ = f.exception();
    drop(f);
    let f = failed_future(&lp);
    let _ = f.result();
    drop(f);
    let f = lp.create_future::<i32>();
    f.set_result(1).unwrap();
    drop(f);
    let f = failed_future(&lp);
    assert!(!f.cancel(), "cancel on a done future returns false...");
    drop(f); // ...but still counts as dealing with the error
    let f = lp.create_future::<i32>();
    f.cancel();
    drop(f);
    // Awaiting it retrieves it.
    let f = failed_future(&lp);
    assert!(lp.run_until_complete(f).unwrap().is_err());
    // Clones share one state: only the last drop matters.
    let f = failed_future(&lp);
    let g = f.clone();
    drop(f);
    assert_eq!(seen.borrow().len(), 1);
    drop(g);
    assert_eq!(seen.borrow().len(), 2);

    // Debug mode adds where the future was created.
    lp.set_debug(true);
    let line = line!() + 1;
    let f = failed_future(&lp);
    drop(f);
    let loc = seen.borrow()[2].source_location.unwrap();
    assert_eq!(loc.file(), file!());
    assert!(loc.line() < line, "the creation site inside failed_future");

    // After the loop is gone the report goes to the log.
    let f = failed_future(&lp);
    drop(seen);
    lp.close().unwrap();
    drop(lp);
    let ((), logs) = capture_logs(|| drop(f));
    assert!(
        logs.contains("Future exception was never retrieved"),
        "{logs}"
    );
}

/// A Rust-only rule (asyncio futures can be awaited any number of times): awaiting a
/// `LoopFuture` moves its value out, so a second await of a clone is an `InvalidState` error.
#[test]
fn rust_only_awaiting_moves_the_value_out_and_a_second_await_is_invalid_state() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<String>();
    f.set_result("v".into()).unwrap();
    let g = f.clone();
    let (a, b) = lp
        .run_until_complete(async move {
            let a = f.await;
            let b = g.await;
            (a, b)
        })
        .unwrap();
    assert_eq!(a.unwrap(), "v");
    assert!(matches!(b, Err(Error::InvalidState(_))));
}
