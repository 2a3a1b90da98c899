//! The `sandbox` binary: the C entry point instead of Rust's `fn main`.
//!
//! Rust's runtime set-up before `fn main` reads /proc/self/maps to place a stack-overflow guard
//! page, which costs each launch about 0.1 ms (measured with `perf stat`, see
//! docs/performance.md); [`sandbox::cli::main`] does the two parts of that set-up the launcher
//! relies on (standard descriptors open, SIGPIPE ignored).

// Under `cargo test` the test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

// The process entry point, called once by the C runtime.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // Arguments come from std (glibc hands them to its initializers); `exit` flushes stdout.
    std::process::exit(sandbox::cli::main().into())
}
