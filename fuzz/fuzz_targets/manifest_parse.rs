//! Any UTF-8 text as a manifest: load, validate against fixed host facts, render every problem
//! and serialize the plan. Nothing here may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::validate::Invocation;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let host = sandbox_fuzz::fixed_host();
    sandbox_fuzz::exercise(
        &sandbox_fuzz::manifest_path(),
        text,
        &host,
        &Invocation::default(),
    );
});
