//! Operators: who they are (profile) and whether they can take chats (presence).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{ExpertiseId, OperatorId};

/// What an operator may do: `admin` is Odoo's Live Chat Administrator, `user` a Live Chat User.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    User,
}

/// Whether an operator can be routed new visitors.
///
/// Only `Online` operators are routing candidates; `Away` keeps the console
/// open (events still arrive) without receiving new chats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Away,
    #[default]
    Offline,
}

/// An operator's profile as the directory stores it.
///
/// `expertise_ids` is the only place the operator ↔ expertise relation is
/// stored, so the expertise's `operator_ids` is always derived from it and the
/// two views can never disagree.
#[derive(Clone, Debug)]
pub struct Operator {
    pub id: OperatorId,
    pub login: String,
    pub name: String,
    pub role: Role,
    /// An argon2 PHC string; the plain password is never kept.
    pub password_hash: String,
    /// Normalised language codes, in the operator's order of preference.
    pub languages: Vec<String>,
    /// ISO 3166 alpha-2, upper case.
    pub country: Option<String>,
    pub expertise_ids: BTreeSet<ExpertiseId>,
    /// `false` once an admin deactivated them: no login, no routing; kept so
    /// history still shows their name.
    pub active: bool,
}

/// The presences an operator may choose; `offline` only follows from disconnecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettablePresence {
    Online,
    Away,
}

impl From<SettablePresence> for Presence {
    fn from(p: SettablePresence) -> Presence {
        match p {
            SettablePresence::Online => Presence::Online,
            SettablePresence::Away => Presence::Away,
        }
    }
}
