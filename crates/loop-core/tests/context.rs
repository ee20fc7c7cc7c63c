//! Context variables (asyncio's contextvars): CORE-23, CORE-37, and the context part of
//! CORE-53.

mod common;

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use common::*;
use loop_core::{
    current_task, yield_now, Context, ContextVar, EventLoop, ExceptionContext, TaskSpec,
};

static REQUEST: ContextVar<String> = ContextVar::new("request");
static DEPTH: ContextVar<u32> = ContextVar::new("depth");

fn request() -> String {
    REQUEST.get().unwrap_or_else(|| "-".into())
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_23_callbacks_run_in_the_context_captured_when_scheduled() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let token = REQUEST.set("r1".into());
    let s = seen.clone();
    lp.call_soon(move |lp| {
        push(&s, format!("a sees {}", request()));
        // A change made by the callback stays in its own context...
        REQUEST.set("changed by a".into());
        push(&s, format!("a now {}", request()));
        // ...and flows down to what it schedules.
        let s = s.clone();
        lp.call_soon(move |_| push(&s, format!("child sees {}", request())))
            .unwrap();
    })
    .unwrap();
    REQUEST.set("r2".into());
    let s = seen.clone();
    lp.call_soon(move |_| push(&s, format!("b sees {}", request())))
        .unwrap();
    run_once(&lp);
    run_once(&lp);
    assert_eq!(
        entries(&seen),
        [
            "a sees r1",
            "a now changed by a",
            "b sees r2",
            "child sees changed by a"
        ]
    );
    // Nothing leaked into the scheduler's context.
    assert_eq!(request(), "r2");
    REQUEST.reset(token);
    assert_eq!(REQUEST.get(), None);

    // An explicit context (asyncio's context=): schedule inside Context::run.
    let mut ctx = Context::empty();
    ctx.run(|| REQUEST.set("explicit".into()));
    let s = seen.clone();
    ctx.run(|| lp.call_soon(move |_| push(&s, format!("explicit sees {}", request()))))
        .unwrap();
    run_once(&lp);
    assert_eq!(entries(&seen).last().unwrap(), "explicit sees explicit");
    assert_eq!(REQUEST.get(), None);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_23_fd_watchers_and_done_callbacks_keep_their_context() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    // A reader added in a context runs in it every time; what it sets persists between runs
    // (one context object per watcher, as asyncio's Handle).
    DEPTH.set(10);
    let (rsock, mut wsock) = UnixStream::pair().unwrap();
    let s = seen.clone();
    lp.add_reader(&rsock, move |_| {
        let d = DEPTH.get().unwrap();
        push(&s, format!("reader {d}"));
        DEPTH.set(d + 1);
    })
    .unwrap();
    // A done-callback runs in the context current when it was added, not at completion.
    let f = lp.create_future::<()>();
    DEPTH.set(20);
    let s = seen.clone();
    f.add_done_callback(move |_| push(&s, format!("done {}", DEPTH.get().unwrap())));
    DEPTH.set(30);
    wsock.write_all(b"x").unwrap();
    run_once(&lp);
    run_once(&lp);
    let f2 = f.clone();
    lp.create_task(async move {
        DEPTH.set(99);
        f2.set_result(()).unwrap();
    })
    .unwrap();
    run_once(&lp);
    run_once(&lp);
    lp.remove_reader(&rsock).unwrap();
    let e = entries(&seen);
    assert_eq!(&e[..2], ["reader 10", "reader 11"]);
    assert!(e.contains(&"done 20".to_string()), "{e:?}");
    assert_eq!(DEPTH.get(), Some(30));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_37_tasks_run_in_a_copy_of_their_creators_context() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    REQUEST.set("creator".into());
    let seen = log();
    let mut tasks = Vec::new();
    for i in 0..2 {
        let s = seen.clone();
        tasks.push(
            lp.create_task(async move {
                push(&s, format!("t{i} starts with {}", request()));
                REQUEST.set(format!("t{i}"));
                yield_now().await;
                // Kept across the task's steps, not disturbed by the other task.
                push(&s, format!("t{i} after a step: {}", request()));
                // Tasks and callbacks created here inherit it.
                let lp = loop_core::get_running_loop().unwrap();
                let inner = lp.create_task(async { request() }).unwrap();
                inner.await.unwrap()
            })
            .unwrap(),
        );
    }
    REQUEST.set("changed after create_task".into());
    let refs: Vec<_> = tasks.iter().map(|t| t.task_ref()).collect();
    assert_eq!(
        refs[0].get_context().get(&REQUEST).as_deref(),
        Some("creator")
    );
    let outs: Vec<String> = tasks
        .into_iter()
        .map(|t| lp.run_until_complete(t).unwrap().unwrap())
        .collect();
    assert_eq!(outs, ["t0", "t1"]);
    assert_eq!(
        entries(&seen),
        [
            "t0 starts with creator",
            "t1 starts with creator",
            "t0 after a step: t0",
            "t1 after a step: t1"
        ]
    );
    assert_eq!(
        request(),
        "changed after create_task",
        "nothing leaked back"
    );
    // get_context() returns the task's context.
    assert_eq!(refs[1].get_context().get(&REQUEST).as_deref(), Some("t1"));
    let inside = lp
        .run_until_complete(async {
            REQUEST.set("inside".into());
            current_task().unwrap().unwrap().get_context().get(&REQUEST)
        })
        .unwrap();
    assert_eq!(inside.as_deref(), Some("inside"));

    // context= : the task factory sees the context and may replace it.
    lp.set_task_factory(Some(Rc::new(|_lp: &EventLoop, mut spec: TaskSpec| {
        assert_eq!(
            spec.context.get(&REQUEST).as_deref(),
            Some("changed after create_task")
        );
        let mut ctx = Context::empty();
        ctx.run(|| REQUEST.set("from the factory".into()));
        spec.context = ctx;
        Ok(spec)
    })));
    let t = lp.create_task(async { request() }).unwrap();
    lp.set_task_factory(None);
    assert_eq!(
        lp.run_until_complete(t).unwrap().unwrap(),
        "from the factory"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_53_the_handler_runs_in_the_context_of_the_failing_object() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_lp: &EventLoop, ctx: &ExceptionContext| {
            s.borrow_mut().push(format!(
                "{}: {}",
                ctx.message.split(' ').next().unwrap(),
                request()
            ))
        },
    )));
    REQUEST.set("outer".into());
    // A failing callback: the handler runs in the callback's context.
    let mut ctx = Context::empty();
    ctx.run(|| REQUEST.set("callback ctx".into()));
    ctx.run(|| lp.call_soon(|_| panic!("x"))).unwrap();
    run_once(&lp);
    // A report about a task: in the task's context.
    let t = lp
        .create_task(async {
            REQUEST.set("task ctx".into());
        })
        .unwrap();
    let tr = t.task_ref();
    lp.run_until_complete(t).unwrap().unwrap();
    lp.call_exception_handler(&ExceptionContext::new("Task report").with_task(tr));
    // Otherwise: the current context.
    lp.call_exception_handler(&ExceptionContext::new("Plain report"));
    assert_eq!(
        *seen.borrow(),
        ["Exception: callback ctx", "Task: task ctx", "Plain: outer"]
    );
    assert_eq!(request(), "outer");
}

#[test]
fn context_vars_basics() {
    let _w = loop_testkit::watchdog();
    static V: ContextVar<u8> = ContextVar::new("v");
    static W: ContextVar<u8> = ContextVar::new("w");
    assert_eq!(V.get(), None);
    let t1 = V.set(1);
    W.set(9);
    let snapshot = Context::current();
    let t2 = V.set(2);
    assert_eq!((V.get(), W.get()), (Some(2), Some(9)));
    assert_eq!(snapshot.get(&V), Some(1), "snapshots are copies");
    assert_eq!(snapshot.len(), 2);
    V.reset(t2);
    assert_eq!(V.get(), Some(1));
    V.reset(t1);
    assert_eq!(V.get(), None);
    // A panic inside Context::run restores the previous context.
    let mut ctx = Context::empty();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ctx.run(|| {
            V.set(7);
            panic!("inside run")
        })
    }));
    assert!(r.is_err());
    assert_eq!(V.get(), None);
    assert_eq!(ctx.get(&V), Some(7));
    assert_eq!(format!("{V:?}"), "<ContextVar name=\"v\">");
}

/// CORE-23: what a callback sets stays in that callback also when it is the first context
/// variable ever set on the thread: the loop's own work after it (here an event source that
/// schedules a callback) is back in the run's context, so the callback it schedules does not
/// see the value.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_23_the_first_variable_set_on_a_thread_stays_in_its_callback() {
    let _w = loop_testkit::watchdog();
    use loop_core::internal::LoopInternals;
    use std::cell::Cell;
    use std::time::Instant;

    struct Probe {
        armed: Cell<bool>,
        seen: Log,
    }
    impl loop_core::internal::Source for Probe {
        fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
            // Due at once while armed, so that the loop does not block in the poll.
            self.armed.get().then(Instant::now)
        }
        fn dispatch(&self, lp: &EventLoop, _now: Instant) {
            if self.armed.take() {
                let s = self.seen.clone();
                lp.call_soon(move |lp| {
                    push(&s, format!("source's callback sees {}", request()));
                    lp.stop();
                })
                .unwrap();
            }
        }
        fn close(&self, _lp: &EventLoop) {}
    }

    let lp = EventLoop::new().unwrap();
    let seen = log();
    let probe = Rc::new(Probe {
        armed: Cell::new(false),
        seen: seen.clone(),
    });
    lp.add_source(probe.clone());
    let (p, s) = (probe.clone(), seen.clone());
    lp.call_soon(move |_| {
        REQUEST.set("set by a".into());
        push(&s, format!("a sees {}", request()));
        p.armed.set(true);
    })
    .unwrap();
    // One run: the source dispatches in the iteration after `a`, inside the same
    // `run_forever` (which restores its caller's context only when it returns).
    let wd = loop_testkit::watchdog_for(&lp).limit(30);
    lp.run_forever().unwrap();
    drop(wd);
    assert_eq!(
        entries(&seen),
        ["a sees set by a", "source's callback sees -"]
    );
    assert_eq!(REQUEST.get(), None);
    lp.close().unwrap();
}

/// CORE-23: `Handle::run` runs the callback in its own context; what it sets does not stay
/// in the caller's, also when it is the first context variable set on the thread.
#[test]
fn core_23_handle_run_keeps_what_the_callback_sets_to_itself() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let s = seen.clone();
    let h = loop_core::Handle::new(move |_| {
        REQUEST.set("set by the callback".into());
        push(&s, request());
    });
    h.run(&lp);
    assert_eq!(entries(&seen), ["set by the callback"]);
    assert_eq!(
        REQUEST.get(),
        None,
        "the callback's value leaked to its caller"
    );
    lp.close().unwrap();
}

/// An event source for the threadsafe-callback tests: once the flag says the callback from
/// another thread ran, its next dispatch records the context it sees and stops the loop.
struct RemoteProbe {
    /// Set by the threadsafe callback.
    remote_ran: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The dispatch recorded what it saw.
    done: std::cell::Cell<bool>,
    /// What the dispatch saw.
    seen: Log,
}

impl loop_core::internal::Source for RemoteProbe {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<std::time::Instant> {
        // Due at once until done, so that the loop does not block in the poll.
        (!self.done.get()).then(std::time::Instant::now)
    }
    fn dispatch(&self, lp: &EventLoop, _now: std::time::Instant) {
        use std::sync::atomic::Ordering;
        if self.remote_ran.load(Ordering::SeqCst) && !self.done.replace(true) {
            push(&self.seen, format!("source sees {}", request()));
            lp.stop();
        }
    }
    fn close(&self, _lp: &EventLoop) {}
}

/// CORE-23: a callback from another thread (`call_soon_threadsafe`) runs in an empty context,
/// and once it returns the loop thread's context is the one it was before: what runs next
/// outside any callback (a source's dispatch) still sees the context `run_forever` was called
/// in.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_23_a_threadsafe_callback_leaves_the_loop_threads_context_as_it_was() {
    let _w = loop_testkit::watchdog();
    use loop_core::internal::LoopInternals;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let lp = EventLoop::new().unwrap();
    let token = REQUEST.set("outer".into());
    let seen = log();
    let remote_ran = Arc::new(AtomicBool::new(false));
    lp.add_source(Rc::new(RemoteProbe {
        remote_ran: remote_ran.clone(),
        done: Cell::new(false),
        seen: seen.clone(),
    }));
    let in_remote = Arc::new(Mutex::new(String::new()));
    let (r, flag) = (in_remote.clone(), remote_ran.clone());
    lp.remote()
        .call_soon_threadsafe(move |_| {
            *r.lock().unwrap() = request();
            flag.store(true, Ordering::SeqCst);
        })
        .unwrap();
    let wd = loop_testkit::watchdog_for(&lp).limit(30);
    lp.run_forever().unwrap();
    drop(wd);
    assert_eq!(*in_remote.lock().unwrap(), "-");
    assert_eq!(entries(&seen), ["source sees outer"]);
    assert_eq!(request(), "outer");
    REQUEST.reset(token);
    lp.close().unwrap();
}

/// CORE-23: an I/O handler runs in an empty context, and what it sets does not outlive it:
/// a source dispatched after it in the same iteration, and the caller of `run_forever`, see
/// the context from before — whether contexts were in use on the thread yet or not.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_23_an_io_handler_runs_in_an_empty_context_and_leaves_it_as_it_was() {
    let _w = loop_testkit::watchdog();
    use loop_core::internal::{IoHandler, LoopInternals, Registered, Source};
    use loop_core::{Mode, Readiness};
    use std::cell::Cell;
    use std::time::Instant;

    struct Handler(Log);
    impl IoHandler for Handler {
        fn ready(&self, _lp: &EventLoop, _r: Readiness) {
            push(&self.0, format!("handler sees {}", request()));
            REQUEST.set("set by the handler".into());
        }
    }
    struct Probe {
        armed: Cell<bool>,
        seen: Log,
    }
    impl Source for Probe {
        fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
            None
        }
        fn dispatch(&self, _lp: &EventLoop, _now: Instant) {
            if self.armed.replace(false) {
                push(&self.seen, format!("source sees {}", request()));
            }
        }
        fn close(&self, _lp: &EventLoop) {}
    }

    let lp = EventLoop::new().unwrap();
    let seen = log();
    let probe = Rc::new(Probe {
        armed: Cell::new(false),
        seen: seen.clone(),
    });
    lp.add_source(probe.clone());
    let (r, mut w) = UnixStream::pair().unwrap();
    let h = Rc::new(Handler(seen.clone()));
    let _reg = Registered::new(&lp, r, Mode::Edge, true, false, "probe", h).unwrap();
    // Contexts not in use on this thread yet.
    assert_eq!(REQUEST.get(), None);
    w.write_all(b"x").unwrap();
    probe.armed.set(true);
    run_once(&lp);
    assert_eq!(request(), "-");
    // Contexts in use: the loop was run in a context with a value.
    let token = REQUEST.set("outer".into());
    w.write_all(b"x").unwrap();
    probe.armed.set(true);
    run_once(&lp);
    assert_eq!(request(), "outer");
    REQUEST.reset(token);
    assert_eq!(
        entries(&seen),
        [
            "handler sees -",
            "source sees -",
            "handler sees -",
            "source sees outer"
        ]
    );
}

/// CORE-23: a callback from another thread that starts using contexts on a thread that did not
/// use them yet leaves nothing behind: the next threadsafe callback starts in an empty
/// context, and so does what runs next outside any callback (a source's dispatch in the next
/// iteration of the same `run_forever`).
#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn core_23_a_threadsafe_callback_that_starts_using_contexts_leaves_no_value_behind() {
    let _w = loop_testkit::watchdog();
    use loop_core::internal::LoopInternals;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let lp = EventLoop::new().unwrap();
    let remote_ran = Arc::new(AtomicBool::new(false));
    let probe = Rc::new(RemoteProbe {
        remote_ran: remote_ran.clone(),
        done: Cell::new(false),
        seen: log(),
    });
    lp.add_source(probe.clone());
    // Contexts not in use on this thread yet.
    assert_eq!(REQUEST.get(), None);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let remote = lp.remote();
    let s = seen.clone();
    remote
        .call_soon_threadsafe(move |_| {
            s.lock().unwrap().push(request());
            REQUEST.set("set by the callback".into());
        })
        .unwrap();
    let s = seen.clone();
    remote
        .call_soon_threadsafe(move |_| {
            s.lock().unwrap().push(request());
            remote_ran.store(true, Ordering::SeqCst);
        })
        .unwrap();
    let wd = loop_testkit::watchdog_for(&lp).limit(30);
    lp.run_forever().unwrap();
    drop(wd);
    assert_eq!(*seen.lock().unwrap(), ["-", "-"]);
    assert_eq!(
        entries(&probe.seen),
        ["source sees -"],
        "the callback's value outlived it"
    );
    lp.close().unwrap();
}
