//! [`ProtocolRef`]: the typed handle to a protocol a transport owns, returned beside the
//! transport by every call that asyncio answers with `(transport, protocol)`.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

/// What a [`ProtocolRef`] reaches: a transport's protocol cell.
pub trait ProtocolHost {
    /// Calls `f` with the protocol as `&mut dyn Any` (then, if `f` answered false, with the
    /// transport's own wrapper of it); false if the protocol is gone or one of its methods
    /// runs. Notifications raised meanwhile are delivered after.
    fn with_any(&self, f: &mut dyn FnMut(&mut dyn Any) -> bool) -> bool;
    /// A `ProtocolRef` was made.
    fn add_ref(&self);
    /// A `ProtocolRef` was dropped.
    fn release_ref(&self);
    /// The transport, as its `Debug` shows it.
    fn describe(&self) -> String;
}

/// A typed handle to the protocol of a transport: asyncio's protocol object, returned beside
/// the transport by `create_connection`, `create_datagram_endpoint`, `connect_read_pipe`,
/// `subprocess_exec` and the like (the transport owns the protocol; this reaches it).
///
/// It keeps the protocol alive: after `connection_lost` the transport lets go of its protocol,
/// but a protocol that a `ProtocolRef` holds stays readable through [`with`](ProtocolRef::with)
/// until the last `ProtocolRef` is dropped. Cheap to clone.
///
/// ```
/// use loop_transport::{Protocol, Transport, TransportOptions};
/// struct Count(usize);
/// impl Protocol for Count {
///     fn data_received(&mut self, data: &[u8]) {
///         self.0 += data.len();
///     }
/// }
/// let lp = loop_core::EventLoop::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// let t = Transport::new(&lp, a, Count(0), TransportOptions::socket())?;
/// let p = t.protocol_ref::<Count>();
/// std::io::Write::write_all(&mut &b, b"hello")?;
/// drop(b); // EOF closes the transport
/// while !t.is_closing() || t.get_loop().is_some() {
///     lp.run_until_complete(async {})?;
/// }
/// assert_eq!(p.with(|c| c.0), Some(5)); // after connection_lost
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProtocolRef<P> {
    /// The transport's protocol cell.
    host: Rc<dyn ProtocolHost>,
    /// The protocol type.
    _p: PhantomData<fn() -> P>,
}

impl<P: 'static> ProtocolRef<P> {
    /// A handle through `host` (transports make these).
    #[doc(hidden)]
    pub fn new(host: Rc<dyn ProtocolHost>) -> ProtocolRef<P> {
        host.add_ref();
        ProtocolRef {
            host,
            _p: PhantomData,
        }
    }

    /// Calls `f` with the protocol. `None` if the protocol is not a `P` (replaced with
    /// `set_protocol` by one of another type), or while one of its methods runs (it has
    /// `&mut self` then). Notifications that `f` raises (a `write` crossing the high-water
    /// mark) are delivered after it returns.
    ///
    /// # Panics
    ///
    /// A panic of `f` unwinds to the caller (the protocol is put back first).
    ///
    /// ```
    /// use loop_transport::{Protocol, Transport, TransportOptions};
    /// struct Counter(u32);
    /// impl Protocol for Counter {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, Counter(5), TransportOptions::socket()).unwrap();
    /// let p = t.protocol_ref::<Counter>();
    /// p.with(|c| c.0 += 1);
    /// assert_eq!(p.with(|c| c.0), Some(6));
    /// assert_eq!(t.protocol_ref::<String>().with(|s| s.len()), None);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        let mut f = Some(f);
        let mut out = None;
        self.host
            .with_any(&mut |any| match any.downcast_mut::<P>() {
                Some(p) => {
                    if let Some(f) = f.take() {
                        out = Some(f(p));
                    }
                    true
                }
                None => false,
            });
        out
    }
}

impl<P> Clone for ProtocolRef<P> {
    fn clone(&self) -> Self {
        self.host.add_ref();
        ProtocolRef {
            host: self.host.clone(),
            _p: PhantomData,
        }
    }
}

impl<P> Drop for ProtocolRef<P> {
    fn drop(&mut self) {
        self.host.release_ref();
    }
}

impl<P> fmt::Debug for ProtocolRef<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<ProtocolRef {} of {}>",
            std::any::type_name::<P>(),
            self.host.describe()
        )
    }
}
