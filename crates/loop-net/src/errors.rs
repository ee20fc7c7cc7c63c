//! Errors of connection attempts: an OS error with the address it concerns, and the group of
//! every attempt's error.
//!
//! asyncio names the address in its OS errors ("Connect call failed ('127.0.0.1', 1)") and
//! keeps the errno. A `std::io::Error` cannot carry both a custom message and a raw OS error,
//! so evloop keeps the error kind, puts the address in the message and the original OS error
//! in `source()`; [`Error::raw_os_error`] finds the errno either way.

use std::fmt;
use std::io;

use loop_core::{Error, ErrorGroup, Exception};

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
