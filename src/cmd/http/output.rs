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
            if let Ok(style) = ProgressStyle::with_template(
                "{bytes:>10}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} ETA {eta}",
            ) {
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
