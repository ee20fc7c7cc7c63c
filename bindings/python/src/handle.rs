//! `Handle` and `TimerHandle`: asyncio's handles of scheduled callbacks.
//!
//! A handle holds the callback, its arguments and the `contextvars.Context` it runs in.
//! `cancel()` marks it and drops the callback and arguments at once (what they reference is
//! freed then, not when the callback's turn comes). Running it ([`run`]) enters the context,
//! calls the callback, and sends an exception to the loop's exception handler, except
//! `KeyboardInterrupt` and `SystemExit`, which end the run as in asyncio.

use std::cell::RefCell;
use std::cell::RefMut;
use std::mem::ManuallyDrop;
use std::ops::Deref;
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

/// What a handle holds.
pub struct Parts {
    callback: Option<Owned<PyAny>>,
    args: Option<Owned<PyTuple>>,
    context: Option<Owned<PyAny>>,
    cancelled: bool,
    source_traceback: Option<Owned<PyAny>>,
}

/// A handle's parts, used only with the GIL held (which orders the accesses of different
/// threads), never borrowed while Python code runs.
struct GilCell(RefCell<Parts>);

// SAFETY: every access happens with the GIL held (a handle is reached only from Python
// methods, the loop's callbacks and the cycle collector, all under the GIL): one thread at a
// time, and the GIL's hand-over orders their accesses. This package targets CPython with the
// GIL.
unsafe impl Sync for GilCell {}
// SAFETY: as above; the references inside are Python objects, owned under the GIL.
unsafe impl Send for GilCell {}

/// A callback scheduled with `call_soon`, `call_soon_threadsafe` or `add_reader` (asyncio's
/// `Handle`).
// Allocated from a free list (see [`crate::pool`]): a handle from it starts untracked, see
// [`track`].
#[pyclass(module = "evloop", name = "Handle", subclass, frozen)]
pub struct Handle {
    parts: GilCell,
    /// The address of the context when it was copied for this handle (`call_soon` without a
    /// `context`), else 0. The handle holds that context for as long as it is reachable
    /// (only the cycle collector's `__clear__` of an unreachable handle takes it).
    copied_context: usize,
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
            copied_context: if copied { context.as_ptr() as usize } else { 0 },
            parts: GilCell(RefCell::new(Parts {
                callback: Some(Owned::new(callback)),
                args: Some(Owned::new(args)),
                context: Some(Owned::new(context)),
                cancelled: false,
                source_traceback: source_traceback.map(Owned::new),
            })),
        }
    }

    #[inline]
    fn parts(&self) -> RefMut<'_, Parts> {
        self.parts.0.borrow_mut()
    }

    /// Cancels: marks the handle and drops the callback and its arguments. Returns whether it
    /// was not cancelled before.
    pub fn cancel_parts(&self) -> bool {
        let (callback, args) = {
            let mut p = self.parts();
            if p.cancelled {
                return false;
            }
            p.cancelled = true;
            (p.callback.take(), p.args.take())
        };
        // Dropped after the borrow ends: a finaliser may run.
        drop((callback, args));
        true
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.parts().cancelled
    }

    /// The context the callback runs in (`None` once cleared by the cycle collector).
    pub(crate) fn context<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.parts().context.as_ref().map(|c| c.bind(py).clone())
    }
}

/// A handle as the loop holds it while it is queued: out of the cycle collector's sight, with
/// the context copy it made for itself.
///
/// A queued handle is referenced by the loop, which the collector cannot see, so it is never
/// garbage while queued: traversing it in every collection is pure cost (a batch of queued
/// callbacks made collections the largest part of `call_soon`). The handle is untracked when
/// queued and tracked again when the loop lets it go, if anything else still references it
/// (then it may end up in a cycle, e.g. with the object whose method it calls). The same
/// holds for the `contextvars.Context` copied for the handle (`call_soon` without a
/// `context`): referenced only by the handle, it is untracked while queued and tracked again
/// before the loop lets it go, so that it is never freed untracked.
pub struct Queued<T: PyClass> {
    h: Option<Py<T>>,
    /// The handle's context, when it was untracked here.
    ctx: Option<Py<PyAny>>,
}

impl<T: PyClass> Queued<T> {
    /// Queues `h` (a new reference, untracked); `base` is `h` as a [`Handle`].
    pub fn new(py: Python<'_>, h: &Py<T>, base: &Handle) -> Queued<T> {
        let h = h.clone_ref(py);
        // SAFETY: `h` is a live object of a GC type (every `#[pyclass]` is), the GIL is held;
        // untracking a tracked object is always allowed (and a no-op on an untracked one).
        unsafe { ffi::PyObject_GC_UnTrack(h.as_ptr().cast()) };
        let ctx = match base.copied_context {
            0 => None,
            addr => {
                let c = addr as *mut ffi::PyObject;
                // SAFETY: the context copied for `base`, which `base` holds (see
                // `copied_context`) and the caller keeps alive; GIL held.
                if unsafe { ffi::Py_REFCNT(c) } == 1 {
                    // SAFETY: as above: a live object; this takes a new reference.
                    let c: Py<PyAny> = unsafe { Bound::from_borrowed_ptr(py, c) }.unbind();
                    // SAFETY: a context is a GC type, GIL held; only the handle referenced
                    // it (count 1 before this reference), so nothing frees it while it is
                    // untracked: `ctx` holds it until it is tracked again.
                    unsafe { ffi::PyObject_GC_UnTrack(c.as_ptr().cast()) };
                    Some(c)
                } else {
                    None
                }
            }
        };
        Queued { h: Some(h), ctx }
    }

    /// The loop lets the handle go to run it.
    pub fn take<'py>(mut self, py: Python<'py>) -> Bound<'py, T> {
        if let Some(c) = self.ctx.take() {
            track(&c.into_bound(py));
        }
        let h = self.h.take().expect("taken once").into_bound(py);
        retrack(&h);
        h
    }
}

impl<T: PyClass> Drop for Queued<T> {
    fn drop(&mut self) {
        // Dropped without running (cancelled timer, closed loop): always where the GIL is
        // held and PyO3 knows it, so attaching is only a count.
        if self.h.is_some() || self.ctx.is_some() {
            Python::attach(|py| {
                if let Some(c) = self.ctx.take() {
                    track(&c.into_bound(py));
                }
                if let Some(h) = self.h.take() {
                    retrack(&h.into_bound(py));
                }
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
    let (callback, args, context) = {
        let p = h.get().parts();
        if p.cancelled {
            return Ok(());
        }
        match (&p.callback, &p.args, &p.context) {
            (Some(c), Some(a), Some(x)) => {
                (c.bind(py).clone(), a.bind(py).clone(), x.bind(py).clone())
            }
            _ => return Ok(()),
        }
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
    let (callback, args, context) = {
        let mut p = h.get().parts();
        if p.cancelled {
            return Ok(());
        }
        match (p.callback.take(), p.args.take(), p.context.take()) {
            (Some(c), Some(a), Some(x)) => (c, a, x),
            (c, a, x) => {
                (p.callback, p.args, p.context) = (c, a, x);
                return Ok(());
            }
        }
    };
    let r = call_in_context(py, context.bind(py), callback.bind(py), args.bind(py));
    match r {
        Ok(value) => {
            drop(value);
            // Released after the borrow of the parts ended (finalisers may run).
            drop((callback, args, context));
            Ok(())
        }
        Err(err) => {
            {
                let mut p = h.get().parts();
                (p.callback, p.args, p.context) = (Some(callback), Some(args), Some(context));
            }
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
    let (callback, args) = {
        let p = h.get().parts();
        (
            p.callback.as_ref().map(|c| c.bind(py).clone()),
            p.args.as_ref().map(|a| a.bind(py).clone()),
        )
    };
    match (callback, args) {
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
    let debug = h.get().parts().source_traceback.is_some();
    let source = crate::format_callback_source(py, callback, args, debug)?;
    let ctx = PyDict::new(py);
    ctx.set_item("message", format!("Exception in callback {source}"))?;
    ctx.set_item("exception", err.value(py))?;
    ctx.set_item("handle", h)?;
    if let Some(tb) = &h.get().parts().source_traceback {
        ctx.set_item("source_traceback", tb.bind(py))?;
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
        // The parts are never borrowed while Python code runs, so they are free during a
        // collection; if they were not, skipping the visit only delays collecting this handle.
        if let Ok(p) = self.parts.0.try_borrow() {
            visit.call(p.callback.as_deref())?;
            visit.call(p.args.as_deref())?;
            visit.call(p.context.as_deref())?;
            visit.call(p.source_traceback.as_deref())?;
        }
        Ok(())
    }

    /// Drops the references (the cycle collector breaks a cycle through the handle).
    fn __clear__(&self) {
        let parts = {
            let mut p = self.parts();
            (
                p.callback.take(),
                p.args.take(),
                p.context.take(),
                p.source_traceback.take(),
            )
        };
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
        self.parts().context.as_ref().map(|c| c.clone_ref(py))
    }

    /// Runs the callback now (as the loop does).
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let state = running::get();
        run(slf.py(), slf, state.as_deref())
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.parts().callback.as_ref().map(|c| c.clone_ref(py))
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.parts().args.as_ref().map(|c| c.clone_ref(py))
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
        self.parts()
            .source_traceback
            .as_ref()
            .map(|c| c.clone_ref(py))
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
    let (callback, args, cancelled, tb) = {
        let p = h.parts();
        (
            p.callback.as_ref().map(|c| c.clone_ref(py)),
            p.args.as_ref().map(|a| a.clone_ref(py)),
            p.cancelled,
            p.source_traceback.as_ref().map(|t| t.clone_ref(py)),
        )
    };
    let mut out = vec![name];
    if cancelled {
        out.push("cancelled".into());
    }
    if let Some(when) = when {
        out.push(format!("when={when}"));
    }
    if let (Some(c), Some(a)) = (callback, args) {
        let source = crate::format_callback_source(py, c.bind(py), a.bind(py), tb.is_some())?;
        out.push(source.to_string());
    }
    if let Some(tb) = tb {
        let tb = tb.bind(py);
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
