//! Bulk clean-up of cancelled timers: TIMER-16.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{log, push};
use loop_core::EventLoop;
use loop_timers::{TimerHandle, TimersExt};

/// Schedules `n` timers at 60 s + i ms, in deadline order.
fn far_timers(lp: &EventLoop, n: u64) -> Vec<TimerHandle> {
    (0..n)
        .map(|i| {
            lp.call_later(
                Duration::from_secs(60) + Duration::from_millis(i),
                loop_testkit::never("a far timer"),
            )
            .unwrap()
        })
        .collect()
}

/// Runs exactly one iteration.
fn one_iteration(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

#[test]
fn timer_16_more_than_half_of_over_100_cancelled_rebuilds_the_heap() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let hs = far_timers(&lp, 150);
    // Cancel the 76 latest: none of them is at the head, so only the bulk rule can drop them.
    for h in &hs[74..] {
        h.cancel();
    }
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (150, 76, 0));
    one_iteration(&lp);
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (74, 0, 1));
    // The live ones are all still there and still live.
    assert!(hs[..74].iter().all(|h| !h.cancelled()));
}

#[test]
fn timer_16_exactly_half_cancelled_is_not_enough() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let hs = far_timers(&lp, 150);
    for h in &hs[75..] {
        h.cancel();
    }
    one_iteration(&lp);
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (150, 75, 0));
    // One more cancellation tips it over.
    hs[74].cancel();
    one_iteration(&lp);
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (74, 0, 1));
}

#[test]
fn timer_16_one_hundred_timers_or_fewer_are_never_bulk_cleaned() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let hs = far_timers(&lp, 100);
    for h in &hs[10..] {
        h.cancel();
    }
    one_iteration(&lp);
    let st = lp.timer_stats();
    // 90 of 100 cancelled, deep in the heap: they stay until they reach the head.
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (100, 90, 0));
    // A 101st timer: now more than 100 are scheduled.
    lp.call_later(Duration::from_secs(120), |_| {}).unwrap();
    one_iteration(&lp);
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (11, 0, 1));
}

#[test]
fn timer_16_cancelling_a_timer_that_left_the_heap_does_not_count() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let later: Rc<RefCell<Vec<TimerHandle>>> = Rc::new(RefCell::new(Vec::new()));
    let l = later.clone();
    let seen = log();
    // Two timers due in the same iteration: the first cancels the second, which is already in
    // the ready queue (it does not run, but it is not counted as a cancelled heap entry).
    lp.call_later_secs(-1.0, move |_| {
        for h in l.borrow().iter() {
            h.cancel();
        }
    })
    .unwrap();
    let b = lp.call_later(Duration::ZERO, push(&seen, "b")).unwrap();
    later.borrow_mut().push(b.clone());
    let ran = lp.call_later(Duration::ZERO, push(&seen, "c")).unwrap();
    one_iteration(&lp);
    assert_eq!(*seen.borrow(), ["c"]);
    assert!(b.cancelled());
    assert_eq!(lp.timer_stats().cancelled, 0);
    // Cancelling a timer that already ran does not count either.
    assert!(!ran.cancelled());
    ran.cancel();
    assert_eq!(lp.timer_stats().cancelled, 0);
    assert_eq!(lp.timer_stats().scheduled, 0);
}

#[test]
fn timer_16_cancel_counts_only_while_in_the_heap_across_iterations() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let fired = lp.call_later(Duration::ZERO, push(&seen, "fired")).unwrap();
    let pending = lp.call_later(Duration::from_secs(60), |_| {}).unwrap();
    one_iteration(&lp);
    assert_eq!(*seen.borrow(), ["fired"]);
    // Scheduled after the last dispatch, with a deadline already passed: still in the heap.
    let fresh = lp.call_later_secs(-1.0, |_| {}).unwrap();
    fired.cancel();
    assert_eq!(lp.timer_stats().cancelled, 0, "ran already");
    pending.cancel();
    assert_eq!(lp.timer_stats().cancelled, 1, "still in the heap");
    fresh.cancel();
    assert_eq!(
        lp.timer_stats().cancelled,
        2,
        "pushed after the last dispatch"
    );
    one_iteration(&lp);
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled), (0, 0));
}

#[test]
fn timer_16_live_timers_survive_a_clean_up_and_fire_in_order() {
    let _w = loop_testkit::watchdog();
    let lp = common::virtual_loop();
    let order = log();
    let mut hs = Vec::new();
    for i in 0..120u64 {
        hs.push(
            lp.call_later(Duration::from_millis(1 + i / 4), push(&order, i))
                .unwrap(),
        );
    }
    // Cancel 61 of 120, spread through the heap.
    let mut cancelled = Vec::new();
    for (i, h) in hs.iter().enumerate() {
        if i % 2 == 1 || i == 0 {
            h.cancel();
            cancelled.push(i as u64);
        }
    }
    assert_eq!(cancelled.len(), 61);
    lp.call_later(Duration::from_millis(60), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(lp.timer_stats().cleanups, 1);
    let want: Vec<u64> = (0..120).filter(|i| !cancelled.contains(i)).collect();
    assert_eq!(*order.borrow(), want);
    assert_eq!(lp.timer_stats().scheduled, 0);
}

#[test]
fn timer_16_cancel_through_the_inner_handle_is_not_counted_but_still_cleaned() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let hs = far_timers(&lp, 150);
    // 40 cancelled through the loop_core handle (not counted), 76 through the timer handle.
    for h in &hs[34..74] {
        h.handle().cancel();
    }
    for h in &hs[74..] {
        h.cancel();
    }
    // Cancelling one of the first 40 again through its timer handle counts nothing either.
    hs[34].cancel();
    assert!(hs[34].cancelled());
    assert_eq!(lp.timer_stats().cancelled, 76);
    one_iteration(&lp);
    let st = lp.timer_stats();
    // The rebuild drops every cancelled entry, counted or not.
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (34, 0, 1));
}
