//! The micro-benchmarks on tokio: current-thread runtime + `LocalSet`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::task::LocalSet;

use crate::util::{timed, Counter, Rng};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn spawn_next(left: Counter, done: Rc<tokio::sync::Notify>) {
    let n = left.get();
    if n == 0 {
        done.notify_one();
        return;
    }
    left.set(n - 1);
    tokio::task::spawn_local(async move { spawn_next(left, done) });
}

/// Each task spawns the next.
pub fn chain(n: u64) -> Duration {
    let rt = rt();
    let local = LocalSet::new();
    timed(|| {
        local.block_on(&rt, async {
            let done = Rc::new(tokio::sync::Notify::new());
            spawn_next(Rc::new(Cell::new(n)), done.clone());
            done.notified().await;
        })
    })
}

/// `n` tasks spawned at once, then run.
pub fn queued(n: u64) -> Duration {
    let rt = rt();
    let local = LocalSet::new();
    let count: Counter = Rc::new(Cell::new(0));
    let t = timed(|| {
        local.block_on(&rt, async {
            for _ in 0..n {
                let c = count.clone();
                tokio::task::spawn_local(async move { c.set(c.get() + 1) });
            }
            while count.get() < n {
                tokio::task::yield_now().await;
            }
        })
    });
    assert_eq!(count.get(), n);
    t
}

/// `n` sleeping tasks with random delays, every other one aborted.
pub fn timers(n: u64) -> Duration {
    let rt = rt();
    let local = LocalSet::new();
    let fired: Counter = Rc::new(Cell::new(0));
    let mut rng = Rng::new();
    let expected = n - n / 2;
    let t = timed(|| {
        local.block_on(&rt, async {
            let done = Rc::new(tokio::sync::Notify::new());
            for i in 0..n {
                let f = fired.clone();
                let d = done.clone();
                let delay = rng.delay();
                let h = tokio::task::spawn_local(async move {
                    tokio::time::sleep(delay).await;
                    f.set(f.get() + 1);
                    if f.get() == expected {
                        d.notify_one();
                    }
                });
                if i % 2 == 1 {
                    h.abort();
                }
            }
            done.notified().await;
        })
    });
    assert_eq!(fired.get(), expected);
    t
}

/// `n` tasks spawned, then awaited one by one.
pub fn tasks(n: u64) -> Duration {
    let rt = rt();
    let local = LocalSet::new();
    timed(|| {
        local.block_on(&rt, async {
            let mut hs = Vec::with_capacity(n as usize);
            for i in 0..n {
                hs.push(tokio::task::spawn_local(async move { i }));
            }
            let mut sum = 0u64;
            for h in hs {
                sum += h.await.expect("task ok");
            }
            assert_eq!(sum, n * (n - 1) / 2);
        })
    })
}

/// `n` messages through an unbounded mpsc channel from another thread.
pub fn threadsafe(n: u64) -> Duration {
    let rt = rt();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    timed(|| {
        let th = std::thread::spawn(move || {
            for i in 0..n {
                tx.send(i).expect("receiver alive");
            }
        });
        rt.block_on(async {
            let mut got = 0;
            while got < n {
                rx.recv().await.expect("sender alive");
                got += 1;
            }
        });
        th.join().expect("producer");
    })
}
