//! What `sockit ping` prints: the iputils-shaped text (header, one line per reply,
//! the statistics) and the `--json` objects. Pure formatting of values; nothing here
//! writes to a terminal or reads a clock.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::packet::Version;
use super::stats::Summary;

/// One reply, as the reply line and JSON object show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Length of the ICMP message (header + data), as iputils counts "bytes".
    pub bytes: usize,
    /// Who sent it.
    pub from: IpAddr,
    /// Its sequence number.
    pub seq: u16,
    /// TTL / hop limit it arrived with, if known.
    pub ttl: Option<u8>,
    /// Round-trip time.
    pub rtt: Duration,
    /// A second (or later) reply to the same request.
    pub dup: bool,
    /// It arrived after its `-W` timeout.
    pub late: bool,
    /// The ICMP checksum did not verify.
    pub bad_checksum: bool,
    /// It came from another address than the one pinged.
    pub different_address: bool,
    /// Shorter than the request: the data was cut.
    pub truncated: bool,
    /// First payload byte that differs from what was sent: (index, sent, received).
    pub wrong_data: Option<(usize, u8, u8)>,
}

/// An ICMP error about one of our requests ("Destination Host Unreachable").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// The router or host that sent the error.
    pub from: IpAddr,
    /// Sequence number of the request it is about.
    pub seq: u16,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// The words for it.
    pub message: String,
}

/// `PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.` / `PING ::1(::1) 56 data bytes`.
pub fn header(host: &str, addr: IpAddr, size: usize) -> String {
    match Version::of(addr) {
        Version::V4 => format!(
            "PING {host} ({addr}) {size}({}) bytes of data.",
            size + Version::V4.overhead()
        ),
        Version::V6 => format!("PING {host}({addr}) {size} data bytes"),
    }
}

fn micros(d: Duration) -> u128 {
    (d.as_nanos() + 500) / 1000
}

/// A reply's time the way iputils prints it: three decimals below 1 ms, two below
/// 10 ms, one below 100 ms, none above ("0.045", "1.23", "12.3", "123").
pub fn fmt_rtt(rtt: Duration) -> String {
    let us = micros(rtt);
    if us >= 100_000 - 50 {
        format!("{}", (us + 500) / 1000)
    } else if us >= 10_000 - 5 {
        format!("{}.{}", (us + 50) / 1000, ((us + 50) % 1000) / 100)
    } else if us >= 1000 {
        format!("{}.{:02}", (us + 5) / 1000, ((us + 5) % 1000) / 10)
    } else {
        format!("{}.{:03}", us / 1000, us % 1000)
    }
}

/// Milliseconds with microsecond precision: "0.045", "1004.120".
pub fn fmt_ms3(d: Duration) -> String {
    let us = micros(d);
    format!("{}.{:03}", us / 1000, us % 1000)
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// C's `%g` (six significant digits, trailing zeros dropped), as iputils prints the
/// loss: "0", "25", "33.3333", "1e-05".
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    const P: i32 = 6;
    // The exponent after rounding to P significant digits decides the style.
    let sci = format!("{:.*e}", (P - 1) as usize, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if !(-4..P).contains(&x) {
        let sign = if x < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_fraction_zeros(mantissa),
            x.unsigned_abs()
        )
    } else {
        let decimals = (P - 1 - x).max(0) as usize;
        strip_fraction_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

/// `64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms`, with iputils' markers.
#[cfg(test)]
pub fn reply_text(r: &Reply) -> String {
    reply_text_from(r, &r.from.to_string())
}

/// As [`reply_text`], with the sender shown as `shown` (`localhost (127.0.0.1)`).
pub fn reply_text_from(r: &Reply, shown: &str) -> String {
    let mut s = format!("{} bytes from {shown}: icmp_seq={}", r.bytes, r.seq);
    if let Some(ttl) = r.ttl {
        let _ = write!(s, " ttl={ttl}");
    }
    if r.truncated {
        s.push_str(" (truncated)");
        return s;
    }
    let _ = write!(s, " time={} ms", fmt_rtt(r.rtt));
    if r.dup {
        s.push_str(" (DUP!)");
    }
    if r.bad_checksum {
        s.push_str(" (BAD CHECKSUM!)");
    }
    if r.different_address {
        s.push_str(" (DIFFERENT ADDRESS!)");
    }
    if let Some((i, want, got)) = r.wrong_data {
        let _ = write!(
            s,
            "\nwrong data byte #{i} should be 0x{want:x} but was 0x{got:x}"
        );
    }
    s
}

/// `From 10.0.0.1 icmp_seq=3 Destination Host Unreachable`, the sender shown
/// as `shown` (`10.0.0.1`, or `router (10.0.0.1)`).
pub fn error_text_from(e: &ErrorReport, shown: &str) -> String {
    format!("From {shown} icmp_seq={} {}", e.seq, e.message)
}

/// How a replying address is shown: `name (addr)` when it has a name, as iputils
/// does without `-n`.
pub fn shown_from(addr: IpAddr, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n} ({addr})"),
        None => addr.to_string(),
    }
}

/// `-O`: `no answer yet for icmp_seq=5`.
pub fn no_answer_text(seq: u16) -> String {
    format!("no answer yet for icmp_seq={seq}")
}

/// `-O` with `--json`: `{"type":"no_answer","icmp_seq":5}`.
pub fn no_answer_json(seq: u16) -> String {
    format!("{{\"type\":\"no_answer\",\"icmp_seq\":{seq}}}")
}

/// `-p`: `PATTERN: 0xff00`, the line iputils prints before its header.
pub fn pattern_line(pattern: &[u8]) -> String {
    let mut s = String::from("PATTERN: 0x");
    for b in pattern {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A wall-clock time as seconds since the epoch with microseconds:
/// `1732960000.123456` (the `-D` prefix's number, and `ts` in `--json`).
pub fn epoch_micros(since_epoch: Duration) -> String {
    format!(
        "{}.{:06}",
        since_epoch.as_secs(),
        since_epoch.subsec_micros()
    )
}

/// Adds `"ts": <epoch_micros>` as the last field of a one-line JSON object.
pub fn with_ts(mut json: String, since_epoch: Duration) -> String {
    if json.ends_with('}') {
        json.pop();
        let sep = if json.ends_with('{') { "" } else { "," };
        let _ = write!(json, "{sep}\"ts\":{}}}", epoch_micros(since_epoch));
    }
    json
}

/// Flood mode's addition to the `rtt` line: `, ipg/ewma 0.041/0.018 ms` (the
/// mean gap between requests, and iputils' moving average of the round trip,
/// `ewma_8us` being eight times that average in microseconds).
pub fn ipg_ewma(s: &Summary, ewma_8us: u64) -> String {
    let ipg = s.elapsed.as_micros() / u128::from(s.transmitted.saturating_sub(1).max(1));
    format!(
        ", ipg/ewma {}.{:03}/{}.{:03} ms",
        ipg / 1000,
        ipg % 1000,
        ewma_8us / 8000,
        (ewma_8us / 8) % 1000
    )
}

/// A millisecond figure as a JSON number with iputils' microsecond precision:
/// `0.045`, `1004.12`, `2` (serde_json prints whole floats as `2.0`).
fn ms_number(d: Duration) -> serde_json::Value {
    let us = micros(d);
    if us % 1000 == 0 {
        serde_json::Value::from(u64::try_from(us / 1000).unwrap_or(u64::MAX))
    } else {
        serde_json::Value::from(us as f64 / 1000.0)
    }
}

/// A figure already formatted (e.g. by [`fmt_g`]) as a JSON number.
fn number(text: &str) -> serde_json::Value {
    match (text.parse::<u64>(), text.parse::<f64>()) {
        (Ok(n), _) => n.into(),
        (_, Ok(f)) => f.into(),
        _ => serde_json::Value::Null,
    }
}

/// One line of `--json` output; serde_json keeps the fields in this order.
fn json_line(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One reply as a JSON object on one line.
pub fn reply_json(r: &Reply) -> String {
    #[derive(Serialize)]
    struct ReplyLine {
        r#type: &'static str,
        from: String,
        bytes: usize,
        icmp_seq: u16,
        ttl: Option<u8>,
        time_ms: serde_json::Value,
        dup: bool,
        late: bool,
        bad_checksum: bool,
        different_address: bool,
        truncated: bool,
        wrong_data_byte: Option<usize>,
    }
    json_line(&ReplyLine {
        r#type: "reply",
        from: r.from.to_string(),
        bytes: r.bytes,
        icmp_seq: r.seq,
        ttl: r.ttl,
        time_ms: ms_number(r.rtt),
        dup: r.dup,
        late: r.late,
        bad_checksum: r.bad_checksum,
        different_address: r.different_address,
        truncated: r.truncated,
        wrong_data_byte: r.wrong_data.map(|(i, _, _)| i),
    })
}

/// An ICMP error as a JSON object on one line.
pub fn error_json(e: &ErrorReport) -> String {
    #[derive(Serialize)]
    struct ErrorLine<'a> {
        r#type: &'static str,
        from: String,
        icmp_seq: u16,
        icmp_type: u8,
        icmp_code: u8,
        message: &'a str,
    }
    json_line(&ErrorLine {
        r#type: "error",
        from: e.from.to_string(),
        icmp_seq: e.seq,
        icmp_type: e.icmp_type,
        icmp_code: e.code,
        message: &e.message,
    })
}

fn elapsed_ms(s: &Summary) -> u128 {
    (s.elapsed.as_nanos() + 500_000) / 1_000_000
}

/// The closing statistics, iputils style (starts with an empty line).
pub fn summary_text(host: &str, s: &Summary) -> String {
    let mut out = format!("\n--- {host} ping statistics ---\n");
    let _ = write!(
        out,
        "{} packets transmitted, {} received",
        s.transmitted, s.received
    );
    if s.duplicates > 0 {
        let _ = write!(out, ", +{} duplicates", s.duplicates);
    }
    if s.corrupted > 0 {
        let _ = write!(out, ", +{} corrupted", s.corrupted);
    }
    if s.errors > 0 {
        let _ = write!(out, ", +{} errors", s.errors);
    }
    if s.transmitted > 0 {
        let _ = write!(
            out,
            ", {}% packet loss, time {}ms",
            fmt_g(f64::from(s.loss_percent)),
            elapsed_ms(s)
        );
    }
    out.push('\n');
    if let (true, Some(r)) = (s.received > 0, s.rtt) {
        let _ = writeln!(
            out,
            "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
            fmt_ms3(r.min),
            fmt_ms3(r.avg),
            fmt_ms3(r.max),
            fmt_ms3(r.mdev)
        );
    }
    out
}

/// The closing statistics as one JSON object (RTT fields null without replies).
pub fn summary_json(host: &str, addr: IpAddr, s: &Summary) -> String {
    #[derive(Serialize)]
    struct SummaryLine<'a> {
        r#type: &'static str,
        host: &'a str,
        address: String,
        transmitted: u64,
        received: u64,
        duplicates: u64,
        corrupted: u64,
        errors: u64,
        late: u64,
        loss_percent: serde_json::Value,
        time_ms: u128,
        rtt_min_ms: Option<serde_json::Value>,
        rtt_avg_ms: Option<serde_json::Value>,
        rtt_max_ms: Option<serde_json::Value>,
        rtt_mdev_ms: Option<serde_json::Value>,
    }
    let rtt = |f: fn(&super::stats::RttSummary) -> Duration| {
        s.rtt.filter(|_| s.received > 0).map(|r| ms_number(f(&r)))
    };
    json_line(&SummaryLine {
        r#type: "summary",
        host,
        address: addr.to_string(),
        transmitted: s.transmitted,
        received: s.received,
        duplicates: s.duplicates,
        corrupted: s.corrupted,
        errors: s.errors,
        late: s.late,
        loss_percent: number(&fmt_g(f64::from(s.loss_percent))),
        time_ms: elapsed_ms(s),
        rtt_min_ms: rtt(|r| r.min),
        rtt_avg_ms: rtt(|r| r.avg),
        rtt_max_ms: rtt(|r| r.max),
        rtt_mdev_ms: rtt(|r| r.mdev),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::stats::RttSummary;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn rtt_precision_follows_iputils() {
        assert_eq!(fmt_rtt(us(45)), "0.045");
        assert_eq!(fmt_rtt(Duration::from_nanos(45_499)), "0.045");
        assert_eq!(fmt_rtt(us(999)), "0.999");
        assert_eq!(fmt_rtt(us(1000)), "1.00");
        assert_eq!(fmt_rtt(us(1234)), "1.23");
        assert_eq!(fmt_rtt(us(9994)), "9.99");
        assert_eq!(fmt_rtt(us(9995)), "10.0");
        assert_eq!(fmt_rtt(us(12_345)), "12.3");
        assert_eq!(fmt_rtt(us(99_950)), "100");
        assert_eq!(fmt_rtt(us(123_456)), "123");
        assert_eq!(fmt_ms3(us(1_004_120)), "1004.120");
    }

    #[test]
    fn percent_g_like_c() {
        assert_eq!(fmt_g(0.0), "0");
        assert_eq!(fmt_g(100.0), "100");
        assert_eq!(fmt_g(25.0), "25");
        assert_eq!(fmt_g(f64::from(100.0f32 / 3.0)), "33.3333");
        assert_eq!(fmt_g(f64::from(200.0f32 / 3.0)), "66.6667");
        assert_eq!(fmt_g(1.5), "1.5");
        assert_eq!(fmt_g(0.0123), "0.0123");
        assert_eq!(fmt_g(0.00001), "1e-05");
        assert_eq!(fmt_g(99.999999), "100");
        assert_eq!(fmt_g(1234567.0), "1.23457e+06");
    }

    fn reply() -> Reply {
        Reply {
            bytes: 64,
            from: "127.0.0.1".parse().unwrap(),
            seq: 1,
            ttl: Some(64),
            rtt: us(45),
            dup: false,
            late: false,
            bad_checksum: false,
            different_address: false,
            truncated: false,
            wrong_data: None,
        }
    }

    #[test]
    fn reply_lines() {
        let mut r = reply();
        assert_eq!(
            reply_text(&r),
            "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms"
        );
        r.dup = true;
        r.ttl = None;
        assert_eq!(
            reply_text(&r),
            "64 bytes from 127.0.0.1: icmp_seq=1 time=0.045 ms (DUP!)"
        );
        r.truncated = true;
        assert_eq!(
            reply_text(&r),
            "64 bytes from 127.0.0.1: icmp_seq=1 (truncated)"
        );
        let mut w = reply();
        w.wrong_data = Some((9, 9, 0xff));
        assert!(reply_text(&w).ends_with("\nwrong data byte #9 should be 0x9 but was 0xff"));
        assert_eq!(
            reply_json(&reply()),
            "{\"type\":\"reply\",\"from\":\"127.0.0.1\",\"bytes\":64,\"icmp_seq\":1,\"ttl\":64,\
             \"time_ms\":0.045,\"dup\":false,\"late\":false,\"bad_checksum\":false,\
             \"different_address\":false,\"truncated\":false,\"wrong_data_byte\":null}"
        );
    }

    #[test]
    fn headers() {
        assert_eq!(
            header("127.0.0.1", "127.0.0.1".parse().unwrap(), 56),
            "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data."
        );
        assert_eq!(
            header("::1", "::1".parse().unwrap(), 56),
            "PING ::1(::1) 56 data bytes"
        );
    }

    fn summary() -> Summary {
        Summary {
            transmitted: 3,
            received: 2,
            duplicates: 1,
            corrupted: 0,
            errors: 2,
            late: 0,
            loss_percent: 100.0f32 / 3.0,
            elapsed: Duration::from_micros(2_002_400),
            rtt: Some(RttSummary {
                min: us(25),
                avg: us(194),
                max: us(533),
                mdev: us(239),
            }),
        }
    }

    #[test]
    fn summary_lines() {
        assert_eq!(
            summary_text("localhost", &summary()),
            "\n--- localhost ping statistics ---\n\
             3 packets transmitted, 2 received, +1 duplicates, +2 errors, 33.3333% packet loss, time 2002ms\n\
             rtt min/avg/max/mdev = 0.025/0.194/0.533/0.239 ms\n"
        );
        let none = Summary {
            received: 0,
            duplicates: 0,
            errors: 0,
            loss_percent: 100.0,
            rtt: None,
            ..summary()
        };
        assert_eq!(
            summary_text("h", &none),
            "\n--- h ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2002ms\n"
        );
        assert_eq!(
            summary_json("h\"x", "::1".parse().unwrap(), &none),
            "{\"type\":\"summary\",\"host\":\"h\\\"x\",\"address\":\"::1\",\"transmitted\":3,\
             \"received\":0,\"duplicates\":0,\"corrupted\":0,\"errors\":0,\"late\":0,\
             \"loss_percent\":100,\"time_ms\":2002,\"rtt_min_ms\":null,\"rtt_avg_ms\":null,\
             \"rtt_max_ms\":null,\"rtt_mdev_ms\":null}"
        );
        assert!(summary_json("h", "::1".parse().unwrap(), &summary())
            .contains("\"loss_percent\":33.3333,\"time_ms\":2002,\"rtt_min_ms\":0.025"));
    }

    #[test]
    fn habits_d_o_p_and_flood_figures() {
        let t = Duration::new(1_732_960_000, 123_456_789);
        assert_eq!(epoch_micros(t), "1732960000.123456");
        assert_eq!(
            with_ts(r#"{"type":"reply","x":1}"#.into(), t),
            r#"{"type":"reply","x":1,"ts":1732960000.123456}"#
        );
        assert_eq!(with_ts("{}".into(), t), r#"{"ts":1732960000.123456}"#);
        let v: serde_json::Value = serde_json::from_str(&with_ts(reply_json(&reply()), t)).unwrap();
        assert!(v["ts"].as_f64().unwrap() > 1.7e9);
        assert_eq!(no_answer_text(6), "no answer yet for icmp_seq=6");
        assert_eq!(no_answer_json(6), r#"{"type":"no_answer","icmp_seq":6}"#);
        assert_eq!(pattern_line(&[0xff, 0x00]), "PATTERN: 0xff00");
        assert_eq!(
            shown_from("127.0.0.1".parse().unwrap(), Some("localhost")),
            "localhost (127.0.0.1)"
        );
        assert_eq!(shown_from("::1".parse().unwrap(), None), "::1");
        let mut s = summary();
        s.transmitted = 3;
        s.elapsed = Duration::from_micros(82);
        // 82 us over 2 gaps; ewma 18 us (x8 = 144).
        assert_eq!(ipg_ewma(&s, 144), ", ipg/ewma 0.041/0.018 ms");
    }

    #[test]
    fn json_strings_are_escaped_and_numbers_keep_their_precision() {
        let e = ErrorReport {
            from: "127.0.0.1".parse().unwrap(),
            seq: 1,
            icmp_type: 3,
            code: 1,
            message: "a\"b\\c\n\u{1}".into(),
        };
        assert!(error_json(&e).ends_with(",\"message\":\"a\\\"b\\\\c\\n\\u0001\"}"));
        assert_eq!(ms_number(us(45)).to_string(), "0.045");
        assert_eq!(ms_number(us(1_004_120)).to_string(), "1004.12");
        assert_eq!(ms_number(us(2_000)).to_string(), "2");
        assert_eq!(number("33.3333").to_string(), "33.3333");
        assert_eq!(number("100").to_string(), "100");
    }
}
