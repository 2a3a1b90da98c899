//! The seccomp profile, resolved to system call numbers for one architecture.
//!
//! Pure data: which calls a profile denies or allows, under which argument conditions, and with
//! which outcome. The executor compiles these [`Filter`]s to BPF (exec::seccomp); `sandbox plan`
//! counts them, so the numbers it prints are the numbers the kernel gets.

use caps::Capability as Cap;

use serde::Serialize;

use super::security::{SeccompPlan, SecurityPlan};
use crate::manifest::values::{Arch, Capability, KnownSyscall};

/// The default profile's denied calls, in groups. A group is lifted when the sandbox keeps one
/// of `lifted_by`, as in Docker's default profile: a kept CAP_SYS_PTRACE is meant to allow
/// ptrace. Names that an architecture does not have are skipped there.
pub struct DenyGroup {
    /// What the calls are, in words people search for (`sandbox plan` names the notable ones).
    pub family: &'static str,
    /// Blocked calls of this group are named by `sandbox plan` with what allows them: the ones
    /// developers meet (debuggers, profilers, containers in the sandbox), not obsolete calls.
    pub notable: bool,
    /// The most specific capability first: that is the one `sandbox plan` suggests.
    pub lifted_by: &'static [Cap],
    pub syscalls: &'static [KnownSyscall],
}

/// Docker's default profile denies every call outside its allow list; these are the calls of
/// x86_64 and aarch64 that it leaves out (mount API, kernel modules, kexec, keyrings, bpf,
/// perf, ptrace and friends, clock setting, swap, quotas, NUMA policy, obsolete calls), plus
/// what it allows and we do not: io_uring (a second system call interface that seccomp cannot
/// see into) and name_to_handle_at (the first half of open_by_handle_at).
pub const DEFAULT_SECCOMP_DENY: &[DenyGroup] = &[
    DenyGroup {
        family: "ptrace (strace, gdb)",
        notable: true,
        lifted_by: &[Cap::CAP_SYS_PTRACE],
        syscalls: &KnownSyscall::list([
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "process_madvise",
            "kcmp",
            "pidfd_getfd",
        ]),
    },
    DenyGroup {
        family: "the mount API, setns, host names, quotas, fanotify",
        notable: true,
        lifted_by: &[Cap::CAP_SYS_ADMIN],
        syscalls: &KnownSyscall::list([
            "mount",
            "umount2",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "setns",
            "sethostname",
            "setdomainname",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
        ]),
    },
    DenyGroup {
        family: "bpf",
        notable: true,
        lifted_by: &[Cap::CAP_BPF, Cap::CAP_SYS_ADMIN],
        syscalls: &KnownSyscall::list(["bpf"]),
    },
    DenyGroup {
        family: "perf_event_open (perf)",
        notable: true,
        lifted_by: &[Cap::CAP_PERFMON, Cap::CAP_SYS_ADMIN],
        syscalls: &KnownSyscall::list(["perf_event_open"]),
    },
    DenyGroup {
        family: "syslog (dmesg)",
        notable: true,
        lifted_by: &[Cap::CAP_SYSLOG, Cap::CAP_SYS_ADMIN],
        syscalls: &KnownSyscall::list(["syslog"]),
    },
    DenyGroup {
        family: "keyrings (keyctl, add_key, request_key)",
        notable: true,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["add_key", "keyctl", "request_key"]),
    },
    DenyGroup {
        family: "kexec",
        notable: true,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["kexec_load", "kexec_file_load"]),
    },
    DenyGroup {
        family: "io_uring",
        notable: true,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["io_uring_setup", "io_uring_enter", "io_uring_register"]),
    },
    DenyGroup {
        family: "userfaultfd",
        notable: true,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["userfaultfd"]),
    },
    DenyGroup {
        family: "swap",
        notable: false,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["swapon", "swapoff"]),
    },
    DenyGroup {
        family: "page migration",
        notable: false,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["move_pages", "migrate_pages"]),
    },
    DenyGroup {
        family: "pivot_root",
        notable: false,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["pivot_root"]),
    },
    DenyGroup {
        family: "obsolete calls",
        notable: false,
        lifted_by: &[],
        syscalls: &KnownSyscall::list([
            "nfsservctl",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
        ]),
    },
    DenyGroup {
        family: "LSM attributes",
        notable: false,
        lifted_by: &[],
        syscalls: &KnownSyscall::list(["lsm_set_self_attr"]),
    },
    DenyGroup {
        family: "kernel modules",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_MODULE],
        syscalls: &KnownSyscall::list(["init_module", "finit_module", "delete_module"]),
    },
    DenyGroup {
        family: "reboot",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_BOOT],
        syscalls: &KnownSyscall::list(["reboot"]),
    },
    DenyGroup {
        family: "chroot",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_CHROOT],
        syscalls: &KnownSyscall::list(["chroot"]),
    },
    DenyGroup {
        family: "process accounting",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_PACCT],
        syscalls: &KnownSyscall::list(["acct"]),
    },
    DenyGroup {
        family: "I/O port access",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_RAWIO],
        syscalls: &KnownSyscall::list(["iopl", "ioperm"]),
    },
    DenyGroup {
        family: "setting the clock",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_TIME],
        syscalls: &KnownSyscall::list(["settimeofday", "clock_settime"]),
    },
    DenyGroup {
        family: "vhangup",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_TTY_CONFIG],
        syscalls: &KnownSyscall::list(["vhangup"]),
    },
    DenyGroup {
        family: "NUMA memory policy",
        notable: false,
        lifted_by: &[Cap::CAP_SYS_NICE],
        syscalls: &KnownSyscall::list([
            "get_mempolicy",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "mbind",
        ]),
    },
    DenyGroup {
        family: "file handles",
        notable: false,
        lifted_by: &[Cap::CAP_DAC_READ_SEARCH],
        syscalls: &KnownSyscall::list(["open_by_handle_at", "name_to_handle_at"]),
    },
];

/// Every call the default profile denies outright when no capability is kept.
pub fn default_denied() -> impl Iterator<Item = &'static str> {
    DEFAULT_SECCOMP_DENY
        .iter()
        .flat_map(|group| group.syscalls.iter().map(|call| call.name))
}

/// Whether the plan keeps one of `caps`.
fn keeps(security: &SecurityPlan, caps: &[Cap]) -> bool {
    security
        .capabilities
        .iter()
        .any(|kept| caps.contains(&kept.0))
}

/// A notable group of calls the plan's profile fails with EPERM: a bare "Operation not
/// permitted" from strace or perf says nothing, so `sandbox plan` names these and what allows
/// each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub family: &'static str,
    pub calls: Vec<&'static str>,
    /// The capability that lifts the group; none: only a custom profile allows it.
    pub lifted_by: Option<Capability>,
}

/// The notable groups the default profile still blocks with this plan's capabilities (none for
/// a custom profile, which lists its calls itself, or with seccomp off).
pub fn notable_blocked(security: &SecurityPlan) -> Vec<Blocked> {
    if security.seccomp != SeccompPlan::Default {
        return Vec::new();
    }
    DEFAULT_SECCOMP_DENY
        .iter()
        .filter(|group| group.notable && !keeps(security, group.lifted_by))
        .map(|group| Blocked {
            family: group.family,
            calls: group.syscalls.iter().map(|call| call.name).collect(),
            lifted_by: group.lifted_by.first().map(|cap| Capability(*cap)),
        })
        .collect()
}

/// The namespaces clone(2) can create (Docker's mask). CLONE_NEWTIME shares its bit with the
/// exit signal in clone's flags, so it only counts for unshare.
const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;
const CLONE_NEWTIME: u32 = 0x80;

/// personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 with either, and the
/// query 0xffffffff. Anything else (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, other personas)
/// weakens the process's own hardening.
const PLAIN_PERSONALITIES: [u32; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The calls the launcher itself makes once the filter is in place: execve always. With
/// no_new_privileges off, the kernel only takes a filter from a process with CAP_SYS_ADMIN, so
/// the filter goes in before the uid and capability changes, and those calls follow it.
pub fn launcher_calls(no_new_privileges: bool) -> &'static [&'static str] {
    const EXEC: &[&str] = &["execve"];
    const PRIVILEGED: &[&str] = &[
        "execve",
        "capget",
        "capset",
        "prctl",
        "setgroups",
        "setresgid",
        "setresuid",
    ];
    if no_new_privileges { EXEC } else { PRIVILEGED }
}

/// The launcher's own calls (see [`launcher_calls`]) that a custom profile would refuse.
pub fn blocks_launcher(seccomp: &SeccompPlan, no_new_privileges: bool) -> Vec<&'static str> {
    let needed = launcher_calls(no_new_privileges).iter().copied();
    match seccomp {
        SeccompPlan::AllowList { allow, .. } => {
            needed.filter(|n| !allow.iter().any(|a| a == n)).collect()
        }
        SeccompPlan::DenyList { deny, .. } => {
            needed.filter(|n| deny.iter().any(|d| d == n)).collect()
        }
        SeccompPlan::Default | SeccompPlan::Off => Vec::new(),
    }
}

/// What a filter does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Errno(i32),
    KillProcess,
}

/// A test on the low 32 bits of one argument (flags, ioctl requests, personas and address
/// families are all 32-bit values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgTest {
    Eq(u32),
    Ne(u32),
    /// Every bit of the mask is set.
    BitsSet(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCheck {
    pub index: u8,
    pub test: ArgTest,
}

/// A system call the filter matches, and what a matching call gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<'a> {
    pub name: &'a str,
    pub nr: i64,
    /// Empty: every call matches. Otherwise a call matches when all checks of any one entry
    /// hold.
    pub when: Vec<Vec<ArgCheck>>,
    pub verdict: Verdict,
}

#[cfg(test)]
impl Rule<'_> {
    /// Whether a call with these arguments matches: the reference that the compiled programs
    /// and the exported profile are tested against.
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        let holds = |check: &ArgCheck| {
            let low = args[usize::from(check.index)] as u32;
            match check.test {
                ArgTest::Eq(value) => low == value,
                ArgTest::Ne(value) => low != value,
                ArgTest::BitsSet(mask) => low & mask == mask,
            }
        };
        self.when.is_empty() || self.when.iter().any(|all| all.iter().all(holds))
    }
}

/// The filter: calls matching a rule get its verdict, all others `otherwise`. Calls from
/// another ABI (32-bit, x32) are killed before any rule is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter<'a> {
    pub otherwise: Verdict,
    /// In number order, one rule per number.
    pub rules: Vec<Rule<'a>>,
}

impl Filter<'_> {
    /// Rules that hold whatever the arguments.
    pub fn unconditional(&self) -> impl Iterator<Item = &Rule<'_>> {
        self.rules.iter().filter(|r| r.when.is_empty())
    }

    /// Rules that hold only for some arguments.
    pub fn conditional(&self) -> impl Iterator<Item = &Rule<'_>> {
        self.rules.iter().filter(|r| !r.when.is_empty())
    }
}

/// The filter the kernel gets for this plan on `arch`; none when seccomp is off.
pub fn filter(security: &SecurityPlan, arch: Arch) -> Option<Filter<'_>> {
    Some(match &security.seccomp {
        SeccompPlan::Off => return None,
        SeccompPlan::DenyList { deny, errno } => Filter {
            otherwise: Verdict::Allow,
            rules: numbered(looked_up(deny, arch), Verdict::Errno(*errno)),
        },
        SeccompPlan::AllowList { allow, errno } => Filter {
            otherwise: errno.map_or(Verdict::KillProcess, Verdict::Errno),
            rules: numbered(looked_up(allow, arch), Verdict::Allow),
        },
        SeccompPlan::Default => default_filter(security, arch),
    })
}

/// The only calls the sandbox's init makes once it has locked itself down (see
/// `exec::steps::pid::init`): it reads the signals to forward and its supervisor's word,
/// reaps (wait4), forwards (kill), reports how the command ended and exits.
pub const INIT_CALLS: [KnownSyscall; 8] = KnownSyscall::list([
    "read",
    "write",
    "wait4",
    "kill",
    "exit",
    "exit_group",
    "rt_sigreturn",
    "restart_syscall",
]);

/// Init's own filter: [`INIT_CALLS`], and any other call kills it, and with it the sandbox.
/// Whatever the manifest's `seccomp` says, as init runs the launcher's code, not the user's.
pub fn init_filter(arch: Arch) -> Filter<'static> {
    Filter {
        otherwise: Verdict::KillProcess,
        rules: numbered(known(&INIT_CALLS, arch), Verdict::Allow),
    }
}

/// A profile's names with their numbers on `arch` (none where it lacks the call).
fn looked_up(names: &[String], arch: Arch) -> impl Iterator<Item = (&str, Option<i64>)> {
    names
        .iter()
        .map(move |name| (name.as_str(), arch.syscall_number(name)))
}

/// The launcher's own calls with their numbers on `arch`, found at compile time.
fn known(calls: &[KnownSyscall], arch: Arch) -> impl Iterator<Item = (&'static str, Option<i64>)> {
    calls.iter().map(move |call| (call.name, call.number(arch)))
}

/// Unconditional rules for the calls `arch` has, in number order, each number once.
fn numbered<'a>(
    calls: impl Iterator<Item = (&'a str, Option<i64>)>,
    verdict: Verdict,
) -> Vec<Rule<'a>> {
    let mut rules: Vec<Rule<'a>> = calls
        .filter_map(|(name, nr)| {
            nr.map(|nr| Rule {
                name,
                nr,
                when: Vec::new(),
                verdict,
            })
        })
        .collect();
    rules.sort_by_key(|r| r.nr);
    rules.dedup_by_key(|r| r.nr);
    rules
}

fn default_filter(security: &SecurityPlan, arch: Arch) -> Filter<'_> {
    let keeps = |caps: &[Cap]| keeps(security, caps);
    let eperm = Verdict::Errno(libc::EPERM);
    let mut rules = numbered(
        DEFAULT_SECCOMP_DENY
            .iter()
            .filter(|group| !keeps(group.lifted_by))
            .flat_map(|group| known(group.syscalls, arch)),
        eperm,
    );
    let mut add = |call: KnownSyscall, when: Vec<Vec<ArgCheck>>, verdict: Verdict| {
        if let Some(nr) = call.number(arch) {
            rules.push(Rule {
                name: call.name,
                nr,
                when,
                verdict,
            });
        }
    };
    let any_bit = |index: u8, mask: u32| -> Vec<Vec<ArgCheck>> {
        (0..32)
            .map(|bit| 1u32 << bit)
            .filter(|bit| mask & bit != 0)
            .map(|bit| {
                vec![ArgCheck {
                    index,
                    test: ArgTest::BitsSet(bit),
                }]
            })
            .collect()
    };
    if !keeps(&[Cap::CAP_SYS_ADMIN]) {
        add(
            const { KnownSyscall::new("clone") },
            any_bit(0, CLONE_NAMESPACES),
            eperm,
        );
        add(
            const { KnownSyscall::new("unshare") },
            any_bit(0, CLONE_NAMESPACES | CLONE_NEWTIME),
            eperm,
        );
        // clone3 passes its flags in memory, out of a filter's reach: refuse it as if the
        // kernel were older, so libc falls back to clone, whose flags the rule above sees.
        add(
            const { KnownSyscall::new("clone3") },
            Vec::new(),
            Verdict::Errno(libc::ENOSYS),
        );
    }
    add(
        const { KnownSyscall::new("personality") },
        vec![
            PLAIN_PERSONALITIES
                .iter()
                .map(|p| ArgCheck {
                    index: 0,
                    test: ArgTest::Ne(*p),
                })
                .collect(),
        ],
        eperm,
    );
    add(
        const { KnownSyscall::new("ioctl") },
        [libc::TIOCSTI, libc::TIOCLINUX]
            .iter()
            .map(|request| {
                vec![ArgCheck {
                    index: 1,
                    test: ArgTest::Eq(*request as u32),
                }]
            })
            .collect(),
        eperm,
    );
    add(
        const { KnownSyscall::new("socket") },
        vec![vec![ArgCheck {
            index: 0,
            test: ArgTest::Eq(libc::AF_VSOCK as u32),
        }]],
        eperm,
    );
    rules.sort_by_key(|r| r.nr);
    Filter {
        otherwise: Verdict::Allow,
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(seccomp: SeccompPlan, caps: &[Cap]) -> SecurityPlan {
        SecurityPlan {
            capabilities: caps.iter().map(|c| Capability(*c)).collect(),
            no_new_privileges: true,
            seccomp,
            landlock: None,
            rlimits: Vec::new(),
            raise_hard_limits: Vec::new(),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
        }
    }

    #[test]
    fn every_default_name_is_a_system_call_somewhere() {
        for name in default_denied() {
            assert!(
                Arch::ALL.iter().any(|a| a.syscall_number(name).is_some()),
                "{name} is no system call on x86_64 or aarch64"
            );
        }
    }

    #[test]
    fn the_numbers_found_at_compile_time_are_the_tables_numbers() {
        let calls = DEFAULT_SECCOMP_DENY.iter().flat_map(|group| group.syscalls);
        for call in calls.chain(&INIT_CALLS) {
            for arch in Arch::ALL {
                assert_eq!(
                    call.number(arch),
                    arch.syscall_number(call.name),
                    "{} on {arch:?}",
                    call.name
                );
            }
        }
        // The argument rules' calls too.
        let plan = security(SeccompPlan::Default, &[]);
        for arch in Arch::ALL {
            for rule in filter(&plan, arch).unwrap().rules {
                assert_eq!(
                    Some(rule.nr),
                    arch.syscall_number(rule.name),
                    "{}",
                    rule.name
                );
            }
        }
    }

    #[test]
    fn the_default_profile_denies_what_docker_denies_and_the_issue_lists() {
        let plan = security(SeccompPlan::Default, &[]);
        let filter = filter(&plan, Arch::X86_64).unwrap();
        let eperm = Verdict::Errno(libc::EPERM);
        let denied: Vec<&str> = filter
            .unconditional()
            .filter(|r| r.verdict == eperm)
            .map(|r| r.name)
            .collect();
        for name in [
            "kexec_load",
            "init_module",
            "finit_module",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "keyctl",
            "add_key",
            "request_key",
            "open_by_handle_at",
            "name_to_handle_at",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "mount",
            "fsopen",
            "move_mount",
            "open_tree",
            "reboot",
            "swapon",
            "settimeofday",
            "acct",
            "quotactl",
            "lookup_dcookie",
            "nfsservctl",
            "umount2",
            "io_uring_setup",
            "setns",
            "chroot",
        ] {
            assert!(denied.contains(&name), "{name} is not denied");
        }
        let conditional: Vec<&str> = filter.conditional().map(|r| r.name).collect();
        assert_eq!(
            conditional,
            ["ioctl", "socket", "clone", "personality", "unshare"]
        );
        assert!(filter.conditional().all(|r| r.verdict == eperm));
        let clone3 = filter.rules.iter().find(|r| r.name == "clone3").unwrap();
        assert_eq!(clone3.verdict, Verdict::Errno(libc::ENOSYS));
        assert_eq!(filter.otherwise, Verdict::Allow);
    }

    #[test]
    fn a_kept_capability_lifts_its_group() {
        let none = security(SeccompPlan::Default, &[]);
        let ptrace = security(SeccompPlan::Default, &[Cap::CAP_SYS_PTRACE]);
        let admin = security(SeccompPlan::Default, &[Cap::CAP_SYS_ADMIN]);
        let names = |plan| -> Vec<&str> {
            filter(plan, Arch::X86_64)
                .unwrap()
                .rules
                .iter()
                .map(|r| r.name)
                .collect()
        };
        assert!(names(&none).contains(&"ptrace"));
        assert!(!names(&ptrace).contains(&"ptrace"));
        assert!(!names(&ptrace).contains(&"process_vm_readv"));
        assert!(names(&ptrace).contains(&"mount"));
        assert!(!names(&admin).contains(&"mount"));
        assert!(!names(&admin).contains(&"clone"));
        assert!(!names(&admin).contains(&"bpf"));
        assert!(names(&admin).contains(&"keyctl"), "never lifted");
        assert!(!names(&admin).contains(&"clone3"));
    }

    #[test]
    fn the_notable_blocked_groups_name_what_allows_them() {
        let none = notable_blocked(&security(SeccompPlan::Default, &[]));
        let families: Vec<&str> = none.iter().map(|b| b.family).collect();
        for family in [
            "ptrace", "mount", "bpf", "perf", "keyrings", "kexec", "io_uring",
        ] {
            assert!(
                families.iter().any(|f| f.contains(family)),
                "{family} in {families:?}"
            );
        }
        let ptrace = none
            .iter()
            .find(|b| b.family.starts_with("ptrace"))
            .unwrap();
        assert_eq!(ptrace.lifted_by, Some(Capability(Cap::CAP_SYS_PTRACE)));
        assert!(ptrace.calls.contains(&"process_vm_readv"));
        let bpf = none.iter().find(|b| b.family == "bpf").unwrap();
        assert_eq!(
            bpf.lifted_by.map(Capability::short_name).as_deref(),
            Some("bpf"),
            "the narrowest capability is the one suggested"
        );
        let keyrings = none.iter().find(|b| b.family.starts_with("keyrings"));
        assert_eq!(keyrings.unwrap().lifted_by, None);

        let debugging = notable_blocked(&security(SeccompPlan::Default, &[Cap::CAP_SYS_PTRACE]));
        assert!(debugging.iter().all(|b| !b.family.starts_with("ptrace")));
        assert_eq!(debugging.len(), none.len() - 1);
        assert!(notable_blocked(&security(SeccompPlan::Off, &[])).is_empty());
        let custom = SeccompPlan::DenyList {
            deny: vec!["ptrace".into()],
            errno: libc::EPERM,
        };
        assert!(notable_blocked(&security(custom, &[])).is_empty());
    }

    #[test]
    fn names_an_architecture_lacks_are_skipped() {
        let plan = security(
            SeccompPlan::DenyList {
                deny: vec!["open".into(), "openat".into(), "openat".into()],
                errno: libc::EACCES,
            },
            &[],
        );
        let x86: Vec<&str> = filter(&plan, Arch::X86_64)
            .unwrap()
            .rules
            .iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(x86, ["open", "openat"]);
        let arm: Vec<&str> = filter(&plan, Arch::Aarch64)
            .unwrap()
            .rules
            .iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(arm, ["openat"]);
        assert!(
            filter(&security(SeccompPlan::Default, &[]), Arch::Aarch64)
                .unwrap()
                .rules
                .iter()
                .all(|r| r.name != "iopl")
        );
    }

    #[test]
    fn the_default_profile_lets_the_launcher_finish() {
        let plan = security(SeccompPlan::Default, &[]);
        let filter = filter(&plan, Arch::X86_64).unwrap();
        let denied: Vec<&str> = filter.unconditional().map(|r| r.name).collect();
        for call in launcher_calls(false).iter().chain(&["clock_gettime"]) {
            assert!(!denied.contains(call), "{call}");
        }
        let allow = SeccompPlan::AllowList {
            allow: vec!["execve".into(), "prctl".into()],
            errno: None,
        };
        assert!(blocks_launcher(&allow, true).is_empty());
        assert_eq!(blocks_launcher(&allow, false).len(), 5);
        let deny = SeccompPlan::DenyList {
            deny: vec!["execve".into()],
            errno: 1,
        };
        assert_eq!(blocks_launcher(&deny, true), ["execve"]);
    }

    #[test]
    fn allow_lists_kill_or_fail_the_rest() {
        let kill = security(
            SeccompPlan::AllowList {
                allow: vec!["read".into()],
                errno: None,
            },
            &[],
        );
        let f = filter(&kill, Arch::X86_64).unwrap();
        assert_eq!(
            (f.rules[0].verdict, f.otherwise),
            (Verdict::Allow, Verdict::KillProcess)
        );
        let off = security(SeccompPlan::Off, &[]);
        assert!(filter(&off, Arch::X86_64).is_none());
    }
}
