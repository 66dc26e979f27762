//! The chat server: accept loop, client cap, graceful shutdown.
//!
//! Takes an already-bound listener and a shutdown future, so tests bind
//! `127.0.0.1:0` and the CLI binds what the user asked for.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::console;
use super::front::Protocol;
use super::hub::{ChatHub, EventKind, Refusal, RoomEvent};
use super::protocol::check_nick;
use super::session::{self, SessionLimits};
use crate::conn::Link;
use crate::error::Result;
use crate::serve::{Accepted, Gate, Listener};

/// Everything the chat server needs.
pub struct ChatServer {
    /// Bound, listening socket.
    pub listener: Listener,
    /// Access list and TLS.
    pub gate: Gate,
    /// Per-client limits.
    pub session: SessionLimits,
    /// Most clients at once; more are told so and closed.
    pub max_clients: usize,
    /// Bytes queued per client before it is dropped as too slow.
    pub max_queue: usize,
    /// The operator's nick: the console's, and reserved (no client may take
    /// it) even without a console.
    pub operator_nick: String,
    /// Whether there is an operator console (stdin and stdout in the chat).
    pub console: bool,
    /// Whether the console reads stdin (false when stdin is closed).
    pub console_input: bool,
    /// Longest the shutdown may spend flushing queues.
    pub drain_timeout: Duration,
}

impl ChatServer {
    /// Serves until `shutdown` resolves, then says goodbye to everyone.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let hub = ChatHub::new(self.max_queue);
        let stop_reading = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(self.max_clients));
        let flusher = CancellationToken::new();
        tokio::spawn(hub.clone().run_flusher(flusher.clone()));
        check_nick(&self.operator_nick).map_err(|e| {
            crate::error::Error::Usage(format!(
                "invalid operator nick '{}': {e}",
                self.operator_nick
            ))
        })?;
        hub.reserve_nick(&self.operator_nick);
        if self.console {
            let m = hub
                .join_operator(
                    &self.operator_nick,
                    stop_reading.child_token(),
                    hard_stop.child_token(),
                )
                .map_err(crate::error::Error::Usage)?;
            tokio::spawn(console::run(hub.clone(), m, self.console_input));
        }
        let local = self.listener.local_addr();
        let session_limits = Arc::new(self.session.clone());
        let gate = Arc::new(self.gate.clone());
        tokio::pin!(shutdown);
        loop {
            let acc = tokio::select! {
                _ = &mut shutdown => break,
                r = self.listener.accept(&local) => r,
            };
            let acc = match acc {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {}", crate::error::describe_io(&e));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            // The permit comes first: a connection still in its TLS handshake
            // counts as a client, so stalled handshakes cannot pile up.
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                refuse(acc, &self.gate, self.max_clients).await;
                continue;
            };
            let hub = hub.clone();
            let limits = session_limits.clone();
            let gate = gate.clone();
            let (stop_reading, hard_stop) = (stop_reading.clone(), hard_stop.clone());
            tracker.spawn(async move {
                let _permit = permit;
                let Some(conn) = gate.admit(acc).await else {
                    return;
                };
                session::run(conn, hub, &limits, stop_reading, hard_stop).await;
            });
        }
        tracing::info!("shutting down: telling {} clients", hub.len());
        hub.shutdown();
        stop_reading.cancel();
        tracker.close();
        if tokio::time::timeout(self.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::info!("drain timeout: closing the remaining connections");
        }
        hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_millis(200), tracker.wait()).await;
        flusher.cancel();
        Ok(())
    }
}

/// Turns away a connection over `--max-clients` at once, without a task:
/// a plain client is told so in one non-blocking write (a fresh socket's
/// buffer takes it); a TLS one (no handshake is spent on it) is just closed.
async fn refuse(acc: Accepted, gate: &Gate, max: usize) {
    tracing::info!(
        "refused {}: {max} clients already (--max-clients)",
        acc.peer()
    );
    if gate.tls.is_some() {
        return;
    }
    // Without TLS, admitting is only the access-list check: it never waits.
    let Some(conn) = gate.admit(acc).await else {
        return;
    };
    let full = RoomEvent {
        room: "".into(),
        seq: 0,
        ts: super::hub::now_ms(),
        from: "".into(),
        kind: EventKind::Error(Refusal::ServerFull(max)),
    };
    let msg = Protocol::Line.encode(&full);
    let _ = match &conn.link {
        Link::Tcp(s) => s.try_write(&msg),
        Link::Unix(s) => s.try_write(&msg),
        _ => Ok(0),
    };
}
