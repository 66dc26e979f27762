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

use std::collections::HashMap;
use std::sync::Arc;
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

/// Serves datagrams until `shutdown` resolves (or the idle timeout fires).
pub async fn serve(
    sock: PacketSock,
    opts: DgramOpts,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let sock = Arc::new(sock);
    let peers = std::sync::Mutex::new(Peers {
        seen: HashMap::new(),
        last: None,
        ttl: opts.peer_ttl,
        max: opts.max_peers,
    });
    let activity = Activity::new();
    let relay = &opts.relay;

    let receive = async {
        let mut buf = vec![0u8; BUF_SIZE];
        let mut stdout = tokio::io::stdout();
        loop {
            let (n, from) = match sock.recv_from(&mut buf).await {
                Ok(r) => r,
                // An ICMP error from an earlier sendto; not fatal for a server.
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
                Err(e) => return Err(Error::io("cannot receive", e)),
            };
            if let Some(peer) = from.as_socket() {
                if !opts.acl.permits(peer.ip()) {
                    tracing::info!("dropped {n} bytes from {} (access list)", fmt_ip(peer));
                    continue;
                }
            }
            activity.touch();
            let data = &buf[..n];
            tracing::debug!("{n} bytes from {}", fmt_sockaddr(&from));
            if let Some(h) = &relay.hexdump {
                h.record(Direction::Received, data);
            }
            let reply_to = |bytes: Vec<u8>| {
                let sock = sock.clone();
                let to = from.clone();
                async move {
                    if let Err(e) = sock.send_to(&bytes, &to).await {
                        tracing::info!("cannot reply to {}: {e}", fmt_sockaddr(&to));
                    }
                }
            };
            match opts.service {
                DgramService::Greet => reply_to(greet::reply(data)).await,
                DgramService::Echo => reply_to(data.to_vec()).await,
                DgramService::Broker => {
                    // Only members are forwarded, so a datagram reaches at
                    // most max_peers - 1 others whoever claims to send it.
                    let others: Option<Vec<SockAddr>> = {
                        let mut p = peers.lock().unwrap_or_else(|e| e.into_inner());
                        p.heard(&from)
                            .then(|| p.recent().into_iter().filter(|a| *a != from).collect())
                    };
                    let Some(others) = others else {
                        tracing::info!(
                            "dropped {n} bytes from {}: {} peers already (--udp-broker-peers)",
                            fmt_sockaddr(&from),
                            opts.max_peers
                        );
                        continue;
                    };
                    for to in others {
                        let _ = sock.send_to(data, &to).await;
                    }
                }
                DgramService::Stdio => {
                    peers.lock().unwrap_or_else(|e| e.into_inner()).heard(&from);
                    if relay.recv {
                        let wrote = async {
                            stdout.write_all(data).await?;
                            stdout.flush().await
                        };
                        if let Err(e) = wrote.await {
                            if e.kind() == std::io::ErrorKind::BrokenPipe {
                                return Ok(());
                            }
                            return Err(Error::io("cannot write stdout", e));
                        }
                    }
                }
            }
        }
    };

    let send = async {
        if opts.service != DgramService::Stdio || !relay.send {
            return std::future::pending::<Result<()>>().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; BUF_SIZE];
        let mut messages = Messages::new(relay.datagram_size);
        loop {
            let n = stdin
                .read(&mut buf)
                .await
                .map_err(|e| Error::io("cannot read stdin", e))?;
            let mut msgs = messages.push(&buf[..n]);
            if n == 0 {
                msgs.extend(messages.finish());
            }
            let targets: Vec<SockAddr> = {
                let p = peers.lock().unwrap_or_else(|e| e.into_inner());
                if opts.keep_open {
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
                    h.record(Direction::Sent, m);
                }
                for to in &targets {
                    if let Err(e) = sock.send_to(m, to).await {
                        tracing::info!("cannot send to {}: {e}", fmt_sockaddr(to));
                    }
                }
            }
            activity.touch();
            if n == 0 {
                // stdin is done; keep serving what arrives.
                return std::future::pending::<Result<()>>().await;
            }
        }
    };

    let idle = async {
        match relay.idle {
            Some(d) => activity.idle_for(d).await,
            None => std::future::pending().await,
        }
    };

    tokio::select! {
        r = receive => r,
        r = send => r,
        _ = idle => Err(Error::Timeout {
            what: "idle timeout: no traffic".into(),
            after: relay.idle.unwrap_or_default(),
        }),
        _ = shutdown => Ok(()),
    }
}
