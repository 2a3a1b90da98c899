//! Networking for real: `none`, `bridge` (root) and `pasta` (rootless), checked with TCP
//! traffic between sandboxes the tests start and the host's loopback, and nothing else. Each
//! bridge test uses its own bridge and subnet, and checks afterwards that no veth, bridge,
//! nftables table or lease of its sandboxes is left, also after a supervisor was SIGKILLed.
//!
//! The servers inside sandboxes are socat (from the host's /usr; .ci/run installs it), those on
//! the host the tests' own; the clients are bash's /dev/tcp.

mod live;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use live::{Project, Who, stderr, stdout};

/// A port nothing listens on right now, on the host's loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bridge name and /24 subnet of this test alone (test `index` in this file, and the test
/// process's pid, so parallel runs of the suite do not collide).
fn network(index: u8) -> (String, [u8; 3]) {
    let pid = std::process::id();
    let bridge = format!("sbt{:x}x{index}", pid & 0xffff);
    assert!(bridge.len() <= 15);
    (bridge, [10, 200 + index, (pid % 250) as u8])
}

fn address(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

fn bridge_manifest(bridge: &str, net: [u8; 3], extra: &str) -> String {
    format!(
        "[rootfs]\nhost = true\n[network]\nmode = \"bridge\"\nbridge = \"{bridge}\"\nsubnet = \"{}.{}.{}.0/24\"\n{extra}",
        net[0], net[1], net[2]
    )
}

/// A sandbox running `script` under bash, with pipes to talk to it; killed if the test fails.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    fn start(p: &Project, script: &str) -> Running {
        let manifest = p.manifest();
        // --trust: what these manifests ask for is the point of the tests (trust has its own).
        let mut command = p.command(&[
            "up",
            "--trust",
            manifest.to_str().unwrap(),
            "--",
            "/bin/bash",
            "-c",
            script,
        ]);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start sandbox");
        Running {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    /// The next line the sandbox prints.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    /// Close its stdin (the scripts wait for that) and wait for it.
    fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// A failed test stops its sandboxes with SIGTERM, which the supervisor forwards and then
/// cleans up after; SIGKILL would leave their leases for a next run on a bridge no run uses.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid()),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.child.wait();
        }
    }
}

/// A script fragment: a socat server on `port` answering `reply`, and `ready` once it listens.
fn serve(port: u16, reply: &str) -> String {
    format!(
        "socat TCP-LISTEN:{port},reuseaddr,fork SYSTEM:'echo {reply}' & \
         until ss -ltn | grep -q ':{port} '; do sleep 0.02; done; echo ready; "
    )
}

/// What a server at `host:port` says, from inside a sandbox; "failed" when it cannot be reached
/// within `seconds`: short where the test expects no answer (a dropped packet waits it out),
/// long where it expects one (an answer ends the wait, which under software emulation can take
/// seconds: socat forks a shell for each connection).
fn fetch(host: &str, port: u16, seconds: u32) -> String {
    format!(
        "(timeout {seconds} bash -c 'exec 3<>/dev/tcp/{host}/{port}; head -n1 <&3' 2>/dev/null || echo failed); "
    )
}

/// How long a fetch that should be answered may take.
const ANSWERED: u32 = 60;

/// What the host reads from 127.0.0.1:port.
fn fetch_from_host(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(ANSWERED.into())))
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.trim().to_string())
}

fn run(command: &str, args: &[&str]) -> String {
    let out = Command::new(command).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Wait (bounded) for `done`; a netns, and the veth in it, goes shortly after its last process.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Nothing of the bridge's sandboxes is left: veths of `addresses`, the bridge, its tables and
/// its leases.
fn assert_clean(bridge: &str, addresses: &[Ipv4Addr]) {
    for address in addresses {
        let veth = format!("sbx{:08x}", u32::from(*address));
        assert!(eventually(|| !link_exists(&veth)), "veth {veth} left");
    }
    assert!(!link_exists(bridge), "bridge {bridge} left");
    let tables = run("nft", &["list", "tables"]);
    assert!(
        !tables.contains(&format!("sandbox-{bridge}")),
        "tables left:\n{tables}"
    );
    let leases = Path::new("/run/sandbox/net").join(bridge);
    assert!(!leases.exists(), "leases left in {}", leases.display());
}

fn root_only() -> bool {
    live::available(Who::Root)
}

as_root_and_rootless! {
    fn none_has_only_lo_and_its_loopback_is_its_own(who) {
        let port = free_port();
        let p = Project::new(who, "[rootfs]\nhost = true\n[network]\nmode = \"none\"\n");
        let mut sandbox = Running::start(&p, &format!(
            "ip -o link | awk '{{print $2, $3}}'; {}{}read -r _ || true",
            serve(port, "inside"),
            fetch("127.0.0.1", port, ANSWERED)
        ));
        assert_eq!(sandbox.line(), "lo: <LOOPBACK,UP,LOWER_UP>", "only lo, up");
        assert_eq!(sandbox.line(), "ready");
        assert_eq!(sandbox.line(), "inside", "reachable from inside");
        assert_eq!(fetch_from_host(port), None, "not from the host");
        assert_eq!(sandbox.finish(), 0);
    }
}

#[test]
fn bridge_sandboxes_talk_by_address_and_by_name() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(0);
    let server_address = address(net, 10);
    let server = Project::new(
        Who::Root,
        &bridge_manifest(&bridge, net, &format!("address = \"{server_address}\"\n")),
    );
    let mut a = Running::start(
        &server,
        &format!("{}read -r _ || true", serve(7000, "hello-from-a")),
    );
    assert_eq!(a.line(), "ready");
    let client = Project::new(
        Who::Root,
        &bridge_manifest(
            &bridge,
            net,
            &format!("hosts = {{ server = \"{server_address}\" }}\n"),
        ),
    );
    let out = client.sh(&format!(
        "{}{}ip -4 -o addr show eth0 | awk '{{print $4}}'; ip route | head -n1; grep -w \"$(hostname)\" /etc/hosts | cut -f1; getent hosts $(hostname) | awk '{{print $1}}'; [ \"$(hostname -f)\" = \"$(hostname)\" ] && echo resolves",
        fetch(&server_address.to_string(), 7000, ANSWERED),
        fetch("server", 7000, ANSWERED)
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello-from-a", "by address");
    assert_eq!(lines[1], "hello-from-a", "by name");
    let client_address = address(net, 2);
    assert_eq!(
        lines[2],
        format!("{client_address}/24"),
        "the first free address"
    );
    assert_eq!(
        lines[3].trim_end(),
        format!("default via {} dev eth0", address(net, 1))
    );
    assert_eq!(
        lines[4],
        client_address.to_string(),
        "/etc/hosts names the sandbox itself"
    );
    assert_eq!(
        lines[5..],
        [client_address.to_string().as_str(), "resolves"]
    );
    assert_eq!(a.finish(), 0);
    assert_clean(&bridge, &[server_address, client_address]);
}

#[test]
fn isolated_sandboxes_cannot_reach_each_other() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(1);
    let server_address = address(net, 10);
    let isolated = "isolate = true\n";
    let server = Project::new(
        Who::Root,
        &bridge_manifest(
            &bridge,
            net,
            &format!("address = \"{server_address}\"\n{isolated}"),
        ),
    );
    let mut a = Running::start(
        &server,
        &format!("{}read -r _ || true", serve(7000, "hello-from-a")),
    );
    assert_eq!(a.line(), "ready");
    // Isolated or not, another sandbox cannot reach an isolated one.
    for client in [isolated, ""] {
        let client = Project::new(Who::Root, &bridge_manifest(&bridge, net, client));
        let out = client.sh(&format!(
            "{}{}",
            fetch(&server_address.to_string(), 7000, 3),
            // The host still answers at the gateway (here: refuses a closed port).
            "(timeout 3 bash -c \"exec 3<>/dev/tcp/$(ip route | awk '/default/{print $3}')/9\" 2>&1 || true) | grep -q refused && echo refused"
        ));
        assert_eq!(
            out, "failed\nrefused\n",
            "isolated, but the gateway answers"
        );
    }
    assert_eq!(a.finish(), 0);
    assert_clean(&bridge, &[server_address, address(net, 2)]);
}

/// A bridge sandbox (on network `index`) serving `hello-from-inside` on port 8080, which is
/// published on the host's loopback at `port`; `extra` adds keys to its [network].
struct Published {
    bridge: String,
    net: [u8; 3],
    port: u16,
    sandbox: Running,
    _project: Project,
}

impl Published {
    fn start(index: u8, extra: &str) -> Published {
        let (bridge, net) = network(index);
        let port = free_port();
        let project = Project::new(
            Who::Root,
            &bridge_manifest(
                &bridge,
                net,
                &format!("ports = [\"127.0.0.1:{port}:8080/tcp\"]\n{extra}"),
            ),
        );
        let mut sandbox = Running::start(
            &project,
            &format!("{}read -r _ || true", serve(8080, "hello-from-inside")),
        );
        assert_eq!(sandbox.line(), "ready");
        assert_eq!(fetch_from_host(port).as_deref(), Some("hello-from-inside"));
        Published {
            bridge,
            net,
            port,
            sandbox,
            _project: project,
        }
    }
}

#[test]
fn a_published_loopback_port_reaches_the_sandbox_from_the_host() {
    if !root_only() {
        return;
    }
    let Published {
        bridge,
        net,
        port,
        sandbox,
        _project,
    } = Published::start(2, "");
    let tables = run(
        "nft",
        &[
            "list",
            "table",
            "ip",
            &format!("sandbox-{bridge}-{}", address(net, 2)),
        ],
    );
    assert!(
        tables.contains(&format!(
            "ip daddr 127.0.0.1 tcp dport {port} dnat to {}:8080",
            address(net, 2)
        )),
        "{tables}"
    );
    assert_eq!(sandbox.finish(), 0);
    assert_eq!(
        fetch_from_host(port),
        None,
        "the forward went with the sandbox"
    );
    assert_clean(&bridge, &[address(net, 2)]);
}

#[test]
fn twenty_concurrent_sandboxes_get_twenty_addresses() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(3);
    let p = Project::new(Who::Root, &bridge_manifest(&bridge, net, ""));
    let mut sandboxes: Vec<Running> = (0..20)
        .map(|_| {
            Running::start(
                &p,
                "ip -4 -o addr show eth0 | awk '{print $4}'; read -r _ || true",
            )
        })
        .collect();
    let mut addresses: Vec<String> = sandboxes.iter_mut().map(Running::line).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "{addresses:?}");
    for sandbox in sandboxes {
        assert_eq!(sandbox.finish(), 0);
    }
    let used: Vec<Ipv4Addr> = (2..22).map(|host| address(net, host)).collect();
    assert!(
        addresses
            .iter()
            .all(|a| used.iter().any(|u| *a == format!("{u}/24"))),
        "the lowest free addresses: {addresses:?}"
    );
    assert_clean(&bridge, &used);
}

#[test]
fn a_taken_address_fails_with_the_net_step_and_leaves_nothing() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(4);
    let fixed = address(net, 7);
    let manifest = bridge_manifest(&bridge, net, &format!("address = \"{fixed}\"\n"));
    let first = Project::new(Who::Root, &manifest);
    let mut holder = Running::start(&first, "echo ready; read -r _ || true");
    assert_eq!(holder.line(), "ready");
    let second = Project::new(Who::Root, &manifest);
    let out = second.up(&["/bin/true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("step `net` failed") && text.contains(&format!("leasing {fixed}")),
        "{text}"
    );
    assert!(
        text.contains("address = "),
        "the diagnostic points at the key: {text}"
    );
    assert_eq!(holder.finish(), 0);
    assert_clean(&bridge, &[fixed]);
}

#[test]
fn a_failure_after_the_veth_removes_it_and_leaves_a_bridge_found_there() {
    if !root_only() {
        return;
    }
    // A link of the bridge's name that is no bridge: attaching the veth to it fails, after the
    // lease, the bridge's rules and the veth were made.
    let (bridge, net) = network(7);
    let made = Command::new("ip")
        .args([
            "link",
            "add",
            &bridge,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{bridge}p"),
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let p = Project::new(Who::Root, &bridge_manifest(&bridge, net, ""));
    let out = p.up(&["/bin/true"]);
    let text = stderr(&out);
    let left_alone = link_exists(&bridge);
    let _ = Command::new("ip").args(["link", "del", &bridge]).status();
    assert!(
        left_alone,
        "a link found there is not the launcher's to remove"
    );
    assert_eq!(out.status.code(), Some(125), "{text}");
    assert!(
        text.contains("step `net` failed") && text.contains(&format!("to {bridge}")),
        "{text}"
    );
    assert!(
        text.contains("bridge = "),
        "the diagnostic points at the key: {text}"
    );
    assert_clean(&bridge, &[address(net, 2)]);
}

/// Removes a bridge its test expects kept for a while, and its record, should the test fail
/// before the run that removes them.
struct KeptBridge(String);

impl Drop for KeptBridge {
    fn drop(&mut self) {
        if link_exists(&self.0) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
        let _ = std::fs::remove_dir_all(Path::new("/run/sandbox/net").join(&self.0));
    }
}

#[test]
fn nfts_refusal_is_in_the_diagnostic_and_the_next_run_cleans_up() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(8);
    let _guard = KeptBridge(bridge.clone());
    let p = Project::new(Who::Root, &bridge_manifest(&bridge, net, ""));
    // An nft that refuses everything, first in PATH (the plan records the nft it found).
    let bin = p.path().join("refusing-nft");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("nft");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncat >/dev/null\necho 'Error: Could not process rule: the test refuses it' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let manifest = p.manifest();
    let out = p
        .command(&[
            "up",
            "--trust",
            manifest.to_str().unwrap(),
            "--",
            "/bin/true",
        ])
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{text}");
    assert!(
        text.contains("step `net` failed: installing the bridge's rules: nft refused them: Error: Could not process rule: the test refuses it"),
        "nft's message belongs in the diagnostic: {text}"
    );
    assert!(
        !text.lines().any(|line| line.starts_with("Error:")),
        "nft's stderr reached the terminal as it was: {text}"
    );
    assert!(
        text.contains("bridge = "),
        "the diagnostic points at the key: {text}"
    );
    // Removing the bridge's rules was refused too, so the bridge stayed for the next launch
    // on it, which with the real nft runs and then removes everything.
    assert!(link_exists(&bridge), "the bridge is kept for the next run");
    let out = p.up(&["/bin/true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean(&bridge, &[address(net, 2)]);
}

#[test]
fn a_sigkilled_supervisors_veth_rules_and_lease_go_with_the_next_run() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(5);
    let port = free_port();
    let manifest = bridge_manifest(
        &bridge,
        net,
        &format!("ports = [\"127.0.0.1:{port}:8080/tcp\"]\n"),
    );
    let p = Project::new(Who::Root, &manifest);
    let mut killed = Running::start(&p, &format!("{}read -r _ || true", serve(8080, "x")));
    assert_eq!(killed.line(), "ready");
    let stale = address(net, 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    killed.child.wait().unwrap();
    let lease = Path::new("/run/sandbox/net")
        .join(&bridge)
        .join(stale.to_string());
    assert!(lease.exists(), "the killed supervisor's lease stays");
    assert!(
        run("nft", &["list", "tables"]).contains(&format!("sandbox-{bridge}-{stale}")),
        "and its rules"
    );
    // The next run on the bridge finds the lease unlocked, and takes the address back.
    let next = Project::new(Who::Root, &bridge_manifest(&bridge, net, ""));
    assert_eq!(
        next.sh("ip -4 -o addr show eth0 | awk '{print $4}'"),
        format!("{stale}/24\n")
    );
    assert_eq!(fetch_from_host(port), None);
    assert_clean(&bridge, &[stale]);
}

/// pasta processes whose parent is `pid` (Debian's pasta re-executes itself as passt.avx2,
/// so they are known by their command line).
fn pasta_children(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, tail)| tail.split(' ').nth(1)?.parse::<i32>().ok());
            cmdline
                .split(|b| *b == 0)
                .next()
                .is_some_and(|arg0| arg0.ends_with(b"pasta"))
                && ppid == Some(pid)
        })
        .collect()
}

as_root_and_rootless! {
fn pasta_reaches_the_hosts_loopback_and_publishes_ports(who) {
    let host_port = free_port();
    let _host = Listener::start(Ipv4Addr::LOCALHOST, host_port, "hello-from-host");
    let published = free_port();
    let p = Project::new(
        who,
        &format!(
            "[rootfs]\nhost = true\n[network]\nmode = \"pasta\"\nports = [\"127.0.0.1:{published}:8080/tcp\"]\n"
        ),
    );
    let mut sandbox = Running::start(
        &p,
        &format!(
            "export gw=$(ip route | awk '/default/ {{print $3}}'); {}{}read -r _ || true",
            fetch("$gw", host_port, ANSWERED),
            serve(8080, "hello-from-inside")
        ),
    );
    assert_eq!(
        sandbox.line(),
        "hello-from-host",
        "the gateway is the host's loopback"
    );
    assert_eq!(sandbox.line(), "ready");
    assert_eq!(
        fetch_from_host(published).as_deref(),
        Some("hello-from-inside")
    );
    let pasta = pasta_children(sandbox.pid());
    assert_eq!(pasta.len(), 1, "pasta runs as the supervisor's child");
    assert_eq!(sandbox.finish(), 0);
    assert!(
        eventually(|| !Path::new(&format!("/proc/{}", pasta[0])).exists()),
        "pasta ended"
    );
    assert_eq!(fetch_from_host(published), None);
}

fn pasta_ends_when_its_supervisor_is_killed(who) {
    let p = Project::new(
        who,
        "[rootfs]\nhost = true\n[network]\nmode = \"pasta\"\n",
    );
    let mut sandbox = Running::start(&p, "echo ready; read -r _ || true");
    assert_eq!(sandbox.line(), "ready");
    let pasta = pasta_children(sandbox.pid());
    assert_eq!(pasta.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sandbox.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    sandbox.child.wait().unwrap();
    assert!(
        eventually(|| !Path::new(&format!("/proc/{}", pasta[0])).exists()),
        "pasta ended"
    );
}
}

#[test]
fn plan_shows_the_lease_the_veth_and_the_rules() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(6);
    let p = Project::new(
        Who::Root,
        &bridge_manifest(
            &bridge,
            net,
            "address = \"10.1.1.1\"\nports = [\"8080:80\"]\n",
        ),
    );
    // An address outside the subnet is refused before anything is made.
    let out = p.command(&["plan", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("sandbox::network::address"),
        "{}",
        stderr(&out)
    );
    let fixed = address(net, 9);
    let p = Project::new(
        Who::Root,
        &bridge_manifest(
            &bridge,
            net,
            &format!("address = \"{fixed}\"\nports = [\"8080:80\"]\n"),
        ),
    );
    let out = p.command(&["plan", "--", "true"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(&format!("lease {fixed} in /run/sandbox/net/{bridge}/")),
        "{text}"
    );
    assert!(
        text.contains(&format!("veth pair sbx{:08x}", u32::from(fixed))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "nft table ip sandbox-{bridge}-{fixed}: dnat 127.0.0.1:8080/tcp to {fixed}:80"
        )),
        "{text}"
    );
    assert_clean(&bridge, &[]);
}

// ---------------------------------------------------------------------------------------------
// Egress: the sandbox reaches only what `network.egress` lists.

/// A TCP server of the test's own on `address:port` (the host's loopback, or a bridge the
/// test made), answering each connection with `reply`; stopped on drop.
struct Listener {
    socket: TcpListener,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start(address: Ipv4Addr, port: u16, reply: &str) -> Listener {
        let socket = TcpListener::bind((address, port)).unwrap();
        let listener = socket.try_clone().unwrap();
        let reply = format!("{reply}\n");
        let thread = std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let _ = std::io::Write::write_all(&mut stream, reply.as_bytes());
            }
        });
        Listener {
            socket,
            thread: Some(thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // A listening socket shut down makes accept fail, which ends the thread.
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&self.socket),
            nix::sys::socket::Shutdown::Both,
        );
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The host's default IPv4 gateway, from /proc/net/route: pasta gives the sandbox the same
/// one, and maps it to the host's loopback.
fn host_gateway() -> Ipv4Addr {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    routes
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(1) == Some(&"00000000"))
        .and_then(|fields| u32::from_str_radix(fields[2], 16).ok())
        .map(|gateway| Ipv4Addr::from(gateway.swap_bytes()))
        .expect("pasta needs a default route on the host")
}

/// A bash function: `try HOST PORT` prints `STATUS OUTPUT` for a connection attempt (bounded
/// by `timeout`, so a dropped packet shows as a timeout, status 124 and no output, not a hang).
const TRY: &str = "try() { out=$(timeout 30 bash -c \"exec 3<>/dev/tcp/$1/$2 && head -n1 <&3\" 2>&1); rc=$?; echo \"$rc $(echo \"$out\" | head -n1)\"; }; ";

/// A name only the launcher's own /etc/hosts knows.
const NAME: &str = "egress-test.example";

/// `command`, run with a hosts file of the test's own bound over /etc/hosts, in a mount
/// namespace of its own: the launcher resolves NAME there; the machine's /etc/hosts is not
/// touched. Needs root (the tests run as root under CI); `None` otherwise.
fn with_hosts_file(command: &Command, hosts: &Path) -> Option<Command> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: binding a hosts file over /etc/hosts needs root");
        return None;
    }
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
        .arg(hosts)
        .arg(command.get_program())
        .args(command.get_args())
        .env_clear()
        .stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    Some(wrapped)
}

/// One `try` line: (succeeded, what was said).
fn attempt(line: &str) -> (bool, String) {
    let (status, said) = line.split_once(' ').unwrap_or((line, ""));
    (status == "0", said.to_string())
}

/// Refused by the rules: a reset the kernel answered with ("Connection refused"), not a
/// dropped packet (a timeout, with nothing said). How long it took is no proof: under
/// emulation starting bash alone takes seconds.
fn assert_refused(line: &str) {
    let (ok, said) = attempt(line);
    assert!(!ok, "reached: {line}");
    assert!(said.contains("Connection refused"), "not refused: {line}");
}

/// Run the egress checks in the sandbox of `p`, whose egress lists `gateway:allowed` and
/// `NAME:allowed` (NAME resolving to `gateway` through the hosts file) and not `other`.
fn check_egress(p: &Project, gateway: Ipv4Addr, allowed: u16, other: u16) {
    let hosts = p.write("hosts", &format!("127.0.0.1 localhost\n{gateway} {NAME}\n"));
    let manifest = p.manifest();
    let script = format!(
        "{TRY}try {gateway} {allowed}; try {gateway} {other}; try {NAME} {allowed}; \
         nft flush ruleset >/dev/null 2>&1; echo \"flush $?\"; try {gateway} {other}"
    );
    let up = p.command(&[
        "up",
        "--trust",
        manifest.to_str().unwrap(),
        "--",
        "/bin/bash",
        "-c",
        &script,
    ]);
    let Some(mut up) = with_hosts_file(&up, &hosts) else {
        return;
    };
    let out = up.output().unwrap();
    let (said, errors) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{said}\n{errors}");
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 5, "{said}\n{errors}");
    let (ok, answer) = attempt(lines[0]);
    assert!(
        ok && answer == format!("hello-{allowed}"),
        "the listed destination: {said}"
    );
    assert_refused(lines[1]);
    let (ok, answer) = attempt(lines[2]);
    assert!(
        ok && answer == format!("hello-{allowed}"),
        "by the listed name: {said}"
    );
    assert!(
        lines[3].starts_with("flush ") && lines[3] != "flush 0",
        "the command removed the rules: {said}"
    );
    assert_refused(lines[4]);
    assert!(
        errors.contains(&format!(
            "sandbox: egress refused 2 connections: {gateway}:{other} (2)"
        )),
        "the exit report: {errors}"
    );

    // -q: no report.
    let quiet = p.command(&[
        "-q",
        "up",
        "--trust",
        manifest.to_str().unwrap(),
        "--",
        "/bin/bash",
        "-c",
        &format!("{TRY}try {gateway} {other}"),
    ]);
    let quiet = with_hosts_file(&quiet, &hosts).unwrap().output().unwrap();
    assert_refused(stdout(&quiet).trim());
    assert!(!stderr(&quiet).contains("egress"), "{}", stderr(&quiet));
}

as_root_and_rootless! {
fn pasta_egress_reaches_only_what_it_lists(who) {
    let gateway = host_gateway();
    let (allowed, other) = (free_port(), free_port());
    let _servers = [
        Listener::start(Ipv4Addr::LOCALHOST, allowed, &format!("hello-{allowed}")),
        Listener::start(Ipv4Addr::LOCALHOST, other, &format!("hello-{other}")),
    ];
    // pasta carries connections to the gateway's address to the host's loopback.
    let p = Project::new(
        who,
        &format!(
            "[rootfs]\nhost = true\n[network]\nmode = \"pasta\"\negress = [\"{gateway}:{allowed}\", \"{NAME}:{allowed}\"]\n"
        ),
    );
    check_egress(&p, gateway, allowed, other);
}

fn ps_shows_what_egress_refused_while_the_sandbox_runs(who) {
    let gateway = host_gateway();
    let other = free_port();
    let _server = Listener::start(Ipv4Addr::LOCALHOST, other, "hello");
    let p = Project::new(
        who,
        &format!(
            "name = \"egress-ps\"\n[rootfs]\nhost = true\n[network]\nmode = \"pasta\"\negress = [\"udp:{gateway}:53\"]\n"
        ),
    );
    let manifest = p.manifest();
    let script = format!("{TRY}try {gateway} {other}; sleep 60");
    let out = p
        .command(&["up", "-d", "--trust", manifest.to_str().unwrap(), "--", "/bin/bash", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut seen = serde_json::Value::Null;
    let found = eventually(|| {
        let out = p.command(&["ps", "--json"]).output().unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        seen = rows[0]["egress_refused"].clone();
        seen[0]["count"] == 1
    });
    let _ = p.command(&["down", "egress-ps"]).output();
    assert!(found, "ps --json: {seen}");
    assert_eq!(seen[0]["destination"], format!("{gateway}:{other}"));
}
}

#[test]
fn bridge_egress_reaches_only_what_it_lists() {
    if !root_only() {
        return;
    }
    let (bridge, net) = network(9);
    let gateway = address(net, 1);
    // The bridge, and its address, exist while a sandbox is on it: the servers listen there.
    let holder = Project::new(Who::Root, &bridge_manifest(&bridge, net, ""));
    let mut holding = Running::start(&holder, "echo ready; read -r _ || true");
    assert_eq!(holding.line(), "ready");
    let (allowed, other) = (free_port(), free_port());
    let servers = [
        Listener::start(gateway, allowed, &format!("hello-{allowed}")),
        Listener::start(gateway, other, &format!("hello-{other}")),
    ];
    let p = Project::new(
        Who::Root,
        &bridge_manifest(
            &bridge,
            net,
            &format!("egress = [\"{gateway}:{allowed}\", \"{NAME}:{allowed}\"]\n"),
        ),
    );
    check_egress(&p, gateway, allowed, other);
    drop(servers);
    assert_eq!(holding.finish(), 0);
    assert_clean(&bridge, &[address(net, 2), address(net, 3)]);
}

#[test]
fn egress_lets_replies_to_published_ports_out() {
    if !root_only() {
        return;
    }
    // Over the bridge, not through a loopback (pasta splices connections from the host's
    // loopback onto the sandbox's own, where everything passes): nothing may go out, but the
    // connection made to the sandbox is answered.
    let published = Published::start(10, "egress = []\n");
    assert_eq!(published.sandbox.finish(), 0);
    assert_clean(&published.bridge, &[address(published.net, 2)]);
}
