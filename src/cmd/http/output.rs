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
    /// `-#`: a plain bar of '#' and a percentage.
    pub hashes: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Trace {
    pub(super) fn new(on: bool, progress: bool) -> Trace {
        Trace {
            on,
            progress,
            to_file: false,
            hashes: false,
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
            self.bar = Some(progress_bar(resp.framing, self.hashes, columns()));
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

/// The width of stderr's terminal, else `COLUMNS`, else 80.
fn columns() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize for a terminal descriptor.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        return ws.ws_col as usize;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c| c > 0)
        .unwrap_or(80)
}

/// The bar's template for `width` columns: the figures that fit, then a bar
/// filling the rest, never past the last column (a line that wraps is redrawn
/// on a new line at each tick).
fn bar_template(hashes: bool, known: bool, width: usize) -> String {
    // Keep one column free: a terminal wraps a line that fills the last one.
    let width = width.saturating_sub(1).max(12);
    if hashes {
        return if known {
            // "#####      45%": the bar and a 5-column percentage.
            format!("{{bar:{}}} {{percent:>3}}%", width.saturating_sub(5).max(5))
        } else {
            "{spinner} {bytes}".into()
        };
    }
    if !known {
        return if width >= 44 {
            "{spinner} {bytes:>10} {binary_bytes_per_sec:>12} {elapsed}".into()
        } else {
            "{spinner} {bytes:>10} {elapsed}".into()
        };
    }
    // Figures at their widest: "1023.99 MiB/1023.99 MiB" (23), the speed
    // " 1023.99 MiB/s" (14) and " ETA 59m" (8); the speed and ETA only if the
    // bar keeps 10 columns, the bar ("[...]") only if it keeps 5.
    let mut fixed = "{bytes:>10}/{total_bytes:10}".to_string();
    let mut used = 23;
    if width >= used + 22 + 3 + 10 {
        fixed.push_str(" {binary_bytes_per_sec:>12} ETA {eta:>3}");
        used += 22;
    }
    if width >= used + 3 + 5 {
        format!("{fixed} [{{bar:{}}}]", width - used - 3)
    } else {
        format!(
            "{{percent:>3}}% [{{bar:{}}}]",
            width.saturating_sub(7).max(3)
        )
    }
}

fn progress_bar(framing: Framing, hashes: bool, width: usize) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let (pb, known) = match framing {
        Framing::Length(n) => (ProgressBar::new(n), true),
        _ => (ProgressBar::new_spinner(), false),
    };
    if let Ok(style) = ProgressStyle::with_template(&bar_template(hashes, known, width)) {
        let chars = if hashes { "## " } else { "=> " };
        pb.set_style(style.progress_chars(chars));
    }
    pb
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
        "remote_ip" => s.remote_ip.clone(),
        "remote_port" => s.remote_port.clone(),
        "http_version" => s.http_version.clone(),
        "redirect_url" => s.redirect_url.clone(),
        "json" => json(s),
        _ => return None,
    })
}

/// The `-w` variables, as `%{json}` writes them.
const VARS: [&str; 16] = [
    "content_type",
    "http_code",
    "http_version",
    "num_redirects",
    "redirect_url",
    "remote_ip",
    "remote_port",
    "response_code",
    "size_download",
    "size_header",
    "speed_download",
    "time_appconnect",
    "time_connect",
    "time_starttransfer",
    "time_total",
    "url_effective",
];

/// `%{json}`: every variable in one JSON object; numbers as numbers.
fn json(s: &Transfer) -> String {
    let mut map = serde_json::Map::new();
    for name in VARS {
        let Some(v) = var(s, name) else { continue };
        let num = matches!(
            name,
            "http_code"
                | "response_code"
                | "num_redirects"
                | "size_download"
                | "size_header"
                | "speed_download"
                | "remote_port"
        ) || name.starts_with("time_");
        let value = match (num, v.parse::<u64>(), v.parse::<f64>()) {
            (true, Ok(n), _) => serde_json::Value::from(n),
            (true, _, Ok(f)) => serde_json::Value::from(f),
            _ => serde_json::Value::String(v),
        };
        map.insert(name.to_string(), value);
    }
    serde_json::Value::Object(map).to_string()
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
    fn bars_leave_the_last_column_free() {
        // The widest each field can be, by template.
        let widest = |t: &str| -> usize {
            let mut n = t.len();
            for (field, max) in [
                ("{bytes:>10}", 11),
                ("{total_bytes:10}", 11),
                ("{binary_bytes_per_sec:>12}", 13),
                ("{eta:>3}", 3),
                ("{percent:>3}", 3),
            ] {
                if t.contains(field) {
                    n = n - field.len() + max;
                }
            }
            if let Some(i) = t.find("{bar:") {
                let rest = &t[i + 5..];
                let j = rest.find('}').unwrap();
                n = n - (j + 6) + rest[..j].parse::<usize>().unwrap();
            }
            n
        };
        for w in 20..200 {
            for hashes in [false, true] {
                let t = bar_template(hashes, true, w);
                assert!(widest(&t) < w, "{w} columns: {t} is {} wide", widest(&t));
            }
        }
        assert!(bar_template(false, true, 120).contains("ETA"));
    }

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
