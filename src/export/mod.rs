//! `sandbox export --oci`: the plan as an OCI runtime bundle (runtime-spec `config.json` beside
//! `rootfs/`) that crun, runc and containerd run.
//!
//! The input is the [`Plan`](crate::plan::Plan), not the manifest, so every default and every
//! resolution (ids, paths, the seccomp profile, the mounts `up` adds) is the one `sandbox up`
//! would use. [`oci::translate`] decides everything without touching the disk, and reports each
//! setting as mapped exactly, approximately or not at all; [`bundle::write`] writes the folder.

pub mod bundle;
pub mod oci;
pub mod seccomp;

pub use bundle::{BundleError, Written, config_json, write};
pub use oci::{
    BundleFile, Export, ExportError, Fidelity, IdShift, Mapping, NETWORK_ANNOTATION, RootContent,
    RootEntry, translate,
};
