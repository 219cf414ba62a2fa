//! The outbound HTTP guard (SSRF): an api source (or a webhook) may not reach loopback,
//! private, link-local or otherwise internal addresses unless the operator allows them.
//!
//! Names are resolved by our own resolver, which refuses a name if *any* of its addresses
//! is internal (so a name with one public and one private address cannot be raced), and the
//! connection goes to the addresses it checked. Literal IP hosts (which skip resolution) are
//! checked before the request and on every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::{Error, Result};

/// Whether `ip` is an address an outbound request must not reach by default: loopback,
/// private (RFC 1918, unique local), link-local, shared (CGNAT), unspecified, broadcast,
/// multicast, documentation, benchmarking and reserved ranges, and IPv6 forms that embed
/// such an IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        // IPv4-compatible ::a.b.c.d
        || (s[..6] == [0; 6] && is_internal_v4(embedded(s[6], s[7])))
        // NAT64 64:ff9b::a.b.c.d
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] && is_internal_v4(embedded(s[6], s[7])))
        // 6to4 2002:a.b.c.d::
        || (s[0] == 0x2002 && is_internal_v4(embedded(s[1], s[2])))
}

/// Checks a URL before a request: http or https, and a literal IP host must not be internal
/// (names, `localhost` included, are checked by the resolver).
pub fn check_url(url: &url::Url, allow_private: bool) -> Result<()> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "'{url}': only http and https URLs are fetched"
        )));
    }
    if allow_private {
        return Ok(());
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) if is_internal_v4(ip) => Err(forbidden(url.as_str(), ip.into())),
        Some(url::Host::Ipv6(ip)) if is_internal_v6(ip) => Err(forbidden(url.as_str(), ip.into())),
        None => Err(Error::Config(format!("'{url}' has no host"))),
        _ => Ok(()),
    }
}

fn forbidden(what: &str, ip: IpAddr) -> Error {
    Error::ForbiddenTarget(format!(
        "{what} resolves to the internal address {ip}; private targets are not allowed \
         (--allow-private-targets / CANVAS_ALLOW_PRIVATE_TARGETS=1)"
    ))
}

/// A resolver that refuses names with an internal address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
                return Err(Box::new(forbidden(&host, bad.ip()))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of api sources: our resolver unless private targets are allowed, at
/// most five redirects, each checked like the first URL.
pub(crate) fn http_client(allow_private: bool) -> Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if let Err(e) = check_url(attempt.url(), allow_private) {
            attempt.error(e)
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(policy)
        .user_agent(concat!("canvas-analytics/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("http client: {e}")))
}

/// The HTTP client of webhook deliveries: the same resolver as api sources unless private
/// targets are allowed, and no redirects (a delivery is a `POST` to the URL its subscription
/// names; a 3xx answer is a failed attempt). Check each URL with [`check_url`] first.
pub fn webhook_client(allow_private: bool, user_agent: &str) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent);
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("http client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
            "::127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().expect(ip)), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().expect(ip)), "{ip}");
        }
    }

    #[test]
    fn urls() {
        let u = |s: &str| url::Url::parse(s).expect(s);
        assert!(check_url(&u("http://127.0.0.1:8080/x"), false).is_err());
        assert!(check_url(&u("http://[::1]/x"), false).is_err());
        // names (localhost included) are checked when resolved
        assert!(check_url(&u("http://localhost/x"), false).is_ok());
        assert!(check_url(&u("ftp://example.com/x"), true).is_err());
        assert!(check_url(&u("http://127.0.0.1:8080/x"), true).is_ok());
        assert!(check_url(&u("https://example.com/x"), false).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_internal_addresses() {
        let r = GuardedResolver
            .resolve("localhost".parse().expect("name"))
            .await;
        let e = r.err().expect("refused").to_string();
        assert!(e.contains("internal address"), "{e}");
    }
}
