//! The egress rules as an nfnetlink batch, and the request and answers that read the refused
//! destinations back: pure functions of the plan, tested byte for byte against what nft 1.0.6
//! sends for the same ruleset (tests/data/egress/).
//!
//! The table, in nft's words:
//!
//! ```text
//! table inet sandbox-egress {
//!     set refused4 { type ipv4_addr . inet_proto . inet_service; size 1024; flags dynamic; }
//!     set refused6 { type ipv6_addr . inet_proto . inet_service; size 1024; flags dynamic; }
//!     chain output {
//!         type filter hook output priority filter; policy accept;
//!         oif 1 accept                              # loopback (always index 1)
//!         ct state established,related accept      # replies, and the ICMP errors of flows
//!         icmpv6 type nd-router-solicit accept      # and the other neighbour discovery
//!         meta nfproto ipv4 ip daddr 192.0.2.10 meta l4proto tcp th dport 443 accept
//!         ...                                       # one rule per address and protocol
//!         meta nfproto ipv4 meta l4proto tcp add @refused4 { ip daddr . meta l4proto . th dport counter }
//!         ...                                       # udp, and the same for IPv6
//!         meta l4proto tcp reject with tcp reset
//!         reject with icmpx admin-prohibited
//!     }
//! }
//! ```
//!
//! Counting and refusing are separate rules: a full set makes the counting rule stop early,
//! never the refusal.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    DefaultNla, Emitable, NLA_F_NESTED, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NlaBuffer, NlasIterator,
};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, Cmp, DataAttribute, ExpressionAttribute, Expressions, Hook,
    HookNumber, Immediate, InetHookNumber, ListAttribute, Meta, MetaKey, NfTablesMessage, Operator,
    Payload, Register, RuleAttribute, RuleMessage, SetAttribute, SetDescription, SetElementList,
    SetElementMessage, SetFlags, SetMessage, TableAttribute, TableFlags, TableMessage, Verdict,
    VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

use super::Refused;
use crate::manifest::values::Protocol;
use crate::plan::{EGRESS_TABLE, EgressPlan};

const CHAIN: &str = "output";
/// How many refused destinations each set counts; past that, refusals go uncounted.
const SET_SIZE: u32 = 1024;
/// The nfnetlink subsystem a batch is for (res_id of its begin and end messages).
const NFNL_SUBSYS_NFTABLES: u16 = 10;

// include/uapi/linux/netfilter/nf_tables.h, netfilter.h, nf_conntrack_common.h
const NF_ACCEPT: u32 = 1;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CT_STATE: u32 = 0;
const IP_CT_ESTABLISHED_RELATED: u32 = (1 << 1) | (1 << 2);
const NFT_REJECT_TCP_RST: u32 = 1;
const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
const NFT_REJECT_ICMPX_ADMIN_PROHIBITED: u8 = 3;
const NFT_DYNSET_OP_ADD: u32 = 0;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_REJECT_TYPE: u16 = 1;
const NFTA_REJECT_ICMP_CODE: u16 = 2;
const NFTA_DYNSET_SET_NAME: u16 = 1;
const NFTA_DYNSET_SET_ID: u16 = 2;
const NFTA_DYNSET_OP: u16 = 3;
const NFTA_DYNSET_SREG_KEY: u16 = 4;
const NFTA_DYNSET_EXPR: u16 = 7;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_PACKETS: u16 = 2;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// Router solicitation, neighbour solicitation and advertisement, MLDv2 report: without
/// them IPv6 reaches no neighbour, not even an allowed one.
const NEIGHBOUR_DISCOVERY: [u8; 4] = [133, 135, 136, 143];
/// nft's user data for the sets' concatenated keys, which `nft list` reads to print the
/// elements (the same for both sets).
const SET_USERDATA: [u8; 16] = [
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00,
];

/// An IP version, and what the rules need to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    const BOTH: [Family; 2] = [Family::V4, Family::V6];

    fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    fn nfproto(self) -> u8 {
        match self {
            Family::V4 => libc::NFPROTO_IPV4 as u8,
            Family::V6 => libc::NFPROTO_IPV6 as u8,
        }
    }

    /// The set counting refusals, and its id within the batch.
    pub(super) fn set(self) -> (&'static str, u32) {
        match self {
            Family::V4 => ("refused4", 1),
            Family::V6 => ("refused6", 2),
        }
    }

    /// Where the destination address is in the network header, and its length.
    fn daddr(self) -> (u32, u32) {
        match self {
            Family::V4 => (16, 4),
            Family::V6 => (24, 16),
        }
    }

    /// nft's type of `ipvN_addr . inet_proto . inet_service` (each type 6 bits more).
    fn key_type(self) -> u32 {
        let address = match self {
            Family::V4 => 7,
            Family::V6 => 8,
        };
        (((address << 6) | 12) << 6) | 13
    }

    /// The address, the protocol and the port each take whole 4-byte registers.
    fn key_len(self) -> u32 {
        self.daddr().1 + 4 + 4
    }
}

fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

/// The register at `offset` bytes into the key: the 16-byte registers where one starts
/// there, the 4-byte ones otherwise, as nft numbers them.
fn register_at(offset: u32) -> Register {
    if offset.is_multiple_of(16) {
        Register::from(1 + offset / 16)
    } else {
        Register::from(8 + offset / 4)
    }
}

fn meta(key: MetaKey, register: Register) -> Expressions {
    Expressions::Meta(vec![Meta::Key(key), Meta::DestinationRegister(register)])
}

fn compare(op: Operator, data: &[u8]) -> Expressions {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(op),
        Cmp::Data(DataAttribute::Value(data.to_vec())),
    ])
}

fn equals(data: &[u8]) -> Expressions {
    compare(Operator::Equal, data)
}

fn payload(base: u32, offset: u32, len: u32, register: Register) -> Expressions {
    Expressions::Payload(vec![
        Payload::DestinationRegister(register),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
}

fn mask(len: u32, mask: Vec<u8>) -> Expressions {
    let xor = vec![0; mask.len()];
    Expressions::Bitwise(vec![
        Bitwise::SourceRegister(Register::Reg1),
        Bitwise::DestinationRegister(Register::Reg1),
        Bitwise::Length(len),
        Bitwise::Mask(DataAttribute::Value(mask)),
        Bitwise::Xor(DataAttribute::Value(xor)),
    ])
}

fn accept() -> Expressions {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Verdict),
        Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
            Verdict::Other(NF_ACCEPT),
        )])),
    ])
}

fn u32_be(kind: u16, value: u32) -> DefaultNla {
    DefaultNla::new(kind, value.to_be_bytes().to_vec())
}

/// An expression the crate has no type for, from its attributes.
fn other(name: &str, attributes: Vec<DefaultNla>) -> Expressions {
    Expressions::Other {
        expression_type: name.to_string(),
        attributes,
    }
}

fn conntrack_state() -> Expressions {
    other(
        "ct",
        vec![u32_be(NFTA_CT_KEY, NFT_CT_STATE), u32_be(NFTA_CT_DREG, 1)],
    )
}

fn reject(kind: u32, code: u8) -> Expressions {
    other(
        "reject",
        vec![
            u32_be(NFTA_REJECT_TYPE, kind),
            DefaultNla::new(NFTA_REJECT_ICMP_CODE, vec![code]),
        ],
    )
}

/// `add @refusedN { key counter }`, the key being in the registers from 1 on.
fn count_into(family: Family) -> Expressions {
    let (set, id) = family.set();
    let counter = [
        ExpressionAttribute::Name("counter".into()),
        ExpressionAttribute::Data(other("counter", Vec::new())),
    ];
    let mut nested = vec![0; counter.as_slice().buffer_len()];
    counter.as_slice().emit(&mut nested);
    let mut name = set.as_bytes().to_vec();
    name.push(0);
    other(
        "dynset",
        vec![
            u32_be(NFTA_DYNSET_SREG_KEY, 1),
            u32_be(NFTA_DYNSET_OP, NFT_DYNSET_OP_ADD),
            DefaultNla::new(NFTA_DYNSET_SET_NAME, name),
            u32_be(NFTA_DYNSET_SET_ID, id),
            DefaultNla::new(NFTA_DYNSET_EXPR | NLA_F_NESTED, nested),
        ],
    )
}

/// `meta nfproto ipvN ip daddr NET`: whole bytes of a prefix are compared as they are, a
/// prefix that ends inside a byte through a mask of the whole address.
fn destination(net: &IpNet) -> Vec<Expressions> {
    let family = Family::of(net);
    let mut out = vec![
        meta(MetaKey::Nfproto, Register::Reg1),
        equals(&[family.nfproto()]),
    ];
    let prefix = u32::from(net.prefix_len());
    if prefix == 0 {
        return out;
    }
    let (offset, len) = family.daddr();
    let address = match net.network() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    if prefix.is_multiple_of(8) {
        let bytes = prefix / 8;
        out.push(payload(
            NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            bytes,
            Register::Reg1,
        ));
        out.push(equals(&address[..bytes as usize]));
    } else {
        let netmask = match net.netmask() {
            IpAddr::V4(m) => m.octets().to_vec(),
            IpAddr::V6(m) => m.octets().to_vec(),
        };
        out.push(payload(
            NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len,
            Register::Reg1,
        ));
        out.push(mask(len, netmask));
        out.push(equals(&address));
    }
    out
}

/// The chain's rules, in order, each as its expressions.
fn rules(plan: &EgressPlan) -> Vec<Vec<Expressions>> {
    let mut rules = vec![
        vec![
            meta(MetaKey::Oif, Register::Reg1),
            equals(&1u32.to_ne_bytes()),
            accept(),
        ],
        vec![
            conntrack_state(),
            mask(4, IP_CT_ESTABLISHED_RELATED.to_ne_bytes().to_vec()),
            compare(Operator::NotEqual, &0u32.to_ne_bytes()),
            accept(),
        ],
    ];
    for kind in NEIGHBOUR_DISCOVERY {
        rules.push(vec![
            meta(MetaKey::Nfproto, Register::Reg1),
            equals(&[Family::V6.nfproto()]),
            meta(MetaKey::L4Proto, Register::Reg1),
            equals(&[IPPROTO_ICMPV6]),
            payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, Register::Reg1),
            equals(&[kind]),
            accept(),
        ]);
    }
    for rule in &plan.rules {
        let protocols: Vec<Option<Protocol>> = match rule.protocols.as_slice() {
            [] => vec![None],
            some => some.iter().copied().map(Some).collect(),
        };
        for net in &rule.networks {
            for protocol in &protocols {
                let mut expressions = destination(net);
                if let Some(protocol) = protocol {
                    expressions.push(meta(MetaKey::L4Proto, Register::Reg1));
                    expressions.push(equals(&[protocol_number(*protocol)]));
                }
                if let Some(port) = rule.port {
                    expressions.push(payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, Register::Reg1));
                    expressions.push(equals(&port.to_be_bytes()));
                }
                expressions.push(accept());
                rules.push(expressions);
            }
        }
    }
    for family in Family::BOTH {
        let (offset, len) = family.daddr();
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            rules.push(vec![
                meta(MetaKey::Nfproto, Register::Reg1),
                equals(&[family.nfproto()]),
                meta(MetaKey::L4Proto, Register::Reg1),
                equals(&[protocol_number(protocol)]),
                payload(NFT_PAYLOAD_NETWORK_HEADER, offset, len, Register::Reg1),
                meta(MetaKey::L4Proto, register_at(len)),
                payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, register_at(len + 4)),
                count_into(family),
            ]);
        }
    }
    rules.push(vec![
        meta(MetaKey::L4Proto, Register::Reg1),
        equals(&[IPPROTO_TCP]),
        reject(NFT_REJECT_TCP_RST, 0),
    ]);
    rules.push(vec![reject(
        NFT_REJECT_ICMPX_UNREACH,
        NFT_REJECT_ICMPX_ADMIN_PROHIBITED,
    )]);
    rules
}

fn inet() -> NetfilterHeader {
    NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0)
}

fn encode<T: NetlinkSerializable>(message: T, flags: u16, sequence: u32, out: &mut Vec<u8>) {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let start = out.len();
    out.resize(start + packet.buffer_len(), 0);
    packet.serialize(&mut out[start..]);
}

/// The whole table as one batch (one transaction: all of it, or nothing). Messages are
/// numbered from 0, the begin message.
pub fn batch(plan: &EgressPlan) -> Vec<u8> {
    let table = || EGRESS_TABLE.to_string();
    let mut messages: Vec<(NfTablesMessage, u16)> = vec![
        (
            NfTablesMessage::NewTable(TableMessage {
                attributes: vec![
                    TableAttribute::Name(table()),
                    TableAttribute::Flags(TableFlags::empty()),
                ],
            }),
            0,
        ),
        (
            NfTablesMessage::NewChain(netlink_packet_netfilter::nftables::ChainMessage {
                attributes: vec![
                    ChainAttribute::Table(table()),
                    ChainAttribute::Name(CHAIN.into()),
                    ChainAttribute::Type("filter".into()),
                    ChainAttribute::Policy(NF_ACCEPT),
                    ChainAttribute::Hook(vec![
                        Hook::Number(HookNumber::Inet(InetHookNumber::LocalOut)),
                        Hook::Priority(0),
                    ]),
                ],
            }),
            NLM_F_CREATE,
        ),
    ];
    for family in Family::BOTH {
        let (name, id) = family.set();
        messages.push((
            NfTablesMessage::NewSet(SetMessage {
                attributes: vec![
                    SetAttribute::Table(table()),
                    SetAttribute::Name(name.into()),
                    SetAttribute::Flags(SetFlags::from_bits_retain(libc::NFT_SET_EVAL as u32)),
                    SetAttribute::KeyType(family.key_type()),
                    SetAttribute::KeyLen(family.key_len()),
                    SetAttribute::Id(id),
                    SetAttribute::Description(vec![SetDescription::Size(SET_SIZE)]),
                    SetAttribute::UserData(SET_USERDATA.to_vec()),
                ],
            }),
            NLM_F_CREATE,
        ));
    }
    for expressions in rules(plan) {
        messages.push((
            NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table()),
                    RuleAttribute::Chain(CHAIN.into()),
                    RuleAttribute::Expressions(
                        expressions.into_iter().map(ListAttribute::from).collect(),
                    ),
                ],
            }),
            NLM_F_CREATE | NLM_F_APPEND,
        ));
    }
    let control = |message| {
        NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES),
            message,
        )
    };
    let mut out = Vec::new();
    encode(
        control(ControlMessage::BatchBegin),
        NLM_F_REQUEST,
        0,
        &mut out,
    );
    let count = messages.len() as u32;
    for (sequence, (message, flags)) in (1..).zip(messages) {
        encode(
            NetfilterMessage::new(inet(), message),
            NLM_F_REQUEST | flags,
            sequence,
            &mut out,
        );
    }
    encode(
        control(ControlMessage::BatchEnd),
        NLM_F_REQUEST,
        count + 1,
        &mut out,
    );
    out
}

/// The request for the elements of one counting set (a dump).
pub fn dump_request(family: Family) -> NetfilterMessage {
    NetfilterMessage::new(
        inet(),
        NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Table(EGRESS_TABLE.into()),
                SetElementList::Set(family.set().0.into()),
            ],
        }),
    )
}

/// The flags that make [`dump_request`] a dump.
pub const DUMP: u16 = NLM_F_DUMP;

/// One answer to [`dump_request`], read here attribute by attribute: the crate's parser keeps
/// only an element expression's name, not the counter in it.
#[derive(Debug)]
pub struct SetDump(pub Vec<Refused>);

#[derive(Debug, thiserror::Error)]
#[error("a malformed set element")]
pub struct Malformed;

impl NetlinkDeserializable for SetDump {
    type Error = Malformed;

    fn deserialize(_: &NetlinkHeader, payload: &[u8]) -> Result<SetDump, Malformed> {
        // After the nfgenmsg header; the key's length tells the address family.
        let mut refused = Vec::new();
        for list in attributes(payload.get(4..).ok_or(Malformed)?) {
            let (kind, elements) = list?;
            if kind != NFTA_SET_ELEM_LIST_ELEMENTS {
                continue;
            }
            for element in attributes(elements) {
                let (kind, element) = element?;
                if kind == NFTA_LIST_ELEM {
                    refused.push(parse_element(element)?);
                }
            }
        }
        Ok(SetDump(refused))
    }
}

/// The (kind without flags, value) of each attribute in `bytes`.
fn attributes(bytes: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Malformed>> {
    NlasIterator::new(bytes).map(|nla| {
        let nla: NlaBuffer<&[u8]> = nla.map_err(|_| Malformed)?;
        let (kind, length) = (nla.kind(), usize::from(nla.length()));
        let value = nla.into_inner().get(4..length).ok_or(Malformed)?;
        Ok((kind & !NLA_F_NESTED, value))
    })
}

/// One element: its key (address, protocol, port) and its counter's packets.
fn parse_element(element: &[u8]) -> Result<Refused, Malformed> {
    let mut key = None;
    let mut count = None;
    for attribute in attributes(element) {
        match attribute? {
            (NFTA_SET_ELEM_KEY, data) => {
                for value in attributes(data) {
                    if let (NFTA_DATA_VALUE, bytes) = value? {
                        key = Some(bytes.to_vec());
                    }
                }
            }
            (NFTA_SET_ELEM_EXPR, expression) => count = packets(expression)?,
            (NFTA_SET_ELEM_EXPRESSIONS, list) => {
                for expression in attributes(list) {
                    let (_, expression) = expression?;
                    count = count.or(packets(expression)?);
                }
            }
            _ => {}
        }
    }
    let key = key.ok_or(Malformed)?;
    let (address, rest) = match key.len() {
        12 => (
            IpAddr::from(<[u8; 4]>::try_from(&key[..4]).map_err(|_| Malformed)?),
            &key[4..],
        ),
        24 => (
            IpAddr::from(<[u8; 16]>::try_from(&key[..16]).map_err(|_| Malformed)?),
            &key[16..],
        ),
        _ => return Err(Malformed),
    };
    Ok(Refused {
        address,
        protocol: rest[0],
        port: u16::from_be_bytes([rest[4], rest[5]]),
        count: count.unwrap_or(0),
    })
}

/// The packets of a counter expression; `None` for another expression.
fn packets(expression: &[u8]) -> Result<Option<u64>, Malformed> {
    let mut counter = false;
    let mut packets = None;
    for attribute in attributes(expression) {
        match attribute? {
            (NFTA_EXPR_NAME, name) => counter = name.strip_suffix(&[0]) == Some(b"counter"),
            (NFTA_EXPR_DATA, data) => {
                for value in attributes(data) {
                    if let (NFTA_COUNTER_PACKETS, bytes) = value? {
                        let bytes: [u8; 8] = bytes.try_into().map_err(|_| Malformed)?;
                        packets = Some(u64::from_be_bytes(bytes));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(packets.filter(|_| counter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::EgressRule;

    fn rule(
        key: usize,
        networks: &[&str],
        protocols: &[Protocol],
        port: Option<u16>,
    ) -> EgressRule {
        EgressRule {
            destination: String::new(),
            name: None,
            networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
            protocols: protocols.to_vec(),
            port,
            key: crate::origin::Origin::Egress(key),
        }
    }

    /// The plan tests/data/egress/ruleset.nft writes for nft.
    fn sample() -> EgressPlan {
        use Protocol::{Tcp, Udp};
        EgressPlan {
            rules: vec![
                rule(0, &["10.20.0.0/16"], &[], None),
                rule(1, &["192.0.2.10/32"], &[Tcp], Some(443)),
                rule(2, &["192.0.2.20/32", "2001:db8::20/128"], &[Tcp], Some(443)),
                rule(3, &["10.21.16.0/20"], &[Udp], None),
                rule(4, &["2001:db8:0:10::/60"], &[], None),
                rule(5, &["0.0.0.0/0"], &[Tcp], Some(22)),
                rule(6, &["192.0.2.53/32"], &[Udp, Tcp], Some(53)),
            ],
        }
    }

    /// nft's batch, one message per line; sequence numbers as nft numbers them (from 0).
    fn nft_batch() -> Vec<Vec<u8>> {
        include_str!("../../tests/data/egress/ruleset.hex")
            .lines()
            .map(|line| {
                (0..line.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
                    .collect()
            })
            .collect()
    }

    fn split(mut batch: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !batch.is_empty() {
            let length = u32::from_ne_bytes(batch[..4].try_into().unwrap()) as usize;
            out.push(batch[..length].to_vec());
            batch = &batch[length..];
        }
        out
    }

    #[test]
    fn the_batch_is_what_nft_sends_for_the_same_ruleset() {
        let ours = split(&batch(&sample()));
        let theirs = nft_batch();
        assert_eq!(ours.len(), theirs.len(), "messages");
        for (index, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
            if ours != theirs {
                let parse = |bytes: &[u8]| NetlinkMessage::<NetfilterMessage>::deserialize(bytes);
                panic!(
                    "message {index} differs:\nours:   {}\nnft's:  {}\n{:#?}\n{:#?}",
                    hex(ours),
                    hex(theirs),
                    parse(ours),
                    parse(theirs)
                );
            }
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn an_empty_list_refuses_everything_but_loopback_replies_and_neighbours() {
        let rules = rules(&EgressPlan { rules: vec![] });
        // lo, conntrack, 4 neighbour discovery, 4 counting, 2 refusing.
        assert_eq!(rules.len(), 12);
        assert!(
            rules[..6]
                .iter()
                .all(|r| matches!(r.last(), Some(Expressions::Immediate(_))))
        );
    }

    #[test]
    fn registers_follow_nfts_numbering() {
        assert_eq!(register_at(0), Register::Reg1);
        assert_eq!(register_at(4), Register::Reg32_01);
        assert_eq!(register_at(8), Register::Reg32_02);
        assert_eq!(register_at(16), Register::Reg2);
        assert_eq!(register_at(20), Register::Reg32_05);
    }

    /// An answer to the dump as the kernel writes it (6.18, from a live sandbox): one element
    /// of refused4, 203.0.113.7 tcp 443, counted twice.
    #[test]
    fn a_dumped_element_is_read_with_its_count() {
        let mut element = Vec::new();
        let key = {
            let mut value = vec![203, 0, 113, 7, IPPROTO_TCP, 0, 0, 0];
            value.extend(443u16.to_be_bytes());
            value.extend([0, 0]);
            nla(
                NFTA_SET_ELEM_KEY | NLA_F_NESTED,
                &nla(NFTA_DATA_VALUE, &value),
            )
        };
        element.extend(key);
        let mut counter = nla(NFTA_EXPR_NAME, b"counter\0");
        let mut data = nla(1, &100u64.to_be_bytes());
        data.extend(nla(NFTA_COUNTER_PACKETS, &2u64.to_be_bytes()));
        counter.extend(nla(NFTA_EXPR_DATA | NLA_F_NESTED, &data));
        element.extend(nla(NFTA_SET_ELEM_EXPR | NLA_F_NESTED, &counter));
        let mut payload = vec![libc::NFPROTO_INET as u8, 0, 0, 0];
        payload.extend(nla(1, b"sandbox-egress\0"));
        payload.extend(nla(2, b"refused4\0"));
        payload.extend(nla(
            NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED,
            &nla(NFTA_LIST_ELEM | NLA_F_NESTED, &element),
        ));
        let SetDump(refused) = SetDump::deserialize(&NetlinkHeader::default(), &payload).unwrap();
        assert_eq!(
            refused,
            [Refused {
                address: "203.0.113.7".parse().unwrap(),
                protocol: IPPROTO_TCP,
                port: 443,
                count: 2
            }]
        );
    }

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let attribute = DefaultNla::new(kind, value.to_vec());
        let mut out = vec![0; attribute.buffer_len()];
        attribute.emit(&mut out);
        out
    }

    #[test]
    fn a_short_or_truncated_answer_is_malformed() {
        let header = NetlinkHeader::default();
        assert!(SetDump::deserialize(&header, &[1, 0]).is_err());
        let key = nla(
            NFTA_SET_ELEM_KEY | NLA_F_NESTED,
            &nla(NFTA_DATA_VALUE, &[203, 0, 113]),
        );
        let mut payload = vec![1, 0, 0, 0];
        payload.extend(nla(
            NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED,
            &nla(NFTA_LIST_ELEM | NLA_F_NESTED, &key),
        ));
        assert!(SetDump::deserialize(&header, &payload).is_err());
        payload.truncate(payload.len() - 2);
        assert!(SetDump::deserialize(&header, &payload).is_err());
    }
}
