use std::io::Write;

use clap::{Args, ValueEnum};

use super::{Output, exit};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Which starter: a dev environment, a strict CI jail, or the smallest useful manifest.
    #[arg(long, value_enum, default_value_t = Template::Dev)]
    pub template: Template,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Template {
    Dev,
    Ci,
    Minimal,
}

impl Template {
    pub fn text(self) -> &'static str {
        match self {
            Template::Dev => include_str!("templates/dev.toml"),
            Template::Ci => include_str!("templates/ci.toml"),
            Template::Minimal => include_str!("templates/minimal.toml"),
        }
    }
}

pub fn run(args: InitArgs, out: &Output) -> u8 {
    let path = std::path::Path::new("sandbox.toml");
    // create_new: never overwrite, even if the file appears between a check and the write.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    let mut file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            out.error("sandbox.toml already exists here; init never overwrites it");
            return exit::INVALID;
        }
        Err(e) => {
            out.error(&format!("cannot create sandbox.toml: {e}"));
            return exit::INVALID;
        }
    };
    if let Err(e) = file.write_all(args.template.text().as_bytes()) {
        out.error(&format!("cannot write sandbox.toml: {e}"));
        return exit::INVALID;
    }
    if !out.quiet {
        say!("wrote sandbox.toml; run `sandbox check`, then `sandbox up`");
    }
    exit::SUCCESS
}
