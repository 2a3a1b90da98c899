//! seccomp filters compiled to BPF, once per launch, by the supervisor before the clone; the
//! command's process only loads them (steps/security.rs), as its very last step before execve.
//!
//! Each program has three parts:
//! 1. the architecture check: a call through another ABI is killed. A call through the i386
//!    `int 0x80` ABI carries AUDIT_ARCH_I386; an x32 call carries AUDIT_ARCH_X86_64 with the
//!    number ORed with 0x40000000, so on x86_64 such numbers are killed too (a deny list keyed
//!    on 64-bit numbers would miss them).
//! 2. a binary search on the system call number: a number without a rule gets the default
//!    verdict, one with an unconditional rule its verdict, in about log2(rules) steps. When it
//!    loads a filter, the kernel runs it for every system call number to cache the ones it
//!    always allows; with a linear chain of comparisons that cost 2.5 us per rule (0.25 ms
//!    for the default profile's 70), now it is ~30 us.
//! 3. for the few calls with argument conditions (clone, unshare, ioctl, personality,
//!    socket), seccompiler's program. seccompiler (rust-vmm, the compiler behind
//!    Firecracker's jailer) is pure Rust, with no C libseccomp to link or ship, and handles the
//!    argument comparisons; its linear dispatch is only entered for those numbers. Its loader
//!    is not used: it always sets no_new_privs, which `no_new_privileges = false` must be able
//!    to leave unset.

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::exec::error::StepFailure;
use crate::manifest::values::Arch;
use crate::plan::seccomp::{ArgTest, Filter, Rule, Verdict, filter, init_filter};
use crate::plan::{SecurityPlan, StepId};

/// One compiled BPF program.
#[derive(Debug, Clone)]
pub struct Program(Vec<libc::sock_filter>);

impl Program {
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.0
    }
}

/// The program for the plan on the running architecture; none when seccomp is off.
pub fn compile(security: &SecurityPlan) -> Result<Option<Program>, StepFailure> {
    compile_for(security, Arch::host())
}

fn compile_for(security: &SecurityPlan, arch: Arch) -> Result<Option<Program>, StepFailure> {
    filter(security, arch)
        .map(|filter| compile_filter(&filter, arch))
        .transpose()
        .map_err(|error| {
            StepFailure::new(
                StepId::Security,
                crate::exec::error::Op::Seccomp,
                format!("compiling the seccomp filter: {error}"),
                nix::errno::Errno::EINVAL,
            )
            .with_key("security.seccomp")
        })
}

/// Init's own filter on the running architecture (see [`init_filter`]).
pub fn compile_init() -> Result<Program, StepFailure> {
    let arch = Arch::host();
    compile_filter(&init_filter(arch), arch).map_err(|error| {
        StepFailure::new(
            StepId::Pid,
            crate::exec::error::Op::Seccomp,
            format!("compiling init's seccomp filter: {error}"),
            nix::errno::Errno::EINVAL,
        )
    })
}

/// The x32 ABI's marker bit in the syscall number (__X32_SYSCALL_BIT).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// AUDIT_ARCH_* of linux/audit.h: the ELF machine, 64-bit, little-endian.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
/// struct seccomp_data: int nr; __u32 arch; ...
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// The largest program the kernel takes (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;

const LOAD: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const RETURN: u32 = libc::BPF_RET | libc::BPF_K;
const JUMP: u32 = libc::BPF_JMP | libc::BPF_JA;
const IF_EQUAL: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const IF_AT_LEAST: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;

fn ret(verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Allow => libc::SECCOMP_RET_ALLOW,
        Verdict::Errno(errno) => libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA),
        Verdict::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
    }
}

#[derive(Debug, thiserror::Error)]
enum CompileError {
    #[error(transparent)]
    Seccompiler(#[from] seccompiler::Error),
    #[error("the program has {0} instructions, more than the kernel's {MAX_INSTRUCTIONS}")]
    TooLong(usize),
}

fn compile_filter(filter: &Filter<'_>, arch: Arch) -> Result<Program, CompileError> {
    // One seccompiler program per verdict of the rules with argument conditions (the default
    // profile has one: EPERM), laid out after the dispatch.
    let mut verdicts: Vec<Verdict> = Vec::new();
    for rule in filter.conditional() {
        if !verdicts.contains(&rule.verdict) {
            verdicts.push(rule.verdict);
        }
    }
    let checks = verdicts
        .iter()
        .map(|verdict| {
            let rules: Vec<&Rule<'_>> = filter
                .conditional()
                .filter(|r| r.verdict == *verdict)
                .collect();
            seccompiler_program(&rules, *verdict, filter.otherwise, arch)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut program = dispatch(filter, arch, &verdicts, &checks);
    program.extend(checks.into_iter().flatten());
    if program.len() > MAX_INSTRUCTIONS {
        return Err(CompileError::TooLong(program.len()));
    }
    Ok(Program(program))
}

/// A step of the dispatch: an instruction, or a jump to the argument checks of the rules with
/// this verdict.
enum Op {
    Insn(libc::sock_filter),
    ToArguments(Verdict),
}

/// Parts 1 and 2: the architecture check and the binary search. Numbers with argument rules
/// jump past the end, to `checks[i]` for a rule with `verdicts[i]`.
fn dispatch(
    filter: &Filter<'_>,
    arch: Arch,
    verdicts: &[Verdict],
    checks: &[Vec<libc::sock_filter>],
) -> Vec<libc::sock_filter> {
    let audit_arch = match arch {
        Arch::X86_64 => AUDIT_ARCH_X86_64,
        Arch::Aarch64 => AUDIT_ARCH_AARCH64,
    };
    let kill = stmt(RETURN, libc::SECCOMP_RET_KILL_PROCESS);
    let mut ops = vec![
        Op::Insn(stmt(LOAD, DATA_ARCH)),
        Op::Insn(jump(IF_EQUAL, audit_arch, 1, 0)),
        Op::Insn(kill),
        Op::Insn(stmt(LOAD, DATA_NR)),
    ];
    if arch == Arch::X86_64 {
        ops.push(Op::Insn(jump(IF_AT_LEAST, X32_SYSCALL_BIT, 0, 1)));
        ops.push(Op::Insn(kill));
    }
    ops.extend(search(&filter.rules, ret(filter.otherwise)));
    let end = ops.len();
    let start = |verdict: Verdict| {
        let group = verdicts
            .iter()
            .position(|v| *v == verdict)
            .expect("a group");
        end + checks[..group].iter().map(Vec::len).sum::<usize>()
    };
    ops.into_iter()
        .enumerate()
        .map(|(at, op)| match op {
            Op::Insn(insn) => insn,
            Op::ToArguments(verdict) => stmt(JUMP, (start(verdict) - at - 1) as u32),
        })
        .collect()
}

/// A binary search over rules sorted by number (with A holding the number); every path ends
/// in a return or a jump to argument checks, so subtrees can be laid out one after the other.
fn search(rules: &[Rule<'_>], otherwise: u32) -> Vec<Op> {
    const LEAF: usize = 3;
    if rules.len() <= LEAF {
        let mut ops = Vec::with_capacity(rules.len() * 2 + 1);
        for rule in rules {
            ops.push(Op::Insn(jump(IF_EQUAL, rule.nr as u32, 0, 1)));
            ops.push(if rule.when.is_empty() {
                Op::Insn(stmt(RETURN, ret(rule.verdict)))
            } else {
                Op::ToArguments(rule.verdict)
            });
        }
        ops.push(Op::Insn(stmt(RETURN, otherwise)));
        return ops;
    }
    let (low, high) = rules.split_at(rules.len() / 2);
    let low = search(low, otherwise);
    let high_ops = search(high, otherwise);
    // A >= the first high number: jump over the low half (a JA has a 32-bit offset).
    let mut ops = vec![
        Op::Insn(jump(IF_AT_LEAST, high[0].nr as u32, 0, 1)),
        Op::Insn(stmt(JUMP, low.len() as u32)),
    ];
    ops.extend(low);
    ops.extend(high_ops);
    ops
}

/// Part 3: seccompiler's program for `rules`, which compares arguments: `matched` when they
/// hold, else `otherwise`.
fn seccompiler_program(
    rules: &[&Rule<'_>],
    matched: Verdict,
    otherwise: Verdict,
    arch: Arch,
) -> Result<Vec<libc::sock_filter>, seccompiler::Error> {
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
    let mut chains = std::collections::BTreeMap::new();
    for rule in rules {
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
        chains.insert(rule.nr, chain);
    }
    let target = match arch {
        Arch::X86_64 => seccompiler::TargetArch::x86_64,
        Arch::Aarch64 => seccompiler::TargetArch::aarch64,
    };
    let compiled: seccompiler::BpfProgram =
        SeccompFilter::new(chains, action(otherwise), action(matched), target)?.try_into()?;
    Ok(compiled
        .into_iter()
        .map(|i| jump(i.code.into(), i.k, i.jt, i.jf))
        .collect())
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
    use crate::sys::ioctl_request;

    const AUDIT_ARCH_I386: u32 = 0x4000_0003;

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
            raise_hard_limits: Vec::new(),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
        }
    }

    /// The program as a list, so a stack of programs (the reference below) reads the same.
    fn compiled(security: &SecurityPlan, arch: Arch) -> Vec<Program> {
        compile_for(security, arch).unwrap().into_iter().collect()
    }

    fn x86(programs: &[Program], nr: i64, args: [u64; 6]) -> u32 {
        verdict(programs, &data(nr as u32, AUDIT_ARCH_X86_64, args))
    }

    #[test]
    fn the_default_profile_decides_as_intended() {
        let programs = compiled(&plan(SeccompPlan::Default, &[]), Arch::X86_64);
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
        let tiocsti = ioctl_request(libc::TIOCSTI);
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
        let tcgets = ioctl_request(libc::TCGETS);
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

    /// The plain compilation: seccompiler's linear chain for every rule, behind the x32 guard,
    /// one stacked program per verdict.
    fn reference(filter: &Filter<'_>, arch: Arch) -> Vec<Program> {
        let mut verdicts: Vec<Verdict> = Vec::new();
        for rule in &filter.rules {
            if !verdicts.contains(&rule.verdict) {
                verdicts.push(rule.verdict);
            }
        }
        if verdicts.is_empty() {
            // No rule: any verdict but the default compiles to "always the default".
            verdicts.push(match filter.otherwise {
                Verdict::Allow => Verdict::KillProcess,
                _ => Verdict::Allow,
            });
        }
        verdicts
            .into_iter()
            .map(|verdict| {
                let rules: Vec<&Rule<'_>> = filter
                    .rules
                    .iter()
                    .filter(|r| r.verdict == verdict)
                    .collect();
                let mut program = match arch {
                    Arch::X86_64 => vec![
                        stmt(LOAD, DATA_NR),
                        jump(IF_AT_LEAST, X32_SYSCALL_BIT, 0, 1),
                        stmt(RETURN, KILL),
                    ],
                    Arch::Aarch64 => Vec::new(),
                };
                program
                    .extend(seccompiler_program(&rules, verdict, filter.otherwise, arch).unwrap());
                Program(program)
            })
            .collect()
    }

    #[test]
    fn the_binary_search_decides_as_a_plain_chain_would() {
        let everything_but = |arch: Arch, but: &[&str]| -> Vec<String> {
            arch.syscall_names()
                .into_iter()
                .filter(|n| !but.contains(n))
                .map(String::from)
                .collect()
        };
        let args: Vec<[u64; 6]> = [
            0,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
            (libc::CLONE_VM | libc::CLONE_THREAD) as u64,
            libc::ADDR_NO_RANDOMIZE as u64,
            8,
            0x20000,
            libc::AF_VSOCK as u64,
        ]
        .into_iter()
        .flat_map(|a| {
            [
                [a, 0, 0, 0, 0, 0],
                [0, a | ioctl_request(libc::TIOCSTI), 0, 0, 0, 0],
            ]
        })
        .chain([
            [0, ioctl_request(libc::TIOCSTI), 0, 0, 0, 0],
            [0, ioctl_request(libc::TIOCLINUX), 0, 0, 0, 0],
        ])
        .collect();
        let numbers: Vec<u32> = (0..1100)
            .chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT | 39, u32::MAX])
            .collect();
        for arch in Arch::ALL {
            let plans = [
                plan(SeccompPlan::Default, &[]),
                plan(SeccompPlan::Default, &[caps::Capability::CAP_SYS_ADMIN]),
                plan(
                    SeccompPlan::DenyList {
                        deny: vec!["getpid".into(), "ptrace".into(), "openat".into()],
                        errno: libc::EACCES,
                    },
                    &[],
                ),
                plan(
                    SeccompPlan::AllowList {
                        allow: everything_but(arch, &["getpid", "ptrace"]),
                        errno: None,
                    },
                    &[],
                ),
                plan(
                    SeccompPlan::AllowList {
                        allow: Vec::new(),
                        errno: Some(libc::ENOSYS),
                    },
                    &[],
                ),
            ];
            for security in &plans {
                if let Some(filter) = filter(security, arch) {
                    let fast = [compile_filter(&filter, arch).unwrap()];
                    let slow = reference(&filter, arch);
                    for audit in [AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386] {
                        for &nr in &numbers {
                            for a in &args {
                                let d = data(nr, audit, *a);
                                assert_eq!(
                                    verdict(&fast, &d),
                                    verdict(&slow, &d),
                                    "{arch:?} {:?} nr {nr:#x} arch {audit:#x} args {a:?}",
                                    security.seccomp
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_largest_allow_list_fits_the_kernels_limit() {
        for arch in Arch::ALL {
            let all = SeccompPlan::AllowList {
                allow: arch.syscall_names().into_iter().map(String::from).collect(),
                errno: None,
            };
            let program = compiled(&plan(all, &[]), arch);
            assert!(program[0].instructions().len() < MAX_INSTRUCTIONS);
        }
    }

    #[test]
    fn other_abis_are_killed() {
        let programs = compiled(&plan(SeccompPlan::Default, &[]), Arch::X86_64);
        // i386 mount is 21, which is access(2) on x86_64: allowed there, killed here.
        assert_eq!(verdict(&programs, &data(21, AUDIT_ARCH_I386, [0; 6])), KILL);
        let x32_getpid = X32_SYSCALL_BIT | libc::SYS_getpid as u32;
        assert_eq!(
            verdict(&programs, &data(x32_getpid, AUDIT_ARCH_X86_64, [0; 6])),
            KILL
        );
        let arm = compiled(&plan(SeccompPlan::Default, &[]), Arch::Aarch64);
        assert_eq!(verdict(&arm, &data(21, AUDIT_ARCH_X86_64, [0; 6])), KILL);
        assert_eq!(verdict(&arm, &data(63, AUDIT_ARCH_AARCH64, [0; 6])), ALLOW);
    }

    #[test]
    fn kept_capabilities_lift_their_calls() {
        let programs = compiled(
            &plan(SeccompPlan::Default, &[caps::Capability::CAP_SYS_PTRACE]),
            Arch::X86_64,
        );
        assert_eq!(x86(&programs, libc::SYS_ptrace, [0; 6]), ALLOW);
        assert_eq!(x86(&programs, libc::SYS_mount, [0; 6]), errno(libc::EPERM));
    }

    #[test]
    fn custom_profiles() {
        let deny = SeccompPlan::DenyList {
            deny: vec!["getpid".into()],
            errno: libc::EACCES,
        };
        let programs = compiled(&plan(deny, &[]), Arch::X86_64);
        assert_eq!(
            x86(&programs, libc::SYS_getpid, [0; 6]),
            errno(libc::EACCES)
        );
        assert_eq!(x86(&programs, libc::SYS_ptrace, [0; 6]), ALLOW);

        let allow = |errno| SeccompPlan::AllowList {
            allow: vec!["read".into(), "execve".into()],
            errno,
        };
        let programs = compiled(&plan(allow(None), &[]), Arch::X86_64);
        assert_eq!(x86(&programs, libc::SYS_read, [0; 6]), ALLOW);
        assert_eq!(x86(&programs, libc::SYS_getpid, [0; 6]), KILL);
        let programs = compiled(&plan(allow(Some(libc::ENOSYS)), &[]), Arch::X86_64);
        assert_eq!(
            x86(&programs, libc::SYS_getpid, [0; 6]),
            errno(libc::ENOSYS)
        );
        assert!(compiled(&plan(SeccompPlan::Off, &[]), Arch::X86_64).is_empty());
    }

    #[test]
    fn init_may_only_read_write_wait_signal_and_exit() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let audit = match arch {
                Arch::X86_64 => AUDIT_ARCH_X86_64,
                Arch::Aarch64 => AUDIT_ARCH_AARCH64,
            };
            let program = compile_filter(&init_filter(arch), arch).unwrap();
            let decide = |name: &str| {
                let nr = arch.syscall_number(name).expect(name);
                run(&program, &data(nr as u32, audit, [0; 6]))
            };
            for name in crate::plan::seccomp::INIT_CALLS {
                assert_eq!(decide(name), ALLOW, "{name} on {arch:?}");
            }
            for name in [
                "execve",
                "ptrace",
                "openat",
                "mmap",
                "mprotect",
                "setns",
                "unshare",
                "clone",
                "capset",
                "prctl",
                "process_vm_writev",
                "pidfd_getfd",
            ] {
                assert_eq!(decide(name), KILL, "{name} on {arch:?}");
            }
        }
        let program = compile_init().unwrap();
        assert_eq!(run(&program, &data(3, AUDIT_ARCH_I386, [0; 6])), KILL);
    }
}
