//! call_soon, call_soon_threadsafe, Handle: CORE-18 .. CORE-25.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]
// The `(&Probe::<T>::new()).is_send()` probes need that borrow: it is what makes method
// resolution fall back to the `&Probe` impl when `T` lacks the trait.
#![allow(clippy::needless_borrow)]

mod common;

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::*;
use loop_core::internal::LoopInternals;
use loop_core::{
    ConcurrentFuture, Error, EventLoop, Handle, LoopFuture, Remote, RemoteHandle, Task, TaskRef,
};

#[test]
fn core_18_call_soon_runs_each_callback_once_in_fifo_order() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..100 {
        let o = order.clone();
        let expected = lp.clone();
        handles.push(
            lp.call_soon(move |lp| {
                // The callback gets the loop running it, and exactly what it captured.
                assert!(lp.ptr_eq(&expected));
                o.borrow_mut().push(i)
            })
            .unwrap(),
        );
    }
    assert!(handles.iter().all(|h| !h.cancelled()));
    run_once(&lp);
    run_once(&lp);
    errs.assert_none();
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
    assert_eq!(lp.stats().callbacks, 100);
}

#[test]
fn core_19_call_soon_threadsafe_wakes_a_blocked_loop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        remote.call_soon_threadsafe(|lp| lp.stop()).unwrap()
    });
    let start = Instant::now();
    lp.run_forever().unwrap();
    let h = t.join().unwrap();
    assert!(h.started());
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "the loop blocked meanwhile"
    );
    // It blocked: a handful of iterations, not a spin.
    assert!(lp.stats().iterations < 10, "{:?}", lp.stats());
    drop(wd);
}

#[test]
fn core_19_call_soon_threadsafe_from_many_threads() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    const THREADS: usize = 4;
    const PER: usize = 2000;
    let got: Arc<Mutex<Vec<(usize, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let remote = lp.remote();
        let got = got.clone();
        let done = done.clone();
        threads.push(std::thread::spawn(move || {
            for i in 0..PER {
                let got = got.clone();
                let done = done.clone();
                remote
                    .call_soon_threadsafe(move |lp| {
                        got.lock().unwrap().push((t, i));
                        if done.fetch_add(1, Ordering::SeqCst) + 1 == THREADS * PER {
                            lp.stop();
                        }
                    })
                    .unwrap();
            }
        }));
    }
    lp.run_forever().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let got = got.lock().unwrap();
    assert_eq!(got.len(), THREADS * PER, "each callback ran exactly once");
    // Per thread, FIFO.
    for t in 0..THREADS {
        let mine: Vec<usize> = got
            .iter()
            .filter(|(x, _)| *x == t)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..PER).collect::<Vec<_>>());
    }
    drop(wd);
}

#[test]
fn core_19_fifo_with_call_soon_follows_enqueue_time() {
    let _w = loop_testkit::watchdog();
    // Same thread: call_soon_threadsafe then call_soon -> that order.
    let lp = EventLoop::new().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    lp.call_soon_threadsafe(move |_| o.lock().unwrap().push("hello"))
        .unwrap();
    let o = order.clone();
    lp.call_soon(move |lp| {
        o.lock().unwrap().push("world");
        lp.stop()
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*order.lock().unwrap(), ["hello", "world"]);

    // Through a Remote used on the loop's own thread.
    let o = order.clone();
    lp.remote()
        .call_soon_threadsafe(move |_| o.lock().unwrap().push("remote"))
        .unwrap();
    let o = order.clone();
    lp.call_soon(move |_| o.lock().unwrap().push("local"))
        .unwrap();
    run_once(&lp);
    assert_eq!(order.lock().unwrap()[2..], ["remote", "local"]);

    // Another thread enqueues, then tells the loop's thread, which then calls call_soon:
    // the thread's callback was enqueued first, so it runs first.
    let remote = lp.remote();
    let (tx, rx) = mpsc::channel();
    let o = order.clone();
    let t = std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(move |_| o.lock().unwrap().push("other thread"))
            .unwrap();
        tx.send(()).unwrap();
    });
    let o = order.clone();
    lp.call_soon(move |lp| {
        rx.recv().unwrap();
        let o = o.clone();
        lp.call_soon(move |_| o.lock().unwrap().push("after it"))
            .unwrap();
    })
    .unwrap();
    run_once(&lp);
    run_once(&lp);
    t.join().unwrap();
    assert_eq!(order.lock().unwrap()[4..], ["other thread", "after it"]);
}

#[test]
fn core_19_remote_handle_cancel_races_the_run() {
    let _w = loop_testkit::watchdog();
    // cancel() from another thread either wins before the callback starts (it never runs) or
    // has no effect (it returns false and the callback runs to the end).
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    const ROUNDS: usize = 300;
    let (tx, rx) = mpsc::channel::<(RemoteHandle, Arc<AtomicBool>)>();
    let results = Arc::new(Mutex::new(Vec::new()));
    let res = results.clone();
    let canceller = std::thread::spawn(move || {
        for (h, ran) in rx {
            let won = h.cancel();
            res.lock().unwrap().push((won, h, ran));
        }
    });
    let remote = lp.remote();
    let producer = std::thread::spawn(move || {
        for i in 0..ROUNDS {
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let h = remote
                .call_soon_threadsafe(move |_| {
                    // Work long enough for the race to go either way.
                    let until = Instant::now() + Duration::from_micros(20);
                    while Instant::now() < until {}
                    r.store(true, Ordering::SeqCst);
                })
                .unwrap();
            tx.send((h, ran)).unwrap();
            if i % 16 == 0 {
                std::thread::yield_now();
            }
        }
        drop(tx);
        remote.call_soon_threadsafe(|lp| lp.stop()).unwrap();
    });
    lp.run_forever().unwrap();
    producer.join().unwrap();
    canceller.join().unwrap();
    // Everything queued before the stop ran or was skipped; run what is left.
    run_once(&lp);
    let results = results.lock().unwrap();
    assert_eq!(results.len(), ROUNDS);
    for (won, h, ran) in results.iter() {
        let ran = ran.load(Ordering::SeqCst);
        assert_eq!(*won, !ran, "cancel won={won} but ran={ran}");
        assert_eq!(h.cancelled(), *won);
        assert_eq!(h.started(), ran);
    }
    drop(wd);
}

#[test]
fn core_20_wakeups_coalesce_and_draining_stops_at_would_block() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    let remote = lp.remote();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    // 10 000 wake-ups are written while the loop is not running, so they are all waiting when
    // it starts: how many iterations it takes does not depend on thread scheduling.
    std::thread::spawn(move || {
        for _ in 0..10_000 {
            let c = c.clone();
            remote
                .call_soon_threadsafe(move |_| {
                    c.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
        }
    })
    .join()
    .unwrap();
    let remote = lp.remote();
    let stopper = std::thread::spawn(move || {
        // Let the loop drain everything and block again, then stop it.
        std::thread::sleep(Duration::from_millis(100));
        remote.stop().unwrap();
    });
    lp.run_forever().unwrap();
    stopper.join().unwrap();
    assert_eq!(count.load(Ordering::Relaxed), 10_000);
    let st = lp.stats();
    // The 10 000 wake-ups were one eventfd read and one batch; after draining, the loop
    // blocked instead of spinning on a readable eventfd (that would be thousands of
    // iterations in 100 ms).
    assert!(st.iterations < 20, "{st:?}");
    assert!(st.poll_time >= Duration::from_millis(50), "{st:?}");
    drop(wd);
}

#[test]
fn core_20_wakeups_racing_close_never_fail_loudly() {
    let _w = loop_testkit::watchdog();
    for _ in 0..20 {
        let lp = EventLoop::new().unwrap();
        let barrier = Arc::new(Barrier::new(3));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let remote = lp.remote();
            let b = barrier.clone();
            threads.push(std::thread::spawn(move || {
                b.wait();
                let mut closed = 0;
                for _ in 0..2_000 {
                    match remote.call_soon_threadsafe(|_| {}) {
                        Ok(_) => {}
                        Err(Error::Closed) => closed += 1,
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
                closed
            }));
        }
        barrier.wait();
        lp.close().unwrap();
        for t in threads {
            t.join().expect("a wake-up racing close() panicked");
        }
        assert!(matches!(
            lp.remote().call_soon_threadsafe(|_| {}),
            Err(Error::Closed)
        ));
    }
}

#[test]
fn core_21_handle_cancel() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let (dropped, flag) = drop_flag();
    let h = lp
        .call_soon(move |_| {
            let _f = &flag;
            r.set(true)
        })
        .unwrap();
    assert!(!h.cancelled());
    h.cancel();
    assert!(h.cancelled());
    assert!(
        dropped.get(),
        "the callback and what it captured are released at cancel time"
    );
    h.cancel();
    assert!(h.cancelled());
    let clone = h.clone();
    assert!(clone.cancelled() && clone.ptr_eq(&h));
    run_once(&lp);
    assert!(!ran.get());
    assert_eq!(lp.stats().callbacks, 0, "a cancelled handle is skipped");
    assert!(format!("{h:?}").contains("cancelled"));

    // A handle made with Handle::new and queued with schedule() behaves the same.
    let ran2 = Rc::new(Cell::new(false));
    let r2 = ran2.clone();
    let h = Handle::new(move |_| r2.set(true));
    lp.schedule(&h).unwrap();
    h.cancel();
    run_once(&lp);
    assert!(!ran2.get());

    // Cancelling after it ran is a no-op.
    let h = lp.call_soon(|_| {}).unwrap();
    run_once(&lp);
    h.cancel();
    assert!(h.cancelled());
}

#[test]
fn core_22_panicking_callback_is_reported_and_the_loop_goes_on() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let after = Rc::new(Cell::new(false));
    let line = line!() + 1;
    lp.call_soon(|_| panic!("callback failure")).unwrap();
    let a = after.clone();
    lp.call_soon(move |_| a.set(true)).unwrap();
    run_once(&lp);
    assert!(after.get(), "the next callback ran");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "reported once");
    let ctx = &seen[0];
    assert!(
        ctx.message.starts_with("Exception in callback"),
        "{}",
        ctx.message
    );
    let here = format!("{}:{line}", file!());
    assert!(ctx.message.contains(&here), "{} / {here}", ctx.message);
    match &ctx.exception {
        Some(Error::Exception(e)) => {
            assert!(e.is_panic());
            assert_eq!(e.to_string(), "panic: callback failure");
        }
        other => panic!("{other:?}"),
    }
    assert!(ctx.handle.as_deref().unwrap().contains(&here));
    assert!(
        ctx.source_location.is_none(),
        "no source_traceback outside debug mode"
    );
    drop(seen);

    // In debug mode the context carries where the callback was scheduled.
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    let seen = record_exceptions(&lp);
    let line = line!() + 1;
    lp.call_soon(|_| panic!("again")).unwrap();
    run_once(&lp);
    let loc = seen.borrow()[0].source_location.unwrap();
    assert_eq!((loc.file(), loc.line()), (file!(), line));
}

#[test]
fn core_22_panicking_remote_callback_is_reported() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let remote = lp.remote();
    std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(|_| panic!("remote failure"))
            .unwrap()
    })
    .join()
    .unwrap();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    lp.call_soon(move |_| a.set(true)).unwrap();
    run_once(&lp);
    assert!(after.get());
    assert_eq!(messages(&seen).len(), 1);
    assert!(
        matches!(&seen.borrow()[0].exception, Some(Error::Exception(e)) if e.to_string() == "panic: remote failure")
    );
}

// Autoref-specialization probes: `(&Probe::<T>::new()).is_send()` resolves to the `Send` impl
// when `T: Send` and to the fallback otherwise, at compile time, for a concrete `T`.
struct Probe<T>(PhantomData<T>);
impl<T> Probe<T> {
    fn new() -> Self {
        Probe(PhantomData)
    }
}
trait IsSend {
    fn is_send(&self) -> bool {
        true
    }
}
impl<T: Send> IsSend for Probe<T> {}
trait NotSend {
    fn is_send(&self) -> bool {
        false
    }
}
impl<T> NotSend for &Probe<T> {}
trait IsSync {
    fn is_sync(&self) -> bool {
        true
    }
}
impl<T: Sync> IsSync for Probe<T> {}
trait NotSync {
    fn is_sync(&self) -> bool {
        false
    }
}
impl<T> NotSync for &Probe<T> {}
trait IsCallback {
    fn is_callback(&self) -> bool {
        true
    }
}
impl<F: FnOnce(&EventLoop) + 'static> IsCallback for Probe<F> {}
trait NotCallback {
    fn is_callback(&self) -> bool {
        false
    }
}
impl<T> NotCallback for &Probe<T> {}

#[test]
fn core_24_event_loop_is_not_send_only_remote_crosses_threads() {
    let _w = loop_testkit::watchdog();
    // The probe itself works.
    assert!((&Probe::<i32>::new()).is_send());
    assert!(!(&Probe::<Rc<i32>>::new()).is_send());
    // The loop and its local handles stay on their thread: a call from another thread is a
    // compile error, so there is nothing to check at run time (asyncio's debug-mode check).
    assert!(!(&Probe::<EventLoop>::new()).is_send());
    assert!(!(&Probe::<EventLoop>::new()).is_sync());
    assert!(!(&Probe::<Handle>::new()).is_send());
    assert!(!(&Probe::<LoopFuture<i32>>::new()).is_send());
    assert!(!(&Probe::<Task<i32>>::new()).is_send());
    assert!(!(&Probe::<TaskRef>::new()).is_send());
    // What crosses threads.
    assert!((&Probe::<Remote>::new()).is_send());
    assert!((&Probe::<Remote>::new()).is_sync());
    assert!((&Probe::<RemoteHandle>::new()).is_send());
    assert!((&Probe::<RemoteHandle>::new()).is_sync());
    assert!((&Probe::<ConcurrentFuture<i32>>::new()).is_send());
    assert!((&Probe::<ConcurrentFuture<i32>>::new()).is_sync());
    assert!((&Probe::<Error>::new()).is_send());
    assert!((&Probe::<Error>::new()).is_sync());

    // call_soon_threadsafe is never checked: it works from the loop's thread, another
    // thread, debug mode or not.
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    let n = Arc::new(AtomicUsize::new(0));
    let n1 = n.clone();
    lp.call_soon_threadsafe(move |_| {
        n1.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let remote = lp.remote();
    let n2 = n.clone();
    std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(move |lp| {
                n2.fetch_add(1, Ordering::SeqCst);
                lp.stop()
            })
            .unwrap()
    })
    .join()
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

async fn an_async_fn() {}

#[test]
fn core_25_only_plain_callbacks_are_accepted() {
    let _w = loop_testkit::watchdog();
    // asyncio's debug-mode type checks ("a callable object was expected", "coroutines cannot
    // be used with call_soon()") are compile errors here (see the compile_fail examples of
    // `EventLoop::call_soon`). The probe mirrors call_soon's bound.
    assert!((&Probe::<fn(&EventLoop)>::new()).is_callback());
    assert!(!(&Probe::<i32>::new()).is_callback());
    assert!(!(&Probe::<fn(&EventLoop) -> std::future::Ready<()>>::new()).is_callback());
    fn type_of<T>(_: &T) -> Probe<T> {
        Probe::new()
    }
    let coro = an_async_fn();
    assert!(!(&type_of(&coro)).is_callback());
    assert!(!(&Probe::<fn() -> std::future::Ready<()>>::new()).is_callback());
    drop(coro);

    // At run time, in debug mode, a plain callback runs and a future goes through create_task.
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    lp.call_soon(move |_| r.set(r.get() + 1)).unwrap();
    let r = ran.clone();
    let t = lp
        .create_task(async move {
            an_async_fn().await;
            r.set(r.get() + 1)
        })
        .unwrap();
    lp.run_until_complete(t).unwrap().unwrap();
    assert_eq!(ran.get(), 2);
}

/// CORE-19 with CORE-21: a `call_soon_threadsafe` handle cancelled before the loop reaches it
/// reports the won cancel (`true`, then `false` for a repeat) and never runs; one cancelled
/// after it ran reports `false`.
#[test]
fn core_19_remote_handle_cancel_reports_whether_it_won() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let early = std::thread::spawn(move || {
        let h = remote
            .call_soon_threadsafe(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let first = h.cancel();
        let second = h.cancel();
        (h, first, second)
    })
    .join()
    .unwrap();
    let (h, first, second) = early;
    assert!(first, "a cancel before the run must win");
    assert!(!second, "a second cancel has nothing to win");
    assert!(h.cancelled() && !h.started());
    let r = ran.clone();
    let late = lp
        .remote()
        .call_soon_threadsafe(move |_| {
            r.fetch_add(10, Ordering::SeqCst);
        })
        .unwrap();
    run_once(&lp);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        10,
        "only the second callback ran"
    );
    assert!(late.started());
    assert!(!late.cancel(), "a cancel after the run cannot win");
    assert!(!late.cancelled());
    assert_eq!(
        format!("{late:?}"),
        format!("<RemoteHandle scheduled at {}>", late.location())
    );
    lp.close().unwrap();
}

/// CORE-18 / CORE-21: handles are the same scheduled callback only as clones of each other:
/// cancelling one cancels its clones and no other handle.
#[test]
fn core_21_a_handle_is_only_its_clones() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let log = log();
    let (a_log, b_log) = (log.clone(), log.clone());
    let a = lp.call_soon(move |_| push(&a_log, "a")).unwrap();
    let b = lp.call_soon(move |_| push(&b_log, "b")).unwrap();
    let a2 = a.clone();
    assert!(a.ptr_eq(&a2));
    assert!(!a.ptr_eq(&b), "two scheduled callbacks are the same handle");
    a2.cancel();
    assert!(a.cancelled() && !b.cancelled());
    run_once(&lp);
    assert_eq!(entries(&log), ["b"]);
    lp.close().unwrap();
}

/// Schedules a callback that logs `what`; every call gives a callback of the same type.
fn log_soon(lp: &EventLoop, log: &Log, what: &'static str) -> Handle {
    let log = log.clone();
    lp.call_soon(move |_| push(&log, what)).unwrap()
}

/// CORE-18 / CORE-21: the loop keeps the allocation of a handle that ran (or was skipped as
/// cancelled) and that nothing else holds, for the next callback of the same type. A handle the
/// user still holds is never reused: it stays its own, and cancelling it touches no later
/// handle. A reused handle starts afresh (not cancelled), and what a spent one ran with (its
/// context) is released when it is done, not kept for the reuse.
#[test]
fn core_19_spent_remote_handles_are_reused_only_when_nobody_holds_them() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let ran = Arc::new(Mutex::new(Vec::new()));
    // One closure type for every call, so that a spent allocation fits the next one.
    let call = |name: &'static str, token: Arc<()>| {
        let r = ran.clone();
        remote
            .call_soon_threadsafe(move |_| {
                drop(token);
                r.lock().unwrap().push(name);
            })
            .unwrap()
    };
    let token = Arc::new(());

    // Held after its run: it stays started, and the next call gets another allocation (a
    // reused one would read as pending again).
    let held = call("a", token.clone());
    run_once(&lp);
    assert!(held.started());
    let b = call("b", token.clone());
    assert!(
        held.started() && !held.cancelled(),
        "a held remote handle was reused"
    );
    assert!(!b.started() && !b.cancelled());
    run_once(&lp);
    assert!(held.started() && b.started());
    drop(b);

    // Cancelled and dropped before its turn: its closure (and what it captured) is released at
    // once; then its allocation may serve the next call, which starts pending and runs.
    let skipped = call("skipped", token.clone());
    assert!(skipped.cancel());
    drop(skipped);
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "a cancelled callback kept its closure"
    );
    run_once(&lp);
    // The loop hands spent allocations back when it next takes work from other threads.
    drop(call("b2", token.clone()));
    run_once(&lp);
    let c = call("c", token.clone());
    assert!(
        !c.cancelled() && !c.started(),
        "a reused remote handle starts pending"
    );
    run_once(&lp);
    assert!(c.started());
    assert_eq!(*ran.lock().unwrap(), ["a", "b", "b2", "c"]);
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "a spent remote callback kept what its closure captured"
    );
    lp.close().unwrap();
}

#[test]
fn core_21_spent_handles_are_reused_only_when_nobody_holds_them() {
    let _w = loop_testkit::watchdog();
    static V: loop_core::ContextVar<Rc<DropFlag>> = loop_core::ContextVar::new("v");
    let lp = EventLoop::new().unwrap();
    let log = log();

    // Held after its run: the next callback gets another handle.
    let held = log_soon(&lp, &log, "a");
    run_once(&lp);
    let b = log_soon(&lp, &log, "b");
    assert!(!b.ptr_eq(&held), "a handle the user holds was reused");
    held.cancel();
    assert!(held.cancelled() && !b.cancelled());
    run_once(&lp);
    assert_eq!(entries(&log), ["a", "b"]);
    drop(b);

    // Cancelled and dropped before its turn: skipped, then its allocation may serve the next
    // callback, which must run.
    log_soon(&lp, &log, "skipped").cancel();
    run_once(&lp);
    let c = log_soon(&lp, &log, "c");
    assert!(!c.cancelled(), "a reused handle starts not cancelled");
    run_once(&lp);
    assert_eq!(entries(&log), ["a", "b", "c"]);
    drop(c);

    // The context a callback ran in is released once it has run.
    let (dropped, flag) = drop_flag();
    let mut ctx = loop_core::Context::empty();
    ctx.run(|| {
        V.set(Rc::new(flag));
        drop(log_soon(&lp, &log, "d"));
    });
    drop(ctx);
    assert!(!dropped.get(), "the queued callback holds its context");
    run_once(&lp);
    assert_eq!(entries(&log), ["a", "b", "c", "d"]);
    assert!(dropped.get(), "a spent handle kept its context alive");
    lp.close().unwrap();
}

/// A callback of one closure type that records the value of `var` it runs with.
fn record_soon(
    lp: &EventLoop,
    var: &'static loop_core::ContextVar<u32>,
    seen: &Rc<RefCell<Vec<Option<u32>>>>,
) {
    let seen = seen.clone();
    drop(
        lp.call_soon(move |_| seen.borrow_mut().push(var.get()))
            .unwrap(),
    );
}

/// CORE-21 / CORE-23: a callback whose handle reuses a spent one's allocation runs in the
/// context current when it was scheduled, not in the one the spent callback had (released) and
/// not in none.
#[test]
fn core_21_a_reused_handle_runs_in_its_own_context() {
    let _w = loop_testkit::watchdog();
    static N: loop_core::ContextVar<u32> = loop_core::ContextVar::new("n");
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    for n in [1, 2] {
        let mut ctx = loop_core::Context::empty();
        ctx.run(|| {
            N.set(n);
            record_soon(&lp, &N, &seen);
        });
        run_once(&lp);
    }
    record_soon(&lp, &N, &seen);
    run_once(&lp);
    assert_eq!(*seen.borrow(), [Some(1), Some(2), None]);
    lp.close().unwrap();
}
