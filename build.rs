//! Links the release binary with the functions a launch runs placed together
//! (bench/hot-text.ld, written by bench/hot-text.py), as `cargo install` and `cargo build
//! --release` build it. A launch then maps a few large folios of the binary instead of most of
//! its code: see docs/performance.md, "The release build".
//!
//! Only where it was measured and the linker is the toolchain's own: x86_64 Linux with glibc
//! and no linker chosen by the user (rust-lld from Rust 1.90, GNU ld before; both take the
//! script's INSERT). `cargo release-static` (musl) passes the script itself.

use std::env;
use std::path::Path;

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
    if ours && script.is_file() {
        let path = Path::new(&var("CARGO_MANIFEST_DIR")).join(script);
        // The compiler driver's own -T: no -Wl, so a comma in the path cannot split it.
        println!("cargo::rustc-link-arg-bins=-T");
        println!("cargo::rustc-link-arg-bins={}", path.display());
    }
}
