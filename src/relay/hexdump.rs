//! `-x/--hex-dump`: both directions of a connection, with per-direction offsets.
//!
//! Formatting and writing happen on a dedicated thread fed by a bounded
//! channel, so a slow file or terminal never blocks the runtime's threads:
//! [`HexDump::dump`] waits (asynchronously) only when the queue is full. The
//! thread flushes whenever the queue runs empty, and dropping the last handle
//! writes out everything queued before returning.

use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// Chunks queued for the writer thread at most (each up to one relay buffer).
const QUEUE: usize = 16;

/// Which way bytes went.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// From us to the peer.
    Sent,
    /// From the peer to us.
    Received,
}

/// A hex dump sink shared by both directions.
pub struct HexDump {
    tx: Option<mpsc::Sender<(Direction, Vec<u8>)>>,
    /// Says when the writer thread has written everything and ended.
    done: Mutex<std_mpsc::Receiver<()>>,
    /// Chunks written so far: progress, while waiting for the writer at the end.
    written: Arc<AtomicU64>,
}

impl HexDump {
    /// Dumps into `out` (a file, or stderr for `-`), from a thread of its own.
    /// Write failures are ignored: the dump is a side channel and must never
    /// break the connection.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (done_tx, done) = std_mpsc::channel();
        let written = Arc::new(AtomicU64::new(0));
        let w = written.clone();
        let _ = std::thread::Builder::new()
            .name("sockit-hexdump".into())
            .spawn(move || {
                write_loop(out, rx, &w);
                let _ = done_tx.send(());
            });
        HexDump {
            tx: Some(tx),
            done: Mutex::new(done),
            written,
        }
    }

    /// Records `data` moving in `dir`, waiting only while the queue is full.
    pub async fn dump(&self, dir: Direction, data: &[u8]) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((dir, data.to_vec())).await;
        }
    }
}

impl Drop for HexDump {
    fn drop(&mut self) {
        // Closing the channel ends the writer once the queue is written out.
        // Wait for that while it makes progress; a writer stuck on a sink
        // nobody reads (a full pipe) must not hold the process.
        self.tx.take();
        let mut seen = self.written.load(Ordering::Relaxed);
        let done = self.done.get_mut().unwrap_or_else(|p| p.into_inner());
        loop {
            match done.recv_timeout(Duration::from_millis(250)) {
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    let now = self.written.load(Ordering::Relaxed);
                    if now == seen {
                        return;
                    }
                    seen = now;
                }
                _ => return,
            }
        }
    }
}

fn write_loop(
    out: Box<dyn Write + Send>,
    mut rx: mpsc::Receiver<(Direction, Vec<u8>)>,
    written: &AtomicU64,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let (mut sent, mut received) = (0u64, 0u64);
    while let Some((dir, data)) = rx.blocking_recv() {
        let (mark, offset) = match dir {
            Direction::Sent => ('>', &mut sent),
            Direction::Received => ('<', &mut received),
        };
        let _ = out.write_all(format_lines(mark, *offset, &data).as_bytes());
        *offset += data.len() as u64;
        if rx.is_empty() {
            let _ = out.flush();
        }
        written.fetch_add(1, Ordering::Relaxed);
    }
    let _ = out.flush();
}

/// `> 00000010  68 65 6c 6c 6f 0a                                |hello.|`
pub fn format_lines(mark: char, base: u64, data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() / 16 * 80 + 80);
    for (i, row) in data.chunks(16).enumerate() {
        s.push_str(&format!("{mark} {:08x}  ", base + (i * 16) as u64));
        for j in 0..16 {
            match row.get(j) {
                Some(b) => s.push_str(&format!("{b:02x} ")),
                None => s.push_str("   "),
            }
            if j == 7 {
                s.push(' ');
            }
        }
        s.push_str(" |");
        for &b in row {
            s.push(if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            });
        }
        s.push_str("|\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_hexdump_c() {
        let out = format_lines('>', 16, b"hello\n\x00\x7f0123456789abcdef");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "> 00000010  68 65 6c 6c 6f 0a 00 7f  30 31 32 33 34 35 36 37  |hello...01234567|"
        );
        assert!(lines[1].starts_with("> 00000020  38 39 61 62"));
        assert!(lines[1].ends_with("|89abcdef|"));
    }
}
