//! Listening on datagram sockets (UDP, `unix-dgram`): `recvfrom`/`sendto`.
//!
//! Datagrams from any peer go to stdout; stdin lines go to the last peer (or,
//! with `-k`, to every peer heard from within the peer TTL). `--greet`, `--echo`
//! and `--broker` answer each datagram from its own sender's address.
//!
//! `--allow`/`--deny` apply to every datagram: one from a refused address is
//! dropped unread (logged under `-v`) before it reaches stdout, a reply or the
//! peer list. Source addresses of datagrams can be forged, so the broker's
//! fan-out is capped: one datagram becomes at most `max_peers - 1` sends.

use crate::shutdown::Shutdown;
use crate::util::lock_unpoisoned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socket2::SockAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::relay::hexdump::Direction;
use crate::relay::{Activity, Messages, RelayOpts, BUF_SIZE};
use crate::serve::{greet, Acl};
use crate::sock::{fmt_ip, fmt_sockaddr, PacketSock};

/// What a datagram listener does with each datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DgramService {
    /// Print it; stdin replies.
    Stdio,
    /// Answer `hello <datagram>`.
    Greet,
    /// Send it back.
    Echo,
    /// Forward it to every other recent peer.
    Broker,
}

/// Peers heard from recently, for replies from stdin and for the broker.
#[derive(Debug)]
struct Peers {
    seen: HashMap<String, (SockAddr, Instant)>,
    last: Option<SockAddr>,
    ttl: Duration,
    max: usize,
}

impl Peers {
    /// Notes a datagram from `addr`; false if it is not remembered (the list
    /// is full of recent peers).
    fn heard(&mut self, addr: &SockAddr) -> bool {
        let now = Instant::now();
        if self.seen.len() >= self.max {
            let ttl = self.ttl;
            self.seen.retain(|_, (_, t)| now.duration_since(*t) < ttl);
        }
        self.last = Some(addr.clone());
        let key = fmt_sockaddr(addr);
        if self.seen.len() < self.max || self.seen.contains_key(&key) {
            self.seen.insert(key, (addr.clone(), now));
            return true;
        }
        false
    }

    fn recent(&self) -> Vec<SockAddr> {
        let now = Instant::now();
        self.seen
            .values()
            .filter(|(_, t)| now.duration_since(*t) < self.ttl)
            .map(|(a, _)| a.clone())
            .collect()
    }
}

/// Options for a datagram listener.
pub struct DgramOpts {
    /// What to do with each datagram.
    pub service: DgramService,
    /// `-k`: stdin goes to every recent peer instead of the last one.
    pub keep_open: bool,
    /// How long a peer counts as recent.
    pub peer_ttl: Duration,
    /// Most peers remembered at once (for the broker: most a datagram reaches).
    pub max_peers: usize,
    /// Who may send; datagrams from anyone else are dropped.
    pub acl: Acl,
    /// stdin/stdout behaviour (hex dump, datagram size, idle timeout).
    pub relay: RelayOpts,
}

/// A datagram listener while it runs.
struct Dgram {
    sock: Arc<PacketSock>,
    opts: DgramOpts,
    peers: Mutex<Peers>,
    activity: Activity,
}

/// Serves datagrams until `shutdown` is triggered (or the idle timeout fires).
pub async fn serve(sock: PacketSock, opts: DgramOpts, shutdown: Shutdown) -> Result<()> {
    let server = Dgram {
        sock: Arc::new(sock),
        peers: Mutex::new(Peers {
            seen: HashMap::new(),
            last: None,
            ttl: opts.peer_ttl,
            max: opts.max_peers,
        }),
        opts,
        activity: Activity::new(),
    };
    let idle = async {
        match server.opts.relay.idle {
            Some(d) => server.activity.idle_for(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = server.receive() => r,
        r = server.stdin_to_peers() => r,
        _ = idle => Err(Error::Timeout {
            what: "idle timeout: no traffic".into(),
            after: server.opts.relay.idle.unwrap_or_default(),
        }),
        _ = shutdown.wait() => Ok(()),
    }
}

impl Dgram {
    fn peers(&self) -> MutexGuard<'_, Peers> {
        lock_unpoisoned(&self.peers)
    }

    /// Receives and answers datagrams; returns when stdout is gone.
    async fn receive(&self) -> Result<()> {
        let mut buf = vec![0u8; BUF_SIZE];
        let mut stdout = tokio::io::stdout();
        loop {
            let (n, from) = match self.sock.recv_from(&mut buf).await {
                Ok(r) => r,
                // An ICMP error from an earlier sendto; not fatal for a server.
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
                Err(e) => return Err(Error::io("cannot receive", e)),
            };
            if let Some(peer) = from.as_socket() {
                if !self.opts.acl.permits(peer.ip()) {
                    tracing::info!("dropped {n} bytes from {} (access list)", fmt_ip(peer));
                    continue;
                }
            }
            self.activity.touch();
            let data = &buf[..n];
            tracing::debug!("{n} bytes from {}", fmt_sockaddr(&from));
            if let Some(h) = &self.opts.relay.hexdump {
                h.dump(Direction::Received, data).await;
            }
            match self.opts.service {
                DgramService::Greet => self.reply(&greet::reply(data), &from).await,
                DgramService::Echo => self.reply(data, &from).await,
                DgramService::Broker => self.forward(data, &from).await,
                DgramService::Stdio => {
                    self.peers().heard(&from);
                    if self.opts.relay.recv && !print(&mut stdout, data).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn reply(&self, bytes: &[u8], to: &SockAddr) {
        if let Err(e) = self.sock.send_to(bytes, to).await {
            tracing::info!("cannot reply to {}: {e}", fmt_sockaddr(to));
        }
    }

    /// The broker: `data` to every other member. Only members are forwarded,
    /// so a datagram reaches at most max_peers - 1 others whoever claims to
    /// send it.
    async fn forward(&self, data: &[u8], from: &SockAddr) {
        let others: Option<Vec<SockAddr>> = {
            let mut p = self.peers();
            p.heard(from)
                .then(|| p.recent().into_iter().filter(|a| a != from).collect())
        };
        let Some(others) = others else {
            tracing::info!(
                "dropped {} bytes from {}: {} peers already (--udp-broker-peers)",
                data.len(),
                fmt_sockaddr(from),
                self.opts.max_peers
            );
            return;
        };
        for to in others {
            let _ = self.sock.send_to(data, &to).await;
        }
    }

    /// stdin, cut into messages, to the last peer (every recent peer with -k).
    async fn stdin_to_peers(&self) -> Result<()> {
        let relay = &self.opts.relay;
        if self.opts.service != DgramService::Stdio || !relay.send {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; BUF_SIZE];
        let mut messages = Messages::new(relay.datagram_size);
        loop {
            let n = stdin
                .read(&mut buf)
                .await
                .map_err(|e| Error::io("cannot read stdin", e))?;
            let msgs: Vec<&[u8]> = if n == 0 {
                messages.finish().iter().collect()
            } else {
                messages.push(&buf[..n]).iter().collect()
            };
            let targets: Vec<SockAddr> = {
                let p = self.peers();
                if self.opts.keep_open {
                    p.recent()
                } else {
                    p.last.iter().cloned().collect()
                }
            };
            if targets.is_empty() && !msgs.is_empty() {
                tracing::info!("no peer to send to yet; stdin line dropped");
            }
            for m in &msgs {
                if let Some(h) = &relay.hexdump {
                    h.dump(Direction::Sent, m).await;
                }
                for to in &targets {
                    if let Err(e) = self.sock.send_to(m, to).await {
                        tracing::info!("cannot send to {}: {e}", fmt_sockaddr(to));
                    }
                }
            }
            self.activity.touch();
            if n == 0 {
                // stdin is done; keep serving what arrives.
                return std::future::pending().await;
            }
        }
    }
}

/// Writes a datagram to stdout; false once stdout is closed (a quiet end).
async fn print(stdout: &mut tokio::io::Stdout, data: &[u8]) -> Result<bool> {
    let wrote = async {
        stdout.write_all(data).await?;
        stdout.flush().await
    };
    match wrote.await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("cannot write stdout", e)),
    }
}
