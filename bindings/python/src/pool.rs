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

use std::cell::UnsafeCell;
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
    // SAFETY: the default allocation, GIL held.
    unsafe { ffi::PyType_GenericAlloc(subtype, nitems) }
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
    // SAFETY: an instance of a GC type (every `#[pyclass]` is one) that `tp_dealloc` has
    // finished with: the inverse of `PyType_GenericAlloc`.
    unsafe { ffi::PyObject_GC_Del(obj.cast()) }
}

/// Puts the stacks' `tp_alloc` / `tp_free` into the `Handle` and `TimerHandle` types (once,
/// when the module is imported, before any handle exists).
pub fn install(py: Python<'_>) {
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
}
