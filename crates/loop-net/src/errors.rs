//! Errors of connection attempts: an OS error with the address it concerns, and the group of
//! every attempt's error.
//!
//! asyncio names the address in its OS errors ("Connect call failed ('127.0.0.1', 1)") and
//! keeps the errno. A `std::io::Error` cannot carry both a custom message and a raw OS error,
//! so evloop keeps the error kind, puts the address in the message and the original OS error
//! in `source()`; [`raw_os_error`] finds the errno either way.

use std::fmt;
use std::io;

use loop_core::{Error, Exception};

/// An OS error with context: `message` is displayed, `source` is the original error.
#[derive(Debug)]
struct OsContext {
    /// What failed, with the address.
    message: String,
    /// The OS error.
    source: io::Error,
}

impl fmt::Display for OsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OsContext {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Wraps an OS error with a message, keeping its kind and the original as the source.
pub(crate) fn with_context(source: io::Error, message: String) -> io::Error {
    io::Error::new(source.kind(), OsContext { message, source })
}

/// The OS error number of an error: its own (`raw_os_error`), or the one of the OS error it
/// wraps (errors of `create_connection`, `create_server` and friends name the address and keep
/// the OS error as their source).
///
/// ```
/// use loop_core::Error;
/// let e = Error::from(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
/// assert_eq!(loop_net::raw_os_error(&e), Some(libc::ECONNREFUSED));
/// assert_eq!(loop_net::raw_os_error(&Error::TimedOut), None);
/// ```
pub fn raw_os_error(e: &Error) -> Option<i32> {
    let Error::Io(io) = e else { return None };
    let mut cur: &(dyn std::error::Error + 'static) = &**io;
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
        cur = cur.source()?;
    }
}

/// Every error of a failed `create_connection` when `all_errors` was set (asyncio's
/// `ExceptionGroup("create_connection failed", [...])`). It comes back as
/// [`Error::Exception`]; get it with [`Exception::downcast_ref`].
///
/// ```
/// use loop_net::ErrorGroup;
/// let g = ErrorGroup::new("create_connection failed", vec![loop_core::Error::TimedOut]);
/// assert_eq!(g.errors().len(), 1);
/// assert!(g.to_string().starts_with("create_connection failed"));
/// ```
#[derive(Clone, Debug)]
pub struct ErrorGroup {
    /// What failed.
    message: String,
    /// Each error, in the order the attempts were made.
    errors: Vec<Error>,
}

impl ErrorGroup {
    /// A group of `errors` under `message`.
    ///
    /// ```
    /// let g = loop_net::ErrorGroup::new("m", vec![]);
    /// assert!(g.errors().is_empty());
    /// ```
    pub fn new(message: impl Into<String>, errors: Vec<Error>) -> ErrorGroup {
        ErrorGroup {
            message: message.into(),
            errors,
        }
    }

    /// The errors, in the order the attempts were made.
    ///
    /// ```
    /// let g = loop_net::ErrorGroup::new("m", vec![loop_core::Error::TimedOut]);
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

/// asyncio's rule for the errors of all failed attempts (NET-23): none → timeout "create_connection
/// failed"; `all_errors` → the group; one → it; all with the same text → the first; otherwise
/// one OS error "Multiple exceptions: e1, e2, ...".
pub(crate) fn aggregate(mut errors: Vec<Error>, all_errors: bool) -> Error {
    if errors.is_empty() {
        return io::Error::new(io::ErrorKind::TimedOut, "create_connection failed").into();
    }
    if all_errors {
        return Error::Exception(Exception::new(ErrorGroup::new(
            "create_connection failed",
            errors,
        )));
    }
    if errors.len() == 1 {
        return errors.pop().expect("one error");
    }
    let first = errors[0].to_string();
    if errors.iter().all(|e| e.to_string() == first) {
        return errors.swap_remove(0);
    }
    let texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    io::Error::other(format!("Multiple exceptions: {}", texts.join(", "))).into()
}
