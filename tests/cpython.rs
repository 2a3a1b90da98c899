//! A real-suite lane: CPython's own regression tests (Debian's libpython3.X-testsuite, which
//! .ci/run installs) for the modules that exercise the operating system, run outside, in the
//! dev environment (manifests/dev-env.toml) and in the CI jail (manifests/ci-jail.toml), as
//! root and rootless, and compared test case by test case with the same tests run outside by
//! the same user. The only differences allowed are those tests/data/cpython-lane.toml lists,
//! each with its reason. A case that differs is run once more on both sides: a difference that
//! does not come back is a flaky test, said and not counted.
//!
//! Each run is a regrtest process per group of modules, recorded by tests/cpython/record.py
//! (one `STATUS TEST_ID` line per case); the groups, and the runs of users whose processes do
//! not count against each other's RLIMIT_NPROC, run at once: the suite mostly sleeps.

mod live;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use live::{Project, Who, stderr};
use serde::Deserialize;

/// The modules, in groups of about the same duration (a group is one regrtest process).
const GROUPS: &[&[&str]] = &[
    &["test_signal"],
    &[
        "test_subprocess",
        "test_pty",
        "test_select",
        "test_fcntl",
        "test_mmap",
        "test_resource",
        "test_time",
    ],
    &[
        "test_socket",
        "test_os",
        "test_posix",
        "test_shutil",
        "test_tempfile",
        "test_tarfile",
    ],
];

/// Left out because they change the host when run outside as root (the clock, the host
/// name), or talk to the hypervisor (AF_VSOCK: not loopback, and it hangs on some VMs).
const LEFT_OUT: &[&str] = &[
    "*test_clock_settime",
    "*test_monotonic_settime",
    "*test_sethostname",
    "*VSOCK*",
];

/// The python whose test package Debian installs beside it.
const PYTHON: &str = "/usr/bin/python3";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Outside,
    Dev,
    Jail,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Outside => "outside",
            Place::Dev => "dev",
            Place::Jail => "jail",
        }
    }
}

fn who_name(who: Who) -> &'static str {
    match who {
        Who::Root => "root",
        Who::Rootless => "rootless",
    }
}

/// Where a run happens, with its project folder (the manifest and record.py).
struct Env {
    place: Place,
    who: Who,
    project: Project,
}

impl Env {
    fn new(place: Place, who: Who) -> Env {
        let project = Project::new(who, "");
        let reference = |name: &str| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("manifests")
                    .join(name),
            )
            .unwrap()
        };
        // What this host cannot give the shipped manifests, overridden in sandbox.local.toml as
        // their comments say: rootless, no cgroup controllers on a v1 host.
        let manifest = match place {
            Place::Outside => None,
            Place::Dev => Some("dev-env.toml"),
            Place::Jail => Some("ci-jail.toml"),
        };
        if let Some(manifest) = manifest {
            project.write("sandbox.toml", &reference(manifest));
            project.write("sandbox.local.toml", "[cgroup]\nrequired = false\n");
        }
        project.write(
            "record.py",
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cpython/record.py"),
            )
            .unwrap(),
        );
        Env {
            place,
            who,
            project,
        }
    }

    fn name(&self) -> String {
        format!("{} {}", self.place.name(), who_name(self.who))
    }

    /// regrtest with `args` (options and modules), recorded; `run` numbers the sandbox, as
    /// one manifest's sandboxes run at once (a given name runs once at a time).
    fn run(&self, run: usize, args: &[String]) -> Output {
        let mut command = match self.place {
            Place::Outside => {
                let mut command = self.project.as_user(Path::new(PYTHON));
                // As close as the sandboxes' environment gets: a locale, a home of its own.
                let home = self.project.mkdir("home");
                command
                    .arg(self.project.path().join("record.py"))
                    .env("LANG", "C.UTF-8")
                    .env("HOME", home);
                command
            }
            Place::Dev | Place::Jail => {
                let manifest = self.project.manifest();
                self.project.command(&[
                    "up",
                    "--trust",
                    "--name",
                    &format!("lane-{run}"),
                    manifest.to_str().unwrap(),
                    "--",
                    PYTHON,
                    "/work/record.py",
                ])
            }
        };
        command.args(regrtest_options()).args(args);
        command.output().expect("run the suite")
    }

    /// Where the project folder is for the run: `/work` inside.
    fn work(&self) -> PathBuf {
        match self.place {
            Place::Outside => self.project.path().to_path_buf(),
            Place::Dev | Place::Jail => PathBuf::from("/work"),
        }
    }
}

fn regrtest_options() -> Vec<String> {
    // A hung test ends its group's run after 2 minutes instead of holding the lane.
    let mut options = vec!["--timeout".to_string(), "120".to_string()];
    for pattern in LEFT_OUT {
        options.push("-i".into());
        options.push(pattern.to_string());
    }
    options
}

/// A test case's outcome; `Absent` when a run did not report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Ok,
    Skipped,
    Xfail,
    Xpass,
    Fail,
    Error,
    Absent,
}

impl Status {
    fn parse(word: &str) -> Option<Status> {
        Some(match word {
            "ok" => Status::Ok,
            "skipped" => Status::Skipped,
            "xfail" => Status::Xfail,
            "xpass" => Status::Xpass,
            "FAIL" => Status::Fail,
            "ERROR" => Status::Error,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Xfail => "xfail",
            Status::Xpass => "xpass",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Absent => "absent",
        }
    }
}

type Record = BTreeMap<String, Status>;

/// The record's lines; a case reported twice (failing subtests) keeps its worst outcome.
fn parse(output: &Output, into: &mut Record) {
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((word, id)) = line.split_once(' ') else {
            continue;
        };
        if let Some(status) = Status::parse(word) {
            let entry = into.entry(id.to_string()).or_insert(status);
            *entry = (*entry).max(status);
        }
    }
}

/// One allowed difference: tests/data/cpython-lane.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Allowed {
    /// Test ids, `*` matching any run of characters.
    tests: Vec<String>,
    /// "dev", "jail"; both when absent.
    places: Option<Vec<String>>,
    /// "root", "rootless"; both when absent.
    who: Option<Vec<String>>,
    /// The outcome outside and inside; any when absent.
    outside: Option<String>,
    inside: Option<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedList {
    #[serde(default)]
    difference: Vec<Allowed>,
}

impl Allowed {
    fn covers(&self, env: &Env, id: &str, outside: Status, inside: Status) -> bool {
        let listed = |list: &Option<Vec<String>>, name: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|n| n == name))
        };
        let status =
            |want: &Option<String>, got: Status| want.as_ref().is_none_or(|w| w == got.name());
        self.tests.iter().any(|pattern| glob(pattern, id))
            && listed(&self.places, env.place.name())
            && listed(&self.who, who_name(env.who))
            && status(&self.outside, outside)
            && status(&self.inside, inside)
    }
}

/// `pattern` with `*` matching any run of characters, against the whole of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Run `jobs` (an environment and regrtest's arguments), `at_once` at a time; the records,
/// by environment index.
fn run_all(envs: &[Env], jobs: Vec<(usize, Vec<String>)>, at_once: usize) -> Vec<Record> {
    let queue = Mutex::new(VecDeque::from_iter(jobs.into_iter().enumerate()));
    let records = Mutex::new(vec![Record::new(); envs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| {
                loop {
                    let Some((run, (index, args))) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    let env = &envs[index];
                    let output = env.run(run, &args);
                    if env.place != Place::Outside && output.stdout.is_empty() {
                        panic!(
                            "{}: the suite did not run ({}):\n{}",
                            env.name(),
                            output.status,
                            stderr(&output)
                        );
                    }
                    parse(&output, &mut records.lock().unwrap()[index]);
                }
            });
        }
    });
    records.into_inner().unwrap()
}

/// The modules the test ids belong to (`test.test_os.X.y` is in test_os).
fn modules_of<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut modules: Vec<String> = ids
        .filter_map(|id| id.split('.').nth(1).map(str::to_string))
        .filter(|module| module.starts_with("test_"))
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

fn suite_available() -> bool {
    let found = Command::new(PYTHON)
        .args(["-c", "import test.libregrtest, test.test_os"])
        .output()
        .is_ok_and(|o| o.status.success());
    match found {
        true => true,
        false if live::in_ci() => panic!(
            "this test must run under CI=true but {PYTHON} has no test package (.ci/run installs it)"
        ),
        false => {
            eprintln!("skipped: {PYTHON} has no test package (libpython3.X-testsuite)");
            false
        }
    }
}

#[test]
fn cpython_runs_inside_as_outside() {
    if !suite_available() || !live::available(Who::Root) || !live::available(Who::Rootless) {
        return;
    }
    let started = Instant::now();
    let allowed = allowed_differences();
    let (envs, records) = first_pass();
    let first_pass_took = started.elapsed();
    for (index, env) in envs.iter().enumerate() {
        assert!(
            records[index].len() > 1000,
            "{}: only {} test cases were recorded",
            env.name(),
            records[index].len()
        );
    }
    let (first_differences, reruns) = rerun_differences(&envs, &records);
    let mut unexplained = Vec::new();
    let mut flaky = Vec::new();
    let mut explained = 0;
    for (index, found) in &first_differences {
        let env = &envs[*index];
        let base = outside(&envs, env.who);
        for (id, outside_status, inside_status) in found {
            let again = |side: usize| reruns[side].get(id).copied().unwrap_or(Status::Absent);
            let (outside_again, inside_again) = (again(base), again(*index));
            if outside_again == inside_again {
                flaky.push(format!(
                    "{}: {id}: {} outside, {} inside, then {} on both",
                    env.name(),
                    outside_status.name(),
                    inside_status.name(),
                    outside_again.name()
                ));
                continue;
            }
            let covered = allowed
                .difference
                .iter()
                .any(|a| a.covers(env, id, outside_again, inside_again));
            if covered {
                explained += 1;
            } else {
                unexplained.push(format!(
                    "{}: {id}: {} outside, {} inside",
                    env.name(),
                    outside_again.name(),
                    inside_again.name()
                ));
            }
        }
    }

    let elapsed = started.elapsed();
    eprintln!(
        "cpython lane: {} runs, {} test cases each ({}), {explained} differences explained by \
         tests/data/cpython-lane.toml, {} flaky; {:.0} s ({:.0} s for the first pass)",
        envs.len(),
        records[outside(&envs, Who::Root)].len(),
        envs.iter()
            .zip(&records)
            .map(|(e, r)| format!("{}: {}", e.name(), r.len()))
            .collect::<Vec<_>>()
            .join(", "),
        flaky.len(),
        elapsed.as_secs_f64(),
        first_pass_took.as_secs_f64()
    );
    for line in &flaky {
        eprintln!("flaky: {line}");
    }
    assert!(
        unexplained.is_empty(),
        "{} test cases differ from outside without a reason in tests/data/cpython-lane.toml:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}

/// The differences tests/data/cpython-lane.toml allows, each with its reason.
fn allowed_differences() -> AllowedList {
    let allowed: AllowedList = toml::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cpython-lane.toml"),
        )
        .unwrap(),
    )
    .expect("tests/data/cpython-lane.toml");
    for entry in &allowed.difference {
        assert!(
            entry.reason.split_whitespace().count() >= 5,
            "{:?}: every allowed difference says why",
            entry.tests
        );
    }
    allowed
}

/// Every run of the suite, outside, in the dev environment and in the jail, as root and
/// rootless, and what each recorded.
fn first_pass() -> (Vec<Env>, Vec<Record>) {
    // Two waves, so that runs whose processes belong to one host uid (root's sandboxes are
    // 100000, rootless ones the test user's) never run at once: the jail's RLIMIT_NPROC
    // counts every process of its uid.
    let waves = [
        [
            (Place::Outside, Who::Root),
            (Place::Dev, Who::Root),
            (Place::Jail, Who::Rootless),
        ],
        [
            (Place::Outside, Who::Rootless),
            (Place::Dev, Who::Rootless),
            (Place::Jail, Who::Root),
        ],
    ];
    let mut envs: Vec<Env> = Vec::new();
    let mut records: Vec<Record> = Vec::new();
    for wave in waves {
        let first = envs.len();
        envs.extend(wave.iter().map(|(place, who)| Env::new(*place, *who)));
        let jobs = (first..envs.len())
            .flat_map(|index| {
                GROUPS
                    .iter()
                    .map(move |group| (index, group.iter().map(|m| m.to_string()).collect()))
            })
            .collect::<Vec<_>>();
        let count = jobs.len();
        let mut done = run_all(&envs, jobs, count);
        records.extend(done.drain(first..));
    }
    (envs, records)
}

/// The outside run of `who`.
fn outside(envs: &[Env], who: Who) -> usize {
    envs.iter()
        .position(|e| e.place == Place::Outside && e.who == who)
        .unwrap()
}

/// Each case whose outcome differs between two runs, with both outcomes.
fn differences(base: &Record, here: &Record) -> Vec<(String, Status, Status)> {
    base.keys()
        .chain(here.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|id| {
            let get = |r: &Record| r.get(id).copied().unwrap_or(Status::Absent);
            (id.clone(), get(base), get(here))
        })
        .filter(|(_, a, b)| a != b)
        .collect()
}

/// The cases of each inside run (by index) whose outcome differs from outside: (case,
/// outside, inside).
type Differences = BTreeMap<usize, Vec<(String, Status, Status)>>;

/// The cases of each inside run that differ from outside, each run once more on both sides;
/// the differences, and what the reruns recorded.
fn rerun_differences(envs: &[Env], records: &[Record]) -> (Differences, Vec<Record>) {
    let mut rerun_jobs = Vec::new();
    let mut first_differences = BTreeMap::new();
    for (index, env) in envs.iter().enumerate() {
        if env.place == Place::Outside {
            continue;
        }
        let base = outside(envs, env.who);
        let found = differences(&records[base], &records[index]);
        if found.is_empty() {
            continue;
        }
        let ids: Vec<&String> = found.iter().map(|(id, _, _)| id).collect();
        let list: String = ids.iter().map(|id| format!("{id}\n")).collect();
        for side in [index, base] {
            let name = format!("rerun-{index}.txt");
            envs[side].project.write(&name, &list);
            let mut args = vec![
                "--matchfile".to_string(),
                envs[side].work().join(&name).display().to_string(),
            ];
            args.extend(modules_of(ids.iter().copied()));
            rerun_jobs.push((side, args));
        }
        first_differences.insert(index, found);
    }
    // The reruns of one outside run (for the dev environment and the jail) share its record.
    let count = rerun_jobs.len();
    let reruns = run_all(envs, rerun_jobs, count);
    (first_differences, reruns)
}

#[test]
fn globs_match_whole_ids() {
    assert!(glob("test.test_os.*", "test.test_os.A.b"));
    assert!(glob(
        "*chown*",
        "test.test_os.ChownFileTests.test_chown_gid"
    ));
    assert!(glob("test.*.test_x", "test.test_os.A.test_x"));
    assert!(!glob("test.*.test_x", "test.test_os.A.test_xy"));
    assert!(!glob("test.test_os", "test.test_os.A"));
    assert!(glob("a*a", "aa"));
    assert!(!glob("a*a", "a"));
}
