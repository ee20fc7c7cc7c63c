//! Reliability under load: a million timers, and a thousand loops created and closed in
//! sequence and on eight threads with the process's fd and thread counts back at baseline.
//!
//! The thousand-loops test counts process-wide fds and threads, so it runs alone
//! (`loop_testkit::exclusive`).

use std::cell::RefCell;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::prelude::*;

use loop_testkit::{fd_count, thread_count};

/// xorshift64*: a fixed-seed source of delays, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn reliability_million_timers_half_cancelled_rest_fire_in_order() {
    let _w = loop_testkit::watchdog();
    const N: u32 = 1_000_000;
    let lp = EventLoop::new().unwrap();
    let fired: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(Vec::with_capacity(N as usize / 2)));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cancel = Vec::with_capacity(N as usize / 2);
    for i in 0..N {
        let delay = Duration::from_micros(rng.below(50_000));
        let f = fired.clone();
        let h = lp
            .call_later(delay, move |_| f.borrow_mut().push(i))
            .unwrap();
        if i % 2 == 1 {
            cancel.push(h);
        } else {
            // Keep the deadline of every timer that must fire, indexed by its number.
            let when = h.when();
            WHEN.with(|w| w.borrow_mut().push((i, when)));
        }
    }
    for h in &cancel {
        h.cancel();
    }
    // Run until every uncancelled timer fired (the last deadline is < 50 ms away).
    let f = fired.clone();
    lp.run_until_complete({
        let lp = lp.clone();
        async move {
            while f.borrow().len() < (N / 2) as usize {
                lp.sleep(Duration::from_millis(5)).await.unwrap();
            }
        }
    })
    .unwrap();
    let fired = fired.borrow();
    assert_eq!(
        fired.len(),
        (N / 2) as usize,
        "every uncancelled timer fires once"
    );
    assert!(fired.iter().all(|i| i % 2 == 0), "no cancelled timer fired");
    // In deadline order, ties in scheduling order.
    let when: Vec<Instant> = WHEN.with(|w| {
        let w = w.borrow();
        let mut by_index = vec![None; N as usize];
        for (i, t) in w.iter() {
            by_index[*i as usize] = Some(*t);
        }
        fired
            .iter()
            .map(|i| by_index[*i as usize].expect("deadline"))
            .collect()
    });
    for k in 1..fired.len() {
        let (a, b) = (when[k - 1], when[k]);
        assert!(
            a < b || (a == b && fired[k - 1] < fired[k]),
            "timer {} (due {:?}) fired after timer {} (due {:?})",
            fired[k],
            b,
            fired[k - 1],
            a
        );
    }
    lp.close().unwrap();
}

thread_local! {
    static WHEN: RefCell<Vec<(u32, Instant)>> = const { RefCell::new(Vec::new()) };
}

/// One short life of a loop: a callback, a timer, a task, an fd watcher and a signal handler,
/// run and closed.
fn one_loop_life(sig: Option<i32>) {
    let lp = EventLoop::new().unwrap();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let hits = Rc::new(RefCell::new(0));
    let h = hits.clone();
    lp.add_reader(a.as_fd(), move |lp| {
        *h.borrow_mut() += 1;
        lp.stop();
    })
    .unwrap();
    if let Some(sig) = sig {
        lp.add_signal_handler(sig, |_| {}).unwrap();
    }
    lp.call_soon(move |_| {
        use std::io::Write;
        (&b).write_all(b"x").unwrap();
    })
    .unwrap();
    lp.call_later(Duration::from_millis(1), |_| {}).unwrap();
    let task = lp.create_task(async { 7 }).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), 7);
    assert_eq!(*hits.borrow(), 1);
    lp.remove_reader(&a).unwrap();
    lp.close().unwrap();
}

#[test]
fn reliability_thousand_loops_in_sequence_and_on_eight_threads_leak_nothing() {
    let _w = loop_testkit::exclusive();
    // Warm up process-wide state created once (the signal pipe's registry, tracing).
    one_loop_life(Some(evloop::signals::consts::SIGUSR2));
    let fds = fd_count();
    let threads = thread_count();

    for _ in 0..1000 {
        one_loop_life(Some(evloop::signals::consts::SIGUSR2));
    }
    assert_eq!(fd_count(), fds, "fds leaked by 1000 sequential loops");
    // Other test threads of this binary may end meanwhile: the count must not grow.
    assert!(
        thread_count() <= threads,
        "threads leaked by 1000 sequential loops"
    );

    // Signals are owned by one loop at a time, so the threaded run leaves them out.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..125 {
                    one_loop_life(None);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker thread");
    }
    assert_eq!(fd_count(), fds, "fds leaked by 1000 loops on 8 threads");
    assert!(
        thread_count() <= threads,
        "threads left behind by 1000 loops on 8 threads"
    );
}
