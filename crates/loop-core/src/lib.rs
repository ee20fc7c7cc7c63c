//! The evloop event loop: asyncio's `AbstractEventLoop` core, natively in Rust.
//!
//! One [`EventLoop`] per thread runs plain callbacks ([`EventLoop::call_soon`]) and async tasks
//! ([`EventLoop::create_task`]) side by side, in a documented order, over an epoll reactor.
//! This crate holds the loop itself; timers, networking, pipes, subprocesses, signals and the
//! executor live in sibling crates that add their methods to the loop through extension traits
//! (all re-exported by the `evloop` facade).
//!
//! # Guarantees
//!
//! * **Order.** Callbacks run once each, FIFO. One iteration runs exactly the work that was ready
//!   when it started; what that work schedules runs in the next iteration. I/O callbacks of an
//!   iteration come before its due timers.
//! * **I/O latency while busy.** With work ready, epoll is polled at least every
//!   [`POLL_EVERY`] iterations; with nothing ready, the loop blocks until I/O, a deadline or a
//!   wake-up from another thread.
//! * **Threads.** [`EventLoop`] is `!Send`; only [`Remote`] crosses threads, and waking a loop
//!   from many threads while it is busy costs one eventfd write. The loop starts no threads.
//! * **Panics.** A panic in a callback, task step, done-callback or I/O handler is caught at the
//!   loop boundary and reported to the exception handler; the loop goes on. Only
//!   [`Fatal`] unwinds out of `run_*`.
//! * **Cancel safety.** Cancelling a [`Handle`] before it runs means it never runs, and drops
//!   what it captured at once. A [`RemoteHandle`]'s cancel either wins before the callback
//!   starts or has no effect.
//! * **Virtual clock.** A loop built with [`Builder::virtual_clock`] never waits for a
//!   deadline: when it would sleep until the next timer, it polls I/O without blocking and, if
//!   nothing is ready, jumps its clock ([`EventLoop::now`]) straight to that deadline. Timer
//!   code then runs deterministically and at once, in the order real time would give.
//! * **Metrics.** [`EventLoop::stats`] counts iterations, callbacks, task steps, I/O events,
//!   polls, idle versus running time, the ready-queue high-water mark, pending timers,
//!   registered fds and slow callbacks, always on, at the cost of plain integer adds.
//!
//! # `run_until_complete` and cancellation: one rule
//!
//! [`EventLoop::run_until_complete(fut)`](EventLoop::run_until_complete) wraps `fut` into a task
//! and returns exactly what awaiting that task in another task returns: `Ok(output)` when the
//! body finished, `Err(Error::Cancelled)` when the task ended cancelled (cancelled before it
//! ran, or a cancellation delivered into it propagated out with `?`), `Err(Error::Exception)`
//! when it panicked. The loop's own refusals come as `Err` too ([`Error::Closed`],
//! [`Error::AlreadyRunning`], [`Error::AnotherLoopRunning`], [`Error::StoppedBeforeComplete`]).
//! So `lp.run_until_complete(task)` for a cancelled `task: Task<T>` gives
//! `Err(Error::Cancelled)`, the same as `lp.create_task(async move { task.await })?.await` in
//! another task; `task.await` itself gives the task's own outcome, `Err(Error::Cancelled)` as
//! its `Result<T>`. The future must own what it needs (`'static`): pass futures that hold their
//! own handles (such as `server.wait_closed()`), not ones that borrow from the caller.
//!
//! # Dropping a loop
//!
//! Dropping the last [`EventLoop`] handle of a loop that was not closed closes it, and the
//! loop's internals (fd registrations, timers, the executor, signal state, servers) hold the
//! loop weakly, so nothing of it is leaked. A task whose future captured an `EventLoop` clone
//! keeps its loop alive, as any `Rc` cycle does: inside tasks use [`EventLoop::current`] (or
//! the `&EventLoop` a callback receives) instead of a captured clone, or call
//! [`close`](EventLoop::close), which breaks such cycles.
//!
//! # Example
//!
//! ```
//! use loop_core::EventLoop;
//!
//! let lp = EventLoop::new()?;
//! lp.call_soon(|_| println!("a plain callback"))?;
//! let task = lp.create_task(async { 40 + 2 })?;
//! assert_eq!(lp.run_until_complete(task)??, 42);
//! lp.close()?;
//! # Ok::<(), loop_core::Error>(())
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

mod clock;
mod context;
mod error;
mod event_loop;
mod exception;
mod future;
mod group;
mod handle;
mod handler;
#[doc(hidden)]
pub mod internal;
mod io;
mod reactor;
mod readiness;
mod remote_cell;
mod remote_pool;
mod remote_queue;
mod runner;
mod slot;
mod stats;
mod sync;
mod sys;
mod task;
mod task_cell;
mod task_header;
mod task_ref;
mod task_wake;
mod threadsafe;
mod wake;
mod work;

pub use clock::Builder;
pub use context::{Context, ContextVar, Token};
pub use error::{fatal, Cancelled, Error, ErrorGroup, Exception, Fatal, Result};
pub use event_loop::iteration::{MAX_POLL_TIMEOUT, POLL_EVERY};
pub use event_loop::remote::Remote;
pub use event_loop::{
    get_running_loop, EventLoop, ExceptionHandler, TaskFactory, DEFAULT_SLOW_CALLBACK,
};
pub use exception::ExceptionContext;
pub use future::LoopFuture;
pub use group::{spawn_loops, LoopGroup};
pub use handle::{Handle, RemoteHandle};
pub use readiness::{Fileno, Mode, Readiness};
pub use runner::{run, AsyncResource};
pub use slot::CallbackId;
pub use stats::Stats;
pub use task::{all_tasks, current_task, yield_now, Task};
pub use task_header::{TaskRef, TaskSpec};
pub use threadsafe::ConcurrentFuture;

pub(crate) use handle::handle_repeat;
