//! Tasks: CORE-34 .. CORE-47 (CORE-48, sleep, belongs to loop-timers).

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use common::*;
use loop_core::{
    all_tasks, current_task, get_running_loop, yield_now, Error, EventLoop, Task, TaskRef,
};

/// A future that knows nothing about evloop: pending until `release` is called.
#[derive(Clone, Default)]
struct Foreign(Rc<RefCell<(bool, Option<Waker>)>>);

impl Foreign {
    fn release(&self) {
        let w = {
            let mut s = self.0.borrow_mut();
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Future for Foreign {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.borrow_mut();
        if s.0 {
            Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[test]
fn core_34_create_task_schedules_without_running() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    let t = lp
        .create_task(async move {
            s.set(true);
            yield_now().await;
        })
        .unwrap();
    assert!(!started.get(), "not run by create_task");
    assert!(!t.done());
    assert!(lp.all_tasks().iter().any(|x| x.ptr_eq(&t.task_ref())));
    run_once(&lp);
    assert!(started.get(), "first step on the next iteration");
    assert!(!t.done());
    assert_eq!(lp.all_tasks().len(), 1);
    run_once(&lp);
    assert!(t.done());
    assert!(lp.all_tasks().is_empty(), "gone from all_tasks once done");
}

#[test]
fn core_35_create_task_on_a_closed_loop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    let (dropped, flag) = drop_flag();
    let e = lp
        .create_task(async move {
            let _f = flag;
            p.set(true);
        })
        .unwrap_err();
    assert!(matches!(e, Error::Closed));
    assert!(!polled.get());
    assert!(
        dropped.get(),
        "the future is dropped right away, never polled"
    );
}

#[test]
fn core_36_task_names() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let a = lp.create_task(async {}).unwrap();
    let b = lp.create_task(async {}).unwrap();
    // One process-wide counter, across loops and threads.
    let c_id = std::thread::spawn(|| {
        let lp = EventLoop::new().unwrap();
        let t = lp.create_task(async {}).unwrap();
        let id = t.id();
        assert_eq!(t.get_name(), format!("Task-{id}"));
        lp.close().unwrap();
        id
    })
    .join()
    .unwrap();
    let d = lp.create_task(async {}).unwrap();
    assert!(a.id() >= 1);
    assert!(a.id() < b.id() && b.id() < c_id && c_id < d.id());
    assert_eq!(a.get_name(), format!("Task-{}", a.id()));
    let n = lp.create_named_task("fetcher", async {}).unwrap();
    assert_eq!(n.get_name(), "fetcher");
    n.set_name(12345);
    assert_eq!(n.get_name(), "12345");
    n.set_name("again");
    assert_eq!(n.task_ref().get_name(), "again");
    assert!(format!("{n:?}").contains("name='again'"));
    lp.run_until_complete(async {}).unwrap();
    drop((a, b, d, n));
}

#[test]
fn core_38_cancel_delivers_a_cancellation_with_its_message() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let fut = lp.create_future::<()>();
    let seen = log();
    let s = seen.clone();
    let f = fut.clone();
    let t = lp
        .create_task(async move {
            let r = f.await;
            push(&s, format!("{r:?}"));
            r?;
            Ok::<_, Error>("not reached")
        })
        .unwrap();
    let r = t.task_ref();
    run_once(&lp);
    assert!(t.cancel_with("stop it"));
    assert_eq!(t.cancelling(), 1);
    assert!(
        !t.cancelled(),
        "not cancelled until the body finished by it"
    );
    assert!(!t.done());
    assert!(fut.cancelled(), "the awaited future was cancelled at once");
    let e = lp.run_until_complete(t).unwrap_err();
    assert!(
        matches!(&e, Error::Cancelled(c) if c.message() == Some("stop it")),
        "{e:?}"
    );
    assert_eq!(
        entries(&seen),
        ["Err(Cancelled(Cancelled { message: Some(\"stop it\") }))"]
    );
    assert!(r.cancelled() && r.done());
    assert!(!r.cancel(), "cancel() on a done task");
}

#[test]
fn core_39_cancel_before_the_first_step_skips_the_body() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let t = lp.create_task(async move { r.set(true) }).unwrap();
    let tr = t.task_ref();
    assert!(t.cancel_with("early"));
    let e = lp.run_until_complete(t).unwrap_err();
    assert!(!ran.get(), "the body never ran");
    assert_eq!(e.as_cancelled().unwrap().message(), Some("early"));
    assert!(tr.cancelled());
}

#[test]
fn core_40_cancel_while_awaiting_a_loop_future_body_may_handle_it() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let inner = lp.create_future::<u32>();
    let f = inner.clone();
    let t = lp
        .create_task(async move {
            match f.await {
                Err(Error::Cancelled(c)) => format!("caught {}", c.message().unwrap_or("")),
                other => format!("unexpected {other:?}"),
            }
        })
        .unwrap();
    let tr = t.task_ref();
    run_once(&lp);
    assert!(tr.cancel_with("msg"));
    assert!(inner.cancelled());
    assert!(matches!(inner.result(), Err(Error::Cancelled(c)) if c.message() == Some("msg")));
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), "caught msg");
    assert!(!tr.cancelled(), "it handled the cancellation and returned");
    assert!(tr.done());
}

#[test]
fn core_40_cancel_after_the_awaited_future_completed_is_still_delivered_to_the_body() {
    let _w = loop_testkit::watchdog();
    // The future completed and woke the task, then cancel() came before the task's step:
    // the body still gets the cancellation at its await (asyncio throws it into the coroutine)
    // and may handle it; it is not dropped.
    let lp = EventLoop::new().unwrap();
    let inner = lp.create_future::<u32>();
    let f = inner.clone();
    let t = lp
        .create_task(async move {
            let r = f.await;
            format!("{}", r.is_err())
        })
        .unwrap();
    let tr = t.task_ref();
    run_once(&lp);
    inner.set_result(1).unwrap();
    assert!(tr.cancel());
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), "true");
    assert!(!tr.cancelled());
}

#[test]
fn core_40_cancel_cancels_an_awaited_task_too() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let gate = lp.create_future::<()>();
    let g = gate.clone();
    let inner = lp
        .create_task(async move {
            g.await?;
            Ok::<_, Error>(1)
        })
        .unwrap();
    let inner_ref = inner.task_ref();
    let outer = lp.create_task(inner).unwrap();
    let outer_ref = outer.task_ref();
    run_once(&lp);
    run_once(&lp);
    assert!(outer_ref.cancel_with("both"));
    assert_eq!(
        inner_ref.cancelling(),
        1,
        "the cancel went down to the awaited task"
    );
    let e = lp.run_until_complete(outer).unwrap_err();
    assert!(e.is_cancelled());
    assert!(inner_ref.cancelled() && outer_ref.cancelled());
    assert!(gate.cancelled());
}

/// CORE-08 with cancellation: `run_until_complete(task)` of a cancelled task gives what awaiting
/// a wrapper of it in another task gives (`Err(Cancelled)`, the cancellation propagates), while
/// awaiting the task itself gives its own outcome, `Err(Cancelled)`, as the value.
#[test]
fn core_08_run_until_complete_and_await_give_a_cancellation_the_same_way() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let make = |lp: &EventLoop| {
        let t = lp.create_task(async { 1u8 }).unwrap();
        t.cancel_with("gone");
        t
    };
    // Directly.
    let direct = lp.run_until_complete(make(&lp)).unwrap_err();
    assert_eq!(direct.as_cancelled().unwrap().message(), Some("gone"));
    // Awaited in a task: the await gives `Err(Cancelled)`; a wrapper that returns it ends
    // cancelled, so awaiting the wrapper gives `Err(Cancelled)` as well.
    let t = make(&lp);
    let (awaited, wrapped) = lp
        .run_until_complete(async move {
            let lp = EventLoop::current().unwrap();
            // (Reduced to booleans: a delivered cancellation still alive in the output would
            // end this task cancelled too.)
            let awaited = t.await.is_err_and(|e| e.is_cancelled());
            let t2 = make(&lp);
            let wrapper = lp.create_task(t2).unwrap();
            (awaited, wrapper.await.is_err_and(|e| e.is_cancelled()))
        })
        .unwrap();
    assert!(awaited);
    assert!(wrapped);
    lp.close().unwrap();
}

#[test]
fn core_40_cancel_while_awaiting_a_foreign_future_drops_the_body() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let foreign = Foreign::default();
    let fr = foreign.clone();
    let (dropped, flag) = drop_flag();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    let t = lp
        .create_task(async move {
            let _f = flag;
            fr.await;
            a.set(true);
        })
        .unwrap();
    let tr = t.task_ref();
    run_once(&lp);
    assert!(tr.cancel());
    let e = lp.run_until_complete(t).unwrap_err();
    assert!(e.is_cancelled());
    assert!(dropped.get(), "the body was dropped");
    assert!(!after.get());
    foreign.release(); // waking a finished task is harmless
    run_once(&lp);
}

#[test]
fn core_41_a_task_that_cancels_itself() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // Its next loop await gives Cancelled at once.
    let f = lp.create_future::<()>();
    let f2 = f.clone();
    let t = lp
        .create_task(async move {
            let me = current_task().unwrap().unwrap();
            assert!(me.cancel_with("self"));
            let r = f2.await;
            match r {
                Err(Error::Cancelled(c)) => Err::<(), _>(Error::Cancelled(c)),
                other => panic!("{other:?}"),
            }
        })
        .unwrap();
    let e = lp.run_until_complete(t).unwrap_err();
    assert_eq!(e.as_cancelled().unwrap().message(), Some("self"));
    assert!(
        !f.done(),
        "the future was not cancelled: the task was not waiting on it yet"
    );

    // Returning right after cancel() still ends the task cancelled.
    let t = lp
        .create_task(async {
            current_task().unwrap().unwrap().cancel();
            "returned"
        })
        .unwrap();
    let tr = t.task_ref();
    assert!(lp.run_until_complete(t).unwrap_err().is_cancelled());
    assert!(tr.cancelled());

    // Awaiting a task that cancelled itself gives Cancelled.
    let victim = lp
        .create_task(async {
            current_task().unwrap().unwrap().cancel_with("at end");
        })
        .unwrap();
    let waiter = lp.create_task(victim).unwrap();
    let e = lp.run_until_complete(waiter).unwrap_err();
    assert_eq!(e.as_cancelled().unwrap().message(), Some("at end"));
}

/// A task that cancelled itself gets `Cancelled` from its next `await` of another task too,
/// whether that task is done or pending, and the awaited task is left alone.
#[test]
fn core_41_a_task_that_cancels_itself_then_awaits_a_task() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let done = lp.create_task(async { 1 }).unwrap();
    let other = lp.create_future::<()>();
    let pending = lp.create_task(other.clone()).unwrap();
    let (done_ref, pending_ref) = (done.task_ref(), pending.task_ref());
    let t = lp
        .create_task(async move {
            // Both awaited tasks run their first step before this one goes on.
            loop_core::yield_now().await;
            let done_first = done_ref.done();
            let me = current_task().unwrap().unwrap();
            assert!(me.cancel_with("self"));
            let r1 = done.await;
            assert!(me.cancel_with("again"));
            let r2 = pending.await;
            (
                done_first,
                r1.map_err(|e| e.is_cancelled()),
                r2.map_err(|e| e.is_cancelled()),
            )
        })
        .unwrap();
    let (done_first, r1, r2) = lp.run_until_complete(t).unwrap().unwrap();
    assert!(done_first, "the awaited task had finished");
    assert_eq!(
        r1,
        Err(true),
        "await of a finished task after a self-cancel"
    );
    assert!(
        matches!(r2, Err(true)),
        "await of a pending task after a self-cancel"
    );
    assert!(
        !pending_ref.done(),
        "the awaited pending task was not cancelled"
    );
    other.set_result(()).unwrap();
    let p = pending_ref.clone();
    lp.run_until_complete(async move {
        while !p.done() {
            loop_core::yield_now().await;
        }
    })
    .unwrap();
    assert!(!pending_ref.cancelled());
    lp.close().unwrap();
}

#[test]
fn core_42_cancelling_and_uncancel() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let t = lp.create_task(async { 5 }).unwrap();
    assert_eq!(t.cancelling(), 0);
    assert!(t.cancel());
    assert!(t.cancel(), "repeated cancel keeps returning true");
    assert_eq!(t.cancelling(), 2);
    assert_eq!(t.uncancel(), 1);
    assert_eq!(t.cancelling(), 1);
    // Still one request outstanding: it is delivered.
    let tr = t.task_ref();
    assert!(lp.run_until_complete(t).unwrap_err().is_cancelled());
    assert!(tr.cancelled());

    // Down to zero: the not-yet-delivered cancellation is withdrawn.
    let t = lp.create_task(async { 6 }).unwrap();
    t.cancel();
    t.cancel();
    assert_eq!(t.uncancel(), 1);
    assert_eq!(t.uncancel(), 0);
    assert_eq!(t.uncancel(), 0, "never below zero");
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 6);

    // A body can uncancel itself after handling a cancellation (what timeouts do).
    let f = lp.create_future::<()>();
    let f2 = f.clone();
    let t = lp
        .create_task(async move {
            let r = f2.await;
            let me = current_task().unwrap().unwrap();
            let before = me.cancelling();
            let after = me.uncancel();
            (r.is_err(), before, after)
        })
        .unwrap();
    run_once(&lp);
    t.cancel();
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), (true, 1, 0));
}

#[test]
fn core_43_a_task_is_completed_only_by_its_body() {
    let _w = loop_testkit::watchdog();
    // `Task` has no set_result / set_exception (a compile error, see the compile_fail example
    // of `Task`). At run time: the outcome is what the body returns; nothing else changes it.
    let lp = EventLoop::new().unwrap();
    let t = lp.create_task(async { vec![1, 2] }).unwrap();
    assert!(matches!(t.result(), Err(Error::InvalidState(m)) if m == "Result is not ready."));
    let tr = t.task_ref();
    lp.run_until_complete(async {
        for _ in 0..3 {
            yield_now().await
        }
    })
    .unwrap();
    assert!(tr.done());
    assert!(!tr.cancel_with("too late"));
    assert_eq!(t.result().unwrap(), vec![1, 2]);
    assert!(tr.exception().is_none());
}

#[test]
fn core_44_awaiting_itself_or_another_loops_future() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let slot: Rc<RefCell<Option<Task<()>>>> = Rc::new(RefCell::new(None));
    let got: Rc<RefCell<Option<Error>>> = Rc::new(RefCell::new(None));
    let (s, g) = (slot.clone(), got.clone());
    let t = lp
        .create_task(async move {
            yield_now().await;
            let me = s.borrow_mut().take().unwrap();
            *g.borrow_mut() = me.await.err();
        })
        .unwrap();
    let tr = t.task_ref();
    *slot.borrow_mut() = Some(t);
    lp.run_until_complete(async move {
        while !tr.done() {
            yield_now().await
        }
    })
    .unwrap();
    let e = got.borrow_mut().take().expect("awaiting itself must fail");
    assert!(
        matches!(&e, Error::InvalidState(m) if m == "Task cannot await on itself"),
        "{e:?}"
    );

    let other = EventLoop::new().unwrap();
    let foreign_future = other.create_future::<i32>();
    let foreign_task = other.create_task(async { 1 }).unwrap();
    let (a, b) = lp
        .run_until_complete(async move { (foreign_future.await, foreign_task.await) })
        .unwrap();
    assert!(matches!(a, Err(Error::DifferentLoop)));
    assert!(matches!(b, Err(Error::DifferentLoop)));
}

#[test]
fn core_45_current_task() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    assert!(matches!(current_task(), Err(Error::NoRunningLoop)));
    assert!(lp.current_task().is_none());
    let seen = log();
    let s = seen.clone();
    lp.call_soon(move |lp| {
        // A running loop with no task executing.
        push(
            &s,
            format!(
                "callback: {}",
                lp.current_task().is_none() && current_task().unwrap().is_none()
            ),
        );
    })
    .unwrap();
    run_once(&lp);

    // Correct under interleaving.
    let mut tasks = Vec::new();
    for i in 0..3 {
        let s = seen.clone();
        tasks.push(
            lp.create_named_task(format!("t{i}"), async move {
                for step in 0..3 {
                    let cur = current_task().unwrap().unwrap();
                    push(&s, format!("{} step {step}", cur.get_name()));
                    assert_eq!(cur.get_name(), format!("t{i}"));
                    yield_now().await;
                }
            })
            .unwrap(),
        );
    }
    for t in tasks {
        lp.run_until_complete(t).unwrap().unwrap();
    }
    let e = entries(&seen);
    assert_eq!(e[0], "callback: true");
    assert_eq!(&e[1..4], ["t0 step 0", "t1 step 0", "t2 step 0"]);
    assert_eq!(e.len(), 10);

    // Not current for another loop; reset after a step that panicked.
    let other = EventLoop::new().unwrap();
    let o = other.clone();
    let t = lp
        .create_task(async move {
            assert!(o.current_task().is_none());
            panic!("step failure")
        })
        .unwrap();
    let s = seen.clone();
    lp.call_soon(move |lp| {
        lp.call_soon(move |lp| push(&s, format!("after panic: {}", lp.current_task().is_none())))
            .unwrap();
    })
    .unwrap();
    // run_until_complete(task) gives the task's outcome: here, its panic (not a failed
    // assertion before it).
    assert!(matches!(
        lp.run_until_complete(t).unwrap(),
        Err(Error::Exception(x)) if x.to_string() == "panic: step failure"
    ));
    run_once(&lp);
    assert_eq!(entries(&seen).last().unwrap(), "after panic: true");
    assert!(lp.current_task().is_none());
}

#[test]
fn core_46_all_tasks() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let other = EventLoop::new().unwrap();
    assert!(matches!(all_tasks(), Err(Error::NoRunningLoop)));
    let gate = lp.create_future::<()>();
    let g = gate.clone();
    let waiting = lp.create_named_task("waiting", g).unwrap();
    let quick = lp.create_named_task("quick", async {}).unwrap();
    let _foreign = other.create_named_task("other loop", async {}).unwrap();
    fn names(v: Vec<TaskRef>) -> Vec<String> {
        let mut n: Vec<String> = v.iter().map(|t| t.get_name()).collect();
        n.sort();
        n
    }
    assert_eq!(names(lp.all_tasks()), ["quick", "waiting"]);
    run_once(&lp);
    assert!(quick.done());
    assert_eq!(names(lp.all_tasks()), ["waiting"]);
    let inside = lp
        .run_until_complete(async { names(all_tasks().unwrap()) })
        .unwrap();
    assert_eq!(
        inside.len(),
        2,
        "the waiting task and the one running the block: {inside:?}"
    );
    assert!(inside.contains(&"waiting".to_string()));
    gate.set_result(()).unwrap();
    lp.run_until_complete(waiting).unwrap().unwrap().unwrap();
    assert!(lp.all_tasks().is_empty());
    assert_eq!(names(other.all_tasks()), ["other loop"]);
}

#[test]
fn core_46_all_tasks_lists_each_pending_task_once_before_and_after_its_first_step() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let gate = lp.create_future::<()>();
    let g = gate.clone();
    // Started, suspended on a loop future (its first step ran: no step queued).
    let waiting = lp.create_named_task("waiting", g).unwrap();
    // Started, and its next step is queued (it yields on every step).
    let spinning = lp
        .create_named_task("spinning", async {
            loop {
                yield_now().await
            }
        })
        .unwrap();
    run_once(&lp);
    // Not started: only its first step is queued.
    let fresh = lp.create_named_task("fresh", async {}).unwrap();
    // Cancelled before its first step: pending until that step ends it.
    let cancelled = lp.create_named_task("cancelled", async {}).unwrap();
    cancelled.cancel();
    fn names(v: Vec<TaskRef>) -> Vec<String> {
        let mut n: Vec<String> = v.iter().map(|t| t.get_name()).collect();
        n.sort();
        n
    }
    let expected = ["cancelled", "fresh", "spinning", "waiting"];
    assert_eq!(names(lp.all_tasks()), expected);
    // From inside a task: the same, and the task itself, once.
    let inside = lp
        .run_until_complete(async {
            // In this step the others are as above, started or not.
            names(all_tasks().unwrap())
        })
        .unwrap();
    assert_eq!(inside.len(), 3, "{inside:?}");
    assert!(inside.contains(&"spinning".to_string()), "{inside:?}");
    assert!(inside.contains(&"waiting".to_string()), "{inside:?}");
    assert!(fresh.done() && cancelled.cancelled());
    gate.set_result(()).unwrap();
    lp.run_until_complete(waiting).unwrap().unwrap().unwrap();
    assert_eq!(names(lp.all_tasks()), ["spinning"]);
    spinning.cancel();
    assert!(lp.run_until_complete(spinning).unwrap_err().is_cancelled());
    assert!(lp.all_tasks().is_empty());
}

#[test]
fn core_47_pending_task_destroyed_by_close_is_reported() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let started = lp
        .create_named_task("started", std::future::pending::<()>())
        .unwrap();
    run_once(&lp);
    let cb_ran = Rc::new(Cell::new(false));
    let c = cb_ran.clone();
    let (cb_dropped, cb_flag) = drop_flag();
    started.add_done_callback(move |_| {
        let _f = &cb_flag;
        c.set(true)
    });
    // A task that finished is not reported.
    let done = lp.create_task(async {}).unwrap();
    run_once(&lp);
    assert!(done.done());
    let (body_dropped, flag) = drop_flag();
    let _unstarted = lp
        .create_named_task("unstarted", async move {
            let _f = flag;
        })
        .unwrap();
    lp.close().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2);
    let mut names = Vec::new();
    for ctx in seen.iter() {
        assert_eq!(ctx.message, "Task was destroyed but it is pending!");
        names.push(ctx.task.as_ref().unwrap().get_name());
        assert!(
            ctx.source_location.is_none(),
            "no creation site outside debug mode"
        );
    }
    names.sort();
    assert_eq!(names, ["started", "unstarted"]);
    assert!(body_dropped.get());
    assert!(started.done() && started.cancelled());
    assert!(
        !cb_ran.get() && cb_dropped.get(),
        "done-callbacks are dropped, not run"
    );
}

#[test]
fn core_47_pending_task_destroyed_when_the_loop_is_dropped() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    let seen = record_exceptions(&lp);
    let line = line!() + 1;
    let t = lp.create_task(std::future::pending::<()>()).unwrap();
    run_once(&lp);
    drop(lp);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].message, "Task was destroyed but it is pending!");
    let loc = seen[0]
        .source_location
        .expect("debug mode gives the creation site");
    assert_eq!((loc.file(), loc.line()), (file!(), line));
    assert!(t.done());
    // A loop future awaited by nobody any more does not keep anything alive after close.
    assert!(get_running_loop().is_err());
}

#[test]
fn core_47_failed_task_nobody_awaited_is_reported_once() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let t = lp
        .create_named_task("failing", async { panic!("task body failure") })
        .unwrap();
    run_once(&lp);
    assert!(t.done());
    assert!(
        messages(&seen).is_empty(),
        "reported when the last handle goes, not before"
    );
    drop(t);
    {
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].message, "Task exception was never retrieved");
        assert!(seen[0]
            .future
            .as_deref()
            .unwrap()
            .contains("name='failing'"));
        assert!(
            matches!(&seen[0].exception, Some(Error::Exception(e)) if e.to_string() == "panic: task body failure")
        );
    }
    // Not reported when the error was looked at, awaited, or the task was cancelled after.
    let t = lp.create_task(async { panic!("x") }).unwrap();
    run_once(&lp);
    assert!(t.exception().is_some());
    drop(t);
    let t = lp.create_task(async { panic!("x") }).unwrap();
    assert!(lp.run_until_complete(t).unwrap().is_err());
    let t = lp.create_task(async { panic!("x") }).unwrap();
    run_once(&lp);
    assert!(!t.cancel());
    drop(t);
    // A cancelled task is never reported.
    let t = lp.create_task(async {}).unwrap();
    t.cancel();
    run_once(&lp);
    drop(t);
    assert_eq!(seen.borrow().len(), 1);
    assert!(
        seen.borrow()[0].source_location.is_none(),
        "creation site only in debug mode"
    );
    // Debug mode adds where the task was created.
    lp.set_debug(true);
    let line = line!() + 1;
    let t = lp.create_task(async { panic!("in debug mode") }).unwrap();
    run_once(&lp);
    drop(t);
    let loc = seen.borrow()[1]
        .source_location
        .expect("no creation site in debug mode");
    assert_eq!((loc.file(), loc.line()), (file!(), line));
}

/// CORE-45: a task runs only on its own loop. Woken while another loop runs on the same
/// thread (a callback of loop B completes the future a task of loop A awaits), it is not
/// stepped by B: it resumes when A runs, with A as the running loop.
#[test]
fn core_45_a_task_woken_while_another_loop_runs_resumes_only_on_its_own_loop() {
    let _w = loop_testkit::watchdog();
    let a = EventLoop::new().unwrap();
    let b = EventLoop::new().unwrap();
    let fut = a.create_future::<u32>();
    let awaited = fut.clone();
    let steps = log::<String>();
    let s = steps.clone();
    let task = a
        .create_task(async move {
            let v = awaited.await.unwrap();
            let on = get_running_loop().unwrap().id();
            s.borrow_mut()
                .push(format!("resumed with {v} on loop {on}"));
            v
        })
        .unwrap();
    run_once(&a); // the task starts and waits for `fut`
    assert!(entries(&steps).is_empty());
    b.call_soon(move |_| fut.set_result(7).unwrap()).unwrap();
    run_once(&b);
    run_once(&b);
    assert!(
        entries(&steps).is_empty(),
        "loop B stepped loop A's task: {:?}",
        entries(&steps)
    );
    assert_eq!(a.run_until_complete(task).unwrap().unwrap(), 7);
    assert_eq!(
        entries(&steps),
        [format!("resumed with 7 on loop {}", a.id())]
    );
    a.close().unwrap();
    b.close().unwrap();
}

/// Counts its wakes.
#[derive(Default)]
struct CountWake(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Every waker that polled a pending task is woken when it ends, once (the same waker given
/// twice counts once); so every awaiter of a task resumes, however many there are.
#[test]
fn core_34_every_awaiter_of_a_task_is_woken() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let gate = Foreign::default();
    let g = gate.clone();
    let mut t = lp
        .create_task(async move {
            g.await;
            7
        })
        .unwrap();
    let counts: Vec<_> = (0..3)
        .map(|_| std::sync::Arc::new(CountWake::default()))
        .collect();
    let c = counts.clone();
    let out = lp
        .run_until_complete(async move {
            // Let the task start and wait on the gate.
            yield_now().await;
            for (i, c) in c.iter().chain(&c[..1]).enumerate() {
                let waker = Waker::from(c.clone());
                let polled = Pin::new(&mut t).poll(&mut Context::from_waker(&waker));
                assert!(polled.is_pending(), "poll {i}: the task is pending");
            }
            gate.release();
            (&mut t).await
        })
        .unwrap();
    assert_eq!(out.unwrap(), 7);
    let woken: Vec<_> = counts
        .iter()
        .map(|c| c.0.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    assert_eq!(woken, [1, 1, 1], "each awaiter's waker is woken once");
    lp.close().unwrap();
}

/// Counts its drops, and panics in the first one.
struct PanicsOnDrop(Rc<Cell<u32>>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        if self.0.get() == 1 {
            panic!("the body's destructor panics");
        }
    }
}

/// A body dropped unrun by a cancellation whose destructor panics: the panic is user code's,
/// so it goes to the exception handler and the loop keeps running; the task still ends
/// cancelled, and its body is not dropped a second time when the task is torn down with its
/// loop.
#[test]
fn core_39_a_body_whose_destructor_panics_is_dropped_once_and_reported() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let errs = loop_testkit::record_exceptions(&lp);
    let drops = Rc::new(Cell::new(0));
    let guard = PanicsOnDrop(drops.clone());
    let t = lp
        .create_task(async move {
            let _g = &guard;
            std::future::pending::<()>().await
        })
        .unwrap();
    let tr = t.task_ref();
    assert!(t.cancel_with("early"));
    // The loop goes on after the report: the next callback runs in the same run.
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    lp.run_until_complete(async move {
        yield_now().await;
        yield_now().await;
        a.set(true);
    })
    .expect("the destructor's panic does not leave the run");
    assert!(after.get(), "the loop kept running");
    assert_eq!(drops.get(), 1, "the body was dropped");
    assert_eq!(errs.len(), 1, "{:?}", errs.messages());
    let report = &errs.borrow()[0];
    assert!(
        report
            .message
            .starts_with("Exception while dropping a task's body")
            && format!("{:?}", report.exception).contains("the body's destructor panics"),
        "{:?}",
        errs.messages()
    );
    assert!(tr.done() && tr.cancelled(), "the task ended cancelled");
    drop(t);
    lp.close().unwrap();
    assert_eq!(
        drops.get(),
        1,
        "and not again when the loop tore the task down"
    );
}
