//! `EventLoop::stats()`: the always-on loop metrics.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loop_core::internal::LoopInternals;
use loop_core::internal::Source;
use loop_core::{EventLoop, Stats};

/// Runs `lp` until `f` stops it, returning the stats difference.
fn delta(lp: &EventLoop, f: impl FnOnce(&EventLoop)) -> (Stats, Stats) {
    let before = lp.stats();
    f(lp);
    lp.run_forever().unwrap();
    (before, lp.stats())
}

#[test]
fn stats_start_at_zero() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let s = lp.stats();
    assert_eq!(s, Stats::default(), "{s:?}");
    assert_eq!(s.run_time, Duration::ZERO);
}

#[test]
fn stats_count_iterations_callbacks_and_task_steps() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (b, a) = delta(&lp, |lp| {
        // Iteration 1: ten callbacks, one of them cancelled; a task is created.
        for _ in 0..9 {
            lp.call_soon(|_| {}).unwrap();
        }
        lp.call_soon(|_| unreachable!()).unwrap().cancel();
        let t = lp
            .create_task(async {
                // Three steps: start, after each of two yields.
                loop_core::yield_now().await;
                loop_core::yield_now().await;
            })
            .unwrap();
        t.add_done_callback(|t| t.get_loop().expect("open loop").stop());
    });
    assert_eq!(
        a.callbacks - b.callbacks,
        9 + 1,
        "nine plus the done-callback"
    );
    assert_eq!(a.tasks_polled - b.tasks_polled, 3);
    // Steps in iterations 1, 2, 3; the done-callback (scheduled by the last step) in 4.
    assert_eq!(a.iterations - b.iterations, 4);
    // Thread-safe callbacks count as callbacks too.
    let (b, a) = delta(&lp, |lp| {
        let r = lp.remote();
        std::thread::spawn(move || {
            r.call_soon_threadsafe(|_| {}).unwrap();
            r.call_soon_threadsafe(|lp| lp.stop()).unwrap();
        })
        .join()
        .unwrap();
    });
    assert_eq!(a.callbacks - b.callbacks, 2);
}

#[test]
fn stats_ready_high_water_is_the_largest_batch_an_iteration_ran() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (_, a) = delta(&lp, |lp| {
        for _ in 0..5 {
            lp.call_soon(|_| {}).unwrap();
        }
        lp.call_soon(|lp| {
            // The next iteration is smaller: the mark stays at the larger one.
            lp.call_soon(|lp| lp.stop()).unwrap();
        })
        .unwrap();
    });
    assert_eq!(a.ready_high_water, 6);
    let (_, a) = delta(&lp, |lp| {
        for _ in 0..40 {
            lp.call_soon(|_| {}).unwrap();
        }
        lp.stop();
    });
    assert_eq!(a.ready_high_water, 40);
}

#[test]
fn stats_io_events_and_fds_registered() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (r, mut w) = UnixStream::pair().unwrap();
    let (r2, _w2) = UnixStream::pair().unwrap();
    assert_eq!(lp.stats().fds_registered, 0);
    let reads = Rc::new(Cell::new(0u32));
    let n = reads.clone();
    let rr = r.try_clone().unwrap();
    lp.add_reader(&r, move |lp| {
        let mut buf = [0u8; 16];
        let _ = (&rr).read(&mut buf).unwrap();
        n.set(n.get() + 1);
        if n.get() == 3 {
            lp.stop();
        }
    })
    .unwrap();
    lp.add_writer(&r2, |_| {}).unwrap();
    lp.remove_writer(&r2).unwrap();
    lp.add_reader(&r2, |_| {}).unwrap();
    assert_eq!(lp.stats().fds_registered, 2);
    let before = lp.stats().io_events;
    // Three separate writes, each read by its own event: the writer thread waits for each
    // read before writing again.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let wr = std::thread::spawn(move || {
        for i in 0..3 {
            w.write_all(b"x").unwrap();
            if i < 2 && rx.recv().is_err() {
                break;
            }
        }
    });
    let n = reads.clone();
    let seen = Rc::new(Cell::new(0u32));
    let s = seen.clone();
    // Acknowledge each read from a callback that runs after it.
    fn ack(lp: &EventLoop, n: Rc<Cell<u32>>, s: Rc<Cell<u32>>, tx: std::sync::mpsc::Sender<()>) {
        if n.get() > s.get() {
            s.set(n.get());
            let _ = tx.send(());
        }
        if n.get() < 3 {
            lp.call_soon(move |lp| ack(lp, n, s, tx)).unwrap();
        }
    }
    lp.call_soon(move |lp| ack(lp, n, s, tx)).unwrap();
    lp.run_forever().unwrap();
    wr.join().unwrap();
    assert_eq!(reads.get(), 3);
    assert_eq!(lp.stats().io_events - before, 3);
    assert_eq!(lp.stats().fds_registered, 2);
    lp.remove_reader(&r).unwrap();
    lp.remove_reader(&r2).unwrap();
    assert_eq!(lp.stats().fds_registered, 0);
    lp.close().unwrap();
    assert_eq!(lp.stats().fds_registered, 0);
}

#[test]
fn stats_poll_time_is_idle_time_and_run_time_is_the_rest() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // Busy only: nothing blocks, the callback's sleep is running time.
    let outer = Instant::now();
    let (b, a) = delta(&lp, |lp| {
        lp.call_soon(|lp| {
            std::thread::sleep(Duration::from_millis(5));
            lp.stop()
        })
        .unwrap();
    });
    let outer = outer.elapsed();
    assert_eq!(a.poll_time, b.poll_time, "never waited");
    let run = a.run_time - b.run_time;
    assert!(run >= Duration::from_millis(5), "{a:?}");
    assert!(run <= outer, "{run:?} > {outer:?}");

    // Idle until another thread stops the loop: that wait is poll time, and the two add up to
    // (at most) the time spent in run_forever.
    let outer = Instant::now();
    let (b, a) = delta(&lp, |lp| {
        let r = lp.remote();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            r.stop().unwrap();
        });
    });
    let outer = outer.elapsed();
    let (poll, run) = (a.poll_time - b.poll_time, a.run_time - b.run_time);
    assert!(poll > Duration::ZERO, "{a:?}");
    assert!(poll + run <= outer, "{poll:?} + {run:?} > {outer:?}");
    // Outside run_forever nothing accrues.
    let s = lp.stats();
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(lp.stats().run_time, s.run_time);
    assert_eq!(lp.stats().poll_time, s.poll_time);
}

#[test]
fn stats_called_while_running_include_the_current_stretch() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(Cell::new(Duration::ZERO));
    let s = seen.clone();
    lp.call_soon(move |lp| {
        let before = lp.stats().run_time;
        std::thread::sleep(Duration::from_millis(3));
        s.set(lp.stats().run_time - before);
        lp.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert!(seen.get() >= Duration::from_millis(3), "{:?}", seen.get());
}

#[test]
fn stats_slow_callbacks_are_counted_in_debug_mode_only() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::builder().debug(false).build().unwrap();
    lp.set_slow_callback_duration(Duration::from_millis(1));
    let slow = |lp: &EventLoop| {
        std::thread::sleep(Duration::from_millis(2));
        lp.stop()
    };
    lp.call_soon(slow).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(lp.stats().slow_callbacks, 0, "not timed outside debug mode");
    lp.set_debug(true);
    let ((), _logs) = common::capture_logs(|| {
        lp.call_soon(|_| {}).unwrap();
        lp.call_soon(slow).unwrap();
        lp.run_forever().unwrap();
    });
    assert_eq!(lp.stats().slow_callbacks, 1);
}

/// A source that reports how many entries it holds.
struct Holding(Cell<usize>);

impl Source for Holding {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        None
    }
    fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
    fn close(&self, _lp: &EventLoop) {
        self.0.set(0);
    }
    fn pending(&self) -> usize {
        self.0.get()
    }
}

#[test]
fn stats_timers_pending_sums_what_the_sources_report() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    assert_eq!(lp.stats().timers_pending, 0);
    let a = Rc::new(Holding(Cell::new(3)));
    let b = Rc::new(Holding(Cell::new(4)));
    lp.add_source(a.clone());
    assert_eq!(lp.stats().timers_pending, 3);
    lp.add_source(b.clone());
    assert_eq!(lp.stats().timers_pending, 7);
    b.0.set(0);
    // Asked from inside the loop too.
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    lp.call_soon(move |lp| {
        s.set(lp.stats().timers_pending);
        lp.stop()
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(seen.get(), 3);
    lp.close().unwrap();
    assert_eq!(
        lp.stats().timers_pending,
        0,
        "sources are gone after close()"
    );
}

/// A source that does not say how much it holds: `Source::pending`'s default counts nothing.
struct Silent;

impl Source for Silent {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        None
    }
    fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
    fn close(&self, _lp: &EventLoop) {}
}

#[test]
fn stats_a_source_without_a_pending_count_adds_nothing() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.add_source(Rc::new(Silent));
    lp.add_source(Rc::new(Silent));
    assert_eq!(lp.stats().timers_pending, 0);
    lp.add_source(Rc::new(Holding(Cell::new(2))));
    assert_eq!(lp.stats().timers_pending, 2);
    lp.close().unwrap();
}

#[test]
fn stats_are_cheap_plain_copies() {
    let _w = loop_testkit::watchdog();
    // `Stats` is a `Copy` snapshot: later work does not change one already taken.
    let lp = EventLoop::new().unwrap();
    let s = lp.stats();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(s.iterations, 0);
    assert_eq!(lp.stats().iterations, 1);
    assert_eq!(lp.stats().polls, 1);
}

/// A source whose only deadline is fixed.
struct Deadline(Instant);

impl Source for Deadline {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        Some(self.0)
    }
    fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
    fn close(&self, _lp: &EventLoop) {}
}

/// Runs until a stop arrives from another thread while the loop blocks (repeated if the stop
/// came before the loop polled); the timeout of that blocking poll.
fn timeout_of_blocking_poll(lp: &EventLoop) -> Option<Duration> {
    for _ in 0..20 {
        let polls = lp.stats().polls;
        let r = lp.remote();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            r.stop().unwrap();
        });
        lp.run_forever().unwrap();
        th.join().unwrap();
        if lp.stats().polls > polls {
            return lp.stats().last_poll_timeout;
        }
    }
    panic!("the loop never blocked in a poll");
}

#[test]
fn stats_last_poll_timeout_is_the_timeout_given_to_the_poller_capped_at_one_day() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    assert_eq!(lp.stats().last_poll_timeout, None);
    // Nothing to wait for: the poll has no timeout.
    assert_eq!(timeout_of_blocking_poll(&lp), None);
    // A pre-stopped run polls without blocking.
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(lp.stats().last_poll_timeout, Some(Duration::ZERO));
    // A deadline two days out: the poller is asked for one day (TIMER-14).
    lp.add_source(Rc::new(Deadline(
        Instant::now() + 2 * loop_core::MAX_POLL_TIMEOUT,
    )));
    assert_eq!(
        timeout_of_blocking_poll(&lp),
        Some(loop_core::MAX_POLL_TIMEOUT)
    );
}

/// A loop says whether its clock is virtual, and only a virtual clock can be moved by hand:
/// `advance_clock` moves `now()` by exactly the amount given, and is refused on the real
/// clock with a message saying how to get a virtual one.
#[test]
fn virtual_clock_loops_say_so_and_only_they_can_be_advanced() {
    let _w = loop_testkit::watchdog();
    let real = EventLoop::new().unwrap();
    assert!(!real.is_virtual_clock());
    let e = real.advance_clock(Duration::from_secs(1)).unwrap_err();
    assert!(e.to_string().contains("virtual_clock()"), "{e}");
    real.close().unwrap();
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    assert!(lp.is_virtual_clock());
    let t0 = lp.now();
    lp.advance_clock(Duration::from_secs(90)).unwrap();
    assert_eq!(lp.now() - t0, Duration::from_secs(90));
    lp.close().unwrap();
}
