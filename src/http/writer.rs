//! Where response bytes end up: bodies (decoded on the way), `-i` heads and `-w`
//! text, written to stdout or files by a thread of its own.
//!
//! Writes to a pipe nobody reads (or a terminal, or a socket) can block for
//! ever. Done on a runtime thread they would also block the timers, so `-m`
//! could not fire. For those the async side only waits for room on a bounded
//! channel (a few read buffers), and the blocking `write(2)` calls and the
//! decoding happen on the writer thread; its failures are remembered and
//! reported at the next call.
//!
//! A regular file or `/dev/null` never waits for a reader: bytes for one are
//! decoded and written at once on the caller's thread, which saves a hand-over
//! per piece (and the other thread's wake-ups) on a large download. Each
//! destination keeps its way for its whole life, so bytes for one destination
//! never overtake each other.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::decode::{DecodeError, Decoder};

/// Jobs queued for the writer thread at most; each holds at most one read buffer.
const QUEUE: usize = 4;

/// Where a body goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output.
    Stdout,
    /// This file, created (or truncated) when opened.
    File(PathBuf),
    /// This file, created if missing, written at its end (`-C` resume).
    Append(PathBuf),
    /// This file, which must not exist yet (`-J`: a name the server chose).
    New(PathBuf),
}

impl Destination {
    /// How messages name it: `stdout` or the path.
    pub fn name(&self) -> String {
        match self {
            Destination::Stdout => "stdout".into(),
            Destination::File(p) | Destination::Append(p) | Destination::New(p) => {
                p.display().to_string()
            }
        }
    }
}

/// Why output failed.
#[derive(Debug)]
pub enum WriteError {
    /// A file could not be created.
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// Writing (or flushing) failed.
    Write {
        /// Where it was going.
        dest: Destination,
        /// Why.
        err: io::Error,
    },
    /// The body's coding is corrupt.
    Decode(String),
    /// The writer thread is gone (it panicked).
    Gone,
}

impl WriteError {
    /// True when the reader of stdout went away (e.g. `| head`): a quiet end.
    pub fn is_stdout_closed(&self) -> bool {
        matches!(self, WriteError::Write { dest: Destination::Stdout, err }
            if err.kind() == io::ErrorKind::BrokenPipe)
    }
}

enum Job {
    /// Make this the destination of what follows (closing the previous one).
    Open(Destination),
    /// Decode the next body with this (None: write it as it is).
    Decoder(Option<Decoder>),
    /// Bytes for the destination, not decoded (a head for `-i`).
    Raw(Vec<u8>),
    /// Body bytes (this range of the buffer), decoded if a decoder is set.
    Body(Vec<u8>, std::ops::Range<usize>),
    /// Bytes for stdout whatever the destination (`-w`).
    Stdout(Vec<u8>),
    /// The body is complete: finish the decoder (its stream must be complete)
    /// and flush a file. A failure is reported at the next call.
    EndBody,
    /// Reply once everything before is written; `end_body` also finishes the
    /// decoder and flushes the file. The reply carries the first failure.
    Sync {
        end_body: bool,
        reply: oneshot::Sender<Option<WriteError>>,
    },
}

/// The handle to the writer thread. Dropping it lets the thread finish what is
/// queued and end; nothing waits for it, so a write blocked for ever never keeps
/// the process alive.
pub struct BodyWriter {
    tx: mpsc::Sender<Job>,
    failed: Arc<AtomicBool>,
    spare: Spare,
    /// Writes for destinations that never block, done on the caller's thread.
    here: Thread,
    /// The open destination is written `here`.
    inline: bool,
    /// Standard output never blocks (a regular file or `/dev/null`).
    stdout_inline: bool,
}

/// Buffers the thread has finished with, for the next pieces: no allocation (and
/// no page faults on fresh memory) per piece on a long body.
type Spare = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

impl BodyWriter {
    /// Starts the writer thread.
    pub fn start() -> io::Result<BodyWriter> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let spare = Spare::default();
        let thread = Thread {
            spare: spare.clone(),
            ..Thread::default()
        };
        std::thread::Builder::new()
            .name("sockit-output".into())
            .spawn(move || thread.run(rx, &flag))?;
        let stdout_inline = Out::stdout()
            .file()
            .metadata()
            .is_ok_and(|m| never_blocks(&m));
        Ok(BodyWriter {
            tx,
            failed,
            spare,
            here: Thread::default(),
            inline: false,
            stdout_inline,
        })
    }

    /// True when the open destination is written on the caller's thread: a
    /// body piece then goes straight from the read buffer, no copy, no hand-over.
    pub fn inline(&self) -> bool {
        self.inline
    }

    /// Runs `job` here, reporting its failure at once.
    fn here(&mut self, job: Job) -> Result<(), WriteError> {
        self.here.handle(job);
        match self.here.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `data` in a buffer of its own, a recycled one when there is one.
    fn copy(&self, data: &[u8]) -> Vec<u8> {
        // The smallest spare: big ones are worth more as read buffers.
        let mut v = match self.spare.lock() {
            Ok(mut s) => match (0..s.len()).min_by_key(|&i| s[i].capacity()) {
                Some(i) => s.swap_remove(i),
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        v.clear();
        v.extend_from_slice(data);
        v
    }

    /// Hands `job` to the open destination's writer: here or the thread.
    async fn route(&mut self, job: Job) -> Result<(), WriteError> {
        if self.inline {
            self.here(job)
        } else {
            self.send(job).await
        }
    }

    async fn send(&self, job: Job) -> Result<(), WriteError> {
        self.tx.send(job).await.map_err(|_| WriteError::Gone)?;
        if self.failed.load(Ordering::Relaxed) {
            return self.sync_thread(false).await;
        }
        Ok(())
    }

    /// Sends what follows to `dest` (a file is created now). A destination that
    /// never blocks is written here from now on, any other by the thread.
    pub async fn open(&mut self, dest: Destination) -> Result<(), WriteError> {
        let inline = match &dest {
            Destination::Stdout => self.stdout_inline,
            Destination::File(path) | Destination::Append(path) | Destination::New(path) => {
                path_never_blocks(path)
            }
        };
        // The previous destination (if here) is closed; one on the thread stays
        // open there until the thread's next Open, as before.
        self.here.out = None;
        self.inline = inline;
        self.route(Job::Open(dest)).await
    }

    /// Decodes the next body with `decoder`.
    pub async fn decoder(&mut self, decoder: Option<Decoder>) -> Result<(), WriteError> {
        self.route(Job::Decoder(decoder)).await
    }

    /// Writes `bytes` as they are (a head for `-i`).
    pub async fn raw(&mut self, bytes: Vec<u8>) -> Result<(), WriteError> {
        self.route(Job::Raw(bytes)).await
    }

    /// Writes body bytes, decoded (here at once, or copied into a buffer of the
    /// writer's for the thread).
    pub async fn body(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        if self.inline {
            self.here.body(bytes);
            return match self.here.failure.take() {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        let v = self.copy(bytes);
        let all = 0..v.len();
        self.send(Job::Body(v, all)).await
    }

    /// Writes `buf[range]` as body bytes, decoded; the buffer is kept for reuse.
    pub async fn body_owned(
        &mut self,
        buf: Vec<u8>,
        range: std::ops::Range<usize>,
    ) -> Result<(), WriteError> {
        self.route(Job::Body(buf, range)).await
    }

    /// A finished-with buffer of at least `len` bytes (contents undefined), or a
    /// new zeroed one.
    pub fn spare(&self, len: usize) -> Vec<u8> {
        if let Ok(mut s) = self.spare.lock() {
            if let Some(i) = s.iter().position(|b| b.len() >= len) {
                return s.swap_remove(i);
            }
        }
        vec![0; len]
    }

    /// Returns a buffer from [`BodyWriter::spare`] that was not used.
    pub fn give_back(&self, buf: Vec<u8>) {
        if let Ok(mut s) = self.spare.lock() {
            if s.len() < QUEUE + 2 {
                s.push(buf);
            }
        }
    }

    /// Writes `bytes` to stdout (`-w`).
    pub async fn stdout(&mut self, bytes: Vec<u8>) -> Result<(), WriteError> {
        if self.stdout_inline {
            return self.here(Job::Stdout(bytes));
        }
        self.send(Job::Stdout(bytes)).await
    }

    /// Ends the body without waiting for it to be written: the decoder checks its
    /// stream is complete and a file is flushed on the thread; a failure comes back
    /// from a later call (at the latest [`BodyWriter::sync`]). Not waiting keeps a
    /// run of small keep-alive requests from paying a round trip to the thread each.
    pub async fn end_body(&mut self) -> Result<(), WriteError> {
        self.route(Job::EndBody).await
    }

    /// Waits until everything queued is written. With `end_body`, also ends the
    /// body: the decoder checks its stream is complete and a file is flushed.
    pub async fn sync(&mut self, end_body: bool) -> Result<(), WriteError> {
        if self.inline && end_body {
            self.here(Job::EndBody)?;
        }
        self.sync_thread(end_body && !self.inline).await
    }

    /// Waits until everything queued for the thread is written.
    async fn sync_thread(&self, end_body: bool) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Sync { end_body, reply })
            .await
            .map_err(|_| WriteError::Gone)?;
        match rx.await {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(WriteError::Gone),
        }
    }
}

/// The open destination.
enum Out {
    Stdout(ManuallyDrop<File>),
    File(File, PathBuf),
}

impl Out {
    fn stdout() -> Out {
        // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never
        // closes it. Writing to it directly avoids std's line buffering on big bodies.
        Out::Stdout(ManuallyDrop::new(unsafe { File::from_raw_fd(1) }))
    }

    fn dest(&self) -> Destination {
        match self {
            Out::Stdout(_) => Destination::Stdout,
            Out::File(_, p) => Destination::File(p.clone()),
        }
    }

    fn file(&mut self) -> &mut File {
        match self {
            Out::Stdout(f) => f,
            Out::File(f, _) => f,
        }
    }
}

/// The writer thread's state.
#[derive(Default)]
struct Thread {
    out: Option<Out>,
    decoder: Option<Decoder>,
    /// Some body bytes reached the decoder (an empty coded body is complete).
    fed: bool,
    failure: Option<WriteError>,
    spare: Spare,
}

impl Thread {
    fn run(mut self, mut rx: mpsc::Receiver<Job>, failed: &AtomicBool) {
        while let Some(job) = rx.blocking_recv() {
            if let Job::Sync { end_body, reply } = job {
                if end_body && self.failure.is_none() {
                    self.end_body();
                }
                let _ = reply.send(self.failure.take());
                failed.store(false, Ordering::Relaxed);
                continue;
            }
            if self.failure.is_none() {
                self.handle(job);
                if self.failure.is_some() {
                    failed.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Open(dest) => {
                self.out = None;
                self.out = match dest {
                    Destination::Stdout => Some(Out::stdout()),
                    Destination::File(path) => open_file(File::create(&path), path, self),
                    Destination::Append(path) => {
                        let f = std::fs::OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(&path);
                        open_file(f, path, self)
                    }
                    Destination::New(path) => {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&path);
                        open_file(f, path, self)
                    }
                };
            }
            Job::Decoder(d) => {
                self.decoder = d;
                self.fed = false;
            }
            Job::Raw(bytes) => self.write(&bytes),
            Job::Body(bytes, range) => {
                self.body(bytes.get(range).unwrap_or(&[]));
                if let Ok(mut spare) = self.spare.lock() {
                    if spare.len() < QUEUE + 2 {
                        spare.push(bytes);
                    }
                }
            }
            Job::Stdout(bytes) => {
                let r = Out::stdout().file().write_all(&bytes);
                if let Err(err) = r {
                    self.failure = Some(WriteError::Write {
                        dest: Destination::Stdout,
                        err,
                    });
                }
            }
            Job::EndBody => self.end_body(),
            Job::Sync { .. } => {}
        }
    }

    /// Body bytes, decoded if a decoder is set.
    fn body(&mut self, piece: &[u8]) {
        self.fed |= !piece.is_empty();
        match self.decoder.as_mut() {
            None => self.write(piece),
            Some(d) => {
                let out = self.out.get_or_insert_with(Out::stdout);
                let r = d.write(piece, &mut |b| out.file().write_all(b));
                self.decoded(r);
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let out = self.out.get_or_insert_with(Out::stdout);
        if let Err(err) = out.file().write_all(bytes) {
            self.failure = Some(WriteError::Write {
                dest: out.dest(),
                err,
            });
        }
    }

    fn decoded(&mut self, r: Result<(), DecodeError>) {
        self.failure = match r {
            Ok(()) => return,
            Err(DecodeError::Corrupt(why)) => Some(WriteError::Decode(why)),
            Err(DecodeError::Output(err)) => Some(WriteError::Write {
                dest: self.out.as_ref().map_or(Destination::Stdout, Out::dest),
                err,
            }),
        };
    }

    fn end_body(&mut self) {
        if let (Some(mut d), true) = (self.decoder.take(), self.fed) {
            let out = self.out.get_or_insert_with(Out::stdout);
            let r = d.finish(&mut |b| out.file().write_all(b));
            self.decoded(r);
        }
        self.fed = false;
        if let (Some(Out::File(f, p)), None) = (self.out.as_mut(), &self.failure) {
            if let Err(err) = f.flush() {
                self.failure = Some(WriteError::Write {
                    dest: Destination::File(p.clone()),
                    err,
                });
            }
        }
    }
}

/// The open file, or the failure remembered.
fn open_file(r: io::Result<File>, path: PathBuf, t: &mut Thread) -> Option<Out> {
    match r {
        Ok(f) => Some(Out::File(f, path)),
        Err(err) => {
            t.failure = Some(WriteError::Create { path, err });
            None
        }
    }
}

/// A regular file or `/dev/null`: a write to it never waits for a reader.
fn never_blocks(m: &std::fs::Metadata) -> bool {
    let ft = m.file_type();
    ft.is_file()
        || (ft.is_char_device()
            && std::fs::metadata("/dev/null").is_ok_and(|null| null.rdev() == m.rdev()))
}

/// What `path` will be once created: a new file is a regular file; an existing
/// FIFO, socket or device other than `/dev/null` may block (even in `open`).
fn path_never_blocks(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => never_blocks(&m),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

impl std::fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyWriter")
    }
}
