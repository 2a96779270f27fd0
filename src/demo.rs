//! `--demo`: a sample team so a newcomer can try routing at once.
//! The logins are documented in README.md; every demo password is `demo`.

use anyhow::Context as _;

use crate::auth::hash_password;
use crate::domain::directory::{Directory, NewOperator, OperatorPatch};
use crate::domain::operator::Role;

/// Adds expertise, four operators and a "Website" channel to `directory`.
///
/// # Errors
/// When a demo record clashes with an existing one.
pub fn seed(directory: &mut Directory) -> anyhow::Result<()> {
    let empty = Default::default();
    let billing = directory.create_expertise("Billing", &empty)?;
    let technical = directory.create_expertise("Technical", &empty)?;
    let sales = directory.create_expertise("Sales", &empty)?;
    // unwrap: a fixed, valid password.
    let password_hash = hash_password("demo").unwrap();
    let team = [
        ("alice", "Alice Martin", vec!["en", "fr"], Some("BE"), vec![billing]),
        ("bob", "Bob Dupont", vec!["fr"], Some("FR"), vec![technical]),
        ("carol", "Carol Smith", vec!["en"], Some("US"), vec![sales, billing]),
        ("dave", "Dave Jones", vec!["en"], Some("GB"), vec![]),
    ];
    let mut operator_ids = std::collections::BTreeSet::new();
    for (login, name, languages, country, expertise) in team {
        let new = NewOperator {
            login: login.into(),
            name: name.into(),
            password_hash: password_hash.clone(),
            role: Role::User,
            languages: languages.into_iter().map(String::from).collect(),
            country: country.map(String::from),
        };
        let id = directory.create_operator(new).with_context(|| format!("demo user {login}"))?.id;
        directory.update_operator(id, OperatorPatch { expertise_ids: Some(expertise.into_iter().collect()), ..Default::default() })?;
        operator_ids.insert(id);
    }
    directory.create_channel("Website", operator_ids, Some(5))?;
    tracing::info!("demo team seeded: alice, bob, carol, dave (password `demo`), channel \"Website\"");
    Ok(())
}
