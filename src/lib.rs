//! # evloop
//!
//! The asyncio event loop, natively in Rust: one loop per thread running plain callbacks and
//! async tasks side by side, in a documented order, with cancellable handles, an exception
//! handler that keeps the loop alive when user code panics, and a debug mode that names slow
//! callbacks by their source location.
//!
//! This crate is a facade: it re-exports the workspace's crates, each behind a feature of the
//! same short name (all on by default). `use evloop::prelude::*` brings the loop and every
//! enabled extension trait into scope.
//!
//! | feature | crate | adds |
//! |---|---|---|
//! | (always) | [`loop_core`](core) | `EventLoop`, `call_soon`, futures, tasks, fd watchers, exception handler, debug mode |
//! | `timers` | `loop_timers` | `call_later`, `call_at`, `time`, `sleep`, `timeout` |
//!
//! ```
//! use evloop::prelude::*;
//!
//! let lp = EventLoop::new()?;
//! lp.call_soon(|_| println!("Hello World"))?;
//! let answer = lp.run_until_complete(async { 6 * 7 })?;
//! assert_eq!(answer, 42);
//! lp.close()?;
//! # Ok::<(), evloop::Error>(())
//! ```

#![warn(missing_docs)]

pub use loop_core as core;
pub use loop_core::*;

#[cfg(feature = "timers")]
pub use loop_timers as timers;

/// The loop, its error type and every enabled extension trait.
pub mod prelude {
    pub use loop_core::{Error, EventLoop, Handle, LoopFuture, Remote, Task, TaskRef};

    #[cfg(feature = "timers")]
    pub use loop_timers::TimersExt;
}
