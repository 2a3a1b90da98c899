//! The `sandbox` binary: the C entry point instead of Rust's `fn main`.
//!
//! Rust's runtime set-up before `fn main` reads /proc/self/maps to place a stack-overflow guard
//! page, which costs each launch about 0.1 ms (measured with `perf stat`, see
//! docs/performance.md); [`sandbox::cli::main`] does the two parts of that set-up the launcher
//! relies on (standard descriptors open, SIGPIPE ignored).

// Under `cargo test` the test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

/// The release build links musl, whose allocator gives every emptied page back at once: a
/// launch made 100 more mmap/munmap calls with it than with glibc's. dlmalloc (the allocator
/// Rust's own standard library uses on wasm) keeps its segments, and is small. One allocator on
/// every target, so the tests run the one that ships.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

// The process entry point, called once by the C runtime.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
    envp: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: as the C runtime passes them to `main`.
    unsafe { sandbox::sys::raw::note_arguments(argc, argv, envp) };
    #[cfg(all(target_env = "gnu", target_feature = "crt-static"))]
    nss_built_in_only();
    // Read here, not from std::env::args: only glibc hands them to std before `main`.
    let args = (0..argc as usize).map(|i| {
        // SAFETY: the C runtime passes argc valid NUL-terminated strings, alive until exit.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        std::ffi::OsStr::from_bytes(arg.to_bytes()).to_owned()
    });
    // `exit` flushes stdout.
    std::process::exit(sandbox::cli::main(args).into())
}

/// Static against glibc (what `cargo build --release` and `cargo install` make, see
/// .cargo/config.toml), the user and host look-ups use only the name services built into
/// libc: /etc/passwd and /etc/group, /etc/hosts and DNS (with nscd, if it runs), as the musl
/// build does. Any other module nsswitch.conf names (systemd, sss, mdns, resolve, ...) would be
/// loaded with `dlopen` into a static process, which glibc supports only for its very own
/// build and which crashed here: the launcher died of SIGSEGV looking up a uid that
/// /etc/passwd lacks, in libnss_systemd.
#[cfg(all(not(test), target_env = "gnu", target_feature = "crt-static"))]
#[allow(unsafe_code)]
fn nss_built_in_only() {
    unsafe extern "C" {
        // glibc's own (nss.h), in libc.a as in libc.so.6 since 2.2.5.
        fn __nss_configure_lookup(
            database: *const std::ffi::c_char,
            services: *const std::ffi::c_char,
        ) -> std::ffi::c_int;
    }
    for (database, services) in [
        (c"passwd", c"files"),
        (c"group", c"files"),
        (c"hosts", c"files dns"),
    ] {
        // SAFETY: two NUL-terminated static strings, before any look-up, in the only thread.
        // It fails only for a database glibc does not know, which these are not.
        unsafe { __nss_configure_lookup(database.as_ptr(), services.as_ptr()) };
    }
}
