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
use nix::sys::stat::{Mode, umask};

use super::{pid, security};
use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::root_file;
use crate::exit;
use crate::plan::{Plan, StepId};
use crate::sys::raw as sys;

/// The slave side of the sandbox's pty, by path inside the sandbox's devpts.
pub struct Terminal {
    pub slave: std::path::PathBuf,
}

pub fn exec(
    plan: &Plan,
    exec_pipe: BorrowedFd<'_>,
    terminal: Option<&Terminal>,
    security: &security::Prepared,
) -> ! {
    // Only the execve itself fails with 126/127; anything before it is the launcher's failure.
    let (failure, code) = match prepare(plan, terminal, security) {
        Ok((path_list, argv, envp)) => {
            let failure = search_and_exec(&plan.process.argv[0], &path_list, &argv, &envp);
            let code = if failure.errno() == Errno::ENOENT {
                exit::NOT_FOUND
            } else {
                exit::NOT_EXECUTABLE
            };
            (failure, code)
        }
        Err(failure) => (failure, exit::LAUNCHER_FAILED),
    };
    let bytes = serde_json::to_vec(&failure).expect("failures serialize");
    let _ = nix::unistd::write(exec_pipe, &bytes);
    sys::exit_now(code.into())
}

type Prepared = (String, Vec<CString>, Vec<CString>);

fn prepare(
    plan: &Plan,
    terminal: Option<&Terminal>,
    security: &security::Prepared,
) -> Result<Prepared, StepFailure> {
    let process = &plan.process;
    nix::unistd::setsid().or_fail(StepId::Exec, Op::Setsid, || "setsid".into())?;
    if let Some(terminal) = terminal {
        let slave = nix::fcntl::open(
            &terminal.slave,
            OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .or_fail(StepId::Exec, Op::Terminal, || {
            format!("opening {}", terminal.slave.display())
        })?;
        nix::unistd::dup2_stdin(&slave)
            .and_then(|()| nix::unistd::dup2_stdout(&slave))
            .and_then(|()| nix::unistd::dup2_stderr(&slave))
            .or_fail(StepId::Exec, Op::Terminal, || {
                "attaching the terminal".into()
            })?;
        sys::ioctl_set_ctty(slave.as_fd())
            .or_fail(StepId::Exec, Op::Terminal, || "TIOCSCTTY".into())?;
    }
    sys::restore_caller_signals(
        pid::caller_ignores(libc::SIGPIPE),
        security.caller_mask.as_ref(),
    );
    umask(Mode::from_bits_truncate(process.umask));
    nix::unistd::chdir(&process.cwd)
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
    sys::cloexec_from(3).or_fail(StepId::Exec, Op::CloseFds, || "close_range(3..)".into())?;
    security::apply(plan, security)?;
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
        return fail(sys::execve(&path, argv, envp));
    }
    let mut found_but_failed = None;
    for dir in path_list.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        let path = CString::new(candidate.as_os_str().as_bytes()).expect("checked for NUL");
        match sys::execve(&path, argv, envp) {
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
