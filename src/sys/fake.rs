//! A [`Sys`] that makes no change to the machine: it records each call with its arguments, as
//! a line of text (`fsmount(tmpfs, nosuid nodev)`), and returns what the test scripted. Every
//! descriptor it returns is a fresh one of /dev/null, named after what it stands for (a path,
//! a file system type), so the record reads as the step's plan of calls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{ExitStatus, Output};

use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;
use nix::sys::resource::Resource;
use nix::sys::signal::SigSet;
use nix::sys::wait::WaitStatus;

use crate::netlink::Socket;

use super::{
    Dir, FileKind, MOUNT_ATTR_IDMAP, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY, Result, SetAttr, Stat, Sys,
};

#[derive(Default)]
pub struct Fake {
    calls: RefCell<Vec<String>>,
    /// Descriptor number -> what it stands for.
    names: RefCell<HashMap<RawFd, String>>,
    /// Call name -> (the how-manieth call of that name, starting at 0; the error it returns).
    failures: RefCell<HashMap<&'static str, Vec<(usize, Errno)>>>,
    counts: RefCell<HashMap<&'static str, usize>>,
    /// Names `stat` reports as files rather than directories.
    files: RefCell<Vec<String>>,
    /// Names `stat` and `open_tree` report as absent.
    absent: RefCell<Vec<String>>,
    /// What `euid` says: root unless a test says otherwise.
    euid: Cell<u32>,
    /// The links netlink was asked about or made, by name: link N has the index N + 2 (`lo`
    /// is 1). A name in `absent` has none (ENODEV).
    links: RefCell<Vec<String>>,
}

impl Fake {
    pub fn new() -> Fake {
        Fake::default()
    }

    /// The `nth` call (from 0) of `call` fails with `errno`.
    pub fn fail(&self, call: &'static str, nth: usize, errno: Errno) -> &Fake {
        self.failures
            .borrow_mut()
            .entry(call)
            .or_default()
            .push((nth, errno));
        self
    }

    /// `stat` of a name ending in `name` says it is a file.
    pub fn file(&self, name: &str) -> &Fake {
        self.files.borrow_mut().push(name.into());
        self
    }

    /// `stat` and `open_tree` of a name ending in `name` fail with ENOENT.
    pub fn absent(&self, name: &str) -> &Fake {
        self.absent.borrow_mut().push(name.into());
        self
    }

    /// `euid` says `uid`.
    pub fn as_user(&self, uid: u32) -> &Fake {
        self.euid.set(uid);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// The calls of one kind (`"fsmount"`), in order.
    pub fn calls_of(&self, call: &str) -> Vec<String> {
        let prefix = format!("{call}(");
        self.calls()
            .into_iter()
            .filter(|line| line.starts_with(&prefix))
            .collect()
    }

    /// Wrap a fake descriptor's name, for a test handing the step a descriptor of its own.
    pub fn descriptor(&self, name: &str) -> OwnedFd {
        let fd = std::fs::File::open("/dev/null").expect("/dev/null").into();
        self.names
            .borrow_mut()
            .insert(AsRawFd::as_raw_fd(&fd), name.into());
        fd
    }

    fn name(&self, fd: BorrowedFd<'_>) -> String {
        let raw = fd.as_raw_fd();
        (self.names.borrow().get(&raw).cloned()).unwrap_or_else(|| format!("fd{raw}"))
    }

    fn at(&self, dir: Dir<'_>, path: &CStr) -> String {
        let path = path.to_string_lossy();
        match (dir, path.is_empty()) {
            (None, _) => path.into_owned(),
            (Some(dir), true) => self.name(dir),
            (Some(dir), false) => format!("{}/{path}", self.name(dir)),
        }
    }

    /// Record `call` and return its scripted outcome.
    fn record(&self, call: &'static str, args: String) -> Result<()> {
        self.calls.borrow_mut().push(format!("{call}({args})"));
        let mut counts = self.counts.borrow_mut();
        let count = counts.entry(call).or_default();
        let nth = *count;
        *count += 1;
        match self.failures.borrow().get(call) {
            Some(failures) => failures
                .iter()
                .find(|(at, _)| *at == nth)
                .map_or(Ok(()), |(_, errno)| Err(*errno)),
            None => Ok(()),
        }
    }

    fn matches(list: &RefCell<Vec<String>>, name: &str) -> bool {
        list.borrow().iter().any(|end| name.ends_with(end.as_str()))
    }

    /// The index of the link `name`, made up on first sight.
    fn link_index(&self, name: &str) -> u32 {
        let mut links = self.links.borrow_mut();
        let at = links
            .iter()
            .position(|link| link == name)
            .unwrap_or_else(|| {
                links.push(name.into());
                links.len() - 1
            });
        at as u32 + 2
    }

    fn link_name(&self, index: u32) -> String {
        match index {
            1 => "lo".into(),
            _ => (self.links.borrow().get(index as usize - 2).cloned())
                .unwrap_or_else(|| format!("link{index}")),
        }
    }

    /// A netlink request as a call: its name and its arguments.
    fn netlink_call(&self, message: &RouteNetlinkMessage) -> (&'static str, String) {
        use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo};
        let name_of = |attributes: &[LinkAttribute]| {
            (attributes.iter())
                .find_map(|attribute| match attribute {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        match message {
            RouteNetlinkMessage::GetLink(link) => ("getlink", name_of(&link.attributes)),
            RouteNetlinkMessage::DelLink(link) => ("dellink", name_of(&link.attributes)),
            RouteNetlinkMessage::NewLink(link) => {
                let mut args = name_of(&link.attributes);
                for attribute in &link.attributes {
                    let LinkAttribute::LinkInfo(info) = attribute else {
                        continue;
                    };
                    for item in info {
                        match item {
                            LinkInfo::Kind(InfoKind::Bridge) => args += ", bridge",
                            LinkInfo::Kind(InfoKind::Veth) => args += ", veth",
                            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) => {
                                args += &format!(", peer {}", name_of(&peer.attributes));
                                for attribute in &peer.attributes {
                                    if let LinkAttribute::NetNsFd(fd) = attribute {
                                        let ns = self.names.borrow().get(fd).cloned();
                                        args += &format!(" in {}", ns.unwrap_or_default());
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                ("newlink", args)
            }
            RouteNetlinkMessage::SetLink(link) => {
                let mut args = format!("{} up", self.link_name(link.header.index));
                for attribute in &link.attributes {
                    if let LinkAttribute::Controller(bridge) = attribute {
                        args += &format!(", on {}", self.link_name(*bridge));
                    }
                }
                ("setlink", args)
            }
            RouteNetlinkMessage::NewAddress(address) => {
                use netlink_packet_route::address::AddressAttribute;
                let local = (address.attributes.iter()).find_map(|attribute| match attribute {
                    AddressAttribute::Local(local) => Some(local.to_string()),
                    _ => None,
                });
                let args = format!(
                    "{}, {}/{}",
                    self.link_name(address.header.index),
                    local.unwrap_or_default(),
                    address.header.prefix_len
                );
                ("newaddr", args)
            }
            RouteNetlinkMessage::NewRoute(route) => {
                use netlink_packet_route::route::{RouteAddress, RouteAttribute};
                let (mut via, mut on) = (String::new(), String::new());
                for attribute in &route.attributes {
                    match attribute {
                        RouteAttribute::Gateway(RouteAddress::Inet(gateway)) => {
                            via = gateway.to_string()
                        }
                        RouteAttribute::Oif(index) => on = self.link_name(*index),
                        _ => {}
                    }
                }
                ("newroute", format!("default via {via}, {on}"))
            }
            other => ("netlink", format!("{other:?}")),
        }
    }
}

/// An nftables document (JSON) as words: what each command does to which table, and how many
/// commands there are in all.
fn nft_summary(document: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(document).unwrap_or_default();
    let commands = value["nftables"].as_array().cloned().unwrap_or_default();
    let mut words: Vec<String> = (commands.iter())
        .filter_map(|command| {
            let (verb, object) = command.as_object()?.iter().next()?;
            let table = object.get("table")?;
            Some(format!("{verb} table {} {}", table["family"], table["name"]).replace('"', ""))
        })
        .collect();
    words.push(format!("{} commands", commands.len()));
    words.join(", ")
}

/// MOUNT_ATTR_* bits as words.
pub fn attrs(bits: u64) -> String {
    let words: Vec<&str> = [
        (MOUNT_ATTR_RDONLY, "ro"),
        (MOUNT_ATTR_NOSUID, "nosuid"),
        (MOUNT_ATTR_NODEV, "nodev"),
        (MOUNT_ATTR_NOEXEC, "noexec"),
        (MOUNT_ATTR_IDMAP, "idmap"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, word)| word)
    .collect();
    words.join(" ")
}

impl Sys for Fake {
    fn fsopen(&self, fstype: &CStr) -> Result<OwnedFd> {
        let fstype = fstype.to_string_lossy();
        self.record("fsopen", fstype.to_string())?;
        Ok(self.descriptor(&fstype))
    }

    fn fsconfig_set(&self, fs: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<()> {
        let (key, value) = (key.to_string_lossy(), value.to_string_lossy());
        self.record("fsconfig", format!("{}, {key}={value}", self.name(fs)))
    }

    fn fsconfig_flag(&self, fs: BorrowedFd<'_>, key: &CStr) -> Result<()> {
        let key = key.to_string_lossy();
        self.record("fsconfig", format!("{}, {key}", self.name(fs)))
    }

    fn fsmount(&self, fs: BorrowedFd<'_>, bits: u64) -> Result<OwnedFd> {
        let fstype = self.name(fs);
        self.record("fsmount", format!("{fstype}, {}", attrs(bits)))?;
        Ok(self.descriptor(&fstype))
    }

    fn open_tree(&self, dir: Dir<'_>, path: &CStr) -> Result<OwnedFd> {
        let at = self.at(dir, path);
        self.record("open_tree", at.clone())?;
        if Fake::matches(&self.absent, &at) {
            return Err(Errno::ENOENT);
        }
        Ok(self.descriptor(&at))
    }

    fn mount_setattr(&self, mount: BorrowedFd<'_>, attr: SetAttr<'_>) -> Result<()> {
        let mut args = format!("{}, +[{}]", self.name(mount), attrs(attr.set));
        if attr.recursive {
            args += ", recursive";
        }
        if let Some(userns) = attr.userns {
            args += &format!(", idmap {}", self.name(userns));
        }
        self.record("mount_setattr", args)
    }

    fn move_mount(&self, mount: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        let args = format!("{} -> {}", self.name(mount), self.at(Some(dir), name));
        self.record("move_mount", args)
    }

    fn make_mounts_private(&self) -> Result<()> {
        self.record("make_mounts_private", String::new())
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()> {
        let args = format!("{new_root:?}, {put_old:?}");
        self.record("pivot_root", args)
    }

    fn detach(&self, path: &CStr) -> Result<()> {
        self.record("umount2", format!("{}, detach", path.to_string_lossy()))
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> Result<()> {
        self.record("fchdir", self.name(dir))
    }

    fn chdir(&self, path: &CStr) -> Result<()> {
        self.record("chdir", path.to_string_lossy().into_owned())
    }

    fn openat2(&self, dir: Dir<'_>, path: &CStr, _: i32, resolve: u64) -> Result<OwnedFd> {
        let at = self.at(dir, path);
        let scope = [
            (libc::RESOLVE_IN_ROOT, ", in root"),
            (libc::RESOLVE_BENEATH, ", beneath"),
            (libc::RESOLVE_NO_SYMLINKS, ", no symlinks"),
        ];
        let words: String = (scope.iter())
            .filter(|(bit, _)| resolve & bit != 0)
            .map(|(_, word)| *word)
            .collect();
        self.record("openat2", format!("{at}{words}"))?;
        Ok(self.descriptor(&at))
    }

    fn openat(&self, dir: Dir<'_>, path: &CStr, flags: i32, mode: u32) -> Result<OwnedFd> {
        let at = self.at(dir, path);
        let args = match flags & libc::O_CREAT {
            0 => at.clone(),
            _ => format!("{at}, create {mode:o}"),
        };
        self.record("openat", args)?;
        Ok(self.descriptor(&at))
    }

    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<()> {
        self.record("mkdirat", format!("{}, {mode:o}", self.at(Some(dir), name)))
    }

    fn symlinkat(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        let args = format!(
            "{} -> {}",
            self.at(Some(dir), name),
            target.to_string_lossy()
        );
        self.record("symlinkat", args)
    }

    fn readlinkat(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<OsString> {
        self.record("readlinkat", self.at(Some(dir), name))?;
        Ok(OsString::new())
    }

    fn fchmod(&self, fd: BorrowedFd<'_>, mode: u32) -> Result<()> {
        self.record("fchmod", format!("{}, {mode:o}", self.name(fd)))
    }

    fn stat(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<Stat> {
        let at = self.at(Some(dir), name);
        self.record("stat", at.clone())?;
        if Fake::matches(&self.absent, &at) {
            return Err(Errno::ENOENT);
        }
        let kind = match Fake::matches(&self.files, &at) {
            true => FileKind::Other,
            false => FileKind::Dir,
        };
        Ok(Stat { kind, id: (0, 0) })
    }

    fn write_all(&self, fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(bytes);
        self.record("write", format!("{}, {text:?}", self.name(fd)))
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(contents);
        self.record("write_file", format!("{}, {text:?}", path.display()))
    }

    fn write_all_at(&self, fd: BorrowedFd<'_>, bytes: &[u8], offset: u64) -> Result<()> {
        let text = String::from_utf8_lossy(bytes);
        self.record("pwrite", format!("{}, {text:?} at {offset}", self.name(fd)))
    }

    fn ftruncate(&self, fd: BorrowedFd<'_>, len: u64) -> Result<()> {
        self.record("ftruncate", format!("{}, {len}", self.name(fd)))
    }

    fn linkat(&self, old: (BorrowedFd<'_>, &CStr), new: (BorrowedFd<'_>, &CStr)) -> Result<()> {
        let args = format!(
            "{} -> {}",
            self.at(Some(new.0), new.1),
            self.at(Some(old.0), old.1)
        );
        self.record("linkat", args)
    }

    fn mknodat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> Result<()> {
        let args = format!("{}, {mode:o}, {dev:#x}", self.at(Some(dir), name));
        self.record("mknodat", args)
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<()> {
        self.record(
            "fchmodat",
            format!("{}, {mode:o}", self.at(Some(dir), name)),
        )
    }

    fn chown(&self, dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> Result<()> {
        self.record(
            "chown",
            format!("{}, {uid}:{gid}", self.at(Some(dir), name)),
        )
    }

    fn set_mtime(&self, dir: BorrowedFd<'_>, name: &CStr, seconds: i64) -> Result<()> {
        self.record(
            "set_mtime",
            format!("{}, {seconds}", self.at(Some(dir), name)),
        )
    }

    fn set_xattr(&self, fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> Result<()> {
        let value = String::from_utf8_lossy(value);
        self.record("set_xattr", format!("{}, {name}={value:?}", self.name(fd)))
    }

    fn list_dir(&self, dir: BorrowedFd<'_>) -> Result<Vec<OsString>> {
        self.record("list_dir", self.name(dir))?;
        Ok(Vec::new())
    }

    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &CStr, dir_entry: bool) -> Result<()> {
        let what = if dir_entry { ", dir" } else { "" };
        self.record("unlinkat", format!("{}{what}", self.at(Some(dir), name)))
    }

    fn setresuid(&self, uid: u32) -> Result<()> {
        self.record("setresuid", uid.to_string())
    }

    fn setresgid(&self, gid: u32) -> Result<()> {
        self.record("setresgid", gid.to_string())
    }

    fn setgroups(&self, groups: &[u32]) -> Result<()> {
        self.record("setgroups", format!("{groups:?}"))
    }

    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> Result<()> {
        self.record("setrlimit", format!("{resource:?}, {soft}, {hard}"))
    }

    fn limit_bounding_set(&self, held: u64, kept: u64) -> Result<()> {
        self.record("limit_bounding_set", format!("{held:#x}, {kept:#x}"))
    }

    fn set_capabilities(&self, capabilities: u64, inheritable: u64) -> Result<()> {
        self.record("capset", format!("{capabilities:#x}, {inheritable:#x}"))
    }

    fn set_ambient(&self, raised: u64) -> Result<()> {
        self.record("set_ambient", format!("{raised:#x}"))
    }

    fn set_keepcaps(&self, keep: bool) -> Result<()> {
        self.record("set_keepcaps", keep.to_string())
    }

    fn set_no_new_privs(&self) -> Result<()> {
        self.record("set_no_new_privs", String::new())
    }

    fn set_securebits(&self, bits: libc::c_ulong) -> Result<()> {
        self.record("set_securebits", format!("{bits:#x}"))
    }

    fn seccomp_set_filter(&self, program: &[libc::sock_filter]) -> Result<()> {
        self.record("seccomp", format!("{} instructions", program.len()))
    }

    fn setsid(&self) -> Result<()> {
        self.record("setsid", String::new())
    }

    fn make_stdio(&self, fd: BorrowedFd<'_>) -> Result<()> {
        self.record("make_stdio", self.name(fd))
    }

    fn set_controlling_terminal(&self, fd: BorrowedFd<'_>) -> Result<()> {
        self.record("TIOCSCTTY", self.name(fd))
    }

    fn restore_caller_signals(&self, sigpipe_ignored: bool, _: &SigSet) {
        let sigpipe = if sigpipe_ignored {
            "ignored"
        } else {
            "default"
        };
        let _ = self.record("restore_caller_signals", format!("SIGPIPE {sigpipe}"));
    }

    fn umask(&self, mask: u32) {
        let _ = self.record("umask", format!("{mask:03o}"));
    }

    fn cloexec_from(&self, first: u32) -> Result<()> {
        self.record("cloexec_from", first.to_string())
    }

    /// Runs nothing: fails with the scripted errno, or else ENOENT.
    fn execve(&self, path: &CStr, argv: &[CString], _: &[CString]) -> Errno {
        let argv: Vec<_> = argv.iter().map(|arg| arg.to_string_lossy()).collect();
        let args = format!("{}, {argv:?}", path.to_string_lossy());
        self.record("execve", args).err().unwrap_or(Errno::ENOENT)
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        self.record("sethostname", name.into())
    }

    fn setdomainname(&self, name: &str) -> Result<()> {
        self.record("setdomainname", name.into())
    }

    fn unshare(&self, flags: i32) -> Result<()> {
        self.record("unshare", format!("{flags:#x}"))
    }

    fn setns(&self, ns: BorrowedFd<'_>, kind: i32) -> Result<()> {
        self.record("setns", format!("{}, {kind:#x}", self.name(ns)))
    }

    fn set_dumpable(&self, dumpable: bool) -> Result<()> {
        self.record("set_dumpable", dumpable.to_string())
    }

    fn run(&self, program: &Path, args: &[String]) -> Result<ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        self.record("run", format!("{} {}", program.display(), args.join(" ")))?;
        Ok(ExitStatus::from_raw(0))
    }

    fn euid(&self) -> u32 {
        self.euid.get()
    }

    fn block_signals(&self, set: &SigSet) -> Result<()> {
        let names: Vec<_> = set.iter().map(|signal| signal.as_str()).collect();
        self.record("block_signals", names.join(" "))
    }

    fn install_noop_handler(&self, signal: i32) -> Result<()> {
        let name = nix::sys::signal::Signal::try_from(signal).map_or("?", |s| s.as_str());
        self.record("install_noop_handler", name.into())
    }

    fn pidfd_send_signal(&self, pidfd: BorrowedFd<'_>, signal: i32) -> Result<()> {
        let name = nix::sys::signal::Signal::try_from(signal).map_or("?", |s| s.as_str());
        self.record("pidfd_send_signal", format!("{}, {name}", self.name(pidfd)))
    }

    /// Says the process exited with 0.
    fn wait_exit(&self, pidfd: BorrowedFd<'_>) -> Result<WaitStatus> {
        self.record("wait_exit", self.name(pidfd))?;
        Ok(WaitStatus::Exited(nix::unistd::Pid::from_raw(0), 0))
    }

    fn unlock_pty(&self, master: BorrowedFd<'_>) -> Result<()> {
        self.record("unlock_pty", self.name(master))
    }

    /// Says 3.
    fn pty_number(&self, master: BorrowedFd<'_>) -> Result<u32> {
        self.record("pty_number", self.name(master))?;
        Ok(3)
    }

    fn netlink_open(&self) -> Result<Socket> {
        self.record("netlink_open", String::new())?;
        Ok(Socket::adopt(self.descriptor("netlink")))
    }

    /// Acknowledges every request, answers a `getlink` with the link's index, and fails one of
    /// a name in `absent` with ENODEV.
    fn netlink_request(
        &self,
        _: &mut Socket,
        message: RouteNetlinkMessage,
        _: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let (call, args) = self.netlink_call(&message);
        self.record(call, args.clone())?;
        let absent = Fake::matches(&self.absent, &args);
        match call {
            "getlink" | "dellink" if absent => Err(Errno::ENODEV),
            "getlink" => {
                let mut link = netlink_packet_route::link::LinkMessage::default();
                link.header.index = self.link_index(&args);
                Ok(vec![RouteNetlinkMessage::NewLink(link)])
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Runs nothing and succeeds; an nftables document is recorded as its tables.
    fn run_fed(&self, program: &Path, args: &[&str], input: &[u8]) -> Result<Output> {
        use std::os::unix::process::ExitStatusExt;
        let name = program.file_name().unwrap_or_default().to_string_lossy();
        let what = format!("{name} {}: {}", args.join(" "), nft_summary(input));
        self.record("run_fed", what)?;
        Ok(Output {
            status: ExitStatus::from_raw(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }

    /// Says `0`, as a sysctl that is off.
    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        self.record("read_file", path.display().to_string())?;
        Ok(b"0\n".to_vec())
    }
}
