//! Typed manifest values and their parsers.
//!
//! Each parser is a pure `parse(&str) -> Result<T, ValueError>`; the serde impls only route TOML
//! strings and integers to it, so the rules are unit- and property-tested here once.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::de::{HELP_SEPARATOR, suggest};

/// A value that did not parse: what is wrong, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub message: String,
    pub help: String,
}

impl ValueError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
            help: help.into(),
        }
    }

    fn into_de<E: de::Error>(self) -> E {
        E::custom(format!("{}{HELP_SEPARATOR}{}", self.message, self.help))
    }
}

/// Deserialize from a string through `parse`, and from an integer through `from_int` when given;
/// with `octal`, an integer written in octal (`0o755`) comes as its text, through `parse`.
macro_rules! deserialize_via_parse {
    (@ask $deserializer:ident, $visitor:expr) => {
        $deserializer.deserialize_any($visitor)
    };
    (@ask $deserializer:ident, $visitor:expr, octal) => {
        $deserializer.deserialize_newtype_struct(super::de::OCTAL_NAME, $visitor)
    };
    ($ty:ty, $expecting:literal, $from_int:expr $(, $octal:ident)?) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        <$ty>::parse(s).map_err(ValueError::into_de)
                    }
                    // Formats other than TOML (the JSON of a stored plan) hand over
                    // non-negative integers as u64.
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$ty, E> {
                        match i64::try_from(n) {
                            Ok(n) => self.visit_i64(n),
                            Err(_) => Err(E::invalid_type(de::Unexpected::Unsigned(n), &self)),
                        }
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<$ty, E> {
                        let from_int: Option<fn(i64) -> Result<$ty, ValueError>> = $from_int;
                        match from_int {
                            Some(f) => f(n).map_err(ValueError::into_de),
                            None => Err(E::invalid_type(de::Unexpected::Signed(n), &self)),
                        }
                    }
                    fn visit_newtype_struct<D: Deserializer<'de>>(
                        self,
                        deserializer: D,
                    ) -> Result<$ty, D::Error> {
                        deserializer.deserialize_any(self)
                    }
                }
                deserialize_via_parse!(@ask deserializer, V $(, $octal)?)
            }
        }
    };
}

fn string_schema(description: &str, pattern: Option<&str>) -> Schema {
    let mut schema = json_schema!({ "type": "string", "description": description });
    if let Some(pattern) = pattern {
        schema.insert("pattern".into(), or_variable(pattern).into());
    }
    schema
}

/// A schema pattern that also lets through strings holding a `${...}` variable: they are only
/// checked once expanded, and "${env:MEMORY:-512M}" is a valid size.
fn or_variable(pattern: &str) -> String {
    format!("{pattern}|\\$\\{{")
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// A size in bytes: an integer, or a string with an optional K, M, G or T suffix (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Size(pub u64);

const SIZE_HELP: &str = "write a whole number of bytes with an optional K, M, G or T suffix (powers of 1024), e.g. \"512M\"";

impl Size {
    /// For people rather than manifests: one decimal in the largest unit it reaches
    /// (`10.6M`), bytes below 1K (`512B`).
    pub fn approximate(self) -> String {
        const UNITS: [(u32, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
        match UNITS.iter().find(|(shift, _)| self.0 >= 1u64 << shift) {
            Some((shift, unit)) => {
                format!("{:.1}{unit}", self.0 as f64 / (1u64 << shift) as f64)
            }
            None => format!("{}B", self.0),
        }
    }

    pub fn parse(text: &str) -> Result<Size, ValueError> {
        let bad = || ValueError::new(format!("invalid size \"{text}\""), SIZE_HELP);
        let (digits, shift) = match text.as_bytes().last() {
            Some(b'k' | b'K') => (&text[..text.len() - 1], 10),
            Some(b'm' | b'M') => (&text[..text.len() - 1], 20),
            Some(b'g' | b'G') => (&text[..text.len() - 1], 30),
            Some(b't' | b'T') => (&text[..text.len() - 1], 40),
            _ => (text, 0),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let number: u64 = digits.parse().map_err(|_| bad())?;
        number.checked_mul(1u64 << shift).map(Size).ok_or_else(|| {
            ValueError::new(
                format!("size \"{text}\" is too large"),
                "use a size below 16 exabytes",
            )
        })
    }

    fn from_int(n: i64) -> Result<Size, ValueError> {
        u64::try_from(n).map(Size).map_err(|_| {
            ValueError::new(
                format!("invalid size {n}: sizes cannot be negative"),
                SIZE_HELP,
            )
        })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u32, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
        for (shift, unit) in UNITS {
            if self.0 != 0 && self.0.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

deserialize_via_parse!(
    Size,
    "a size such as \"512M\" or a number of bytes",
    Some(Size::from_int)
);

impl JsonSchema for Size {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: bytes as an integer, or a string with a K, M, G or T suffix (powers of 1024).",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": or_variable("^[0-9]+[KMGTkmgt]?$") }
            ]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Durations and clock offsets

/// A duration such as "30s", "10m", "1h30m" or "250ms", kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Duration(pub u64);

const DURATION_HELP: &str = "write a number followed by a unit (ms, s, m, h, d), optionally several: \"30s\", \"1h30m\", \"250ms\"";

impl Duration {
    pub fn parse(text: &str) -> Result<Duration, ValueError> {
        let bad = || ValueError::new(format!("invalid duration \"{text}\""), DURATION_HELP);
        if text == "0" {
            return Ok(Duration(0));
        }
        let mut total: u64 = 0;
        let mut rest = text;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let factor = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = number
                .checked_mul(factor)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| {
                    ValueError::new(format!("duration \"{text}\" is too long"), DURATION_HELP)
                })?;
        }
        Ok(Duration(total))
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ms if ms % 3_600_000 == 0 && ms > 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 && ms > 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

deserialize_via_parse!(Duration, "a duration such as \"30s\"", None);

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "A duration: numbers with units ms, s, m, h, d, e.g. \"30s\" or \"1h30m\".",
            Some("^(0|([0-9]+(ms|s|m|h|d))+)$"),
        )
    }
}

/// A clock offset for the time namespace: a duration with an optional sign, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Offset(pub i64);

impl Offset {
    pub fn parse(text: &str) -> Result<Offset, ValueError> {
        let (sign, rest) = match text.strip_prefix('-') {
            Some(rest) => (-1i64, rest),
            None => (1, text.strip_prefix('+').unwrap_or(text)),
        };
        let duration = Duration::parse(rest).map_err(|_| {
            ValueError::new(
                format!("invalid clock offset \"{text}\""),
                "write a duration with an optional sign, e.g. \"-1h\" or \"30s\"",
            )
        })?;
        i64::try_from(duration.0)
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000))
            .map(|ns| Offset(sign * ns))
            .ok_or_else(|| {
                ValueError::new(
                    format!("clock offset \"{text}\" is too large"),
                    "use an offset below 290 years",
                )
            })
    }
}

deserialize_via_parse!(Offset, "a clock offset such as \"-1h\"", None);

impl JsonSchema for Offset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Offset".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "A signed duration, e.g. \"-1h\" or \"30s\".",
            Some("^[+-]?(0|([0-9]+(ms|s|m|h|d))+)$"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// File modes

/// A file mode or umask, written in octal: a string ("0755", "1777", "022") or a TOML octal
/// integer (`0o755`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mode(pub u32);

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, ValueError> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        if digits.is_empty()
            || digits.len() > 5
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(ValueError::new(
                format!("invalid mode \"{text}\""),
                "write the mode as octal digits in a string, e.g. \"0755\" or \"1777\"",
            ));
        }
        let value = u32::from_str_radix(digits, 8).expect("checked octal digits");
        if value > 0o7777 {
            return Err(ValueError::new(
                format!("mode \"{text}\" is out of range"),
                "a mode is at most \"7777\" (setuid, setgid, sticky and rwx bits)",
            ));
        }
        Ok(Mode(value))
    }

    fn from_int(n: i64) -> Result<Mode, ValueError> {
        Err(ValueError::new(
            format!("the mode {n} is written as a decimal number"),
            format!("write it as an octal string, \"{n:04}\", or as 0o{n:04} if you meant octal"),
        ))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

deserialize_via_parse!(
    Mode,
    "an octal mode such as \"0755\"",
    Some(Mode::from_int),
    octal
);

impl JsonSchema for Mode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Mode".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "An octal file mode, e.g. \"0755\".",
            Some("^(0o)?[0-7]{1,5}$"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Published ports

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A published port: `[host_address:]host_port:sandbox_port[/tcp|udp]`, or a single port that
/// is the same on both sides. The host address defaults to 127.0.0.1: publishing to every
/// interface has to be asked for (`0.0.0.0:8080:80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSpec {
    pub host_address: IpAddr,
    pub host_port: u16,
    pub sandbox_port: u16,
    pub protocol: Protocol,
}

const PORT_HELP: &str = "write [host_address:]host_port:sandbox_port[/tcp|/udp], e.g. \"127.0.0.1:8080:80/tcp\" or \"8080:80\"";

impl PortSpec {
    pub fn parse(text: &str) -> Result<PortSpec, ValueError> {
        let bad = |why: &str| {
            ValueError::new(format!("invalid port mapping \"{text}\": {why}"), PORT_HELP)
        };
        let (body, protocol) = match text.rsplit_once('/') {
            Some((body, "tcp")) => (body, Protocol::Tcp),
            Some((body, "udp")) => (body, Protocol::Udp),
            Some((_, other)) => return Err(bad(&format!("unknown protocol `{other}`"))),
            None => (text, Protocol::Tcp),
        };
        let port = |s: &str| -> Result<u16, ValueError> {
            match s.parse::<u16>() {
                Ok(0) => Err(bad("port 0 cannot be published")),
                Ok(port) => Ok(port),
                Err(_) => Err(bad(&format!("`{s}` is not a port number (1-65535)"))),
            }
        };
        // An IPv6 host address is written in brackets: [::1]:8080:80
        let (address, ports) = if let Some(rest) = body.strip_prefix('[') {
            let (address, rest) = rest.split_once("]:").ok_or_else(|| bad("unclosed `[`"))?;
            let address: IpAddr = address
                .parse()
                .map_err(|_| bad(&format!("`{address}` is not an IP address")))?;
            (Some(address), rest)
        } else {
            match body.matches(':').count() {
                2 => {
                    let (address, rest) = body.split_once(':').expect("two colons");
                    let address: IpAddr = address
                        .parse()
                        .map_err(|_| bad(&format!("`{address}` is not an IP address")))?;
                    (Some(address), rest)
                }
                0 | 1 => (None, body),
                _ => return Err(bad("too many `:`; write IPv6 addresses in brackets")),
            }
        };
        let (host_port, sandbox_port) = match ports.split_once(':') {
            Some((host, sandbox)) => (port(host)?, port(sandbox)?),
            None => {
                let p = port(ports)?;
                (p, p)
            }
        };
        Ok(PortSpec {
            host_address: address.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            host_port,
            sandbox_port,
            protocol,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_address {
            IpAddr::V6(a) => write!(f, "[{a}]")?,
            IpAddr::V4(a) => write!(f, "{a}")?,
        }
        write!(
            f,
            ":{}:{}/{}",
            self.host_port, self.sandbox_port, self.protocol
        )
    }
}

/// Ports travel as their text form ("127.0.0.1:8080:80/tcp"), which is also how people read them.
impl Serialize for PortSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

deserialize_via_parse!(
    PortSpec,
    "a port mapping such as \"127.0.0.1:8080:80/tcp\"",
    None
);

impl JsonSchema for PortSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortSpec".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "[host_address:]host_port:sandbox_port[/tcp|/udp], e.g. \"127.0.0.1:8080:80/tcp\".",
            None,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Egress destinations

/// Where a `network.egress` entry lets the sandbox connect: an address, a network, or a host
/// name the launcher resolves when the sandbox starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EgressHost {
    Network(IpNet),
    Name(String),
}

/// One `network.egress` entry: `[tcp:|udp:]HOST[:PORT]`. HOST is an IPv4 address or CIDR, an
/// IPv6 one (in brackets when a port follows), or a host name. With a port the protocol is TCP
/// unless `udp:` says otherwise; without one, the entry allows every port, and every protocol
/// unless a prefix names one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// `None`: every protocol (only without a port).
    pub protocol: Option<Protocol>,
    pub host: EgressHost,
    pub port: Option<u16>,
}

const EGRESS_HELP: &str = "write [tcp:|udp:]HOST[:PORT]: an address, a CIDR or a host name, e.g. \"10.20.0.0/16\", \"192.0.2.10:443\", \"registry.example.org:443\", \"udp:192.0.2.53:53\" or \"[2001:db8::1]:443\"";

/// A host name as DNS writes it: dot-separated labels of letters, digits and inner `-`.
pub fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // Digits and dots only is a mistyped address, not a name.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl Destination {
    pub fn parse(text: &str) -> Result<Destination, ValueError> {
        let bad = |why: String| {
            ValueError::new(
                format!("invalid egress destination \"{text}\": {why}"),
                EGRESS_HELP,
            )
        };
        let (protocol, rest) = match text.split_once(':') {
            Some(("tcp", rest)) => (Some(Protocol::Tcp), rest),
            Some(("udp", rest)) => (Some(Protocol::Udp), rest),
            _ => (None, text),
        };
        let port = |s: &str| match s.parse::<u16>() {
            Ok(0) => Err(bad("port 0 is no destination".into())),
            Ok(port) => Ok(port),
            Err(_) => Err(bad(format!("`{s}` is not a port number (1-65535)"))),
        };
        let network = |s: &str| -> Result<IpNet, ValueError> {
            let net = match s.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => s
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| bad(format!("`{s}` is not an IP address or network")))?,
            };
            if net.trunc() != net {
                return Err(bad(format!(
                    "{net} has bits set past its prefix; the network is {}",
                    net.trunc()
                )));
            }
            Ok(net)
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (address, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("unclosed `[`".into()))?;
            let port = match after {
                "" => None,
                _ => Some(port(after.strip_prefix(':').ok_or_else(|| {
                    bad(format!("`{after}` after `]`; write [ADDRESS]:PORT"))
                })?)?),
            };
            (EgressHost::Network(network(address)?), port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address or network: no port can follow without brackets.
            (EgressHost::Network(network(rest)?), None)
        } else {
            let (host, port) = match rest.split_once(':') {
                Some((host, p)) => (host, Some(port(p)?)),
                None => (rest, None),
            };
            let looks_numeric =
                host.contains('/') || host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            let host = if host.parse::<IpNet>().is_ok() || host.parse::<IpAddr>().is_ok() {
                EgressHost::Network(network(host)?)
            } else if is_host_name(host) {
                EgressHost::Name(host.to_string())
            } else if host.is_empty() {
                return Err(bad("no host".into()));
            } else if looks_numeric {
                return Err(bad(format!("`{host}` is not an IP address or network")));
            } else {
                return Err(bad(format!(
                    "`{host}` is neither an address nor a host name"
                )));
            };
            (host, port)
        };
        Ok(Destination {
            protocol: protocol.or(port.map(|_| Protocol::Tcp)),
            host,
            port,
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The protocol is written unless it is the default one a port implies.
        match (self.protocol, self.port) {
            (Some(Protocol::Tcp), Some(_)) | (None, _) => {}
            (Some(protocol), _) => write!(f, "{protocol}:")?,
        }
        match (&self.host, self.port) {
            (EgressHost::Network(IpNet::V6(net)), Some(_)) if net.prefix_len() == 128 => {
                write!(f, "[{}]", net.addr())?
            }
            (EgressHost::Network(IpNet::V6(net)), Some(_)) => write!(f, "[{net}]")?,
            (EgressHost::Network(net), _) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())?
            }
            (EgressHost::Network(net), _) => write!(f, "{net}")?,
            (EgressHost::Name(name), _) => f.write_str(name)?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

deserialize_via_parse!(
    Destination,
    "an egress destination such as \"192.0.2.10:443\"",
    None
);

impl JsonSchema for Destination {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Destination".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "[tcp:|udp:]HOST[:PORT]: an IPv4 address or CIDR, an IPv6 one (in brackets before a \
             port), or a host name resolved when the sandbox starts, e.g. \"10.20.0.0/16\", \
             \"192.0.2.10:443\", \"registry.example.org:443\", \"udp:192.0.2.53:53\".",
            None,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Capabilities

/// A Linux capability, written "CAP_NET_BIND_SERVICE" (case and the CAP_ prefix are optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capability(pub caps::Capability);

impl Capability {
    /// The kernel's number for this capability, which orders them as capabilities(7) does.
    pub fn index(self) -> u8 {
        self.0.index()
    }

    /// The name as manifests usually write it: "sys_ptrace" for CAP_SYS_PTRACE.
    pub fn short_name(self) -> String {
        let name = self.0.to_string();
        name.strip_prefix("CAP_")
            .unwrap_or(&name)
            .to_ascii_lowercase()
    }
}

impl PartialOrd for Capability {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Capability {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.index().cmp(&other.index())
    }
}

impl Capability {
    pub fn parse(text: &str) -> Result<Capability, ValueError> {
        let upper = text.to_ascii_uppercase();
        let name = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        name.parse::<caps::Capability>()
            .map(Capability)
            .map_err(|_| {
                let names: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let help = match suggest(&name, &refs) {
                    Some(best) => format!("did you mean \"{best}\"? See capabilities(7)"),
                    None => {
                        "see capabilities(7) for the names, e.g. \"CAP_NET_BIND_SERVICE\"".into()
                    }
                };
                ValueError::new(format!("unknown capability \"{text}\""), help)
            })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

deserialize_via_parse!(
    Capability,
    "a capability name such as \"CAP_NET_BIND_SERVICE\"",
    None
);

impl JsonSchema for Capability {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Capability".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut names: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        names.sort();
        json_schema!({
            "description": "A capability name, see capabilities(7).",
            "type": "string",
            "examples": names,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// System calls

/// The architectures whose syscall tables the manifest is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// The architecture's name in OCI image indexes (Go's GOARCH).
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The kernel's name for the architecture (uname -m).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The syscall number of `name` on this architecture, if it has that call.
    pub fn syscall_number(self, name: &str) -> Option<i64> {
        match self {
            Arch::X86_64 => name
                .parse::<syscalls::x86_64::Sysno>()
                .ok()
                .map(|s| s.id() as i64),
            Arch::Aarch64 => name
                .parse::<syscalls::aarch64::Sysno>()
                .ok()
                .map(|s| s.id() as i64),
        }
    }

    pub fn syscall_names(self) -> Vec<&'static str> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| s.name()).collect(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::iter().map(|s| s.name()).collect(),
        }
    }
}

/// A system call the launcher names itself (its default profile, init's filter), with its
/// numbers found when the launcher is compiled: [`Arch::syscall_number`] compares a name with
/// the names of a whole table, which the default profile would do 77 times a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownSyscall {
    pub name: &'static str,
    x86_64: Option<u16>,
    aarch64: Option<u16>,
}

impl KnownSyscall {
    /// For constants (`const { KnownSyscall::new("clone") }`): it scans both tables.
    pub const fn new(name: &'static str) -> KnownSyscall {
        KnownSyscall {
            name,
            x86_64: position(&X86_64_NAMES, name),
            aarch64: position(&AARCH64_NAMES, name),
        }
    }

    /// [`KnownSyscall::new`] for each name, for constants too.
    pub const fn list<const N: usize>(names: [&'static str; N]) -> [KnownSyscall; N] {
        let mut calls = [KnownSyscall {
            name: "",
            x86_64: None,
            aarch64: None,
        }; N];
        let mut i = 0;
        while i < N {
            calls[i] = KnownSyscall::new(names[i]);
            i += 1;
        }
        calls
    }

    /// The number on `arch`, if it has the call.
    pub fn number(self, arch: Arch) -> Option<i64> {
        match arch {
            Arch::X86_64 => self.x86_64,
            Arch::Aarch64 => self.aarch64,
        }
        .map(i64::from)
    }
}

/// A `syscalls` table as names by number, "" in its gaps; made at compile time (its `new` and
/// `name` are const, its list is private).
macro_rules! names_by_number {
    ($sysno:ty) => {{
        let mut names = [""; <$sysno>::last().id() as usize + 1];
        let mut nr = 0;
        while nr < names.len() {
            if let Some(call) = <$sysno>::new(nr) {
                names[nr] = call.name();
            }
            nr += 1;
        }
        names
    }};
}

const X86_64_NAMES: [&str; syscalls::x86_64::Sysno::last().id() as usize + 1] =
    names_by_number!(syscalls::x86_64::Sysno);
const AARCH64_NAMES: [&str; syscalls::aarch64::Sysno::last().id() as usize + 1] =
    names_by_number!(syscalls::aarch64::Sysno);

/// Where `name` is in `names` (a const fn cannot compare strings with `==`).
const fn position(names: &[&str], name: &str) -> Option<u16> {
    let mut nr = 0;
    while nr < names.len() {
        let (a, b) = (names[nr].as_bytes(), name.as_bytes());
        let mut same = a.len() == b.len();
        let mut i = 0;
        while same && i < a.len() {
            same = a[i] == b[i];
            i += 1;
        }
        if same {
            return Some(nr as u16);
        }
        nr += 1;
    }
    None
}

/// A system call name known on x86_64 or aarch64. A name that exists on only one of them is
/// accepted: a profile written on one machine stays valid on the other, and a call the running
/// architecture does not have needs no rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Syscall(pub String);

impl Syscall {
    pub fn parse(text: &str) -> Result<Syscall, ValueError> {
        if Arch::ALL
            .iter()
            .any(|arch| arch.syscall_number(text).is_some())
        {
            return Ok(Syscall(text.to_string()));
        }
        let names = Arch::host().syscall_names();
        let help = match suggest(text, &names) {
            Some(best) => format!("did you mean \"{best}\"? See syscalls(2)"),
            None => "see syscalls(2) for the names (lower case, e.g. \"ptrace\")".into(),
        };
        Err(ValueError::new(
            format!("unknown system call \"{text}\""),
            help,
        ))
    }
}

deserialize_via_parse!(Syscall, "a system call name such as \"ptrace\"", None);

impl JsonSchema for Syscall {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Syscall".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "A system call name (x86_64 or aarch64), see syscalls(2).",
            Some("^[a-z0-9_]+$"),
        )
    }
}

/// An errno name such as "EPERM" (or its number), returned by a denied system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Errno(pub i32);

const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("E2BIG", libc::E2BIG),
    ("EBADF", libc::EBADF),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("ENODEV", libc::ENODEV),
    ("EINVAL", libc::EINVAL),
    ("ENOSPC", libc::ENOSPC),
    ("EROFS", libc::EROFS),
    ("ENOSYS", libc::ENOSYS),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
    ("ECONNREFUSED", libc::ECONNREFUSED),
];

impl Errno {
    pub fn parse(text: &str) -> Result<Errno, ValueError> {
        let upper = text.to_ascii_uppercase();
        ERRNOS
            .iter()
            .find(|(name, _)| *name == upper)
            .map(|(_, n)| Errno(*n))
            .ok_or_else(|| {
                let names: Vec<&str> = ERRNOS.iter().map(|(n, _)| *n).collect();
                let help = match suggest(text, &names) {
                    Some(best) => format!("did you mean \"{best}\"? (one of {})", names.join(", ")),
                    None => format!("use one of {}", names.join(", ")),
                };
                ValueError::new(format!("unknown errno \"{text}\""), help)
            })
    }

    pub fn name(self) -> String {
        ERRNOS
            .iter()
            .find(|(_, n)| *n == self.0)
            .map_or_else(|| self.0.to_string(), |(name, _)| name.to_string())
    }

    fn from_int(n: i64) -> Result<Errno, ValueError> {
        match i32::try_from(n) {
            Ok(n @ 1..=4095) => Ok(Errno(n)),
            _ => Err(ValueError::new(
                format!("errno {n} is out of range"),
                "use a name such as \"EPERM\" or a number from 1 to 4095",
            )),
        }
    }
}

deserialize_via_parse!(
    Errno,
    "an errno name such as \"EPERM\"",
    Some(Errno::from_int)
);

impl JsonSchema for Errno {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Errno".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Names are matched without regard to case.
        let names: Vec<String> = ERRNOS
            .iter()
            .map(|(n, _)| n.to_string())
            .chain(ERRNOS.iter().map(|(n, _)| n.to_ascii_lowercase()))
            .collect();
        json_schema!({
            "description": "An errno name, or its number (1-4095).",
            "anyOf": [ { "type": "string", "enum": names }, { "type": "integer", "minimum": 1, "maximum": 4095 } ]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Resource limits

/// A resource limit name as in getrlimit(2), lower case without RLIMIT_.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Rlimit {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl Rlimit {
    pub const ALL: [Rlimit; 16] = [
        Rlimit::As,
        Rlimit::Core,
        Rlimit::Cpu,
        Rlimit::Data,
        Rlimit::Fsize,
        Rlimit::Locks,
        Rlimit::Memlock,
        Rlimit::Msgqueue,
        Rlimit::Nice,
        Rlimit::Nofile,
        Rlimit::Nproc,
        Rlimit::Rss,
        Rlimit::Rtprio,
        Rlimit::Rttime,
        Rlimit::Sigpending,
        Rlimit::Stack,
    ];

    pub fn resource(self) -> nix::sys::resource::Resource {
        use nix::sys::resource::Resource;
        match self {
            Rlimit::As => Resource::RLIMIT_AS,
            Rlimit::Core => Resource::RLIMIT_CORE,
            Rlimit::Cpu => Resource::RLIMIT_CPU,
            Rlimit::Data => Resource::RLIMIT_DATA,
            Rlimit::Fsize => Resource::RLIMIT_FSIZE,
            Rlimit::Locks => Resource::RLIMIT_LOCKS,
            Rlimit::Memlock => Resource::RLIMIT_MEMLOCK,
            Rlimit::Msgqueue => Resource::RLIMIT_MSGQUEUE,
            Rlimit::Nice => Resource::RLIMIT_NICE,
            Rlimit::Nofile => Resource::RLIMIT_NOFILE,
            Rlimit::Nproc => Resource::RLIMIT_NPROC,
            Rlimit::Rss => Resource::RLIMIT_RSS,
            Rlimit::Rtprio => Resource::RLIMIT_RTPRIO,
            Rlimit::Rttime => Resource::RLIMIT_RTTIME,
            Rlimit::Sigpending => Resource::RLIMIT_SIGPENDING,
            Rlimit::Stack => Resource::RLIMIT_STACK,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rlimit::As => "as",
            Rlimit::Core => "core",
            Rlimit::Cpu => "cpu",
            Rlimit::Data => "data",
            Rlimit::Fsize => "fsize",
            Rlimit::Locks => "locks",
            Rlimit::Memlock => "memlock",
            Rlimit::Msgqueue => "msgqueue",
            Rlimit::Nice => "nice",
            Rlimit::Nofile => "nofile",
            Rlimit::Nproc => "nproc",
            Rlimit::Rss => "rss",
            Rlimit::Rtprio => "rtprio",
            Rlimit::Rttime => "rttime",
            Rlimit::Sigpending => "sigpending",
            Rlimit::Stack => "stack",
        }
    }
}

/// A resource limit value: a number, or "unlimited". Applied as both the soft and hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlimitValue {
    Limited(u64),
    Unlimited,
}

impl RlimitValue {
    pub fn parse(text: &str) -> Result<RlimitValue, ValueError> {
        match text {
            "unlimited" | "infinity" => Ok(RlimitValue::Unlimited),
            _ => Size::parse(text)
                .map(|s| RlimitValue::Limited(s.0))
                .map_err(|_| {
                    ValueError::new(
                        format!("invalid limit \"{text}\""),
                        "write a number (sizes like \"64M\" are accepted) or \"unlimited\"",
                    )
                }),
        }
    }

    fn from_int(n: i64) -> Result<RlimitValue, ValueError> {
        u64::try_from(n).map(RlimitValue::Limited).map_err(|_| {
            ValueError::new(
                format!("invalid limit {n}: limits cannot be negative"),
                "write a number or \"unlimited\"",
            )
        })
    }

    pub fn as_raw(self) -> u64 {
        match self {
            RlimitValue::Limited(n) => n,
            RlimitValue::Unlimited => libc::RLIM_INFINITY,
        }
    }
}

impl Serialize for RlimitValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RlimitValue::Limited(n) => s.serialize_u64(*n),
            RlimitValue::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

deserialize_via_parse!(
    RlimitValue,
    "a number or \"unlimited\"",
    Some(RlimitValue::from_int)
);

impl JsonSchema for RlimitValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RlimitValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A limit: a number, a size like \"64M\", or \"unlimited\".",
            "anyOf": [ { "type": "integer", "minimum": 0 }, { "type": "string" } ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_for_people_have_one_decimal_in_the_largest_unit() {
        assert_eq!(Size(11_114_906).approximate(), "10.6M");
        assert_eq!(Size(512).approximate(), "512B");
        assert_eq!(Size(1024).approximate(), "1.0K");
        assert_eq!(Size(3 << 30).approximate(), "3.0G");
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("0").unwrap(), Size(0));
        assert_eq!(Size::parse("512").unwrap(), Size(512));
        assert_eq!(Size::parse("64K").unwrap(), Size(64 << 10));
        assert_eq!(Size::parse("512M").unwrap(), Size(512 << 20));
        assert_eq!(Size::parse("512m").unwrap(), Size(512 << 20));
        assert_eq!(Size::parse("2G").unwrap(), Size(2 << 30));
        assert_eq!(Size::parse("1T").unwrap(), Size(1 << 40));
        for bad in [
            "",
            "12 MB",
            "-1",
            "1.5G",
            "M",
            "12MB",
            "0x10",
            " 1M",
            "1M ",
            "99999999999999999999",
        ] {
            assert!(Size::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(Size::parse("16777216T").is_err(), "overflow is an error");
        assert!(Size::from_int(-1).is_err());
        assert_eq!(Size(64 << 20).to_string(), "64M");
        assert_eq!(Size(1000).to_string(), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("30s").unwrap(), Duration(30_000));
        assert_eq!(Duration::parse("10m").unwrap(), Duration(600_000));
        assert_eq!(Duration::parse("1h30m").unwrap(), Duration(5_400_000));
        assert_eq!(Duration::parse("250ms").unwrap(), Duration(250));
        assert_eq!(Duration::parse("0").unwrap(), Duration(0));
        for bad in ["", "30", "s", "30 s", "1.5s", "-1s", "30sec", "1h30", "10x"] {
            assert!(Duration::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(Duration(90_000).to_string(), "90s");
        assert_eq!(Duration(120_000).to_string(), "2m");
    }

    #[test]
    fn offsets() {
        assert_eq!(Offset::parse("-1h").unwrap(), Offset(-3_600_000_000_000));
        assert_eq!(Offset::parse("+2s").unwrap(), Offset(2_000_000_000));
        assert_eq!(Offset::parse("0s").unwrap(), Offset(0));
        assert!(Offset::parse("--1s").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("1777").unwrap(), Mode(0o1777));
        assert_eq!(Mode::parse("0755").unwrap(), Mode(0o755));
        assert_eq!(Mode::parse("022").unwrap(), Mode(0o22));
        assert_eq!(Mode::parse("0o644").unwrap(), Mode(0o644));
        for bad in ["", "8", "rwx", "17777", "-1", "0x1"] {
            assert!(Mode::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(Mode::from_int(755).unwrap_err().help.contains("\"0755\""));
        assert_eq!(Mode(0o1777).to_string(), "1777");
    }

    #[test]
    fn egress_destinations() {
        let net = |s: &str| EgressHost::Network(s.parse().unwrap());
        let cases = [
            ("10.20.0.0/16", None, net("10.20.0.0/16"), None),
            (
                "192.0.2.10:443",
                Some(Protocol::Tcp),
                net("192.0.2.10/32"),
                Some(443),
            ),
            (
                "udp:192.0.2.53:53",
                Some(Protocol::Udp),
                net("192.0.2.53/32"),
                Some(53),
            ),
            (
                "udp:10.0.0.0/8",
                Some(Protocol::Udp),
                net("10.0.0.0/8"),
                None,
            ),
            (
                "[2001:db8::1]:443",
                Some(Protocol::Tcp),
                net("2001:db8::1/128"),
                Some(443),
            ),
            ("2001:db8::/32", None, net("2001:db8::/32"), None),
            (
                "[2001:db8::/32]:80",
                Some(Protocol::Tcp),
                net("2001:db8::/32"),
                Some(80),
            ),
            (
                "registry.example.org:443",
                Some(Protocol::Tcp),
                EgressHost::Name("registry.example.org".into()),
                Some(443),
            ),
            (
                "3com.example",
                None,
                EgressHost::Name("3com.example".into()),
                None,
            ),
        ];
        for (text, protocol, host, port) in cases {
            let parsed = Destination::parse(text).unwrap();
            assert_eq!(
                parsed,
                Destination {
                    protocol,
                    host,
                    port
                },
                "{text}"
            );
            assert_eq!(parsed.to_string(), text, "written back as it was");
        }
        assert_eq!(
            Destination::parse("tcp:192.0.2.10:443")
                .unwrap()
                .to_string(),
            "192.0.2.10:443",
            "tcp is the default with a port"
        );
        for bad in [
            "",
            "tcp:",
            "10.20.1.0/16",
            "999.1.1.1:80",
            "192.0.2.10:0",
            "192.0.2.10:70000",
            "2001:db8::1:443x",
            "[2001:db8::1",
            "[2001:db8::1]443",
            "-bad-.example:80",
            "under_score.example",
            "sctp:192.0.2.1:9",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let error = Destination::parse("10.20.1.0/16").unwrap_err();
        assert!(
            error.message.contains("the network is 10.20.0.0/16"),
            "{}",
            error.message
        );
    }

    #[test]
    fn ports() {
        let p = PortSpec::parse("127.0.0.1:8080:80/tcp").unwrap();
        assert_eq!(
            (
                p.host_address.to_string().as_str(),
                p.host_port,
                p.sandbox_port,
                p.protocol
            ),
            ("127.0.0.1", 8080, 80, Protocol::Tcp)
        );
        let p = PortSpec::parse("8080:80").unwrap();
        assert_eq!(
            (
                p.host_address.to_string().as_str(),
                p.host_port,
                p.sandbox_port
            ),
            ("127.0.0.1", 8080, 80)
        );
        let p = PortSpec::parse("53/udp").unwrap();
        assert_eq!(
            (p.host_port, p.sandbox_port, p.protocol),
            (53, 53, Protocol::Udp)
        );
        let p = PortSpec::parse("[::1]:8080:80").unwrap();
        assert_eq!(p.host_address.to_string(), "::1");
        assert_eq!(
            PortSpec::parse("0.0.0.0:1:2/udp").unwrap().to_string(),
            "0.0.0.0:1:2/udp"
        );
        for bad in [
            "",
            "x",
            "0:80",
            "70000:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "::1:80:80",
            "[::1:80:80",
            "a:b:c:d",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn capabilities() {
        assert_eq!(
            Capability::parse("CAP_NET_BIND_SERVICE").unwrap().0,
            caps::Capability::CAP_NET_BIND_SERVICE
        );
        assert_eq!(
            Capability::parse("net_admin").unwrap().0,
            caps::Capability::CAP_NET_ADMIN
        );
        let err = Capability::parse("CAP_NET_BIND_SERVIC").unwrap_err();
        assert!(err.help.contains("CAP_NET_BIND_SERVICE"), "{}", err.help);
    }

    #[test]
    fn syscalls() {
        assert!(Syscall::parse("ptrace").is_ok());
        assert!(
            Syscall::parse("open").is_ok(),
            "x86_64 only, still accepted"
        );
        assert!(Arch::Aarch64.syscall_number("open").is_none());
        assert!(Arch::X86_64.syscall_number("read") == Some(0));
        let err = Syscall::parse("ptrac").unwrap_err();
        assert!(err.help.contains("ptrace"), "{}", err.help);
    }

    #[test]
    fn errnos_and_rlimits() {
        assert_eq!(Errno::parse("eperm").unwrap(), Errno(libc::EPERM));
        assert!(Errno::parse("EWHAT").is_err());
        assert_eq!(Errno(libc::ENOSYS).name(), "ENOSYS");
        assert_eq!(
            RlimitValue::parse("unlimited").unwrap(),
            RlimitValue::Unlimited
        );
        assert_eq!(
            RlimitValue::parse("64M").unwrap(),
            RlimitValue::Limited(64 << 20)
        );
        assert!(RlimitValue::parse("lots").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC*") {
            let _ = Size::parse(&text);
            let _ = Duration::parse(&text);
            let _ = Offset::parse(&text);
            let _ = Mode::parse(&text);
            let _ = PortSpec::parse(&text);
            let _ = Destination::parse(&text);
            let _ = Capability::parse(&text);
            let _ = Syscall::parse(&text);
            let _ = Errno::parse(&text);
            let _ = RlimitValue::parse(&text);
        }

        #[test]
        fn sizes_round_trip(n in 0u64..(1u64 << 50)) {
            prop_assert_eq!(Size::parse(&Size(n).to_string()).unwrap(), Size(n));
        }

        #[test]
        fn durations_round_trip(ms in 0u64..(1u64 << 40)) {
            prop_assert_eq!(Duration::parse(&Duration(ms).to_string()).unwrap(), Duration(ms));
        }

        #[test]
        fn ports_round_trip(a in 1u16.., b in 1u16.., udp: bool) {
            let text = format!("10.0.0.1:{a}:{b}/{}", if udp { "udp" } else { "tcp" });
            prop_assert_eq!(PortSpec::parse(&text).unwrap().to_string(), text);
        }

        #[test]
        fn port_text_with_digits_and_colons_never_panics(text in "[0-9:./a-z\\[\\]]{0,30}") {
            let _ = PortSpec::parse(&text);
        }
    }
}
