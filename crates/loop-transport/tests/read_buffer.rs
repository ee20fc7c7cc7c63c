//! NET-50 reads at the level of allocations: every read of a plain-protocol transport goes
//! into the loop's one read buffer, which is borrowed in place for the read,
//! so many reads allocate it once, not once per read. This binary counts the allocations of at
//! least [`DEFAULT_MAX_READ`] bytes with a counting global allocator (a count, not a timing).

// A counting global allocator has to implement the unsafe `GlobalAlloc` trait: the unsafe
// code below is that, each block with its SAFETY note.
#![allow(unsafe_code)]
// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use loop_core::EventLoop;
use loop_transport::{Transport, TransportOptions, DEFAULT_MAX_READ};

/// Allocations (and growing reallocations) of at least `DEFAULT_MAX_READ` bytes so far.
static BIG: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the big allocations.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator upholds exactly the contract `System` does; the counter is an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= DEFAULT_MAX_READ {
            BIG.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= DEFAULT_MAX_READ {
            BIG.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= DEFAULT_MAX_READ && new_size > layout.size() {
            BIG.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// NET-50: forty separate reads (each message waits for the one before it to arrive) deliver
/// every byte, and allocate the read buffer at most once between them.
#[test]
fn net_50_reads_reuse_the_loops_read_buffer() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    // The first read allocates the buffer.
    peer.write_all(b"first").unwrap();
    until(&lp, 30, || data_of(&log) == b"first");
    let mut expected = b"first".to_vec();
    let before = BIG.load(Ordering::SeqCst);
    for i in 0..40u8 {
        let msg = [b'a' + i % 26; 100];
        peer.write_all(&msg).unwrap();
        expected.extend_from_slice(&msg);
        until(&lp, 30, || data_of(&log).len() == expected.len());
    }
    let big = BIG.load(Ordering::SeqCst) - before;
    assert_eq!(data_of(&log), expected);
    assert!(
        big <= 1,
        "{big} allocations of {DEFAULT_MAX_READ} bytes or more for 40 reads: the read buffer is not reused"
    );
    t.abort();
    spin(&lp, 2);
}
