//! [`StreamWriter`] and [`StreamReaderProtocol`], the protocol that joins a transport to a
//! reader and a writer (they share the write-side flow state).

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::io::AsyncWrite;
use loop_core::{Error, EventLoop, Result};

use super::reader::{ReaderCore, StreamReader};
use crate::addr::Addr;
use crate::stream::{Extra, ExtraValue, Protocol, SocketRef, Transport, TransportOptions};

/// Write-side state shared by the protocol and the writer.
#[derive(Default)]
struct FlowState {
    /// `pause_writing` was received without `resume_writing`.
    paused: bool,
    /// `connection_lost` ran.
    lost: bool,
    /// The error it ran with.
    lost_exc: Option<Error>,
    /// Tasks in `drain()` / `poll_write`.
    drain_wakers: Vec<Waker>,
    /// Tasks in `wait_closed()`.
    closed_wakers: Vec<Waker>,
}

/// Shared write-side state.
#[derive(Default)]
pub(crate) struct FlowCore {
    /// The state.
    st: RefCell<FlowState>,
}

impl FlowCore {
    fn pause(&self) {
        self.st.borrow_mut().paused = true;
    }

    fn resume(&self) {
        let wakers = {
            let mut st = self.st.borrow_mut();
            st.paused = false;
            std::mem::take(&mut st.drain_wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    fn lost(&self, exc: Option<Error>) {
        let wakers = {
            let mut st = self.st.borrow_mut();
            st.lost = true;
            st.lost_exc = exc;
            let mut w = std::mem::take(&mut st.drain_wakers);
            w.append(&mut st.closed_wakers);
            w
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    fn register(list: &mut Vec<Waker>, cx: &Context<'_>) {
        if !list.iter().any(|w| w.will_wake(cx.waker())) {
            list.push(cx.waker().clone());
        }
    }

    /// Writing is neither paused nor over: a drain returns at once.
    #[inline]
    fn flowing(&self) -> bool {
        let st = self.st.borrow();
        !st.lost && !st.paused
    }

    /// asyncio's `_drain_helper`.
    #[inline]
    fn poll_drain(&self, cx: &mut Context<'_>, waiting: &mut bool) -> Poll<Result<()>> {
        let mut st = self.st.borrow_mut();
        if st.lost {
            if std::mem::replace(waiting, false) {
                return Poll::Ready(match &st.lost_exc {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                });
            }
            return Poll::Ready(Err(connection_lost_error()));
        }
        if !st.paused {
            return Poll::Ready(Ok(()));
        }
        *waiting = true;
        FlowCore::register(&mut st.drain_wakers, cx);
        Poll::Pending
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut st = self.st.borrow_mut();
        if st.lost {
            return Poll::Ready(match &st.lost_exc {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            });
        }
        FlowCore::register(&mut st.closed_wakers, cx);
        Poll::Pending
    }
}

fn connection_lost_error() -> Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "Connection lost").into()
}

/// The protocol between a transport and a [`StreamReader`] / [`StreamWriter`]: asyncio's
/// `StreamReaderProtocol`.
///
/// It feeds received data and EOF to the reader, keeps the connection half-open on EOF
/// (`eof_received` answers true, STREAM-19), records write flow control for
/// [`StreamWriter::drain`], and on `connection_lost` feeds EOF to the reader (or sets the
/// error as its exception) and completes [`StreamWriter::wait_closed`].
///
/// ```
/// use loop_transport::{StreamReader, StreamReaderProtocol, StreamWriter, Transport, TransportOptions};
///
/// let lp = loop_core::EventLoop::new().unwrap();
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let reader = StreamReader::new();
/// let protocol = StreamReaderProtocol::new(Some(&reader));
/// let transport = Transport::new(&lp, a, protocol, TransportOptions::socket()).unwrap();
/// reader.set_transport(transport.clone());
/// let writer = StreamWriter::new(transport).unwrap();
/// writer.close();
/// lp.run_until_complete(async move { writer.wait_closed().await }).unwrap().unwrap();
/// ```
pub struct StreamReaderProtocol {
    /// The reader fed.
    reader: Option<Rc<ReaderCore>>,
    /// Write-side state.
    flow: Rc<FlowCore>,
    /// Reader and callback handed over in `connection_made` (servers).
    on_connect: Option<(StreamReader, ClientConnected)>,
}

/// The callback of [`StreamReaderProtocol::with_client_connected`].
type ClientConnected = Box<dyn FnOnce(StreamReader, StreamWriter)>;

impl StreamReaderProtocol {
    /// A protocol feeding `reader` (`None` for a write-only stream, e.g. a subprocess' stdin).
    ///
    /// ```
    /// let _p = loop_transport::StreamReaderProtocol::new(None);
    /// ```
    pub fn new(reader: Option<&StreamReader>) -> StreamReaderProtocol {
        StreamReaderProtocol {
            reader: reader.map(|r| r.core.clone()),
            flow: Rc::default(),
            on_connect: None,
        }
    }

    /// A protocol that, in `connection_made`, builds the [`StreamWriter`] and hands the reader
    /// and writer to `cb` (what `start_server` needs; the callback typically spawns a task).
    ///
    /// ```
    /// let reader = loop_transport::StreamReader::new();
    /// let _p = loop_transport::StreamReaderProtocol::with_client_connected(reader, |_r, w| w.close());
    /// ```
    pub fn with_client_connected(
        reader: StreamReader,
        cb: impl FnOnce(StreamReader, StreamWriter) + 'static,
    ) -> StreamReaderProtocol {
        StreamReaderProtocol {
            reader: Some(reader.core.clone()),
            flow: Rc::default(),
            on_connect: Some((reader, Box::new(cb))),
        }
    }
}

impl fmt::Debug for StreamReaderProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReaderProtocol")
            .field("reader", &self.reader.is_some())
            .finish_non_exhaustive()
    }
}

impl Protocol for StreamReaderProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        if let Some(r) = &self.reader {
            r.st.borrow_mut().transport = Some(transport.clone());
        }
        if let Some((reader, cb)) = self.on_connect.take() {
            let writer =
                StreamWriter::from_parts(transport.clone(), self.flow.clone(), self.reader.clone());
            cb(reader, writer);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(r) = &self.reader {
            r.feed_data(data);
        }
    }

    fn eof_received(&mut self) -> bool {
        if let Some(r) = &self.reader {
            r.feed_eof();
        }
        true
    }

    fn pause_writing(&mut self) {
        self.flow.pause();
    }

    fn resume_writing(&mut self) {
        self.flow.resume();
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let err = exc.map(Error::from);
        if let Some(r) = self.reader.take() {
            match &err {
                None => r.feed_eof(),
                Some(e) => r.set_exception(e.clone()),
            }
            r.st.borrow_mut().transport = None;
        }
        self.on_connect = None;
        self.flow.lost(err);
    }
}

/// Writes to a stream: asyncio's `StreamWriter`.
///
/// Methods delegate to the [`Transport`] (STREAM-22). [`drain`](StreamWriter::drain) applies
/// write flow control. Dropping a writer whose transport is still open closes the transport
/// (with a debug log; asyncio's "unclosed StreamWriter" warning, STREAM-26).
///
/// It implements `AsyncWrite`: `poll_write` waits while the transport's buffer is above its
/// high-water mark, `poll_flush` until the buffer is empty, and `poll_close` flushes and then
/// half-closes (`write_eof`) a socket or closes a pipe.
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// let lp = loop_core::EventLoop::new().unwrap();
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let (_reader, writer) = loop_transport::open_stream(&lp, a, loop_transport::DEFAULT_LIMIT, loop_transport::TransportOptions::socket()).unwrap();
/// lp.run_until_complete(async move {
///     writer.write(b"hello")?;
///     writer.drain().await?;
///     writer.close();
///     writer.wait_closed().await
/// }).unwrap().unwrap();
/// let mut got = Vec::new();
/// b.read_to_end(&mut got).unwrap();
/// assert_eq!(got, b"hello");
/// ```
pub struct StreamWriter {
    /// The transport.
    transport: Transport,
    /// Flow-control state shared with the protocol.
    flow: Rc<FlowCore>,
    /// The paired reader, for `drain()`.
    reader: Option<Rc<ReaderCore>>,
}

impl StreamWriter {
    /// A writer for a transport whose protocol is a [`StreamReaderProtocol`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the protocol is something else (or one of its methods is
    /// running right now).
    ///
    /// ```
    /// use loop_transport::{Protocol, StreamReaderProtocol, StreamWriter, Transport, TransportOptions};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, StreamReaderProtocol::new(None), TransportOptions::socket()).unwrap();
    /// let w = StreamWriter::new(t).unwrap();
    ///
    /// struct Other;
    /// impl Protocol for Other {}
    /// let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t2 = Transport::new(&lp, c, Other, TransportOptions::socket()).unwrap();
    /// assert!(StreamWriter::new(t2.clone()).is_err());
    /// # w.close(); t2.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn new(transport: Transport) -> Result<StreamWriter> {
        let parts = transport
            .with_protocol(|p: &mut StreamReaderProtocol| (p.flow.clone(), p.reader.clone()));
        match parts {
            Some((flow, reader)) => Ok(StreamWriter::from_parts(transport, flow, reader)),
            None => Err(Error::invalid_argument(
                "StreamWriter::new needs a transport whose protocol is a StreamReaderProtocol",
            )),
        }
    }

    pub(crate) fn from_parts(
        transport: Transport,
        flow: Rc<FlowCore>,
        reader: Option<Rc<ReaderCore>>,
    ) -> StreamWriter {
        StreamWriter {
            transport,
            flow,
            reader,
        }
    }

    /// A protocol sharing this writer's reader and flow-control state, for a layered
    /// transport that takes the connection over (TLS's `start_tls`): installed on the new
    /// transport, it feeds the same reader and wakes the same `drain()` callers.
    #[doc(hidden)]
    pub fn protocol_for_upgrade(&self) -> StreamReaderProtocol {
        StreamReaderProtocol {
            reader: self.reader.clone(),
            flow: self.flow.clone(),
            on_connect: None,
        }
    }

    /// Makes `transport` the writer's and its reader's transport (after `start_tls`).
    #[doc(hidden)]
    pub fn replace_transport(&mut self, transport: Transport) {
        if let Some(r) = &self.reader {
            r.st.borrow_mut().transport = Some(transport.clone());
        }
        self.transport = transport;
    }

    /// The transport.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// assert!(w.transport().is_reading());
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// [`Transport::write`].
    ///
    /// # Errors
    ///
    /// As [`Transport::write`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// w.write(b"data").unwrap();
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    #[inline]
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.transport.write(data)
    }

    /// [`Transport::writelines`].
    ///
    /// # Errors
    ///
    /// As [`Transport::write`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// w.writelines(["a", "b"]).unwrap();
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn writelines<I, B>(&self, bufs: I) -> Result<()>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        self.transport.writelines(bufs)
    }

    /// [`Transport::write_eof`].
    ///
    /// # Errors
    ///
    /// As [`Transport::write_eof`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// w.write_eof().unwrap();
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn write_eof(&self) -> Result<()> {
        self.transport.write_eof()
    }

    /// [`Transport::can_write_eof`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// assert!(w.can_write_eof());
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn can_write_eof(&self) -> bool {
        self.transport.can_write_eof()
    }

    /// [`Transport::close`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// w.close();
    /// assert!(w.is_closing());
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn close(&self) {
        self.transport.close()
    }

    /// [`Transport::is_closing`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// assert!(!w.is_closing());
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }

    /// [`Transport::get_extra_info`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// assert!(w.get_extra_info(loop_transport::Extra::Sockname).is_some());
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_extra_info(&self, key: Extra) -> Option<ExtraValue> {
        self.transport.get_extra_info(key)
    }

    /// [`Transport::peername`]: the peer address of a socket stream.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// assert_eq!(w.peername(), Some(loop_transport::Addr::Unnamed));
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn peername(&self) -> Option<Addr> {
        self.transport.peername()
    }

    /// [`Transport::sockname`]: the local address of a socket stream.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// assert_eq!(w.sockname(), Some(loop_transport::Addr::Unnamed));
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn sockname(&self) -> Option<Addr> {
        self.transport.sockname()
    }

    /// [`Transport::socket`]: the socket (or pipe) fd, kept open while the [`SocketRef`] lives.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// assert!(w.socket().is_some());
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn socket(&self) -> Option<SocketRef> {
        self.transport.socket()
    }

    /// Waits until it is appropriate to write more (STREAM-23): returns at once unless the
    /// transport paused writing, then until `resume_writing`; any number of tasks may drain
    /// at once.
    ///
    /// # Errors
    ///
    /// The paired reader's exception, if set (for instance the error the connection was lost
    /// with: `EPIPE`, `ECONNRESET`, STREAM-24); `ConnectionReset` ("Connection lost") once the
    /// connection is lost; the error the connection was lost with while waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// let w = std::rc::Rc::new(w);
    /// let w2 = w.clone();
    /// lp.run_until_complete(async move { w2.write(b"x")?; w2.drain().await }).unwrap().unwrap();
    /// # w.close(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub async fn drain(&self) -> Result<()> {
        if let Some(r) = &self.reader {
            if let Some(e) = r.exception() {
                return Err(e);
            }
        }
        if self.transport.is_closing() {
            // Let a scheduled connection_lost run first.
            loop_core::yield_now().await;
        } else if self.flow.flowing() {
            // The usual case, what the first poll below returns: nothing to wait for.
            return Ok(());
        }
        let mut waiting = false;
        futures_lite::future::poll_fn(|cx| self.flow.poll_drain(cx, &mut waiting)).await
    }

    /// Waits until the connection is closed (`connection_lost` ran), STREAM-25.
    ///
    /// # Errors
    ///
    /// The error the connection was lost with, if any.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
    /// w.close();
    /// lp.run_until_complete(async move { w.wait_closed().await }).unwrap().unwrap();
    /// ```
    pub async fn wait_closed(&self) -> Result<()> {
        futures_lite::future::poll_fn(|cx| self.flow.poll_closed(cx)).await
    }

    fn lost_error(&self) -> Option<io::Error> {
        let st = self.flow.st.borrow();
        if st.lost {
            return Some(match &st.lost_exc {
                Some(e) => e.clone().into(),
                None => io::Error::new(io::ErrorKind::BrokenPipe, "the stream is closed"),
            });
        }
        None
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<StreamWriter transport={:?}>", self.transport)
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.transport.is_closing() {
            return;
        }
        match self.transport.get_loop() {
            Some(lp) if !lp.is_closed() => {
                tracing::debug!("unclosed {self:?}; closing its transport")
            }
            _ => tracing::debug!("{self:?} dropped: loop is closed"),
        }
        self.transport.close();
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.lost_error() {
            return Poll::Ready(Err(e));
        }
        if this.transport.is_closing() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream is closing",
            )));
        }
        {
            let mut st = this.flow.st.borrow_mut();
            if st.paused {
                FlowCore::register(&mut st.drain_wakers, cx);
                return Poll::Pending;
            }
        }
        this.transport.write(buf).map_err(io::Error::from)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.transport.poll_flushed(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.transport.poll_flushed(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if self.transport.can_write_eof() {
            self.transport.write_eof().map_err(io::Error::from)?;
        } else {
            self.transport.close();
        }
        Poll::Ready(Ok(()))
    }
}

/// Makes a reader and a writer over a connected fd (a socket, or a bidirectional pipe-like
/// fd with [`FdKind::Socket`](crate::FdKind::Socket) semantics): the building block of
/// `open_connection`, `start_server` and `open_unix_connection`.
///
/// The transport is created at once; `connection_made` runs on the next loop iteration.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a zero limit; the errors of [`Transport::new`].
///
/// ```
/// use std::io::Write;
/// let lp = loop_core::EventLoop::new().unwrap();
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let (mut reader, writer) = loop_transport::open_stream(&lp, a, 1024, loop_transport::TransportOptions::socket()).unwrap();
/// b.write_all(b"ping\n").unwrap();
/// let line = lp.run_until_complete(async move { reader.readline().await }).unwrap().unwrap();
/// assert_eq!(line, b"ping\n");
/// writer.close();
/// # lp.run_until_complete(async {}).unwrap();
/// ```
pub fn open_stream(
    lp: &EventLoop,
    fd: impl Into<OwnedFd>,
    limit: usize,
    options: TransportOptions,
) -> Result<(StreamReader, StreamWriter)> {
    let reader = StreamReader::with_limit(limit)?;
    let protocol = StreamReaderProtocol::new(Some(&reader));
    let flow = protocol.flow.clone();
    let transport = Transport::new(lp, fd, protocol, options)?;
    reader.set_transport(transport.clone());
    let writer = StreamWriter::from_parts(transport, flow, Some(reader.core.clone()));
    Ok((reader, writer))
}

/// Makes a reader over a read-only fd (a subprocess' stdout, a read pipe); the transport
/// closes itself at EOF and after the reader is done with it.
///
/// # Errors
///
/// As [`open_stream`].
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let (r, w) = rustix::pipe::pipe().unwrap();
/// let mut reader = loop_transport::open_read_stream(&lp, r, 1024, loop_transport::TransportOptions::read_pipe()).unwrap();
/// rustix::io::write(&w, b"from the pipe").unwrap();
/// drop(w);
/// let all = lp.run_until_complete(async move { reader.read_all().await }).unwrap().unwrap();
/// assert_eq!(all, b"from the pipe");
/// ```
pub fn open_read_stream(
    lp: &EventLoop,
    fd: impl Into<OwnedFd>,
    limit: usize,
    options: TransportOptions,
) -> Result<StreamReader> {
    let reader = StreamReader::with_limit(limit)?;
    let transport = Transport::new(lp, fd, StreamReaderProtocol::new(Some(&reader)), options)?;
    reader.set_transport(transport);
    Ok(reader)
}

/// Makes a writer over a write-only fd (a subprocess' stdin, a write pipe).
///
/// # Errors
///
/// The errors of [`Transport::new`].
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let (r, w) = rustix::pipe::pipe().unwrap();
/// let writer = loop_transport::open_write_stream(&lp, w, loop_transport::TransportOptions::write_pipe()).unwrap();
/// lp.run_until_complete(async move {
///     writer.write(b"to the pipe")?;
///     writer.close();
///     writer.wait_closed().await
/// }).unwrap().unwrap();
/// let mut buf = [0u8; 32];
/// let n = rustix::io::read(&r, &mut buf).unwrap();
/// assert_eq!(&buf[..n], b"to the pipe");
/// ```
pub fn open_write_stream(
    lp: &EventLoop,
    fd: impl Into<OwnedFd>,
    options: TransportOptions,
) -> Result<StreamWriter> {
    let protocol = StreamReaderProtocol::new(None);
    let flow = protocol.flow.clone();
    let transport = Transport::new(lp, fd, protocol, options)?;
    Ok(StreamWriter::from_parts(transport, flow, None))
}
