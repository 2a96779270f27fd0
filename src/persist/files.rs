//! What every storage file shares: bincode's encoding, the storage error,
//! listing the data directory and making its entries durable. A leaf, so the
//! journal and snapshot modules need nothing from the module that ties them
//! together.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage failed earlier; writes are refused until the server is restarted")]
    Failed,
    #[error("the journal has stopped")]
    Stopped,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // unwrap: the record types are plain data with known lengths; encoding them cannot fail.
    bincode::serde::encode_to_vec(value, config()).expect("records always encode")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config()).map(|(value, _)| value)
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The snapshot and journal files of a data directory, by number.
pub struct Files {
    pub snapshots: Vec<(u64, PathBuf)>,
    pub segments: Vec<(u64, PathBuf)>,
}

/// Lists the data directory (other files are ignored; leftover temporary files are removed).
pub fn list(dir: &Path) -> std::io::Result<Files> {
    let (files, leftovers) = scan(dir)?;
    for path in leftovers {
        fs::remove_file(&path)?;
    }
    Ok(files)
}

/// Lists the data directory without touching it: the files, and the
/// temporary ones (a snapshot being written, or one a crash left behind).
pub fn scan(dir: &Path) -> std::io::Result<(Files, Vec<PathBuf>)> {
    let mut files = Files { snapshots: Vec::new(), segments: Vec::new() };
    let mut temporary = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let number = |prefix: &str, suffix: &str| name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse::<u64>().ok();
        if let Some(n) = number("snapshot-", ".bin") {
            files.snapshots.push((n, path));
        } else if let Some(n) = number("journal-", ".log") {
            files.segments.push((n, path));
        } else if number("snapshot-", ".tmp").is_some() {
            temporary.push(path);
        }
    }
    files.snapshots.sort_unstable();
    files.segments.sort_unstable();
    Ok((files, temporary))
}
