//! A reference model of asyncio's `StreamReader` and a driver that runs a [`StreamReader`] and
//! the model side by side, step by step.
//!
//! The model follows asyncio's algorithm one coroutine resumption at a time: a read op is
//! "polled" once when it starts and once after every event (data fed, EOF, exception set),
//! exactly when asyncio would wake the waiting coroutine. Because the reader is polled by hand
//! (no loop), even the results that depend on *when* data arrives — which `LimitOverrun`
//! message, its `consumed` count, what `read(n)` returns — are fully determined and compared
//! byte for byte.
//!
//! Shared by `tests/proptest_reader.rs` and the `stream_reader` fuzz target (which includes
//! this file by path), so it only uses the public API of `loop_transport`.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_lite::io::{AsyncBufRead, AsyncReadExt};
use loop_core::Error;
use loop_transport::{Protocol, StreamError, StreamReader, StreamReaderProtocol};

/// The text of the error the driver sets on the reader (through `connection_lost`).
pub const EXC_TEXT: &str = "reader model: connection reset by the test";

/// One read of the reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOp {
    /// `read(n)`.
    Read(usize),
    /// `read_all()` (asyncio's `read()` / `read(-1)`).
    ReadAll,
    /// `readline()`.
    Readline,
    /// `readuntil(sep)`.
    Readuntil(Vec<u8>),
    /// `readuntil_any(seps)` (asyncio's `readuntil((sep1, sep2, ...))`).
    ReaduntilAny(Vec<Vec<u8>>),
    /// `readexactly(n)`.
    Readexactly(usize),
    /// `AsyncRead::poll_read` into a buffer of this size.
    AsyncRead(usize),
    /// `AsyncBufRead::poll_fill_buf`, then `consume(n)` (capped at what was lent).
    FillBuf(usize),
}

/// One step of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `data_received(chunk)` (skipped once EOF was fed: asyncio asserts against it).
    Feed(Vec<u8>),
    /// `eof_received()`.
    Eof,
    /// `connection_lost(Some(err))`: sets the reader's exception.
    SetException,
    /// Starts a read; a read still pending is cancelled (dropped) first.
    Start(ReadOp),
    /// Cancels (drops) the pending read, if any.
    Cancel,
    /// Polls the pending read without any event (a spurious wake-up).
    Poll,
}

/// What a read ended with.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes read.
    Data(Vec<u8>),
    /// `IncompleteReadError`.
    Incomplete {
        /// The partial data.
        partial: Vec<u8>,
        /// The expected length.
        expected: Option<usize>,
    },
    /// `LimitOverrunError`.
    LimitOverrun {
        /// Its message.
        message: String,
        /// Its `consumed`.
        consumed: usize,
    },
    /// A value error (`Error::InvalidArgument`) with this message.
    Invalid(String),
    /// The exception the driver set.
    Exception,
    /// Anything else: always a mismatch.
    Unexpected(String),
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Data(d) => write!(f, "Data({:?})", String::from_utf8_lossy(d)),
            Outcome::Incomplete { partial, expected } => write!(
                f,
                "Incomplete({:?}, {expected:?})",
                String::from_utf8_lossy(partial)
            ),
            Outcome::LimitOverrun { message, consumed } => {
                write!(f, "LimitOverrun({message:?}, {consumed})")
            }
            Outcome::Invalid(m) => write!(f, "Invalid({m:?})"),
            Outcome::Exception => f.write_str("Exception"),
            Outcome::Unexpected(m) => write!(f, "Unexpected({m:?})"),
        }
    }
}

const NOT_FOUND: &str = "Separator is not found, and chunk exceed the limit";
const TOO_LONG: &str = "Separator is found, but chunk is longer than limit";
const EMPTY_SEP: &str = "Separator should be at least one-byte string";
const NO_SEP: &str = "Separator should contain at least one element";

/// The model's reader state: asyncio's `_buffer`, `_eof`, `_exception` and `_limit`.
#[derive(Clone, Debug)]
pub struct Model {
    /// Buffered bytes.
    pub buf: Vec<u8>,
    /// EOF was fed.
    pub eof: bool,
    /// An exception was set.
    pub exc: bool,
    /// The limit.
    pub limit: usize,
}

/// `bytes.find(needle, from)`.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() || needle.len() > hay.len() - from {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

impl Model {
    /// A model with an empty buffer.
    pub fn new(limit: usize) -> Model {
        Model {
            buf: Vec::new(),
            eof: false,
            exc: false,
            limit,
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    /// One pass of asyncio's `readuntil` loop body (3.13, tuple separators); `None` = waits.
    fn readuntil_pass(&mut self, seps: &[Vec<u8>], offset: &mut usize) -> Option<Outcome> {
        if seps.is_empty() {
            return Some(Outcome::Invalid(NO_SEP.into()));
        }
        // asyncio sorts the separators by length (stably): on equal ends the shorter one,
        // which starts later, is the match used for the limit check.
        let mut sorted: Vec<&[u8]> = seps.iter().map(|s| s.as_slice()).collect();
        sorted.sort_by_key(|s| s.len());
        let min_len = sorted[0].len();
        let max_len = sorted[sorted.len() - 1].len();
        if min_len == 0 {
            return Some(Outcome::Invalid(EMPTY_SEP.into()));
        }
        if self.exc {
            return Some(Outcome::Exception);
        }
        let buflen = self.buf.len();
        let mut found: Option<(usize, usize)> = None;
        if buflen >= *offset && buflen - *offset >= min_len {
            for sep in &sorted {
                if let Some(start) = find(&self.buf, sep, *offset) {
                    let end = start + sep.len();
                    if found.map_or(true, |(_, e)| end < e) {
                        found = Some((start, end));
                    }
                }
            }
            if found.is_none() {
                *offset = (buflen + 1).saturating_sub(max_len);
                if *offset > self.limit {
                    return Some(Outcome::LimitOverrun {
                        message: NOT_FOUND.into(),
                        consumed: *offset,
                    });
                }
            }
        }
        if let Some((start, end)) = found {
            if start > self.limit {
                return Some(Outcome::LimitOverrun {
                    message: TOO_LONG.into(),
                    consumed: start,
                });
            }
            return Some(Outcome::Data(self.take(end)));
        }
        if self.eof {
            let all = self.buf.len();
            return Some(Outcome::Incomplete {
                partial: self.take(all),
                expected: None,
            });
        }
        None
    }
}

/// A read in progress in the model, with the state asyncio keeps across resumptions.
#[derive(Clone, Debug)]
pub struct ModelRead {
    /// The op.
    pub op: ReadOp,
    /// `readuntil`'s scan offset.
    offset: usize,
    /// `read()`'s blocks so far.
    acc: Vec<u8>,
}

impl ModelRead {
    /// A read that has not run yet.
    pub fn new(op: ReadOp) -> ModelRead {
        ModelRead {
            op,
            offset: 0,
            acc: Vec::new(),
        }
    }

    /// Runs the read until it completes or must wait (`None`).
    pub fn poll(&mut self, m: &mut Model) -> Option<Outcome> {
        match &self.op {
            ReadOp::Read(n) | ReadOp::AsyncRead(n) => {
                if m.exc {
                    return Some(Outcome::Exception);
                }
                if *n == 0 {
                    return Some(Outcome::Data(Vec::new()));
                }
                if m.buf.is_empty() {
                    return m.eof.then(|| Outcome::Data(Vec::new()));
                }
                let k = (*n).min(m.buf.len());
                Some(Outcome::Data(m.take(k)))
            }
            ReadOp::ReadAll => {
                if m.exc {
                    return Some(Outcome::Exception);
                }
                self.acc.append(&mut m.buf);
                m.eof.then(|| Outcome::Data(std::mem::take(&mut self.acc)))
            }
            ReadOp::Readexactly(n) => {
                if m.exc {
                    return Some(Outcome::Exception);
                }
                if *n == 0 {
                    return Some(Outcome::Data(Vec::new()));
                }
                if m.buf.len() >= *n {
                    return Some(Outcome::Data(m.take(*n)));
                }
                if m.eof {
                    let all = m.buf.len();
                    return Some(Outcome::Incomplete {
                        partial: m.take(all),
                        expected: Some(*n),
                    });
                }
                None
            }
            ReadOp::Readuntil(sep) => m.readuntil_pass(std::slice::from_ref(sep), &mut self.offset),
            ReadOp::ReaduntilAny(seps) => m.readuntil_pass(seps, &mut self.offset),
            ReadOp::Readline => {
                let r = m.readuntil_pass(&[b"\n".to_vec()], &mut self.offset)?;
                Some(match r {
                    Outcome::Incomplete { partial, .. } => Outcome::Data(partial),
                    Outcome::LimitOverrun { message, consumed } => {
                        if m.buf.get(consumed) == Some(&b'\n') {
                            m.buf.drain(..consumed + 1);
                        } else {
                            m.buf.clear();
                        }
                        Outcome::Invalid(message)
                    }
                    other => other,
                })
            }
            ReadOp::FillBuf(n) => {
                if m.exc {
                    return Some(Outcome::Exception);
                }
                if m.buf.is_empty() && !m.eof {
                    return None;
                }
                let lent = m.buf.clone();
                m.buf.drain(..(*n).min(lent.len()));
                Some(Outcome::Data(lent))
            }
        }
    }
}

fn is_model_error(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::ConnectionReset && io.to_string() == EXC_TEXT)
}

fn outcome(r: Result<Vec<u8>, StreamError>) -> Outcome {
    match r {
        Ok(d) => Outcome::Data(d),
        Err(StreamError::Incomplete { partial, expected }) => {
            Outcome::Incomplete { partial, expected }
        }
        Err(StreamError::LimitOverrun { message, consumed }) => Outcome::LimitOverrun {
            message: message.to_string(),
            consumed,
        },
        Err(StreamError::Other(Error::InvalidArgument(m))) => Outcome::Invalid(m),
        Err(StreamError::Other(e)) if is_model_error(&e) => Outcome::Exception,
        Err(e) => Outcome::Unexpected(format!("{e:?}")),
    }
}

fn io_outcome(r: io::Result<Vec<u8>>) -> Outcome {
    match r {
        Ok(d) => Outcome::Data(d),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset && e.to_string() == EXC_TEXT => {
            Outcome::Exception
        }
        Err(e) => Outcome::Unexpected(format!("{e:?}")),
    }
}

type ReadFuture = Pin<Box<dyn Future<Output = Outcome>>>;

/// Runs one read on `r` to completion and says how it ended.
pub async fn perform(r: &mut StreamReader, op: ReadOp) -> Outcome {
    match op {
        ReadOp::Read(n) => outcome(r.read(n).await),
        ReadOp::ReadAll => outcome(r.read_all().await),
        ReadOp::Readline => outcome(r.readline().await),
        ReadOp::Readuntil(sep) => outcome(r.readuntil(&sep).await),
        ReadOp::ReaduntilAny(seps) => {
            let seps: Vec<&[u8]> = seps.iter().map(|s| s.as_slice()).collect();
            outcome(r.readuntil_any(&seps).await)
        }
        ReadOp::Readexactly(n) => outcome(r.readexactly(n).await),
        ReadOp::AsyncRead(n) => {
            let mut buf = vec![0u8; n];
            io_outcome(AsyncReadExt::read(r, &mut buf).await.map(|k| {
                buf.truncate(k);
                buf
            }))
        }
        ReadOp::FillBuf(n) => io_outcome(
            futures_lite::future::poll_fn(|cx| {
                let lent = match Pin::new(&mut *r).poll_fill_buf(cx) {
                    Poll::Ready(Ok(s)) => s.to_vec(),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                };
                Pin::new(&mut *r).consume(n.min(lent.len()));
                Poll::Ready(Ok(lent))
            })
            .await,
        ),
    }
}

/// The future of one read on the shared reader (the `RefCell` borrow is held while it runs,
/// and released when it completes or is dropped). Holding it across the await is the point:
/// the driver only touches the reader through its protocols while a read is pending, so a
/// second borrow would be a driver bug and panics loudly.
#[allow(clippy::await_holding_refcell_ref)]
fn start_read(reader: &Rc<RefCell<StreamReader>>, op: &ReadOp) -> ReadFuture {
    let reader = reader.clone();
    let op = op.clone();
    Box::pin(async move {
        let mut r = reader.borrow_mut();
        perform(&mut r, op).await
    })
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs a [`StreamReader`] and the [`Model`] through the same steps and compares them.
pub struct Driver {
    /// The reader (borrowed by the pending read while there is one).
    reader: Rc<RefCell<StreamReader>>,
    /// Feeds data and EOF.
    feeder: StreamReaderProtocol,
    /// Sets the exception (`connection_lost(Some(..))` detaches it from the reader).
    breaker: StreamReaderProtocol,
    /// The model.
    pub model: Model,
    /// The pending read: the reader's future and the model's state.
    pending: Option<(ReadFuture, ModelRead)>,
    /// Counts wake-ups of the pending read.
    wakes: Arc<CountingWaker>,
    /// Every completed read, with its outcome (for failure messages and callers' checks).
    pub done: Vec<(ReadOp, Outcome)>,
}

impl Driver {
    /// A driver around a fresh reader with this limit.
    pub fn new(limit: usize) -> Driver {
        let reader = StreamReader::with_limit(limit).expect("a positive limit");
        let feeder = StreamReaderProtocol::new(Some(&reader));
        let breaker = StreamReaderProtocol::new(Some(&reader));
        Driver {
            reader: Rc::new(RefCell::new(reader)),
            feeder,
            breaker,
            model: Model::new(limit),
            pending: None,
            wakes: Arc::default(),
            done: Vec::new(),
        }
    }

    /// True while a read waits.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn wake_count(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }

    /// Polls the pending read (reader and model) once and compares.
    fn poll_pending(&mut self) -> Result<(), String> {
        let Some((fut, mread)) = self.pending.as_mut() else {
            return Ok(());
        };
        let waker = Waker::from(self.wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let got = match fut.as_mut().poll(&mut cx) {
            Poll::Ready(o) => Some(o),
            Poll::Pending => None,
        };
        let want = mread.poll(&mut self.model);
        if got != want {
            return Err(format!(
                "{:?}: reader gave {got:?}, asyncio's model {want:?} (model buffer {:?}, eof {})",
                mread.op,
                String::from_utf8_lossy(&self.model.buf),
                self.model.eof
            ));
        }
        if let Some(o) = got {
            let (_, mread) = self.pending.take().expect("pending");
            self.done.push((mread.op, o));
            self.check_idle()?;
        }
        Ok(())
    }

    /// With no read pending: the reader's visible state equals the model's.
    fn check_idle(&self) -> Result<(), String> {
        let r = self.reader.borrow();
        let m = &self.model;
        if r.buffered_len() != m.buf.len() {
            return Err(format!(
                "buffered_len {} but the model holds {} bytes {:?}",
                r.buffered_len(),
                m.buf.len(),
                String::from_utf8_lossy(&m.buf)
            ));
        }
        if r.at_eof() != (m.eof && m.buf.is_empty()) {
            return Err(format!("at_eof() is {}", r.at_eof()));
        }
        if r.exception().is_some() != m.exc {
            return Err(format!("exception() is {:?}", r.exception()));
        }
        Ok(())
    }

    /// An event the pending read waits for happened: it must have been woken, then polled.
    fn after_event(&mut self, before: usize) -> Result<(), String> {
        if self.pending.is_some() {
            if self.wake_count() == before {
                return Err(format!(
                    "{:?} was not woken by the event",
                    self.pending.as_ref().map(|p| &p.1.op)
                ));
            }
            self.poll_pending()?;
        }
        Ok(())
    }

    /// Runs one step.
    ///
    /// # Errors
    ///
    /// A description of the first difference between the reader and the model.
    pub fn step(&mut self, s: &Step) -> Result<(), String> {
        let before = self.wake_count();
        match s {
            Step::Feed(data) => {
                if self.model.eof {
                    return Ok(());
                }
                self.feeder.data_received(data);
                self.model.buf.extend_from_slice(data);
                if data.is_empty() {
                    // asyncio: feeding nothing does not wake the reader.
                    return if self.pending.is_none() {
                        self.check_idle()
                    } else {
                        Ok(())
                    };
                }
                self.after_event(before)?;
            }
            Step::Eof => {
                self.feeder.eof_received();
                self.model.eof = true;
                self.after_event(before)?;
            }
            Step::SetException => {
                if self.model.exc {
                    return Ok(());
                }
                self.breaker.connection_lost(Some(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    EXC_TEXT,
                )));
                self.model.exc = true;
                self.after_event(before)?;
            }
            Step::Start(op) => {
                self.pending = None;
                let fut = start_read(&self.reader, op);
                self.pending = Some((fut, ModelRead::new(op.clone())));
                self.poll_pending()?;
            }
            Step::Cancel => {
                if self.pending.take().is_some() {
                    self.check_idle()?;
                }
            }
            Step::Poll => self.poll_pending()?,
        }
        if self.pending.is_none() {
            self.check_idle()?;
        }
        Ok(())
    }

    /// Runs every step, then [`finish`](Driver::finish).
    ///
    /// # Errors
    ///
    /// As [`step`](Driver::step), with the step's index.
    pub fn run(&mut self, steps: &[Step]) -> Result<(), String> {
        for (i, s) in steps.iter().enumerate() {
            self.step(s)
                .map_err(|e| format!("step {i} {s:?}: {e}\n  completed reads: {:?}", self.done))?;
        }
        self.finish()
            .map_err(|e| format!("finish: {e}\n  completed reads: {:?}", self.done))
    }

    /// Feeds EOF (the pending read must then complete) and reads the rest with `read_all`.
    ///
    /// # Errors
    ///
    /// As [`step`](Driver::step); also if a read is still pending after EOF.
    pub fn finish(&mut self) -> Result<(), String> {
        if !self.model.eof {
            self.step(&Step::Eof)?;
        }
        if let Some((_, m)) = &self.pending {
            return Err(format!("{:?} still pending after EOF", m.op));
        }
        self.step(&Step::Start(ReadOp::ReadAll))?;
        if self.pending.is_some() {
            return Err("read_all() pending after EOF".into());
        }
        let r = self.reader.borrow();
        if !self.model.exc && !r.at_eof() {
            return Err("not at EOF after read_all()".into());
        }
        Ok(())
    }
}
