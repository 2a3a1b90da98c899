//! Variables in manifest strings: `${PROJECT_DIR}`, `${HOME}`, `${USER}`, `${UID}`, `${GID}`,
//! `${env:NAME}`, `${env:NAME:-default}`, and `$$` for a literal `$`.
//!
//! A `$` followed by anything else is kept as it is, so shell snippets in `command` that use
//! `$1` or `$PATH` need no escaping; only the `${...}` form is ours.

use std::collections::BTreeMap;

use super::node::{Node, NodeId, NodeKind};
use super::source::Span;

/// The values variables expand to, gathered once per load.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub project_dir: String,
    pub home: Option<String>,
    /// The caller's user name, when known without a lookup ($USER).
    pub user: Option<String>,
    /// Looks a user's name up by uid (the host's password database) for a `${USER}` when
    /// `user` is not set; the caller passes it in, so a manifest without `${USER}` is loaded
    /// without a lookup, and loading never asks the host itself.
    pub user_name_of: Option<fn(u32) -> Option<String>>,
    pub uid: u32,
    pub gid: u32,
    /// Shared with the caller's own (`host::Caller`), not copied: a launch expands variables
    /// from it once.
    pub env: std::sync::Arc<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarError {
    Undefined { name: String, help: String },
    Unclosed,
    Empty,
}

impl std::fmt::Display for VarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarError::Undefined { name, .. } => write!(f, "variable `{name}` is not defined"),
            VarError::Unclosed => f.write_str("`${` is not closed by `}`"),
            VarError::Empty => f.write_str("`${}` names no variable"),
        }
    }
}

impl VarError {
    pub fn help(&self) -> String {
        match self {
            VarError::Undefined { help, .. } => help.clone(),
            VarError::Unclosed => {
                "close the variable with `}`, or write `$$` for a literal `$`".into()
            }
            VarError::Empty => {
                "name a variable, e.g. `${PROJECT_DIR}`, or write `$$` for a literal `$`".into()
            }
        }
    }
}

const KNOWN: &str = "PROJECT_DIR, HOME, USER, UID, GID, env:NAME, env:NAME:-default";

impl Vars {
    fn lookup(&self, name: &str) -> Result<String, VarError> {
        if let Some(rest) = name.strip_prefix("env:") {
            let (var, default) = match rest.split_once(":-") {
                Some((var, default)) => (var, Some(default)),
                None => (rest, None),
            };
            return match (self.env.get(var), default) {
                (Some(value), _) => Ok(value.clone()),
                (None, Some(default)) => Ok(default.to_string()),
                (None, None) => Err(VarError::Undefined {
                    name: name.to_string(),
                    help: format!(
                        "set {var} in the environment, or give a default: `${{env:{var}:-value}}`"
                    ),
                }),
            };
        }
        let value = match name {
            "PROJECT_DIR" => Some(self.project_dir.clone()),
            "HOME" => self.home.clone(),
            "USER" => self
                .user
                .clone()
                .or_else(|| self.user_name_of.and_then(|lookup| lookup(self.uid))),
            "UID" => Some(self.uid.to_string()),
            "GID" => Some(self.gid.to_string()),
            _ => {
                let help = match self.env.contains_key(name) {
                    true => format!("environment variables are written `${{env:{name}}}`"),
                    false => format!("the variables are {KNOWN}; write `$$` for a literal `$`"),
                };
                return Err(VarError::Undefined {
                    name: name.to_string(),
                    help,
                });
            }
        };
        value.ok_or_else(|| VarError::Undefined {
            name: name.to_string(),
            help: format!("{name} is not known for this caller; set it in the environment"),
        })
    }

    /// Expand one string.
    pub fn expand(&self, text: &str) -> Result<String, VarError> {
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(index) = rest.find('$') {
            out.push_str(&rest[..index]);
            let after = &rest[index + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or(VarError::Unclosed)?;
                let name = &body[..end];
                if name.is_empty() {
                    return Err(VarError::Empty);
                }
                out.push_str(&self.lookup(name)?);
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Expand every string value of a tree in place; keys are never expanded. A string that
    /// cannot be expanded is left as it is and named in `errors`, with its node, for the loader
    /// to drop.
    pub fn expand_tree(&self, node: &mut Node, errors: &mut Vec<(NodeId, Span, VarError)>) {
        match &mut node.kind {
            NodeKind::String(text) => match self.expand(text) {
                Ok(expanded) => *text = expanded,
                Err(error) => errors.push((node.id, node.span, error)),
            },
            NodeKind::Array(items) => items
                .iter_mut()
                .for_each(|item| self.expand_tree(item, errors)),
            NodeKind::Table(entries) => entries
                .iter_mut()
                .for_each(|entry| self.expand_tree(&mut entry.value, errors)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars() -> Vars {
        Vars {
            project_dir: "/src/app".into(),
            home: Some("/home/ann".into()),
            user: Some("ann".into()),
            user_name_of: None,
            uid: 1000,
            gid: 1001,
            env: std::sync::Arc::new(
                [("EDITOR".to_string(), "vi".to_string())]
                    .into_iter()
                    .collect(),
            ),
        }
    }

    #[test]
    fn expands_every_variable() {
        let v = vars();
        assert_eq!(v.expand("${PROJECT_DIR}/x").unwrap(), "/src/app/x");
        assert_eq!(
            v.expand("${HOME}:${USER}:${UID}:${GID}").unwrap(),
            "/home/ann:ann:1000:1001"
        );
        assert_eq!(v.expand("${env:EDITOR}").unwrap(), "vi");
        assert_eq!(v.expand("${env:NOPE:-fallback}").unwrap(), "fallback");
        assert_eq!(v.expand("${env:EDITOR:-fallback}").unwrap(), "vi");
        assert_eq!(v.expand("${env:NOPE:-}").unwrap(), "");
        assert_eq!(v.expand("cost $$5").unwrap(), "cost $5");
        assert_eq!(v.expand("$$${UID}").unwrap(), "$1000");
    }

    #[test]
    fn a_bare_dollar_is_literal() {
        assert_eq!(vars().expand("echo $1 $PATH $").unwrap(), "echo $1 $PATH $");
    }

    #[test]
    fn errors_name_the_problem() {
        let v = vars();
        assert!(
            matches!(v.expand("${NOPE}"), Err(VarError::Undefined { name, .. }) if name == "NOPE")
        );
        assert!(matches!(
            v.expand("${env:NOPE}"),
            Err(VarError::Undefined { .. })
        ));
        assert_eq!(v.expand("${HOME"), Err(VarError::Unclosed));
        assert_eq!(v.expand("${}"), Err(VarError::Empty));
        let Err(VarError::Undefined { help, .. }) = v.expand("${EDITOR}") else {
            panic!()
        };
        assert!(help.contains("${env:EDITOR}"), "{help}");
    }

    #[test]
    fn the_user_name_is_looked_up_only_without_user_and_only_through_the_callers_lookup() {
        let mut v = vars();
        v.user_name_of = Some(|_| panic!("$USER is set: no lookup"));
        assert_eq!(v.expand("${USER}").unwrap(), "ann");
        v.user = None;
        v.user_name_of = None;
        assert!(v.expand("${USER}").is_err());
        v.user_name_of = Some(|uid| Some(format!("user{uid}")));
        assert_eq!(v.expand("${USER}").unwrap(), "user1000");
    }

    #[test]
    fn an_unknown_home_is_an_error_not_an_empty_string() {
        let v = Vars {
            home: None,
            ..vars()
        };
        assert!(v.expand("${HOME}/x").is_err());
    }

    proptest! {
        #[test]
        fn expansion_never_panics(text in ".*") {
            let _ = vars().expand(&text);
        }

        #[test]
        fn text_without_dollar_is_unchanged(text in "[^$]*") {
            prop_assert_eq!(vars().expand(&text).unwrap(), text);
        }
    }
}
