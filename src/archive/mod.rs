//! The archive: closed conversations in an embedded SQLite database
//! (`history.sqlite3` in the data directory) with an FTS5 full-text index, so
//! memory, snapshots and restarts scale with live conversations, not with history.
//!
//! Why SQLite: one bundled dependency, no server, transactions that are
//! durable on commit (WAL, `synchronous = FULL`), FTS5 for the search the
//! contract asks for, an online backup API, and a file any support engineer
//! can open with `sqlite3`. All SQL is in `sql.rs`.
//!
//! Writes go to one thread that owns the write connection and commits what
//! is queued in one transaction (group commit, like the journal); reads run on
//! tokio's blocking pool, each on a pooled read-only connection (WAL lets them
//! run beside the writer). No actor thread ever waits on SQLite.

mod sql;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, Transaction};
use thiserror::Error;
use tokio::sync::oneshot;

pub use sql::{Archived, Attempt, Entry, Mail, NewDelivery, QueuedDelivery, QueuedMail, RateRefused, Tried};

use crate::domain::conversation::Rating;
use crate::domain::history::{HistoryFilter, Viewer};
use crate::domain::lead::{Lead, LeadRefused, LeadStatus};
use crate::domain::report::{Facts, Scope};
use crate::domain::time::Timestamp;
use crate::domain::webhook::Webhook;
use crate::domain::{ChannelId, ConversationId, OperatorId};
use crate::views::HistoryItem;

/// The archive's file name inside the data directory.
pub const FILE: &str = "history.sqlite3";

/// Conversations stored per transaction at most.
const BATCH: usize = 512;

/// How long the writer gathers conversations before committing them in one
/// transaction: one fsync per gathering instead of one per conversation, so
/// the archive's syncs do not crowd the journal's on the same disk.
const GATHER: std::time::Duration = std::time::Duration::from_millis(50);

/// The writer thread's niceness: archiving can wait a little; chat cannot.
const WRITER_NICENESS: libc::c_int = 10;

/// Read connections kept open for reuse; more may be opened under load, and
/// are closed after use, so memory stays bounded (each has its own page cache).
const IDLE_READERS: usize = 4;

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("cannot open the archive {path}: {reason}. Restore it from a backup, or move it away to start with an empty history")]
    Open { path: PathBuf, reason: String },
    #[error("archive: {0}")]
    Sql(String),
    #[error("the archive has stopped")]
    Stopped,
}

impl From<rusqlite::Error> for ArchiveError {
    fn from(e: rusqlite::Error) -> ArchiveError {
        ArchiveError::Sql(e.to_string())
    }
}

type Change = Box<dyn FnOnce(&Transaction<'_>) -> rusqlite::Result<usize> + Send>;

enum Job {
    Store(Box<Entry>, oneshot::Sender<Result<(), ArchiveError>>),
    Change(Change, oneshot::Sender<Result<usize, ArchiveError>>),
}

pub struct Archive {
    jobs: mpsc::Sender<Job>,
    /// Woken when a mail is queued, so the sender need not poll.
    mail_queued: tokio::sync::Notify,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl Archive {
    /// Opens (or creates) the archive in `dir`, migrates its schema and starts the writer thread.
    ///
    /// # Errors
    /// `Open`, naming the file, when it is not a database, is damaged or is newer than this server.
    pub fn open(dir: &Path) -> Result<Archive, ArchiveError> {
        let path = dir.join(FILE);
        let failed = |e: rusqlite::Error| ArchiveError::Open { path: path.clone(), reason: e.to_string() };
        let mut conn = Connection::open(&path).map_err(failed)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(failed)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(failed)?;
        sql::migrate(&mut conn).map_err(failed)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("archive".into())
            .spawn(move || {
                lower_priority();
                write_loop(conn, &rx);
            })
            .map_err(|e| ArchiveError::Open { path: path.clone(), reason: e.to_string() })?;
        Ok(Archive { jobs: tx, mail_queued: tokio::sync::Notify::new(), readers: Arc::new(Mutex::new(Vec::new())), path })
    }

    fn submit(&self, job: Job) {
        // A send only fails when the writer thread is gone; the job's answer channel then says `Stopped`.
        let _ = self.jobs.send(job);
    }

    /// Stores a closed conversation; resolves once committed. Storing one that is already there changes nothing.
    pub async fn store(&self, entry: Entry) -> Result<(), ArchiveError> {
        let mails = entry.lead_mail.is_some();
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Store(Box::new(entry), tx));
        let stored = rx.await.unwrap_or(Err(ArchiveError::Stopped));
        if mails && stored.is_ok() {
            self.mail_queued.notify_one();
        }
        stored
    }

    /// Queues a mail; resolves once it is durable (it will be sent, across restarts too).
    pub async fn enqueue_mail(&self, mail: Mail) -> Result<(), ArchiveError> {
        self.change(Box::new(move |tx| sql::enqueue(tx, &mail))).await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// Resolves when a mail was queued since the last call (or one is pending).
    pub async fn mail_queued(&self) {
        self.mail_queued.notified().await;
    }

    pub async fn due_mail(&self, now: Timestamp, limit: usize) -> Result<Vec<QueuedMail>, ArchiveError> {
        self.read(move |conn| sql::due_mail(conn, now, limit)).await
    }

    pub async fn next_mail_at(&self) -> Result<Option<Timestamp>, ArchiveError> {
        self.read(sql::next_mail_at).await
    }

    /// The SMTP server took it (or refused it for good): it leaves the outbox.
    pub async fn mail_sent(&self, id: i64) -> Result<(), ArchiveError> {
        self.change(Box::new(move |tx| sql::mail_sent(tx, id))).await.map(drop)
    }

    /// It failed: tried again at `at`.
    pub async fn mail_retry(&self, id: i64, at: Timestamp, error: String) -> Result<(), ArchiveError> {
        self.change(Box::new(move |tx| sql::mail_retry(tx, id, at, &error))).await.map(drop)
    }

    async fn change(&self, change: Change) -> Result<usize, ArchiveError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Change(change, tx));
        rx.await.unwrap_or(Err(ArchiveError::Stopped))
    }

    /// Erases every archived conversation of a visitor; answers how many.
    pub async fn erase_visitor(&self, visitor_key: String) -> Result<usize, ArchiveError> {
        self.change(Box::new(move |tx| sql::erase_visitor(tx, &visitor_key))).await
    }

    /// Runs `change` on the writer thread and answers what it found out (the
    /// writer's changes count rows; the answer comes back through a slot).
    async fn change_answering<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ArchiveError> {
        let outcome = Arc::new(Mutex::new(None));
        let slot = outcome.clone();
        self.change(Box::new(move |tx| {
            *slot.lock() = Some(change(tx)?);
            Ok(1)
        }))
        .await?;
        let answer = outcome.lock().take();
        answer.ok_or(ArchiveError::Stopped)
    }

    /// Records the visitor's rating of an archived livechat (once); answers
    /// the operators who were its members at the end, or why it was refused.
    pub async fn rate(&self, id: ConversationId, rating: Rating) -> Result<Result<Vec<OperatorId>, RateRefused>, ArchiveError> {
        self.change_answering(move |tx| sql::rate(tx, id, &rating)).await
    }

    /// Changes the lead of conversation `id` by `change`, which may refuse; answers it as it now is.
    pub async fn change_lead(
        &self,
        id: ConversationId,
        change: impl FnOnce(&mut Lead) -> Result<(), LeadRefused> + Send + 'static,
    ) -> Result<Result<Lead, LeadRefused>, ArchiveError> {
        self.change_answering(move |tx| sql::change_lead(tx, id, change)).await
    }

    /// Deletes conversations closed before `before`; answers how many.
    pub async fn sweep(&self, before: Timestamp) -> Result<usize, ArchiveError> {
        self.change(Box::new(move |tx| sql::sweep(tx, before))).await
    }

    /// Caps the file at `pages` pages (SQLite's `max_page_count`; it never
    /// goes below the current size): writes beyond fail as on a full disk.
    #[cfg(test)]
    pub async fn limit_pages(&self, pages: u64) {
        let limit = Box::new(move |tx: &Transaction<'_>| tx.pragma_update(None, "max_page_count", pages as i64).map(|()| 0));
        self.change(limit).await.unwrap();
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ArchiveError> {
        let (readers, path) = (self.readers.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let conn = match readers.lock().pop() {
                Some(conn) => conn,
                None => open_reader(&path)?,
            };
            let result = read(&conn);
            let mut idle = readers.lock();
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
            Ok(result?)
        })
        .await
        .map_err(|_| ArchiveError::Stopped)?
    }

    /// The highest conversation id ever archived, so new ids continue after it.
    ///
    /// # Errors
    /// When the archive cannot be read.
    pub fn max_id(&self) -> Result<u64, ArchiveError> {
        Ok(sql::max_id(&open_reader(&self.path)?)?)
    }

    pub async fn contains(&self, id: ConversationId) -> Result<bool, ArchiveError> {
        self.read(move |conn| sql::contains(conn, id)).await
    }

    pub async fn conversation(&self, id: ConversationId) -> Result<Option<Archived>, ArchiveError> {
        self.read(move |conn| sql::conversation(conn, id)).await
    }

    /// The archived conversation a visitor token belongs to.
    pub async fn by_visitor_token(&self, token: String) -> Result<Option<ConversationId>, ArchiveError> {
        self.read(move |conn| sql::by_visitor_token(conn, &token)).await
    }

    /// At most `limit` archived conversations the search finds for `viewer`, newest first.
    pub async fn search(&self, filter: HistoryFilter, viewer: Viewer, limit: usize) -> Result<Vec<HistoryItem>, ArchiveError> {
        self.read(move |conn| sql::search(conn, &filter, &viewer, limit)).await
    }

    /// The operator last assigned to this visitor's newest archived conversation on `channel` (routing rule 1).
    pub async fn previous_operator(&self, channel: ChannelId, visitor_key: String) -> Result<Option<OperatorId>, ArchiveError> {
        self.read(move |conn| sql::previous_operator(conn, channel, &visitor_key)).await
    }

    // ---- webhooks ----

    pub async fn webhooks(&self) -> Result<Vec<Webhook>, ArchiveError> {
        self.read(sql::webhooks).await
    }

    /// Stores a new webhook (id 0) or replaces one; answers it as stored.
    pub async fn save_webhook(&self, hook: Webhook) -> Result<Webhook, ArchiveError> {
        self.change_answering(move |tx| sql::save_webhook(tx, hook)).await
    }

    pub async fn delete_webhook(&self, id: u64) -> Result<bool, ArchiveError> {
        self.change_answering(move |tx| sql::delete_webhook(tx, id)).await
    }

    /// Queues deliveries; resolves once they are durable.
    pub async fn enqueue_deliveries(&self, deliveries: Vec<NewDelivery>) -> Result<(), ArchiveError> {
        self.change(Box::new(move |tx| sql::enqueue_deliveries(tx, &deliveries))).await.map(drop)
    }

    pub async fn due_deliveries(&self, webhook: u64, now: Timestamp, limit: usize) -> Result<Vec<QueuedDelivery>, ArchiveError> {
        self.read(move |conn| sql::due_deliveries(conn, webhook, now, limit)).await
    }

    pub async fn next_delivery_at(&self, webhook: u64) -> Result<Option<Timestamp>, ArchiveError> {
        self.read(move |conn| sql::next_delivery_at(conn, webhook)).await
    }

    /// Logs a batch of tries in one transaction; each delivery leaves the
    /// outbox unless its `retry_at` says when to try again.
    pub async fn deliveries_tried(&self, tried: Vec<Tried>) -> Result<(), ArchiveError> {
        self.change(Box::new(move |tx| sql::deliveries_tried(tx, &tried))).await.map(drop)
    }

    pub async fn attempts(&self, webhook: u64) -> Result<Vec<Attempt>, ArchiveError> {
        self.read(move |conn| sql::attempts(conn, webhook)).await
    }

    /// Leads of `status` (any when `None`) on `channels` (all when `None`), oldest first.
    pub async fn leads(&self, status: Option<LeadStatus>, channels: Option<BTreeSet<ChannelId>>) -> Result<Vec<Lead>, ArchiveError> {
        self.read(move |conn| sql::leads(conn, status, channels.as_ref())).await
    }

    pub async fn facts(&self, scope: Scope) -> Result<Vec<Facts>, ArchiveError> {
        self.read(move |conn| sql::facts(conn, &scope)).await
    }
}

/// Bytes of memory SQLite holds in this process, all connections together.
pub fn memory_used() -> i64 {
    // SAFETY: a read of SQLite's global memory counter; no pointers involved.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

/// A consistent copy of the archive in `dir` at `to`, taken with SQLite's
/// online backup, so the server may keep writing meanwhile. `false` when
/// `dir` has no archive.
///
/// # Errors
/// When the archive cannot be read or the copy written.
pub fn backup(dir: &Path, to: &Path) -> Result<bool, ArchiveError> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(false);
    }
    open_reader(&path)?.backup(rusqlite::MAIN_DB, to, rusqlite::backup::NO_PROGRESS)?;
    Ok(true)
}

/// Makes the calling thread yield to the others when the CPU is contended
/// (Linux: niceness is per thread). Failure only costs that preference.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers and affect only this thread.
    let failed = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, WRITER_NICENESS) != 0
    };
    if failed {
        tracing::warn!("could not lower the archive writer's priority");
    }
}

/// The writer thread: group-commits queued stores, runs changes one by one.
fn write_loop(mut conn: Connection, jobs: &mpsc::Receiver<Job>) {
    let mut next = jobs.recv().ok();
    while let Some(job) = next.take() {
        match job {
            Job::Store(entry, answer) => {
                let mut batch = vec![(entry, answer)];
                let until = std::time::Instant::now() + GATHER;
                while batch.len() < BATCH {
                    match jobs.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
                        Ok(Job::Store(entry, answer)) => batch.push((entry, answer)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let stored = (|| {
                    let tx = conn.transaction()?;
                    for (entry, _) in &batch {
                        sql::insert(&tx, entry)?;
                    }
                    tx.commit()
                })();
                if let Err(e) = &stored {
                    tracing::error!(error = %e, conversations = batch.len(), "archive write failed; the conversations stay live");
                }
                for (_, answer) in batch {
                    let _ = answer.send(stored.as_ref().map(|_| ()).map_err(|e| ArchiveError::Sql(e.to_string())));
                }
            }
            Job::Change(change, answer) => {
                let changed = (|| {
                    let tx = conn.transaction()?;
                    let n = change(&tx)?;
                    tx.commit()?;
                    Ok::<_, rusqlite::Error>(n)
                })();
                let _ = answer.send(changed.map_err(ArchiveError::from));
            }
        }
        if next.is_none() {
            next = jobs.recv().ok();
        }
    }
}
