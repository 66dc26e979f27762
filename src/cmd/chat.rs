//! `sockit chat`: a multi-user chat server (`serve`) and its client (`join`).

use crate::shutdown::Shutdown;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand};

use crate::chat::client;
use crate::chat::front::irc::session::IrcSettings;
use crate::chat::front::web::http::parse_origin;
use crate::chat::front::web::session::WebSettings;
use crate::chat::front::Protocol;
use crate::chat::protocol::check_nick;
use crate::chat::server::{ChatListener, ChatServer};
use crate::chat::session::SessionLimits;
use crate::cli::{
    parse_millis, parse_secs, AclArgs, NetArgs, ProxyArgs, TlsClientArgs, TlsServerArgs,
};
use crate::dial::DialOpts;
use crate::endpoint::{Endpoint, Family};
use crate::error::{Error, Result};
use crate::serve::{bind, Bound, Gate};
use crate::sock::SockOpts;

/// Examples shown under `sockit chat --help`.
pub const HELP: &str = "\
Examples:
  sockit chat serve                          chat on 0.0.0.0:8000; your terminal is the operator
  sockit chat serve [::]:6667 --operator-nick admin
                                             every address, the operator's nick is admin
  sockit chat serve --tls-self-signed :8443  TLS; prints the certificate's SHA-256 to pin
  sockit chat serve unix:/tmp/chat.sock      any stream endpoint
  sockit chat serve :8000 --cluster nats://10.0.0.5:4222 --node a
                                             a node of a cluster: rooms shared through NATS
  sockit chat serve --irc :6667 --motd motd.txt
                                             IRC clients too: irssi -c localhost -p 6667
  nc localhost 8000                          any line client works: nc, ncat, telnet, socat

  sockit chat serve --history-db /var/lib/sockit/chat.db --history-max-age 30d
  sockit chat serve --no-history             keep nothing (no file is written)

Once connected: /nick NAME, /who, /msg NICK text, /me action, /join ROOM, /rooms,
/history [N], /quit [reason], /help. The operator can also /kick NICK [reason].
Entering a room shows its last --history-on-join messages as history lines:
=ROOM#SEQ TIME LINE (only the server writes lines starting with = or @).";

/// `sockit chat` subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum ChatCommand {
    /// Run a chat server.
    #[command(after_help = HELP)]
    Serve(Box<ServeArgs>),
    /// Join a chat server: line editing on a terminal, plain lines or JSON in scripts.
    #[command(after_help = JOIN_HELP)]
    Join(Box<JoinArgs>),
}

/// Flags for `sockit chat`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: ChatCommand,
}

/// Flags for `sockit chat serve`.
#[derive(Debug, ClapArgs)]
// Chat runs over streams only: -u (from the shared network flags) is not shown.
#[command(mut_arg("udp", |a| a.hide(true)))]
pub struct ServeArgs {
    /// Where to listen: :PORT, HOST:PORT, [::]:PORT, unix:/PATH, unix:@NAME.
    #[arg(default_value = "0.0.0.0:8000")]
    pub endpoint: String,
    #[command(flatten)]
    net: NetArgs,
    /// The console's nick (the server's stdin and stdout take part in the chat).
    #[arg(long, value_name = "NICK", default_value = "server")]
    operator_nick: String,
    /// No operator console: stdin is ignored and stdout stays quiet (the
    /// operator's nick stays reserved).
    #[arg(long)]
    no_console: bool,

    /// A partial line idle this long is delivered as a message.
    #[arg(long, value_name = "MS", default_value = "250", value_parser = parse_millis, help_heading = "Limits")]
    flush_partial: Duration,
    /// Longest line in bytes; longer ones are dropped with an error to the sender.
    #[arg(long, value_name = "BYTES", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1048576), help_heading = "Limits")]
    max_line: u32,
    /// Bytes queued for one client before it is disconnected as too slow. Readers
    /// also pause while a quarter of this (4 KiB..256 KiB) waits for fan-out.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    max_queue: u32,
    /// Lines per second per client (token bucket); 0 turns flood control off.
    #[arg(
        long,
        value_name = "MSGS/S",
        default_value = "20",
        help_heading = "Limits"
    )]
    rate: f64,
    /// Lines a client may send in a burst.
    #[arg(long, value_name = "N", default_value_t = 40, help_heading = "Limits")]
    burst: u32,
    /// Most clients at once; more are told the server is full and closed.
    #[arg(long, value_name = "N", default_value_t = 10000, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    max_clients: u32,
    /// Disconnect a client that sends nothing for SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Limits")]
    idle_timeout: Option<Duration>,
    /// On shutdown, how long to flush queued lines before closing.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs, help_heading = "Limits")]
    drain_timeout: Duration,
    /// Pending-connection queue length (listen backlog).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        help_heading = "Limits"
    )]
    backlog: u32,
    /// TLS handshake time limit.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, help_heading = "Limits")]
    handshake_timeout: Duration,

    #[command(flatten)]
    access: AclArgs,

    /// Also serve the web page and its WebSocket on ADDR (HOST:PORT or :PORT):
    /// GET / is the page, GET /ws the chat. With the TLS flags, https and wss.
    #[arg(long, value_name = "ADDR", help_heading = "Web")]
    web: Option<String>,
    /// Origin allowed to open the web chat, e.g. https://chat.example
    /// (repeatable). Default: a page served by this host (the request's Host).
    #[arg(long, value_name = "ORIGIN", requires = "web", help_heading = "Web")]
    web_origin: Vec<String>,
    /// /ws echoes every message (WebSocket conformance runs) instead of chatting.
    #[arg(long, hide = true, requires = "web")]
    web_echo: bool,

    /// Keep room history in this SQLite file (created if missing; one server
    /// per file; with --cluster, this node's copy of the room log). Default: $XDG_STATE_HOME/sockit/chat.db, else
    /// ~/.local/state/sockit/chat.db, else ./sockit-chat.db.
    #[arg(long, value_name = "PATH", help_heading = "History")]
    history_db: Option<std::path::PathBuf>,
    /// Keep no history: nothing is written, nothing replayed.
    #[arg(long, conflicts_with = "history_db", help_heading = "History")]
    no_history: bool,
    /// Forget events older than this: 7d, 12h, 30m, 90s, 500ms; 0 keeps them
    /// forever. With --cluster, also the room log's limit.
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = parse_age, help_heading = "History")]
    history_max_age: Duration,
    /// Keep at most the last N events of each room; 0: no limit. With
    /// --cluster, also the room log's limit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10000,
        help_heading = "History"
    )]
    history_max_per_room: u64,
    /// Messages a member is shown (as history) when it enters a room; 0: none.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000), help_heading = "History")]
    history_on_join: u32,
    /// Also keep private messages (not replayed; kept for --history-max-age).
    #[arg(long, help_heading = "History")]
    history_private: bool,
    /// Most bytes the history file may take, e.g. 512M, 2G; past it, history
    /// pauses as on a full disk and chat goes on.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "History")]
    history_max_size: Option<u64>,
    /// Also serve IRC clients (irssi, WeeChat, HexChat, bots) on ADDR
    /// (HOST:PORT or :PORT, e.g. :6667): rooms are channels (lobby is
    /// #lobby). With the TLS flags, IRC over TLS (conventionally :6697).
    #[arg(long, value_name = "ADDR", help_heading = "IRC")]
    irc: Option<String>,
    /// Password IRC clients must give (PASS) to register.
    #[arg(long, value_name = "PASSWORD", requires = "irc", help_heading = "IRC")]
    irc_password: Option<String>,
    /// Message of the day for IRC clients, from FILE (default: none, 422).
    #[arg(long, value_name = "FILE", requires = "irc", help_heading = "IRC")]
    motd: Option<std::path::PathBuf>,
    /// Ping an IRC client silent for SECS, and drop it if it stays silent as
    /// long again (also the time allowed to register); 0: never.
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = parse_secs, help_heading = "IRC")]
    irc_ping: Duration,
    /// Most channels one IRC client may be in at once (405 beyond).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100000), help_heading = "IRC")]
    irc_max_channels: u32,

    #[command(flatten)]
    tls: TlsServerArgs,

    #[command(flatten)]
    cluster: Box<ClusterArgs>,
}

/// `--cluster` and its companions.
#[derive(Debug, ClapArgs)]
struct ClusterArgs {
    /// Share rooms with other nodes through NATS (JetStream on): one URL or
    /// several, comma-separated, e.g. nats://10.0.0.5:4222,nats://10.0.0.6:4222
    /// (user:password@ in a URL is used and never shown).
    #[arg(long, value_name = "URLS", help_heading = "Cluster")]
    cluster: Option<String>,
    /// This node's name, unique in the cluster. Default: host name and process id.
    #[arg(
        long,
        value_name = "NAME",
        requires = "cluster",
        help_heading = "Cluster"
    )]
    node: Option<String>,
    /// NATS credentials file (JWT and NKey seed, from nsc).
    #[arg(
        long,
        value_name = "FILE",
        requires = "cluster",
        help_heading = "Cluster"
    )]
    cluster_creds: Option<std::path::PathBuf>,
    /// CA certificates (PEM) that sign the NATS servers' certificates; turns TLS on.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cluster",
        help_heading = "Cluster"
    )]
    cluster_tls_ca: Option<std::path::PathBuf>,
    /// How long to wait for NATS at start before giving up.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs, requires = "cluster", help_heading = "Cluster")]
    cluster_timeout: Duration,
    /// How long a node's nicks and presence outlive it: a node gone this long
    /// is announced as lost and its nicks are free. Refreshed every third of it.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_secs, requires = "cluster", help_heading = "Cluster")]
    cluster_lease: Duration,
    /// Copies JetStream keeps of the nick, presence and node buckets and of the
    /// room log: 3 on a three-server NATS cluster, so one server may fail.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5), requires = "cluster", help_heading = "Cluster")]
    cluster_replicas: u8,
    /// Fault injection for tests: drop every Nth room event that arrives from NATS.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        hide = true,
        requires = "cluster"
    )]
    cluster_drop_every: u64,
}

/// Runs `sockit chat ...`.
pub async fn run(args: Args) -> Result<()> {
    match args.command {
        ChatCommand::Serve(a) => serve(*a).await,
        ChatCommand::Join(a) => join(*a).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let shutdown = Shutdown::on_signals();
    let ep = Endpoint::parse(&args.endpoint, args.net.udp)?;
    if !ep.is_stream() {
        return Err(Error::Usage(format!(
            "chat needs a stream endpoint (TCP or unix:), not {}",
            ep.proto()
        )));
    }
    if (args.max_queue as usize) < 2 * (args.max_line as usize + 64) {
        return Err(Error::Usage(format!(
            "--max-queue {} is too small for --max-line {}: it must hold two full lines ({} bytes)",
            args.max_queue,
            args.max_line,
            2 * (args.max_line as usize + 64)
        )));
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err(Error::Usage(format!("invalid --rate {}", args.rate)));
    }
    let acl = args.access.acl(&ep)?;
    let cluster = match &args.cluster.cluster {
        Some(urls) => Some(join_cluster(urls, &args).await?),
        None => None,
    };
    let history = if args.no_history {
        None
    } else {
        let settings = crate::chat::history::Settings {
            path: args
                .history_db
                .clone()
                .unwrap_or_else(crate::chat::history::default_path),
            max_age: (!args.history_max_age.is_zero()).then_some(args.history_max_age),
            max_per_room: (args.history_max_per_room > 0).then_some(args.history_max_per_room),
            private: args.history_private,
            max_size: args.history_max_size,
            // In a cluster the room log numbers the events: this file keeps
            // this node's copy of what its rooms said, under the log's epoch.
            epoch: cluster.as_ref().map(|c| c.log_epoch()),
        };
        Some((
            crate::chat::history::History::open(settings)?,
            args.history_on_join as usize,
        ))
    };
    crate::sock::raise_nofile_limit(args.max_clients as u64 + 64);
    let (bound, _guard) = bind(&ep, args.net.family(), args.backlog, &SockOpts::default()).await?;
    let Bound::Stream(listener) = bound else {
        return Err(Error::Usage("chat needs a stream endpoint".into()));
    };
    let tls = args.tls.server()?;
    announce(&listener.local_addr(), &ep, &args);
    if let Some((h, _)) = &history {
        eprintln!("sockit: chat history in {}", h.path().display());
    }
    let mut listeners = vec![ChatListener {
        listener,
        gate: Gate {
            tls: tls.clone(),
            acl: acl.clone(),
            handshake_timeout: args.handshake_timeout,
        },
        protocol: Protocol::Line,
    }];
    let mut web = WebSettings {
        echo: args.web_echo,
        ..WebSettings::default()
    };
    web.config.allow_no_origin = args.web_echo;
    web.config.upgrade_any_path = args.web_echo;
    web.config.handshake_timeout = args.handshake_timeout;
    for o in &args.web_origin {
        let o = parse_origin(o).map_err(|e| Error::Usage(format!("--web-origin {o}: {e}")))?;
        web.config.origins.push(o);
    }
    if let Some(addr) = &args.web {
        let wep = Endpoint::parse(addr, false)?;
        if !matches!(wep, Endpoint::Ip { .. }) || !wep.is_stream() {
            return Err(Error::Usage(format!("--web needs HOST:PORT, not {addr}")));
        }
        let (bound, _) = bind(&wep, args.net.family(), args.backlog, &SockOpts::default()).await?;
        let Bound::Stream(wl) = bound else {
            return Err(Error::Usage("--web needs a TCP address".into()));
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shown = wl.local_addr();
        // A wildcard address is no URL to open: name this machine instead.
        let host = match shown
            .strip_prefix("0.0.0.0:")
            .or_else(|| shown.strip_prefix("[::]:"))
        {
            Some(port) => format!("localhost:{port}"),
            None => shown.clone(),
        };
        eprintln!("sockit: chat web page on {scheme}://{host}/");
        listeners.push(ChatListener {
            listener: wl,
            gate: Gate {
                tls: tls.clone(),
                acl: acl.clone(),
                handshake_timeout: args.handshake_timeout,
            },
            protocol: Protocol::Web,
        });
    }
    let mut irc = IrcSettings {
        password: args.irc_password.clone(),
        motd: None,
        ping: (!args.irc_ping.is_zero()).then_some(args.irc_ping),
        max_channels: args.irc_max_channels as usize,
    };
    if let Some(path) = &args.motd {
        let text =
            std::fs::read(path).map_err(|e| Error::io(format!("--motd {}", path.display()), e))?;
        let lines = String::from_utf8_lossy(&text)
            .lines()
            .take(100)
            .map(|l| {
                crate::chat::sanitize::sanitize(l.as_bytes())
                    .chars()
                    .take(400)
                    .collect()
            })
            .collect();
        irc.motd = Some(std::sync::Arc::new(lines));
    }
    if let Some(addr) = &args.irc {
        let iep = Endpoint::parse(addr, false)?;
        if !matches!(iep, Endpoint::Ip { .. }) || !iep.is_stream() {
            return Err(Error::Usage(format!("--irc needs HOST:PORT, not {addr}")));
        }
        let (bound, _) = bind(&iep, args.net.family(), args.backlog, &SockOpts::default()).await?;
        let Bound::Stream(il) = bound else {
            return Err(Error::Usage("--irc needs a TCP address".into()));
        };
        let scheme = if tls.is_some() { "ircs" } else { "irc" };
        let shown = il.local_addr();
        let host = match shown
            .strip_prefix("0.0.0.0:")
            .or_else(|| shown.strip_prefix("[::]:"))
        {
            Some(port) => format!("localhost:{port}"),
            None => shown.clone(),
        };
        eprintln!("sockit: chat IRC on {scheme}://{host}/ (rooms are channels: #lobby)");
        listeners.push(ChatListener {
            listener: il,
            gate: Gate {
                tls: tls.clone(),
                acl: acl.clone(),
                handshake_timeout: args.handshake_timeout,
            },
            protocol: Protocol::Irc,
        });
    }
    let server = ChatServer {
        history,
        listeners,
        session: SessionLimits {
            max_line: args.max_line as usize,
            flush_partial: args.flush_partial,
            rate: args.rate,
            burst: args.burst,
            idle: args.idle_timeout,
            drain: args.drain_timeout,
        },
        max_clients: args.max_clients as usize,
        max_queue: args.max_queue as usize,
        operator_nick: args.operator_nick.clone(),
        console: !args.no_console,
        console_input: !args.no_console && stdin_is_open(),
        drain_timeout: args.drain_timeout,
        web,
        cluster,
        irc,
    };
    server.run(shutdown).await
}

/// Parses an age: a number and a unit (`ms`, `s`, `m`, `h`, `d`); a bare
/// number is seconds.
fn parse_age(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not an age like 7d, 12h, 30m, 90s or 500ms"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "" | "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        "d" => v * 86400.0,
        _ => return Err(format!("'{s}': the unit is one of ms, s, m, h, d")),
    };
    if !(0.0..=1e10).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size in bytes with an optional K, M or G (powers of 1024).
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let v: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 65536, 512K, 64M or 2G"))?;
    v.checked_mul(mult)
        .filter(|b| *b >= 4096)
        .ok_or_else(|| format!("'{s}': give at least 4096 bytes"))
}

/// Connects to NATS for `--cluster` (bounded by `--cluster-timeout`) and
/// says which node this is.
async fn join_cluster(urls: &str, serve: &ServeArgs) -> Result<crate::chat::cluster::Connected> {
    use crate::chat::cluster::{connect, default_node, redact, ClusterConfig};
    let args = &serve.cluster;
    let urls: Vec<String> = urls
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(Error::Usage("--cluster needs at least one NATS URL".into()));
    }
    let (node, chosen) = match &args.node {
        Some(n) => (n.clone(), ""),
        None => (default_node(), " (host name and pid; set it with --node)"),
    };
    if node.is_empty() || node.len() > 64 || node.contains(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "--node '{node}': 1 to 64 characters, no spaces"
        )));
    }
    if args.cluster_lease < Duration::from_secs(1) {
        return Err(Error::Usage("--cluster-lease must be at least 1 s".into()));
    }
    let mut cfg = ClusterConfig::new(urls, node);
    cfg.creds = args.cluster_creds.clone();
    cfg.tls_ca = args.cluster_tls_ca.clone();
    cfg.connect_timeout = args.cluster_timeout;
    cfg.lease = args.cluster_lease;
    // The room log keeps what history keeps (set by the node that makes it).
    cfg.log_per_room = match serve.history_max_per_room {
        0 => -1,
        n => i64::try_from(n).unwrap_or(i64::MAX),
    };
    cfg.log_age = serve.history_max_age;
    cfg.drop_every = args.cluster_drop_every;
    cfg.replicas = usize::from(args.cluster_replicas);
    let shown: Vec<String> = cfg.urls.iter().map(|u| redact(u)).collect();
    let c = connect(cfg.clone()).await?;
    eprintln!(
        "sockit: cluster node {}{chosen}, through NATS at {}",
        cfg.node,
        shown.join(",")
    );
    Ok(c)
}

/// Says on stderr where the chat listens, how to join it, and who the
/// terminal is, so a first run explains itself.
fn announce(local: &str, ep: &Endpoint, args: &ServeArgs) {
    // A wildcard address is no place to connect to: name this machine.
    let reach = match local
        .strip_prefix("0.0.0.0:")
        .or_else(|| local.strip_prefix("[::]:"))
    {
        Some(port) => format!("127.0.0.1:{port}"),
        None => local.to_string(),
    };
    let nc = match ep {
        Endpoint::Ip { .. } => match reach.rsplit_once(':') {
            Some((host, port)) => format!("nc {} {port}", host.trim_matches(['[', ']'])),
            None => format!("nc {reach}"),
        },
        _ => format!("nc -U {reach}"),
    };
    let join = match ep {
        Endpoint::Ip { .. } => reach.clone(),
        _ => format!("unix:{reach}"),
    };
    // With --tls-client-ca a client must bring a certificate.
    let (tls, ncat) = match (args.tls.identity(), &args.tls.tls_client_ca) {
        (Some(_), Some(_)) => (
            " --tls --insecure --cert CLIENT.pem",
            "ncat --ssl --ssl-cert CLIENT.pem --ssl-key CLIENT.key",
        ),
        (Some(_), None) => (" --tls --insecure", "ncat --ssl"),
        (None, _) => ("", ""),
    };
    let mut text = format!(
        "sockit: chat listening on {local} ({})\nsockit: join with: {} or sockit chat join{tls} {join}\n",
        ep.proto(),
        if tls.is_empty() { nc } else { format!("{ncat} {}", &nc[3..]) },
    );
    if !args.no_console {
        text.push_str(&format!(
            "sockit: this terminal is the operator, {}: type to talk, /help for commands\n",
            args.operator_nick
        ));
    }
    // One write, so a reader never sees half of it.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
}

/// False when stdin is closed (`<&-`), so the console does not spin on it.
fn stdin_is_open() -> bool {
    use std::os::fd::AsRawFd;
    let stdin = std::io::stdin();
    // SAFETY: fcntl(F_GETFD) only queries the descriptor.
    unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_GETFD) != -1 }
}

/// Examples shown under `sockit chat join --help`.
pub const JOIN_HELP: &str = "\
Examples:
  sockit chat join localhost:8000 --nick alice      chat in your terminal (history: Up/Down)
  sockit chat join --tls --pin-sha256 AB:CD:.. chat.example:8443
                                                    TLS, trusting exactly that certificate
  sockit chat join --reconnect --nick bot :8000     come back (and take the nick again) after drops
  sockit chat join --reconnect :8000,:8001,:8002    cluster nodes: on a drop, the next one
  printf 'hi\\n/quit\\n' | sockit chat join :8000     scripts: each stdin line is sent
  sockit chat join --json :8000 | jq .              one JSON object per server line
  sockit chat join -x socks5h://127.0.0.1:1080 chat.example:8000
                                                    through a SOCKS5 proxy

On a terminal, incoming lines appear above the prompt and what you are typing is kept.
Ctrl-C leaves at once; Ctrl-D (or stdin ending) half-closes and waits for the server.
--json events (each with \"ts\", RFC 3339 UTC): message {nick,text}, action {nick,text},
private {from,text}, private_sent {to,text}, join {nick,room}, leave {nick,reason},
nick {old,new}, system {text}, error {text}, and other {text} for lines outside the
protocol. Server text is always sanitized: control characters are shown, never run.

Exit status: 0 when the server closes the connection; otherwise see 'sockit --help'.";

/// When to colour nicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is not set.
    Auto,
    /// Always (even into a pipe).
    Always,
    /// Never.
    Never,
}

/// Flags for `sockit chat join`.
#[derive(Debug, ClapArgs)]
pub struct JoinArgs {
    /// The server: HOST:PORT, :PORT, [IPV6]:PORT, unix:/PATH, unix:@NAME; several
    /// (cluster nodes) comma-separated, tried in turn, the next first after a drop.
    pub endpoint: String,
    /// Take this nick right after connecting (sent as /nick NAME, and again after a reconnect).
    #[arg(long, value_name = "NAME")]
    nick: Option<String>,
    /// Print one JSON object per server line instead of text (event types under --help).
    #[arg(long)]
    json: bool,
    /// Colour nicks (a stable colour per nick) and errors.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// When the connection drops, reconnect with backoff (0.5 s doubling to 30 s,
    /// jittered) and take the nick again; notices go to stderr.
    #[arg(long)]
    reconnect: bool,
    /// Use IPv4 only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    ipv6: bool,
    /// Connect timeout per address, in seconds.
    #[arg(short = 'w', long = "wait", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    wait: Duration,
    /// Longest line in bytes, either way: longer server lines are dropped with a
    /// notice, longer input lines are not sent.
    #[arg(long, value_name = "BYTES", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=16 << 20), help_heading = "Limits")]
    max_line: u32,
    #[command(flatten)]
    tls: TlsClientArgs,
    #[command(flatten)]
    proxy: ProxyArgs,
}

async fn join(args: JoinArgs) -> Result<()> {
    use std::io::IsTerminal;

    // A unix path may hold a comma: only TCP addresses are split.
    let listed: Vec<&str> = if args.endpoint.starts_with("unix:") {
        vec![args.endpoint.as_str()]
    } else {
        args.endpoint.split(',').map(str::trim).collect()
    };
    let mut endpoints = Vec::with_capacity(listed.len());
    for one in listed {
        let endpoint = Endpoint::parse(one, false)?;
        if !endpoint.is_stream() {
            return Err(Error::Usage(format!(
                "chat needs a stream endpoint (TCP or unix:), not {}",
                endpoint.proto()
            )));
        }
        endpoints.push(endpoint);
    }
    let endpoint = endpoints.remove(0);
    if let Some(nick) = &args.nick {
        check_nick(nick).map_err(|e| Error::Usage(format!("invalid --nick '{nick}': {e}")))?;
    }
    let stdout_tty = std::io::stdout().is_terminal();
    let color = !args.json
        && match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
    let config = client::Config {
        endpoint,
        others: endpoints,
        dial: DialOpts {
            family: Family::from_flags(args.ipv4, args.ipv6),
            wait: args.wait,
            sock: SockOpts::default(),
            tls: args.tls.options(),
            proxy: args.proxy.proxy()?,
        },
        nick: args.nick,
        json: args.json,
        color,
        reconnect: args.reconnect,
        interactive: !args.json && client::stdio_is_terminal(),
        max_line: args.max_line as usize,
    };
    client::run(config, Shutdown::on_signals()).await
}
