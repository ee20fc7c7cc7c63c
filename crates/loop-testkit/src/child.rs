//! Helpers for tests that talk to another program (CPython's `ssl` and `asyncio` for interop)
//! through files in a private directory.
//!
//! Both clean up on drop, so that a failing test leaves no directory in `/tmp` and no process
//! behind: [`TempDir`] removes its directory, [`Peer`] kills and reaps its child.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Peer::finish`] waits for the child to exit (times [`time_scale`](crate::time_scale)).
const EXIT_LIMIT: Duration = Duration::from_secs(120);

/// `python3` when it can be run, else `None` after saying on stderr that the caller's test
/// is skipped (interop tests use it to skip, loudly, on a machine without Python).
///
/// ```
/// if let Some(py) = loop_testkit::python3() {
///     assert_eq!(py, "python3");
/// }
/// ```
pub fn python3() -> Option<&'static str> {
    match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => Some("python3"),
        _ => {
            eprintln!("SKIPPED: python3 is not installed; this interop test needs it");
            None
        }
    }
}

/// A fresh directory under the system's temporary directory, named after a tag and the
/// process id, removed with everything in it when dropped.
///
/// ```
/// let d = loop_testkit::TempDir::new("doc-example");
/// let file = d.write("a.txt", "hello");
/// assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello");
/// let path = d.path().to_path_buf();
/// drop(d);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct TempDir {
    /// The directory; it exists while the value lives.
    path: PathBuf,
}

impl TempDir {
    /// Creates the directory `evloop-<tag>-<pid>` (emptied first if a previous run of this
    /// process id left it).
    ///
    /// # Panics
    ///
    /// If the directory cannot be created.
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("evloop-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory, with no file there yet.
    pub fn join(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    /// Writes `text` to the file `name` in the directory and returns its path as a string
    /// (ready to pass as a program argument).
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.path.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p.to_str().expect("a UTF-8 temporary path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A child process a test talks to, with its stdout piped: killed and reaped when dropped
/// before it exits, so a failing test leaves no process behind.
///
/// ```
/// let (peer, mut out) = loop_testkit::Peer::spawn("echo", &["hi"]);
/// let (text, _err) = peer.finish(&mut out, || std::thread::sleep(std::time::Duration::from_millis(1)));
/// assert_eq!(text, "hi\n");
/// ```
#[derive(Debug)]
pub struct Peer {
    /// The child; reaped by [`Peer::finish`] or on drop.
    child: Child,
}

impl Peer {
    /// Starts `program` with `args`, stdin closed, stdout and stderr piped; returns it and a
    /// reader over its stdout.
    ///
    /// # Panics
    ///
    /// If the program cannot be started.
    pub fn spawn(program: &str, args: &[&str]) -> (Peer, BufReader<ChildStdout>) {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        (Peer { child }, out)
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails the test if the child has already exited (the message says `before` what, with its
    /// status and stderr): for a loop that waits for the child to connect.
    ///
    /// # Panics
    ///
    /// If the child exited.
    pub fn assert_running(&mut self, before: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the child exited ({status}) before {before}: {err}");
        }
    }

    /// Waits for the child to exit, calling `idle` between checks (run a loop iteration there
    /// when the child talks to a server on this thread), and returns the rest of its stdout and
    /// its stderr.
    ///
    /// # Panics
    ///
    /// If it does not exit within 120 s, or exits unsuccessfully (the message carries its
    /// output).
    pub fn finish(
        mut self,
        out: &mut BufReader<ChildStdout>,
        mut idle: impl FnMut(),
    ) -> (String, String) {
        let start = Instant::now();
        let limit = EXIT_LIMIT * crate::time_scale();
        while self.child.try_wait().expect("wait for the child").is_none() {
            assert!(
                start.elapsed() < limit,
                "the child did not exit in {limit:?}"
            );
            idle();
        }
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = self.child.wait().expect("reap the child");
        assert!(
            status.success(),
            "the child failed ({status}): {text}\n{err}"
        );
        (text, err)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A path for one file (a Unix socket, a FIFO) in a directory of its own, removed with the
/// directory when dropped. Each call gets a new directory, so tests running at the same time
/// in one process never share a path.
///
/// ```
/// let p = loop_testkit::temp_path("doc.sock");
/// std::fs::write(&p, "x").unwrap();
/// let kept = p.to_path_buf();
/// drop(p);
/// assert!(!kept.exists());
/// ```
pub fn temp_path(name: &str) -> TempPath {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = TempDir::new(&format!("path-{n}"));
    let path = dir.join(name);
    TempPath { path, _dir: dir }
}

/// See [`temp_path`]: derefs to the path.
#[derive(Debug)]
pub struct TempPath {
    /// The file's path inside `_dir`.
    path: PathBuf,
    /// The directory, removed on drop.
    _dir: TempDir,
}

impl std::ops::Deref for TempPath {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.path
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}
