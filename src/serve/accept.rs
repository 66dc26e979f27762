//! The one accept loop, shared by `listen` and `chat serve`.
//!
//! Policy: each accepted connection takes a permit from the server's cap
//! before anything else (a connection still in its TLS handshake counts, so
//! stalled handshakes cannot pile up); one over the cap is refused at once
//! (the caller's hook may say so, but must not wait on the peer); running out
//! of descriptors or buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses the loop
//! for [`ACCEPT_BACKOFF`] instead of spinning; every failure is logged.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Accepted, Listener};
use crate::shutdown::Shutdown;

/// How long the accept loop pauses after a resource error (EMFILE and
/// friends): long enough for connections to close, short enough not to be
/// noticed by clients waiting in the backlog.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts on `listener` until `shutdown`. Each connection that gets a permit
/// from `permits` is handed to `serve` with it (which should spawn, not wait);
/// the others are logged as `refused <peer>: <cap>` and handed to `refuse`,
/// which is awaited inline and so must not wait on the peer.
pub async fn accept_loop<R, RF, S>(
    listener: &Listener,
    permits: &Arc<Semaphore>,
    shutdown: &Shutdown,
    cap: &str,
    mut refuse: R,
    mut serve: S,
) where
    R: FnMut(Accepted) -> RF,
    RF: Future<Output = ()>,
    S: FnMut(Accepted, OwnedSemaphorePermit),
{
    let local = listener.local_addr();
    loop {
        let acc = tokio::select! {
            _ = shutdown.wait() => return,
            r = listener.accept(&local) => r,
        };
        let acc = match acc {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {}", crate::error::describe_io(&e));
                if is_resource_error(&e) {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
                continue;
            }
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => serve(acc, permit),
            Err(_) => {
                tracing::info!("refused {}: {cap}", acc.peer());
                refuse(acc).await;
            }
        }
    }
}

/// Errors that say the process or system is out of something: retrying at
/// once would fail again. Others (a peer that reset before we accepted it)
/// concern one connection only.
fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    ) || !matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
