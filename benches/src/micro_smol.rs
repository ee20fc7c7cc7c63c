//! The micro-benchmarks on smol's parts: `async_executor::LocalExecutor` + `async_io`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use async_executor::LocalExecutor;

use crate::util::{timed, Counter, Rng};

fn spawn_next(ex: &Rc<LocalExecutor<'static>>, left: Counter, done: async_channel::Sender<()>) {
    let n = left.get();
    if n == 0 {
        let _ = done.try_send(());
        return;
    }
    left.set(n - 1);
    let ex2 = ex.clone();
    ex.spawn(async move { spawn_next(&ex2, left, done) })
        .detach();
}

/// Each task spawns the next.
pub fn chain(n: u64) -> Duration {
    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let (tx, rx) = async_channel::bounded(1);
    timed(|| {
        spawn_next(&ex, Rc::new(Cell::new(n)), tx);
        async_io::block_on(ex.run(async { rx.recv().await.expect("done") }));
    })
}

/// `n` tasks spawned at once, then run.
pub fn queued(n: u64) -> Duration {
    let ex = LocalExecutor::new();
    let count: Counter = Rc::new(Cell::new(0));
    let t = timed(|| {
        for _ in 0..n {
            let c = count.clone();
            ex.spawn(async move { c.set(c.get() + 1) }).detach();
        }
        async_io::block_on(ex.run(async {
            while count.get() < n {
                futures_lite::future::yield_now().await;
            }
        }));
    });
    assert_eq!(count.get(), n);
    t
}

/// `n` tasks on `async_io::Timer`s with random delays, every other one cancelled.
pub fn timers(n: u64) -> Duration {
    let ex = LocalExecutor::new();
    let fired: Counter = Rc::new(Cell::new(0));
    let mut rng = Rng::new();
    let expected = n - n / 2;
    let (tx, rx) = async_channel::bounded(1);
    let t = timed(|| {
        let mut keep = Vec::with_capacity((n / 2 + 1) as usize);
        for i in 0..n {
            let f = fired.clone();
            let tx = tx.clone();
            let delay = rng.delay();
            let task = ex.spawn(async move {
                async_io::Timer::after(delay).await;
                f.set(f.get() + 1);
                if f.get() == expected {
                    let _ = tx.try_send(());
                }
            });
            if i % 2 == 1 {
                drop(task);
            } else {
                keep.push(task);
            }
        }
        for t in keep {
            t.detach();
        }
        async_io::block_on(ex.run(async { rx.recv().await.expect("done") }));
    });
    assert_eq!(fired.get(), expected);
    t
}

/// `n` tasks spawned, then awaited one by one.
pub fn tasks(n: u64) -> Duration {
    let ex = LocalExecutor::new();
    timed(|| {
        async_io::block_on(ex.run(async {
            let mut hs = Vec::with_capacity(n as usize);
            for i in 0..n {
                hs.push(ex.spawn(async move { i }));
            }
            let mut sum = 0u64;
            for h in hs {
                sum += h.await;
            }
            assert_eq!(sum, n * (n - 1) / 2);
        }))
    })
}

/// `n` messages through an unbounded async-channel from another thread.
pub fn threadsafe(n: u64) -> Duration {
    let (tx, rx) = async_channel::unbounded::<u64>();
    timed(|| {
        let th = std::thread::spawn(move || {
            for i in 0..n {
                tx.send_blocking(i).expect("receiver alive");
            }
        });
        async_io::block_on(async {
            for _ in 0..n {
                rx.recv().await.expect("sender alive");
            }
        });
        th.join().expect("producer");
    })
}
