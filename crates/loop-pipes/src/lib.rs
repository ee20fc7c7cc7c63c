//! Pipes for evloop: asyncio's `connect_read_pipe` and `connect_write_pipe`.
//!
//! [`PipesExt`] adds both to [`EventLoop`]. Each takes a protocol factory and an fd (anything
//! that converts into an `OwnedFd`: a pipe end from `rustix::pipe::pipe`, a `ChildStdout`, a
//! FIFO opened with `File::open`, a `UnixStream`, a pty), wraps it in a [`Transport`] and
//! returns once the protocol's `connection_made` ran.
//!
//! ```
//! use loop_core::{EventLoop, LoopFuture};
//! use loop_pipes::PipesExt;
//! use loop_transport::{Protocol, Transport};
//!
//! /// Collects what comes through the pipe.
//! struct Collect {
//!     data: Vec<u8>,
//!     done: LoopFuture<Vec<u8>>,
//! }
//!
//! impl Protocol for Collect {
//!     fn data_received(&mut self, data: &[u8]) {
//!         self.data.extend_from_slice(data);
//!     }
//!     fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
//!         let _ = self.done.set_result(std::mem::take(&mut self.data));
//!     }
//! }
//!
//! let lp = EventLoop::new()?;
//! let (r, w) = rustix::pipe::pipe()?;
//! let done = lp.create_future();
//! let d = done.clone();
//! let l = lp.clone();
//! let got = lp.run_until_complete(async move {
//!     let (_transport, _protocol) = l
//!         .connect_read_pipe(move || Collect { data: Vec::new(), done: d }, r)
//!         .await?;
//!     rustix::io::write(&w, b"through the pipe")?;
//!     drop(w); // EOF: eof_received, then connection_lost(None)
//!     done.await
//! })??;
//! assert_eq!(got, b"through the pipe");
//! # Ok::<(), loop_core::Error>(())
//! ```
//!
//! # Why it works the way it does
//!
//! **Which fds.** A pipe transport needs an fd that the kernel can report readiness for: a
//! pipe or FIFO, a socket, or a character device such as a pty. A regular file or a directory
//! is always "ready" and epoll refuses it (`EPERM`), so both calls check the file type first
//! and refuse anything else with a clear error (PIPE-01, PIPE-08), before the fd is touched.
//!
//! **Ownership.** The transport owns the fd from then on: it is switched to non-blocking mode
//! (which affects every fd sharing its open file description, as in asyncio), and closed after
//! `connection_lost` or when the loop closes. On error the fd is closed too.
//!
//! **The shared transport.** Reading, writing, flow control and closing are the stream
//! transport's (loop-transport's `FdKind::ReadPipe` / `FdKind::WritePipe`): a read pipe
//! always closes at EOF whatever `eof_received` returns (PIPE-04); `EIO` — what a pty reads
//! once its other side closed — ends it with `connection_lost(Some(err))` without a report,
//! while any other read error is also reported to the exception handler as "Fatal read error
//! on pipe transport" (PIPE-05); a write pipe notices its reader going away through
//! `EPOLLERR` / `EPOLLHUP` (PIPE-09) and uses the socket flow-control rules (PIPE-15).
//!
//! **The returned protocol.** asyncio returns `(transport, protocol)`. Here the transport owns
//! the protocol, so the second element is a typed handle, a [`ProtocolRef`], that reaches the
//! protocol and keeps it alive (readable after `connection_lost` too).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};

use loop_core::{Error, EventLoop, Result};
use loop_transport::{Protocol, ProtocolRef, Transport, TransportOptions};
use rustix::fs::FileType;

/// Which end of a pipe a transport drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// `connect_read_pipe`.
    Read,
    /// `connect_write_pipe`.
    Write,
}

mod sealed {
    /// Only `EventLoop` implements the extension trait.
    pub trait Sealed {}
    impl Sealed for loop_core::EventLoop {}
}

/// `connect_read_pipe` and `connect_write_pipe`, as methods of [`EventLoop`] (sealed: only
/// `EventLoop` implements it).
///
/// ```
/// use loop_pipes::PipesExt;
/// struct Quiet;
/// impl loop_transport::Protocol for Quiet {}
/// let lp = loop_core::EventLoop::new()?;
/// let (_r, w) = rustix::pipe::pipe()?;
/// let l = lp.clone();
/// let (t, _) = lp.run_until_complete(async move { l.connect_write_pipe(|| Quiet, w).await })??;
/// t.write(b"hello")?;
/// t.close();
/// # lp.run_until_complete(async {})?;
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait PipesExt: sealed::Sealed {
    /// Wraps the read end of a pipe (or a FIFO, a socket, a character device such as a pty) in
    /// a read-only transport whose protocol `protocol_factory` makes (called once), and returns
    /// once `connection_made` ran; reading starts after it (PIPE-01, PIPE-02).
    ///
    /// The transport owns the fd: it is made non-blocking, and closed after `connection_lost`
    /// (or when the loop closes). Data comes through `data_received` in chunks of at most
    /// 256 KiB (PIPE-03); when every writer closed, `eof_received()` then `connection_lost(None)`
    /// (PIPE-04); `EIO` (a pty whose other side closed) gives `connection_lost(Some(err))`
    /// (PIPE-05). `get_extra_info(Extra::Pipe)` is the fd number while it is open.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] "Pipe transport is for pipes/sockets only." for a regular file,
    /// a directory or a block device (the fd is closed); the `fstat` or `epoll_ctl` error;
    /// [`Error::Closed`] for a closed loop; the panic of `connection_made`, if it panicked.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the fd is closed (through the transport's
    /// `close()` once the transport exists).
    ///
    /// # Examples
    ///
    /// ```
    /// use loop_pipes::PipesExt;
    /// use loop_transport::Extra;
    /// struct Q;
    /// impl loop_transport::Protocol for Q {}
    /// let lp = loop_core::EventLoop::new()?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// let raw = std::os::fd::AsRawFd::as_raw_fd(&r);
    /// let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move { l.connect_read_pipe(|| Q, r).await })??;
    /// assert_eq!(t.get_extra_info(Extra::Pipe).unwrap().as_fd(), Some(raw));
    /// t.close();
    /// lp.run_until_complete(async {})?;
    ///
    /// // A regular file is refused.
    /// let file = std::fs::File::open("/etc/hostname").or_else(|_| std::fs::File::open("Cargo.toml"))?;
    /// let l = lp.clone();
    /// let err = lp.run_until_complete(async move { l.connect_read_pipe(|| Q, file).await })?.unwrap_err();
    /// assert!(err.to_string().contains("Pipe transport is for pipes/sockets only."));
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn connect_read_pipe<P, F>(
        &self,
        protocol_factory: F,
        pipe: impl Into<OwnedFd>,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        P: Protocol + 'static,
        F: FnOnce() -> P + 'static;

    /// Wraps the write end of a pipe (or a FIFO, a socket, a character device such as a pty)
    /// in a write-only transport whose protocol `protocol_factory` makes (called once), and
    /// returns once `connection_made` ran (PIPE-08). The protocol only needs the base methods
    /// (`connection_made`, `pause_writing`, `resume_writing`, `connection_lost`).
    ///
    /// Writes go straight to the fd when nothing is buffered (PIPE-10); `write_eof()` and
    /// `close()` flush, then close (PIPE-13); `abort()` discards (PIPE-14); the reader going
    /// away closes the transport, with `BrokenPipe` if data was still buffered (PIPE-09); flow
    /// control is the sockets' (PIPE-15). The fd is owned, made non-blocking, and closed after
    /// `connection_lost`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] "Pipe transport is only for pipes, sockets and character
    /// devices" for a regular file, a directory or a block device (the fd is closed); the
    /// `fstat` or `epoll_ctl` error; [`Error::Closed`] for a closed loop; the panic of
    /// `connection_made`, if it panicked.
    ///
    /// # Cancel safety
    ///
    /// As for [`connect_read_pipe`](PipesExt::connect_read_pipe).
    ///
    /// # Examples
    ///
    /// ```
    /// use loop_pipes::PipesExt;
    /// struct Q;
    /// impl loop_transport::Protocol for Q {}
    /// let lp = loop_core::EventLoop::new()?;
    /// let (r, w) = rustix::pipe::pipe()?;
    /// let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move { l.connect_write_pipe(|| Q, w).await })??;
    /// t.write(b"to the reader")?;
    /// t.close();
    /// lp.run_until_complete(async {})?;
    /// let mut buf = [0u8; 32];
    /// let n = rustix::io::read(&r, &mut buf)?;
    /// assert_eq!(&buf[..n], b"to the reader");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn connect_write_pipe<P, F>(
        &self,
        protocol_factory: F,
        pipe: impl Into<OwnedFd>,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        P: Protocol + 'static,
        F: FnOnce() -> P + 'static;
}

impl PipesExt for EventLoop {
    fn connect_read_pipe<P, F>(
        &self,
        protocol_factory: F,
        pipe: impl Into<OwnedFd>,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        P: Protocol + 'static,
        F: FnOnce() -> P + 'static,
    {
        connect(self.clone(), protocol_factory, pipe.into(), Direction::Read)
    }

    fn connect_write_pipe<P, F>(
        &self,
        protocol_factory: F,
        pipe: impl Into<OwnedFd>,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        P: Protocol + 'static,
        F: FnOnce() -> P + 'static,
    {
        connect(
            self.clone(),
            protocol_factory,
            pipe.into(),
            Direction::Write,
        )
    }
}

/// Closes a transport whose creation was interrupted.
struct CloseOnDrop(Option<Transport>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.close();
        }
    }
}

async fn connect<P, F>(
    lp: EventLoop,
    protocol_factory: F,
    fd: OwnedFd,
    direction: Direction,
) -> Result<(Transport, ProtocolRef<P>)>
where
    P: Protocol + 'static,
    F: FnOnce() -> P + 'static,
{
    if lp.is_closed() {
        return Err(Error::Closed);
    }
    check_file_type(&fd, direction)?;
    let protocol = protocol_factory();
    let waiter = lp.create_future::<()>();
    let options = match direction {
        Direction::Read => TransportOptions::read_pipe(),
        Direction::Write => TransportOptions::write_pipe(),
    }
    .waiter(waiter.clone());
    let transport = Transport::new(&lp, fd, protocol, options)?;
    let protocol = transport.protocol_ref::<P>();
    let mut guard = CloseOnDrop(Some(transport.clone()));
    waiter.await?;
    guard.0 = None;
    Ok((transport, protocol))
}

/// PIPE-01 / PIPE-08: only fds the kernel reports readiness for.
fn check_file_type(fd: &OwnedFd, direction: Direction) -> Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let what = match FileType::from_raw_mode(st.st_mode) {
        FileType::Fifo | FileType::Socket | FileType::CharacterDevice => return Ok(()),
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symbolic link",
        _ => "of an unknown file type",
    };
    let raw = fd.as_raw_fd();
    let msg = match direction {
        Direction::Read => format!(
            "Pipe transport is for pipes/sockets only. (fd {raw} is {what}; give the read end of \
             a pipe, a FIFO, a socket or a character device such as a pty; read files with \
             blocking I/O on an executor)"
        ),
        Direction::Write => format!(
            "Pipe transport is only for pipes, sockets and character devices (fd {raw} is \
             {what}; write files with blocking I/O on an executor)"
        ),
    };
    Err(Error::invalid_argument(msg))
}
