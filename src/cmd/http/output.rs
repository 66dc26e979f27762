//! What `sockit http` shows besides the body: the `-v` trace on stderr, the
//! progress bar, and the `-w` text.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::http::client::{Observer, Transfer};
use crate::http::parse::{Framing, Head, Header, Response};

/// `-v`: the global verbosity flag raises the log level; curl-style traces follow it.
pub(super) fn verbose() -> bool {
    tracing::enabled!(target: "sockit::http", tracing::Level::INFO)
}

/// Writes curl-style `*`, `>` and `<` lines on stderr under `-v`, and drives the
/// progress bar.
pub(super) struct Trace {
    /// `-v` is on.
    pub on: bool,
    /// Show a progress bar for bodies going to a file.
    pub progress: bool,
    /// The body in progress goes to a file (the bar is never drawn over stdout).
    pub to_file: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Trace {
    pub(super) fn new(on: bool, progress: bool) -> Trace {
        Trace {
            on,
            progress,
            to_file: false,
            bar: None,
        }
    }

    fn lines(&self, prefix: &str, block: &[u8]) {
        if !self.on {
            return;
        }
        let mut err = std::io::stderr().lock();
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let _ = writeln!(err, "{prefix} {}", crate::http::shown(line));
        }
    }
}

impl Observer for Trace {
    fn note(&mut self, text: &str) {
        if self.on {
            eprintln!("* {text}");
        }
    }

    fn request_head(&mut self, head: &[u8]) {
        self.lines(">", head);
    }

    fn response_head(&mut self, head: &Head) {
        if self.on {
            let raw = head.raw.strip_suffix(b"\n").unwrap_or(&head.raw);
            self.lines("<", raw);
        }
    }

    fn body_start(&mut self, resp: &Response) {
        if self.progress && self.to_file {
            self.bar = Some(progress_bar(resp.framing));
        }
    }

    fn body_bytes(&mut self, n: usize) {
        if let Some(pb) = &self.bar {
            pb.inc(n as u64);
        }
    }

    fn body_end(&mut self, trailers: &[Header]) {
        if let Some(pb) = self.bar.take() {
            pb.finish();
        }
        for t in trailers {
            let line = format!("{}: {}", t.name, crate::http::shown(&t.value));
            self.lines("<", line.as_bytes());
        }
    }
}

fn progress_bar(framing: Framing) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    match framing {
        Framing::Length(n) => {
            let pb = ProgressBar::new(n);
            // About 30 columns of text at most, so the bar fits a 40-column terminal.
            if let Ok(style) =
                ProgressStyle::with_template("{bytes}/{total_bytes} [{wide_bar}] {eta}")
            {
                pb.set_style(style.progress_chars("=> "));
            }
            pb
        }
        _ => {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {bytes:>10} {binary_bytes_per_sec} {elapsed}",
            ) {
                pb.set_style(style);
            }
            pb
        }
    }
}

fn secs(s: &Transfer, t: Option<Instant>) -> String {
    let d = t.map_or(Duration::ZERO, |t| t.saturating_duration_since(s.start));
    format!("{:.6}", d.as_secs_f64())
}

fn var(s: &Transfer, name: &str) -> Option<String> {
    Some(match name {
        "http_code" | "response_code" => format!("{:03}", s.http_code),
        "size_download" => s.size_download.to_string(),
        "size_header" => s.size_header.to_string(),
        "content_type" => s.content_type.clone(),
        "time_connect" => secs(s, s.connected),
        "time_appconnect" => secs(s, s.app_connected),
        "time_starttransfer" => secs(s, s.first_byte),
        "time_total" => secs(s, s.end),
        "speed_download" => {
            let t = s
                .end
                .map_or(0.0, |e| e.duration_since(s.start).as_secs_f64());
            let speed = if t > 0.0 {
                s.size_download as f64 / t
            } else {
                0.0
            };
            format!("{speed:.0}")
        }
        "url_effective" => s.url_effective.clone(),
        "num_redirects" => s.num_redirects.to_string(),
        _ => return None,
    })
}

/// Expands a `-w` format.
pub(super) fn write_out(s: &Transfer, fmt: &str) -> String {
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("%{") {
            if let Some((name, tail)) = after.split_once('}') {
                match var(s, name) {
                    Some(v) => out.push_str(&v),
                    None => tracing::warn!("unknown -w variable '{name}'"),
                }
                rest = tail;
                continue;
            }
        }
        if let Some(tail) = rest.strip_prefix("%%") {
            out.push('%');
            rest = tail;
            continue;
        }
        if c == '\\' {
            let mut it = rest[1..].chars();
            let esc = match it.next() {
                Some('n') => Some('\n'),
                Some('r') => Some('\r'),
                Some('t') => Some('\t'),
                Some('\\') => Some('\\'),
                _ => None,
            };
            if let Some(e) = esc {
                out.push(e);
                rest = &rest[2..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    /// A terminal of some width that keeps what is drawn on it.
    #[derive(Debug, Default)]
    struct Narrow {
        width: u16,
        drawn: std::sync::Mutex<Vec<String>>,
    }

    impl indicatif::TermLike for Narrow {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.drawn.lock().unwrap().push(s.to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_progress_bar_fits_40_columns() {
        for framing in [Framing::Length(3 << 30), Framing::UntilClose] {
            let term = std::sync::Arc::new(Narrow {
                width: 40,
                ..Narrow::default()
            });
            let pb = super::progress_bar(framing);
            pb.set_draw_target(indicatif::ProgressDrawTarget::term_like(Box::new(TermRef(
                term.clone(),
            ))));
            for _ in 0..4 {
                pb.inc(700 << 20);
                std::thread::sleep(std::time::Duration::from_millis(60));
                pb.tick();
            }
            pb.finish();
            let drawn = term.drawn.lock().unwrap();
            assert!(!drawn.is_empty());
            for line in drawn.iter() {
                assert!(
                    line.chars().count() <= 40,
                    "{} columns: {line:?}",
                    line.chars().count()
                );
            }
        }
    }

    /// The terminal shared between the bar and the test.
    #[derive(Debug)]
    struct TermRef(std::sync::Arc<Narrow>);

    impl indicatif::TermLike for TermRef {
        fn width(&self) -> u16 {
            self.0.width()
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.0.move_cursor_up(n)
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.0.move_cursor_down(n)
        }
        fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
            self.0.move_cursor_right(n)
        }
        fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
            self.0.move_cursor_left(n)
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.write_line(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.write_str(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.clear_line()
        }
        fn flush(&self) -> std::io::Result<()> {
            self.0.flush()
        }
    }

    use super::*;

    #[test]
    fn write_out_format() {
        let mut s = Transfer::new(&url::Url::parse("http://h/x").unwrap());
        s.http_code = 200;
        s.size_download = 42;
        s.num_redirects = 2;
        assert_eq!(
            write_out(
                &s,
                "%{http_code} %{size_download} %{num_redirects} %{url_effective}\\n%%"
            ),
            "200 42 2 http://h/x\n%"
        );
        assert_eq!(write_out(&s, "%{nope}x\\q"), "x\\q");
        assert_eq!(write_out(&s, "%{time_total}"), "0.000000");
    }
}
