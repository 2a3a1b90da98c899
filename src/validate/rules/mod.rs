//! The validation rules, one file per part of the manifest. Each function checks its part,
//! reports problems on the context, and returns its part of the plan.

mod cgroup;
mod egress;
mod general;
pub mod idmap;
mod mounts;
mod namespaces;
mod network;
mod process;
mod rootfs;
mod security;

use super::{Cx, Invocation};
use crate::manifest::Spanned;
use crate::origin::Origin;
use crate::plan::Plan;

pub(crate) fn plan(cx: &mut Cx, invocation: &Invocation) -> Plan {
    general::version(cx);
    let name = general::name(cx, invocation);
    let namespaces = namespaces::namespaces(cx);
    let mut root = rootfs::root(cx, &namespaces);
    let process = process::process(cx, invocation, root.image.as_ref());
    let user = idmap::user(cx, &namespaces, &process);
    let (net, hosts) = network::network(cx, &namespaces);
    let uts = namespaces::uts(cx, &namespaces, &name, &process);
    let inside = mounts::Inside {
        name: &name,
        namespaces: &namespaces,
        process: &process,
        user: user.as_ref(),
        hostname: uts.as_ref().map(|u| u.hostname.as_str()),
        hosts: &hosts,
    };
    let mut mounts = mounts::mounts(cx, &root, &net, &inside);
    let mut handed = std::mem::take(&mut root.handed);
    handed.append(&mut mounts.handed);
    let kept_owners = mounts::keep_owners(
        user.as_ref(),
        &mut root.plan,
        &mut mounts.mounts,
        &mut handed,
    );
    mounts.warnings.extend(kept_owners);
    mounts::idmap_supported(cx, &root.plan, &mounts.mounts);
    rootfs::mount_points(cx, &root.plan, &mounts.mounts, user.as_ref());
    let mut security = security::security(cx);
    security::mask_kernel_paths(&mut security, &mounts.mounts);
    let time = namespaces::time(cx, &namespaces, &process);
    let mut fallback = cgroup::Fallback::default();
    let cgroup = cgroup::cgroup(
        cx,
        &namespaces,
        &mounts.mounts,
        invocation.stats,
        &mut fallback,
    );
    security::add_fallback_rlimits(cx, &mut security, fallback.rlimits);
    let mut warnings = std::mem::take(&mut mounts.warnings);
    let host_overlay = root
        .host_mounts
        .iter()
        .any(|m| matches!(m.op, crate::plan::MountOp::Overlay { idmap: None, .. }));
    if host_overlay {
        warnings.push(
            "overlay: the host's system dirs are not id-mapped, so files the host's root owns are \
             nobody's inside and cannot be copied up: writes below their top folders fail with \
             EACCES (as root, `idmap = true` in [rootfs] id-maps them, and gives the sandbox \
             every file root can read there: `sandbox up` asks first)"
                .into(),
        );
    }
    warnings.extend(security::warnings(cx, &security));
    warnings.extend(fallback.warnings);

    let loaded = cx.loaded;
    let mut plan = Plan {
        name_given: invocation.name.is_some() || loaded.manifest.name.is_some(),
        name,
        manifest: loaded.path.clone(),
        sources: loaded
            .sources
            .files()
            .iter()
            .map(|f| f.path.clone())
            .collect(),
        namespaces,
        caller: crate::plan::Ids {
            uid: cx.host.caller.uid,
            gid: cx.host.caller.gid,
        },
        user,
        root: root.plan,
        mounts: mounts.mounts,
        handed_over: Vec::new(),
        uts,
        time,
        net,
        cgroup,
        process,
        security,
        provenance: loaded
            .provenance
            .iter()
            .filter_map(|(key, span)| Some((key.clone(), loaded.sources.locate(*span)?)))
            .collect(),
        warnings,
    };
    // Only what is still mounted: a later file's mount replaces an earlier one on its target.
    let mounted: std::collections::HashSet<(Origin, &std::path::Path)> = plan
        .host_paths()
        .into_iter()
        .map(|h| (h.key, h.path))
        .collect();
    handed.retain(|h| mounted.contains(&(h.key.clone(), h.path.as_path())));
    plan.handed_over = handed;
    plan
}

/// The value of an optional setting.
fn get<T: Clone>(setting: &Option<Spanned<T>>) -> Option<T> {
    setting.as_ref().map(|s| s.value.clone())
}

/// An optional section, or its default.
fn section<T: Default + Clone>(section: &Option<Spanned<T>>) -> T {
    section
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_default()
}
