//! Input files that are not regular files (a FIFO, a device, either through a symlink a
//! repository can carry) get a clear error at once from every reader: the manifest, an
//! `extends` file, the local override, a tar root, an OCI layout, state and trust records.
//! Each of these made `check`, `up` or `ps` wait forever.
//!
//! Every command runs under a deadline that only catches a hang (it is no measure of speed):
//! a command still running then is killed and the test fails.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};

const ROOT: &str = "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n";

fn fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// `sandbox ARGS` in `dir` with `env`, its stdin a terminal-less null; fails the test if it is
/// still waiting after a minute.
fn sandbox(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
        .env("SANDBOX_STATE_DIR", dir.join(".state"))
        .env("SANDBOX_CACHE_DIR", dir.join(".cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sandbox");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().expect("wait")));
    match output.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output,
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("sandbox {args:?} hangs");
        }
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `sandbox check` fails at once, and says what the file is.
fn refused(dir: &Path, manifest: &str, says: &[&str]) {
    let out = sandbox(dir, &["check", manifest], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{manifest}: {err}");
    for words in says {
        assert!(err.contains(words), "{manifest}: {words:?} not in\n{err}");
    }
}

#[test]
fn a_manifest_that_is_no_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    fifo(&dir.join("fifo.toml"));
    refused(
        dir,
        "fifo.toml",
        &["fifo.toml is a FIFO, not a regular file"],
    );
    symlink("/dev/zero", dir.join("zero.toml")).unwrap();
    refused(dir, "zero.toml", &["zero.toml is a character device"]);
    symlink("fifo.toml", dir.join("link.toml")).unwrap();
    refused(dir, "link.toml", &["link.toml is a FIFO"]);
}

#[test]
fn merged_files_that_are_no_regular_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    fifo(&dir.join("base.toml"));
    std::fs::write(
        dir.join("extends.toml"),
        format!("extends = [\"base.toml\"]\n{ROOT}"),
    )
    .unwrap();
    refused(
        dir,
        "extends.toml",
        &["sandbox::extends::missing", "base.toml is a FIFO"],
    );
    // The local override is one person's settings: one that cannot be read is an error, not
    // a sandbox without them.
    std::fs::write(dir.join("sandbox.toml"), ROOT).unwrap();
    fifo(&dir.join("sandbox.local.toml"));
    refused(
        dir,
        "sandbox.toml",
        &[
            "sandbox::manifest::unreadable",
            "sandbox.local.toml is a FIFO",
        ],
    );
}

#[test]
fn roots_that_are_no_regular_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    fifo(&dir.join("root.tar"));
    let tar = "[rootfs]\ntar = \"root.tar\"\n[process]\ncommand = [\"/bin/true\"]\n";
    std::fs::write(dir.join("tar.toml"), tar).unwrap();
    refused(dir, "tar.toml", &["root.tar is not a regular file"]);
    let up = sandbox(dir, &["up", "tar.toml"], &[]);
    assert_eq!(up.status.code(), Some(125), "{}", stderr(&up));

    // An OCI layout whose index.json, then whose manifest blob, is a FIFO.
    let image = dir.join("image");
    std::fs::create_dir_all(image.join("blobs/sha256")).unwrap();
    fifo(&image.join("index.json"));
    let oci = "[rootfs]\noci = \"image\"\n[process]\ncommand = [\"/bin/true\"]\n";
    std::fs::write(dir.join("oci.toml"), oci).unwrap();
    refused(
        dir,
        "oci.toml",
        &["sandbox::rootfs::image", "index.json is a FIFO"],
    );
    std::fs::remove_file(image.join("index.json")).unwrap();
    let digest = "a".repeat(64);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{digest}"), "size": 100,
    }]});
    std::fs::write(image.join("index.json"), index.to_string()).unwrap();
    fifo(&image.join("blobs/sha256").join(&digest));
    refused(dir, "oci.toml", &["sandbox::rootfs::image", "is a FIFO"]);
    std::fs::remove_file(image.join("blobs/sha256").join(&digest)).unwrap();
    // A symlink inside the judged layout leads somewhere that was not judged: refused as one,
    // not followed (to /dev/zero, it would never end).
    symlink("/dev/zero", image.join("blobs/sha256").join(&digest)).unwrap();
    refused(dir, "oci.toml", &["is a symbolic link, not a regular file"]);
}

#[test]
fn records_that_are_no_regular_files_are_skipped_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // A state record planted as a FIFO: `ps` lists nothing for it.
    std::fs::create_dir_all(dir.join(".state")).unwrap();
    fifo(&dir.join(".state/planted.json"));
    let ps = sandbox(dir, &["ps"], &[]);
    assert!(ps.status.success(), "{}", stderr(&ps));
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("planted"));

    // A trust record planted as a FIFO: the manifest is not allowed, and with no terminal to
    // ask on, `up` refuses at once.
    let manifest = dir.join("sandbox.toml");
    std::fs::write(&manifest, format!("{ROOT}[security]\nseccomp = \"off\"\n")).unwrap();
    let data = dir.join("data");
    let trust = data.join("sandbox/trust");
    std::fs::create_dir_all(&trust).unwrap();
    let key: String = Sha256::digest(manifest.as_os_str().as_encoded_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fifo(&trust.join(key));
    let up = sandbox(dir, &["up", "sandbox.toml"], &[("XDG_DATA_HOME", &data)]);
    assert_eq!(up.status.code(), Some(125), "{}", stderr(&up));
    assert!(
        stderr(&up).contains("asks for more than the default jail"),
        "{}",
        stderr(&up)
    );
}
