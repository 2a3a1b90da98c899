//! `sandbox allow` / `sandbox deny`, and the trust gate of `sandbox up`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use super::{Output, exit};
use crate::host::HostFacts;
use crate::manifest::Loaded;
use crate::plan::Plan;
use crate::trust::{Request, Store, content_hash, requests};
use crate::validate::Invocation;

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The manifest (default: sandbox.toml here or in a parent folder).
    pub manifest: Option<PathBuf>,
}

/// What the plan asks for beyond the default jail, for this caller.
pub fn requests_of(plan: &Plan, loaded: &Loaded, host: &HostFacts) -> Vec<Request> {
    requests(
        plan,
        loaded,
        host.caller.home.as_deref().map(std::path::Path::new),
    )
}

/// The list as people read it, with where each request was written.
pub fn describe(requests: &[Request], loaded: &Loaded) -> String {
    requests
        .iter()
        .map(|r| {
            let place = loaded
                .span_of(&r.key)
                .and_then(|span| loaded.sources.locate(span));
            let place = place
                .map(|l| format!("  [{} at {l}]", r.key))
                .unwrap_or_else(|| format!("  [{}]", r.key));
            format!("  {} {}{place}\n", if r.loud { "!!" } else { "- " }, r.what)
        })
        .collect()
}

fn store(host: &HostFacts, out: &Output) -> Option<Store> {
    let store = Store::for_caller(&host.caller.env, host.caller.home.as_deref());
    if store.is_none() {
        out.error("cannot tell where to record trust: set HOME or XDG_DATA_HOME");
    }
    store
}

/// The gate of `sandbox up`: true when the plan may run. A plan asking for nothing beyond the
/// default jail always may; otherwise its exact content must have been allowed, or the caller
/// says yes on a terminal, or passes --trust.
pub fn may_run(
    plan: &Plan,
    loaded: &Loaded,
    host: &HostFacts,
    trust_once: bool,
    out: &Output,
) -> bool {
    let asked = requests_of(plan, loaded, host);
    if asked.is_empty() || trust_once {
        return true;
    }
    let Some(store) = store(host, out) else {
        return false;
    };
    let hash = content_hash(loaded, &asked);
    if store.is_allowed(&loaded.path, &hash) {
        return true;
    }
    let name = loaded.path.display();
    say!(
        "sandbox: {name} asks for more than the default jail:\n{}",
        describe(&asked, loaded)
    );
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        say!(text "Allow this exact content (recorded; any change to a merged file asks again)? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            return match store.allow(&loaded.path, &hash) {
                Ok(()) => true,
                Err(e) => {
                    out.error(&format!("cannot record the decision: {e}"));
                    false
                }
            };
        }
        return false;
    }
    say!(
        "Allow exactly this content with `sandbox allow {name}` (any change to a merged file asks again),\nor run it once with `sandbox up --trust`."
    );
    false
}

pub fn allow(args: TrustArgs, out: &Output) -> u8 {
    let prepared = match super::prepare(
        args.manifest.as_deref(),
        &Invocation::inspecting(),
        out,
        exit::INVALID,
    ) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let super::Prepared { host, loaded, plan } = prepared;
    let Some(store) = store(&host, out) else {
        return exit::INVALID;
    };
    let asked = requests_of(&plan, &loaded, &host);
    if let Err(e) = store.allow(&loaded.path, &content_hash(&loaded, &asked)) {
        out.error(&format!("cannot record the decision: {e}"));
        return exit::INVALID;
    }
    if !out.quiet {
        let path = loaded.path.display();
        match asked.as_slice() {
            [] => say!("{path}: allowed (it asks for nothing beyond the default jail)"),
            asked => say!("{path}: allowed, with:\n{}", describe(asked, &loaded)),
        }
    }
    exit::SUCCESS
}

/// Forget a decision; the manifest need not be valid (nor even exist any more).
pub fn deny(args: TrustArgs, out: &Output) -> u8 {
    let path = match super::locate(args.manifest.as_deref(), out, exit::INVALID) {
        Ok(path) => std::path::absolute(&path).unwrap_or(path),
        Err(code) => return code,
    };
    let host = HostFacts::live();
    let Some(store) = store(&host, out) else {
        return exit::INVALID;
    };
    match store.deny(&path) {
        Ok(known) => {
            if !out.quiet {
                let what = if known {
                    "no longer allowed"
                } else {
                    "was not allowed"
                };
                say!("{}: {what}", path.display());
            }
            exit::SUCCESS
        }
        Err(e) => {
            out.error(&format!("cannot forget {}: {e}", path.display()));
            exit::INVALID
        }
    }
}
