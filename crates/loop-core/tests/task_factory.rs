//! Task factory: CORE-49 .. CORE-51 (the other outcomes of run_coroutine_threadsafe are in
//! threadsafe.rs).

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::*;
use loop_core::{Error, EventLoop, TaskFactory, TaskSpec};

#[test]
fn core_49_get_and_set_task_factory() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    assert!(lp.get_task_factory().is_none(), "none by default");
    let factory: TaskFactory = Rc::new(|_lp: &EventLoop, spec: TaskSpec| Ok(spec));
    lp.set_task_factory(Some(factory.clone()));
    assert!(Rc::ptr_eq(&lp.get_task_factory().unwrap(), &factory));
    lp.set_task_factory(None);
    assert!(
        lp.get_task_factory().is_none(),
        "none again after set_task_factory(None)"
    );
}

/// CORE-50: the factory sees each `create_task` as a `TaskSpec`, whose Debug shows the name
/// given and where `create_task` was called.
#[test]
fn core_50_the_factory_sees_a_spec_that_describes_the_task() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    let factory: TaskFactory = Rc::new(move |_lp: &EventLoop, spec: TaskSpec| {
        s.borrow_mut().push(format!("{spec:?}"));
        Ok(spec)
    });
    lp.set_task_factory(Some(factory));
    let line = line!() + 1;
    let t = lp.create_named_task("described", async { 1 }).unwrap();
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 1);
    let seen = seen.borrow();
    let spec = seen
        .iter()
        .find(|d| d.contains("name: Some(\"described\")"))
        .unwrap_or_else(|| panic!("no spec names the task: {seen:?}"));
    assert!(spec.starts_with("TaskSpec {"), "{spec}");
    assert!(
        spec.contains(&format!("file: {:?}, line: {line},", file!())),
        "{spec} (expected {}:{line})",
        file!()
    );
    lp.close().unwrap();
}

#[test]
fn core_50_create_task_goes_through_the_factory() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let polls = Rc::new(Cell::new(0));
    let (c, p) = (calls.clone(), polls.clone());
    lp.set_task_factory(Some(Rc::new(move |lp: &EventLoop, mut spec: TaskSpec| {
        assert!(!lp.is_closed());
        // The factory receives every create_task argument (the name included)...
        c.borrow_mut().push(spec.name.clone());
        // ...and may wrap the body, keeping its output.
        let inner = spec.future;
        let p = p.clone();
        spec.future = Box::pin(async move {
            p.set(p.get() + 1);
            inner.await
        });
        spec.name = spec.name.map(|n| format!("custom:{n}"));
        Ok(spec)
    })));
    let named = lp.create_named_task("job", async { 1 }).unwrap();
    assert_eq!(named.get_name(), "custom:job", "the name is applied");
    let unnamed = lp.create_task(async { 2 }).unwrap();
    assert!(unnamed.get_name().starts_with("Task-"));
    assert_eq!(lp.run_until_complete(named).unwrap().unwrap(), 1);
    assert_eq!(lp.run_until_complete(unnamed).unwrap().unwrap(), 2);
    // run_until_complete wraps its future through the factory too.
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
    assert_eq!(
        *calls.borrow(),
        [Some("job".to_string()), None, None, None, None]
    );
    assert_eq!(polls.get(), 5);

    // Without a factory, the built-in task again.
    lp.set_task_factory(None);
    let t = lp.create_named_task("plain", async { 4 }).unwrap();
    assert_eq!(t.get_name(), "plain");
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 4);
    assert_eq!(calls.borrow().len(), 5);

    // A factory that breaks the output type fails the task (clearly) instead of the loop.
    lp.set_task_factory(Some(Rc::new(|_lp: &EventLoop, mut spec: TaskSpec| {
        spec.future = Box::pin(async { Box::new("wrong type") as Box<dyn std::any::Any> });
        Ok(spec)
    })));
    let t = lp.create_task(async { 5u64 }).unwrap();
    lp.set_task_factory(None);
    let r = lp.run_until_complete(t).unwrap();
    assert!(
        matches!(&r, Err(Error::Exception(e)) if e.to_string().contains("task factory changed the output type")),
        "{r:?}"
    );
}

#[test]
fn core_51_a_failing_factory_error_reaches_the_caller() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let seen = record_exceptions(&lp);
    lp.set_task_factory(Some(Rc::new(|_lp: &EventLoop, _spec: TaskSpec| {
        Err(Error::invalid_argument("refused by the factory"))
    })));
    let (dropped, flag) = drop_flag();
    let e = lp
        .create_task(async move {
            let _f = flag;
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid argument: refused by the factory");
    assert!(dropped.get(), "the refused future is dropped");
    assert!(lp.all_tasks().is_empty());
    assert!(matches!(
        lp.run_until_complete(async {}),
        Err(Error::InvalidArgument(_))
    ));

    // A panicking factory: the panic comes back as an error.
    lp.set_task_factory(Some(Rc::new(
        |_lp: &EventLoop, _spec: TaskSpec| -> loop_core::Result<TaskSpec> {
            panic!("factory panicked")
        },
    )));
    let e = lp.create_task(async {}).unwrap_err();
    assert!(
        matches!(&e, Error::Exception(x) if x.is_panic() && x.to_string() == "panic: factory panicked")
    );
    // The caller got it: nothing went to the exception handler.
    assert!(messages(&seen).is_empty());
    lp.set_task_factory(None);
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

#[test]
fn core_51_factory_failure_through_run_coroutine_threadsafe() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let wd = watchdog_for(&lp);
    let seen = record_exceptions(&lp);
    lp.set_task_factory(Some(Rc::new(|_lp: &EventLoop, _spec: TaskSpec| {
        Err(Error::invalid_argument("no tasks today"))
    })));
    let remote = lp.remote();
    let t = std::thread::spawn(move || {
        let f = remote.run_coroutine_threadsafe(|_lp| async { 1 }).unwrap();
        let r = f.wait();
        remote.stop().unwrap();
        r
    });
    lp.run_forever().unwrap();
    let e = t.join().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument: no tasks today",
        "set on the thread-side future"
    );
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "and reported once");
    assert!(seen[0].message.contains("run_coroutine_threadsafe"));
    assert!(matches!(
        &seen[0].exception,
        Some(Error::InvalidArgument(_))
    ));
    drop(wd);
}
