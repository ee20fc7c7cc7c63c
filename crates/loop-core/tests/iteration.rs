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
