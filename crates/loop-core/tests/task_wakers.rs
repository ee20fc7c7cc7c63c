//! A task's wakers (CORE-19, CORE-34): sent to other threads and woken there, woken after the
//! task ended, woken after the loop closed; and a task costs one allocation.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::thread;

use common::*;
use loop_core::EventLoop;

/// What [`counting_task`] gives: the task, its step count, the waker of its last step, and
/// whether a step ran off the loop's thread.
type Counting = (
    loop_core::Task<()>,
    Rc<Cell<u32>>,
    Rc<Cell<Option<Waker>>>,
    Rc<Cell<bool>>,
);

/// A task that counts its steps (and checks they run on the loop's thread), keeps the waker
/// of its last step in `waker`, and ends once `ready` is set.
fn counting_task(lp: &EventLoop, ready: &Arc<AtomicBool>) -> Counting {
    let polls = Rc::new(Cell::new(0));
    let waker = Rc::new(Cell::new(None));
    let elsewhere = Rc::new(Cell::new(false));
    let (p, w, e, r) = (
        polls.clone(),
        waker.clone(),
        elsewhere.clone(),
        ready.clone(),
    );
    let loop_thread = thread::current().id();
    let t = lp
        .create_task(poll_fn(move |cx| {
            p.set(p.get() + 1);
            if thread::current().id() != loop_thread {
                e.set(true);
            }
            w.set(Some(cx.waker().clone()));
            if r.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }))
        .unwrap();
    (t, polls, waker, elsewhere)
}

/// A task that ended in its first step, and a pending task created after it, which takes the
/// ended one's place in the loop's table.
struct Replaced {
    /// The ended task's step count.
    polls: Rc<Cell<u32>>,
    /// The ended task's waker.
    stale: Waker,
    /// The new task, pending.
    task: loop_core::Task<()>,
    /// The new task's step count.
    polls2: Rc<Cell<u32>>,
    /// The waker of the new task's last step.
    waker2: Rc<Cell<Option<Waker>>>,
}

/// Runs a task that ends in its first step, then creates and steps once a task that stays
/// pending in its place.
fn ended_and_replaced(lp: &EventLoop) -> Replaced {
    let ready = Arc::new(AtomicBool::new(true));
    let (t, polls, waker, _) = counting_task(lp, &ready);
    run_once(lp);
    assert!(t.done());
    assert_eq!(polls.get(), 1);
    let stale = waker.take().unwrap();
    let pending = Arc::new(AtomicBool::new(false));
    let (task, polls2, waker2, _) = counting_task(lp, &pending);
    run_once(lp);
    assert_eq!(polls2.get(), 1);
    Replaced {
        polls,
        stale,
        task,
        polls2,
        waker2,
    }
}

/// After the stale waker of [`ended_and_replaced`] was woken and the loop ran: neither task
/// stepped again.
fn assert_stale_wake_did_nothing(lp: &EventLoop, r: &Replaced) {
    run_once(lp);
    run_once(lp);
    assert_eq!(r.polls.get(), 1, "the ended task does not run again");
    assert_eq!(
        r.polls2.get(),
        1,
        "the new task is not woken by the old waker"
    );
}

/// Woken from another thread, a task's next step runs on the loop's thread; many wakes before
/// the loop takes them give one step, not one per wake.
#[test]
fn core_19_task_woken_from_another_thread_steps_once_per_pending_wake() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let ready = Arc::new(AtomicBool::new(false));
    let (t, polls, waker, elsewhere) = counting_task(&lp, &ready);
    run_once(&lp);
    assert_eq!(polls.get(), 1);
    let w = waker.take().unwrap();
    thread::spawn(move || {
        for _ in 0..100 {
            w.wake_by_ref();
        }
    })
    .join()
    .unwrap();
    run_once(&lp);
    assert_eq!(polls.get(), 2, "a hundred wakes queued one step");
    assert!(!t.done());
    // The wake that ends it, from another thread, consumed by value.
    let w = waker.take().unwrap();
    let r = ready.clone();
    let th = thread::spawn(move || {
        r.store(true, Ordering::Release);
        w.wake();
    });
    lp.run_until_complete(t).unwrap().unwrap();
    th.join().unwrap();
    assert_eq!(polls.get(), 3);
    assert!(!elsewhere.get(), "every step ran on the loop's thread");
    lp.close().unwrap();
}

/// A waker of a task that ended wakes nothing, from any thread, even once a new task took the
/// ended one's place in the loop's table.
#[test]
fn core_34_waker_of_an_ended_task_wakes_nothing() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let r = ended_and_replaced(&lp);
    r.stale.wake_by_ref();
    let s = r.stale.clone();
    thread::spawn(move || s.wake()).join().unwrap();
    assert_stale_wake_did_nothing(&lp, &r);
    assert!(!r.task.done());
    r.task.task_ref().cancel();
    assert!(lp.run_until_complete(r.task).unwrap_err().is_cancelled());
    lp.close().unwrap();
}

/// A waker woken from another thread after its loop closed does nothing (the task was torn
/// down by `close`, on the loop's thread); dropping it there frees nothing of the task's.
#[test]
fn core_19_waker_woken_after_close_from_another_thread_does_nothing() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    let ready = Arc::new(AtomicBool::new(false));
    let (t, polls, waker, _) = counting_task(&lp, &ready);
    run_once(&lp);
    let w = waker.take().unwrap();
    lp.close().unwrap();
    assert!(t.done() && t.cancelled());
    assert_eq!(
        messages(&seen),
        ["Task was destroyed but it is pending!"],
        "close tears the pending task down"
    );
    thread::spawn(move || {
        w.wake_by_ref();
        w.wake();
    })
    .join()
    .unwrap();
    assert_eq!(polls.get(), 1);
}

/// Counts the allocations made by the current thread.
struct CountingAlloc;

thread_local! {
    /// Allocations made by this thread so far.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Bytes asked for by those allocations.
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the count is a
// destructor-free thread-local, which never allocates.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + layout.size() as u64));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn bytes() -> u64 {
    BYTES.with(Cell::get)
}

/// One run of `lp` that creates `n` tasks of `async move { i }`, then awaits them one by one
/// (and checks their results).
fn create_and_await(lp: &EventLoop, n: u64) {
    let lp2 = lp.clone();
    let sum = lp
        .run_until_complete(async move {
            let ts: Vec<_> = (0..n)
                .map(|i| lp2.create_task(async move { i }).unwrap())
                .collect();
            let mut sum = 0;
            for t in ts {
                sum += t.await.unwrap();
            }
            sum
        })
        .unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
}

/// What 1,000 more tasks add to `counter` (allocations or bytes) in a run that creates
/// tasks, then awaits them one by one. The first run grows the loop's queues and tables to
/// size; then what a run costs beyond its fixed part (the run, the main task, the vector) is
/// its tasks.
fn per_thousand_tasks(lp: &EventLoop, counter: fn() -> u64) -> u64 {
    let round = |n: u64| {
        let before = counter();
        create_and_await(lp, n);
        counter() - before
    };
    round(2000);
    let small = round(1000);
    let large = round(2000);
    large - small
}

/// Creating, running and awaiting a task that ends in its first step is one allocation: the
/// task's state and body together (its waker is reused from an ended task).
#[test]
fn core_34_a_task_is_one_allocation() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    assert_eq!(
        per_thousand_tasks(&lp, allocations),
        1000,
        "one allocation per task"
    );
    lp.close().unwrap();
}

/// The bytes a task takes while it is alive, for the common task (created, run, awaited, no
/// name): its block holds its state and its body and is small (with a million live tasks,
/// memory traffic is most of what a task costs).
#[test]
fn core_34_a_task_block_is_small() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    // Per task: its block, and its handle in the vector.
    let block =
        per_thousand_tasks(&lp, bytes) / 1000 - std::mem::size_of::<loop_core::Task<u64>>() as u64;
    assert!(block <= TASK_BLOCK_MAX, "a task's block is {block} bytes");
    lp.close().unwrap();
}

/// The most a task of `async move { i }` (a `u64` output) may take, its reference counts
/// included.
const TASK_BLOCK_MAX: u64 = 136;

/// Tasks that end give their places in the loop's table back without allocating: the steps
/// of a thousand tasks that all end in that step allocate no more than the step of one.
#[test]
fn core_34_ending_tasks_allocate_nothing() {
    let _w = watchdog();
    // Allocations of the iteration that runs (and ends) `n` tasks, on a fresh loop.
    let ending = |n: u64| {
        let lp = EventLoop::new().unwrap();
        let ran = Rc::new(Cell::new(0u64));
        let ts: Vec<_> = (0..n)
            .map(|_| {
                let ran = ran.clone();
                lp.create_task(async move { ran.set(ran.get() + 1) })
                    .unwrap()
            })
            .collect();
        let before = allocations();
        run_once(&lp);
        let made = allocations() - before;
        assert_eq!(ran.get(), n, "every task ran its step");
        assert!(ts.iter().all(|t| t.done()));
        drop(ts);
        lp.close().unwrap();
        made
    };
    let one = ending(1);
    assert_eq!(ending(1000), one, "ending tasks allocate nothing per task");
}

/// On the loop's own thread, a task woken twice before its next step steps once, and a waker
/// of a task that ended wakes nothing, even once a new task took the ended one's place.
#[test]
fn core_34_wakes_on_the_loops_thread_queue_one_step_and_none_for_an_ended_task() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let r = ended_and_replaced(&lp);
    let stale = r.stale.clone();
    lp.call_soon(move |_| stale.wake_by_ref()).unwrap();
    assert_stale_wake_did_nothing(&lp, &r);
    let w2 = r.waker2.take().unwrap();
    lp.call_soon(move |_| {
        w2.wake_by_ref();
        w2.wake_by_ref();
    })
    .unwrap();
    run_once(&lp);
    run_once(&lp);
    run_once(&lp);
    assert_eq!(
        r.polls2.get(),
        2,
        "two wakes on the loop's thread queued one step"
    );
    r.task.task_ref().cancel();
    assert!(lp.run_until_complete(r.task).unwrap_err().is_cancelled());
    lp.close().unwrap();
}
