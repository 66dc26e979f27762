//! A two-endpoint relay (port forward): accept on one endpoint, and for each
//! client dial the other and move bytes both ways until both are done.
//!
//! Between two plain stream sockets (TCP, Unix stream) the bytes go through
//! the zero-copy path of [`crate::relay::splice`], one blocking thread per
//! direction. Any other pair (TLS on either side, message sockets) goes
//! through an async copy: from a stream into a message socket each read
//! becomes one message. A side that finishes sending is half-closed on the
//! other (`shutdown(SHUT_WR)`, or TLS close_notify), so EOF passes through.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::conn::{Chunk, Conn, ConnReader, ConnWriter, Link};
use crate::dial::{dial, DialOpts};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::relay::{plural, splice, Stats, BUF_SIZE};
use crate::serve::accept::accept_loop;
use crate::serve::{Accepted, Gate, Listener};
use crate::shutdown::Shutdown;

/// What a forward needs besides its listener.
pub struct Forward {
    /// Where each client's bytes go (the second endpoint).
    pub target: Endpoint,
    /// How to reach it: family, `-w`, socket options, TLS.
    pub dial: DialOpts,
    /// Access list and TLS for the accepting side.
    pub gate: Gate,
    /// Serve clients concurrently and keep accepting (`-k`); else one client.
    pub keep_open: bool,
    /// Most clients at once; more are accepted and closed at once.
    pub max_conns: usize,
}

impl Forward {
    /// Accepts on `listener` until shutdown (or, without `keep_open`, until
    /// the one client is done). Without `keep_open` a failure to reach the
    /// target is the command's error; with it, it is logged and the client
    /// closed.
    pub async fn run(self, listener: Listener, shutdown: &Shutdown) -> Result<()> {
        let me = Arc::new(self);
        if !me.keep_open {
            return me.run_one(&listener, shutdown).await;
        }
        let permits = Arc::new(Semaphore::new(me.max_conns));
        let cap = format!(
            "{} already (-m/--max-conns)",
            plural(me.max_conns as u64, "connection")
        );
        // Over the cap: the connection is just closed.
        let refuse = |_| std::future::ready(());
        let serve = |acc: Accepted, permit: OwnedSemaphorePermit| {
            let me = me.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let Some(client) = me.gate.admit(acc).await else {
                    return;
                };
                let peer = client.peer.clone();
                if let Err(e) = me.serve(client).await {
                    tracing::warn!("{peer}: {e}");
                }
            });
        };
        accept_loop(&listener, &permits, shutdown, &cap, refuse, serve).await;
        Ok(())
    }

    /// Without `-k`: the first client the gate admits is served, and its
    /// failure is the command's.
    async fn run_one(&self, listener: &Listener, shutdown: &Shutdown) -> Result<()> {
        let local = listener.local_addr();
        let client = loop {
            let acc = match shutdown.race(listener.accept(&local)).await {
                Err(_) => return Ok(()),
                Ok(r) => r.map_err(|e| Error::io("cannot accept", e))?,
            };
            if let Some(client) = self.gate.admit(acc).await {
                break client;
            }
        };
        match shutdown.race(self.serve(client)).await {
            Ok(r) => r.map(drop),
            Err(_) => Ok(()),
        }
    }

    /// Dials the target for one client and relays until both directions end.
    async fn serve(&self, client: Conn) -> Result<Stats> {
        let peer = client.peer.clone();
        // On failure the client is dropped, so closed, here.
        let target = dial(&self.target, &self.dial).await?;
        tracing::info!("{peer} -> {} ({})", target.peer, target.proto);
        let stats = pair(client, target, self.dial.wait).await?;
        tracing::info!(
            "{peer} done: {} forwarded, {} back",
            plural(stats.sent, "byte"),
            plural(stats.received, "byte")
        );
        Ok(stats)
    }
}

/// Relays `a` and `b` both ways until both directions end; `sent` counts
/// a -> b. `linger`: once `a` is done, how long a message socket `b` that has
/// no end-of-stream (UDP, unix-dgram) may still answer.
pub async fn pair(a: Conn, b: Conn, linger: Duration) -> Result<Stats> {
    match (a.link, b.link) {
        (la @ (Link::Tcp(_) | Link::Unix(_)), lb @ (Link::Tcp(_) | Link::Unix(_))) => {
            zero_copy(plain_fd(la)?, plain_fd(lb)?).await
        }
        (la, lb) => {
            let endless = matches!(
                lb,
                Link::Packet {
                    eof_on_empty: false,
                    ..
                }
            );
            let a = Conn { link: la, ..a };
            let b = Conn { link: lb, ..b };
            copy_async(a, b, endless, linger).await
        }
    }
}

fn plain_fd(link: Link) -> Result<OwnedFd> {
    let fd: OwnedFd = match link {
        Link::Tcp(s) => s.into_std().map(Into::into),
        Link::Unix(s) => s.into_std().map(Into::into),
        _ => unreachable!("only plain stream sockets"),
    }
    .map_err(|e| Error::io("cannot take over the socket", e))?;
    socket2::SockRef::from(&fd)
        .set_nonblocking(false)
        .map_err(|e| Error::io("cannot configure the socket", e))?;
    Ok(fd)
}

/// One blocking thread per direction, splicing through a pipe. A direction
/// that ends cleanly half-closes its destination; one that fails shuts both
/// sockets down, which wakes the other thread.
async fn zero_copy(a: OwnedFd, b: OwnedFd) -> Result<Stats> {
    let (a, b) = (Arc::new(a), Arc::new(b));
    let way = |src: Arc<OwnedFd>, dst: Arc<OwnedFd>, count: Arc<AtomicU64>| {
        tokio::task::spawn_blocking(move || {
            let r = splice::copy(src.as_fd(), dst.as_fd(), &count);
            let (s, d) = (socket2::SockRef::from(&*src), socket2::SockRef::from(&*dst));
            match &r {
                Ok(()) => {
                    let _ = d.shutdown(std::net::Shutdown::Write);
                }
                Err(_) => {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    let _ = d.shutdown(std::net::Shutdown::Both);
                }
            }
            r
        })
    };
    let (sent, received) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let up = way(a.clone(), b.clone(), sent.clone());
    let down = way(b, a, received.clone());
    let (up, down) = tokio::join!(up, down);
    let joined = |r: std::result::Result<io::Result<()>, _>| {
        r.unwrap_or_else(|e: tokio::task::JoinError| Err(io::Error::other(e.to_string())))
    };
    let stats = Stats {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
    };
    match (joined(up), joined(down)) {
        (Ok(()), Ok(())) => Ok(stats),
        (Err(e), _) | (_, Err(e)) => Err(Error::io("relay failed", e)),
    }
}

/// Copies one direction; on EOF half-closes the destination.
async fn pump(mut rd: ConnReader, mut wr: ConnWriter, count: &AtomicU64) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match rd.read(&mut buf).await? {
            Chunk::Eof => {
                return match wr.shutdown().await {
                    Err(e) if !splice::is_peer_gone(&e) => Err(e),
                    _ => Ok(()),
                }
            }
            Chunk::Data(n) => {
                wr.write(&buf[..n]).await?;
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

async fn copy_async(a: Conn, b: Conn, endless: bool, linger: Duration) -> Result<Stats> {
    let (ra, wa) = a.split();
    let (rb, wb) = b.split();
    let (sent, received) = (AtomicU64::new(0), AtomicU64::new(0));
    let up = pump(ra, wb, &sent);
    let down = pump(rb, wa, &received);
    tokio::pin!(up, down);
    let failed = |e| Error::io("relay failed", e);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                r.map_err(failed)?;
                up_done = true;
                if endless {
                    // No end-of-stream will come: wait for late answers only.
                    let _ = tokio::time::timeout(linger, &mut down).await;
                    down_done = true;
                }
            }
            r = &mut down, if !down_done => {
                r.map_err(failed)?;
                down_done = true;
            }
        }
    }
    Ok(Stats {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
    })
}
