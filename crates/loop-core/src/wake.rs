//! Waking the loop from other threads: the queue of remote work, two flags and the eventfd
//! (CORE-19, CORE-20).
//!
//! `call_soon_threadsafe`, tasks woken on other threads and `Remote::stop` all come through
//! [`Wake::push`]: the producer links its work into the queue (a lock-free stack of the work
//! items themselves, which the loop takes a batch at a time: [`crate::remote_queue`]), and
//! writes the eventfd unless a wake-up is already on its way (`notified`), so that any number
//! of pushes while the loop is busy cost one write. The loop takes what is queued at the start
//! of every iteration ([`Wake::has_pending`] is one load of the queue's head) and, when epoll
//! reports the eventfd readable, drains it, re-arms `notified` and looks at the queue once more
//! ([`Wake::drain_and_rearm`]).
//!
//! This is the only state of a loop that other threads write, and the only code whose
//! correctness depends on how threads interleave: a wake-up lost here leaves the loop asleep
//! in `epoll_wait` with work queued (re-arming before draining once did exactly that). So it
//! stands apart from the iteration, with the eventfd behind [`WakeFd`] and its atomics and
//! queue taken from [`crate::sync`]: under `RUSTFLAGS="--cfg loom"` the tests at the bottom
//! run this code — not a copy — against a model eventfd under every interleaving of the loop
//! with one or two producers (within loom's preemption bound), checking that the loop never blocks while work is queued and no
//! wake-up is pending, and that every pushed item runs exactly once.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loop-core --release --lib wake::
//! ```
//!
//! The eventfd's failure paths (CORE-20: interrupted reads and writes, failed writes) cannot
//! be provoked from outside, so test builds give [`EventFd`] a script of errors to return
//! instead of calling the kernel; the `core_20_*` tests below inject them into a real loop.
//! Other builds have no such field and no check. The eventfd is the epoll backend's waker; the
//! `polling` backend wakes the loop through `Poller::notify` (`crate::sys`), under the same
//! protocol, so these CORE-20 tests belong to the epoll backend and the loom model to both.

use rustix::io::Errno;

use std::sync::Arc;

use crate::remote_queue::{Batch, Fresh, IntoNode, Linked, Stack};
use crate::sync::{AtomicBool, Ordering};

/// What wakes the loop's poll: the loop's eventfd, or a model of it under loom.
pub(crate) trait WakeFd {
    /// Adds one to the counter, which makes the fd readable. `Ok` as well when there is
    /// nothing left to wake (the loop closed).
    fn write(&self) -> Result<(), Errno>;

    /// Reads the counter and resets it to zero; `Err(Errno::AGAIN)` when it is zero, or when
    /// the loop closed.
    fn read(&self) -> Result<(), Errno>;
}

/// The remote-work queue, the flag beside it and the fd that wakes the loop.
pub(crate) struct Wake<X: ?Sized, F> {
    /// Work from other threads; its head is non-null while anything is queued, so the loop's
    /// "anything from other threads?" check is one load.
    queue: Stack<X>,
    /// True from the first wake-up write until the loop has drained the eventfd: wakes
    /// coalesce.
    notified: AtomicBool,
    /// The loop's eventfd.
    fd: F,
}

impl<X: ?Sized, F: WakeFd> Wake<X, F> {
    /// Nothing queued, nothing written.
    pub(crate) fn new(fd: F) -> Self {
        Wake {
            queue: Stack::new(),
            notified: AtomicBool::new(false),
            fd,
        }
    }

    /// The fd that wakes the loop.
    pub(crate) fn fd(&self) -> &F {
        &self.fd
    }

    /// Queues `w` and wakes the loop; returns another reference to `w` (the caller's handle).
    /// Any thread. The push publishes `w` with a read-modify-write of the queue's head (which
    /// also extends the release sequence of earlier pushes from other threads, so the loop's
    /// acquiring swap sees every item pushed before it), sequenced before the `notified` swap.
    #[inline(always)]
    pub(crate) fn push<S: IntoNode<X> + Linked<X>>(&self, w: Fresh<S>) -> Arc<S> {
        let handle = self.queue.push(w);
        self.notify();
        handle
    }

    /// Wakes the loop if it was not woken since it last drained the eventfd.
    ///
    /// A write interrupted by a signal is retried (as asyncio's is, by Python's own retry).
    /// Any other failure is swallowed with a debug line (CORE-20): EAGAIN means the counter is
    /// full, so the loop wakes anyway; EBADF cannot happen while the fd is open. Nothing was
    /// written then, so `notified` is re-armed: the next wake-up writes again instead of
    /// coalescing into this one.
    #[inline]
    fn notify(&self) {
        if !self.notified.swap(true, Ordering::SeqCst) {
            self.write_wake_up();
        }
    }

    /// The write of [`Wake::notify`], out of line: a system call dwarfs the call, and the
    /// pushes that find a wake-up already pending keep a lean inlined path.
    #[cold]
    #[inline(never)]
    fn write_wake_up(&self) {
        loop {
            match self.fd.write() {
                Ok(()) => return,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    tracing::debug!("loop wake-up write failed: {e}");
                    self.notified.store(false, Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    /// True if other threads queued work since the loop last took it. The loop's thread.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        !self.queue.is_empty(Ordering::Acquire)
    }

    /// Gives every queued item to `f`, oldest first. The loop's thread. (The loop itself
    /// takes a batch at once, with [`take_batch`](Self::take_batch); this is for the tests and
    /// the loom model below.)
    #[cfg(all(
        test,
        any(
            loom,
            all(
                any(target_os = "linux", target_os = "android"),
                not(feature = "reactor-polling")
            )
        )
    ))]
    pub(crate) fn take(&self, f: impl FnMut(Arc<X>)) {
        self.take_batch().for_each(f)
    }

    /// Takes every queued item at once, oldest first, as an iterator that knows its length
    /// (what it still holds when dropped is dropped). The loop's thread. One swap of the
    /// queue's head empties it: a push racing with it lands either in this batch or, whole,
    /// in the next.
    #[inline]
    pub(crate) fn take_batch(&self) -> Batch<X> {
        self.queue.take()
    }

    /// Gives every queued item to `f` (closing the loop).
    pub(crate) fn take_all(&self, f: impl FnMut(Arc<X>)) {
        self.queue.take().for_each(f)
    }

    /// After epoll reported the eventfd readable: drains it, re-arms wake-ups, and tells
    /// whether work is pending (the caller then takes it). The loop's thread.
    pub(crate) fn drain_and_rearm(&self) -> bool {
        // Drain first, then re-arm: a wake-up written after the re-arm must stay in the
        // eventfd for the next poll. (Re-arming first let this drain swallow such a write
        // while `notified` stayed true: every later wake-up was then skipped and the loop
        // could block with work queued.)
        loop {
            match self.fd.read() {
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) | Ok(()) => break,
                Err(e) => {
                    tracing::error!("reading the loop's wake-up eventfd failed: {e}");
                    break;
                }
            }
        }
        // Re-arm only now. A producer whose `notified` swap comes after this one reads `false`
        // and writes a wake-up that stays for the next poll. One whose swap came before wrote
        // nothing, but this swap reads the `true` it released, so its push (sequenced before)
        // is visible to the check below, which then takes its work. A swap, not a
        // store: a store would read nothing and make that argument rest on SeqCst's
        // store-then-load ordering alone, which loom does not model (it takes SeqCst accesses
        // for AcqRel); the read-modify-write makes it hold under acquire/release, and on x86
        // both are the same `xchg`.
        self.notified.swap(false, Ordering::SeqCst);
        !self.queue.is_empty(Ordering::SeqCst)
    }
}

#[cfg(all(
    test,
    any(
        loom,
        all(
            any(target_os = "linux", target_os = "android"),
            not(feature = "reactor-polling")
        )
    )
))]
pub(crate) use num::Num;

/// [`Num`] and what makes it a queue node (test builds only).
#[cfg(all(
    test,
    any(
        loom,
        all(
            any(target_os = "linux", target_os = "android"),
            not(feature = "reactor-polling")
        )
    )
))]
mod num {
    use super::{Arc, Fresh, IntoNode, Linked};

    /// A queued item of the tests and the model below: a number.
    pub(crate) struct Num {
        /// Its link in the queue.
        link: crate::remote_queue::Link<Num>,
        /// The number.
        pub(crate) n: usize,
    }

    impl Num {
        /// `n`, ready to push.
        pub(crate) fn new(n: usize) -> Fresh<Num> {
            Fresh::new(Num {
                link: crate::remote_queue::Link::new(),
                n,
            })
        }
    }

    impl Linked<Num> for Num {
        fn link(&self) -> &crate::remote_queue::Link<Num> {
            &self.link
        }
    }

    impl IntoNode<Num> for Num {
        fn into_node(self: Arc<Self>) -> Arc<Num> {
            self
        }
    }
}

/// The loop's eventfd (non-blocking, registered with its epoll): the waker of the epoll
/// backend ([`crate::sys`]).
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
pub(crate) struct EventFd {
    /// `None` once the loop is closed. Writers hold the read lock, so `close()` cannot close
    /// the fd under a write (whose number could meanwhile name another file).
    fd: std::sync::RwLock<Option<std::os::fd::OwnedFd>>,
    /// Errors the next reads and writes return instead of calling the kernel: what the
    /// CORE-20 tests inject. Test builds only.
    #[cfg(all(
        test,
        not(loom),
        any(target_os = "linux", target_os = "android"),
        not(feature = "reactor-polling")
    ))]
    faults: Faults,
}

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
impl EventFd {
    /// Wraps a non-blocking eventfd.
    pub(crate) fn new(fd: std::os::fd::OwnedFd) -> EventFd {
        EventFd {
            fd: std::sync::RwLock::new(Some(fd)),
            #[cfg(all(
                test,
                not(loom),
                any(target_os = "linux", target_os = "android"),
                not(feature = "reactor-polling")
            ))]
            faults: Faults::default(),
        }
    }

    /// Closes the fd; later writes and reads do nothing.
    pub(crate) fn close(&self) {
        *self.fd.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
impl WakeFd for EventFd {
    fn write(&self) -> Result<(), Errno> {
        let guard = self.fd.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(fd) => {
                #[cfg(all(
                    test,
                    not(loom),
                    any(target_os = "linux", target_os = "android"),
                    not(feature = "reactor-polling")
                ))]
                self.faults.next(&self.faults.writes)?;
                rustix::io::write(fd, &1u64.to_ne_bytes()).map(drop)
            }
            None => Ok(()),
        }
    }

    fn read(&self) -> Result<(), Errno> {
        let guard = self.fd.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(fd) => {
                #[cfg(all(
                    test,
                    not(loom),
                    any(target_os = "linux", target_os = "android"),
                    not(feature = "reactor-polling")
                ))]
                self.faults.next(&self.faults.reads)?;
                rustix::io::read(fd, &mut [0u8; 8]).map(drop)
            }
            None => Err(Errno::AGAIN),
        }
    }
}

/// Scripted failures of an [`EventFd`] (test builds only): each read or write first takes
/// the next error of its list, if any, and returns it without calling the kernel.
#[cfg(all(
    test,
    not(loom),
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
#[derive(Default)]
struct Faults {
    /// What the next reads return.
    reads: std::sync::Mutex<std::collections::VecDeque<Errno>>,
    /// What the next writes return.
    writes: std::sync::Mutex<std::collections::VecDeque<Errno>>,
}

#[cfg(all(
    test,
    not(loom),
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
impl Faults {
    /// Takes the next scripted error of `list`.
    fn next(
        &self,
        list: &std::sync::Mutex<std::collections::VecDeque<Errno>>,
    ) -> Result<(), Errno> {
        match list.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(all(
    test,
    not(loom),
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
impl EventFd {
    /// The next reads fail with `errors`, in order.
    fn fail_reads(&self, errors: &[Errno]) {
        self.faults.reads.lock().unwrap().extend(errors);
    }

    /// The next writes fail with `errors`, in order.
    fn fail_writes(&self, errors: &[Errno]) {
        self.faults.writes.lock().unwrap().extend(errors);
    }

    /// True if the eventfd is readable now: a wake-up is pending for the loop's poll.
    fn readable(&self) -> bool {
        let guard = self.fd.read().unwrap();
        let fd = guard.as_ref().expect("the eventfd is open");
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default())).unwrap() == 1
    }
}

/// CORE-20's failure paths of the eventfd, injected with [`EventFd`]'s test-only fault script
/// into a real eventfd and a real loop.
#[cfg(all(
    test,
    not(loom),
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{EventLoop, Remote};

    /// A non-blocking eventfd, as the loop makes it.
    fn eventfd() -> EventFd {
        let flags = rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK;
        EventFd::new(rustix::event::eventfd(0, flags).unwrap())
    }

    /// Runs `f` with a subscriber that records this thread's log lines, debug and up.
    fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || w.clone())
            .without_time()
            .finish();
        let r = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
        (r, text)
    }

    /// What [`Wake::take`] gives, in order.
    fn taken(wake: &Wake<Num, EventFd>) -> Vec<usize> {
        let mut v = Vec::new();
        wake.take(|w| v.push(w.n));
        v
    }

    /// `/proc/<pid>/task/<tid>` of the calling thread.
    fn this_thread() -> PathBuf {
        PathBuf::from("/proc").join(std::fs::read_link("/proc/thread-self").unwrap())
    }

    /// Waits until the thread at `task` sleeps in `epoll_wait`: its wait channel is epoll's,
    /// or (where the kernel hides wait channels) the system call it is in is an epoll wait.
    fn wait_until_blocked_in_poll(task: &std::path::Path) {
        #[cfg(target_arch = "x86_64")]
        const EPOLL_WAITS: &[&str] = &["232", "281", "441"];
        #[cfg(not(target_arch = "x86_64"))]
        const EPOLL_WAITS: &[&str] = &["22", "441"];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let wchan = std::fs::read_to_string(task.join("wchan")).unwrap_or_default();
            let syscall = std::fs::read_to_string(task.join("syscall")).unwrap_or_default();
            let nr = syscall.split_whitespace().next().unwrap_or("");
            if wchan.contains("epoll") || EPOLL_WAITS.contains(&nr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the loop never blocked in epoll_wait"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Runs `lp` on this thread while `producer` runs on another, given a `Remote` and this
    /// thread's `/proc` task directory. A wake-up that never comes cannot be rescued through
    /// the wake-up path, so the rescue is a byte on a socket the loop watches, written if the
    /// loop still runs 10 s after the producer returned. Returns the producer's result and
    /// whether the loop had to be rescued.
    fn run_with<R: Send + 'static>(
        lp: &EventLoop,
        producer: impl FnOnce(Remote, PathBuf) -> R + Send + 'static,
    ) -> (R, bool) {
        let (guard_r, mut guard_w) = UnixStream::pair().unwrap();
        let rescued = Arc::new(AtomicBool::new(false));
        let r = rescued.clone();
        lp.add_reader(&guard_r, move |lp| {
            r.store(true, Ordering::SeqCst);
            lp.stop();
        })
        .unwrap();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let (remote, task) = (lp.remote(), this_thread());
        let thread = std::thread::spawn(move || {
            let out = producer(remote, task);
            if done_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                guard_w.write_all(b"!").unwrap();
            }
            out
        });
        lp.run_forever().unwrap();
        drop(done_tx);
        let out = thread.join().unwrap();
        lp.remove_reader(&guard_r).unwrap();
        (out, rescued.load(Ordering::SeqCst))
    }

    #[test]
    fn core_20_draining_retries_an_interrupted_read() {
        let wake: Wake<Num, EventFd> = Wake::new(eventfd());
        drop(wake.push(Num::new(1)));
        assert!(wake.fd().readable());
        wake.fd()
            .fail_reads(&[Errno::INTR, Errno::INTR, Errno::INTR]);
        let (pending, logs) = capture_logs(|| wake.drain_and_rearm());
        assert!(pending);
        assert!(
            !wake.fd().readable(),
            "the interrupted reads were not retried: the wake-up is still in the eventfd"
        );
        assert_eq!(logs, "", "an interrupted read is no error");
        assert_eq!(taken(&wake), [1]);
        // Re-armed: the next push writes a wake-up again.
        drop(wake.push(Num::new(2)));
        assert!(wake.fd().readable());
    }

    #[test]
    fn core_20_draining_stops_at_would_block_and_logs_other_errors() {
        let wake: Wake<Num, EventFd> = Wake::new(eventfd());
        // Nothing written: the read answers EAGAIN, which ends the drain quietly.
        let (pending, logs) = capture_logs(|| wake.drain_and_rearm());
        assert!(!pending);
        assert_eq!(logs, "");
        // Another OS error ends the drain too, with an error line; the wake-up stays for the
        // next poll, which drains it.
        drop(wake.push(Num::new(1)));
        wake.fd().fail_reads(&[Errno::IO]);
        let (pending, logs) = capture_logs(|| wake.drain_and_rearm());
        assert!(pending);
        assert!(logs.contains("ERROR"), "{logs}");
        assert!(
            logs.contains("reading the loop's wake-up eventfd failed"),
            "{logs}"
        );
        assert_eq!(taken(&wake), [1]);
        assert!(wake.fd().readable());
        assert!(!wake.drain_and_rearm());
        assert!(!wake.fd().readable());
    }

    /// The loop's own iteration drains through interrupted reads: after one iteration that
    /// was woken, nothing is left in the eventfd.
    #[test]
    fn core_20_the_loop_drains_its_eventfd_through_interrupted_reads() {
        let lp = EventLoop::new().unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        lp.remote()
            .call_soon_threadsafe(move |_| r.store(true, Ordering::SeqCst))
            .unwrap();
        let fd = lp.inner.shared.wake.fd();
        assert!(fd.readable());
        fd.fail_reads(&[Errno::INTR, Errno::INTR]);
        // One iteration: stopping makes its poll non-blocking; it sees the eventfd readable.
        let (_, logs) = capture_logs(|| {
            lp.stop();
            lp.run_forever().unwrap();
        });
        assert!(ran.load(Ordering::SeqCst));
        assert!(
            !lp.inner.shared.wake.fd().readable(),
            "the loop left the wake-up in its eventfd after interrupted reads"
        );
        assert_eq!(logs, "");
        lp.close().unwrap();
    }

    #[test]
    fn core_20_an_interrupted_wake_up_write_is_retried() {
        // Directly: the wake-up reaches the eventfd through two interrupted writes.
        let wake: Wake<Num, EventFd> = Wake::new(eventfd());
        wake.fd().fail_writes(&[Errno::INTR, Errno::INTR]);
        let ((), logs) = capture_logs(|| drop(wake.push(Num::new(1))));
        assert!(
            wake.fd().readable(),
            "the interrupted write was not retried: no wake-up in the eventfd"
        );
        assert_eq!(logs, "");

        // And a loop blocked in epoll_wait wakes up.
        let lp = EventLoop::new().unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let (logs, rescued) = run_with(&lp, move |remote, task| {
            wait_until_blocked_in_poll(&task);
            remote.shared.wake.fd().fail_writes(&[Errno::INTR]);
            let (res, logs) = capture_logs(|| {
                remote.call_soon_threadsafe(move |lp| {
                    r.store(true, Ordering::SeqCst);
                    lp.stop();
                })
            });
            assert!(res.is_ok());
            logs
        });
        assert!(
            !rescued,
            "an interrupted wake-up write left the loop asleep"
        );
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(logs, "");
        lp.close().unwrap();
    }

    #[test]
    fn core_20_a_failed_wake_up_write_is_swallowed_and_the_next_one_wakes_the_loop() {
        let lp = EventLoop::new().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        let ((first, second, logs), rescued) = run_with(&lp, move |remote, task| {
            wait_until_blocked_in_poll(&task);
            remote.shared.wake.fd().fail_writes(&[Errno::IO]);
            let (o1, o2) = (o.clone(), o);
            let (first, logs) =
                capture_logs(|| remote.call_soon_threadsafe(move |_| o1.lock().unwrap().push(1)));
            // The failed write woke nothing: the loop still sleeps, the callback waits.
            std::thread::sleep(Duration::from_millis(20));
            wait_until_blocked_in_poll(&task);
            let waited = o2.lock().unwrap().is_empty();
            let second = remote.call_soon_threadsafe(move |lp| {
                o2.lock().unwrap().push(2);
                lp.stop();
            });
            (first.is_ok() && waited, second.is_ok(), logs)
        });
        assert!(
            first,
            "a failed wake-up write reached the caller, or woke the loop"
        );
        assert!(second);
        assert!(logs.contains("DEBUG"), "{logs}");
        assert!(logs.contains("loop wake-up write failed"), "{logs}");
        assert!(
            !rescued,
            "after a failed wake-up write, the next call_soon_threadsafe did not wake the loop"
        );
        assert_eq!(*order.lock().unwrap(), [1, 2]);
        lp.close().unwrap();
    }
}

/// The wake-up protocol under every interleaving with up to three preemptions, by loom: `Wake` itself, against a model
/// eventfd, driven by a loop thread that takes, polls, drains and re-arms as
/// `EventLoop::run_once` does, and by one or two producer threads.
///
/// Checked, in every execution: the loop never blocks in its poll while work is queued and no
/// wake-up is pending (a producer that returned from `push` left either its work taken or a
/// wake-up written), and every pushed item runs exactly once.
///
/// ```text
/// RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loop-core --release --lib wake::
/// ```
///
/// `LOOM_MAX_PREEMPTIONS` bounds the thread switches loom tries per execution (3 when unset).
#[cfg(all(test, loom))]
mod model {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    use std::sync::Arc as StdArc;

    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Condvar, Mutex};

    use super::*;

    /// The eventfd as the kernel keeps it: a counter under a lock, and a wait queue that a
    /// write signals (what wakes a loop blocked in `epoll_wait`).
    struct ModelFd {
        /// The eventfd's counter; readable while it is not zero.
        count: Mutex<u64>,
        /// Signalled by each write.
        readable: Condvar,
    }

    impl WakeFd for ModelFd {
        fn write(&self) -> Result<(), Errno> {
            *self.count.lock().unwrap() += 1;
            self.readable.notify_one();
            Ok(())
        }

        fn read(&self) -> Result<(), Errno> {
            let mut c = self.count.lock().unwrap();
            if *c == 0 {
                return Err(Errno::AGAIN);
            }
            *c = 0;
            Ok(())
        }
    }

    impl ModelFd {
        /// A zero-timeout poll: is the eventfd readable?
        fn readable(&self) -> bool {
            *self.count.lock().unwrap() != 0
        }

        /// A poll with no timeout: blocks until the eventfd is readable. `finished` tells
        /// whether every producer has returned from its last push: blocking then, with the
        /// counter at zero, is sleeping forever with work queued. (Loom would report that as
        /// a deadlock; [`ModelFd::producer_finished`] wakes the wait so that it says what is
        /// wrong instead.)
        fn wait(&self, finished: impl Fn() -> bool) {
            let mut c = self.count.lock().unwrap();
            while *c == 0 {
                assert!(
                    !finished(),
                    "the loop blocks in poll with work queued and no wake-up pending"
                );
                c = self.readable.wait(c).unwrap();
            }
        }

        /// Called by a producer after its last push: lets a blocked `wait` check again.
        fn producer_finished(&self) {
            let _c = self.count.lock().unwrap();
            self.readable.notify_one();
        }
    }

    /// One model: `producers[i]` items pushed by producer thread `i`; the loop polls while
    /// it has work ready (a zero-timeout poll) when `poll_when_busy`, else only when idle
    /// (the loop skips polls while busy, up to `POLL_EVERY` iterations). Prints how many
    /// executions loom explored.
    fn check(producers: &'static [usize], poll_when_busy: bool) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        let executions = StdArc::new(StdAtomicUsize::new(0));
        let counted = executions.clone();
        let started = std::time::Instant::now();
        let model = move || {
            counted.fetch_add(1, Ordering::Relaxed);
            let total: usize = producers.iter().sum();
            let wake = Arc::new(Wake::new(ModelFd {
                count: Mutex::new(0),
                readable: Condvar::new(),
            }));
            let finished = Arc::new(AtomicUsize::new(0));
            let mut threads = Vec::new();
            let mut first = 0;
            for &n in producers {
                let (wake, finished) = (wake.clone(), finished.clone());
                threads.push(loom::thread::spawn(move || {
                    for id in first..first + n {
                        drop(wake.push(Num::new(id)));
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    wake.fd().producer_finished();
                }));
                first += n;
            }

            // The loop: `run_once`'s steps that touch the wake-up state, until it ran all.
            let mut ready = VecDeque::new();
            let mut ran = Vec::new();
            let all_finished = || finished.load(Ordering::SeqCst) == producers.len();
            while ran.len() < total {
                if wake.has_pending() {
                    wake.take(|w| ready.push_back(w));
                }
                let woken = if ready.is_empty() {
                    wake.fd().wait(all_finished);
                    true
                } else {
                    poll_when_busy && wake.fd().readable()
                };
                if woken && wake.drain_and_rearm() {
                    wake.take(|w| ready.push_back(w));
                }
                ran.extend(ready.drain(..).map(|w: std::sync::Arc<Num>| w.n));
            }

            for t in threads {
                t.join().unwrap();
            }
            ran.sort_unstable();
            assert_eq!(ran, (0..total).collect::<Vec<_>>(), "each item runs once");
            let mut left = 0;
            wake.take_all(|_| left += 1);
            assert_eq!(left, 0, "nothing is left in the queue");
        };
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.check(model)));
        let n = executions.load(Ordering::Relaxed);
        println!(
            "wake model {producers:?} poll_when_busy={poll_when_busy}: {} after {n} executions, {:.2} s",
            if outcome.is_ok() { "passed" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if let Err(p) = outcome {
            std::panic::resume_unwind(p);
        }
    }

    #[test]
    fn core_19_loom_one_producer_one_push() {
        check(&[1], false);
    }

    #[test]
    fn core_19_loom_one_producer_three_pushes() {
        check(&[3], false);
        check(&[3], true);
    }

    #[test]
    fn core_19_loom_two_producers() {
        check(&[1, 1], false);
        check(&[2, 1], false);
        check(&[2, 1], true);
    }
}
