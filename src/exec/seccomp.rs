//! seccomp filters compiled to BPF, once per launch, by the supervisor before the clone; the
//! command's process only loads them (steps/security.rs), as its very last step before execve.
//!
//! The BPF comes from seccompiler (rust-vmm, the compiler behind Firecracker's jailer): pure
//! Rust, no C libseccomp to link or ship, and a compile is a walk over a sorted map (tens of
//! microseconds here; `up -v` prints it). Its loader is not used: it always sets
//! no_new_privs, which `no_new_privileges = false` must be able to leave unset.
//!
//! seccompiler checks the architecture (a call through the i386 `int 0x80` ABI carries
//! AUDIT_ARCH_I386 and is killed) but not x32: x32 calls come with AUDIT_ARCH_X86_64 and the
//! syscall number ORed with 0x40000000, so a deny list keyed on 64-bit numbers would miss
//! them. Each x86_64 program therefore starts with a guard that kills those too.

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::exec::error::StepFailure;
use crate::manifest::values::Arch;
use crate::plan::seccomp::{ArgTest, Filter, Verdict, filters};
use crate::plan::{SecurityPlan, StepId};

/// One compiled BPF program.
#[derive(Debug, Clone)]
pub struct Program(Vec<libc::sock_filter>);

impl Program {
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.0
    }
}

/// The programs for the plan on the running architecture; empty when seccomp is off.
pub fn compile(security: &SecurityPlan) -> Result<Vec<Program>, StepFailure> {
    compile_for(security, Arch::host())
}

fn compile_for(security: &SecurityPlan, arch: Arch) -> Result<Vec<Program>, StepFailure> {
    filters(security, arch)
        .iter()
        .map(|filter| compile_filter(filter, arch))
        .collect::<Result<_, _>>()
        .map_err(|error| {
            StepFailure::new(
                StepId::Security,
                format!("compiling the seccomp filter: {error}"),
                nix::errno::Errno::EINVAL,
            )
            .with_key("security.seccomp")
        })
}

/// The x32 ABI's marker bit in the syscall number (__X32_SYSCALL_BIT).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn compile_filter(filter: &Filter<'_>, arch: Arch) -> Result<Program, seccompiler::Error> {
    let action = |verdict: Verdict| match verdict {
        Verdict::Allow => SeccompAction::Allow,
        Verdict::Errno(errno) => SeccompAction::Errno(errno as u32),
        Verdict::KillProcess => SeccompAction::KillProcess,
    };
    let condition = |index: u8, test: ArgTest| {
        let (op, value) = match test {
            ArgTest::Eq(value) => (SeccompCmpOp::Eq, value),
            ArgTest::Ne(value) => (SeccompCmpOp::Ne, value),
            ArgTest::BitsSet(mask) => (SeccompCmpOp::MaskedEq(mask.into()), mask),
        };
        SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value.into())
    };
    let mut rules = std::collections::BTreeMap::new();
    for rule in &filter.rules {
        let chain = rule
            .when
            .iter()
            .map(|all| {
                let conditions = all
                    .iter()
                    .map(|check| condition(check.index, check.test))
                    .collect::<Result<Vec<_>, _>>()?;
                SeccompRule::new(conditions)
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(rule.nr, chain);
    }
    let target = match arch {
        Arch::X86_64 => seccompiler::TargetArch::x86_64,
        Arch::Aarch64 => seccompiler::TargetArch::aarch64,
    };
    let compiled: seccompiler::BpfProgram = SeccompFilter::new(
        rules,
        action(filter.otherwise),
        action(filter.matched),
        target,
    )?
    .try_into()?;
    let guard = match arch {
        Arch::X86_64 => vec![
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
            jump(
                libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
                X32_SYSCALL_BIT,
                0,
                1,
            ),
            stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        ],
        Arch::Aarch64 => Vec::new(),
    };
    Ok(Program(
        guard
            .into_iter()
            .chain(
                compiled
                    .into_iter()
                    .map(|i| jump(i.code.into(), i.k, i.jt, i.jf)),
            )
            .collect(),
    ))
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

#[cfg(test)]
mod tests {
    //! The compiled programs run through a small classic-BPF interpreter (the subset seccomp
    //! filters use), so what the kernel will decide is checked without loading anything.

    use super::*;
    use crate::manifest::values::Capability;
    use crate::plan::SeccompPlan;

    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

    /// struct seccomp_data, as the kernel lays it out.
    fn data(nr: u32, arch: u32, args: [u64; 6]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(nr.to_ne_bytes());
        bytes.extend(arch.to_ne_bytes());
        bytes.extend(0u64.to_ne_bytes());
        for arg in args {
            bytes.extend(arg.to_ne_bytes());
        }
        bytes
    }

    fn run(program: &Program, data: &[u8]) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        let code = program.instructions();
        loop {
            let i = &code[pc];
            let c = u32::from(i.code);
            pc += 1;
            match c {
                _ if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let at = i.k as usize;
                    a = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                }
                _ if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                _ if c == libc::BPF_RET | libc::BPF_K => return i.k,
                _ if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                _ if c & 0x07 == libc::BPF_JMP => {
                    let taken = match c & 0xf0 {
                        op if op == libc::BPF_JEQ => a == i.k,
                        op if op == libc::BPF_JGT => a > i.k,
                        op if op == libc::BPF_JGE => a >= i.k,
                        op if op == libc::BPF_JSET => a & i.k != 0,
                        op => panic!("jump op {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                other => panic!("instruction {other:#x} not interpreted"),
            }
        }
    }

    /// The kernel's verdict over stacked filters: the most severe action wins (kernel
    /// seccomp_run_filters compares the actions as signed numbers).
    fn verdict(programs: &[Program], data: &[u8]) -> u32 {
        programs
            .iter()
            .map(|p| run(p, data))
            .min_by_key(|ret| (ret & libc::SECCOMP_RET_ACTION_FULL) as i32)
            .unwrap_or(libc::SECCOMP_RET_ALLOW)
    }

    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    fn plan(seccomp: SeccompPlan, caps: &[caps::Capability]) -> SecurityPlan {
        SecurityPlan {
            capabilities: caps.iter().map(|c| Capability(*c)).collect(),
            no_new_privileges: true,
            seccomp,
            landlock: None,
            rlimits: Vec::new(),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
        }
    }

    fn x86(programs: &[Program], nr: i64, args: [u64; 6]) -> u32 {
        verdict(programs, &data(nr as u32, AUDIT_ARCH_X86_64, args))
    }

    #[test]
    fn the_default_profile_decides_as_intended() {
        let programs = compile_for(&plan(SeccompPlan::Default, &[]), Arch::X86_64).unwrap();
        let eperm = errno(libc::EPERM);
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_bpf,
            libc::SYS_keyctl,
            libc::SYS_io_uring_setup,
            libc::SYS_open_by_handle_at,
            libc::SYS_userfaultfd,
            libc::SYS_perf_event_open,
        ] {
            assert_eq!(x86(&programs, nr, [0; 6]), eperm, "syscall {nr}");
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_exit_group,
        ] {
            assert_eq!(x86(&programs, nr, [0; 6]), ALLOW, "syscall {nr}");
        }
        let user = libc::CLONE_NEWUSER as u64;
        assert_eq!(
            x86(&programs, libc::SYS_unshare, [user, 0, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(
            x86(
                &programs,
                libc::SYS_unshare,
                [libc::CLONE_FS as u64, 0, 0, 0, 0, 0]
            ),
            ALLOW
        );
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(
            x86(&programs, libc::SYS_clone, [thread, 0, 0, 0, 0, 0]),
            ALLOW
        );
        let net = (libc::CLONE_NEWNET as u64) | libc::SIGCHLD as u64;
        assert_eq!(x86(&programs, libc::SYS_clone, [net, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(
            x86(&programs, libc::SYS_clone3, [0; 6]),
            errno(libc::ENOSYS)
        );
        let tiocsti = libc::TIOCSTI;
        assert_eq!(
            x86(&programs, libc::SYS_ioctl, [0, tiocsti, 0, 0, 0, 0]),
            eperm
        );
        // ioctl's request is an unsigned int: the upper half of the register does not matter.
        let high = tiocsti | 0xdead_0000_0000;
        assert_eq!(
            x86(&programs, libc::SYS_ioctl, [0, high, 0, 0, 0, 0]),
            eperm
        );
        let tcgets = libc::TCGETS;
        assert_eq!(
            x86(&programs, libc::SYS_ioctl, [0, tcgets, 0, 0, 0, 0]),
            ALLOW
        );
        for persona in [0u64, 8, 0xffff_ffff] {
            assert_eq!(
                x86(&programs, libc::SYS_personality, [persona, 0, 0, 0, 0, 0]),
                ALLOW
            );
        }
        let no_aslr = libc::ADDR_NO_RANDOMIZE as u64;
        assert_eq!(
            x86(&programs, libc::SYS_personality, [no_aslr, 0, 0, 0, 0, 0]),
            eperm
        );
        let vsock = libc::AF_VSOCK as u64;
        assert_eq!(
            x86(&programs, libc::SYS_socket, [vsock, 1, 0, 0, 0, 0]),
            eperm
        );
        let inet = libc::AF_INET as u64;
        assert_eq!(
            x86(&programs, libc::SYS_socket, [inet, 1, 0, 0, 0, 0]),
            ALLOW
        );
    }

    #[test]
    fn other_abis_are_killed() {
        let programs = compile_for(&plan(SeccompPlan::Default, &[]), Arch::X86_64).unwrap();
        // i386 mount is 21, which is access(2) on x86_64: allowed there, killed here.
        assert_eq!(verdict(&programs, &data(21, AUDIT_ARCH_I386, [0; 6])), KILL);
        let x32_getpid = X32_SYSCALL_BIT | libc::SYS_getpid as u32;
        assert_eq!(
            verdict(&programs, &data(x32_getpid, AUDIT_ARCH_X86_64, [0; 6])),
            KILL
        );
        let arm = compile_for(&plan(SeccompPlan::Default, &[]), Arch::Aarch64).unwrap();
        assert_eq!(verdict(&arm, &data(21, AUDIT_ARCH_X86_64, [0; 6])), KILL);
        assert_eq!(verdict(&arm, &data(63, AUDIT_ARCH_AARCH64, [0; 6])), ALLOW);
    }

    #[test]
    fn kept_capabilities_lift_their_calls() {
        let programs = compile_for(
            &plan(SeccompPlan::Default, &[caps::Capability::CAP_SYS_PTRACE]),
            Arch::X86_64,
        )
        .unwrap();
        assert_eq!(x86(&programs, libc::SYS_ptrace, [0; 6]), ALLOW);
        assert_eq!(x86(&programs, libc::SYS_mount, [0; 6]), errno(libc::EPERM));
    }

    #[test]
    fn custom_profiles() {
        let deny = SeccompPlan::DenyList {
            deny: vec!["getpid".into()],
            errno: libc::EACCES,
        };
        let programs = compile_for(&plan(deny, &[]), Arch::X86_64).unwrap();
        assert_eq!(
            x86(&programs, libc::SYS_getpid, [0; 6]),
            errno(libc::EACCES)
        );
        assert_eq!(x86(&programs, libc::SYS_ptrace, [0; 6]), ALLOW);

        let allow = |errno| SeccompPlan::AllowList {
            allow: vec!["read".into(), "execve".into()],
            errno,
        };
        let programs = compile_for(&plan(allow(None), &[]), Arch::X86_64).unwrap();
        assert_eq!(x86(&programs, libc::SYS_read, [0; 6]), ALLOW);
        assert_eq!(x86(&programs, libc::SYS_getpid, [0; 6]), KILL);
        let programs = compile_for(&plan(allow(Some(libc::ENOSYS)), &[]), Arch::X86_64).unwrap();
        assert_eq!(
            x86(&programs, libc::SYS_getpid, [0; 6]),
            errno(libc::ENOSYS)
        );
        assert!(
            compile_for(&plan(SeccompPlan::Off, &[]), Arch::X86_64)
                .unwrap()
                .is_empty()
        );
    }
}
