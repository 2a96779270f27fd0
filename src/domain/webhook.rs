//! Webhooks: what an admin subscribes a URL to, and which URLs are allowed.
//! Delivery (signing, retries, order) is `webhooks.rs`; storage is the archive.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::text::InvalidField;

/// The events a webhook may subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WebhookEvent {
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "conversation.assigned")]
    ConversationAssigned,
    #[serde(rename = "conversation.closed")]
    ConversationClosed,
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "lead.created")]
    LeadCreated,
    #[serde(rename = "rating.created")]
    RatingCreated,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 6] = [
        WebhookEvent::ConversationCreated,
        WebhookEvent::ConversationAssigned,
        WebhookEvent::ConversationClosed,
        WebhookEvent::MessageCreated,
        WebhookEvent::LeadCreated,
        WebhookEvent::RatingCreated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WebhookEvent::ConversationCreated => "conversation.created",
            WebhookEvent::ConversationAssigned => "conversation.assigned",
            WebhookEvent::ConversationClosed => "conversation.closed",
            WebhookEvent::MessageCreated => "message.created",
            WebhookEvent::LeadCreated => "lead.created",
            WebhookEvent::RatingCreated => "rating.created",
        }
    }

    pub fn parse(name: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// A subscription: events of these kinds are POSTed to `url`, signed with `secret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: u64,
    pub url: String,
    pub events: BTreeSet<WebhookEvent>,
    pub secret: String,
}

/// Longest URL and secret accepted.
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_SECRET_CHARS: usize = 256;

/// An address a webhook may not reach unless private targets are allowed:
/// loopback, private ranges, link-local, unspecified, and the like, because a
/// webhook URL must not become a way to probe the server's own network.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4.octets()[0] == 0
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// A webhook URL as accepted: `http` or `https`, with a host; an IP-literal
/// host must be public unless `allow_private`. (A host name is checked again
/// after each DNS resolution, at delivery.) Answers the URL and its host.
///
/// # Errors
/// `InvalidField` naming `url`.
pub fn check_url(url: &str, allow_private: bool) -> Result<(String, String), InvalidField> {
    let bad = |why: &str| InvalidField::new("url", why.to_owned());
    if url.chars().count() > MAX_URL_CHARS {
        return Err(bad("must be at most 2048 characters"));
    }
    let rest =
        url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(|| bad("must be an http:// or https:// URL"))?;
    if url.chars().any(char::is_whitespace) {
        return Err(bad("must not contain spaces"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(bad("must name a host"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !allow_private && is_internal(ip) {
            return Err(bad("must not point at a private or loopback address"));
        }
    } else if !allow_private && (host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost")) {
        return Err(bad("must not point at a private or loopback address"));
    }
    Ok((url.to_owned(), host.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_http_urls_unless_private_is_allowed() {
        assert!(check_url("https://crm.example.com/hook", false).is_ok());
        assert!(check_url("http://93.184.216.34:8080/x", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "http:///nohost",
            "https://exa mple.com/",
            "http://127.0.0.1:9000/",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:3000/",
            "http://user@127.0.0.1/",
            "http://100.64.0.1/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/", true).is_err());
    }

    #[test]
    fn event_names_round_trip() {
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.name()), Some(event));
            assert_eq!(serde_json::to_value(event).unwrap(), event.name());
        }
        assert_eq!(WebhookEvent::parse("message.deleted"), None);
    }
}
