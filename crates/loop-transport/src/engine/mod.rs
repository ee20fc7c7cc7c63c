//! The transport engine: the pieces every evloop transport is built on. **Unstable**: for
//! evloop's own crates (the subprocess transport, TLS) and for layered transports; no semver
//! promise.
//!
//! * [`Core`]: the shared part of a transport, generic over a [`Driver`] that supplies the
//!   kind's I/O and buffer size (uvloop's `UVBaseTransport` is the model): the protocol cell
//!   with its call policy, the lifecycle, `connection_made` / `connection_lost` scheduling,
//!   write flow control, the live set.
//! * [`ProtocolCell`]: the protocol slot (taken out while a method runs, so no method is ever
//!   re-entered; a replacement set meanwhile is installed when it returns), the queue of
//!   notifications raised while a method runs, and the protocol's life after teardown for
//!   [`ProtocolRef`](crate::ProtocolRef)s.
//! * [`Lifecycle`]: one state instead of flags, `Pending → Open → Closing → LostScheduled →
//!   Lost → TornDown`.
//! * [`Flow`]: the write water marks over a buffer size.
//! * [`Runtime`]: one live-transport set and one read buffer per loop.
//! * [`hooks`]: the only place that names loop-core's internal hooks.
//!
//! `connection_lost` is delivered in one place, [`Core::deliver_lost`]: exactly once, never
//! re-entered, and only after `connection_made`.

pub mod hooks;

mod core;
mod flow;
mod lifecycle;
mod live;
mod protocol_cell;
mod protocol_ref;
#[cfg(test)]
mod tests;

pub use self::core::{
    exception_to_io, CallError, Core, Driver, Policy, LOG_THRESHOLD_FOR_CONNLOST_WRITES,
};
pub use self::flow::{resolve_limits, Flow, DEFAULT_HIGH_WATER};
pub use self::lifecycle::{Lifecycle, Phase};
pub use self::live::{Live, LiveKey, Runtime};
pub use self::protocol_cell::{EngineProtocol, Note, ProtocolCell};
pub use self::protocol_ref::{ProtocolHost, ProtocolRef};
