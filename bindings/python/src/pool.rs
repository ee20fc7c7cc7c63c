//! The free lists of `Handle` and `TimerHandle` objects.
//!
//! A callback scheduled and run allocates no new handle object in the steady state: a freed
//! handle's memory goes onto a stack of its type and the next handle of that type takes it
//! from there, so that the cycle collector's allocation count does not grow with every
//! `call_soon` (with a fresh object per callback a loop of tasks triggered a collection every
//! few hundred callbacks). PyO3's `freelist` option does the same behind a mutex (it supports
//! free-threaded Python), which cost some 150 instructions per handle; these stacks are
//! guarded by the GIL, which every `tp_alloc` and `tp_free` call holds (this package targets
//! CPython with the GIL). [`install`] puts the two functions into the types' `tp_alloc` and
//! `tp_free` slots. A handle taken from a stack starts untracked by the cycle collector, as
//! with PyO3's free list: see [`crate::handle::track`].
//!
//! `Handle` objects are also made and destroyed here without PyO3's generic machinery
//! ([`new_handle`], and the type's `tp_dealloc`): PyO3's `Py::new` and its `tp_dealloc`
//! trampoline (a thread-local count of the GIL, a panic guard, slot look-ups) cost some 100
//! instructions per callback scheduled. The object is PyO3's layout for a frozen class
//! without dict or weak references, the Rust value right after the object header; where it
//! lies is measured on a handle made by PyO3 itself when the module is imported, and checked
//! against the type's size, so a layout that differs (another PyO3 version) turns the fast
//! path off instead of corrupting memory.

use std::cell::{Cell, UnsafeCell};
use std::ffi::c_void;
use std::ptr;

use pyo3::prelude::*;
use pyo3::{ffi, PyTypeInfo};

use crate::handle::{Handle, TimerHandle};

/// How many freed objects each stack keeps.
const CAPACITY: usize = 1024;

/// One type's stack of freed objects.
struct Stack {
    /// The type whose exact instances the stack keeps (subclasses are allocated normally).
    ty: *mut ffi::PyTypeObject,
    len: usize,
    items: [*mut ffi::PyObject; CAPACITY],
}

/// The stacks of `Handle` (0) and `TimerHandle` (1).
struct Stacks(UnsafeCell<[Stack; 2]>);

// SAFETY: reached only from `tp_alloc` / `tp_free` and `install`, which CPython calls with the
// GIL held: one thread at a time.
unsafe impl Sync for Stacks {}

static STACKS: Stacks = Stacks(UnsafeCell::new([
    Stack {
        ty: ptr::null_mut(),
        len: 0,
        items: [ptr::null_mut(); CAPACITY],
    },
    Stack {
        ty: ptr::null_mut(),
        len: 0,
        items: [ptr::null_mut(); CAPACITY],
    },
]));

/// `tp_alloc` of the type of stack `K`.
unsafe extern "C" fn alloc<const K: usize>(
    subtype: *mut ffi::PyTypeObject,
    nitems: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: GIL held (CPython calls `tp_alloc` with it): no other access to the stacks.
    let s = unsafe { &mut (*STACKS.0.get())[K] };
    if nitems == 0 && subtype == s.ty && s.len > 0 {
        s.len -= 1;
        let obj = s.items[s.len];
        // SAFETY: memory of a freed instance of exactly `subtype` (its GC header included);
        // `PyObject_Init` sets its type (a new reference to the heap type) and reference count
        // as `PyType_GenericAlloc` would. The rest is initialised by PyO3 after `tp_alloc`.
        unsafe { ffi::PyObject_Init(obj, subtype) };
        return obj;
    }
    if nitems == 0 && subtype == s.ty && UNCOUNTED.0.get() {
        return alloc_uncounted(subtype);
    }
    // SAFETY: the default allocation, GIL held.
    unsafe { ffi::PyType_GenericAlloc(subtype, nitems) }
}

/// Whether handles are allocated uncounted ([`alloc_uncounted`]): set by [`install`] once it
/// has checked that the collector's header is [`GC_HEADER`] bytes, before any handle exists.
struct Flag(Cell<bool>);

// SAFETY: written once by `install` and read by `tp_alloc` / `tp_free`, all with the GIL held.
unsafe impl Sync for Flag {}

static UNCOUNTED: Flag = Flag(Cell::new(false));

/// The bytes CPython keeps in front of an object of a GC type without a managed dict or weak
/// references (this package's handle types): the collector's list links, `PyGC_Head`, two
/// words on CPython with the GIL.
const GC_HEADER: usize = 2 * std::mem::size_of::<usize>();

/// A new, untracked instance of exactly `ty` (a handle type), allocated as
/// `PyType_GenericAlloc` allocates it (zeroed, the collector's header in front, `PyObject_Init`)
/// but not counted towards the collector's threshold of young objects.
///
/// A handle is untracked for as long as the loop queues it (see [`crate::handle::Queued`]),
/// so it cannot be part of a cycle the collector has to find then; counting it made a batch of
/// `call_soon` callbacks start a collection every few hundred handles, each traversing the
/// young generation for nothing. A handle that outlives its run is tracked again then, and the
/// collections that other allocations start see it. Its memory goes back with `PyObject_Free`
/// (see [`free`]), without the uncount that `PyObject_GC_Del` makes.
#[inline(never)]
fn alloc_uncounted(ty: *mut ffi::PyTypeObject) -> *mut ffi::PyObject {
    // SAFETY: GIL held (`tp_alloc`); `ty` is a handle type, a GC type with neither managed
    // dict nor managed weak references, whose instances are `tp_basicsize` bytes behind the
    // collector's header. The memory is zeroed (an all-zero header is an untracked object)
    // and initialised as `PyType_GenericAlloc` does; NULL with `MemoryError` set on failure.
    unsafe {
        let size = (*ty).tp_basicsize as usize;
        let mem = ffi::PyObject_Malloc(GC_HEADER + size).cast::<u8>();
        if mem.is_null() {
            return ffi::PyErr_NoMemory();
        }
        ptr::write_bytes(mem, 0, GC_HEADER + size);
        let obj = mem.add(GC_HEADER).cast::<ffi::PyObject>();
        ffi::PyObject_Init(obj, ty);
        obj
    }
}

/// `tp_free` of the type of stack `K` (and of Python subclasses, which inherit the slot).
unsafe extern "C" fn free<const K: usize>(obj: *mut c_void) {
    let obj = obj.cast::<ffi::PyObject>();
    if obj.is_null() {
        return;
    }
    // SAFETY: GIL held (CPython and PyO3's `tp_dealloc` call `tp_free` with it).
    let s = unsafe { &mut (*STACKS.0.get())[K] };
    // SAFETY: `obj` is the instance being freed; its type is still readable.
    if unsafe { ffi::Py_TYPE(obj) } == s.ty && s.len < CAPACITY {
        s.items[s.len] = obj;
        s.len += 1;
        return;
    }
    // SAFETY: `obj`'s type (read before the memory goes).
    if unsafe { ffi::Py_TYPE(obj) } == s.ty && UNCOUNTED.0.get() {
        // SAFETY: an instance of exactly the handle type, untracked by `tp_dealloc`: its
        // memory starts `GC_HEADER` bytes before it (see `alloc_uncounted`, which did
        // not count it towards the collector's threshold: nor does this).
        unsafe { ffi::PyObject_Free(obj.cast::<u8>().sub(GC_HEADER).cast()) };
        return;
    }
    // SAFETY: an instance of a GC type (every `#[pyclass]` is one) that `tp_dealloc` has
    // finished with: the inverse of `PyType_GenericAlloc`.
    unsafe { ffi::PyObject_GC_Del(obj.cast()) }
}

/// Where a `Handle`'s Rust value lies in its object (bytes from the start), once measured and
/// checked (0: PyO3's own `Py::new` and `tp_dealloc` are used).
struct Offset(Cell<usize>);

// SAFETY: written once by `install` and read by `new_handle` and `dealloc_handle`, all with
// the GIL held: one thread at a time.
unsafe impl Sync for Offset {}

static HANDLE_OFFSET: Offset = Offset(Cell::new(0));

/// A new `Handle` object holding `h`: from the free list when it has one, without PyO3's
/// initialiser (see the module doc).
#[inline]
pub fn new_handle(py: Python<'_>, h: Handle) -> PyResult<Py<Handle>> {
    let off = HANDLE_OFFSET.0.get();
    if off == 0 {
        return Py::new(py, h);
    }
    let ty = Handle::type_object_raw(py);
    // SAFETY: GIL held; `ty` is the `Handle` type, whose `tp_alloc` is `alloc::<0>`.
    let obj = unsafe { alloc::<0>(ty, 0) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a fresh instance of exactly `Handle`, its value at `off` (measured and checked
    // in `install`) uninitialised: written once here, as PyO3's initialiser would (the other
    // parts of PyO3's layout for this class have no bytes). `obj` is a new reference.
    unsafe {
        ptr::write(obj.cast::<u8>().add(off).cast::<Handle>(), h);
        Ok(Bound::from_owned_ptr(py, obj)
            .cast_into_unchecked::<Handle>()
            .unbind())
    }
}

/// `tp_dealloc` of `Handle` (and of Python subclasses, which reach it through theirs): what
/// PyO3's does for a frozen class without dict or weak references, without its trampoline.
unsafe extern "C" fn dealloc_handle(obj: *mut ffi::PyObject) {
    let off = HANDLE_OFFSET.0.get();
    // SAFETY: CPython calls `tp_dealloc` with the GIL held on an object of `Handle` or a
    // subclass, whose layout starts with `Handle`'s; nothing references it any more. It is
    // untracked before its fields go; its value is dropped once (dropping references only:
    // no panic); then the memory goes to the actual type's `tp_free` and the instance's
    // reference to its heap type is released, as PyO3's `tp_dealloc` does.
    unsafe {
        ffi::PyObject_GC_UnTrack(obj.cast());
        ptr::drop_in_place(obj.cast::<u8>().add(off).cast::<Handle>());
        let ty = ffi::Py_TYPE(obj);
        match (*ty).tp_free {
            Some(free) => free(obj.cast()),
            None => ffi::PyObject_GC_Del(obj.cast()),
        }
        ffi::Py_DECREF(ty.cast());
    }
}

/// Measures where PyO3 puts a `Handle`'s value and, if the layout is the expected one (the
/// value right after the object header, the type's size that of both), takes over the
/// creation and `tp_dealloc` of `Handle` objects.
fn install_handle_fast_path(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> PyResult<()> {
    let probe = Py::new(
        py,
        Handle::new(
            py.None(),
            pyo3::types::PyTuple::empty(py).unbind(),
            py.None(),
            false,
            None,
        ),
    )?;
    let off = (probe.get() as *const Handle as usize).wrapping_sub(probe.as_ptr() as usize);
    // `sys.getsizeof` counts the collector's header in front of the object: it must be the
    // two words `alloc_uncounted` puts there. The probe itself was allocated (and is freed)
    // the default way: the flag is set after it is gone.
    let total: usize = py
        .import("sys")?
        .getattr("getsizeof")?
        .call1((probe.bind(py),))?
        .extract()?;
    let header = std::mem::size_of::<ffi::PyObject>();
    let align = std::mem::align_of::<Handle>().max(std::mem::align_of::<ffi::PyObject>());
    let size = (off + std::mem::size_of::<Handle>()).div_ceil(align) * align;
    // SAFETY: GIL held; reading the size of a live type.
    let basic = unsafe { (*ty).tp_basicsize } as usize;
    drop(probe);
    // Both handle types have that header (GC types without managed dict or weak references).
    UNCOUNTED.0.set(total == basic + GC_HEADER);
    if off == header.div_ceil(std::mem::align_of::<Handle>()) * std::mem::align_of::<Handle>()
        && basic == size
    {
        HANDLE_OFFSET.0.set(off);
        // SAFETY: GIL held; the type has no instance alive (the probe is gone), and every
        // instance from now on is freed by `dealloc_handle`, which matches the measured layout.
        unsafe {
            (*ty).tp_dealloc = Some(dealloc_handle);
            ffi::PyType_Modified(ty);
        }
    }
    Ok(())
}

/// Puts the stacks' `tp_alloc` / `tp_free` into the `Handle` and `TimerHandle` types (once,
/// when the module is imported, before any handle exists), and the fast creation and
/// `tp_dealloc` of `Handle` when the layout allows.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let types = [
        Handle::type_object_raw(py),
        TimerHandle::type_object_raw(py),
    ];
    for (k, ty) in types.into_iter().enumerate() {
        // SAFETY: GIL held; the types are PyO3's heap types, just created, with no instance
        // yet: their allocation slots may be replaced (`PyType_Modified` drops any cached
        // lookups).
        unsafe {
            (*STACKS.0.get())[k].ty = ty;
            (*ty).tp_alloc = Some(if k == 0 { alloc::<0> } else { alloc::<1> });
            (*ty).tp_free = Some(if k == 0 { free::<0> } else { free::<1> });
            ffi::PyType_Modified(ty);
        }
    }
    install_handle_fast_path(py, types[0])
}
