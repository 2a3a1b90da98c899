use crate::origin::Origin;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the root file system comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RootSource {
    /// A fresh, empty tmpfs (for `host = true`, which then binds the host's system dirs).
    Tmpfs,
    /// A directory on the host.
    Dir { path: PathBuf },
    /// A tarball, unpacked into the cache.
    Tar {
        path: PathBuf,
        sha256: Option<String>,
    },
    /// An OCI image layout: the manifest chosen for this architecture (its digest, `sha256:<hex>`)
    /// and its layers, bottom first.
    Oci {
        path: PathBuf,
        sha256: Option<String>,
        manifest: String,
        layers: Vec<Layer>,
    },
}

/// A layer of an OCI image: a (compressed) tar blob, named by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
}

/// The writable layer of an overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OverlayUpper {
    /// Thrown away on exit.
    Tmpfs,
    /// Kept: `upper` holds the changes, `work` is overlayfs's scratch dir on the same fs.
    Dir {
        upper: PathBuf,
        work: PathBuf,
        /// As root, the layer is id-mapped through the sandbox's map (when it is the caller's),
        /// so its files are stored with the ids they have inside, whatever block of host ids
        /// the next run leases.
        #[serde(default)]
        idmap: Option<Idmap>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootPlan {
    pub source: RootSource,
    /// Remount the root read-only once every mount is made.
    pub readonly: bool,
    /// A writable layer over the source.
    pub overlay: Option<OverlayUpper>,
    /// The source directory is id-mapped through the sandbox's own user map, so that files the
    /// host's root owns appear owned by root inside (as root, whose sandboxes run in an
    /// unprivileged id range, root-owned files would otherwise be nobody's and read-only).
    /// Only a directory of the caller's own, or one `idmap = true` asks for.
    pub idmapped: bool,
}

/// A host directory id-mapped although its files are not the caller's own to give: one
/// `idmap = true` asks for (a system directory, someone else's, one others may write), or a
/// layer outside the project id-mapped through the sandbox's map, which gives the sandbox the
/// files of every owner it maps. The trust check asks for it, naming those owners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOver {
    /// The manifest key that mounts it.
    pub key: Origin,
    pub path: PathBuf,
    /// Why its files are not the caller's own: "owned by uid 1000", "outside the project".
    pub why: String,
    pub through: Idmap,
}

/// How host files are id-mapped (mount_setattr(2), MOUNT_ATTR_IDMAP). Only the host's root may
/// id-map a host file system, so the supervisor makes these mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "through", rename_all = "lowercase")]
pub enum Idmap {
    /// The sandbox's own user map: files appear owned as the sandbox sees their owners, the
    /// host's root as root (for root's sandboxes, which run in an unprivileged id range).
    Sandbox,
    /// Only the caller's ids (on disk), to the host ids of the command's user: the caller's
    /// files appear owned by the command's user, and what it makes is the caller's on the
    /// host. The ids are the plan's (see [`super::Plan::idmap_maps`]).
    Caller,
}

/// One mount, in the kernel's vocabulary. Targets are absolute paths inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountOp {
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
        idmap: Option<Idmap>,
        optional: bool,
    },
    Tmpfs {
        target: PathBuf,
        size: Option<u64>,
        mode: u32,
        readonly: bool,
    },
    Proc {
        target: PathBuf,
    },
    Sysfs {
        target: PathBuf,
    },
    Dev {
        target: PathBuf,
    },
    Devpts {
        target: PathBuf,
    },
    Mqueue {
        target: PathBuf,
    },
    Overlay {
        lower: Vec<PathBuf>,
        upper: Option<OverlayUpper>,
        target: PathBuf,
        readonly: bool,
        /// The lower layers are id-mapped (copy-up keeps owners, which must be mapped inside).
        idmap: Option<Idmap>,
    },
    Symlink {
        link: String,
        target: PathBuf,
    },
    File {
        target: PathBuf,
        content: String,
        mode: u32,
    },
    Dir {
        target: PathBuf,
        mode: u32,
    },
    /// /etc/hosts naming the sandbox itself, on its address (a bridge sandbox's is leased as it
    /// starts, so the file is written then) or 127.0.1.1, and the manifest's names, followed by
    /// the entries of the root's own /etc/hosts (the host's, for `rootfs.host`).
    Hosts {
        target: PathBuf,
        hostname: Option<String>,
        names: BTreeMap<String, IpAddr>,
    },
}

/// Where the sandbox's own name points when it has no address of its own (pasta shares the
/// host's): the loopback address Debian gives the host name.
pub const OWN_NAME_FALLBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);

/// Where the root's own /etc/hosts entries start in a [`MountOp::Hosts`] file.
const KEPT_HOSTS: &str = "# the root's own /etc/hosts:\n";

/// The text of a [`MountOp::Hosts`] file, once the sandbox's address is known. `kept` is the
/// root's own /etc/hosts. The sandbox's names come first: the first line naming a host wins, so
/// a root that names the sandbox's host name otherwise cannot send it elsewhere. Without a file
/// of the root's, localhost is named too.
pub fn hosts_file(
    hostname: Option<&str>,
    address: Option<Ipv4Addr>,
    names: &BTreeMap<String, IpAddr>,
    kept: Option<&str>,
) -> String {
    let mut text = String::new();
    if kept.is_none() {
        text.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    }
    if let Some(hostname) = hostname {
        let own = address.unwrap_or(OWN_NAME_FALLBACK);
        text.push_str(&format!("{own}\t{hostname}\n"));
    }
    for (name, ip) in names {
        text.push_str(&format!("{ip}\t{name}\n"));
    }
    if let Some(kept) = kept {
        text.push_str(KEPT_HOSTS);
        text.push_str(kept);
        if !kept.is_empty() && !kept.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// The flags of a mount, decided here, once, for each type: the executor makes the mount with
/// them, `sandbox export` writes them as the bundle's options, `sandbox plan` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountFlags {
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl MountFlags {
    /// What every mount of the sandbox has: no setuid binary and no device node take effect.
    const SANDBOX: MountFlags = MountFlags {
        readonly: false,
        nosuid: true,
        nodev: true,
        noexec: false,
    };

    /// The flags other than `readonly`, as mount(8) options, in the order the bundle lists them
    /// (`ro` comes last, after a type's own options).
    pub fn options(self) -> impl Iterator<Item = &'static str> {
        [
            (self.nosuid, "nosuid"),
            (self.nodev, "nodev"),
            (self.noexec, "noexec"),
        ]
        .into_iter()
        .filter_map(|(set, word)| set.then_some(word))
    }
}

impl MountOp {
    /// The flags the mount is made with; `None` for what is no mount of its own (a symlink, a
    /// folder) or is bound from the staging root as it is (a file, the hosts file).
    pub fn flags(&self) -> Option<MountFlags> {
        let sandbox = MountFlags::SANDBOX;
        let flags = match self {
            MountOp::Bind { readonly, .. }
            | MountOp::Tmpfs { readonly, .. }
            | MountOp::Overlay { readonly, .. } => MountFlags {
                readonly: *readonly,
                ..sandbox
            },
            MountOp::Proc { .. } | MountOp::Mqueue { .. } => MountFlags {
                noexec: true,
                ..sandbox
            },
            MountOp::Sysfs { .. } => MountFlags {
                readonly: true,
                noexec: true,
                ..sandbox
            },
            // Device nodes are the point of both.
            MountOp::Devpts { .. } | MountOp::Dev { .. } => MountFlags {
                nodev: false,
                noexec: true,
                ..sandbox
            },
            MountOp::Symlink { .. }
            | MountOp::File { .. }
            | MountOp::Dir { .. }
            | MountOp::Hosts { .. } => return None,
        };
        Some(flags)
    }

    pub fn target(&self) -> &PathBuf {
        match self {
            MountOp::Bind { target, .. }
            | MountOp::Tmpfs { target, .. }
            | MountOp::Proc { target }
            | MountOp::Sysfs { target }
            | MountOp::Dev { target }
            | MountOp::Devpts { target }
            | MountOp::Mqueue { target }
            | MountOp::Overlay { target, .. }
            | MountOp::Symlink { target, .. }
            | MountOp::File { target, .. }
            | MountOp::Dir { target, .. }
            | MountOp::Hosts { target, .. } => target,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            MountOp::Bind { .. } => "bind",
            MountOp::Tmpfs { .. } => "tmpfs",
            MountOp::Proc { .. } => "proc",
            MountOp::Sysfs { .. } => "sysfs",
            MountOp::Dev { .. } => "dev",
            MountOp::Devpts { .. } => "devpts",
            MountOp::Mqueue { .. } => "mqueue",
            MountOp::Overlay { .. } => "overlay",
            MountOp::Symlink { .. } => "symlink",
            MountOp::File { .. } => "file",
            MountOp::Dir { .. } => "dir",
            MountOp::Hosts { .. } => "hosts",
        }
    }
}

/// A mount and the manifest key it came from (`mount[2]`, `rootfs.host`, `rootfs.proc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountStep {
    #[serde(flatten)]
    pub op: MountOp,
    pub key: Origin,
}
