//! The supervisor and the sandbox's setup process talk over a SOCK_SEQPACKET socketpair: one
//! message per packet, typed, serialized with serde_json. The child sends `Early` as soon as
//! its early halves are done, while the parent writes the id maps; the parent sends `Go` once
//! it has written them (on cgroup v1 the child then moves itself into its group) and runs its
//! released halves with what `Early` carried, while the child runs its own; the child answers
//! `Ready` (with its step timings, its namespaces and, for a terminal, the pty master)
//! or `Failed` with the step that failed. While the child sets up, the parent records the
//! sandbox and sends `Start`, which the child waits for, after `Ready`, before it spawns the
//! command: the record is written off the launch's critical path, and still before the
//! command runs.
//!
//! Either side reading end-of-file learns that the other died: this is also how the child
//! notices a supervisor killed before it could set PR_SET_PDEATHSIG.

use std::io::{IoSlice, IoSliceMut};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

use super::error::StepFailure;
use crate::plan::StepId;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ToChild {
    /// Set up. The message carries the sandbox's address on its bridge.
    Go { address: Option<Ipv4Addr> },
    /// The sandbox is recorded: the command may start.
    Start,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ToParent {
    /// The early halves are done. The message carries, with `netlink`, a netlink socket of the
    /// sandbox's own network namespace, for the supervisor's released halves.
    Early {
        netlink: bool,
    },
    /// Setup is done; the command starts next. Timings are (step, nanoseconds) for `-v`. The
    /// message carries, with `egress`, the netlink socket the egress rules were installed
    /// through; then the sandbox's namespaces, one descriptor each in
    /// [`Namespaces::joined`](crate::plan::Namespaces::joined)'s order; then the pty master,
    /// with a terminal.
    Ready {
        timings: Vec<(StepId, u64)>,
        #[serde(default)]
        egress: bool,
    },
    Failed(StepFailure),
}

/// One end of the socketpair.
pub struct Channel(OwnedFd);

/// The most descriptors one message carries (SCM_MAX_FD is 253).
const MAX_FDS: usize = 64;

pub fn pair() -> nix::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel(a), Channel(b)))
}

#[derive(Debug)]
pub enum RecvError {
    /// The other end is gone.
    Closed,
    Io(Errno),
    Malformed(String),
}

impl Channel {
    pub fn send<T: Serialize>(&self, message: &T, fds: &[RawFd]) -> nix::Result<()> {
        let bytes = serde_json::to_vec(message).expect("handshake messages serialize");
        let iov = [IoSlice::new(&bytes)];
        let cmsgs: Vec<ControlMessage> = if fds.is_empty() {
            Vec::new()
        } else {
            vec![ControlMessage::ScmRights(fds)]
        };
        loop {
            match sendmsg::<()>(
                self.0.as_raw_fd(),
                &iov,
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                other => return other.map(drop),
            }
        }
    }

    /// Receive one message, and the descriptors sent with it.
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> Result<(T, Vec<OwnedFd>), RecvError> {
        // A buffer sized for the largest possible message would be zeroed and faulted in on
        // every launch, in both processes; peeking gives this packet's exact length instead.
        // A peer that closed with a message of ours unread (a setup that failed before it read
        // `Start`) resets the connection: the kernel says so once, ahead of what the peer sent
        // before closing, which the next read returns.
        let mut reset = false;
        let mut again = |errno: Errno| {
            let retry = errno == Errno::EINTR || (errno == Errno::ECONNRESET && !reset);
            reset |= errno == Errno::ECONNRESET;
            retry
        };
        let len = loop {
            let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
            match nix::sys::socket::recv(self.0.as_raw_fd(), &mut [], flags) {
                Err(errno) if again(errno) => continue,
                Err(errno) => return Err(RecvError::Io(errno)),
                Ok(len) => break len,
            }
        };
        if len == 0 {
            return Err(RecvError::Closed);
        }
        let mut buffer = vec![0u8; len];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (len, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buffer)];
            let flags = MsgFlags::MSG_CMSG_CLOEXEC;
            match recvmsg::<()>(self.0.as_raw_fd(), &mut iov, Some(&mut space), flags) {
                Err(errno) if again(errno) => continue,
                Err(errno) => return Err(RecvError::Io(errno)),
                Ok(message) => {
                    let mut fds = Vec::new();
                    for cmsg in message.cmsgs().into_iter().flatten() {
                        if let ControlMessageOwned::ScmRights(received) = cmsg {
                            fds.extend(received.into_iter().map(crate::sys::raw::adopt_received));
                        }
                    }
                    break (message.bytes, fds);
                }
            }
        };
        serde_json::from_slice(&buffer[..len])
            .map(|m| (m, fds))
            .map_err(|e| RecvError::Malformed(e.to_string()))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<Channel> for OwnedFd {
    fn from(channel: Channel) -> OwnedFd {
        channel.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::error::Op;

    #[test]
    fn what_a_peer_said_before_it_closed_with_a_message_unread_is_still_read() {
        let (parent, child) = pair().unwrap();
        let failure = StepFailure::new(StepId::Mount, Op::Mount, "mount", Errno::ENOENT);
        child.send(&ToParent::Failed(failure), &[]).unwrap();
        parent.send(&ToChild::Start, &[]).unwrap();
        drop(child);
        let (answer, _): (ToParent, _) = parent.recv().unwrap();
        assert!(matches!(answer, ToParent::Failed(f) if f.errno == Errno::ENOENT as i32));
        assert!(matches!(parent.recv::<ToParent>(), Err(RecvError::Closed)));
    }

    #[test]
    fn messages_and_descriptors_cross_the_pair() {
        let (parent, child) = pair().unwrap();
        let go = ToChild::Go {
            address: Some(Ipv4Addr::new(10, 88, 0, 2)),
        };
        parent.send(&go, &[]).unwrap();
        let (go, fds): (ToChild, _) = child.recv().unwrap();
        assert_eq!(
            go,
            ToChild::Go {
                address: Some(Ipv4Addr::new(10, 88, 0, 2))
            }
        );
        assert!(fds.is_empty());

        let file = std::fs::File::open("/dev/null").unwrap();
        let failure = StepFailure::new(
            StepId::Mount,
            Op::Mount,
            "mount tmpfs on /tmp",
            Errno::EPERM,
        )
        .with_key("mount[0]");
        let other = std::fs::File::open("/dev/zero").unwrap();
        child
            .send(
                &ToParent::Failed(failure.clone()),
                &[file.as_raw_fd(), other.as_raw_fd()],
            )
            .unwrap();
        let (message, fds): (ToParent, _) = parent.recv().unwrap();
        assert_eq!(message, ToParent::Failed(failure));
        assert_eq!(fds.len(), 2, "the descriptors arrive with the message");
    }

    #[test]
    fn a_message_sent_before_closing_is_still_read() {
        let (parent, child) = pair().unwrap();
        let ready = ToParent::Ready {
            timings: vec![(StepId::Mount, 31)],
            egress: false,
        };
        child.send(&ready, &[]).unwrap();
        drop(child);
        let (message, _): (ToParent, _) = parent.recv().unwrap();
        assert_eq!(message, ready);
        assert!(matches!(parent.recv::<ToParent>(), Err(RecvError::Closed)));
    }

    #[test]
    fn a_closed_end_reads_as_closed() {
        let (parent, child) = pair().unwrap();
        drop(child);
        assert!(matches!(parent.recv::<ToParent>(), Err(RecvError::Closed)));
    }
}
