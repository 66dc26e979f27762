//! IRCv3 `CHATHISTORY` (the `draft/chathistory` capability): `LATEST`,
//! `BEFORE`, `AFTER`, `AROUND` and `BETWEEN` on a channel the member is in,
//! answered from the hub's history inside one `chathistory` batch.
//!
//! References are `*` (LATEST only), `msgid=SEQ-TS-ROOM` (see
//! [`super::msgid`]) or `timestamp=YYYY-MM-DDThh:mm:ss.sssZ`. A msgid names
//! a sequence number in its room, and is checked against the stored
//! message's time (so a msgid of another database is unknown here). A
//! timestamp is turned into a sequence number by a binary search on the
//! room's messages (their times grow with their numbers): a few indexed
//! reads, whatever the room's size. Only messages and actions are
//! answered (no `event-playback`), oldest first.

use std::sync::Arc;

use super::{chan, encode_history_batch, parse_msgid, Flavor, SERVER};
use crate::chat::hub::{ChatHub, Id, RoomEvent};

/// Where a reference falls: messages strictly before it have
/// `seq < before`, messages strictly after it `seq > after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    before: u64,
    after: u64,
}

/// Why a reference is refused.
enum RefError {
    /// Not a reference (INVALID_PARAMS).
    Invalid,
    /// A msgid naming no message kept here (MESSAGE_ERROR).
    Unknown,
}

/// `FAIL CHATHISTORY CODE rest`.
fn fail(code: &str, rest: &str) -> String {
    format!(":{SERVER} FAIL CHATHISTORY {code} {rest}\r\n")
}

/// A parameter fit to be echoed in a reply.
fn word(s: &str) -> &str {
    super::session::tok(s)
}

/// The reply to `CHATHISTORY` from member `id`, whose encoding is `flavor`
/// (`None`: it lacks `batch` or `server-time`).
pub fn chathistory(
    hub: &ChatHub,
    id: Id,
    flavor: Option<Flavor>,
    params: &[String],
    max: usize,
) -> String {
    let p = |i: usize| params.get(i).map_or("", String::as_str);
    let sub = p(0).to_ascii_uppercase();
    let need = match sub.as_str() {
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" => 4,
        "BETWEEN" => 5,
        "" => return fail("NEED_MORE_PARAMS", "* :Missing parameters"),
        _ => {
            return fail(
                "INVALID_PARAMS",
                &format!("{} :Unknown subcommand", word(p(0))),
            )
        }
    };
    if params.len() < need || params.iter().take(need).any(String::is_empty) {
        return fail("NEED_MORE_PARAMS", &format!("{sub} :Missing parameters"));
    }
    let target = word(p(1));
    let not_here = || {
        fail(
            "INVALID_TARGET",
            &format!("{sub} {target} :Messages could not be retrieved"),
        )
    };
    // History of the channels one is in: not of others, nor private.
    let Some(name) = target.strip_prefix('#') else {
        return not_here();
    };
    let Some(room) = hub
        .rooms_of(id)
        .into_iter()
        .find(|r| r.eq_ignore_ascii_case(name))
    else {
        return not_here();
    };
    let Some(flavor) = flavor else {
        return fail(
            "MESSAGE_ERROR",
            &format!("{sub} {target} :CHATHISTORY needs the batch and server-time capabilities"),
        );
    };
    let limit = match p(need - 1).parse::<usize>() {
        Ok(n) if n > 0 => n.min(max),
        _ => {
            return fail(
                "INVALID_PARAMS",
                &format!("{sub} {} :Invalid limit", word(p(need - 1))),
            )
        }
    };
    let bound = |i: usize| -> Result<Bound, String> {
        let r = p(i);
        let star = i == 2 && sub == "LATEST";
        resolve(hub, &room, r, star).map_err(|e| match e {
            RefError::Invalid => fail(
                "INVALID_PARAMS",
                &format!("{sub} {} :Invalid message reference", word(r)),
            ),
            RefError::Unknown => fail(
                "MESSAGE_ERROR",
                &format!("{sub} {target} :Unknown message {}", word(r)),
            ),
        })
    };
    let a = match bound(2) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let read =
        |lo: u64, hi: u64, n: usize, from_end: bool| hub.history_said(&room, lo, hi, n, from_end);
    let events = match sub.as_str() {
        "LATEST" => read(a.after, u64::MAX, limit, true),
        "BEFORE" => read(0, a.before, limit, true),
        "AFTER" => read(a.after, u64::MAX, limit, false),
        "AROUND" => {
            // Half before it, half from it (a msgid's own message) on; one
            // side tops up what the other lacks.
            let mut v = read(0, a.before, limit, true);
            let after = read(a.before.saturating_sub(1), u64::MAX, limit, false);
            let from = after.len().min(limit - v.len().min(limit / 2));
            let before = v.len().min(limit - from);
            v.drain(..v.len() - before);
            v.extend(after.into_iter().take(from));
            v
        }
        _ => {
            let b = match bound(3) {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            // Counted from the first reference, towards the second.
            if a.after < b.before {
                read(a.after, b.before, limit, false)
            } else {
                read(b.after, a.before, limit, true)
            }
        }
    };
    let mut out = Vec::new();
    encode_history_batch(&chan(&room), &events, flavor, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Where reference `r` falls in `room`.
fn resolve(hub: &ChatHub, room: &Arc<str>, r: &str, star: bool) -> Result<Bound, RefError> {
    if r == "*" {
        return match star {
            true => Ok(Bound {
                before: u64::MAX,
                after: 0,
            }),
            false => Err(RefError::Invalid),
        };
    }
    let (kind, value) = r.split_once('=').ok_or(RefError::Invalid)?;
    match kind {
        "msgid" => {
            let (seq, ts, of) = parse_msgid(value).ok_or(RefError::Invalid)?;
            if !of.eq_ignore_ascii_case(room) || seq == 0 {
                return Err(RefError::Unknown);
            }
            let found = hub.history_said(room, seq - 1, seq.saturating_add(1), 1, false);
            match found.first() {
                Some(ev) if ev.seq == seq && ev.ts == ts => Ok(Bound {
                    before: seq,
                    after: seq,
                }),
                _ => Err(RefError::Unknown),
            }
        }
        "timestamp" => {
            let t = parse_time(value).ok_or(RefError::Invalid)?;
            Ok(Bound {
                before: first_where(hub, room, |ts| ts >= t),
                after: first_where(hub, room, |ts| ts > t).saturating_sub(1),
            })
        }
        _ => Err(RefError::Invalid),
    }
}

/// The sequence number of the first message of `room` whose time passes
/// `pred` (false, then true, as times grow), or `u64::MAX` if none does.
fn first_where(hub: &ChatHub, room: &str, pred: impl Fn(u64) -> bool) -> u64 {
    // The first message at or after `s`.
    let at = |s: u64| -> Option<RoomEvent> {
        hub.history_said(room, s.saturating_sub(1), u64::MAX, 1, false)
            .pop()
    };
    let Some(last) = hub.history_said(room, 0, u64::MAX, 1, true).pop() else {
        return u64::MAX;
    };
    if !pred(last.ts) {
        return u64::MAX;
    }
    // The answer is the message at `lo`; `pred` holds at `hi`.
    let (mut lo, mut hi) = (1, last.seq);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match at(mid) {
            Some(ev) if pred(ev.ts) => hi = mid,
            Some(ev) => lo = ev.seq + 1,
            None => hi = mid,
        }
    }
    at(lo).map_or(u64::MAX, |ev| ev.seq)
}

/// `YYYY-MM-DDThh:mm:ss[.sss]Z` as ms since 1970.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let num = |v: Option<&str>, len: usize| -> Option<i64> {
        let v = v?;
        (v.len() == len && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok())?
    };
    let (y, mo, day) = (num(d.next(), 4)?, num(d.next(), 2)?, num(d.next(), 2)?);
    let (hms, frac) = match time.split_once('.') {
        Some((hms, f)) => (hms, f),
        None => (time, ""),
    };
    let mut t = hms.splitn(3, ':');
    let (h, mi, sec) = (num(t.next(), 2)?, num(t.next(), 2)?, num(t.next(), 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    // Days from civil (H. Hinnant), the inverse of `event::rfc3339`'s.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = ((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms;
    u64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::event::rfc3339;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_parse_as_they_are_written() {
        for ms in [0u64, 1_764_507_907_123, 951_782_400_000, 4_102_444_799_999] {
            let s = rfc3339(UNIX_EPOCH + Duration::from_millis(ms));
            assert_eq!(parse_time(&s), Some(ms), "{s}");
        }
        assert_eq!(parse_time("2026-11-30T13:05:07Z"), Some(1_796_043_907_000));
        assert_eq!(
            parse_time("2026-11-30T13:05:07.5Z"),
            Some(1_796_043_907_500)
        );
        for bad in [
            "",
            "2026-11-30",
            "2026-13-01T00:00:00Z",
            "2026-11-30T13:05:07",
            "x",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn msgids_name_seq_time_and_room() {
        assert_eq!(parse_msgid("42-1700-my-room"), Some((42, 1700, "my-room")));
        assert_eq!(parse_msgid("42-1700-"), None);
        assert_eq!(parse_msgid("x-1-r"), None);
    }
}
