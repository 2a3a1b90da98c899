//! Documentation generated from the command-line definition itself: shell completions and the
//! man page, so they can never disagree with what the parser accepts.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

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

pub fn completion_script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sandbox", &mut out);
    String::from_utf8(out).expect("completion scripts are UTF-8")
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
    writeln!(
        out,
        ".SH EXIT STATUS\n.TP\nthe command's\n\\fBsandbox up\\fR passes the command's status through; 128+N when it was killed by signal N\n.TP\n1\n\\fBcheck\\fR or \\fBplan\\fR: a manifest is invalid\n.TP\n124\nthe command ran past process.timeout\n.TP\n125\nthe launcher itself failed (an invalid manifest included)\n.TP\n126\nthe command is not executable\n.TP\n127\nthe command was not found\n.SH SEE ALSO\ndocs/manifest.md, the reference of the manifest format."
    )
    .expect("writing to a Vec");
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
