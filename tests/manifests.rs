//! The manifests people start from: manifests/*.toml and the `sandbox init` templates validate
//! (with fixed host facts), and the plans of the reference manifests are snapshots, so a change
//! in what they mean shows up in review.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Facts, Who};
use sandbox::manifest;
use sandbox::plan::{Plan, render_text};
use sandbox::validate::{Invocation, validate};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Validate `path` as `who`; the problems as `file:line: code: message` lines.
fn validate_as(path: &Path, who: Who) -> Result<Plan, Vec<String>> {
    let host = Facts {
        who,
        ..Facts::default()
    }
    .host();
    let loaded = manifest::load(path, &host.caller.vars());
    let validated = validate(&loaded, &host, &Invocation::default());
    let problems: Vec<String> = validated
        .problems
        .iter()
        .map(|p| {
            let place = p
                .span
                .and_then(|s| loaded.sources.locate(s))
                .map_or_else(|| "-".into(), |l| l.to_string());
            format!("{place}: {}: {}", p.code, p.message)
        })
        .collect();
    match validated.plan {
        Some(plan) if problems.is_empty() => Ok(plan),
        _ => Err(problems),
    }
}

/// Who each reference manifest is for.
fn callers_for(path: &Path) -> &'static [Who] {
    match path.file_stem().and_then(|s| s.to_str()) {
        // Bridge networking needs root.
        Some("network-service") => &[Who::Root],
        _ => &[Who::Rootless, Who::Root],
    }
}

#[test]
fn reference_manifests_validate() {
    let files = toml_files("manifests");
    let stems: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in ["ci-jail", "dev-env", "minimal", "network-service"] {
        assert!(
            stems.iter().any(|s| s == wanted),
            "manifests/{wanted}.toml is missing"
        );
    }
    let mut failures = Vec::new();
    for path in &files {
        for &who in callers_for(path) {
            if let Err(problems) = validate_as(path, who) {
                failures.push(format!(
                    "{} as {who:?}:\n    {}",
                    path.display(),
                    problems.join("\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_bridge_example_says_why_it_needs_root() {
    let problems = validate_as(
        &root().join("manifests/network-service.toml"),
        Who::Rootless,
    )
    .expect_err("bridge networking is refused without root");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("sandbox::network::bridge-needs-root"),
        "{problems:?}"
    );
}

/// The plan as `sandbox plan --explain` prints it, with this checkout's path replaced so the
/// snapshot holds on any machine.
fn plan_text(plan: &Plan) -> String {
    let root = root().display().to_string();
    render_text(plan, true).replace(&root, "[ROOT]")
}

#[test]
fn reference_plans() {
    for path in toml_files("manifests") {
        let who = callers_for(&path)[0];
        let plan = validate_as(&path, who).expect("valid (see reference_manifests_validate)");
        let name = format!("plan-{}", path.file_stem().unwrap().to_string_lossy());
        insta::assert_snapshot!(name, plan_text(&plan));
    }
}

#[test]
fn every_init_template_validates() {
    let templates = toml_files("src/cli/templates");
    assert!(templates.len() >= 3, "{templates:?}");
    for template in templates {
        let name = template.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_sandbox"))
            .args(["init", "--template", &name])
            .current_dir(dir.path())
            .output()
            .expect("run sandbox init");
        assert!(
            output.status.success(),
            "sandbox init --template {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let written = dir.path().join("sandbox.toml");
        assert_eq!(
            std::fs::read_to_string(&written).unwrap(),
            std::fs::read_to_string(&template).unwrap(),
            "sandbox init --template {name} writes src/cli/templates/{name}.toml"
        );
        for who in [Who::Rootless, Who::Root] {
            if let Err(problems) = validate_as(&written, who) {
                panic!(
                    "the {name} template is invalid as {who:?}:\n    {}",
                    problems.join("\n    ")
                );
            }
        }
    }
}

/// `up` returns as soon as the command ended, and leaves the namespaces' teardown to the kernel,
/// unless something the caller sees waits for it: the cgroup to remove, a kept overlay upper.
#[test]
fn up_waits_for_the_teardown_only_with_a_cgroup_or_a_kept_overlay_upper() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("", false),
        ("[cgroup]\npids = 64\n", true),
        ("[rootfs]\npath = \"root\"\noverlay = true\n", false),
        (
            "[rootfs]\npath = \"root\"\noverlay = { upper = \"changes\" }\n",
            true,
        ),
        (
            "[[mount]]\ntype = \"overlay\"\ntarget = \"/layers\"\nsource = [\"root\"]\n",
            false,
        ),
        (
            "[[mount]]\ntype = \"overlay\"\ntarget = \"/layers\"\nsource = [\"root\"]\nupper = \"changes\"\n",
            true,
        ),
    ];
    std::fs::create_dir(dir.path().join("root")).unwrap();
    for (body, waits) in cases {
        let path = dir.path().join("sandbox.toml");
        let rootfs = if body.contains("[rootfs]") {
            ""
        } else {
            "[rootfs]\nhost = true\n"
        };
        let manifest = format!("version = 1\n[process]\ncommand = [\"true\"]\n{rootfs}{body}");
        std::fs::write(&path, manifest).unwrap();
        let plan = validate_as(&path, Who::Root).unwrap_or_else(|p| panic!("{body}: {p:?}"));
        assert_eq!(plan.waits_for_teardown(), waits, "{body}");
    }
}

#[test]
fn the_command_keeps_the_ids_of_setup_only_when_they_are_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("", Who::Root, Some((0, 0)), true),
        ("", Who::Rootless, Some((0, 0)), true),
        (
            "user = 1000\ngroup = 1000\n",
            Who::Root,
            Some((0, 0)),
            false,
        ),
        ("groups = [10]\n", Who::Root, Some((0, 0)), false),
        ("[namespaces]\nuser = false\n", Who::Root, None, false),
    ];
    for (body, who, setup, kept) in cases {
        let path = dir.path().join("sandbox.toml");
        let manifest =
            format!("version = 1\n[rootfs]\nhost = true\n[process]\ncommand = [\"true\"]\n{body}");
        std::fs::write(&path, manifest).unwrap();
        let plan = validate_as(&path, who).unwrap_or_else(|p| panic!("{body}: {p:?}"));
        assert_eq!(plan.setup_ids(), setup, "{body}");
        assert_eq!(plan.command_ids_set_up(), kept, "{body}");
    }
}
