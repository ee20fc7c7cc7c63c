//! Context variables: asyncio's `contextvars`, for one loop thread.
//!
//! A [`ContextVar`] is a key (declared as a `static`); a context maps keys to values. Each
//! thread has a *current* context. Every callback runs in the context that was current when it
//! was scheduled (a snapshot taken by `call_soon`, timers, `add_reader`, ...), and every task
//! runs in its own context, a snapshot of its creator's taken by `create_task`. What a callback
//! or task sets is visible to what it schedules, never to its scheduler: request ids, tracing
//! spans or deadlines flow down the call graph without being passed by hand.
//!
//! Snapshots are copy-on-write: scheduling costs a reference-count increment (nothing at all
//! while no variable was ever set on the thread), and `set` copies the small map only when it
//! is shared. Callbacks of [`call_soon_threadsafe`](crate::Remote::call_soon_threadsafe) and
//! I/O handlers run in an empty context (a context cannot cross threads;
//! a transport that wants its creator's context keeps a [`Context`] and uses
//! [`Context::run`]).
//!
//! ```
//! use loop_core::{ContextVar, EventLoop};
//!
//! static REQUEST: ContextVar<u32> = ContextVar::new("request");
//!
//! let lp = EventLoop::new().unwrap();
//! REQUEST.set(1);
//! lp.call_soon(|_| {
//!     assert_eq!(REQUEST.get(), Some(1)); // the scheduler's value
//!     REQUEST.set(2);                      // stays in this callback
//! }).unwrap();
//! lp.call_soon(|lp| lp.stop()).unwrap();
//! lp.run_forever().unwrap();
//! assert_eq!(REQUEST.get(), Some(1));
//! ```

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The variables of a context: (variable id, value). Contexts hold few variables; a vector
/// beats a map for them.
pub(crate) type Map = Vec<(usize, Rc<dyn Any>)>;

/// A context as stored in handles and tasks: `None` is the empty context.
pub(crate) type Snapshot = Option<Rc<Map>>;

thread_local! {
    /// The current context of this thread.
    static CURRENT: Cell<Snapshot> = const { Cell::new(None) };
    /// False until a context variable is set or a non-empty context entered on this thread.
    /// Until then every context of the thread is empty, and the loop skips all context
    /// switching: a destructor-free thread-local is a plain load, where `CURRENT` (which holds
    /// an `Rc`) costs a registration check on each access.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// True once contexts are in use on this thread (see `ACTIVE`).
#[inline]
pub(crate) fn active() -> bool {
    ACTIVE.try_with(Cell::get).unwrap_or(true)
}

/// The current context, shared (copy-on-write).
#[inline]
pub(crate) fn snapshot() -> Snapshot {
    if !active() {
        return None;
    }
    CURRENT
        .try_with(|c| {
            let v = c.take();
            let r = v.clone();
            c.set(v);
            r
        })
        .unwrap_or(None)
}

/// Makes `s` the current context; returns the previous one.
#[inline]
pub(crate) fn enter(s: Snapshot) -> Snapshot {
    if s.is_none() && !active() {
        return None;
    }
    if s.is_some() {
        let _ = ACTIVE.try_with(|a| a.set(true));
    }
    CURRENT.try_with(|c| c.replace(s)).unwrap_or(None)
}

/// Runs `f` with the current context, mutably (copy-on-write).
fn with_current_mut<R>(f: impl FnOnce(&mut Map) -> R) -> R {
    let _ = ACTIVE.try_with(|a| a.set(true));
    let mut cur = enter(None);
    let r = f(Rc::make_mut(cur.get_or_insert_with(Default::default)));
    if cur.as_ref().is_some_and(|m| m.is_empty()) {
        cur = None;
    }
    enter(cur);
    r
}

/// Ids of context variables, from 1.
static NEXT_VAR: AtomicUsize = AtomicUsize::new(1);

/// A context variable (Python's `ContextVar`): declare it as a `static`; its value is looked up
/// in the current context.
///
/// ```
/// use loop_core::ContextVar;
/// static USER: ContextVar<String> = ContextVar::new("user");
/// assert_eq!(USER.get(), None);
/// let token = USER.set("ada".to_string());
/// assert_eq!(USER.get().as_deref(), Some("ada"));
/// USER.reset(token);
/// assert_eq!(USER.get(), None);
/// ```
pub struct ContextVar<T> {
    /// The name, for `Debug`.
    name: &'static str,
    /// The id, assigned on first use (0 until then).
    id: AtomicUsize,
    /// The value type.
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> ContextVar<T> {
    /// A new variable.
    ///
    /// ```
    /// static DEADLINE: loop_core::ContextVar<std::time::Instant> =
    ///     loop_core::ContextVar::new("deadline");
    /// assert_eq!(DEADLINE.name(), "deadline");
    /// ```
    pub const fn new(name: &'static str) -> ContextVar<T> {
        ContextVar {
            name,
            id: AtomicUsize::new(0),
            _value: PhantomData,
        }
    }

    /// The variable's name.
    ///
    /// ```
    /// static V: loop_core::ContextVar<u8> = loop_core::ContextVar::new("v");
    /// assert_eq!(V.name(), "v");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn id(&self) -> usize {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        let new = NEXT_VAR.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => new,
            Err(existing) => existing,
        }
    }

    /// The value in the current context, cloned.
    ///
    /// ```
    /// static V: loop_core::ContextVar<u8> = loop_core::ContextVar::new("v");
    /// V.set(3);
    /// assert_eq!(V.get(), Some(3));
    /// ```
    pub fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        self.with(|v| v.cloned())
    }

    /// Calls `f` with a reference to the value in the current context.
    ///
    /// ```
    /// static V: loop_core::ContextVar<Vec<u8>> = loop_core::ContextVar::new("v");
    /// V.set(vec![1, 2]);
    /// assert_eq!(V.with(|v| v.map_or(0, |v| v.len())), 2);
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let id = self.id();
        let cur = snapshot();
        let v = cur
            .as_ref()
            .and_then(|m| m.iter().find(|(k, _)| *k == id))
            .and_then(|(_, v)| v.downcast_ref::<T>());
        f(v)
    }

    /// Sets the value in the current context; the token restores the previous value.
    ///
    /// ```
    /// static V: loop_core::ContextVar<u8> = loop_core::ContextVar::new("v");
    /// let t = V.set(1);
    /// V.set(2);
    /// V.reset(t);
    /// assert_eq!(V.get(), None);
    /// ```
    pub fn set(&self, value: T) -> Token<T> {
        let id = self.id();
        let value: Rc<dyn Any> = Rc::new(value);
        let old = with_current_mut(|m| match m.iter_mut().find(|(k, _)| *k == id) {
            Some(slot) => Some(std::mem::replace(&mut slot.1, value)),
            None => {
                m.push((id, value));
                None
            }
        });
        Token {
            id,
            old,
            _value: PhantomData,
        }
    }

    /// Restores the value the variable had before the `set` that returned `token`, in the
    /// current context.
    ///
    /// ```
    /// static V: loop_core::ContextVar<&str> = loop_core::ContextVar::new("v");
    /// V.set("a");
    /// let t = V.set("b");
    /// V.reset(t);
    /// assert_eq!(V.get(), Some("a"));
    /// ```
    pub fn reset(&self, token: Token<T>) {
        let Token { id, old, .. } = token;
        with_current_mut(|m| {
            let pos = m.iter().position(|(k, _)| *k == id);
            match (pos, old) {
                (Some(i), Some(old)) => m[i].1 = old,
                (Some(i), None) => {
                    m.remove(i);
                }
                (None, Some(old)) => m.push((id, old)),
                (None, None) => {}
            }
        });
    }
}

impl<T> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ContextVar name={:?}>", self.name)
    }
}

/// What [`ContextVar::set`] returns: [`ContextVar::reset`] takes it to restore the previous
/// value.
///
/// ```
/// static V: loop_core::ContextVar<u8> = loop_core::ContextVar::new("v");
/// let token: loop_core::Token<u8> = V.set(1);
/// V.reset(token);
/// ```
pub struct Token<T> {
    /// The variable.
    id: usize,
    /// The value before the `set`.
    old: Option<Rc<dyn Any>>,
    /// The value type.
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Token var={} had_value={}>",
            self.id,
            self.old.is_some()
        )
    }
}

/// A context: a snapshot of context variables (Python's `Context`, from `copy_context()`).
///
/// Cheap to clone; clones are independent (copy-on-write). [`Context::run`] runs a closure in
/// it — for example `create_task` or `call_soon` inside `run` gives the task or callback this
/// context (asyncio's `context=` argument).
///
/// ```
/// use loop_core::{Context, ContextVar, EventLoop};
/// static TENANT: ContextVar<&str> = ContextVar::new("tenant");
///
/// let lp = EventLoop::new().unwrap();
/// let mut ctx = Context::empty();
/// ctx.run(|| TENANT.set("acme"));
/// let t = ctx.run(|| lp.create_task(async { TENANT.get() })).unwrap();
/// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), Some("acme"));
/// assert_eq!(TENANT.get(), None);
/// ```
#[derive(Clone, Default)]
pub struct Context {
    /// The variables.
    pub(crate) map: Snapshot,
}

impl Context {
    /// A snapshot of the current context (Python's `copy_context()`).
    ///
    /// ```
    /// static V: loop_core::ContextVar<u8> = loop_core::ContextVar::new("v");
    /// V.set(1);
    /// let ctx = loop_core::Context::current();
    /// V.set(2);
    /// assert_eq!(ctx.get(&V), Some(1));
    /// ```
    #[inline]
    pub fn current() -> Context {
        Context { map: snapshot() }
    }

    /// A context with no variables set.
    ///
    /// ```
    /// assert!(loop_core::Context::empty().is_empty());
    /// ```
    pub fn empty() -> Context {
        Context { map: None }
    }

    /// Runs `f` with this context as the current one; what `f` sets stays in this context.
    ///
    /// ```
    /// static V: loop_core::ContextVar<u8> = loop_core::ContextVar::new("v");
    /// let mut ctx = loop_core::Context::empty();
    /// ctx.run(|| V.set(5));
    /// assert_eq!(V.get(), None);
    /// assert_eq!(ctx.get(&V), Some(5));
    /// ```
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        /// Restores the previous context even if `f` panics.
        struct Restore<'a> {
            ctx: &'a mut Context,
            prev: Option<Snapshot>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(prev) = self.prev.take() {
                    self.ctx.map = enter(prev);
                }
            }
        }
        let prev = enter(self.map.take());
        let _restore = Restore {
            ctx: self,
            prev: Some(prev),
        };
        f()
    }

    /// The value of `var` in this context.
    ///
    /// ```
    /// static V: loop_core::ContextVar<u8> = loop_core::ContextVar::new("v");
    /// assert_eq!(loop_core::Context::empty().get(&V), None);
    /// ```
    pub fn get<T: Clone + 'static>(&self, var: &ContextVar<T>) -> Option<T> {
        let id = var.id();
        self.map
            .as_ref()?
            .iter()
            .find(|(k, _)| *k == id)
            .and_then(|(_, v)| v.downcast_ref::<T>())
            .cloned()
    }

    /// Number of variables set.
    ///
    /// ```
    /// assert_eq!(loop_core::Context::empty().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// True if no variable is set.
    ///
    /// ```
    /// assert!(loop_core::Context::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Context vars={}>", self.len())
    }
}
