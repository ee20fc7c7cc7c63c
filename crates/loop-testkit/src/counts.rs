//! Process-wide counts: open fds, threads, children.
//!
//! These read `/proc/self`, so they see every test of the binary: a test that compares them
//! before and after must hold [`exclusive()`](crate::exclusive) for the whole comparison.

use rustix::io::Errno;
use rustix::process::{Pid, WaitId, WaitIdOptions};

/// Open fds of this process.
///
/// ```
/// let _x = loop_testkit::exclusive();
/// let before = loop_testkit::fd_count();
/// let f = std::fs::File::open("/dev/null").unwrap();
/// assert_eq!(loop_testkit::fd_count(), before + 1);
/// drop(f);
/// assert_eq!(loop_testkit::fd_count(), before);
/// ```
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Open fds whose link target contains `what` (`"eventpoll"`, `"eventfd"`, `"socket:"`).
///
/// ```
/// let _x = loop_testkit::exclusive();
/// let before = loop_testkit::fd_count_of("eventpoll");
/// let lp = loop_core::EventLoop::new().unwrap();
/// assert_eq!(loop_testkit::fd_count_of("eventpoll"), before + 1);
/// lp.close().unwrap();
/// ```
pub fn fd_count_of(what: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|p| p.to_string_lossy().contains(what))
        .count()
}

/// Threads of this process (the watchdog's own thread included).
///
/// ```
/// let _x = loop_testkit::exclusive();
/// let before = loop_testkit::thread_count();
/// std::thread::spawn(|| {}).join().unwrap();
/// assert_eq!(loop_testkit::thread_count(), before);
/// ```
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

/// Threads of this process whose name starts with `prefix` (the kernel keeps 15 bytes of a
/// name).
///
/// ```
/// let _x = loop_testkit::exclusive();
/// assert_eq!(loop_testkit::threads_named("no-such-thread"), 0);
/// ```
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end().starts_with(prefix))
        .count()
}

/// Children of this process (of all its threads), zombies included.
///
/// ```
/// let _x = loop_testkit::exclusive();
/// let mut c = std::process::Command::new("true").spawn().unwrap();
/// assert!(loop_testkit::children().contains(&c.id()));
/// c.wait().unwrap();
/// assert!(!loop_testkit::children().contains(&c.id()));
/// ```
pub fn children() -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(e.path().join("children")) {
            v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    v
}

/// True once `pid` is no child of ours any more (its status was collected, no zombie left):
/// `waitid` with `WNOWAIT` answers `ECHILD`, and collects nothing itself.
///
/// ```
/// let _w = loop_testkit::watchdog();
/// let mut c = std::process::Command::new("true").spawn().unwrap();
/// assert!(!loop_testkit::is_reaped(c.id()));
/// c.wait().unwrap();
/// assert!(loop_testkit::is_reaped(c.id()));
/// ```
pub fn is_reaped(pid: u32) -> bool {
    let pid = Pid::from_raw(pid as i32).expect("a positive pid");
    matches!(
        rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        ),
        Err(Errno::CHILD)
    )
}

/// Blocks until child `pid` exited, without collecting its status (`WNOWAIT`).
///
/// ```
/// let _w = loop_testkit::watchdog();
/// let mut c = std::process::Command::new("true").spawn().unwrap();
/// loop_testkit::wait_exited_nowait(c.id());
/// assert!(!loop_testkit::is_reaped(c.id()));
/// assert!(c.wait().unwrap().success());
/// ```
pub fn wait_exited_nowait(pid: u32) {
    let pid = Pid::from_raw(pid as i32).expect("a positive pid");
    loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(Errno::INTR) => continue,
            _ => return,
        }
    }
}
