//! `sandbox cache ls | prune`: the roots unpacked from tarballs and OCI images.

use clap::{Args, Subcommand};

use super::{Output, exit};
use crate::host::Caller;
use crate::rootfs::{Cache, CacheError, cache};

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the unpacked roots: digest, kind, size, whether a sandbox uses it, source.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every unpacked root that no running sandbox uses, and unfinished unpacks.
    Prune,
}

pub fn run(args: CacheArgs, out: &Output) -> u8 {
    match open().and_then(|cache| match args.command {
        CacheCommand::Ls { json } => ls(&cache, json),
        CacheCommand::Prune => prune(&cache, out),
    }) {
        Ok(()) => exit::SUCCESS,
        Err(error) => {
            out.error(&error.to_string());
            exit::LAUNCHER_FAILED
        }
    }
}

fn open() -> Result<Cache, CacheError> {
    let caller = Caller::current();
    Cache::open(cache::locate(&caller.env, caller.is_root())?)
}

fn ls(cache: &Cache, json: bool) -> Result<(), CacheError> {
    let entries = cache.entries()?;
    if json {
        show!(
            "{}",
            serde_json::to_string_pretty(&entries).expect("entries serialize")
        );
        return Ok(());
    }
    show!(
        "{:<19}  {:<4}  {:>10}  {:<6}  SOURCE",
        "DIGEST",
        "KIND",
        "ARCHIVE",
        "IN USE"
    );
    for entry in entries {
        let (kind, size, source) = match &entry.meta {
            Some(meta) => (
                meta.kind.as_str(),
                human(meta.bytes),
                meta.source.display().to_string(),
            ),
            None => ("?", "?".into(), "?".into()),
        };
        show!(
            "{:<19}  {kind:<4}  {size:>10}  {:<6}  {source}",
            &entry.digest[..entry.digest.len().min(19)],
            if entry.in_use { "yes" } else { "no" },
        );
    }
    Ok(())
}

fn prune(cache: &Cache, out: &Output) -> Result<(), CacheError> {
    let pruned = cache.prune()?;
    if !out.quiet {
        for digest in &pruned.roots {
            show!("removed {digest}");
        }
        for digest in &pruned.kept_in_use {
            show!("kept {digest} (in use)");
        }
        if pruned.partial > 0 {
            show!("removed {} unfinished unpack(s)", pruned.partial);
        }
        if pruned.leftovers > 0 {
            show!(
                "removed {} lock file(s) and record(s) that stopped launchers left",
                pruned.leftovers
            );
        }
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
