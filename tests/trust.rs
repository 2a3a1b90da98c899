//! Trust for checked-in manifests: a manifest asking for more than the default jail runs only
//! once its exact content was allowed.

mod live;

use live::{Project, Who, stderr};

/// A home folder outside the project, owned by whoever runs the sandbox.
fn home_outside(p: &Project) -> tempfile::TempDir {
    let home = tempfile::Builder::new()
        .prefix("sandbox-home-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    if p.who == Who::Rootless && nix::unistd::geteuid().is_root() {
        let (uid, gid) = live::rootless_ids().unwrap();
        std::os::unix::fs::chown(home.path(), Some(uid), Some(gid)).unwrap();
    }
    home
}

/// `sandbox ARGS` with an isolated trust store and home folder.
fn sandbox(p: &Project, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    p.command(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .output()
        .expect("run sandbox")
}

as_root_and_rootless! {
    fn a_manifest_asking_for_more_runs_only_once_allowed(who) {
        let p = Project::new(who, "extends = [\"base.toml\"]\n[[mount]]\ntype = \"bind\"\nsource = \"${HOME}\"\ntarget = \"/home-of-caller\"\nreadonly = false\n");
        p.write("base.toml", "[rootfs]\nhost = true\n");
        let home = home_outside(&p);
        let home = home.path();
        let manifest = p.manifest();
        let manifest = manifest.to_str().unwrap();
        let up = ["up", manifest, "--", "/bin/sh", "-c", "echo ran"];

        let refused = sandbox(&p, home, &up);
        assert_eq!(refused.status.code(), Some(125));
        let err = stderr(&refused);
        assert!(err.contains("asks for more than the default jail"), "{err}");
        assert!(err.contains(&format!("!! binds {} WRITABLE (in your home folder)", home.display())), "{err}");
        assert!(err.contains("sandbox allow"), "{err}");

        let allowed = sandbox(&p, home, &["allow", manifest]);
        assert!(allowed.status.success(), "{}", stderr(&allowed));
        let ran = sandbox(&p, home, &up);
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "ran\n", "{}", stderr(&ran));

        // One byte changed in the extended file: asked again.
        p.write("base.toml", "[rootfs]\nhost = true \n");
        assert_eq!(sandbox(&p, home, &up).status.code(), Some(125));

        let denied = sandbox(&p, home, &["deny", manifest]);
        assert!(denied.status.success());
    }

    fn the_default_jail_runs_without_asking(who) {
        let p = Project::new(who, "[rootfs]\nhost = true\n[[mount]]\ntype = \"bind\"\nsource = \".\"\ntarget = \"/work\"\nreadonly = false\n");
        let home = p.mkdir("home");
        let manifest = p.manifest();
        let ran = sandbox(&p, &home, &["up", manifest.to_str().unwrap(), "--", "/bin/true"]);
        assert!(ran.status.success(), "{}", stderr(&ran));
        assert!(!home.join("data/sandbox/trust").exists(), "nothing recorded");
    }

    fn trust_once_runs_without_recording(who) {
        let p = Project::new(who, "[rootfs]\nhost = true\n[security]\nseccomp = \"off\"\n");
        let home = p.mkdir("home");
        let manifest = p.manifest();
        let manifest = manifest.to_str().unwrap();
        let once = sandbox(&p, &home, &["up", "--trust", manifest, "--", "/bin/true"]);
        assert!(once.status.success(), "{}", stderr(&once));
        let again = sandbox(&p, &home, &["up", manifest, "--", "/bin/true"]);
        assert_eq!(again.status.code(), Some(125), "--trust recorded nothing");
    }

    fn check_shows_what_a_manifest_asks_for(who) {
        let p = Project::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n[namespaces]\nipc = false\n");
        let home = p.mkdir("home");
        let manifest = p.manifest();
        let checked = sandbox(&p, &home, &["check", manifest.to_str().unwrap()]);
        assert!(checked.status.success(), "a note is not an error");
        assert!(stderr(&checked).contains("shares the host's ipc namespaces"), "{}", stderr(&checked));
    }
}

/// Symlinks to the victim folder from the project: relative, absolute, and a symlinked parent
/// folder, each bound writable at /v; with the folder each leads to.
fn links_out(p: &Project, victim: &std::path::Path) -> Vec<(&'static str, std::path::PathBuf)> {
    use std::os::unix::fs::symlink;
    let name = victim.file_name().unwrap().to_str().unwrap();
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    let links = [
        ("hh", format!("../{name}"), "hh", victim.to_path_buf()),
        (
            "abs",
            victim.display().to_string(),
            "abs",
            victim.to_path_buf(),
        ),
        (
            "parent",
            victim.display().to_string(),
            "parent/sub",
            victim.join("sub"),
        ),
    ];
    links
        .into_iter()
        .map(|(link, to, source, leads)| {
            symlink(&to, p.path().join(link)).unwrap();
            p.give(&p.path().join(link));
            (source, leads)
        })
        .collect()
}

as_root_and_rootless! {
    fn a_symlink_out_of_the_project_is_judged_where_it_leads(who) {
        let p = Project::new(who, "");
        let victim = home_outside(&p);
        let home = p.mkdir("home");
        for (source, leads) in links_out(&p, victim.path()) {
            p.write("sandbox.toml", &format!(
                "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n[[mount]]\ntype = \"bind\"\nsource = \"{source}\"\ntarget = \"/v\"\nreadonly = false\n"
            ));
            let manifest = p.manifest();
            let manifest = manifest.to_str().unwrap();
            let asked = format!("!! binds {} WRITABLE", leads.display());

            let checked = sandbox(&p, &home, &["check", manifest]);
            assert!(checked.status.success(), "{}", stderr(&checked));
            assert!(stderr(&checked).contains("asks for more than the default jail"), "{source}: {}", stderr(&checked));
            assert!(stderr(&checked).contains(&asked), "{source}: {}", stderr(&checked));

            let up = sandbox(&p, &home, &["up", manifest, "--", "/bin/touch", "/v/written"]);
            assert_eq!(up.status.code(), Some(125), "{source}: {}", stderr(&up));
            assert!(stderr(&up).contains(&asked), "{source}: {}", stderr(&up));
            assert!(!leads.join("written").exists(), "{source}: the command ran");
        }
    }

    fn what_is_mounted_is_what_was_judged_even_if_swapped_meanwhile(who) {
        // The trust prompt holds `up` between judging the plan and mounting it: the bound
        // folder is swapped for a symlink to another then, and the sandbox must still see the
        // folder that was judged.
        let p = Project::new(who, "[rootfs]\nhost = true\n[process]\ntty = \"never\"\n[namespaces]\nipc = false\n[[mount]]\ntype = \"bind\"\nsource = \"data\"\ntarget = \"/data\"\n");
        p.write("data/marker", "judged\n");
        let victim = home_outside(&p);
        std::fs::write(victim.path().join("marker"), "swapped in\n").unwrap();
        let home = p.mkdir("home");
        let manifest = p.manifest();

        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = || std::process::Stdio::from(std::fs::File::from(pty.slave.try_clone().unwrap()));
        let up = p.command(&["up", manifest.to_str().unwrap(), "--", "/bin/cat", "/data/marker"])
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .stdin(slave())
            .stderr(slave())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut master = std::fs::File::from(pty.master);
        let mut said = String::new();
        while !said.contains("[y/N]") {
            let mut buffer = [0u8; 1024];
            let n = std::io::Read::read(&mut master, &mut buffer).unwrap();
            assert!(n > 0, "up ended before asking: {said}");
            said.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        std::fs::rename(p.path().join("data"), p.path().join("data.judged")).unwrap();
        std::os::unix::fs::symlink(victim.path(), p.path().join("data")).unwrap();
        std::io::Write::write_all(&mut master, b"y\n").unwrap();
        let out = up.wait_with_output().unwrap();
        assert!(out.status.success(), "{said}");
        assert_eq!(live::stdout(&out), "judged\n");
    }
}

/// As root, a manifest may map any host ids into the sandbox: gid 42 is the shadow group, and
/// /etc/shadow a system file any manifest may bind read-only. Ids that are not the sandbox's
/// own are asked for, and once allowed, no bind is id-mapped onto them (the caller's files
/// would be that user's).
#[test]
fn as_root_a_map_onto_other_users_ids_is_asked_for_and_given_no_files() {
    if !live::available(Who::Root) {
        return;
    }
    let p = Project::new(
        Who::Root,
        "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/cat\", \"/s\"]\ngroup = 42\n[[gid_map]]\ninside = 42\noutside = 42\ncount = 1\n[[mount]]\ntype = \"bind\"\nsource = \"/etc/shadow\"\ntarget = \"/s\"\n",
    );
    let home = p.mkdir("home");
    let manifest = p.manifest();
    let manifest = manifest.to_str().unwrap();
    let asked = "!! maps host gids 42 into the sandbox, which are not its own";
    let checked = sandbox(&p, &home, &["check", manifest]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(stderr(&checked).contains(asked), "{}", stderr(&checked));
    let up = sandbox(&p, &home, &["up", manifest, "--", "/bin/cat", "/s"]);
    assert_eq!(up.status.code(), Some(125), "{}", stderr(&up));
    assert!(stderr(&up).contains(asked), "{}", stderr(&up));
    assert_eq!(live::stdout(&up), "", "the command ran");

    let (uid, gid) = live::rootless_ids().unwrap();
    p.write("sandbox.toml", &format!(
        "[rootfs]\nhost = true\n[[uid_map]]\ninside = 0\noutside = {uid}\ncount = 1\n[[gid_map]]\ninside = 0\noutside = {gid}\ncount = 1\n[[mount]]\ntype = \"bind\"\nsource = \"data\"\ntarget = \"/data\"\n"
    ));
    p.write("data/roots", "x\n");
    let stat = [
        "up",
        "--trust",
        manifest,
        "--",
        "/usr/bin/stat",
        "-c",
        "%u %g",
        "/data/roots",
    ];
    let up = sandbox(&p, &home, &stat);
    assert!(up.status.success(), "{}", stderr(&up));
    assert_eq!(
        live::stdout(&up),
        "65534 65534\n",
        "root's file is nobody's inside, not the command's"
    );
}
