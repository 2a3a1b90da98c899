//! `cargo bench`: the launcher's own work before any syscall that makes the sandbox: parse a
//! reference manifest (manifests/*.toml), validate it and build its plan. Host facts are fixed
//! (as in the tests), so this measures our code, not /etc/subuid reads or landlock probing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};

use common::{Facts, Who};
use criterion::{Criterion, criterion_group, criterion_main};
use sandbox::manifest;
use sandbox::validate::{Invocation, validate};

fn reference_manifests() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("manifests/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a reference manifest");
            (path, text)
        })
        .collect()
}

fn plan(c: &mut Criterion) {
    // As root, the common case for CI jails and the one the launch benchmark (bench/) runs;
    // bridge networking (network-service.toml) needs root anyway.
    let host = Facts {
        who: Who::Root,
        ..Facts::default()
    }
    .host();
    let vars = host.caller.vars();
    let invocation = Invocation::default();
    for (path, text) in reference_manifests() {
        let stem = path.file_stem().expect("a file name").to_string_lossy();
        let loaded = manifest::load_str(&path, &text, &vars);
        let validated = validate(&loaded, &host, &invocation);
        assert!(
            validated.plan.is_some(),
            "{}: {:?}",
            path.display(),
            validated.problems
        );

        c.bench_function(&format!("parse/{stem}"), |b| {
            b.iter(|| manifest::load_str(black_box(&path), black_box(&text), &vars))
        });
        c.bench_function(&format!("validate+plan/{stem}"), |b| {
            b.iter(|| validate(black_box(&loaded), &host, &invocation))
        });
        c.bench_function(&format!("parse+validate+plan/{stem}"), |b| {
            b.iter(|| {
                let loaded = manifest::load_str(black_box(&path), black_box(&text), &vars);
                validate(&loaded, &host, &invocation)
            })
        });
    }
}

criterion_group!(benches, plan);
criterion_main!(benches);
