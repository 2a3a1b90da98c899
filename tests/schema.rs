//! schema/sandbox.schema.json is what `sandbox schema` prints, and the manifests people start
//! from validate against it: editors that read the `#:schema` line must not flag valid files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const REGENERATE: &str = "cargo run -q -- schema > schema/sandbox.schema.json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_file() -> PathBuf {
    root().join("schema/sandbox.schema.json")
}

fn checked_in_schema() -> Value {
    let text = std::fs::read_to_string(schema_file())
        .unwrap_or_else(|e| panic!("schema/sandbox.schema.json: {e}; regenerate it: {REGENERATE}"));
    serde_json::from_str(&text).expect("the checked-in schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&checked_in_schema()).expect("the schema is a valid draft-07 schema")
}

/// A TOML manifest as the JSON value a schema validator (taplo, for one) checks.
fn toml_as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let value: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::to_value(value).expect("TOML converts to JSON")
}

fn schema_errors(validator: &jsonschema::Validator, path: &Path) -> Vec<String> {
    let instance = toml_as_json(path);
    validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
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

#[test]
fn the_checked_in_schema_is_what_sandbox_schema_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .arg("schema")
        .output()
        .expect("run sandbox schema");
    assert!(output.status.success(), "sandbox schema failed: {output:?}");
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let checked_in = std::fs::read_to_string(schema_file()).unwrap_or_default();
    assert!(
        printed == checked_in,
        "schema/sandbox.schema.json is stale; regenerate it with\n    {REGENERATE}\nand commit it"
    );
    // The library's schema is the same document.
    assert_eq!(
        serde_json::from_str::<Value>(&printed).unwrap(),
        sandbox::manifest::json_schema()
    );
}

#[test]
fn reference_manifests_templates_and_good_fixtures_match_the_schema() {
    let validator = validator();
    let mut files = toml_files("manifests");
    assert!(files.len() >= 4, "manifests/ holds {files:?}");
    files.extend(toml_files("src/cli/templates"));
    files.extend(toml_files("tests/manifests/good"));
    files.extend(toml_files("tests/manifests/shared"));
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let errors = schema_errors(&validator, path);
            (!errors.is_empty())
                .then(|| format!("{}:\n    {}", path.display(), errors.join("\n    ")))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reference_manifests_name_the_schema_for_editors() {
    for path in toml_files("manifests") {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#:schema ../schema/sandbox.schema.json\n"),
            "{} should start with `#:schema ../schema/sandbox.schema.json`",
            path.display()
        );
    }
}

/// Mistakes of shape (an unknown key, a wrong type, a value outside the choices, a malformed
/// size or duration) are flagged by the schema too, so editors show them while typing.
#[test]
fn the_schema_rejects_mistakes_of_shape() {
    let validator = validator();
    let shape_codes = [
        "sandbox::manifest::unknown-key",
        "sandbox::manifest::wrong-type",
        "sandbox::manifest::unknown-value",
    ];
    let mut checked = 0;
    let mut accepted = Vec::new();
    for path in common::fixtures("tests/manifests/bad") {
        // One fixture is not UTF-8 on purpose; its header is.
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let Some(expect) = common::parse_header(&path, &text).expect else {
            continue;
        };
        let stem = path.file_stem().unwrap().to_string_lossy();
        let shape = shape_codes.contains(&expect.code.as_str())
            || ["size-", "duration-", "mode-", "offset-"]
                .iter()
                .any(|prefix| stem.starts_with(prefix));
        if !shape || expect.file.is_some() {
            continue;
        }
        checked += 1;
        if schema_errors(&validator, &path).is_empty() {
            accepted.push(path.display().to_string());
        }
    }
    assert!(checked >= 15, "only {checked} fixtures checked");
    assert!(
        accepted.is_empty(),
        "the schema accepts these invalid manifests: {accepted:?}"
    );
}

#[test]
fn strings_with_variables_pass_patterned_keys() {
    let validator = validator();
    let instance = serde_json::json!({
        "process": { "timeout": "${env:TIMEOUT:-10m}", "umask": "022" },
        "cgroup": { "memory": "${env:MEMORY:-512M}" },
        "extends": "../base.toml",
        "security": { "seccomp": { "default_action": "allow", "deny": ["ptrace"], "errno": "eperm" } }
    });
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!validator.is_valid(&serde_json::json!({ "cgroup": { "memory": "12 MB" } })));
}
