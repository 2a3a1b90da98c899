//! Documentation generated from the command-line definition itself: shell completions and the
//! man page, so they can never disagree with what the parser accepts.

use std::ffi::OsString;
use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::env::Shells;
use clap_complete::{CompleteEnv, Shell};

use super::{Cli, exit};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn completions(args: CompletionsArgs) -> u8 {
    show!(text completion_script(args.shell));
    exit::SUCCESS
}

/// What the completion scripts set when they ask `sandbox` itself for the candidates; a name
/// of ours, so that no other program's setting turns it on.
const COMPLETE_VAR: &str = "SANDBOX_COMPLETE";

/// The script a shell sources: at each TAB it runs `sandbox` with [`COMPLETE_VAR`] set, which
/// answers from the command-line definition (hidden subcommands left out) and, for the
/// lifecycle commands, with the names of the caller's sandboxes. clap_complete's dynamic
/// completion, rather than a static script, because names change at run time.
pub fn completion_script(shell: Shell) -> String {
    let shells = Shells::builtins();
    let completer = shells
        .completer(&shell.to_string())
        .expect("clap_complete completes every shell it names");
    let mut out = Vec::new();
    completer
        .write_registration(COMPLETE_VAR, "sandbox", "sandbox", "sandbox", &mut out)
        .expect("writing to a Vec");
    String::from_utf8(out).expect("completion scripts are UTF-8")
}

/// When a completion script asks, the candidates for the words in `args`; `None` for a run
/// that is not a completion (one environment lookup on the launch path).
pub fn complete_if_asked(args: &[OsString]) -> Option<u8> {
    std::env::var_os(COMPLETE_VAR)?;
    let here = std::env::current_dir().ok();
    match CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .try_complete(args.iter().cloned(), here.as_deref())
    {
        Ok(true) => Some(exit::SUCCESS),
        Ok(false) => None,
        Err(error) => {
            let _ = error.print();
            Some(exit::INVALID)
        }
    }
}

pub fn manpage() -> u8 {
    show!(text manpage_text());
    exit::SUCCESS
}

/// The page for `sandbox` with a section per subcommand.
pub fn manpage_text() -> String {
    let command = Cli::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(&mut out).expect("writing to a Vec");
    man.render_name_section(&mut out).expect("writing to a Vec");
    man.render_synopsis_section(&mut out)
        .expect("writing to a Vec");
    man.render_description_section(&mut out)
        .expect("writing to a Vec");
    man.render_options_section(&mut out)
        .expect("writing to a Vec");
    writeln!(out, ".SH COMMANDS").expect("writing to a Vec");
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("sandbox {}", sub.get_name());
        writeln!(out, ".SS {name}").expect("writing to a Vec");
        if let Some(about) = sub.get_about() {
            writeln!(out, "{}", roff_escape(&about.to_string())).expect("writing to a Vec");
        }
        let sub_man = clap_mangen::Man::new(sub.clone().bin_name(name));
        sub_man
            .render_synopsis_section(&mut out)
            .expect("writing to a Vec");
        sub_man
            .render_options_section(&mut out)
            .expect("writing to a Vec");
        if let Some(after) = sub.get_after_help() {
            writeln!(out, ".PP\n.nf\n{}\n.fi", roff_escape(&after.to_string()))
                .expect("writing to a Vec");
        }
    }
    out.extend_from_slice(TRAILER.as_bytes());
    String::from_utf8(out).expect("roff is UTF-8")
}

fn roff_escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\\\");
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sections after the commands: what the parser cannot say.
const TRAILER: &str = r#".SH EXIT STATUS
.TP
the command's
\fBsandbox up\fR and \fBsandbox wait\fR pass the command's status through; 128+N when it was killed by signal N
.TP
1
\fBcheck\fR or \fBplan\fR: a manifest is invalid; \fBps\fR, \fBlogs\fR, \fBdown\fR, \fBrm\fR: no such sandbox, or the state folder is refused
.TP
124
the command ran past process.timeout (\fBup\fR says so on stderr)
.TP
125
the launcher itself failed (an invalid manifest included)
.TP
126
the command is not executable
.TP
127
the command was not found
.SH ENVIRONMENT
.TP
\fBSANDBOX_STATE_DIR\fR
the folder of the records of named sandboxes (absolute path); see FILES
.TP
\fBSANDBOX_CACHE_DIR\fR
the cache of roots unpacked from tarballs and OCI images
.TP
\fBXDG_RUNTIME_DIR\fR, \fBXDG_CACHE_HOME\fR, \fBXDG_DATA_HOME\fR, \fBHOME\fR
where the state folder, the cache and the trust store are, for a caller other than root
.TP
\fBNO_COLOR\fR
no colours in diagnostics (\fB--color auto\fR, the default)
.TP
\fBSANDBOX_COMPLETE\fR
set by the completion scripts when they ask \fBsandbox\fR for candidates
.SH FILES
.TP
\fIsandbox.toml\fR, \fIsandbox.local.toml\fR
the manifest, in the current folder or the nearest parent, and one person's overrides beside it
.TP
\fI/run/sandbox\fR (root), \fI$XDG_RUNTIME_DIR/sandbox\fR, else \fI/tmp/sandbox-UID\fR
the state folder: \fINAME.json\fR, the record of a named sandbox, locked by its supervisor while it runs, and \fINAME.log\fR, a detached sandbox's output; kept after a detached sandbox exited until \fBsandbox rm\fR
.TP
\fI/var/cache/sandbox\fR (root), else \fI$XDG_CACHE_HOME/sandbox\fR or \fI~/.cache/sandbox\fR
the cache of unpacked roots
.TP
\fI$XDG_DATA_HOME/sandbox/trust\fR or \fI~/.local/share/sandbox/trust\fR
the manifests allowed with \fBsandbox allow\fR
.TP
\fI/run/sandbox/net\fR
the address leases of bridge networks
.PP
Each of these folders must belong to the caller and be writable by nobody else, inside folders only root and the caller can change (or sticky ones, as /tmp); \fBsandbox\fR refuses one that is not, and a symbolic link in its place.
.SH EXAMPLES
.nf
sandbox init && sandbox up
sandbox up ci.toml \-\- cargo test
sandbox up \-d \-\-name api && sandbox logs \-f api
sandbox exec api \-\- ps
sandbox up \-d \-\-name job \-\- make && sandbox wait job; sandbox rm job
sandbox ps \-\-all
sandbox down \-\-all
source <(sandbox completions bash)
.fi
.SH SEE ALSO
\fBbwrap\fR(1), \fBunshare\fR(1), \fBnsenter\fR(1), \fBsystemd-nspawn\fR(1), \fBcrun\fR(1), \fBpasta\fR(1), \fBnamespaces\fR(7), \fBuser_namespaces\fR(7), \fBcgroups\fR(7), \fBcapabilities\fR(7), \fBseccomp\fR(2), \fBlandlock\fR(7)
.PP
The manifest format: \fBsandbox schema\fR prints its JSON Schema, \fBsandbox init\fR writes a commented example, and \fBsandbox plan \-\-explain\fR tells where each decision came from.
"#;
