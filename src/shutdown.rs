//! Shutdown as a value passed down: each `cmd::*::run` makes one [`Shutdown`]
//! (usually [`Shutdown::on_signals`]), and every stage that can wait (resolve,
//! connect, TLS handshake, transfer, accept loop) races its work against it with
//! [`Shutdown::race`] or [`Shutdown::wait`]. Nothing reaches into a global.
//!
//! Clones share one state: triggering any clone (a signal, or code calling
//! [`Shutdown::trigger`]) ends the waits of all of them.

use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// A shutdown request that can be waited for, raced against, or triggered.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    /// The signal that triggered it, 0 when none did.
    signal: Arc<AtomicI32>,
}

/// What a [`Shutdown::race`] returns when shutdown came first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted {
    /// The signal that asked for it (SIGINT, SIGTERM), if one did.
    pub signal: Option<i32>,
}

impl Interrupted {
    /// The shell's status for a process ended by this signal: 128 + its number
    /// (130 for SIGINT, 143 for SIGTERM); 1 when no signal asked.
    pub fn exit_code(self) -> u8 {
        match self.signal {
            Some(sig) => 128u8.saturating_add(sig.clamp(0, 127) as u8),
            None => 1,
        }
    }
}

impl Shutdown {
    /// A shutdown that only [`trigger`](Self::trigger) sets off.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that SIGINT (Ctrl-C) or SIGTERM sets off. The handlers are
    /// installed now, not when first awaited, so make it before announcing
    /// readiness: a signal that arrives in between is then not fatal.
    /// Needs a running tokio runtime.
    pub fn on_signals() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let me = Self::new();
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        let handle = me.clone();
        tokio::spawn(async move {
            let sig = match (term, int) {
                (Ok(mut term), Ok(mut int)) => tokio::select! {
                    _ = int.recv() => libc::SIGINT,
                    _ = term.recv() => libc::SIGTERM,
                    _ = handle.token.cancelled() => return,
                },
                _ => tokio::select! {
                    _ = tokio::signal::ctrl_c() => libc::SIGINT,
                    _ = handle.token.cancelled() => return,
                },
            };
            handle.signal.store(sig, Ordering::Relaxed);
            handle.token.cancel();
        });
        me
    }

    /// Asks everyone sharing this shutdown to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was asked for (meaningful once triggered).
    pub fn interrupted(&self) -> Interrupted {
        let sig = self.signal.load(Ordering::Relaxed);
        Interrupted {
            signal: (sig != 0).then_some(sig),
        }
    }

    /// Resolves once shutdown is asked for.
    pub async fn wait(&self) {
        self.token.cancelled().await
    }

    /// An owned future that resolves once shutdown is asked for (for
    /// `select!` loops that need a `'static` future).
    pub fn wait_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// Runs `work` until it finishes or shutdown is asked for, whichever is
    /// first; on shutdown `work` is dropped (cancelled).
    pub async fn race<F: Future>(&self, work: F) -> Result<F::Output, Interrupted> {
        tokio::select! {
            biased;
            _ = self.token.cancelled() => Err(self.interrupted()),
            out = work => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn race_ends_on_trigger_and_passes_results() {
        let s = Shutdown::new();
        assert_eq!(s.race(async { 7 }).await, Ok(7));
        let other = s.clone();
        let waiter = tokio::spawn(async move { other.race(std::future::pending::<()>()).await });
        s.trigger();
        assert_eq!(waiter.await.unwrap(), Err(Interrupted { signal: None }));
        assert!(s.is_triggered());
        assert_eq!(
            Interrupted {
                signal: Some(libc::SIGTERM)
            }
            .exit_code(),
            143
        );
        assert_eq!(
            Interrupted {
                signal: Some(libc::SIGINT)
            }
            .exit_code(),
            130
        );
    }
}
