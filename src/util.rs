//! Small helpers several modules need, kept here so each exists once: a
//! mutex lock that ignores poisoning, a sleep to an optional deadline, and a
//! byte buffer seen as uninitialised memory for socket2's receive calls.
//! Nothing here knows about sockets, commands or protocols.

use std::mem::MaybeUninit;
use std::sync::{Mutex, MutexGuard};

/// Locks `m`, carrying on if another thread panicked while holding it: every
/// structure kept behind these locks stays consistent between statements, so
/// a panic elsewhere must not take the whole server down.
pub(crate) fn lock_unpoisoned<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sleeps until `at`, or forever when there is no deadline (for a `select!`
/// arm that is only sometimes armed).
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `buf` as the `MaybeUninit` slice socket2's `recv*` calls take.
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: initialised bytes are valid `MaybeUninit<u8>`, and the kernel only
    // ever writes initialised bytes into the buffer.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}
