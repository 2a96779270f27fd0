//! Durability: bincode snapshots plus a checksummed journal, so nothing
//! acknowledged is lost when the process is killed at any instant.
//!
//! - Every acknowledged change is a [`RecordV1`] appended to the journal
//!   (group-committed) *before* its acknowledgement or its fan-out.
//! - A snapshot starts a new journal segment, then copies the state actor by
//!   actor (each paused only for its own copy) and writes it from another
//!   thread. Records are idempotent state, so replaying the new segment over a
//!   copy taken a little later is exact.
//! - Recovery loads the newest readable snapshot and replays the journal after
//!   it; see [`recover`] for what is repaired and what refuses to start.
//!
//! This module knows files and records, not actors: `hub.rs` captures the state.

mod files;
pub mod frame;
pub mod journal;
pub mod records;
pub mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use thiserror::Error;

pub use files::{decode, encode, list, scan, sync_dir, Files, StoreError};
use journal::{Journal, SEGMENT_HEADER, SEGMENT_MAGIC};
use records::{ConversationV3, DirectoryV5, MessageV1, RecordV1, SnapshotV6};

use crate::domain::conversation::{Conversation, Message};

/// Why the server refuses to start on its data directory.
#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error("cannot read the data directory {0}: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error(
        "journal {file} is corrupt at byte {offset} ({reason}) with records after it: acknowledged data is damaged. \
         Restore the data directory from a backup, or move that file away to start from the last snapshot alone"
    )]
    Corrupt { file: PathBuf, offset: usize, reason: String },
    #[error("{0}: no snapshot or journal in {1} is readable; refusing to start empty over existing data")]
    NothingReadable(String, PathBuf),
    #[error("journal segment {missing} is missing in {dir}; the segments after it cannot be applied")]
    MissingSegment { missing: u64, dir: PathBuf },
}

/// The state as stored: what a snapshot holds, brought up to date by the journal.
#[derive(Default)]
pub struct State {
    pub directory: Option<DirectoryV5>,
    /// Operator tokens → operator id.
    pub tokens: HashMap<String, u64>,
    pub conversations: BTreeMap<u64, ConversationV3>,
}

impl State {
    fn from_snapshot(s: SnapshotV6) -> State {
        State {
            directory: Some(s.directory),
            tokens: s.tokens.into_iter().collect(),
            conversations: s.conversations.into_iter().map(|c| (c.id(), c)).collect(),
        }
    }

    fn apply(&mut self, record: RecordV1) {
        match record {
            RecordV1::Directory(d) => self.directory = Some((*d).into()),
            RecordV1::DirectoryV2(d) => self.directory = Some((*d).into()),
            RecordV1::DirectoryV3(d) => self.directory = Some((*d).into()),
            RecordV1::DirectoryV4(d) => self.directory = Some((*d).into()),
            RecordV1::DirectoryV5(d) => self.directory = Some(*d),
            RecordV1::TokenIssued { token, operator_id } => {
                self.tokens.insert(token, operator_id);
            }
            RecordV1::TokenRevoked { token } => {
                self.tokens.remove(&token);
            }
            RecordV1::ConversationStarted(c) => {
                self.conversations.insert(c.id, ConversationV3::from(*c));
            }
            RecordV1::ConversationChanged { id, header, messages } => match self.conversations.get_mut(&id) {
                Some(c) => c.base.apply_v1(header, messages),
                None => tracing::warn!(conversation_id = id, "journal changes a conversation that was never started; skipped"),
            },
            RecordV1::ConversationStartedV2(c) => {
                self.conversations.insert(c.base.id, ConversationV3::from(*c));
            }
            RecordV1::ConversationChangedV2 { id, header, visitor, messages } => match self.conversations.get_mut(&id) {
                Some(c) => c.base.apply(header.map(|h| *h), visitor.map(|v| *v), messages),
                None => tracing::warn!(conversation_id = id, "journal changes a conversation that was never started; skipped"),
            },
            RecordV1::ConversationStartedV3(c) => {
                self.conversations.insert(c.id(), *c);
            }
            RecordV1::ConversationChangedV3 { id, header, visitor, messages } => match self.conversations.get_mut(&id) {
                Some(c) => c.apply(header.map(|h| *h), visitor.map(|v| *v), messages),
                None => tracing::warn!(conversation_id = id, "journal changes a conversation that was never started; skipped"),
            },
            RecordV1::Archived { id } => {
                self.conversations.remove(&id);
            }
        }
    }

    pub fn message_count(&self) -> usize {
        self.conversations.values().map(|c| c.base.base.messages.len()).sum()
    }
}

/// What [`recover`] found: the state, and the number for the next journal segment.
pub struct Recovered {
    pub state: State,
    pub next_segment: u64,
}

/// Loads the newest readable snapshot and replays the journal after it.
///
/// - A snapshot that fails its checks is skipped for the previous one, with an error logged.
/// - A torn last record (a write the crash interrupted, so never acknowledged)
///   is cut off with a warning.
/// - Damage before the last record, a missing segment, or files of which
///   nothing is readable refuse to start: silently dropping acknowledged data
///   or starting empty would be worse than stopping.
///
/// # Errors
/// See above.
pub fn recover(dir: &Path) -> Result<Recovered, RecoveryError> {
    let files = list(dir).map_err(|e| RecoveryError::Unreadable(dir.to_owned(), e))?;
    let mut base = None;
    for (_, path) in files.snapshots.iter().rev() {
        match snapshot::read(path) {
            Ok(s) => {
                tracing::info!(snapshot = %path.display(), "loaded snapshot");
                base = Some(s);
                break;
            }
            Err(reason) => tracing::error!(snapshot = %path.display(), %reason, "snapshot unusable; falling back to the previous one"),
        }
    }
    let had_snapshot = base.is_some();
    let (mut state, from) = match base {
        Some(s) => {
            let from = s.journal_from;
            (State::from_snapshot(s), from)
        }
        None if !files.snapshots.is_empty() => {
            return Err(RecoveryError::NothingReadable("every snapshot is damaged".into(), dir.to_owned()));
        }
        None => (State::default(), 1),
    };
    let segments: Vec<&(u64, PathBuf)> = files.segments.iter().filter(|(n, _)| *n >= from).collect();
    match segments.first() {
        Some(&&(first, _)) if first != from && !had_snapshot => {
            return Err(RecoveryError::NothingReadable("journal segments without the snapshot they follow".into(), dir.to_owned()));
        }
        Some(&&(first, _)) if first != from => return Err(RecoveryError::MissingSegment { missing: from, dir: dir.to_owned() }),
        _ => {}
    }
    for (i, (number, path)) in segments.iter().enumerate() {
        if i > 0 && *number != segments[i - 1].0 + 1 {
            return Err(RecoveryError::MissingSegment { missing: segments[i - 1].0 + 1, dir: dir.to_owned() });
        }
        replay(path, i + 1 == segments.len(), &mut state)?;
    }
    let last = files.segments.last().map_or(0, |(n, _)| *n).max(from.saturating_sub(1));
    tracing::info!(
        conversations = state.conversations.len(),
        messages = state.message_count(),
        segments = segments.len(),
        "state recovered"
    );
    Ok(Recovered { state, next_segment: last + 1 })
}

/// Replays one journal segment into `state`, cutting a torn tail off the last one.
fn replay(path: &Path, is_last: bool, state: &mut State) -> Result<(), RecoveryError> {
    let corrupt = |offset: usize, reason: String| RecoveryError::Corrupt { file: path.to_owned(), offset, reason };
    let bytes = fs::read(path).map_err(|e| corrupt(0, format!("cannot read: {e}")))?;
    let header_ok = bytes.len() >= SEGMENT_HEADER && &bytes[..8] == SEGMENT_MAGIC;
    if !header_ok {
        if is_last && bytes.len() < SEGMENT_HEADER {
            tracing::warn!(file = %path.display(), "journal segment was cut while being created; removing it");
            fs::remove_file(path).map_err(|e| corrupt(0, e.to_string()))?;
            return Ok(());
        }
        return Err(corrupt(0, "bad segment header".into()));
    }
    let mut offset = SEGMENT_HEADER;
    loop {
        match frame::next(&bytes, offset) {
            frame::Next::Record(payload, next) => {
                let record = decode::<RecordV1>(payload).map_err(|e| corrupt(offset, format!("undecodable record: {e}")))?;
                state.apply(record);
                offset = next;
            }
            frame::Next::End => return Ok(()),
            frame::Next::ZeroTail if is_last => {
                tracing::info!(file = %path.display(), offset, "journal's zeros written ahead trimmed");
                break;
            }
            frame::Next::Torn(reason) if is_last => {
                tracing::warn!(file = %path.display(), offset, reason, "torn journal tail (an unacknowledged write) truncated");
                break;
            }
            frame::Next::ZeroTail => return Err(corrupt(offset, "zeros before the last segment".into())),
            frame::Next::Torn(reason) | frame::Next::Corrupt(reason) => return Err(corrupt(offset, reason.into())),
        }
    }
    let file = OpenOptions::new().write(true).open(path).map_err(|e| corrupt(offset, e.to_string()))?;
    file.set_len(offset as u64).and_then(|()| file.sync_all()).map_err(|e| corrupt(offset, e.to_string()))
}

/// One conversation as captured: everything but the transcript as a record,
/// and the transcript shared with the actor (turned into records off the actor).
pub struct Captured {
    record: ConversationV3,
    messages: Vec<Arc<Message>>,
}

impl Captured {
    pub fn new(c: &Conversation, visitor_token: Option<&str>) -> Captured {
        Captured { record: ConversationV3::without_messages(c, visitor_token), messages: c.messages().to_vec() }
    }

    fn into_record(self) -> ConversationV3 {
        let mut record = self.record;
        record.base.base.messages = self.messages.iter().map(|m| MessageV1::from(&**m)).collect();
        record
    }
}

/// What a snapshot holds, captured from the live server.
pub struct Capture {
    pub directory: DirectoryV5,
    pub tokens: Vec<(String, u64)>,
    pub conversations: Vec<Captured>,
    /// The longest any one actor was held up while copied.
    pub longest_pause: Duration,
}

/// What a snapshot cost, for logs, the admin endpoint and the benchmarks.
#[derive(Clone, Copy, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SnapshotStats {
    pub conversations: usize,
    pub messages: usize,
    pub bytes: u64,
    /// Time to copy the state out of the actors (they keep working meanwhile).
    pub capture_ms: f64,
    /// The longest any one actor was held up by its copy: the pause chat sees.
    pub longest_actor_pause_ms: f64,
    /// Time to encode and write it durably.
    pub write_ms: f64,
}

/// The journal and the snapshots of one data directory.
pub struct Store {
    pub journal: Journal,
    dir: PathBuf,
    /// One snapshot at a time.
    snapshotting: tokio::sync::Mutex<()>,
    last_snapshot: Mutex<Option<Instant>>,
    started: Instant,
}

impl Store {
    /// Starts the journal on segment `next_segment`.
    ///
    /// # Errors
    /// When the segment cannot be created.
    pub fn open(dir: &Path, next_segment: u64, mode: journal::FsyncMode, interval: Duration) -> Result<Store, StoreError> {
        let (journal, _writer) = Journal::start(dir, next_segment, mode, interval)?;
        Ok(Store {
            journal,
            dir: dir.to_owned(),
            snapshotting: tokio::sync::Mutex::new(()),
            last_snapshot: Mutex::new(None),
            started: Instant::now(),
        })
    }

    /// Seconds since the last snapshot was written (since start if none yet).
    pub fn snapshot_age(&self) -> Duration {
        self.last_snapshot.lock().unwrap_or(self.started).elapsed()
    }

    /// Takes a snapshot: cuts the journal, captures the state with `capture`,
    /// writes it from a blocking thread, and prunes old files.
    ///
    /// # Errors
    /// When the journal failed or the file cannot be written.
    pub async fn snapshot<F, Fut>(&self, capture: F) -> Result<SnapshotStats, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Capture, StoreError>>,
    {
        let _one_at_a_time = self.snapshotting.lock().await;
        let journal_from = self.journal.rotate().await?;
        let started = Instant::now();
        let Capture { directory, tokens, conversations, longest_pause } = capture().await?;
        let capture_ms = started.elapsed().as_secs_f64() * 1e3;
        let messages = conversations.iter().map(|c| c.messages.len()).sum();
        let count = conversations.len();
        let dir = self.dir.clone();
        let started = Instant::now();
        let bytes = tokio::task::spawn_blocking(move || {
            let conversations = conversations.into_iter().map(Captured::into_record).collect();
            let snapshot = SnapshotV6 { journal_from, directory, tokens, conversations };
            let bytes = snapshot::write(&dir, &snapshot)?;
            snapshot::prune(&dir)?;
            Ok::<_, StoreError>(bytes)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        *self.last_snapshot.lock() = Some(Instant::now());
        let stats = SnapshotStats {
            conversations: count,
            messages,
            bytes,
            capture_ms,
            longest_actor_pause_ms: longest_pause.as_secs_f64() * 1e3,
            write_ms: started.elapsed().as_secs_f64() * 1e3,
        };
        tracing::info!(?stats, journal_from, "snapshot written");
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::journal::{segment_path, FsyncMode};
    use super::records::Journaled;
    use super::*;
    use crate::domain::conversation::tests::properties::{apply, command, Command};
    use crate::domain::conversation::tests::visitor;
    use crate::domain::{ChannelId, ConversationId};

    #[derive(Clone, Debug)]
    enum Step {
        Conversation(usize, Command),
        Issue(usize, u64),
        Revoke(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3usize, command()).prop_map(|(i, c)| Step::Conversation(i, c)),
            1 => (0..4usize, 1..4u64).prop_map(|(t, o)| Step::Issue(t, o)),
            1 => (0..4usize).prop_map(Step::Revoke),
        ]
    }

    /// The state recovery must give back.
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Expected {
        tokens: HashMap<String, u64>,
        conversations: BTreeMap<u64, ConversationV3>,
    }

    /// Plays `steps` on live conversations, journaling each change as the actor
    /// does; returns the records and the state after each (`[0]` = empty).
    fn play(steps: &[Step]) -> (Vec<RecordV1>, Vec<Expected>) {
        let mut live: Vec<Option<(Conversation, Journaled)>> = vec![None, None, None];
        let mut now = Expected::default();
        let (mut records, mut expected) = (Vec::new(), vec![now.clone()]);
        let visitor_token = |i: usize| format!("visitor-{i}");
        for step in steps {
            let record = match step {
                Step::Conversation(i, command) => {
                    let (c, journaled) = live[*i].get_or_insert_with(|| {
                        let id = ConversationId(*i as u64 + 1);
                        (Conversation::livechat(id, ChannelId(1), visitor(), BTreeSet::new(), None), Journaled::Nothing)
                    });
                    apply(c, command);
                    let record = journaled.catch_up(c, Some(&visitor_token(*i)));
                    now.conversations.insert(c.id.0, ConversationV3::new(c, Some(&visitor_token(*i))));
                    record
                }
                Step::Issue(t, operator_id) => {
                    now.tokens.insert(format!("token-{t}"), *operator_id);
                    Some(RecordV1::TokenIssued { token: format!("token-{t}"), operator_id: *operator_id })
                }
                Step::Revoke(t) => {
                    now.tokens.remove(&format!("token-{t}"));
                    Some(RecordV1::TokenRevoked { token: format!("token-{t}") })
                }
            };
            if let Some(record) = record {
                records.push(record);
                expected.push(now.clone());
            }
        }
        (records, expected)
    }

    /// Writes `records` through the real journal writer; returns the segment's bytes.
    fn journal_bytes(records: &[RecordV1]) -> Vec<u8> {
        let dir = tempfile::TempDir::new().unwrap();
        let (journal, writer) = Journal::start(dir.path(), 1, FsyncMode::Batch, Duration::from_millis(1)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for record in records {
                journal.append(record).await.unwrap();
            }
        });
        drop(journal);
        writer.join().unwrap();
        fs::read(segment_path(dir.path(), 1)).unwrap()
    }

    fn recover_prefix(bytes: &[u8]) -> Expected {
        let dir = tempfile::TempDir::new().unwrap();
        fs::write(segment_path(dir.path(), 1), bytes).unwrap();
        let state = recover(dir.path()).unwrap().state;
        assert!(state.directory.is_none());
        Expected { tokens: state.tokens, conversations: state.conversations }
    }

    /// While the journal runs its segment is written ahead with zeros; it ends
    /// with its last record once the next segment starts and once the journal stops.
    #[test]
    fn segments_are_written_ahead_and_trimmed_at_rotation_and_at_stop() {
        let dir = tempfile::TempDir::new().unwrap();
        let (journal, writer) = Journal::start(dir.path(), 1, FsyncMode::Always, Duration::from_millis(1)).unwrap();
        let size = |n| fs::metadata(segment_path(dir.path(), n)).unwrap().len();
        let record = RecordV1::TokenRevoked { token: "t".into() };
        let framed = (frame::FRAME_HEADER + encode(&record).len()) as u64;
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            journal.append(&record).await.unwrap();
            assert_eq!(size(1), journal::AHEAD);
            assert_eq!(journal.rotate().await.unwrap(), 2);
            assert_eq!(size(1), SEGMENT_HEADER as u64 + framed);
            journal.append(&record).await.unwrap();
            journal.append(&record).await.unwrap();
            assert_eq!(size(2), journal::AHEAD);
        });
        drop(journal);
        writer.join().unwrap();
        assert_eq!(size(2), SEGMENT_HEADER as u64 + 2 * framed);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Replaying any prefix of a journal — cut at a record boundary, or
        /// inside a record as a crash would leave it — gives the state after
        /// the last whole record.
        #[test]
        fn any_journal_prefix_replays_to_the_state_at_that_point(
            steps in prop::collection::vec(step(), 1..30),
            tear in any::<prop::sample::Index>(),
        ) {
            let (records, expected) = play(&steps);
            let bytes = journal_bytes(&records);
            let mut end = SEGMENT_HEADER;
            // A crash leaves the zeros the writer wrote ahead after the cut.
            let ahead = |cut: usize| [&bytes[..cut], &[0; 4096][..]].concat();
            for (k, record) in records.iter().enumerate() {
                prop_assert_eq!(recover_prefix(&bytes[..end]), expected[k].clone(), "cut after {} records", k);
                prop_assert_eq!(recover_prefix(&ahead(end)), expected[k].clone(), "cut after {} records, zeros ahead", k);
                let len = frame::FRAME_HEADER + encode(record).len();
                let torn = end + 1 + tear.index(len - 1);
                prop_assert_eq!(recover_prefix(&bytes[..torn]), expected[k].clone(), "torn inside record {}", k + 1);
                // Unless every byte the tear cut off was a zero: then the record is whole.
                let whole = bytes[torn..end + len].iter().all(|&b| b == 0);
                let at = if whole { k + 1 } else { k };
                prop_assert_eq!(recover_prefix(&ahead(torn)), expected[at].clone(), "torn inside record {}, zeros ahead", k + 1);
                end += len;
            }
            prop_assert_eq!(end, bytes.len());
            prop_assert_eq!(recover_prefix(&bytes), expected[records.len()].clone());
        }
    }
}
