//! User namespace and id maps, plus the other identity namespaces (UTS, time).
//!
//! Kernel rules (user_namespaces(7)): each map is written once, by a process with CAP_SETUID
//! (CAP_SETGID) over the parent namespace, or by an unprivileged process mapping only its own
//! id, which for gid_map requires "deny" in /proc/PID/setgroups first. Ranges from
//! /etc/subuid and /etc/subgid go through the setuid helpers newuidmap/newgidmap. The parent
//! always writes the maps, so the child's first action stays "wait for Go".
//!
//! Time namespace offsets (time_namespaces(7)) can only be written before any process lives in
//! the namespace: the child unshares CLONE_NEWTIME, writes /proc/self/timens_offsets, then
//! joins its own time_for_children namespace.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::order::Context;
use crate::plan::{IdMapping, MapWriter, Plan, StepId, TimePlan, UserPlan};
use crate::sys::Sys;
use crate::sys::raw as sys;

fn map_text(map: &[IdMapping]) -> String {
    map.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

/// Take the ids of [`Plan::setup_ids`] and drop the supplementary groups when allowed: in the
/// user step, and in a process joining a running sandbox.
pub fn take_setup_ids(sys: &dyn Sys, plan: &Plan) -> Result<(), StepFailure> {
    let (Some(user), Some((uid, gid))) = (&plan.user, plan.setup_ids()) else {
        return Ok(());
    };
    sys.setresgid(gid)
        .or_fail(StepId::User, Op::SetIds, || format!("setresgid({gid})"))?;
    if !user.deny_setgroups {
        sys.setgroups(&[])
            .or_fail(StepId::User, Op::SetIds, || "setgroups([])".into())?;
    }
    sys.setresuid(uid)
        .or_fail(StepId::User, Op::SetIds, || format!("setresuid({uid})"))
}

/// The files the launcher writes for a direct mapping, in the order the kernel requires.
pub fn map_files(plan: &UserPlan, pid: i32) -> Vec<(PathBuf, String)> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let mut files = Vec::with_capacity(3);
    if plan.deny_setgroups {
        files.push((proc.join("setgroups"), "deny".to_string()));
    }
    files.push((proc.join("uid_map"), map_text(&plan.uid_map)));
    files.push((proc.join("gid_map"), map_text(&plan.gid_map)));
    files
}

/// The arguments of newuidmap (or newgidmap): `PID inside outside count ...`.
pub fn helper_args(map: &[IdMapping], pid: i32) -> Vec<String> {
    std::iter::once(pid.to_string())
        .chain(map.iter().flat_map(|m| {
            [
                m.inside.to_string(),
                m.outside.to_string(),
                m.count.to_string(),
            ]
        }))
        .collect()
}

pub fn parent(sys: &dyn Sys, plan: &UserPlan, pid: i32) -> Result<(), StepFailure> {
    match &plan.writer {
        MapWriter::Direct => {
            for (path, text) in map_files(plan, pid) {
                sys.write_file(&path, text.as_bytes()).map_err(|errno| {
                    StepFailure::new(
                        StepId::User,
                        Op::IdMap,
                        format!(
                            "writing {} ({})",
                            path.display(),
                            text.trim().replace('\n', ", ")
                        ),
                        errno,
                    )
                    .with_key(if path.ends_with("gid_map") {
                        "gid_map"
                    } else {
                        "uid_map"
                    })
                })?;
            }
            Ok(())
        }
        MapWriter::Helper {
            newuidmap,
            newgidmap,
        } => {
            for (helper, map, key) in [
                (newuidmap, &plan.uid_map, "uid_map"),
                (newgidmap, &plan.gid_map, "gid_map"),
            ] {
                let args = helper_args(map, pid);
                let action = || format!("{} {}", helper.display(), args.join(" "));
                let status = sys.run(helper, &args).map_err(|errno| {
                    StepFailure::new(StepId::User, Op::IdMap, action(), errno).with_key(key)
                })?;
                if !status.success() {
                    return Err(StepFailure::new(
                        StepId::User,
                        Op::IdMap,
                        format!("{} (exit status {status})", action()),
                        Errno::EPERM,
                    )
                    .with_key(key));
                }
            }
            Ok(())
        }
    }
}

/// In the child, once the maps exist: take a mapped identity for the setup (root inside when
/// root is mapped, else the command's ids; an unmapped fsuid cannot create a file), drop the
/// host's supplementary groups when allowed, then set the hostname and clock offsets. The
/// capabilities of the namespace's creator survive these changes (capabilities(7)).
pub fn child(sys: &dyn Sys, plan: &Plan) -> Result<(), StepFailure> {
    take_setup_ids(sys, plan)?;
    if let Some(uts) = &plan.uts {
        sys.sethostname(&uts.hostname)
            .or_fail(StepId::User, Op::Hostname, || {
                format!("sethostname({})", uts.hostname)
            })
            .map_err(|f| f.with_key("uts.hostname"))?;
        if let Some(domain) = &uts.domainname {
            sys.setdomainname(domain)
                .or_fail(StepId::User, Op::Hostname, || {
                    format!("setdomainname({domain})")
                })
                .map_err(|f| f.with_key("uts.domainname"))?;
        }
    }
    if let Some(time) = &plan.time {
        enter_time_namespace(sys, time)?;
    }
    Ok(())
}

/// `monotonic SECS NANOS` lines with the nanoseconds always positive, as the kernel wants them.
/// `now` holds the clocks' current values (monotonic, boottime) when they start at zero.
pub fn timens_offsets(time: &TimePlan, now: Option<(i64, i64)>) -> String {
    let (monotonic_now, boottime_now) = now.unwrap_or((0, 0));
    let line = |clock: &str, ns: i64| {
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000);
        format!("{clock} {secs} {nanos}\n")
    };
    line("monotonic", time.monotonic_ns - monotonic_now)
        + &line("boottime", time.boottime_ns - boottime_now)
}

fn enter_time_namespace(sys: &dyn Sys, time: &TimePlan) -> Result<(), StepFailure> {
    sys.unshare(libc::CLONE_NEWTIME)
        .or_fail(StepId::User, Op::Unshare, || {
            "unshare(CLONE_NEWTIME)".into()
        })?;
    let now = time.zero_at_start.then(|| {
        let read = |clock| {
            nix::time::clock_gettime(clock).map_or(0, |t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
        };
        (
            read(nix::time::ClockId::CLOCK_MONOTONIC),
            read(nix::time::ClockId::CLOCK_BOOTTIME),
        )
    });
    // The process is undumpable (see exec::setup), which hands its /proc files to the host's
    // root: dumpable just for this write, while nothing else of the sandbox runs yet.
    sys.set_dumpable(true)
        .or_fail(StepId::User, Op::Prctl, || "PR_SET_DUMPABLE".into())?;
    let offsets = timens_offsets(time, now);
    let written = sys.write_file("/proc/self/timens_offsets".as_ref(), offsets.as_bytes());
    sys.set_dumpable(false)
        .or_fail(StepId::User, Op::Prctl, || "PR_SET_DUMPABLE".into())?;
    written.map_err(|errno| {
        let action = "writing /proc/self/timens_offsets";
        StepFailure::new(StepId::User, Op::ClockOffsets, action, errno).with_key("time")
    })?;
    let ns = sys
        .openat(None, c"/proc/self/ns/time_for_children", libc::O_RDONLY, 0)
        .map_err(|errno| {
            let action = "opening time_for_children";
            StepFailure::new(StepId::User, Op::OpenNamespace, action, errno)
        })?;
    sys.setns(ns.as_fd(), libc::CLONE_NEWTIME)
        .or_fail(StepId::User, Op::Setns, || {
            "setns(time_for_children)".into()
        })
}

/// A helper process told to exit, reaped when dropped: later, by when it is long gone, so the
/// launch does not wait for it to be scheduled.
pub struct Exiting(OwnedFd);

impl Drop for Exiting {
    fn drop(&mut self) {
        let _ = nix::sys::wait::waitid(
            nix::sys::wait::Id::PIDFd(self.0.as_fd()),
            nix::sys::wait::WaitPidFlag::WEXITED,
        );
    }
}

/// A user namespace with these maps, for id-mapped mounts (mount_setattr(2),
/// MOUNT_ATTR_IDMAP). Made by the launcher, as the host's root, before the sandbox exists: a
/// helper is cloned into a new user namespace where it only waits, the maps are written from
/// here, and the namespace is kept as a descriptor. The helper exits when the pipe it waits on
/// closes.
pub fn idmapped_userns(
    uid_map: &[IdMapping],
    gid_map: &[IdMapping],
) -> Result<(OwnedFd, Exiting), StepFailure> {
    let fail = |op: Op, action: &str| {
        let action = action.to_string();
        move |errno| StepFailure::new(StepId::Mount, op, action, errno)
    };
    let (hold_read, hold_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(fail(Op::Channel, "pipe2"))?;
    let (pid, pidfd) = match sys::clone3(libc::CLONE_NEWUSER as u64, None)
        .map_err(fail(Op::Clone, "clone for an id-mapped mount"))?
    {
        sys::Forked::Child => {
            drop(hold_write);
            let _ = nix::unistd::read(&hold_read, &mut [0u8; 1]);
            sys::exit_now(0)
        }
        sys::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(hold_read);
    let helper = Exiting(pidfd);
    let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let made = std::fs::write(proc.join("uid_map"), map_text(uid_map))
        .and_then(|()| std::fs::write(proc.join("gid_map"), map_text(gid_map)))
        .and_then(|()| std::fs::File::open(proc.join("ns/user")))
        .map(OwnedFd::from)
        .map_err(io);
    drop(hold_write);
    let made = made.map_err(fail(Op::IdMap, "writing the maps of an id-mapped mount"))?;
    Ok((made, helper))
}

/// The parent half in the step table: the id maps.
pub fn parent_half(cx: &mut Context<'_>) -> Result<(), StepFailure> {
    match &cx.plan.user {
        Some(user) => parent(cx.sys, user, cx.child_pid()),
        None => Ok(()),
    }
}

/// The child half in the step table: [`child`], then the parent-death signal again, which a
/// change of credentials clears (prctl(2)).
pub fn child_half(cx: &mut Context<'_>) -> Result<(), StepFailure> {
    child(cx.sys, cx.plan)?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).or_fail(
        StepId::User,
        Op::Prctl,
        || "PR_SET_PDEATHSIG".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sys::fake::Fake;

    fn one_to_one(outside: u32) -> Vec<IdMapping> {
        vec![IdMapping {
            inside: 0,
            outside,
            count: 1,
        }]
    }

    fn user_plan(writer: MapWriter, deny_setgroups: bool) -> UserPlan {
        UserPlan {
            uid_map: one_to_one(1000),
            gid_map: one_to_one(1000),
            writer,
            deny_setgroups,
            foreign: Default::default(),
            pool: None,
        }
    }

    #[test]
    fn the_parent_writes_setgroups_then_each_map_once() {
        let fake = Fake::new();
        parent(&fake, &user_plan(MapWriter::Direct, true), 42).unwrap();
        assert_eq!(
            fake.calls(),
            [
                "write_file(/proc/42/setgroups, \"deny\")",
                "write_file(/proc/42/uid_map, \"0 1000 1\\n\")",
                "write_file(/proc/42/gid_map, \"0 1000 1\\n\")",
            ]
        );
    }

    #[test]
    fn a_map_that_cannot_be_written_fails_naming_its_key() {
        let fake = Fake::new();
        fake.fail("write_file", 1, Errno::EPERM);
        let failure = parent(&fake, &user_plan(MapWriter::Direct, false), 42).unwrap_err();
        assert!(failure.key.is_some_and(|key| key.is_key("gid_map")));
        assert_eq!(failure.action, "writing /proc/42/gid_map (0 1000 1)");
        assert_eq!(failure.errno, Errno::EPERM as i32);
    }

    #[test]
    fn subordinate_ranges_go_through_the_setuid_helpers() {
        let fake = Fake::new();
        let writer = MapWriter::Helper {
            newuidmap: "/usr/bin/newuidmap".into(),
            newgidmap: "/usr/bin/newgidmap".into(),
        };
        parent(&fake, &user_plan(writer, false), 42).unwrap();
        assert_eq!(
            fake.calls(),
            [
                "run(/usr/bin/newuidmap 42 0 1000 1)",
                "run(/usr/bin/newgidmap 42 0 1000 1)",
            ]
        );
    }

    #[test]
    fn the_child_drops_supplementary_groups_only_where_setgroups_is_allowed() {
        for deny in [false, true] {
            let mut plan = crate::plan::for_tests();
            plan.user = Some(user_plan(MapWriter::Direct, deny));
            let fake = Fake::new();
            take_setup_ids(&fake, &plan).unwrap();
            let calls = fake.calls();
            assert!(
                calls.first().unwrap().starts_with("setresgid("),
                "{calls:?}"
            );
            assert!(calls.last().unwrap().starts_with("setresuid("), "{calls:?}");
            assert_eq!(calls.contains(&"setgroups([])".to_string()), !deny);
        }
    }

    #[test]
    fn direct_maps_deny_setgroups_first() {
        let plan = UserPlan {
            uid_map: vec![IdMapping {
                inside: 0,
                outside: 1000,
                count: 1,
            }],
            gid_map: vec![IdMapping {
                inside: 0,
                outside: 1000,
                count: 1,
            }],
            writer: MapWriter::Direct,
            deny_setgroups: true,
            foreign: Default::default(),
            pool: None,
        };
        let files = map_files(&plan, 42);
        assert_eq!(
            files[0],
            (PathBuf::from("/proc/42/setgroups"), "deny".into())
        );
        assert_eq!(
            files[1],
            (PathBuf::from("/proc/42/uid_map"), "0 1000 1\n".into())
        );
        assert_eq!(files[2].0, PathBuf::from("/proc/42/gid_map"));
        let root = UserPlan {
            deny_setgroups: false,
            ..plan
        };
        assert_eq!(map_files(&root, 42).len(), 2);
    }

    #[test]
    fn helper_arguments_list_every_range() {
        let map = [
            IdMapping {
                inside: 0,
                outside: 1000,
                count: 1,
            },
            IdMapping {
                inside: 1,
                outside: 100000,
                count: 65535,
            },
        ];
        assert_eq!(
            helper_args(&map, 7),
            ["7", "0", "1000", "1", "1", "100000", "65535"]
        );
    }

    #[test]
    fn negative_offsets_keep_nanoseconds_positive() {
        let time = TimePlan {
            monotonic_ns: -1_500_000_000,
            boottime_ns: 86_400_000_000_000,
            zero_at_start: false,
        };
        assert_eq!(
            timens_offsets(&time, None),
            "monotonic -2 500000000\nboottime 86400 0\n"
        );
        let zeroed = TimePlan {
            monotonic_ns: 0,
            boottime_ns: 0,
            zero_at_start: true,
        };
        assert_eq!(
            timens_offsets(&zeroed, Some((5_000_000_000, 7_250_000_000))),
            "monotonic -5 0\nboottime -8 750000000\n"
        );
    }
}
