//! The full text of some diagnostics, as `sandbox check` prints them without colours, so that
//! their wording and layout are reviewed like code. Manifests are loaded from text as a fixed
//! path, so the snapshots hold on any machine.

mod common;

use std::path::Path;

use common::{Facts, Who};
use sandbox::diagnostics::{JsonProblem, Report, render};
use sandbox::manifest;
use sandbox::validate::{Invocation, validate};

/// Every problem of `text`, rendered as `sandbox check` prints them.
fn rendered(text: &str, facts: &Facts) -> String {
    let reports = reports(text, facts);
    assert!(!reports.is_empty(), "no problem in:\n{text}");
    reports.iter().map(|r| render(r, false)).collect()
}

fn reports(text: &str, facts: &Facts) -> Vec<Report> {
    let host = facts.host();
    let loaded = manifest::load_str(
        Path::new("/fixtures/sandbox.toml"),
        text,
        &host.caller.vars(),
    );
    let validated = validate(&loaded, &host, &Invocation::default());
    validated
        .problems
        .into_iter()
        .map(|p| Report::new(p, &loaded.sources))
        .collect()
}

const BASE: &str = "[rootfs]\nhost = true\n\n[process]\ncommand = [\"/bin/sh\"]\n";

#[test]
fn unknown_key_with_a_suggestion() {
    let text = format!("{BASE}\n[uts]\nhostnme = \"box\"\n");
    insta::assert_snapshot!(rendered(&text, &Facts::default()));
}

#[test]
fn bad_size() {
    let text = format!("{BASE}\n[cgroup]\nmemory = \"12 MB\"\n");
    insta::assert_snapshot!(rendered(&text, &Facts::default()));
}

#[test]
fn overlapping_id_ranges_point_at_both() {
    let text = format!(
        "{BASE}\n[[uid_map]]\ninside = 0\noutside = 100000\ncount = 1000\n\n[[uid_map]]\ninside = 500\noutside = 200000\ncount = 10\n"
    );
    let facts = Facts {
        who: Who::Root,
        ..Facts::default()
    };
    insta::assert_snapshot!(rendered(&text, &facts));
}

#[test]
fn duplicate_mount_target() {
    let text = format!(
        "{BASE}\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/scratch\"\n\n[[mount]]\ntype = \"bind\"\nsource = \"/\"\ntarget = \"/scratch/\"\n"
    );
    insta::assert_snapshot!(rendered(&text, &Facts::default()));
}

#[test]
fn rootless_id_map_that_is_not_the_callers() {
    let text = format!("{BASE}\n[[uid_map]]\ninside = 0\noutside = 100000\ncount = 65536\n");
    insta::assert_snapshot!(rendered(&text, &Facts::default()));
}

#[test]
fn network_mode_against_the_namespace() {
    let text = format!("{BASE}\n[network]\nmode = \"host\"\n");
    insta::assert_snapshot!(rendered(&text, &Facts::default()));
}

#[test]
fn every_problem_of_a_file_in_file_order() {
    let text = "version = 2\n\n[rootfs]\nhost = true\npath = \"/nonexistent-root\"\n\n[process]\ncommand = [\"/bin/sh\"]\ntimeout = \"30 sec\"\ncwd = \"work\"\n\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/a/../b\"\nsize = \"1G\"\n\n[time]\nmonotonic_offset = \"1h\"\n";
    insta::assert_snapshot!(rendered(text, &Facts::default()));
}

#[test]
fn problems_as_json() {
    let text = format!("{BASE}\n[cgroup]\nmemory_swap = \"1G\"\ncpu_weight = 0\n");
    let reports = reports(&text, &Facts::default());
    let json: Vec<JsonProblem> = reports.iter().map(JsonProblem::from).collect();
    insta::assert_snapshot!(serde_json::to_string_pretty(&json).unwrap());
}
