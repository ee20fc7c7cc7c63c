//! [`ProtocolAny`]: what every protocol trait builds on (downcasting and naming).

use std::any::Any;

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
