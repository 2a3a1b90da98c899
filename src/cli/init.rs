use std::io::Write;

use clap::{Args, ValueEnum};

use super::{Output, exit};
use crate::host::HostFacts;

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

/// The dev template's id maps, commented out: a single id rootless, which chown cannot leave.
const AUTO_MAPS: &str = "# uid_map = \"auto\"\n# gid_map = \"auto\"\n";

impl Template {
    pub fn text(self) -> &'static str {
        match self {
            Template::Dev => include_str!("templates/dev.toml"),
            Template::Ci => include_str!("templates/ci.toml"),
            Template::Minimal => include_str!("templates/minimal.toml"),
        }
    }

    /// The starter for this caller: the dev template maps a range of ids when a rootless
    /// caller has a grant to map them from (and the helpers that write such maps), so root-aware
    /// tools can chown to other ids.
    pub fn render(self, host: &HostFacts) -> String {
        let text = self.text();
        let granted = !host.caller.is_root()
            && !host.subuid().is_empty()
            && !host.subgid().is_empty()
            && host.newuidmap().is_some()
            && host.newgidmap().is_some();
        if matches!(self, Template::Dev) && granted {
            text.replacen(AUTO_MAPS, &AUTO_MAPS.replace("# ", ""), 1)
        } else {
            text.to_string()
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
    let text = args.template.render(&HostFacts::live());
    if let Err(e) = file.write_all(text.as_bytes()) {
        out.error(&format!("cannot write sandbox.toml: {e}"));
        return exit::INVALID;
    }
    if !out.quiet {
        say!("wrote sandbox.toml; run `sandbox check`, then `sandbox up`");
        if text != args.template.text() {
            say!(
                "it maps a range of ids from your grant in /etc/subuid and /etc/subgid \
                 (uid_map = \"auto\"), so chown works inside"
            );
        }
    }
    exit::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Caller, FixedFacts, SubIdRange};

    fn host(uid: u32, grant: bool) -> HostFacts {
        let ranges = || {
            grant
                .then_some(SubIdRange {
                    start: 100_000,
                    count: 65_536,
                })
                .into_iter()
                .collect()
        };
        HostFacts::fixed(
            Caller::ann(uid),
            FixedFacts {
                subuid: ranges(),
                subgid: ranges(),
                newuidmap: Some("/usr/bin/newuidmap".into()),
                newgidmap: Some("/usr/bin/newgidmap".into()),
                ..FixedFacts::default()
            },
        )
    }

    #[test]
    fn the_dev_template_maps_a_range_for_a_caller_with_a_grant() {
        let dev = Template::Dev.text();
        assert!(
            dev.contains(AUTO_MAPS),
            "the template holds the maps to enable"
        );
        let granted = Template::Dev.render(&host(1000, true));
        assert!(granted.contains("\nuid_map = \"auto\"\ngid_map = \"auto\"\n"));
        assert!(!granted.contains(AUTO_MAPS));
        assert_eq!(Template::Dev.render(&host(1000, false)), dev);
        assert_eq!(
            Template::Dev.render(&host(0, true)),
            dev,
            "root maps a range anyway"
        );
        assert_eq!(
            Template::Ci.render(&host(1000, true)),
            Template::Ci.text(),
            "a CI jail keeps no capabilities to use them"
        );
    }
}
