//! Who is on the other end of a request: the client's address, and the
//! scheme and host it used, seen through trusted reverse proxies only.
//!
//! Behind a proxy every request comes from the proxy's address, so per-address
//! limits would throttle the whole site as one visitor. `--trusted-proxies`
//! names the proxies whose `Forwarded` / `X-Forwarded-*` headers are believed;
//! from anyone else those headers are ignored, so a client cannot pick the
//! address it is limited under.

use std::future::{ready, Ready};
use std::net::IpAddr;
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{web, FromRequest, HttpRequest};

use crate::error::ApiError;

/// The networks whose forwarding headers are believed (`--trusted-proxies`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

/// An address block: `10.0.0.0/8`, `::1/128`, or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, canonical(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(u32::from(base)) << 96, u128::from(u32::from(ip)) << 96, self.prefix)
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => prefix_eq(u128::from(base), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
    a & mask == b & mask
}

/// An IPv4 peer seen on a dual-stack socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of CIDR blocks or addresses; empty trusts nobody.
    fn from_str(list: &str) -> Result<TrustedProxies, String> {
        let parse = |item: &str| -> Result<Network, String> {
            let (ip, prefix) = item.split_once('/').map_or((item, None), |(ip, p)| (ip, Some(p)));
            let base = canonical(ip.parse::<IpAddr>().map_err(|_| format!("{item:?} is not an IP address or CIDR block"))?);
            let max = if base.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| format!("{item:?}: the prefix must be 0 to {max}"))?,
            };
            Ok(Network { base, prefix })
        };
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse).collect::<Result<_, _>>().map(TrustedProxies)
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the peer's, or — when the peer is a trusted proxy —
    /// the right-most address of the forwarding chain that is not one (each
    /// trusted proxy appends who it heard from; what is left of the first
    /// untrusted hop was written by the client and proves nothing).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_for(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) if self.trusts(client) => client = canonical(*ip),
                // An obfuscated or garbled hop ends what can be known.
                _ => break,
            }
        }
        client
    }

    /// `scheme://host` as the client used it: from a trusted proxy's
    /// `X-Forwarded-Proto`/`-Host` (or `Forwarded` `proto=`/`host=`), else this connection's.
    pub fn client_origin(&self, req: &HttpRequest) -> String {
        let info = req.connection_info();
        let from_proxy = req.peer_addr().is_some_and(|peer| self.trusts(canonical(peer.ip())));
        let headers = req.headers();
        let forwarded = |x_header: &str, key: &str| {
            from_proxy
                .then(|| header_text(headers, x_header).map(|v| last_item(v).to_owned()).or_else(|| forwarded_param(headers, key)))
                .flatten()
        };
        let scheme = forwarded("x-forwarded-proto", "proto").unwrap_or_else(|| req.uri().scheme_str().unwrap_or("http").to_owned());
        let host = forwarded("x-forwarded-host", "host").or_else(|| header_text(headers, "host").map(str::to_owned));
        format!("{scheme}://{}", host.unwrap_or_else(|| info.host().to_owned()))
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The nearest proxy's entry of a comma-separated list.
fn last_item(value: &str) -> &str {
    value.rsplit(',').next().unwrap_or(value).trim()
}

/// The `for=` addresses of `Forwarded` (RFC 7239), else of `X-Forwarded-For`,
/// oldest first; `None` for a hop that is not an address (`unknown`, `_hidden`, garbage).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values: Vec<&str> = headers.get_all("forwarded").filter_map(|v| v.to_str().ok()).collect();
    if !values.is_empty() {
        return values
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| element.split(';').find_map(|pair| pair.trim().strip_prefix_ci("for=")))
            .map(|value| parse_node(value.trim().trim_matches('"')))
            .collect();
    }
    headers.get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(|v| parse_node(v.trim())).collect()
}

/// The nearest proxy's `key=` of `Forwarded`.
fn forwarded_param(headers: &HeaderMap, key: &str) -> Option<String> {
    let last = headers.get_all("forwarded").filter_map(|v| v.to_str().ok()).last()?;
    let element = last_item(last);
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or a bare IPv6 address.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.parse().ok().or_else(|| node.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

trait StripPrefixCi {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str>;
}

impl StripPrefixCi for str {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str> {
        let head = self.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix).then(|| &self[prefix.len()..])
    }
}

/// `scheme://host` the client used for `req` (see [`TrustedProxies::client_origin`]).
pub fn client_origin(req: &HttpRequest) -> String {
    match req.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => proxies.client_origin(req),
        None => TrustedProxies::default().client_origin(req),
    }
}

/// The client's address as an extractor, for everything limited per address.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<ClientIp, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let proxies = req.app_data::<web::Data<TrustedProxies>>();
        let ip = req.peer_addr().map(|peer| proxies.map_or(canonical(peer.ip()), |p| p.client_ip(peer.ip(), req.headers())));
        // No peer address only in unit-test requests; they share one bucket.
        ready(Ok(ClientIp(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])))))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_parse_blocks_and_addresses_and_refuse_garbage() {
        let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1,::1/128".parse().unwrap();
        assert!(proxies.trusts(ip("10.1.2.3")) && proxies.trusts(ip("127.0.0.1")) && proxies.trusts(ip("::1")));
        assert!(proxies.trusts(ip("::ffff:10.9.9.9")), "a mapped IPv4 peer is its IPv4 address");
        assert!(!proxies.trusts(ip("11.0.0.1")) && !proxies.trusts(ip("127.0.0.2")));
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::default());
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", "::1/129"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_count_only_from_a_trusted_peer_and_only_up_to_the_first_untrusted_hop() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &xff), ip("203.0.113.7"), "the client's own claim (6.6.6.6) is skipped");
        assert_eq!(proxies.client_ip(ip("198.51.100.1"), &xff), ip("198.51.100.1"), "an untrusted peer's headers are ignored");
        let forwarded = headers(&[("forwarded", r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#)]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &forwarded), ip("2001:db8::7"));
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &hidden), ip("10.0.0.1"), "an obfuscated hop leaves the proxy's address");
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        let with_port = headers(&[("x-forwarded-for", "203.0.113.9:5000")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &with_port), ip("203.0.113.9"));
    }
}
