//! `switchboard backup --data-dir D --to DIR`: a consistent copy of a data
//! directory while the server keeps running.
//!
//! Order matters: the journal side (newest snapshot and the segments after
//! it) is copied first, the archive second. Every conversation the copied
//! journal says was archived is then in the copied archive (the archive only
//! grows between the two copies); one archived later is live or closed in the
//! copied journal, and a restore archives it again, which is harmless. The
//! last segment may be caught mid-append: recovery cuts a torn tail, which was
//! never acknowledged. Restore = stop the server, put the copy in place as
//! the data directory, start it.

use std::fs;
use std::path::Path;

use anyhow::Context as _;

use crate::archive;
use crate::persist::{scan, sync_dir};

/// What a backup copied.
#[derive(Debug)]
pub struct Copied {
    pub snapshot: bool,
    pub segments: usize,
    pub archive: bool,
    pub bytes: u64,
}

/// Copies the state in `data_dir` to `to`, which must not exist or be empty.
///
/// # Errors
/// When `to` holds files, or something cannot be read or written.
pub fn run(data_dir: &Path, to: &Path) -> anyhow::Result<Copied> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    if fs::read_dir(to)?.next().is_some() {
        anyhow::bail!("{} is not empty; back up into a new directory", to.display());
    }
    let (files, _) = scan(data_dir).with_context(|| format!("reading {}", data_dir.display()))?;
    let newest = files.snapshots.last();
    let from = newest.map_or(0, |(n, _)| *n);
    let mut bytes = 0;
    let mut copy = |path: &Path| -> anyhow::Result<()> {
        // unwrap: listed files have names.
        let target = to.join(path.file_name().expect("listed files have names"));
        bytes += fs::copy(path, &target).with_context(|| format!("copying {}", path.display()))?;
        fs::File::open(&target)?.sync_all()?;
        Ok(())
    };
    if let Some((_, path)) = newest {
        copy(path)?;
    }
    let segments: Vec<_> = files.segments.iter().filter(|(n, _)| *n >= from).collect();
    for (_, path) in &segments {
        copy(path)?;
    }
    let archived = archive::backup(data_dir, &to.join(archive::FILE)).context("copying the archive")?;
    if archived {
        bytes += fs::metadata(to.join(archive::FILE))?.len();
    }
    sync_dir(to)?;
    Ok(Copied { snapshot: newest.is_some(), segments: segments.len(), archive: archived, bytes })
}
