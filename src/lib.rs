//! # evloop
//!
//! The asyncio event loop, natively in Rust: one loop per thread running plain callbacks and
//! async tasks side by side, in a documented order, with cancellable handles, an exception
//! handler that keeps the loop alive when user code panics, and a debug mode that names slow
//! callbacks by their source location.
//!
//! This crate is a facade: it re-exports the workspace's crates, each behind a feature of the
//! same short name (all on by default but `tls`), and loop-core's public items by name at its
//! root (loop-core's unstable `internal` hooks are not re-exported there). A feature turns on
//! only the features whose types its API uses (`net`, `pipes` and `subprocess` turn on
//! `transport`). `use evloop::prelude::*` brings the loop and every enabled extension trait
//! into scope.
//!
//! | feature | crate | adds |
//! |---|---|---|
//! | (always) | `loop_core` | `EventLoop`, `call_soon`, futures, tasks, fd watchers, exception handler, debug mode |
//! | `timers` | `loop_timers` | `call_later`, `call_at`, `time`, `sleep`, `timeout` |
//! | `executor` | `loop_executor` | `run_in_executor`, `set_default_executor`, `shutdown_default_executor`, `run_coroutine_threadsafe` (`RemoteExt::spawn`) |
//! | `signals` | `loop_signals` | `add_signal_handler`, `remove_signal_handler`, signal numbers |
//! | `transport` | `loop_transport` | `Protocol`, `BufferedProtocol`, `DatagramProtocol`, `Transport`, `StreamReader`, `StreamWriter` |
//! | `net` | `loop_net` | `sock_*` calls, `getaddrinfo` / `getnameinfo`, socket addresses |
//! | `pipes` | `loop_pipes` | `connect_read_pipe`, `connect_write_pipe` (pipes, FIFOs, sockets, ptys) |
//! | `subprocess` | `loop_subprocess` | `subprocess_exec`, `subprocess_shell`, `create_subprocess_exec`, `create_subprocess_shell`, `Process` |
//! | `tls` (off by default; `tls-ring` for ring) | `loop_tls` | `ssl=` on the connection and server options (with `net`), `start_tls`, `SslContext`, the sans-I/O `TlsEngine` |
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
pub use loop_core::{
    all_tasks, current_task, fatal, get_running_loop, run, spawn_loops, yield_now, AsyncResource,
    Builder, CallbackId, Cancelled, ConcurrentFuture, Context, ContextVar, Error, ErrorGroup,
    EventLoop, Exception, ExceptionContext, ExceptionHandler, Fatal, Fileno, Handle, LoopFuture,
    LoopGroup, Mode, Readiness, Remote, RemoteHandle, Result, Stats, Task, TaskFactory, TaskRef,
    TaskSpec, Token, DEFAULT_SLOW_CALLBACK, MAX_POLL_TIMEOUT, POLL_EVERY,
};

#[cfg(feature = "timers")]
pub use loop_timers as timers;

#[cfg(feature = "executor")]
pub use loop_executor as executor;

#[cfg(feature = "signals")]
pub use loop_signals as signals;

#[cfg(feature = "transport")]
pub use loop_transport as transport;

#[cfg(feature = "net")]
pub use loop_net as net;

#[cfg(feature = "pipes")]
pub use loop_pipes as pipes;

#[cfg(feature = "subprocess")]
pub use loop_subprocess as subprocess;

#[cfg(any(feature = "tls", feature = "tls-ring"))]
pub use loop_tls as tls;

/// The loop, its error type and every enabled extension trait.
pub mod prelude {
    pub use loop_core::{Error, EventLoop, Handle, LoopFuture, Remote, Task, TaskRef};

    #[cfg(feature = "timers")]
    pub use loop_timers::TimersExt;

    #[cfg(feature = "executor")]
    pub use loop_executor::{ExecutorExt, RemoteExt};

    #[cfg(feature = "signals")]
    pub use loop_signals::SignalsExt;

    #[cfg(feature = "transport")]
    pub use loop_transport::{
        BufferedProtocol, DatagramProtocol, DatagramTransport, Protocol, ProtocolRef, StreamReader,
        StreamWriter, Transport,
    };

    #[cfg(feature = "net")]
    pub use loop_net::SockExt;

    #[cfg(feature = "net")]
    pub use loop_net::{ConnectOptions, NetExt, ServerOptions};

    #[cfg(feature = "net")]
    pub use loop_net::DatagramExt;

    #[cfg(feature = "pipes")]
    pub use loop_pipes::PipesExt;

    #[cfg(feature = "subprocess")]
    pub use loop_subprocess::{SubprocessExt, SubprocessProtocol, SubprocessTransport};

    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    pub use loop_tls::{SslContext, TlsExt, TlsOptions, TlsStreamExt};
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
