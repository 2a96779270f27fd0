//! JSON Schemas of the text rules in `domain::text`, for request fields in the
//! OpenAPI document (`#[schema(schema_with = …)]`).
//!
//! They state the rules exactly — a value the schema allows is accepted, one it
//! forbids is refused — so a client generated from the document, or a fuzzer
//! such as schemathesis, meets no surprise 400.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

use crate::auth::MAX_PASSWORD_CHARS;
use crate::domain::canned::MAX_SHORTCUT_CHARS;
use crate::domain::text::{MAX_LOGIN_CHARS, MAX_NAME_CHARS, WHITESPACE};
use crate::domain::{visitor, webhook};
use crate::hub::MAX_VISITOR_KEY_CHARS;

const LANGUAGE_PATTERN: &str = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$";
const COUNTRY_PATTERN: &str = "^[A-Za-z]{2}$";

fn text(max_chars: usize, pattern: Option<String>, nullable: bool) -> RefOr<Schema> {
    let kind: SchemaType = if nullable { [Type::String, Type::Null].into_iter().collect() } else { Type::String.into() };
    ObjectBuilder::new().schema_type(kind).min_length(Some(1)).max_length(Some(max_chars)).pattern(pattern).into()
}

/// At least one character that is not whitespace (names are trimmed).
fn not_blank() -> Option<String> {
    Some(format!("[^{WHITESPACE}]"))
}

fn languages(nullable: bool) -> RefOr<Schema> {
    let kind: SchemaType = if nullable { [Type::Array, Type::Null].into_iter().collect() } else { Type::Array.into() };
    ArrayBuilder::new().schema_type(kind).items(language()).into()
}

/// A chat message: not blank; its longest is the server's `--max-message-chars`.
pub fn message_body() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(not_blank()).into()
}

/// As `message_body`, or null (a partial update leaving it alone).
pub fn message_body_or_null() -> RefOr<Schema> {
    let kind: SchemaType = [Type::String, Type::Null].into_iter().collect();
    ObjectBuilder::new().schema_type(kind).min_length(Some(1)).pattern(not_blank()).into()
}

fn shortcut_text(nullable: bool) -> RefOr<Schema> {
    text(MAX_SHORTCUT_CHARS, Some("^[a-z0-9_-]+$".to_owned()), nullable)
}

fn nullable_text(max_chars: Option<usize>, pattern: Option<String>) -> RefOr<Schema> {
    let kind: SchemaType = [Type::String, Type::Null].into_iter().collect();
    ObjectBuilder::new().schema_type(kind).max_length(max_chars).pattern(pattern).into()
}

/// `domain::visitor::url`.
pub fn url_or_null() -> RefOr<Schema> {
    nullable_text(Some(visitor::MAX_URL_CHARS), Some(visitor::url_pattern()))
}

/// `domain::visitor::title`.
pub fn title_or_null() -> RefOr<Schema> {
    nullable_text(Some(visitor::MAX_TITLE_CHARS), None)
}

/// `domain::visitor::timezone`.
pub fn timezone_or_null() -> RefOr<Schema> {
    nullable_text(Some(visitor::MAX_TIMEZONE_CHARS), Some(visitor::TIMEZONE_PATTERN.to_owned()))
}

/// `domain::webhook::check_url`'s shape (the host and address rules come after).
pub fn webhook_url() -> RefOr<Schema> {
    let pattern = format!("^https?://[^/?#{ws}]+([/?#][^{ws}]*)?$", ws = WHITESPACE);
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(webhook::MAX_URL_CHARS)).pattern(Some(pattern)).into()
}

/// `domain::visitor::email`, required.
pub fn email() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(254)).pattern(Some(visitor::email_pattern())).into()
}

/// `domain::visitor::email`.
pub fn email_or_null() -> RefOr<Schema> {
    nullable_text(Some(254), Some(visitor::email_pattern()))
}

/// `domain::visitor::url`, required.
pub fn url() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(visitor::MAX_URL_CHARS)).pattern(Some(visitor::url_pattern())).into()
}

/// A satisfaction score: 1, 3 or 5 (`domain::conversation::Rating::new`).
pub fn score() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([1, 3, 5])).into()
}

/// A canned response's shortcut (`domain::canned::shortcut`).
pub fn shortcut() -> RefOr<Schema> {
    shortcut_text(false)
}

pub fn shortcut_or_null() -> RefOr<Schema> {
    shortcut_text(true)
}

pub fn name() -> RefOr<Schema> {
    text(MAX_NAME_CHARS, not_blank(), false)
}

pub fn name_or_null() -> RefOr<Schema> {
    text(MAX_NAME_CHARS, not_blank(), true)
}

pub fn login() -> RefOr<Schema> {
    text(MAX_LOGIN_CHARS, Some(format!("^[^{WHITESPACE}]*$")), false)
}

pub fn password() -> RefOr<Schema> {
    text(MAX_PASSWORD_CHARS, None, false)
}

pub fn password_or_null() -> RefOr<Schema> {
    text(MAX_PASSWORD_CHARS, None, true)
}

pub fn visitor_key_or_null() -> RefOr<Schema> {
    text(MAX_VISITOR_KEY_CHARS, not_blank(), true)
}

pub fn language() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(LANGUAGE_PATTERN)).into()
}

pub fn language_or_null() -> RefOr<Schema> {
    let kind: SchemaType = [Type::String, Type::Null].into_iter().collect();
    ObjectBuilder::new().schema_type(kind).pattern(Some(LANGUAGE_PATTERN)).into()
}

pub fn language_list() -> RefOr<Schema> {
    languages(false)
}

pub fn language_list_or_null() -> RefOr<Schema> {
    languages(true)
}

pub fn country_or_null() -> RefOr<Schema> {
    let kind: SchemaType = [Type::String, Type::Null].into_iter().collect();
    ObjectBuilder::new().schema_type(kind).pattern(Some(COUNTRY_PATTERN)).into()
}
