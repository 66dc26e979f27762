//! `--greet`: the tutorial's greeting server, done correctly.
//!
//! Each message gets `hello <message>` back. A message is a line (its own `\n` or
//! `\r\n` kept in the reply), or whatever a client sent and then paused on without
//! a newline, or a chunk of `max` bytes of a longer line: nothing is ever lost and
//! memory per client stays bounded. On message sockets each message is one message.

use std::io;
use std::time::Duration;

use crate::conn::{Chunk, Conn};
use crate::relay::{Activity, BUF_SIZE};

/// The greeting framer: bytes in, replies out. Never touches a socket.
#[derive(Debug)]
pub struct Greeter {
    pending: Vec<u8>,
    max: usize,
}

/// The reply to one message.
pub fn reply(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + message.len());
    out.extend_from_slice(b"hello ");
    out.extend_from_slice(message);
    out
}

impl Greeter {
    /// A framer that cuts messages longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Greeter {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    /// Feeds received bytes; returns the replies for every complete message.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let room = self.max - self.pending.len();
            let window = &rest[..rest.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&window[..=i]);
                    rest = &rest[i + 1..];
                    out.push(reply(&self.pending));
                    self.pending.clear();
                }
                None => {
                    self.pending.extend_from_slice(window);
                    rest = &rest[window.len()..];
                    if self.pending.len() == self.max {
                        out.push(reply(&self.pending));
                        self.pending.clear();
                    }
                }
            }
        }
        out
    }

    /// The client paused (or closed) mid-line: reply to what it sent so far.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| {
            let r = reply(&self.pending);
            self.pending.clear();
            r
        })
    }

    /// True when part of a line is waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Serves one client until it closes.
pub async fn serve(
    conn: Conn,
    flush_after: Duration,
    max: usize,
    activity: &Activity,
) -> io::Result<()> {
    let packet = conn.is_packet();
    let (mut rd, mut wr) = conn.split();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut greeter = Greeter::new(max);
    loop {
        let read = if greeter.has_pending() {
            match tokio::time::timeout(flush_after, rd.read(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    if let Some(r) = greeter.flush() {
                        wr.write(&r).await?;
                        activity.touch();
                    }
                    continue;
                }
            }
        } else {
            rd.read(&mut buf).await?
        };
        activity.touch();
        let n = match read {
            Chunk::Data(n) => n,
            Chunk::Eof => break,
        };
        if packet {
            wr.write(&reply(&buf[..n])).await?;
            continue;
        }
        let replies = greeter.push(&buf[..n]);
        if !replies.is_empty() {
            wr.write(&replies.concat()).await?;
        }
    }
    if let Some(r) = greeter.flush() {
        wr.write(&r).await?;
    }
    wr.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_terminator() {
        let mut g = Greeter::new(100);
        assert_eq!(
            g.push(b"bob\r\nann\n"),
            vec![b"hello bob\r\n".to_vec(), b"hello ann\n".to_vec()]
        );
    }

    #[test]
    fn a_line_split_across_reads_is_one_message() {
        let mut g = Greeter::new(100);
        assert!(g.push(b"bai").is_empty());
        assert!(g.push(b"hui").is_empty());
        assert_eq!(g.push(b"xin\nx"), vec![b"hello baihuixin\n".to_vec()]);
        assert_eq!(g.flush(), Some(b"hello x".to_vec()));
        assert_eq!(g.flush(), None);
    }

    #[test]
    fn binary_and_long_lines_lose_nothing() {
        let mut g = Greeter::new(4);
        let replies = g.push(b"\x00\xffabcdef\n");
        assert_eq!(
            replies,
            vec![
                b"hello \x00\xffab".to_vec(),
                b"hello cdef".to_vec(),
                b"hello \n".to_vec()
            ]
        );
        assert!(!g.has_pending());
    }
}
