//! Credentials: argon2 password hashes, random bearer tokens, and the login throttle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use dashmap::DashMap;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use crate::config::AuthConfig;
use crate::domain::text::InvalidField;
use crate::domain::{ConversationId, OperatorId};

/// Whom a bearer token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    Operator(OperatorId),
    /// A visitor reaches exactly one conversation, nothing else.
    Visitor(ConversationId),
}

/// Longest password accepted: argon2 cost grows with input, so cap it.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Hashes `password` with argon2id and a random salt.
///
/// # Errors
/// `InvalidField` for an empty or oversized password.
pub fn hash_password(password: &str) -> Result<String, InvalidField> {
    if password.is_empty() || password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(InvalidField::new("password", format!("must be 1..={MAX_PASSWORD_CHARS} characters")));
    }
    let salt = SaltString::generate(&mut OsRng);
    // unwrap: hashing only fails on invalid parameters, and the defaults are valid.
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt).unwrap().to_string())
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// 256 random bits from the OS CSPRNG, hex-encoded: unguessable and opaque.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Events of one key (a login, an IP) in its current window.
struct Window {
    count: u32,
    start: Instant,
}

/// Counts events per key within a fixed window: the one rate-limit mechanism,
/// behind both the login throttle and the visitor session limit.
struct WindowCounts {
    window: Duration,
    counts: Mutex<HashMap<String, Window>>,
}

impl WindowCounts {
    fn new(window: Duration) -> WindowCounts {
        WindowCounts { window, counts: Mutex::new(HashMap::new()) }
    }

    fn locked(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Window>> {
        let mut counts = self.counts.lock();
        counts.retain(|_, w| w.start.elapsed() < self.window);
        counts
    }

    fn wait(&self, window: &Window) -> u64 {
        self.window.saturating_sub(window.start.elapsed()).as_secs().max(1)
    }

    /// `Err(seconds to wait)` when `key` has reached `limit` in its window.
    fn check(&self, key: &str, limit: u32) -> Result<(), u64> {
        match self.locked().get(key) {
            Some(w) if w.count >= limit => Err(self.wait(w)),
            _ => Ok(()),
        }
    }

    fn add(&self, key: &str) {
        self.locked().entry(key.to_owned()).or_insert(Window { count: 0, start: Instant::now() }).count += 1;
    }

    /// Checks and counts in one step.
    fn take(&self, key: &str, limit: u32) -> Result<(), u64> {
        let mut counts = self.locked();
        let w = counts.entry(key.to_owned()).or_insert(Window { count: 0, start: Instant::now() });
        if w.count >= limit {
            return Err(self.wait(w));
        }
        w.count += 1;
        Ok(())
    }

    fn forget(&self, key: &str) {
        self.counts.lock().remove(key);
    }
}

/// How many leading characters of a token are its lookup key.
///
/// The map is searched by this key (64 bits: guessing one is as hopeless as
/// guessing a token), and the whole token is then compared in constant time.
/// Keying the map by the full token would let a hash-map string comparison,
/// which stops at the first differing byte, time how much of a guess is right.
const TOKEN_KEY_CHARS: usize = 16;

fn key_of(token: &str) -> Option<&str> {
    token.get(..TOKEN_KEY_CHARS)
}

/// A token in force: whom it stands for and when it was last used.
struct Session {
    token: String,
    principal: Principal,
    last_used: Mutex<Instant>,
}

impl Session {
    fn new(token: String, principal: Principal) -> Session {
        Session { token, principal, last_used: Mutex::new(Instant::now()) }
    }
}

/// Tokens in force and the login throttle.
pub struct Auth {
    /// By `key_of(token)`.
    tokens: DashMap<String, Session>,
    /// Verified against when a login is unknown, so the answer takes as long
    /// as for a known login and timing does not reveal which logins exist.
    dummy_hash: String,
    failures: WindowCounts,
    /// Visitor sessions opened per IP in the current minute.
    sessions: WindowCounts,
    config: AuthConfig,
}

/// Keys under which login failures are counted.
pub struct LoginAttempt {
    login_key: String,
    ip_key: String,
}

impl LoginAttempt {
    pub fn new(login: &str, ip: Option<&str>) -> LoginAttempt {
        LoginAttempt { login_key: format!("login:{login}"), ip_key: format!("ip:{}", ip.unwrap_or("unknown")) }
    }
}

impl Auth {
    pub fn new(config: AuthConfig) -> Auth {
        // unwrap: a fixed, valid password.
        let dummy_hash = hash_password("no such user").unwrap();
        Auth {
            tokens: DashMap::new(),
            dummy_hash,
            failures: WindowCounts::new(config.login_window),
            sessions: WindowCounts::new(Duration::from_secs(60)),
            config,
        }
    }

    pub fn dummy_hash(&self) -> &str {
        &self.dummy_hash
    }

    pub fn issue(&self, principal: Principal) -> String {
        loop {
            let token = new_token();
            if let dashmap::Entry::Vacant(slot) = self.tokens.entry(token[..TOKEN_KEY_CHARS].to_owned()) {
                slot.insert(Session::new(token.clone(), principal));
                return token;
            }
        }
    }

    /// The session `token` opens, compared in constant time.
    fn find(&self, token: &str) -> Option<dashmap::mapref::one::Ref<'_, String, Session>> {
        let session = self.tokens.get(key_of(token)?)?;
        bool::from(session.token.as_bytes().ct_eq(token.as_bytes())).then_some(session)
    }

    /// Whom `token` stands for; a token unused for longer than the idle
    /// timeout is gone. Using a token keeps it alive.
    pub fn resolve(&self, token: &str) -> Option<Principal> {
        let session = self.find(token)?;
        let mut last_used = session.last_used.lock();
        if last_used.elapsed() > self.config.token_idle_timeout {
            drop(last_used);
            drop(session);
            self.revoke(token);
            return None;
        }
        *last_used = Instant::now();
        Some(session.principal)
    }

    pub fn revoke(&self, token: &str) {
        if let Some(key) = key_of(token) {
            self.tokens.remove_if(key, |_, session| bool::from(session.token.as_bytes().ct_eq(token.as_bytes())));
        }
    }

    /// Revokes every token of `operator` (their password changed); returns them.
    pub fn revoke_operator(&self, operator: OperatorId) -> Vec<String> {
        let theirs: Vec<String> =
            self.tokens.iter().filter(|e| e.principal == Principal::Operator(operator)).map(|e| e.token.clone()).collect();
        for token in &theirs {
            self.revoke(token);
        }
        theirs
    }

    /// Puts back a token recovered from disk; its idle time starts now.
    pub fn restore(&self, token: String, principal: Principal) {
        if let Some(key) = key_of(&token) {
            self.tokens.insert(key.to_owned(), Session::new(token, principal));
        }
    }

    /// Operator tokens in force, for a snapshot (visitor tokens are stored with their conversation).
    pub fn operator_tokens(&self) -> Vec<(String, u64)> {
        self.tokens
            .iter()
            .filter_map(|entry| match entry.principal {
                Principal::Operator(id) => Some((entry.token.clone(), id.0)),
                Principal::Visitor(_) => None,
            })
            .collect()
    }

    /// One IP may fail far more often than one login: a whole team may share an office NAT.
    fn limit(&self, key: &str) -> u32 {
        if key.starts_with("ip:") {
            self.config.max_login_failures * 20
        } else {
            self.config.max_login_failures
        }
    }

    /// `Err(seconds to wait)` when either key has used up its failures in the current window.
    pub fn check_throttle(&self, attempt: &LoginAttempt) -> Result<(), u64> {
        for key in [&attempt.login_key, &attempt.ip_key] {
            self.failures.check(key, self.limit(key))?;
        }
        Ok(())
    }

    pub fn record_failure(&self, attempt: &LoginAttempt) {
        for key in [&attempt.login_key, &attempt.ip_key] {
            self.failures.add(key);
        }
    }

    /// Counts a visitor session opened from `ip`, so one client cannot fill the
    /// server's memory with conversations. `Err(seconds to wait)` past the limit.
    pub fn count_session(&self, ip: &str) -> Result<(), u64> {
        match self.config.visitor_sessions_per_minute {
            0 => Ok(()),
            limit => self.sessions.take(ip, limit),
        }
    }

    /// A success forgives the login's failures (not the IP's).
    pub fn record_success(&self, attempt: &LoginAttempt) {
        self.failures.forget(&attempt.login_key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("s3cret").unwrap();
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "s3cret!"));
        assert!(!verify_password("not a hash", "s3cret"));
        assert!(hash_password("").is_err());
    }

    #[test]
    fn a_token_is_checked_whole_not_by_its_lookup_key() {
        let config = AuthConfig {
            max_login_failures: 2,
            login_window: Duration::from_secs(60),
            token_idle_timeout: Duration::from_secs(3600),
            visitor_sessions_per_minute: 0,
        };
        let auth = Auth::new(config);
        let token = auth.issue(Principal::Operator(OperatorId(1)));
        let forged = format!("{}{}", &token[..TOKEN_KEY_CHARS], "0".repeat(token.len() - TOKEN_KEY_CHARS));
        assert_eq!(auth.resolve(&forged), None);
        auth.revoke(&forged);
        assert_eq!(auth.resolve(&token), Some(Principal::Operator(OperatorId(1))), "a forged token revokes nothing");
        assert_eq!(auth.resolve(&token[..10]), None);
    }

    #[test]
    fn tokens_are_random_and_revocable() {
        let auth = Auth::new(AuthConfig {
            max_login_failures: 2,
            login_window: Duration::from_secs(60),
            token_idle_timeout: Duration::from_secs(3600),
            visitor_sessions_per_minute: 0,
        });
        let a = auth.issue(Principal::Operator(OperatorId(1)));
        let b = auth.issue(Principal::Operator(OperatorId(1)));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        auth.revoke(&a);
        assert_eq!(auth.resolve(&a), None);
        assert_eq!(auth.resolve(&b), Some(Principal::Operator(OperatorId(1))));
    }

    #[test]
    fn throttle_blocks_after_the_allowed_failures() {
        let auth = Auth::new(AuthConfig {
            max_login_failures: 2,
            login_window: Duration::from_secs(60),
            token_idle_timeout: Duration::from_secs(3600),
            visitor_sessions_per_minute: 0,
        });
        let attempt = LoginAttempt::new("ann", Some("1.2.3.4"));
        assert!(auth.check_throttle(&attempt).is_ok());
        auth.record_failure(&attempt);
        auth.record_failure(&attempt);
        assert!(auth.check_throttle(&attempt).is_err());
        assert!(auth.check_throttle(&LoginAttempt::new("bob", Some("1.2.3.4"))).is_ok());
        for _ in 0..40 {
            auth.record_failure(&LoginAttempt::new("carl", Some("5.6.7.8")));
        }
        assert!(auth.check_throttle(&LoginAttempt::new("dora", Some("5.6.7.8"))).is_err(), "the IP is throttled too");
    }
}
