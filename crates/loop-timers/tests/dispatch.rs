//! Where timers fit in an iteration, the clock-resolution rule and panics: TIMER-10, TIMER-11,
//! TIMER-17.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use common::{log, push_iter, virtual_loop};
use loop_core::{Error, EventLoop, ExceptionContext};
use loop_timers::TimersExt;

// ---------------------------------------------------------------------------------------------
// TIMER-10: due timers are appended after the iteration's I/O callbacks and run in the same
// iteration; what they schedule runs in the next one.

#[test]
fn timer_10_due_timers_run_after_io_in_the_same_iteration() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let seen = log();
    let (r, mut w) = UnixStream::pair().unwrap();
    let r = Rc::new(r);
    let r2 = r.clone();
    let s = seen.clone();
    lp.add_reader(&*r, move |lp| {
        let mut buf = [0u8; 8];
        let _ = (&*r2).read(&mut buf);
        s.borrow_mut().push(("io", lp.stats().iterations));
        lp.remove_reader(&*r2).unwrap();
    })
    .unwrap();
    // Due before the loop starts; the fd is readable before the loop starts too.
    lp.call_later_secs(-1.0, push_iter(&seen, "timer")).unwrap();
    w.write_all(b"x").unwrap();
    let s = seen.clone();
    lp.call_later(Duration::from_millis(20), move |lp| {
        s.borrow_mut().push(("stop", lp.stats().iterations));
        lp.stop()
    })
    .unwrap();
    lp.run_forever().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen[0], ("io", 1), "{seen:?}");
    assert_eq!(seen[1], ("timer", 1), "{seen:?}");
}

#[test]
fn timer_10_due_timers_join_the_ready_callbacks_and_their_work_waits() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let s = seen.clone();
    lp.call_soon(move |lp| {
        // Iteration 1 schedules a due timer and a plain callback.
        lp.call_later(Duration::ZERO, {
            let s = s.clone();
            move |lp| {
                s.borrow_mut().push(("timer", lp.stats().iterations));
                let last = push_iter(&s, "from timer");
                lp.call_soon(move |lp| {
                    last(lp);
                    lp.stop()
                })
                .unwrap();
            }
        })
        .unwrap();
        lp.call_soon(push_iter(&s, "soon")).unwrap();
    })
    .unwrap();
    lp.run_forever().unwrap();
    // Iteration 2: the ready callback first, then the timer that became due; iteration 3: what
    // the timer scheduled.
    assert_eq!(
        *seen.borrow(),
        [("soon", 2), ("timer", 2), ("from timer", 3)]
    );
}

// ---------------------------------------------------------------------------------------------
// TIMER-11: a timer is due when `when < now + clock_resolution`.

#[test]
fn timer_11_resolution_is_the_os_clock_resolution() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let res = lp.clock_resolution();
    // Linux reports 1 ns with high-resolution timers, one jiffy without.
    assert!(
        res > Duration::ZERO && res <= Duration::from_millis(10),
        "{res:?}"
    );
    lp.close().unwrap();
    assert_eq!(lp.clock_resolution(), res);
}

#[test]
fn timer_11_timers_within_the_resolution_of_now_are_due() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_clock_resolution(Duration::from_secs(10));
    let seen = log();
    lp.call_later(Duration::from_secs(5), push_iter(&seen, "within"))
        .unwrap();
    lp.call_later(Duration::from_secs(60), push_iter(&seen, "beyond"))
        .unwrap();
    lp.stop();
    lp.run_forever().unwrap(); // one iteration, zero-timeout poll
    assert_eq!(*seen.borrow(), [("within", 1)]);
    assert_eq!(lp.timer_stats().scheduled, 1);
}

#[test]
fn timer_11_without_the_fudge_a_future_timer_is_not_due() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = log();
    lp.call_later(Duration::from_secs(5), push_iter(&seen, "later"))
        .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(seen.borrow().is_empty());
    assert_eq!(lp.timer_stats().scheduled, 1);
}

#[test]
fn timer_11_a_timer_due_within_the_resolution_does_not_make_the_loop_wait() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_clock_resolution(Duration::from_millis(500));
    let seen = log();
    lp.call_later(Duration::from_millis(300), push_iter(&seen, "t"))
        .unwrap();
    lp.call_later(Duration::from_millis(350), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*seen.borrow(), [("t", 1)]);
    // Both were due at once: the loop never blocked with a non-zero timeout.
    assert_eq!(lp.stats().poll_time, Duration::ZERO);
}

// ---------------------------------------------------------------------------------------------
// TIMER-17: a panicking timer callback goes to the exception handler with the handle; the loop
// goes on.

#[test]
fn timer_17_panicking_timer_is_reported_with_its_handle_and_the_loop_continues() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let reports: Rc<RefCell<Vec<ExceptionContext>>> = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp, ctx| {
        r.borrow_mut().push(ctx.clone())
    })));
    let seen = log();
    let bad = lp
        .call_later(Duration::from_millis(1), |_| panic!("timer exploded"))
        .unwrap();
    lp.call_later(Duration::from_millis(2), push_iter(&seen, "after"))
        .unwrap();
    lp.call_later(Duration::from_millis(30), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(seen.borrow().len(), 1, "the loop went on");
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let ctx = &reports[0];
    assert!(ctx.message.starts_with("Exception in callback"), "{ctx:?}");
    let loc = bad.handle().location().to_string();
    let handle = ctx.handle.as_deref().expect("handle key");
    assert!(handle.contains(&loc), "{handle} should name {loc}");
    match &ctx.exception {
        Some(Error::Exception(e)) => {
            assert!(e.is_panic());
            assert!(e.to_string().contains("timer exploded"), "{e}");
        }
        other => panic!("expected the panic, got {other:?}"),
    }
    // The loop is still usable.
    lp.call_later(Duration::ZERO, |lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
}

/// TIMER-11: the resolution a program sets is the one the loop reports and uses.
#[test]
fn timer_11_set_clock_resolution_is_what_clock_resolution_reports() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_clock_resolution(Duration::from_millis(5));
    assert_eq!(lp.clock_resolution(), Duration::from_millis(5));
    lp.set_clock_resolution(Duration::from_nanos(250));
    assert_eq!(lp.clock_resolution(), Duration::from_nanos(250));
    lp.close().unwrap();
}

/// TIMER-11 with a burst: a dispatch that moves a large part of a big heap at once (more than
/// a thousand timers due together) keeps the strict rule `when < now + resolution`: a timer
/// exactly at `now + resolution` is not due yet and runs in a later iteration.
#[test]
fn timer_11_a_burst_of_due_timers_keeps_the_strict_due_rule() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let res = Duration::from_micros(1);
    lp.set_clock_resolution(res);
    let t0 = lp.now() + Duration::from_millis(10);
    let burst_ran = Rc::new(std::cell::Cell::new(0u64));
    for _ in 0..1100 {
        let b = burst_ran.clone();
        lp.call_at(t0, move |lp| b.set(lp.stats().iterations))
            .unwrap();
    }
    // The virtual clock jumps to the first instant the burst is due, `t0 - res + 1 ns`:
    // `now + resolution` is then `t0 + 1 ns`, exactly this timer's deadline.
    let seen = log();
    lp.call_at(t0 + Duration::from_nanos(1), push_iter(&seen, "edge"))
        .unwrap();
    lp.call_at(t0 + Duration::from_millis(10), |lp| lp.stop())
        .unwrap();
    lp.run_forever().unwrap();
    let burst = burst_ran.get();
    assert!(burst > 0, "the burst never ran");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].1 > burst,
        "a timer at exactly now + resolution ran with the burst (iteration {burst})"
    );
}
