//! What to spawn and how: [`SubprocessOptions`], [`Stdio`], [`ExitWatcher`], and the argument
//! checks that asyncio does with value errors (SUB-02, SUB-03).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use loop_core::{Error, Result};
use loop_transport::DEFAULT_LIMIT;

/// Where one of the child's standard streams goes: asyncio's `PIPE`, `None` (inherit),
/// `DEVNULL`, a file descriptor, or `STDOUT` (for stderr only).
///
/// ```
/// use loop_subprocess::Stdio;
/// let s = Stdio::Pipe;
/// assert!(s.is_pipe());
/// assert!(!Stdio::Null.is_pipe());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Stdio {
    /// A new pipe between the loop and the child: the loop side becomes a pipe transport
    /// (`get_pipe_transport`) or a stream (`Process::stdin` / `stdout` / `stderr`).
    Pipe,
    /// The child uses the parent's stream (asyncio's `None`).
    Inherit,
    /// `/dev/null` (asyncio's `DEVNULL`).
    Null,
    /// This descriptor (a file, a socket, a pipe end you made). It is given to the child and
    /// closed in the parent once the child is started; pass a `try_clone()` to keep yours.
    Fd(OwnedFd),
    /// Only for stderr: the same place as the child's stdout (asyncio's `STDOUT`). With a piped
    /// stdout, stderr output arrives on fd 1 and fd 2 has no pipe transport (SUB-06).
    Stdout,
}

impl Stdio {
    /// True for [`Stdio::Pipe`].
    ///
    /// ```
    /// assert!(loop_subprocess::Stdio::Pipe.is_pipe());
    /// ```
    pub fn is_pipe(&self) -> bool {
        matches!(self, Stdio::Pipe)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio::Fd(fd)
    }
}

/// How the loop learns that a child exited.
///
/// Each loop watches its own children, one by one (never `waitpid(-1)`, which would steal
/// other code's children, SUB-26):
///
/// * [`ExitWatcher::Auto`] (the default): a descriptor registered with the loop's reactor, so
///   no thread is needed — on Linux a pidfd (`pidfd_open`), on macOS and the BSDs a kqueue
///   holding the child's process filter (`EVFILT_PROC`, `NOTE_EXIT`). Where neither is
///   available (an old kernel, a seccomp filter, another system) it falls back to a thread.
/// * [`ExitWatcher::Thread`]: one thread per child, named `evloop-waitpid-<n>`, waits for the
///   exit without collecting the status and wakes the loop, which collects it. The thread ends
///   as soon as the child exited.
///
/// ```
/// use loop_subprocess::{ExitWatcher, SubprocessOptions};
/// let o = SubprocessOptions::new().exit_watcher(ExitWatcher::Thread);
/// assert_eq!(o.get_exit_watcher(), ExitWatcher::Thread);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitWatcher {
    /// pidfd (Linux) or kqueue process filter (macOS, BSDs) where available, else a thread.
    #[default]
    Auto,
    /// A thread per child.
    Thread,
}

/// Spawn options of `subprocess_exec` / `subprocess_shell` / `create_subprocess_exec` /
/// `create_subprocess_shell`: the three standard streams, environment, working directory,
/// session, descriptors to pass, stream buffer limit and exit watcher.
///
/// A stream that is not set takes the default *of the function it is given to* (SUB-15): the
/// loop-level `subprocess_*` pipe all three, while the high-level `create_subprocess_*`
/// inherit all three, as asyncio does.
///
/// ```
/// use loop_subprocess::{Stdio, SubprocessOptions};
/// let o = SubprocessOptions::new()
///     .arg("-l")
///     .stdin(Stdio::Null)
///     .stderr(Stdio::Stdout)
///     .env_var("LANG", "C")
///     .cwd("/")
///     .limit(1024);
/// assert_eq!(o.get_limit(), 1024);
/// ```
pub struct SubprocessOptions {
    /// The program's arguments (after the program itself); exec calls only.
    pub(crate) args: Vec<OsString>,
    /// stdin, or `None` for the function's default.
    pub(crate) stdin: Option<Stdio>,
    /// stdout, or `None` for the function's default.
    pub(crate) stdout: Option<Stdio>,
    /// stderr, or `None` for the function's default.
    pub(crate) stderr: Option<Stdio>,
    /// Start from an empty environment.
    pub(crate) env_clear: bool,
    /// Variables set (`Some`) or removed (`None`), in order.
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    /// Working directory of the child.
    pub(crate) cwd: Option<PathBuf>,
    /// `setsid()` in the child.
    pub(crate) start_new_session: bool,
    /// Descriptors the child keeps, under the same numbers.
    pub(crate) pass_fds: Vec<RawFd>,
    /// `StreamReader` limit of `Process::stdout` / `stderr`.
    pub(crate) limit: usize,
    /// How the exit is observed.
    pub(crate) exit_watcher: ExitWatcher,
}

impl Default for SubprocessOptions {
    fn default() -> Self {
        SubprocessOptions::new()
    }
}

impl SubprocessOptions {
    /// Options with every default: streams as the function decides, the parent's
    /// environment and working directory, same session, no extra descriptors, a 64 KiB stream
    /// limit, [`ExitWatcher::Auto`].
    ///
    /// ```
    /// let o = loop_subprocess::SubprocessOptions::new();
    /// assert_eq!(o.get_limit(), 65536);
    /// ```
    pub fn new() -> SubprocessOptions {
        SubprocessOptions {
            args: Vec::new(),
            stdin: None,
            stdout: None,
            stderr: None,
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            start_new_session: false,
            pass_fds: Vec::new(),
            limit: DEFAULT_LIMIT,
            exit_watcher: ExitWatcher::Auto,
        }
    }

    /// Adds one argument of the program (`subprocess_exec` and `create_subprocess_exec`; the
    /// shell calls take their arguments in the command string and refuse these).
    ///
    /// ```
    /// let o = loop_subprocess::SubprocessOptions::new().arg("-l").arg("/tmp");
    /// assert_eq!(o.get_args(), ["-l", "/tmp"]);
    /// ```
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> SubprocessOptions {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds the program's arguments, in order (as [`arg`](Self::arg) for each).
    ///
    /// ```
    /// let o = loop_subprocess::SubprocessOptions::new().args(["%s-%s", "a", "b"]);
    /// assert_eq!(o.get_args().len(), 3);
    /// ```
    pub fn args<I, S>(mut self, args: I) -> SubprocessOptions
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The program's arguments set so far.
    ///
    /// ```
    /// assert!(loop_subprocess::SubprocessOptions::new().get_args().is_empty());
    /// ```
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// Where the child's stdin comes from. [`Stdio::Stdout`] is rejected at spawn time.
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().stdin(loop_subprocess::Stdio::Null);
    /// ```
    pub fn stdin(mut self, s: impl Into<Stdio>) -> SubprocessOptions {
        self.stdin = Some(s.into());
        self
    }

    /// Where the child's stdout goes. [`Stdio::Stdout`] is rejected at spawn time.
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().stdout(loop_subprocess::Stdio::Pipe);
    /// ```
    pub fn stdout(mut self, s: impl Into<Stdio>) -> SubprocessOptions {
        self.stdout = Some(s.into());
        self
    }

    /// Where the child's stderr goes ([`Stdio::Stdout`]: with stdout).
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().stderr(loop_subprocess::Stdio::Stdout);
    /// ```
    pub fn stderr(mut self, s: impl Into<Stdio>) -> SubprocessOptions {
        self.stderr = Some(s.into());
        self
    }

    /// Replaces the whole environment of the child with `vars` (asyncio's `env=`).
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().env([("PATH", "/bin"), ("HOME", "/")]);
    /// ```
    pub fn env<I, K, V>(mut self, vars: I) -> SubprocessOptions
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env_clear = true;
        self.env = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), Some(v.as_ref().to_owned())))
            .collect();
        self
    }

    /// Sets one variable on top of the inherited (or [`env`](Self::env)) environment.
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().env_var("LC_ALL", "C");
    /// ```
    pub fn env_var(
        mut self,
        key: impl AsRef<OsStr>,
        value: impl AsRef<OsStr>,
    ) -> SubprocessOptions {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes one variable from the child's environment.
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().env_remove("TERM");
    /// ```
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> SubprocessOptions {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// The child's working directory (a missing directory fails the spawn with `ENOENT`).
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().cwd("/tmp");
    /// ```
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> SubprocessOptions {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs the child in a new session (`setsid()` before exec): it leaves the parent's
    /// process group and controlling terminal, so a Ctrl-C in the terminal does not reach it.
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().start_new_session(true);
    /// ```
    pub fn start_new_session(mut self, on: bool) -> SubprocessOptions {
        self.start_new_session = on;
        self
    }

    /// Descriptors the child keeps open under the same numbers (their close-on-exec flag is
    /// cleared in the child only). Each must be open in the parent when the child is spawned.
    ///
    /// Descriptors without the close-on-exec flag are inherited whatever this says: the
    /// standard library, this crate and loop-transport open everything close-on-exec, so only
    /// descriptors made by hand (`libc::pipe`, `dup`) are affected.
    ///
    /// ```
    /// let (r, _w) = rustix::pipe::pipe().unwrap();
    /// use std::os::fd::AsRawFd;
    /// let _o = loop_subprocess::SubprocessOptions::new().pass_fds([r.as_raw_fd()]);
    /// ```
    pub fn pass_fds(mut self, fds: impl IntoIterator<Item = RawFd>) -> SubprocessOptions {
        self.pass_fds.extend(fds);
        self
    }

    /// The buffer limit of the `StreamReader`s of `create_subprocess_*` (default 64 KiB); the
    /// child's stdout pipe is paused when more than twice this is buffered (SUB-21). Unused by
    /// `subprocess_exec` / `subprocess_shell`. Zero is rejected at spawn time.
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().limit(4096);
    /// ```
    pub fn limit(mut self, limit: usize) -> SubprocessOptions {
        self.limit = limit;
        self
    }

    /// How the child's exit is observed (see [`ExitWatcher`]).
    ///
    /// ```
    /// let _o = loop_subprocess::SubprocessOptions::new().exit_watcher(loop_subprocess::ExitWatcher::Auto);
    /// ```
    pub fn exit_watcher(mut self, w: ExitWatcher) -> SubprocessOptions {
        self.exit_watcher = w;
        self
    }

    /// The stream buffer limit.
    ///
    /// ```
    /// assert_eq!(loop_subprocess::SubprocessOptions::new().limit(7).get_limit(), 7);
    /// ```
    pub fn get_limit(&self) -> usize {
        self.limit
    }

    /// The exit watcher.
    ///
    /// ```
    /// use loop_subprocess::{ExitWatcher, SubprocessOptions};
    /// assert_eq!(SubprocessOptions::new().get_exit_watcher(), ExitWatcher::Auto);
    /// ```
    pub fn get_exit_watcher(&self) -> ExitWatcher {
        self.exit_watcher
    }
}

impl fmt::Debug for SubprocessOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubprocessOptions")
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("env_clear", &self.env_clear)
            .field("env", &self.env)
            .field("cwd", &self.cwd)
            .field("start_new_session", &self.start_new_session)
            .field("pass_fds", &self.pass_fds)
            .field("limit", &self.limit)
            .field("exit_watcher", &self.exit_watcher)
            .finish()
    }
}

/// Rejects an empty string or one with a NUL byte (the OS cannot take it).
pub(crate) fn check_c_string(what: &str, s: &OsStr, allow_empty: bool) -> Result<()> {
    if !allow_empty && s.is_empty() {
        return Err(Error::invalid_argument(format!("{what} must not be empty")));
    }
    if s.as_bytes().contains(&0) {
        return Err(Error::invalid_argument(format!(
            "{what} must not contain a NUL byte: {s:?}"
        )));
    }
    Ok(())
}

/// The checks asyncio makes with value errors, restated for Rust's types: the shell command is
/// a non-empty string, program and arguments have no NUL, stream choices are valid for their
/// stream, environment names are well formed, descriptors to pass are open, the limit is
/// positive.
pub(crate) fn validate(program: &OsStr, args: &[OsString], o: &SubprocessOptions) -> Result<()> {
    check_c_string("the program", program, false)?;
    for (i, a) in args.iter().enumerate() {
        check_c_string(&format!("argument {i}"), a, true)?;
    }
    if matches!(o.stdin, Some(Stdio::Stdout)) {
        return Err(Error::invalid_argument(
            "Stdio::Stdout is only valid for stderr (stdin cannot read from the child's stdout)",
        ));
    }
    if matches!(o.stdout, Some(Stdio::Stdout)) {
        return Err(Error::invalid_argument(
            "Stdio::Stdout is only valid for stderr; use Stdio::Pipe or Stdio::Inherit for stdout",
        ));
    }
    for (k, v) in &o.env {
        if k.is_empty() || k.as_bytes().contains(&b'=') {
            return Err(Error::invalid_argument(format!(
                "environment variable names must be non-empty and contain no '=': {k:?}"
            )));
        }
        check_c_string("an environment variable name", k, false)?;
        if let Some(v) = v {
            check_c_string(&format!("the value of {k:?}"), v, true)?;
        }
    }
    if let Some(cwd) = &o.cwd {
        check_c_string("the working directory", cwd.as_os_str(), false)?;
    }
    for &fd in &o.pass_fds {
        if fd < 0 {
            return Err(Error::invalid_argument(format!(
                "pass_fds: {fd} is not a file descriptor (they are non-negative)"
            )));
        }
        if !crate::sys::is_open_fd(fd) {
            return Err(Error::invalid_argument(format!(
                "pass_fds: descriptor {fd} is not open in this process"
            )));
        }
    }
    if o.limit == 0 {
        return Err(Error::invalid_argument(
            "limit must be at least 1 (it bounds the stream buffers of the child's output)",
        ));
    }
    Ok(())
}

/// The checks of a shell command line (SUB-03: asyncio's "cmd must be a string").
pub(crate) fn validate_shell_cmd(cmd: &OsStr, options: &SubprocessOptions) -> Result<()> {
    if !options.args.is_empty() {
        return Err(Error::invalid_argument(
            "a shell call takes its arguments in the command string, not in \
             SubprocessOptions::arg/args (use subprocess_exec / create_subprocess_exec for a \
             program with separate arguments)",
        ));
    }
    if cmd.is_empty() {
        return Err(Error::invalid_argument(
            "the shell command must be a non-empty string",
        ));
    }
    check_c_string("the shell command", cmd, false)
}
