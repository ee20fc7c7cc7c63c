//! Streams: `StreamReader` / `StreamWriter` over a transport, asyncio's high-level API.
//!
//! A [`StreamReaderProtocol`] sits in the transport and feeds a [`StreamReader`] (whose
//! buffer is bounded by flow control, STREAM-18) and tells the [`StreamWriter`] about write
//! flow control and the end of the connection. Both ends also implement the futures-io traits
//! (`AsyncRead` + `AsyncBufRead`, `AsyncWrite`), so generic async code (copy, codecs,
//! line readers) works on them.
//!
//! # Errors
//!
//! Reader methods return [`StreamError`]: asyncio's `IncompleteReadError` and
//! `LimitOverrunError` as variants keeping their data, and every other error (an error set with
//! `set_exception`, the error the connection was lost with, argument errors) as
//! [`StreamError::Other`] holding a [`loop_core::Error`]. `StreamError` converts into
//! `loop_core::Error` and `std::io::Error` with `?`. Writer methods return
//! `loop_core::Result`.

mod error;
mod reader;
mod writer;

pub use error::{StreamError, DEFAULT_LIMIT};
pub use reader::{Lines, StreamReader};
pub use writer::{
    open_read_stream, open_stream, open_write_stream, StreamReaderProtocol, StreamWriter,
};
