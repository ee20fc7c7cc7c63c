//! Name resolution on the loop: the system resolver runs on the default executor, so a slow
//! DNS answer never blocks the loop; IP literals skip it (NET-18), so connecting to
//! `127.0.0.1` works without any worker thread, even after the default executor was shut down.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loop_core::internal::LoopInternals;
use loop_core::{EventLoop, Result};
use loop_executor::ExecutorExt;

use crate::resolve::{getaddrinfo_blocking, getnameinfo_blocking, numeric_addrinfo};
use crate::{AddrInfo, Hints};

/// A port: a number, a service name (`"http"`, looked up in `/etc/services` by the resolver),
/// or none (asyncio's `port=None`). Every function taking a port accepts anything that
/// converts into one: `8080`, `"http"`, `"8080"`, `None::<u16>`.
///
/// ```
/// use loop_net::Service;
/// assert_eq!(Service::from(80), Service::Port(80));
/// assert_eq!(Service::from("http"), Service::Name("http".into()));
/// assert_eq!(Service::from(None::<u16>), Service::Unspecified);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Service {
    /// No port (resolves with port 0).
    #[default]
    Unspecified,
    /// A port number.
    Port(u16),
    /// A service name or a numeric string.
    Name(String),
}

impl Service {
    /// True unless [`Service::Unspecified`].
    ///
    /// ```
    /// assert!(loop_net::Service::from(0).is_specified());
    /// assert!(!loop_net::Service::Unspecified.is_specified());
    /// ```
    pub fn is_specified(&self) -> bool {
        !matches!(self, Service::Unspecified)
    }

    /// The form the resolver takes (`None` for no port).
    pub(crate) fn as_resolver_arg(&self) -> Option<String> {
        match self {
            Service::Unspecified => None,
            Service::Port(p) => Some(p.to_string()),
            Service::Name(n) => Some(n.clone()),
        }
    }
}

impl From<u16> for Service {
    fn from(p: u16) -> Service {
        Service::Port(p)
    }
}

impl From<Option<u16>> for Service {
    fn from(p: Option<u16>) -> Service {
        p.map_or(Service::Unspecified, Service::Port)
    }
}

impl From<&str> for Service {
    fn from(s: &str) -> Service {
        Service::Name(s.to_string())
    }
}

impl From<String> for Service {
    fn from(s: String) -> Service {
        Service::Name(s)
    }
}

/// Logs a resolver call in debug mode: DEBUG normally, INFO when it took at least
/// `slow_callback_duration` (NET-18).
fn log_lookup(lp: &EventLoop, what: &str, took: Duration) {
    if !lp.get_debug() {
        return;
    }
    if took >= lp.slow_callback_duration() {
        tracing::info!("{what} took {:.3} ms", took.as_secs_f64() * 1e3);
    } else {
        tracing::debug!("{what} took {:.3} ms", took.as_secs_f64() * 1e3);
    }
}

/// `getaddrinfo` on the default executor, always (NET-16, NET-17).
pub(crate) async fn getaddrinfo(
    lp: EventLoop,
    host: Option<String>,
    port: Option<String>,
    hints: Hints,
) -> Result<Vec<AddrInfo>> {
    let what = format!(
        "getaddrinfo({:?}, {:?}, family={}, type={}, proto={}, flags={})",
        host, port, hints.family, hints.socktype, hints.protocol, hints.flags
    );
    let job = lp.run_in_executor(None, move || {
        let start = Instant::now();
        let r = getaddrinfo_blocking(host.as_deref(), port.as_deref(), &hints);
        (r, start.elapsed())
    })?;
    // A pending lookup does not keep the loop alive.
    let weak = lp.downgrade();
    drop(lp);
    let (r, took) = job.await?;
    if let Some(lp) = weak.upgrade() {
        log_lookup(&lp, &what, took);
    }
    Ok(r?)
}

/// `getnameinfo` on the default executor (NET-16).
pub(crate) async fn getnameinfo(
    lp: EventLoop,
    addr: SocketAddr,
    flags: i32,
) -> Result<(String, String)> {
    let job = lp.run_in_executor(None, move || {
        let start = Instant::now();
        let r = getnameinfo_blocking(&addr, flags);
        (r, start.elapsed())
    })?;
    // A pending lookup does not keep the loop alive.
    let weak = lp.downgrade();
    drop(lp);
    let (r, took) = job.await?;
    if let Some(lp) = weak.upgrade() {
        log_lookup(&lp, &format!("getnameinfo({addr}, flags={flags})"), took);
    }
    Ok(r?)
}

/// What `create_connection`, `create_server` and friends resolve with: the numeric fast path
/// first (no executor), the resolver otherwise (NET-18).
pub(crate) async fn ensure_resolved(
    lp: &EventLoop,
    host: Option<&str>,
    port: Option<String>,
    hints: Hints,
) -> Result<Vec<AddrInfo>> {
    if let Some(r) = numeric_addrinfo(host, port.as_deref(), &hints) {
        return Ok(r);
    }
    getaddrinfo(lp.clone(), host.map(str::to_string), port, hints).await
}
