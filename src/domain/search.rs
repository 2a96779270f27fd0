//! What a history search `q` means: words, matched case- and
//! accent-insensitively, a trailing `*` for a prefix, all of them required.
//!
//! One reading serves both stores: [`Terms::fts_query`] for the archive's
//! SQLite FTS5 index (tokenizer `unicode61 remove_diacritics 2`) and
//! [`Terms::matches`] for live conversations in memory, so a conversation is
//! found the same way before and after it is archived. Anything that is not a
//! letter or digit separates words, so quotes, parentheses, `-`, `:` or `NEAR`
//! can never reach SQLite as query syntax.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Longest `q` accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Words beyond this many are ignored: each one is another index lookup.
const MAX_TERMS: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Term {
    /// Lower case, accents removed.
    word: String,
    /// Written with a trailing `*`: matches any word starting with `word`.
    prefix: bool,
}

/// The words of a query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Terms(Vec<Term>);

/// Lower case without accents: `Crème` → `creme`.
pub fn fold(word: &str) -> String {
    word.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// The folded words of `text`, as the FTS5 tokenizer splits them.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(fold).filter(|w| !w.is_empty())
}

impl Terms {
    pub fn parse(q: &str) -> Terms {
        let mut terms = Vec::new();
        let mut rest = q;
        while terms.len() < MAX_TERMS {
            let Some(start) = rest.find(char::is_alphanumeric) else { break };
            rest = &rest[start..];
            let end = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
            let word = fold(&rest[..end]);
            rest = &rest[end..];
            let prefix = rest.starts_with('*');
            if !word.is_empty() {
                terms.push(Term { word, prefix });
            }
        }
        Terms(terms)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The FTS5 query: every word quoted (a quoted string is always a plain
    /// phrase), `*` after the quote for a prefix, juxtaposed for AND.
    pub fn fts_query(&self) -> String {
        let quoted: Vec<String> = self.0.iter().map(|t| format!("\"{}\"{}", t.word, if t.prefix { "*" } else { "" })).collect();
        quoted.join(" ")
    }

    /// Whether one document (a message body; a visitor's name and e-mail) holds every word.
    pub fn matches(&self, text: &str) -> bool {
        let have: Vec<String> = words(text).collect();
        self.0.iter().all(|t| have.iter().any(|w| if t.prefix { w.starts_with(&t.word) } else { *w == t.word }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_and_separated_by_anything_else() {
        let terms = Terms::parse("Crème-brûlée  \"NEAR\"(x) refund*: -y");
        assert_eq!(terms.fts_query(), r#""creme" "brulee" "near" "x" "refund"* "y""#);
        assert!(Terms::parse("  ()\"*-: ").is_empty());
    }

    #[test]
    fn matching_is_case_accent_insensitive_with_prefixes_and_all_words() {
        assert!(Terms::parse("creme REFUND").matches("Refund for the Crème brûlée"));
        assert!(Terms::parse("refun*").matches("refunded yesterday"));
        assert!(!Terms::parse("refun").matches("refunded yesterday"));
        assert!(!Terms::parse("refund invoice").matches("refund only"));
    }
}
