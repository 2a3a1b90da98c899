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
