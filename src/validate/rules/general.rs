//! `version` and `name`.

use super::super::{Cx, Invocation};
use crate::diagnostics::Problem;

pub(super) fn version(cx: &mut Cx) {
    if let Some(version) = &cx.loaded.manifest.version
        && version.value != 1
    {
        let problem = Problem::error(
            "sandbox::manifest::version",
            format!("unsupported manifest version {}", version.value),
        )
        .at(version.span, "only version 1 exists")
        .help("write `version = 1`, or leave the key out");
        cx.report(problem);
    }
}

/// A sandbox name: [a-z0-9][a-z0-9_.-]{0,62}.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// A valid name derived from a folder name: lower-cased, other characters replaced by `-`.
pub fn name_from_folder(folder: &str) -> String {
    let mut name: String = folder
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(63)
        .collect();
    while name.ends_with(['-', '.', '_']) {
        name.pop();
    }
    if name.is_empty() {
        "sandbox".into()
    } else {
        name
    }
}

const NAME_HELP: &str = "use 1 to 63 characters: lower-case letters, digits, `_`, `.` and `-`, starting with a letter or digit";

pub(super) fn name(cx: &mut Cx, invocation: &Invocation) -> String {
    if let Some(name) = &invocation.name {
        if !is_valid_name(name) {
            cx.report(
                Problem::error(
                    "sandbox::name::invalid",
                    format!("invalid sandbox name \"{name}\" (from --name)"),
                )
                .help(NAME_HELP),
            );
        }
        return name.clone();
    }
    match &cx.loaded.manifest.name {
        Some(name) => {
            if !is_valid_name(&name.value) {
                let problem = Problem::error(
                    "sandbox::name::invalid",
                    format!("invalid sandbox name \"{}\"", name.value),
                )
                .at(name.span, "not a valid name")
                .help(NAME_HELP);
                cx.report(problem);
            }
            name.value.clone()
        }
        None => name_from_folder(
            &cx.loaded
                .project_dir
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(is_valid_name("api-dev"));
        assert!(is_valid_name("a"));
        assert!(is_valid_name("0.x_y-z"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("Api"));
        assert!(!is_valid_name(&"a".repeat(64)));
        assert_eq!(name_from_folder("My Project"), "my-project");
        assert_eq!(name_from_folder("__x__"), "x");
        assert_eq!(name_from_folder("!!!"), "sandbox");
    }

    proptest! {
        #[test]
        fn folder_names_always_give_valid_names(folder in "\\PC{0,80}") {
            prop_assert!(is_valid_name(&name_from_folder(&folder)));
        }
    }
}
