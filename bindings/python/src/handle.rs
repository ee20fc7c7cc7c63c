//! `Handle` and `TimerHandle`: asyncio's handles of scheduled callbacks.
//!
//! A handle holds the callback, its arguments and the `contextvars.Context` it runs in.
//! `cancel()` marks it and drops the callback and arguments at once (what they reference is
//! freed then, not when the callback's turn comes). Running it ([`run`]) enters the context,
//! calls the callback, and sends an exception to the loop's exception handler, except
//! `KeyboardInterrupt` and `SystemExit`, which end the run as in asyncio.

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::time::Instant;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::pyclass::{CompareOp, PyClass};
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyTraverseError;
use pyo3::{ffi, intern};

use crate::bound::ThreadBound;
use crate::running::{self, State};

/// A reference a handle owns. Handles are used and dropped only with the GIL held (their
/// methods, the loop's callbacks, `tp_dealloc`), so it is released at once with `Py_DECREF`,
/// without PyO3's check of whether the thread is attached (a thread-local lookup per
/// reference).
pub struct Owned<T>(ManuallyDrop<Py<T>>);

impl<T> Owned<T> {
    fn new(p: Py<T>) -> Owned<T> {
        Owned(ManuallyDrop::new(p))
    }
}

impl<T> Deref for Owned<T> {
    type Target = Py<T>;
    #[inline]
    fn deref(&self) -> &Py<T> {
        &self.0
    }
}

impl<T> Drop for Owned<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: an owned reference, released once; the GIL is held wherever a handle's
        // parts are dropped (see above).
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) }
    }
}

/// One reference of a handle, or none (cancelled, cleared, or moved out while it runs): a
/// `Cell`, so that no borrow of the handle is ever held. A reference is read by taking a new
/// reference to it ([`Slot::get`], an increment that runs no Python code) and replaced or taken
/// as a whole; whatever a release runs (a finaliser, which may reach the handle again) finds
/// the handle consistent.
struct Slot<T>(Cell<Option<Owned<T>>>);

// One word: `Option` of a non-null pointer.
const _: () = assert!(std::mem::size_of::<Slot<PyAny>>() == std::mem::size_of::<usize>());

impl<T> Slot<T> {
    fn new(p: Py<T>) -> Slot<T> {
        Slot(Cell::new(Some(Owned::new(p))))
    }

    /// A new reference to the object, if any.
    #[inline]
    fn get<'py>(&self, py: Python<'py>) -> Option<Bound<'py, T>> {
        // SAFETY: a shared look at the cell's value that ends before anything could replace
        // it: taking a new reference (an increment) runs no Python code, and the handle is
        // used only with the GIL held (see `Parts`), so no other thread writes meanwhile.
        unsafe { (*self.0.as_ptr()).as_ref() }.map(|o| o.bind(py).clone())
    }

    /// Moves the reference out (the caller releases it, which may run Python code).
    #[inline]
    fn take(&self) -> Option<Owned<T>> {
        self.0.take()
    }

    /// Puts `v` in; what was there is released.
    #[inline]
    fn put(&self, v: Option<Owned<T>>) {
        drop(self.0.replace(v));
    }

    /// The object's address (null if none), a borrowed look.
    #[inline]
    fn as_ptr(&self) -> *mut ffi::PyObject {
        // SAFETY: as in `get`: a look that ends at once.
        unsafe { (*self.0.as_ptr()).as_ref() }.map_or(std::ptr::null_mut(), |o| o.as_ptr())
    }

    /// Shows the reference to the cycle collector.
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // SAFETY: as in `get`: the collector's visit function runs no Python code, so the
        // value is not replaced while it is looked at.
        visit.call(unsafe { (*self.0.as_ptr()).as_deref() })
    }
}

/// A handle's `source_traceback` (debug mode only, else none), whether it was cancelled and
/// whether its context was copied for it, in one word: the address of the traceback, an owned
/// reference (or 0), with [`CANCELLED`] and [`COPIED`] in its two lowest bits, which the
/// address of an object never has (CPython aligns objects to at least 8 bytes).
struct Extra(Cell<usize>);

/// [`Extra`]'s bit of a cancelled handle.
const CANCELLED: usize = 1;
/// [`Extra`]'s bit of a handle whose context was copied for it (`call_soon` without a
/// `context`). The handle holds that context for as long as it is reachable (only the cycle
/// collector's `__clear__` of an unreachable handle takes it).
const COPIED: usize = 2;
/// [`Extra`]'s bit of a handle whose copied context is untracked while the handle is queued
/// (see [`Queued`]).
const CTX_UNTRACKED: usize = 4;
const FLAGS: usize = CANCELLED | COPIED | CTX_UNTRACKED;

impl Extra {
    fn new(source_traceback: Option<Py<PyAny>>, copied: bool) -> Extra {
        let addr = match source_traceback {
            Some(tb) if (tb.as_ptr() as usize) & FLAGS == 0 => tb.into_ptr() as usize,
            // A misaligned object cannot be (see above); were it, the traceback is left out.
            _ => 0,
        };
        Extra(Cell::new(addr | if copied { COPIED } else { 0 }))
    }

    #[inline]
    fn copied(&self) -> bool {
        self.0.get() & COPIED != 0
    }

    #[inline]
    fn mark_untracked(&self) {
        self.0.set(self.0.get() | CTX_UNTRACKED);
    }

    /// Clears the [`CTX_UNTRACKED`] mark; returns whether it was set.
    #[inline]
    fn unmark_untracked(&self) -> bool {
        let v = self.0.get();
        self.0.set(v & !CTX_UNTRACKED);
        v & CTX_UNTRACKED != 0
    }

    #[inline]
    fn cancelled(&self) -> bool {
        self.0.get() & CANCELLED != 0
    }

    /// Marks the handle cancelled; returns whether it was not before.
    #[inline]
    fn cancel(&self) -> bool {
        let v = self.0.get();
        self.0.set(v | CANCELLED);
        v & CANCELLED == 0
    }

    fn pointer(&self) -> *mut ffi::PyObject {
        (self.0.get() & !FLAGS) as *mut ffi::PyObject
    }

    /// A new reference to the traceback, if any.
    fn traceback<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let p = self.pointer();
        // SAFETY: a live object the handle owns a reference to (GIL held: nothing releases
        // it meanwhile); this takes a new one.
        (!p.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(py, p) })
    }

    /// Releases the traceback, keeping the flags.
    fn clear_traceback(&self) {
        let p = self.pointer();
        self.0.set(self.0.get() & FLAGS);
        if !p.is_null() {
            // SAFETY: the handle's reference, released once (the word no longer holds it, so
            // whatever the release runs finds the handle consistent); GIL held (see `Owned`).
            unsafe { ffi::Py_DECREF(p) }
        }
    }

    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let p = NonNull::new(self.pointer());
        // SAFETY: `Py<PyAny>` is `#[repr(transparent)]` over `NonNull<ffi::PyObject>`, so a
        // reference to the pointer is one to a `Py<PyAny>`; it is only passed to the visit
        // function (which runs no Python code, so the handle keeps its reference meanwhile)
        // and never dropped.
        let r = p
            .as_ref()
            .map(|nn| unsafe { &*(nn as *const NonNull<ffi::PyObject>).cast::<Py<PyAny>>() });
        visit.call(r)
    }
}

impl Drop for Extra {
    fn drop(&mut self) {
        self.clear_traceback();
    }
}

/// What a handle holds: four words.
pub struct Parts {
    callback: Slot<PyAny>,
    args: Slot<PyTuple>,
    context: Slot<PyAny>,
    extra: Extra,
}

impl Parts {
    /// Tracks the context again if it was untracked while the handle was queued. Called when
    /// the loop lets the handle go ([`Queued`]) and before anything else releases the context
    /// (the cycle collector's `__clear__`, the handle's deallocation): neither happens to a
    /// queued handle (the queue references it, and it is untracked, so the collector never
    /// clears it), but the mark is checked there all the same.
    #[inline]
    fn settle_context(&self) {
        if self.extra.unmark_untracked() {
            let c = self.context.as_ptr();
            // SAFETY: a live context the handle holds (a GC type), GIL held; untracked by
            // `Queued::new`, tracked here only if it still is not.
            unsafe {
                if !c.is_null() && ffi::PyObject_GC_IsTracked(c) == 0 {
                    ffi::PyObject_GC_Track(c.cast());
                }
            }
        }
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        self.settle_context();
    }
}

// SAFETY: every access happens with the GIL held (a handle is reached only from Python
// methods, the loop's callbacks and the cycle collector, all under the GIL): one thread at a
// time, and the GIL's hand-over orders their accesses. The cells hand out no borrow (see
// `Slot`). This package targets CPython with the GIL.
unsafe impl Sync for Parts {}
// SAFETY: as above; the references inside are Python objects, owned under the GIL.
unsafe impl Send for Parts {}

/// A callback scheduled with `call_soon`, `call_soon_threadsafe` or `add_reader` (asyncio's
/// `Handle`).
// Allocated from a free list (see [`crate::pool`]): a handle from it starts untracked, see
// [`track`]. Four words behind the object's header (with the collector's header, 64 bytes:
// one of pymalloc's size classes).
#[pyclass(module = "evloop", name = "Handle", subclass, frozen)]
pub struct Handle {
    parts: Parts,
}

impl Handle {
    /// A handle of `callback(*args)` in `context`.
    pub fn new(
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Py<PyAny>,
        copied: bool,
        source_traceback: Option<Py<PyAny>>,
    ) -> Handle {
        Handle {
            parts: Parts {
                callback: Slot::new(callback),
                args: Slot::new(args),
                context: Slot::new(context),
                extra: Extra::new(source_traceback, copied),
            },
        }
    }

    /// Cancels: marks the handle and drops the callback and its arguments. Returns whether it
    /// was not cancelled before.
    pub fn cancel_parts(&self) -> bool {
        let p = &self.parts;
        if !p.extra.cancel() {
            return false;
        }
        // Released after the handle is consistent again: a finaliser may run.
        drop((p.callback.take(), p.args.take()));
        true
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.parts.extra.cancelled()
    }

    /// The context the callback runs in (`None` once cleared by the cycle collector).
    pub(crate) fn context<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.parts.context.get(py)
    }
}

/// A handle as the loop holds it while it is queued: out of the cycle collector's sight, and
/// so is the context copied for it. One word: the reference to the handle.
///
/// A queued handle is referenced by the loop, which the collector cannot see, so it is never
/// garbage while queued: traversing it in every collection is pure cost (a batch of queued
/// callbacks made collections the largest part of `call_soon`). The handle is untracked when
/// queued and tracked again when the loop lets it go, if anything else still references it
/// (then it may end up in a cycle, e.g. with the object whose method it calls). The same
/// holds for the `contextvars.Context` copied for the handle (`call_soon` without a
/// `context`) when only the handle references it: it is untracked while queued (the handle's
/// [`CTX_UNTRACKED`] mark says so) and tracked again before the handle could let it go (see
/// [`Parts::settle_context`]), so that it is never freed untracked (a context's deallocation
/// assumes it is tracked).
pub struct Queued<T: HandleType> {
    h: Option<Py<T>>,
}

// One word, the size of a slot of the loop's queues.
const _: () = assert!(std::mem::size_of::<Queued<Handle>>() == std::mem::size_of::<usize>());

/// `Handle` and `TimerHandle`: a handle type and its [`Handle`] part.
pub trait HandleType: PyClass {
    /// `h` as a [`Handle`].
    fn base<'a>(h: &'a Bound<'_, Self>) -> &'a Handle;
}

impl HandleType for Handle {
    #[inline(always)]
    fn base<'a>(h: &'a Bound<'_, Self>) -> &'a Handle {
        h.get()
    }
}

impl HandleType for TimerHandle {
    #[inline(always)]
    fn base<'a>(h: &'a Bound<'_, Self>) -> &'a Handle {
        h.as_super().get()
    }
}

impl<T: HandleType> Queued<T> {
    /// Queues `h` (a new reference, untracked, its own context too).
    pub fn new(h: &Bound<'_, T>) -> Queued<T> {
        // SAFETY: `h` is a live object of a GC type (every `#[pyclass]` is), the GIL is held;
        // untracking a tracked object is always allowed (and a no-op on an untracked one).
        unsafe { ffi::PyObject_GC_UnTrack(h.as_ptr().cast()) };
        let p = &T::base(h).parts;
        if p.extra.copied() {
            let c = p.context.as_ptr();
            // SAFETY: the context copied for the handle, which the handle holds (see
            // [`COPIED`]) and the caller keeps alive; GIL held. Only the handle references it
            // (count 1): it is untracked, marked, and tracked again before the handle releases
            // it (`Parts::settle_context`), which it does not while queued (see there).
            unsafe {
                if !c.is_null() && ffi::Py_REFCNT(c) == 1 {
                    ffi::PyObject_GC_UnTrack(c.cast());
                    p.extra.mark_untracked();
                }
            }
        }
        Queued {
            h: Some(h.clone().unbind()),
        }
    }

    /// The loop lets the handle go to run it.
    pub fn take<'py>(mut self, py: Python<'py>) -> Bound<'py, T> {
        let h = self.h.take().expect("taken once").into_bound(py);
        T::base(&h).parts.settle_context();
        retrack(&h);
        h
    }
}

impl<T: HandleType> Drop for Queued<T> {
    fn drop(&mut self) {
        // Dropped without running (cancelled timer, closed loop): always where the GIL is
        // held and PyO3 knows it, so attaching is only a count.
        if let Some(h) = self.h.take() {
            Python::attach(|py| {
                let h = h.into_bound(py);
                T::base(&h).parts.settle_context();
                retrack(&h);
            });
        }
    }
}

/// Makes sure the cycle collector sees `h` (a handle just made that the loop does not queue,
/// an fd watcher's: a handle taken from the free list starts untracked; a context untracked
/// while its handle was queued).
pub fn track<T>(h: &Bound<'_, T>) {
    let p = h.as_ptr();
    // SAFETY: `p` is a live object of a GC type (a `#[pyclass]` with `__traverse__`, a
    // context), the GIL is held; it is tracked only if it is not already.
    unsafe {
        if ffi::PyObject_GC_IsTracked(p) == 0 {
            ffi::PyObject_GC_Track(p.cast());
        }
    }
}

/// Tracks `h` again if something besides the caller references it.
fn retrack<T>(h: &Bound<'_, T>) {
    let p = h.as_ptr();
    // SAFETY: `p` is a live object (the caller holds a reference) of a GC type; the GIL is
    // held; it is tracked only if it is not already.
    unsafe {
        if ffi::Py_REFCNT(p) > 1 && ffi::PyObject_GC_IsTracked(p) == 0 {
            ffi::PyObject_GC_Track(p.cast());
        }
    }
}

/// Calls `callback(*args)` with `context` entered.
fn call_in_context<'py>(
    py: Python<'py>,
    context: &Bound<'py, PyAny>,
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `context` is a `contextvars.Context` (every handle gets one from
    // `copy_context()` or from a caller that passed one, checked in `check_context`); the
    // GIL is held.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a call with the tuple's items as the argument vector (vectorcall: no argument
    // tuple is built or unpacked on the way); the tuple outlives the call; GIL held.
    let result = unsafe {
        let n = ffi::PyTuple_GET_SIZE(args.as_ptr());
        let items = (*args.as_ptr().cast::<ffi::PyTupleObject>())
            .ob_item
            .as_ptr();
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_Vectorcall(callback.as_ptr(), items, n as usize, std::ptr::null_mut()),
        )
    };
    // SAFETY: as above; exits the context entered just before.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    result
}

/// Runs the handle: calls its callback in its context unless it was cancelled. An exception
/// goes to the exception handler of the loop (`state`, or the running loop); `Err` is a
/// `KeyboardInterrupt` / `SystemExit` of the callback, or an error of the exception handler,
/// which the caller must let end the run.
///
/// `py` may come from a run that holds the GIL while PyO3 considers the thread detached (see
/// [`crate::gil`]): everything made here is a `Bound`, released at once; the error path
/// attaches to PyO3 properly.
pub fn run(py: Python<'_>, h: &Bound<'_, Handle>, state: Option<&State>) -> PyResult<()> {
    // SAFETY: reading the reference count of a live object, GIL held.
    if unsafe { ffi::Py_REFCNT(h.as_ptr()) } == 1 && !state.is_some_and(|s| s.flags.debug()) {
        return run_last(py, h, state);
    }
    let p = &h.get().parts;
    if p.extra.cancelled() {
        return Ok(());
    }
    let (callback, args, context) = match (p.callback.get(py), p.args.get(py), p.context.get(py)) {
        (Some(c), Some(a), Some(x)) => (c, a, x),
        _ => return Ok(()),
    };
    let started = state.filter(|s| s.flags.debug()).map(|_| Instant::now());
    match call_in_context(py, &context, &callback, &args) {
        Ok(value) => drop(value),
        Err(err) => Python::attach(|py| {
            if err.is_instance_of::<PyKeyboardInterrupt>(py)
                || err.is_instance_of::<PySystemExit>(py)
            {
                return Err(err);
            }
            report(py, h, state, err, &callback, &args)
        })?,
    }
    if let (Some(started), Some(state)) = (started, state) {
        let took = started.elapsed().as_secs_f64();
        if took >= state.flags.slow() {
            Python::attach(|py| -> PyResult<()> {
                if let Some(pyloop) = &*state.pyloop.borrow() {
                    pyloop
                        .bind(py)
                        .call_method1(intern!(py, "_log_slow_callback"), (h, took))?;
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// [`run`] of a handle that only the caller references (a queued handle nobody kept, once
/// the loop let it go): nothing else can reach it while its callback runs, so the callback,
/// its arguments and its context are moved out of it for the call instead of being
/// referenced once more, and released after it. They are put back before an error is
/// reported, whose context shows the handle.
fn run_last(py: Python<'_>, h: &Bound<'_, Handle>, state: Option<&State>) -> PyResult<()> {
    let p = &h.get().parts;
    if p.extra.cancelled() {
        return Ok(());
    }
    let (callback, args, context) = match (p.callback.take(), p.args.take(), p.context.take()) {
        (Some(c), Some(a), Some(x)) => (c, a, x),
        (c, a, x) => {
            // The slots were empty: nothing is released here.
            p.callback.put(c);
            p.args.put(a);
            p.context.put(x);
            return Ok(());
        }
    };
    let r = call_in_context(py, context.bind(py), callback.bind(py), args.bind(py));
    match r {
        Ok(value) => {
            drop(value);
            // Released after the call (finalisers may run).
            drop((callback, args, context));
            Ok(())
        }
        Err(err) => {
            // Back into the empty slots (nothing else reached the handle meanwhile).
            p.callback.put(Some(callback));
            p.args.put(Some(args));
            p.context.put(Some(context));
            Python::attach(|py| {
                if err.is_instance_of::<PyKeyboardInterrupt>(py)
                    || err.is_instance_of::<PySystemExit>(py)
                {
                    return Err(err);
                }
                report_error(py, h, state, err)
            })
        }
    }
}

/// Sends `err`, raised while the handle ran, to the exception handler as the error of its
/// callback.
pub fn report_error(
    py: Python<'_>,
    h: &Bound<'_, Handle>,
    state: Option<&State>,
    err: PyErr,
) -> PyResult<()> {
    let p = &h.get().parts;
    match (p.callback.get(py), p.args.get(py)) {
        (Some(c), Some(a)) => report(py, h, state, err, &c, &a),
        // Cancelled meanwhile: the error still deserves a report.
        _ => report(
            py,
            h,
            state,
            err,
            &py.None().into_bound(py),
            &PyTuple::empty(py),
        ),
    }
}

/// Sends the exception of a callback to the exception handler with asyncio's context:
/// `message`, `exception`, `handle` and, in debug mode, `source_traceback`.
fn report(
    py: Python<'_>,
    h: &Bound<'_, Handle>,
    state: Option<&State>,
    err: PyErr,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<()> {
    let tb = h.get().parts.extra.traceback(py);
    let debug = tb.is_some();
    let source = crate::format_callback_source(py, callback, args, debug)?;
    let ctx = PyDict::new(py);
    ctx.set_item("message", format!("Exception in callback {source}"))?;
    ctx.set_item("exception", err.value(py))?;
    ctx.set_item("handle", h)?;
    if let Some(tb) = tb {
        ctx.set_item("source_traceback", tb)?;
    }
    let pyloop = state.and_then(|s| s.pyloop.borrow().as_ref().map(|l| l.clone_ref(py)));
    match pyloop {
        Some(l) => l
            .bind(py)
            .call_method1(intern!(py, "call_exception_handler"), (ctx,))?,
        None => crate::helpers(py)?
            .report_without_loop
            .bind(py)
            .call1((ctx,))?,
    };
    Ok(())
}

#[pymethods]
impl Handle {
    /// What the handle references, for the cycle collector (a protocol that keeps its timer
    /// handle, whose callback is a method of the protocol, is a cycle).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let p = &self.parts;
        p.callback.visit(&visit)?;
        p.args.visit(&visit)?;
        p.context.visit(&visit)?;
        p.extra.visit(&visit)
    }

    /// Drops the references (the cycle collector breaks a cycle through the handle).
    fn __clear__(&self) {
        let p = &self.parts;
        p.settle_context();
        let parts = (p.callback.take(), p.args.take(), p.context.take());
        p.extra.clear_traceback();
        drop(parts);
    }

    /// Cancels the callback: it will not run, and its references are dropped now.
    fn cancel(&self) {
        self.cancel_parts();
    }

    /// Whether `cancel()` was called.
    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.parts.context.get(py).map(Bound::unbind)
    }

    /// Runs the callback now (as the loop does).
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let state = running::get();
        run(slf.py(), slf, state.as_deref())
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.parts.callback.get(py).map(Bound::unbind)
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.parts.args.get(py).map(Bound::unbind)
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.is_cancelled()
    }

    #[getter]
    fn _context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.get_context(py)
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.parts.extra.traceback(py).map(Bound::unbind)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        describe(
            slf.py(),
            slf.get(),
            slf.get_type().qualname()?.to_string(),
            None,
        )
    }
}

/// `<Handle cancelled callback(args) at file:line created at file:line>`.
fn describe(py: Python<'_>, h: &Handle, name: String, when: Option<f64>) -> PyResult<String> {
    let p = &h.parts;
    let (callback, args, cancelled, tb) = (
        p.callback.get(py),
        p.args.get(py),
        p.extra.cancelled(),
        p.extra.traceback(py),
    );
    let mut out = vec![name];
    if cancelled {
        out.push("cancelled".into());
    }
    if let Some(when) = when {
        out.push(format!("when={when}"));
    }
    if let (Some(c), Some(a)) = (callback, args) {
        let source = crate::format_callback_source(py, &c, &a, tb.is_some())?;
        out.push(source.to_string());
    }
    if let Some(tb) = tb {
        if tb.len()? > 0 {
            let frame = tb.get_item(-1)?;
            let file = frame.get_item(0)?;
            let line = frame.get_item(1)?;
            out.push(format!("created at {file}:{line}"));
        }
    }
    Ok(format!("<{}>", out.join(" ")))
}

/// A callback scheduled with `call_later` or `call_at` (asyncio's `TimerHandle`).
#[pyclass(module = "evloop", name = "TimerHandle", extends = Handle, frozen)]
// Allocated from a free list, as `Handle` (see [`crate::pool`]).
pub struct TimerHandle {
    /// When it is due, in the loop's `time()`.
    when: f64,
    /// The timer of the loop core, to cancel it there too (loop thread only).
    timer: ThreadBound<RefCell<Option<loop_timers::TimerHandle>>>,
}

impl TimerHandle {
    /// A timer handle due at `when`; the core timer is attached with [`TimerHandle::attach`].
    pub fn new(when: f64) -> TimerHandle {
        TimerHandle {
            when,
            timer: ThreadBound::new(RefCell::new(None)),
        }
    }

    /// Keeps the core timer, to cancel it with the handle.
    pub fn attach(&self, t: loop_timers::TimerHandle) {
        if let Some(cell) = self.timer.get() {
            *cell.borrow_mut() = Some(t);
        }
    }
}

#[pymethods]
impl TimerHandle {
    /// When the callback is due, in the loop's `time()`.
    fn when(&self) -> f64 {
        self.when
    }

    /// Cancels the timer: it will not run, its references are dropped now and, on the loop's
    /// thread, it leaves the loop's timer queue.
    fn cancel(slf: &Bound<'_, Self>) {
        let base = slf.as_super().get();
        if base.cancel_parts() {
            if let Some(cell) = slf.get().timer.get() {
                if let Some(t) = cell.borrow_mut().take() {
                    t.cancel();
                }
            }
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let name = slf.get_type().qualname()?.to_string();
        describe(slf.py(), slf.as_super().get(), name, Some(slf.get().when))
    }

    fn __hash__(&self) -> u64 {
        self.when.to_bits()
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (slf.get().when, other.get().when);
        let same = slf.is(other);
        let r = match op {
            CompareOp::Lt => a < b,
            CompareOp::Le => a < b || same || a == b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a > b || same || a == b,
            CompareOp::Eq => same,
            CompareOp::Ne => !same,
        };
        Ok(r.into_pyobject(py)?.to_owned().into_any().unbind())
    }
}
