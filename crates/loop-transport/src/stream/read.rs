//! The fd stream transport's read path: edge-triggered bursts until a short read, plain and
//! buffered protocols, EOF, read errors, pause / resume.

use std::io;

use loop_core::{Error, Exception};
use rustix::io::Errno;

use super::options::MAX_READS_PER_EVENT;
use super::{Extra, ExtraValue, FdDriver, FdKind, StreamProtocol};
use crate::engine::hooks::Readiness;
use crate::engine::{exception_to_io, CallError, Core, Policy};

/// What one read attempt did.
enum ReadStep {
    /// Data delivered; the read did not fill the buffer.
    Short,
    /// Data delivered; the read filled the whole buffer (more may be waiting).
    Full,
    /// Interrupted or the protocol changed kind: try again.
    Again,
    /// Nothing more to do in this burst.
    Done,
}

impl ReadStep {
    /// `n` bytes were read into a buffer of `len`.
    #[inline(always)]
    fn read(n: usize, len: usize) -> ReadStep {
        if n == len {
            ReadStep::Full
        } else {
            ReadStep::Short
        }
    }
}

/// What a buffered read did.
enum BufRead {
    /// The protocol is not a buffered protocol (any more).
    NotBuffered,
    /// `get_buffer` returned an empty slice.
    Empty,
    /// The read result and the buffer length.
    Read(rustix::io::Result<usize>, usize),
}

impl Core<FdDriver> {
    /// Reading may happen now.
    #[inline]
    fn can_read(&self) -> bool {
        let st = self.driver.st.borrow();
        self.lifecycle().is_open() && !st.read_paused && !st.read_eof
    }

    /// Reads until a short read, `WouldBlock`, EOF or an error; with `drain`, past short reads
    /// too (the peer hung up, or reading was just resumed).
    pub(super) fn read_ready(&self, drain: bool) {
        let mut full_reads = 0;
        loop {
            if !self.can_read() {
                return;
            }
            let buffered = self.cell().holds_buffered();
            let step = if buffered {
                self.read_buffered()
            } else {
                self.read_plain()
            };
            match step {
                ReadStep::Short if !drain => return,
                ReadStep::Short | ReadStep::Full => {
                    full_reads += 1;
                    if full_reads >= MAX_READS_PER_EVENT {
                        // Let other work run; continue in a later iteration.
                        let d = &self.driver;
                        d.drain_next.set(d.drain_next.get() || drain);
                        self.schedule_ready(Readiness::READABLE);
                        return;
                    }
                }
                ReadStep::Again => {}
                ReadStep::Done => return,
            }
        }
    }

    fn read_plain(&self) -> ReadStep {
        let max = self.driver.max_read;
        self.runtime().with_read_buf(max, |buf| {
            let res = {
                let io = self.driver.io.borrow();
                match io.fd() {
                    Some(fd) => rustix::io::read(fd, &mut *buf),
                    None => Err(Errno::BADF),
                }
            };
            match res {
                Ok(0) => {
                    self.on_eof();
                    ReadStep::Done
                }
                Ok(n) => {
                    let data = &buf[..n];
                    match self.call_quiet("data_received", Policy::Fatal, |p| match p {
                        StreamProtocol::Plain(p) => {
                            p.data_received(data);
                            true
                        }
                        StreamProtocol::Buffered(_) => false,
                    }) {
                        Some(true) | None => {}
                        Some(false) => {
                            // The protocol became a buffered one between the check and the
                            // read: hand the bytes over through its buffers.
                            self.feed_buffered(data);
                        }
                    }
                    ReadStep::read(n, max)
                }
                Err(Errno::AGAIN) => ReadStep::Done,
                Err(Errno::INTR) => ReadStep::Again,
                Err(e) => {
                    self.fatal_os(e.into(), "read");
                    ReadStep::Done
                }
            }
        })
    }

    /// Copies already-read bytes into a buffered protocol (rare: protocol switched mid-read).
    fn feed_buffered(&self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = match self.call("get_buffer", Policy::Fatal, |p| match p {
                StreamProtocol::Buffered(b) => {
                    let dst = b.get_buffer(data.len());
                    let n = dst.len().min(data.len());
                    dst[..n].copy_from_slice(&data[..n]);
                    n
                }
                StreamProtocol::Plain(p) => {
                    p.data_received(data);
                    data.len()
                }
            }) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                self.empty_buffer_error();
                return;
            }
            let r = self.call("buffer_updated", Policy::Fatal, |p| {
                if let StreamProtocol::Buffered(b) = p {
                    b.buffer_updated(n)
                }
            });
            if r.is_err() {
                return;
            }
            data = &data[n..];
        }
    }

    fn read_buffered(&self) -> ReadStep {
        let max = self.driver.max_read;
        let r = self.call("get_buffer", Policy::Fatal, |p| {
            let StreamProtocol::Buffered(b) = p else {
                return BufRead::NotBuffered;
            };
            let dst = b.get_buffer(max);
            if dst.is_empty() {
                return BufRead::Empty;
            }
            let len = dst.len().min(max);
            let io = self.driver.io.borrow();
            let res = match io.fd() {
                Some(fd) => rustix::io::read(fd, &mut dst[..len]),
                None => Err(Errno::BADF),
            };
            BufRead::Read(res, len)
        });
        match r {
            Err(_) => ReadStep::Done,
            Ok(BufRead::NotBuffered) => ReadStep::Again,
            Ok(BufRead::Empty) => {
                self.empty_buffer_error();
                ReadStep::Done
            }
            Ok(BufRead::Read(Ok(0), _)) => {
                self.on_eof();
                ReadStep::Done
            }
            Ok(BufRead::Read(Ok(n), len)) => {
                let r = self.call("buffer_updated", Policy::Fatal, |p| {
                    if let StreamProtocol::Buffered(b) = p {
                        b.buffer_updated(n)
                    }
                });
                match r {
                    Ok(()) => ReadStep::read(n, len),
                    Err(_) => ReadStep::Done,
                }
            }
            Ok(BufRead::Read(Err(Errno::AGAIN), _)) => ReadStep::Done,
            Ok(BufRead::Read(Err(Errno::INTR), _)) => ReadStep::Again,
            Ok(BufRead::Read(Err(e), _)) => {
                self.fatal_os(e.into(), "read");
                ReadStep::Done
            }
        }
    }

    /// NET-67: `get_buffer()` returned an empty buffer.
    fn empty_buffer_error(&self) {
        let exc = Exception::new(Error::invalid_state(
            "get_buffer() returned an empty buffer",
        ));
        let name = self.protocol_name().unwrap_or("?");
        self.report(
            "Fatal error: protocol.get_buffer() call failed.".into(),
            &exc,
            name,
        );
        self.force_close(Some(exception_to_io(&exc)));
    }

    /// The peer's EOF was read (NET-52, PIPE-04).
    fn on_eof(&self) {
        let pipe = self.driver.kind == FdKind::ReadPipe;
        self.driver.st.borrow_mut().read_eof = true;
        if pipe {
            self.mark_closing();
        }
        self.update_interest();
        let keep_open = self.call("eof_received", Policy::Fatal, |p| p.eof_received());
        match keep_open {
            Err(CallError::Panicked(_)) => {}
            _ if pipe => self.force_close(None),
            Ok(true) => {}
            Ok(false) | Err(CallError::Absent) => self.close(),
        }
    }

    /// An OS error closes the connection quietly (NET-54, NET-58): debug log, no report.
    ///
    /// The exception: a read pipe reports read errors other than `EIO` (a pty whose other side
    /// closed) as "Fatal read error on pipe transport" (PIPE-05).
    pub(super) fn fatal_os(&self, e: io::Error, what: &str) {
        let reported = self.driver.kind == FdKind::ReadPipe
            && what == "read"
            && e.raw_os_error() != Some(Errno::IO.raw_os_error());
        if reported {
            let copy = match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            };
            let name = self.protocol_name().unwrap_or("?");
            self.report(
                "Fatal read error on pipe transport".into(),
                &Exception::new(copy),
                name,
            );
        } else {
            tracing::debug!("{}: {what} failed: {e}; closing", self.describe());
        }
        self.force_close(Some(e));
    }

    /// NET-63: stops delivering data (no system call).
    pub(super) fn pause_reading(&self) {
        if self.lifecycle().is_closing() || !self.driver.kind.is_readable() {
            return;
        }
        self.driver.st.borrow_mut().read_paused = true;
    }

    /// NET-63: resumes; a read is retried through the ready queue (the fd is edge-triggered
    /// and data may have arrived while paused).
    pub(super) fn resume_reading(&self) {
        let life = self.lifecycle();
        let retry = {
            let mut st = self.driver.st.borrow_mut();
            if life.is_closing() || !st.read_paused {
                return;
            }
            st.read_paused = false;
            life.made() && !st.read_eof
        };
        if retry {
            self.driver.drain_next.set(true);
            self.schedule_ready(Readiness::READABLE);
        }
    }

    /// True unless paused, at EOF, closing, or a write pipe.
    pub(super) fn is_reading(&self) -> bool {
        let st = self.driver.st.borrow();
        self.driver.kind.is_readable()
            && !self.lifecycle().is_closing()
            && !st.read_paused
            && !st.read_eof
    }

    /// NET-66.
    pub(super) fn extra_info(&self, key: Extra) -> Option<ExtraValue> {
        let d = &self.driver;
        let fd = || d.io.borrow().raw().map(ExtraValue::Fd);
        match key {
            Extra::Peername => d.peername.clone().map(ExtraValue::Addr),
            Extra::Sockname => d.sockname.clone().map(ExtraValue::Addr),
            Extra::Socket if d.kind == FdKind::Socket => fd(),
            Extra::Pipe if d.kind != FdKind::Socket => fd(),
            Extra::Socket | Extra::Pipe => None,
            Extra::Custom(k) => d
                .extra
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| ExtraValue::Value(v.clone())),
        }
    }
}
