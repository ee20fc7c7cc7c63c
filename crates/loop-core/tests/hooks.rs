//! The embedding's hooks into an iteration: the wait hook around the blocking poll
//! (`set_wait_hook`), and one iteration at a time (`run_once`, CORE-05 / CORE-07).

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{entries, log, push, watchdog, Log};
use loop_core::internal::{LoopInternals, Source};
use loop_core::{Error, EventLoop};

/// A hook that logs `wait <` before the wait and `wait >` after it, and tells `first` (once)
/// that the loop is about to block.
fn logging_hook(lp: &EventLoop, l: &Log, first: Option<mpsc::Sender<()>>) {
    let l = l.clone();
    let mut first = first;
    lp.set_wait_hook(move |wait: &mut dyn FnMut()| {
        push(&l, "wait <");
        if let Some(tx) = first.take() {
            tx.send(()).unwrap();
        }
        wait();
        push(&l, "wait >");
    });
}

/// The hook wraps the wait that may block, and only it: callbacks run outside it (a callback
/// that another thread queues while the loop waits runs after the hook's "after" part), and a
/// busy loop (callbacks ready) never calls it.
#[test]
fn core_hooks_wait_hook_wraps_only_the_blocking_wait() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let l = log();
    let (tx, rx) = mpsc::channel();
    logging_hook(&lp, &l, Some(tx));

    // Busy: a chain of 200 callbacks and a stop, all ready; no wait may block.
    fn chain(lp: &EventLoop, n: u32, l: Log) {
        if n == 0 {
            push(&l, "chain done");
            lp.stop();
            return;
        }
        lp.call_soon(move |lp| chain(lp, n - 1, l)).unwrap();
    }
    let l2 = l.clone();
    lp.call_soon(move |lp| chain(lp, 200, l2)).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(entries(&l), ["chain done"]);

    // Idle: the loop blocks until another thread (told by the hook) queues a callback.
    l.borrow_mut().clear();
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        rx.recv().unwrap();
        remote
            .call_soon_threadsafe(|lp| {
                let l = lp.extension(|_| Cell::new(0u32));
                l.set(l.get() + 1);
                lp.stop();
            })
            .unwrap();
    });
    lp.run_forever().unwrap();
    t.join().unwrap();
    assert_eq!(lp.extension(|_| Cell::new(0u32)).get(), 1);
    assert_eq!(entries(&l), ["wait <", "wait >"]);
    lp.close().unwrap();
}

/// A hook that returns without calling the wait does not make the loop spin: the loop waits
/// after the hook returns. A cleared hook is not called again.
#[test]
fn core_hooks_wait_hook_that_skips_the_wait_and_clearing_it() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let calls = Rc::new(Cell::new(0u32));
    let c = calls.clone();
    lp.set_wait_hook(move |_wait: &mut dyn FnMut()| c.set(c.get() + 1));
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote.stop().unwrap();
    });
    let polls = lp.stats().polls;
    lp.run_forever().unwrap();
    t.join().unwrap();
    // One blocking poll that the remote stop ended (a spinning loop would poll thousands of
    // times in 20 ms); the hook saw each wait.
    let polled = lp.stats().polls - polls;
    assert!((1..=3).contains(&polled), "{polled} polls");
    assert_eq!(u64::from(calls.get()), polled);

    assert!(lp.clear_wait_hook());
    assert!(!lp.clear_wait_hook());
    let remote = lp.remote();
    let t = std::thread::spawn(move || remote.stop().unwrap());
    lp.run_forever().unwrap();
    t.join().unwrap();
    assert_eq!(u64::from(calls.get()), polled);
    lp.close().unwrap();
}

/// A source with one deadline: queues a stop when it is due.
struct Due {
    at: Instant,
    fired: Cell<bool>,
}

impl Source for Due {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        (!self.fired.get()).then_some(self.at)
    }
    fn dispatch(&self, lp: &EventLoop, now: Instant) {
        if now >= self.at && !self.fired.get() {
            self.fired.set(true);
            lp.schedule(&loop_core::Handle::new(|lp| lp.stop()))
                .unwrap();
        }
    }
    fn close(&self, _lp: &EventLoop) {}
}

/// CORE-07, one iteration at a time: with nothing ready, `run_once` waits for the next
/// deadline (it does not spin through it), queues what is due and runs it; it reports the
/// stop request, which is then consumed. The loop is running during the iteration only.
#[test]
fn core_07_run_once_waits_for_the_next_deadline_and_reports_the_stop() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let due = Rc::new(Due {
        at: Instant::now() + Duration::from_millis(30),
        fired: Cell::new(false),
    });
    lp.add_source(due.clone());
    let inside = Rc::new(Cell::new(false));
    let i = inside.clone();
    lp.call_soon(move |lp| i.set(lp.is_running() && EventLoop::current().is_ok()))
        .unwrap();
    let mut iterations = 0;
    while !lp.run_once().unwrap() {
        iterations += 1;
        assert!(!lp.is_running());
        assert!(iterations < 50, "run_once spins instead of waiting");
    }
    assert!(due.fired.get());
    assert!(inside.get());
    assert!(Instant::now() >= due.at);
    // The stop was consumed: the next iteration does not report it.
    lp.call_soon(|_| {}).unwrap();
    assert!(!lp.run_once().unwrap());
    lp.close().unwrap();
}

/// CORE-05 / CORE-06 with `run_once`: a stop requested before it makes the iteration poll
/// without waiting and run what is ready; what the callbacks queue waits for the next one.
#[test]
fn core_05_run_once_after_stop_runs_what_is_ready_without_waiting() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let l = log();
    let l2 = l.clone();
    lp.call_soon(move |lp| {
        push(&l2, "a");
        let l3 = l2.clone();
        lp.call_soon(move |_| push(&l3, "b")).unwrap();
    })
    .unwrap();
    lp.stop();
    let polls = lp.stats().polls;
    assert!(lp.run_once().unwrap());
    assert_eq!(entries(&l), ["a"]);
    assert_eq!(lp.stats().polls - polls, 1);
    assert_eq!(lp.stats().last_poll_timeout, Some(Duration::ZERO));
    assert!(!lp.run_once().unwrap());
    assert_eq!(entries(&l), ["a", "b"]);
    lp.close().unwrap();
}

/// `run_once` refuses what `run_forever` refuses: inside a run of the same loop, and on a
/// closed loop.
#[test]
fn core_02_run_once_inside_a_run_and_after_close() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    lp.call_soon(move |lp| {
        s.set(Some(matches!(lp.run_once(), Err(Error::AlreadyRunning))));
        lp.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(seen.get(), Some(true));
    lp.close().unwrap();
    assert!(matches!(lp.run_once(), Err(Error::Closed)));
}
