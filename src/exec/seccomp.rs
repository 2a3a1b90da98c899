//! seccomp filters compiled to BPF, once per launch, by the supervisor while the sandbox sets
//! itself up (onto the page they share, see steps/security.rs `Prepared`); the command's process
//! only loads them, as its very last step before execve.
//!
//! The kernel checks, converts and JIT-compiles a program when it is loaded, each pass linear in
//! its length, so the programs are kept short. Each has three parts:
//! 1. the architecture check: a call through another ABI is killed. A call through the i386
//!    `int 0x80` ABI carries AUDIT_ARCH_I386; an x32 call carries AUDIT_ARCH_X86_64 with the
//!    number ORed with 0x40000000, so on x86_64 such numbers are killed too (a deny list keyed
//!    on 64-bit numbers would miss them).
//! 2. a binary search on the system call number over runs of numbers with the same outcome: a
//!    filter maps the numbers to outcomes piecewise (the default profile's denied calls are
//!    often neighbours, an allow list's too, and the x32 numbers are one run), so one
//!    comparison per boundary between runs, not two per rule. When it loads a filter, the
//!    kernel runs it for every number to cache the ones it always allows, so the search is
//!    balanced by numbers rather than by runs: long runs of allowed numbers take fewer steps.
//! 3. the argument checks of the few calls with conditions (clone, unshare, ioctl,
//!    personality, socket), on the low 32 bits of an argument: one jump per comparison, and
//!    alternatives that each test one bit of the same argument ("any namespace flag") are one
//!    JSET of all their bits.
//!
//! A program is built from its end to its start: every jump goes forward, so its targets are
//! placed before it and their distances known. Paths that end in the same verdict share one
//! return while it is in a conditional jump's reach (255 instructions); one out of reach gets a
//! return, or an unconditional jump (which reaches anywhere), of its own.
//!
//! seccompiler, used before for part 3, compared all 64 bits of each argument and wrapped the
//! rules in an architecture check and a linear dispatch of its own: the default profile was
//! 375 instructions on x86_64, 91 now (69 of them the search, 17 the argument checks).

use crate::exec::error::StepFailure;
use crate::manifest::values::Arch;
use crate::plan::seccomp::{ArgCheck, ArgTest, Filter, Rule, Verdict, filter, init_filter};
use crate::plan::{SecurityPlan, StepId};

/// One compiled BPF program.
#[derive(Debug, Clone)]
pub struct Program(Vec<libc::sock_filter>);

impl Program {
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.0
    }

    /// The instructions as words of 64 bits, for a page shared with another process.
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|i| {
            u64::from(i.code) | u64::from(i.jt) << 16 | u64::from(i.jf) << 24 | u64::from(i.k) << 32
        })
    }

    /// The program [`Program::words`] gave.
    pub fn from_words(words: impl Iterator<Item = u64>) -> Program {
        Program(
            words
                .map(|w| libc::sock_filter {
                    code: w as u16,
                    jt: (w >> 16) as u8,
                    jf: (w >> 24) as u8,
                    k: (w >> 32) as u32,
                })
                .collect(),
        )
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
/// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;
/// Where the low 32 bits of a 64-bit argument are.
const LOW_HALF: u32 = if cfg!(target_endian = "little") { 0 } else { 4 };
/// The largest program the kernel takes (BPF_MAXINSNS).
pub const MAX_INSTRUCTIONS: usize = 4096;
/// How far a conditional jump placed next may be from its targets: a jump skips at most 255
/// instructions, and one less leaves room for a stub before the other target.
const REACH: usize = u8::MAX as usize - 1;

const LOAD: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const RETURN: u32 = libc::BPF_RET | libc::BPF_K;
const JUMP: u32 = libc::BPF_JMP | libc::BPF_JA;
const IF_EQUAL: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const IF_AT_LEAST: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const IF_ANY_BIT: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;

fn ret(verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Allow => libc::SECCOMP_RET_ALLOW,
        Verdict::Errno(errno) => libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA),
        Verdict::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the program has {0} instructions, more than the kernel's {MAX_INSTRUCTIONS}")]
struct TooLong(usize);

fn compile_filter(filter: &Filter<'_>, arch: Arch) -> Result<Program, TooLong> {
    let mut program = Backwards::default();
    // The argument checks go last; the search jumps to them.
    let outcomes: Vec<(u32, Target)> = filter
        .rules
        .iter()
        .map(|rule| {
            let outcome = if rule.when.is_empty() {
                Target::Return(rule.verdict)
            } else {
                program.arguments(rule, filter.otherwise)
            };
            (rule.nr as u32, outcome)
        })
        .collect();
    let search = program.search(&runs(filter, arch, &outcomes), u32::MAX);
    program.goto(search);
    let number = program.push(stmt(LOAD, DATA_NR));
    program.branch(
        IF_EQUAL,
        audit_arch(arch),
        Target::At(number),
        Target::Return(Verdict::KillProcess),
    );
    program.push(stmt(LOAD, DATA_ARCH));
    let mut instructions = program.reversed;
    instructions.reverse();
    if instructions.len() > MAX_INSTRUCTIONS {
        return Err(TooLong(instructions.len()));
    }
    Ok(Program(instructions))
}

/// The AUDIT_ARCH_* a native call of `arch` carries.
fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => AUDIT_ARCH_X86_64,
        Arch::Aarch64 => AUDIT_ARCH_AARCH64,
    }
}

/// The maximal runs of numbers with the same outcome, as (first number, outcome) in number
/// order from 0: `outcomes` for the rules' numbers, the filter's default elsewhere, and on
/// x86_64 every x32 number (and above) killed.
fn runs(filter: &Filter<'_>, arch: Arch, outcomes: &[(u32, Target)]) -> Vec<(u32, Target)> {
    let otherwise = Target::Return(filter.otherwise);
    let mut runs = vec![(0, otherwise)];
    let mut start = |first: u32, outcome: Target| {
        // A run that would start where the last one does is empty.
        if runs.last().is_some_and(|(last, _)| *last == first) {
            runs.pop();
        }
        if runs.last().is_none_or(|(_, last)| *last != outcome) {
            runs.push((first, outcome));
        }
    };
    for &(nr, outcome) in outcomes {
        start(nr, outcome);
        start(nr + 1, otherwise);
    }
    if arch == Arch::X86_64 {
        start(X32_SYSCALL_BIT, Target::Return(Verdict::KillProcess));
    }
    runs
}

/// When it loads a program, the kernel runs it for every number of its table (they end below
/// 512 on both architectures) to cache the ones it always allows.
const CACHED: u32 = 512;

/// An instruction's place, counted from the end of the program: it stays the same while the
/// program grows at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// Where a path goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A return of this verdict, wherever one is.
    Return(Verdict),
    At(Label),
}

/// A program built from its last instruction to its first.
#[derive(Default)]
struct Backwards {
    /// The instructions, the last one first.
    reversed: Vec<libc::sock_filter>,
    /// The nearest return of each verdict placed so far.
    returns: Vec<(Verdict, Label)>,
}

impl Backwards {
    fn push(&mut self, instruction: libc::sock_filter) -> Label {
        self.reversed.push(instruction);
        Label(self.reversed.len() - 1)
    }

    /// How many instructions a jump placed next skips to land on `label`.
    fn distance(&self, label: Label) -> usize {
        self.reversed.len() - 1 - label.0
    }

    fn place_return(&mut self, verdict: Verdict) -> Label {
        let label = self.push(stmt(RETURN, ret(verdict)));
        self.returns.retain(|(v, _)| *v != verdict);
        self.returns.push((verdict, label));
        label
    }

    /// `target` as a place within a conditional jump's reach, with a return or a jump to it
    /// placed next when it is not.
    fn near(&mut self, target: Target) -> Label {
        match target {
            Target::Return(verdict) => {
                let nearest = self.returns.iter().find(|(v, _)| *v == verdict);
                match nearest {
                    Some(&(_, label)) if self.distance(label) <= REACH => label,
                    _ => self.place_return(verdict),
                }
            }
            Target::At(label) if self.distance(label) <= REACH => label,
            Target::At(label) => self.push(stmt(JUMP, self.distance(label) as u32)),
        }
    }

    /// Place what makes `target` the next instruction, if it is not already.
    fn goto(&mut self, target: Target) {
        match target {
            Target::At(label) if self.distance(label) == 0 => {}
            Target::At(label) => {
                self.push(stmt(JUMP, self.distance(label) as u32));
            }
            Target::Return(verdict) => {
                self.place_return(verdict);
            }
        }
    }

    /// A conditional jump to `taken` or `not_taken`.
    fn branch(&mut self, code: u32, k: u32, taken: Target, not_taken: Target) -> Label {
        let taken = self.near(taken);
        let not_taken = self.near(not_taken);
        let offset = |label| u8::try_from(self.distance(label)).expect("a target in reach");
        self.push(jump(code, k, offset(taken), offset(not_taken)))
    }

    /// The binary search over `runs` (A holding the number), which end before `end`: where it
    /// starts. Each comparison halves the numbers below [`CACHED`] left (or else the runs):
    /// the long runs of allowed numbers take fewer steps to reach.
    fn search(&mut self, runs: &[(u32, Target)], end: u32) -> Target {
        if let [(_, outcome)] = runs {
            return *outcome;
        }
        let cached_below = |at: usize| runs.get(at).map_or(end, |&(first, _)| first).min(CACHED);
        let cached = cached_below(runs.len()) - cached_below(0);
        let split = (1..runs.len())
            .min_by_key(|&at| {
                let low = cached_below(at) - cached_below(0);
                ((2 * low).abs_diff(cached), (2 * at).abs_diff(runs.len()))
            })
            .expect("two runs or more");
        let (low, high) = runs.split_at(split);
        let high_search = self.search(high, end);
        let low_search = self.search(low, high[0].0);
        Target::At(self.branch(IF_AT_LEAST, high[0].0, high_search, low_search))
    }

    /// The checks of a rule with argument conditions: `rule.verdict` when one of its
    /// alternatives holds, else `otherwise`. Where they start.
    fn arguments(&mut self, rule: &Rule<'_>, otherwise: Verdict) -> Target {
        let alternatives = alternatives(&rule.when);
        // An alternative whose predecessor only looked at one argument finds it loaded.
        let loaded = |at: usize| {
            let first = alternatives[at].first().map(|test| test.index);
            at > 0 && alternatives[at - 1].iter().all(|t| Some(t.index) == first)
        };
        let mut failed = Target::Return(otherwise);
        for (at, tests) in alternatives.iter().enumerate().rev() {
            let mut passed = Target::Return(rule.verdict);
            for (i, test) in tests.iter().enumerate().rev() {
                let (taken, not_taken) = if test.holds_if_taken {
                    (passed, failed)
                } else {
                    (failed, passed)
                };
                passed = Target::At(self.branch(test.jump, test.k, taken, not_taken));
                let same_argument = match i {
                    0 => loaded(at),
                    _ => tests[i - 1].index == test.index,
                };
                if !same_argument {
                    let offset = DATA_ARGS + 8 * u32::from(test.index) + LOW_HALF;
                    passed = Target::At(self.push(stmt(LOAD, offset)));
                }
            }
            failed = passed;
        }
        failed
    }
}

/// One conditional jump on the low 32 bits of an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Test {
    index: u8,
    jump: u32,
    k: u32,
    /// Whether the condition holds when the jump is taken.
    holds_if_taken: bool,
}

/// A rule's alternatives (each a conjunction of checks) as tests: `BitsSet` is a JSET per bit,
/// and consecutive alternatives that each test one bit of the same argument are one JSET.
fn alternatives(when: &[Vec<ArgCheck>]) -> Vec<Vec<Test>> {
    let tests = |check: &ArgCheck| -> Vec<Test> {
        let test = |jump, k, holds_if_taken| Test {
            index: check.index,
            jump,
            k,
            holds_if_taken,
        };
        match check.test {
            ArgTest::Eq(value) => vec![test(IF_EQUAL, value, true)],
            ArgTest::Ne(value) => vec![test(IF_EQUAL, value, false)],
            ArgTest::BitsSet(mask) => (0..32)
                .map(|bit| 1u32 << bit)
                .filter(|bit| mask & bit != 0)
                .map(|bit| test(IF_ANY_BIT, bit, true))
                .collect(),
        }
    };
    let mut merged: Vec<Vec<Test>> = Vec::new();
    for all in when {
        let next: Vec<Test> = all.iter().flat_map(tests).collect();
        if let ([any], Some([last])) = (next.as_slice(), merged.last_mut().map(Vec::as_mut_slice))
            && any.jump == IF_ANY_BIT
            && last.jump == IF_ANY_BIT
            && any.index == last.index
        {
            last.k |= any.k;
            continue;
        }
        merged.push(next);
    }
    merged
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
    fn a_program_passes_through_words_unchanged() {
        let program = &compiled(&plan(SeccompPlan::Default, &[]), Arch::X86_64)[0];
        let back = Program::from_words(program.words());
        let bytes = |p: &Program| -> Vec<(u16, u8, u8, u32)> {
            (p.instructions().iter())
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect()
        };
        assert_eq!(bytes(&back), bytes(program));
        assert!(
            program
                .instructions()
                .iter()
                .any(|i| i.jt > 0 && i.k > 0xffff)
        );
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

    /// What `filter` decides, read off its rules, without the compiler.
    fn decided(filter: &Filter<'_>, arch: Arch, nr: u32, audit: u32, args: &[u64; 6]) -> u32 {
        if audit != audit_arch(arch) || (arch == Arch::X86_64 && nr >= X32_SYSCALL_BIT) {
            return KILL;
        }
        let verdict = filter
            .rules
            .iter()
            .find(|rule| rule.nr == i64::from(nr))
            .filter(|rule| rule.matches(args))
            .map_or(filter.otherwise, |rule| rule.verdict);
        ret(verdict)
    }

    /// Arguments that probe a rule's checks: for each argument it looks at, 0, all ones, every
    /// bit of its masks alone and two at a time, the masks whole, the compared values and
    /// their neighbours (all combined across arguments), with the upper halves and the other
    /// arguments clear or set.
    fn probes(rule: &Rule<'_>) -> Vec<[u64; 6]> {
        let mut per_argument: Vec<(usize, Vec<u32>)> = Vec::new();
        for check in rule.when.iter().flatten() {
            let index = usize::from(check.index);
            let at = match per_argument.iter().position(|(i, _)| *i == index) {
                Some(at) => at,
                None => {
                    per_argument.push((index, vec![0, u32::MAX]));
                    per_argument.len() - 1
                }
            };
            let values = &mut per_argument[at].1;
            match check.test {
                ArgTest::Eq(v) | ArgTest::Ne(v) => {
                    values.extend([v, v ^ 1, v.wrapping_add(1), v.wrapping_sub(1)])
                }
                ArgTest::BitsSet(mask) => {
                    let bits: Vec<u32> =
                        (0..32).map(|b| 1 << b).filter(|b| mask & b != 0).collect();
                    values.extend([mask, mask & mask.wrapping_sub(1), mask | 0x11]);
                    for (i, a) in bits.iter().enumerate() {
                        values.extend(bits[i..].iter().map(|b| a | b));
                    }
                }
            }
        }
        let mut probes = Vec::new();
        for (others, upper) in [(0, 0), (u64::MAX, 0), (0, 0xdead_beef_u64 << 32)] {
            let mut combined = vec![[others; 6]];
            for (index, values) in &per_argument {
                combined = combined
                    .iter()
                    .flat_map(|args| {
                        values.iter().map(move |value| {
                            let mut args = *args;
                            args[*index] = upper | u64::from(*value);
                            args
                        })
                    })
                    .collect();
            }
            probes.extend(combined);
        }
        probes
    }

    /// Filters the default profile never makes: alternatives over several arguments, masks of
    /// several bits, a mask of none, and enough runs that jumps fall out of a conditional
    /// jump's reach.
    fn unusual_filters() -> Vec<Filter<'static>> {
        let check = |index: u8, test: ArgTest| ArgCheck { index, test };
        let rule = |nr: i64, when: Vec<Vec<ArgCheck>>, verdict: Verdict| Rule {
            name: "synthetic",
            nr,
            when,
            verdict,
        };
        let conditional = vec![
            rule(
                3,
                vec![
                    vec![check(0, ArgTest::BitsSet(0b1010)), check(2, ArgTest::Eq(5))],
                    vec![check(1, ArgTest::Ne(7))],
                ],
                Verdict::Allow,
            ),
            rule(
                4,
                vec![
                    vec![check(3, ArgTest::BitsSet(1))],
                    vec![check(3, ArgTest::BitsSet(4))],
                    vec![check(3, ArgTest::Eq(9))],
                    vec![check(3, ArgTest::BitsSet(0x8000_0000))],
                    vec![check(3, ArgTest::BitsSet(0x30))],
                ],
                Verdict::KillProcess,
            ),
            rule(5, vec![vec![check(0, ArgTest::BitsSet(0))]], Verdict::Allow),
            rule(
                6,
                vec![
                    vec![check(0, ArgTest::Ne(1)), check(0, ArgTest::Ne(2))],
                    vec![check(1, ArgTest::Eq(3)), check(1, ArgTest::BitsSet(0x30))],
                    vec![check(0, ArgTest::Eq(2))],
                ],
                Verdict::Errno(libc::EPERM),
            ),
        ];
        let sparse: Vec<Rule<'static>> = (8..1400)
            .step_by(2)
            .map(|nr| {
                let verdict = [Verdict::Allow, Verdict::Errno(libc::EPERM)][nr as usize % 4 / 2];
                rule(nr, Vec::new(), verdict)
            })
            .chain(
                conditional
                    .iter()
                    .map(|r| rule(r.nr + 1400, r.when.clone(), r.verdict)),
            )
            .collect();
        vec![
            Filter {
                otherwise: Verdict::Errno(libc::EACCES),
                rules: conditional.clone(),
            },
            Filter {
                otherwise: Verdict::KillProcess,
                rules: conditional.into_iter().chain(sparse).collect(),
            },
        ]
    }

    #[test]
    fn the_programs_decide_as_their_filters_say() {
        let every_other = |arch: Arch| -> Vec<String> {
            arch.syscall_names()
                .into_iter()
                .step_by(2)
                .map(String::from)
                .collect()
        };
        let numbers: Vec<u32> = (0..1500)
            .chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT | 39, 0x7fff_ffff, u32::MAX])
            .collect();
        for arch in Arch::ALL {
            let everything_but = SeccompPlan::AllowList {
                allow: arch
                    .syscall_names()
                    .into_iter()
                    .filter(|n| !["getpid", "ptrace"].contains(n))
                    .map(String::from)
                    .collect(),
                errno: None,
            };
            let plans = [
                plan(SeccompPlan::Default, &[]),
                plan(SeccompPlan::Default, &[caps::Capability::CAP_SYS_ADMIN]),
                plan(SeccompPlan::Default, &[caps::Capability::CAP_SYS_PTRACE]),
                plan(
                    SeccompPlan::DenyList {
                        deny: vec!["getpid".into(), "ptrace".into(), "openat".into()],
                        errno: libc::EACCES,
                    },
                    &[],
                ),
                plan(everything_but, &[]),
                plan(
                    SeccompPlan::AllowList {
                        allow: every_other(arch),
                        errno: Some(libc::ENOSYS),
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
            let filters = plans
                .iter()
                .filter_map(|security| filter(security, arch))
                .chain([init_filter(arch)])
                .chain(unusual_filters());
            for filter in filters {
                let program = compile_filter(&filter, arch).unwrap();
                let check = |nr: u32, audit: u32, args: [u64; 6]| {
                    assert_eq!(
                        run(&program, &data(nr, audit, args)),
                        decided(&filter, arch, nr, audit, &args),
                        "{arch:?}: nr {nr:#x}, arch {audit:#x}, {args:x?}"
                    );
                };
                for audit in [AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386] {
                    for &nr in &numbers {
                        for args in [[0; 6], [u64::MAX; 6]] {
                            check(nr, audit, args);
                        }
                    }
                }
                for rule in filter.conditional() {
                    for args in probes(rule) {
                        check(rule.nr as u32, audit_arch(arch), args);
                    }
                }
            }
        }
    }

    #[test]
    fn the_default_profile_is_a_short_program() {
        for arch in Arch::ALL {
            let program = compiled(&plan(SeccompPlan::Default, &[]), arch);
            let length = program[0].instructions().len();
            assert!(length < 100, "{arch:?}: {length} instructions");
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
            let audit = audit_arch(arch);
            let program = compile_filter(&init_filter(arch), arch).unwrap();
            let decide = |name: &str| {
                let nr = arch.syscall_number(name).expect(name);
                run(&program, &data(nr as u32, audit, [0; 6]))
            };
            for call in crate::plan::seccomp::INIT_CALLS {
                assert_eq!(decide(call.name), ALLOW, "{} on {arch:?}", call.name);
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
