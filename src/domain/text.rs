//! Validation of user-supplied text: names, language and country codes.
//!
//! Every check returns an [`InvalidField`] naming the field, so the API can
//! answer "400: `name` must be 1..=100 characters" rather than a vague error.

use std::borrow::Cow;

use thiserror::Error;

/// A request field that breaks a rule; `field` is the JSON field name.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{field}` {reason}")]
pub struct InvalidField {
    /// A field name, or a path such as `steps[2].answers` for nested input.
    pub field: Cow<'static, str>,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> InvalidField {
        InvalidField { field: field.into(), reason: reason.into() }
    }
}

/// Longest name (user, expertise, channel, visitor) in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Longest login name.
pub const MAX_LOGIN_CHARS: usize = 100;

/// Every character `str::trim` removes (Unicode `White_Space`), spelled out so
/// the OpenAPI document's patterns match this code exactly: regex engines
/// disagree about what `\s` covers.
pub const WHITESPACE: &str = "\t\n\u{b}\u{c}\r \u{85}\u{a0}\u{1680}\u{2000}\u{2001}\u{2002}\u{2003}\u{2004}\u{2005}\u{2006}\u{2007}\u{2008}\u{2009}\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";

/// Checks `value` holds at most `max` characters, not all whitespace, and trims it.
pub fn bounded(field: impl Into<Cow<'static, str>>, value: &str, max: usize) -> Result<String, InvalidField> {
    let trimmed = value.trim();
    if trimmed.is_empty() || value.chars().count() > max {
        return Err(InvalidField::new(field, format!("must be 1..={max} characters")));
    }
    Ok(trimmed.to_owned())
}

/// A display name: 1..=100 characters as sent, not blank; stored trimmed.
pub fn name(field: impl Into<Cow<'static, str>>, value: &str) -> Result<String, InvalidField> {
    bounded(field, value, MAX_NAME_CHARS)
}

/// A language code such as `en` or `pt-BR`, normalised to lower case.
/// (Codes are not trimmed: `" en"` is a typo worth reporting.)
pub fn language(field: &'static str, value: &str) -> Result<String, InvalidField> {
    let code = value.to_ascii_lowercase();
    let mut parts = code.split('-');
    let primary_ok = parts.next().is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()));
    let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !(primary_ok && rest_ok) {
        return Err(InvalidField::new(field, format!("{value:?} is not a language code like \"en\"")));
    }
    Ok(code)
}

/// A list of language codes, normalised and without duplicates, in the given order.
pub fn languages(values: &[String]) -> Result<Vec<String>, InvalidField> {
    let mut res: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let code = language("languages", value)?;
        if !res.contains(&code) {
            res.push(code);
        }
    }
    Ok(res)
}

/// An ISO 3166 alpha-2 country code, normalised to upper case.
pub fn country(value: &str) -> Result<String, InvalidField> {
    let code = value.to_ascii_uppercase();
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(InvalidField::new("country", format!("{value:?} is not an ISO 3166 alpha-2 code like \"BE\"")));
    }
    Ok(code)
}

/// The primary subtag of a language code: `pt-BR` and `pt` speak the same language.
pub fn primary_language(code: &str) -> &str {
    code.split('-').next().unwrap_or(code)
}

/// A plausible email address: `local@domain.tld`, no spaces.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let labels_ok = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
    !local.is_empty() && labels_ok && !s.chars().any(char::is_whitespace) && !domain.contains('@') && s.len() <= 254
}

/// A plausible phone number: 6..=15 digits, with optional `+`, spaces, dots, dashes and parentheses.
pub fn is_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let allowed = s.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || " .-()".contains(c) || (c == '+' && i == 0));
    allowed && (6..=15).contains(&digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  Ann ").unwrap(), "Ann");
        assert!(name("name", "   ").is_err());
        assert!(name("name", &"x".repeat(101)).is_err());
        assert!(name("name", &"é".repeat(100)).is_ok());
        assert!(name("name", &format!(" {} ", "x".repeat(99))).is_err(), "the limit counts what was sent");
    }

    #[test]
    fn whitespace_lists_exactly_what_trim_removes() {
        let expected: String = (0..=char::MAX as u32).filter_map(char::from_u32).filter(|c| c.is_whitespace()).collect();
        assert_eq!(WHITESPACE, expected);
    }

    #[test]
    fn language_and_country_codes_are_normalised() {
        assert_eq!(language("lang", "EN").unwrap(), "en");
        assert_eq!(language("lang", "pt-BR").unwrap(), "pt-br");
        assert!(language("lang", "english!").is_err());
        assert!(language("lang", " en").is_err());
        assert_eq!(country("be").unwrap(), "BE");
        assert!(country("BEL").is_err());
        assert_eq!(languages(&["en".into(), "EN".into(), "fr".into()]).unwrap(), vec!["en", "fr"]);
        assert_eq!(primary_language("pt-br"), "pt");
    }
}
