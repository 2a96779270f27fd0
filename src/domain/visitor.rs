//! What the server knows about a visitor beyond their name: how to reach them
//! and where they are on the site. Operators of the conversation see it; the
//! visitor's own views never carry it, so no visitor sees another's.

use serde::Serialize;

use super::text::{self, InvalidField};
use super::time::Timestamp;

/// Pages kept per conversation: the latest ones say what the visitor is looking at.
pub const MAX_PAGES: usize = 20;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_TITLE_CHARS: usize = 200;
/// Longer `User-Agent` headers are cut, not refused: the browser chose it, not the visitor.
pub const MAX_USER_AGENT_CHARS: usize = 512;
pub const MAX_TIMEZONE_CHARS: usize = 64;

/// One page the visitor opened while the conversation was open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub url: String,
    pub title: String,
    pub at: Timestamp,
}

/// The visitor's context; every field optional, `pages` newest last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VisitorContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The page the visitor is on (the latest navigation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// IANA time zone name, e.g. `Europe/Brussels`: the visitor's local time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub pages: Vec<Page>,
}

/// Something the chatbot learned from the visitor's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    Email(String),
    Phone(String),
}

impl VisitorContext {
    /// A navigation: it becomes the current page and joins the last `MAX_PAGES`.
    pub fn visit(&mut self, url: String, title: String, at: Timestamp) {
        self.page_url = Some(url.clone());
        self.page_title = (!title.is_empty()).then(|| title.clone());
        self.pages.push(Page { url, title, at });
        let excess = self.pages.len().saturating_sub(MAX_PAGES);
        self.pages.drain(..excess);
    }

    /// Remembers what the chatbot learned; returns whether anything changed.
    pub fn learn(&mut self, detail: Detail) -> bool {
        let (slot, value) = match detail {
            Detail::Email(value) => (&mut self.email, value),
            Detail::Phone(value) => (&mut self.phone, value),
        };
        let changed = slot.as_deref() != Some(value.as_str());
        *slot = Some(value);
        changed
    }
}

/// An `http(s)` URL as a page address or referrer, taken exactly as sent
/// (the OpenAPI document states the same rule: `URL_PATTERN`).
///
/// # Errors
/// `Invalid` naming `field`.
pub fn url(field: &'static str, value: &str) -> Result<String, InvalidField> {
    let scheme_ok = ["http://", "https://"].iter().any(|s| value.get(..s.len()).is_some_and(|head| head.eq_ignore_ascii_case(s)));
    if !scheme_ok || value.contains(|c: char| text::WHITESPACE.contains(c)) || value.chars().count() > MAX_URL_CHARS {
        return Err(InvalidField::new(field, format!("must be an http(s) URL of at most {MAX_URL_CHARS} characters, without spaces")));
    }
    Ok(value.to_owned())
}

/// A page title: at most `MAX_TITLE_CHARS` as sent, stored trimmed; may be empty.
///
/// # Errors
/// `Invalid` naming `field` when too long.
pub fn title(field: &'static str, value: &str) -> Result<String, InvalidField> {
    if value.chars().count() > MAX_TITLE_CHARS {
        return Err(InvalidField::new(field, format!("must be at most {MAX_TITLE_CHARS} characters")));
    }
    Ok(value.trim().to_owned())
}

/// An IANA time zone name such as `Europe/Brussels`, `UTC` or `Etc/GMT+5` (`TIMEZONE_PATTERN`).
///
/// # Errors
/// `Invalid` naming `timezone`.
pub fn timezone(value: &str) -> Result<String, InvalidField> {
    let valid = value.len() <= MAX_TIMEZONE_CHARS
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(InvalidField::new("timezone", "must be an IANA time zone name such as Europe/Brussels"))
    }
}

/// An e-mail address: `local@domain.tld`, no spaces, at most 254 characters (`EMAIL_PATTERN`).
///
/// # Errors
/// `Invalid` naming `email`.
pub fn email(field: &'static str, value: &str) -> Result<String, InvalidField> {
    let spaced = value.contains(|c: char| text::WHITESPACE.contains(c));
    let shaped = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.contains('@') && domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty())
    });
    if shaped && !spaced && value.chars().count() <= 254 {
        Ok(value.to_owned())
    } else {
        Err(InvalidField::new(field, "must be an e-mail address"))
    }
}

/// The patterns above, for the OpenAPI document (`http/schema.rs`).
pub fn url_pattern() -> String {
    format!("^[hH][tT][tT][pP][sS]?://[^{}]*$", text::WHITESPACE)
}
pub const TIMEZONE_PATTERN: &str = "^[A-Za-z][A-Za-z0-9/_+-]*$";
pub fn email_pattern() -> String {
    let ws = text::WHITESPACE;
    format!("^[^@{ws}]+@[^@.{ws}]+([.][^@.{ws}]+)+$")
}

/// The `User-Agent` header as recorded: cut at `MAX_USER_AGENT_CHARS`.
pub fn user_agent(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.chars().take(MAX_USER_AGENT_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_twenty_pages_are_kept_and_the_latest_is_current() {
        let mut context = VisitorContext::default();
        for i in 0..25 {
            context.visit(format!("https://shop.example/p/{i}"), format!("Page {i}"), Timestamp::now());
        }
        assert_eq!(context.pages.len(), MAX_PAGES);
        assert_eq!(context.pages[0].url, "https://shop.example/p/5");
        assert_eq!(context.page_url.as_deref(), Some("https://shop.example/p/24"));
        assert_eq!(context.page_title.as_deref(), Some("Page 24"));
    }

    #[test]
    fn fields_are_checked() {
        assert!(url("page_url", "https://shop.example/a?b=c").is_ok());
        for bad in ["ftp://x", "javascript:alert(1)", "https://a b", " https://a", "shop.example", ""] {
            assert!(url("page_url", bad).is_err(), "{bad}");
        }
        assert!(url("page_url", &format!("https://x/{}", "a".repeat(MAX_URL_CHARS))).is_err());
        for good in ["Europe/Brussels", "UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires"] {
            assert_eq!(timezone(good).unwrap(), good);
        }
        for bad in ["", " UTC", "<script>", "1Europe", "Europe/Brussels extra"] {
            assert!(timezone(bad).is_err(), "{bad}");
        }
        assert!(email("email", "vera@example.com").is_ok());
        for bad in ["vera", "vera@example", " vera@example.com", "a@b@c.d", "v@example..com"] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
        assert_eq!(user_agent(&"x".repeat(600)).unwrap().len(), MAX_USER_AGENT_CHARS);
        assert!(title("page_title", &"t".repeat(201)).is_err());
    }

    #[test]
    fn learning_says_whether_anything_changed() {
        let mut context = VisitorContext::default();
        assert!(context.learn(Detail::Email("a@example.com".into())));
        assert!(!context.learn(Detail::Email("a@example.com".into())));
        assert!(context.learn(Detail::Phone("+32 470 12 34 56".into())));
        assert_eq!(context.phone.as_deref(), Some("+32 470 12 34 56"));
    }
}
