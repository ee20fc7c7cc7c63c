//! The watchdog and the process's test lock.
//!
//! A test that hangs is worse than a test that fails: `cargo test` waits forever and names
//! nobody. So every test holds a [`Watchdog`] guard while it runs. One thread per process,
//! alive while any guard is (not one per guard: a test's thread count stays still), keeps every
//! live guard's deadline. When one passes,
//! it prints which test blocked, asks the loops registered with that guard to unwind with a
//! [`fatal`] error (which `run_forever` / `run_until_complete` let escape), and if the guard is
//! still alive after a grace period it exits the whole process with status 101: a thread
//! blocked in a system call cannot be unwound or killed from outside, and a failed process is
//! better than a hung one.
//!
//! The same guard takes the shared side of a per-process read-write lock, and [`exclusive()`]
//! takes its exclusive side. A test that compares process-wide counts (open fds, threads,
//! children) takes [`exclusive()`] and runs alone among the tests of its binary; every other
//! test just takes its guard, as it must anyway, and stays out of the way without knowing who
//! counts. The lock is per thread and re-entrant: helpers such as [`run`] take a guard of their
//! own inside a test's guard at no cost, and an [`exclusive()`] inside a [`watchdog()`] trades
//! the shared hold for the exclusive one until it is dropped. Unlike `std::sync::RwLock`, a
//! waiting exclusive test does not block new shared holders, so a thread that a (shared) test
//! spawns can take a guard while an exclusive test waits. A thread spawned by an exclusive test
//! must not take a guard: it would wait for its own test (the message of the blocked test
//! says so).

use std::cell::Cell;
use std::future::Future;
use std::io::Write;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use loop_core::{fatal, EventLoop, Fatal, Remote};

/// How long a guard lets its test run before the watchdog acts, unless [`Watchdog::limit`]
/// says otherwise (times [`time_scale`]). A generous bound against hangs, never a timing
/// assertion.
///
/// ```
/// assert_eq!(loop_testkit::DEFAULT_LIMIT.as_secs(), 45);
/// ```
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(45);

/// How long after its fatal error a blocked test may take to unwind before the process exits
/// (times [`time_scale`]).
///
/// ```
/// assert!(loop_testkit::GRACE < loop_testkit::DEFAULT_LIMIT);
/// ```
pub const GRACE: Duration = Duration::from_secs(10);

/// The factor every watchdog limit is multiplied by: the environment variable
/// `EVLOOP_TEST_TIME_SCALE` (a whole number, at least 1; 1 when unset), for runs under
/// valgrind or on a very slow machine.
///
/// ```
/// assert!(loop_testkit::time_scale() >= 1);
/// ```
pub fn time_scale() -> u32 {
    static SCALE: OnceLock<u32> = OnceLock::new();
    *SCALE.get_or_init(|| {
        std::env::var("EVLOOP_TEST_TIME_SCALE")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .max(1)
    })
}

// ---------------------------------------------------------------------------------------------
// The test lock.

/// The per-process read-write lock: shared holders run together, an exclusive holder alone.
struct LockState {
    /// Threads holding the shared side.
    readers: usize,
    /// True while a thread holds the exclusive side.
    writer: bool,
    /// Threads waiting to acquire either side (for the watchdog's message).
    waiting: usize,
}

static LOCK: Mutex<LockState> = Mutex::new(LockState {
    readers: 0,
    writer: false,
    waiting: 0,
});
static LOCK_CHANGED: Condvar = Condvar::new();

/// What the current thread holds of the lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Own {
    Nothing,
    Shared,
    Exclusive,
}

/// Live guards of the current thread, by kind; what it holds follows from them.
#[derive(Clone, Copy)]
struct Held {
    shared: u32,
    exclusive: u32,
}

impl Held {
    fn own(self) -> Own {
        if self.exclusive > 0 {
            Own::Exclusive
        } else if self.shared > 0 {
            Own::Shared
        } else {
            Own::Nothing
        }
    }
}

thread_local! {
    static HELD: Cell<Held> = const { Cell::new(Held { shared: 0, exclusive: 0 }) };
}

fn lock_state() -> MutexGuard<'static, LockState> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Moves this thread's hold of the lock from `from` to `to`, waiting as needed. What it gives
/// up is released before it waits, so an upgrade cannot deadlock with another one.
fn transition(from: Own, to: Own) {
    if from == to {
        return;
    }
    let mut s = lock_state();
    match from {
        Own::Nothing => {}
        Own::Shared => s.readers -= 1,
        Own::Exclusive => s.writer = false,
    }
    let blocked = |s: &LockState| match to {
        Own::Nothing => false,
        Own::Shared => s.writer,
        Own::Exclusive => s.writer || s.readers > 0,
    };
    if blocked(&s) {
        s.waiting += 1;
        while blocked(&s) {
            s = LOCK_CHANGED.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.waiting -= 1;
    }
    match to {
        Own::Nothing => {}
        Own::Shared => s.readers += 1,
        Own::Exclusive => s.writer = true,
    }
    drop(s);
    LOCK_CHANGED.notify_all();
}

/// Adds (`+1`) or removes (`-1`) one guard of `kind` on this thread and moves its hold of the
/// lock to match.
fn count_guard(kind: Own, delta: i32) {
    let before = HELD.with(Cell::get);
    let mut after = before;
    let n = match kind {
        Own::Shared => &mut after.shared,
        Own::Exclusive => &mut after.exclusive,
        Own::Nothing => return,
    };
    *n = n.checked_add_signed(delta).expect("guard count");
    transition(before.own(), after.own());
    HELD.with(|h| h.set(after));
}

// ---------------------------------------------------------------------------------------------
// The registry of live guards and the watchdog thread.

/// One live guard, as the watchdog thread sees it.
struct Entry {
    id: u64,
    /// The thread that took the guard.
    thread: ThreadId,
    /// Its kernel thread id, for `/proc/self/task/<tid>`, if known.
    tid: Option<u32>,
    /// "test <name>".
    test: String,
    limit: Duration,
    deadline: Instant,
    /// What the test was waiting for, when it says.
    hint: Option<String>,
    /// Loops to unwind when the deadline passes.
    remotes: Vec<Remote>,
    /// When the deadline passed.
    fired_at: Option<Instant>,
    /// Shared with the guard.
    fired: Arc<AtomicBool>,
}

impl Entry {
    fn message(&self) -> String {
        let hint = self.hint.as_deref().unwrap_or(
            "its guard was not dropped in time (a loop that never returned, or a blocking \
             call that never ended)",
        );
        format!(
            "{} blocked for {} s: {hint}",
            self.test,
            self.limit.as_secs()
        )
    }
}

struct Registry {
    entries: Vec<Entry>,
    next_id: u64,
    /// The watchdog thread while there are guards, and the flag that tells it to end.
    thread: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    entries: Vec::new(),
    next_id: 0,
    thread: None,
});
static REGISTRY_CHANGED: Condvar = Condvar::new();

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// "test <thread name>" (libtest names each test's thread after the test), or the program's
/// name on an unnamed or main thread.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => format!("test {n}"),
        _ => {
            let prog = std::env::args().next().unwrap_or_default();
            let base = prog.rsplit('/').next().unwrap_or("").to_string();
            format!(
                "a test of {base} (thread {:?})",
                std::thread::current().id()
            )
        }
    }
}

/// The calling thread's kernel id (`/proc/thread-self` links to `<pid>/task/<tid>`).
fn kernel_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Where a blocked thread is: the kernel function it sleeps in (`/proc/.../wchan`, such as
/// `do_epoll_wait` for a loop waiting for an event that never comes) and its state.
fn whereabouts(tid: u32) -> Option<String> {
    let dir = format!("/proc/self/task/{tid}");
    let wchan = std::fs::read_to_string(format!("{dir}/wchan")).ok()?;
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .to_string();
    Some(format!(
        "its thread (tid {tid}) sleeps in {wchan}, state {state}"
    ))
}

fn scaled(d: Duration) -> Duration {
    d * time_scale()
}

/// Writes straight to the process's stderr: libtest's capture of a test's output would hold
/// the line back until the test ends, which a blocked test never does.
fn say(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "loop-testkit watchdog: {text}");
    let _ = e.flush();
}

/// Starts the watchdog thread if none runs. It lives while guards do: the last guard to go
/// ends and joins it, so a test binary leaves no thread behind (valgrind and miri check that)
/// and forks happen with one thread fewer.
fn ensure_thread(reg: &mut Registry) {
    if reg.thread.is_some() || cfg!(miri) {
        return;
    }
    let quit = Arc::new(AtomicBool::new(false));
    let q = quit.clone();
    let handle = std::thread::Builder::new()
        .name("testkit-watchdog".into())
        .spawn(move || watch_loop(&q))
        .expect("spawn the test watchdog thread");
    reg.thread = Some((handle, quit));
}

/// The longest the watchdog thread sleeps without looking at the registry.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// The watchdog thread: sleeps until the earliest deadline or grace end, acts, repeats, until
/// `quit`.
fn watch_loop(quit: &AtomicBool) {
    let mut reg = registry();
    loop {
        if quit.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let grace = scaled(GRACE);
        let mut next: Option<Instant> = None;
        for i in 0..reg.entries.len() {
            let e = &reg.entries[i];
            let wake = match e.fired_at {
                None if now >= e.deadline => {
                    fire(&mut reg.entries, i, now);
                    now + grace
                }
                None => e.deadline,
                Some(at) if now >= at + grace => {
                    say(&format!(
                        "{} is still blocked {} s after its watchdog fired: exiting the test \
                         process (a blocked thread cannot be stopped any other way)",
                        e.test,
                        grace.as_secs()
                    ));
                    std::process::exit(101);
                }
                Some(at) => at + grace,
            };
            next = Some(next.map_or(wake, |n| n.min(wake)));
        }
        // At most a second at a time: a notification that came while this thread was not
        // waiting costs a second, never a hang.
        let until = next.map_or(now + IDLE_WAKE, |t| t.min(now + IDLE_WAKE));
        reg = REGISTRY_CHANGED
            .wait_timeout(reg, until.saturating_duration_since(Instant::now()))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// The deadline of `entries[i]` passed: say so, and unwind the loops registered with any guard
/// of its thread (a test's own guard and the nested guards of the helpers it calls are one
/// test). Other guards of that thread whose deadline passed too are marked, not announced.
fn fire(entries: &mut [Entry], i: usize, now: Instant) {
    let thread = entries[i].thread;
    let mut remotes = Vec::new();
    let mut announced = false;
    for e in entries.iter_mut().filter(|e| e.thread == thread) {
        remotes.extend(e.remotes.iter().cloned());
        if e.fired_at.is_some() {
            announced = true;
        } else if now >= e.deadline {
            e.fired_at = Some(now);
            e.fired.store(true, Ordering::SeqCst);
        }
    }
    if announced {
        return;
    }
    let e = &entries[i];
    let msg = e.message();
    // Before the fatal error below wakes the thread.
    let place = e
        .tid
        .and_then(whereabouts)
        .map(|w| format!("\n  {w}"))
        .unwrap_or_default();
    let grace = scaled(GRACE).as_secs();
    let mut alive = 0;
    for r in &remotes {
        let m = msg.clone();
        // Printed on the test's thread too, so the harness shows it with the test's output.
        let unwind = move |_: &EventLoop| {
            eprintln!("{m}");
            fatal(m)
        };
        if r.call_soon_threadsafe(unwind).is_ok() {
            alive += 1;
        }
    }
    let action = if alive > 0 {
        format!("stopping its loop with a fatal error; the process exits if it is still blocked in {grace} s")
    } else {
        format!(
            "no open loop is registered with its guard (loop_testkit::watchdog_for), so \
             nothing can stop it; the process exits in {grace} s"
        )
    };
    let lock = lock_state();
    let note = if lock.writer && lock.waiting > 0 {
        format!(
            "\n  note: {} thread(s) wait for the test lock, held by an exclusive() test; a \
             thread spawned by an exclusive test must not take a guard (it would wait for its \
             own test)",
            lock.waiting
        )
    } else {
        String::new()
    };
    drop(lock);
    say(&format!("{msg}{place}\n  -> {action}{note}"));
}

// ---------------------------------------------------------------------------------------------
// The guard.

/// A test's bound against hanging and its hold of the process's test lock; see the module
/// docs. Take it first in every test ([`watchdog()`], [`exclusive()`], [`watchdog_for`]) and
/// keep it to the end (`let _w = ...`, not `let _ = ...`, which drops it at once).
///
/// When its limit passes (45 s by default, so that with the grace period a blocked test has
/// failed within a minute) it prints "test `<name>` blocked for `<n>` s: `<hint>`"
/// to stderr, unwinds every loop registered with [`Watchdog::watch`] with a [`fatal`] error,
/// and exits the process with status 101 if the test is still blocked [`GRACE`] later. If the
/// test goes on after the deadline (a loop unwound and the test caught it, or the blocking
/// call returned late) the guard panics with the same message when it is dropped.
///
/// It is bound to its thread (`!Send`).
///
/// ```
/// use loop_core::EventLoop;
///
/// let w = loop_testkit::watchdog().limit(30).hint("waiting for the stop callback");
/// let lp = EventLoop::new().unwrap();
/// w.watch(&lp);
/// lp.call_soon(|lp| lp.stop()).unwrap();
/// lp.run_forever().unwrap();
/// assert!(!w.fired());
/// ```
#[must_use = "the guard bounds the test only while it is alive: `let _w = ...`"]
pub struct Watchdog {
    id: u64,
    kind: Own,
    fired: Arc<AtomicBool>,
    /// The hold of the lock is per thread.
    _thread_bound: PhantomData<*const ()>,
}

impl Watchdog {
    fn start(kind: Own) -> Watchdog {
        count_guard(kind, 1);
        let fired = Arc::new(AtomicBool::new(false));
        let limit = scaled(DEFAULT_LIMIT);
        let mut reg = registry();
        let id = reg.next_id;
        reg.next_id += 1;
        reg.entries.push(Entry {
            id,
            thread: std::thread::current().id(),
            tid: kernel_tid(),
            test: test_name(),
            limit,
            deadline: Instant::now() + limit,
            hint: None,
            remotes: Vec::new(),
            fired_at: None,
            fired: fired.clone(),
        });
        ensure_thread(&mut reg);
        drop(reg);
        REGISTRY_CHANGED.notify_all();
        Watchdog {
            id,
            kind,
            fired,
            _thread_bound: PhantomData,
        }
    }

    fn with_entry<R>(&self, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut reg = registry();
        let e = reg
            .entries
            .iter_mut()
            .find(|e| e.id == self.id)
            .expect("a live guard is registered");
        let r = f(e);
        drop(reg);
        REGISTRY_CHANGED.notify_all();
        r
    }

    /// Sets the limit to `secs` seconds (times [`time_scale`]) from now. For a test that
    /// legitimately runs long (10,000 connections), or a helper with its own bound.
    ///
    /// ```
    /// let _w = loop_testkit::watchdog().limit(180);
    /// ```
    pub fn limit(self, secs: u64) -> Watchdog {
        let limit = scaled(Duration::from_secs(secs));
        self.with_entry(|e| {
            e.limit = limit;
            e.deadline = Instant::now() + limit;
        });
        self
    }

    /// Says what the test waits for, for the message when it blocks.
    ///
    /// ```
    /// let _w = loop_testkit::watchdog().hint("the child never exits");
    /// ```
    pub fn hint(self, hint: impl Into<String>) -> Watchdog {
        let hint = hint.into();
        self.with_entry(|e| e.hint = Some(hint));
        self
    }

    /// Registers `lp`: when the limit passes, the watchdog schedules a [`fatal`] error on it
    /// (through [`Remote::call_soon_threadsafe`]), which unwinds out of whichever `run_*` is
    /// blocked, so only this test fails and the others go on.
    ///
    /// ```
    /// let w = loop_testkit::watchdog();
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// w.watch(&lp);
    /// ```
    pub fn watch(&self, lp: &EventLoop) {
        let remote = lp.remote();
        self.with_entry(|e| e.remotes.push(remote));
    }

    /// True once the limit passed.
    ///
    /// ```
    /// let w = loop_testkit::watchdog();
    /// assert!(!w.fired());
    /// ```
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (entry, thread) = {
            let mut reg = registry();
            let at = reg.entries.iter().position(|e| e.id == self.id);
            let entry = at.map(|i| reg.entries.swap_remove(i));
            let thread = if reg.entries.is_empty() {
                reg.thread.take()
            } else {
                None
            };
            // Set while the registry is locked: the thread checks its flag under the same lock
            // before it waits, so it either sees the flag or is already waiting for the
            // notification below.
            if let Some((_, quit)) = &thread {
                quit.store(true, Ordering::SeqCst);
            }
            (entry, thread)
        };
        REGISTRY_CHANGED.notify_all();
        if let Some((handle, _)) = thread {
            let _ = handle.join();
        }
        count_guard(self.kind, -1);
        if let Some(e) = entry {
            if self.fired() && !std::thread::panicking() {
                panic!("{}", e.message());
            }
        }
    }
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("id", &self.id)
            .field("exclusive", &(self.kind == Own::Exclusive))
            .field("fired", &self.fired())
            .finish()
    }
}

/// The guard every test takes first: a [`Watchdog`] with the default limit, holding the
/// shared side of the test lock (it waits while an [`exclusive()`] test runs).
///
/// ```
/// // The first line of a test:
/// let _w = loop_testkit::watchdog();
/// ```
pub fn watchdog() -> Watchdog {
    Watchdog::start(Own::Shared)
}

/// [`watchdog()`], with `lp` registered ([`Watchdog::watch`]).
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let _w = loop_testkit::watchdog_for(&lp);
/// lp.call_soon(|lp| lp.stop()).unwrap();
/// lp.run_forever().unwrap();
/// ```
pub fn watchdog_for(lp: &EventLoop) -> Watchdog {
    let w = watchdog();
    w.watch(lp);
    w
}

/// The guard of a test that counts process-wide things (open fds, threads, children): a
/// [`Watchdog`] holding the exclusive side of the test lock, so no other test of the binary
/// runs (opens fds, starts threads or children) until it is dropped. Taken inside a
/// [`watchdog()`] of the same thread, it gives up the shared hold while it waits.
///
/// ```
/// let _x = loop_testkit::exclusive();
/// let before = loop_testkit::fd_count();
/// let lp = loop_core::EventLoop::new().unwrap();
/// lp.close().unwrap();
/// drop(lp);
/// assert_eq!(loop_testkit::fd_count(), before);
/// ```
pub fn exclusive() -> Watchdog {
    Watchdog::start(Own::Exclusive)
}

/// Runs `fut` to completion on `lp` under a guard of `secs` seconds with `lp` registered, and
/// returns its output.
///
/// # Panics
///
/// If `run_until_complete` fails (the future's task panicked, the loop was stopped or closed),
/// or the limit passed (with the watchdog's message).
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// assert_eq!(loop_testkit::run(&lp, 30, async { 6 * 7 }), 42);
/// ```
pub fn run<F>(lp: &EventLoop, secs: u64, fut: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let w = watchdog()
        .limit(secs)
        .hint("the future given to loop_testkit::run was not done");
    w.watch(lp);
    match catch_unwind(AssertUnwindSafe(|| lp.run_until_complete(fut))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("run_until_complete failed: {e:?}"),
        Err(p) => match p.downcast_ref::<Fatal>() {
            // The watchdog's own fatal error: fail with its message, as a panic the test
            // harness shows.
            Some(f) if w.fired() => panic!("{}", f.0),
            _ => resume_unwind(p),
        },
    }
}
