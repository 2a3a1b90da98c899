//! Shared code of the fuzz targets: the pipeline a manifest goes through in `sandbox check` and
//! `sandbox plan` (load, validate, render every problem, serialize the plan), and the host facts
//! it runs against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sandbox::cgroup::{Access, CgroupHost, Controller};
use sandbox::diagnostics::{JsonProblem, Report, render};
use sandbox::host::{Caller, FixedFacts, HostEntry, HostFacts, SubIdRange};
use sandbox::manifest::{self, vars::Vars};
use sandbox::plan::CgroupVersion;
use sandbox::validate::{self, Invocation};

pub mod structured;

/// Where fuzzed manifests claim to live. The folder does not exist, so relative `extends` and
/// bind sources miss; absolute ones still reach the real file system, read-only.
pub const MANIFEST_PATH: &str = "/nonexistent/fuzz-project/sandbox.toml";

/// An ordinary rootless caller with a subordinate id grant.
pub fn caller() -> Caller {
    Caller {
        uid: 1000,
        gid: 1000,
        euid: 1000,
        user: Some("ann".into()),
        home: Some("/home/ann".into()),
        env: [("TERM", "xterm"), ("EDITOR", "vi"), ("LANG", "C.UTF-8")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A typical x86_64 Debian host: merged /usr, subids, uidmap, nft and pasta installed, landlock
/// ABI 4, cgroup v2 delegated to the user by systemd.
// Facts added to `FixedFacts` later take their defaults rather than break this crate, which the
// main build does not compile.
#[allow(clippy::needless_update)]
pub fn fixed_facts() -> FixedFacts {
    let grant = vec![SubIdRange {
        start: 100_000,
        count: 65_536,
    }];
    FixedFacts {
        subuid: grant.clone(),
        subgid: grant,
        newuidmap: Some("/usr/bin/newuidmap".into()),
        newgidmap: Some("/usr/bin/newgidmap".into()),
        nft: Some("/usr/sbin/nft".into()),
        pasta: Some("/usr/bin/pasta".into()),
        host_root: vec![
            ("/usr".into(), HostEntry::Dir),
            ("/bin".into(), HostEntry::Symlink("usr/bin".into())),
            ("/sbin".into(), HostEntry::Symlink("usr/sbin".into())),
            ("/lib".into(), HostEntry::Symlink("usr/lib".into())),
            ("/lib64".into(), HostEntry::Symlink("usr/lib64".into())),
            ("/etc".into(), HostEntry::Dir),
        ],
        landlock_abi: 4,
        cgroup: cgroup_host(Some(CgroupVersion::V2), false),
        ..FixedFacts::default()
    }
}

/// The cgroup layouts of tests/common: v2 with every controller delegated (to root at the top,
/// to a user under its systemd service), a v1 host only root can write, or none mounted.
pub fn cgroup_host(version: Option<CgroupVersion>, root: bool) -> CgroupHost {
    let controllers = match version {
        None => return CgroupHost::default(),
        Some(CgroupVersion::V2) => {
            let base = match root {
                true => "/sys/fs/cgroup",
                false => "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service",
            };
            Controller::ALL
                .iter()
                .map(|&c| {
                    let access = Access::Usable {
                        base: base.into(),
                        hierarchy: Vec::new(),
                    };
                    (c, access)
                })
                .collect()
        }
        Some(CgroupVersion::V1) => Controller::ALL
            .iter()
            .filter_map(|&c| {
                let name = c.kernel_name(CgroupVersion::V1)?;
                let dir: PathBuf = format!("/sys/fs/cgroup/{name}").into();
                let access = match root {
                    true => Access::Usable {
                        base: dir,
                        hierarchy: vec![name.to_string()],
                    },
                    false => Access::NotWritable { dir },
                };
                Some((c, access))
            })
            .collect(),
    };
    CgroupHost {
        version,
        controllers,
    }
}

pub fn vars_for(caller: &Caller) -> Vars {
    caller.vars()
}

/// Run a manifest text through everything `sandbox check` and `sandbox plan` do with it short of
/// touching the kernel. Panics (the fuzzer's finding) only when the code under test does, or when
/// a plan comes out alongside an error.
pub fn exercise(path: &Path, text: &str, host: &HostFacts, invocation: &Invocation) {
    let vars = vars_for(&host.caller);
    let loaded = manifest::load_str(path, text, &vars);
    let validated = validate::validate(&loaded, host, invocation);
    let has_errors = validated.problems.iter().any(|p| p.is_error());
    assert_eq!(
        validated.plan.is_some(),
        !has_errors,
        "a plan must come out exactly when there is no error: {:#?}",
        validated.problems
    );
    // Rendering dominates the run time, so each kind of problem is drawn once per input; every
    // problem still goes through `Report::new` (span resolution) and the JSON form.
    let mut rendered = Vec::new();
    for problem in validated.problems {
        let code = problem.code;
        let report = Report::new(problem, &loaded.sources);
        if !rendered.contains(&code) {
            rendered.push(code);
            let _ = render(&report, false);
        }
        let _ = serde_json::to_string(&JsonProblem::from(&report)).expect("a problem serializes");
    }
    if let Some(plan) = validated.plan {
        serde_json::to_string(&plan).expect("a plan serializes");
    }
}

/// A `HostFacts` for the fixed caller and facts above.
pub fn fixed_host() -> HostFacts {
    HostFacts::fixed(caller(), fixed_facts())
}

/// The environment map type, re-exported for the structured target.
pub type Env = BTreeMap<String, String>;

pub fn manifest_path() -> PathBuf {
    PathBuf::from(MANIFEST_PATH)
}
