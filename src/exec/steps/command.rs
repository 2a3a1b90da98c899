//! The exec step, in the command's own process: session and terminal, signals, umask, working
//! directory, security, descriptors, then execve.
//!
//! Any failure is written to the exec pipe as a [`StepFailure`] and the process exits; a
//! successful execve closes the pipe (O_CLOEXEC), which the supervisor reads as "running".

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{pid, security};
use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::root_file;
use crate::exit;
use crate::plan::{Plan, StepId};
use crate::sys::{KERNEL, Sys, raw};

/// The slave side of the sandbox's pty, by path inside the sandbox's devpts.
pub struct Terminal {
    pub slave: std::path::PathBuf,
}

/// Set up the command's process and exec the command; `bounding` is what its bounding set may
/// hold (see [`security::apply`]).
pub fn exec(
    plan: &Plan,
    exec_pipe: BorrowedFd<'_>,
    terminal: Option<&Terminal>,
    security: &security::Prepared,
    bounding: u64,
) -> ! {
    let (failure, code) = run(&KERNEL, plan, terminal, security, bounding);
    let bytes = serde_json::to_vec(&failure).expect("failures serialize");
    let _ = KERNEL.write_all(exec_pipe, &bytes);
    raw::exit_now(code.into())
}

/// Everything up to the execve; what failed and the exit status it makes, as it returned.
fn run(
    sys: &dyn Sys,
    plan: &Plan,
    terminal: Option<&Terminal>,
    security: &security::Prepared,
    bounding: u64,
) -> (StepFailure, u8) {
    // Only the execve itself fails with 126/127; anything before it is the launcher's failure.
    match prepare(sys, plan, terminal, security, bounding) {
        Ok((path_list, argv, envp)) => {
            let program = &plan.process.argv[0];
            let failure = search_and_exec(sys, program, &path_list, &argv, &envp);
            let code = if failure.errno() == Errno::ENOENT {
                exit::NOT_FOUND
            } else {
                exit::NOT_EXECUTABLE
            };
            (failure, code)
        }
        Err(failure) => (failure, exit::LAUNCHER_FAILED),
    }
}

type Prepared = (String, Vec<CString>, Vec<CString>);

fn prepare(
    sys: &dyn Sys,
    plan: &Plan,
    terminal: Option<&Terminal>,
    security: &security::Prepared,
    bounding: u64,
) -> Result<Prepared, StepFailure> {
    let process = &plan.process;
    sys.setsid()
        .or_fail(StepId::Exec, Op::Setsid, || "setsid".into())?;
    if let Some(terminal) = terminal {
        let path = CString::new(terminal.slave.as_os_str().as_bytes()).expect("no NUL");
        let slave = (sys.openat(None, &path, libc::O_RDWR, 0)).or_fail(
            StepId::Exec,
            Op::Terminal,
            || format!("opening {}", terminal.slave.display()),
        )?;
        sys.make_stdio(slave.as_fd())
            .or_fail(StepId::Exec, Op::Terminal, || {
                "attaching the terminal".into()
            })?;
        sys.set_controlling_terminal(slave.as_fd())
            .or_fail(StepId::Exec, Op::Terminal, || "TIOCSCTTY".into())?;
    }
    sys.restore_caller_signals(pid::caller_ignores(libc::SIGPIPE), &security.caller_mask);
    sys.umask(process.umask);
    let cwd = CString::new(process.cwd.as_os_str().as_bytes()).expect("validated: no NUL");
    sys.chdir(&cwd)
        .or_fail(StepId::Exec, Op::Chdir, || {
            format!("chdir({})", process.cwd.display())
        })
        .map_err(|f| f.with_key("process.cwd"))?;
    let cstrings = |items: &mut dyn Iterator<Item = String>| -> Result<Vec<CString>, StepFailure> {
        items
            .map(|s| {
                CString::new(s).map_err(|_| {
                    StepFailure::new(
                        StepId::Exec,
                        Op::Argument,
                        "an argument holds a NUL byte",
                        Errno::EINVAL,
                    )
                })
            })
            .collect()
    };
    let argv = cstrings(&mut process.argv.iter().cloned())?;
    let name = if process.named_env.is_empty() {
        None
    } else {
        user_name(process.uid)
    };
    let named = name.iter().flat_map(|name| {
        process
            .named_env
            .iter()
            .map(move |var| format!("{var}={name}"))
    });
    let envp = cstrings(
        &mut process
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(named),
    )?;
    let path_list = process
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();

    // Only 0, 1 and 2 reach the command; the exec pipe closes itself on success. Before the
    // security step, whose seccomp filter leaves nothing but execve to the launcher.
    sys.cloexec_from(3)
        .or_fail(StepId::Exec, Op::CloseFds, || "close_range(3..)".into())?;
    security::apply(sys, plan, security, bounding)?;
    Ok((path_list, argv, envp))
}

/// The name of `uid` in the sandbox's /etc/passwd (the process is in the sandbox's root).
fn user_name(uid: u32) -> Option<String> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    root_file::user_name(root.as_fd(), uid)
}

/// execve the program, searching the sandbox's PATH (not the launcher's) when its name has no
/// slash, as execvp does. The error is the most telling one: not found, unless some candidate
/// existed but could not be executed.
fn search_and_exec(
    sys: &dyn Sys,
    program: &str,
    path_list: &str,
    argv: &[CString],
    envp: &[CString],
) -> StepFailure {
    let fail = |errno: Errno| {
        StepFailure::new(
            StepId::Exec,
            Op::Execute,
            format!("executing {program}"),
            errno,
        )
        .with_key("process.command")
    };
    if program.contains('/') {
        let path = CString::new(program).expect("checked for NUL");
        return fail(sys.execve(&path, argv, envp));
    }
    let mut found_but_failed = None;
    for dir in path_list.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        let path = CString::new(candidate.as_os_str().as_bytes()).expect("checked for NUL");
        match sys.execve(&path, argv, envp) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            errno @ (Errno::EACCES | Errno::EPERM) => found_but_failed = Some(errno),
            errno => return fail(errno),
        }
    }
    fail(found_but_failed.unwrap_or(Errno::ENOENT))
}

/// The exec pipe's read end reports this on EOF without data: the command is running.
pub fn read_failure(pipe: &OwnedFd) -> Option<StepFailure> {
    let mut buffer = [0u8; 4096];
    let mut filled = 0;
    loop {
        match nix::unistd::read(pipe.as_fd(), &mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        if filled == buffer.len() {
            break;
        }
    }
    (filled > 0)
        .then(|| serde_json::from_slice(&buffer[..filled]).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Fake;

    /// A plan whose command is `program`, with `/a:/b:/c` as the sandbox's PATH.
    fn plan(program: &str) -> Plan {
        let mut plan = crate::plan::for_tests();
        plan.process.argv = vec![program.into(), "--flag".into()];
        plan.process.env = vec![("PATH".into(), "/a:/b:/c".into())];
        plan.process.named_env.clear();
        plan.process.cwd = "/work".into();
        plan.process.umask = 0o027;
        plan
    }

    /// The exec step of `program` through `sys`: what failed, the exit status, the paths
    /// execve was given.
    fn ran(
        sys: &Fake,
        program: &str,
        terminal: Option<&Terminal>,
    ) -> (StepFailure, u8, Vec<String>) {
        let plan = plan(program);
        let prepared = security::Prepared::for_tests(&plan);
        let (failure, code) = run(sys, &plan, terminal, &prepared, security::ANY_CAPABILITY);
        let paths = (sys.calls_of("execve").iter())
            .map(|call| call.split(',').next().unwrap().to_string())
            .collect();
        (failure, code, paths)
    }

    #[test]
    fn a_bare_name_is_searched_in_the_sandboxes_path_and_a_refusal_outweighs_absence() {
        let sys = Fake::new();
        sys.fail("execve", 1, Errno::EACCES);
        let (failure, code, paths) = ran(&sys, "make", None);
        assert_eq!(
            paths,
            ["execve(/a/make", "execve(/b/make", "execve(/c/make"]
        );
        assert_eq!((failure.op, failure.errno()), (Op::Execute, Errno::EACCES));
        assert_eq!(code, exit::NOT_EXECUTABLE);
        assert_eq!(
            sys.calls_of("execve")[0],
            "execve(/a/make, [\"make\", \"--flag\"])"
        );
    }

    #[test]
    fn a_path_is_executed_as_given_and_a_missing_command_exits_127() {
        let sys = Fake::new();
        let (failure, code, paths) = ran(&sys, "./build.sh", None);
        assert_eq!(paths, ["execve(./build.sh"]);
        assert!(failure.key.is_some_and(|key| key.is_key("process.command")));
        assert_eq!(code, exit::NOT_FOUND);
    }

    #[test]
    fn the_process_gets_its_session_terminal_signals_umask_and_folder_before_security() {
        let sys = Fake::new();
        let terminal = Terminal {
            slave: "/dev/pts/0".into(),
        };
        ran(&sys, "make", Some(&terminal));
        let calls = sys.calls();
        assert_eq!(
            calls[..8],
            [
                "setsid()",
                "openat(/dev/pts/0)",
                "make_stdio(/dev/pts/0)",
                "TIOCSCTTY(/dev/pts/0)",
                "restore_caller_signals(SIGPIPE default)",
                "umask(027)",
                "chdir(/work)",
                "cloexec_from(3)",
            ]
        );
        let at = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
        assert!(at("cloexec_from(") < at("limit_bounding_set("));
        assert!(at("limit_bounding_set(") < at("execve("));
    }

    #[test]
    fn a_missing_folder_stops_the_process_before_security_and_exec() {
        let sys = Fake::new();
        sys.fail("chdir", 0, Errno::ENOENT);
        let (failure, code, paths) = ran(&sys, "make", None);
        assert_eq!((failure.op, code), (Op::Chdir, exit::LAUNCHER_FAILED));
        assert!(failure.key.is_some_and(|key| key.is_key("process.cwd")));
        assert!(paths.is_empty());
        assert_eq!(sys.calls().last().unwrap(), "chdir(/work)");
    }
}
