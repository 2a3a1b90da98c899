//! `[process]`.

use std::path::PathBuf;

use super::super::{Cx, Invocation};
use super::{get, section};
use crate::diagnostics::Problem;
use crate::escape::escaped;
use crate::manifest::{Process, Tty};
use crate::plan::ProcessPlan;
use crate::rootfs::ImageConfig;

/// PATH when the manifest sets none: the usual system directories, as Debian's login sets them.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Names `inherit_env` copies by default: a terminal type is harmless and makes tools usable.
const DEFAULT_INHERIT: &[&str] = &["TERM"];

/// Passed through to a deterministic jail: it exists to pin time stamps (reproducible-builds.org).
const DETERMINISTIC_INHERIT: &str = "SOURCE_DATE_EPOCH";

/// Set to the command's user's name in the root's /etc/passwd, unless the manifest sets them.
const NAMED_ENV: &[&str] = &["USER", "LOGNAME"];

/// What a deterministic jail pins when the manifest does not set it.
const DETERMINISTIC_ENV: &[(&str, &str)] = &[("LANG", "C.UTF-8"), ("TZ", "UTC")];

/// `image`: an OCI image's config, whose Entrypoint + Cmd, WorkingDir, Env and User are the
/// defaults the manifest overrides.
pub(super) fn process(
    cx: &mut Cx,
    invocation: &Invocation,
    image: Option<&ImageConfig>,
) -> ProcessPlan {
    let loaded = cx.loaded;
    let process = section(&loaded.manifest.process);
    let deterministic = get(&process.deterministic).unwrap_or(false);

    let argv = argv(cx, invocation, &process, image);
    let cwd = cwd(cx, &process, image);
    let env = env(cx, &process, image, deterministic);
    let (image_uid, image_gid) = match image.and_then(|i| i.user.as_deref()) {
        Some(user) if !user.is_empty() && process.user.is_none() => image_user(cx, user),
        _ => (None, None),
    };
    let named_env = NAMED_ENV
        .iter()
        .filter(|name| !env.iter().any(|(set, _)| set == *name))
        .map(|name| name.to_string())
        .collect();
    ProcessPlan {
        argv,
        cwd,
        uid: get(&process.user).or(image_uid).unwrap_or(0),
        gid: get(&process.group).or(image_gid).unwrap_or(0),
        groups: process
            .groups
            .as_ref()
            .map(|g| g.value.iter().map(|id| id.value).collect())
            .unwrap_or_default(),
        env,
        named_env,
        tty: get(&process.tty).unwrap_or(Tty::Auto),
        timeout_ms: get(&process.timeout).map(|d| d.0),
        umask: get(&process.umask).map_or(0o022, |m| m.0),
        deterministic,
    }
}

/// The command and its arguments: after `--`, from the manifest, or the image's Entrypoint
/// and Cmd; each a string a program can take.
fn argv(
    cx: &mut Cx,
    invocation: &Invocation,
    process: &Process,
    image: Option<&ImageConfig>,
) -> Vec<String> {
    let image_argv: Vec<String> = image
        .map(|i| i.entrypoint.iter().chain(&i.cmd).cloned().collect())
        .unwrap_or_default();
    let argv = match (&invocation.command, &process.command) {
        (Some(command), _) => command.clone(),
        (None, Some(command)) => {
            if command.value.is_empty() {
                cx.report(
                    Problem::error("sandbox::process::empty-command", "`command` is empty")
                        .at(command.span, "no program")
                        .help("name the program and its arguments, e.g. command = [\"/bin/sh\"]"),
                );
            }
            command.value.iter().map(|arg| arg.value.clone()).collect()
        }
        (None, None) if !image_argv.is_empty() => image_argv,
        (None, None) => {
            let problem = Problem::error("sandbox::process::no-command", "no command to run")
                .at_span(cx.span_of("process"))
                .help("set `command = [\"/bin/sh\"]` in [process], or give the command after `--`");
            cx.report_absent("process.command", problem);
            Vec::new()
        }
    };
    // Where each argument was written; the command after `--` is nowhere in the manifest.
    let written = |index: usize| match (&invocation.command, &process.command) {
        (None, Some(command)) => command.value.get(index).map(|arg| arg.span),
        _ => None,
    };
    let whose = if invocation.command.is_some() {
        "the command after `--`"
    } else {
        "`command`"
    };
    if argv.first().is_some_and(String::is_empty) {
        cx.report(
            Problem::error(
                "sandbox::process::empty-command",
                format!("{whose} names no program: its first word is empty"),
            )
            .at_span(written(0))
            .label("empty program name")
            .help("name the program first, e.g. command = [\"/bin/sh\", \"-c\", \"...\"]"),
        );
    }
    for (index, arg) in argv.iter().enumerate() {
        if arg.contains('\0') {
            cx.report(
                Problem::error(
                    "sandbox::process::nul",
                    format!("an argument of {whose} contains a NUL byte"),
                )
                .at_span(written(index))
                .label("NUL byte in this argument")
                .help("a program's arguments end at a NUL byte: remove it"),
            );
        }
    }

    argv
}

/// The folder the command starts in: the manifest's, the image's WorkingDir, or /.
fn cwd(cx: &mut Cx, process: &Process, image: Option<&ImageConfig>) -> PathBuf {
    let image_cwd = image
        .and_then(|i| i.working_dir.as_deref())
        .filter(|dir| !dir.is_empty());
    match (&process.cwd, image_cwd) {
        (Some(cwd), _) => cx
            .target_path(cwd, "`cwd`")
            .unwrap_or_else(|| PathBuf::from("/")),
        (None, Some(dir)) => crate::validate::normalize_target(dir).unwrap_or_else(|_| {
            cx.report(
                Problem::error(
                    "sandbox::rootfs::image",
                    format!("the image's WorkingDir \"{dir}\" is not an absolute path"),
                )
                .at_span(cx.span_of("rootfs.oci"))
                .help("set `cwd` in [process] to override it"),
            );
            PathBuf::from("/")
        }),
        (None, None) => PathBuf::from("/"),
    }
}

/// The command's environment: PATH, the image's, what a deterministic jail pins, what is
/// inherited from the caller, then the manifest's own; a name or value no kernel takes is
/// an error at its key.
fn env(
    cx: &mut Cx,
    process: &Process,
    image: Option<&ImageConfig>,
    deterministic: bool,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: String| match env.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value,
        None => env.push((name.to_string(), value)),
    };
    set("PATH", DEFAULT_PATH.to_string());
    for entry in image.iter().flat_map(|i| &i.env) {
        if let Some((name, value)) = entry.split_once('=')
            && !name.is_empty()
            && !entry.contains('\0')
        {
            set(name, value.to_string());
        }
    }
    if deterministic {
        for (name, value) in DETERMINISTIC_ENV {
            set(name, value.to_string());
        }
    }
    let inherit: Vec<String> = match &process.inherit_env {
        Some(names) => names.value.iter().map(|n| n.value.clone()).collect(),
        None if deterministic => vec![DETERMINISTIC_INHERIT.to_string()],
        None => DEFAULT_INHERIT.iter().map(|n| n.to_string()).collect(),
    };
    for name in &inherit {
        if let Some(value) = cx.host.caller.env.get(name) {
            set(name, value.clone());
        }
    }
    let mut bad_names = Vec::new();
    let mut bad_values = Vec::new();
    if let Some(vars) = &process.env {
        for (name, value) in &vars.value {
            if name.value.is_empty() || name.value.contains(['=', '\0']) {
                bad_names.push(name.clone());
            } else if value.value.contains('\0') {
                bad_values.push((name.clone(), value.span));
            } else {
                set(&name.value, value.value.clone());
            }
        }
    }
    for name in process.inherit_env.iter().flat_map(|n| n.value.iter()) {
        if name.value.is_empty() || name.value.contains(['=', '\0']) {
            bad_names.push(name.clone());
        }
    }
    for name in bad_names {
        cx.report(
            Problem::error(
                "sandbox::process::env-name",
                format!(
                    "invalid environment variable name \"{}\"",
                    escaped(&name.value)
                ),
            )
            .at(name.span, "not a variable name")
            .help("a name cannot be empty or contain `=` or a NUL byte"),
        );
    }
    for (name, span) in bad_values {
        cx.report(
            Problem::error(
                "sandbox::process::nul",
                format!(
                    "the value of `{}` contains a NUL byte",
                    escaped(&name.value)
                ),
            )
            .at(span, "NUL byte in this value")
            .help("an environment variable's value ends at a NUL byte: remove it"),
        );
    }
    env
}

/// The image config's User: `uid` or `uid:gid`. A name would have to be looked up in the
/// image's /etc/passwd, which is not unpacked before the plan is made.
fn image_user(cx: &mut Cx, user: &str) -> (Option<u32>, Option<u32>) {
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    match (uid.parse::<u32>(), gid.map(str::parse::<u32>)) {
        (Ok(uid), None) => (Some(uid), None),
        (Ok(uid), Some(Ok(gid))) => (Some(uid), Some(gid)),
        _ => {
            cx.report(
                Problem::error(
                    "sandbox::rootfs::image-user",
                    format!("the image runs as \"{user}\", a name this launcher cannot resolve before the image is unpacked"),
                )
                .at_span(cx.span_of("rootfs.oci"))
                .help("set `user` (and `group`) in [process] to the numeric ids, as the image's /etc/passwd gives them"),
            );
            (None, None)
        }
    }
}
