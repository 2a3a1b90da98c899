//! Paths inside the sandbox.

use std::path::PathBuf;

use crate::diagnostics::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    Empty,
    Relative,
    DotDot,
    Nul,
}

impl TargetError {
    pub fn label(self) -> &'static str {
        match self {
            TargetError::Empty => "empty path",
            TargetError::Relative => "relative path",
            TargetError::DotDot => "contains `..`",
            TargetError::Nul => "contains a NUL byte",
        }
    }

    pub fn problem(self, what: &str) -> Problem {
        match self {
            TargetError::Empty | TargetError::Relative => Problem::error(
                "sandbox::path::relative",
                format!("{what} must be an absolute path inside the sandbox"),
            )
            .help("start it with `/`, e.g. \"/work\""),
            TargetError::DotDot => Problem::error(
                "sandbox::path::dotdot",
                format!("{what} must not contain `..`"),
            )
            .help(
                "write the path without `..`; paths inside the sandbox are resolved from its root",
            ),
            TargetError::Nul => {
                Problem::error("sandbox::path::nul", format!("{what} contains a NUL byte"))
                    .help("remove the NUL byte")
            }
        }
    }
}

/// Normalize a path inside the sandbox: absolute, no `..`, no `.`, no repeated or trailing `/`.
pub fn normalize_target(text: &str) -> Result<PathBuf, TargetError> {
    if text.is_empty() {
        return Err(TargetError::Empty);
    }
    if text.contains('\0') {
        return Err(TargetError::Nul);
    }
    if !text.starts_with('/') {
        return Err(TargetError::Relative);
    }
    let mut out = String::with_capacity(text.len());
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(TargetError::DotDot),
            part => {
                out.push('/');
                out.push_str(part);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize_target("/work").unwrap(), PathBuf::from("/work"));
        assert_eq!(
            normalize_target("//a/./b//c/").unwrap(),
            PathBuf::from("/a/b/c")
        );
        assert_eq!(normalize_target("/").unwrap(), PathBuf::from("/"));
        assert_eq!(normalize_target("/a..b").unwrap(), PathBuf::from("/a..b"));
        assert_eq!(normalize_target("work"), Err(TargetError::Relative));
        assert_eq!(normalize_target("./work"), Err(TargetError::Relative));
        assert_eq!(normalize_target(""), Err(TargetError::Empty));
        assert_eq!(normalize_target("/a/../etc"), Err(TargetError::DotDot));
        assert_eq!(normalize_target("/a/.."), Err(TargetError::DotDot));
        assert_eq!(normalize_target("/a\0"), Err(TargetError::Nul));
    }

    proptest! {
        #[test]
        fn normalized_targets_are_clean_and_stable(text in "[/a-z.]{0,20}") {
            if let Ok(path) = normalize_target(&text) {
                let s = path.to_str().unwrap();
                prop_assert!(s.starts_with('/'));
                prop_assert!(!s.contains("//"));
                prop_assert!(s == "/" || !s.ends_with('/'));
                prop_assert!(!s.split('/').any(|p| p == "." || p == ".."));
                prop_assert_eq!(normalize_target(s).unwrap(), path.clone());
            }
        }
    }
}
