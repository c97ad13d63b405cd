//! The daemon's base URL, `https://host[:port][/]`: a small sans-io parser.
//!
//! Only what the client needs is accepted: the `https` scheme, a host (DNS name, IPv4 address
//! or bracketed IPv6 address), an optional port (443 by default) and an optional trailing `/`.
//! Userinfo, paths, queries and fragments are refused, so a URL cannot silently point the
//! client somewhere other than what it appears to name.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The longest DNS name accepted (RFC 1035 §2.3.4, without the trailing dot).
const MAX_DNS_NAME_LEN: usize = 253;
/// The longest DNS label accepted (RFC 1035 §2.3.4).
const MAX_DNS_LABEL_LEN: usize = 63;
/// The port used when the URL names none.
const DEFAULT_HTTPS_PORT: u16 = 443;

/// The host part of a base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IPv4 or IPv6 address (IPv6 was written in brackets).
    Ip(IpAddr),
    /// A DNS name, lower-cased.
    Dns(String),
}

/// A parsed `https://host:port` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Where to connect, and the TLS server name to verify.
    pub host: Host,
    /// TCP port.
    pub port: u16,
}

/// Why a base URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not `https://`.
    Scheme,
    /// Userinfo (`user@`) is not accepted.
    Userinfo,
    /// Anything after the authority other than a single `/`.
    Path,
    /// The host is empty or not a valid DNS name or IP address.
    Host,
    /// The port is not a number from 1 to 65535.
    Port,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::Scheme => "the scheme must be https://",
            Self::Userinfo => "userinfo (user@) is not accepted",
            Self::Path => "only https://host:port with an optional trailing / is accepted",
            Self::Host => "the host is not a valid DNS name or IP address",
            Self::Port => "the port must be a number from 1 to 65535",
        };
        f.write_str(what)
    }
}

impl std::error::Error for UrlError {}

impl BaseUrl {
    /// Parses `https://host[:port][/]`; IPv6 addresses go in brackets.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let rest = strip_prefix_ignore_ascii_case(url, "https://").ok_or(UrlError::Scheme)?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(UrlError::Path);
        }
        if authority.contains('@') {
            return Err(UrlError::Userinfo);
        }
        let (host, port) = split_host_port(authority)?;
        Ok(Self { host, port })
    }

    /// `host:port` as it goes in a `Host` header or a URI authority (IPv6 in brackets).
    pub fn authority(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => format!("{ip}:{}", self.port),
            Host::Dns(name) => format!("{name}:{}", self.port),
        }
    }

    /// The host as the TLS server name and the TCP connect target (IPv6 without brackets).
    pub fn host_str(&self) -> String {
        match &self.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Dns(name) => name.clone(),
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.authority())
    }
}

fn strip_prefix_ignore_ascii_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn split_host_port(authority: &str) -> Result<(Host, u16), UrlError> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']').ok_or(UrlError::Host)?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| UrlError::Host)?;
        let port = match after {
            "" => DEFAULT_HTTPS_PORT,
            _ => parse_port(after.strip_prefix(':').ok_or(UrlError::Host)?)?,
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (authority, DEFAULT_HTTPS_PORT),
    };
    Ok((parse_host(host)?, port))
}

fn parse_port(s: &str) -> Result<u16, UrlError> {
    // u16::from_str accepts a leading '+'; a URL port is digits only.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::Port);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::Port),
        Ok(port) => Ok(port),
    }
}

fn parse_host(s: &str) -> Result<Host, UrlError> {
    if let Ok(ip) = s.parse::<std::net::Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_DNS_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let all_numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if name.is_empty()
        || name.len() > MAX_DNS_NAME_LEN
        || all_numeric
        || !name.split('.').all(valid_label)
    {
        return Err(UrlError::Host);
    }
    Ok(Host::Dns(name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> BaseUrl {
        match BaseUrl::parse(url) {
            Ok(u) => u,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn parses_ipv4_with_port() {
        let u = ok("https://127.0.0.1:8443");
        assert_eq!(u.host, Host::Ip(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(u.port, 8443);
        assert_eq!(u.authority(), "127.0.0.1:8443");
        assert_eq!(u.host_str(), "127.0.0.1");
    }

    #[test]
    fn parses_dns_name_with_trailing_slash_and_lowercases_it() {
        let u = ok("https://PayHSM.Internal.example:9443/");
        assert_eq!(u.host, Host::Dns("payhsm.internal.example".into()));
        assert_eq!(u.port, 9443);
        assert_eq!(u.to_string(), "https://payhsm.internal.example:9443");
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let u = ok("https://[::1]:8443/");
        assert_eq!(u.host, Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(u.authority(), "[::1]:8443");
        assert_eq!(u.host_str(), "::1");
    }

    #[test]
    fn defaults_to_port_443() {
        assert_eq!(ok("https://localhost").port, 443);
        assert_eq!(ok("https://[::1]").port, 443);
    }

    #[test]
    fn scheme_is_case_insensitive_but_must_be_https() {
        assert_eq!(ok("HTTPS://localhost:1").port, 1);
        assert_eq!(
            BaseUrl::parse("http://localhost:8443"),
            Err(UrlError::Scheme)
        );
        assert_eq!(BaseUrl::parse("localhost:8443"), Err(UrlError::Scheme));
        assert_eq!(BaseUrl::parse(""), Err(UrlError::Scheme));
    }

    #[test]
    fn refuses_paths_queries_and_fragments() {
        for url in [
            "https://localhost:8443/v1",
            "https://localhost:8443//",
            "https://localhost:8443?x=1",
            "https://localhost:8443/#f",
        ] {
            assert_eq!(BaseUrl::parse(url), Err(UrlError::Path), "{url}");
        }
    }

    #[test]
    fn refuses_userinfo() {
        assert_eq!(
            BaseUrl::parse("https://evil@localhost:8443"),
            Err(UrlError::Userinfo)
        );
    }

    #[test]
    fn refuses_bad_ports() {
        for url in [
            "https://localhost:",
            "https://localhost:0",
            "https://localhost:65536",
            "https://localhost:+80",
            "https://localhost:80a",
            "https://[::1]:",
        ] {
            assert_eq!(BaseUrl::parse(url), Err(UrlError::Port), "{url}");
        }
    }

    #[test]
    fn refuses_bad_hosts() {
        for url in [
            "https://:8443",
            "https://[::1:8443",
            "https://[not-ip]:8443",
            "https://[::1]8443",
            "https://::1:8443",
            "https://under_score.example:8443",
            "https://-lead.example:8443",
            "https://a..b:8443",
            "https://256.1.1.1:8443",
            "https://exa mple:8443",
        ] {
            assert_eq!(BaseUrl::parse(url), Err(UrlError::Host), "{url}");
        }
        let long = format!("https://{}a:1", "a.".repeat(127));
        assert_eq!(BaseUrl::parse(&long), Err(UrlError::Host));
    }
}
