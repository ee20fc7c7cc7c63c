//! Timers on a loop with a virtual clock (`EventLoop::builder().virtual_clock()`): the loop
//! jumps to the next deadline instead of sleeping, so long delays run at once, at exact virtual
//! times, in exact order. TIMER-02, TIMER-06, TIMER-10, TIMER-13, TIMER-14, TIMER-18.

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{log, virtual_loop, Log};
use loop_core::{Error, EventLoop};
use loop_timers::{sleep, timeout, TimersExt};

const HOUR: Duration = Duration::from_secs(3600);

/// A callback that logs `(label, virtual time since start)`.
fn at(
    seen: &Log<(&'static str, Duration)>,
    start: Instant,
    label: &'static str,
) -> impl FnOnce(&EventLoop) + 'static {
    let seen = seen.clone();
    move |lp| seen.borrow_mut().push((label, lp.now() - start))
}

// ---------------------------------------------------------------------------------------------
// TIMER-06 (and TIMER-02): deadlines hours apart run in deadline order, ties FIFO, each at
// exactly its deadline.

#[test]
fn timer_06_virtual_clock_runs_hour_long_delays_in_exact_order() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let start = lp.now();
    let seen = log();
    lp.call_later(3 * HOUR, at(&seen, start, "3h")).unwrap();
    lp.call_later(HOUR, at(&seen, start, "1h a")).unwrap();
    lp.call_later(2 * HOUR, at(&seen, start, "2h")).unwrap();
    lp.call_later(HOUR, at(&seen, start, "1h b")).unwrap();
    lp.call_later(HOUR / 2, at(&seen, start, "30min")).unwrap();
    lp.call_at(
        start + 90 * Duration::from_secs(60),
        at(&seen, start, "90min"),
    )
    .unwrap();
    lp.call_later_secs(7200.5, at(&seen, start, "2h + 0.5s"))
        .unwrap();
    let cancelled = lp
        .call_later(HOUR / 4, at(&seen, start, "cancelled"))
        .unwrap();
    cancelled.cancel();
    lp.call_later(4 * HOUR, |lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            ("30min", HOUR / 2),
            ("1h a", HOUR),
            ("1h b", HOUR),
            ("90min", 3 * HOUR / 2),
            ("2h", 2 * HOUR),
            ("2h + 0.5s", 2 * HOUR + Duration::from_millis(500)),
            ("3h", 3 * HOUR),
        ]
    );
    assert_eq!(lp.now() - start, 4 * HOUR);
    let s = lp.stats();
    // One iteration per distinct deadline (the cancelled head never woke the loop), and no
    // real waiting at all.
    assert_eq!(s.iterations, 7, "{s:?}");
    assert_eq!(s.poll_time, Duration::ZERO, "{s:?}");
    assert_eq!(s.timers_pending, 0, "{s:?}");
}

#[test]
fn timer_02_virtual_clock_time_follows_the_jumps() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let t0 = lp.time();
    let h = lp.call_later_secs(1800.0, |_| {}).unwrap();
    assert!((h.when_secs() - t0 - 1800.0).abs() < 1e-6);
    // Standing still until the loop would sleep.
    assert_eq!(lp.time(), t0);
    let times = log();
    let t = times.clone();
    lp.call_later_secs(1800.0, move |lp| {
        t.borrow_mut().push(lp.time());
        lp.stop()
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(times.borrow().len(), 1);
    assert!((times.borrow()[0] - t0 - 1800.0).abs() < 1e-6, "{times:?}");
    assert!((lp.time() - t0 - 1800.0).abs() < 1e-6);
}

// ---------------------------------------------------------------------------------------------
// TIMER-14: a day of timers (and a timer beyond a day) in well under a second of real time;
// the virtual clock jumps straight to the deadline instead of waking once a day.

#[test]
fn timer_14_virtual_clock_runs_a_day_of_timers() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let start = lp.now();
    let t0 = lp.time();
    // An hourly job that reschedules itself, for 24 hours.
    let runs = log();
    fn hourly(lp: &EventLoop, runs: Log<f64>, t0: f64) {
        lp.call_later(HOUR, move |lp| {
            runs.borrow_mut().push(lp.time() - t0);
            if runs.borrow().len() < 24 {
                hourly(lp, runs, t0);
            }
        })
        .unwrap();
    }
    hourly(&lp, runs.clone(), t0);
    // And 10 000 timers spread over the day, one every 8.64 s.
    // Each logs its index; one that runs off its deadline counts as misplaced.
    let fired = log();
    let misplaced = Rc::new(Cell::new(0u32));
    for i in 0..10_000u32 {
        let (f, m) = (fired.clone(), misplaced.clone());
        let d = Duration::from_millis(8_640 * u64::from(i + 1));
        lp.call_later(d, move |lp| {
            if lp.now() - start != d {
                m.set(m.get() + 1);
            }
            f.borrow_mut().push(i);
        })
        .unwrap();
    }
    assert_eq!(lp.stats().timers_pending, 10_001);
    lp.call_later(24 * HOUR, |lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    let runs = runs.borrow();
    assert_eq!(runs.len(), 24);
    for (k, t) in runs.iter().enumerate() {
        let want = 3600.0 * (k + 1) as f64;
        assert!((t - want).abs() < 1e-3, "run {k} at {t}, not {want}");
    }
    assert_eq!(*fired.borrow(), (0..10_000).collect::<Vec<_>>());
    assert_eq!(misplaced.get(), 0);
    assert!(lp.time() - t0 >= 86_400.0 - 1e-3, "{}", lp.time() - t0);
    assert_eq!(lp.now() - start, 24 * HOUR);
    assert_eq!(lp.stats().poll_time, Duration::ZERO);
    assert_eq!(lp.stats().timers_pending, 0);

    // Beyond the one-day poll cap: one jump, not one wake-up per day.
    let before = lp.stats().iterations;
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.call_later(400 * 24 * HOUR, move |lp| {
        r.set(true);
        lp.stop()
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert!(ran.get());
    assert_eq!(lp.stats().iterations - before, 1);
    assert_eq!(lp.now() - start, 401 * 24 * HOUR);
}

// ---------------------------------------------------------------------------------------------
// TIMER-18: sleep and timeout under the virtual clock.

#[test]
fn timer_18_virtual_clock_sleep_and_timeout_take_exact_virtual_time() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let start = lp.now();
    let lp2 = lp.clone();
    let marks = lp
        .run_until_complete(async move {
            let mut marks = Vec::new();
            sleep(HOUR).await?;
            marks.push(lp2.now() - start);
            // The deadline first: the inner sleep is dropped at 10 minutes.
            let r = timeout(HOUR / 6, sleep(HOUR)).await;
            assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
            marks.push(lp2.now() - start);
            // The future first: done at 30 minutes, the 2 h timer is cancelled.
            timeout(2 * HOUR, sleep(HOUR / 2)).await??;
            marks.push(lp2.now() - start);
            loop_timers::sleep_until(lp2.now() + Duration::from_secs(5)).await?;
            marks.push(lp2.now() - start);
            lp2.sleep_secs(0.25).await?;
            marks.push(lp2.now() - start);
            Ok::<_, Error>(marks)
        })
        .unwrap()
        .unwrap();
    let min = Duration::from_secs(60);
    assert_eq!(
        marks,
        [
            HOUR,
            HOUR + 10 * min,
            HOUR + 40 * min,
            HOUR + 40 * min + Duration::from_secs(5),
            HOUR + 40 * min + Duration::from_millis(5_250),
        ]
    );
    // The timeout's 2 h timer was cancelled and never ran: the clock did not go there.
    assert_eq!(lp.now() - start, marks[4]);
    assert_eq!(lp.stats().timers_pending, 0);
    assert_eq!(lp.stats().poll_time, Duration::ZERO);
}

#[test]
fn timer_18_virtual_clock_cancelling_a_sleeping_task() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let start = lp.now();
    let task = lp.create_task(async { sleep(24 * HOUR).await }).unwrap();
    let t = task.task_ref();
    lp.call_later(HOUR, move |_| {
        t.cancel_with("an hour is enough");
    })
    .unwrap();
    match lp.run_until_complete(task) {
        Err(Error::Cancelled(c)) => assert_eq!(c.message(), Some("an hour is enough")),
        other => panic!("expected a cancellation, got {other:?}"),
    }
    assert_eq!(lp.now() - start, HOUR);
    // The day-long timer was cancelled with the task (and, at the head, dropped): nothing
    // live is left, and the clock never went to it.
    let st = lp.timer_stats();
    assert_eq!(st.scheduled - st.cancelled, 0, "{st:?}");
    assert_eq!(lp.stats().timers_pending, 0);
}

// ---------------------------------------------------------------------------------------------
// TIMER-10: I/O is still polled when the loop would jump; ready I/O runs first, at the current
// virtual time, and the timers the jump makes due run after it.

#[test]
fn timer_10_virtual_clock_ready_io_runs_before_the_jump() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let start = lp.now();
    let seen = log();
    let (r, mut w) = UnixStream::pair().unwrap();
    let r = Rc::new(r);
    let r2 = r.clone();
    let s = seen.clone();
    lp.add_reader(&*r, move |lp| {
        let mut buf = [0u8; 8];
        let n = (&*r2).read(&mut buf).unwrap();
        s.borrow_mut()
            .push((n, lp.now() - start, lp.stats().iterations));
        if n == 2 {
            lp.remove_reader(&*r2).unwrap();
        }
    })
    .unwrap();
    w.write_all(b"x").unwrap();
    let w = Rc::new(std::cell::RefCell::new(w));
    let w2 = w.clone();
    lp.call_later(HOUR, move |_| {
        w2.borrow_mut().write_all(b"yz").unwrap();
    })
    .unwrap();
    lp.call_later(2 * HOUR, |lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    // Iteration 1: the byte already there is read at time 0; the loop did not jump past it.
    // Iteration 2: nothing ready, jump to 1 h, the timer writes. Iteration 3: the loop would
    // jump to 2 h, but the poll finds the reply first: read at 1 h.
    assert_eq!(*seen.borrow(), [(1, Duration::ZERO, 1), (2, HOUR, 3)]);
    assert_eq!(lp.now() - start, 2 * HOUR);
    assert!(lp.stats().io_events >= 2);
}

// ---------------------------------------------------------------------------------------------
// TIMER-13: with no timers and nothing ready, a virtual-clock loop blocks on I/O as usual, and
// real time does not pass for timers; a loop that never idles never advances.

#[test]
fn timer_13_virtual_clock_without_timers_blocks_on_io_and_time_stands_still() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let start = lp.now();
    let remote = lp.remote();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        remote
            .call_soon_threadsafe(|lp| {
                lp.call_later(Duration::from_secs(5), |lp| lp.stop())
                    .unwrap();
            })
            .unwrap();
    });
    lp.run_forever().unwrap();
    th.join().unwrap();
    // The loop really blocked until the wake-up, and then jumped exactly 5 s: the real wait
    // before it did not count.
    assert!(lp.stats().poll_time > Duration::ZERO);
    assert_eq!(lp.now() - start, Duration::from_secs(5));
}

#[test]
fn timer_13_virtual_clock_busy_loop_does_not_advance_until_told() {
    let _w = loop_testkit::watchdog();
    let lp = virtual_loop();
    let start = lp.now();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    lp.call_later(Duration::from_secs(1), move |_| f.set(true))
        .unwrap();
    // A callback that keeps the loop busy for 1000 iterations.
    fn spin(lp: &EventLoop, left: u32) {
        if left == 0 {
            lp.stop();
        } else {
            lp.call_soon(move |lp| spin(lp, left - 1)).unwrap();
        }
    }
    spin(&lp, 1000);
    lp.run_forever().unwrap();
    assert!(
        !fired.get(),
        "the clock stood still while the loop was busy"
    );
    assert_eq!(lp.now(), start);
    // Moved by hand, the timer is due at the next iteration.
    lp.advance_clock(Duration::from_secs(1)).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(fired.get());
    assert_eq!(lp.now() - start, Duration::from_secs(1));
}
