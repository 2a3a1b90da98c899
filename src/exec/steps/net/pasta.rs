//! pasta (Debian's passt): user-mode networking for rootless sandboxes. It joins the sandbox's
//! user and network namespaces by pid, makes a tap interface there with the host's addresses
//! and routes (`--config-net`), and carries the sandbox's connections through sockets of the
//! host: connections to the gateway's address reach the host's loopback, and each published
//! port is a socket it listens on.
//!
//! It stays in the foreground as the supervisor's child, so the supervisor ends it with the
//! sandbox, and the kernel kills it if the supervisor dies (PR_SET_PDEATHSIG). It reports
//! readiness by writing its pid file once the namespace is configured and the ports are bound:
//! the pid file is its stdout, a pipe the supervisor reads, so nothing polls.

use std::io::Read;
use std::net::IpAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

use nix::errno::Errno;

use crate::exec::error::{Op, StepFailure};
use crate::manifest::values::{PortSpec, Protocol};
use crate::plan::{PastaPlan, StepId};
use crate::sys::raw as sys;

/// pasta's `-t`/`-u` spec for a published port: `[address/]host_port:sandbox_port`.
fn port_spec(port: &PortSpec) -> String {
    let ports = format!("{}:{}", port.host_port, port.sandbox_port);
    match port.host_address {
        IpAddr::V4(a) if a.is_unspecified() => ports,
        IpAddr::V6(a) if a.is_unspecified() => ports,
        address => format!("{address}/{ports}"),
    }
}

/// pasta's arguments for the sandbox whose setup process is `pid`. `as_root`: run by root,
/// pasta would switch to nobody before joining the sandbox's user namespace, which root owns;
/// it keeps root's uid instead (and has capabilities only in that namespace once it joined).
pub fn args(plan: &PastaPlan, pid: i32, as_root: bool) -> Vec<String> {
    let mut args: Vec<String> = ["--foreground", "--quiet", "--config-net"]
        .map(String::from)
        .to_vec();
    if as_root {
        args.extend(["--runas".to_string(), "0:0".to_string()]);
    }
    for (flag, protocol) in [("-t", Protocol::Tcp), ("-u", Protocol::Udp)] {
        let specs: Vec<String> = plan
            .ports
            .iter()
            .filter(|p| p.protocol == protocol)
            .map(port_spec)
            .collect();
        // Without a spec pasta forwards every port bound inside ("auto").
        if specs.is_empty() {
            args.extend([flag.to_string(), "none".to_string()]);
        }
        for spec in specs {
            args.extend([flag.to_string(), spec]);
        }
    }
    // Ports bound on the sandbox's loopback stay there: "auto" would forward them to the
    // host's loopback.
    args.extend(["-T", "none", "-U", "none"].map(String::from));
    args.extend(["--pid".to_string(), "/proc/self/fd/1".to_string()]);
    args.push(pid.to_string());
    args
}

/// A running pasta, ended on drop.
pub struct Running {
    child: Child,
    /// Held open while pasta runs: closing it would make a late write to its stdout fail.
    _stdout: ChildStdout,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(plan: &PastaPlan, pid: i32) -> Result<Running, StepFailure> {
    let fail = |what: String, errno: Errno| {
        StepFailure::new(StepId::Net, Op::Pasta, format!("pasta: {what}"), errno)
            .with_key("network.mode")
    };
    let mut command = Command::new(&plan.pasta);
    command
        .args(args(plan, pid, nix::unistd::geteuid().is_root()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    sys::die_with_parent(&mut command);
    let mut child = command.spawn().map_err(|e| {
        fail(
            format!("starting {}", plan.pasta.display()),
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut line = Vec::new();
    let mut byte = [0u8];
    // Until the pid file's newline, or end-of-file if pasta gave up.
    while stdout.read(&mut byte).map_err(|e| {
        fail(
            "reading its pid file".into(),
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })? == 1
        && byte[0] != b'\n'
    {
        line.push(byte[0]);
    }
    if line.is_empty() {
        let status = child.wait().map_err(|e| {
            fail(
                "waiting for it".into(),
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })?;
        return Err(fail(
            format!("it exited ({status}) before the network was ready"),
            Errno::ENETDOWN,
        ));
    }
    Ok(Running {
        child,
        _stdout: stdout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(ports: &[&str]) -> PastaPlan {
        PastaPlan {
            ports: ports.iter().map(|p| PortSpec::parse(p).unwrap()).collect(),
            dns: Vec::new(),
            pasta: "/usr/bin/pasta".into(),
            egress: None,
        }
    }

    #[test]
    fn only_the_published_ports_are_forwarded() {
        let args = args(
            &plan(&[
                "127.0.0.1:18080:8080",
                "0.0.0.0:5353:53/udp",
                "[::1]:18443:8443",
            ]),
            42,
            false,
        );
        let joined = args.join(" ");
        assert_eq!(
            joined,
            "--foreground --quiet --config-net -t 127.0.0.1/18080:8080 -t ::1/18443:8443 \
             -u 5353:53 -T none -U none --pid /proc/self/fd/1 42"
        );
    }

    #[test]
    fn no_ports_means_none_not_auto() {
        let joined = args(&plan(&[]), 7, false).join(" ");
        assert!(
            joined.contains("-t none -u none -T none -U none"),
            "{joined}"
        );
        assert!(joined.ends_with(" 7"));
        assert!(!joined.contains("--runas"));
        let as_root = args(&plan(&[]), 7, true).join(" ");
        assert!(
            as_root.contains("--config-net --runas 0:0 -t none"),
            "{as_root}"
        );
    }
}
