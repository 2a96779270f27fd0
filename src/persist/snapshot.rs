//! Snapshot files: `[magic 8][version u32][length u64][crc32 u32][bincode payload]`,
//! written to a temporary file, synced, renamed into place, directory synced.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::files::{decode, encode, sync_dir, StoreError};
use super::records::{SnapshotV1, SnapshotV2, SnapshotV3, SnapshotV4, SnapshotV5, SnapshotV6};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"SWBSNAP1";
/// 2 since users can be deactivated; version 1 files still read.
pub const FORMAT_VERSION: u32 = 6;
const HEADER: usize = 8 + 4 + 8 + 4;

/// How many snapshots are kept; journal segments older than the oldest kept
/// one are deleted, so each kept snapshot can still be brought up to date.
pub const KEEP: usize = 3;

pub fn path(dir: &Path, journal_from: u64) -> PathBuf {
    dir.join(format!("snapshot-{journal_from:020}.bin"))
}

/// Encodes and writes `snapshot` durably; returns its size in bytes.
///
/// # Errors
/// Any IO error; the previous snapshots are untouched then.
pub fn write(dir: &Path, snapshot: &SnapshotV6) -> Result<u64, StoreError> {
    let payload = encode(snapshot);
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let target = path(dir, snapshot.journal_from);
    let temp = target.with_extension("tmp");
    let mut file = File::create(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, &target)?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Reads and checks a snapshot file.
///
/// # Errors
/// A description of what is wrong with it.
pub fn read(path: &Path) -> Result<SnapshotV6, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() < HEADER || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err("not a Switchboard snapshot (bad magic bytes)".into());
    }
    // unwrap: fixed-size slices of a buffer at least HEADER long.
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(format!("format version {version}, this build reads 1 to {FORMAT_VERSION}"));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
    let crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(format!("truncated: {} payload bytes, header says {len}", payload.len()));
    }
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    let decoded = match version {
        1 => decode::<SnapshotV1>(payload).map(SnapshotV1::upgrade),
        2 => decode::<SnapshotV2>(payload).map(SnapshotV2::upgrade),
        3 => decode::<SnapshotV3>(payload).map(SnapshotV3::upgrade),
        4 => decode::<SnapshotV4>(payload).map(SnapshotV4::upgrade),
        5 => decode::<SnapshotV5>(payload).map(SnapshotV5::upgrade),
        _ => decode::<SnapshotV6>(payload),
    };
    decoded.map_err(|e| format!("cannot decode: {e}"))
}

/// Deletes all but the newest `KEEP` snapshots and the journal segments only they needed.
pub fn prune(dir: &Path) -> Result<(), StoreError> {
    let files = super::files::list(dir)?;
    let mut snapshots = files.snapshots;
    snapshots.sort_unstable();
    let cut = snapshots.len().saturating_sub(KEEP);
    for (_, path) in &snapshots[..cut] {
        fs::remove_file(path)?;
    }
    if let Some(&(oldest_kept, _)) = snapshots.get(cut) {
        for (number, path) in files.segments.iter().filter(|(n, _)| *n < oldest_kept) {
            tracing::debug!(segment = number, "deleting journal segment covered by every kept snapshot");
            fs::remove_file(path)?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::records::{ConversationV3, DirectoryV1, DirectoryV5, OperatorV1, RoleV1};

    /// A snapshot written before users could be deactivated (format 1) still
    /// reads, with everyone active.
    #[test]
    fn a_format_1_snapshot_still_reads() {
        let dir = tempfile::TempDir::new().unwrap();
        let operator = OperatorV1 {
            id: 1,
            login: "admin".into(),
            name: "Admin".into(),
            role: RoleV1::Admin,
            password_hash: "x".into(),
            languages: vec![],
            country: None,
            expertise_ids: vec![],
        };
        let directory = DirectoryV1 { last_id: 1, operators: vec![operator], expertise: vec![], channels: vec![], chatbots: vec![] };
        let old = SnapshotV1 { journal_from: 4, directory: directory.clone(), tokens: vec![("t".into(), 1)], conversations: vec![] };
        let payload = encode(&old);
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let file = path(dir.path(), 4);
        fs::write(&file, bytes).unwrap();
        let read = read(&file).unwrap();
        assert_eq!(read, old.upgrade::<DirectoryV5, ConversationV3>());
        assert!(read.directory.expertise_first.is_empty());
        let v4 = &read.directory.base;
        let v3 = &v4.base;
        assert_eq!(v3.base.base, directory);
        assert!(v3.base.inactive.is_empty() && v3.canned.is_empty() && v4.notify_emails.is_empty());
    }
}
