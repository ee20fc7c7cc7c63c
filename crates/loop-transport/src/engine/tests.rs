//! The engine's lifecycle, tested in one place with a driver that does no I/O:
//! `connection_made` then `connection_lost`, each exactly once, through the ready queue,
//! never re-entered; teardown once; notifications after the running method; the protocol's
//! life after teardown.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::{Rc, Weak};

use loop_core::EventLoop;

use super::*;

type Log = Rc<RefCell<Vec<String>>>;

/// A driver with a settable buffer size.
#[derive(Default)]
struct Mock {
    buffered: Cell<usize>,
    released: Cell<u32>,
}

type Hook = Box<dyn FnMut(&Core<Mock>)>;

/// Records its calls; runs `on_lost` / `on_made` inside the method.
struct Rec {
    log: Log,
    core: Weak<Core<Mock>>,
    on_made: Option<Hook>,
    on_lost: Option<Hook>,
    panic_in_lost: bool,
    dropped: Rc<Cell<bool>>,
}

impl Drop for Rec {
    fn drop(&mut self) {
        self.dropped.set(true);
    }
}

impl EngineProtocol for Rec {
    type Handle = ();
    fn type_name(&self) -> &'static str {
        "Rec"
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn connection_made(&mut self, _: &()) {
        self.log.borrow_mut().push("made".into());
        if let (Some(h), Some(c)) = (self.on_made.as_mut(), self.core.upgrade()) {
            h(&c);
        }
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().push("pause".into());
    }
    fn resume_writing(&mut self) {
        self.log.borrow_mut().push("resume".into());
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.log
            .borrow_mut()
            .push(format!("lost({})", exc.is_some()));
        if let (Some(h), Some(c)) = (self.on_lost.as_mut(), self.core.upgrade()) {
            h(&c);
        }
        if self.panic_in_lost {
            panic!("boom in connection_lost");
        }
    }
}

impl Driver for Mock {
    type Protocol = Rec;
    type Event = ();
    fn describe(_: &Core<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<Mock>")
    }
    fn handle(_: &Rc<Core<Self>>) {}
    fn buffer_size(core: &Core<Self>) -> usize {
        core.driver.buffered.get()
    }
    fn release(core: &Core<Self>) {
        core.driver.released.set(core.driver.released.get() + 1);
    }
}

struct Setup {
    lp: EventLoop,
    core: Rc<Core<Mock>>,
    log: Log,
    dropped: Rc<Cell<bool>>,
}

fn setup(on_made: Option<Hook>, on_lost: Option<Hook>, panic_in_lost: bool) -> Setup {
    let lp = EventLoop::new().unwrap();
    let log: Log = Rc::default();
    let dropped = Rc::new(Cell::new(false));
    let core = Core::new(
        &lp,
        Rec {
            log: log.clone(),
            core: Weak::new(),
            on_made,
            on_lost,
            panic_in_lost,
            dropped: dropped.clone(),
        },
        Flow::default(),
        Mock::default(),
    );
    let weak = Rc::downgrade(&core);
    core.with_protocol(|r: &mut Rec| r.core = weak).unwrap();
    core.schedule_made().unwrap();
    core.make_live();
    Setup {
        lp,
        core,
        log,
        dropped,
    }
}

fn spin(lp: &EventLoop) {
    for _ in 0..3 {
        lp.run_until_complete(async {}).unwrap();
    }
}

fn log(s: &Setup) -> Vec<String> {
    s.log.borrow().clone()
}

#[test]
fn connection_lost_is_delivered_once_through_the_ready_queue() {
    let s = setup(None, None, false);
    spin(&s.lp);
    assert_eq!(log(&s), ["made"]);
    s.core.close();
    s.core.close();
    s.core
        .force_close(Some(io::Error::from(io::ErrorKind::Other)));
    s.core.schedule_lost(None);
    assert!(s.core.lifecycle().is_closing());
    assert_eq!(
        log(&s),
        ["made"],
        "connection_lost is scheduled, not called"
    );
    spin(&s.lp);
    assert_eq!(log(&s), ["made", "lost(false)"]);
    assert_eq!(s.core.driver.released.get(), 1);
    assert_eq!(s.core.lifecycle().phase(), Phase::TornDown);
    assert!(
        s.dropped.get(),
        "no ProtocolRef: the protocol is dropped at teardown"
    );
    assert!(
        s.core.get_loop().is_none(),
        "the loop reference is released"
    );
    s.core.deliver_lost(None);
    s.core.teardown();
    assert_eq!(log(&s).len(), 2);
    assert_eq!(s.core.driver.released.get(), 1);
}

#[test]
fn connection_lost_is_never_re_entered() {
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let s = setup(
        None,
        Some(Box::new(move |core| {
            c.set(c.get() + 1);
            core.close();
            core.force_close(Some(io::Error::from(io::ErrorKind::Other)));
            core.schedule_lost(None);
            core.deliver_lost(None);
        })),
        false,
    );
    spin(&s.lp);
    s.core.force_close(None);
    spin(&s.lp);
    assert_eq!(calls.get(), 1);
    assert_eq!(log(&s), ["made", "lost(false)"]);
    assert_eq!(s.core.driver.released.get(), 1);
}

#[test]
fn close_before_connection_made_delivers_both_in_order() {
    let s = setup(None, None, false);
    s.core.close();
    assert!(s.core.lifecycle().is_closing());
    spin(&s.lp);
    assert_eq!(log(&s), ["made", "lost(false)"]);
}

#[test]
fn close_inside_connection_made_still_delivers_connection_lost_after_it() {
    let s = setup(Some(Box::new(|core| core.close())), None, false);
    spin(&s.lp);
    assert_eq!(log(&s), ["made", "lost(false)"]);
}

#[test]
fn connection_lost_waits_for_the_buffer_to_drain() {
    let s = setup(None, None, false);
    spin(&s.lp);
    s.core.driver.buffered.set(10);
    s.core.close();
    spin(&s.lp);
    assert_eq!(log(&s), ["made"], "buffered data is sent first");
    s.core.driver.buffered.set(0);
    s.core.schedule_lost(None); // the driver drained its buffer
    spin(&s.lp);
    assert_eq!(log(&s), ["made", "lost(false)"]);
}

#[test]
fn closing_the_loop_tears_down_without_connection_lost() {
    let s = setup(None, None, false);
    spin(&s.lp);
    s.lp.close().unwrap();
    assert_eq!(log(&s), ["made"]);
    assert_eq!(s.core.driver.released.get(), 1);
    assert!(s.dropped.get());
    assert!(s.core.live_key().is_none());
}

#[test]
fn a_panic_in_connection_lost_is_reported_and_teardown_still_happens() {
    let s = setup(None, None, true);
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    s.lp.set_exception_handler(Some(std::rc::Rc::new(
        move |_: &EventLoop, ctx: &loop_core::ExceptionContext| {
            r.borrow_mut().push(ctx.message.clone())
        },
    )));
    spin(&s.lp);
    s.core.close();
    spin(&s.lp);
    assert_eq!(*reports.borrow(), ["protocol.connection_lost() failed"]);
    assert_eq!(s.core.driver.released.get(), 1);
    assert!(s.dropped.get());
}

#[test]
fn notifications_raised_inside_a_method_follow_it() {
    let s = setup(
        Some(Box::new(|core| {
            core.driver.buffered.set(100_000);
            core.maybe_pause(); // inside connection_made: queued
            core.driver.buffered.set(0);
            core.maybe_resume();
        })),
        None,
        false,
    );
    spin(&s.lp);
    assert_eq!(log(&s), ["made", "pause", "resume"]);
    s.core.driver.buffered.set(100_000);
    s.core.maybe_pause(); // outside: at once
    assert_eq!(log(&s).last().unwrap(), "pause");
}

#[test]
fn a_protocol_ref_keeps_the_protocol_after_teardown() {
    let s = setup(None, None, false);
    let p = s.core.protocol_ref::<Rec>();
    let p2 = p.clone();
    spin(&s.lp);
    s.core.force_close(None);
    spin(&s.lp);
    assert!(!s.dropped.get());
    assert!(
        s.core.with_protocol(|_: &mut Rec| ()).is_none(),
        "the transport let go"
    );
    assert_eq!(p.with(|r| r.log.borrow().len()), Some(2));
    drop(p);
    assert!(!s.dropped.get());
    drop(p2);
    assert!(s.dropped.get(), "the last ProtocolRef drops it");
}

#[test]
fn connection_lost_is_not_delivered_again_to_a_protocol_kept_alive() {
    let s = setup(None, None, false);
    let p = s.core.protocol_ref::<Rec>();
    spin(&s.lp);
    s.core.close();
    spin(&s.lp);
    assert_eq!(log(&s), ["made", "lost(false)"]);
    // The protocol is still there (the ProtocolRef holds it), yet nothing reaches it again.
    s.core.deliver_lost(None);
    s.core.schedule_lost(None);
    s.core.deliver_made();
    spin(&s.lp);
    assert_eq!(log(&s), ["made", "lost(false)"]);
    assert_eq!(p.with(|r| r.log.borrow().len()), Some(2));
}
