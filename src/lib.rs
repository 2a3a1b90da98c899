//! `sandbox`: a Linux sandbox launcher driven by TOML manifests.
//!
//! The pipeline is visible in the module list: [`manifest`] (TOML -> typed manifest) ->
//! [`validate`] (manifest + host facts -> [`plan::Plan`]) -> `exec` (the plan, applied to the
//! kernel) -> [`cli`].

pub mod cgroup;
pub mod cli;
pub mod diagnostics;
pub mod doctor;
pub mod egress;
pub mod escape;
pub mod exec;
pub mod exit;
pub mod export;
pub mod folder;
pub mod host;
pub mod hostpath;
pub mod input;
pub mod lease;
pub mod lockfile;
pub mod manifest;
pub mod netlink;
pub mod origin;
pub mod plan;
pub mod rootfs;
pub mod state;
pub mod sys;
pub mod trust;
pub mod validate;
