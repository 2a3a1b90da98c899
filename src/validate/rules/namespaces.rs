//! `[namespaces]`, `[uts]`, `[time]`.

use super::super::Cx;
use super::{get, section};
use crate::diagnostics::Problem;
use crate::plan::{Namespaces, ProcessPlan, TimePlan, UtsPlan};

/// The domain name of a deterministic jail: Linux's own "unset" value, whatever the host's is.
pub const DETERMINISTIC_DOMAINNAME: &str = "(none)";

pub(super) fn namespaces(cx: &mut Cx) -> Namespaces {
    let loaded = cx.loaded;
    let ns = section(&loaded.manifest.namespaces);
    let deterministic = get(&section(&loaded.manifest.process).deterministic).unwrap_or(false);
    if deterministic && let Some(time) = ns.time.as_ref().filter(|t| !t.value) {
        cx.report(
            Problem::error(
                "sandbox::process::deterministic-needs-time",
                "a deterministic jail needs its own time namespace",
            )
            .at(time.span, "shared with the host")
            .help("remove `time = false`: the time namespace is what starts the jail's clocks at zero"),
        );
    }
    let namespaces = Namespaces {
        user: get(&ns.user).unwrap_or(true),
        mount: get(&ns.mount).unwrap_or(true),
        pid: get(&ns.pid).unwrap_or(true),
        net: get(&ns.net).unwrap_or(true),
        uts: get(&ns.uts).unwrap_or(true),
        ipc: get(&ns.ipc).unwrap_or(true),
        cgroup: get(&ns.cgroup).unwrap_or(true),
        time: get(&ns.time).unwrap_or(deterministic),
    };
    if let Some(mount) = ns.mount.as_ref().filter(|m| !m.value) {
        cx.report(
            Problem::error("sandbox::namespaces::mount-required", "the sandbox needs its own mount namespace")
                .at(mount.span, "cannot be shared")
                .help("remove `mount = false`: the sandbox's root, /proc and mounts are built in a mount namespace of its own"),
        );
    }
    if !namespaces.user && !cx.host.caller.is_root() {
        let others = namespaces.names();
        if let Some(user) = ns.user.as_ref()
            && !others.is_empty()
        {
            cx.report(
                Problem::error(
                    "sandbox::namespaces::needs-userns",
                    format!("without root, new {} namespaces need a user namespace", others.join(", ")),
                )
                .at(user.span, "shared with the host")
                .help("remove `user = false` (a rootless sandbox is built inside its own user namespace)"),
            );
        }
    }
    namespaces
}

/// A hostname or domain name the kernel and resolvers accept: 1-64 bytes of letters, digits,
/// `-` and `.`.
fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
}

pub(super) fn uts(
    cx: &mut Cx,
    namespaces: &Namespaces,
    name: &str,
    process: &ProcessPlan,
) -> Option<UtsPlan> {
    let pinned_domain = process
        .deterministic
        .then(|| DETERMINISTIC_DOMAINNAME.to_string());
    let loaded = cx.loaded;
    let Some(uts) = &loaded.manifest.uts else {
        return namespaces.uts.then(|| UtsPlan {
            hostname: hostname_from_name(name),
            domainname: pinned_domain,
        });
    };
    if !namespaces.uts {
        cx.report(
            Problem::error(
                "sandbox::uts::needs-namespace",
                "[uts] needs the sandbox's own UTS namespace",
            )
            .at(uts.span, "hostname set here")
            .help("remove `uts = false` from [namespaces], or remove [uts]"),
        );
        return None;
    }
    for value in [&uts.value.hostname, &uts.value.domainname]
        .into_iter()
        .flatten()
    {
        if !is_valid_hostname(&value.value) {
            cx.report(
                Problem::error(
                    "sandbox::uts::invalid-name",
                    format!("invalid host or domain name \"{}\"", value.value),
                )
                .at(value.span, "not a valid name")
                .help("use 1 to 64 characters: letters, digits, `-` and `.`"),
            );
        }
    }
    Some(UtsPlan {
        hostname: get(&uts.value.hostname).unwrap_or_else(|| hostname_from_name(name)),
        domainname: get(&uts.value.domainname).or(pinned_domain),
    })
}

fn hostname_from_name(name: &str) -> String {
    name.replace('_', "-")
}

pub(super) fn time(
    cx: &mut Cx,
    namespaces: &Namespaces,
    process: &ProcessPlan,
) -> Option<TimePlan> {
    let loaded = cx.loaded;
    let time = &loaded.manifest.time;
    if let Some(time) = time
        && !namespaces.time
    {
        cx.report(
            Problem::error(
                "sandbox::time::needs-namespace",
                "clock offsets need a time namespace",
            )
            .at(time.span, "offsets set here")
            .help("add `time = true` to [namespaces]"),
        );
        return None;
    }
    namespaces.time.then(|| {
        let time = section(time);
        TimePlan {
            monotonic_ns: get(&time.monotonic_offset).map_or(0, |o| o.0),
            boottime_ns: get(&time.boottime_offset).map_or(0, |o| o.0),
            zero_at_start: process.deterministic,
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostnames() {
        assert!(super::is_valid_hostname("api-dev"));
        assert!(super::is_valid_hostname("a.b"));
        assert!(!super::is_valid_hostname("a b"));
        assert!(!super::is_valid_hostname("-a"));
        assert!(!super::is_valid_hostname(&"a".repeat(65)));
    }
}
