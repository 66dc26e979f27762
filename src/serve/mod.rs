//! Serving accepted connections for `listen`: binding, the server (limits,
//! access lists, TLS handshakes, graceful shutdown) on the accept loop it
//! shares with the chat (`accept`), and the per-connection services: stdio
//! relay, greet, echo, broker and exec; datagram endpoints in [`dgram`].
//!
//! Servers take an already-bound listener and a [`Shutdown`], so tests can
//! bind `127.0.0.1:0` and the CLI binds what the user asked for.

pub(crate) mod accept;
pub(crate) mod acl;
pub mod dgram;
pub(crate) mod echo;
pub(crate) mod exec;
pub(crate) mod greet;
pub(crate) mod hub;

use crate::shutdown::Shutdown;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::{Chunk, Conn, Link};
use crate::endpoint::{resolve_bind, Endpoint, Family, Transport, UnixKind};
use crate::error::{Error, Result};
use crate::relay::hexdump::Direction;
use crate::relay::{self, Activity, Crlf, RelayOpts, BUF_SIZE};
use crate::sock::{
    self, fmt_ip, fmt_sockaddr, PacketListener, PacketSock, SockOpts, UnixPathGuard,
};
use crate::tls;

pub use acl::Acl;
pub use exec::ExecSpec;
use hub::FanOut;

/// What each accepted connection gets.
#[derive(Debug, Clone)]
pub enum Service {
    /// Its bytes to stdout; stdin to it (to every client with `-k`).
    Stdio,
    /// `hello <message>` for each message.
    Greet,
    /// RFC 862 echo.
    Echo,
    /// Its bytes to every other client.
    Broker,
    /// A child process per client.
    Exec(ExecSpec),
}

/// Caps on what peers can make the server hold.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Most connections served at once; more are accepted and closed.
    pub max_conns: usize,
    /// Greeting: longest message before it is cut.
    pub max_line: usize,
    /// Greeting: a partial line idle this long is a message.
    pub flush_partial: Duration,
    /// Broker and `-k`: bytes queued per client before it is dropped as too slow.
    pub max_queue: usize,
    /// How long to let connections finish after Ctrl-C / SIGTERM.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_conns: 1000,
            max_line: 64 * 1024,
            flush_partial: Duration::from_millis(250),
            max_queue: 1 << 20,
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// A bound, listening stream-like socket.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix stream.
    Unix(UnixListener),
    /// Unix seqpacket.
    SeqPacket(PacketListener),
}

/// A bound socket, ready to serve.
pub enum Bound {
    /// Connection-oriented: TCP, Unix stream, Unix seqpacket.
    Stream(Listener),
    /// Datagrams: UDP, Unix datagram.
    Datagram(PacketSock),
}

/// Binds `ep` for serving (and listens, for connection-oriented kinds). The
/// guard removes a Unix socket file when dropped.
pub async fn bind(
    ep: &Endpoint,
    family: Family,
    backlog: u32,
    opts: &SockOpts,
) -> Result<(Bound, Option<UnixPathGuard>)> {
    Ok(match ep {
        Endpoint::Ip {
            transport,
            host,
            port,
        } => {
            let addr = resolve_bind(host, *port, family).await?[0];
            let bound = match transport {
                Transport::Tcp => {
                    Bound::Stream(Listener::Tcp(sock::listen_tcp(addr, backlog, opts)?))
                }
                Transport::Udp => Bound::Datagram(sock::bind_udp(addr, opts)?),
            };
            (bound, None)
        }
        Endpoint::Unix { kind, name } => {
            let b = sock::bind_unix(*kind, name, backlog)?;
            let bound = match kind {
                UnixKind::Stream => {
                    let std: std::os::unix::net::UnixListener = b.socket.into();
                    std.set_nonblocking(true)
                        .map_err(|e| Error::io("cannot configure the socket", e))?;
                    Bound::Stream(Listener::Unix(
                        UnixListener::from_std(std)
                            .map_err(|e| Error::io("cannot register the socket", e))?,
                    ))
                }
                UnixKind::SeqPacket => {
                    Bound::Stream(Listener::SeqPacket(PacketListener::new(b.socket)?))
                }
                UnixKind::Datagram => Bound::Datagram(PacketSock::new(b.socket)?),
            };
            (bound, b.guard)
        }
    })
}

/// A fresh connection before the access check and TLS.
pub struct Accepted {
    link: Link,
    peer: String,
    peer_ip: Option<IpAddr>,
    local: String,
    proto: &'static str,
}

impl Accepted {
    /// The peer's address, formatted.
    pub fn peer(&self) -> &str {
        &self.peer
    }
}

impl Listener {
    /// The bound address, formatted (`getsockname`).
    pub fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(fmt_ip).unwrap_or_default(),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| {
                    if let Some(p) = a.as_pathname() {
                        return Some(p.display().to_string());
                    }
                    use std::os::linux::net::SocketAddrExt;
                    let std: std::os::unix::net::SocketAddr = a.into();
                    std.as_abstract_name()
                        .map(|n| format!("@{}", String::from_utf8_lossy(n)))
                })
                .unwrap_or_default(),
            Listener::SeqPacket(l) => l.local_addr().map(|a| fmt_sockaddr(&a)).unwrap_or_default(),
        }
    }

    /// Accepts one connection; `local` is this listener's formatted address.
    pub async fn accept(&self, local: &str) -> io::Result<Accepted> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Accepted {
                    local: s.local_addr().map(fmt_ip).unwrap_or_default(),
                    link: Link::Tcp(s),
                    peer: fmt_ip(peer),
                    peer_ip: Some(peer.ip().to_canonical()),
                    proto: "tcp",
                }
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Accepted {
                    link: Link::Unix(s),
                    peer: peer_cred(local),
                    peer_ip: None,
                    local: local.to_string(),
                    proto: "unix",
                }
            }
            Listener::SeqPacket(l) => {
                let (s, _) = l.accept().await?;
                Accepted {
                    link: Link::Packet {
                        sock: s,
                        eof_on_empty: true,
                    },
                    peer: peer_cred(local),
                    peer_ip: None,
                    local: local.to_string(),
                    proto: "unix-seqpacket",
                }
            }
        })
    }
}

fn peer_cred(local: &str) -> String {
    // Unix clients are usually unnamed; the listener's path is the useful name.
    format!("client of {local}")
}

/// Everything a stream-like server needs.
pub struct Server {
    /// The listening socket.
    pub listener: Listener,
    /// What each connection gets.
    pub service: Service,
    /// Access list and TLS.
    pub gate: Gate,
    /// Caps.
    pub limits: ServerLimits,
    /// Serve clients concurrently and keep going (`-k`).
    pub keep_open: bool,
    /// stdin/stdout behaviour.
    pub relay: RelayOpts,
}

/// Admission of fresh connections: the access list first (before any byte is
/// read), then the TLS handshake under a time limit.
#[derive(Clone)]
pub struct Gate {
    /// TLS, if serving it.
    pub tls: Option<tls::TlsServer>,
    /// Who may connect.
    pub acl: Acl,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Gate {
    /// The connection, ready for a service, or `None` if it was refused (logged).
    pub async fn admit(&self, acc: Accepted) -> Option<Conn> {
        if let Some(ip) = acc.peer_ip {
            if !self.acl.permits(ip) {
                tracing::info!("refused {} (access list)", acc.peer);
                return None;
            }
        }
        tracing::info!("connection from {} on {}", acc.peer, acc.local);
        let mut peer_cert = None;
        let link = match (&self.tls, acc.link) {
            (None, link) => link,
            (Some(tls), link) => {
                let hs = async {
                    Ok::<_, Error>(match link {
                        Link::Tcp(s) => {
                            let s = tls.accept(s).await?;
                            let subject = tls::peer_subject(s.get_ref().1);
                            (Link::Stream(Box::new(s) as crate::conn::BoxStream), subject)
                        }
                        Link::Unix(s) => {
                            let s = tls.accept(s).await?;
                            let subject = tls::peer_subject(s.get_ref().1);
                            (Link::Stream(Box::new(s) as crate::conn::BoxStream), subject)
                        }
                        _ => return Err(Error::Usage("TLS needs a stream endpoint".into())),
                    })
                };
                match tokio::time::timeout(self.handshake_timeout, hs).await {
                    Ok(Ok((link, subject))) => {
                        if let Some(subject) = &subject {
                            tracing::info!("{}: client certificate {subject}", acc.peer);
                        }
                        peer_cert = subject;
                        link
                    }
                    Ok(Err(e)) => {
                        tracing::info!("{}: {e}", acc.peer);
                        return None;
                    }
                    Err(_) => {
                        tracing::info!("{}: TLS handshake timed out", acc.peer);
                        return None;
                    }
                }
            }
        };
        Some(Conn {
            link,
            local: acc.local,
            peer: acc.peer,
            proto: if self.tls.is_some() {
                format!("{}+tls", acc.proto)
            } else {
                acc.proto.to_string()
            },
            peer_cert,
        })
    }
}

impl Server {
    /// Runs until shutdown (or, without `-k` and in stdio mode, until the one
    /// client leaves).
    pub async fn run(self, shutdown: Shutdown) -> Result<()> {
        if !self.keep_open && matches!(self.service, Service::Stdio) {
            let local = self.listener.local_addr();
            return self.run_single(&local, &shutdown).await;
        }
        let server = Arc::new(self);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(server.limits.max_conns));
        let hub = FanOut::new(server.limits.max_queue);
        let (stdout_tx, stdout_rx) = mpsc::channel::<Bytes>(64);
        if matches!(server.service, Service::Stdio) {
            tracker.spawn(stdout_writer(stdout_rx, cancel.clone()));
            if server.relay.send {
                // stdin is read on a blocking thread that may never return;
                // it is not tracked so shutdown does not wait for it.
                tokio::spawn(stdin_to_hub(hub.clone(), server.relay.clone()));
            }
        }
        let cap = format!(
            "{} already (-m/--max-conns)",
            crate::relay::plural(server.limits.max_conns as u64, "connection")
        );
        // Over the cap: the connection is just closed.
        let refuse = |_| std::future::ready(());
        let serve = |acc: Accepted, permit: OwnedSemaphorePermit| {
            let server = server.clone();
            let (cancel, hub, stdout_tx) = (cancel.clone(), hub.clone(), stdout_tx.clone());
            tracker.spawn(async move {
                let _permit = permit;
                server.admit_and_serve(acc, hub, stdout_tx, cancel).await
            });
        };
        accept::accept_loop(&server.listener, &permits, &shutdown, &cap, refuse, serve).await;
        tracing::info!("shutting down");
        cancel.cancel();
        tracker.close();
        if tokio::time::timeout(server.limits.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        Ok(())
    }

    /// One accepted connection: the gate, then its service, until it ends,
    /// goes idle or the server stops.
    async fn admit_and_serve(
        &self,
        acc: Accepted,
        hub: Arc<FanOut>,
        stdout_tx: mpsc::Sender<Bytes>,
        cancel: CancellationToken,
    ) {
        let peer = acc.peer.clone();
        let Some(conn) = self.gate.admit(acc).await else {
            return;
        };
        let activity = Activity::new();
        let work = self.serve_one(conn, &hub, stdout_tx, &activity);
        let idle = async {
            match self.relay.idle {
                Some(d) => activity.idle_for(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = work => match r {
                Ok(()) => tracing::info!("{peer} disconnected"),
                Err(e) => tracing::info!("{peer} disconnected: {}", crate::error::describe_io(&e)),
            },
            _ = idle => tracing::info!("{peer} closed: idle timeout"),
            _ = cancel.cancelled() => {}
        }
    }

    async fn run_single(&self, local: &str, shutdown: &Shutdown) -> Result<()> {
        let conn = loop {
            let acc = tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                r = self.listener.accept(local) => r.map_err(|e| Error::io("cannot accept", e))?,
            };
            if let Some(conn) = self.gate.admit(acc).await {
                break conn;
            }
        };
        let peer = conn.peer.clone();
        let stats = tokio::select! {
            r = relay::run(conn, &self.relay) => r?,
            _ = shutdown.wait() => return Ok(()),
        };
        tracing::info!(
            "{peer} disconnected: {} bytes sent, {} bytes received",
            stats.sent,
            stats.received
        );
        Ok(())
    }

    async fn serve_one(
        &self,
        conn: Conn,
        hub: &Arc<FanOut>,
        stdout: mpsc::Sender<Bytes>,
        activity: &Activity,
    ) -> io::Result<()> {
        match &self.service {
            Service::Greet => {
                greet::serve(
                    conn,
                    self.limits.flush_partial,
                    self.limits.max_line,
                    activity,
                )
                .await
            }
            Service::Echo => echo::serve(conn, activity).await,
            Service::Exec(spec) => exec::serve(conn, spec, activity).await,
            Service::Stdio => {
                let relay = &self.relay;
                member(conn, hub, activity, |_, data| {
                    let stdout = stdout.clone();
                    async move {
                        if let Some(h) = &relay.hexdump {
                            h.dump(Direction::Received, &data).await;
                        }
                        if relay.recv {
                            // Waiting here is flow control: stdout sets the pace.
                            let _ = stdout.send(data).await;
                        }
                    }
                })
                .await
            }
            Service::Broker => {
                member(conn, hub, activity, |me, data| {
                    hub.send_all(Some(me), data);
                    std::future::ready(())
                })
                .await
            }
        }
    }
}

/// Bytes a fan-out member's bytes are read in (and held) at a time.
const MEMBER_CHUNK: usize = 16 * 1024;

/// A roster member: its queue drains to the socket while its bytes go to
/// `sink` (called with the member's own id).
async fn member<F, Fut>(
    conn: Conn,
    hub: &Arc<FanOut>,
    activity: &Activity,
    sink: F,
) -> io::Result<()>
where
    F: Fn(u64, Bytes) -> Fut,
    Fut: Future<Output = ()>,
{
    let seat = hub.join(&conn.peer, matches!(conn.link, Link::Packet { .. }));
    let id = seat.id;
    let (mut rd, mut wr) = conn.split();
    let read = async {
        let mut buf = vec![
            0u8;
            if rd.is_packet() {
                BUF_SIZE
            } else {
                MEMBER_CHUNK
            }
        ];
        loop {
            match rd.read(&mut buf).await? {
                Chunk::Data(n) => {
                    activity.touch();
                    sink(id, Bytes::copy_from_slice(&buf[..n])).await;
                }
                Chunk::Eof => return Ok::<_, io::Error>(()),
            }
        }
    };
    let res = tokio::select! {
        r = read => r,
        r = seat.drain(&mut wr, || activity.touch()) => r,
    };
    if seat.was_dropped() {
        // Its queue is freed with it; hand that back to the system.
        drop(seat);
        hub::release_freed_memory();
    } else {
        drop(seat);
    }
    if res.is_ok() {
        // The peer finished: close our side properly (TLS close_notify, then
        // FIN), bounded in case it no longer reads.
        let _ = tokio::time::timeout(Duration::from_secs(2), wr.shutdown()).await;
    }
    res
}

async fn stdout_writer(mut rx: mpsc::Receiver<Bytes>, cancel: CancellationToken) {
    let mut stdout = tokio::io::stdout();
    let mut broken = false;
    loop {
        let data = tokio::select! {
            d = rx.recv() => match d { Some(d) => d, None => return },
            _ = cancel.cancelled() => return,
        };
        if broken {
            continue;
        }
        let res = async {
            stdout.write_all(&data).await?;
            stdout.flush().await
        };
        if let Err(e) = res.await {
            tracing::info!("stdout closed ({e}); client output is discarded from now on");
            broken = true;
        }
    }
}

async fn stdin_to_hub(hub: Arc<FanOut>, relay: RelayOpts) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut crlf = Crlf::default();
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let data = if relay.crlf {
            crlf.convert(&buf[..n])
        } else {
            buf[..n].to_vec()
        };
        if let Some(h) = &relay.hexdump {
            h.dump(Direction::Sent, &data).await;
        }
        if hub.is_empty() {
            tracing::info!("no client connected; {} bytes of stdin dropped", data.len());
        }
        hub.send_all(None, Bytes::from(data));
    }
}
