//! Waking a blocked loop from other threads: no wake-up may be lost (CORE-19, CORE-20).

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use loop_core::EventLoop;

/// xorshift64: cheap deterministic jitter.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Pairs of `call_soon_threadsafe` calls a few hundred nanoseconds apart, each pair waiting
/// until the loop ran the previous one, so that the loop is blocked (or just woken) whenever a
/// pair starts. The second call of a pair lands, now and then, while the loop is handling the
/// wake-up of the first: the window in which a wake-up was once swallowed (the flag that
/// coalesces wake-ups was re-armed before the eventfd was drained, so every later wake-up was
/// skipped and the loop slept with work queued).
///
/// A lost wake-up cannot be rescued through the wake-up path itself (`Remote::stop` uses it
/// too), so the guard here is a byte on a socket the loop watches: it wakes `epoll_wait` on
/// its own, and the test then fails instead of hanging.
#[test]
fn core_19_no_wake_up_is_lost_between_wake_and_rearm() {
    let _w = loop_testkit::watchdog();
    const ROUNDS: u64 = 20_000;
    let lp = EventLoop::new().unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let rescued = Arc::new(AtomicBool::new(false));

    // The guard: a reader that stops the loop; the guard thread writes when the callbacks
    // stopped making progress for 10 s (a generous bound for a loaded machine: a round takes
    // microseconds), unless the test finished first.
    let (guard_r, mut guard_w) = UnixStream::pair().unwrap();
    let res = rescued.clone();
    lp.add_reader(&guard_r, move |lp| {
        res.store(true, Ordering::SeqCst);
        lp.stop();
    })
    .unwrap();
    let (finished_tx, finished_rx) = mpsc::channel::<()>();
    let d = done.clone();
    let guard = std::thread::spawn(move || {
        let mut last = u64::MAX;
        loop {
            match finished_rx.recv_timeout(Duration::from_secs(10)) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = d.load(Ordering::SeqCst);
                    if now == last {
                        let _ = guard_w.write_all(b"!");
                        return;
                    }
                    last = now;
                }
                _ => return,
            }
        }
    });

    let remote = lp.remote();
    let d = done.clone();
    let producer = std::thread::spawn(move || {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..ROUNDS {
            for _ in 0..2 {
                let d = d.clone();
                remote
                    .call_soon_threadsafe(move |lp| {
                        if d.fetch_add(1, Ordering::SeqCst) + 1 == 2 * ROUNDS {
                            lp.stop();
                        }
                    })
                    .unwrap();
                for _ in 0..rng(&mut seed) % 512 {
                    std::hint::spin_loop();
                }
            }
            // Wait until the loop ran this pair (it blocks again right after).
            loop {
                let v = d.load(Ordering::SeqCst);
                if v == u64::MAX {
                    return; // the guard stopped the loop
                }
                if v >= 2 * (round + 1) {
                    break;
                }
                std::thread::yield_now();
            }
        }
    });
    lp.run_forever().unwrap();
    let rescued = rescued.load(Ordering::SeqCst);
    let ran = done.load(Ordering::SeqCst);
    if rescued {
        // End the producer's wait, so that it can be joined.
        done.store(u64::MAX, Ordering::SeqCst);
    }
    producer.join().unwrap();
    drop(finished_tx);
    guard.join().unwrap();
    assert!(
        !rescued,
        "the loop slept with work queued: a wake-up was lost after {ran} of {} callbacks",
        2 * ROUNDS
    );
    assert_eq!(ran, 2 * ROUNDS);
    lp.remove_reader(&guard_r).unwrap();
    lp.close().unwrap();
}
