//! `uid_map`, `gid_map`: concrete id maps for this caller, and who may write them.

use super::super::Cx;
use crate::diagnostics::Problem;
use crate::host::{SubIdGrant, SubIdRange};
use crate::manifest::{IdMapSpec, IdRange, Outside, Span, Spanned};
use crate::plan::{
    ForeignIds, HostIds, ID_BLOCK, IdMapping, IdPool, MapWriter, Namespaces, POOL_OWNER,
    ProcessPlan, UserPlan,
};

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
    let writer = writer(cx, !root && (uid.needs_helper || gid.needs_helper));
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
    let leased = (
        root && manifest.uid_map.is_none(),
        root && manifest.gid_map.is_none(),
    );
    // A leased side is mapped onto a block no one else has.
    let foreign = ForeignIds {
        uids: if leased.0 {
            Vec::new()
        } else {
            foreign(cx, Kind::Uid, &uid.map)
        },
        gids: if leased.1 {
            Vec::new()
        } else {
            foreign(cx, Kind::Gid, &gid.map)
        },
    };
    let mut user = UserPlan {
        uid_map: uid.map,
        gid_map: gid.map,
        writer,
        deny_setgroups,
        foreign,
        pool: None,
    };
    if leased.0 || leased.1 {
        let pool = id_pool(
            cx.host.subuid_grants(),
            cx.host.subgid_grants(),
            leased.0,
            leased.1,
        );
        let first = pool.blocks().next();
        match first {
            Some(first) => {
                user.pool = Some(pool);
                user.lease(first);
            }
            None => cx.report(
                Problem::error(
                    "sandbox::idmap::no-free-block",
                    "no block of 65536 host ids is free for root's sandboxes",
                )
                .help(format!(
                    "/etc/subuid and /etc/subgid grant every block of the ids root's sandboxes take ({}); \
                     reserve ids no one else is granted with a line `{POOL_OWNER}:START:COUNT` in both \
                     (COUNT a multiple of 65536), or map ids in uid_map and gid_map",
                    pool.text()
                )),
            ),
        }
    }
    Some(user)
}

/// Who writes the maps: the launcher itself, or newuidmap and newgidmap when a rootless map
/// `needs_helper` (ids beyond the caller's own).
fn writer(cx: &mut Cx, needs_helper: bool) -> MapWriter {
    if !needs_helper {
        return MapWriter::Direct;
    }
    match (cx.host.newuidmap(), cx.host.newgidmap()) {
        (Some(newuidmap), Some(newgidmap)) => MapWriter::Helper {
            newuidmap: newuidmap.to_path_buf(),
            newgidmap: newgidmap.to_path_buf(),
        },
        _ => {
            let manifest = &cx.loaded.manifest;
            let span = manifest
                .uid_map
                .as_ref()
                .or(manifest.gid_map.as_ref())
                .map(|s| s.span);
            cx.report(
                Problem::error(
                    "sandbox::idmap::no-helper",
                    "mapping ranges of ids needs newuidmap and newgidmap",
                )
                .at_span(span)
                .help(
                    "install them (Debian/Ubuntu: `apt install uidmap`), or map only your own id",
                ),
            );
            MapWriter::Direct
        }
    }
}

/// The host ids `map` reaches that are not the sandbox's own (see [`ForeignIds`]): rootless,
/// those outside the caller's id and grants (validation admits none); as root, those outside
/// root's grants that no one else's overlaps. Root may map any id, so only what /etc/subuid
/// reserves for it alone is its to give; even its own id 0 is the host's root. The grants are
/// read only when the map reaches further than the caller's id.
fn foreign(cx: &Cx, kind: Kind, map: &[IdMapping]) -> Vec<HostIds> {
    let host = cx.host;
    let root = host.caller.is_root();
    let reached: Vec<(u64, u64)> = map
        .iter()
        .map(|m| (u64::from(m.outside), m.outside_end()))
        .collect();
    let own_id = u64::from(match kind {
        Kind::Uid => host.caller.uid,
        Kind::Gid => host.caller.gid,
    });
    let reached = if root {
        reached
    } else {
        without(reached, &[(own_id, own_id + 1)])
    };
    if reached.is_empty() {
        return Vec::new();
    }
    let (own, all) = match kind {
        Kind::Uid => (host.subuid(), host.subuid_grants()),
        Kind::Gid => (host.subgid(), host.subgid_grants()),
    };
    let span = |start: u32, count: u32| (u64::from(start), u64::from(start) + u64::from(count));
    let mut granted: Vec<(u64, u64)> = own.iter().map(|g| span(g.start, g.count)).collect();
    if root {
        let others: Vec<(u64, u64)> = all
            .iter()
            .filter(|g| !host.is_callers(g))
            .map(|g| span(g.start, g.count))
            .collect();
        granted = without(granted, &others);
    }
    without(reached, &granted)
        .into_iter()
        .map(|(start, end)| HostIds {
            start: start as u32,
            count: (end - start) as u32,
        })
        .collect()
}

/// The ids of `ranges` (each `[start, end)`) that none of `holes` holds.
fn without(ranges: Vec<(u64, u64)>, holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    holes
        .iter()
        .fold(ranges, |ranges, &(hole_start, hole_end)| {
            ranges
                .into_iter()
                .flat_map(|(start, end)| {
                    [(start, end.min(hole_start)), (start.max(hole_end), end)]
                        .into_iter()
                        .filter(|(start, end)| start < end)
                })
                .collect()
        })
}

/// The pool of root's sandboxes from the grants of /etc/subuid and /etc/subgid, for the sides
/// (uids, gids) that lease their ids: the `sandbox` grant when there is one (of at least one
/// block), else [`IdPool::REGION`]; minus every block holding an id granted to anyone else.
pub fn id_pool(
    uid_grants: &[SubIdGrant],
    gid_grants: &[SubIdGrant],
    uids: bool,
    gids: bool,
) -> IdPool {
    let reserved = |grants: &[SubIdGrant]| {
        grants
            .iter()
            .find(|g| g.owner == POOL_OWNER && g.count >= ID_BLOCK)
            .map(|g| (g.start, g.count))
    };
    let sides = [(uids, uid_grants), (gids, gid_grants)];
    let mut bases = [None, None];
    let mut blocks = u32::MAX;
    for ((leased, grants), base) in sides.iter().zip(&mut bases) {
        if !leased {
            continue;
        }
        let (start, count) =
            reserved(grants).unwrap_or((IdPool::REGION.0, IdPool::REGION.1 - IdPool::REGION.0));
        // Ids end at 4294967294 (u32::MAX means "no id").
        let count = count.min(u32::MAX - start);
        blocks = blocks.min(count / ID_BLOCK);
        *base = Some(start);
    }
    if bases == [None, None] {
        blocks = 0;
    }
    let block = u64::from(ID_BLOCK);
    let mut taken: Vec<(u32, u32)> = Vec::new();
    for ((_, grants), base) in sides.iter().zip(bases) {
        let Some(base) = base.map(u64::from) else {
            continue;
        };
        let end_of_pool = base + u64::from(blocks) * block;
        for grant in grants.iter().filter(|g| g.owner != POOL_OWNER) {
            let start = u64::from(grant.start);
            let end = start + u64::from(grant.count);
            if end <= base || start >= end_of_pool {
                continue;
            }
            let first = (start.max(base) - base) / block;
            let last = (end.min(end_of_pool) - 1 - base) / block;
            taken.push((first as u32, last as u32 + 1));
        }
    }
    taken.sort_unstable();
    let mut free = Vec::new();
    let mut next = 0;
    for (start, end) in taken {
        if start > next {
            free.push((next, start));
        }
        next = next.max(end);
    }
    if next < blocks {
        free.push((next, blocks));
    }
    IdPool {
        uid_base: bases[0],
        gid_base: bases[1],
        blocks,
        free,
        reserved: sides
            .iter()
            .filter(|(leased, _)| *leased)
            .all(|(_, grants)| reserved(grants).is_some()),
    }
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
        // Leased as the sandbox starts (see `user`): block 0 until then.
        None if root => Side {
            map: vec![IdMapping {
                inside: 0,
                outside: IdPool::REGION.0,
                count: ID_BLOCK,
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
                        count: usable.min(ID_BLOCK),
                    }],
                    needs_helper: false,
                }
            } else {
                // 0 is the caller's own id; 1.. come from the grant.
                let count = usable.min(ID_BLOCK - 1);
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
        let Some(mapping) = mapping(cx, kind, range, own) else {
            continue;
        };
        check_overlap(cx, kind, &mapping, range.span, &map);
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
    check_granted(cx, kind, &map, &spans, own, grants);
    Side {
        map,
        needs_helper: true,
    }
}

/// The mapping a range asks for; `None`, reported, when it maps no id or runs past the
/// largest.
fn mapping(cx: &mut Cx, kind: Kind, range: &Spanned<IdRange>, own: u32) -> Option<IdMapping> {
    let outside = match range.value.outside.value {
        Outside::Id(id) => id,
        Outside::Caller => own,
    };
    let mapping = IdMapping {
        inside: range.value.inside.value,
        outside,
        count: range.value.count.value,
    };
    let overflows =
        mapping.inside_end() > u32::MAX as u64 || mapping.outside_end() > u32::MAX as u64;
    let (code, what, label, help) = match (mapping.count, overflows) {
        (0, _) => (
            "sandbox::idmap::zero-count",
            "maps no ids",
            "count is 0",
            "use a count of at least 1",
        ),
        (_, true) => (
            "sandbox::idmap::overflow",
            "runs past the largest id",
            "too many ids",
            "ids end at 4294967294; lower `count`",
        ),
        _ => return Some(mapping),
    };
    cx.report(
        Problem::error(code, format!("a {} range {what}", kind.key()))
            .at(range.value.count.span, label)
            .help(help),
    );
    None
}

/// An error for each earlier range that `mapping` overlaps, inside or outside.
fn check_overlap(
    cx: &mut Cx,
    kind: Kind,
    mapping: &IdMapping,
    span: Span,
    earlier: &[(IdMapping, Span)],
) {
    let range = |m: &IdMapping, inside: bool| match inside {
        true => (m.inside, m.inside_end()),
        false => (m.outside, m.outside_end()),
    };
    for (other, other_span) in earlier {
        let side = [("inside", true), ("outside", false)]
            .into_iter()
            .find(|&(_, inside)| {
                let (a, a_end) = range(mapping, inside);
                let (b, b_end) = range(other, inside);
                overlaps(a, a_end, b, b_end)
            })
            .map(|(side, _)| side);
        if let Some(side) = side {
            cx.report(
                Problem::error(
                    "sandbox::idmap::overlap",
                    format!("{} ranges overlap {side}", kind.key()),
                )
                .at(span, format!("overlaps {side}"))
                .also(*other_span, "with this range")
                .help("each id may be mapped once on each side; make the ranges disjoint"),
            );
        }
    }
}

/// Rootless, through the setuid helper: an error for each range outside the caller's own id
/// and its grants in /etc/subuid or /etc/subgid.
fn check_granted(
    cx: &mut Cx,
    kind: Kind,
    map: &[IdMapping],
    spans: &[Span],
    own: u32,
    grants: &[SubIdRange],
) {
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
                .at(*range_span, "not yours to map")
                .help(format!("{granted}; ask an administrator for a grant in {}, or map `outside = \"self\"` only", kind.file())),
            );
        }
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

    fn grant(owner: &str, start: u32, count: u32) -> SubIdGrant {
        SubIdGrant {
            owner: owner.into(),
            start,
            count,
        }
    }

    #[test]
    fn the_pool_holds_no_id_anyone_is_granted() {
        let region_blocks = (IdPool::REGION.1 - IdPool::REGION.0) / ID_BLOCK;
        // What Debian's useradd grants: 65536 ids each from 100000; the 7th and 8th users'
        // grants reach into the region.
        let users: Vec<SubIdGrant> = (0..8)
            .map(|n| grant(&format!("u{n}"), 100_000 + n * ID_BLOCK, ID_BLOCK))
            .collect();
        let pool = id_pool(&users, &users, true, true);
        assert_eq!(pool.blocks, region_blocks);
        assert_eq!(pool.free, [(2, region_blocks)]);
        assert!(!pool.reserved);
        for block in pool.blocks().take(3).chain([region_blocks - 1]) {
            let (uid, gid) = pool.first_ids(block);
            let (uid, gid) = (u64::from(uid.unwrap()), u64::from(gid.unwrap()));
            assert!(uid + u64::from(ID_BLOCK) <= 1 << 31, "below 2^31");
            for g in &users {
                let (start, end) = (u64::from(g.start), u64::from(g.start) + u64::from(g.count));
                assert!(end <= uid || start >= uid + u64::from(ID_BLOCK), "{g:?}");
                assert!(end <= gid || start >= gid + u64::from(ID_BLOCK), "{g:?}");
            }
        }

        // A grant in one file only takes the block away from both, when both are leased.
        let base = IdPool::REGION.0;
        let gid_only = [grant("g", base + 5 * ID_BLOCK, 1)];
        assert_eq!(
            id_pool(&[], &gid_only, true, true).free,
            [(0, 5), (6, region_blocks)]
        );
        assert_eq!(
            id_pool(&[], &gid_only, true, false).free,
            [(0, region_blocks)],
            "the gids are the manifest's own"
        );
        assert_eq!(id_pool(&[], &gid_only, true, false).gid_base, None);
    }

    #[test]
    fn the_sandbox_grant_is_the_pool_when_there_is_one() {
        let start = 1_000_000_000;
        let grants = [
            grant("sandbox", start, 10 * ID_BLOCK),
            grant("ann", start + 3 * ID_BLOCK + 7, 10),
        ];
        let pool = id_pool(&grants, &grants, true, true);
        assert_eq!(
            (pool.uid_base, pool.blocks, pool.reserved),
            (Some(start), 10, true)
        );
        assert_eq!(
            pool.free,
            [(0, 3), (4, 10)],
            "what another user is granted is not"
        );
        assert_eq!(pool.lease_name(4), (start + 4 * ID_BLOCK).to_string());
        // Ids end at 4294967294: a grant running past it gives what is there.
        let top = [grant("sandbox", u32::MAX - 2 * ID_BLOCK + 1, u32::MAX)];
        assert_eq!(id_pool(&top, &top, true, true).blocks, 1);
        // Too small to hold a block: the default region.
        let small = [grant("sandbox", start, 100)];
        assert_eq!(
            id_pool(&small, &small, true, true).uid_base,
            Some(IdPool::REGION.0)
        );
    }

    #[test]
    fn root_leases_a_block_unless_the_manifest_maps_its_ids() {
        let plan = |text: &str, others: Vec<SubIdGrant>| {
            let caller = Caller::ann(0);
            let host = HostFacts::fixed(
                caller.clone(),
                FixedFacts {
                    others,
                    ..FixedFacts::default()
                },
            );
            let loaded = load_str(
                std::path::Path::new("/project/sandbox.toml"),
                &format!("{text}[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\"]\n"),
                &caller.vars(),
            );
            let validated = validate(&loaded, &host, &Invocation::default());
            let codes: Vec<&str> = validated.problems.iter().map(|p| p.code).collect();
            (validated.plan.map(|p| p.user.unwrap()), codes)
        };
        let (user, _) = plan("", Vec::new());
        let user = user.unwrap();
        assert_eq!(user.pool.as_ref().unwrap().free[0].0, 0);
        assert_eq!(
            user.uid_map,
            [IdMapping {
                inside: 0,
                outside: IdPool::REGION.0,
                count: ID_BLOCK
            }]
        );
        let reserved = vec![grant("sandbox", 2_000_000, 4 * ID_BLOCK)];
        let (user, _) = plan("", reserved);
        assert_eq!(user.unwrap().uid_map[0].outside, 2_000_000);
        let (user, _) = plan(
            "uid_map = [{ inside = 0, outside = 300000, count = 65536 }]\n",
            Vec::new(),
        );
        let pool = user.unwrap().pool.unwrap();
        assert_eq!(
            (pool.uid_base, pool.gid_base),
            (None, Some(IdPool::REGION.0))
        );
        let everything = vec![grant("ann", 1, u32::MAX - 1)];
        let (user, codes) = plan("", everything);
        assert!(user.is_none());
        assert_eq!(codes, ["sandbox::idmap::no-free-block"]);
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
