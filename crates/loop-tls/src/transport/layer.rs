//! The transport calls the application makes on a TLS transport (`write`, `close`, flow
//! control, `get_extra_info`): the [`Layer`] side of [`Tls`].

use std::io;
use std::task::{Context, Poll};

use loop_core::{Error, Result};
use loop_transport::engine::{Core, Driver};
use loop_transport::{Extra, ExtraValue, Layer, Transport};

use super::info;
use super::state::Tls;

impl Layer for Tls {
    fn write(core: &Core<Self>, bufs: &[&[u8]]) -> Result<()> {
        if core.lifecycle().is_closing() {
            if bufs.iter().any(|b| !b.is_empty()) && core.count_dropped_write() {
                tracing::warn!("SSL connection is closed");
            }
            return Ok(());
        }
        {
            let mut engine = core.driver.engine.borrow_mut();
            for b in bufs {
                engine
                    .write_plaintext(b)
                    .map_err(|e| Error::from(io::Error::from(e)))?;
            }
        }
        Tls::pump(core);
        core.maybe_pause();
        Ok(())
    }

    fn lower(core: &Core<Self>) -> Option<Transport> {
        Tls::lower_of(core)
    }

    fn write_eof(_core: &Core<Self>) -> Result<()> {
        Err(Error::invalid_state(
            "write_eof() is not supported by TLS transports: TLS has no half-close",
        ))
    }

    /// Starts the TLS shutdown: pending data, then `close_notify`; `connection_lost` once
    /// the transport underneath is closed.
    fn close(core: &Core<Self>) {
        if !core.mark_closing() {
            return;
        }
        let Some(core) = core.me() else { return };
        if Tls::lower_of(&core).is_none() {
            // Not on a transport yet: nothing to shut down.
            core.force_close(None);
            return;
        }
        let r = core.driver.engine.borrow_mut().begin_shutdown();
        Tls::apply(&core, r);
    }

    fn pause_reading(core: &Core<Self>) {
        core.driver.engine.borrow_mut().pause_reading();
        if let Some(l) = Tls::lower_of(core) {
            l.pause_reading();
        }
    }

    fn resume_reading(core: &Core<Self>) {
        if let Some(l) = Tls::lower_of(core) {
            l.resume_reading();
        }
        let Some(core) = core.me() else { return };
        let r = core.driver.engine.borrow_mut().resume_reading();
        Tls::apply(&core, r);
    }

    /// Ready once the engine holds no plaintext and the transport underneath flushed.
    fn poll_flushed(core: &Core<Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let lower = match Tls::lower_of(core) {
            Some(l) => l.poll_flushed(cx),
            None => Poll::Ready(Ok(())),
        };
        match lower {
            Poll::Ready(Ok(())) if Tls::buffer_size(core) > 0 => {
                // The rest moves to the transport underneath when it resumes writing.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }

    fn get_extra_info(core: &Core<Self>, key: Extra) -> Option<ExtraValue> {
        match key {
            Extra::Custom(name) => match info::extra(core, name) {
                info::Answer::Value(v) => Some(v),
                info::Answer::None => None,
                info::Answer::NotTls => Tls::lower_of(core)?.get_extra_info(key),
            },
            _ => Tls::lower_of(core)?.get_extra_info(key),
        }
    }
}
