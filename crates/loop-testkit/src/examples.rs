//! Building the workspace's examples from a test, so that a test can run one as a child
//! process and check what it prints.
//!
//! A cold build of an example can take minutes on a loaded machine while the test itself then
//! runs in a second, so the build runs with the calling thread's watchdog guards paused (see
//! [`paused`](crate::paused)): the limit bounds what the test does, not how long cargo waits
//! for its lock.

use std::path::PathBuf;
use std::process::Command;

/// The workspace's root manifest (the facade package, which owns `examples/`).
const ROOT_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");

/// Builds the example `name` of the facade package with `features` (cargo's syntax: `"net"`,
/// `"net,signals"`) and returns the path of its binary.
///
/// It uses the cargo that runs the tests (`$CARGO`) and the same target directory, so the
/// build is shared with the test build and is a no-op when nothing changed.
///
/// # Panics
///
/// If cargo cannot be run, the build fails (with cargo's error output in the message), or
/// cargo names no executable for the example.
///
/// ```no_run
/// let exe = loop_testkit::build_example("hello_world", "");
/// let out = std::process::Command::new(exe).output().unwrap();
/// assert!(out.status.success());
/// ```
pub fn build_example(name: &str, features: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--message-format=json"]);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    cmd.args(["--manifest-path", ROOT_MANIFEST, "--example", name]);
    let out = crate::paused(|| cmd.output()).expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --example {name} --features '{features}' failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    executable(&stdout, name)
        .unwrap_or_else(|| panic!("no executable for example {name} in:\n{stdout}"))
}

/// The executable that cargo's JSON messages name for the artifact `name`.
fn executable(messages: &str, name: &str) -> Option<PathBuf> {
    let key = "\"executable\":\"";
    let named = format!("\"name\":\"{name}\"");
    messages
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter(|l| l.contains(&named))
        .find_map(|l| {
            let start = l.find(key)? + key.len();
            let len = l[start..].find('"')?;
            Some(PathBuf::from(&l[start..start + len]))
        })
}

#[cfg(test)]
mod tests {
    use super::executable;

    #[test]
    fn the_executable_of_the_named_artifact_is_found() {
        // testkit: no watchdog — parses a string, runs no loop and blocks on nothing
        let msgs = concat!(
            "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"other\"},\"executable\":\"/t/other\"}\n",
            "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"echo\"},\"executable\":\"/t/echo\"}\n",
            "{\"reason\":\"build-finished\",\"success\":true}\n",
        );
        assert_eq!(executable(msgs, "echo"), Some("/t/echo".into()));
        assert_eq!(executable(msgs, "missing"), None);
    }
}
