//! The chat server: one accept loop per listener (`serve::accept`), the
//! shared client cap, graceful shutdown.
//!
//! Takes already-bound listeners, each with its front-end's protocol, and a
//! [`Shutdown`], so tests bind `127.0.0.1:0` and the CLI binds what the
//! user asked for. Every listener feeds one hub and draws from one
//! `--max-clients` pool.

use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::console;
use super::front::irc::session::IrcSettings;
use super::front::web::session::WebSettings;
use super::front::Protocol;
use super::hub::{ChatHub, EventKind, Refusal, RoomEvent};
use super::protocol::check_nick;
use super::session::{self, SessionLimits};
use crate::conn::{Conn, Link};
use crate::error::Result;
use crate::serve::{Accepted, Gate, Listener};

/// One listening socket, and the protocol its clients speak.
pub struct ChatListener {
    /// Bound, listening socket.
    pub listener: Listener,
    /// Access list and TLS.
    pub gate: Gate,
    /// The front-end its connections get.
    pub protocol: Protocol,
}

/// Everything the chat server needs.
pub struct ChatServer {
    /// Where clients connect: one hub and one `--max-clients` pool for all.
    pub listeners: Vec<ChatListener>,
    /// Per-client limits.
    pub session: SessionLimits,
    /// Most clients at once, every listener together; more are told so and closed.
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
    /// How `Protocol::Web` listeners serve (origins, echo endpoint).
    pub web: WebSettings,
    /// History, and how many messages a member entering a room is shown.
    pub history: Option<(Arc<crate::chat::history::History>, usize)>,
    /// The NATS connection when this server is a node of a cluster.
    pub cluster: Option<super::cluster::Connected>,
    /// How IRC listeners serve (password, MOTD, pings, channel cap).
    pub irc: IrcSettings,
}

/// What every listener and connection task of one server shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The hub.
    pub hub: Arc<ChatHub>,
    /// Per-client limits.
    pub limits: Arc<SessionLimits>,
    /// Cancelled at shutdown: stop reading, flush, close.
    pub stop_reading: CancellationToken,
    /// Cancelled when the drain time is up: close now.
    pub hard_stop: CancellationToken,
    /// How web listeners serve.
    pub web: Arc<WebSettings>,
    /// How IRC listeners serve.
    pub irc: Arc<IrcSettings>,
    /// `--max-clients` permits, shared by every listener.
    permits: Arc<Semaphore>,
    max_clients: usize,
    tracker: TaskTracker,
}

impl ChatServer {
    /// Serves until `shutdown` is triggered, then says goodbye to everyone.
    pub async fn run(self, shutdown: Shutdown) -> Result<()> {
        let hub = ChatHub::with_history(self.max_queue, self.history.clone());
        hub.set_max_rooms(self.irc.max_channels);
        let shared = Shared {
            hub: hub.clone(),
            limits: Arc::new(self.session.clone()),
            web: Arc::new(self.web.clone()),
            irc: Arc::new(self.irc.clone()),
            stop_reading: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            permits: Arc::new(Semaphore::new(self.max_clients)),
            max_clients: self.max_clients,
            tracker: TaskTracker::new(),
        };
        let flusher = CancellationToken::new();
        tokio::spawn(hub.clone().run_flusher(flusher.clone()));
        let link = match self.cluster {
            Some(c) => {
                let link = super::cluster::Link::start(c, &hub, flusher.child_token()).await;
                hub.attach(link.clone());
                Some(link)
            }
            None => None,
        };
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
                    shared.stop_reading.child_token(),
                    shared.hard_stop.child_token(),
                )
                .map_err(crate::error::Error::Usage)?;
            tokio::spawn(console::run(hub.clone(), m, self.console_input));
        }
        let accepting = Shutdown::new();
        let mut loops = Vec::new();
        for l in self.listeners {
            loops.push(tokio::spawn(accept_loop(
                l,
                shared.clone(),
                accepting.clone(),
            )));
        }
        shutdown.wait().await;
        accepting.trigger();
        for l in loops {
            let _ = l.await;
        }
        let told = crate::relay::plural(hub.len() as u64, "client");
        tracing::info!("shutting down: telling {told}");
        hub.shutdown();
        shared.stop_reading.cancel();
        let tracker = shared.tracker.clone();
        tracker.close();
        if tokio::time::timeout(self.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::info!("drain timeout: closing the remaining connections");
        }
        shared.hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_millis(200), tracker.wait()).await;
        flusher.cancel();
        if let Some(link) = link {
            link.finish().await;
        }
        Ok(())
    }
}

/// Accepts on one listener until `stop`: each connection takes a permit from
/// the shared pool first (a connection still in its TLS handshake counts as
/// a client, so stalled handshakes cannot pile up), passes the gate, then
/// gets its protocol's session.
pub(crate) async fn accept_loop(l: ChatListener, shared: Shared, stop: Shutdown) {
    let gate = Arc::new(l.gate);
    let (protocol, max) = (l.protocol, shared.max_clients);
    let cap = format!(
        "{} already (--max-clients)",
        crate::relay::plural(max as u64, "client")
    );
    let refuse = |acc| refuse(acc, &gate, protocol, max);
    let serve = |acc, permit| {
        let (gate, shared2) = (gate.clone(), shared.clone());
        shared.tracker.spawn(async move {
            let _permit = permit;
            let Some(conn) = gate.admit(acc).await else {
                return;
            };
            serve(protocol, conn, shared2).await;
        });
    };
    crate::serve::accept::accept_loop(&l.listener, &shared.permits, &stop, &cap, refuse, serve)
        .await;
}

/// One admitted connection, by its listener's protocol.
async fn serve(protocol: Protocol, conn: Conn, s: Shared) {
    match protocol {
        Protocol::Line | Protocol::LineCursor => {
            session::run(conn, s.hub, &s.limits, s.stop_reading, s.hard_stop).await
        }
        Protocol::Web => {
            let web = s.web.clone();
            super::front::web::session::run(
                conn,
                &web,
                s.hub,
                &s.limits,
                s.stop_reading,
                s.hard_stop,
            )
            .await
        }
        _ => {
            let irc = s.irc.clone();
            super::front::irc::session::run(
                conn,
                &irc,
                s.hub,
                &s.limits,
                s.stop_reading,
                s.hard_stop,
            )
            .await
        }
    }
}

/// Turns away a connection over `--max-clients` at once (the accept loop
/// has logged it), without a task:
/// a plain client is told so in one non-blocking write (a fresh socket's
/// buffer takes it): a line, or for the web listener an HTTP 503; a TLS one
/// (no handshake is spent on it) is just closed.
async fn refuse(acc: Accepted, gate: &Gate, protocol: Protocol, max: usize) {
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
        prev: 0,
        ts: super::hub::now_ms(),
        from: "".into(),
        kind: EventKind::Error(Refusal::ServerFull(max)),
    };
    let msg = match protocol {
        Protocol::Line | Protocol::LineCursor => Protocol::Line.encode(&full),
        Protocol::Web => super::front::web::http::server_full(max),
        irc => irc.encode(&full),
    };
    let _ = match &conn.link {
        Link::Tcp(s) => s.try_write(&msg),
        Link::Unix(s) => s.try_write(&msg),
        _ => Ok(0),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    async fn listening() -> (ChatListener, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let gate = Gate {
            tls: None,
            acl: crate::serve::Acl::default(),
            handshake_timeout: Duration::from_secs(5),
        };
        let l = ChatListener {
            listener: Listener::Tcp(l),
            gate,
            protocol: Protocol::Line,
        };
        (l, addr)
    }

    async fn first_line(addr: &str) -> (String, tokio::net::TcpStream) {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let read = r.read_line(&mut line);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .unwrap()
            .unwrap();
        (line, r.into_inner())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_listener_draws_from_one_client_cap() {
        let (one, a) = listening().await;
        let (two, b) = listening().await;
        let server = ChatServer {
            history: None,
            listeners: vec![one, two],
            session: SessionLimits {
                max_line: 4096,
                flush_partial: Duration::from_millis(250),
                rate: 0.0,
                burst: 1,
                idle: None,
                drain: Duration::from_secs(1),
            },
            max_clients: 2,
            max_queue: 1 << 20,
            operator_nick: "server".into(),
            console: false,
            console_input: false,
            drain_timeout: Duration::from_secs(1),
            web: WebSettings::default(),
            cluster: None,
            irc: IrcSettings::default(),
        };
        let stop = Shutdown::new();
        let run = tokio::spawn(server.run(stop.clone()));
        let (w1, _c1) = first_line(&a).await;
        let (w2, _c2) = first_line(&b).await;
        assert!(w1.starts_with("* welcome, you are guest1"), "{w1}");
        assert!(w2.starts_with("* welcome, you are guest2"), "{w2}");
        // Both listeners' clients are in one hub.
        assert!(w2.contains("with 1 other"), "{w2}");
        for addr in [&a, &b] {
            let (full, _) = first_line(addr).await;
            assert_eq!(full, "! server full (2 clients), try again later\n");
        }
        stop.trigger();
        run.await.unwrap().unwrap();
    }
}
