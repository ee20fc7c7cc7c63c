//! The hot paths of a socket transport, native: reading into the protocol and writing.
//!
//! `evloop._io._SocketTransport` is asyncio's own selector socket transport (so every state
//! change, flow control, `close` / `abort` / `write_eof`, `sendfile` and TLS upgrade behave as
//! asyncio's) with the two paths that run per message done here:
//!
//! * reading ([`read_ready`]): when the socket is readable the loop calls native code, not
//!   the transport's `_read_ready` method: one `recv` into the loop's read buffer, one copy
//!   into a fresh `bytes`, and a call of the protocol's `data_received`, a bound method cached
//!   until the transport's protocol changes; a `BufferedProtocol` gets `get_buffer` /
//!   `recv` into that buffer / `buffer_updated`. Errors take asyncio's routes
//!   (`_fatal_error` with asyncio's messages, `_read_ready__on_eof` at end of stream).
//! * writing: the transport's `write` is a C method ([`crate::fast_transport`]).

use std::cell::RefCell;
use std::os::fd::RawFd;

use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyWeakrefMethods, PyWeakrefReference};
use pyo3::{ffi, intern};

use crate::fast_transport::{Slot, Slots};
use crate::handle::Handle;
use crate::running::State as LoopState;

/// What the reader knows of the transport's protocol, refreshed when `transport._protocol`
/// is another object.
#[derive(Default)]
pub struct ProtocolCache {
    /// The protocol it was made for.
    protocol: Option<Py<PyAny>>,
    /// `data_received`, or (`BufferedProtocol`) `get_buffer` and `buffer_updated`.
    methods: Option<Methods>,
    /// `transport.max_size`: the most one read takes.
    max_size: usize,
}

enum Methods {
    Data(Py<PyAny>),
    Buffered(Py<PyAny>, Py<PyAny>),
    /// asyncio's `StreamReaderProtocol`, whose `data_received` is asyncio's own (see
    /// [`feed_stream_reader`]): the protocol itself.
    Stream(Py<PyAny>),
}

/// [`Methods`], bound (taken out of the cache before any of them runs).
enum Call<'py> {
    Data(Bound<'py, PyAny>),
    Stream(Bound<'py, PyAny>),
    Buffered(Bound<'py, PyAny>, Bound<'py, PyAny>),
}

/// Whether `err` is one that ends the run (`KeyboardInterrupt`, `SystemExit`).
fn is_fatal(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyKeyboardInterrupt>(py) || err.is_instance_of::<PySystemExit>(py)
}

/// `OSError(errno, strerror)` (Python picks the subclass: `ConnectionResetError`, ...).
pub(crate) fn os_error(errno: i32) -> PyErr {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    PyOSError::new_err((errno, text))
}

/// `transport._fatal_error(exc, message)`.
pub(crate) fn fatal_error(tr: &Bound<'_, PyAny>, err: PyErr, message: &str) -> PyResult<()> {
    let py = tr.py();
    tr.call_method1(intern!(py, "_fatal_error"), (err.value(py), message))?;
    Ok(())
}

/// Runs `f`; a `KeyboardInterrupt` / `SystemExit` comes back as `Err` (it ends the run), any
/// other error goes to `transport._fatal_error(exc, message)`. `Ok(None)`: it failed.
fn guarded<'py, T>(
    tr: &Bound<'py, PyAny>,
    message: &str,
    f: impl FnOnce() -> PyResult<T>,
) -> PyResult<Option<T>> {
    match f() {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_fatal(tr.py(), &e) => Err(e),
        Err(e) => fatal_error(tr, e, message).map(|()| None),
    }
}

/// The transport's state as asyncio keeps it: plain instance attributes. Read from the
/// instance's `__dict__` (a dict look-up, not the whole attribute protocol, which first
/// searches the class and its bases); an attribute not there is looked up the usual way.
struct Attrs<'a, 'py> {
    tr: &'a Bound<'py, PyAny>,
    dict: Option<Bound<'py, PyDict>>,
}

impl<'a, 'py> Attrs<'a, 'py> {
    fn of(tr: &'a Bound<'py, PyAny>) -> Attrs<'a, 'py> {
        // SAFETY: a live object, GIL held; returns a new reference or NULL (no `__dict__`,
        // error set), and the error is cleared: the attributes are then looked up normally.
        let d = unsafe { ffi::PyObject_GenericGetDict(tr.as_ptr(), std::ptr::null_mut()) };
        let dict = if d.is_null() {
            let _ = PyErr::take(tr.py());
            None
        } else {
            // SAFETY: `d` is a new reference to the instance's dict.
            let d = unsafe { Bound::from_owned_ptr(tr.py(), d) };
            d.cast_into::<PyDict>().ok()
        };
        Attrs { tr, dict }
    }

    fn get(&self, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(d) = &self.dict {
            if let Some(v) = d.get_item(name)? {
                return Ok(v);
            }
        }
        self.tr.getattr(name)
    }
}

/// The errors of `recv` / `send` that mean "not now".
pub(crate) fn would_block(errno: i32) -> bool {
    errno == libc::EAGAIN || errno == libc::EWOULDBLOCK || errno == libc::EINTR
}

/// The socket of the transport is readable: asyncio's `_read_ready` natively. Runs in the
/// watcher handle's context; an `Err` is a `KeyboardInterrupt` / `SystemExit` (the caller ends
/// the run); other errors of the machinery itself go to the exception handler, as a failing
/// callback's would.
pub fn read_ready(
    py: Python<'_>,
    h: &Bound<'_, Handle>,
    fd: RawFd,
    tr: &Bound<'_, PyAny>,
    cache: &RefCell<ProtocolCache>,
    state: &LoopState,
) -> PyResult<()> {
    let Some(context) = h.get().context(py) else {
        return Ok(());
    };
    // SAFETY: a `contextvars.Context` (every handle holds one), GIL held.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    let r = read(py, fd, tr, cache, state);
    // SAFETY: as above; exits the context entered just before.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    match r {
        Ok(()) => Ok(()),
        Err(e) if is_fatal(py, &e) => Err(e),
        Err(e) => Python::attach(|py| crate::handle::report_error(py, h, Some(state), e)),
    }
}

fn read(
    py: Python<'_>,
    fd: RawFd,
    tr: &Bound<'_, PyAny>,
    cache: &RefCell<ProtocolCache>,
    state: &LoopState,
) -> PyResult<()> {
    // The transport's slots (see `fast_transport`), else its `__dict__`.
    let slotted =
        Slots::of(tr).and_then(|s| Some((s.get(tr, Slot::ConnLost)?, s.get(tr, Slot::Protocol)?)));
    let (conn_lost, protocol) = match slotted {
        Some(both) => both,
        None => {
            let attrs = Attrs::of(tr);
            (
                attrs.get(intern!(py, "_conn_lost"))?,
                attrs.get(intern!(py, "_protocol"))?,
            )
        }
    };
    if conn_lost.is_truthy()? {
        return Ok(());
    }
    let (methods, max_size) = {
        let mut c = cache.borrow_mut();
        let same = matches!(&c.protocol, Some(p) if p.is(&protocol));
        if !same {
            let buffered = protocol.is_instance(
                &py.import(intern!(py, "asyncio"))?
                    .getattr("BufferedProtocol")?,
            )?;
            c.methods = Some(if buffered {
                Methods::Buffered(
                    protocol.getattr(intern!(py, "get_buffer"))?.unbind(),
                    protocol.getattr(intern!(py, "buffer_updated"))?.unbind(),
                )
            } else if Slots::of(tr).is_some_and(|s| s.is_stream_protocol(&protocol)) {
                Methods::Stream(protocol.clone().unbind())
            } else {
                Methods::Data(protocol.getattr(intern!(py, "data_received"))?.unbind())
            });
            c.max_size = tr.getattr(intern!(py, "max_size"))?.extract()?;
            c.protocol = Some(protocol.unbind());
        }
        let call = match c.methods.as_ref().expect("set above") {
            Methods::Data(d) => Call::Data(d.bind(py).clone()),
            Methods::Stream(p) => Call::Stream(p.bind(py).clone()),
            Methods::Buffered(g, u) => Call::Buffered(g.bind(py).clone(), u.bind(py).clone()),
        };
        (call, c.max_size.max(1))
    };
    match &methods {
        Call::Data(_) | Call::Stream(_) => {
            let n = {
                let mut buf = state.read_buf.borrow_mut();
                if buf.len() < max_size {
                    buf.resize(max_size, 0);
                }
                // SAFETY: `buf` is valid for `max_size` bytes and borrowed for the call; `fd`
                // is the transport's socket, open while its reader is registered.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), max_size, 0) };
                match Recv::of(n) {
                    Recv::Data(n) => Ok(PyBytes::new(py, &buf[..n])),
                    other => Err(other),
                }
            };
            let data = match n {
                Ok(data) => data,
                Err(other) => return after_recv(tr, other),
            };
            guarded(
                tr,
                "Fatal error: protocol.data_received() call failed.",
                || match &methods {
                    Call::Data(data_received) => data_received.call1((data,)).map(drop),
                    Call::Stream(protocol) => feed_stream_reader(protocol, data),
                    Call::Buffered(..) => unreachable!("matched above"),
                },
            )
            .map(drop)
        }
        Call::Buffered(get_buffer, buffer_updated) => {
            let buf = guarded(
                tr,
                "Fatal error: protocol.get_buffer() call failed.",
                || {
                    let buf = get_buffer.call1((-1,))?;
                    if buf.len()? == 0 {
                        return Err(PyRuntimeError::new_err(
                            "get_buffer() returned an empty buffer",
                        ));
                    }
                    Ok(buf)
                },
            )?;
            let Some(buf) = buf else {
                return Ok(());
            };
            let n = match recv_into(&buf, fd) {
                Ok(Recv::Data(n)) => n,
                Ok(other) => return after_recv(tr, other),
                Err(e) => return fatal_error(tr, e, "Fatal read error on socket transport"),
            };
            guarded(
                tr,
                "Fatal error: protocol.buffer_updated() call failed.",
                || buffer_updated.call1((n,)),
            )
            .map(drop)
        }
    }
}

/// asyncio's `StreamReaderProtocol.data_received(data)`, natively: the protocol's reader
/// (`self._stream_reader`: its weak reference `_stream_reader_wr`, dereferenced) gets
/// `reader.feed_data(data)`; no reader (gone, or the connection lost), nothing. Used only
/// for asyncio's class whose `data_received` and `_stream_reader` are still the ones this
/// replicates (checked when the protocol is cached), so it does what they do, without the
/// two Python frames.
fn feed_stream_reader(protocol: &Bound<'_, PyAny>, data: Bound<'_, PyBytes>) -> PyResult<()> {
    let py = protocol.py();
    let wr = Attrs::of(protocol).get(intern!(py, "_stream_reader_wr"))?;
    if wr.is_none() {
        return Ok(());
    }
    let reader = match wr.cast::<PyWeakrefReference>() {
        Ok(r) => match r.upgrade() {
            Some(reader) => reader,
            None => return Ok(()),
        },
        Err(_) => wr.call0()?,
    };
    if reader.is_none() {
        return Ok(());
    }
    reader.call_method1(intern!(py, "feed_data"), (data,))?;
    Ok(())
}

/// What a `recv` gave, read at once (before anything else can change `errno`).
enum Recv {
    /// This many bytes (more than 0).
    Data(usize),
    /// The end of the stream.
    Eof,
    /// Nothing now (`EAGAIN`, `EINTR`).
    NotNow,
    /// An error, by errno.
    Error(i32),
}

impl Recv {
    /// From `recv`'s return value, just after the call.
    fn of(n: isize) -> Recv {
        if n > 0 {
            return Recv::Data(n as usize);
        }
        if n == 0 {
            return Recv::Eof;
        }
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if would_block(errno) {
            Recv::NotNow
        } else {
            Recv::Error(errno)
        }
    }
}

/// `recv` into a writable buffer object (`socket.recv_into`'s rules: a contiguous writable
/// buffer, else `TypeError`).
fn recv_into(buf: &Bound<'_, PyAny>, fd: RawFd) -> PyResult<Recv> {
    let py = buf.py();
    let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::zeroed();
    // SAFETY: `view` is writable memory for a `Py_buffer`; GIL held. On success the view is
    // released below.
    if unsafe { ffi::PyObject_GetBuffer(buf.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_WRITABLE) } != 0
    {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: filled in by the successful `PyObject_GetBuffer`.
    let view = unsafe { view.assume_init_mut() };
    // SAFETY: a writable, contiguous buffer of `view.len` bytes (PyBUF_WRITABLE asks for a
    // simple buffer), alive until released; `fd` is the transport's open socket.
    let n = unsafe { libc::recv(fd, view.buf, view.len as usize, 0) };
    let got = Recv::of(n);
    // SAFETY: releases the view obtained above, once.
    unsafe { ffi::PyBuffer_Release(view) };
    Ok(got)
}

/// `recv` gave no data: at the end of the stream `_read_ready__on_eof`, on an error
/// `_fatal_error`, on "not now" nothing.
fn after_recv(tr: &Bound<'_, PyAny>, got: Recv) -> PyResult<()> {
    let py = tr.py();
    match got {
        Recv::Eof => {
            tr.call_method0(intern!(py, "_read_ready__on_eof"))?;
            Ok(())
        }
        Recv::Error(errno) => {
            fatal_error(tr, os_error(errno), "Fatal read error on socket transport")
        }
        Recv::Data(_) | Recv::NotNow => Ok(()),
    }
}

/// The sentinel that asks `LoopCore._add_reader` for the native reader of a transport:
/// `_add_reader(fd, _STREAM_READ, transport)` (`evloop._evloop._STREAM_READ`, the one
/// instance).
#[pyclass(module = "evloop._evloop", name = "_StreamRead", frozen)]
pub struct StreamRead;
