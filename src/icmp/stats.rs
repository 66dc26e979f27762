//! The bookkeeping of one ping run: which sequence numbers went out and when, what
//! came back (first reply, duplicate, late, corrupted, error), which requests are
//! still waiting, and the summary arithmetic (loss, min/avg/max/mdev).
//!
//! Sans-IO: the caller passes every time in; nothing here reads a clock or a socket,
//! so the arithmetic is tested with made-up times.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// When a request left, on two clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentAt {
    /// Monotonic time since the start of the run.
    pub mono: Duration,
    /// Wall-clock time since the Unix epoch, read just before the send call, to pair
    /// with the kernel's receive timestamp (which is on the wall clock).
    pub wall: Option<Duration>,
}

/// When a reply arrived, on the same two clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivedAt {
    /// Monotonic time since the start of the run, read just after the receive call.
    pub mono: Duration,
    /// The kernel's receive timestamp (`SO_TIMESTAMPNS`), wall clock since the epoch.
    pub kernel: Option<Duration>,
}

/// The round-trip time of one exchange. The kernel's receive timestamp minus the
/// wall-clock send time is the closest to the wire; it is used unless the wall clock
/// visibly jumped in between (negative, or longer than the monotonic measurement,
/// which brackets it), in which case the monotonic difference is used.
pub fn round_trip(sent: SentAt, arrived: ArrivedAt) -> Duration {
    let mono = arrived.mono.saturating_sub(sent.mono);
    if let (Some(kernel), Some(wall)) = (arrived.kernel, sent.wall) {
        if let Some(d) = kernel.checked_sub(wall) {
            // The kernel stamps before our clock read after recvmsg; allow for the
            // two clocks' rates differing slightly (NTP slewing).
            let slack = Duration::from_millis(1) + mono / 1000;
            if d <= mono + slack {
                return d;
            }
        }
    }
    mono
}

/// What a reply turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first reply for its sequence number. `late`: it came after its timeout.
    Fresh {
        /// Round-trip time.
        rtt: Duration,
        /// Arrived after `-W` had expired for its request.
        late: bool,
    },
    /// Another reply for a sequence number already answered (iputils' "DUP!").
    Duplicate {
        /// Round-trip time from the request.
        rtt: Duration,
    },
    /// The checksum failed: counted as corrupted, not as received.
    Corrupted {
        /// Round-trip time from the request.
        rtt: Duration,
    },
    /// A sequence number this run never sent (or sent 65536 requests ago): not ours.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Which send this was (1-based), to tell a reused sequence number apart.
    number: u64,
    sent: SentAt,
    replied: bool,
    /// Replied, failed to send, or answered by an ICMP error: nothing more to wait for.
    resolved: bool,
}

/// Running min/avg/max/mdev (Welford's method, in nanoseconds).
#[derive(Debug, Clone, Copy, Default)]
struct RttStats {
    n: u64,
    mean: f64,
    m2: f64,
    min: Duration,
    max: Duration,
}

impl RttStats {
    fn add(&mut self, rtt: Duration) {
        if self.n == 0 {
            self.min = rtt;
            self.max = rtt;
        } else {
            self.min = self.min.min(rtt);
            self.max = self.max.max(rtt);
        }
        self.n += 1;
        let x = rtt.as_nanos() as f64;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn summary(&self) -> Option<RttSummary> {
        if self.n == 0 {
            return None;
        }
        let var = (self.m2 / self.n as f64).max(0.0);
        Some(RttSummary {
            min: self.min,
            avg: Duration::from_nanos(self.mean.round() as u64),
            max: self.max,
            mdev: Duration::from_nanos(var.sqrt().round() as u64),
        })
    }
}

/// Round-trip statistics over every reply with a good checksum, duplicates included
/// (as iputils counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttSummary {
    /// Shortest.
    pub min: Duration,
    /// Mean.
    pub avg: Duration,
    /// Longest.
    pub max: Duration,
    /// Population standard deviation ("mdev" in iputils).
    pub mdev: Duration,
}

/// The numbers of the closing summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Requests sent (including ones the kernel refused to send).
    pub transmitted: u64,
    /// Distinct sequence numbers answered with a good checksum.
    pub received: u64,
    /// Extra replies for sequence numbers already answered.
    pub duplicates: u64,
    /// Replies with a bad checksum.
    pub corrupted: u64,
    /// ICMP errors about our requests, and requests that could not be sent.
    pub errors: u64,
    /// Replies (counted in `received`) that came after their timeout.
    pub late: u64,
    /// `(transmitted - received) / transmitted` in percent, computed in single
    /// precision as iputils does (so it prints the same digits); 0 when nothing was sent.
    pub loss_percent: f32,
    /// From the first request to the last one sent.
    pub elapsed: Duration,
    /// Round-trip statistics, if any reply arrived.
    pub rtt: Option<RttSummary>,
}

/// One run's requests and replies.
#[derive(Debug)]
pub struct Tracker {
    timeout: Duration,
    slots: HashMap<u16, Slot>,
    /// Sends not known to be resolved, oldest first: (sequence, send number).
    pending: VecDeque<(u16, u64)>,
    transmitted: u64,
    received: u64,
    duplicates: u64,
    corrupted: u64,
    errors: u64,
    /// Distinct requests settled (answered, errored or not sent): what `-c` counts.
    settled: u64,
    late: u64,
    rtt: RttStats,
    first_sent: Option<Duration>,
    last_sent: Option<Duration>,
}

impl Tracker {
    /// A tracker where each request waits `timeout` for its reply.
    pub fn new(timeout: Duration) -> Self {
        Tracker {
            timeout,
            slots: HashMap::new(),
            pending: VecDeque::new(),
            transmitted: 0,
            received: 0,
            duplicates: 0,
            corrupted: 0,
            errors: 0,
            settled: 0,
            late: 0,
            rtt: RttStats::default(),
            first_sent: None,
            last_sent: None,
        }
    }

    /// The sequence number the next request will carry: 1, 2, ... wrapping at 65536
    /// like iputils.
    pub fn next_seq(&self) -> u16 {
        (self.transmitted.wrapping_add(1) & 0xffff) as u16
    }

    /// Records that the request with [`Tracker::next_seq`] left at `sent`; returns
    /// its sequence number.
    pub fn on_send(&mut self, sent: SentAt) -> u16 {
        let seq = self.next_seq();
        self.transmitted += 1;
        self.slots.insert(
            seq,
            Slot {
                number: self.transmitted,
                sent,
                replied: false,
                resolved: false,
            },
        );
        self.pending.push_back((seq, self.transmitted));
        // A request sent 65536 sends ago shares this sequence number; it can no
        // longer be matched, so forget it (memory stays bounded).
        if self.pending.len() > 1 << 16 {
            self.pending.pop_front();
        }
        self.first_sent.get_or_insert(sent.mono);
        self.last_sent = Some(sent.mono);
        seq
    }

    /// Records that the request just counted by [`Tracker::on_send`] could not be sent:
    /// it stays transmitted (as in iputils), counts as an error, and is not waited for.
    pub fn on_send_failed(&mut self, seq: u16) {
        if let Some(slot) = self.slots.get_mut(&seq) {
            settle(slot, &mut self.settled);
        }
        self.errors += 1;
    }

    /// Classifies a reply to `seq` that arrived at `at`; `checksum_ok` as verified.
    pub fn on_reply(&mut self, seq: u16, at: ArrivedAt, checksum_ok: bool) -> Verdict {
        let Some(slot) = self.slots.get_mut(&seq) else {
            return Verdict::Unknown;
        };
        let rtt = round_trip(slot.sent, at);
        if !checksum_ok {
            self.corrupted += 1;
            return Verdict::Corrupted { rtt };
        }
        self.rtt.add(rtt);
        if slot.replied {
            self.duplicates += 1;
            return Verdict::Duplicate { rtt };
        }
        slot.replied = true;
        settle(slot, &mut self.settled);
        self.received += 1;
        let late = at.mono > slot.sent.mono.saturating_add(self.timeout);
        if late {
            self.late += 1;
        }
        Verdict::Fresh { rtt, late }
    }

    /// Records an ICMP error about request `seq`; false if `seq` is not ours. Every
    /// error is counted, but a request already settled (answered, or named by an
    /// earlier error) is not settled again, so repeated errors cannot end `-c` early.
    pub fn on_error(&mut self, seq: u16) -> bool {
        let Some(slot) = self.slots.get_mut(&seq) else {
            return false;
        };
        settle(slot, &mut self.settled);
        self.errors += 1;
        true
    }

    /// When the oldest request still waiting for its reply gives up, or `None` when
    /// nothing is waiting (every request answered, failed, or timed out by `now`).
    pub fn next_expiry(&mut self, now: Duration) -> Option<Duration> {
        while let Some(&(seq, number)) = self.pending.front() {
            match self.slots.get(&seq) {
                Some(s) if s.number == number && !s.resolved => {
                    let expiry = s.sent.mono.saturating_add(self.timeout);
                    if expiry > now {
                        return Some(expiry);
                    }
                }
                _ => {}
            }
            self.pending.pop_front();
        }
        None
    }

    /// The sequence number of the last request sent, if any.
    pub fn last_seq(&self) -> Option<u16> {
        (self.transmitted > 0).then_some((self.transmitted & 0xffff) as u16)
    }

    /// Whether request `seq` has had a reply (a good one; duplicates aside).
    pub fn replied(&self, seq: u16) -> bool {
        self.slots.get(&seq).is_some_and(|s| s.replied)
    }

    /// Requests sent so far.
    pub fn transmitted(&self) -> u64 {
        self.transmitted
    }

    /// Distinct requests answered so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Errors so far (ICMP errors and failed sends).
    #[cfg(test)]
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Distinct requests settled so far: answered, named by an ICMP error, or not
    /// sent. Each sequence number counts once, as in iputils, so this is what `-c`
    /// compares against.
    pub fn settled(&self) -> u64 {
        self.settled
    }

    /// The closing numbers.
    pub fn summary(&self) -> Summary {
        let loss_percent = if self.transmitted == 0 {
            0.0
        } else {
            (self.transmitted.saturating_sub(self.received) as f64 * 100.0
                / self.transmitted as f64) as f32
        };
        let elapsed = match (self.first_sent, self.last_sent) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        };
        Summary {
            transmitted: self.transmitted,
            received: self.received,
            duplicates: self.duplicates,
            corrupted: self.corrupted,
            errors: self.errors,
            late: self.late,
            loss_percent,
            elapsed,
            rtt: self.rtt.summary(),
        }
    }
}

/// Marks `slot` resolved, counting it in `settled` the first time only.
fn settle(slot: &mut Slot, settled: &mut u64) {
    if !slot.resolved {
        slot.resolved = true;
        *settled += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn sent(mono: Duration) -> SentAt {
        SentAt { mono, wall: None }
    }

    fn at(mono: Duration) -> ArrivedAt {
        ArrivedAt { mono, kernel: None }
    }

    #[test]
    fn sequence_numbers_start_at_one_and_wrap() {
        let mut t = Tracker::new(ms(1000));
        assert_eq!(t.on_send(sent(ms(0))), 1);
        assert_eq!(t.on_send(sent(ms(1))), 2);
        t.transmitted = 65534;
        assert_eq!(t.on_send(sent(ms(2))), 65535);
        assert_eq!(t.on_send(sent(ms(3))), 0);
        assert_eq!(t.on_send(sent(ms(4))), 1);
    }

    #[test]
    fn summary_arithmetic() {
        let mut t = Tracker::new(ms(1000));
        // Three requests; replies after 100, 200 and 600 µs; a fourth is lost.
        for (i, rtt) in [100, 200, 600].into_iter().enumerate() {
            let base = ms(1000 * i as u64);
            let seq = t.on_send(sent(base));
            let v = t.on_reply(seq, at(base + us(rtt)), true);
            assert_eq!(
                v,
                Verdict::Fresh {
                    rtt: us(rtt),
                    late: false
                }
            );
        }
        t.on_send(sent(ms(3000)));
        let s = t.summary();
        assert_eq!((s.transmitted, s.received, s.duplicates), (4, 3, 0));
        assert_eq!(s.loss_percent, 25.0);
        assert_eq!(s.elapsed, ms(3000));
        let r = s.rtt.unwrap();
        assert_eq!((r.min, r.avg, r.max), (us(100), us(300), us(600)));
        // Population standard deviation of 100, 200, 600: sqrt(140000/3/1e6 ms^2).
        let expected = ((100f64 - 300.0).powi(2) + (200f64 - 300.0).powi(2) + 300f64.powi(2)) / 3.0;
        let mdev_us = r.mdev.as_nanos() as f64 / 1000.0;
        assert!((mdev_us - expected.sqrt()).abs() < 0.01, "{mdev_us}");
    }

    #[test]
    fn loss_matches_iputils_single_precision() {
        let mut t = Tracker::new(ms(1000));
        for i in 0..3 {
            t.on_send(sent(ms(i)));
        }
        t.on_reply(1, at(ms(1)), true);
        assert_eq!(t.summary().loss_percent, 200.0f32 / 3.0);
        assert!(t.summary().rtt.is_some());
        let empty = Tracker::new(ms(1)).summary();
        assert_eq!(empty.loss_percent, 0.0);
        assert_eq!(empty.rtt, None);
    }

    #[test]
    fn duplicates_count_in_rtt_but_not_in_received() {
        let mut t = Tracker::new(ms(1000));
        let seq = t.on_send(sent(ms(0)));
        assert!(matches!(
            t.on_reply(seq, at(us(100)), true),
            Verdict::Fresh { .. }
        ));
        assert_eq!(
            t.on_reply(seq, at(us(300)), true),
            Verdict::Duplicate { rtt: us(300) }
        );
        let s = t.summary();
        assert_eq!((s.received, s.duplicates, s.loss_percent), (1, 1, 0.0));
        assert_eq!(s.rtt.unwrap().avg, us(200));
    }

    #[test]
    fn corrupted_replies_are_not_received() {
        let mut t = Tracker::new(ms(1000));
        let seq = t.on_send(sent(ms(0)));
        assert!(matches!(
            t.on_reply(seq, at(us(50)), false),
            Verdict::Corrupted { .. }
        ));
        let s = t.summary();
        assert_eq!((s.received, s.corrupted, s.loss_percent), (0, 1, 100.0));
        assert_eq!(s.rtt, None);
        // A good copy afterwards still counts.
        assert!(matches!(
            t.on_reply(seq, at(us(60)), true),
            Verdict::Fresh { .. }
        ));
    }

    #[test]
    fn unknown_sequence_numbers_are_not_ours() {
        let mut t = Tracker::new(ms(1000));
        t.on_send(sent(ms(0)));
        assert_eq!(t.on_reply(9, at(ms(1)), true), Verdict::Unknown);
        assert!(!t.on_error(9));
        assert_eq!(t.summary().received, 0);
    }

    #[test]
    fn late_replies_count_and_are_flagged() {
        let mut t = Tracker::new(ms(500));
        let a = t.on_send(sent(ms(0)));
        let b = t.on_send(sent(ms(1000)));
        assert_eq!(
            t.on_reply(a, at(ms(1200)), true),
            Verdict::Fresh {
                rtt: ms(1200),
                late: true
            }
        );
        assert_eq!(
            t.on_reply(b, at(ms(1100)), true),
            Verdict::Fresh {
                rtt: ms(100),
                late: false
            }
        );
        let s = t.summary();
        assert_eq!((s.received, s.late), (2, 1));
    }

    #[test]
    fn expiry_follows_the_oldest_unanswered_request() {
        let mut t = Tracker::new(ms(500));
        assert_eq!(t.next_expiry(ms(0)), None);
        let a = t.on_send(sent(ms(0)));
        let b = t.on_send(sent(ms(200)));
        let c = t.on_send(sent(ms(400)));
        assert_eq!(t.next_expiry(ms(10)), Some(ms(500)));
        t.on_reply(a, at(ms(20)), true);
        assert_eq!(t.next_expiry(ms(30)), Some(ms(700)));
        // b times out; c is answered by an ICMP error.
        assert!(t.on_error(c));
        assert_eq!(t.next_expiry(ms(700)), None);
        let _ = b;
        let s = t.summary();
        assert_eq!((s.transmitted, s.received, s.errors), (3, 1, 1));
    }

    #[test]
    fn each_sequence_number_settles_once() {
        let mut t = Tracker::new(ms(500));
        let a = t.on_send(sent(ms(0)));
        t.on_reply(a, at(ms(1)), true);
        assert_eq!(t.settled(), 1);
        // Three errors quoting the answered request: counted, but not settled again.
        for _ in 0..3 {
            assert!(t.on_error(a));
        }
        assert_eq!((t.settled(), t.errors()), (1, 3));
        let b = t.on_send(sent(ms(10)));
        assert!(t.on_error(b));
        assert!(t.on_error(b));
        assert_eq!((t.settled(), t.errors()), (2, 5));
        // A reply after an error: received, still one settled request.
        assert!(matches!(
            t.on_reply(b, at(ms(20)), true),
            Verdict::Fresh { .. }
        ));
        assert_eq!((t.settled(), t.received()), (2, 2));
        let c = t.on_send(sent(ms(30)));
        t.on_send_failed(c);
        assert_eq!(t.settled(), 3);
        let s = t.summary();
        assert_eq!((s.transmitted, s.received, s.errors), (3, 2, 6));
    }

    #[test]
    fn failed_sends_are_not_waited_for() {
        let mut t = Tracker::new(ms(500));
        let a = t.on_send(sent(ms(0)));
        t.on_send_failed(a);
        assert_eq!(t.next_expiry(ms(1)), None);
        let s = t.summary();
        assert_eq!((s.transmitted, s.errors, s.loss_percent), (1, 1, 100.0));
    }

    #[test]
    fn pending_stays_bounded_over_a_wrap() {
        let mut t = Tracker::new(Duration::from_secs(1_000_000));
        for i in 0..70_000u64 {
            t.on_send(sent(Duration::from_micros(i)));
        }
        assert!(t.pending.len() <= 1 << 16);
        assert!(t.slots.len() <= 1 << 16);
        // Sequence 1 now names send 65537, not send 1.
        let v = t.on_reply(1, at(Duration::from_micros(65_536 + 10)), true);
        assert_eq!(
            v,
            Verdict::Fresh {
                rtt: us(10),
                late: false
            }
        );
    }

    #[test]
    fn kernel_timestamp_preferred_unless_the_wall_clock_jumped() {
        let wall = Duration::from_secs(1_700_000_000);
        let s = SentAt {
            mono: ms(10),
            wall: Some(wall),
        };
        let arrived = |mono, kernel| ArrivedAt {
            mono,
            kernel: Some(kernel),
        };
        // Kernel says 40 µs; our own clock read after recvmsg says 90 µs.
        assert_eq!(
            round_trip(s, arrived(ms(10) + us(90), wall + us(40))),
            us(40)
        );
        // Wall clock stepped back: negative, so the monotonic difference is used.
        assert_eq!(
            round_trip(s, arrived(ms(10) + us(90), wall - ms(5))),
            us(90)
        );
        // Wall clock stepped forward by an hour.
        assert_eq!(
            round_trip(
                s,
                arrived(ms(10) + us(90), wall + Duration::from_secs(3600))
            ),
            us(90)
        );
        // No kernel timestamp at all.
        assert_eq!(round_trip(s, at(ms(11))), ms(1));
    }
}
