//! Times `call_later`: `n` timers with random delays in [0, 50 ms), every other one cancelled,
//! the rest fired (the "timers" row of `cargo xtask bench`), plus the cost of scheduling alone.
//!
//! `cargo run --release -p loop-timers --example timers_bench -- [n] [runs]`

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loop_core::EventLoop;
use loop_timers::TimersExt;

/// xorshift64*: a fixed-seed source of delays.
struct Rng(u64);

impl Rng {
    fn delay(&mut self) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        Duration::from_nanos(self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % 50_000_000)
    }
}

/// Schedules `n` timers, cancels every other one, runs until the rest fired.
/// Returns (ns per timer in total, ns per timer to schedule).
fn run(n: u64) -> (f64, f64) {
    let lp = EventLoop::new().expect("loop");
    let fired = Rc::new(Cell::new(0u64));
    let expected = n - n / 2;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    for i in 0..n {
        let f = fired.clone();
        let h = lp
            .call_later(rng.delay(), move |lp| {
                f.set(f.get() + 1);
                if f.get() == expected {
                    lp.stop();
                }
            })
            .expect("open");
        if i % 2 == 1 {
            h.cancel();
        }
    }
    let scheduled = start.elapsed();
    lp.run_forever().expect("run");
    let total = start.elapsed();
    assert_eq!(fired.get(), expected);
    lp.close().expect("close");
    (
        total.as_nanos() as f64 / n as f64,
        scheduled.as_nanos() as f64 / n as f64,
    )
}

/// Schedules `n` timers and nothing else; returns ns per `call_later`.
fn schedule_only(n: u64, extension_lookup_only: bool) -> f64 {
    let lp = EventLoop::new().expect("loop");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    if extension_lookup_only {
        for _ in 0..n {
            std::hint::black_box(lp.timer_stats());
        }
    } else {
        for _ in 0..n {
            std::hint::black_box(lp.call_later(rng.delay(), |_| {}).expect("open"));
        }
    }
    let t = start.elapsed();
    lp.close().expect("close");
    t.as_nanos() as f64 / n as f64
}

fn main() {
    if std::env::var_os("SCHEDULE_ONLY").is_some() {
        for _ in 0..3 {
            println!(
                "call_later alone: {:.1} ns; timer_stats (extension lookup): {:.1} ns",
                schedule_only(1_000_000, false),
                schedule_only(1_000_000, true)
            );
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    run(n.min(10_000));
    let mut totals = Vec::new();
    let mut scheds = Vec::new();
    for _ in 0..runs {
        let (t, s) = run(n);
        totals.push(t);
        scheds.push(s);
    }
    totals.sort_by(f64::total_cmp);
    scheds.sort_by(f64::total_cmp);
    println!(
        "n={n}: median {:.1} ns/timer in total, {:.1} ns/timer to schedule (and cancel half)",
        totals[runs / 2],
        scheds[runs / 2]
    );
}
