//! Links the release binary with the functions a launch runs placed together
//! (bench/hot-text.ld, written by bench/hot-text.py), as `cargo install` and `cargo build
//! --release` build it. A launch then maps a few large folios of the binary instead of most of
//! its code: see docs/performance.md, "The release build".
//!
//! Only where it was measured and the linker is the toolchain's own: x86_64 Linux with glibc
//! and no linker chosen by the user (rust-lld from Rust 1.90, GNU ld before; both take the
//! script's INSERT). `cargo release-static` (musl) passes the script itself.
//!
//! Static against glibc (.cargo/config.toml's crt-static), the relative relocations are
//! packed (`-z pack-relative-relocs`, DT_RELR): 2 KiB instead of 200 KiB of `.rela.dyn` that
//! glibc's start-up reads on every launch. Only with glibc 2.36 or later, whose static start-up
//! applies them (an older one would start with its pointers unrelocated), and only when
//! building for the machine that builds, whose glibc `getconf` names.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    let script = Path::new("bench/hot-text.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let ours = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("PROFILE") == "release"
        && env::var_os("RUSTC_LINKER").is_none()
        && !var("CARGO_ENCODED_RUSTFLAGS")
            .split('\x1f')
            .any(|flag| flag.contains("linker") || flag.contains("fuse-ld"));
    if !ours {
        return;
    }
    if script.is_file() {
        let path = Path::new(&var("CARGO_MANIFEST_DIR")).join(script);
        // The compiler driver's own -T: no -Wl, so a comma in the path cannot split it.
        println!("cargo::rustc-link-arg-bins=-T");
        println!("cargo::rustc-link-arg-bins={}", path.display());
    }
    let static_glibc = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    if static_glibc && var("HOST") == var("TARGET") && glibc_applies_relr() {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc is 2.36 or later (`getconf GNU_LIBC_VERSION`: "glibc 2.36").
fn glibc_applies_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    let mut numbers = version
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (2, 36)
}
