//! Tar and OCI roots for real: archives built here from busybox-static, unpacked into a cache
//! in the test's own folder (never the caller's), run as root and rootless. Hostile archives
//! must be refused or neutralised with nothing written outside the cache.

mod live;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use live::{Project, Who, stderr, stdout};
use sha2::{Digest, Sha256};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "id", "stat", "echo", "test", "touch", "head", "pwd", "sleep", "env",
    "true", "tty",
];

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An archive being built in memory.
struct Archive(tar::Builder<Vec<u8>>);

impl Archive {
    fn new() -> Archive {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Complete);
        Archive(builder)
    }

    /// busybox and the applets the tests use, /etc/passwd, and the usual empty dirs.
    fn busybox() -> Archive {
        let mut archive = Archive::new();
        for dir in ["bin", "etc", "proc", "dev", "tmp"] {
            archive.dir(dir, 0o755);
        }
        let busybox = std::fs::read(BUSYBOX).expect("busybox-static is installed (.ci/run)");
        archive.file_owned("bin/busybox", &busybox, 0o755, 0, 0);
        for applet in APPLETS {
            archive.symlink(&format!("bin/{applet}"), "busybox");
        }
        archive.file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n", 0o644);
        archive
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Directory, mode, 0);
        self.0
            .append_data(&mut header, path, std::io::empty())
            .unwrap();
        self
    }

    fn file(&mut self, path: &str, content: &[u8], mode: u32) -> &mut Self {
        self.file_owned(path, content, mode, 0, 0)
    }

    fn file_owned(
        &mut self,
        path: &str,
        content: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Regular, mode, content.len() as u64);
        header.set_uid(uid);
        header.set_gid(gid);
        self.0.append_data(&mut header, path, content).unwrap();
        self
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Link, 0o644, 0);
        // append_link would refuse a `..` target: write the raw name as a hostile tool would.
        header.set_link_name_literal(target).unwrap();
        self.0
            .append_data(&mut header, path, std::io::empty())
            .unwrap();
        self
    }

    /// An entry with a raw path (`..` and all), which tar::Builder's checked setters refuse.
    fn raw_file(&mut self, path: &str, content: &[u8]) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Regular, 0o644, content.len() as u64);
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        self.0.append(&header, content).unwrap();
        self
    }

    fn device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Char, 0o666, 0);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.0
            .append_data(&mut header, path, std::io::empty())
            .unwrap();
        self
    }

    /// A GNU sparse file that claims `real_size` bytes with one 512-byte block of data.
    fn sparse(&mut self, path: &str, real_size: u64) -> &mut Self {
        let mut header = Self::header(tar::EntryType::GNUSparse, 0o644, 512);
        header.set_path(path).unwrap();
        let gnu = header.as_gnu_mut().unwrap();
        gnu.sparse[0].offset = base256(real_size - 512);
        gnu.sparse[0].numbytes = base256(512);
        gnu.realsize = base256(real_size);
        header.set_cksum();
        self.0.append(&header, &[b'x'; 512][..]).unwrap();
        self
    }

    /// A pax header for the next entry (extended attributes are `SCHILY.xattr.NAME` records).
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // "LEN KEY=VALUE\n", where LEN counts itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len = len.to_string().len() + rest;
            }
            data.extend(format!("{len} {key}=").as_bytes());
            data.extend(*value);
            data.push(b'\n');
        }
        let mut header = Self::header(tar::EntryType::XHeader, 0o644, data.len() as u64);
        self.0
            .append_data(&mut header, "PaxHeader", &data[..])
            .unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }

    fn gzip(self) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&self.bytes()).unwrap();
        encoder.finish().unwrap()
    }
}

/// A number in tar's base-256 form (the high bit of the first byte set), which holds sizes
/// beyond the 8 GiB of 11 octal digits.
fn base256<const N: usize>(value: u64) -> [u8; N] {
    let mut field = [0u8; N];
    field[0] = 0x80;
    field[N - 8..].copy_from_slice(&value.to_be_bytes());
    field
}

/// A project whose cache is its own `cache/` folder.
struct Rooted {
    project: Project,
}

impl Rooted {
    fn new(who: Who, manifest: &str) -> Rooted {
        Rooted {
            project: Project::new(who, manifest),
        }
    }

    fn cache(&self) -> PathBuf {
        self.project.path().join("cache")
    }

    fn write_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.project.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        self.project.give(&path);
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.project.command(args);
        command.env("SANDBOX_CACHE_DIR", self.cache());
        command
    }

    fn up(&self, command: &[&str]) -> Output {
        let manifest = self.project.manifest();
        let mut args = vec!["up", "-v", manifest.to_str().unwrap()];
        if !command.is_empty() {
            args.push("--");
            args.extend_from_slice(command);
        }
        self.command(&args).output().expect("run sandbox")
    }

    fn sh(&self, script: &str) -> String {
        let output = self.up(&["/bin/sh", "-c", script]);
        assert!(
            output.status.success(),
            "sandbox up failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// The unpacked roots in the cache.
    fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = std::fs::read_dir(self.cache().join("roots"))
            .map(|dir| {
                dir.map(|e| e.unwrap().path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        roots.sort();
        roots
    }

    /// Nothing half-unpacked is left behind.
    fn assert_no_scratch(&self) {
        let leftovers: Vec<_> = std::fs::read_dir(self.cache().join("tmp"))
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "scratch left in the cache: {leftovers:?}"
        );
    }
}

fn tar_root(who: Who, archive: &str, extra: &str) -> Rooted {
    Rooted::new(
        who,
        &format!("[rootfs]\ntar = \"{archive}\"\n{extra}[process]\ncommand = [\"/bin/sh\"]\n"),
    )
}

fn compress(kind: &str, tar: Vec<u8>) -> Vec<u8> {
    match kind {
        "tar" => tar,
        "tar.gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        }
        "tar.zst" => zstd::encode_all(&tar[..], 3).unwrap(),
        "tar.xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        }
        other => panic!("no compression {other}"),
    }
}

as_root_and_rootless! {
    fn a_tarball_root_runs_from_every_compression(who) {
        for kind in ["tar", "tar.gz", "tar.zst", "tar.xz"] {
            let mut archive = Archive::busybox();
            archive.file("hello", b"hello from the tarball\n", 0o644);
            archive.file_owned("srv/www", b"web\n", 0o640, 33, 33);
            let name = format!("root.{kind}");
            let p = tar_root(who, &name, "");
            p.write_bytes(&name, &compress(kind, archive.bytes()));
            let out = p.sh("cat /hello; stat -c '%u %g %a' /hello /srv/www; touch /new 2>&1 || echo read-only");
            // As root the archive's owners are kept (and id-mapped); rootless every file is the
            // caller's, which the sandbox shows as its root.
            let www = if who == Who::Root { "33 33 640" } else { "0 0 640" };
            assert_eq!(
                out.lines().take(3).collect::<Vec<_>>(),
                ["hello from the tarball", "0 0 644", www],
                "{kind}: {out}"
            );
            assert!(out.ends_with("read-only\n"), "{kind}: the root is read-only: {out}");
        }
    }

    fn a_writable_archive_root_writes_to_its_own_layer(who) {
        let p = tar_root(who, "root.tar.gz", "readonly = false\n");
        p.write_bytes("root.tar.gz", &Archive::busybox().gzip());
        assert_eq!(p.sh("echo written > /etc/new && cat /etc/new"), "written\n");
        let [root] = p.roots().try_into().expect("one root");
        assert!(!root.join("etc/new").exists(), "the shared tree is never written");
        assert_eq!(p.sh("cat /etc/new 2>&1 || echo gone"), "cat: can't open '/etc/new': No such file or directory\ngone\n");
    }

    fn the_second_run_uses_the_cache(who) {
        let p = tar_root(who, "root.tar.gz", "");
        p.write_bytes("root.tar.gz", &Archive::busybox().gzip());
        let first = p.up(&["/bin/true"]);
        assert!(first.status.success(), "{}", stderr(&first));
        assert!(stderr(&first).contains("rootfs         unpacked sha256:"), "{}", stderr(&first));
        let [root] = p.roots().try_into().expect("one root");
        let before = std::fs::metadata(&root).unwrap();
        let second = p.up(&["/bin/true"]);
        assert!(second.status.success(), "{}", stderr(&second));
        assert!(stderr(&second).contains("rootfs         cached sha256:"), "{}", stderr(&second));
        let after = std::fs::metadata(&root).unwrap();
        assert_eq!((before.ino(), before.mtime_nsec(), before.ctime_nsec()), (after.ino(), after.mtime_nsec(), after.ctime_nsec()));
        // The tarball's digest names the root: a copy elsewhere is the same root.
        p.write_bytes("copy.tar.gz", &std::fs::read(p.project.path().join("root.tar.gz")).unwrap());
        p.project.write("sandbox.toml", "[rootfs]\ntar = \"copy.tar.gz\"\n");
        let copy = p.up(&["/bin/true"]);
        assert!(copy.status.success(), "{}", stderr(&copy));
        assert_eq!(p.roots(), [root]);
        p.assert_no_scratch();
    }

    fn concurrent_first_runs_unpack_once(who) {
        let p = tar_root(who, "root.tar.gz", "");
        let mut archive = Archive::busybox();
        // Big enough that the runs overlap while it unpacks.
        let filler: Vec<u8> = (0..8 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        archive.file("filler", &filler, 0o644);
        p.write_bytes("root.tar.gz", &archive.gzip());
        let manifest = p.project.manifest();
        let children: Vec<_> = (0..4)
            .map(|_| {
                p.command(&["up", "-v", manifest.to_str().unwrap(), "--", "/bin/stat", "-c", "%s", "/filler"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let mut unpacked = 0;
        for out in &outputs {
            assert!(out.status.success(), "{}", stderr(out));
            assert_eq!(stdout(out), format!("{}\n", 8 << 20));
            unpacked += stderr(out).matches("rootfs         unpacked").count();
        }
        assert_eq!(unpacked, 1, "exactly one run unpacks");
        assert_eq!(p.roots().len(), 1);
        p.assert_no_scratch();
    }

    fn a_sha256_mismatch_is_refused_and_caches_nothing(who) {
        let archive = Archive::busybox().gzip();
        let p = tar_root(who, "root.tar.gz", &format!("sha256 = \"{}\"\n", "0".repeat(64)));
        p.write_bytes("root.tar.gz", &archive);
        let out = p.up(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("sandbox::rootfs::sha256-mismatch") && err.contains(&hex(&archive)), "{err}");
        assert!(err.contains("sandbox.toml:3"), "points at the sha256 line: {err}");
        assert!(p.roots().is_empty());
        p.assert_no_scratch();

        p.project.write("sandbox.toml", &format!("[rootfs]\ntar = \"root.tar.gz\"\nsha256 = \"{}\"\n", hex(&archive).to_uppercase()));
        assert_eq!(p.sh("echo pinned"), "pinned\n");
    }
}

/// An OCI image layout in `dir` with these (gzip-compressed) layers and config; returns the
/// manifest's digest.
fn oci_layout(dir: &Path, layers: &[Vec<u8>], config: serde_json::Value) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8], media_type: &str| {
        let digest = hex(bytes);
        std::fs::write(blobs.join(&digest), bytes).unwrap();
        serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{digest}"), "size": bytes.len()})
    };
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": config});
    let config = blob(
        &serde_json::to_vec(&config).unwrap(),
        "application/vnd.oci.image.config.v1+json",
    );
    let layers: Vec<_> = layers
        .iter()
        .map(|l| blob(l, "application/vnd.oci.image.layer.v1.tar+gzip"))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    });
    let manifest = blob(
        &serde_json::to_vec(&manifest).unwrap(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let mut other = manifest.clone();
    other["platform"] = serde_json::json!({"architecture": "s390x", "os": "linux"});
    other["digest"] = serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    let mut ours = manifest.clone();
    ours["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [other, ours]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest["digest"].as_str().unwrap().to_string()
}

fn two_layers() -> Vec<Vec<u8>> {
    let mut bottom = Archive::busybox();
    bottom
        .file("etc/a", b"a\n", 0o644)
        .dir("data", 0o755)
        .file("data/x", b"x\n", 0o644)
        .file("data/y", b"y\n", 0o644)
        .file("keep", b"kept\n", 0o644);
    let mut top = Archive::new();
    top.file("etc/.wh.a", b"", 0o644)
        .dir("data", 0o755)
        .file("data/.wh..wh..opq", b"", 0o644)
        .file("data/z", b"z\n", 0o644);
    vec![bottom.gzip(), top.gzip()]
}

/// Give a folder tree to the rootless user.
fn give_tree(p: &Rooted, dir: &Path) {
    for entry in walk(dir) {
        p.project.give(&entry);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            all.extend(walk(&entry.unwrap().path()));
        }
    }
    all
}

as_root_and_rootless! {
    fn an_oci_image_applies_layers_whiteouts_and_its_config(who) {
        let config = serde_json::json!({
            "Env": ["PATH=/bin", "FOO=from-image", "BAR=image"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo $FOO $BAR; pwd; ls /data; test -e /etc/a || echo a-gone; cat /keep"],
            "WorkingDir": "/data",
        });
        for form in ["dir", "tar"] {
            let p = Rooted::new(who, &format!("[rootfs]\noci = \"image{}\"\n[process]\nenv = {{ BAR = \"manifest\" }}\n", if form == "tar" { ".tar" } else { "" }));
            let dir = p.project.path().join("image");
            let digest = oci_layout(&dir, &two_layers(), config.clone());
            if form == "tar" {
                let mut archive = tar::Builder::new(Vec::new());
                archive.append_dir_all(".", &dir).unwrap();
                p.write_bytes("image.tar", &archive.into_inner().unwrap());
                std::fs::remove_dir_all(&dir).unwrap();
            } else {
                give_tree(&p, &dir);
            }
            let out = p.up(&[]);
            assert!(out.status.success(), "{form}: {}", stderr(&out));
            assert_eq!(stdout(&out), "from-image manifest\n/data\nz\na-gone\nkept\n", "{form}");
            assert!(stderr(&out).contains(&format!("rootfs         unpacked {digest}")), "{}", stderr(&out));
            // The manifest pins the image by its manifest digest.
            p.project.write("sandbox.toml", &format!("[rootfs]\noci = \"image{}\"\nsha256 = \"{}\"\n", if form == "tar" { ".tar" } else { "" }, digest.trim_start_matches("sha256:")));
            let pinned = p.up(&["/bin/cat", "/keep"]);
            assert!(pinned.status.success(), "{}", stderr(&pinned));
            assert!(stderr(&pinned).contains("rootfs         cached"), "{}", stderr(&pinned));
        }
    }

    fn a_damaged_layer_is_refused(who) {
        let p = Rooted::new(who, "[rootfs]\noci = \"image\"\n[process]\ncommand = [\"/bin/true\"]\n");
        let dir = p.project.path().join("image");
        let layers = two_layers();
        oci_layout(&dir, &layers, serde_json::json!({}));
        // Same size, still a valid gzip stream (its header's mtime changed): only the digest
        // can tell.
        let blob = dir.join("blobs/sha256").join(hex(&layers[1]));
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[4] ^= 0x01;
        std::fs::write(&blob, bytes).unwrap();
        give_tree(&p, &dir);
        let out = p.up(&[]);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("sandbox::rootfs::unpack") && err.contains(&format!("blob sha256:{} is damaged", hex(&layers[1]))), "{err}");
        assert!(p.roots().is_empty());
        p.assert_no_scratch();
    }
}

/// A folder outside the cache that hostile archives aim at; it must stay empty.
struct Target(PathBuf);

impl Target {
    fn new(who: Who) -> Target {
        let path =
            std::env::temp_dir().join(format!("sandbox-hostile-{}-{who:?}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        // Writable by anyone, so only the unpacker's own rules can keep the archive out.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        Target(path)
    }

    fn assert_untouched(&self, case: &str) {
        let inside: Vec<_> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            inside.is_empty(),
            "{case}: written outside the cache: {inside:?}"
        );
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

as_root_and_rootless! {
    fn hostile_archives_are_refused_or_neutralised(who) {
        let target = Target::new(who);
        let t = target.0.to_str().unwrap().trim_start_matches('/').to_string();
        let depth = "../".repeat(12);
        let shadow_links = std::fs::metadata("/etc/shadow").map(|m| m.nlink()).ok();
        // (case, archive, refused: the error names this entry / neutralised: None)
        let cases: Vec<(&str, Archive, Option<String>)> = vec![
            ("path traversal", { let mut a = Archive::busybox(); a.raw_file(&format!("{depth}{t}/traversal"), b"x"); a }, Some(format!("{depth}{t}/traversal"))),
            ("absolute path", { let mut a = Archive::busybox(); a.raw_file(&format!("/{t}/absolute"), b"x"); a }, None),
            ("absolute symlink, then a file through it", { let mut a = Archive::busybox(); a.symlink("escape", &format!("/{t}")).file("escape/through-symlink", b"x", 0o644); a }, Some("escape/through-symlink".into())),
            ("relative symlink out, then a file through it", { let mut a = Archive::busybox(); a.symlink("up", &format!("{depth}{t}")).file("up/through-relative", b"x", 0o644); a }, Some("up/through-relative".into())),
            ("symlink to an existing dir of the tree, redirected", { let mut a = Archive::busybox(); a.dir(&t, 0o755).symlink("inside", &format!("/{t}")).file("inside/kept-inside", b"x", 0o644); a }, None),
            ("hard link to /etc/shadow", { let mut a = Archive::busybox(); a.hardlink("shadow", "/etc/shadow"); a }, Some("shadow".into())),
            ("hard link up to /etc/shadow", { let mut a = Archive::busybox(); a.hardlink("shadow", &format!("{depth}etc/shadow")); a }, Some("shadow".into())),
            ("device node", { let mut a = Archive::busybox(); a.device("mem", 1, 1); a }, None),
            ("a NUL byte in a pax path", { let mut a = Archive::busybox(); a.pax(&[("path", b"nul\0name")]).file("placeholder", b"x", 0o644); a }, Some("nul\\0name".into())),
            ("huge sparse file", { let mut a = Archive::busybox(); a.sparse("sparse", 1 << 50); a }, Some("sparse".into())),
        ];
        for (case, archive, refused) in cases {
            let p = tar_root(who, "root.tar.gz", "");
            p.write_bytes("root.tar.gz", &archive.gzip());
            let out = p.up(&["/bin/sh", "-c", "test -e /mem && echo mem-present; cat /mem >/dev/null 2>&1 || echo mem-unreadable; ls /"]);
            match &refused {
                Some(entry) => {
                    assert_eq!(out.status.code(), Some(125), "{case}: refused\n{}", stderr(&out));
                    let err = stderr(&out);
                    assert!(err.contains(&format!("entry \"{entry}\"")), "{case}: the error names the entry: {err}");
                    assert!(p.roots().is_empty(), "{case}: nothing cached");
                }
                None => {
                    assert!(out.status.success(), "{case}: neutralised\n{}", stderr(&out));
                    let [root] = p.roots().try_into().expect("one root");
                    if case == "device node" {
                        // Root keeps it, but the root is mounted nodev; rootless cannot make it.
                        let expected = if who == Who::Root { "mem-present\nmem-unreadable\n" } else { "mem-unreadable\n" };
                        assert!(stdout(&out).starts_with(expected), "{case}: {}", stdout(&out));
                        assert_eq!(root.join("mem").exists(), who == Who::Root);
                    } else {
                        assert!(walk(&root).iter().any(|f| f.starts_with(root.join(&t))), "{case}: the entry lands inside the tree");
                    }
                }
            }
            p.assert_no_scratch();
            target.assert_untouched(case);
        }
        assert_eq!(std::fs::metadata("/etc/shadow").map(|m| m.nlink()).ok(), shadow_links, "no new link to /etc/shadow");
    }

    fn a_cache_folder_planted_as_a_symlink_is_refused_not_followed(who) {
        let p = tar_root(who, "root.tar.gz", "");
        p.write_bytes("root.tar.gz", &Archive::busybox().gzip());
        let elsewhere = p.project.mkdir("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, p.cache()).unwrap();
        for out in [p.up(&["/bin/true"]), p.command(&["cache", "ls"]).output().unwrap()] {
            assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
            let said = stderr(&out);
            assert!(said.contains(&format!("the cache {} is a symbolic link", p.cache().display())), "{said}");
            assert!(said.contains("SANDBOX_CACHE_DIR"), "{said}");
        }
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "unpacked through the link");
    }

    fn the_cache_lists_and_prunes_only_unused_roots(who) {
        let p = tar_root(who, "root.tar.gz", "");
        p.write_bytes("root.tar.gz", &Archive::busybox().gzip());
        let manifest = p.project.manifest();
        let mut running = p
            .command(&["up", manifest.to_str().unwrap(), "--", "/bin/sleep", "30"])
            .spawn()
            .unwrap();
        let in_use = || {
            let out = p.command(&["cache", "ls", "--json"]).output().unwrap();
            let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            entries.as_array().unwrap().first().map(|e| e["in_use"].as_bool().unwrap())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while in_use() != Some(true) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(in_use(), Some(true), "a running sandbox holds its root");
        let ls = p.command(&["cache", "ls"]).output().unwrap();
        assert!(stdout(&ls).contains("tar") && stdout(&ls).contains("root.tar.gz"), "{}", stdout(&ls));
        let prune = p.command(&["cache", "prune"]).output().unwrap();
        assert!(stdout(&prune).contains("(in use)"), "{}", stdout(&prune));
        assert_eq!(p.roots().len(), 1, "a root in use is kept");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(running.id() as i32), nix::sys::signal::Signal::SIGTERM);
        running.wait().unwrap();
        let prune = p.command(&["cache", "prune"]).output().unwrap();
        assert!(stdout(&prune).contains("removed sha256:"), "{}", stdout(&prune));
        assert!(p.roots().is_empty());
        assert_eq!(in_use(), None);
    }
}

/// A busybox root runs an interactive shell on a terminal (tty = "auto"), driven through tmux.
#[test]
fn an_interactive_shell_runs_in_a_busybox_root_under_tmux() {
    for who in [Who::Root, Who::Rootless] {
        if !live::available(who) {
            continue;
        }
        let p = Rooted::new(
            who,
            "[rootfs]\ntar = \"root.tar.gz\"\n[process]\ncommand = [\"/bin/sh\"]\ntty = \"auto\"\nenv = { PS1 = \"box$ \" }\n",
        );
        p.write_bytes("root.tar.gz", &Archive::busybox().gzip());
        let session = format!("sandbox-test-{}-{}", std::process::id(), who as u8);
        let mut line = vec![];
        if who == Who::Rootless && nix::unistd::geteuid().is_root() {
            let (uid, gid) = live::rootless_ids().unwrap();
            line.extend([
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
            ]);
        }
        line.extend([
            "env".into(),
            "-i".into(),
            "PATH=/usr/bin:/bin".into(),
            "TERM=xterm".into(),
            format!("SANDBOX_CACHE_DIR={}", p.cache().display()),
            live::binary().display().to_string(),
            "up".into(),
            p.project.manifest().display().to_string(),
        ]);
        let tmux = |args: &[&str]| {
            Command::new("tmux")
                .args(["-L", &session])
                .args(args)
                .output()
                .expect("tmux (.ci/run installs it)")
        };
        let started = tmux(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "20",
            "-s",
            &session,
            &line.join(" "),
        ]);
        assert!(started.status.success(), "{}", stderr(&started));
        let screen = || stdout(&tmux(&["capture-pane", "-p", "-t", &session]));
        let wait_for = |text: &str| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if screen().contains(text) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        };
        let ok = wait_for("box$");
        if ok {
            tmux(&[
                "send-keys",
                "-t",
                &session,
                "tty; echo $((6 * 7)); id -u",
                "Enter",
            ]);
        }
        let answered = ok && wait_for("42");
        let text = screen();
        tmux(&["send-keys", "-t", &session, "exit", "Enter"]);
        let _ = tmux(&["kill-server"]);
        assert!(
            answered,
            "{who:?}: the shell answers on its terminal:\n{text}"
        );
        assert!(
            text.contains("/dev/pts/0"),
            "{who:?}: a terminal of the sandbox's own devpts:\n{text}"
        );
    }
}

as_root_and_rootless! {
    fn the_alpine_example_builds_its_root_and_runs(who) {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alpine");
        let p = Rooted::new(who, &std::fs::read_to_string(example.join("sandbox.toml")).unwrap());
        let script = p.write_bytes("make-rootfs.sh", &std::fs::read(example.join("make-rootfs.sh")).unwrap());
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let built = p.project.as_user(&script).output().unwrap();
        assert!(built.status.success(), "{}", stderr(&built));
        let out = p.sh("head -1 /etc/os-release; pwd; id -u; echo note > /root/note && cat /root/note; ls /bin | grep -c .");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..4], ["NAME=\"busybox root\"", "/root", "0", "note"], "{out}");
        assert!(lines[4].parse::<u32>().unwrap() > 50, "busybox's applets are linked: {out}");
    }
}

as_root_and_rootless! {
    fn extended_attributes_and_file_capabilities_are_kept_where_allowed(who) {
        // vfs_cap_data revision 2: effective, CAP_NET_RAW (13) permitted.
        let mut capability = Vec::new();
        for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
            capability.extend(word.to_le_bytes());
        }
        let mut archive = Archive::busybox();
        archive
            .pax(&[("SCHILY.xattr.user.origin", b"the archive"), ("SCHILY.xattr.security.capability", &capability)])
            .file("bin/pinger", b"#!/bin/sh\n", 0o755);
        let p = tar_root(who, "root.tar", "");
        p.write_bytes("root.tar", &archive.bytes());
        assert_eq!(p.sh("echo ran"), "ran\n");
        let [root] = p.roots().try_into().expect("one root");
        let file = root.join("bin/pinger");
        assert_eq!(xattr::get(&file, "user.origin").unwrap().as_deref(), Some(&b"the archive"[..]));
        // Only root may set file capabilities; rootless they are dropped, not an error.
        let kept = xattr::get(&file, "security.capability").unwrap();
        if who == Who::Root {
            assert_eq!(kept.as_deref(), Some(&capability[..]));
        } else {
            assert_eq!(kept, None);
        }
    }
}

as_root_and_rootless! {
    // Whiteouts of `..`, `.` or nothing, and whiteouts through a symlinked folder, are refused
    // as damaged layers: nothing outside the layer's own root is removed (`.wh...` at the top
    // of a layer emptied the cache's folder of unpacks, other sandboxes' included), and
    // nothing is published.
    fn hostile_whiteouts_are_refused_and_remove_nothing(who) {
        for (case, whiteout) in [
            ("the folder above", ".wh..."),
            ("the folder itself", "etc/.wh.."),
            ("no name", "etc/.wh."),
            ("through a symlink out of the root", "out/.wh.victim"),
            ("through a symlink inside the root", "lib/.wh.passwd"),
            ("opaque through a symlink", "lib/.wh..wh..opq"),
        ] {
            let p = Rooted::new(who, "[rootfs]\noci = \"image\"\n[process]\ncommand = [\"/bin/true\"]\n");
            // Another unpack in progress, beside this one in the cache's folder of unpacks.
            let other = p.cache().join("tmp/other-unpack");
            std::fs::create_dir_all(&other).unwrap();
            std::fs::write(other.join("etc-passwd"), "root\n").unwrap();
            let victim = p.project.mkdir("victim");
            std::fs::write(victim.join("victim"), "x").unwrap();
            give_tree(&p, &p.cache());
            let mut bottom = Archive::busybox();
            bottom.symlink("out", victim.to_str().unwrap()).symlink("lib", "etc");
            let mut top = Archive::new();
            top.raw_file(whiteout, b"");
            let dir = p.project.path().join("image");
            oci_layout(&dir, &[bottom.gzip(), top.gzip()], serde_json::json!({}));
            give_tree(&p, &dir);
            let out = p.up(&[]);
            assert_eq!(out.status.code(), Some(125), "{case}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(&format!("entry \"{whiteout}\"")) && err.contains("the layer is damaged"), "{case}: {err}");
            assert!(other.join("etc-passwd").exists(), "{case}: the other unpack was touched");
            assert!(victim.join("victim").exists(), "{case}: the symlink's target was touched");
            assert!(p.roots().is_empty(), "{case}: nothing published");
        }
    }

    // Bytes from an archive (a name, a header field) reach the terminal escaped: ESC and BEL
    // would set the window title or clear the screen.
    fn terminal_controls_in_an_archive_are_shown_escaped(who) {
        let mut archive = Archive::busybox();
        archive.raw_file("\u{1b}]0;owned\u{7}\u{1b}[2J", b"x");
        let mut bytes = archive.bytes();
        // The mode field of that last entry: octal digits, here ESC and BEL.
        let header = bytes.len() - 1024 - 2 * 512;
        bytes[header + 100..header + 108].copy_from_slice(b"\x1b]2;t\x07\0\0");
        let checksum: u32 = bytes[header..header + 512]
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { u32::from(b' ') } else { u32::from(b) })
            .sum();
        bytes[header + 148..header + 156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
        let p = tar_root(who, "root.tar", "");
        p.write_bytes("root.tar", &bytes);
        let out = p.up(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(!out.stderr.iter().any(|&b| b == 0x1b || b == 0x07), "raw controls: {:?}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("\\x1b]0;owned\\x07\\x1b[2J") && err.contains("\\x1b]2;t\\x07"), "{err}");
    }

    // An unpack killed half-way leaves its lock and its scratch folder; `cache prune` removes
    // both (and nothing that a running launcher holds).
    fn an_unpack_killed_half_way_leaves_nothing_prune_keeps(who) {
        let mut archive = Archive::busybox();
        let filler: Vec<u8> = (0..48 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        archive.file("filler", &filler, 0o644);
        let p = tar_root(who, "root.tar", "");
        p.write_bytes("root.tar", &archive.bytes());
        let manifest = p.project.manifest();
        let mut running = p
            .command(&["up", manifest.to_str().unwrap(), "--", "/bin/true"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let listed = |sub: &str| -> Vec<PathBuf> {
            std::fs::read_dir(p.cache().join(sub)).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !listed("tmp").iter().any(|e| e.is_dir()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(running.id() as i32), nix::sys::signal::Signal::SIGKILL);
        running.wait().unwrap();
        assert_eq!(listed("locks").len(), 1, "the unpack lock is left: {:?}", listed("locks"));
        assert!(listed("tmp").iter().any(|e| e.is_dir()), "a scratch folder is left");
        let prune = p.command(&["cache", "prune"]).output().unwrap();
        assert!(prune.status.success(), "{}", stderr(&prune));
        assert!(stdout(&prune).contains("removed 1 unfinished unpack(s)"), "{}", stdout(&prune));
        assert!(stdout(&prune).contains("lock file(s) and record(s)"), "{}", stdout(&prune));
        assert_eq!(listed("locks"), Vec::<PathBuf>::new());
        assert_eq!(listed("tmp"), Vec::<PathBuf>::new());
        assert!(p.roots().is_empty());
    }
}

/// A busybox root owned by root in `dir`, without the paths the sandbox mounts on.
fn bare_busybox_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

as_root_and_rootless! {
    // A root the sandbox cannot write (root's folder, rootless; someone else's, as root) that
    // lacks /proc, /dev, /tmp and /etc/hosts is refused before anything is made, with the
    // commands that make them, which then let it run; before, `up` failed in the mount step
    // (EACCES on /proc). As root a folder of root's own in /dev/shm is id-mapped like one in
    // /tmp (it was judged a kernel file system), so the sandbox makes them itself.
    fn a_root_without_its_mount_points_is_refused_or_made(who) {
        let p = Project::new(who, "[rootfs]\npath = \"root\"\n[process]\ncommand = [\"/bin/true\"]\n");
        let root = p.path().join("root");
        bare_busybox_root(&root);
        if who == Who::Root {
            let (uid, gid) = live::other_ids().expect("another user");
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
        }
        let out = p.up(&["/bin/sh", "-c", "echo ran"]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{text}");
        assert!(text.contains("sandbox::rootfs::mount-point"), "{text}");
        assert!(!text.contains("step `mount` failed"), "{text}");
        assert!(std::fs::read_dir(&root).unwrap().count() == 1, "nothing was made in the root");
        // The help's commands, run by the folder's owner, make a root the sandbox runs in.
        let (_, help) = text.split_once("make them on the host first:").expect("the help");
        let help = help.split('`').nth(1).expect("a command in the help").replace('\n', " ");
        assert!(help.starts_with("mkdir -p "), "{help}");
        let made = Command::new("/bin/sh").args(["-c", &help]).status().unwrap();
        assert!(made.success(), "{help}");
        assert_eq!(p.sh("echo ran"), "ran\n");

        if who == Who::Root {
            let scratch = tempfile::Builder::new().prefix("sandbox-test-").tempdir_in("/dev/shm").unwrap();
            bare_busybox_root(scratch.path());
            let q = Project::new(who, &format!("[rootfs]\npath = \"{}\"\n", scratch.path().display()));
            assert_eq!(q.sh("id -u; ls -d /proc/1 /tmp"), "0\n/proc/1\n/tmp\n");
        }
    }
}
