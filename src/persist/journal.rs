//! The journal: every acknowledged change, appended before it is acknowledged.
//!
//! One writer thread owns the file. Appenders send it framed records and wait
//! on a oneshot; the writer takes everything queued, writes it in one go and
//! calls `fdatasync` once for the whole batch (group commit), so a thousand
//! concurrent writers cost one sync, not a thousand.
//!
//! The journal is split into numbered segments; a snapshot starts a new one
//! (`rotate`) and older segments can then be deleted.
//!
//! A segment is written ahead with zeros, [`AHEAD`] at a time, and records
//! overwrite them: a sync then changes neither the file's size nor its block
//! map, so `fdatasync` writes the data alone instead of the data and the inode
//! (two device writes per commit, each a costly exit to the hypervisor on a
//! VM). Readers take a zero-filled tail for the end; a segment is trimmed to
//! its last record before the next one starts and when the journal stops.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::files::{encode, sync_dir, StoreError};
use super::frame::frame;
use super::records::RecordV1;

/// First bytes of every segment: the format and its version.
pub const SEGMENT_MAGIC: &[u8; 8] = b"SWBJRN01";
/// Magic plus the segment's number (u64 LE).
pub const SEGMENT_HEADER: usize = 16;

/// Most bytes written per batch, so one huge burst cannot delay every ack behind it.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Zeros written ahead of the records at a time: one inode sync per this much
/// journal, for the price of writing it twice (zeros, then records).
pub(super) const AHEAD: u64 = 1 << 20;

/// When an acknowledgement is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncMode {
    /// After the record is on disk (`fdatasync`), batched with whatever else
    /// arrived meanwhile: survives power loss.
    Always,
    /// After the record is handed to the kernel; `fdatasync` runs every
    /// `interval`: survives a crash of the process, may lose the last interval on power loss.
    Batch,
}

pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("journal-{number:020}.log"))
}

enum Command {
    Append {
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Finish the current segment and start the next; answers its number.
    Rotate {
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// A cheap, cloneable handle to the writer thread.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Command>,
    /// Set for good after a failed write or sync: the kernel may have dropped
    /// the dirty pages, so retrying could acknowledge data that is gone.
    failed: Arc<AtomicBool>,
    /// Tests set it to make the next writes fail as a full disk would.
    #[cfg(test)]
    sabotaged: Arc<AtomicBool>,
}

impl Journal {
    /// Starts the writer on a new segment `number` in `dir`.
    ///
    /// # Errors
    /// When the segment cannot be created.
    pub fn start(dir: &Path, number: u64, mode: FsyncMode, interval: Duration) -> Result<(Journal, JoinHandle<()>), StoreError> {
        let segment = Segment::create(dir, number)?;
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        #[cfg(test)]
        let sabotaged = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            dir: dir.to_owned(),
            segment,
            mode,
            interval,
            failed: failed.clone(),
            dirty: false,
            last_sync: Instant::now(),
            #[cfg(test)]
            sabotaged: sabotaged.clone(),
        };
        let handle = std::thread::Builder::new().name("journal".into()).spawn(move || writer.run(&rx))?;
        Ok((
            Journal {
                tx,
                failed,
                #[cfg(test)]
                sabotaged,
            },
            handle,
        ))
    }

    /// Appends `record`; the future resolves once it is durable (per the mode).
    /// The record's place in the journal is fixed when this returns, so
    /// callers that hold a lock while calling it keep the journal in their order.
    pub fn append(&self, record: &RecordV1) -> impl Future<Output = Result<(), StoreError>> + 'static {
        let (done, rx) = oneshot::channel();
        let sent = if self.failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else {
            let mut bytes = Vec::new();
            frame(&encode(record), &mut bytes);
            self.tx.send(Command::Append { bytes, done }).map_err(|_| StoreError::Stopped)
        };
        async move {
            sent?;
            rx.await.map_err(|_| StoreError::Stopped)?
        }
    }

    /// Starts a new segment after everything appended so far; answers its number.
    ///
    /// # Errors
    /// When the journal failed or stopped, or the segment cannot be created.
    pub async fn rotate(&self) -> Result<u64, StoreError> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Command::Rotate { done }).map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Makes every write from now on fail, as a full disk would.
    #[cfg(test)]
    pub fn sabotage(&self) {
        self.sabotaged.store(true, Ordering::Release);
    }
}

struct Segment {
    file: File,
    number: u64,
    /// Where the next record goes.
    end: u64,
    /// The file's size: the records, then zeros written ahead.
    allocated: u64,
}

impl Segment {
    fn create(dir: &Path, number: u64) -> Result<Segment, StoreError> {
        let path = segment_path(dir, number);
        let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        let mut header = SEGMENT_MAGIC.to_vec();
        header.extend_from_slice(&number.to_le_bytes());
        file.write_all(&header)?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(Segment { file, number, end: SEGMENT_HEADER as u64, allocated: SEGMENT_HEADER as u64 })
    }

    /// Writes `buf` after the last record, and zeros ahead after it when the
    /// file is too short for it.
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let end = self.end + buf.len() as u64;
        if end > self.allocated {
            let allocated = end.next_multiple_of(AHEAD);
            self.file.write_all_at(&vec![0; (allocated - end) as usize], end)?;
            self.allocated = allocated;
        }
        self.file.write_all_at(buf, self.end)?;
        self.end = end;
        Ok(())
    }

    /// Cuts the zeros written ahead and syncs: the segment ends with its last record.
    fn trim(&mut self) -> std::io::Result<()> {
        if self.allocated > self.end {
            self.file.set_len(self.end)?;
            self.allocated = self.end;
        }
        self.file.sync_all()
    }
}

struct Writer {
    dir: PathBuf,
    segment: Segment,
    mode: FsyncMode,
    interval: Duration,
    failed: Arc<AtomicBool>,
    /// Written but not yet synced (batch mode).
    dirty: bool,
    last_sync: Instant,
    #[cfg(test)]
    sabotaged: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Command>) {
        loop {
            let first = match self.mode {
                FsyncMode::Always => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                FsyncMode::Batch => rx.recv_timeout(self.interval),
            };
            let first = match first {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.sync_if_dirty();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.unless_failed("trim at stop", |writer| writer.segment.trim());
                    return;
                }
            };
            let mut buf = Vec::new();
            let mut waiters = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append { bytes, done } => {
                        buf.extend_from_slice(&bytes);
                        waiters.push(done);
                    }
                    Command::Rotate { done } => {
                        self.commit(&mut buf, &mut waiters);
                        let _ = done.send(self.rotate());
                    }
                }
                if buf.len() < MAX_BATCH_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            self.commit(&mut buf, &mut waiters);
        }
    }

    /// Writes `buf`, syncs per the mode, and answers every waiter.
    fn commit(&mut self, buf: &mut Vec<u8>, waiters: &mut Vec<oneshot::Sender<Result<(), StoreError>>>) {
        if waiters.is_empty() {
            return;
        }
        self.unless_failed("write", |writer| writer.write(buf));
        let ok = !self.failed.load(Ordering::Acquire);
        for done in waiters.drain(..) {
            let _ = done.send(if ok { Ok(()) } else { Err(StoreError::Failed) });
        }
        buf.clear();
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if self.sabotaged.load(Ordering::Acquire) {
            return Err(std::io::Error::other("no space left (sabotaged by a test)"));
        }
        self.segment.append(buf)?;
        self.dirty = true;
        if self.mode == FsyncMode::Always || self.last_sync.elapsed() >= self.interval {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.segment.file.sync_data()?;
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn sync_if_dirty(&mut self) {
        if self.dirty {
            self.unless_failed("sync", Self::sync);
        }
    }

    /// Runs `step` unless the journal already failed; its failure refuses
    /// writes from then on, since what reached the disk is no longer known.
    fn unless_failed(&mut self, what: &str, step: impl FnOnce(&mut Self) -> std::io::Result<()>) {
        if self.failed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = step(self) {
            tracing::error!(error = %e, segment = self.segment.number, "journal {what} failed: refusing writes from now on");
            self.failed.store(true, Ordering::Release);
        }
    }

    fn rotate(&mut self) -> Result<u64, StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed);
        }
        // Trimmed before the next exists: only the last segment may end in zeros.
        let trimmed = self.segment.trim().inspect(|()| self.dirty = false);
        let result = trimmed.map_err(StoreError::from).and_then(|()| Segment::create(&self.dir, self.segment.number + 1));
        match result {
            Ok(segment) => {
                self.segment = segment;
                Ok(self.segment.number)
            }
            Err(e) => {
                tracing::error!(error = %e, "journal rotation failed: refusing writes from now on");
                self.failed.store(true, Ordering::Release);
                Err(e)
            }
        }
    }
}
