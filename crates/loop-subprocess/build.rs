//! Names the two groups of platforms the child-exit watcher is built for, so that their long
//! `cfg` lists are written once: `exit_pidfd` (Linux and Android: the exit fd is a pidfd) and
//! `exit_kqueue` (Apple's systems and the BSDs: a kqueue holding the process filter).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(exit_pidfd)");
    println!("cargo:rustc-check-cfg=cfg(exit_kqueue)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    if matches!(os.as_str(), "linux" | "android") {
        println!("cargo:rustc-cfg=exit_pidfd");
    }
    if vendor == "apple" || matches!(os.as_str(), "freebsd" | "netbsd" | "openbsd" | "dragonfly") {
        println!("cargo:rustc-cfg=exit_kqueue");
    }
}
