//! `sandbox doctor` reports the real state of this host, as root and rootless.

#![allow(unsafe_code)] // asks the kernel for the landlock ABI itself, to compare

mod live;

use live::{Project, Who};

fn doctor(p: &Project, args: &[&str]) -> (serde_json::Value, Option<i32>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let out = p.command(&all).output().unwrap();
    (
        serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON"),
        out.status.code(),
    )
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

/// On cgroup v2 the report names the subtree this caller's groups go under, the controllers
/// usable there and those its parent does not hand down: each as that directory's
/// `cgroup.controllers` says (the VM lane runs this on pure v2, root, rootless from root's
/// group and rootless from a delegated subtree).
fn v2_delegation_is_the_kernels(cgroups: &serde_json::Value, who: Who) {
    let detail = cgroups["detail"].as_str().unwrap();
    fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
        text.split_once(marker).map(|(_, rest)| rest)
    }
    let usable: Vec<&str> = after(detail, "usable by this caller: ")
        .expect(detail)
        .split(';')
        .next()
        .unwrap()
        .split(", ")
        .filter(|c| *c != "none")
        .collect();
    // cpuacct and freezer are built into every v2 group: no controller to hand down.
    let handed_down = ["memory", "cpu", "pids", "io"];
    match after(detail, "; groups go under ") {
        Some(rest) => {
            let base = rest.split([',', ';']).next().unwrap();
            let offered =
                std::fs::read_to_string(std::path::Path::new(base).join("cgroup.controllers"))
                    .unwrap();
            let offered: Vec<&str> = offered.split_whitespace().collect();
            for c in usable.iter().filter(|c| handed_down.contains(*c)) {
                assert!(
                    offered.contains(c),
                    "{c} is usable but {base} does not offer it: {detail}"
                );
            }
            if let Some(list) = after(rest, ", which is not delegated ") {
                for c in list.split(';').next().unwrap().split(", ") {
                    assert!(!offered.contains(&c), "{c} is offered in {base}: {detail}");
                }
            }
            if who == Who::Root {
                assert!(
                    usable.contains(&"memory") && usable.contains(&"pids"),
                    "{detail}"
                );
            }
        }
        // Nowhere this caller may write: nothing is usable, and the fix says how to delegate.
        None => {
            assert!(usable.is_empty(), "{detail}");
            assert_ne!(who, Who::Root, "{detail}");
        }
    }
    let limits_usable = ["memory", "cpu", "pids"].iter().all(|c| usable.contains(c));
    assert_eq!(cgroups["status"] == "ok", limits_usable, "{cgroups}");
    if !limits_usable {
        let fix = cgroups["fix"].as_str().unwrap();
        assert!(
            fix.contains("delegat") || fix.contains("Delegate=yes"),
            "{fix}"
        );
    }
}

as_root_and_rootless! {
    fn doctor_reports_what_the_kernel_files_say(who) {
        let p = Project::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n");
        let (report, status) = doctor(&p, &[]);
        assert_eq!(status, Some(0), "{report:#}");
        assert_eq!(report["can_run"], true);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let major_minor: String = release.split('.').take(2).collect::<Vec<_>>().join(".");
        assert!(check(&report, "kernel")["detail"].as_str().unwrap().contains(&major_minor));
        let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap();
        assert!(check(&report, "seccomp")["detail"].as_str().unwrap().contains(actions.trim()));
        // SAFETY: the VERSION query reads and writes no memory.
        let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
        let landlock = check(&report, "landlock")["detail"].as_str().unwrap();
        if abi > 0 {
            assert!(landlock.starts_with(&format!("ABI {abi}:")), "{landlock}");
        } else {
            assert!(landlock.starts_with("not available"), "{landlock}");
        }
        assert_eq!(check(&report, "user namespaces")["status"], "ok");
        // This host is hybrid (v1 controllers): root may use them, an unprivileged user cannot.
        let cgroups = check(&report, "cgroups");
        let v1 = std::fs::read_to_string("/proc/self/cgroup").unwrap().lines().any(|l| !l.starts_with("0::"));
        if v1 {
            assert_eq!(cgroups["status"] == "ok", who == Who::Root, "{cgroups}");
        } else {
            v2_delegation_is_the_kernels(cgroups, who);
        }
        let idmap = &check(&report, "idmapped mounts")["status"];
        assert_eq!(idmap == "ok", who == Who::Root);

        let (manifest, status) = doctor(&p, &[p.manifest().to_str().unwrap()]);
        assert_eq!((manifest["can_run"].as_bool(), status), (Some(true), Some(0)));
    }

    fn doctor_says_when_a_manifest_cannot_run_here(who) {
        let p = Project::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n[cgroup]\nmemory = \"1K\"\n");
        let (report, status) = doctor(&p, &[p.manifest().to_str().unwrap()]);
        assert_eq!(status, Some(1));
        assert_eq!(report["can_run"], false);
        assert!(report["manifest_problems"][0].as_str().unwrap().contains("memory"), "{report:#}");
        // Without an argument, the nearest manifest, as every command uses.
        let (nearest, status) = doctor(&p, &[]);
        assert_eq!((nearest["can_run"].as_bool(), status), (Some(false), Some(1)), "{nearest:#}");
        assert_eq!(nearest["manifest"].as_str(), p.manifest().to_str());
    }
}
