//! The group's lifecycle against a fake cgroup v2 tree in a temporary directory, and the
//! parsers of what the kernel lists.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::plan::{CgroupHierarchy, CgroupLimit, CgroupLimits, CgroupPlan, CgroupVersion};

/// A cgroup v2 tree that acts like the kernel where the backend depends on it: mkdir creates
/// the interface files of the controllers the parent hands down, writes only go to files that
/// exist, subtree_control accumulates `+name`, and a group with child groups cannot be
/// removed. Every write is logged as (path relative to the root, value).
struct FakeV2 {
    root: tempfile::TempDir,
    log: RefCell<Vec<(String, String)>>,
    alive: Vec<Owner>,
}

const CONTROLLER_FILES: &[(&str, &[(&str, &str)])] = &[
    (
        "memory",
        &[
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("memory.peak", "52428800\n"),
        ],
    ),
    (
        "cpu",
        &[("cpu.max", "max 100000\n"), ("cpu.weight", "100\n")],
    ),
    ("pids", &[("pids.max", "max\n"), ("pids.peak", "7\n")]),
    ("io", &[("io.weight", "default 100\n")]),
];

impl FakeV2 {
    fn new(available: &str) -> FakeV2 {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), available).unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        FakeV2 {
            root,
            log: RefCell::new(Vec::new()),
            alive: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(self.path())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn note(&self, what: &str, path: &Path) {
        self.log
            .borrow_mut()
            .push((what.to_string(), self.relative(path)));
    }

    fn take_log(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.log.borrow_mut())
    }

    /// The group directories below the root, relative.
    fn dirs(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![self.path().to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    found.push(self.relative(&path));
                    pending.push(path);
                }
            }
        }
        found.sort();
        found
    }
}

impl Cgroupfs for FakeV2 {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)?;
        self.note("mkdir", dir);
        let handed = std::fs::read_to_string(dir.parent().unwrap().join("cgroup.subtree_control"))?;
        let mut files = vec![
            ("cgroup.procs", String::new()),
            ("cgroup.subtree_control", String::new()),
            ("cgroup.controllers", handed.clone()),
            ("cgroup.events", "populated 0\nfrozen 0\n".into()),
            ("cgroup.kill", String::new()),
            ("cpu.stat", "usage_usec 2500000\nuser_usec 2000000\n".into()),
        ];
        for (controller, list) in CONTROLLER_FILES {
            if handed.split_whitespace().any(|c| c == *controller) {
                files.extend(list.iter().map(|(f, v)| (*f, v.to_string())));
            }
        }
        for (file, content) in files {
            std::fs::write(dir.join(file), content)?;
        }
        Ok(())
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        if !dir.exists() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        if !self.children(dir)?.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        self.note("rmdir", dir);
        std::fs::remove_dir_all(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        if !file.is_file() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        self.log
            .borrow_mut()
            .push((self.relative(file), value.to_string()));
        match file.file_name().and_then(|n| n.to_str()) {
            // A view of the members, not stored text.
            Some("cgroup.procs") => Ok(()),
            Some("cgroup.subtree_control") => {
                let mut enabled: Vec<String> = std::fs::read_to_string(file)?
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                for word in value.split_whitespace() {
                    let name = word.trim_start_matches('+').to_string();
                    if !enabled.contains(&name) {
                        enabled.push(name);
                    }
                }
                std::fs::write(file, enabled.join(" "))
            }
            _ => std::fs::write(file, value),
        }
    }

    fn read(&self, file: &Path) -> io::Result<String> {
        std::fs::read_to_string(file)
    }

    fn exists(&self, file: &Path) -> bool {
        file.exists()
    }

    fn children(&self, dir: &Path) -> io::Result<Vec<String>> {
        Kernel.children(dir)
    }

    fn alive(&self, owner: Owner) -> bool {
        self.alive.contains(&owner)
    }

    fn mark_made(&self, dir: &Path) -> io::Result<()> {
        Kernel.mark_made(dir)
    }

    fn made_by_sandbox(&self, dir: &Path) -> bool {
        Kernel.made_by_sandbox(dir)
    }

    fn wait_for(&self, file: &Path, done: &dyn Fn(&str) -> bool, _: Duration) -> io::Result<bool> {
        Ok(done(&self.read(file)?))
    }
}

fn plan(fake: &FakeV2, parent: &str, limits: CgroupLimits, controllers: &[&str]) -> CgroupPlan {
    CgroupPlan {
        parent: parent.into(),
        limits,
        version: CgroupVersion::V2,
        hierarchies: vec![CgroupHierarchy {
            base: fake.path().to_path_buf(),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        }],
        stats: true,
        view: false,
    }
}

const OWNER: Owner = Owner {
    pid: 4242,
    start: 777,
};

fn log(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn v2_group_every_write_in_order_then_gone() {
    let fake = FakeV2::new("cpu io memory pids\n");
    // One value per limit, in `CgroupLimit::ALL`'s order.
    let values = [64 << 20, 0, 25_000, 200, 32, 500];
    let limits = CgroupLimit::ALL.into_iter().zip(values).collect();
    let plan = plan(&fake, "ci/jobs", limits, &["memory", "cpu", "pids", "io"]);
    let group = Group::create(&fake, &plan, "box", OWNER).unwrap();
    let all = "+memory +cpu +pids +io";
    let g = "ci/jobs/box-4242-777";
    assert_eq!(
        fake.take_log(),
        log(&[
            ("cgroup.subtree_control", all),
            ("mkdir", "ci"),
            ("ci/cgroup.subtree_control", all),
            ("mkdir", "ci/jobs"),
            ("ci/jobs/cgroup.subtree_control", all),
            ("mkdir", g),
            (&format!("{g}/memory.max"), "67108864"),
            (&format!("{g}/memory.swap.max"), "0"),
            (&format!("{g}/cpu.max"), "25000 100000"),
            (&format!("{g}/cpu.weight"), "200"),
            (&format!("{g}/pids.max"), "32"),
            (&format!("{g}/io.weight"), "default 500"),
        ])
    );
    assert_eq!(fake.dirs(), ["ci", "ci/jobs", g]);
    // v2 clones the sandbox straight into the group: there is no one to move afterwards.
    assert!(group.clone_into().is_some());
    group.enter().unwrap();
    assert_eq!(fake.take_log(), []);

    let (usage, removed) = group.finish();
    removed.unwrap();
    assert_eq!(
        usage,
        Usage {
            oom_kills: 1,
            peak_memory: Some(50 << 20),
            cpu_usec: Some(2_500_000),
            task_peak: Some(7),
        }
    );
    // The group, then the parents this run made, deepest first.
    assert_eq!(
        fake.take_log(),
        log(&[("rmdir", g), ("rmdir", "ci/jobs"), ("rmdir", "ci")])
    );
    assert!(fake.dirs().is_empty());
}

#[test]
fn the_run_that_empties_a_parent_another_run_made_removes_it() {
    let fake = FakeV2::new("pids\n");
    let limits = CgroupLimits::from([(CgroupLimit::Pids, 8)]);
    let plan = plan(&fake, "ci/jobs", limits, &["pids"]);
    let first = Group::create(&fake, &plan, "a", OWNER).unwrap();
    let second = Group::create(&fake, &plan, "b", Owner { pid: 9, start: 1 }).unwrap();
    // The first run made both levels; the second found them.
    drop(first);
    assert_eq!(fake.dirs(), ["ci", "ci/jobs", "ci/jobs/b-9-1"]);
    fake.take_log();
    drop(second);
    assert_eq!(
        fake.take_log(),
        log(&[
            ("rmdir", "ci/jobs/b-9-1"),
            ("rmdir", "ci/jobs"),
            ("rmdir", "ci")
        ])
    );
    assert!(fake.dirs().is_empty());
}

#[test]
fn stale_groups_are_swept_and_others_kept() {
    let mut fake = FakeV2::new("memory pids\n");
    let live = Owner { pid: 5, start: 6 };
    fake.alive.push(live);
    for dir in [
        "sandbox",
        "sandbox/old-1-2",
        "sandbox/live-5-6",
        "sandbox/not-ours",
    ] {
        fake.mkdir(&fake.path().join(dir)).unwrap();
    }
    fake.take_log();
    let limits = CgroupLimits::from([(CgroupLimit::Pids, 8)]);
    let group = Group::create(
        &fake,
        &plan(&fake, "sandbox", limits, &["pids"]),
        "web",
        OWNER,
    )
    .unwrap();
    assert_eq!(
        fake.dirs(),
        [
            "sandbox",
            "sandbox/live-5-6",
            "sandbox/not-ours",
            "sandbox/web-4242-777"
        ]
    );
    drop(group);
    // The parent was there before this run, not made by one: it stays.
    assert_eq!(
        fake.dirs(),
        ["sandbox", "sandbox/live-5-6", "sandbox/not-ours"]
    );
}

#[test]
fn a_limit_the_kernel_lacks_fails_and_leaves_nothing() {
    let fake = FakeV2::new("memory\n");
    let limits = CgroupLimits::from([(CgroupLimit::Memory, 1 << 30), (CgroupLimit::IoWeight, 100)]);
    let error = Group::create(&fake, &plan(&fake, "a/b", limits, &["memory"]), "x", OWNER)
        .err()
        .unwrap();
    assert_eq!(error.key, "cgroup.io_weight");
    assert_eq!(error.errno, Errno::EOPNOTSUPP);
    assert!(error.to_string().contains("io.bfq.weight"), "{error}");
    assert!(fake.dirs().is_empty(), "left behind: {:?}", fake.dirs());
}

#[test]
fn a_controller_not_handed_down_names_the_file() {
    // The plan asks for pids, but the tree never got it: the write finds no pids.max.
    let fake = FakeV2::new("memory\n");
    let limits = CgroupLimits::from([(CgroupLimit::Pids, 4)]);
    let error = Group::create(&fake, &plan(&fake, "p", limits, &["memory"]), "x", OWNER)
        .err()
        .unwrap();
    assert_eq!(error.key, "cgroup.pids");
    assert_eq!(error.errno, Errno::ENOENT);
    assert!(error.path.ends_with("p/x-4242-777/pids.max"), "{error}");
    assert!(fake.dirs().is_empty());
}

#[test]
fn a_group_with_children_is_emptied_from_the_bottom() {
    let fake = FakeV2::new("pids\n");
    let limits = CgroupLimits::from([(CgroupLimit::Pids, 4)]);
    let group = Group::create(&fake, &plan(&fake, "p", limits, &["pids"]), "x", OWNER).unwrap();
    fake.mkdir(&fake.path().join("p/x-4242-777/inner")).unwrap();
    fake.take_log();
    let (_, removed) = group.finish();
    removed.unwrap();
    assert_eq!(
        fake.take_log(),
        log(&[
            ("p/x-4242-777/cgroup.kill", "1"),
            ("rmdir", "p/x-4242-777/inner"),
            ("rmdir", "p/x-4242-777"),
            ("rmdir", "p"),
        ])
    );
}

#[test]
fn owner_in_the_group_name() {
    assert_eq!(OWNER.group_name("my-box"), "my-box-4242-777");
    assert_eq!(Owner::of_group("my-box-4242-777"), Some(OWNER));
    for not_ours in ["4242-777", "box-x-777", "box-4242", "box-4242-", "-1-2"] {
        assert_eq!(Owner::of_group(not_ours), None, "{not_ours}");
    }
    let me = Owner::current().unwrap();
    assert_eq!(me.pid, std::process::id());
    assert!(Kernel.alive(me));
    assert!(!Kernel.alive(Owner {
        start: me.start + 1,
        ..me
    }));
}

#[test]
fn start_time_counts_fields_after_the_name() {
    let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 347076 1 2";
    assert_eq!(start_time(stat), Some(347076));
    assert_eq!(start_time("garbage"), None);
}

#[test]
fn flat_keyed_fields() {
    assert_eq!(field("populated 1\nfrozen 0\n", "populated"), Some(1));
    assert_eq!(
        field("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
        Some(3)
    );
    assert_eq!(field("oom 2\n", "oom_kill"), None);
}
