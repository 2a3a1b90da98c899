//! Root's sandboxes each lease a block of 65536 host ids that no line of /etc/subuid or
//! /etc/subgid grants to anyone, and give it back when they end. A test binary of its own:
//! cargo runs test binaries one after another, so no other sandbox of the suite leases blocks
//! while these look at the leases.

mod live;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use live::{Project, Who, stderr, stdout};

const LEASES: &str = "/run/sandbox/ids/blocks";

/// The tests of this file look at the same leases: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A grant in /etc/subuid and /etc/subgid, for a user that does not exist, removed again when
/// dropped (only its own line: the files are the machine's).
struct TestGrant {
    line: String,
}

impl TestGrant {
    fn add(start: u32, count: u32) -> TestGrant {
        let line = format!("sandbox-test-ids-{}:{start}:{count}\n", std::process::id());
        for file in ["/etc/subuid", "/etc/subgid"] {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o644)
                .open(file)
                .unwrap();
            std::io::Write::write_all(&mut f, line.as_bytes()).unwrap();
        }
        TestGrant { line }
    }
}

impl Drop for TestGrant {
    fn drop(&mut self) {
        for file in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = std::fs::read_to_string(file) {
                let _ = std::fs::write(file, text.replace(&self.line, ""));
            }
        }
    }
}

/// Every grant of both files: (owner, start, end).
fn grants() -> Vec<(String, u64, u64)> {
    ["/etc/subuid", "/etc/subgid"]
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let mut fields = line.split(':');
            let owner = fields.next()?.to_string();
            let start: u64 = fields.next()?.parse().ok()?;
            let count: u64 = fields.next()?.parse().ok()?;
            Some((owner, start, start + count))
        })
        .collect()
}

/// The first host id and count of a sandbox's uid (or gid) map, read from inside it.
fn map_inside(p: &Project, name: &str, file: &str) -> (u64, u64) {
    let out = p
        .command(&["exec", name, "--", "/bin/cat", file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fields: Vec<u64> = stdout(&out)
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!((fields.len(), fields[0]), (3, 0), "{fields:?}");
    (fields[1], fields[2])
}

fn lease_of(first: u64) -> PathBuf {
    Path::new(LEASES).join(first.to_string())
}

#[test]
fn roots_sandboxes_lease_blocks_no_one_is_granted_each_its_own_and_give_them_back() {
    if !live::available(Who::Root) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The first two blocks of the default region are someone's now.
    let _grant = TestGrant::add(0x80000, 2 * 65536);
    let p = Project::new(Who::Root, "[rootfs]\nhost = true\n");
    for name in ["ids-a", "ids-b"] {
        let up = p
            .command(&["up", "-d", "--name", name, "--", "/bin/sleep", "60"])
            .output()
            .unwrap();
        assert!(up.status.success(), "{}", stderr(&up));
    }
    let a = map_inside(&p, "ids-a", "/proc/self/uid_map");
    let b = map_inside(&p, "ids-b", "/proc/self/uid_map");
    assert_eq!(map_inside(&p, "ids-a", "/proc/self/gid_map"), a);
    assert_ne!(a, b, "two sandboxes, two blocks");
    for (first, count) in [a, b] {
        assert_eq!(count, 65536);
        assert!((0x80000..0x7000_0000).contains(&first), "{first}");
        for (owner, start, end) in grants() {
            assert!(
                end <= first || start >= first + count,
                "{first}..{} is {owner}'s ({start}..{end})",
                first + count
            );
        }
        assert!(lease_of(first).exists(), "leased in {LEASES}");
    }
    for name in ["ids-a", "ids-b"] {
        let down = p.command(&["down", name]).output().unwrap();
        assert!(down.status.success(), "{}", stderr(&down));
    }
    for (first, _) in [a, b] {
        assert!(
            live::eventually(|| !lease_of(first).exists()),
            "{first}: given back"
        );
    }
}

#[test]
fn a_killed_launchers_block_is_reclaimed_by_the_next_run() {
    if !live::available(Who::Root) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = Project::new(Who::Root, "[rootfs]\nhost = true\n");
    let marker = p.path().display().to_string();
    let before: Vec<_> = std::fs::read_dir(LEASES)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let manifest = p.manifest();
    let mut up = p
        .command(&[
            "up",
            "--trust",
            manifest.to_str().unwrap(),
            "--",
            "/bin/sleep",
            "60",
        ])
        .spawn()
        .unwrap();
    let mut leased = None;
    assert!(live::eventually(|| {
        leased = std::fs::read_dir(LEASES)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .find(|name| !before.contains(name));
        leased.is_some()
    }));
    let leased = Path::new(LEASES).join(leased.unwrap());
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(
        live::eventually(|| live::processes_with(&marker).is_empty()),
        "the sandbox went with its launcher"
    );
    assert!(
        leased.exists(),
        "a SIGKILLed launcher cannot give its block back"
    );
    let next = p.up(&["/bin/true"]);
    assert!(next.status.success(), "{}", stderr(&next));
    assert!(!leased.exists(), "the next run removed the stale lease");
}

#[test]
fn a_kept_layer_outlives_the_block_it_was_written_with() {
    if !live::available(Who::Root) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = Project::new(
        Who::Root,
        "[rootfs]\nhost = true\noverlay = { upper = \"changes\" }\n",
    );
    let map = "tr -s ' ' < /proc/self/uid_map";
    let first = p.sh(&format!("echo one > /etc/kept && {map}"));
    // Another sandbox holds the block the first run had: the next run leases another.
    let holder = Project::new(Who::Root, "[rootfs]\nhost = true\n");
    let up = holder
        .command(&["up", "-d", "--name", "holder", "--", "/bin/sleep", "60"])
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", stderr(&up));
    let second = p.sh(&format!(
        "echo two >> /etc/kept && cat /etc/kept && stat -c %u /etc/kept && {map}"
    ));
    let _ = holder.command(&["down", "holder"]).output();
    let lines: Vec<&str> = second.lines().collect();
    assert_eq!(lines[..3], ["one", "two", "0"], "{second}");
    assert_ne!(lines[3].trim(), first.trim(), "two blocks");
}
