//! The socket transport's per-message methods as C methods, and its hot state in slots.
//!
//! `evloop._io._SocketTransport` is asyncio's selector socket transport. The attributes its
//! per-message paths read (`_sock_fd`, `_protocol`, `_conn_lost`, `_closing`, `_eof`,
//! `_empty_waiter`, `_buffer`) are `__slots__` of that class: asyncio's own code reads and
//! writes them as before (a slot is an attribute like any other to Python code, and a cheaper
//! one: a fixed offset in the object instead of a dictionary), and the native code here reads
//! them at their offsets, which [`install`] takes from the slots' member descriptors once.
//!
//! [`install`] also puts two methods on the class, C functions with CPython's own calling
//! conventions (no bound-method object, no argument tuple, no PyO3 trampoline):
//!
//! * `write(data)`: when the transport is open, nothing is buffered and `data` is `bytes`,
//!   the bytes are sent at once; whatever cannot be sent at once (or a transport in any other
//!   state, or another bytes-like object) goes to asyncio's `write`, which buffers it, watches
//!   the socket for writing and applies the water marks (`pause_writing` /
//!   `resume_writing`).
//! * `is_closing()`: `self._closing`, as asyncio's.

use std::ffi::c_int;
use std::ptr;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString, PyType};

use crate::stream::{fatal_error, os_error, would_block};

/// The transport class's slots, by byte offset in its instances, and asyncio's `write`.
pub(crate) struct Slots {
    /// The class (`_SocketTransport`) the offsets belong to: they hold for its instances and
    /// its subclasses' (slots are inherited in place).
    cls: Py<PyType>,
    sock_fd: isize,
    protocol: isize,
    conn_lost: isize,
    closing: isize,
    eof: isize,
    empty_waiter: isize,
    buffer: isize,
    /// asyncio's `_SelectorSocketTransport.write`, called as `slow_write(transport, data)`.
    slow_write: Py<PyAny>,
    /// asyncio's `StreamReaderProtocol`, with the `data_received` and `_stream_reader` the
    /// native reader replicates (`crate::stream`), or `None` when this Python's differ.
    stream_protocol: Option<(Py<PyType>, Py<PyAny>, Py<PyAny>)>,
}

static SLOTS: PyOnceLock<Slots> = PyOnceLock::new();

/// One of the transport's slots, by name, for [`Slots::get`].
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    Protocol,
    ConnLost,
}

impl Slots {
    /// The slots, when `tr` is an instance of the transport class (or a subclass).
    pub(crate) fn of(tr: &Bound<'_, PyAny>) -> Option<&'static Slots> {
        let s = SLOTS.get(tr.py())?;
        // SAFETY: both are live objects; GIL held.
        let ok = unsafe { ffi::PyObject_TypeCheck(tr.as_ptr(), s.cls.as_ptr().cast()) } != 0;
        ok.then_some(s)
    }

    /// Whether `protocol` is exactly asyncio's `StreamReaderProtocol` and its class still has
    /// asyncio's `data_received` and `_stream_reader` (nobody replaced them since import).
    pub(crate) fn is_stream_protocol(&self, protocol: &Bound<'_, PyAny>) -> bool {
        let py = protocol.py();
        let Some((cls, data_received, stream_reader)) = &self.stream_protocol else {
            return false;
        };
        let ty = protocol.get_type();
        if !ty.is(cls) {
            return false;
        }
        let same = |name: &str, orig: &Py<PyAny>| {
            // The class's own attribute (its `__dict__`), not a descriptor's result.
            ty.getattr(intern!(py, "__dict__"))
                .and_then(|d| d.get_item(intern_name(py, name)))
                .is_ok_and(|v| v.is(orig))
        };
        same("data_received", data_received) && same("_stream_reader", stream_reader)
    }

    /// The value of a slot of `tr` (an instance of the class, see [`Slots::of`]); `None` when
    /// it has not been set.
    pub(crate) fn get<'py>(
        &self,
        tr: &Bound<'py, PyAny>,
        which: Slot,
    ) -> Option<Bound<'py, PyAny>> {
        let off = match which {
            Slot::Protocol => self.protocol,
            Slot::ConnLost => self.conn_lost,
        };
        // SAFETY: `tr` is an instance of the class whose slot is at `off` (checked by
        // `Slots::of`); the slot holds a strong reference or NULL.
        unsafe { borrowed(tr.py(), slot(tr.as_ptr(), off)) }
    }
}

/// The object pointer stored at byte offset `off` of `obj` (NULL: the slot is not set).
///
/// # Safety
///
/// `obj` is an instance of a type with an object slot (`Py_T_OBJECT_EX`) at `off`; GIL held.
#[inline]
unsafe fn slot(obj: *mut ffi::PyObject, off: isize) -> *mut ffi::PyObject {
    // SAFETY: as the caller guarantees: `off` is within the object and aligned for a pointer.
    unsafe { *obj.cast::<u8>().offset(off).cast::<*mut ffi::PyObject>() }
}

/// `p` as a borrowed `Bound`, or `None` for NULL.
///
/// # Safety
///
/// `p` is NULL or a live object kept alive by its owner for the borrow; GIL held.
#[inline]
unsafe fn borrowed(py: Python<'_>, p: *mut ffi::PyObject) -> Option<Bound<'_, PyAny>> {
    // SAFETY: as the caller guarantees.
    (!p.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(py, p) })
}

/// The byte offset of the object slot `name` of `cls` (from its member descriptor).
fn offset_of(cls: &Bound<'_, PyType>, name: &str) -> PyResult<isize> {
    let py = cls.py();
    let descr = cls.getattr(intern_name(py, name)).map_err(|_| {
        PyTypeError::new_err(format!(
            "{} has no slot {name}",
            cls.name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    // SAFETY: comparing type pointers; `PyMemberDescr_Type` is a static type object.
    let is_member =
        unsafe { ffi::Py_TYPE(descr.as_ptr()) == ptr::addr_of_mut!(ffi::PyMemberDescr_Type) };
    if !is_member {
        return Err(PyTypeError::new_err(format!(
            "{name} is not a slot of the transport class (it needs __slots__ = (..., \"{name}\"))"
        )));
    }
    // SAFETY: a member descriptor (checked above): a `PyMemberDescrObject` whose `d_member`
    // points to the `PyMemberDef` of the slot (CPython declares it that way on every version;
    // PyO3 types it by version, hence the cast).
    let def = unsafe {
        let d = descr.as_ptr().cast::<ffi::PyMemberDescrObject>();
        &*((*d).d_member as *const ffi::PyMemberDef)
    };
    // `Py_T_OBJECT_EX` (16): an object slot, NULL while unset (the kind `__slots__` makes).
    if def.type_code != 16 || def.offset <= 0 {
        return Err(PyTypeError::new_err(format!(
            "{name} is not an object slot of the transport class"
        )));
    }
    Ok(def.offset)
}

fn intern_name<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    PyString::intern(py, name)
}

/// Runs a C method's body: its `Ok` is a new reference to return; an error is set as the
/// current exception (a panic becomes a `RuntimeError`) and NULL returned.
///
/// # Safety
///
/// `slf` is an instance of the transport class (the method descriptor checks the type of
/// `self` before the call) and the slots are installed; GIL held.
unsafe fn trampoline(
    slf: *mut ffi::PyObject,
    body: impl FnOnce(Python<'_>, &Bound<'_, PyAny>, &'static Slots) -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a C method with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `slf` is live, borrowed for the call.
    let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
    crate::fast::guarded(py, "the transport's native code", || {
        let s = SLOTS.get(py).ok_or_else(|| {
            PyRuntimeError::new_err("evloop: the transport's C methods are not installed")
        })?;
        body(py, &this, s)
    })
}

/// `None`, as a new reference.
fn none(py: Python<'_>) -> *mut ffi::PyObject {
    py.None().into_ptr()
}

/// Whether the object at `p` is set and false (`False`, `0`, an empty container).
///
/// # Safety
///
/// `p` is NULL or a live object; GIL held.
unsafe fn is_false(p: *mut ffi::PyObject) -> bool {
    if p.is_null() {
        return false;
    }
    // SAFETY: a live object; GIL held. -1 (an error) counts as not false; the error is
    // cleared, and the slow path meets it again.
    match unsafe { ffi::PyObject_IsTrue(p) } {
        0 => true,
        1 => false,
        _ => {
            // SAFETY: GIL held.
            unsafe { ffi::PyErr_Clear() };
            false
        }
    }
}

/// Whether the write buffer at `p` (a `bytearray`, or from Python 3.12 a `deque`) is set and
/// empty.
///
/// # Safety
///
/// `p` is NULL or a live object; GIL held.
unsafe fn is_empty(p: *mut ffi::PyObject) -> bool {
    if p.is_null() {
        return false;
    }
    // SAFETY: a live object; GIL held.
    unsafe {
        if ffi::PyByteArray_CheckExact(p) != 0 {
            return ffi::PyByteArray_Size(p) == 0;
        }
        match ffi::PyObject_Size(p) {
            0 => true,
            n => {
                if n < 0 {
                    ffi::PyErr_Clear();
                }
                false
            }
        }
    }
}

/// `transport.write(data)` (`METH_O`).
unsafe extern "C" fn write(
    slf: *mut ffi::PyObject,
    data: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython's arguments of a `METH_O` method of the transport class, GIL held.
    unsafe {
        trampoline(slf, |py, tr, s| {
            let p = tr.as_ptr();
            // SAFETY: `data` is borrowed for the call.
            let data_b = Bound::from_borrowed_ptr(py, data);
            let fast = ffi::PyBytes_CheckExact(data) != 0
                && is_false(slot(p, s.eof))
                && slot(p, s.empty_waiter) == ffi::Py_None()
                && is_false(slot(p, s.conn_lost))
                && is_empty(slot(p, s.buffer));
            let fd = if fast {
                borrowed(py, slot(p, s.sock_fd)).and_then(|f| f.extract::<i32>().ok())
            } else {
                None
            };
            let Some(fd) = fd else {
                s.slow_write.bind(py).call1((tr, data_b))?;
                return Ok(none(py));
            };
            let bytes = data_b.cast_unchecked::<PyBytes>();
            let buf = bytes.as_bytes();
            if buf.is_empty() {
                return Ok(none(py));
            }
            // SAFETY: `buf` is valid for its length while `data` lives; `fd` is the
            // transport's socket, open while the transport is (it is: `_conn_lost` is 0).
            let n = libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL);
            if n >= 0 && n as usize == buf.len() {
                return Ok(none(py));
            }
            if n < 0 {
                let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if !would_block(errno) {
                    fatal_error(tr, os_error(errno), "Fatal write error on socket transport")?;
                    return Ok(none(py));
                }
                // asyncio's write tries again and buffers.
                s.slow_write.bind(py).call1((tr, data_b))?;
                return Ok(none(py));
            }
            let rest = PyBytes::new(py, &buf[n as usize..]);
            s.slow_write.bind(py).call1((tr, rest))?;
            Ok(none(py))
        })
    }
}

/// `transport.is_closing()` (`METH_NOARGS`): `self._closing`.
unsafe extern "C" fn is_closing(
    slf: *mut ffi::PyObject,
    _noargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython's arguments of a `METH_NOARGS` method of the transport class, GIL held.
    unsafe {
        trampoline(slf, |py, tr, s| {
            match borrowed(py, slot(tr.as_ptr(), s.closing)) {
                Some(v) => Ok(v.into_ptr()),
                // Not set: the attribute error asyncio's `return self._closing` would raise.
                None => Ok(tr.getattr(intern_name(py, "_closing"))?.into_ptr()),
            }
        })
    }
}

/// `_install_transport(cls, slow_write, stream_protocol)`: takes the slot offsets of `cls`
/// (the socket transport class, whose `__slots__` hold the attributes listed in the module's
/// doc) and puts the C methods `write` and `is_closing` on it; `slow_write(transport, data)`
/// is asyncio's `write`, for what cannot be sent at once. `stream_protocol`: asyncio's
/// `StreamReaderProtocol` when its `data_received` is `reader = self._stream_reader; if
/// reader is not None: reader.feed_data(data)` (the native reader then does that itself),
/// else `None`. Once per process.
#[pyfunction]
#[pyo3(name = "_install_transport")]
pub fn install(
    cls: &Bound<'_, PyType>,
    slow_write: Bound<'_, PyAny>,
    stream_protocol: Option<Bound<'_, PyType>>,
) -> PyResult<()> {
    let py = cls.py();
    if SLOTS.get(py).is_some() {
        return Err(PyRuntimeError::new_err(
            "_install_transport() runs once per process",
        ));
    }
    let slots = Slots {
        cls: cls.clone().unbind(),
        sock_fd: offset_of(cls, "_sock_fd")?,
        protocol: offset_of(cls, "_protocol")?,
        conn_lost: offset_of(cls, "_conn_lost")?,
        closing: offset_of(cls, "_closing")?,
        eof: offset_of(cls, "_eof")?,
        empty_waiter: offset_of(cls, "_empty_waiter")?,
        buffer: offset_of(cls, "_buffer")?,
        slow_write: slow_write.unbind(),
        stream_protocol: match stream_protocol {
            Some(sp) => {
                let d = sp.getattr("__dict__")?;
                Some((
                    sp.clone().unbind(),
                    d.get_item("data_received")?.unbind(),
                    d.get_item("_stream_reader")?.unbind(),
                ))
            }
            None => None,
        },
    };
    let _ = SLOTS.set(py, slots);
    crate::fast::add_method(
        cls,
        c"write",
        ffi::PyMethodDefPointer { PyCFunction: write },
        ffi::METH_O as c_int,
        c"write(data)\n--\n\nWrites data (bytes-like) to the transport: sent at once when nothing is buffered, else buffered.",
    )?;
    crate::fast::add_method(
        cls,
        c"is_closing",
        ffi::PyMethodDefPointer {
            PyCFunction: is_closing,
        },
        ffi::METH_NOARGS as c_int,
        c"is_closing()\n--\n\nWhether the transport is closing or closed.",
    )?;
    Ok(())
}
