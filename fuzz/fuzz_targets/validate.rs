//! Structured manifests (the schema's headers, keys and telling values, see
//! `sandbox_fuzz::structured`) with arbitrary host facts and command lines: reaches the
//! validation rules, and their interplay with root, subids, helpers and landlock, quickly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_fuzz::structured::Input;

fuzz_target!(|input: Input| {
    let host = input.host();
    sandbox_fuzz::exercise(&input.path(), &input.text(), &host, &input.invocation());
});
