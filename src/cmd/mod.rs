//! Subcommands: one file each, same shape (an `Args` struct and `run`), and
//! the top-level parser that lists them. Shared flag groups are in `cli`.

pub mod chat;
pub mod connect;
pub mod http;
pub mod listen;
pub mod ping;
pub mod relay;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::{Error, Result};

/// Shown under `sockit --help`: examples, endpoint forms, exit codes.
pub fn top_help() -> String {
    format!(
        "\
Examples:
  sockit connect example.com:80             talk to a TCP port (like nc host port)
  sockit listen -k :8000                    serve many clients, stdin goes to all
  sockit listen --greet :8000               the greeting server: 'x' -> 'hello x'
  sockit connect -u 127.0.0.1:5353          UDP, one datagram per line
  sockit listen unix-seqpacket:/tmp/s.sock  Unix sockets keep message boundaries
  sockit connect --tls example.com:443      TLS client
  sockit connect -x socks5h://127.0.0.1:1080 example.com:80
                                            through a proxy (socks5[h], socks4[a], http, https)
  sockit relay -k :8080 127.0.0.1:80        port forward: each client of :8080 to 127.0.0.1:80
  sockit http -L https://example.com/       HTTP/1.1 client like curl (exit codes: its --help)

Endpoints: HOST:PORT, :PORT, [IPV6]:PORT, tcp://HOST:PORT, udp://HOST:PORT,
           unix:/PATH, unix-dgram:/PATH, unix-seqpacket:/PATH, unix:@ABSTRACT

{}",
        crate::error::exit_code_help()
    )
}

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "sockit",
    version,
    about = "A socket toolkit: netcat-style connect and listen over TCP, UDP, Unix and TLS",
    after_help = top_help(),
    propagate_version = true
)]
pub struct Cli {
    /// More diagnostics on stderr (-v: addresses, byte counts; -vv: debug). RUST_LOG works too.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments, like clap's `try_parse`, except that
    /// every subcommand's `--version` says `sockit VERSION` (clap would say
    /// `sockit-http VERSION`).
    pub fn try_parse_args() -> Result<Cli, clap::Error> {
        fn named(cmd: clap::Command) -> clap::Command {
            cmd.mut_subcommands(|c| named(c.display_name("sockit")))
        }
        let mut matches = named(Cli::command()).try_get_matches()?;
        Cli::from_arg_matches_mut(&mut matches)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to an endpoint and relay stdin/stdout (the tutorial's client; nc HOST PORT).
    #[command(after_help = connect::HELP)]
    Connect(connect::Args),
    /// Listen on an endpoint and serve clients (the tutorial's server; nc -l).
    #[command(after_help = listen::HELP)]
    Listen(listen::Args),
    /// Forward connections from one endpoint to another (a port forward; socat A B).
    #[command(after_help = relay::HELP)]
    Relay(relay::Args),
    /// HTTP/1.1 client on sockit's own sockets (like curl): GET, POST, redirects, TLS.
    #[command(after_help = http::HELP)]
    Http(http::Args),
    /// Multi-user chat: a server any line client (nc, telnet) can use.
    #[command(after_help = chat::HELP)]
    Chat(chat::Args),
    /// Send ICMP echo requests and report the replies (the tutorial's SOCK_RAW; ping HOST).
    #[command(after_help = ping::HELP)]
    Ping(ping::Args),
}

impl Command {
    /// Runs the chosen subcommand; `Ok` carries the exit status (0 unless the
    /// subcommand has a "finished, but no" outcome of its own).
    pub async fn run(self) -> Result<u8> {
        match self {
            Command::Connect(args) => connect::run(args).await,
            Command::Listen(args) => listen::run(args).await.map(|()| 0),
            Command::Relay(args) => relay::run(args).await.map(|()| 0),
            Command::Ping(args) => ping::run(args).await,
            Command::Http(args) => http::run(args).await,
            Command::Chat(args) => chat::run(args).await.map(|()| 0),
        }
    }

    /// How this subcommand turns an error into an exit status. Most use the
    /// error's class; one with a conventional numbering of its own maps it here.
    pub fn error_exit_code(&self) -> fn(&Error) -> u8 {
        match self {
            Command::Http(_) => http::exit_code,
            Command::Ping(_) => ping::exit_code,
            Command::Connect(_) | Command::Listen(_) | Command::Relay(_) | Command::Chat(_) => {
                |e| e.class().exit_code()
            }
        }
    }
}

/// One line for a command-line error clap found: clap's own message (its
/// first lines up to the usage block, joined), then where to read more,
/// e.g. `unexpected argument 'x' found (see sockit connect --help)`.
/// `args` is the command line without the program name.
pub fn usage_line(err: &clap::Error, args: &[String]) -> String {
    let text = err.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        // clap's `use '-- -p'` advice is rarely what was meant.
        if line.is_empty() || line.starts_with("tip: to pass") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        let line = line.strip_prefix("tip: ").unwrap_or(line);
        parts.push(line.trim_end_matches(':').to_string());
    }
    let see = format!("see {} --help", command_path(args));
    let Some((first, rest)) = parts.split_first() else {
        return format!("bad command line ({see})");
    };
    if first.ends_with("provided") {
        return format!("{first}: {} ({see})", rest.join(", "));
    }
    // `invalid value 'x' for '--wait <SECS>': why`: the why is the cause.
    let (what, mut causes) = match first.split_once("': ") {
        Some((what, why)) => (format!("{what}'"), vec![why.to_string()]),
        None => (first.clone(), Vec::new()),
    };
    for tip in rest {
        causes.push(match tip.split_once("exists: ") {
            Some((_, name)) => format!("did you mean {name}?"),
            None => tip.clone(),
        });
    }
    let mut cause = String::new();
    for c in causes.iter().chain([&see]) {
        if !cause.is_empty() {
            cause.push_str(if cause.ends_with('?') { " " } else { "; " });
        }
        cause.push_str(c);
    }
    format!("{what} ({cause})")
}

/// `sockit connect`, `sockit chat serve`, or plain `sockit`: the command a
/// command line names, for the help pointer.
fn command_path(args: &[String]) -> String {
    const TOP: [&str; 6] = ["connect", "listen", "relay", "http", "chat", "ping"];
    let mut words = args.iter().filter(|a| !a.starts_with('-'));
    let mut path = "sockit".to_string();
    if let Some(cmd) = words.next().filter(|w| TOP.contains(&w.as_str())) {
        path.push(' ');
        path.push_str(cmd);
        if cmd == "chat" {
            if let Some(sub) = words
                .next()
                .filter(|w| ["serve", "join"].contains(&w.as_str()))
            {
                path.push(' ');
                path.push_str(sub);
            }
        }
    }
    path
}
