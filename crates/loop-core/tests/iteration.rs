//! CORE-07, one loop iteration: how often a busy loop polls for I/O, and what a virtual clock
//! does when the poll finds nothing (jump to the next deadline) or finds I/O (no jump).

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use loop_core::internal::{LoopInternals, Source};
use loop_core::{EventLoop, POLL_EVERY};

/// CORE-07: while callbacks keep the ready queue non-empty, the loop skips the poll for
/// exactly `POLL_EVERY` iterations and polls in the next one: in a chain of 1000 callbacks
/// (one per iteration) the poll count goes up every `POLL_EVERY + 1` iterations.
#[test]
fn core_07_a_busy_loop_polls_once_every_poll_every_plus_one_iterations() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let polls = Rc::new(RefCell::new(Vec::new()));
    fn chain(lp: &EventLoop, n: u32, polls: Rc<RefCell<Vec<u64>>>) {
        polls.borrow_mut().push(lp.stats().polls);
        if n == 1000 {
            lp.stop();
            return;
        }
        lp.call_soon(move |lp| chain(lp, n + 1, polls)).unwrap();
    }
    let p = polls.clone();
    lp.call_soon(move |lp| chain(lp, 0, p)).unwrap();
    lp.run_forever().unwrap();
    let polls = polls.borrow();
    assert_eq!(polls.len(), 1001);
    // The iterations (callback indices) in which the poll count went up.
    let rises: Vec<usize> = (1..polls.len())
        .filter(|&i| polls[i] > polls[i - 1])
        .collect();
    assert!(rises.len() >= 10, "{rises:?}");
    let gaps: Vec<usize> = rises.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|&g| g == POLL_EVERY as usize + 1),
        "polls every {gaps:?} iterations, expected every {}",
        POLL_EVERY + 1
    );
    lp.close().unwrap();
}

/// A source with one deadline: stops the loop when it is due, recording the loop's `now()`.
struct Due {
    at: Instant,
    fired: Cell<Option<Instant>>,
}

impl Source for Due {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        self.fired.get().is_none().then_some(self.at)
    }
    fn dispatch(&self, lp: &EventLoop, now: Instant) {
        if now >= self.at && self.fired.get().is_none() {
            self.fired.set(Some(lp.now()));
            lp.stop();
        }
    }
    fn close(&self, _lp: &EventLoop) {}
}

/// CORE-07 with a virtual clock: when nothing is ready and the poll finds no I/O, the loop
/// jumps its clock to the next deadline at once instead of waiting for it.
#[test]
fn core_07_virtual_clock_jumps_to_the_next_deadline_when_nothing_is_ready() {
    let _w = watchdog();
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    let w = watchdog_for(&lp).limit(20);
    let start = lp.now();
    let hour = Duration::from_secs(3600);
    let due = Rc::new(Due {
        at: start + hour,
        fired: Cell::new(None),
    });
    lp.add_source(due.clone());
    lp.run_forever().unwrap();
    assert!(!w.fired(), "the virtual clock never reached the deadline");
    assert_eq!(due.fired.get(), Some(start + hour));
    assert_eq!(lp.now() - start, hour);
    lp.close().unwrap();
}

/// CORE-07 with a virtual clock: I/O that the zero-timeout poll finds ready happens *before*
/// the next deadline, so the clock does not jump in that iteration: the reader runs at the
/// time it was, and the jump comes in a later iteration with nothing ready.
#[test]
fn core_07_virtual_clock_does_not_jump_past_io_that_is_ready() {
    let _w = watchdog();
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    let w = watchdog_for(&lp).limit(20);
    let start = lp.now();
    let hour = Duration::from_secs(3600);
    let due = Rc::new(Due {
        at: start + hour,
        fired: Cell::new(None),
    });
    lp.add_source(due.clone());
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"x").unwrap();
    let read_at = Rc::new(Cell::new(None));
    let r = read_at.clone();
    let reader = Rc::new(a);
    let ra = reader.clone();
    lp.add_reader(&*reader, move |lp| {
        let mut buf = [0u8; 8];
        let _ = std::io::Read::read(&mut &*ra, &mut buf);
        if r.get().is_none() {
            r.set(Some(lp.now()));
        }
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert!(!w.fired());
    assert_eq!(
        read_at.get(),
        Some(start),
        "the clock jumped past ready I/O"
    );
    assert_eq!(due.fired.get(), Some(start + hour));
    assert!(lp.remove_reader(&*reader).unwrap());
    lp.close().unwrap();
}

/// A source that counts the iterations in which it was asked for due work.
struct Counting {
    dispatched: Cell<u64>,
}

impl Source for Counting {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        None
    }
    fn dispatch(&self, _lp: &EventLoop, _now: Instant) {
        self.dispatched.set(self.dispatched.get() + 1);
    }
    fn close(&self, _lp: &EventLoop) {}
}

/// CORE-07: a busy loop with sources lets them queue due work in every iteration, also in
/// those that skip the poll; and the iteration count rises by exactly one from one link of a
/// chain of callbacks to the next, across the iterations that poll and those that do not.
#[test]
fn core_07_a_busy_loop_with_sources_dispatches_them_every_iteration() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let source = Rc::new(Counting {
        dispatched: Cell::new(0),
    });
    lp.add_source(source.clone());
    // (iterations, dispatches) as each link of the chain saw them.
    let seen = Rc::new(RefCell::new(Vec::new()));
    fn chain(lp: &EventLoop, n: u32, source: Rc<Counting>, seen: Rc<RefCell<Vec<(u64, u64)>>>) {
        seen.borrow_mut()
            .push((lp.stats().iterations, source.dispatched.get()));
        if n == 3 * POLL_EVERY {
            lp.stop();
            return;
        }
        lp.call_soon(move |lp| chain(lp, n + 1, source, seen))
            .unwrap();
    }
    let (s, p) = (source.clone(), seen.clone());
    lp.call_soon(move |lp| chain(lp, 0, s, p)).unwrap();
    lp.run_forever().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 3 * POLL_EVERY as usize + 1);
    for (i, &(iterations, dispatched)) in seen.iter().enumerate() {
        let i = i as u64 + 1;
        assert_eq!(iterations, i, "iterations seen by link {i}: {seen:?}");
        assert_eq!(dispatched, i, "dispatches seen by link {i}: {seen:?}");
    }
    assert_eq!(lp.stats().iterations, seen.len() as u64);
    lp.close().unwrap();
}

/// CORE-19 with CORE-07: work another thread queues while a chain of local callbacks keeps the
/// loop busy runs in the next iteration, also in the iterations that skip the poll: before the
/// next link of the chain if it was queued before that link (enqueue order), behind it if it
/// was queued after.
#[test]
fn core_19_threadsafe_work_queued_during_a_busy_chain_runs_in_the_next_iteration() {
    let _w = watchdog();
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::sync::{Arc, Mutex};

    /// What ran, each with the iteration it ran in.
    type Events = Arc<Mutex<Vec<(u64, String)>>>;
    let lp = EventLoop::new().unwrap();
    let events: Events = Arc::default();
    // A thread that queues one callback each time it is asked, and says when it has.
    let (ask, asked) = channel::<u32>();
    let (done, queued) = channel::<()>();
    let remote = lp.remote();
    let e = events.clone();
    let t = std::thread::spawn(move || {
        for n in asked {
            let e = e.clone();
            remote
                .call_soon_threadsafe(move |lp| {
                    let i = lp.stats().iterations;
                    e.lock().unwrap().push((i, format!("remote {n}")));
                })
                .unwrap();
            done.send(()).unwrap();
        }
    });
    struct Link {
        n: u32,
        events: Events,
        ask: Sender<u32>,
        queued: Rc<Receiver<()>>,
    }
    impl Link {
        fn remote_work(&self) {
            self.ask.send(self.n).unwrap();
            self.queued.recv().unwrap();
        }
    }
    fn chain(lp: &EventLoop, mut link: Link) {
        let i = lp.stats().iterations;
        link.events.lock().unwrap().push((i, format!("{}", link.n)));
        if link.n == 2 * POLL_EVERY {
            lp.stop();
            return;
        }
        // Every seventh link queues remote work before the next link, every seventh after it.
        let (before, after) = (link.n % 7 == 3, link.n % 7 == 5);
        if before {
            link.remote_work();
        }
        let n = link.n;
        let (ask, queued) = (link.ask.clone(), link.queued.clone());
        link.n += 1;
        lp.call_soon(move |lp| chain(lp, link)).unwrap();
        if after {
            ask.send(n).unwrap();
            queued.recv().unwrap();
        }
    }
    let link = Link {
        n: 0,
        events: events.clone(),
        ask,
        queued: Rc::new(queued),
    };
    lp.call_soon(move |lp| chain(lp, link)).unwrap();
    let start = lp.stats().iterations;
    lp.run_forever().unwrap();
    // The chain's senders are gone with its last link: the thread ends.
    t.join().unwrap();
    // Link `n` runs in iteration `n + 1`; what it had queued in iteration `n + 2`.
    let mut expected = Vec::new();
    for n in 0..=2 * POLL_EVERY {
        let i = start + u64::from(n) + 1;
        if n > 0 && (n - 1) % 7 == 3 {
            expected.push((i, format!("remote {}", n - 1)));
        }
        expected.push((i, format!("{n}")));
        if n > 0 && (n - 1) % 7 == 5 {
            expected.push((i, format!("remote {}", n - 1)));
        }
    }
    assert_eq!(*events.lock().unwrap(), expected);
    lp.close().unwrap();
}
