//! `call_soon`, `call_soon_threadsafe`, `call_later` and `call_at` as C methods with CPython's
//! vectorcall convention (`METH_FASTCALL | METH_KEYWORDS`), installed on `LoopCore` when the
//! module is imported ([`install`]).
//!
//! These four run once per callback a program schedules, so what a call costs before the
//! scheduling starts counts: PyO3's generic argument extraction for a `(callback, *args,
//! context=None)` signature and its call trampoline (thread-local counters, the deferred
//! reference pool) were some 200 instructions of a `call_soon`. Here the arguments are read
//! straight from the vector CPython passes: the callback (and delay / deadline), the extra
//! positional arguments copied into one tuple (the shared empty tuple when there are none),
//! and `context` from the keyword names. The scheduling itself is `LoopCore`'s.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple, PyType};

use crate::core::LoopCore;

/// The empty tuple (asking CPython for it each time costs a call).
static EMPTY: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// The last keyword names tuple seen that is `("context",)` (a strong reference, or NULL):
/// a call with the same tuple object reads its context without looking at the names.
static CONTEXT_ONLY: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());

/// What a fast method was called with.
struct Call<'py> {
    /// The named positional parameters (`callback`; `delay` / `when` and `callback`).
    fixed: [Option<Bound<'py, PyAny>>; 2],
    /// The positional arguments after them, for the callback.
    rest: Bound<'py, PyTuple>,
    /// `context=`, if given.
    context: Option<Bound<'py, PyAny>>,
}

/// The empty tuple, a new reference.
#[inline(always)]
fn empty(py: Python<'_>) -> Bound<'_, PyTuple> {
    EMPTY
        .get_or_init(py, || PyTuple::empty(py).unbind())
        .bind(py)
        .clone()
}

/// Reads a call to `name(<params>, *args, context=None)` from CPython's argument vector.
///
/// # Safety
///
/// `args` holds `PyVectorcall_NARGS(nargsf)` positional arguments followed by one value per
/// name of `kwnames` (a tuple of strings, or NULL), all borrowed for the call; GIL held.
unsafe fn parse<'py>(
    py: Python<'py>,
    name: &str,
    params: &[&str],
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Call<'py>> {
    // SAFETY: as the caller guarantees.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf as usize) } as usize;
    if kwnames.is_null() && nargs == params.len() {
        // The common call, `call_soon(cb)`: the named parameters alone, positionally.
        // SAFETY: `nargs` borrowed positional arguments (`params.len()` is 1 or 2).
        let fixed = unsafe {
            [
                Some(Bound::from_borrowed_ptr(py, *args)),
                (nargs == 2).then(|| Bound::from_borrowed_ptr(py, *args.add(1))),
            ]
        };
        return Ok(Call {
            fixed,
            rest: empty(py),
            context: None,
        });
    }
    let mut fixed: [Option<Bound<'py, PyAny>>; 2] = [None, None];
    let given = nargs.min(params.len());
    for (i, slot) in fixed.iter_mut().enumerate().take(given) {
        // SAFETY: `i < nargs`: a borrowed positional argument.
        *slot = Some(unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) });
    }
    let extra = nargs - given;
    let rest = if extra == 0 {
        empty(py)
    } else {
        // SAFETY: a new tuple of `extra` slots, each filled below with a new reference to a
        // borrowed positional argument (indices `given..nargs`).
        unsafe {
            let t = ffi::PyTuple_New(extra as ffi::Py_ssize_t);
            let t = Bound::from_owned_ptr_or_err(py, t)?;
            for j in 0..extra {
                let item = *args.add(given + j);
                ffi::Py_INCREF(item);
                ffi::PyTuple_SET_ITEM(t.as_ptr(), j as ffi::Py_ssize_t, item);
            }
            t.cast_into_unchecked::<PyTuple>()
        }
    };
    let mut context = None;
    if !kwnames.is_null() && kwnames == CONTEXT_ONLY.load(Ordering::Relaxed) {
        // SAFETY: the one keyword value, after the positional arguments.
        context = Some(unsafe { Bound::from_borrowed_ptr(py, *args.add(nargs)) });
    } else if !kwnames.is_null() {
        // SAFETY: a tuple of strings, per the vectorcall protocol.
        let names =
            unsafe { Bound::from_borrowed_ptr(py, kwnames).cast_into_unchecked::<PyTuple>() };
        for (k, key) in names.iter().enumerate() {
            // SAFETY: the values follow the positional arguments, one per name.
            let value = unsafe { Bound::from_borrowed_ptr(py, *args.add(nargs + k)) };
            let key = key.cast_into::<PyString>()?;
            let key = key.to_str()?;
            if key == "context" {
                context = Some(value);
                if names.len() == 1 {
                    // The names tuple of `context=` alone: C callers (asyncio's futures and
                    // tasks) pass the same tuple object each time; remember it.
                    let new = names.clone().unbind().into_ptr();
                    let old = CONTEXT_ONLY.swap(new, Ordering::Relaxed);
                    if !old.is_null() {
                        // SAFETY: the reference taken when `old` was stored; GIL held.
                        unsafe { ffi::Py_DECREF(old) };
                    }
                }
                continue;
            }
            match params.iter().position(|p| *p == key) {
                Some(i) if fixed[i].is_none() => fixed[i] = Some(value),
                Some(_) => {
                    return Err(PyTypeError::new_err(format!(
                        "{name}() got multiple values for argument '{key}'"
                    )))
                }
                None => {
                    return Err(PyTypeError::new_err(format!(
                        "{name}() got an unexpected keyword argument '{key}'"
                    )))
                }
            }
        }
    }
    if let Some(i) = fixed.iter().take(params.len()).position(Option::is_none) {
        return Err(PyTypeError::new_err(format!(
            "{name}() missing required positional argument: '{}'",
            params[i]
        )));
    }
    Ok(Call {
        fixed,
        rest,
        context,
    })
}

/// Runs a fast method's body: its `Ok` is a new reference to return; an error is set as the
/// current exception (a panic becomes a `RuntimeError`) and NULL returned.
///
/// # Safety
///
/// `slf` is a `LoopCore` (the method descriptor checks the type of `self` before the call);
/// GIL held.
unsafe fn trampoline(
    slf: *mut ffi::PyObject,
    body: impl FnOnce(Python<'_>, &Bound<'_, LoopCore>) -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a C method with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `slf` is a live `LoopCore` (or subclass) instance, borrowed for the call.
    let this = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<LoopCore>() };
    guarded(py, "the loop's scheduling code", || body(py, &this))
}

/// Runs a C method's `body` for CPython: its `Ok` is the new reference to return; an error is
/// set as the current exception and NULL returned; a panic becomes a `RuntimeError` naming
/// `what` panicked.
pub(crate) fn guarded(
    py: Python<'_>,
    what: &str,
    body: impl FnOnce() -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    let r = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => Err(PyRuntimeError::new_err(format!(
            "evloop: a panic in {what} (a bug: please report it)"
        ))),
    };
    match r {
        Ok(p) => p,
        Err(e) => {
            e.restore(py);
            ptr::null_mut()
        }
    }
}

/// Defines a fast method: a vectorcall C function that parses its arguments (`params`, then
/// `*args` and `context=`) with [`parse`] and runs `body` with the GIL, the `LoopCore` and the
/// parsed call, through [`trampoline`].
macro_rules! fast_method {
    ($(#[$meta:meta])* $fn_name:ident, $name:literal, [$($param:literal),*], |$py:ident, $this:ident, $c:ident| $body:block) => {
        $(#[$meta])*
        unsafe extern "C" fn $fn_name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargsf: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython's vectorcall arguments of a method of `LoopCore`, GIL held.
            unsafe {
                trampoline(slf, |$py, $this| {
                    let $c = parse($py, $name, &[$($param),*], args, nargsf, kwnames)?;
                    $body
                })
            }
        }
    };
}

fast_method!(
    /// `call_soon(callback, *args, context=None)`.
    call_soon,
    "call_soon",
    ["callback"],
    |py, this, c| {
        let [callback, _] = c.fixed;
        let h = this
            .get()
            .call_soon(py, callback.expect("parsed"), c.rest, c.context)?;
        Ok(h.into_ptr())
    }
);

fast_method!(
    /// `call_soon_threadsafe(callback, *args, context=None)`.
    call_soon_threadsafe,
    "call_soon_threadsafe",
    ["callback"],
    |py, this, c| {
        let [callback, _] = c.fixed;
        let h =
            this.get()
                .call_soon_threadsafe(py, callback.expect("parsed"), c.rest, c.context)?;
        Ok(h.into_ptr())
    }
);

fast_method!(
    /// `call_later(delay, callback, *args, context=None)`.
    call_later,
    "call_later",
    ["delay", "callback"],
    |py, this, c| {
        let [delay, callback] = c.fixed;
        let delay = float_or_none(&delay.expect("parsed"))?;
        let h = this
            .get()
            .call_later(py, delay, callback.expect("parsed"), c.rest, c.context)?;
        Ok(h.into_ptr())
    }
);

fast_method!(
    /// `call_at(when, callback, *args, context=None)`.
    call_at,
    "call_at",
    ["when", "callback"],
    |py, this, c| {
        let [when, callback] = c.fixed;
        let when = float_or_none(&when.expect("parsed"))?;
        let h = this
            .get()
            .call_at(py, when, callback.expect("parsed"), c.rest, c.context)?;
        Ok(h.into_ptr())
    }
);

/// A time argument: `None` (the scheduling call reports it) or a float.
fn float_or_none(v: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    if v.is_none() {
        Ok(None)
    } else {
        v.extract().map(Some)
    }
}

/// The method table: name, function, doc.
type FastMethod = (
    &'static CStr,
    ffi::PyCFunctionFastWithKeywords,
    &'static CStr,
);

const METHODS: [FastMethod; 4] = [
    (
        c"call_soon",
        call_soon,
        c"call_soon(callback, *args, context=None)\n--\n\nSchedules callback(*args) for the next iteration.",
    ),
    (
        c"call_soon_threadsafe",
        call_soon_threadsafe,
        c"call_soon_threadsafe(callback, *args, context=None)\n--\n\nSchedules callback(*args) from any thread, and wakes the loop.",
    ),
    (
        c"call_later",
        call_later,
        c"call_later(delay, callback, *args, context=None)\n--\n\nSchedules callback(*args) after delay seconds.",
    ),
    (
        c"call_at",
        call_at,
        c"call_at(when, callback, *args, context=None)\n--\n\nSchedules callback(*args) at when, in time()'s seconds.",
    ),
];

/// Installs the fast methods on `ty`: `LoopCore` (when the module is imported), or a subclass
/// of it ([`install_on`], for `evloop.Loop`, whose instances then pass the method's type check
/// at once instead of through a walk of the class hierarchy).
pub fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    for (name, meth, doc) in METHODS {
        add_method(
            ty,
            name,
            ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: meth,
            },
            (ffi::METH_FASTCALL | ffi::METH_KEYWORDS) as c_int,
            doc,
        )?;
    }
    Ok(())
}

/// Puts a C method on `cls` (a method descriptor: it checks that `self` is an instance).
pub(crate) fn add_method(
    cls: &Bound<'_, PyType>,
    name: &'static CStr,
    meth: ffi::PyMethodDefPointer,
    flags: c_int,
    doc: &'static CStr,
) -> PyResult<()> {
    let py = cls.py();
    // CPython keeps a pointer to the definition for as long as the descriptor lives: one
    // small leak per method and class, once per process.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: meth,
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    }));
    // SAFETY: a type object and a method definition that outlives it; GIL held. Returns a new
    // reference or NULL with an exception set.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyDescr_NewMethod(cls.as_ptr().cast::<ffi::PyTypeObject>(), def),
        )
    }?;
    cls.setattr(name.to_str().expect("ASCII"), descr)
}

/// `_install_fast(cls)`: puts the fast scheduling methods on `cls`, a subclass of `LoopCore`
/// (the method descriptors check that `self` is an instance of `cls`).
#[pyfunction]
#[pyo3(name = "_install_fast")]
pub fn install_on(cls: &Bound<'_, PyType>) -> PyResult<()> {
    if !cls.is_subclass_of::<LoopCore>()? {
        return Err(PyTypeError::new_err(format!(
            "_install_fast() needs a subclass of LoopCore, not {}",
            cls.name()?
        )));
    }
    install(cls)
}
