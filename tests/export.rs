//! `sandbox export --oci`: the bundles of the reference manifests validate against the
//! runtime-spec schema, and run under crun and runc; the command inside sees what it sees under
//! `sandbox up`, field by field (tests/probe/probe.c `view`: id maps, ids, names, environment,
//! capabilities, no_new_privs, seccomp mode, umask, every rlimit, every mount point with its file
//! system and read-only flag, the cgroup limits readable inside), and every escape attempt of
//! the seccomp profile ends the same way. The differences allowed are the ones docs/export.md
//! lists, each named below.
//!
//! crun 1.8 and runc 1.1 (Debian 12) refuse a hybrid cgroup layout whose cgroup2 mount has a
//! controller; each runtime therefore runs in a private mount namespace where
//! /sys/fs/cgroup/unified is unmounted, a private tmpfs in its place (made as root, then, for
//! rootless runs, entered by the test user through setpriv). Each run has its own state folder
//! and container id, and the container is deleted after.

mod common;
mod live;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use live::{Project, Who, stderr, stdout};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn reference(name: &str) -> PathBuf {
    repo().join("manifests").join(format!("{name}.toml"))
}

// ---------------------------------------------------------------------------------------------
// The runtime-spec schema (tests/data/runtime-spec: Debian's copy, with the time namespace).

/// Serves the schema's relative references (`defs.json#/...`) from the vendored folder.
struct SchemaFiles;

impl jsonschema::Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.as_str().rsplit('/').next().unwrap_or_default();
        let path = repo().join("tests/data/runtime-spec/schema").join(name);
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }
}

fn schema_errors(config: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/data/runtime-spec/schema/config-schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .with_base_uri("file:///runtime-spec/schema/config-schema.json")
        .with_retriever(SchemaFiles)
        .build(&schema)
        .expect("the runtime-spec schema compiles");
    validator
        .iter_errors(config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The schema is strict enough to notice a mistake: a wrong namespace type, a seccomp action
/// it does not know, a negative uid.
#[test]
fn the_schema_catches_a_broken_config() {
    let good = serde_json::json!({
        "ociVersion": "1.1.0",
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "time"}], "timeOffsets": {"boottime": {"secs": -1, "nanosecs": 0}}}
    });
    assert_eq!(schema_errors(&good), Vec::<String>::new());
    for broken in [
        serde_json::json!({"ociVersion": "1.1.0", "linux": {"namespaces": [{"type": "clock"}]}}),
        serde_json::json!({"ociVersion": "1.1.0", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_MAYBE"}}}),
        serde_json::json!({"ociVersion": "1.1.0", "process": {"cwd": "/", "user": {"uid": -1, "gid": 0}}}),
        serde_json::json!({"ociVersion": "1.1.0", "linux": {"timeOffsets": {"boottime": {"nanosecs": -5}}}}),
    ] {
        assert!(!schema_errors(&broken).is_empty(), "{broken}");
    }
}

/// The plan of a manifest for `who`, with fixed host facts, or the problems that stop it.
fn plan_for(
    manifest: &Path,
    who: common::Who,
) -> Result<sandbox::plan::Plan, Vec<sandbox::diagnostics::Problem>> {
    let host = common::Facts {
        who,
        ..common::Facts::default()
    }
    .host();
    let loaded = sandbox::manifest::load(manifest, &host.caller.vars());
    let validated =
        sandbox::validate::validate(&loaded, &host, &sandbox::validate::Invocation::default());
    validated.plan.ok_or(validated.problems)
}

/// Every reference manifest's plan and export, for root and for an unprivileged caller (with
/// fixed host facts), but network-service's rootless: bridge networking is root's.
fn reference_exports() -> Vec<(
    &'static str,
    common::Who,
    sandbox::plan::Plan,
    sandbox::export::Export,
)> {
    let mut exports = Vec::new();
    for name in ["ci-jail", "dev-env", "minimal", "network-service"] {
        for who in [common::Who::Root, common::Who::Rootless] {
            let Ok(plan) = plan_for(&reference(name), who) else {
                assert_eq!((name, who), ("network-service", common::Who::Rootless));
                continue;
            };
            let arch = sandbox::manifest::values::Arch::X86_64;
            let exported = sandbox::export::translate(&plan, arch, Path::new("/bundle"), &|_| true);
            exports.push((name, who, plan, exported.unwrap()));
        }
    }
    exports
}

/// Every reference manifest, for root and for an unprivileged caller (with fixed host facts):
/// the config validates, and says what the plan says.
#[test]
fn reference_configs_validate_against_the_runtime_spec_schema() {
    for (name, who, plan, exported) in reference_exports() {
        let config = sandbox::export::config_json(&exported);
        let errors = schema_errors(&config);
        assert!(
            errors.is_empty(),
            "{name} ({who:?}):\n{}",
            errors.join("\n")
        );
        assert_eq!(
            config["process"]["args"],
            serde_json::json!(plan.process.argv)
        );
        assert_eq!(config["root"]["readonly"], true);
        assert!(
            config["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .len()
                > 50
        );
        let namespaces = config["linux"]["namespaces"].as_array().unwrap().len();
        assert_eq!(namespaces, plan.namespaces.names().len());
        let settings: Vec<&str> = exported
            .mappings
            .iter()
            .map(|m| m.setting.as_str())
            .collect();
        for key in [
            "process.command",
            "security.seccomp",
            "network.mode",
            "uid_map",
        ] {
            assert!(settings.contains(&key), "{name}: no row for {key}");
        }
    }
}

/// Whether a line of the plan about `key` speaks of `setting`: the key itself, or a table
/// holding it (`namespaces` holds `namespaces.pid`).
fn covers(key: &str, setting: &str) -> bool {
    setting
        .strip_prefix(key)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// `sandbox export` translates the plan step by step in the order `sandbox plan` prints the
/// steps (and `sandbox up` takes them, see exec::order): each setting in the step that prints it.
#[test]
fn export_follows_the_plans_steps_in_their_order() {
    use sandbox::plan::StepId;
    let position = |id: &StepId| StepId::ORDER.iter().position(|o| o == id).unwrap();
    for (name, who, plan, exported) in reference_exports() {
        let steps: Vec<usize> = exported
            .mappings
            .iter()
            .map(|m| position(&m.step))
            .collect();
        assert!(
            steps.is_sorted(),
            "{name} ({who:?}): rows out of step order: {:?}",
            exported
                .mappings
                .iter()
                .map(|m| (m.step, &m.setting))
                .collect::<Vec<_>>()
        );
        let printed = sandbox::plan::steps(&plan);
        assert!(printed.iter().map(|s| position(&s.id)).is_sorted());
        for row in &exported.mappings {
            let printed_in: Vec<StepId> = printed
                .iter()
                .filter(|s| {
                    s.lines.iter().any(|l| {
                        l.key
                            .as_ref()
                            .is_some_and(|k| covers(&k.path(), &row.setting))
                    })
                })
                .map(|s| s.id)
                .collect();
            // Pins the clocks (user step) and writes /etc/machine-id (mount step).
            let shapes_several = row.setting == "process.deterministic";
            assert!(
                printed_in.is_empty() || printed_in.contains(&row.step) || shapes_several,
                "{name} ({who:?}): {} exported in {:?}, printed in {printed_in:?}",
                row.setting,
                row.step
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running the bundles.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Crun,
    Runc,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Crun => "crun",
            Runtime::Runc => "runc",
        }
    }
}

/// Whether `who` can run bundles here: the private mount namespace needs root, and the
/// runtimes must be installed (.ci/run installs them). Under CI=true this fails rather than
/// skips.
fn runtimes_available(who: Who) -> bool {
    if !live::available(Who::Root) || !live::available(who) {
        return false;
    }
    for runtime in ["crun", "runc"] {
        let found = Command::new(runtime)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(!live::in_ci(), "{runtime} is missing (.ci/run installs it)");
            eprintln!("skipped: {runtime} is not installed");
            return false;
        }
    }
    true
}

/// Escape attempts whose outcome the seccomp profile decides (see tests/security.rs), plus two
/// calls it must let through: the personality query and fork.
const ATTEMPTS: &[&str] = &[
    "umount",
    "fsopen",
    "open_tree",
    "ptrace",
    "process_vm_readv",
    "name_to_handle_at",
    "open_by_handle_at",
    "keyctl",
    "add_key",
    "unshare-user",
    "clone-user",
    "clone3",
    "fork",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "personality",
    "personality-query",
    "raw-socket",
    "packet-socket",
    "i386-mount",
    "x32-getpid",
    "mknod=/tmp/mem",
    "getpid",
];

/// The reference manifest `name`, adapted to what this test can provide: the probe bound at
/// /opt/probe; sysfs on /sys where there are cgroup limits, so both sides mount the sandbox's
/// cgroup and its limits can be read inside; for runc 1.1, which has no time namespace, no
/// deterministic clocks; for dev-env, an open-files limit below this test's own hard limit (a
/// user namespace cannot raise it, the runtimes can: they set it before entering one); for
/// network-service, a bridge, subnet and port of this test's own.
fn adapted(name: &str, runtime: Runtime) -> String {
    let mut text = if name == "capabilities" {
        // Not a reference manifest: kept capabilities for a non-root command (ambient set),
        // supplementary groups and a umask.
        "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\"]\nuser = 1000\ngroup = 1000\n\
         groups = [1001, 1002]\numask = \"027\"\n[security]\n\
         capabilities = [\"CAP_NET_BIND_SERVICE\", \"CAP_CHOWN\"]\n"
            .to_string()
    } else if name == "network-service" {
        let pid = std::process::id();
        let index = runtime as u32;
        let net = format!("10.{}.{}", 196 + index, pid % 250);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::read_to_string(reference(name))
            .unwrap()
            .replace(
                "bridge = \"sbx0\"",
                &format!("bridge = \"sbe{:x}x{index}\"", pid & 0xffff),
            )
            .replace("10.88.0.0/16", &format!("{net}.0/24"))
            .replace("10.88.0.10", &format!("{net}.10"))
            .replace("10.88.0.1\"", &format!("{net}.1\""))
            .replace("127.0.0.1:18080:8080", &format!("127.0.0.1:{port}:8080"))
    } else {
        // A copy in the project (see `compare`): a rootless caller may not be able to read
        // the checkout.
        format!("extends = [\"{REFERENCE_COPY}\"]\n")
    };
    if name == "dev-env" {
        text.push_str("\n[security.rlimits]\nnofile = 1024\n");
    }
    if name == "ci-jail" && runtime == Runtime::Runc {
        text.push_str("\n[process]\ndeterministic = false\n");
    }
    text.push_str(&format!(
        "\n[[mount]]\ntype = \"bind\"\nsource = \"{}\"\ntarget = \"/opt/probe\"\n",
        live::probe_dir().display()
    ));
    if name != "minimal" && name != "capabilities" {
        text.push_str("\n[[mount]]\ntype = \"sysfs\"\ntarget = \"/sys\"\n");
    }
    text
}

/// `argv` in a private mount namespace without the cgroup2 mount, as `who`. A private tmpfs
/// takes the mount's place: the runtimes take `unified` for one more v1 hierarchy and make a
/// folder per container there, which would otherwise land in the host's /sys/fs/cgroup tmpfs,
/// hidden under the cgroup2 mount, and stay.
fn in_private_mounts(who: Who, argv: &[&str]) -> Command {
    let mut command = Command::new("unshare");
    command.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "if mountpoint -q /sys/fs/cgroup/unified; then \
           umount /sys/fs/cgroup/unified && \
           mount -t tmpfs -o size=1M,mode=755 export-test /sys/fs/cgroup/unified; \
         fi; exec \"$@\"",
        "sh",
    ]);
    if who == Who::Rootless {
        let (uid, gid) = live::rootless_ids().unwrap();
        command.args([
            "setpriv",
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
            "--",
        ]);
    }
    command
        .args(argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null());
    command
}

/// A folder of this test's own that `who` may write in.
fn scratch(who: Who) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sandbox-export-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if who == Who::Rootless {
        let (uid, gid) = live::rootless_ids().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    dir
}

/// Run the bundle to its end with `runtime` (its state in `state`), then delete the container.
fn run_bundle(who: Who, runtime: Runtime, bundle: &Path, state: &Path) -> Output {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let id = format!(
        "sbx-export-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let state = state.to_str().unwrap();
    let bundle = bundle.to_str().unwrap();
    let output = in_private_mounts(
        who,
        &[
            runtime.name(),
            "--root",
            state,
            "run",
            "--bundle",
            bundle,
            &id,
        ],
    )
    .current_dir(bundle)
    .output()
    .expect("run the runtime");
    let _ = in_private_mounts(
        who,
        &[runtime.name(), "--root", state, "delete", "--force", &id],
    )
    .output();
    output
}

/// The probe's report: field -> values. `mount /usr` -> ["ext4 ro"], `env PATH` -> [...],
/// `status CapEff` -> [...], `ptrace` -> ["EPERM"].
fn report(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        let (key, value) = match words.as_slice() {
            ["env", assignment] => {
                let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
                (format!("env {name}"), value.to_string())
            }
            [
                kind @ ("status" | "rlimit" | "cgroup" | "mount"),
                name,
                rest,
            ] => (format!("{kind} {name}"), rest.to_string()),
            [key, rest @ ..] => (key.to_string(), rest.join(" ")),
            [] => continue,
        };
        fields.entry(key).or_default().push(value);
    }
    fields
}

/// Whether a runtime's `theirs` for `key` is a difference docs/export.md documents; `files` are
/// the targets the bundle binds from its files/ folder.
fn documented(
    key: &str,
    runtime: Runtime,
    ours: Option<&Vec<String>>,
    theirs: Option<&Vec<String>>,
    files: &[String],
) -> bool {
    let fstype = |v: Option<&Vec<String>>| -> Option<Vec<String>> {
        v.map(|v| {
            v.iter()
                .map(|s| s.split(' ').next().unwrap_or("").to_string())
                .collect()
        })
    };
    let flag = |v: Option<&Vec<String>>| -> Option<Vec<String>> {
        v.map(|v| {
            v.iter()
                .map(|s| s.rsplit(' ').next().unwrap_or("").to_string())
                .collect()
        })
    };
    match key {
        // 1. Runtimes set HOME when the environment has none.
        "env HOME" => ours.is_none(),
        // 2. The root is rootfs/, a folder of the bundle, where `up` mounts a tmpfs; the files
        //    the plan writes (/etc/hosts, machine-id) come from the bundle's files/ folder,
        //    where `up` keeps them in a tmpfs.
        "mount /" => flag(ours) == flag(theirs),
        _ if files.iter().any(|f| key == format!("mount {f}")) => flag(ours) == flag(theirs),
        // 3. Runtimes mount every cgroup v1 hierarchy in a writable tmpfs; `up` the ones its
        //    limits use, in a read-only one; so the files of the others are there too.
        "mount /sys/fs/cgroup" => fstype(ours) == fstype(theirs),
        _ if key.starts_with("mount /sys/fs/cgroup/") || key.starts_with("cgroup ") => {
            ours.is_none()
        }
        // 4. runc binds /dev/null over masked files without making it read-only.
        _ if runtime == Runtime::Runc
            && key.starts_with("mount /proc/")
            && fstype(ours).as_deref() == Some(&["devtmpfs".to_string()][..]) =>
        {
            fstype(ours) == fstype(theirs)
        }
        // 5. As root, `up` leases a block of host ids for each run; a bundle keeps the block
        //    it was exported with (the pool's first free one).
        "uid_map" | "gid_map" => {
            let block = |v: Option<&Vec<String>>| {
                v.and_then(|v| v.first()).is_some_and(|line| {
                    let fields: Vec<u64> = line.split(' ').filter_map(|f| f.parse().ok()).collect();
                    fields.len() == 3 && fields[0] == 0 && fields[2] == 65536
                })
            };
            block(ours) && block(theirs)
        }
        _ => false,
    }
}

/// Where `adapted` expects the copy of the reference manifest it extends.
const REFERENCE_COPY: &str = "reference.toml";

fn compare(name: &str, who: Who, runtime: Runtime) {
    let p = Project::new(who, &adapted(name, runtime));
    if reference(name).exists() {
        p.write(
            REFERENCE_COPY,
            &std::fs::read_to_string(reference(name)).unwrap(),
        );
    }
    let manifest = p.manifest();
    let manifest = manifest.to_str().unwrap();
    let mut probe = vec!["/opt/probe/probe", "view"];
    probe.extend_from_slice(ATTEMPTS);

    // Names are unique to this run: the state records of root's sandboxes are shared.
    let unique = format!("exp-{}-{name}-{}", std::process::id(), runtime.name());
    let mut args = vec!["up", "--trust", "--name", &unique, manifest, "--"];
    args.extend_from_slice(&probe);
    let up = p.command(&args).output().unwrap();
    assert!(
        up.status.success(),
        "sandbox up {name}:\n{}{}",
        stdout(&up),
        stderr(&up)
    );

    // Outside the project folder, which the manifests bind into the sandbox: a runtime's mounts
    // on rootfs/ would show through that bind.
    let outside = scratch(who);
    let bundle = outside.path().join("bundle");
    let mut args = vec![
        "export",
        "--oci",
        "--name",
        &unique,
        bundle.to_str().unwrap(),
        manifest,
        "--",
    ];
    args.extend_from_slice(&probe);
    let export = p.command(&args).output().unwrap();
    assert!(
        export.status.success(),
        "export {name}: {}",
        stderr(&export)
    );
    let said = stderr(&export);
    if name == "network-service" {
        assert!(
            said.contains("network.mode = bridge: left to the engine"),
            "{said}"
        );
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap())
            .unwrap();
    let errors = schema_errors(&config);
    assert!(errors.is_empty(), "{name}: {}", errors.join("\n"));

    let files: Vec<String> = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("files/"))
        })
        .map(|m| m["destination"].as_str().unwrap().to_string())
        .collect();
    let ran = run_bundle(who, runtime, &bundle, &outside.path().join("state"));
    assert!(
        ran.status.success(),
        "{} run {name} ({who:?}): {}\n{}",
        runtime.name(),
        ran.status,
        stderr(&ran)
    );

    let ours = report(&stdout(&up));
    let theirs = report(&stdout(&ran));
    assert!(ours.contains_key("status Seccomp") && ours.contains_key("uid_map"));
    assert!(ours.contains_key("ptrace") && ours.contains_key("mount /proc"));
    if name != "minimal" && name != "capabilities" {
        assert!(
            ours.contains_key("cgroup memory/memory.limit_in_bytes")
                || ours.contains_key("cgroup memory.max"),
            "the limits are readable inside: {ours:?}"
        );
    }
    let keys: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|key| {
            let (a, b) = (ours.get(*key), theirs.get(*key));
            a != b && !documented(key, runtime, a, b, &files)
        })
        .map(|key| {
            format!(
                "{key}: up {:?}, {} {:?}",
                ours.get(key),
                runtime.name(),
                theirs.get(key)
            )
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{name} ({who:?}) under {} differs from sandbox up:\n{}",
        runtime.name(),
        differences.join("\n")
    );
}

macro_rules! bundles {
    ($($test:ident: $name:literal, $who:ident, $runtime:ident;)*) => {
        $(
            #[test]
            fn $test() {
                if runtimes_available(Who::$who) {
                    compare($name, Who::$who, Runtime::$runtime);
                }
            }
        )*
    };
}

bundles! {
    minimal_under_crun_as_root: "minimal", Root, Crun;
    minimal_under_runc_as_root: "minimal", Root, Runc;
    minimal_under_crun_rootless: "minimal", Rootless, Crun;
    minimal_under_runc_rootless: "minimal", Rootless, Runc;
    dev_env_under_crun: "dev-env", Root, Crun;
    dev_env_under_runc: "dev-env", Root, Runc;
    ci_jail_under_crun: "ci-jail", Root, Crun;
    ci_jail_under_runc: "ci-jail", Root, Runc;
    network_service_under_crun: "network-service", Root, Crun;
    network_service_under_runc: "network-service", Root, Runc;
    capabilities_under_crun: "capabilities", Root, Crun;
    capabilities_under_runc: "capabilities", Root, Runc;
}

/// --check lists every setting with how it maps; --json the same as an array.
#[test]
fn check_lists_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["export", "--oci", "--check", "--json"])
        .arg(reference("network-service"))
        .output()
        .unwrap();
    // As an unprivileged user the bridge is refused; the listing needs a valid plan.
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |setting: &str| {
        rows.iter()
            .find(|r| r["setting"] == setting)
            .unwrap_or_else(|| panic!("no {setting} in {rows:?}"))
            .clone()
    };
    assert_eq!(row("network.mode")["maps"], "none");
    assert_eq!(row("process.command")["maps"], "exact");
    assert_eq!(row("cgroup.memory")["oci"], "linux.resources.memory.limit");
    assert_eq!(row("namespaces.pid")["maps"], "approximate");
    assert!(
        row("uts.hostname")["from"]
            .as_str()
            .unwrap()
            .contains("network-service.toml:")
    );

    let egress = Project::new(
        Who::Root,
        "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n[network]\nmode = \"pasta\"\negress = [\"192.0.2.10:443\", \"udp:192.0.2.53:53\"]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["export", "--oci", "--check", "--json"])
        .arg(egress.manifest())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let egress_row = rows
        .iter()
        .find(|r| r["setting"] == "network.egress")
        .unwrap_or_else(|| panic!("no network.egress in {rows:?}"));
    assert_eq!(
        egress_row["maps"], "none",
        "the rules cannot be in a bundle"
    );
    assert_eq!(egress_row["value"], "192.0.2.10:443, udp:192.0.2.53:53");

    let landlock = Project::new(
        Who::Root,
        "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n[security.landlock]\nread = [\"/usr\"]\n",
    );
    let manifest = landlock.manifest();
    let table = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["export", "--oci", "--check"])
        .arg(&manifest)
        .output()
        .unwrap();
    let text = stdout(&table);
    assert!(text.starts_with("SETTING"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("security.landlock"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("not exported"), "{line}");

    // Writing the bundle says so on stderr, and writes the rest.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let out = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["export", "--oci"])
        .arg(&bundle)
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not exported: security.landlock"),
        "{}",
        stderr(&out)
    );
    assert!(bundle.join("config.json").is_file());
    assert!(bundle.join("rootfs/bin").is_symlink());
    // Into a folder that is not empty, nothing is written.
    let again = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["export", "--oci"])
        .arg(&bundle)
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not empty"),
        "{}",
        stderr(&again)
    );
}

/// One mount of each kind, and a symlink hidden by an earlier mount.
const EVERY_MOUNT_OP: &str = r#"
[rootfs]
host = true
[process]
command = ["/bin/true"]
[[mount]]
type = "bind"
source = "./no-such-cache"
target = "/cache"
optional = true
[[mount]]
type = "tmpfs"
target = "/scratch"
size = "1M"
mode = "0700"
[[mount]]
type = "symlink"
source = "/scratch"
target = "/s"
[[mount]]
type = "symlink"
source = "/usr"
target = "/scratch/usr"
[[mount]]
type = "dir"
target = "/data"
mode = "0750"
[[mount]]
type = "file"
target = "/etc/motd"
content = "hello\n"
mode = "0640"
[[mount]]
type = "overlay"
source = "./lower"
target = "/layered"
"#;

/// Each kind of mount op becomes what docs/export.md says: mounts in order, files bound from
/// the bundle, symlinks and folders made in rootfs/ (unless an earlier mount hides that spot),
/// an overlay's tmpfs upper layer kept in the bundle, a missing optional bind left out.
#[test]
fn mount_ops_become_mounts_files_and_rootfs_entries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lower")).unwrap();
    let manifest = dir.path().join("sandbox.toml");
    std::fs::write(&manifest, EVERY_MOUNT_OP).unwrap();
    let plan =
        plan_for(&manifest, common::Who::Root).unwrap_or_else(|problems| panic!("{problems:?}"));
    let bundle = Path::new("/srv/bundle");
    let exported = sandbox::export::translate(
        &plan,
        sandbox::manifest::values::Arch::X86_64,
        bundle,
        &|p| p.exists(),
    )
    .unwrap();
    let config = sandbox::export::config_json(&exported);
    let mounts = config["mounts"].as_array().unwrap();
    let find = |target: &str| mounts.iter().find(|m| m["destination"] == target).cloned();
    assert!(
        find("/cache").is_none(),
        "a missing optional source is left out"
    );
    let scratch = find("/scratch").unwrap();
    assert_eq!(
        scratch["options"],
        serde_json::json!(["nosuid", "nodev", "mode=700", "size=1048576"])
    );
    let motd = find("/etc/motd").unwrap();
    assert_eq!(motd["source"], "files/1");
    assert_eq!(exported.files[0].content, "hello\n");
    assert_eq!(exported.files[0].mode, 0o640);
    let overlay = find("/layered").unwrap();
    let options: Vec<&str> = overlay["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert!(
        options.contains(&"upperdir=/srv/bundle/overlay/1/upper"),
        "{options:?}"
    );
    assert!(
        options.contains(&"userxattr"),
        "in a user namespace: {options:?}"
    );
    assert_eq!(
        exported.layers,
        [
            bundle.join("overlay/1/upper"),
            bundle.join("overlay/1/work")
        ]
    );
    assert!(
        exported
            .entries
            .contains(&sandbox::export::RootEntry::Symlink {
                path: "/s".into(),
                link: "/scratch".into()
            })
    );
    assert!(exported.entries.contains(&sandbox::export::RootEntry::Dir {
        path: "/data".into(),
        mode: 0o750
    }));
    let hidden = exported
        .mappings
        .iter()
        .find(|m| m.value.contains("/scratch/usr"))
        .unwrap();
    assert_eq!(hidden.maps, sandbox::export::Fidelity::None, "{hidden:?}");
    let missing = exported
        .mappings
        .iter()
        .find(|m| m.setting == "mount[0]")
        .unwrap();
    assert_eq!(missing.maps, sandbox::export::Fidelity::None);
    // /dev becomes the runtime's default /dev: a tmpfs, devpts and shm.
    assert_eq!(find("/dev").unwrap()["type"], "tmpfs");
    assert_eq!(find("/dev/pts").unwrap()["type"], "devpts");
    assert_eq!(find("/dev/shm").unwrap()["type"], "tmpfs");
    assert_eq!(schema_errors(&config), Vec::<String>::new());
}

/// A `path` root is copied into rootfs/: modes, hard links and symlinks kept, and (as root,
/// whose sandboxes `up` runs as a block of unprivileged ids through an id-mapped root) the owners
/// shifted, so a command under crun sees the files as it does under `up`.
#[test]
fn a_copied_root_looks_as_under_up() {
    if !runtimes_available(Who::Root) {
        return;
    }
    let p = Project::new(
        Who::Root,
        "[rootfs]\npath = \"./root\"\n[process]\ncommand = [\"/bin/sh\"]\n",
    );
    let root = p.mkdir("root");
    for dir in ["bin", "data", "proc", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static (.ci/run)");
    for applet in ["sh", "stat", "id", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("data/a"), "shared\n").unwrap();
    std::fs::hard_link(root.join("data/a"), root.join("data/b")).unwrap();
    std::fs::set_permissions(root.join("data/a"), std::fs::Permissions::from_mode(0o604)).unwrap();
    std::os::unix::fs::chown(root.join("data/a"), Some(1000), Some(1000)).unwrap();
    let script =
        "id -u; stat -c '%n %u:%g %a %h' /bin/busybox /data/a /data/b /bin/sh; cat /data/b";
    let up = p.up(&["/bin/sh", "-c", script]);
    assert!(up.status.success(), "{}", stderr(&up));

    let outside = scratch(Who::Root);
    let bundle = outside.path().join("bundle");
    let manifest = p.manifest();
    let export = p
        .command(&[
            "export",
            "--oci",
            bundle.to_str().unwrap(),
            manifest.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    let copy = bundle.join("rootfs/data/a");
    let meta = std::fs::metadata(&copy).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.nlink(), 2, "the hard link is one file in the copy too");
    // Shifted through the block the bundle runs as (the pool's first free one).
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap())
            .unwrap();
    let host_root = config["linux"]["uidMappings"][0]["hostID"]
        .as_u64()
        .unwrap() as u32;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (host_root + 1000, host_root + 1000),
        "shifted through 0 -> {host_root}"
    );
    assert_eq!(meta.mode() & 0o7777, 0o604);
    let ran = run_bundle(
        Who::Root,
        Runtime::Crun,
        &bundle,
        &outside.path().join("state"),
    );
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert_eq!(stdout(&ran), stdout(&up));
}
