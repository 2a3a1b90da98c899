//! The supervisor and the sandbox's setup process talk over a SOCK_SEQPACKET socketpair: one
//! message per packet, typed, serialized with serde_json. The parent sends `Go` once it has
//! written the id maps and placed the child in its cgroup; the child answers `Ready` (with its
//! step timings and, for a terminal, the pty master) or `Failed` with the step that failed.
//!
//! Either side reading end-of-file learns that the other died: this is also how the child
//! notices a supervisor killed before it could set PR_SET_PDEATHSIG.

use std::io::{IoSlice, IoSliceMut};
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
    Go,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ToParent {
    /// Setup is done; the command starts next. Timings are (step, nanoseconds) for `-v`.
    Ready {
        timings: Vec<(StepId, u64)>,
    },
    Failed(StepFailure),
}

/// One end of the socketpair.
pub struct Channel(OwnedFd);

/// Large enough for any message (a failure's context is a path or two).
const MAX_MESSAGE: usize = 64 * 1024;

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
    pub fn send<T: Serialize>(&self, message: &T, fd: Option<RawFd>) -> nix::Result<()> {
        let bytes = serde_json::to_vec(message).expect("handshake messages serialize");
        let iov = [IoSlice::new(&bytes)];
        let fds: Vec<RawFd> = fd.into_iter().collect();
        let cmsgs: Vec<ControlMessage> = if fds.is_empty() {
            Vec::new()
        } else {
            vec![ControlMessage::ScmRights(&fds)]
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

    /// Receive one message, and the descriptor sent with it, if any.
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> Result<(T, Option<OwnedFd>), RecvError> {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!(RawFd);
        let (len, fd) =
            loop {
                let mut iov = [IoSliceMut::new(&mut buffer)];
                match recvmsg::<()>(
                    self.0.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(Errno::EINTR) => continue,
                    Err(errno) => return Err(RecvError::Io(errno)),
                    Ok(message) => {
                        let fd =
                            message.cmsgs().ok().into_iter().flatten().find_map(
                                |cmsg| match cmsg {
                                    ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                                    _ => None,
                                },
                            );
                        break (message.bytes, fd);
                    }
                }
            };
        let fd = fd.map(super::sys::adopt_received);
        if len == 0 {
            return Err(RecvError::Closed);
        }
        serde_json::from_slice(&buffer[..len])
            .map(|m| (m, fd))
            .map_err(|e| RecvError::Malformed(e.to_string()))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_descriptors_cross_the_pair() {
        let (parent, child) = pair().unwrap();
        parent.send(&ToChild::Go, None).unwrap();
        let (go, fd): (ToChild, _) = child.recv().unwrap();
        assert_eq!(go, ToChild::Go);
        assert!(fd.is_none());

        let file = std::fs::File::open("/dev/null").unwrap();
        let failure = StepFailure::new(StepId::Mount, "mount tmpfs on /tmp", Errno::EPERM)
            .with_key("mount[0]");
        child
            .send(&ToParent::Failed(failure.clone()), Some(file.as_raw_fd()))
            .unwrap();
        let (message, fd): (ToParent, _) = parent.recv().unwrap();
        assert_eq!(message, ToParent::Failed(failure));
        assert!(fd.is_some(), "the descriptor arrives with the message");
    }

    #[test]
    fn a_closed_end_reads_as_closed() {
        let (parent, child) = pair().unwrap();
        drop(child);
        assert!(matches!(parent.recv::<ToParent>(), Err(RecvError::Closed)));
    }
}
