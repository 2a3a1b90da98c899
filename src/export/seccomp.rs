//! The seccomp filter `sandbox up` loads, as runtime-spec `linux.seccomp`.
//!
//! The input is the very [`Filter`] the executor compiles to BPF (plan::seccomp), so the calls,
//! verdicts and argument conditions are the same; only the encoding changes:
//!
//! - Our argument checks look at the low 32 bits of an argument (flags, ioctl requests,
//!   personas are 32-bit values; the upper half of the register is whatever the caller left
//!   there). libseccomp compares all 64 bits, except for `SCMP_CMP_MASKED_EQ`, which compares
//!   `arg & mask` with a value: with a mask inside the low 32 bits, the upper half never
//!   matters. So every check becomes one or more masked comparisons ("cubes": a mask and the
//!   value the masked bits must have). `Ne(v)` is the union of 32 disjoint cubes (the
//!   arguments that first differ from `v` at bit 31, at bit 30, ...).
//! - A rule holds when all checks of one of its conjunctions hold. runc and crun read several
//!   comparisons of the same argument in one entry as alternatives (libseccomp cannot AND them),
//!   so an entry here has at most one comparison per argument, and alternatives are separate
//!   entries (libseccomp ORs the rules of a call).
//! - The architecture check: `architectures` lists only the native architecture, so a call
//!   through another ABI (i386's `int 0x80`, x32's numbers) hits libseccomp's bad-architecture
//!   action, which kills (the thread; `up` kills the process).

use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::manifest::values::Arch;
use crate::plan::SecurityPlan;
use crate::plan::seccomp::{ArgCheck, ArgTest, Filter, Verdict, filter};

/// A masked comparison on the low 32 bits of one argument: `arg & mask == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cube {
    mask: u32,
    value: u32,
}

impl Cube {
    const ANY: Cube = Cube { mask: 0, value: 0 };

    fn intersect(self, other: Cube) -> Option<Cube> {
        let common = self.mask & other.mask;
        (self.value & common == other.value & common).then_some(Cube {
            mask: self.mask | other.mask,
            value: self.value | other.value,
        })
    }
}

/// The arguments (low 32 bits) one check accepts, as disjoint cubes.
fn cubes(test: ArgTest) -> Vec<Cube> {
    match test {
        ArgTest::Eq(value) => vec![Cube {
            mask: u32::MAX,
            value,
        }],
        ArgTest::BitsSet(mask) => vec![Cube { mask, value: mask }],
        // Equal to `value` above bit `i`, different at bit `i`, anything below.
        ArgTest::Ne(value) => (0..32)
            .rev()
            .map(|i| {
                let above = u32::MAX.checked_shl(i + 1).unwrap_or(0);
                let bit = 1u32 << i;
                Cube {
                    mask: above | bit,
                    value: (value & above) | (!value & bit),
                }
            })
            .collect(),
    }
}

/// The cubes of one argument that pass every one of `tests`.
fn all_of(tests: &[ArgTest]) -> Vec<Cube> {
    tests.iter().fold(vec![Cube::ANY], |accepted, test| {
        let next = cubes(*test);
        accepted
            .iter()
            .flat_map(|a| next.iter().filter_map(move |b| a.intersect(*b)))
            .collect()
    })
}

/// One conjunction of checks as alternatives, each with at most one cube per argument.
fn alternatives(conjunction: &[ArgCheck]) -> Vec<Vec<(u8, Cube)>> {
    let mut indexes: Vec<u8> = conjunction.iter().map(|c| c.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    indexes.iter().fold(vec![Vec::new()], |partial, &index| {
        let tests: Vec<ArgTest> = conjunction
            .iter()
            .filter(|c| c.index == index)
            .map(|c| c.test)
            .collect();
        let accepted = all_of(&tests);
        partial
            .iter()
            .flat_map(|prefix| {
                accepted.iter().map(move |cube| {
                    let mut entry = prefix.clone();
                    if *cube != Cube::ANY {
                        entry.push((index, *cube));
                    }
                    entry
                })
            })
            .collect()
    })
}

fn action(verdict: Verdict) -> (LinuxSeccompAction, Option<u32>) {
    match verdict {
        Verdict::Allow => (LinuxSeccompAction::ScmpActAllow, None),
        Verdict::Errno(errno) => (LinuxSeccompAction::ScmpActErrno, Some(errno as u32)),
        Verdict::KillProcess => (LinuxSeccompAction::ScmpActKillProcess, None),
    }
}

fn syscall(names: Vec<String>, verdict: Verdict, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let (action, errno) = action(verdict);
    let mut entry = LinuxSyscall::default();
    entry.set_names(names);
    entry.set_action(action);
    entry.set_errno_ret(errno);
    entry.set_args((!args.is_empty()).then_some(args));
    entry
}

fn masked_eq(index: u8, cube: Cube) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(usize::from(index))
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .value(u64::from(cube.mask))
        .value_two(u64::from(cube.value))
        .build()
        .expect("every field is set")
}

fn oci_arch(arch: Arch) -> OciArch {
    match arch {
        Arch::X86_64 => OciArch::ScmpArchX86_64,
        Arch::Aarch64 => OciArch::ScmpArchAarch64,
    }
}

/// The filter as runtime-spec entries: the unconditional rules grouped by verdict (in number
/// order), then one entry per alternative of each conditional rule.
fn entries(filter: &Filter<'_>) -> Vec<LinuxSyscall> {
    let mut verdicts: Vec<Verdict> = Vec::new();
    for rule in filter.unconditional() {
        if !verdicts.contains(&rule.verdict) {
            verdicts.push(rule.verdict);
        }
    }
    let mut out: Vec<LinuxSyscall> = verdicts
        .iter()
        .map(|verdict| {
            let names = filter
                .unconditional()
                .filter(|r| r.verdict == *verdict)
                .map(|r| r.name.to_string())
                .collect();
            syscall(names, *verdict, Vec::new())
        })
        .collect();
    for rule in filter.conditional() {
        for conjunction in &rule.when {
            for alternative in alternatives(conjunction) {
                let args = alternative
                    .into_iter()
                    .map(|(index, cube)| masked_eq(index, cube))
                    .collect();
                out.push(syscall(vec![rule.name.to_string()], rule.verdict, args));
            }
        }
    }
    out
}

/// `linux.seccomp` for the plan on `arch`; `None` when seccomp is off.
pub fn seccomp(security: &SecurityPlan, arch: Arch) -> Option<LinuxSeccomp> {
    let filter = filter(security, arch)?;
    let (default_action, default_errno) = action(filter.otherwise);
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(default_action);
    seccomp.set_default_errno_ret(default_errno);
    seccomp.set_architectures(Some(vec![oci_arch(arch)]));
    seccomp.set_syscalls(Some(entries(&filter)));
    Some(seccomp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::values::Capability;
    use crate::plan::SeccompPlan;
    use crate::sys::ioctl_request;

    fn plan(seccomp: SeccompPlan, caps: &[caps::Capability]) -> SecurityPlan {
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

    /// What libseccomp does with the entries of one call: an entry matches when each of its
    /// comparisons holds on the full 64-bit argument; the call then gets the entry's action.
    fn oci_verdict(seccomp: &LinuxSeccomp, name: &str, args: &[u64; 6]) -> (String, Option<u32>) {
        let matched = seccomp.syscalls().as_ref().unwrap().iter().find(|entry| {
            entry.names().iter().any(|n| n == name)
                && entry.args().iter().flatten().all(|arg| {
                    assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
                    args[arg.index()] & arg.value() == arg.value_two().unwrap()
                })
        });
        match matched {
            Some(entry) => (entry.action().to_string(), entry.errno_ret()),
            None => (
                seccomp.default_action().to_string(),
                seccomp.default_errno_ret(),
            ),
        }
    }

    /// What the executor's filter decides (plan::seccomp semantics: low 32 bits).
    fn our_verdict(filter: &Filter<'_>, name: &str, args: &[u64; 6]) -> (String, Option<u32>) {
        let verdict = filter
            .rules
            .iter()
            .find(|r| r.name == name && r.matches(args))
            .map_or(filter.otherwise, |r| r.verdict);
        let (action, errno) = action(verdict);
        (action.to_string(), errno)
    }

    fn samples() -> Vec<u64> {
        let mut values: Vec<u64> = vec![
            0,
            1,
            8,
            0x20000,
            0x20008,
            0xffff_ffff,
            0x0040_0000, // ADDR_NO_RANDOMIZE
            ioctl_request(libc::TIOCSTI),
            ioctl_request(libc::TIOCLINUX),
            ioctl_request(libc::TCGETS),
            libc::AF_VSOCK as u64,
            libc::AF_INET as u64,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
            (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64,
            libc::CLONE_NEWNET as u64,
            0x80, // CLONE_NEWTIME for unshare
        ];
        // The same values with garbage in the upper half of the register.
        let high: Vec<u64> = values.iter().map(|v| v | 0xdead_beef_0000_0000).collect();
        values.extend(high);
        values.extend((0..32).map(|bit| 1u64 << bit));
        values
    }

    fn assert_same_decisions(security: &SecurityPlan, arch: Arch) {
        let filter = filter(security, arch).unwrap();
        let exported = seccomp(security, arch).unwrap();
        let mut names: Vec<&str> = filter.rules.iter().map(|r| r.name).collect();
        names.extend(["read", "getpid", "execve"]);
        for name in names {
            for index in 0..2 {
                for value in samples() {
                    let mut args = [0u64; 6];
                    args[index] = value;
                    assert_eq!(
                        oci_verdict(&exported, name, &args),
                        our_verdict(&filter, name, &args),
                        "{name} arg{index} = {value:#x} ({:?})",
                        security.seccomp
                    );
                }
            }
        }
    }

    #[test]
    fn every_profile_decides_as_the_executors_filter() {
        for arch in Arch::ALL {
            for security in [
                plan(SeccompPlan::Default, &[]),
                plan(SeccompPlan::Default, &[caps::Capability::CAP_SYS_ADMIN]),
                plan(SeccompPlan::Default, &[caps::Capability::CAP_SYS_PTRACE]),
                plan(
                    SeccompPlan::DenyList {
                        deny: vec!["getpid".into(), "ptrace".into()],
                        errno: libc::EACCES,
                    },
                    &[],
                ),
                plan(
                    SeccompPlan::AllowList {
                        allow: vec!["read".into(), "execve".into()],
                        errno: None,
                    },
                    &[],
                ),
                plan(
                    SeccompPlan::AllowList {
                        allow: vec!["read".into()],
                        errno: Some(libc::ENOSYS),
                    },
                    &[],
                ),
            ] {
                assert_same_decisions(&security, arch);
            }
        }
    }

    #[test]
    fn the_exported_calls_are_the_filters_calls() {
        let security = plan(SeccompPlan::Default, &[]);
        let filter = filter(&security, Arch::X86_64).unwrap();
        let exported = seccomp(&security, Arch::X86_64).unwrap();
        let mut ours: Vec<&str> = filter.rules.iter().map(|r| r.name).collect();
        let mut theirs: Vec<&str> = exported
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|e| e.names().iter().map(String::as_str))
            .collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        theirs.dedup();
        assert_eq!(ours, theirs);
        assert_eq!(
            exported.architectures().as_deref(),
            Some(&[OciArch::ScmpArchX86_64][..]),
            "only the native ABI: i386 and x32 calls are killed"
        );
        assert_eq!(exported.default_action(), LinuxSeccompAction::ScmpActAllow);
        // At most one comparison per argument in any entry (runc and crun OR repeated ones).
        for entry in exported.syscalls().iter().flatten() {
            let mut indexes: Vec<usize> =
                entry.args().iter().flatten().map(|a| a.index()).collect();
            let before = indexes.len();
            indexes.dedup();
            assert_eq!(before, indexes.len(), "{entry:?}");
        }
    }

    #[test]
    fn a_not_equal_check_is_32_disjoint_cubes() {
        let ne = cubes(ArgTest::Ne(8));
        assert_eq!(ne.len(), 32);
        for x in [0u32, 7, 9, 0x8000_0008, u32::MAX] {
            assert_eq!(ne.iter().filter(|c| x & c.mask == c.value).count(), 1);
        }
        assert!(ne.iter().all(|c| 8 & c.mask != c.value));
        // personality: anything but the five plain personas.
        let plain = [0u32, 8, 0x20000, 0x20008, u32::MAX];
        let tests: Vec<ArgTest> = plain.iter().map(|p| ArgTest::Ne(*p)).collect();
        let rest = all_of(&tests);
        for x in plain {
            assert!(rest.iter().all(|c| x & c.mask != c.value));
        }
        for x in [1u32, 0x0040_0000, 0x0400_0000, 0xffff_fffe, 0x20009] {
            assert!(rest.iter().any(|c| x & c.mask == c.value), "{x:#x}");
        }
    }
}
