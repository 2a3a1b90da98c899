//! The command line: `sandbox up | check | plan | export | schema | init | cache` and the
//! lifecycle commands.

/// `eprintln!` that goes on when nobody reads stderr any more. The launcher ignores SIGPIPE
/// (its own pipes must answer EPIPE rather than kill it), so with `eprintln!` a reader gone
/// early (`sandbox up -v ... 2>&1 | grep -m1 clone`) made the next message panic and abort the
/// launcher before it removed its state record.
///
/// The message is made printable ([`crate::escape::printable`]): what it quotes (names, paths,
/// an archive's entries) may hold terminal controls. `say!(text t)` writes `t` as it is: a
/// rendered diagnostic (escaped when it was made, and maybe coloured) or a command's output.
macro_rules! say {
    (text $text:expr) => {{
        let _ = std::io::Write::write_all(&mut std::io::stderr(), $text.as_bytes());
    }};
    ($($arg:tt)*) => {{
        let message = format!($($arg)*);
        let message = crate::escape::printable(&message);
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{message}\n").as_bytes());
    }};
}

/// `println!` on the same terms, `show!(text t)` likewise. The commands that only print let
/// SIGPIPE end them instead (see [`Command::only_prints`]), so a long listing stops when its
/// reader has gone.
macro_rules! show {
    (text $text:expr) => {{
        let _ = std::io::Write::write_all(&mut std::io::stdout(), $text.as_bytes());
    }};
    ($($arg:tt)*) => {{
        let message = format!($($arg)*);
        let message = crate::escape::printable(&message);
        let _ = std::io::Write::write_all(&mut std::io::stdout(), format!("{message}\n").as_bytes());
    }};
}

mod cache;
mod check;
mod docs;
mod doctor;
mod export;
mod init;
mod lifecycle;
mod plan;
mod schema;
mod trust;
mod up;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostics::{Problem, Report, Shown, render, render_line};
use crate::host::HostFacts;
use crate::manifest::{self, Loaded};
use crate::validate::{self, Invocation, Validated};

pub use crate::exit;

#[derive(Debug, Parser)]
#[command(
    name = "sandbox",
    version,
    about = "Run commands in Linux sandboxes described by a sandbox.toml manifest"
)]
#[command(propagate_version = true)]
pub struct Cli {
    /// When to use colours: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Say more: each warning in full where one line sums several up (e.g. cgroup limits that
    /// fall back); with `up`, each step with its duration.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
            }
        }
    }
}

/// Each subcommand's arguments are built only when it is the one given (`defer`): building
/// all 18 subcommands' to parse one cost `up --dry-run` a quarter of its CPU (1.29 against
/// 0.95 ms, 151 against 119 page faults). Help, completions and the man page build them all.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run the sandbox a manifest describes.
    #[command(
        after_help = "Examples:\n  sandbox up\n  sandbox up ci.toml -- cargo test\n  sandbox up -v --dry-run"
    )]
    Up(up::UpArgs),
    /// Validate manifests; exit 0 when all are valid, 1 otherwise.
    #[command(
        after_help = "Examples:\n  sandbox check\n  sandbox check manifests/*.toml --format json"
    )]
    Check(check::CheckArgs),
    /// Print the steps `sandbox up` would take, without running anything.
    #[command(
        after_help = "Examples:\n  sandbox plan\n  sandbox plan --explain\n  sandbox plan ci.toml --json"
    )]
    Plan(plan::PlanArgs),
    /// Print the manifest's JSON Schema.
    #[command(after_help = "Example:\n  sandbox schema > schema/sandbox.schema.json")]
    Schema,
    /// Write a commented starter sandbox.toml in the current folder.
    #[command(after_help = "Examples:\n  sandbox init\n  sandbox init --template ci")]
    Init(init::InitArgs),
    /// Allow a manifest that asks for more than the default jail (records its exact content).
    #[command(after_help = "Examples:\n  sandbox allow\n  sandbox allow ci/sandbox.toml")]
    Allow(trust::TrustArgs),
    /// Forget that a manifest was allowed.
    #[command(after_help = "Example:\n  sandbox deny")]
    Deny(trust::TrustArgs),
    /// List the running sandboxes (with --all, also the detached ones that have exited).
    #[command(after_help = "Examples:\n  sandbox ps\n  sandbox ps --all --json")]
    Ps(lifecycle::PsArgs),
    /// Print what a detached sandbox's command wrote, while it runs or after it exited.
    #[command(after_help = "Examples:\n  sandbox logs api\n  sandbox logs -f api")]
    Logs(lifecycle::LogsArgs),
    /// Wait until a sandbox ends, and exit with its command's status.
    #[command(
        after_help = "Examples:\n  sandbox wait job\n  sandbox up -d --name job && sandbox wait job"
    )]
    Wait(lifecycle::WaitArgs),
    /// Run a command inside a running sandbox, as confined as its own command.
    #[command(
        after_help = "Examples:\n  sandbox exec api -- ps\n  sandbox exec -t api -- /bin/bash"
    )]
    Exec(lifecycle::ExecArgs),
    /// Stop a running sandbox: SIGTERM to its command, SIGKILL after the grace, then clean up
    /// and forget it (an exited one is only forgotten).
    #[command(after_help = "Examples:\n  sandbox down api\n  sandbox down --all --timeout 2s")]
    Down(lifecycle::DownArgs),
    /// Forget detached sandboxes that have exited: their records and logs.
    #[command(after_help = "Examples:\n  sandbox rm job\n  sandbox rm job other")]
    Rm(lifecycle::RmArgs),
    /// Write the sandbox as an OCI runtime bundle (config.json and rootfs/) for crun, runc or
    /// containerd; --check lists how each setting maps.
    #[command(
        after_help = "Examples:\n  sandbox export --oci ./bundle ci.toml\n  sudo crun run --bundle ./bundle ci\n  sandbox export --oci --check ci.toml\n  sandbox export --oci ./bundle -- /bin/sh -c 'id'"
    )]
    Export(export::ExportArgs),
    /// Check what this host offers sandboxes, and whether a manifest can run here.
    #[command(after_help = "Examples:\n  sandbox doctor\n  sandbox doctor ci.toml --json")]
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  sandbox completions bash > /etc/bash_completion.d/sandbox\n  sandbox completions zsh > ~/.zfunc/_sandbox\n  sandbox completions fish > ~/.config/fish/completions/sandbox.fish"
    )]
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff), as checked in at docs/sandbox.1.
    #[command(hide = true)]
    Manpage,
    /// List or prune the roots unpacked from tarballs and OCI images.
    #[command(after_help = "Examples:\n  sandbox cache ls\n  sandbox cache prune")]
    Cache(cache::CacheArgs),
}

impl Command {
    /// Whether the command only reads and prints, and so may end by SIGPIPE at any point.
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Check(_)
                | Command::Plan(_)
                | Command::Schema
                | Command::Ps(_)
                | Command::Logs(_)
                | Command::Doctor(_)
                | Command::Completions(_)
                | Command::Manpage
        )
    }
}

/// `Cli::parse_from`, but the command tree clap builds to parse is left allocated: dropping
/// it, and the matches, freed a few hundred allocations one by one, a tenth of the
/// instructions a launch runs before its clone (callgrind), for a process about to exit or to
/// supervise its sandbox.
fn parse(args: Vec<std::ffi::OsString>) -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let command = Box::leak(Box::new(Cli::command()));
    let matches = Box::leak(Box::new(
        command
            .try_get_matches_from_mut(args)
            .unwrap_or_else(|error| error.exit()),
    ));
    Cli::from_arg_matches_mut(matches).unwrap_or_else(|error| error.format(command).exit())
}

pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    crate::sys::raw::start_process();
    crate::exec::note_caller_ignored();
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if let Some(status) = docs::complete_if_asked(&args) {
        return status;
    }
    let cli = parse(args);
    crate::sys::raw::set_sigpipe(!cli.command.only_prints());
    let color = cli.color.enabled();
    let out = Output {
        color,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match cli.command {
        Command::Up(args) => up::run(args, &out),
        Command::Check(args) => check::run(args, &out),
        Command::Plan(args) => plan::run(args, &out),
        Command::Schema => schema::run(),
        Command::Init(args) => init::run(args, &out),
        Command::Allow(args) => trust::allow(args, &out),
        Command::Deny(args) => trust::deny(args, &out),
        Command::Completions(args) => docs::completions(args),
        Command::Doctor(args) => doctor::run(args, &out),
        Command::Export(args) => export::run(args, &out),
        Command::Ps(args) => lifecycle::ps(args, &out),
        Command::Logs(args) => lifecycle::logs(args, &out),
        Command::Exec(args) => lifecycle::exec(args, &out),
        Command::Wait(args) => lifecycle::wait(args, &out),
        Command::Down(args) => lifecycle::down(args, &out),
        Command::Rm(args) => lifecycle::rm(args, &out),
        Command::Manpage => docs::manpage(),
        Command::Cache(args) => cache::run(args, &out),
    }
}

/// How to print for this invocation.
pub struct Output {
    pub color: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Output {
    /// Print problems to stderr (see [`Output::shows`]).
    pub fn problems(&self, problems: &[Problem], loaded: &Loaded) {
        say!(text self.problems_text(problems, loaded));
    }

    /// [`Output::problems`] as text, for a message that goes elsewhere first.
    pub fn problems_text(&self, problems: &[Problem], loaded: &Loaded) -> String {
        self.problems_text_in(problems, &loaded.sources)
    }

    /// [`Output::problems_text`] whose spans are in `sources`.
    pub fn problems_text_in(
        &self,
        problems: &[Problem],
        sources: &crate::manifest::SourceMap,
    ) -> String {
        problems
            .iter()
            .filter(|problem| self.shows(problem))
            .map(|problem| {
                let report = Report::new(problem.clone(), sources);
                match problem.shown {
                    Shown::Summary => render_line(&report),
                    _ => render(&report, self.color),
                }
            })
            .collect()
    }

    /// Whether a problem is printed: errors always, warnings unless quiet; a summary without
    /// `-v`, the details it stands for with it.
    pub fn shows(&self, problem: &Problem) -> bool {
        if self.quiet && !problem.is_error() {
            return false;
        }
        match problem.shown {
            Shown::Always => true,
            Shown::Summary => !self.verbose,
            Shown::Verbose => self.verbose,
        }
    }

    pub fn error(&self, message: &str) {
        say!("error: {message}");
    }
}

/// The manifest a command works on: the argument (a file, or a folder holding sandbox.toml), or
/// sandbox.toml in the current folder or the nearest parent.
pub fn find_manifest(argument: Option<&Path>) -> Result<PathBuf, String> {
    match argument {
        Some(path) if path.is_dir() => {
            let candidate = path.join("sandbox.toml");
            if candidate.is_file() {
                Ok(candidate)
            } else {
                Err(format!("{} holds no sandbox.toml", path.display()))
            }
        }
        Some(path) => Ok(path.to_path_buf()),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| format!("cannot read the current folder: {e}"))?;
            manifest::discover(&cwd).ok_or_else(|| {
                format!(
                    "no sandbox.toml in {} or any parent folder; `sandbox init` writes one",
                    cwd.display()
                )
            })
        }
    }
}

/// [`find_manifest`], printing the error; `failure` is the exit status then.
pub fn locate(argument: Option<&Path>, out: &Output, failure: u8) -> Result<PathBuf, u8> {
    find_manifest(argument).map_err(|message| {
        out.error(&message);
        failure
    })
}

/// A manifest found, loaded and validated for this caller, its problems printed.
pub struct Prepared {
    pub host: HostFacts,
    pub loaded: Loaded,
    pub plan: crate::plan::Plan,
}

/// Find, load and validate a manifest and print its problems; `failure` is the exit status
/// when there is no plan.
pub fn prepare(
    argument: Option<&Path>,
    invocation: &Invocation,
    out: &Output,
    failure: u8,
) -> Result<Prepared, u8> {
    let path = locate(argument, out, failure)?;
    let host = HostFacts::live();
    let (loaded, validated) = load_and_validate(&path, &host, invocation);
    out.problems(&validated.problems, &loaded);
    match validated.plan {
        Some(plan) => Ok(Prepared { host, loaded, plan }),
        None => Err(failure),
    }
}

/// Load and validate a manifest for this host and caller.
pub fn load_and_validate(
    path: &Path,
    host: &HostFacts,
    invocation: &Invocation,
) -> (Loaded, Validated) {
    let loaded = manifest::load(path, &host.caller.vars());
    let validated = validate::validate(&loaded, host, invocation);
    (loaded, validated)
}
