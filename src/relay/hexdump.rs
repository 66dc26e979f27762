//! `-x/--hex-dump`: both directions of a connection, with per-direction offsets.

use std::io::Write;
use std::sync::Mutex;

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
    inner: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    sent: u64,
    received: u64,
}

impl HexDump {
    /// Dumps into `out` (a file, or stderr for `-`).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        HexDump {
            inner: Mutex::new(State {
                out,
                sent: 0,
                received: 0,
            }),
        }
    }

    /// Records `data` moving in `dir`. Write failures are ignored: the dump is a
    /// side channel and must never break the connection.
    pub fn record(&self, dir: Direction, data: &[u8]) {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (mark, base) = match dir {
            Direction::Sent => ('>', st.sent),
            Direction::Received => ('<', st.received),
        };
        let text = format_lines(mark, base, data);
        let _ = st.out.write_all(text.as_bytes());
        let _ = st.out.flush();
        match dir {
            Direction::Sent => st.sent += data.len() as u64,
            Direction::Received => st.received += data.len() as u64,
        }
    }
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
