//! `time`, `call_later`, `call_at` and `TimerHandle`: TIMER-01 to TIMER-09.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{log, push, push_iter, virtual_loop, DropFlag};
use loop_core::{Error, EventLoop};
use loop_timers::{TimersExt, MAX_DELAY};

// ---------------------------------------------------------------------------------------------
// TIMER-01: time() is a monotonic clock in seconds; it works after close().

#[test]
fn timer_01_time_is_monotonic_seconds() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let mut prev = lp.time();
    for _ in 0..1000 {
        let t = lp.time();
        assert!(t >= prev, "time went back: {t} < {prev}");
        prev = t;
    }
    // Each reading of time() is bracketed by two readings of the monotonic clock.
    let (a0, t0, b0) = (Instant::now(), lp.time(), Instant::now());
    std::thread::sleep(Duration::from_millis(30));
    let (a1, t1, b1) = (Instant::now(), lp.time(), Instant::now());
    // Seconds, not milliseconds or nanoseconds, on the monotonic clock.
    let (lo, hi) = ((a1 - b0).as_secs_f64(), (b1 - a0).as_secs_f64());
    assert!(t1 - t0 >= 0.03, "{t0} -> {t1}");
    assert!(
        t1 - t0 >= lo - 1e-6 && t1 - t0 <= hi + 1e-6,
        "{} not in [{lo}, {hi}]",
        t1 - t0
    );
}

#[test]
fn timer_01_time_works_after_close() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let before = lp.time();
    lp.close().unwrap();
    let after = lp.time();
    assert!(after.is_finite() && after >= before);
    std::thread::sleep(Duration::from_millis(2));
    assert!(lp.time() > after);
}

#[test]
fn timer_01_time_is_the_loops_clock() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // Two loops share one time base.
    let other = EventLoop::new().unwrap();
    let (a, b) = (lp.time(), other.time());
    assert!((a - b).abs() < 0.5, "{a} vs {b}");
    // time() and when_secs() agree with lp.now() and when().
    let h = lp.call_later(Duration::from_secs(2), |_| {}).unwrap();
    let (a, t, b) = (lp.now(), lp.time(), lp.now());
    let secs_from_time = h.when_secs() - t;
    let lo = h.when().duration_since(b).as_secs_f64();
    let hi = h.when().duration_since(a).as_secs_f64();
    assert!(
        secs_from_time >= lo - 1e-6 && secs_from_time <= hi + 1e-6,
        "{secs_from_time} not in [{lo}, {hi}]"
    );
}

// ---------------------------------------------------------------------------------------------
// TIMER-02: call_later keeps the timer in the timer queue with when == time() + delay; it runs
// once, no earlier than the delay.

#[test]
fn timer_02_call_later_is_queued_as_a_timer_with_when_now_plus_delay() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let d = Duration::from_millis(250);
    let before = lp.now();
    let h = lp.call_later(d, |_| {}).unwrap();
    let after = lp.now();
    assert!(h.when() >= before + d && h.when() <= after + d, "{h:?}");
    assert_eq!(lp.timer_stats().scheduled, 1);

    let t0 = lp.time();
    let h = lp.call_later_secs(1.5, |_| {}).unwrap();
    let t1 = lp.time();
    assert!(h.when_secs() >= t0 + 1.5 - 1e-9 && h.when_secs() <= t1 + 1.5 + 1e-9);
    assert_eq!(lp.timer_stats().scheduled, 2);

    // Not in the ready queue: a run of one iteration does not run them.
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.call_later(Duration::from_secs(30), move |_| r.set(true))
        .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(!ran.get());
    assert_eq!(lp.timer_stats().scheduled, 3);
}

#[test]
fn timer_02_callback_runs_once_no_earlier_than_the_delay() {
    let _w = loop_testkit::watchdog();
    // Virtual clock: the loop jumps to the deadline instead of sleeping until it.
    let lp = virtual_loop();
    let runs = log::<Instant>();
    let start = lp.now();
    let r = runs.clone();
    let h = lp
        .call_later(Duration::from_millis(30), move |lp| {
            r.borrow_mut().push(lp.now())
        })
        .unwrap();
    lp.call_later(Duration::from_millis(120), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    let runs = runs.borrow();
    assert_eq!(runs.len(), 1);
    let res = lp.clock_resolution();
    assert!(
        runs[0] + res >= h.when(),
        "ran early: {:?}",
        h.when() - runs[0]
    );
    assert!(runs[0].duration_since(start) >= Duration::from_millis(30) - res);
    // Not late either: it ran within the resolution window, not at the 120 ms stop.
    assert!(
        runs[0] < h.when() + res,
        "ran late: {:?}",
        runs[0] - h.when()
    );
    assert_eq!(lp.now() - start, Duration::from_millis(120));
    assert_eq!(lp.timer_stats().scheduled, 0);
}

// ---------------------------------------------------------------------------------------------
// TIMER-03 [py-only]: `None` delay / when. Rust: `Duration` and `Instant` cannot be "none"; the
// float-seconds variants reject the values that are not a time (NaN, infinities).

#[test]
fn timer_03_non_finite_seconds_are_rejected_and_schedule_nothing() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = lp.call_later_secs(bad, |_| unreachable!()).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("delay")),
            "{e}"
        );
        let e = lp.call_at_secs(bad, |_| unreachable!()).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("when")),
            "{e}"
        );
    }
    assert_eq!(lp.timer_stats().scheduled, 0);
}

// ---------------------------------------------------------------------------------------------
// TIMER-04: call_at uses the time() base; a closed loop refuses every timer.

#[test]
fn timer_04_call_at_uses_the_time_base() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let at = lp.time() + 0.04;
    let fired = Rc::new(Cell::new(f64::NAN));
    let f = fired.clone();
    let h = lp
        .call_at_secs(at, move |lp| {
            f.set(lp.time());
            lp.stop()
        })
        .unwrap();
    assert!((h.when_secs() - at).abs() < 1e-9);
    lp.run_forever().unwrap();
    assert!(fired.get() + lp.clock_resolution().as_secs_f64() >= at);
    assert!(
        (fired.get() - at).abs() < 1e-6,
        "ran at its time: {} vs {at}",
        fired.get()
    );

    let at = lp.now() + Duration::from_millis(20);
    let fired = Rc::new(Cell::new(None));
    let f = fired.clone();
    lp.call_at(at, move |lp| {
        f.set(Some(lp.now()));
        lp.stop()
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(fired.get(), Some(at));
}

#[test]
fn timer_04_closed_loop_refuses_timers() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let h = lp.call_later(Duration::from_secs(1), |_| {}).unwrap();
    lp.close().unwrap();
    let errs = [
        lp.call_later(Duration::ZERO, |_| {}).unwrap_err(),
        lp.call_later_secs(1.0, |_| {}).unwrap_err(),
        lp.call_at(Instant::now(), |_| {}).unwrap_err(),
        lp.call_at_secs(0.0, |_| {}).unwrap_err(),
    ];
    for e in errs {
        assert!(matches!(e, Error::Closed), "{e:?}");
        assert_eq!(e.to_string(), "Event loop is closed");
    }
    // Handles of timers dropped by close() still work.
    h.cancel();
    assert!(h.cancelled());
    assert_eq!(lp.timer_stats(), Default::default());
}

#[test]
fn timer_04_close_drops_pending_timers_without_running_them() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let never = loop_testkit::never("a timer of a closed loop");
    lp.call_later(Duration::from_secs(5), move |lp| {
        let _keep = &guard;
        never(lp)
    })
    .unwrap();
    lp.close().unwrap();
    assert!(dropped.get(), "close() released the callback");
}

// ---------------------------------------------------------------------------------------------
// TIMER-05: zero or negative delays are legal, due at once (next iteration); earlier `when`
// runs first.

#[test]
fn timer_05_negative_delays_run_in_when_order() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let order = log();
    lp.call_later_secs(-1.0, push(&order, "a")).unwrap();
    lp.call_later_secs(-2.0, push(&order, "b")).unwrap();
    lp.call_later_secs(0.0, push(&order, "c")).unwrap();
    lp.call_at(Instant::now() - Duration::from_secs(3), push(&order, "d"))
        .unwrap();
    lp.call_later(Duration::ZERO, push(&order, "e")).unwrap();
    lp.stop();
    lp.run_forever().unwrap(); // one iteration: everything is due
    assert_eq!(*order.borrow(), ["d", "b", "a", "c", "e"]);
}

#[test]
fn timer_05_zero_delay_runs_on_the_next_iteration() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let s = seen.clone();
    lp.call_soon(move |lp| {
        let now = lp.stats().iterations;
        s.borrow_mut().push(("scheduled", now));
        let last = push_iter(&s, "zero");
        lp.call_later(Duration::ZERO, move |lp| {
            last(lp);
            lp.stop()
        })
        .unwrap();
        lp.call_later_secs(-5.0, push_iter(&s, "negative")).unwrap();
    })
    .unwrap();
    lp.run_forever().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 3);
    let it = seen[0].1;
    assert_eq!(seen[1], ("negative", it + 1));
    assert_eq!(seen[2], ("zero", it + 1));
}

// ---------------------------------------------------------------------------------------------
// TIMER-06: due timers run in increasing `when` order; evloop breaks ties FIFO.

#[test]
fn timer_06_equal_deadlines_run_fifo() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let order = log();
    let at = lp.now() + Duration::from_millis(10);
    for i in 0..50 {
        lp.call_at(at, push(&order, i)).unwrap();
    }
    let t = lp.time() + 0.02;
    for i in 50..60 {
        lp.call_at_secs(t, push(&order, i)).unwrap();
    }
    lp.call_later(Duration::from_millis(40), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*order.borrow(), (0..60).collect::<Vec<_>>());
}

#[test]
fn timer_06_due_timers_run_in_when_order() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let order = log();
    // Scheduled in a scrambled order, all due by the time the loop looks.
    let delays = [7u64, 3, 9, 1, 5, 8, 2, 6, 4, 0];
    for d in delays {
        lp.call_later(Duration::from_millis(d), push(&order, d))
            .unwrap();
    }
    // All due by the time the loop looks: the clock moved while the loop was not running.
    lp.advance_clock(Duration::from_millis(15)).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*order.borrow(), (0..10).collect::<Vec<u64>>());
}

/// xorshift64: deterministic pseudo-random numbers for the model tests.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn timer_06_many_due_timers_run_in_when_then_fifo_order() {
    let _w = loop_testkit::watchdog();
    // Small batches are popped one by one; large ones go through the bulk path of the queue
    // (the largest, with over 32,768 live timers, through its wider radix digits).
    // Both must give the same order: by deadline, ties in scheduling order, cancelled skipped.
    for n in [10usize, 1_000, 5_000, 40_000, 60_000] {
        let lp = EventLoop::new().unwrap();
        let base = Instant::now() - Duration::from_secs(1);
        let order = log();
        let mut seed = 0x1234_5678_9abc_def0 ^ n as u64;
        let mut want = Vec::new();
        let mut handles = Vec::new();
        for i in 0..n {
            // 64 distinct deadlines in the past: many ties.
            let at = base + Duration::from_micros(rng(&mut seed) % 64);
            handles.push(lp.call_at(at, push(&order, i)).unwrap());
            want.push((at, i));
        }
        let mut cancelled = HashSet::new();
        for _ in 0..n / 3 {
            let i = (rng(&mut seed) % n as u64) as usize;
            handles[i].cancel();
            cancelled.insert(i);
        }
        // And a far batch that is not due, which must survive intact.
        let far = log();
        let far_base = Instant::now() + Duration::from_secs(20);
        for i in 0..n / 2 {
            let at = far_base + Duration::from_micros(rng(&mut seed) % 500);
            lp.call_at(at, push(&far, (at, i))).unwrap();
        }
        lp.stop();
        lp.run_forever().unwrap();
        want.sort(); // by deadline, then by scheduling order (i)
        let want: Vec<usize> = want
            .into_iter()
            .map(|(_, i)| i)
            .filter(|i| !cancelled.contains(i))
            .collect();
        assert_eq!(*order.borrow(), want, "n = {n}");
        let st = lp.timer_stats();
        assert_eq!(st.scheduled, n / 2, "n = {n}: {st:?}");
        assert_eq!(st.cancelled, 0, "n = {n}: {st:?}");
        // The far batch fires later, in order: made due now by widening the resolution window.
        lp.set_clock_resolution(Duration::from_secs(60));
        lp.stop();
        lp.run_forever().unwrap();
        let far = far.borrow();
        assert_eq!(far.len(), n / 2, "n = {n}");
        assert!(far.windows(2).all(|w| w[0] < w[1]), "n = {n}");
        lp.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// TIMER-07: when() is the absolute scheduled time.

#[test]
fn timer_07_when_is_the_absolute_time() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let at = Instant::now() + Duration::from_millis(1234);
    assert_eq!(lp.call_at(at, |_| {}).unwrap().when(), at);
    let past = Instant::now() - Duration::from_secs(10);
    assert_eq!(lp.call_at(past, |_| {}).unwrap().when(), past);
    let t = lp.time() + 42.5;
    assert!((lp.call_at_secs(t, |_| {}).unwrap().when_secs() - t).abs() < 1e-9);
    // Delays beyond MAX_DELAY are clamped, not an overflow.
    let before = lp.now();
    let h = lp.call_later(Duration::MAX, |_| {}).unwrap();
    assert_eq!(
        h.when().duration_since(before).as_secs() / 86_400,
        MAX_DELAY.as_secs() / 86_400
    );
    let h = lp.call_later_secs(1e300, |_| {}).unwrap();
    assert!(h.when_secs() > lp.time() + 3.0e9);
}

// ---------------------------------------------------------------------------------------------
// TIMER-08: cancel(): cancelled() true, callback released, never runs; repeats are no-ops.

#[test]
fn timer_08_cancel_releases_the_callback_and_it_never_runs() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let dropped = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let h = lp
        .call_later(Duration::from_millis(5), move |_| {
            let _keep = &guard;
            r.set(true)
        })
        .unwrap();
    assert!(!h.cancelled());
    h.cancel();
    assert!(h.cancelled());
    assert!(h.handle().cancelled());
    assert!(dropped.get(), "the callback was dropped at cancel time");
    h.cancel();
    h.clone().cancel();
    assert!(h.cancelled());
    assert_eq!(lp.timer_stats().cancelled, 1, "counted once");
    lp.call_later(Duration::from_millis(30), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert!(!ran.get());
}

#[test]
fn timer_08_cancel_after_due_still_prevents_the_run() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    // Both due in the same iteration; the first cancels the second, already in the ready queue.
    let second = Rc::new(std::cell::RefCell::new(None::<loop_timers::TimerHandle>));
    let s = second.clone();
    lp.call_later_secs(-1.0, move |_| s.borrow().as_ref().unwrap().cancel())
        .unwrap();
    *second.borrow_mut() = Some(lp.call_later(Duration::ZERO, move |_| r.set(true)).unwrap());
    lp.call_later(Duration::from_millis(10), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert!(!ran.get());
    assert!(second.borrow().as_ref().unwrap().cancelled());
}

// ---------------------------------------------------------------------------------------------
// TIMER-09: handles order by `when` (ties: scheduling order); equal only if the same timer.

#[test]
fn timer_09_handles_order_by_when_then_scheduling_order() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let at = Instant::now() + Duration::from_secs(10);
    let a = lp.call_at(at, |_| {}).unwrap();
    let b = lp.call_at(at, |_| {}).unwrap();
    let early = lp.call_at(at - Duration::from_secs(1), |_| {}).unwrap();
    let late = lp.call_at(at + Duration::from_secs(1), |_| {}).unwrap();
    let mut v = vec![late.clone(), b.clone(), a.clone(), early.clone()];
    v.sort();
    assert_eq!(v, [early.clone(), a.clone(), b.clone(), late.clone()]);
    assert!(early < a && a < b && b < late);
    assert_eq!(a.when(), b.when());
    assert_ne!(a, b, "same when, different timers");
    assert_eq!(a, a.clone());
    // Cancelling does not change the identity or the order.
    let a2 = a.clone();
    a.cancel();
    assert_eq!(a, a2);
    assert!(a < b);
    let set: HashSet<_> = [a.clone(), a2, b.clone(), early, late]
        .into_iter()
        .collect();
    assert_eq!(set.len(), 4);
    assert!(format!("{a:?}").contains("cancelled"));
    assert!(format!("{b:?}").contains(file!()));
}

/// TIMER-02: two loops on one thread, used in turn: each timer lands in the queue of the loop
/// it was scheduled on and runs there, and only there.
#[test]
fn timer_02_two_loops_on_one_thread_keep_their_own_timers() {
    let _w = loop_testkit::watchdog();
    let a = virtual_loop();
    let b = virtual_loop();
    let ran = log::<&str>();
    a.call_later(Duration::from_millis(10), push(&ran, "a"))
        .unwrap();
    b.call_later(Duration::from_millis(10), push(&ran, "b"))
        .unwrap();
    a.call_later(Duration::from_millis(20), push(&ran, "a2"))
        .unwrap();
    assert_eq!(a.timer_stats().scheduled, 2);
    assert_eq!(b.timer_stats().scheduled, 1);
    b.call_later(Duration::from_millis(50), |lp| lp.stop())
        .unwrap();
    b.run_forever().unwrap();
    assert_eq!(*ran.borrow(), ["b"], "loop b ran another loop's timers");
    a.call_later(Duration::from_millis(50), |lp| lp.stop())
        .unwrap();
    a.run_forever().unwrap();
    assert_eq!(*ran.borrow(), ["b", "a", "a2"]);
    a.close().unwrap();
    b.close().unwrap();
}
