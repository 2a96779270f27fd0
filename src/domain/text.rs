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

/// Trims `value` and checks it holds 1..=`max` characters.
pub fn bounded(field: impl Into<Cow<'static, str>>, value: &str, max: usize) -> Result<String, InvalidField> {
    let trimmed = value.trim();
    let n_chars = trimmed.chars().count();
    if n_chars == 0 || n_chars > max {
        return Err(InvalidField::new(field, format!("must be 1..={max} characters")));
    }
    Ok(trimmed.to_owned())
}

/// A display name: 1..=100 characters after trimming.
pub fn name(field: impl Into<Cow<'static, str>>, value: &str) -> Result<String, InvalidField> {
    bounded(field, value, MAX_NAME_CHARS)
}

/// A language code such as `en` or `pt-BR`, normalised to lower case.
pub fn language(field: &'static str, value: &str) -> Result<String, InvalidField> {
    let code = value.trim().to_ascii_lowercase();
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
    let code = value.trim().to_ascii_uppercase();
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(InvalidField::new("country", format!("{value:?} is not an ISO 3166 alpha-2 code like \"BE\"")));
    }
    Ok(code)
}

/// The primary subtag of a language code: `pt-BR` and `pt` speak the same language.
pub fn primary_language(code: &str) -> &str {
    code.split('-').next().unwrap_or(code)
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
    }

    #[test]
    fn language_and_country_codes_are_normalised() {
        assert_eq!(language("lang", "EN").unwrap(), "en");
        assert_eq!(language("lang", "pt-BR").unwrap(), "pt-br");
        assert!(language("lang", "english!").is_err());
        assert_eq!(country("be").unwrap(), "BE");
        assert!(country("BEL").is_err());
        assert_eq!(languages(&["en".into(), "EN".into(), "fr".into()]).unwrap(), vec!["en", "fr"]);
        assert_eq!(primary_language("pt-br"), "pt");
    }
}
