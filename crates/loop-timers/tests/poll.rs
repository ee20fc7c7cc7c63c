//! How timers set the poll timeout: TIMER-12 to TIMER-15. Real time, generous bounds: the
//! assertions count iterations and polls, not microseconds.

mod common;

use std::time::{Duration, Instant};

use common::{log, push_iter, virtual_loop};
use loop_core::{EventLoop, MAX_POLL_TIMEOUT};
use loop_testkit::never;
use loop_timers::TimersExt;

// ---------------------------------------------------------------------------------------------
// TIMER-12: very short sleeps complete without busy-looping.

#[test]
fn timer_12_five_short_sleeps_take_at_most_20_iterations() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let before = lp.stats().iterations;
    lp.run_until_complete(async {
        for exp in [2, 4, 6, 8, 10] {
            loop_timers::sleep_secs(10f64.powi(-exp)).await?;
        }
        Ok::<(), loop_core::Error>(())
    })
    .unwrap()
    .unwrap();
    let n = lp.stats().iterations - before;
    assert!(n <= 20, "{n} iterations for five short sleeps");
    assert!(n >= 6, "{n}: each sleep takes at least one iteration");
}

#[test]
fn timer_12_short_sleeps_as_durations_do_not_spin_either() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let before = lp.stats().iterations;
    lp.run_until_complete(async {
        for ns in [10_000_000u64, 100_000, 1_000, 10, 1] {
            loop_timers::sleep(Duration::from_nanos(ns)).await?;
        }
        Ok::<(), loop_core::Error>(())
    })
    .unwrap()
    .unwrap();
    let n = lp.stats().iterations - before;
    assert!(n <= 20, "{n} iterations");
}

// ---------------------------------------------------------------------------------------------
// TIMER-13: poll timeout = 0 with work ready or a stop requested; else until the earliest live
// timer; no timers: block until woken.

#[test]
fn timer_13_ready_work_does_not_wait_for_timers() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let far = lp
        .call_later(Duration::from_secs(30), never("the 30 s timer"))
        .unwrap();
    let start = Instant::now();
    lp.call_soon(|lp| {
        lp.call_soon(|lp| lp.stop()).unwrap();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(lp.stats().iterations, 2);
    assert_eq!(lp.stats().poll_time, Duration::ZERO, "never blocked");
    assert!(start.elapsed() < Duration::from_secs(10));
    far.cancel();
}

#[test]
fn timer_13_a_stop_request_polls_with_zero_timeout() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.call_later(Duration::from_secs(30), never("the 30 s timer"))
        .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    let s = lp.stats();
    assert_eq!((s.iterations, s.polls), (1, 1));
    assert_eq!(s.poll_time, Duration::ZERO);
}

#[test]
fn timer_13_idle_loop_blocks_until_the_earliest_timer() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    lp.call_later(Duration::from_millis(60), push_iter(&seen, "first"))
        .unwrap();
    lp.call_later(Duration::from_secs(30), push_iter(&seen, "far"))
        .unwrap();
    lp.call_later(Duration::from_millis(60), |lp| lp.stop())
        .unwrap();
    let start = Instant::now();
    lp.run_forever().unwrap();
    let s = lp.stats();
    // One blocking poll, woken by the earliest deadline (not by the far one, nor spinning).
    assert_eq!(s.iterations, 1, "{s:?}");
    assert!(s.poll_time >= Duration::from_millis(40), "{s:?}");
    assert!(start.elapsed() >= Duration::from_millis(59));
    assert_eq!(*seen.borrow(), [("first", 1)]);
}

#[test]
fn timer_13_no_timers_blocks_until_woken() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        remote.stop().unwrap();
    });
    lp.run_forever().unwrap();
    th.join().unwrap();
    let s = lp.stats();
    // Blocked in one poll (no timeout) until the wake-up, then ran the stop.
    assert!(s.iterations <= 2, "{s:?}");
    assert!(s.poll_time >= Duration::from_millis(50), "{s:?}");
}

// ---------------------------------------------------------------------------------------------
// TIMER-14: the poller never waits longer than a day; timers further out do not break it.

#[test]
fn timer_14_poll_timeout_cap_is_one_day() {
    let _w = loop_testkit::watchdog();
    assert_eq!(MAX_POLL_TIMEOUT, Duration::from_secs(24 * 3600));
}

#[test]
fn timer_14_timers_beyond_one_day_do_not_break_the_poll() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let a = lp
        .call_later(Duration::from_secs(25 * 3600), never("the 25 h timer"))
        .unwrap();
    let b = lp
        .call_later(
            Duration::from_secs(400 * 86_400),
            never("the 400-day timer"),
        )
        .unwrap();
    let c = lp.call_later_secs(1e12, never("the 1e12 s timer")).unwrap();
    assert!(b.when() > lp.now() + Duration::from_secs(399 * 86_400));
    let remote = lp.remote();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        remote.stop().unwrap();
    });
    lp.run_forever().unwrap();
    th.join().unwrap();
    let s = lp.stats();
    // A poll that failed (a timeout the kernel rejects) would return at once, again and again.
    assert!(s.iterations <= 2, "{s:?}");
    assert!(s.poll_time >= Duration::from_millis(75), "{s:?}");
    assert_eq!(lp.timer_stats().scheduled, 3);
    for h in [a, b, c] {
        assert!(!h.cancelled());
    }
}

/// Runs `lp` until a stop sent from another thread once the loop blocks; returns the timeout
/// of the blocking poll (the last poll of the run). A run whose stop arrived before it blocked
/// (so it never polled) is repeated.
fn blocking_poll_timeout(lp: &EventLoop) -> Option<Duration> {
    for _ in 0..20 {
        let polls = lp.stats().polls;
        let remote = lp.remote();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            remote.stop().unwrap();
        });
        lp.run_forever().unwrap();
        th.join().unwrap();
        let s = lp.stats();
        if s.polls > polls {
            return s.last_poll_timeout;
        }
    }
    panic!("the loop never blocked in a poll");
}

#[test]
fn timer_14_a_timer_two_days_out_polls_with_the_one_day_cap() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let h = lp
        .call_later(Duration::from_secs(2 * 86_400), never("the two-day timer"))
        .unwrap();
    assert_eq!(
        blocking_poll_timeout(&lp),
        Some(MAX_POLL_TIMEOUT),
        "the poll waits one day, not two"
    );
    h.cancel();
    // A nearer timer is not capped: the poll waits (at most) until it.
    let h = lp
        .call_later(Duration::from_secs(3600), never("the one-hour timer"))
        .unwrap();
    let t = blocking_poll_timeout(&lp).expect("a deadline gives a timeout");
    assert!(
        t <= Duration::from_secs(3600) && t > Duration::from_secs(3000),
        "{t:?}"
    );
    h.cancel();
}

// ---------------------------------------------------------------------------------------------
// TIMER-15: cancelled timers at the head are dropped before the poll timeout is computed.

#[test]
fn timer_15_cancelled_head_does_not_set_the_poll_timeout() {
    let _w = loop_testkit::watchdog();
    // Virtual clock: the loop jumps exactly to the deadline the poll timeout came from.
    let lp = virtual_loop();
    let seen = log();
    let head = lp
        .call_later(
            Duration::from_millis(20),
            never("the cancelled 20 ms timer"),
        )
        .unwrap();
    let second = lp
        .call_later(
            Duration::from_millis(40),
            never("the cancelled 40 ms timer"),
        )
        .unwrap();
    lp.call_later(Duration::from_millis(120), push_iter(&seen, "live"))
        .unwrap();
    lp.call_later(Duration::from_millis(120), |lp| lp.stop())
        .unwrap();
    head.cancel();
    second.cancel();
    assert_eq!(lp.timer_stats().cancelled, 2);
    let start = lp.now();
    lp.run_forever().unwrap();
    // One poll, straight to the live timer: the cancelled ones did not wake the loop.
    assert_eq!(lp.stats().iterations, 1);
    assert_eq!(lp.stats().polls, 1);
    assert_eq!(lp.now() - start, Duration::from_millis(120));
    assert_eq!(*seen.borrow(), [("live", 1)]);
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled, st.cleanups), (0, 0, 0));
}

#[test]
fn timer_15_only_cancelled_heads_are_popped() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let head = lp.call_later(Duration::from_secs(5), |_| {}).unwrap();
    let _live = lp.call_later(Duration::from_secs(10), |_| {}).unwrap();
    let deep = lp.call_later(Duration::from_secs(15), |_| {}).unwrap();
    head.cancel();
    deep.cancel();
    assert_eq!(lp.timer_stats().scheduled, 3);
    // Any iteration (here a busy one, which skips the poll) drops the cancelled head; the
    // cancelled entry behind a live one stays.
    lp.call_soon(|lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    let st = lp.timer_stats();
    assert_eq!((st.scheduled, st.cancelled), (2, 1), "{st:?}");
}
