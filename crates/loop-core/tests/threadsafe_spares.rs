//! The spent allocations of `call_soon_threadsafe` that the loop keeps for reuse are bounded:
//! CORE-19.
//!
//! A callback queued from another thread is one allocation; once it ran, the loop keeps it so
//! that the next calls can reuse it instead of allocating. What is kept must stay bounded
//! whatever the producers sent, or a burst of large callbacks would stay in memory for as long
//! as the loop lives.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use loop_core::EventLoop;

/// Counts the bytes allocated and not yet freed, process-wide.
struct LiveBytes;

/// Bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the count is an atomic,
// which never allocates.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: LiveBytes = LiveBytes;

/// The most bytes of spent callbacks the loop's shared pool keeps (loop-core's
/// `SPARE_REMOTE_BYTES`).
const POOL_MAX: i64 = 4 << 20;

/// How many bytes of spent callbacks the loop collects before it hands them to the pool at
/// once (loop-core's `GIVE_BACK_BYTES`): less than that, plus one callback, may wait on the
/// loop's side.
const CHUNK_BYTES: i64 = 16 << 10;

/// A thousand 60 KB callbacks queued from another thread (60 MB in all) leave at most the
/// pool's 4 MiB, plus one chunk not yet handed over, once they ran: the rest is freed.
#[test]
fn core_19_the_loop_keeps_a_bounded_amount_of_spent_threadsafe_callbacks() {
    let _w = watchdog();
    const N: u64 = 1000;
    const SIZE: usize = 60_000;
    let lp = EventLoop::new().unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    let before = LIVE.load(Ordering::Relaxed);
    // Queued while the loop does not run: nothing is spent yet, so every call allocates.
    let remote = lp.remote();
    let r = ran.clone();
    std::thread::spawn(move || {
        for i in 0..N {
            let payload = [i as u8; SIZE];
            let r = r.clone();
            remote
                .call_soon_threadsafe(move |_| {
                    assert_eq!(payload[SIZE - 1], i as u8);
                    r.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
        }
    })
    .join()
    .unwrap();
    run_once(&lp);
    assert_eq!(ran.load(Ordering::Relaxed), N, "every callback ran");
    let kept = LIVE.load(Ordering::Relaxed) - before;
    let bound = POOL_MAX + CHUNK_BYTES + SIZE as i64 + (1 << 20);
    assert!(
        kept <= bound,
        "the loop keeps {kept} bytes of spent callbacks (at most {bound} expected)"
    );
    lp.close().unwrap();
}

/// A spent callback is reused only once nobody holds it: one whose handle is kept stays as it
/// ended (started, not cancellable, same location), and cancelling that handle later has no
/// effect on the callbacks queued after it, which all run. Enough callbacks of one closure
/// type to fill several hand-back chunks go through the loop twice.
#[test]
fn core_19_a_spent_callback_whose_handle_is_kept_is_not_reused() {
    let _w = watchdog();
    const N: usize = 2000;
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    let ran = Arc::new(AtomicU64::new(0));
    let call = |r: &Arc<AtomicU64>| {
        let r = r.clone();
        remote
            .call_soon_threadsafe(move |_| {
                r.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap()
    };
    let kept: Vec<_> = (0..N).map(|_| call(&ran)).collect();
    run_once(&lp);
    assert_eq!(ran.load(Ordering::Relaxed), N as u64);
    // Spent callbacks without a handle: the ones the pool may hand out.
    for _ in 0..N {
        drop(call(&ran));
    }
    run_once(&lp);
    assert_eq!(ran.load(Ordering::Relaxed), 2 * N as u64);
    // A second round, queued while the kept handles are still held.
    let later: Vec<_> = (0..N).map(|_| call(&ran)).collect();
    for h in &kept {
        assert!(
            h.started(),
            "a kept handle still shows its callback started"
        );
        assert!(!h.cancel(), "a kept handle cannot cancel anything any more");
    }
    run_once(&lp);
    assert_eq!(
        ran.load(Ordering::Relaxed),
        3 * N as u64,
        "every callback queued after the kept ones ran"
    );
    assert!(later.iter().all(|h| h.started()));
    lp.close().unwrap();
}
