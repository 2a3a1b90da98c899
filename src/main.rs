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
static ALLOCATOR: Allocator = Allocator {
    busy: std::sync::atomic::AtomicBool::new(false),
    heap: std::cell::UnsafeCell::new(dlmalloc::Dlmalloc::new()),
};

/// dlmalloc behind a lock of one atomic flag. A launch makes about 1700 allocations before the
/// clone, and the crate's own global lock (a pthread mutex, two calls into the C library for
/// each) took 0.08 ms of them. Contention is rare (the launcher is single-threaded; a progress
/// bar's thread at most), so a waiter yields rather than sleeps on a futex.
struct Allocator {
    busy: std::sync::atomic::AtomicBool,
    heap: std::cell::UnsafeCell<dlmalloc::Dlmalloc>,
}

// SAFETY: `heap` is only reached by `with_heap`, under `busy`.
#[allow(unsafe_code)]
unsafe impl Sync for Allocator {}

impl Allocator {
    fn with_heap<T>(&self, work: impl FnOnce(&mut dlmalloc::Dlmalloc) -> T) -> T {
        use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
        while (self
            .busy
            .compare_exchange_weak(false, true, Acquire, Relaxed))
        .is_err()
        {
            std::thread::yield_now();
        }
        // SAFETY: `busy` was false and is now ours: no other reference to the heap exists
        // until it is released below.
        #[allow(unsafe_code)]
        let result = work(unsafe { &mut *self.heap.get() });
        self.busy.store(false, Release);
        result
    }
}

// SAFETY: each call forwards to dlmalloc, which meets GlobalAlloc's contract, with the
// arguments GlobalAlloc received, one call at a time.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as the caller's contract.
        self.with_heap(|heap| unsafe { heap.malloc(layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as the caller's contract.
        self.with_heap(|heap| unsafe { heap.calloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract).
        self.with_heap(|heap| unsafe { heap.free(ptr, layout.size(), layout.align()) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract).
        self.with_heap(|heap| unsafe { heap.realloc(ptr, layout.size(), layout.align(), size) })
    }
}

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
