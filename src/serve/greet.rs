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

/// Bytes read from a stream client at a time, and the size at which replies
/// are written out: with the partial line (at most `max`), what one client can
/// make the server hold, whatever it sends.
const CHUNK: usize = 16 * 1024;

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

    /// Feeds received bytes, appending the reply to every complete message to
    /// `out`, and stops once `out` holds `limit` bytes or more (so what it
    /// holds is at most `limit` plus one reply). Returns how much of `data` it
    /// took; the caller writes `out` out and feeds the rest.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>, limit: usize) -> usize {
        let mut rest = data;
        while !rest.is_empty() && out.len() < limit {
            let room = self.max - self.pending.len();
            let window = &rest[..rest.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    out.extend_from_slice(b"hello ");
                    out.extend_from_slice(&self.pending);
                    out.extend_from_slice(&window[..=i]);
                    self.pending.clear();
                    rest = &rest[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    rest = &rest[window.len()..];
                    if self.pending.len() == self.max {
                        self.flush(out);
                    }
                }
            }
        }
        data.len() - rest.len()
    }

    /// The client paused (or closed) mid-line: appends the reply to what it
    /// sent so far. False if nothing was waiting.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        out.extend_from_slice(b"hello ");
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        true
    }

    /// True when part of a line is waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Serves one client until it closes. Replies go into one reusable buffer
/// that is written out before anything more is read, so a client that sends
/// without reading stalls itself, not the server's memory.
pub async fn serve(
    conn: Conn,
    flush_after: Duration,
    max: usize,
    activity: &Activity,
) -> io::Result<()> {
    let packet = conn.is_packet();
    let (mut rd, mut wr) = conn.split();
    // A message socket needs room for a whole message.
    let mut buf = vec![0u8; if packet { BUF_SIZE } else { CHUNK }];
    let mut out = Vec::with_capacity(CHUNK);
    let mut greeter = Greeter::new(max);
    loop {
        let read = if greeter.has_pending() {
            match tokio::time::timeout(flush_after, rd.read(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    greeter.flush(&mut out);
                    wr.write(&out).await?;
                    out.clear();
                    activity.touch();
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
            out.extend_from_slice(b"hello ");
            out.extend_from_slice(&buf[..n]);
            wr.write(&out).await?;
            out.clear();
            continue;
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            let took = greeter.push(data, &mut out, CHUNK);
            data = &data[took..];
            if !out.is_empty() {
                wr.write(&out).await?;
                out.clear();
            }
        }
    }
    if greeter.flush(&mut out) {
        wr.write(&out).await?;
    }
    wr.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reply for `data`, in pieces of at most `limit` (+ one reply).
    fn replies(g: &mut Greeter, data: &[u8], limit: usize) -> Vec<Vec<u8>> {
        let mut rest = data;
        let mut got = Vec::new();
        loop {
            let mut out = Vec::new();
            let took = g.push(rest, &mut out, limit);
            rest = &rest[took..];
            if !out.is_empty() {
                got.push(out);
            }
            if rest.is_empty() {
                return got;
            }
        }
    }

    #[test]
    fn lines_keep_their_terminator() {
        let mut g = Greeter::new(100);
        assert_eq!(
            replies(&mut g, b"bob\r\nann\n", 1000).concat(),
            b"hello bob\r\nhello ann\n"
        );
    }

    #[test]
    fn a_line_split_across_reads_is_one_message() {
        let mut g = Greeter::new(100);
        assert!(replies(&mut g, b"bai", 100).is_empty());
        assert!(replies(&mut g, b"hui", 100).is_empty());
        assert_eq!(
            replies(&mut g, b"xin\nx", 100),
            vec![b"hello baihuixin\n".to_vec()]
        );
        let mut out = Vec::new();
        assert!(g.flush(&mut out));
        assert_eq!(out, b"hello x");
        assert!(!g.flush(&mut out));
    }

    #[test]
    fn binary_and_long_lines_lose_nothing() {
        let mut g = Greeter::new(4);
        assert_eq!(
            replies(&mut g, b"\x00\xffabcdef\n", 1000).concat(),
            b"hello \x00\xffabhello cdefhello \n"
        );
        assert!(!g.has_pending());
    }

    #[test]
    fn output_stops_near_the_limit_whatever_the_input() {
        // 10,000 empty lines: replies come out in pieces of about `limit`.
        let mut g = Greeter::new(100);
        let data = vec![b'\n'; 10_000];
        let pieces = replies(&mut g, &data, 64);
        assert!(pieces.iter().all(|p| p.len() < 64 + 7), "{:?}", pieces[0]);
        assert_eq!(pieces.concat(), b"hello \n".repeat(10_000));
    }
}
