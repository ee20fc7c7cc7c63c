//! [`StreamReader`]: asyncio's `StreamReader`, with futures-io's `AsyncRead` + `AsyncBufRead`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::io::{AsyncBufRead, AsyncRead};
use futures_lite::Stream;
use loop_core::{Error, Result};

use super::error::{StreamError, DEFAULT_LIMIT};
use crate::stream::Transport;

/// The part of a reader the protocol feeds.
pub(super) struct ReaderState {
    /// Bytes fed and not yet taken into the reader's own buffer.
    incoming: Vec<u8>,
    /// Bytes in the reader's own buffer.
    local_len: usize,
    /// The limit.
    limit: usize,
    /// EOF was fed.
    eof: bool,
    /// The exception every read raises.
    exception: Option<Error>,
    /// The task waiting for data.
    waker: Option<Waker>,
    /// The method holding the wait slot (STREAM-17).
    waiter: Option<&'static str>,
    /// The transport, for flow control.
    pub(super) transport: Option<Transport>,
    /// Reading was paused by this reader.
    paused: bool,
}

impl ReaderState {
    /// Keeps the waker of the task that waits for data (unless it has it already).
    #[inline]
    fn set_waker(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }

    /// Nothing to read and nothing that ends the wait (no data, EOF or exception), reading
    /// not paused: a read waits for data. `consumed`: the reader's own buffer is empty.
    #[inline]
    fn must_wait(&self, consumed: bool) -> bool {
        consumed
            && self.incoming.is_empty()
            && !self.eof
            && self.exception.is_none()
            && !self.paused
    }
}

/// Shared between a [`StreamReader`] and its protocol.
pub(crate) struct ReaderCore {
    /// The state.
    pub(super) st: RefCell<ReaderState>,
}

impl ReaderCore {
    #[inline]
    pub(super) fn wake(&self) {
        let w = self.st.borrow_mut().waker.take();
        if let Some(w) = w {
            w.wake();
        }
    }

    // Inlined into the protocol's `data_received`, its usual caller: one call per chunk.
    #[inline]
    pub(super) fn feed_data(&self, data: &[u8]) {
        let pause = {
            let mut st = self.st.borrow_mut();
            debug_assert!(!st.eof, "feed_data() after feed_eof()");
            if data.is_empty() {
                return;
            }
            if st.incoming.capacity() == 0 {
                // The usual case: the reader took the last bytes (handing its buffer to the
                // caller). One allocation of the right size, without the growth path.
                st.incoming = data.to_vec();
            } else {
                st.incoming.extend_from_slice(data);
            }
            if !st.paused && st.incoming.len() + st.local_len > 2 * st.limit {
                let t = st.transport.clone();
                st.paused = t.is_some();
                t
            } else {
                None
            }
        };
        self.wake();
        if let Some(t) = pause {
            t.pause_reading();
        }
    }

    pub(super) fn feed_eof(&self) {
        self.st.borrow_mut().eof = true;
        self.wake();
    }

    pub(super) fn set_exception(&self, e: Error) {
        self.st.borrow_mut().exception = Some(e);
        self.wake();
    }

    #[inline]
    pub(super) fn exception(&self) -> Option<Error> {
        // Clones the error only if there is one (not the `Option`).
        self.st.borrow().exception.as_ref().cloned()
    }
}

/// Reads from a stream: asyncio's `StreamReader`.
///
/// Fed by a [`StreamReaderProtocol`](crate::StreamReaderProtocol) (or by hand with [`feed_data`](StreamReader::feed_data) /
/// [`feed_eof`](StreamReader::feed_eof)). Reads take `&mut self`: one reader is read by one
/// task at a time. Its buffer is bounded by flow control: the transport is paused when more
/// than 2 × limit bytes are buffered and resumed once a read brings it to limit or below.
///
/// It implements `AsyncRead` and `AsyncBufRead`. Its inherent methods carry asyncio's names
/// (`read(n)`, `readline()`, ...) and take precedence over the extension traits' methods of the
/// same name; call those through the trait (`AsyncReadExt::read(&mut reader, &mut buf)`).
///
/// # Examples
///
/// ```
/// use loop_transport::StreamReader;
/// let lp = loop_core::EventLoop::new().unwrap();
/// let mut r = StreamReader::new();
/// r.feed_data(b"line 1\nline 2\nrest");
/// r.feed_eof();
/// let lines = lp.run_until_complete(async move {
///     let a = r.readline().await?;
///     let b = r.readline().await?;
///     let c = r.read_all().await?;
///     Ok::<_, loop_transport::StreamError>((a, b, c))
/// }).unwrap().unwrap();
/// assert_eq!(lines, (b"line 1\n".to_vec(), b"line 2\n".to_vec(), b"rest".to_vec()));
/// ```
pub struct StreamReader {
    /// Shared with the protocol.
    pub(crate) core: Rc<ReaderCore>,
    /// The reader's own buffer (so `AsyncBufRead` can lend a slice of it).
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
}

impl Default for StreamReader {
    fn default() -> Self {
        StreamReader::new()
    }
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.core.st.borrow();
        write!(
            f,
            "<StreamReader {} bytes{}{}{} limit={}>",
            self.buf.len() - self.pos + st.incoming.len(),
            if st.eof { " eof" } else { "" },
            if st.exception.is_some() {
                " exception"
            } else {
                ""
            },
            if st.paused { " paused" } else { "" },
            st.limit
        )
    }
}

/// Joins `poll_*` steps: `ready!`-like early return.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Poll::Ready(Err(e)),
        }
    };
}

impl StreamReader {
    /// A reader with the default limit (64 KiB).
    ///
    /// ```
    /// assert_eq!(loop_transport::StreamReader::new().limit(), 65536);
    /// ```
    pub fn new() -> StreamReader {
        StreamReader::with_limit(DEFAULT_LIMIT).expect("the default limit is valid")
    }

    /// A reader with the given buffer limit (STREAM-04).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero limit ("Limit cannot be <= 0").
    ///
    /// ```
    /// assert!(loop_transport::StreamReader::with_limit(0).is_err());
    /// assert_eq!(loop_transport::StreamReader::with_limit(10).unwrap().limit(), 10);
    /// ```
    pub fn with_limit(limit: usize) -> Result<StreamReader> {
        if limit == 0 {
            return Err(Error::invalid_argument("Limit cannot be <= 0"));
        }
        Ok(StreamReader {
            core: Rc::new(ReaderCore {
                st: RefCell::new(ReaderState {
                    incoming: Vec::new(),
                    local_len: 0,
                    limit,
                    eof: false,
                    exception: None,
                    waker: None,
                    waiter: None,
                    transport: None,
                    paused: false,
                }),
            }),
            buf: Vec::new(),
            pos: 0,
        })
    }

    /// The buffer limit.
    ///
    /// ```
    /// assert_eq!(loop_transport::StreamReader::with_limit(3).unwrap().limit(), 3);
    /// ```
    pub fn limit(&self) -> usize {
        self.core.st.borrow().limit
    }

    /// Appends data to the buffer, as the protocol does (STREAM-05: empty data does nothing).
    /// Feeding after [`feed_eof`](StreamReader::feed_eof) is a bug (a debug assertion).
    ///
    /// ```
    /// let r = loop_transport::StreamReader::new();
    /// r.feed_data(b"abc");
    /// assert_eq!(r.buffered_len(), 3);
    /// ```
    pub fn feed_data(&self, data: &[u8]) {
        self.core.feed_data(data)
    }

    /// Marks the end of the stream.
    ///
    /// ```
    /// let r = loop_transport::StreamReader::new();
    /// r.feed_eof();
    /// assert!(r.at_eof());
    /// ```
    pub fn feed_eof(&self) {
        self.core.feed_eof()
    }

    /// True when EOF was fed and the buffer is empty (STREAM-16).
    ///
    /// ```
    /// let r = loop_transport::StreamReader::new();
    /// r.feed_data(b"x");
    /// r.feed_eof();
    /// assert!(!r.at_eof());
    /// ```
    pub fn at_eof(&self) -> bool {
        let st = self.core.st.borrow();
        st.eof && st.incoming.is_empty() && self.pos == self.buf.len()
    }

    /// Bytes buffered and not yet read.
    ///
    /// ```
    /// let r = loop_transport::StreamReader::new();
    /// assert_eq!(r.buffered_len(), 0);
    /// ```
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos + self.core.st.borrow().incoming.len()
    }

    /// The exception set on the reader, if any.
    ///
    /// ```
    /// let r = loop_transport::StreamReader::new();
    /// assert!(r.exception().is_none());
    /// ```
    pub fn exception(&self) -> Option<Error> {
        self.core.exception()
    }

    /// Sets the exception every later read returns, even with data buffered; a waiting read
    /// is woken with it (STREAM-15).
    ///
    /// ```
    /// let r = loop_transport::StreamReader::new();
    /// r.set_exception(loop_core::Error::TimedOut);
    /// assert!(matches!(r.exception(), Some(loop_core::Error::TimedOut)));
    /// ```
    pub fn set_exception(&self, e: impl Into<Error>) {
        self.core.set_exception(e.into())
    }

    /// Attaches the transport whose reading this reader pauses and resumes.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions, StreamReader};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// StreamReader::new().set_transport(t.clone());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn set_transport(&self, t: Transport) {
        self.core.st.borrow_mut().transport = Some(t);
    }

    /// Moves fed data into the reader's own buffer.
    #[inline]
    fn absorb(&mut self) {
        let mut st = self.core.st.borrow_mut();
        if st.incoming.is_empty() {
            return;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            std::mem::swap(&mut self.buf, &mut st.incoming);
        } else {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.extend_from_slice(&st.incoming);
            st.incoming.clear();
        }
        st.local_len = self.buf.len();
    }

    #[inline]
    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    fn check(&self) -> std::result::Result<(), StreamError> {
        match &self.core.st.borrow().exception {
            Some(e) => Err(StreamError::Other(e.clone())),
            None => Ok(()),
        }
    }

    #[inline]
    fn eof(&self) -> bool {
        self.core.st.borrow().eof
    }

    /// Drops `n` bytes from the front and resumes the transport if the buffer is low again.
    fn advance(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.sync();
    }

    /// Takes `n` bytes from the front.
    #[inline]
    fn take(&mut self, n: usize) -> Vec<u8> {
        if self.pos == 0 && n == self.buf.len() {
            // Hand the whole buffer over without copying.
            let out = std::mem::take(&mut self.buf);
            self.sync();
            return out;
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.advance(n);
        out
    }

    /// Updates the shared byte count; resumes reading at or below the limit (STREAM-18).
    #[inline]
    fn sync(&mut self) {
        let resume = {
            let mut st = self.core.st.borrow_mut();
            st.local_len = self.buf.len() - self.pos;
            if st.paused && st.local_len + st.incoming.len() <= st.limit {
                st.paused = false;
                st.transport.clone()
            } else {
                None
            }
        };
        if let Some(t) = resume {
            t.resume_reading();
        }
    }

    /// Waits for more data: registers the waker; a paused transport is resumed first, or a read
    /// needing more than 2 × limit would wait forever (STREAM-18).
    #[inline]
    fn park(&mut self, cx: &mut Context<'_>) {
        let resume = {
            let mut st = self.core.st.borrow_mut();
            st.set_waker(cx);
            if st.paused {
                st.paused = false;
                st.transport.clone()
            } else {
                None
            }
        };
        if let Some(t) = resume {
            t.resume_reading();
        }
    }

    #[inline]
    fn poll_read_n(
        &mut self,
        cx: &mut Context<'_>,
        n: usize,
    ) -> Poll<std::result::Result<Vec<u8>, StreamError>> {
        {
            // The usual read, with one borrow of the shared state: the reader's own buffer is
            // empty and everything fed fits in `n`, so the fed bytes go to the caller as they
            // are (what `absorb` then `take` would do, reading stays unpaused).
            let mut st = self.core.st.borrow_mut();
            if st.exception.is_none()
                && !st.paused
                && self.pos == self.buf.len()
                && !st.incoming.is_empty()
                && st.incoming.len() <= n
            {
                if self.pos != 0 {
                    self.buf.clear();
                    self.pos = 0;
                }
                st.local_len = 0;
                return Poll::Ready(Ok(std::mem::take(&mut st.incoming)));
            }
            // The usual wait, in the same borrow: what `park` does when nothing is buffered.
            if n != 0 && st.must_wait(self.pos == self.buf.len()) {
                st.set_waker(cx);
                return Poll::Pending;
            }
        }
        self.absorb();
        tri!(self.check());
        if n == 0 {
            return Poll::Ready(Ok(Vec::new()));
        }
        if self.avail().is_empty() {
            if self.eof() {
                return Poll::Ready(Ok(Vec::new()));
            }
            self.park(cx);
            return Poll::Pending;
        }
        let k = n.min(self.avail().len());
        Poll::Ready(Ok(self.take(k)))
    }

    /// One step of [`read_into`](StreamReader::read_into): copies what is buffered into `out`.
    /// (Its usual cases, data fed and nothing buffered, or nothing at all, are handled by
    /// [`ReadInto`] before it comes here.)
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<std::result::Result<usize, StreamError>> {
        self.absorb();
        tri!(self.check());
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let avail = self.avail();
        if avail.is_empty() {
            if self.eof() {
                return Poll::Ready(Ok(0));
            }
            self.park(cx);
            return Poll::Pending;
        }
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.advance(n);
        Poll::Ready(Ok(n))
    }

    fn poll_read_all(
        &mut self,
        cx: &mut Context<'_>,
        acc: &mut Vec<u8>,
    ) -> Poll<std::result::Result<Vec<u8>, StreamError>> {
        loop {
            self.absorb();
            tri!(self.check());
            let n = self.avail().len();
            if n > 0 {
                // Everything buffered is consumed at once, so the reader's own flow control
                // never stalls this read (STREAM-07).
                if acc.is_empty() {
                    *acc = self.take(n);
                } else {
                    acc.extend_from_slice(&self.buf[self.pos..]);
                    self.advance(n);
                }
                continue;
            }
            if self.eof() {
                return Poll::Ready(Ok(std::mem::take(acc)));
            }
            self.park(cx);
            return Poll::Pending;
        }
    }

    fn poll_readexactly(
        &mut self,
        cx: &mut Context<'_>,
        n: usize,
    ) -> Poll<std::result::Result<Vec<u8>, StreamError>> {
        self.absorb();
        tri!(self.check());
        if n == 0 {
            return Poll::Ready(Ok(Vec::new()));
        }
        let have = self.avail().len();
        if have >= n {
            return Poll::Ready(Ok(self.take(n)));
        }
        if self.eof() {
            let partial = self.take(have);
            return Poll::Ready(Err(StreamError::Incomplete {
                partial,
                expected: Some(n),
            }));
        }
        self.park(cx);
        Poll::Pending
    }

    fn poll_readuntil(
        &mut self,
        cx: &mut Context<'_>,
        seps: &[&[u8]],
        offset: &mut usize,
    ) -> Poll<std::result::Result<Vec<u8>, StreamError>> {
        if seps.is_empty() {
            return Poll::Ready(Err(Error::invalid_argument(
                "Separator should contain at least one element",
            )
            .into()));
        }
        if seps.iter().any(|s| s.is_empty()) {
            return Poll::Ready(Err(Error::invalid_argument(
                "Separator should be at least one-byte string",
            )
            .into()));
        }
        self.absorb();
        tri!(self.check());
        let min_len = seps.iter().map(|s| s.len()).min().unwrap_or(1);
        let max_len = seps.iter().map(|s| s.len()).max().unwrap_or(1);
        let limit = self.limit();
        let data = self.avail();
        let buflen = data.len();
        let mut found: Option<(usize, usize)> = None;
        if buflen.saturating_sub(*offset) >= min_len {
            for sep in seps {
                if let Some(start) = find(data, sep, *offset) {
                    let end = start + sep.len();
                    // The earliest end wins; on equal ends the shorter separator (the later
                    // start) is the match, and its start is checked against the limit.
                    if found.map_or(true, |(s, e)| end < e || (end == e && start > s)) {
                        found = Some((start, end));
                    }
                }
            }
            if found.is_none() {
                *offset = (buflen + 1).saturating_sub(max_len);
                if *offset > limit {
                    return Poll::Ready(Err(StreamError::LimitOverrun {
                        message: "Separator is not found, and chunk exceed the limit",
                        consumed: *offset,
                    }));
                }
            }
        }
        match found {
            Some((start, _)) if start > limit => Poll::Ready(Err(StreamError::LimitOverrun {
                message: "Separator is found, but chunk is longer than limit",
                consumed: start,
            })),
            Some((_, end)) => Poll::Ready(Ok(self.take(end))),
            None if self.eof() => {
                let partial = self.take(buflen);
                Poll::Ready(Err(StreamError::Incomplete {
                    partial,
                    expected: None,
                }))
            }
            None => {
                self.park(cx);
                Poll::Pending
            }
        }
    }

    fn poll_readline(
        &mut self,
        cx: &mut Context<'_>,
        offset: &mut usize,
    ) -> Poll<std::result::Result<Vec<u8>, StreamError>> {
        match self.poll_readuntil(cx, &[b"\n"], offset) {
            Poll::Ready(Err(StreamError::Incomplete { partial, .. })) => Poll::Ready(Ok(partial)),
            Poll::Ready(Err(StreamError::LimitOverrun { message, consumed })) => {
                // STREAM-09: drop the over-long line (with its newline if buffered), or all.
                let n = if self.avail()[consumed..].starts_with(b"\n") {
                    consumed + 1
                } else {
                    self.avail().len()
                };
                self.advance(n);
                *offset = 0;
                Poll::Ready(Err(Error::invalid_argument(message).into()))
            }
            other => other,
        }
    }

    /// Reads up to `n` bytes: waits until at least one byte is buffered or EOF, then returns at
    /// most `n` (not capped by the limit) and leaves the rest buffered; `[]` at EOF; `read(0)`
    /// returns `[]` at once (STREAM-05, STREAM-06).
    ///
    /// # Errors
    ///
    /// The reader's exception (STREAM-15); [`Error::InvalidState`] if a leaked read future
    /// still holds the wait slot (STREAM-17).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it completes leaves every byte in the reader.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"abcdef");
    /// let got = lp.run_until_complete(async move { r.read(4).await }).unwrap().unwrap();
    /// assert_eq!(got, b"abcd");
    /// ```
    pub async fn read(&mut self, n: usize) -> std::result::Result<Vec<u8>, StreamError> {
        ReadOp::new(self, "read", move |r, cx| r.poll_read_n(cx, n)).await
    }

    /// Reads up to `buf.len()` bytes into `buf`: waits until at least one byte is buffered or
    /// EOF, then copies at most `buf.len()` and leaves the rest buffered. Returns how many bytes
    /// were copied: 0 only at EOF, or at once for an empty `buf`. The same read as
    /// [`read`](StreamReader::read) (and as `AsyncReadExt::read`, which the inherent `read`
    /// shadows), without a new `Vec` per call: a loop that reads into one buffer allocates
    /// nothing per chunk.
    ///
    /// # Errors
    ///
    /// As [`read`](StreamReader::read): the reader's exception (STREAM-15);
    /// [`Error::InvalidState`] if a leaked read future still holds the wait slot (STREAM-17).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it completes leaves every byte in the reader.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"abcdef");
    /// r.feed_eof();
    /// let got = lp.run_until_complete(async move {
    ///     let mut buf = [0u8; 4];
    ///     let mut all = Vec::new();
    ///     loop {
    ///         let n = r.read_into(&mut buf).await?;
    ///         if n == 0 {
    ///             break; // EOF
    ///         }
    ///         all.extend_from_slice(&buf[..n]);
    ///     }
    ///     Ok::<_, loop_transport::StreamError>(all)
    /// }).unwrap().unwrap();
    /// assert_eq!(got, b"abcdef");
    /// ```
    pub fn read_into<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = std::result::Result<usize, StreamError>> + 'a {
        ReadInto {
            reader: self,
            out: buf,
            claimed: false,
        }
    }

    /// Reads everything until EOF (asyncio's `read()` / `read(-1)`, STREAM-07).
    ///
    /// # Errors
    ///
    /// As [`read`](StreamReader::read).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: bytes consumed before the cancellation are lost with the future
    /// (as in asyncio).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"all of it");
    /// r.feed_eof();
    /// assert_eq!(lp.run_until_complete(async move { r.read_all().await }).unwrap().unwrap(), b"all of it");
    /// ```
    pub async fn read_all(&mut self) -> std::result::Result<Vec<u8>, StreamError> {
        let mut acc = Vec::new();
        ReadOp::new(self, "read", move |r, cx| r.poll_read_all(cx, &mut acc)).await
    }

    /// Reads one line, up to and including `\n`; at EOF the last partial line, then `[]`
    /// (STREAM-08).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (as [`StreamError::Other`]) if the line without its newline
    /// exceeds the limit; the line (or, without a newline, the whole buffer) is discarded
    /// (STREAM-09). The reader's exception.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is consumed until a whole line is returned.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"hi\nthere");
    /// assert_eq!(lp.run_until_complete(async move { r.readline().await }).unwrap().unwrap(), b"hi\n");
    /// ```
    pub async fn readline(&mut self) -> std::result::Result<Vec<u8>, StreamError> {
        let mut offset = 0;
        ReadOp::new(self, "readline", move |r, cx| {
            r.poll_readline(cx, &mut offset)
        })
        .await
    }

    /// Reads up to and including `separator` (STREAM-10).
    ///
    /// # Errors
    ///
    /// [`StreamError::Incomplete`] with everything buffered if EOF comes first (STREAM-12);
    /// [`StreamError::LimitOverrun`] if the separator is not within the limit, the data staying
    /// buffered (STREAM-13); [`Error::InvalidArgument`] for an empty separator; the reader's
    /// exception.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is consumed until the separator is found.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"key=value;next");
    /// assert_eq!(lp.run_until_complete(async move { r.readuntil(b";").await }).unwrap().unwrap(), b"key=value;");
    /// ```
    pub async fn readuntil(
        &mut self,
        separator: &[u8],
    ) -> std::result::Result<Vec<u8>, StreamError> {
        let mut offset = 0;
        let seps = [separator];
        ReadOp::new(self, "readuntil", move |r, cx| {
            r.poll_readuntil(cx, &seps, &mut offset)
        })
        .await
    }

    /// Reads up to and including the first of several separators to end in the data: the
    /// shortest result wins, whatever the separators' order (STREAM-11). When separators end at
    /// the same byte, the shortest one is the match: its start is checked against the limit.
    ///
    /// # Errors
    ///
    /// As [`readuntil`](StreamReader::readuntil); an empty list is an invalid argument.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"ab\r\ncd");
    /// let got = lp.run_until_complete(async move { r.readuntil_any(&[b"\r\n", b"b"]).await }).unwrap().unwrap();
    /// assert_eq!(got, b"ab");
    /// ```
    pub async fn readuntil_any(
        &mut self,
        separators: &[&[u8]],
    ) -> std::result::Result<Vec<u8>, StreamError> {
        let mut offset = 0;
        ReadOp::new(self, "readuntil", move |r, cx| {
            r.poll_readuntil(cx, separators, &mut offset)
        })
        .await
    }

    /// Reads exactly `n` bytes (not capped by the limit; STREAM-14).
    ///
    /// # Errors
    ///
    /// [`StreamError::Incomplete`] with what was buffered if EOF comes first (the buffer is
    /// then empty); the reader's exception.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is consumed until `n` bytes are there.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"12345");
    /// assert_eq!(lp.run_until_complete(async move { r.readexactly(3).await }).unwrap().unwrap(), b"123");
    /// ```
    pub async fn readexactly(&mut self, n: usize) -> std::result::Result<Vec<u8>, StreamError> {
        ReadOp::new(self, "readexactly", move |r, cx| r.poll_readexactly(cx, n)).await
    }

    /// The lines of the stream, as a `Stream` (asyncio's `async for line in reader`,
    /// STREAM-20): each item is a `readline()` (bytes, newline included, limit enforced),
    /// ending when it returns `[]`. (Named so as not to be shadowed by
    /// `AsyncBufReadExt::lines`, which yields `String`s.)
    ///
    /// ```
    /// use futures_lite::StreamExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let mut r = loop_transport::StreamReader::new();
    /// r.feed_data(b"a\nb\n");
    /// r.feed_eof();
    /// let all: Vec<_> = lp.run_until_complete(async move {
    ///     r.line_stream().map(|l| l.unwrap()).collect::<Vec<_>>().await
    /// }).unwrap();
    /// assert_eq!(all, vec![b"a\n".to_vec(), b"b\n".to_vec()]);
    /// ```
    pub fn line_stream(&mut self) -> Lines<'_> {
        Lines {
            reader: self,
            offset: 0,
            done: false,
        }
    }
}

/// Finds `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() || needle.len() > hay.len() - from {
        return None;
    }
    if let [b] = needle {
        return hay[from..].iter().position(|x| x == b).map(|i| i + from);
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A read of one of the async methods: holds the reader's wait slot while pending, releases
/// it when done or dropped (STREAM-17).
struct ReadOp<'a, F> {
    /// The reader.
    reader: &'a mut StreamReader,
    /// The method name, for the STREAM-17 error.
    name: &'static str,
    /// This read holds the wait slot.
    claimed: bool,
    /// One poll step.
    f: F,
}

impl<'a, F> ReadOp<'a, F> {
    fn new<T>(reader: &'a mut StreamReader, name: &'static str, f: F) -> Self
    where
        F: FnMut(&mut StreamReader, &mut Context<'_>) -> Poll<std::result::Result<T, StreamError>>,
    {
        ReadOp {
            reader,
            name,
            claimed: false,
            f,
        }
    }
}

impl<F, T> Future for ReadOp<'_, F>
where
    F: FnMut(&mut StreamReader, &mut Context<'_>) -> Poll<std::result::Result<T, StreamError>>
        + Unpin,
{
    type Output = std::result::Result<T, StreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        poll_claiming(this.reader, &mut this.claimed, this.name, cx, &mut this.f)
    }
}

impl<F> Drop for ReadOp<'_, F> {
    fn drop(&mut self) {
        release_claim(self.reader, self.claimed);
    }
}

/// One poll of a read that holds the reader's wait slot while pending (STREAM-17): `f` is
/// the read's step; `claimed` says whether this read holds the slot.
fn poll_claiming<T>(
    reader: &mut StreamReader,
    claimed: &mut bool,
    name: &'static str,
    cx: &mut Context<'_>,
    f: impl FnOnce(&mut StreamReader, &mut Context<'_>) -> Poll<std::result::Result<T, StreamError>>,
) -> Poll<std::result::Result<T, StreamError>> {
    if !*claimed && reader.core.st.borrow().waiter.is_some() {
        return Poll::Ready(Err(Error::invalid_state(format!(
            "{name}() called while another coroutine is already waiting for incoming data"
        ))
        .into()));
    }
    match f(reader, cx) {
        Poll::Ready(r) => {
            if std::mem::replace(claimed, false) {
                reader.core.st.borrow_mut().waiter = None;
            }
            Poll::Ready(r)
        }
        Poll::Pending => {
            if !*claimed {
                *claimed = true;
                reader.core.st.borrow_mut().waiter = Some(name);
            }
            Poll::Pending
        }
    }
}

/// A read dropped while holding the wait slot gives it back, with its waker.
#[inline]
fn release_claim(reader: &StreamReader, claimed: bool) {
    if claimed {
        let mut st = reader.core.st.borrow_mut();
        st.waiter = None;
        st.waker = None;
    }
}

/// The future of [`StreamReader::read_into`]: a [`ReadOp`] whose usual poll (the bytes fed
/// are copied out, or nothing is there and it waits) checks and takes the wait slot in the
/// same borrow of the shared state as the read itself, and returns only a byte count.
struct ReadInto<'a> {
    /// The reader.
    reader: &'a mut StreamReader,
    /// Where the bytes go.
    out: &'a mut [u8],
    /// This read holds the wait slot.
    claimed: bool,
}

impl Future for ReadInto<'_> {
    type Output = std::result::Result<usize, StreamError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = &mut *this.reader;
        {
            let mut st = r.core.st.borrow_mut();
            // Another read holding the slot is the slow path's error.
            if this.claimed || st.waiter.is_none() {
                // The usual read: the reader's own buffer is empty and everything fed fits
                // in `out`, so the fed bytes are copied straight from the protocol's buffer,
                // which keeps its capacity for the next chunk (reading stays unpaused).
                let n = st.incoming.len();
                if st.exception.is_none()
                    && !st.paused
                    && r.pos == r.buf.len()
                    && n != 0
                    && n <= this.out.len()
                {
                    this.out[..n].copy_from_slice(&st.incoming);
                    st.incoming.clear();
                    if r.pos != 0 {
                        r.buf.clear();
                        r.pos = 0;
                    }
                    st.local_len = 0;
                    if std::mem::replace(&mut this.claimed, false) {
                        st.waiter = None;
                    }
                    return Poll::Ready(Ok(n));
                }
                // The usual wait: what `park` does when nothing is buffered.
                if !this.out.is_empty() && st.must_wait(r.pos == r.buf.len()) {
                    st.set_waker(cx);
                    if !this.claimed {
                        this.claimed = true;
                        st.waiter = Some("read");
                    }
                    return Poll::Pending;
                }
            }
        }
        this.poll_slow(cx)
    }
}

impl ReadInto<'_> {
    /// Every other case, as [`ReadOp`] polls it.
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<usize, StreamError>> {
        let out = &mut *self.out;
        poll_claiming(self.reader, &mut self.claimed, "read", cx, |r, cx| {
            r.poll_read_into(cx, out)
        })
    }
}

impl Drop for ReadInto<'_> {
    // Inlined: a read that completed (the usual drop) holds no slot, and costs one test.
    #[inline]
    fn drop(&mut self) {
        release_claim(self.reader, self.claimed);
    }
}

/// The lines of a [`StreamReader`], from [`StreamReader::line_stream`].
///
/// ```
/// let mut r = loop_transport::StreamReader::new();
/// let _lines: loop_transport::Lines<'_> = r.line_stream();
/// ```
pub struct Lines<'a> {
    /// The reader.
    reader: &'a mut StreamReader,
    /// Scan offset of the line being looked for.
    offset: usize,
    /// `readline()` returned `[]`.
    done: bool,
}

impl fmt::Debug for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines")
            .field("reader", &self.reader)
            .finish()
    }
}

impl Stream for Lines<'_> {
    type Item = std::result::Result<Vec<u8>, StreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.reader.poll_readline(cx, &mut this.offset) {
            Poll::Ready(Ok(line)) => {
                this.offset = 0;
                if line.is_empty() {
                    this.done = true;
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(line)))
                }
            }
            Poll::Ready(Err(e)) => {
                this.offset = 0;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.absorb();
        if let Some(e) = this.core.exception() {
            return Poll::Ready(Err(e.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let avail = this.avail();
        if !avail.is_empty() {
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            this.advance(n);
            return Poll::Ready(Ok(n));
        }
        if this.eof() {
            return Poll::Ready(Ok(0));
        }
        this.park(cx);
        Poll::Pending
    }
}

impl AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.absorb();
        if let Some(e) = this.core.exception() {
            return Poll::Ready(Err(e.into()));
        }
        if this.pos == this.buf.len() && !this.eof() {
            this.park(cx);
            return Poll::Pending;
        }
        Poll::Ready(Ok(&this.buf[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.buf.len() - this.pos);
        this.advance(amt);
    }
}
