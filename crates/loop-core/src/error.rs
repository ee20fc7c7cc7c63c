//! The one error type of evloop, and the two values a future can fail with.
//!
//! asyncio raises exceptions of many classes; evloop returns one [`Error`] enum so that `?`
//! composes across every crate of the workspace. The loop-state variants carry asyncio's
//! messages (each saying what to do instead), [`Cancelled`] is `CancelledError`, and
//! [`Exception`] is anything a future was failed with: an error passed to
//! [`LoopFuture::set_exception`](crate::LoopFuture::set_exception) or a panic caught at the loop
//! boundary.

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::Arc;

/// Everything that can go wrong in an evloop call.
///
/// # Examples
///
/// ```
/// use loop_core::{Error, EventLoop};
///
/// let lp = EventLoop::new().unwrap();
/// lp.close().unwrap();
/// let err = lp.run_forever().unwrap_err();
/// assert!(matches!(err, Error::Closed));
/// assert_eq!(err.to_string(), "Event loop is closed");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The loop was closed; create a new one.
    Closed,
    /// The loop is already running (a nested `run_*` call from inside the loop).
    AlreadyRunning,
    /// Another loop is running on this thread; one thread runs one loop at a time.
    AnotherLoopRunning,
    /// No loop is running on this thread.
    NoRunningLoop,
    /// `close()` was called while the loop runs.
    CloseRunning,
    /// The loop stopped before the future given to `run_until_complete` was done.
    StoppedBeforeComplete,
    /// A future of one loop was used with another loop.
    DifferentLoop,
    /// An argument was rejected; the text says which and why.
    InvalidArgument(String),
    /// The object is not in a state that allows the call (a future already done, not done...).
    InvalidState(String),
    /// The file descriptor is owned by a transport; use the transport instead.
    FdInUse {
        /// The file descriptor.
        fd: i32,
        /// What owns it.
        owner: String,
    },
    /// The future or task was cancelled.
    Cancelled(Cancelled),
    /// The future or task failed: an error set on it, or a panic.
    Exception(Exception),
    /// A system call failed.
    Io(Arc<io::Error>),
    /// A timeout expired.
    TimedOut,
    /// The default executor was shut down; set a new one or pass an executor explicitly.
    ExecutorShutdown,
}

impl Error {
    /// Returns the [`Cancelled`] value if this error is a cancellation.
    ///
    /// ```
    /// use loop_core::{Cancelled, Error};
    /// let e = Error::Cancelled(Cancelled::new(Some("bye".into())));
    /// assert_eq!(e.as_cancelled().unwrap().message(), Some("bye"));
    /// ```
    pub fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            Error::Cancelled(c) => Some(c),
            _ => None,
        }
    }

    /// True if this error is a cancellation.
    ///
    /// ```
    /// use loop_core::{Cancelled, Error};
    /// assert!(Error::Cancelled(Cancelled::new(None)).is_cancelled());
    /// assert!(!Error::Closed.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled(_))
    }

    /// The OS error number (asyncio's `errno`): the error's own, or the one of the OS error it
    /// wraps, found by walking the source chain. Errors of `create_connection`,
    /// `create_server` and friends name the address in their message and keep the OS error as
    /// their source; this finds `ECONNREFUSED`, `EADDRINUSE` and the like there too.
    ///
    /// ```
    /// use loop_core::Error;
    /// let e = Error::from(std::io::Error::from_raw_os_error(32));
    /// assert_eq!(e.raw_os_error(), Some(32));
    /// // An OS error wrapped with a message keeps its number.
    /// let wrapped = std::io::Error::new(
    ///     std::io::ErrorKind::ConnectionRefused,
    ///     std::io::Error::from_raw_os_error(111),
    /// );
    /// assert_eq!(Error::from(wrapped).raw_os_error(), Some(111));
    /// assert_eq!(Error::TimedOut.raw_os_error(), None);
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        let mut cur: &(dyn std::error::Error + 'static) = match self {
            Error::Io(io) => &**io,
            Error::Exception(e) => &*e.inner,
            _ => return None,
        };
        loop {
            if let Some(io) = cur.downcast_ref::<io::Error>() {
                if let Some(n) = io.raw_os_error() {
                    return Some(n);
                }
                if let Some(inner) = io.get_ref() {
                    cur = inner;
                    continue;
                }
            }
            if let Some(Error::Io(io)) = cur.downcast_ref::<Error>() {
                cur = &**io;
                continue;
            }
            cur = cur.source()?;
        }
    }

    /// The errors of a group (an [`ErrorGroup`], such as `create_connection`'s with
    /// `all_errors`), in order; empty for an error that is not a group.
    ///
    /// ```
    /// use loop_core::{Error, ErrorGroup, Exception};
    /// let g = Error::Exception(Exception::new(ErrorGroup::new("failed", vec![Error::TimedOut])));
    /// assert!(matches!(g.errors(), [Error::TimedOut]));
    /// assert!(Error::Closed.errors().is_empty());
    /// ```
    pub fn errors(&self) -> &[Error] {
        match self {
            Error::Exception(e) => e
                .downcast_ref::<ErrorGroup>()
                .map_or(&[][..], ErrorGroup::errors),
            _ => &[],
        }
    }

    /// Builds an [`Error::InvalidArgument`].
    ///
    /// ```
    /// let e = loop_core::Error::invalid_argument("delay must be finite");
    /// assert_eq!(e.to_string(), "invalid argument: delay must be finite");
    /// ```
    pub fn invalid_argument(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }

    /// Builds an [`Error::InvalidState`].
    ///
    /// ```
    /// let e = loop_core::Error::invalid_state("Result is not ready.");
    /// assert_eq!(e.to_string(), "Result is not ready.");
    /// ```
    pub fn invalid_state(msg: impl Into<String>) -> Error {
        Error::InvalidState(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("Event loop is closed"),
            Error::AlreadyRunning => f.write_str("This event loop is already running"),
            Error::AnotherLoopRunning => {
                f.write_str("Cannot run the event loop while another loop is running")
            }
            Error::NoRunningLoop => f.write_str("no running event loop"),
            Error::CloseRunning => f.write_str("Cannot close a running event loop"),
            Error::StoppedBeforeComplete => f.write_str("Event loop stopped before Future completed."),
            Error::DifferentLoop => f.write_str(
                "The future belongs to a different loop than the one it is used with; \
                 create futures with the loop that awaits them",
            ),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::InvalidState(m) => f.write_str(m),
            Error::FdInUse { fd, owner } => write!(
                f,
                "File descriptor {fd} is used by transport {owner}; use the transport's methods instead"
            ),
            Error::Cancelled(c) => fmt::Display::fmt(c, f),
            Error::Exception(e) => fmt::Display::fmt(e, f),
            Error::Io(e) => fmt::Display::fmt(e, f),
            Error::TimedOut => f.write_str("the operation timed out"),
            Error::ExecutorShutdown => f.write_str("Executor shutdown has been called"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(&**e),
            Error::Exception(e) => Some(&*e.inner),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(Arc::new(e.into()))
    }
}

impl From<Cancelled> for Error {
    fn from(c: Cancelled) -> Self {
        Error::Cancelled(c)
    }
}

impl From<Exception> for Error {
    fn from(e: Exception) -> Self {
        Error::Exception(e)
    }
}

impl From<Error> for io::Error {
    // `io::Error::other` needs Rust 1.74; the MSRV is 1.71.
    #[allow(clippy::io_other_error)]
    fn from(e: Error) -> Self {
        match e {
            Error::Io(inner) => match Arc::try_unwrap(inner) {
                Ok(io) => io,
                Err(shared) => io::Error::new(shared.kind(), Error::Io(shared)),
            },
            Error::TimedOut => io::Error::new(io::ErrorKind::TimedOut, e),
            Error::InvalidArgument(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
            other => io::Error::new(io::ErrorKind::Other, other),
        }
    }
}

/// A cancellation, with the optional message given to `cancel(msg)`.
///
/// Inside a task, awaiting a loop future after the task was cancelled gives
/// `Err(Error::Cancelled(..))`. Returning that error from the task body (with `?`) ends the task
/// cancelled; dropping it (handling the error) lets the task finish normally, as catching
/// `CancelledError` does in asyncio.
///
/// ```
/// use loop_core::Cancelled;
/// let c = Cancelled::new(Some("shutting down".into()));
/// assert_eq!(c.message(), Some("shutting down"));
/// assert_eq!(c.to_string(), "cancelled: shutting down");
/// ```
#[derive(Clone)]
pub struct Cancelled {
    /// The message given to `cancel`, if any.
    message: Option<Arc<str>>,
    /// Shared by every copy of one delivered cancellation; the task checks whether a copy is
    /// still alive in its output to decide whether the cancellation propagated.
    token: Arc<()>,
}

impl Cancelled {
    /// A cancellation with an optional message.
    ///
    /// ```
    /// assert_eq!(loop_core::Cancelled::new(None).message(), None);
    /// ```
    pub fn new(message: Option<String>) -> Cancelled {
        Cancelled {
            message: message.map(Into::into),
            token: Arc::new(()),
        }
    }

    /// The message given to `cancel`, if any.
    ///
    /// ```
    /// assert_eq!(loop_core::Cancelled::new(Some("m".into())).message(), Some("m"));
    /// ```
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub(crate) fn token(&self) -> std::sync::Weak<()> {
        Arc::downgrade(&self.token)
    }
}

impl PartialEq for Cancelled {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled")
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "cancelled: {m}"),
            None => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for Cancelled {}

/// What a future failed with: an error set by `set_exception`, or a caught panic.
///
/// Cheap to clone (shared), `Send + Sync`, so it can be read by every awaiter and passed across
/// threads.
///
/// ```
/// use loop_core::Exception;
/// let e = Exception::new(std::io::Error::new(std::io::ErrorKind::Other, "boom"));
/// assert_eq!(e.to_string(), "boom");
/// assert!(!e.is_panic());
/// assert!(e.downcast_ref::<std::io::Error>().is_some());
/// ```
#[derive(Clone)]
pub struct Exception {
    /// The error itself.
    inner: Arc<dyn std::error::Error + Send + Sync>,
}

impl Exception {
    /// Wraps any error.
    ///
    /// ```
    /// let e = loop_core::Exception::new("plain message");
    /// assert_eq!(e.to_string(), "plain message");
    /// ```
    pub fn new(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Exception {
        Exception {
            inner: Arc::from(err.into()),
        }
    }

    /// Turns a panic payload into an exception carrying the panic message.
    ///
    /// ```
    /// let payload = std::panic::catch_unwind(|| panic!("oops")).unwrap_err();
    /// let e = loop_core::Exception::from_panic(&*payload);
    /// assert!(e.is_panic());
    /// assert_eq!(e.to_string(), "panic: oops");
    /// ```
    pub fn from_panic(payload: &(dyn Any + Send)) -> Exception {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else if let Some(f) = payload.downcast_ref::<Fatal>() {
            format!("fatal: {}", f.0)
        } else {
            "Box<dyn Any>".to_string()
        };
        Exception {
            inner: Arc::new(Panic { message }),
        }
    }

    /// True if this exception is a caught panic.
    ///
    /// ```
    /// assert!(!loop_core::Exception::new("x").is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        self.inner.is::<Panic>()
    }

    /// The error, if it is of type `E`.
    ///
    /// ```
    /// #[derive(Debug)]
    /// struct Mine;
    /// impl std::fmt::Display for Mine {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("mine") }
    /// }
    /// impl std::error::Error for Mine {}
    /// let e = loop_core::Exception::new(Mine);
    /// assert!(e.downcast_ref::<Mine>().is_some());
    /// ```
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref::<E>()
    }

    /// True if both values are the same shared exception (set once, read twice).
    ///
    /// ```
    /// let e = loop_core::Exception::new("x");
    /// assert!(e.ptr_eq(&e.clone()));
    /// assert!(!e.ptr_eq(&loop_core::Exception::new("x")));
    /// ```
    pub fn ptr_eq(&self, other: &Exception) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Exception").field(&self.inner).finish()
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

/// A panic caught at the loop boundary.
#[derive(Debug)]
struct Panic {
    /// The panic message.
    message: String,
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panic: {}", self.message)
    }
}

impl std::error::Error for Panic {}

/// A panic payload that the loop does not intercept: raised by user code with [`fatal`], it
/// unwinds out of `run_forever` / `run_until_complete` (asyncio's `KeyboardInterrupt` /
/// `SystemExit`), leaving the loop stopped but usable.
///
/// ```
/// use loop_core::{EventLoop, Fatal};
/// let lp = EventLoop::new().unwrap();
/// lp.call_soon(|_| loop_core::fatal("exit requested")).unwrap();
/// let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
/// assert_eq!(payload.downcast_ref::<Fatal>().unwrap().0, "exit requested");
/// assert!(!lp.is_running());
/// ```
#[derive(Debug, Clone)]
pub struct Fatal(pub String);

/// Unwinds with a [`Fatal`] payload, which the loop lets escape from `run_*` instead of
/// reporting it (see [`Fatal`]).
///
/// # Panics
///
/// Always: that is its purpose (through `resume_unwind`, so no panic message is printed).
///
/// ```
/// use std::panic::{catch_unwind, AssertUnwindSafe};
/// let lp = loop_core::EventLoop::new().unwrap();
/// lp.call_soon(|_| loop_core::fatal("stop everything")).unwrap();
/// let payload = catch_unwind(AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
/// assert_eq!(payload.downcast_ref::<loop_core::Fatal>().unwrap().0, "stop everything");
/// ```
pub fn fatal(message: impl Into<String>) -> ! {
    std::panic::resume_unwind(Box::new(Fatal(message.into())))
}

/// Several errors under one message (asyncio's `ExceptionGroup`): every attempt's error of a
/// failed `create_connection` with `all_errors`. It comes back as [`Error::Exception`];
/// [`Error::errors`] gives the errors.
///
/// ```
/// use loop_core::ErrorGroup;
/// let g = ErrorGroup::new("create_connection failed", vec![loop_core::Error::TimedOut]);
/// assert_eq!(g.errors().len(), 1);
/// assert!(g.to_string().starts_with("create_connection failed"));
/// ```
#[derive(Clone, Debug)]
pub struct ErrorGroup {
    /// What failed.
    message: String,
    /// Each error, in order.
    errors: Vec<Error>,
}

impl ErrorGroup {
    /// A group of `errors` under `message`.
    ///
    /// ```
    /// let g = loop_core::ErrorGroup::new("m", vec![]);
    /// assert!(g.errors().is_empty());
    /// ```
    pub fn new(message: impl Into<String>, errors: Vec<Error>) -> ErrorGroup {
        ErrorGroup {
            message: message.into(),
            errors,
        }
    }

    /// The errors, in order.
    ///
    /// ```
    /// let g = loop_core::ErrorGroup::new("m", vec![loop_core::Error::TimedOut]);
    /// assert!(matches!(g.errors()[0], loop_core::Error::TimedOut));
    /// ```
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }
}

impl fmt::Display for ErrorGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} sub-exceptions)", self.message, self.errors.len())
    }
}

impl std::error::Error for ErrorGroup {}

/// `Result` with evloop's [`Error`].
///
/// ```
/// fn make() -> loop_core::Result<loop_core::EventLoop> {
///     loop_core::EventLoop::new()
/// }
/// assert!(make().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
