//! `uid_map`, `gid_map`: concrete id maps for this caller, and who may write them.

use super::super::Cx;
use crate::diagnostics::Problem;
use crate::host::SubIdRange;
use crate::manifest::{IdMapSpec, IdRange, Outside, Span, Spanned};
use crate::plan::{IdMapping, MapWriter, Namespaces, ProcessPlan, UserPlan};

/// The range root's sandboxes map by default: never the host's root, and out of the way of
/// ordinary users' ids.
pub const ROOT_DEFAULT_OUTSIDE: u32 = 100_000;
pub const ROOT_DEFAULT_COUNT: u32 = 65_536;

/// The kernel accepts at most this many lines in a map (user_namespaces(7), since 4.15).
const MAX_MAP_LINES: usize = 340;

#[derive(Clone, Copy)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "/etc/subuid",
            Kind::Gid => "/etc/subgid",
        }
    }
}

/// One side's map, and whether the launcher may write it without help.
struct Side {
    map: Vec<IdMapping>,
    needs_helper: bool,
}

pub(super) fn user(
    cx: &mut Cx,
    namespaces: &Namespaces,
    process: &ProcessPlan,
) -> Option<UserPlan> {
    let loaded = cx.loaded;
    let manifest = &loaded.manifest;
    if !namespaces.user {
        for spec in [&manifest.uid_map, &manifest.gid_map].into_iter().flatten() {
            cx.report(
                Problem::error("sandbox::idmap::no-userns", "id maps need a user namespace")
                    .at(spec.span, "map given here")
                    .help("remove `user = false` from [namespaces], or remove the map"),
            );
        }
        return None;
    }
    let uid = side(cx, Kind::Uid, manifest.uid_map.as_ref(), process.uid);
    let gid = side(cx, Kind::Gid, manifest.gid_map.as_ref(), process.gid);

    check_mapped(cx, &uid.map, process.uid, "process.user", "uid", Kind::Uid);
    check_mapped(cx, &gid.map, process.gid, "process.group", "gid", Kind::Gid);
    for group in &process.groups {
        check_mapped(
            cx,
            &gid.map,
            *group,
            "process.groups",
            "supplementary gid",
            Kind::Gid,
        );
    }

    let root = cx.host.caller.is_root();
    let writer = if !root && (uid.needs_helper || gid.needs_helper) {
        match (cx.host.newuidmap(), cx.host.newgidmap()) {
            (Some(newuidmap), Some(newgidmap)) => MapWriter::Helper {
                newuidmap: newuidmap.to_path_buf(),
                newgidmap: newgidmap.to_path_buf(),
            },
            _ => {
                let span = manifest
                    .uid_map
                    .as_ref()
                    .or(manifest.gid_map.as_ref())
                    .map(|s| s.span);
                cx.report(
                    Problem::error("sandbox::idmap::no-helper", "mapping ranges of ids needs newuidmap and newgidmap")
                        .at_span(span)
                        .help("install them (Debian/Ubuntu: `apt install uidmap`), or map only your own id"),
                );
                MapWriter::Direct
            }
        }
    } else {
        MapWriter::Direct
    };
    let deny_setgroups = !root && writer == MapWriter::Direct;
    if deny_setgroups && !process.groups.is_empty() {
        cx.report(
            Problem::error(
                "sandbox::idmap::groups-need-helper",
                "supplementary groups cannot be set when the launcher writes the gid map itself",
            )
            .at_span(cx.span_of("process.groups"))
            .help("the kernel then requires setgroups to be denied; use gid_map = \"auto\" (newgidmap) or drop `groups`"),
        );
    }
    // Rootless, validation admits only the caller's own ids and grants. Root may map anything,
    // so only the default range and root's own grants count as the sandbox's (the grants are
    // read only for a range outside the default one).
    let own_ids = !root
        || (owned_by_root_sandboxes(&uid.map, || cx.host.subuid())
            && owned_by_root_sandboxes(&gid.map, || cx.host.subgid()));
    Some(UserPlan {
        uid_map: uid.map,
        gid_map: gid.map,
        writer,
        deny_setgroups,
        own_ids,
    })
}

/// As root: whether every range of `map` lies in the default range of root's sandboxes or in
/// one of root's grants.
fn owned_by_root_sandboxes(map: &[IdMapping], grants: impl Fn() -> Vec<SubIdRange>) -> bool {
    let within = |m: &IdMapping, start: u32, count: u32| {
        m.outside >= start && m.outside_end() <= start as u64 + count as u64
    };
    map.iter().all(|m| {
        within(m, ROOT_DEFAULT_OUTSIDE, ROOT_DEFAULT_COUNT)
            || grants().iter().any(|g| within(m, g.start, g.count))
    })
}

fn side(cx: &mut Cx, kind: Kind, spec: Option<&Spanned<IdMapSpec>>, inside_id: u32) -> Side {
    let caller = &cx.host.caller;
    let own = match kind {
        Kind::Uid => caller.uid,
        Kind::Gid => caller.gid,
    };
    let root = caller.is_root();
    // Read only by the branches that use a grant: the default maps need no file.
    let grants = |cx: &Cx| -> Vec<SubIdRange> {
        match kind {
            Kind::Uid => cx.host.subuid(),
            Kind::Gid => cx.host.subgid(),
        }
    };
    match spec.map(|s| (&s.value, s.span)) {
        None if root => Side {
            map: vec![IdMapping {
                inside: 0,
                outside: ROOT_DEFAULT_OUTSIDE,
                count: ROOT_DEFAULT_COUNT,
            }],
            needs_helper: false,
        },
        None => Side {
            map: vec![IdMapping {
                inside: inside_id,
                outside: own,
                count: 1,
            }],
            needs_helper: false,
        },
        Some((IdMapSpec::Auto(_), span)) => {
            // Ids end at 4294967294 (u32::MAX means "no id"). /etc/subuid is written by hand
            // and may grant past that end: such a grant is used up to the end, and one that
            // starts there has no ids to give.
            let Some(grant) = grants(cx)
                .into_iter()
                .find(|g| g.count > 0 && g.start < u32::MAX)
            else {
                let who = cx
                    .host
                    .user_name()
                    .map_or_else(|| own.to_string(), str::to_string);
                cx.report(
                    Problem::error("sandbox::idmap::no-subid-grant", format!("{} = \"auto\" needs a grant in {}", kind.key(), kind.file()))
                        .at(span, format!("{who} has no range in {}", kind.file()))
                        .help(format!("add a line `{who}:100000:65536` to {} (as root), or remove `{} = \"auto\"`", kind.file(), kind.key())),
                );
                return Side {
                    map: Vec::new(),
                    needs_helper: false,
                };
            };
            let usable = grant.count.min(u32::MAX - grant.start);
            if root {
                // Root maps ids 0.. onto the grant itself, never past its end.
                Side {
                    map: vec![IdMapping {
                        inside: 0,
                        outside: grant.start,
                        count: usable.min(ROOT_DEFAULT_COUNT),
                    }],
                    needs_helper: false,
                }
            } else {
                // 0 is the caller's own id; 1.. come from the grant.
                let count = usable.min(ROOT_DEFAULT_COUNT - 1);
                Side {
                    map: vec![
                        IdMapping {
                            inside: 0,
                            outside: own,
                            count: 1,
                        },
                        IdMapping {
                            inside: 1,
                            outside: grant.start,
                            count,
                        },
                    ],
                    needs_helper: true,
                }
            }
        }
        Some((IdMapSpec::Ranges(ranges), span)) => {
            let grants = grants(cx);
            ranges_side(cx, kind, ranges, span, own, &grants)
        }
    }
}

fn ranges_side(
    cx: &mut Cx,
    kind: Kind,
    ranges: &[Spanned<IdRange>],
    span: Span,
    own: u32,
    grants: &[SubIdRange],
) -> Side {
    let root = cx.host.caller.is_root();
    let mut map: Vec<(IdMapping, Span)> = Vec::new();
    for range in ranges {
        let outside = match range.value.outside.value {
            Outside::Id(id) => id,
            Outside::Caller => own,
        };
        let mapping = IdMapping {
            inside: range.value.inside.value,
            outside,
            count: range.value.count.value,
        };
        if mapping.count == 0 {
            cx.report(
                Problem::error(
                    "sandbox::idmap::zero-count",
                    format!("a {} range maps no ids", kind.key()),
                )
                .at(range.value.count.span, "count is 0")
                .help("use a count of at least 1"),
            );
            continue;
        }
        if mapping.inside_end() > u32::MAX as u64 || mapping.outside_end() > u32::MAX as u64 {
            cx.report(
                Problem::error(
                    "sandbox::idmap::overflow",
                    format!("a {} range runs past the largest id", kind.key()),
                )
                .at(range.value.count.span, "too many ids")
                .help("ids end at 4294967294; lower `count`"),
            );
            continue;
        }
        for (other, other_span) in &map {
            let side = if overlaps(
                mapping.inside,
                mapping.inside_end(),
                other.inside,
                other.inside_end(),
            ) {
                Some("inside")
            } else if overlaps(
                mapping.outside,
                mapping.outside_end(),
                other.outside,
                other.outside_end(),
            ) {
                Some("outside")
            } else {
                None
            };
            if let Some(side) = side {
                cx.report(
                    Problem::error(
                        "sandbox::idmap::overlap",
                        format!("{} ranges overlap {side}", kind.key()),
                    )
                    .at(range.span, format!("overlaps {side}"))
                    .also(*other_span, "with this range")
                    .help("each id may be mapped once on each side; make the ranges disjoint"),
                );
            }
        }
        map.push((mapping, range.span));
    }
    if map.len() > MAX_MAP_LINES {
        cx.report(
            Problem::error(
                "sandbox::idmap::too-many",
                format!(
                    "{} has {} ranges; the kernel takes at most {MAX_MAP_LINES}",
                    kind.key(),
                    map.len()
                ),
            )
            .at(span, "too many ranges")
            .help("merge adjacent ranges"),
        );
    }
    let spans: Vec<Span> = map.iter().map(|(_, span)| *span).collect();
    let map: Vec<IdMapping> = map.into_iter().map(|(m, _)| m).collect();
    if root {
        return Side {
            map,
            needs_helper: false,
        };
    }
    // Rootless: the kernel lets us map our own id, once; anything else goes through the setuid
    // helper, which checks the ranges against /etc/subuid and /etc/subgid.
    let only_own = map.len() == 1 && map[0].outside == own && map[0].count == 1;
    if only_own {
        return Side {
            map,
            needs_helper: false,
        };
    }
    for (mapping, range_span) in map.iter().zip(spans) {
        let covered = (mapping.outside == own && mapping.count == 1)
            || grants.iter().any(|g| {
                mapping.outside >= g.start
                    && mapping.outside_end() <= g.start as u64 + g.count as u64
            });
        if !covered {
            let granted = match grants {
                [] => format!("you have no range in {}", kind.file()),
                grants => format!(
                    "you may map your own id ({own}) and {}",
                    grants
                        .iter()
                        .map(|g| format!("{}..{}", g.start, g.start as u64 + g.count as u64 - 1))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            cx.report(
                Problem::error(
                    "sandbox::idmap::not-permitted",
                    format!("you cannot map outside ids {}..{}", mapping.outside, mapping.outside_end() - 1),
                )
                .at(range_span, "not yours to map")
                .help(format!("{granted}; ask an administrator for a grant in {}, or map `outside = \"self\"` only", kind.file())),
            );
        }
    }
    Side {
        map,
        needs_helper: true,
    }
}

fn overlaps(a_start: u32, a_end: u64, b_start: u32, b_end: u64) -> bool {
    (a_start as u64) < b_end && (b_start as u64) < a_end
}

fn check_mapped(cx: &mut Cx, map: &[IdMapping], id: u32, key: &str, what: &str, kind: Kind) {
    if map.is_empty() || map.iter().any(|m| m.map(id).is_some()) {
        return;
    }
    let span = cx.span_of(key).or_else(|| cx.span_of(kind.key()));
    cx.report(
        Problem::error(
            "sandbox::idmap::unmapped",
            format!("the {what} {id} is not mapped by {}", kind.key()),
        )
        .at_span(span)
        .help(format!(
            "add a {} range whose inside ids include {id}, or change `{key}`",
            kind.key()
        )),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Caller, FixedFacts, HostFacts};
    use crate::manifest::load_str;
    use crate::validate::{Invocation, validate};
    use proptest::prelude::*;

    /// The uid map `uid_map = "auto"` gives a caller with this one /etc/subuid grant, and the
    /// problem codes.
    fn auto_map(euid: u32, grant: SubIdRange, user: u32) -> (Vec<IdMapping>, Vec<&'static str>) {
        let caller = Caller {
            uid: euid,
            gid: euid,
            euid,
            user: Some("ann".into()),
            home: None,
            env: Default::default(),
        };
        let host = HostFacts::fixed(
            caller.clone(),
            FixedFacts {
                subuid: vec![grant],
                subgid: vec![grant],
                newuidmap: Some("/usr/bin/newuidmap".into()),
                newgidmap: Some("/usr/bin/newgidmap".into()),
                ..FixedFacts::default()
            },
        );
        let text = format!(
            "uid_map = \"auto\"\n[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\"]\nuser = {user}\n"
        );
        let loaded = load_str(
            std::path::Path::new("/project/sandbox.toml"),
            &text,
            &caller.vars(),
        );
        let validated = validate(&loaded, &host, &Invocation::default());
        let codes = validated.problems.iter().map(|p| p.code).collect();
        let map = validated
            .plan
            .map(|p| p.user.unwrap().uid_map)
            .unwrap_or_default();
        (map, codes)
    }

    #[test]
    fn an_auto_map_stops_at_the_largest_id() {
        // Found while writing the fuzz target's host facts (fuzz/): a grant running past
        // 4294967294 made the map run past it too, and checking that `process.user` is mapped
        // overflowed.
        let grant = SubIdRange {
            start: u32::MAX - 10,
            count: 65_536,
        };
        for euid in [0, 1000] {
            let (map, codes) = auto_map(euid, grant, 5);
            assert!(codes.is_empty(), "{codes:?}");
            assert!(!map.is_empty());
            assert!(
                map.iter().all(|m| m.outside_end() <= u64::from(u32::MAX)),
                "{map:?}"
            );
            let (_, codes) = auto_map(euid, grant, 1000);
            assert_eq!(codes, ["sandbox::idmap::unmapped"]);
        }
        let top = SubIdRange {
            start: u32::MAX,
            count: 1,
        };
        let (_, codes) = auto_map(1000, top, 0);
        assert_eq!(codes, ["sandbox::idmap::no-subid-grant"]);
    }

    proptest! {
        #[test]
        fn overlap_is_symmetric_and_matches_brute_force(a in 0u32..50, al in 1u32..20, b in 0u32..50, bl in 1u32..20) {
            let o = overlaps(a, a as u64 + al as u64, b, b as u64 + bl as u64);
            prop_assert_eq!(o, overlaps(b, b as u64 + bl as u64, a, a as u64 + al as u64));
            let brute = (a..a + al).any(|x| (b..b + bl).contains(&x));
            prop_assert_eq!(o, brute);
        }
    }
}
