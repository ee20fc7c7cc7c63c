//! The micro-benchmarks on evloop.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use evloop::prelude::*;

use crate::util::{timed, Counter, Rng};

fn next(lp: &EventLoop, left: Counter) {
    let n = left.get();
    if n == 0 {
        lp.stop();
        return;
    }
    left.set(n - 1);
    lp.call_soon(move |lp| next(lp, left)).expect("loop open");
}

/// Each callback schedules the next.
pub fn chain(n: u64) -> Duration {
    let lp = EventLoop::new().expect("loop");
    let left: Counter = Rc::new(Cell::new(n));
    let t = timed(|| {
        next(&lp, left);
        lp.run_forever().expect("run");
    });
    lp.close().expect("close");
    t
}

/// `n` callbacks queued at once, then run.
pub fn queued(n: u64) -> Duration {
    let lp = EventLoop::new().expect("loop");
    let count: Counter = Rc::new(Cell::new(0));
    let t = timed(|| {
        for _ in 0..n {
            let c = count.clone();
            lp.call_soon(move |_| c.set(c.get() + 1))
                .expect("loop open");
        }
        lp.call_soon(|lp| lp.stop()).expect("loop open");
        lp.run_forever().expect("run");
    });
    assert_eq!(count.get(), n);
    lp.close().expect("close");
    t
}

/// `n` timers with random delays in [0, 50 ms), every other one cancelled; the rest fire.
pub fn timers(n: u64) -> Duration {
    let lp = EventLoop::new().expect("loop");
    let fired: Counter = Rc::new(Cell::new(0));
    let mut rng = Rng::new();
    let expected = n - n / 2;
    let t = timed(|| {
        for i in 0..n {
            let f = fired.clone();
            let h = lp
                .call_later(rng.delay(), move |lp| {
                    f.set(f.get() + 1);
                    if f.get() == expected {
                        lp.stop();
                    }
                })
                .expect("loop open");
            if i % 2 == 1 {
                h.cancel();
            }
        }
        lp.run_forever().expect("run");
    });
    assert_eq!(fired.get(), expected);
    lp.close().expect("close");
    t
}

/// `n` tasks created, then awaited one by one from a main task.
pub fn tasks(n: u64) -> Duration {
    let lp = EventLoop::new().expect("loop");
    let lp2 = lp.clone();
    let t = timed(|| {
        let total = lp
            .run_until_complete(async move {
                let mut ts = Vec::with_capacity(n as usize);
                for i in 0..n {
                    ts.push(lp2.create_task(async move { i }).expect("loop open"));
                }
                let mut sum = 0u64;
                for t in ts {
                    sum += t.await.expect("task ok");
                }
                sum
            })
            .expect("run");
        assert_eq!(total, n * (n - 1) / 2);
    });
    lp.close().expect("close");
    t
}

/// `n` `call_soon_threadsafe` from another thread. The callbacks count on the loop's thread
/// and capture only `n`, so that (as with the peers' channels of `u64`) the producer shares no
/// counter with the consumer: what is measured is the queue and the wake-ups.
pub fn threadsafe(n: u64) -> Duration {
    thread_local! {
        static COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    COUNT.with(|c| c.set(0));
    let lp = EventLoop::new().expect("loop");
    let remote = lp.remote();
    let t = timed(|| {
        let th = std::thread::spawn(move || {
            for _ in 0..n {
                remote
                    .call_soon_threadsafe(move |lp| {
                        let seen = COUNT.with(|c| {
                            c.set(c.get() + 1);
                            c.get()
                        });
                        if seen == n {
                            lp.stop();
                        }
                    })
                    .expect("loop open");
            }
        });
        lp.run_forever().expect("run");
        th.join().expect("producer");
    });
    assert_eq!(COUNT.with(|c| c.get()), n);
    lp.close().expect("close");
    t
}
