//! [`ProtocolAny`]: what every protocol trait builds on (downcasting and naming).

use std::any::Any;
use std::io;

/// Downcasting and naming support for protocols, implemented for every `'static` type.
///
/// It is a supertrait of the protocol traits so that a transport can hand its protocol back as
/// its concrete type ([`Transport::with_protocol`](crate::Transport::with_protocol)) and name it in error reports. You never
/// implement it yourself.
///
/// ```
/// use loop_transport::ProtocolAny;
/// struct Echo;
/// let mut e = Echo;
/// assert!(e.as_any_mut().downcast_mut::<Echo>().is_some());
/// assert!(e.protocol_type_name().ends_with("Echo"));
/// ```
pub trait ProtocolAny: Any {
    /// `self` as `&mut dyn Any`.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The type name of the protocol (`std::any::type_name`), used in error reports.
    fn protocol_type_name(&self) -> &'static str;
}

impl<T: Any> ProtocolAny for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn protocol_type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// A subprocess protocol: asyncio's `SubprocessProtocol`. The subprocess transport lives in
/// loop-subprocess; `T` is its type.
///
/// Order (SUB-04): `connection_made` first; per fd, `pipe_data_received`* then one
/// `pipe_connection_lost`; `process_exited` once, in no fixed order relative to the pipe
/// events; `connection_lost` last.
///
/// # Examples
///
/// ```
/// use loop_transport::SubprocessProtocol;
///
/// #[derive(Default)]
/// struct Output {
///     stdout: Vec<u8>,
///     exited: bool,
/// }
///
/// impl<T> SubprocessProtocol<T> for Output {
///     fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
///         if fd == 1 {
///             self.stdout.extend_from_slice(data);
///         }
///     }
///     fn process_exited(&mut self) {
///         self.exited = true;
///     }
/// }
///
/// let mut o = Output::default();
/// SubprocessProtocol::<()>::pipe_data_received(&mut o, 1, b"hi");
/// assert_eq!(o.stdout, b"hi");
/// ```
pub trait SubprocessProtocol<T: ?Sized>: ProtocolAny {
    /// The process was started and its pipes are connected.
    fn connection_made(&mut self, transport: &T) {
        let _ = transport;
    }

    /// The child wrote `data` to its stdout (`fd == 1`) or stderr (`fd == 2`).
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }

    /// One of the child's pipes closed (`exc` is the error, if any).
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        let _ = (fd, exc);
    }

    /// The child exited.
    fn process_exited(&mut self) {}

    /// As [`Protocol::pause_writing`](crate::Protocol::pause_writing) (for the stdin pipe).
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`](crate::Protocol::resume_writing).
    fn resume_writing(&mut self) {}

    /// The process exited and every pipe is closed.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
}
