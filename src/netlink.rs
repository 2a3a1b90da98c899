//! A small synchronous netlink client: the links, addresses and routes of bridge networking
//! (rtnetlink), without shelling out to `ip`, and the nfnetlink batches of the egress rules.
//!
//! The launcher is single-threaded until it clones and must not start an async runtime, so
//! this speaks netlink over a blocking socket, with messages from the rust-netlink crates
//! (netlink-packet-route, -netfilter), as Podman's netavark does. Every route operation is one
//! request answered by the kernel's acknowledgement, through [`Request`], which a test can
//! answer instead. The socket is a plain descriptor, so one opened in another network
//! namespace can be passed over a Unix socket and used here.

use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, send};

/// One request to the kernel and its answers (for a `GET`, the object asked for).
pub trait Request {
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Errno>;
}

/// A netlink socket, in the network namespace of whoever opened it.
pub struct Socket {
    fd: OwnedFd,
    sequence: u32,
}

/// A message of an nfnetlink batch the kernel refused: its sequence number in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub sequence: u32,
    pub errno: Errno,
}

impl Socket {
    pub fn open(protocol: SockProtocol) -> Result<Socket, Errno> {
        let fd = socket::socket(
            socket::AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol,
        )?;
        // Port 0: the kernel picks this socket's address; and the kernel is its only peer.
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        socket::connect(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Socket::adopt(fd))
    }

    /// A netlink socket opened elsewhere (in the sandbox's network namespace) and passed here.
    pub fn adopt(fd: OwnedFd) -> Socket {
        Socket { fd, sequence: 0 }
    }

    /// One request, and its answers until the kernel's acknowledgement or the end of a dump.
    pub fn exchange<Q, A>(&mut self, message: Q, flags: u16) -> Result<Vec<A>, Errno>
    where
        Q: NetlinkSerializable + Debug,
        A: NetlinkDeserializable,
    {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST | NLM_F_ACK;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.send(&bytes)?;

        let mut answers = Vec::new();
        loop {
            let datagram = self.receive(MsgFlags::empty())?;
            for answer in messages::<A>(&datagram)? {
                if answer.header.sequence_number != self.sequence {
                    continue;
                }
                match answer.payload {
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(answers),
                            Some(code) => Err(Errno::from_raw(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// Send an nfnetlink batch whose messages ask for no acknowledgement, as nft does. The
    /// kernel handles a batch within the send, so when it returns an error is queued or there
    /// is none: what is queued is read without waiting.
    pub fn send_batch(&mut self, batch: &[u8]) -> Result<(), Refusal> {
        let refused = |errno| Refusal { sequence: 0, errno };
        self.send(batch).map_err(refused)?;
        loop {
            let datagram = match self.receive(MsgFlags::MSG_DONTWAIT) {
                Err(Errno::EAGAIN) => return Ok(()),
                other => other.map_err(refused)?,
            };
            for answer in messages::<netlink_packet_netfilter::NetfilterMessage>(&datagram)
                .map_err(refused)?
            {
                if let NetlinkPayload::Error(error) = answer.payload
                    && let Some(code) = error.code
                {
                    return Err(Refusal {
                        sequence: answer.header.sequence_number,
                        errno: Errno::from_raw(-code.get()),
                    });
                }
            }
        }
    }

    fn send(&self, bytes: &[u8]) -> Result<(), Errno> {
        let sent = send(self.fd.as_raw_fd(), bytes, MsgFlags::empty())?;
        if sent != bytes.len() {
            return Err(Errno::EMSGSIZE);
        }
        Ok(())
    }

    /// One datagram, in a buffer of its size (peeked first: a dump's can be large).
    fn receive(&self, flags: MsgFlags) -> Result<Vec<u8>, Errno> {
        let size = loop {
            match recv(
                self.fd.as_raw_fd(),
                &mut [],
                flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        };
        let mut datagram = vec![0; size];
        loop {
            match recv(self.fd.as_raw_fd(), &mut datagram, flags) {
                Err(Errno::EINTR) => continue,
                other => {
                    datagram.truncate(other?);
                    return Ok(datagram);
                }
            }
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The messages of one datagram.
fn messages<T: NetlinkDeserializable>(datagram: &[u8]) -> Result<Vec<NetlinkMessage<T>>, Errno> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < datagram.len() {
        let message =
            NetlinkMessage::<T>::deserialize(&datagram[offset..]).map_err(|_| Errno::EBADMSG)?;
        let length = message.header.length as usize;
        out.push(message);
        if length == 0 {
            break;
        }
        // Messages are aligned to 4 bytes.
        offset += (length + 3) & !3;
    }
    Ok(out)
}

/// The operations bridge networking needs, over any [`Request`] (the launcher's goes through
/// `Sys::netlink_request`, so a fake can answer it).
pub struct Netlink<R: Request>(pub R);

fn link_named(name: &str) -> LinkMessage {
    let mut link = LinkMessage::default();
    link.attributes
        .push(LinkAttribute::IfName(name.to_string()));
    link
}

impl<R: Request> Netlink<R> {
    /// The index of the interface `name`; `None` when there is none.
    pub fn index(&mut self, name: &str) -> Result<Option<u32>, Errno> {
        match self
            .0
            .request(RouteNetlinkMessage::GetLink(link_named(name)), 0)
        {
            Ok(answers) => Ok(answers.into_iter().find_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(Errno::ENODEV) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// Create a bridge; false when a link of that name exists already.
    pub fn create_bridge(&mut self, name: &str) -> Result<bool, Errno> {
        let mut link = link_named(name);
        link.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.0.request(
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(errno) => Err(errno),
        }
    }

    /// Create a veth pair: `host` here, its peer `peer` straight in the network namespace
    /// `netns`. Made there, the peer never exists under its name in this namespace, where an
    /// `eth0` may already be taken.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        netns: BorrowedFd<'_>,
    ) -> Result<(), Errno> {
        let mut peer_link = link_named(peer);
        peer_link
            .attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        let mut link = link_named(host);
        link.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_link))),
        ]));
        self.0
            .request(
                RouteNetlinkMessage::NewLink(link),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(drop)
    }

    /// Bring a link up, and with `controller`, make it a port of that bridge.
    pub fn set_up(&mut self, index: u32, controller: Option<u32>) -> Result<(), Errno> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        if let Some(bridge) = controller {
            link.attributes.push(LinkAttribute::Controller(bridge));
        }
        self.0
            .request(RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
    }

    /// Delete a link (a veth takes its peer along); false when there was none.
    pub fn delete(&mut self, name: &str) -> Result<bool, Errno> {
        match self
            .0
            .request(RouteNetlinkMessage::DelLink(link_named(name)), 0)
        {
            Ok(_) => Ok(true),
            Err(Errno::ENODEV) => Ok(false),
            Err(errno) => Err(errno),
        }
    }

    /// Add `address/prefix` to a link; an address it has already is fine.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> Result<(), Errno> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix;
        message.header.index = index;
        message.attributes = vec![
            AddressAttribute::Local(address.into()),
            AddressAttribute::Address(address.into()),
        ];
        match self.0.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) | Err(Errno::EEXIST) => Ok(()),
            Err(errno) => Err(errno),
        }
    }

    /// The default route, via `gateway` on link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), Errno> {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route.header.table = RouteHeader::RT_TABLE_MAIN;
        route.header.protocol = RouteProtocol::Boot;
        route.header.scope = RouteScope::Universe;
        route.header.kind = RouteType::Unicast;
        route.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(gateway)),
            RouteAttribute::Oif(index),
        ];
        self.0
            .request(
                RouteNetlinkMessage::NewRoute(route),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(drop)
    }
}

#[cfg(test)]
pub mod fake {
    use super::*;

    /// Answers requests from a script and records them.
    #[derive(Default)]
    pub struct Fake {
        pub sent: Vec<(RouteNetlinkMessage, u16)>,
        /// Answers, in order; an empty script acknowledges everything.
        pub answers: std::collections::VecDeque<Result<Vec<RouteNetlinkMessage>, Errno>>,
    }

    impl Request for Fake {
        fn request(
            &mut self,
            message: RouteNetlinkMessage,
            flags: u16,
        ) -> Result<Vec<RouteNetlinkMessage>, Errno> {
            self.sent.push((message, flags));
            self.answers.pop_front().unwrap_or(Ok(Vec::new()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Fake;
    use super::*;

    fn name_of(link: &LinkMessage) -> Option<&str> {
        link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.as_str()),
            _ => None,
        })
    }

    #[test]
    fn the_veth_peer_is_made_in_the_target_namespace() {
        let mut netlink = Netlink(Fake::default());
        let netns = std::fs::File::open("/proc/self/ns/net").unwrap();
        use std::os::fd::AsFd;
        netlink
            .create_veth("sbxhost", "eth0", netns.as_fd())
            .unwrap();
        let (RouteNetlinkMessage::NewLink(link), flags) = &netlink.0.sent[0] else {
            panic!("not a new link: {:?}", netlink.0.sent);
        };
        assert_eq!(*flags, NLM_F_CREATE | NLM_F_EXCL);
        assert_eq!(name_of(link), Some("sbxhost"));
        let info = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(info) => Some(info),
                _ => None,
            })
            .unwrap();
        assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
        let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &info[1] else {
            panic!("no peer: {info:?}");
        };
        assert_eq!(name_of(peer), Some("eth0"));
        assert!(
            peer.attributes
                .contains(&LinkAttribute::NetNsFd(netns.as_raw_fd()))
        );
    }

    #[test]
    fn an_existing_bridge_or_address_is_not_an_error() {
        let mut netlink = Netlink(Fake::default());
        netlink.0.answers.push_back(Err(Errno::EEXIST));
        netlink.0.answers.push_back(Err(Errno::EEXIST));
        netlink.0.answers.push_back(Err(Errno::EPERM));
        assert_eq!(netlink.create_bridge("sbx0"), Ok(false));
        assert_eq!(
            netlink.add_address(3, Ipv4Addr::new(10, 88, 0, 1), 16),
            Ok(())
        );
        assert_eq!(netlink.create_bridge("sbx0"), Err(Errno::EPERM));
        assert_eq!(netlink.create_bridge("sbx0"), Ok(true));
    }

    #[test]
    fn a_missing_link_has_no_index_and_deleting_it_is_not_an_error() {
        let mut netlink = Netlink(Fake::default());
        netlink.0.answers.push_back(Err(Errno::ENODEV));
        netlink.0.answers.push_back(Err(Errno::ENODEV));
        let mut found = LinkMessage::default();
        found.header.index = 7;
        netlink
            .0
            .answers
            .push_back(Ok(vec![RouteNetlinkMessage::NewLink(found)]));
        assert_eq!(netlink.index("gone"), Ok(None));
        assert_eq!(netlink.delete("gone"), Ok(false));
        assert_eq!(netlink.index("eth0"), Ok(Some(7)));
    }

    #[test]
    fn up_sets_only_the_up_flag_and_the_bridge() {
        let mut netlink = Netlink(Fake::default());
        netlink.set_up(5, Some(2)).unwrap();
        let (RouteNetlinkMessage::SetLink(link), _) = &netlink.0.sent[0] else {
            panic!("not a set link");
        };
        assert_eq!(link.header.index, 5);
        assert_eq!(link.header.change_mask, LinkFlags::Up);
        assert!(link.attributes.contains(&LinkAttribute::Controller(2)));
    }

    #[test]
    fn the_default_route_goes_via_the_gateway_in_the_main_table() {
        let mut netlink = Netlink(Fake::default());
        netlink
            .add_default_route(4, Ipv4Addr::new(10, 88, 0, 1))
            .unwrap();
        let (RouteNetlinkMessage::NewRoute(route), _) = &netlink.0.sent[0] else {
            panic!("not a route");
        };
        assert_eq!(route.header.destination_prefix_length, 0);
        assert_eq!(route.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(
            route
                .attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                    10, 88, 0, 1
                ))))
        );
        assert!(route.attributes.contains(&RouteAttribute::Oif(4)));
    }
}
