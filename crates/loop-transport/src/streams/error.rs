//! [`StreamError`], what a [`StreamReader`](crate::StreamReader) read fails with, and the default
//! reader limit.

use std::fmt;
use std::io;

use loop_core::{Error, Exception};

/// The default buffer limit of a [`StreamReader`](crate::StreamReader): 64 KiB (asyncio's `_DEFAULT_LIMIT`).
///
/// ```
/// assert_eq!(loop_transport::DEFAULT_LIMIT, 65536);
/// ```
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// An error of a [`StreamReader`](crate::StreamReader) read.
///
/// ```
/// use loop_transport::StreamError;
/// let e = StreamError::Incomplete { partial: b"ab".to_vec(), expected: Some(5) };
/// assert_eq!(e.to_string(), "2 bytes read on a total of 5 expected bytes");
/// let e = StreamError::Incomplete { partial: vec![], expected: None };
/// assert_eq!(e.to_string(), "0 bytes read on a total of undefined expected bytes");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StreamError {
    /// EOF came before the read could complete (asyncio's `IncompleteReadError`). The bytes
    /// that were buffered are handed back and no longer in the reader.
    Incomplete {
        /// What was read before EOF.
        partial: Vec<u8>,
        /// How many bytes were expected (`None` for `readuntil`).
        expected: Option<usize>,
    },
    /// The separator was not found within the limit (asyncio's `LimitOverrunError`); the data
    /// stays in the reader.
    LimitOverrun {
        /// "Separator is not found, and chunk exceed the limit" or "Separator is found, but
        /// chunk is longer than limit".
        message: &'static str,
        /// Bytes to consume to get past the examined data.
        consumed: usize,
    },
    /// Any other error: the reader's exception (for instance the error the connection was
    /// lost with), an invalid argument, or a misuse.
    Other(Error),
}

impl StreamError {
    /// The partial data of an [`StreamError::Incomplete`].
    ///
    /// ```
    /// let e = loop_transport::StreamError::Incomplete { partial: b"x".to_vec(), expected: None };
    /// assert_eq!(e.partial(), Some(&b"x"[..]));
    /// ```
    pub fn partial(&self) -> Option<&[u8]> {
        match self {
            StreamError::Incomplete { partial, .. } => Some(partial),
            _ => None,
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Incomplete { partial, expected } => match expected {
                Some(n) => write!(
                    f,
                    "{} bytes read on a total of {n} expected bytes",
                    partial.len()
                ),
                None => write!(
                    f,
                    "{} bytes read on a total of undefined expected bytes",
                    partial.len()
                ),
            },
            StreamError::LimitOverrun { message, .. } => f.write_str(message),
            StreamError::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Other(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for StreamError {
    fn from(e: Error) -> StreamError {
        StreamError::Other(e)
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Other(e.into())
    }
}

impl From<StreamError> for Error {
    /// `Other(e)` unwraps to `e`; the two stream errors become an [`Error::Exception`] that
    /// still downcasts to `StreamError`.
    fn from(e: StreamError) -> Error {
        match e {
            StreamError::Other(e) => e,
            other => Error::Exception(Exception::new(other)),
        }
    }
}

impl From<StreamError> for io::Error {
    /// `Incomplete` → `UnexpectedEof`, `LimitOverrun` → `InvalidData`, `Other` → its
    /// `io::Error` conversion (the OS error kept).
    fn from(e: StreamError) -> io::Error {
        match e {
            StreamError::Other(e) => e.into(),
            e @ StreamError::Incomplete { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            e @ StreamError::LimitOverrun { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}
