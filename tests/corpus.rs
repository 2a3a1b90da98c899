//! The fixture corpus: every manifest in tests/manifests/bad/ produces exactly the one diagnostic
//! its header names (code, file and line), and every manifest in tests/manifests/good/ validates
//! without a single problem. Host facts are fixed, so results do not depend on this machine.
//!
//! Header format: see `common::parse_header`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Cgroups, Expect, Facts, fixtures, parse_header};
use sandbox::diagnostics::{Problem, Shown};
use sandbox::manifest::{self, Loaded};
use sandbox::validate::{Invocation, Validated, validate};

fn check(path: &Path, facts: &Facts) -> (Loaded, Validated) {
    let host = facts.host();
    let loaded = manifest::load(path, &host.caller.vars());
    let validated = validate(&loaded, &host, &Invocation::default());
    (loaded, validated)
}

/// `file:line: code: message` for failure messages.
fn describe(loaded: &Loaded, problem: &Problem) -> String {
    let place = problem
        .span
        .and_then(|span| loaded.sources.locate(span))
        .map_or_else(|| "(no location)".to_string(), |l| l.to_string());
    format!("{place}: {}: {}", problem.code, problem.message)
}

/// The file and 1-based line a problem points at.
fn place(loaded: &Loaded, problem: &Problem) -> Option<(PathBuf, usize)> {
    let (file, start, _) = loaded.sources.resolve(problem.span?)?;
    Some((file.path.clone(), file.line_col(start).0))
}

/// A fixture's text; one is not UTF-8 on purpose, and its header is.
fn fixture_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

fn check_bad(path: &Path) -> Result<String, String> {
    let text = fixture_text(path);
    let header = parse_header(path, &text);
    let expect: Expect = header
        .expect
        .ok_or("no `# expect: CODE line N` header".to_string())?;
    let (loaded, validated) = check(path, &header.facts);
    let problems = details(&validated.problems);
    let all: Vec<String> = problems.iter().map(|p| describe(&loaded, p)).collect();
    let [problem] = problems.as_slice() else {
        return Err(format!(
            "expected exactly one problem ({}), found {}:\n    {}",
            expect.code,
            all.len(),
            all.join("\n    ")
        ));
    };
    if problem.code != expect.code {
        return Err(format!("expected {}, found {}", expect.code, all[0]));
    }
    let found = place(&loaded, problem);
    let wanted = expect.line.map(|line| {
        let dir = path.parent().expect("a fixture folder");
        let file = match &expect.file {
            Some(file) => dir.join(file),
            None => path.to_path_buf(),
        };
        (file.canonicalize().unwrap_or(file), line)
    });
    let found_canonical = found
        .clone()
        .map(|(file, line)| (file.canonicalize().unwrap_or(file), line));
    if found_canonical != wanted {
        return Err(format!(
            "expected {} at {}, found {}",
            expect.code,
            wanted.map_or("no location".into(), |(f, l)| format!(
                "{}:{l}",
                f.display()
            )),
            all[0]
        ));
    }
    if let Some(help) = &expect.help {
        let actual = problem.help.as_deref().unwrap_or("");
        if !actual.contains(help.as_str()) {
            return Err(format!(
                "the help of {} should contain {help:?}; it is {actual:?}",
                expect.code
            ));
        }
    }
    // A warning leaves the manifest valid; an error does not.
    if problem.is_error() == validated.plan.is_some() {
        return Err(format!(
            "{} is {}, but a plan was {}made",
            expect.code,
            if problem.is_error() {
                "an error"
            } else {
                "a warning"
            },
            if validated.plan.is_some() { "" } else { "not " }
        ));
    }
    Ok(expect.code)
}

/// The problems, without the lines that only sum some up for people (as JSON has them).
fn details(problems: &[Problem]) -> Vec<&Problem> {
    problems
        .iter()
        .filter(|p| p.shown != Shown::Summary)
        .collect()
}

#[test]
fn every_bad_manifest_has_exactly_its_diagnostic() {
    let paths = fixtures("tests/manifests/bad");
    assert!(paths.len() >= 35, "only {} bad fixtures", paths.len());
    let mut failures = Vec::new();
    for path in &paths {
        if let Err(why) = check_bad(path) {
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad fixtures failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}

#[test]
fn every_good_manifest_validates_without_problems() {
    let paths = fixtures("tests/manifests/good");
    assert!(paths.len() >= 10, "only {} good fixtures", paths.len());
    let mut failures = Vec::new();
    for path in &paths {
        let text = fixture_text(path);
        let header = parse_header(path, &text);
        assert!(
            header.expect.is_none(),
            "{}: good fixtures expect nothing",
            path.display()
        );
        let (loaded, validated) = check(path, &header.facts);
        if !validated.problems.is_empty() || validated.plan.is_none() {
            failures.push(format!(
                "{}:\n    {}",
                path.display(),
                validated
                    .problems
                    .iter()
                    .map(|p| describe(&loaded, p))
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every code the manifest, validation and plan stages can emit, found in their source.
fn codes_in_source() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("diagnostics.rs")];
    let mut dirs = vec![
        root.join("manifest"),
        root.join("validate"),
        root.join("plan"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut codes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for piece in text.split("\"sandbox::").skip(1) {
            let code: String = piece
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ":-".contains(*c))
                .collect();
            if piece[code.len()..].starts_with('"') && code.contains("::") {
                codes.insert(format!("sandbox::{code}"));
            }
        }
    }
    codes
}

/// Codes that no fixture can show, each with the test that covers it instead.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "sandbox::manifest::unreadable",
        "a_manifest_that_cannot_be_read_is_reported (a fixture file always exists)",
    ),
    (
        "sandbox::manifest::too-many-errors",
        "manifest::load's errors_past_the_cap_cost_a_bounded_number_of_passes (it follows many others)",
    ),
];

#[test]
fn every_error_code_has_a_bad_fixture() {
    let mut covered = BTreeSet::new();
    for path in fixtures("tests/manifests/bad") {
        let text = fixture_text(&path);
        if let Some(expect) = parse_header(&path, &text).expect {
            covered.insert(expect.code);
        }
    }
    let elsewhere: BTreeSet<String> = COVERED_ELSEWHERE
        .iter()
        .map(|(code, _)| code.to_string())
        .collect();
    let source = codes_in_source();
    assert!(source.len() > 40, "found only {source:?} in src/");
    let missing: Vec<&String> = source
        .iter()
        .filter(|c| !covered.contains(*c) && !elsewhere.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a fixture in tests/manifests/bad/: {missing:?}"
    );
    let unknown: Vec<&String> = covered.iter().filter(|c| !source.contains(*c)).collect();
    assert!(
        unknown.is_empty(),
        "fixtures expect codes that src/ never emits: {unknown:?}"
    );
}

#[test]
fn a_manifest_that_cannot_be_read_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, validated) = check(&dir.path().join("sandbox.toml"), &Facts::default());
    let codes: Vec<&str> = validated.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, ["sandbox::manifest::unreadable"]);
    assert!(validated.plan.is_none());
}

// -------------------------------------------------------------------------------------------
// What the good fixtures resolve to: the decisions docs/manifest.md describes.

use common::Who;
use sandbox::plan::{
    CgroupHierarchy, CgroupLimit, CgroupLimits, CgroupVersion, Idmap, MapWriter, MountOp, NetPlan,
    OverlayUpper, Plan, RootSource,
};

fn plan_of(name: &str, who: Who) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests/good")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut facts = parse_header(&path, &text).facts;
    facts.who = who;
    let (loaded, validated) = check(&path, &facts);
    validated.plan.unwrap_or_else(|| {
        panic!(
            "{name} is invalid for {who:?}: {:?}",
            validated
                .problems
                .iter()
                .map(|p| describe(&loaded, p))
                .collect::<Vec<_>>()
        )
    })
}

fn fixture_dir(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests")
        .join(folder)
}

fn mount_at<'a>(plan: &'a Plan, target: &str) -> Vec<&'a MountOp> {
    plan.mounts
        .iter()
        .map(|m| &m.op)
        .filter(|op| op.target() == Path::new(target))
        .collect()
}

#[test]
fn extends_merges_tables_replaces_same_target_mounts_and_the_root_source() {
    let plan = plan_of("extends.toml", Who::Rootless);
    // A rootfs source in the extending file replaces the base's `host = true`.
    assert_eq!(
        plan.root.source,
        RootSource::Dir {
            path: fixture_dir("good")
        }
    );
    // Tables merge key by key: command and env from the base, cwd from this file.
    assert_eq!(plan.process.argv, ["/bin/sh"]);
    assert_eq!(plan.process.cwd, Path::new("/fixtures"));
    assert!(plan.process.env.contains(&("EDITOR".into(), "vi".into())));
    let project = fixture_dir("good").display().to_string();
    assert!(plan.process.env.contains(&("PROJECT".into(), project)));
    let limits = &plan.cgroup.as_ref().unwrap().limits;
    assert_eq!(
        limits,
        &CgroupLimits::from([(CgroupLimit::Memory, 1 << 30), (CgroupLimit::Pids, 512)])
    );
    // The [[mount]] on /shared is replaced (not a duplicate), and its relative source is
    // relative to the file that wrote it; the base's /cache stays.
    let shared = mount_at(&plan, "/shared");
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert!(
        matches!(shared[0], MountOp::Bind { source, .. } if *source == fixture_dir("good")),
        "{shared:?}"
    );
    assert_eq!(mount_at(&plan, "/cache").len(), 1);
    assert_eq!(plan.sources.len(), 2);
}

#[test]
fn relative_paths_in_an_extended_file_are_relative_to_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("sandbox.toml");
    let base = fixture_dir("shared").join("base.toml");
    std::fs::write(&main, format!("extends = [{:?}]\n", base.to_str().unwrap())).unwrap();
    let facts = Facts::default();
    let (_, validated) = check(&main, &facts);
    let plan = validated.plan.expect("valid");
    assert!(
        matches!(mount_at(&plan, "/shared")[0], MountOp::Bind { source, .. } if *source == fixture_dir("shared")),
        "{:?}",
        plan.mounts
    );
    // ${PROJECT_DIR} is the main manifest's folder, wherever the string was written.
    let project = dir.path().canonicalize().unwrap();
    let written: Vec<&String> = plan
        .process
        .env
        .iter()
        .filter(|(k, _)| k == "PROJECT")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(written.len(), 1);
    assert_eq!(Path::new(written[0]).canonicalize().unwrap(), project);
}

#[test]
fn the_local_override_is_merged_last() {
    let plan = plan_of("with-local.toml", Who::Rootless);
    assert_eq!(plan.process.argv, ["/bin/true"]);
    assert_eq!(plan.process.cwd, Path::new("/tmp"));
    assert!(
        plan.sources
            .iter()
            .any(|s| s.ends_with("with-local.local.toml"))
    );
}

#[test]
fn id_maps_default_to_the_callers_id_rootless_and_to_a_high_range_as_root() {
    let rootless = plan_of("minimal.toml", Who::Rootless).user.unwrap();
    assert_eq!(
        (
            rootless.uid_map[0].inside,
            rootless.uid_map[0].outside,
            rootless.uid_map[0].count
        ),
        (0, 1000, 1)
    );
    assert_eq!(rootless.writer, MapWriter::Direct);
    assert!(rootless.deny_setgroups);
    // Root leases a block as the sandbox starts; the plan holds the pool's first.
    let root = plan_of("minimal.toml", Who::Root).user.unwrap();
    assert_eq!(
        (
            root.uid_map[0].inside,
            root.uid_map[0].outside,
            root.uid_map[0].count
        ),
        (0, 0x80000, 65_536)
    );
    assert!(root.pool.is_some());
    assert!(!root.deny_setgroups);
    let auto = plan_of("rootless-subid-auto.toml", Who::Rootless)
        .user
        .unwrap();
    let auto_map: Vec<(u32, u32, u32)> = auto
        .uid_map
        .iter()
        .map(|m| (m.inside, m.outside, m.count))
        .collect();
    assert_eq!(auto_map, [(0, 1000, 1), (1, 100_000, 65_535)]);
    assert!(matches!(auto.writer, MapWriter::Helper { .. }));
}

#[test]
fn defaults_are_explicit_in_the_plan() {
    let plan = plan_of("minimal.toml", Who::Rootless);
    let targets: Vec<String> = plan
        .mounts
        .iter()
        .map(|m| m.op.target().display().to_string())
        .collect();
    // host = true: /usr and /etc bound read-only, the merged-/usr symlinks recreated; then the
    // default /proc, /dev and /tmp, and /etc/hosts naming the sandbox.
    assert_eq!(
        targets,
        [
            "/usr",
            "/bin",
            "/sbin",
            "/lib",
            "/lib64",
            "/etc",
            "/proc",
            "/dev",
            "/tmp",
            "/etc/hosts"
        ]
    );
    assert!(plan.root.readonly);
    assert_eq!(plan.process.cwd, Path::new("/"));
    assert_eq!(
        (plan.process.uid, plan.process.gid, plan.process.umask),
        (0, 0, 0o022)
    );
    // Only PATH and the inherited TERM: nothing else leaks in from the caller.
    let names: Vec<&str> = plan.process.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["PATH", "TERM"]);
    assert_eq!(plan.net, NetPlan::None);
    assert!(plan.security.capabilities.is_empty());
    assert!(plan.security.no_new_privileges);
    assert_eq!(plan.security.seccomp, sandbox::plan::SeccompPlan::Default);
    assert_eq!(
        plan.security.rlimits,
        [(
            sandbox::manifest::values::Rlimit::Core,
            sandbox::manifest::values::RlimitValue::Limited(0)
        )]
    );
    assert_eq!(plan.uts.as_ref().unwrap().hostname, "good");
    assert!(plan.cgroup.is_none() && plan.time.is_none());
}

#[test]
fn published_ports_default_to_the_loopback_address() {
    let plan = plan_of("pasta-network.toml", Who::Rootless);
    let NetPlan::Pasta(pasta) = &plan.net else {
        panic!("{:?}", plan.net)
    };
    let ports: Vec<String> = pasta.ports.iter().map(ToString::to_string).collect();
    assert_eq!(ports, ["127.0.0.1:8080:80/tcp", "127.0.0.1:53:53/udp"]);
}

#[test]
fn auto_maps_never_run_past_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("sandbox.toml");
    std::fs::write(
        &main,
        "uid_map = \"auto\"\ngid_map = \"auto\"\n[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\"]\n",
    )
    .unwrap();
    let maps = |who: Who, count: u32| {
        let facts = Facts {
            who,
            subids: vec![sandbox::host::SubIdRange {
                start: 100_000,
                count,
            }],
            ..Facts::default()
        };
        let (_, validated) = check(&main, &facts);
        let user = validated
            .plan
            .expect("valid")
            .user
            .expect("a user namespace");
        user.uid_map
            .iter()
            .map(|m| (m.inside, m.outside, m.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(maps(Who::Root, 10), [(0, 100_000, 10)]);
    assert_eq!(maps(Who::Root, 1 << 20), [(0, 100_000, 65_536)]);
    assert_eq!(maps(Who::Rootless, 10), [(0, 1000, 1), (1, 100_000, 10)]);
    assert_eq!(
        maps(Who::Rootless, 1 << 20),
        [(0, 1000, 1), (1, 100_000, 65_535)]
    );
}

#[test]
fn every_error_code_is_documented() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/manifest.md"))
            .expect("docs/manifest.md");
    let undocumented: Vec<String> = codes_in_source()
        .into_iter()
        .filter(|code| !docs.contains(&format!("| `{code}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "add these codes to the table in docs/manifest.md: {undocumented:?}"
    );
}

/// Validate `text` (written to a temporary sandbox.toml) on a host with `layout`.
fn plan_with_cgroups(text: &str, who: Who, layout: Cgroups, stats: bool) -> Validated {
    let facts = Facts {
        who,
        cgroup: layout,
        ..Facts::default()
    };
    validate_on(text, &facts, stats)
}

/// Validate `text` as the manifest of a fresh folder, which is shaped like a root: a manifest's
/// `path = "."` has every mount point these tests' sandboxes mount on (the mount points of a
/// root the sandbox cannot write have tests of their own).
fn validate_on(text: &str, facts: &Facts, stats: bool) -> Validated {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["proc", "dev", "tmp", "etc", "b", "o", "m"] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
    }
    std::fs::write(dir.path().join("etc/hosts"), "").unwrap();
    let path = dir.path().join("sandbox.toml");
    std::fs::write(&path, text).unwrap();
    let host = facts.host();
    let loaded = manifest::load(&path, &host.caller.vars());
    let invocation = Invocation {
        stats,
        ..Invocation::default()
    };
    validate(&loaded, &host, &invocation)
}

#[test]
fn the_cgroup_plan_follows_the_host_layout() {
    let limits = "[rootfs]\nhost = true\n[process]\ncommand = [\"true\"]\n[cgroup]\nmemory = \"64M\"\ncpus = 0.5\npids = 9\n";
    let v2 = plan_with_cgroups(limits, Who::Rootless, Cgroups::V2, false);
    let cgroup = v2.plan.unwrap().cgroup.unwrap();
    assert_eq!(cgroup.version, CgroupVersion::V2);
    assert_eq!(
        cgroup.hierarchies,
        [CgroupHierarchy {
            base: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service".into(),
            controllers: vec!["memory".into(), "cpu".into(), "pids".into()],
        }]
    );
    assert!(!cgroup.stats && !cgroup.view);

    let v1 = plan_with_cgroups(limits, Who::Root, Cgroups::V1, false);
    let bases: Vec<_> = v1
        .plan
        .unwrap()
        .cgroup
        .unwrap()
        .hierarchies
        .into_iter()
        .map(|h| h.base)
        .collect();
    assert_eq!(
        bases,
        [
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/cpu",
            "/sys/fs/cgroup/pids"
        ]
        .map(PathBuf::from)
    );

    // Rootless on v1: each limit is refused at its own key.
    let refused = plan_with_cgroups(limits, Who::Rootless, Cgroups::V1, false);
    assert!(refused.plan.is_none());
    let codes: Vec<&str> = refused.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, ["sandbox::cgroup::unavailable"; 3]);
}

/// With `required = false`, what the host cannot apply is left out of the plan, so the group
/// gets the other limits and the cgroup step writes nothing for the missing ones.
#[test]
fn limits_that_fall_back_are_left_out_of_the_plan() {
    let text = "[rootfs]\nhost = true\n[process]\ncommand = [\"true\"]\n[cgroup]\nrequired = false\nmemory = \"64M\"\ncpus = 0.5\npids = 9\nio_weight = 50\n";
    let partial = plan_with_cgroups(text, Who::Rootless, Cgroups::V2MemoryPids, false);
    let cgroup = partial.plan.unwrap().cgroup.unwrap();
    assert_eq!(
        cgroup.limits,
        CgroupLimits::from([(CgroupLimit::Memory, 64 << 20), (CgroupLimit::Pids, 9)])
    );
    assert_eq!(cgroup.hierarchies[0].controllers, ["memory", "pids"]);
    let warned: Vec<&str> = details(&partial.problems)
        .iter()
        .map(|p| p.message.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(warned, ["`cpus`", "`io_weight`"]);
    // For people, one line sums them up, and -v shows those above instead.
    let summaries: Vec<&Problem> = partial
        .problems
        .iter()
        .filter(|p| p.shown == Shown::Summary)
        .collect();
    assert_eq!(summaries.len(), 1, "{:?}", partial.problems);
    assert!(
        summaries[0]
            .message
            .starts_with("cgroup: `cpus` is not applied, `io_weight` is not applied:"),
        "{}",
        summaries[0].message
    );
    assert!(
        details(&partial.problems)
            .iter()
            .all(|p| p.shown == Shown::Verbose)
    );

    // io_weight on a kernel that weighs no group's I/O, the io controller being usable.
    let unweighted = Facts {
        who: Who::Root,
        cgroup: Cgroups::V1,
        io_weight: false,
        ..Facts::default()
    };
    let cgroup = validate_on(text, &unweighted, false)
        .plan
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.limits.get(CgroupLimit::IoWeight), None);
    assert_eq!(cgroup.limits.get(CgroupLimit::Cpus), Some(50_000));
    assert!(!cgroup.hierarchies.iter().any(|h| h.base.ends_with("blkio")));
    let weighed = Facts {
        io_weight: true,
        ..unweighted
    };
    let cgroup = validate_on(text, &weighed, false)
        .plan
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.limits.get(CgroupLimit::IoWeight), Some(50));
}

#[test]
fn stats_alone_make_a_group_and_a_sysfs_shows_it() {
    let bare = "[rootfs]\nhost = true\n[process]\ncommand = [\"true\"]\n[[mount]]\ntype = \"sysfs\"\ntarget = \"/sys\"\n";
    assert!(
        plan_with_cgroups(bare, Who::Root, Cgroups::V1, false)
            .plan
            .unwrap()
            .cgroup
            .is_none()
    );
    let cgroup = plan_with_cgroups(bare, Who::Root, Cgroups::V1, true)
        .plan
        .unwrap()
        .cgroup
        .unwrap();
    assert!(cgroup.stats && cgroup.view && cgroup.limits.is_empty());
    assert_eq!(cgroup.parent, "sandbox");
    let controllers: Vec<String> = cgroup
        .hierarchies
        .into_iter()
        .flat_map(|h| h.controllers)
        .collect();
    assert_eq!(controllers, ["memory", "cpuacct", "pids"]);

    // A mount over /sys/fs/cgroup, or no cgroup namespace, and the group is not shown.
    let covered = format!("{bare}[[mount]]\ntype = \"tmpfs\"\ntarget = \"/sys/fs/cgroup\"\n");
    let plan = plan_with_cgroups(&covered, Who::Root, Cgroups::V1, true)
        .plan
        .unwrap();
    assert!(!plan.cgroup.unwrap().view);
    let no_ns = format!("{bare}[namespaces]\ncgroup = false\n");
    let plan = plan_with_cgroups(&no_ns, Who::Root, Cgroups::V1, true)
        .plan
        .unwrap();
    assert!(!plan.cgroup.unwrap().view);

    // Nothing usable at all: --stats cannot be honoured, and says why.
    let none = plan_with_cgroups(bare, Who::Root, Cgroups::None, true);
    assert!(none.plan.is_none());
    assert_eq!(none.problems[0].code, "sandbox::cgroup::unavailable");
}

/// Ten thousand mounts, flat or nested, validate, and a mistake repeated on every one of them
/// gives a bounded list of warnings. The checks walk each target once (comparing every pair
/// of mounts took minutes here, and listed a warning per pair).
#[test]
fn ten_thousand_mounts_validate_with_a_bounded_list_of_warnings() {
    let head = "[rootfs]\nhost = true\n[process]\ncommand = [\"true\"]\n";
    let flat: String = (0..10_000)
        .map(|i| format!("[[mount]]\ntype = \"tmpfs\"\ntarget = \"/m{i}\"\n"))
        .collect();
    // 100 chains of 100 nested targets, each chain listed deepest first: all but the last
    // mount of a chain are hidden by the one after them.
    let nested: String = (0..100)
        .flat_map(|chain| {
            (1..=100).rev().map(move |depth| {
                format!(
                    "[[mount]]\ntype = \"tmpfs\"\ntarget = \"/c{chain}{}\"\n",
                    "/d".repeat(depth)
                )
            })
        })
        .collect();
    for (shape, mounts, warned) in [("flat", flat, 0), ("nested", nested, 6)] {
        let validated = validate_on(&format!("{head}{mounts}"), &Facts::default(), false);
        assert!(
            validated.problems.is_empty(),
            "{shape}: {:?}",
            validated.problems
        );
        let plan = validated.plan.expect("valid");
        let made = plan
            .mounts
            .iter()
            .filter(|m| matches!(m.key, sandbox::origin::Origin::Mount(_)))
            .count();
        assert_eq!(made, 10_000, "{shape}");
        let hidden: Vec<&String> = plan.warnings.iter().filter(|w| w.contains("hid")).collect();
        assert_eq!(hidden.len(), warned, "{shape}: {hidden:?}");
        if warned > 0 {
            assert!(
                hidden[5].starts_with("9895 more mounts are hidden"),
                "{}",
                hidden[5]
            );
        }
    }
}

#[test]
fn as_root_binds_are_id_mapped_to_the_caller_but_not_system_dirs() {
    use sandbox::plan::Idmap;
    let bind = |source: &str, extra: &str| {
        format!(
            "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n{extra}[[mount]]\ntype = \"bind\"\nsource = \"{source}\"\ntarget = \"/b\"\nreadonly = false\n"
        )
    };
    let idmap_of = |facts: &Facts, text: &str| {
        let validated = validate_on(text, facts, false);
        let codes: Vec<&str> = validated.problems.iter().map(|p| p.code).collect();
        let plan = validated.plan.unwrap_or_else(|| panic!("{codes:?}"));
        let idmap = plan
            .mounts
            .iter()
            .find_map(|m| match &m.op {
                MountOp::Bind { target, idmap, .. } if target == Path::new("/b") => Some(*idmap),
                _ => None,
            })
            .expect("the bind");
        (idmap, codes)
    };
    let root = Facts {
        who: Who::Root,
        ..Facts::default()
    };
    assert_eq!(
        idmap_of(&root, &bind(".", "")),
        (Some(Idmap::Caller), vec![])
    );
    assert_eq!(
        idmap_of(
            &root,
            &bind(".", "").replace("readonly = false", "idmap = false")
        ),
        (None, vec![]),
        "idmap = false keeps the host's ids"
    );
    for system in ["/etc", "/usr/share", "/dev/null", "/proc/self"] {
        assert_eq!(idmap_of(&root, &bind(system, "")).0, None, "{system}");
    }
    assert_eq!(
        idmap_of(&root, &bind(".", "[namespaces]\nuser = false\n")),
        (None, vec![]),
        "without a user namespace the ids are the host's"
    );
    let rootless = Facts::default();
    assert_eq!(idmap_of(&rootless, &bind(".", "")), (None, vec![]));
    let unmappable = Facts {
        who: Who::Root,
        idmap: false,
        ..Facts::default()
    };
    assert_eq!(
        idmap_of(&unmappable, &bind(".", "")),
        (None, vec!["sandbox::mount::not-idmapped"])
    );
}

/// As root, no mount is id-mapped onto host ids that are not the sandbox's own: through a fixed
/// map onto a user's ids, a bind would give that user the caller's files, and the root and
/// overlay layers the files of their owners (root's).
#[test]
fn as_root_nothing_is_id_mapped_onto_host_ids_not_the_sandboxs_own() {
    use sandbox::plan::{Idmap, Plan};
    let root = Facts {
        who: Who::Root,
        ..Facts::default()
    };
    let manifest = |maps: &str, bind: &str| {
        format!(
            "{maps}[rootfs]\npath = \".\"\n[process]\ncommand = [\"/bin/true\"]\n[[mount]]\ntype = \"bind\"\nsource = \".\"\ntarget = \"/b\"\nreadonly = false\n{bind}[[mount]]\ntype = \"overlay\"\nsource = \".\"\ntarget = \"/o\"\n"
        )
    };
    let maps = |outside: u32| {
        format!(
            "[[uid_map]]\ninside = 0\noutside = {outside}\ncount = 1\n[[gid_map]]\ninside = 0\noutside = {outside}\ncount = 1\n"
        )
    };
    let idmaps = |plan: &Plan| {
        let mounts: Vec<Option<Idmap>> = plan
            .mounts
            .iter()
            .filter(|m| matches!(m.key, sandbox::origin::Origin::Mount(_)))
            .map(|m| match &m.op {
                MountOp::Bind { idmap, .. } | MountOp::Overlay { idmap, .. } => *idmap,
                _ => None,
            })
            .collect();
        (plan.root.idmapped, mounts)
    };
    let codes = |validated: &Validated| -> Vec<&str> {
        validated.problems.iter().map(|p| p.code).collect()
    };
    let mapped = (true, vec![Some(Idmap::Caller), Some(Idmap::Sandbox)]);

    let leased = validate_on(&manifest("", ""), &root, false);
    assert_eq!(
        idmaps(leased.plan.as_ref().unwrap()),
        mapped,
        "a leased block"
    );
    let itself = validate_on(&manifest(&maps(0), ""), &root, false);
    assert_eq!(
        idmaps(itself.plan.as_ref().unwrap()),
        mapped,
        "the host's root onto itself changes no owner"
    );

    let user = validate_on(&manifest(&maps(1000), ""), &root, false);
    assert_eq!(codes(&user), ["sandbox::mount::not-idmapped"]);
    let plan = user.plan.as_ref().unwrap();
    assert_eq!(idmaps(plan), (false, vec![None, None]));
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("(1000, 1000): its root and overlay layers are not id-mapped")),
        "{:?}",
        plan.warnings
    );
    let asked = validate_on(&manifest(&maps(1000), "idmap = true\n"), &root, false);
    assert_eq!(codes(&asked), ["sandbox::mount::idmap-foreign"]);
    assert!(asked.plan.is_none());
}

/// Root, owning the folders the tests name (`owner`), or not.
fn root_owning(owner: u32) -> Facts {
    Facts {
        who: Who::Root,
        owner: Some(owner),
        ..Facts::default()
    }
}

/// The plan of a manifest with its command, and the codes of its problems.
fn idmap_plan(facts: &Facts, text: &str) -> (Plan, Vec<&'static str>) {
    let command = "[process]\ncommand = [\"/bin/true\"]\n";
    let validated = validate_on(&format!("{command}{text}"), facts, false);
    let codes: Vec<&str> = validated.problems.iter().map(|p| p.code).collect();
    (validated.plan.unwrap_or_else(|| panic!("{codes:?}")), codes)
}

/// Each overlay's and bind's target, how it is id-mapped, and how its kept layer is.
fn layers(plan: &Plan) -> Vec<(String, Option<Idmap>, Option<Idmap>)> {
    plan.mounts
        .iter()
        .filter_map(|m| match &m.op {
            MountOp::Overlay {
                target,
                idmap,
                upper,
                ..
            } => Some((
                target.display().to_string(),
                *idmap,
                match upper {
                    Some(OverlayUpper::Dir { idmap, .. }) => *idmap,
                    _ => None,
                },
            )),
            MountOp::Bind { target, idmap, .. } => {
                Some((target.display().to_string(), *idmap, None))
            }
            _ => None,
        })
        .collect()
}

/// A folder the plan hands over for the trust check: (key, path, why).
type Handed = (String, String, String);

/// The folders the plan hands over for the trust check.
fn handed(plan: &Plan) -> Vec<Handed> {
    plan.handed_over
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                h.path.display().to_string(),
                h.why.clone(),
            )
        })
        .collect()
}

const SYSTEM: &str = "one of the host's system directories";

/// The host's dirs and a `[[mount]]` of `kind` from `source` on /m.
fn mount(kind: &str, source: &str, extra: &str) -> String {
    format!(
        "[rootfs]\nhost = true\n[[mount]]\ntype = \"{kind}\"\nsource = \"{source}\"\ntarget = \"/m\"\n{extra}"
    )
}

/// How the mount on /m is id-mapped, the problems, and what is handed over.
fn mounted(facts: &Facts, text: &str) -> (Option<Idmap>, Vec<&'static str>, Vec<Handed>) {
    let (plan, codes) = idmap_plan(facts, text);
    let m = layers(&plan)
        .into_iter()
        .find(|(target, ..)| target == "/m")
        .expect("the mount");
    (m.1, codes, handed(&plan))
}

/// As root, only the caller's own directories are id-mapped by default, whatever mounts them
/// (a bind, an overlay's layers, the root, the host's dirs of `rootfs.host`): not the host's
/// system dirs (their root-only files, /etc/shadow, would be the sandbox's), not a folder that
/// holds them (`/`), not someone else's. `idmap = true` id-maps them all the same, and the plan
/// lists them for the trust check.
#[test]
fn as_root_the_hosts_dirs_are_id_mapped_only_when_asked() {
    let root = root_owning(0);
    // The host's dirs, overlaid: as rootless, root's files are nobody's inside.
    let (plan, _) = idmap_plan(&root, "[rootfs]\nhost = true\noverlay = true\n");
    assert_eq!(
        layers(&plan),
        [("/usr".into(), None, None), ("/etc".into(), None, None)]
    );
    assert!(handed(&plan).is_empty());
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.starts_with("overlay: the host's system dirs are not id-mapped")),
        "{:?}",
        plan.warnings
    );
    // A kept layer in the project is the caller's: stored with the ids files have inside.
    let (plan, _) = idmap_plan(
        &root,
        "[rootfs]\nhost = true\noverlay = { upper = \"changes\" }\n",
    );
    assert_eq!(
        layers(&plan),
        [
            ("/usr".into(), None, Some(Idmap::Sandbox)),
            ("/etc".into(), None, Some(Idmap::Sandbox))
        ]
    );
    // Asked for: id-mapped, and listed for the trust check.
    let (plan, _) = idmap_plan(
        &root,
        "[rootfs]\nhost = true\noverlay = true\nidmap = true\n",
    );
    assert_eq!(
        layers(&plan),
        [
            ("/usr".into(), Some(Idmap::Sandbox), None),
            ("/etc".into(), Some(Idmap::Sandbox), None)
        ]
    );
    assert_eq!(
        handed(&plan),
        [
            ("rootfs.host".into(), "/usr".into(), SYSTEM.into()),
            ("rootfs.host".into(), "/etc".into(), SYSTEM.into())
        ]
    );
    assert!(
        !plan.warnings.iter().any(|w| w.starts_with("overlay:")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn as_root_a_root_directory_is_id_mapped_when_it_is_the_callers() {
    let root = root_owning(0);
    // A root directory: the caller's own folder is id-mapped, a system one or `/` is not (and
    // without id-mapping the sandbox could make no mount point in them: none is asked for).
    let nothing_mounted = "proc = false\ndev = false\ntmp = false\n[namespaces]\nuts = false\n";
    for (path, mapped) in [(".", true), ("/", false), ("/usr", false), ("/etc", false)] {
        let (plan, codes) = idmap_plan(
            &root,
            &format!("[rootfs]\npath = \"{path}\"\n{nothing_mounted}"),
        );
        assert_eq!((plan.root.idmapped, codes), (mapped, vec![]), "{path}");
        assert!(handed(&plan).is_empty(), "{path}");
    }
}

/// A root the sandbox cannot write (not id-mapped, its owner beyond the sandbox's map) that
/// lacks a mount point is refused by validation, naming each missing path and the commands
/// that make them, rather than failing half-way through `up` with EACCES. Paths below an
/// earlier mount are made on that mount, and a root the sandbox can write is not judged.
#[test]
fn a_root_the_sandbox_cannot_write_must_have_its_mount_points() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("root/etc")).unwrap();
    std::fs::create_dir_all(dir.path().join("root/dev")).unwrap();
    let manifest = "[rootfs]\npath = \"root\"\n[process]\ncommand = [\"/bin/true\"]\n";
    let path = dir.path().join("sandbox.toml");
    std::fs::write(&path, manifest).unwrap();
    let problems = |facts: &Facts| {
        let host = facts.host();
        let loaded = manifest::load(&path, &host.caller.vars());
        validate(&loaded, &host, &Invocation::default()).problems
    };
    let root_dir = dir.path().join("root").canonicalize().unwrap();
    let owned_by = |owner: u32, who: Who| Facts {
        who,
        owner: Some(owner),
        ..Facts::default()
    };

    // Rootless, a folder of root's: /proc, /tmp and /etc/hosts are missing; /dev is there,
    // and /dev/pts, /dev/shm... are made on the /dev mount.
    let refused = problems(&owned_by(0, Who::Rootless));
    assert_eq!(refused.len(), 1, "{refused:?}");
    let problem = &refused[0];
    assert_eq!(problem.code, "sandbox::rootfs::mount-point");
    assert!(
        problem
            .message
            .contains("has no /proc, /tmp, /etc/hosts, which the sandbox mounts on"),
        "{}",
        problem.message
    );
    let help = problem.help.as_deref().unwrap();
    let root = root_dir.display();
    assert!(
        help.contains(&format!(
            "`mkdir -p {root}/proc {root}/tmp && touch {root}/etc/hosts`"
        )),
        "{help}"
    );
    assert!(help.contains("a root folder you own"), "{help}");

    // The caller's own folder (its map makes the caller the sandbox's root), and as root an
    // id-mapped one: the sandbox makes them itself.
    assert!(problems(&owned_by(1000, Who::Rootless)).is_empty());
    assert!(problems(&owned_by(0, Who::Root)).is_empty());
    // As root, someone else's folder is not id-mapped: refused, and the help says why.
    let others = problems(&owned_by(1000, Who::Root));
    let refusal = others
        .iter()
        .find(|p| p.code == "sandbox::rootfs::mount-point")
        .expect("refused");
    let help = refusal.help.as_deref().unwrap();
    assert!(help.contains("not id-mapped: owned by uid 1000"), "{help}");
}

#[test]
fn as_root_overlays_and_binds_of_the_callers_folders_are_id_mapped() {
    let root = root_owning(0);
    // Overlay layers and binds of system dirs are not; of the caller's own folder they are.
    assert_eq!(
        mounted(&root, &mount("overlay", "/usr", "")),
        (None, vec![], vec![])
    );
    assert_eq!(
        mounted(&root, &mount("overlay", ".", "")),
        (Some(Idmap::Sandbox), vec![], vec![])
    );
    assert_eq!(
        mounted(&root, &mount("overlay", "/usr", "idmap = true\n")),
        (
            Some(Idmap::Sandbox),
            vec![],
            vec![("mount[0]".into(), "/usr".into(), SYSTEM.into())]
        )
    );
    assert_eq!(
        mounted(&root, &mount("bind", "/etc", "idmap = true\n")),
        (
            Some(Idmap::Caller),
            vec![],
            vec![("mount[0]".into(), "/etc".into(), SYSTEM.into())]
        )
    );
    // Through the sandbox's map, which gives every owner's files, a folder outside the project
    // is listed too; a bind maps the caller's ids alone.
    let outside = tempfile::tempdir().unwrap();
    let outside = std::fs::canonicalize(outside.path()).unwrap();
    let path = outside.display().to_string();
    assert_eq!(
        mounted(&root, &mount("overlay", &path, "")),
        (
            Some(Idmap::Sandbox),
            vec![],
            vec![(
                "mount[0]".into(),
                path.clone(),
                "outside the project".into()
            )]
        )
    );
    assert_eq!(
        mounted(&root, &mount("bind", &path, "")),
        (Some(Idmap::Caller), vec![], vec![])
    );
}

#[test]
fn as_root_someone_elses_folder_is_id_mapped_only_when_asked() {
    let others = root_owning(1000);
    // Someone else's folder is not id-mapped, and a warning says so; `idmap = true` does.
    let (plan, codes) = idmap_plan(&others, "[rootfs]\npath = \".\"\n");
    assert_eq!(
        (plan.root.idmapped, codes),
        (false, vec!["sandbox::mount::not-idmapped"])
    );
    for kind in ["bind", "overlay"] {
        let (idmap, codes, _) = mounted(&others, &mount(kind, ".", ""));
        assert_eq!(
            (idmap, codes),
            (None, vec!["sandbox::mount::not-idmapped"]),
            "{kind}"
        );
        let (idmap, codes, listed) = mounted(&others, &mount(kind, ".", "idmap = true\n"));
        assert!(idmap.is_some() && codes.is_empty(), "{kind}: {codes:?}");
        assert_eq!(listed.len(), 1, "{kind}");
        assert_eq!(listed[0].2, "owned by uid 1000", "{kind}");
    }
}

#[test]
fn rootless_nothing_is_id_mapped() {
    // Rootless nothing is id-mapped, nor needs to be: `idmap = true` on a layer changes nothing.
    let rootless = Facts::default();
    let (plan, codes) = idmap_plan(
        &rootless,
        "[rootfs]\nhost = true\noverlay = true\nidmap = true\n",
    );
    assert_eq!((layers(&plan)[0].1, codes), (None, vec![]));
    assert!(handed(&plan).is_empty());
}
