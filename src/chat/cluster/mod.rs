//! The cluster: several `chat serve` nodes share rooms through NATS.
//!
//! Each node keeps its own hub; this module is the link between that hub and
//! the others. What crosses, and how:
//! - **Room events** (message, action, join, leave, nick) are published on
//!   the room's log subject ([`wire::log_subject`]). The room log, a
//!   JetStream stream over those subjects, stores each event and republishes
//!   it on the room's subject ([`wire::room_subject`]) with its place in the
//!   log and the place of the room's previous event: every node gets the
//!   other nodes' events of a room in the log's order (its own it delivered
//!   when they happened), and a node that missed one (core NATS
//!   drops what a slow consumer cannot take, and what comes during a
//!   reconnect) knows it at the next event. A node subscribes to a room's
//!   subject when the room gets its first local member and unsubscribes
//!   when the last one leaves: traffic follows interest. Subscribe,
//!   unsubscribe and publish go through one ordered queue on one connection,
//!   so a node is subscribed before the others see its member's join.
//! - **Private messages and kicks** go to the target's node subject only.
//! - **Nicks** are unique cluster-wide through a JetStream key-value bucket:
//!   `create` fails when the nick is held. The owner refreshes its keys
//!   (compare-and-set on the revision it holds) every third of the lease;
//!   the bucket's max age is the lease, so a dead node's nicks expire.
//! - **Presence** (who sits in which room on which node) is a second bucket,
//!   read when a node subscribes to a room; afterwards join, leave and nick
//!   events keep each node's view of remote members. A third bucket holds
//!   one key per live node: when a node's key has expired, the survivors
//!   announce its members as `left (node lost)`.
//! - **Repair**: a node that sees a room's chain broken (the previous event
//!   named is not the last one it delivered) reads the missing events from
//!   the log by their places and delivers them, in order, before the one
//!   that revealed the gap. After a reconnect or a slow-consumer report it
//!   also asks the log for each room's last place, so that a lost event is
//!   found even when nothing follows it.
//!
//! Nothing here waits while the hub is locked: the hub calls the `Link`'s
//! methods, which only queue work; tasks do the NATS calls and call the hub
//! back.

pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Store};
use async_nats::Client;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use self::wire::{
    all_logs, log_subject, node_subject, republished, room_subject, token, Direct, Holder,
    WireEvent, WireKind,
};
use super::hub::{ChatHub, EventKind, Id, LOBBY};
use super::protocol::nick_key;
use crate::error::{Error, Result, TlsFailure};
use crate::util::lock_unpoisoned;

/// How a node joins the cluster (`chat serve --cluster ...`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://[user:pass@]host:port`, `tls://...`).
    pub urls: Vec<String>,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// A NATS credentials file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
    /// CA certificates (PEM) to verify the NATS servers with; implies TLS.
    pub tls_ca: Option<PathBuf>,
    /// Longest wait for the first connection (and the buckets) at start.
    pub connect_timeout: Duration,
    /// How long a node's nicks and presence outlive its last refresh.
    pub lease: Duration,
    /// Bytes of room events waiting to be handed to NATS before more are
    /// dropped (and seen as gaps by the other nodes).
    pub max_backlog: usize,
    /// Messages NATS may hold for one subscription before it drops (and
    /// reports a slow consumer).
    pub sub_capacity: usize,
    /// Events the room log keeps per room (-1: no limit).
    pub log_per_room: i64,
    /// How long the room log keeps an event (zero: no age limit).
    pub log_age: Duration,
    /// Fault injection for tests: drop every Nth room event received (0: none).
    pub drop_every: u64,
    /// Copies JetStream keeps of the buckets and the room log (up to the
    /// number of NATS servers).
    pub replicas: usize,
}

impl ClusterConfig {
    /// Defaults for the given URLs and node name.
    pub fn new(urls: Vec<String>, node: String) -> Self {
        ClusterConfig {
            urls,
            node,
            creds: None,
            tls_ca: None,
            connect_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(15),
            max_backlog: 8 << 20,
            sub_capacity: 65536,
            log_per_room: 10_000,
            log_age: Duration::from_secs(7 * 24 * 3600),
            drop_every: 0,
            replicas: 1,
        }
    }
}

/// A node name when none is given: the host name and the process id.
pub fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{}", std::process::id())
}

/// A URL as it may be shown: any user and password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        (None, Some(at)) => format!("***{}", &url[at..]),
        _ => url.to_string(),
    }
}

/// A connection to NATS with the buckets a node needs, before it is tied to a hub.
pub struct Connected {
    client: Client,
    cfg: ClusterConfig,
    nicks: Store,
    presence: Store,
    nodes: Store,
    log: async_nats::jetstream::stream::Stream,
    /// Bumped on every reconnect and slow-consumer report: a sign that
    /// core NATS may have dropped room events.
    losses: watch::Receiver<u64>,
}

impl Connected {
    /// The room log's epoch: its places number the rooms' events, and a
    /// log made anew (its places starting again) gets another.
    pub fn log_epoch(&self) -> String {
        let made = self.log.cached_info().created.unix_timestamp_nanos();
        format!("c{:x}", made.max(0) as u64)
    }
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("node", &self.cfg.node)
            .finish_non_exhaustive()
    }
}

/// Connects to the first reachable URL and opens (or makes) the buckets,
/// all within `connect_timeout`: an unreachable cluster is an error, not a hang.
pub async fn connect(cfg: ClusterConfig) -> Result<Connected> {
    let shown = cfg
        .urls
        .iter()
        .map(|u| redact(u))
        .collect::<Vec<_>>()
        .join(",");
    let what = format!("cannot join the cluster at {shown}");
    let limit = cfg.connect_timeout;
    let timeout = || Error::Timeout {
        what: what.clone(),
        after: limit,
    };
    let (losses_tx, losses) = watch::channel(0u64);
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("sockit chat {}", cfg.node))
        .no_echo()
        // The URLs in the order given: the first is this node's own server.
        .retain_servers_order()
        .connection_timeout(limit)
        .subscription_capacity(cfg.sub_capacity)
        .event_callback(move |ev| {
            let losses = losses_tx.clone();
            async move {
                match ev {
                    async_nats::Event::Connected => {
                        tracing::info!("cluster: connected to NATS");
                        losses.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("cluster: lost NATS; serving local members, reconnecting")
                    }
                    async_nats::Event::SlowConsumer(sid) => {
                        tracing::warn!(
                            "cluster: NATS dropped messages for subscription {sid} (slow consumer)"
                        );
                        losses.send_modify(|n| *n += 1);
                    }
                    other => tracing::info!("cluster: {other}"),
                }
            }
        });
    if let Some(path) = &cfg.creds {
        opts = opts.credentials_file(path).await.map_err(|e| {
            Error::Usage(format!(
                "--cluster-creds {}: {}",
                path.display(),
                crate::error::describe_io(&e)
            ))
        })?;
    }
    if let Some(ca) = &cfg.tls_ca {
        if let Err(e) = std::fs::metadata(ca) {
            return Err(Error::io(format!("--cluster-tls-ca {}", ca.display()), e));
        }
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let urls = cfg.urls.clone();
    let client = tokio::time::timeout(limit + Duration::from_millis(500), opts.connect(urls))
        .await
        .map_err(|_| timeout())?
        .map_err(|e| connect_error(&what, e, limit))?;
    let js = async_nats::jetstream::new(client.clone());
    let opened = async {
        // A NATS cluster that has just started may not have elected its
        // JetStream leader yet: try again until the time is up.
        let deadline = tokio::time::Instant::now() + limit;
        let (js, lease, replicas) = (&js, cfg.lease, cfg.replicas);
        let bucket = |name: &'static str| async move {
            loop {
                match open_bucket(js, (name.to_string(), lease), replicas).await {
                    Ok(s) => return Ok(s),
                    Err(e) if tokio::time::Instant::now() + RETRY >= deadline => return Err(e),
                    Err(_) => tokio::time::sleep(RETRY).await,
                }
            }
        };
        let buckets = (
            bucket("sockit_nicks").await?,
            bucket("sockit_presence").await?,
            bucket("sockit_nodes").await?,
        );
        let log = loop {
            match open_log(js, &cfg).await {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() + RETRY >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        };
        Ok::<_, String>((buckets, log))
    };
    let ((nicks, presence, nodes), log) = tokio::time::timeout(limit, opened)
        .await
        .map_err(|_| timeout())?
        .map_err(|e| {
            Error::Usage(format!(
                "{what}: no JetStream key-value buckets or room log ({e}); start nats-server with -js"
            ))
        })?;
    Ok(Connected {
        client,
        cfg,
        nicks,
        presence,
        nodes,
        log,
        losses,
    })
}

/// Opens the room log (the stream over every room's log subject, which
/// republishes what it stores to the room's subject), making it with this
/// node's limits if it does not exist; a log made by another node keeps its
/// limits.
async fn open_log(
    js: &async_nats::jetstream::Context,
    cfg: &ClusterConfig,
) -> std::result::Result<async_nats::jetstream::stream::Stream, String> {
    use async_nats::jetstream::stream;
    if let Ok(s) = js.get_stream(LOG_STREAM).await {
        return Ok(s);
    }
    let config = stream::Config {
        name: LOG_STREAM.into(),
        subjects: vec![all_logs()],
        republish: Some(stream::Republish {
            source: all_logs(),
            destination: republished(),
            headers_only: false,
        }),
        max_messages_per_subject: cfg.log_per_room,
        max_age: cfg.log_age,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        num_replicas: cfg.replicas,
        ..Default::default()
    };
    let made = js.create_stream(config).await;
    match js.get_stream(LOG_STREAM).await {
        Ok(s) => Ok(s),
        Err(e) => Err(made.err().map_or_else(|| e.to_string(), |m| m.to_string())),
    }
}

/// Pause between tries while JetStream is not ready.
const RETRY: Duration = Duration::from_millis(250);

/// How long a nick claim keeps trying while JetStream cannot answer.
const CLAIM_RETRIES: Duration = Duration::from_secs(10);

/// The room log's stream name.
pub const LOG_STREAM: &str = "sockit_room_log";

/// Opens a bucket, making it if it does not exist (another node may make it
/// at the same time, or with another lease: then the existing one is used).
/// The bucket's stream is made as the key-value layout asks, directly:
/// the client's own bucket creation asks the server for account details
/// that nats-server 2.9 words differently.
async fn open_bucket(
    js: &async_nats::jetstream::Context,
    (name, max_age): (String, Duration),
    replicas: usize,
) -> std::result::Result<Store, String> {
    use async_nats::jetstream::stream;
    if let Ok(s) = js.get_key_value(&name).await {
        return Ok(s);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        duplicate_window: max_age.min(Duration::from_secs(120)),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    let made = js.create_stream(config).await;
    match js.get_key_value(&name).await {
        Ok(s) => Ok(s),
        Err(e) => Err(made.err().map_or_else(|| e.to_string(), |m| m.to_string())),
    }
}

fn connect_error(what: &str, e: async_nats::ConnectError, limit: Duration) -> Error {
    use async_nats::ConnectErrorKind as K;
    use std::io::ErrorKind as IoKind;
    // The error's text may quote the URL: keep only the kind's words.
    let io = |kind, text: &str| Error::io(what, std::io::Error::new(kind, text.to_string()));
    match e.kind() {
        K::TimedOut => Error::Timeout {
            what: what.to_string(),
            after: limit,
        },
        K::Authentication | K::AuthorizationViolation => {
            io(IoKind::PermissionDenied, "authorization refused")
        }
        K::Tls => Error::Tls {
            what: what.to_string(),
            reason: "TLS with the NATS server failed".into(),
            failure: TlsFailure::Handshake,
        },
        K::ServerParse => Error::Usage(format!("{what}: not a NATS URL")),
        K::Dns => Error::Resolve {
            host: what
                .trim_start_matches("cannot join the cluster at ")
                .into(),
            source: std::io::Error::other("name did not resolve"),
        },
        K::Io | K::MaxReconnects => io(IoKind::ConnectionRefused, "connection refused"),
    }
}

/// Counters of the link, for tests, benchmarks and `-v`.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Room events published.
    pub published: AtomicU64,
    /// Room events from other nodes.
    pub received: AtomicU64,
    /// Events found missing from another node's sequence.
    pub gaps: AtomicU64,
    /// Room events dropped here because NATS fell behind.
    pub dropped: AtomicU64,
    /// Missing events fetched from the room log and delivered.
    pub repaired: AtomicU64,
    /// Room events received from NATS (all, before any check).
    pub arrived: AtomicU64,
}

/// Work for the link's ordered task.
enum Op {
    Subscribe(Arc<str>),
    Unsubscribe(Arc<str>),
    Publish(String, Bytes),
}

/// What stops a room's reader, and what asks it to look in the log for
/// events it may have missed.
type RoomReader = (CancellationToken, Arc<Notify>);

/// A republished event's place in the room log and the place of the room's
/// event before it (0: none).
fn places(msg: &async_nats::Message) -> Option<(u64, u64)> {
    use async_nats::header::{NATS_LAST_SEQUENCE, NATS_SEQUENCE};
    let h = msg.headers.as_ref()?;
    let seq = h.get(NATS_SEQUENCE)?.as_str().parse().ok()?;
    let prev = h.get(NATS_LAST_SEQUENCE)?.as_str().parse().ok()?;
    Some((seq, prev))
}

/// What became of a room event handed to the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Sent to the room log: it comes back numbered ([`ChatHub::placed`]).
    Later,
    /// Show it now, unnumbered: it stays on this node, or the log is out of
    /// reach (it goes to the log when NATS is back, and is only kept then).
    Now,
}

/// One of this node's room events on its way through the room log.
struct Own {
    author: Option<Id>,
    from: Arc<str>,
    /// As the hub posted it (with any client-only tags).
    kind: EventKind,
    /// Already shown unnumbered.
    shown: bool,
    sent: std::time::Instant,
}

/// How long this node's event may take through the room log before it is
/// shown unnumbered (the log is leaderless, say, while NATS itself answers).
const OWN_WAIT: Duration = Duration::from_secs(2);

/// How long an event shown unnumbered is waited for, to be kept numbered.
const OWN_KEEP: Duration = Duration::from_secs(600);

/// A key-value change for the presence task (put, or delete with `None`).
type PresenceOp = (String, Option<Bytes>);

/// A node's end of the cluster, tied to its hub.
pub struct Link {
    node: Arc<str>,
    epoch: u64,
    client: Client,
    cfg: ClusterConfig,
    nicks: Store,
    presence: Store,
    nodes: Store,
    log: async_nats::jetstream::stream::Stream,
    hub: Weak<ChatHub>,
    ops: mpsc::UnboundedSender<Op>,
    presence_ops: mpsc::UnboundedSender<PresenceOp>,
    /// Bytes queued in `ops` for publishing.
    backlog: Arc<AtomicUsize>,
    /// This node's next sequence number per room.
    seqs: Mutex<HashMap<Arc<str>, u64>>,
    /// This node's events on their way through the room log, by (room, seq).
    own: Mutex<HashMap<(Arc<str>, u64), Own>>,
    /// Rooms whose history this node has read from the room log since it
    /// began to host them.
    ready: Mutex<std::collections::HashSet<Arc<str>>>,
    /// Remote members per room: case-folded nick -> holder.
    remote: Mutex<HashMap<Arc<str>, BTreeMap<String, Holder>>>,
    /// Nicks this node holds: key -> (value, revision).
    owned: Mutex<HashMap<String, (Bytes, u64)>>,
    /// Presence keys this node holds, and their values.
    present: Mutex<HashMap<String, Bytes>>,
    /// Rooms subscribed to: what stops each one's reader, and what asks
    /// it to look in the log for events it may have missed.
    subs: Mutex<HashMap<Arc<str>, RoomReader>>,
    /// Counters.
    pub stats: LinkStats,
    stop: CancellationToken,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn json<T: serde::Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn presence_key(room: &str, nick: &str) -> String {
    format!("{}.{}", token(room), token(&nick_key(nick)))
}

impl Link {
    /// Ties a connection to `hub`, starts the link's tasks (stopped by
    /// `stop`) and returns the link for the hub to call.
    pub async fn start(c: Connected, hub: &Arc<ChatHub>, stop: CancellationToken) -> Arc<Link> {
        let losses = c.losses;
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (presence_ops, presence_rx) = mpsc::unbounded_channel();
        let epoch = {
            let t = super::hub::now_ms();
            t ^ ((std::process::id() as u64) << 40)
        };
        let link = Arc::new(Link {
            node: c.cfg.node.as_str().into(),
            epoch,
            client: c.client,
            cfg: c.cfg,
            nicks: c.nicks,
            presence: c.presence,
            nodes: c.nodes,
            log: c.log,
            hub: Arc::downgrade(hub),
            ops,
            presence_ops,
            backlog: Arc::new(AtomicUsize::new(0)),
            seqs: Mutex::default(),
            own: Mutex::default(),
            ready: Mutex::default(),
            remote: Mutex::default(),
            owned: Mutex::default(),
            present: Mutex::default(),
            subs: Mutex::default(),
            stats: LinkStats::default(),
            stop,
        });
        link.beat().await;
        // The lobby (everyone's first room) is listened to before the first
        // member can come in.
        link.subscribe(LOBBY.into()).await;
        let _ = link.client.flush().await;
        tracing::info!(
            "cluster: node {} ready (nick lease {}s)",
            link.node,
            link.cfg.lease.as_secs_f64()
        );
        tokio::spawn(link.clone().run_ops(ops_rx));
        tokio::spawn(link.clone().run_presence(presence_rx));
        tokio::spawn(link.clone().run_direct());
        tokio::spawn(link.clone().run_lease());
        tokio::spawn(link.clone().run_checks(losses));
        tokio::spawn(link.clone().run_own());
        link
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Bytes received from NATS so far.
    pub fn bytes_in(&self) -> u64 {
        self.client.statistics().in_bytes.load(Ordering::Relaxed)
    }

    // ---- Called by the hub, under its lock: queue only. ----

    /// The room got its first local member (`true`) or lost its last.
    pub fn interest(&self, room: &Arc<str>, on: bool) {
        let op = if on {
            Op::Subscribe(room.clone())
        } else {
            lock_unpoisoned(&self.remote).remove(room);
            lock_unpoisoned(&self.ready).remove(room);
            Op::Unsubscribe(room.clone())
        };
        let _ = self.ops.send(op);
    }

    /// A room event of this node's member `author` (or the server), for
    /// the room log; see [`Logged`] for what the hub does with it now.
    pub fn publish(
        &self,
        room: &Arc<str>,
        author: Option<Id>,
        from: &Arc<str>,
        kind: &EventKind,
        ts: u64,
    ) -> Logged {
        let shown = self.client.connection_state() != async_nats::connection::State::Connected;
        let own = Own {
            author,
            from: from.clone(),
            kind: kind.clone(),
            shown,
            sent: std::time::Instant::now(),
        };
        // Known before it is sent: the log may give it back at once.
        let mut pending = lock_unpoisoned(&self.own);
        let Some(seq) = self.send(room, from, kind, ts) else {
            return Logged::Now;
        };
        pending.insert((room.clone(), seq), own);
        drop(pending);
        if shown {
            Logged::Now
        } else {
            Logged::Later
        }
    }

    /// Queues one room event for the room log; its sequence number for
    /// this node and room, or `None` if it does not cross or was dropped.
    fn send(&self, room: &Arc<str>, from: &Arc<str>, kind: &EventKind, ts: u64) -> Option<u64> {
        // Client-only message tags stay on this node; the talk goes on.
        let kind = match kind.untagged() {
            EventKind::Message { text } => WireKind::Message { text: text.clone() },
            EventKind::Action { text } => WireKind::Action { text: text.clone() },
            EventKind::Join => WireKind::Join,
            EventKind::Leave { reason } => WireKind::Leave {
                reason: reason.clone(),
            },
            EventKind::Nick { new } => WireKind::Nick {
                new: new.to_string(),
            },
            EventKind::Part { reason } => WireKind::Part {
                reason: reason.clone(),
            },
            EventKind::Kick { target, reason } => WireKind::Kick {
                target: target.to_string(),
                reason: reason.clone(),
            },
            EventKind::Topic { text } => WireKind::Topic { text: text.clone() },
            EventKind::Away { text } => WireKind::Away { text: text.clone() },
            // Modes and styled (notice, CTCP) room messages stay on their node.
            _ => return None,
        };
        let seq = {
            let mut seqs = lock_unpoisoned(&self.seqs);
            let s = seqs.entry(room.clone()).or_insert(0);
            *s += 1;
            *s
        };
        let wire = WireEvent {
            node: self.node.to_string(),
            epoch: self.epoch,
            seq,
            room: room.to_string(),
            ts,
            from: from.to_string(),
            kind,
        };
        let data = json(&wire);
        if self.backlog.load(Ordering::Relaxed) + data.len() > self.cfg.max_backlog {
            if self.stats.dropped.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                tracing::warn!("cluster: NATS is behind; room events stay on this node");
            }
            return None;
        }
        self.backlog.fetch_add(data.len(), Ordering::Relaxed);
        let _ = self.ops.send(Op::Publish(log_subject(room), data));
        Some(seq)
    }

    /// Events for a room with no local member left (its last one's leave).
    pub fn publish_all(&self, room: &str, events: impl IntoIterator<Item = (Arc<str>, EventKind)>) {
        let room: Arc<str> = room.into();
        let ts = super::hub::now_ms();
        for (from, kind) in events {
            self.send(&room, &from, &kind, ts);
        }
    }

    /// Whether this node has the room log's history of `room` (see
    /// [`ChatHub::filled`]).
    pub fn filled(&self, room: &str) -> bool {
        lock_unpoisoned(&self.ready).contains(room)
    }

    /// A local member sits in `room` (`true`) or left it.
    pub fn present(&self, room: &str, nick: &str, on: bool) {
        let key = presence_key(room, nick);
        let value = on.then(|| {
            json(&Holder {
                node: self.node.to_string(),
                nick: nick.to_string(),
            })
        });
        {
            let mut p = lock_unpoisoned(&self.present);
            match &value {
                Some(v) => p.insert(key.clone(), v.clone()),
                None => p.remove(&key),
            };
        }
        let _ = self.presence_ops.send((key, value));
    }

    /// Asks the cluster for `new` on behalf of member `id` (now `old`); the
    /// hub hears back through [`ChatHub::nick_claimed`] or a refusal.
    pub fn claim(self: &Arc<Self>, id: Id, new: &str, guest: bool) {
        let (link, new) = (self.clone(), new.to_string());
        tokio::spawn(async move {
            let Some(hub) = link.hub.upgrade() else {
                return;
            };
            match link.take_nick(&new).await {
                Ok(()) => hub.nick_claimed(id, &new, guest),
                Err(why) => {
                    tracing::info!("cluster: nick {new} not granted ({why})");
                    hub.nick_denied(id, &new, guest);
                }
            }
        });
    }

    /// Lets go of a nick this node held.
    pub fn release(self: &Arc<Self>, nick: &str) {
        let key = token(&nick_key(nick));
        if lock_unpoisoned(&self.owned).remove(&key).is_none() {
            return;
        }
        let link = self.clone();
        tokio::spawn(async move {
            if let Err(e) = link.nicks.delete(&key).await {
                tracing::debug!("cluster: releasing a nick: {e}");
            }
        });
    }

    /// A private message to a member of another node, if there is one.
    pub fn private(
        self: &Arc<Self>,
        id: Id,
        from: Arc<str>,
        room: Arc<str>,
        to: &str,
        text: String,
    ) {
        let (link, to) = (self.clone(), to.to_string());
        tokio::spawn(async move {
            let Some(hub) = link.hub.upgrade() else {
                return;
            };
            match link.holder(&to).await {
                Some(h) if *h.node != *link.node => {
                    let d = Direct::Private {
                        from: from.to_string(),
                        to: h.nick.clone(),
                        room: room.to_string(),
                        text: text.clone(),
                        ts: super::hub::now_ms(),
                    };
                    let _ = link.client.publish(node_subject(&h.node), json(&d)).await;
                    hub.private_sent(id, from, room, h.nick.as_str().into(), text);
                }
                _ => hub.no_such_nick(id, &to),
            }
        });
    }

    /// The operator's kick of a member of another node, if there is one.
    pub fn kick(self: &Arc<Self>, id: Id, by: Arc<str>, target: &str, reason: Option<String>) {
        let (link, target) = (self.clone(), target.to_string());
        tokio::spawn(async move {
            let Some(hub) = link.hub.upgrade() else {
                return;
            };
            match link.holder(&target).await {
                Some(h) if *h.node != *link.node => {
                    let d = Direct::Kick {
                        target: h.nick,
                        by: by.to_string(),
                        reason,
                    };
                    let _ = link.client.publish(node_subject(&h.node), json(&d)).await;
                }
                _ => hub.no_such_nick(id, &target),
            }
        });
    }

    /// Remote members of `room`: (case-folded nick, nick), sorted.
    pub fn remote_names(&self, room: &str) -> Vec<(String, String)> {
        lock_unpoisoned(&self.remote)
            .get(room)
            .map(|r| r.iter().map(|(k, h)| (k.clone(), h.nick.clone())).collect())
            .unwrap_or_default()
    }

    // ---- Tasks. ----

    async fn take_nick(&self, nick: &str) -> std::result::Result<(), String> {
        let key = token(&nick_key(nick));
        let value = json(&Holder {
            node: self.node.to_string(),
            nick: nick.to_string(),
        });
        // While JetStream elects a new leader (a NATS server of a cluster
        // died) a create fails without the key being taken: try again.
        let deadline = tokio::time::Instant::now() + CLAIM_RETRIES;
        let rev = loop {
            match self.nicks.create(&key, value.clone()).await {
                Ok(rev) => break rev,
                Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                    break self
                        .take_over(&key, &value)
                        .await
                        .ok_or_else(|| e.to_string())?;
                }
                Err(e) if tokio::time::Instant::now() + RETRY >= deadline => {
                    return Err(e.to_string())
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        };
        lock_unpoisoned(&self.owned).insert(key, (value, rev));
        Ok(())
    }

    /// Takes a nick whose holder's node is gone (killed: NATS has no
    /// subscriber left on its subject), so that member can come back on
    /// this node at once instead of after the lease. Compare-and-set on the
    /// revision read: of two nodes taking over, one wins.
    async fn take_over(&self, key: &str, value: &Bytes) -> Option<u64> {
        let entry = self.nicks.entry(key).await.ok()??;
        if entry.operation != Operation::Put {
            return None;
        }
        let h: Holder = serde_json::from_slice(&entry.value).ok()?;
        if *h.node == *self.node || !self.node_gone(&h.node).await {
            return None;
        }
        let rev = self
            .nicks
            .update(key, value.clone(), entry.revision)
            .await
            .ok()?;
        tracing::info!(
            "cluster: nick {} taken over from lost node {}",
            h.nick,
            h.node
        );
        Some(rev)
    }

    /// Whether nobody listens on `node`'s subject any more (NATS answers
    /// "no responders" at once; a live node answers the ping).
    async fn node_gone(&self, node: &str) -> bool {
        let ping = self.client.request(node_subject(node), Bytes::new());
        matches!(
            tokio::time::timeout(Duration::from_secs(2), ping).await,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders
        )
    }

    async fn holder(&self, nick: &str) -> Option<Holder> {
        let v = self.nicks.get(token(&nick_key(nick))).await.ok()??;
        serde_json::from_slice(&v).ok()
    }

    /// Publishes, subscribes and unsubscribes in the order the hub asked.
    async fn run_ops(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Op>) {
        loop {
            let op = tokio::select! {
                op = rx.recv() => op,
                _ = self.stop.cancelled() => None,
            };
            let Some(op) = op else {
                break;
            };
            match op {
                Op::Publish(subject, data) => {
                    let n = data.len();
                    if let Err(e) = self.client.publish(subject, data).await {
                        tracing::debug!("cluster: publish: {e}");
                    }
                    self.backlog.fetch_sub(n, Ordering::Relaxed);
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                }
                Op::Subscribe(room) => self.subscribe(room).await,
                Op::Unsubscribe(room) => {
                    if let Some((t, _)) = lock_unpoisoned(&self.subs).remove(&room) {
                        t.cancel();
                    }
                }
            }
        }
        let _ = self.client.flush().await;
    }

    /// Listens to a room's subject (once), and reads who is already there.
    async fn subscribe(self: &Arc<Self>, room: Arc<str>) {
        if lock_unpoisoned(&self.subs).contains_key(&room) {
            return;
        }
        lock_unpoisoned(&self.remote)
            .entry(room.clone())
            .or_default();
        // With history: where the room's log ends before this node listens.
        // Up to there is the room's history; after it, what its members get
        // live (a reader catches up on what comes before its subscription).
        let keeps = self.hub.upgrade().is_some_and(|h| h.keeps_history());
        let end = match keeps {
            true => tokio::time::timeout(Duration::from_millis(500), self.log_end(&room))
                .await
                .ok()
                .flatten(),
            false => None,
        };
        match self.client.subscribe(room_subject(&room)).await {
            Ok(sub) => {
                let token = self.stop.child_token();
                let check = Arc::new(Notify::new());
                lock_unpoisoned(&self.subs).insert(room.clone(), (token.clone(), check.clone()));
                tokio::spawn(self.clone().run_room(room.clone(), sub, token, check, end));
                tokio::spawn(self.clone().load_presence(room));
            }
            Err(e) => tracing::warn!("cluster: cannot subscribe to {room}: {e}"),
        }
    }

    /// One room's events, in the log's order, into the hub (this node's own
    /// are already delivered: they only move the room's place on).
    async fn run_room(
        self: Arc<Self>,
        room: Arc<str>,
        mut sub: async_nats::Subscriber,
        stop: CancellationToken,
        check: Arc<Notify>,
        end: Option<u64>,
    ) {
        // The place delivered up to: with history, `end` (where the log
        // ended before the subscription) once the history up to there is
        // in; else the first event received sets it (everything that
        // reaches the subscription is new to this node).
        let mut last: Option<u64> = None;
        if let Some(hub) = self.hub.upgrade() {
            if let Some(end) = end {
                let from = hub.room_seq(&room);
                if end > from {
                    self.backfill(&hub, &room, from, end).await;
                }
                last = Some(end);
            }
            lock_unpoisoned(&self.ready).insert(room.clone());
            hub.filled(&room);
            // What the room said between `end` and the subscription: live.
            if let (Some(at), Some(now)) = (last, self.log_end(&room).await) {
                if now > at {
                    last = Some(self.catch_up(&room, at, now).await);
                }
            }
        }
        loop {
            let msg = tokio::select! {
                m = sub.next() => m,
                _ = check.notified() => {
                    if let (Some(at), Some(end)) = (last, self.log_end(&room).await) {
                        if end > at {
                            last = Some(self.catch_up(&room, at, end).await);
                        }
                    }
                    continue;
                }
                _ = stop.cancelled() => break,
            };
            let Some(msg) = msg else {
                return;
            };
            let n = self.stats.arrived.fetch_add(1, Ordering::Relaxed) + 1;
            if self.cfg.drop_every > 0 && n % self.cfg.drop_every == 0 {
                // As when NATS drops for a slow consumer, which it reports.
                check.notify_one();
                continue;
            }
            let Some((seq, prev)) = places(&msg) else {
                tracing::debug!(
                    "cluster: an event on {} without its place in the log",
                    msg.subject
                );
                continue;
            };
            let at = *last.get_or_insert(prev);
            if seq <= at {
                continue;
            }
            if prev > at {
                self.catch_up(&room, at, prev).await;
            }
            last = Some(seq);
            match serde_json::from_slice::<WireEvent>(&msg.payload) {
                Ok(ev) => self.deliver(&room, ev, seq, prev, true),
                Err(_) => tracing::debug!("cluster: undecodable event on {}", msg.subject),
            }
        }
        let _ = sub.unsubscribe().await;
    }

    /// One room event, at place `seq` of the log (the room's previous at
    /// `prev`), into the hub: another node's, or this node's own back;
    /// `live`: for the room's members now, not only for its history.
    fn deliver(&self, room: &str, ev: WireEvent, seq: u64, prev: u64, live: bool) {
        if *ev.room != *room {
            return;
        }
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        if *ev.node == *self.node && ev.epoch == self.epoch {
            let key: (Arc<str>, u64) = (room.into(), ev.seq);
            // Not held while the hub is called: the hub calls `publish`,
            // which takes it, under its own lock.
            let own = lock_unpoisoned(&self.own).remove(&key);
            if let Some(own) = own {
                hub.placed(
                    room,
                    seq,
                    prev,
                    ev,
                    Some((own.author, own.kind, own.shown)),
                    true,
                );
            }
            return;
        }
        if live {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            self.track(&ev);
        }
        hub.placed(room, seq, prev, ev, None, live);
    }

    /// Shows this node's events the room log has not given back in time,
    /// unnumbered, and forgets those it never will.
    async fn run_own(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = self.stop.cancelled() => return,
            }
            let mut late = Vec::new();
            {
                let mut own = lock_unpoisoned(&self.own);
                own.retain(|(room, _), o| {
                    let waited = o.sent.elapsed();
                    if !o.shown && waited >= OWN_WAIT {
                        o.shown = true;
                        late.push((room.clone(), o.author, o.from.clone(), o.kind.clone()));
                    }
                    waited < OWN_KEEP
                });
            }
            if late.is_empty() {
                continue;
            }
            tracing::warn!(
                "cluster: the room log has not taken {} event(s) in {}s; shown here unnumbered",
                late.len(),
                OWN_WAIT.as_secs()
            );
            if let Some(hub) = self.hub.upgrade() {
                hub.show_unnumbered(late);
            }
        }
    }

    /// The place of `room`'s last event in the log (0: none yet), or
    /// `None` if the log cannot say now.
    async fn log_end(&self, room: &str) -> Option<u64> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
        let subject = log_subject(room);
        let ask = self.log.get_last_raw_message_by_subject(&subject);
        match tokio::time::timeout(Duration::from_secs(3), ask).await {
            Ok(Ok(m)) => Some(m.sequence),
            Ok(Err(e)) if e.kind() == K::NoMessageFound => Some(0),
            Ok(Err(e)) => {
                tracing::debug!("cluster: reading the room log: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Reads `room`'s events from the log at places after `after`, up to
    /// `upto`, in order, handing each (place, the room's place before it,
    /// event) to `f`; returns the last place read. Bounded by `limit`.
    async fn read_log(
        &self,
        room: &str,
        after: u64,
        upto: u64,
        limit: Duration,
        mut f: impl FnMut(u64, u64, WireEvent),
    ) -> std::result::Result<u64, String> {
        use async_nats::jetstream::consumer::{pull, DeliverPolicy};
        let mut reached = after;
        let fetch = async {
            let consumer = self
                .log
                .create_consumer(pull::OrderedConfig {
                    filter_subject: log_subject(room),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let mut msgs = consumer.messages().await.map_err(|e| e.to_string())?;
            while let Some(m) = msgs.next().await {
                let m = m.map_err(|e| e.to_string())?;
                let (seq, pending) = match m.info() {
                    Ok(i) => (i.stream_sequence, i.pending),
                    Err(e) => return Err(e.to_string()),
                };
                if seq > upto {
                    break;
                }
                let prev = reached;
                reached = seq;
                if let Ok(ev) = serde_json::from_slice::<WireEvent>(&m.payload) {
                    f(seq, prev, ev);
                }
                if pending == 0 || seq >= upto {
                    break;
                }
            }
            Ok::<_, String>(())
        };
        match tokio::time::timeout(limit, fetch).await {
            Ok(Ok(())) => Ok(reached),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Delivers `room`'s events from the log after place `after` up to place
    /// `upto` (what core NATS lost), in order, as many as the log still
    /// holds; returns `upto`: what cannot be read stays lost.
    async fn catch_up(&self, room: &str, after: u64, upto: u64) -> u64 {
        let mut got = 0u64;
        let read = self
            .read_log(
                room,
                after,
                upto,
                Duration::from_secs(3),
                |seq, prev, ev| {
                    got += 1;
                    if *ev.node != *self.node {
                        self.stats.repaired.fetch_add(1, Ordering::Relaxed);
                    }
                    self.deliver(room, ev, seq, prev, true);
                },
            )
            .await;
        match read {
            Ok(reached) if reached == upto => tracing::info!(
                "cluster: {got} event(s) of {room} missed on the way, repaired from the room log"
            ),
            Ok(_) => {
                self.stats.gaps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "cluster: {got} event(s) of {room} missed on the way repaired from the room log; it no longer holds the others"
                );
            }
            Err(e) => {
                self.stats.gaps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cluster: reading the room log for {room}: {e}");
            }
        }
        upto
    }

    /// A room this node has just begun to host: what the log holds of it
    /// after place `after` (what this node's history has) up to `upto`
    /// goes to history, then the room's members who came meanwhile get
    /// their replay, then this node's own events among them are shown.
    async fn backfill(&self, hub: &ChatHub, room: &str, after: u64, upto: u64) {
        let mut own = Vec::new();
        let mut kept = 0u64;
        let read = self
            .read_log(
                room,
                after,
                upto,
                Duration::from_secs(5),
                |seq, prev, ev| {
                    if *ev.node == *self.node && ev.epoch == self.epoch {
                        own.push((seq, prev, ev));
                    } else {
                        kept += 1;
                        self.deliver(room, ev, seq, prev, false);
                    }
                },
            )
            .await;
        match read {
            Ok(_) => {
                tracing::debug!("cluster: {kept} event(s) of {room} from the room log into history")
            }
            Err(e) => tracing::warn!("cluster: reading the room log's history of {room}: {e}"),
        }
        lock_unpoisoned(&self.ready).insert(room.into());
        hub.filled(room);
        for (seq, prev, ev) in own {
            self.deliver(room, ev, seq, prev, true);
        }
    }

    /// On every reconnect or slow-consumer report, each room's reader looks
    /// in the log for events it missed.
    async fn run_checks(self: Arc<Self>, mut losses: watch::Receiver<u64>) {
        losses.borrow_and_update();
        loop {
            tokio::select! {
                r = losses.changed() => if r.is_err() { return },
                _ = self.stop.cancelled() => return,
            }
            for (_, check) in lock_unpoisoned(&self.subs).values() {
                check.notify_one();
            }
        }
    }

    /// Keeps the view of remote members up to date with one event.
    fn track(&self, ev: &WireEvent) {
        let mut remote = lock_unpoisoned(&self.remote);
        let Some(room) = remote.get_mut(ev.room.as_str()) else {
            return;
        };
        let holder = |nick: &str| Holder {
            node: ev.node.clone(),
            nick: nick.to_string(),
        };
        match &ev.kind {
            WireKind::Join => {
                room.insert(nick_key(&ev.from), holder(&ev.from));
            }
            WireKind::Leave { .. } | WireKind::Part { .. } => {
                room.remove(&nick_key(&ev.from));
            }
            WireKind::Kick { target, .. } => {
                room.remove(&nick_key(target));
            }
            WireKind::Nick { new } => {
                room.remove(&nick_key(&ev.from));
                room.insert(nick_key(new), holder(new));
            }
            _ => {}
        }
    }

    /// Reads who already sits in `room` on other nodes.
    async fn load_presence(self: Arc<Self>, room: Arc<str>) {
        let filter = format!("{}.>", token(&room));
        let Ok(mut watch) = self.presence.watch_with_history(filter).await else {
            return;
        };
        // An empty room sends nothing: stop once the stream is quiet.
        while let Ok(Some(Ok(entry))) =
            tokio::time::timeout(Duration::from_millis(300), watch.next()).await
        {
            if entry.operation == Operation::Put {
                if let Ok(h) = serde_json::from_slice::<Holder>(&entry.value) {
                    if *h.node != *self.node {
                        let mut remote = lock_unpoisoned(&self.remote);
                        if let Some(r) = remote.get_mut(&room) {
                            r.entry(nick_key(&h.nick)).or_insert(h);
                        }
                    }
                }
            }
            if entry.delta == 0 {
                break;
            }
        }
    }

    /// Writes presence changes in order.
    async fn run_presence(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<PresenceOp>) {
        while let Some((key, value)) = rx.recv().await {
            let r = match value {
                Some(v) => self
                    .presence
                    .put(&key, v)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => self.presence.delete(&key).await.map_err(|e| e.to_string()),
            };
            if let Err(e) = r {
                tracing::debug!("cluster: presence: {e}");
            }
        }
    }

    /// Private messages and kicks for this node's members.
    async fn run_direct(self: Arc<Self>) {
        let mut sub = match self.client.subscribe(node_subject(&self.node)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cluster: cannot subscribe to this node's subject: {e}");
                return;
            }
        };
        loop {
            let msg = tokio::select! {
                m = sub.next() => m,
                _ = self.stop.cancelled() => return,
            };
            let Some(msg) = msg else {
                return;
            };
            if let (Some(reply), true) = (&msg.reply, msg.payload.is_empty()) {
                // Another node asks whether this one is alive.
                let _ = self.client.publish(reply.clone(), Bytes::new()).await;
                continue;
            }
            let Some(hub) = self.hub.upgrade() else {
                return;
            };
            match serde_json::from_slice::<Direct>(&msg.payload) {
                Ok(Direct::Private {
                    from,
                    to,
                    room,
                    text,
                    ts,
                }) => hub.private_in(&from, &to, &room, text, ts),
                Ok(Direct::Kick { target, by, reason }) => hub.kick_in(&target, &by, reason),
                Err(_) => tracing::debug!("cluster: undecodable message for this node"),
            }
        }
    }

    /// This node's liveness key.
    async fn beat(&self) {
        let me = json(&Holder {
            node: self.node.to_string(),
            nick: String::new(),
        });
        if let Err(e) = self.nodes.put(token(&self.node), me).await {
            tracing::debug!("cluster: node key: {e}");
        }
    }

    /// Every third of the lease: refresh this node's keys, and look for
    /// nodes whose keys expired.
    async fn run_lease(self: Arc<Self>) {
        let period = (self.cfg.lease / 3).max(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = self.stop.cancelled() => break,
            }
            self.beat().await;
            self.refresh_nicks().await;
            let present: Vec<(String, Bytes)> = lock_unpoisoned(&self.present)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in present {
                let _ = self.presence_ops.send((k, Some(v)));
            }
            self.find_lost_nodes().await;
        }
    }

    /// Leaves the cluster on purpose (shutdown): the node's key goes at once,
    /// so the others announce its members within a third of the lease.
    pub async fn finish(&self) {
        self.stop.cancel();
        let bye = async {
            let _ = self.nodes.delete(token(&self.node)).await;
            let _ = self.client.flush().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), bye).await;
        let s = &self.stats;
        tracing::info!(
            "cluster: {} events published, {} received, {} repaired from the room log, {} lost on the way, {} dropped; {} bytes from NATS",
            s.published.load(Ordering::Relaxed),
            s.received.load(Ordering::Relaxed),
            s.repaired.load(Ordering::Relaxed),
            s.gaps.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
            self.bytes_in()
        );
    }

    async fn refresh_nicks(&self) {
        let owned: Vec<(String, Bytes, u64)> = lock_unpoisoned(&self.owned)
            .iter()
            .map(|(k, (v, r))| (k.clone(), v.clone(), *r))
            .collect();
        for (key, value, rev) in owned {
            let renewed = match self.nicks.update(&key, value.clone(), rev).await {
                Ok(r) => Some(r),
                // Expired meanwhile (NATS was away longer than the lease):
                // take it back if nobody else did.
                Err(_) => self.nicks.create(&key, value.clone()).await.ok(),
            };
            let mut owned = lock_unpoisoned(&self.owned);
            match renewed {
                Some(r) => {
                    if let Some(e) = owned.get_mut(&key) {
                        e.1 = r;
                    }
                }
                None => {
                    if self.client.connection_state() == async_nats::connection::State::Connected
                        && owned.remove(&key).is_some()
                    {
                        tracing::warn!("cluster: another node now holds the nick {key}");
                    }
                }
            }
        }
    }

    /// Announces the members of nodes whose liveness key expired.
    async fn find_lost_nodes(&self) {
        let nodes: Vec<String> = {
            let remote = lock_unpoisoned(&self.remote);
            let mut n: Vec<String> = remote
                .values()
                .flat_map(|r| r.values().map(|h| h.node.clone()))
                .collect();
            n.sort_unstable();
            n.dedup();
            n
        };
        for node in nodes {
            // Only an answer that the key is gone counts, not an error.
            if !matches!(self.nodes.get(token(&node)).await, Ok(None)) {
                continue;
            }
            tracing::warn!("cluster: node {node} lost");
            let mut gone = Vec::new();
            {
                let mut remote = lock_unpoisoned(&self.remote);
                for (room, r) in remote.iter_mut() {
                    r.retain(|_, h| {
                        let lost = h.node == node;
                        if lost {
                            gone.push((room.clone(), h.nick.clone()));
                        }
                        !lost
                    });
                }
            }
            if let Some(hub) = self.hub.upgrade() {
                hub.node_lost(gone);
            }
        }
    }
}
