//! SUB-04 at the level of allocations: while nothing is queued and no protocol method runs,
//! the child's output goes from the pipe transport's read buffer straight to
//! `pipe_data_received`, without a copy. This binary counts the bytes of allocations of at
//! least 1 KiB with a counting global allocator (a count, not a timing).

// A counting global allocator has to implement the unsafe `GlobalAlloc` trait: the unsafe
// code below is that, each block with its SAFETY note.
#![allow(unsafe_code)]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use loop_core::{EventLoop, LoopFuture};
use loop_subprocess::{SubprocessExt, SubprocessOptions, SubprocessProtocol};

/// Bytes in allocations (and growing reallocations) of at least 1 KiB so far.
static BIG_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the big allocations.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator upholds exactly the contract `System` does; the counter is an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= 1024 {
            BIG_BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= 1024 {
            BIG_BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= 1024 && new_size > layout.size() {
            BIG_BYTES.fetch_add(new_size - layout.size(), Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts the bytes of stdout and keeps nothing.
struct Counter {
    stdout: Rc<Cell<usize>>,
    done: LoopFuture<()>,
}

impl SubprocessProtocol for Counter {
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        if fd == 1 {
            self.stdout.set(self.stdout.get() + data.len());
        }
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        let _ = self.done.set_result(());
    }
}

/// SUB-04: 4 MiB of a child's stdout reach `pipe_data_received` in full while the
/// allocations of 1 KiB or more add up to far less than the data (the read buffers, not a
/// copy of every chunk).
#[test]
fn sub_04_pipe_data_reaches_the_protocol_without_a_copy() {
    let _w = serial();
    let lp = EventLoop::new().unwrap();
    let stdout = Rc::new(Cell::new(0));
    let done = lp.create_future();
    let (s, d) = (stdout.clone(), done.clone());
    let lp2 = lp.clone();
    let t = run(&lp, LONG, async move {
        lp2.subprocess_exec(
            move || Counter { stdout: s, done: d },
            "head",
            SubprocessOptions::new().args(["-c", "4194304", "/dev/zero"]),
        )
        .await
        .map(|(t, _)| t)
    })
    .unwrap();
    let before = BIG_BYTES.load(Ordering::SeqCst);
    run(&lp, LONG, done).unwrap();
    let big = BIG_BYTES.load(Ordering::SeqCst) - before;
    assert_eq!(stdout.get(), 4 << 20);
    assert_eq!(t.get_returncode(), Some(0));
    assert!(
        big < 1 << 20,
        "{big} bytes allocated in blocks of 1 KiB or more for 4 MiB of output: the data is copied"
    );
    lp.close().unwrap();
}
