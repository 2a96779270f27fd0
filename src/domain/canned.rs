//! Canned responses: saved replies an operator inserts with `/shortcut`.
//!
//! Shared ones (made by admins) belong to nobody and everyone sees them; an
//! operator's own ones are theirs alone. Shortcuts are unique within each of
//! those sets, and an operator's own one shadows a shared one of the same name
//! (the console expands the own one), so both may exist.

use super::text::InvalidField;
use super::{CannedId, OperatorId};

/// Longest shortcut: short enough to type after `/`.
pub const MAX_SHORTCUT_CHARS: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedResponse {
    pub id: CannedId,
    pub shortcut: String,
    /// May hold `{visitor_name}` and `{operator_name}`, which the console fills in.
    pub body: String,
    /// `None` for a shared response.
    pub owner: Option<OperatorId>,
}

/// Who asks to read or change canned responses.
#[derive(Clone, Copy, Debug)]
pub struct Editor {
    pub id: OperatorId,
    pub is_admin: bool,
}

impl CannedResponse {
    /// Shared ones and the editor's own.
    pub fn visible_to(&self, editor: Editor) -> bool {
        self.owner.is_none_or(|owner| owner == editor.id)
    }

    /// The owner, or an admin.
    pub fn editable_by(&self, editor: Editor) -> bool {
        editor.is_admin || self.owner == Some(editor.id)
    }
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct CannedPatch {
    pub shortcut: Option<String>,
    pub body: Option<String>,
    pub shared: Option<bool>,
}

/// `shortcut` as stored: 1..=32 of `a-z 0-9 _ -`, taken as given (no case folding,
/// so what the operator types after `/` is exactly what matches).
///
/// # Errors
/// `Invalid` naming the field.
pub fn shortcut(value: &str) -> Result<String, InvalidField> {
    let valid = (1..=MAX_SHORTCUT_CHARS).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(InvalidField::new("shortcut", format!("must be 1 to {MAX_SHORTCUT_CHARS} of a-z, 0-9, _ and -")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_short_lowercase_words() {
        for good in ["a", "refund", "opening_hours", "faq-2", &"x".repeat(32)] {
            assert_eq!(shortcut(good).unwrap(), good);
        }
        for bad in ["", "Refund", "two words", "é", "/refund", &"x".repeat(33)] {
            assert!(shortcut(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shared_ones_are_seen_by_all_and_changed_by_admins() {
        let ann = Editor { id: OperatorId(1), is_admin: false };
        let bob = Editor { id: OperatorId(2), is_admin: false };
        let admin = Editor { id: OperatorId(3), is_admin: true };
        let shared = CannedResponse { id: CannedId(1), shortcut: "hi".into(), body: "Hello".into(), owner: None };
        let anns = CannedResponse { owner: Some(ann.id), ..shared.clone() };
        assert!(shared.visible_to(ann) && shared.visible_to(bob) && !shared.editable_by(ann) && shared.editable_by(admin));
        assert!(anns.visible_to(ann) && !anns.visible_to(bob) && !anns.visible_to(admin));
        assert!(anns.editable_by(ann) && !anns.editable_by(bob) && anns.editable_by(admin));
    }
}
