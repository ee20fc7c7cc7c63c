//! A burst of 10,000 SIGUSR1 sent to the whole process (SIG-01, SIG-10): the handler runs at
//! least once (deliveries may coalesce), and the loop keeps working.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{pending_for_process, send, send_to_process, serial, spin_until, Watchdog};
use loop_core::EventLoop;
use loop_signals::SignalsExt;

const SIG: i32 = libc::SIGUSR1;
const BURST: usize = 10_000;

#[test]
fn sig_10_burst_of_10000_sigusr1_runs_the_handler_and_the_loop_survives() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let count = Rc::new(Cell::new(0usize));
    let c = count.clone();
    lp.add_signal_handler(SIG, move |_| c.set(c.get() + 1))
        .unwrap();
    let sender = std::thread::spawn(|| {
        for _ in 0..BURST {
            send_to_process(SIG);
        }
    });
    // The loop runs while the burst goes on.
    assert!(spin_until(&lp, || sender.is_finished() && count.get() >= 1));
    sender.join().unwrap();
    // Every process-directed SIGUSR1 has been handled (none still pending), and its byte read.
    assert!(common::eventually(|| !pending_for_process(SIG)));
    let after_burst = {
        let before = count.get();
        spin_until(&lp, || true);
        count.get().max(before)
    };
    assert!(after_burst >= 1, "the handler never ran");
    assert!(
        after_burst <= BURST,
        "more runs ({after_burst}) than signals"
    );

    // The loop keeps working: callbacks, tasks, wake-ups from other threads...
    assert_eq!(lp.run_until_complete(async { 40 + 2 }).unwrap(), 42);
    let remote = lp.remote();
    let t = std::thread::spawn(move || remote.call_soon_threadsafe(|lp| lp.stop()).unwrap());
    let dog = Watchdog::new(&lp);
    lp.run_forever().unwrap();
    assert!(!dog.fired());
    t.join().unwrap();
    // ... and so does the handler.
    send(SIG);
    assert!(spin_until(&lp, || count.get() == after_burst + 1));
    lp.close().unwrap();
}
