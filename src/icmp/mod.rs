//! ICMP echo, for `sockit ping`: the tutorial's `SOCK_RAW` row put to work.
//!
//! - [`packet`]: wire formats (checksum, echo request, IPv4 header, replies and
//!   errors). Sans-IO.
//! - [`stats`]: one run's bookkeeping: sequence numbers, duplicates, late replies,
//!   loss and min/avg/max/mdev. Sans-IO.
//! - [`report`]: the iputils-shaped text and the `--json` objects. Sans-IO.
//! - [`socket`]: raw or unprivileged ICMP sockets on tokio, with kernel timestamps.
//! - [`pinger`]: one run's send/receive loop, replies and errors to a reporter.
//!
//! The subcommand itself (flags, what goes to stdout) is `cmd::ping`.

pub mod packet;
pub mod pinger;
pub mod report;
pub mod socket;
pub mod stats;

/// A random 64-bit value for the echo identifier and the payload nonce, so that
/// concurrent pings on the same host do not take each other's replies.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // std seeds `RandomState` from the operating system's randomness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}
