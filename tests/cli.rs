//! The command line as people meet it: help, completions, man page, colours.

use std::process::Command;

use clap::CommandFactory;
use sandbox::cli::Cli;

fn sandbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(args)
        .output()
        .expect("run sandbox")
}

fn subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect()
}

#[test]
fn the_checked_in_man_page_is_current() {
    let generated = sandbox(&["manpage"]);
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sandbox.1")).unwrap();
    assert!(
        generated.stdout == checked_in.as_bytes(),
        "docs/sandbox.1 is stale: regenerate it with `cargo run -q -- manpage > docs/sandbox.1`"
    );
}

#[test]
fn man_page_and_completions_mention_every_subcommand() {
    let man = String::from_utf8(sandbox(&["manpage"]).stdout).unwrap();
    let names = subcommands();
    assert!(names.len() >= 7, "{names:?}");
    for name in &names {
        assert!(
            man.contains(&format!("sandbox {name}")),
            "the man page misses {name}"
        );
    }
    for section in [
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
        ".SH SEE ALSO",
    ] {
        assert!(man.contains(section), "the man page has no {section}");
    }
    let see_also = &man[man.find(".SH SEE ALSO").unwrap()..];
    assert!(
        !see_also.contains("docs/") && !see_also.contains(".md"),
        "SEE ALSO names a file of the source tree: {see_also}"
    );
    // The scripts ask `sandbox` itself at each TAB; what it answers for `sandbox <TAB>`:
    let candidates = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["--", "sandbox", ""])
        .env("SANDBOX_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "1")
        .env("_CLAP_IFS", "\n")
        .output()
        .unwrap();
    assert!(candidates.status.success());
    let candidates = String::from_utf8(candidates.stdout).unwrap();
    let candidates: Vec<&str> = candidates.lines().collect();
    for name in &names {
        assert!(
            candidates.contains(&name.as_str()),
            "completions miss {name}"
        );
    }
    assert!(
        !candidates.contains(&"manpage"),
        "completions list the hidden manpage: {candidates:?}"
    );
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = sandbox(&["completions", shell]);
        assert!(script.status.success());
        let script = String::from_utf8(script.stdout).unwrap();
        assert!(
            script.contains("SANDBOX_COMPLETE") && script.contains("sandbox"),
            "{shell}: {script}"
        );
    }
}

/// `source <(sandbox completions bash)` in a real bash, then a TAB after `sandbox `.
#[test]
fn the_bash_script_completes_subcommands_in_bash() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sandbox"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let script = "source <(sandbox completions bash)\nCOMP_WORDS=(sandbox 'do')\nCOMP_CWORD=1\nCOMP_TYPE=9\n_clap_complete_sandbox sandbox do sandbox\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
    let out = Command::new("bash")
        .args(["-c", script])
        .env("PATH", format!("{bin}:/usr/bin:/bin"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "down\ndoctor\n");
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for name in subcommands() {
        let help = sandbox(&[&name, "--help"]);
        assert!(help.status.success(), "{name} --help");
        let text = String::from_utf8(help.stdout).unwrap();
        assert!(
            text.contains("Example"),
            "`sandbox {name} --help` shows no example:\n{text}"
        );
    }
}

#[test]
fn colours_follow_color_and_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("sandbox.toml");
    std::fs::write(&manifest, "[rootfs]\nhost = 1\n").unwrap();
    let manifest = manifest.to_str().unwrap();
    let run = |args: &[&str], no_color: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sandbox"));
        command.args(args).arg(manifest);
        if no_color {
            command.env("NO_COLOR", "1");
        } else {
            command.env_remove("NO_COLOR");
        }
        String::from_utf8(command.output().unwrap().stderr).unwrap()
    };
    assert!(
        run(&["--color", "always", "check"], false).contains('\u{1b}'),
        "colours when asked"
    );
    assert!(!run(&["--color", "never", "check"], false).contains('\u{1b}'));
    assert!(
        !run(&["check"], true).contains('\u{1b}'),
        "NO_COLOR, and stderr is not a terminal"
    );
    let quiet = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["--quiet", "check", manifest])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("errors,"),
        "quiet drops the summary line"
    );
}

/// A stdout whose reader has gone (`sandbox ps | head -1` once head has exited): the commands
/// that only print end by SIGPIPE, as cat does; the others ignore it and finish their work.
/// Neither panics.
#[test]
fn a_reader_gone_ends_a_listing_quietly_and_nothing_panics() {
    use std::os::unix::process::ExitStatusExt;
    let closed = || {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        std::process::Stdio::from(write_end)
    };
    let schema = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .arg("schema")
        .stdout(closed())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&schema.stderr);
    assert_eq!(schema.status.signal(), Some(libc::SIGPIPE), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    let minimal = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/minimal.toml");
    let dry_run = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["up", "--dry-run", minimal])
        .stdout(closed())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dry_run.stderr);
    assert_eq!(dry_run.status.code(), Some(0), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}
