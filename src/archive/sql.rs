//! Every SQL statement of the archive, over a plain `rusqlite::Connection`:
//! the schema and its migrations, storing, reading, searching, erasing.
//!
//! Layout: `conversations` holds one row per closed conversation (the columns
//! searches filter on, plus the stored record without its transcript);
//! `messages` one row per message, keyed `conversation_id << 24 | message_id`
//! so a conversation's messages are one key range and a full-text hit names
//! its conversation without a join; row `… | 0` holds the visitor's name, so
//! one FTS5 index (`messages_fts`, external content) answers both "message
//! bodies" and "visitor name". Ids follow creation order, so "newest first"
//! is "highest key first", which FTS5 can walk in order and stop early.

use std::collections::BTreeSet;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use crate::domain::conversation::{Conversation, Kind, Rating};
use crate::domain::history::{snippet, HistoryFilter, Viewer};
use crate::domain::lead::{Lead, LeadReason, LeadRefused, LeadStatus};
use crate::domain::report::{Facts, Scope};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{Webhook, WebhookEvent};
use crate::domain::{ChannelId, ConversationId, ExpertiseId, OperatorId};
use crate::persist::records::{ConversationV1, ConversationV2, MessageV1};
use crate::persist::{decode, encode};
use crate::views::HistoryItem;

/// Message ids of one conversation live below this (16 million messages).
const KEY_BITS: u32 = 24;

fn key(conversation: u64, message: u64) -> i64 {
    ((conversation << KEY_BITS) | message) as i64
}

fn conversation_of(key: i64) -> u64 {
    (key as u64) >> KEY_BITS
}

/// Schema versions in order; `PRAGMA user_version` says how many are applied.
const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE conversations (
        id            INTEGER PRIMARY KEY,
        kind          INTEGER NOT NULL,   -- 0 livechat, 1 direct
        channel_id    INTEGER,
        visitor_name  TEXT,
        visitor_key   TEXT,
        visitor_token TEXT,
        created_at    INTEGER NOT NULL,   -- ms since the epoch
        closed_at     INTEGER NOT NULL,
        message_count INTEGER NOT NULL,
        rating        INTEGER,
        first_reply   INTEGER,
        record        BLOB NOT NULL       -- bincode ConversationV1 without its messages
    );
    CREATE INDEX conversations_channel ON conversations (channel_id, id);
    CREATE INDEX conversations_visitor_key ON conversations (visitor_key);
    CREATE INDEX conversations_visitor_token ON conversations (visitor_token);
    CREATE INDEX conversations_created ON conversations (created_at);
    CREATE INDEX conversations_closed ON conversations (closed_at);
    CREATE TABLE conversation_operators (
        operator_id     INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL,
        PRIMARY KEY (operator_id, conversation_id)
    ) WITHOUT ROWID;
    CREATE INDEX conversation_operators_by_conversation ON conversation_operators (conversation_id);
    CREATE TABLE conversation_expertise (
        expertise_id    INTEGER NOT NULL,
        conversation_id INTEGER NOT NULL,
        PRIMARY KEY (expertise_id, conversation_id)
    ) WITHOUT ROWID;
    CREATE INDEX conversation_expertise_by_conversation ON conversation_expertise (conversation_id);
    CREATE TABLE messages (
        key    INTEGER PRIMARY KEY,       -- conversation_id << 24 | message id (0: the visitor's name)
        body   TEXT NOT NULL,
        record BLOB                       -- bincode MessageV1 without body and ref
    );
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        body, content = 'messages', content_rowid = 'key', tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_indexed AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, body) VALUES (new.key, new.body);
    END;
    CREATE TRIGGER messages_unindexed AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.key, old.body);
    END;
",
    r"
    -- 2: the record is a ConversationV2 (calls for help with requester and note,
    -- the visitor's context) when `format` is 2; rows written before stay version 1.
    ALTER TABLE conversations ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE conversations ADD COLUMN visitor_email TEXT;
",
    r"
    -- 3: the visitor's satisfaction rating (the score is `rating`, there since 1).
    ALTER TABLE conversations ADD COLUMN rating_comment TEXT;
    ALTER TABLE conversations ADD COLUMN rating_at INTEGER;
",
    r"
    -- 4: missed chats to follow up, one per conversation that never had an operator.
    -- Written with the conversation; a re-archive leaves it (and its claim) as it is.
    CREATE TABLE leads (
        conversation_id INTEGER PRIMARY KEY,
        channel_id      INTEGER NOT NULL,
        visitor_name    TEXT NOT NULL,
        visitor_key     TEXT,
        email           TEXT,
        phone           TEXT,
        reason          INTEGER NOT NULL,   -- 0 no_operator, 1 abandoned
        created_at      INTEGER NOT NULL,
        status          INTEGER NOT NULL,   -- 0 open, 1 done
        claimed_by      INTEGER
    );
    CREATE INDEX leads_by_status ON leads (status, created_at);
",
    r"
    -- 5: the mail outbox: a row until the SMTP server accepted it (see mail.rs).
    CREATE TABLE outbox (
        id           INTEGER PRIMARY KEY,
        to_addr      TEXT NOT NULL,
        subject      TEXT NOT NULL,
        body         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt INTEGER NOT NULL,
        last_error   TEXT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt);
",
    r"
    -- 6: webhooks, their pending deliveries (a row until a 2xx or 24 h of retries)
    -- and the log of attempts (the last 100 per webhook are kept).
    CREATE TABLE webhooks (
        id     INTEGER PRIMARY KEY,
        url    TEXT NOT NULL,
        events TEXT NOT NULL,             -- event names, comma-separated
        secret TEXT NOT NULL
    );
    CREATE TABLE webhook_outbox (
        id              INTEGER PRIMARY KEY,
        webhook_id      INTEGER NOT NULL,
        event_id        TEXT NOT NULL,
        event           TEXT NOT NULL,
        conversation_id INTEGER,          -- deliveries of one conversation go in id order
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt    INTEGER NOT NULL
    );
    CREATE INDEX webhook_outbox_due ON webhook_outbox (webhook_id, next_attempt);
    CREATE TABLE webhook_attempts (
        id          INTEGER PRIMARY KEY,
        webhook_id  INTEGER NOT NULL,
        event_id    TEXT NOT NULL,
        event       TEXT NOT NULL,
        at          INTEGER NOT NULL,
        status_code INTEGER,
        error       TEXT,
        attempt     INTEGER NOT NULL
    );
    CREATE INDEX webhook_attempts_by_hook ON webhook_attempts (webhook_id, id);
",
    r"
    -- 7: a webhook's due deliveries are walked in id order (webhook_outbox_by_hook)
    -- and 'is this its conversation's oldest pending one' is an index probe, not a
    -- scan of the outbox (the scan made a backlog drain quadratically: 5.8 s per
    -- batch query at 8.5k queued events, 124 s at 30.8k).
    CREATE INDEX webhook_outbox_by_hook ON webhook_outbox (webhook_id, id);
    CREATE INDEX webhook_outbox_by_conversation ON webhook_outbox (webhook_id, conversation_id, id);
",
];

/// Applies the migrations this file does not have yet.
///
/// # Errors
/// When the file is not a database, is damaged, or was written by a newer version.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if applied > MIGRATIONS.len() {
        let newer = format!("schema version {applied} is newer than this server's {}; run the newer version", MIGRATIONS.len());
        return Err(rusqlite::Error::ToSqlConversionFailure(newer.into()));
    }
    // Reading the schema fails on a damaged file, before anything is served from it.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// One closed conversation, ready to store.
pub struct Entry {
    pub record: ConversationV2,
    pub participants: BTreeSet<OperatorId>,
    pub closed_at: Timestamp,
    pub first_reply: Option<Timestamp>,
    /// The missed chat it leaves, if nobody took it.
    pub lead: Option<Lead>,
    /// The mail telling the channel about that lead; queued with it, once.
    pub lead_mail: Option<Mail>,
}

/// A mail to send (see `mail.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// A mail in the outbox.
#[derive(Clone, Debug)]
pub struct QueuedMail {
    pub id: i64,
    pub mail: Mail,
    /// Failed tries so far.
    pub attempts: u32,
}

impl Entry {
    pub fn new(c: &Conversation, visitor_token: Option<&str>) -> Entry {
        Entry {
            record: ConversationV2::new(c, visitor_token),
            participants: c.participants().clone(),
            closed_at: c.closed_at.unwrap_or_else(Timestamp::now),
            first_reply: Facts::of(c).and_then(|f| f.first_reply),
            lead: Lead::of(c),
            lead_mail: None,
        }
    }
}

/// Stores `entry`, replacing an earlier copy (a replay after a crash
/// archives again) but keeping its `closed_at`, the time it really closed.
pub fn insert(tx: &Transaction<'_>, entry: &Entry) -> rusqlite::Result<()> {
    let r = &entry.record.base;
    let earlier = tx
        .query_row("SELECT closed_at, rating, rating_comment, rating_at FROM conversations WHERE id = ?1", [r.id as i64], |row| {
            Ok((row.get::<_, i64>(0)?, rating(row, 1)?))
        })
        .optional()?;
    if earlier.is_some() {
        delete(tx, &[r.id as i64])?;
    }
    let (closed_at, rated) = earlier.unwrap_or_else(|| (entry.closed_at.as_millis(), None));
    let mut header = entry.record.clone();
    let messages = std::mem::take(&mut header.base.messages);
    let visitor = r.visitor.as_ref();
    let email = entry.record.visitor_context.as_ref().and_then(|c| c.email.as_deref());
    let kind = match Kind::from(r.kind) {
        Kind::Livechat => 0,
        Kind::Direct => 1,
    };
    tx.execute(
        "INSERT INTO conversations (id, kind, channel_id, visitor_name, visitor_key, visitor_token, created_at, closed_at,
                                    message_count, first_reply, record, format, visitor_email, rating, rating_comment, rating_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 2, ?12, ?13, ?14, ?15)",
        params![
            r.id as i64,
            kind,
            r.channel_id.map(|c| c as i64),
            visitor.map(|v| &v.name),
            visitor.and_then(|v| v.key.as_ref()),
            r.visitor_token,
            r.created_at_ms,
            closed_at,
            messages.len() as i64,
            entry.first_reply.map(Timestamp::as_millis),
            encode(&header),
            email,
            rated.as_ref().map(|r| i64::from(r.score)),
            rated.as_ref().and_then(|r| r.comment.clone()),
            rated.as_ref().map(|r| r.at.as_millis()),
        ],
    )?;
    let mut operator = tx.prepare_cached("INSERT INTO conversation_operators (operator_id, conversation_id) VALUES (?1, ?2)")?;
    for op in &entry.participants {
        operator.execute([op.0 as i64, r.id as i64])?;
    }
    let mut expertise = tx.prepare_cached("INSERT INTO conversation_expertise (expertise_id, conversation_id) VALUES (?1, ?2)")?;
    for e in &r.header.expertise_ids {
        expertise.execute([*e as i64, r.id as i64])?;
    }
    let mut message = tx.prepare_cached("INSERT INTO messages (key, body, record) VALUES (?1, ?2, ?3)")?;
    if let Some(v) = visitor {
        // Row 0 holds what a search finds a visitor by: name and e-mail address.
        let who = email.map_or_else(|| v.name.clone(), |email| format!("{} {email}", v.name));
        message.execute(params![key(r.id, 0), who, Option::<Vec<u8>>::None])?;
    }
    for mut m in messages {
        let body = std::mem::take(&mut m.body);
        m.client_ref = None;
        message.execute(params![key(r.id, m.id), body, encode(&m)])?;
    }
    if let Some(lead) = &entry.lead {
        // A re-archive finds the lead there already: neither it nor its mail is written twice.
        if insert_lead(tx, lead)? {
            if let Some(mail) = &entry.lead_mail {
                enqueue(tx, mail)?;
            }
        }
    }
    Ok(())
}

/// Queues `mail`, due now.
pub fn enqueue(tx: &Transaction<'_>, mail: &Mail) -> rusqlite::Result<usize> {
    let now = Timestamp::now().as_millis();
    tx.execute(
        "INSERT INTO outbox (to_addr, subject, body, created_at, next_attempt) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![mail.to, mail.subject, mail.body, now],
    )
}

// ---- webhooks ----

fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    let events: String = r.get(2)?;
    Ok(Webhook {
        id: r.get::<_, i64>(0)? as u64,
        url: r.get(1)?,
        events: events.split(',').filter_map(WebhookEvent::parse).collect(),
        secret: r.get(3)?,
    })
}

fn event_list(events: &BTreeSet<WebhookEvent>) -> String {
    events.iter().map(|e| e.name()).collect::<Vec<_>>().join(",")
}

pub fn webhooks(conn: &Connection) -> rusqlite::Result<Vec<Webhook>> {
    let mut stmt = conn.prepare_cached("SELECT id, url, events, secret FROM webhooks ORDER BY id")?;
    let rows = stmt.query_map([], webhook_row)?;
    rows.collect()
}

/// Stores `hook` (its id is chosen here when 0); answers it as stored.
pub fn save_webhook(tx: &Transaction<'_>, mut hook: Webhook) -> rusqlite::Result<Webhook> {
    let id = (hook.id != 0).then_some(hook.id as i64);
    tx.execute(
        "INSERT OR REPLACE INTO webhooks (id, url, events, secret) VALUES (?1, ?2, ?3, ?4)",
        params![id, hook.url, event_list(&hook.events), hook.secret],
    )?;
    hook.id = tx.last_insert_rowid() as u64;
    Ok(hook)
}

/// Deletes a webhook with its pending deliveries and log; `false` when there was none.
pub fn delete_webhook(tx: &Transaction<'_>, id: u64) -> rusqlite::Result<bool> {
    tx.execute("DELETE FROM webhook_outbox WHERE webhook_id = ?1", [id as i64])?;
    tx.execute("DELETE FROM webhook_attempts WHERE webhook_id = ?1", [id as i64])?;
    Ok(tx.execute("DELETE FROM webhooks WHERE id = ?1", [id as i64])? == 1)
}

/// A delivery to queue.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub webhook_id: u64,
    pub event_id: String,
    /// The event's name (`message.created`, or `webhook.test`).
    pub name: &'static str,
    pub conversation_id: Option<ConversationId>,
    pub body: String,
}

/// A delivery waiting in the outbox.
#[derive(Clone, Debug)]
pub struct QueuedDelivery {
    pub id: i64,
    pub webhook_id: u64,
    pub event_id: String,
    pub event: String,
    pub body: String,
    pub attempts: u32,
    pub created_at: Timestamp,
}

pub fn enqueue_deliveries(tx: &Transaction<'_>, deliveries: &[NewDelivery]) -> rusqlite::Result<usize> {
    let now = Timestamp::now().as_millis();
    let mut insert = tx.prepare_cached(
        "INSERT INTO webhook_outbox (webhook_id, event_id, event, conversation_id, body, created_at, next_attempt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?;
    for d in deliveries {
        insert.execute(params![d.webhook_id as i64, d.event_id, d.name, d.conversation_id.map(|c| c.0 as i64), d.body, now])?;
    }
    Ok(deliveries.len())
}

/// Up to `limit` deliveries of `webhook` due at `now` that are first in line
/// for their conversation (nothing older of it still pending), oldest first.
///
/// Walked in id order by `webhook_outbox_by_hook`, so the walk stops after
/// `limit` heads, which sit at the front: left to itself the planner picks the
/// due index and sorts every due row at each call (a 100,000-event backlog
/// then drained at 3,900/s instead of 10,000/s at 10,000).
pub fn due_deliveries(conn: &Connection, webhook: u64, now: Timestamp, limit: usize) -> rusqlite::Result<Vec<QueuedDelivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, webhook_id, event_id, event, body, attempts, created_at FROM webhook_outbox o INDEXED BY webhook_outbox_by_hook
         WHERE webhook_id = ?1 AND next_attempt <= ?2
           AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.webhook_id = o.webhook_id
                           AND p.conversation_id IS o.conversation_id AND p.id < o.id)
         ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![webhook as i64, now.as_millis(), limit as i64], |r| {
        Ok(QueuedDelivery {
            id: r.get(0)?,
            webhook_id: r.get::<_, i64>(1)? as u64,
            event_id: r.get(2)?,
            event: r.get(3)?,
            body: r.get(4)?,
            attempts: r.get(5)?,
            created_at: Timestamp::from_millis(r.get(6)?),
        })
    })?;
    rows.collect()
}

/// When the next delivery of `webhook` is due, if any is pending.
pub fn next_delivery_at(conn: &Connection, webhook: u64) -> rusqlite::Result<Option<Timestamp>> {
    conn.query_row("SELECT min(next_attempt) FROM webhook_outbox WHERE webhook_id = ?1", [webhook as i64], |r| r.get::<_, Option<i64>>(0))
        .map(|at| at.map(Timestamp::from_millis))
}

/// One try of a delivery, as the log shows it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub event_id: String,
    pub event: String,
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// 1 for the first try.
    pub attempt: u32,
}

/// Attempts kept per webhook.
const ATTEMPTS_KEPT: i64 = 100;

/// Logs each try of a batch of deliveries (see [`delivery_tried`]) in one transaction.
pub fn deliveries_tried(tx: &Transaction<'_>, tried: &[Tried]) -> rusqlite::Result<usize> {
    for t in tried {
        delivery_tried(tx, &t.delivery, &t.attempt, t.retry_at)?;
    }
    Ok(tried.len())
}

/// One try of a delivery: what the log records, and when to retry (none: done or given up).
pub struct Tried {
    pub delivery: QueuedDelivery,
    pub attempt: Attempt,
    pub retry_at: Option<Timestamp>,
}

/// Logs `attempt` of `delivery`; then it leaves the outbox (`retry_at` none:
/// delivered, or given up) or waits until `retry_at`.
fn delivery_tried(
    tx: &Transaction<'_>,
    delivery: &QueuedDelivery,
    attempt: &Attempt,
    retry_at: Option<Timestamp>,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO webhook_attempts (webhook_id, event_id, event, at, status_code, error, attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            delivery.webhook_id as i64,
            attempt.event_id,
            attempt.event,
            attempt.at.as_millis(),
            attempt.status_code,
            attempt.error,
            attempt.attempt
        ],
    )?;
    tx.execute(
        "DELETE FROM webhook_attempts WHERE webhook_id = ?1 AND id <= (SELECT id FROM webhook_attempts WHERE webhook_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![delivery.webhook_id as i64, ATTEMPTS_KEPT],
    )?;
    match retry_at {
        None => tx.execute("DELETE FROM webhook_outbox WHERE id = ?1", [delivery.id]),
        Some(at) => tx.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt = ?2 WHERE id = ?1",
            params![delivery.id, at.as_millis()],
        ),
    }
}

/// The last attempts of `webhook`, newest first.
pub fn attempts(conn: &Connection, webhook: u64) -> rusqlite::Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT event_id, event, at, status_code, error, attempt FROM webhook_attempts WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![webhook as i64, ATTEMPTS_KEPT], |r| {
        Ok(Attempt {
            event_id: r.get(0)?,
            event: r.get(1)?,
            at: Timestamp::from_millis(r.get(2)?),
            status_code: r.get(3)?,
            error: r.get(4)?,
            attempt: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Up to `limit` mails due at `now`, oldest first.
pub fn due_mail(conn: &Connection, now: Timestamp, limit: usize) -> rusqlite::Result<Vec<QueuedMail>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, to_addr, subject, body, attempts FROM outbox WHERE next_attempt <= ?1 ORDER BY next_attempt, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now.as_millis(), limit as i64], |r| {
        Ok(QueuedMail { id: r.get(0)?, mail: Mail { to: r.get(1)?, subject: r.get(2)?, body: r.get(3)? }, attempts: r.get(4)? })
    })?;
    rows.collect()
}

/// When the next mail is due, if any is queued.
pub fn next_mail_at(conn: &Connection) -> rusqlite::Result<Option<Timestamp>> {
    conn.query_row("SELECT min(next_attempt) FROM outbox", [], |r| r.get::<_, Option<i64>>(0)).map(|at| at.map(Timestamp::from_millis))
}

pub fn mail_sent(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM outbox WHERE id = ?1", [id])
}

pub fn mail_retry(tx: &Transaction<'_>, id: i64, at: Timestamp, error: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3 WHERE id = ?1",
        params![id, at.as_millis(), error],
    )
}

/// `false` when the lead was there already.
fn insert_lead(tx: &Transaction<'_>, l: &Lead) -> rusqlite::Result<bool> {
    let reason = match l.reason {
        LeadReason::NoOperator => 0,
        LeadReason::Abandoned => 1,
    };
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO leads (conversation_id, channel_id, visitor_name, visitor_key, email, phone, reason, created_at, status, claimed_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            l.conversation_id.0 as i64,
            l.channel_id.0 as i64,
            l.visitor_name,
            l.visitor_key,
            l.email,
            l.phone,
            reason,
            l.created_at.as_millis(),
            lead_status(l.status),
            l.claimed_by.map(|o| o.0 as i64)
        ],
    )?;
    Ok(inserted == 1)
}

fn lead_status(status: LeadStatus) -> i64 {
    match status {
        LeadStatus::Open => 0,
        LeadStatus::Done => 1,
    }
}

const LEAD_COLUMNS: &str = "conversation_id, channel_id, visitor_name, visitor_key, email, phone, reason, created_at, status, claimed_by";

fn lead_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Lead> {
    Ok(Lead {
        conversation_id: ConversationId(r.get::<_, i64>(0)? as u64),
        channel_id: ChannelId(r.get::<_, i64>(1)? as u64),
        visitor_name: r.get(2)?,
        visitor_key: r.get(3)?,
        email: r.get(4)?,
        phone: r.get(5)?,
        reason: if r.get::<_, i64>(6)? == 0 { LeadReason::NoOperator } else { LeadReason::Abandoned },
        created_at: Timestamp::from_millis(r.get(7)?),
        status: if r.get::<_, i64>(8)? == 0 { LeadStatus::Open } else { LeadStatus::Done },
        claimed_by: r.get::<_, Option<i64>>(9)?.map(|o| OperatorId(o as u64)),
    })
}

/// Leads of `status` (any when `None`) on `channels` (all when `None`), oldest first.
pub fn leads(conn: &Connection, status: Option<LeadStatus>, channels: Option<&BTreeSet<ChannelId>>) -> rusqlite::Result<Vec<Lead>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE (?1 IS NULL OR status = ?1) ORDER BY created_at, conversation_id"
    ))?;
    let rows = stmt.query_map([status.map(lead_status)], lead_row)?;
    let visible = |l: &rusqlite::Result<Lead>| l.as_ref().map_or(true, |l| channels.is_none_or(|c| c.contains(&l.channel_id)));
    rows.filter(visible).collect()
}

/// Changes the lead of conversation `id` by `change` (which may refuse);
/// answers it as it now is.
pub fn change_lead(
    tx: &Transaction<'_>,
    id: ConversationId,
    change: impl FnOnce(&mut Lead) -> Result<(), LeadRefused>,
) -> rusqlite::Result<Result<Lead, LeadRefused>> {
    let found =
        tx.query_row(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE conversation_id = ?1"), [id.0 as i64], lead_row).optional()?;
    let Some(mut lead) = found else { return Ok(Err(LeadRefused::NotFound)) };
    if let Err(refused) = change(&mut lead) {
        return Ok(Err(refused));
    }
    tx.execute(
        "UPDATE leads SET status = ?1, claimed_by = ?2 WHERE conversation_id = ?3",
        params![lead_status(lead.status), lead.claimed_by.map(|o| o.0 as i64), id.0 as i64],
    )?;
    Ok(Ok(lead))
}

/// Deletes the conversations with these ids; answers how many there were.
fn delete(tx: &Transaction<'_>, ids: &[i64]) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    for &id in ids {
        let id = id as u64;
        tx.execute("DELETE FROM messages WHERE key >= ?1 AND key < ?2", [key(id, 0), key(id + 1, 0)])?;
        tx.execute("DELETE FROM conversation_operators WHERE conversation_id = ?1", [id as i64])?;
        tx.execute("DELETE FROM conversation_expertise WHERE conversation_id = ?1", [id as i64])?;
        deleted += tx.execute("DELETE FROM conversations WHERE id = ?1", [id as i64])?;
    }
    Ok(deleted)
}

fn ids(tx: &Transaction<'_>, sql: &str, param: Value) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map([param], |r| r.get(0))?;
    rows.collect()
}

/// Erases every archived conversation of `visitor_key`, and their leads.
pub fn erase_visitor(tx: &Transaction<'_>, visitor_key: &str) -> rusqlite::Result<usize> {
    let found = ids(tx, "SELECT id FROM conversations WHERE visitor_key = ?1", Value::Text(visitor_key.to_owned()))?;
    forget(tx, &found)
}

/// Deletes conversations closed before `before`, and their leads.
pub fn sweep(tx: &Transaction<'_>, before: Timestamp) -> rusqlite::Result<usize> {
    let found = ids(tx, "SELECT id FROM conversations WHERE closed_at < ?1", Value::Integer(before.as_millis()))?;
    forget(tx, &found)
}

/// Deletes conversations for good: with their leads (which `delete`, also
/// used to replace a conversation stored again, keeps).
fn forget(tx: &Transaction<'_>, ids: &[i64]) -> rusqlite::Result<usize> {
    for &id in ids {
        tx.execute("DELETE FROM leads WHERE conversation_id = ?1", [id])?;
    }
    delete(tx, ids)
}

pub fn max_id(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM conversations", [], |r| r.get::<_, i64>(0)).map(|id| id as u64)
}

pub fn contains(conn: &Connection, id: ConversationId) -> rusqlite::Result<bool> {
    Ok(conn.query_row("SELECT 1 FROM conversations WHERE id = ?1", [id.0 as i64], |_| Ok(())).optional()?.is_some())
}

pub fn by_visitor_token(conn: &Connection, token: &str) -> rusqlite::Result<Option<ConversationId>> {
    conn.query_row("SELECT id FROM conversations WHERE visitor_token = ?1", [token], |r| r.get::<_, i64>(0))
        .optional()
        .map(|id| id.map(|id| ConversationId(id as u64)))
}

fn corrupt(e: bincode::error::DecodeError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
}

/// An archived conversation, whole, as a domain conversation (closed, with `closed_at`).
pub struct Archived {
    pub conversation: Conversation,
    pub participants: BTreeSet<OperatorId>,
}

pub fn conversation(conn: &Connection, id: ConversationId) -> rusqlite::Result<Option<Archived>> {
    let row = conn
        .query_row(
            "SELECT record, format, closed_at, rating, rating_comment, rating_at FROM conversations WHERE id = ?1",
            [id.0 as i64],
            |r| Ok((stored(r, 0, 1)?, r.get::<_, i64>(2)?, rating(r, 3)?)),
        )
        .optional()?;
    let Some((mut record, closed_at, rated)) = row else { return Ok(None) };
    let mut stmt = conn.prepare_cached("SELECT body, record FROM messages WHERE key > ?1 AND key < ?2 ORDER BY key")?;
    let rows = stmt.query_map([key(id.0, 0), key(id.0 + 1, 0)], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    for row in rows {
        let (body, bytes) = row?;
        let mut message: MessageV1 = decode(&bytes).map_err(corrupt)?;
        message.body = body;
        record.base.messages.push(message);
    }
    let mut conversation = record.to_domain();
    conversation.closed_at = Some(Timestamp::from_millis(closed_at));
    conversation.rating = rated;
    let participants = operator_ids(conn, id.0 as i64)?.into_iter().collect();
    Ok(Some(Archived { conversation, participants }))
}

/// The rating in columns `rating`, `rating_comment`, `rating_at` of a row, from `first`.
fn rating(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Rating>> {
    let Some(score) = r.get::<_, Option<i64>>(first)? else { return Ok(None) };
    Ok(Some(Rating {
        score: score as u8,
        comment: r.get(first + 1)?,
        at: Timestamp::from_millis(r.get::<_, Option<i64>>(first + 2)?.unwrap_or_default()),
    }))
}

/// Why a rating was not recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum RateRefused {
    NotFound,
    AlreadyRated,
}

/// Records the visitor's rating of an archived livechat, once; answers the
/// operators who were its members at the end (they are told).
pub fn rate(tx: &Transaction<'_>, id: ConversationId, rating: &Rating) -> rusqlite::Result<Result<Vec<OperatorId>, RateRefused>> {
    let row = tx
        .query_row("SELECT record, format, rating FROM conversations WHERE id = ?1 AND kind = 0", [id.0 as i64], |r| {
            Ok((stored(r, 0, 1)?, r.get::<_, Option<i64>>(2)?))
        })
        .optional()?;
    let Some((record, earlier)) = row else { return Ok(Err(RateRefused::NotFound)) };
    if earlier.is_some() {
        return Ok(Err(RateRefused::AlreadyRated));
    }
    tx.execute(
        "UPDATE conversations SET rating = ?1, rating_comment = ?2, rating_at = ?3 WHERE id = ?4",
        params![i64::from(rating.score), rating.comment, rating.at.as_millis(), id.0 as i64],
    )?;
    Ok(Ok(record.base.header.members.iter().copied().map(OperatorId).collect()))
}

/// The stored conversation in columns `record` and `format` of a row.
fn stored(r: &rusqlite::Row<'_>, record: usize, format: usize) -> rusqlite::Result<ConversationV2> {
    let bytes = r.get::<_, Vec<u8>>(record)?;
    match r.get::<_, i64>(format)? {
        1 => decode::<ConversationV1>(&bytes).map(ConversationV2::from),
        _ => decode::<ConversationV2>(&bytes),
    }
    .map_err(corrupt)
}

fn operator_ids(conn: &Connection, id: i64) -> rusqlite::Result<Vec<OperatorId>> {
    let mut stmt = conn.prepare_cached("SELECT operator_id FROM conversation_operators WHERE conversation_id = ?1 ORDER BY operator_id")?;
    let rows = stmt.query_map([id], |r| r.get::<_, i64>(0).map(|id| OperatorId(id as u64)))?;
    rows.collect()
}

fn expertise_ids(conn: &Connection, id: i64) -> rusqlite::Result<Vec<ExpertiseId>> {
    let mut stmt =
        conn.prepare_cached("SELECT expertise_id FROM conversation_expertise WHERE conversation_id = ?1 ORDER BY expertise_id")?;
    let rows = stmt.query_map([id], |r| r.get::<_, i64>(0).map(|id| ExpertiseId(id as u64)))?;
    rows.collect()
}

/// The `WHERE` conditions of a search, with their parameters.
struct Conditions {
    sql: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    fn new(filter: &HistoryFilter, viewer: &Viewer) -> Conditions {
        let mut c = Conditions { sql: Vec::new(), params: Vec::new() };
        let int = |v: u64| Value::Integer(v as i64);
        if let Some(ch) = filter.channel {
            c.push("c.channel_id = ?", int(ch.0));
        }
        if let Some(op) = filter.operator {
            c.push("EXISTS (SELECT 1 FROM conversation_operators o WHERE o.operator_id = ? AND o.conversation_id = c.id)", int(op.0));
        }
        if let Some(e) = filter.expertise {
            c.push("EXISTS (SELECT 1 FROM conversation_expertise x WHERE x.expertise_id = ? AND x.conversation_id = c.id)", int(e.0));
        }
        if let Some(k) = &filter.visitor_key {
            c.push("c.visitor_key = ?", Value::Text(k.clone()));
        }
        if let Some(from) = filter.from {
            c.push("c.created_at >= ?", Value::Integer(from.as_millis()));
        }
        if let Some(to) = filter.to {
            c.push("c.created_at < ?", Value::Integer(to.as_millis()));
        }
        if let Some(rating) = filter.rating {
            c.push("c.rating = ?", Value::Integer(rating.into()));
        }
        if let Some(before) = filter.before {
            c.push("c.id < ?", int(before.0));
        }
        if let Some(except) = filter.except {
            c.push("c.id <> ?", int(except.0));
        }
        if !viewer.is_admin {
            let channels = vec!["?"; viewer.channels.len()].join(", ");
            c.sql.push(format!(
                "(c.channel_id IN ({channels}) OR EXISTS (SELECT 1 FROM conversation_operators v WHERE v.operator_id = ? AND v.conversation_id = c.id))"
            ));
            c.params.extend(viewer.channels.iter().map(|ch| int(ch.0)));
            c.params.push(int(viewer.operator.0));
        }
        c
    }

    fn push(&mut self, sql: &str, param: Value) {
        self.sql.push(sql.to_owned());
        self.params.push(param);
    }

    fn clause(&self) -> String {
        if self.sql.is_empty() {
            "1".into()
        } else {
            self.sql.join(" AND ")
        }
    }
}

const ITEM_COLUMNS: &str =
    "c.id, c.kind, c.channel_id, c.visitor_name, c.created_at, c.closed_at, c.message_count, c.rating, c.visitor_email";

fn item(conn: &Connection, r: &rusqlite::Row<'_>, snippet: Option<String>) -> rusqlite::Result<HistoryItem> {
    let id: i64 = r.get(0)?;
    Ok(HistoryItem {
        id: ConversationId(id as u64),
        channel_id: r.get::<_, Option<i64>>(2)?.map(|c| ChannelId(c as u64)),
        kind: if r.get::<_, i64>(1)? == 0 { Kind::Livechat } else { Kind::Direct },
        visitor_name: r.get(3)?,
        visitor_email: r.get(8)?,
        operator_ids: operator_ids(conn, id)?,
        expertise_ids: expertise_ids(conn, id)?,
        status: crate::domain::conversation::Status::Closed,
        created_at: Timestamp::from_millis(r.get(4)?),
        closed_at: Some(Timestamp::from_millis(r.get(5)?)),
        message_count: r.get::<_, i64>(6)? as u64,
        rating: r.get::<_, Option<i64>>(7)?.map(|r| r as u8),
        snippet,
    })
}

/// At most `limit` archived conversations the search finds, newest first.
pub fn search(conn: &Connection, filter: &HistoryFilter, viewer: &Viewer, limit: usize) -> rusqlite::Result<Vec<HistoryItem>> {
    let conditions = Conditions::new(filter, viewer);
    if filter.terms.is_empty() {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM conversations c WHERE {} ORDER BY c.id DESC LIMIT {limit}", conditions.clause());
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(&conditions.params))?;
        let mut items = Vec::new();
        while let Some(r) = rows.next()? {
            items.push(item(conn, r, None)?);
        }
        return Ok(items);
    }
    // Walk the hits newest first and keep the conversations the filters
    // accept, stopping at `limit`: a common word costs what one page needs.
    let query = filter.terms.fts_query();
    let below = filter.before.map_or(i64::MAX, |b| key(b.0, 0));
    let mut hits = conn.prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 AND rowid < ?2 ORDER BY rowid DESC")?;
    let mut hits = hits.query(params![query, below])?;
    let one = format!("SELECT {ITEM_COLUMNS} FROM conversations c WHERE c.id = ? AND {}", conditions.clause());
    let mut one = conn.prepare(&one)?;
    let mut best = conn.prepare(
        "SELECT body FROM messages WHERE key = (
             SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 AND rowid > ?2 AND rowid < ?3 ORDER BY rank LIMIT 1)",
    )?;
    let (mut items, mut last) = (Vec::new(), None);
    while let Some(hit) = hits.next()? {
        let id = conversation_of(hit.get(0)?);
        if last == Some(id) {
            continue;
        }
        last = Some(id);
        let mut params = vec![Value::Integer(id as i64)];
        params.extend(conditions.params.iter().cloned());
        let mut rows = one.query(params_from_iter(&params))?;
        let Some(r) = rows.next()? else { continue };
        let body: Option<String> = best.query_row(params![query, key(id, 0), key(id + 1, 0)], |r| r.get(0)).optional()?;
        items.push(item(conn, r, body.as_deref().map(snippet))?);
        if items.len() >= limit {
            break;
        }
    }
    Ok(items)
}

pub fn previous_operator(conn: &Connection, channel: ChannelId, visitor_key: &str) -> rusqlite::Result<Option<OperatorId>> {
    let mut stmt = conn
        .prepare_cached("SELECT record, format FROM conversations WHERE visitor_key = ?1 AND channel_id = ?2 ORDER BY id DESC LIMIT 20")?;
    let mut rows = stmt.query(params![visitor_key, channel.0 as i64])?;
    while let Some(r) = rows.next()? {
        if let Some(a) = stored(r, 0, 1)?.base.header.assignment {
            return Ok(Some(OperatorId(a.operator_id)));
        }
    }
    Ok(None)
}

/// Routing-report facts of the archived livechats `scope` covers.
pub fn facts(conn: &Connection, scope: &Scope) -> rusqlite::Result<Vec<Facts>> {
    let mut sql = String::from("SELECT record, format, first_reply, rating FROM conversations WHERE kind = 0");
    let mut params = Vec::new();
    if let Some(from) = scope.from {
        sql.push_str(" AND created_at >= ?");
        params.push(from.as_millis());
    }
    if let Some(to) = scope.to {
        sql.push_str(" AND created_at < ?");
        params.push(to.as_millis());
    }
    if let Some(channel) = scope.channel {
        sql.push_str(" AND channel_id = ?");
        params.push(channel.0 as i64);
    }
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut facts = Vec::new();
    while let Some(r) = rows.next()? {
        if let Some(mut f) = Facts::of(&stored(r, 0, 1)?.to_domain()) {
            f.first_reply = r.get::<_, Option<i64>>(2)?.map(Timestamp::from_millis);
            f.rating = r.get::<_, Option<i64>>(3)?.map(|s| s as u8);
            facts.push(f);
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::conversation::tests::visitor;
    use crate::domain::conversation::{Author, AuthorKind};
    use crate::domain::search::Terms;

    fn archive() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    fn store(conn: &mut Connection, id: u64, body: &str, closed_at: Timestamp) {
        let mut c = Conversation::livechat(ConversationId(id), ChannelId(1), visitor(), BTreeSet::new(), None);
        c.append(Author { kind: AuthorKind::Visitor, id: None, name: "V".into() }, body.into());
        c.close().unwrap();
        let mut entry = Entry::new(&c, None);
        entry.closed_at = closed_at;
        let tx = conn.transaction().unwrap();
        insert(&tx, &entry).unwrap();
        tx.commit().unwrap();
    }

    fn admin() -> Viewer {
        Viewer { operator: OperatorId(1), is_admin: true, channels: BTreeSet::new() }
    }

    fn find(conn: &Connection, q: &str) -> Vec<u64> {
        let filter = HistoryFilter { terms: Terms::parse(q), ..HistoryFilter::default() };
        search(conn, &filter, &admin(), 100).unwrap().iter().map(|i| i.id.0).collect()
    }

    #[test]
    fn storing_again_replaces_and_keeps_the_first_closing_time() {
        let mut conn = archive();
        let first = Timestamp::from_millis(1_000);
        store(&mut conn, 7, "first words", first);
        store(&mut conn, 7, "second words", Timestamp::from_millis(9_000));
        assert_eq!(find(&conn, "second"), [7]);
        assert!(find(&conn, "first").is_empty(), "the old copy's words left the index");
        let archived = conversation(&conn, ConversationId(7)).unwrap().unwrap();
        assert_eq!(archived.conversation.closed_at, Some(first));
        assert_eq!(archived.conversation.messages().len(), 1);
    }

    #[test]
    fn sweeping_deletes_what_closed_before_the_cut() {
        let mut conn = archive();
        store(&mut conn, 1, "old", Timestamp::from_millis(1_000));
        store(&mut conn, 2, "new", Timestamp::from_millis(5_000));
        let tx = conn.transaction().unwrap();
        assert_eq!(sweep(&tx, Timestamp::from_millis(2_000)).unwrap(), 1);
        tx.commit().unwrap();
        assert!(find(&conn, "old").is_empty());
        assert_eq!(find(&conn, "new"), [2]);
        assert!(!contains(&conn, ConversationId(1)).unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a user types, SQLite sees only quoted words: no query is
        /// ever a syntax error, and operators are words like any other (the
        /// document holds them, so `NOT refund` must find it, not exclude it).
        #[test]
        fn any_query_text_is_only_words(q in any::<String>(), syntax in "[\"()*:^+-]{0,6}(NEAR|AND|OR|NOT)?[\"()*:^+-]{0,6}") {
            let conn = {
                let mut conn = archive();
                store(&mut conn, 1, "refund near and or not the end", Timestamp::from_millis(1));
                conn
            };
            find(&conn, &q);
            find(&conn, &format!("{syntax}{q}{syntax}"));
            prop_assert_eq!(find(&conn, &format!("{syntax} refund {syntax}")), vec![1]);
        }
    }
}
