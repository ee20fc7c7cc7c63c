//! The executor for evloop: asyncio's `run_in_executor`, `set_default_executor`,
//! `shutdown_default_executor` and `run_coroutine_threadsafe`, natively in Rust.
//!
//! # Why
//!
//! An event loop must never block: one blocking call (a DNS lookup, a file read, a CPU-heavy
//! computation, a C library without an async API) stalls every callback and task of the loop.
//! [`ExecutorExt::run_in_executor`] moves such a call to a worker thread and hands back a
//! [`LoopFuture`](loop_core::LoopFuture) that the loop completes when the call returns. The
//! other direction, submitting async work *into* a loop from a foreign thread and waiting for
//! its result there, is [`RemoteExt::spawn`] (asyncio's `run_coroutine_threadsafe`): a
//! shorthand for `Send` futures over the kernel's
//! [`Remote::run_coroutine_threadsafe`](loop_core::Remote::run_coroutine_threadsafe), returning
//! its [`ConcurrentFuture`](loop_core::ConcurrentFuture).
//!
//! # How results travel
//!
//! The job runs on a worker thread and never touches the loop: when it returns (or panics), the
//! worker posts its outcome with [`Remote::call_soon_threadsafe`](loop_core::Remote), the
//! loop's thread-safe queue (EXEC-06), and the loop thread completes the future. A panic in the
//! job becomes the future's error ([`Error::Exception`](loop_core::Error::Exception)); it is
//! never lost. Nothing is posted to a closed loop: a job that finishes after `close()` drops its
//! result on the worker thread.
//!
//! # The default executor
//!
//! `run_in_executor(None, ..)` uses the loop's default executor, created lazily on first use
//! (EXEC-02). Unless [`set_default_executor`](ExecutorExt::set_default_executor) installed
//! another one, it is [`BlockingExecutor`]: the process-wide thread pool of the
//! [`blocking`](https://docs.rs/blocking) crate.
//!
//! asyncio's default executor is a `ThreadPoolExecutor` whose threads are named `asyncio_0`,
//! `asyncio_1`, … and whose size is `min(32, CPUs + 4)`. Restated for evloop:
//!
//! * threads are named `blocking-0`, `blocking-1`, … (blocking's names) and are shared by every
//!   loop of the process (and by any other user of `blocking`, such as `async-fs`);
//! * the pool grows on demand up to `BLOCKING_MAX_THREADS` threads (an environment variable read
//!   once, when the pool starts; 1 to 10 000, default 500), and a thread that stayed idle for a
//!   short while (500 ms in blocking 1.7) exits, so an idle process keeps no worker threads;
//! * a job that is running cannot be interrupted: cancelling its future only drops the result
//!   (EXEC-05), and shutting the default executor down waits for it or gives up waiting, never
//!   kills it. Write jobs that end on their own.
//!
//! Shutting the default executor down is per loop: the pool is global, so
//! [`shutdown_default_executor`](ExecutorExt::shutdown_default_executor) waits for *this loop's*
//! jobs, then refuses new `None` jobs of this loop; other loops are not affected.
//!
//! # Name resolution
//!
//! The networking crate resolves names (`getaddrinfo`) through `run_in_executor(None, ..)`,
//! so that path is kept cheap: a handful of small allocations per job (the loop future, the
//! job box, blocking's task, the completion message) and one wake-up of the loop; no thread is
//! created while the pool has idle ones.
//!
//! # Example
//!
//! ```
//! use loop_core::EventLoop;
//! use loop_executor::ExecutorExt;
//!
//! let lp = EventLoop::new()?;
//! let fut = lp.run_in_executor(None, || {
//!     // A blocking call: runs on a worker thread, not on the loop's.
//!     std::thread::sleep(std::time::Duration::from_millis(10));
//!     6 * 7
//! })?;
//! assert_eq!(lp.run_until_complete(fut)??, 42);
//! lp.run_until_complete(lp.shutdown_default_executor(None))??;
//! lp.close()?;
//! # Ok::<(), loop_core::Error>(())
//! ```

#![warn(missing_docs)]

mod executor;
mod threadsafe;

pub use executor::{BlockingExecutor, Executor, ExecutorExt, Job};
pub use threadsafe::RemoteExt;
