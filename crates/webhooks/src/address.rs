//! Where a webhook may be sent (no server-side request forgery).
//!
//! An endpoint URL is `https` (plain `http` only to a loopback host, and only when the
//! deployment allows loopback receivers: tests and development), has a host, no user
//! name or password and at most 2,048 characters. Its host must not name or resolve to
//! an address that is not public: loopback (unless allowed), private (RFC 1918),
//! shared/CGNAT (100.64/10), link-local (169.254/16, fe80::/10, where cloud metadata
//! services live), unique-local IPv6 (fc00::/7), multicast, broadcast, unspecified,
//! documentation, benchmarking and reserved ranges; IPv4 addresses embedded in IPv6
//! (mapped, NAT64, 6to4) are judged as the IPv4 address. The check runs at
//! registration on literal addresses and names like `localhost`, and **at every
//! delivery on the addresses the name resolves to then** (the connection goes to an
//! address that passed), so a name re-pointed after registration (DNS rebinding)
//! reaches nothing private.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Which receivers the deployment allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Loopback receivers (`127.0.0.0/8`, `::1`, `localhost`), with plain `http` too.
    /// Off in production.
    pub allow_loopback: bool,
}

/// Why a URL or an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not a URL.
    #[error("not a URL")]
    Malformed,
    /// Longer than 2,048 characters.
    #[error("a URL has at most 2048 characters")]
    TooLong,
    /// Not `https` (or `http` to an allowed loopback host).
    #[error("the URL must use https")]
    NotHttps,
    /// User name or password in the URL, or a fragment.
    #[error("the URL must not carry credentials or a fragment")]
    Credentials,
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// The host is or resolves to an address that is not public.
    #[error("the receiver's address {0} is not a public address")]
    NotPublic(String),
}

/// A checked endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    /// Parses and checks `s` under `policy` (literal addresses and local names only;
    /// resolved addresses are checked at delivery with [`check_ip`]).
    ///
    /// # Errors
    /// [`AddressError`].
    pub fn parse(s: &str, policy: AddressPolicy) -> Result<Self, AddressError> {
        if s.len() > MAX_URL_LEN {
            return Err(AddressError::TooLong);
        }
        let url = url::Url::parse(s.trim()).map_err(|_| AddressError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(AddressError::Credentials);
        }
        let host = url.host().ok_or(AddressError::NoHost)?;
        let loopback = match &host {
            url::Host::Domain(d) => is_local_name(d),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback && policy.allow_loopback => {}
            _ => return Err(AddressError::NotHttps),
        }
        match host {
            url::Host::Domain(d) if is_local_name(d) && !policy.allow_loopback => {
                return Err(AddressError::NotPublic(d.to_owned()));
            }
            url::Host::Domain(_) => {}
            url::Host::Ipv4(ip) => check_ip(IpAddr::V4(ip), policy)?,
            url::Host::Ipv6(ip) => check_ip(IpAddr::V6(ip), policy)?,
        }
        Ok(Self(url))
    }

    /// The URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    #[must_use]
    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

/// `localhost` and names below it.
fn is_local_name(d: &str) -> bool {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost" || d.ends_with(".localhost")
}

/// Whether a receiver at `ip` may be contacted under `policy`.
///
/// # Errors
/// [`AddressError::NotPublic`].
pub fn check_ip(ip: IpAddr, policy: AddressPolicy) -> Result<(), AddressError> {
    let refused = || Err(AddressError::NotPublic(ip.to_string()));
    match classify(ip) {
        Class::Public => Ok(()),
        Class::Loopback if policy.allow_loopback => Ok(()),
        Class::Loopback | Class::Private => refused(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    Loopback,
    Private,
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return Class::Loopback;
    }
    let private = a == 0 // "this network"
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    if private {
        Class::Private
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if ip.is_loopback() {
        return Class::Loopback;
    }
    let s = ip.segments();
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64
    // (64:ff9b::/96), 6to4 (2002:AABB:CCDD::/48).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // ::/96 (compatible) and :: itself.
        return if ip.is_unspecified() {
            Class::Private
        } else {
            classify_v4(embedded_v4(s[6], s[7]))
        };
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return classify_v4(embedded_v4(s[1], s[2]));
    }
    let private = (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // Teredo and other IETF assignments 2001::/23
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || s[0] == 0x3fff; // documentation 3fff::/20 (and the rest of 3fff::/16)
    if private {
        Class::Private
    } else {
        Class::Public
    }
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: AddressPolicy = AddressPolicy {
        allow_loopback: false,
    };
    const DEV: AddressPolicy = AddressPolicy {
        allow_loopback: true,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "1.1.1.1",
            "100.128.0.1",
        ] {
            assert_eq!(check_ip(ip(a), PROD), Ok(()), "{a}");
        }
    }

    #[test]
    fn non_public_addresses_are_refused_in_production() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
            "2001:db8::1",
        ] {
            assert!(check_ip(ip(a), PROD).is_err(), "{a}");
        }
    }

    #[test]
    fn loopback_only_when_allowed_and_private_never() {
        assert_eq!(check_ip(ip("127.0.0.1"), DEV), Ok(()));
        assert_eq!(check_ip(ip("::1"), DEV), Ok(()));
        assert!(check_ip(ip("10.1.2.3"), DEV).is_err());
        assert!(check_ip(ip("169.254.169.254"), DEV).is_err());
    }

    #[test]
    fn urls() {
        assert!(EndpointUrl::parse("https://example.org/hook", PROD).is_ok());
        assert_eq!(
            EndpointUrl::parse("http://example.org/hook", PROD),
            Err(AddressError::NotHttps)
        );
        assert_eq!(
            EndpointUrl::parse("http://example.org/hook", DEV),
            Err(AddressError::NotHttps)
        );
        assert!(EndpointUrl::parse("http://127.0.0.1:8080/hook", DEV).is_ok());
        assert!(EndpointUrl::parse("http://localhost:8080/hook", DEV).is_ok());
        assert!(EndpointUrl::parse("http://[::1]:8080/hook", DEV).is_ok());
        assert_eq!(
            EndpointUrl::parse("http://127.0.0.1:8080/hook", PROD),
            Err(AddressError::NotHttps)
        );
        assert!(matches!(
            EndpointUrl::parse("https://127.0.0.1/hook", PROD),
            Err(AddressError::NotPublic(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("https://localhost/hook", PROD),
            Err(AddressError::NotPublic(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("https://10.0.0.5/hook", DEV),
            Err(AddressError::NotPublic(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("https://[fd00::1]/hook", DEV),
            Err(AddressError::NotPublic(_))
        ));
        // Decimal and hex spellings of an IPv4 address are normalized by the parser.
        assert!(matches!(
            EndpointUrl::parse("https://2130706433/hook", PROD),
            Err(AddressError::NotPublic(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("https://0x7f.1/hook", PROD),
            Err(AddressError::NotPublic(_))
        ));
        assert_eq!(
            EndpointUrl::parse("https://user:pw@example.org/", PROD),
            Err(AddressError::Credentials)
        );
        assert_eq!(
            EndpointUrl::parse("ftp://example.org/", PROD),
            Err(AddressError::NotHttps)
        );
        assert_eq!(
            EndpointUrl::parse("not a url", PROD),
            Err(AddressError::Malformed)
        );
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(EndpointUrl::parse(&long, PROD), Err(AddressError::TooLong));
    }
}
