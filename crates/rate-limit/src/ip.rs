//! The client address behind trusted proxies.

use std::fmt;
use std::net::IpAddr;

/// An address range (`10.0.0.0/8`, `::1/128`; a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A range that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8, 192.168.1.10, ::1)")]
pub struct IpNetError(String);

impl IpNet {
    /// Parses `addr` or `addr/prefix`.
    ///
    /// # Errors
    /// [`IpNetError`] for anything else (or a prefix longer than the address).
    pub fn parse(text: &str) -> Result<Self, IpNetError> {
        let text = text.trim();
        let err = || IpNetError(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in the range (a v4-mapped v6 address counts as its v4 address).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.addr), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the
/// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (entries further
/// left are client-supplied and may be forged). A malformed entry stops the walk at the
/// last trusted hop.
#[must_use]
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ranges_parse_and_match() {
        let net = IpNet::parse("10.0.0.0/8").expect("valid");
        assert!(net.contains(ip("10.200.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        let host = IpNet::parse("192.168.1.10").expect("valid");
        assert!(host.contains(ip("192.168.1.10")) && !host.contains(ip("192.168.1.11")));
        let v6 = IpNet::parse("fd00::/8").expect("valid");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .expect("valid")
                .contains(ip("8.8.8.8"))
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::1/129", ""] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_honoured_only_from_trusted_proxies() {
        let trusted = [IpNet::parse("10.0.0.0/8").expect("valid")];
        let xff = Some("1.1.1.1, 203.0.113.9, 10.0.0.2");
        // Not behind a trusted proxy: the peer, whatever the header says.
        assert_eq!(
            client_ip(Some(ip("198.51.100.1")), xff, &trusted),
            Some(ip("198.51.100.1"))
        );
        // Behind proxies: the rightmost untrusted hop (1.1.1.1 may be forged).
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), xff, &trusted),
            Some(ip("203.0.113.9"))
        );
        // No trusted proxies configured: the header is ignored.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), xff, &[]),
            Some(ip("10.0.0.1"))
        );
        // A trusted peer without a header, or with garbage, is the client itself.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), None, &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("junk"), &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(client_ip(None, xff, &trusted), None);
    }
}
