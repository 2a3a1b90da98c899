//! Where the cgroup hierarchies are mounted and where the caller sits in each, from the text of
//! /proc/self/mountinfo and /proc/self/cgroup. Pure: the callers read the files.
//!
//! The caller's group in a hierarchy is the path /proc/self/cgroup gives, made relative to the
//! root of the mount (mountinfo's fourth field): a container may mount only a subtree, and a
//! cgroup namespace shows paths relative to its own root (cgroup_namespaces(7)).

use std::path::PathBuf;

/// The mounted hierarchies as this process sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// cgroup v1 hierarchies that carry controllers, in /proc/self/cgroup order.
    pub v1: Vec<Hierarchy>,
    /// The cgroup2 hierarchy, when mounted.
    pub v2: Option<Hierarchy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1: the controllers bound to the hierarchy as the kernel names them ("cpu", "cpuacct");
    /// v2: empty (cgroup.controllers says which are available where).
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The caller's own group as a directory; `None` when the mount does not show it.
    pub own: Option<PathBuf>,
}

impl Layout {
    /// The version the backend uses: v1 as soon as any controller is bound to a v1 hierarchy
    /// (a hybrid host's cgroup2 then has no controllers worth using), v2 otherwise.
    pub fn version(&self) -> Option<crate::plan::CgroupVersion> {
        use crate::plan::CgroupVersion;
        if !self.v1.is_empty() {
            Some(CgroupVersion::V1)
        } else {
            self.v2.as_ref().map(|_| CgroupVersion::V2)
        }
    }

    /// The v1 hierarchy a controller is bound to.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }
}

/// One line of mountinfo that mounts a cgroup file system.
#[derive(Debug)]
struct CgroupMount {
    root: String,
    mount_point: PathBuf,
    v2: bool,
    /// The super block options ("rw,memory", "rw,cpu,cpuacct", "rw,nsdelegate").
    options: Vec<String>,
}

pub fn detect(mountinfo: &str, proc_cgroup: &str) -> Layout {
    let mounts: Vec<CgroupMount> = mountinfo.lines().filter_map(parse_mount).collect();
    let mut layout = Layout::default();
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(list), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && list.is_empty() {
            layout.v2 = pick(mounts.iter().filter(|m| m.v2), path)
                .map(|(m, own)| hierarchy(m, Vec::new(), own));
            continue;
        }
        // Named hierarchies (name=systemd) carry no controller.
        let controllers: Vec<String> = list
            .split(',')
            .filter(|c| !c.is_empty() && !c.starts_with("name="))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() {
            continue;
        }
        let candidates = mounts
            .iter()
            .filter(|m| !m.v2 && controllers.iter().all(|c| m.options.contains(c)));
        if let Some((mount, own)) = pick(candidates, path) {
            layout.v1.push(hierarchy(mount, controllers, own));
        }
    }
    layout
}

/// The first mount that shows the caller's group `path`, else the first mount (which then
/// leaves the group out of reach).
fn pick<'m>(
    mut candidates: impl Iterator<Item = &'m CgroupMount> + Clone,
    path: &str,
) -> Option<(&'m CgroupMount, Option<String>)> {
    candidates
        .clone()
        .find_map(|m| Some((m, Some(relative(path, &m.root)?))))
        .or_else(|| candidates.next().map(|m| (m, None)))
}

fn hierarchy(mount: &CgroupMount, controllers: Vec<String>, own: Option<String>) -> Hierarchy {
    Hierarchy {
        controllers,
        mount_point: mount.mount_point.clone(),
        own: own.map(|rel| {
            if rel.is_empty() {
                mount.mount_point.clone()
            } else {
                mount.mount_point.join(rel)
            }
        }),
    }
}

/// `path` relative to the mount's `root`, or `None` when it is not below it (or climbs out
/// with `..`, as a cgroup namespace shows groups outside it).
fn relative(path: &str, root: &str) -> Option<String> {
    if path.split('/').any(|part| part == "..") {
        return None;
    }
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    Some(rest.trim_matches('/').to_string())
}

/// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`
fn parse_mount(line: &str) -> Option<CgroupMount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let dash = fields.iter().position(|f| *f == "-")?;
    let fstype = *fields.get(dash + 1)?;
    let v2 = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    Some(CgroupMount {
        root: unescape(fields.get(3)?),
        mount_point: PathBuf::from(unescape(fields.get(4)?)),
        v2,
        options: fields
            .get(dash + 3)
            .map(|o| o.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(digits) => {
                out.push(
                    digits
                        .iter()
                        .fold(0u8, |n, d| n.wrapping_mul(8) + (d - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::CgroupVersion;

    /// This machine: v1 controllers under /sys/fs/cgroup/<controller>, systemd's named
    /// hierarchy, and an empty cgroup2 at /sys/fs/cgroup/unified.
    const HYBRID_MOUNTINFO: &str = "\
22 1 252:1 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/16ec00cd
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_uses_v1_with_each_controller_in_its_hierarchy() {
        let layout = detect(HYBRID_MOUNTINFO, HYBRID_CGROUP);
        assert_eq!(layout.version(), Some(CgroupVersion::V1));
        let memory = layout.v1_hierarchy("memory").unwrap();
        assert_eq!(memory.mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(
            memory.own.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory/process_api/16ec00cd"))
        );
        assert_eq!(
            layout.v1_hierarchy("pids").unwrap().own.as_deref(),
            Some(Path::new("/sys/fs/cgroup/pids"))
        );
        // name=systemd carries no controller; the unified mount is there but unused.
        assert_eq!(layout.v1.len(), 8);
        assert!(layout.v1.iter().all(|h| !h.controllers.is_empty()));
        assert_eq!(
            layout.v2.unwrap().mount_point,
            Path::new("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn pure_v1_with_co_mounted_controllers() {
        // CentOS 7 style: cpu and cpuacct share a hierarchy, no cgroup2 at all.
        let mountinfo = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpuacct,cpu
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
";
        let cgroup = "\
11:pids:/user.slice
4:memory:/user.slice
3:cpuacct,cpu:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-1.scope
";
        let layout = detect(mountinfo, cgroup);
        assert_eq!(layout.version(), Some(CgroupVersion::V1));
        assert!(layout.v2.is_none());
        let cpu = layout.v1_hierarchy("cpu").unwrap();
        assert_eq!(cpu.controllers, ["cpuacct", "cpu"]);
        assert_eq!(
            cpu.own.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/user.slice"))
        );
        assert_eq!(layout.v1_hierarchy("cpuacct"), Some(cpu));
        assert!(layout.v1_hierarchy("blkio").is_none());
    }

    #[test]
    fn pure_v2_from_the_root() {
        let mountinfo = "\
24 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        let layout = detect(
            mountinfo,
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope\n",
        );
        assert_eq!(layout.version(), Some(CgroupVersion::V2));
        let v2 = layout.v2.unwrap();
        assert_eq!(
            v2.own.as_deref(),
            Some(Path::new(
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope"
            ))
        );
        let root = detect(mountinfo, "0::/\n").v2.unwrap();
        assert_eq!(root.own.as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn v2_mounted_from_a_delegated_subtree() {
        // A container without a cgroup namespace: the runtime mounted only its own subtree.
        let mountinfo = "\
812 790 0:26 /docker/4f1c /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
";
        let inside = detect(mountinfo, "0::/docker/4f1c/init\n").v2.unwrap();
        assert_eq!(
            inside.own.as_deref(),
            Some(Path::new("/sys/fs/cgroup/init"))
        );
        let same = detect(mountinfo, "0::/docker/4f1c\n").v2.unwrap();
        assert_eq!(same.own.as_deref(), Some(Path::new("/sys/fs/cgroup")));
        // A group outside the mounted subtree, or above a cgroup namespace's root, is out of
        // reach: there is no directory to create groups in.
        assert_eq!(
            detect(mountinfo, "0::/docker/4f1cx\n").v2.unwrap().own,
            None
        );
        assert_eq!(detect(mountinfo, "0::/../other\n").v2.unwrap().own, None);
    }

    #[test]
    fn no_cgroup_mounted() {
        let layout = detect("22 1 252:1 / / rw - ext4 /dev/vda rw\n", HYBRID_CGROUP);
        assert_eq!(layout, Layout::default());
        assert_eq!(layout.version(), None);
    }

    #[test]
    fn escaped_mount_points() {
        let mountinfo = "40 31 0:37 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n";
        let v2 = detect(mountinfo, "0::/a\n").v2.unwrap();
        assert_eq!(v2.own.as_deref(), Some(Path::new("/mnt/cg two/a")));
    }
}
