//! `sandbox export --oci DIR [MANIFEST]`: the plan as an OCI runtime bundle;
//! `sandbox export --oci --check [MANIFEST]`: how each setting maps, without writing anything.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{Output, exit};
use crate::exec::root_file;
use crate::export::{self, Fidelity, Mapping};
use crate::manifest::values::Arch;
use crate::plan::{Plan, RootSource};
use crate::validate::Invocation;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write an OCI runtime bundle: DIR/config.json (runtime-spec) and DIR/rootfs.
    #[arg(long, required = true)]
    pub oci: bool,
    /// List every setting and whether it maps to the bundle exactly, approximately or not at
    /// all, instead of writing one.
    #[arg(long)]
    pub check: bool,
    /// With --check: print the list as JSON.
    #[arg(long, requires = "check")]
    pub json: bool,
    /// Replace the sandbox's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The bundle folder to write, new or empty (not with --check).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The manifest (default: sandbox.toml here or in a parent folder).
    #[arg(value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// The command to export, instead of process.command.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn run(args: ExportArgs, out: &Output) -> u8 {
    // With --check there is no bundle folder: the one path given is the manifest.
    let (dir, manifest) = match (args.check, args.dir, args.manifest) {
        (true, Some(_), Some(_)) => {
            out.error(
                "with --check, give only the manifest: sandbox export --oci --check [MANIFEST]",
            );
            return exit::INVALID;
        }
        (true, first, second) => (None, first.or(second)),
        (false, Some(dir), manifest) => (Some(dir), manifest),
        (false, None, _) => {
            out.error("give the bundle's folder: sandbox export --oci DIR [MANIFEST]");
            return exit::INVALID;
        }
    };
    let invocation = Invocation {
        command: (!args.command.is_empty()).then_some(args.command),
        name: args.name,
        stats: false,
    };
    let prepared = match super::prepare(manifest.as_deref(), &invocation, out, exit::INVALID) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let bundle = match dir.as_deref().map(std::path::absolute).transpose() {
        Ok(bundle) => bundle,
        Err(error) => {
            out.error(&format!("cannot resolve the bundle's folder: {error}"));
            return exit::INVALID;
        }
    };
    let exported = export::translate(
        &prepared.plan,
        Arch::host(),
        bundle.as_deref().unwrap_or(Path::new("/bundle")),
        &|path| path.exists(),
    );
    let mut exported = match exported {
        Ok(exported) => exported,
        Err(error) => {
            out.error(&format!("cannot export: {error}"));
            return exit::INVALID;
        }
    };
    let Some(bundle) = bundle else {
        if args.json {
            show!(
                "{}",
                serde_json::to_string_pretty(&exported.mappings).expect("JSON")
            );
        } else {
            show!(text crate::escape::printable(&table(&exported.mappings)));
        }
        return exit::SUCCESS;
    };

    let root = match super::up::prepare_root(&prepared.plan, &prepared.host, out, &prepared.loaded)
    {
        Ok(root) => root,
        Err(problem) => {
            out.problems(&[*problem], &prepared.loaded);
            return exit::INVALID;
        }
    };
    let unpacked = root.as_ref().map(|r| r.dir.as_path());
    if let Some(name) = user_name(&prepared.plan, unpacked) {
        exported.name_user(&prepared.plan.process, &name);
    }
    let written = match export::write(&exported, &bundle, unpacked) {
        Ok(written) => written,
        Err(error) => {
            out.error(&format!("cannot write the bundle: {error}"));
            return exit::INVALID;
        }
    };
    report(&exported.mappings, out);
    if written.skipped_nodes > 0 {
        say!(
            "sandbox: not exported: {} device nodes, fifos or sockets of the root (only root \
             creates them)",
            written.skipped_nodes
        );
    }
    if !out.quiet {
        say!(
            "sandbox: wrote {} (config.json, rootfs/); run it with: crun run --bundle {} NAME",
            bundle.display(),
            bundle.display()
        );
    }
    exit::SUCCESS
}

/// The name the root's /etc/passwd gives the command's user, when the plan names it (see
/// `ProcessPlan::named_env`): the root's own directory, the unpacked tree of a tar or OCI
/// root, or for `rootfs.host` the host's, whose /etc it binds.
fn user_name(plan: &Plan, unpacked: Option<&Path>) -> Option<String> {
    if plan.process.named_env.is_empty() {
        return None;
    }
    let dir = match &plan.root.source {
        RootSource::Tmpfs => Path::new("/"),
        RootSource::Dir { path } => path.as_path(),
        RootSource::Tar { .. } | RootSource::Oci { .. } => unpacked?,
    };
    let root = std::fs::File::open(dir).ok()?;
    root_file::user_name(root.as_fd(), plan.process.uid)
}

/// What did not map exactly, on stderr: everything not exported always, approximations unless
/// quiet.
fn report(mappings: &[Mapping], out: &Output) {
    for m in mappings {
        let word = match m.maps {
            Fidelity::Exact => continue,
            Fidelity::Approximate if out.quiet => continue,
            Fidelity::Approximate => "approximate",
            Fidelity::None => "not exported",
        };
        say!("sandbox: {word}: {} = {}: {}", m.setting, m.value, m.note);
    }
}

/// The `--check` table: setting, how it maps, the runtime-spec field, then the note indented
/// below it.
fn table(mappings: &[Mapping]) -> String {
    let setting = |m: &Mapping| format!("{} = {}", m.setting, m.value);
    let width = mappings
        .iter()
        .map(|m| setting(m).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 60);
    let mut text = format!("{:<width$}  {:<12}  OCI\n", "SETTING", "MAPS");
    for m in mappings {
        let mut name = setting(m);
        if name.chars().count() > width {
            name = name.chars().take(width - 3).collect::<String>() + "...";
        }
        text.push_str(&format!(
            "{name:<width$}  {:<12}  {}\n",
            m.maps.word(),
            if m.oci.is_empty() { "-" } else { &m.oci }
        ));
        if !m.note.is_empty() {
            text.push_str(&format!("{:width$}  {}\n", "", m.note));
        }
    }
    let count = |f: Fidelity| mappings.iter().filter(|m| m.maps == f).count();
    text.push_str(&format!(
        "{} settings: {} exact, {} approximate, {} not exported\n",
        mappings.len(),
        count(Fidelity::Exact),
        count(Fidelity::Approximate),
        count(Fidelity::None)
    ));
    text
}
