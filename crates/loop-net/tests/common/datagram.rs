//! Helpers of the datagram endpoint tests: a recording datagram protocol, endpoint creation
//! and waiting under a watchdog.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use loop_core::{Error, EventLoop, LoopFuture};
use loop_net::{Addr, DatagramExt, DatagramOptions, DatagramTransport};
use loop_transport::{DatagramProtocol, ProtocolRef};

pub use super::{fd_count, serial};

/// What a recording protocol saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(Vec<u8>, Addr),
    Err(Option<i32>),
    Pause,
    Resume,
    Lost(Option<Option<i32>>),
}

#[derive(Default)]
pub struct Shared {
    pub log: RefCell<Vec<Ev>>,
    pub wake: RefCell<Option<LoopFuture<()>>>,
}

pub type S = Rc<Shared>;

impl Shared {
    pub fn push(&self, ev: Ev) {
        self.log.borrow_mut().push(ev);
        if let Some(f) = self.wake.borrow_mut().take() {
            let _ = f.set_result(());
        }
    }

    pub fn events(&self) -> Vec<Ev> {
        self.log.borrow().clone()
    }

    pub fn data(&self) -> Vec<Vec<u8>> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d, _) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn lost(&self) -> bool {
        self.log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    }
}

/// A protocol that records every call.
pub struct Rec {
    pub s: S,
    pub t: Option<DatagramTransport>,
    pub echo: bool,
    pub panic_on_data: bool,
}

pub fn rec() -> (S, impl FnOnce() -> Rec) {
    let s: S = Rc::default();
    let s2 = s.clone();
    (s, move || Rec {
        s: s2,
        t: None,
        echo: false,
        panic_on_data: false,
    })
}

pub fn echo_rec() -> (S, impl FnOnce() -> Rec) {
    let s: S = Rc::default();
    let s2 = s.clone();
    (s, move || Rec {
        s: s2,
        t: None,
        echo: true,
        panic_on_data: false,
    })
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.t = Some(t.clone());
        self.s.push(Ev::Made);
    }
    fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
        self.s.push(Ev::Data(data.to_vec(), addr.clone()));
        if self.panic_on_data {
            panic!("datagram_received exploded");
        }
        if self.echo {
            self.t.as_ref().unwrap().sendto(data, Some(addr)).unwrap();
        }
    }
    fn error_received(&mut self, exc: io::Error) {
        self.s.push(Ev::Err(exc.raw_os_error()));
    }
    fn pause_writing(&mut self) {
        self.s.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.s.push(Ev::Resume);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.t = None;
        self.s.push(Ev::Lost(exc.map(|e| e.raw_os_error())));
    }
}

/// Runs `fut` with a 60 s watchdog (a generous bound against hangs, not a timing assertion).
pub fn run<F>(lp: &EventLoop, fut: F) -> F::Output
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    loop_testkit::run(lp, 60, fut)
}

/// Runs the loop until `cond` holds for the recorded events (woken by each event).
pub fn wait_until(lp: &EventLoop, s: &S, cond: impl Fn(&[Ev]) -> bool) {
    loop {
        if cond(&s.log.borrow()) {
            return;
        }
        let f = lp.create_future::<()>();
        *s.wake.borrow_mut() = Some(f.clone());
        run(lp, f).unwrap();
    }
}

pub fn count_data(evs: &[Ev]) -> usize {
    evs.iter().filter(|e| matches!(e, Ev::Data(..))).count()
}

/// Creates an endpoint on `lp`.
pub fn endpoint<P: DatagramProtocol + 'static>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    options: DatagramOptions,
) -> Result<(DatagramTransport, ProtocolRef<P>), Error> {
    let l = lp.clone();
    run(lp, async move {
        l.create_datagram_endpoint(factory, options).await
    })
}

/// Creates an endpoint on `lp` over an existing socket.
pub fn endpoint_sock<P: DatagramProtocol + 'static>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    sock: impl Into<std::os::fd::OwnedFd>,
) -> Result<(DatagramTransport, ProtocolRef<P>), Error> {
    run(
        lp,
        lp.create_datagram_endpoint_sock(factory, sock, DatagramOptions::new()),
    )
}

pub fn err_text(e: &Error) -> String {
    e.to_string()
}

/// The address family of socket `fd`: SO_DOMAIN on Linux, the family of its own address
/// elsewhere (no SO_DOMAIN there).
pub fn socket_family(fd: std::os::fd::BorrowedFd<'_>) -> rustix::net::AddressFamily {
    #[cfg(target_os = "linux")]
    return rustix::net::sockopt::socket_domain(fd).unwrap();
    #[cfg(not(target_os = "linux"))]
    return rustix::net::getsockname(fd).unwrap().address_family();
}
