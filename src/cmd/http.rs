//! `sockit http`: a curl-style HTTP/1.1 client on sockit's own sockets.
//!
//! This file owns the command line, what goes to stdout, files and stderr
//! (`-i`, `-v`, `-o`, `-O`, `-w`, the progress bar) and the exit codes. The
//! protocol itself (parsing, framing, decoding, connections, redirects) is in
//! `crate::http`; nothing here reads a socket directly.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use url::Url;

use crate::cli::parse_secs;
use crate::endpoint::Family;
use crate::error::{Class, Error, Result};
use crate::http::decode::{DecodeError, Decoder, MAX_CODINGS};
use crate::http::exchange::{Buffer, Exchange, Started};
use crate::http::parse::{Framing, Head, Limits};
use crate::http::pool::{parse_resolve, ConnectOpts, Connection, Pool};
use crate::http::redirect::{self, Next};
use crate::http::request::{self as request, check_method, parse_header, Request, Template};
use crate::http::target::{self, Origin};
use crate::http::{Error as HttpError, Kind};
use crate::tls;

/// Examples and exit codes shown under `sockit http --help`.
pub const HELP: &str = "\
Examples:
  sockit http example.com                           GET, body to stdout
  sockit http -i https://example.com/               status line and headers first
  sockit http -v -o page.html https://example.com/  request/response headers on stderr
  sockit http -O https://host/file.iso              save as file.iso (progress bar on a terminal)
  sockit http -d 'a=1&b=2' http://host/form         POST a form; -d @file, --data-binary @file
  sockit http --json '{\"k\":1}' http://host/api      POST JSON
  sockit http -X PUT -H 'X-Token: t' -u me:pw http://host/x
  sockit http -L --max-redirs 5 http://host/old     follow redirects
  sockit http --compressed -s http://host/ | wc -c  gzip/deflate/br decoded
  sockit http -w '%{http_code} %{time_total}\\n' -o /dev/null -s http://host/
  sockit http http://h/a http://h/b http://h/c      one keep-alive connection for all three
  sockit http --resolve example.com:443:127.0.0.1 https://example.com/
  sockit http --unix-socket /var/run/docker.sock http://localhost/version
  sockit http --cacert ca.pem https://[::1]:8443/   or -k to skip verification

-w variables: %{http_code} %{size_download} %{size_header} %{content_type}
  %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}
  %{speed_download} %{url_effective} %{num_redirects}; escapes \\n \\r \\t, %%.

Exit status (curl's numbering):
  0    success (an HTTP error status is success too, unless -f)
  1    unsupported protocol (only http:// and https://)
  2    usage error: bad flag or value
  3    malformed URL
  6    host name could not be resolved
  7    could not connect (refused, unreachable)
  8    malformed response (what and at which byte)
  18   partial body: the connection closed before the end
  22   -f: the server answered 400 or above
  23   cannot write the output
  26   cannot read a local file (-d @file, --cacert)
  28   timed out (--connect-timeout, -m)
  35   TLS handshake failed
  47   too many redirects (--max-redirs)
  52   empty reply from server
  55   failed sending the request
  56   failed receiving the response (reset)
  60   the server certificate could not be verified
  61   unknown or corrupt content/transfer encoding, or more codings than --max-codings
  100  response head over a limit (--max-header-bytes, --max-headers)";

/// Flags for `sockit http`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// URLs to fetch, in order; a missing scheme means http://. Requests to the same
    /// host share one keep-alive connection.
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,

    /// Request method (default GET; POST when a body is given).
    #[arg(
        short = 'X',
        long = "request",
        value_name = "METHOD",
        help_heading = "Request"
    )]
    pub method: Option<String>,
    /// HEAD request: fetch the status line and headers only, and print them.
    #[arg(short = 'I', long = "head", help_heading = "Request")]
    pub head: bool,
    /// Body to send (POST unless -X). '@FILE' reads a file with CR and LF removed,
    /// '@-' reads stdin. Repeated: the parts are joined with '&'.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "DATA",
        help_heading = "Request"
    )]
    pub data: Vec<String>,
    /// Like -d, but '@FILE' is sent byte for byte.
    #[arg(long = "data-binary", value_name = "DATA", help_heading = "Request")]
    pub data_binary: Vec<String>,
    /// JSON body (POST unless -X); sets Content-Type and Accept to application/json.
    /// '@FILE' reads a file. Repeated: the parts are concatenated.
    #[arg(long, value_name = "DATA", help_heading = "Request")]
    pub json: Vec<String>,
    /// Extra header 'Name: value' (repeatable). Replaces a default header of the same
    /// name; 'Name:' removes it; 'Name;' sends it with an empty value.
    /// 'Transfer-Encoding: chunked' sends the body chunked, without Content-Length.
    // Parsed in `Plan::new`, not by clap, so an error never echoes raw control bytes.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "HEADER",
        help_heading = "Request"
    )]
    pub headers: Vec<String>,
    /// User-Agent header (default sockit/VERSION; an empty NAME sends none).
    #[arg(
        short = 'A',
        long = "user-agent",
        value_name = "NAME",
        help_heading = "Request"
    )]
    pub user_agent: Option<String>,
    /// Basic authentication as USER:PASSWORD (dropped on redirects to another host).
    #[arg(
        short = 'u',
        long = "user",
        value_name = "USER:PASSWORD",
        help_heading = "Request"
    )]
    pub user: Option<String>,
    /// Ask for a compressed response (gzip, deflate, br) and decode it as it arrives.
    #[arg(long, help_heading = "Request")]
    pub compressed: bool,

    /// Write the status line and headers before the body.
    #[arg(short = 'i', long = "include", help_heading = "Output")]
    pub include: bool,
    /// Write the body to FILE instead of stdout; the Nth -o is for the Nth URL.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        help_heading = "Output"
    )]
    pub output: Vec<PathBuf>,
    /// Write each body to a file named like the last segment of its URL path.
    #[arg(short = 'O', long = "remote-name", help_heading = "Output")]
    pub remote_name: bool,
    /// No progress bar (it is only shown for -o/-O when stderr is a terminal).
    #[arg(short = 's', long = "silent", help_heading = "Output")]
    pub silent: bool,
    /// Exit 22 without writing the body when the server answers 400 or above.
    #[arg(short = 'f', long = "fail", help_heading = "Output")]
    pub fail: bool,
    /// After each transfer, write FORMAT to stdout ('@FILE' reads it from a file);
    /// variables are listed below.
    #[arg(
        short = 'w',
        long = "write-out",
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub write_out: Option<String>,

    /// Seconds allowed to resolve, connect and finish the TLS handshake.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "300", help_heading = "Connection")]
    pub connect_timeout: Duration,
    /// Seconds allowed for the whole run (exit 28 when it expires).
    #[arg(short = 'm', long = "max-time", value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub max_time: Option<Duration>,
    /// Connect to ADDR for HOST:PORT instead of resolving HOST (repeatable;
    /// ADDR may be a comma-separated list, IPv6 in brackets).
    // Parsed in `run`, not by clap, so an error never echoes raw control bytes.
    #[arg(long, value_name = "HOST:PORT:ADDR", help_heading = "Connection")]
    pub resolve: Vec<String>,
    /// Send every request over this Unix stream socket (e.g. /var/run/docker.sock);
    /// the URL still gives the Host header and path.
    #[arg(long, value_name = "PATH", help_heading = "Connection")]
    pub unix_socket: Option<PathBuf>,
    /// Resolve names to IPv4 addresses only.
    #[arg(
        short = '4',
        long = "ipv4",
        conflicts_with = "ipv6",
        help_heading = "Connection"
    )]
    pub ipv4: bool,
    /// Resolve names to IPv6 addresses only.
    #[arg(short = '6', long = "ipv6", help_heading = "Connection")]
    pub ipv6: bool,

    /// Trust only the CA certificates in this PEM file (default: the system roots).
    #[arg(long, value_name = "PEM", help_heading = "TLS")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server certificate (the connection is still encrypted).
    #[arg(short = 'k', long = "insecure", help_heading = "TLS")]
    pub insecure: bool,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(short = 'L', long = "location", help_heading = "Redirects")]
    pub location: bool,
    /// Most redirects to follow with -L (exit 47 beyond).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        help_heading = "Redirects"
    )]
    pub max_redirs: u32,

    /// Largest response head (status line and headers), and trailer block, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_header_bytes,
          value_parser = parse_header_bytes, help_heading = "Limits")]
    pub max_header_bytes: usize,
    /// Most header fields in a response head.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_headers,
          value_parser = parse_max_headers, help_heading = "Limits")]
    pub max_headers: usize,
    /// Most content and transfer codings to remove from one body (exit 61 beyond).
    #[arg(long, value_name = "N", default_value_t = MAX_CODINGS,
          value_parser = parse_max_codings, help_heading = "Limits")]
    pub max_codings: usize,
}

fn parse_max_codings(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a number from 1 to 64")),
    }
}

fn parse_header_bytes(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (256..=1 << 30).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of bytes from 256 to 1073741824"
        )),
    }
}

fn parse_max_headers(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a number from 1 to 100000")),
    }
}

/// The exit status for an error from `sockit http`, numbered like curl's.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Http(h) => h.kind.exit_code(),
        Error::Usage(_) => 2,
        Error::Resolve { .. } => 6,
        Error::Timeout { .. } => 28,
        Error::Tls { reason, .. } => {
            if reason.contains("certificate") {
                60
            } else {
                35
            }
        }
        Error::Io { .. } => match e.class() {
            Class::Timeout => 28,
            Class::Usage => 2,
            _ => 7,
        },
    }
}

/// `-v`: the global verbosity flag raises the log level; curl-style traces follow it.
fn verbose() -> bool {
    tracing::enabled!(target: "sockit::http", tracing::Level::INFO)
}

/// Peer text made safe for a terminal, by the crate's one sanitizer.
fn visible(bytes: &[u8]) -> String {
    crate::http::shown(bytes)
}

/// Writes curl-style `*`, `>` and `<` lines on stderr under `-v`.
struct Trace {
    on: bool,
}

impl Trace {
    fn note(&self, text: &str) {
        if self.on {
            eprintln!("* {text}");
        }
    }

    fn lines(&self, prefix: &str, block: &[u8]) {
        if !self.on {
            return;
        }
        let mut err = std::io::stderr().lock();
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let _ = writeln!(err, "{prefix} {}", visible(line));
        }
    }

    fn head(&self, head: &Head) {
        if self.on {
            let raw = head.raw.strip_suffix(b"\n").unwrap_or(&head.raw);
            self.lines("<", raw);
        }
    }
}

/// Where a body goes.
enum Sink {
    Stdout(ManuallyDrop<File>),
    File(File, PathBuf),
}

impl Sink {
    fn stdout() -> Sink {
        // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never closes it.
        // Writing to it directly avoids the line buffering of std's stdout on big bodies.
        Sink::Stdout(ManuallyDrop::new(unsafe { File::from_raw_fd(1) }))
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout(f) => f.write_all(data),
            Sink::File(f, _) => f.write_all(data),
        }
    }

    fn name(&self) -> String {
        match self {
            Sink::Stdout(_) => "stdout".into(),
            Sink::File(_, p) => p.display().to_string(),
        }
    }
}

/// Measurements for `-w`.
#[derive(Debug, Clone)]
struct Stats {
    start: Instant,
    connected: Option<Instant>,
    app_connected: Option<Instant>,
    first_byte: Option<Instant>,
    end: Option<Instant>,
    size_download: u64,
    size_header: u64,
    http_code: u16,
    content_type: String,
    url_effective: String,
    num_redirects: u32,
}

impl Stats {
    fn new(url: &Url) -> Stats {
        Stats {
            start: Instant::now(),
            connected: None,
            app_connected: None,
            first_byte: None,
            end: None,
            size_download: 0,
            size_header: 0,
            http_code: 0,
            content_type: String::new(),
            url_effective: target::display(url),
            num_redirects: 0,
        }
    }

    fn secs(&self, t: Option<Instant>) -> String {
        let d = t.map_or(Duration::ZERO, |t| t.saturating_duration_since(self.start));
        format!("{:.6}", d.as_secs_f64())
    }

    fn var(&self, name: &str) -> Option<String> {
        Some(match name {
            "http_code" | "response_code" => format!("{:03}", self.http_code),
            "size_download" => self.size_download.to_string(),
            "size_header" => self.size_header.to_string(),
            "content_type" => self.content_type.clone(),
            "time_connect" => self.secs(self.connected),
            "time_appconnect" => self.secs(self.app_connected),
            "time_starttransfer" => self.secs(self.first_byte),
            "time_total" => self.secs(self.end),
            "speed_download" => {
                let t = self
                    .end
                    .map_or(0.0, |e| e.duration_since(self.start).as_secs_f64());
                let speed = if t > 0.0 {
                    self.size_download as f64 / t
                } else {
                    0.0
                };
                format!("{speed:.0}")
            }
            "url_effective" => self.url_effective.clone(),
            "num_redirects" => self.num_redirects.to_string(),
            _ => return None,
        })
    }

    /// Expands a `-w` format.
    fn format(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut rest = fmt;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("%{") {
                if let Some((name, tail)) = after.split_once('}') {
                    match self.var(name) {
                        Some(v) => out.push_str(&v),
                        None => tracing::warn!("unknown -w variable '{name}'"),
                    }
                    rest = tail;
                    continue;
                }
            }
            if let Some(tail) = rest.strip_prefix("%%") {
                out.push('%');
                rest = tail;
                continue;
            }
            if c == '\\' {
                let mut it = rest[1..].chars();
                let esc = match it.next() {
                    Some('n') => Some('\n'),
                    Some('r') => Some('\r'),
                    Some('t') => Some('\t'),
                    Some('\\') => Some('\\'),
                    _ => None,
                };
                if let Some(e) = esc {
                    out.push(e);
                    rest = &rest[2..];
                    continue;
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

/// Everything fixed for the whole run.
struct Plan {
    urls: Vec<Url>,
    method: String,
    body: Option<Arc<Vec<u8>>>,
    template: Template,
    limits: Limits,
    include: bool,
    outputs: Vec<PathBuf>,
    remote_name: bool,
    progress: bool,
    fail: bool,
    write_out: Option<String>,
    follow: bool,
    max_redirs: u32,
    compressed: bool,
    max_codings: usize,
}

fn read_input(spec: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let r = if spec == "-" {
        std::io::stdin().read_to_end(&mut data)
    } else {
        File::open(spec).and_then(|mut f| f.read_to_end(&mut data))
    };
    r.map_err(|e| {
        Error::from(HttpError::new(
            Kind::ReadFile,
            format!("cannot read {}", if spec == "-" { "stdin" } else { spec }),
            crate::error::describe_io(&e),
        ))
    })?;
    Ok(data)
}

fn body_part(arg: &str, strip_newlines: bool) -> Result<Vec<u8>> {
    match arg.strip_prefix('@') {
        Some(spec) => {
            let mut data = read_input(spec)?;
            if strip_newlines {
                data.retain(|&b| b != b'\r' && b != b'\n');
            }
            Ok(data)
        }
        None => Ok(arg.as_bytes().to_vec()),
    }
}

impl Plan {
    fn new(args: &Args) -> Result<Plan> {
        let urls = args
            .urls
            .iter()
            .map(|u| target::parse(u).map_err(Error::from))
            .collect::<Result<Vec<_>>>()?;
        let body = if !args.json.is_empty() {
            let mut all = Vec::new();
            for part in &args.json {
                all.extend(body_part(part, false)?);
            }
            Some(all)
        } else if !args.data.is_empty() || !args.data_binary.is_empty() {
            let mut parts = Vec::new();
            for d in &args.data {
                parts.push(body_part(d, true)?);
            }
            for d in &args.data_binary {
                parts.push(body_part(d, false)?);
            }
            Some(parts.join(&b'&'))
        } else {
            None
        };
        if args.head && body.is_some() {
            return Err(Error::Usage(
                "-I (HEAD) cannot send a body (-d, --data-binary, --json)".into(),
            ));
        }
        if (!args.data.is_empty() || !args.data_binary.is_empty()) && !args.json.is_empty() {
            return Err(Error::Usage(
                "--json cannot be combined with -d or --data-binary".into(),
            ));
        }
        let method = match &args.method {
            Some(m) => {
                check_method(m).map_err(Error::Usage)?;
                m.clone()
            }
            None if args.head => "HEAD".into(),
            None if body.is_some() => "POST".into(),
            None => "GET".into(),
        };
        let json = !args.json.is_empty();
        let user_agent = match &args.user_agent {
            Some(a) if a.is_empty() => None,
            Some(a) => Some(a.clone()),
            None => Some(format!("sockit/{}", env!("CARGO_PKG_VERSION"))),
        };
        if let Some(ua) = &user_agent {
            if ua.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(Error::Usage(
                    "invalid -A: CR, LF and NUL are not allowed".into(),
                ));
            }
        }
        let basic = match &args.user {
            Some(u) if u.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) => {
                return Err(Error::Usage(
                    "invalid -u: CR, LF and NUL are not allowed".into(),
                ))
            }
            Some(u) if !u.contains(':') => Some(format!("{u}:")),
            other => other.clone(),
        };
        let user = args
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::Usage)?;
        let body_framing = request::body_framing(&user).map_err(Error::Usage)?;
        let template = Template {
            user_agent,
            accept: if json { "application/json" } else { "*/*" }.into(),
            accept_encoding: args.compressed.then(|| "gzip, deflate, br".to_string()),
            basic,
            content_type: Some(
                if json {
                    "application/json"
                } else {
                    "application/x-www-form-urlencoded"
                }
                .into(),
            ),
            user,
            body_framing,
        };
        let write_out = match &args.write_out {
            Some(w) => match w.strip_prefix('@') {
                Some(spec) => Some(String::from_utf8_lossy(&read_input(spec)?).into_owned()),
                None => Some(w.clone()),
            },
            None => None,
        };
        if args.output.len() > urls.len() {
            return Err(Error::Usage(format!(
                "{} -o files for {} URLs",
                args.output.len(),
                urls.len()
            )));
        }
        Ok(Plan {
            urls,
            method,
            body: body.map(Arc::new),
            template,
            limits: Limits {
                max_header_bytes: args.max_header_bytes,
                max_headers: args.max_headers,
                ..Limits::default()
            },
            include: args.include || args.head,
            outputs: args.output.clone(),
            remote_name: args.remote_name,
            progress: !args.silent && std::io::stderr().is_terminal(),
            fail: args.fail,
            write_out,
            follow: args.location,
            max_redirs: args.max_redirs,
            compressed: args.compressed,
            max_codings: args.max_codings,
        })
    }

    /// Where the body of URL number `index` goes.
    fn output_path(&self, index: usize, url: &Url) -> Result<Option<PathBuf>> {
        if let Some(p) = self.outputs.get(index) {
            return Ok(Some(p.clone()));
        }
        if self.remote_name {
            return match target::remote_name(url) {
                Some(name) => Ok(Some(PathBuf::from(name))),
                None => Err(HttpError::new(
                    Kind::Write,
                    format!("-O: no file name in {}", target::display(url)),
                    "the URL path must end in a file name",
                )
                .into()),
            };
        }
        Ok(None)
    }
}

/// Runs `sockit http`; `Ok` carries the exit status.
pub async fn run(args: Args) -> Result<u8> {
    let plan = Plan::new(&args)?;
    if let Some(ca) = &args.cacert {
        // Read it here so a missing file is exit 26, not a TLS failure.
        read_input(&ca.display().to_string())?;
    }
    let resolve = args
        .resolve
        .iter()
        .map(|r| parse_resolve(r))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::Usage)?;
    let opts = ConnectOpts {
        family: Family::from_flags(args.ipv4, args.ipv6),
        connect_timeout: args.connect_timeout,
        resolve,
        unix_socket: args.unix_socket.clone(),
        tls: tls::ClientOptions {
            cacert: args.cacert.clone(),
            insecure: args.insecure,
            alpn: vec![b"http/1.1".to_vec()],
            ..tls::ClientOptions::default()
        },
    };
    let max_time = args.max_time;
    let trace = Trace { on: verbose() };
    // Run on a runtime worker, which also polls the sockets: a wake-up then needs
    // no hand-over to the thread blocked in `block_on`, which matters at 10^4
    // requests or 10^5 reads per second.
    let task = tokio::spawn(async move {
        let mut client = Client {
            plan: &plan,
            pool: Pool::new(opts),
            buf: Buffer::default(),
            trace,
            stdout_closed: false,
        };
        let result = match max_time {
            Some(limit) => match tokio::time::timeout(limit, client.run_all()).await {
                Ok(r) => r,
                Err(_) => Err(HttpError::new(
                    Kind::Timeout,
                    "operation timed out",
                    format!("-m {}", crate::error::fmt_duration(limit)),
                )
                .into()),
            },
            None => client.run_all().await,
        };
        client.pool.close_all().await;
        match result {
            // A reader that went away (e.g. `| head`) is not a failure.
            Err(_) if client.stdout_closed => Ok(0),
            Err(e) => Err(e),
            Ok(()) => Ok(0),
        }
    });
    match task.await {
        Ok(r) => r,
        Err(e) => Err(Error::io(
            "the transfer task failed",
            std::io::Error::other(e.to_string()),
        )),
    }
}

/// The client state for one run.
struct Client<'p> {
    plan: &'p Plan,
    pool: Pool,
    buf: Buffer,
    trace: Trace,
    stdout_closed: bool,
}

/// How one exchange ended.
enum Outcome {
    /// A reused connection was already closed: send again on a new one.
    Stale,
    /// A redirect to follow.
    Redirect(Next, bool),
    /// The final response was handled; the flag says the connection is reusable.
    Done(bool),
}

impl Client<'_> {
    async fn run_all(&mut self) -> Result<()> {
        for (i, url) in self.plan.urls.iter().enumerate() {
            let stats = self.transfer(i, url).await?;
            if let Some(fmt) = &self.plan.write_out {
                let text = stats.format(fmt);
                self.write_stdout(text.as_bytes())?;
            }
        }
        Ok(())
    }

    fn write_stdout(&mut self, data: &[u8]) -> Result<()> {
        let mut out = Sink::stdout();
        out.write_all(data)
            .map_err(|e| write_error(&mut self.stdout_closed, &out, &e))
    }

    /// Fetches one command-line URL, following redirects with -L.
    async fn transfer(&mut self, index: usize, url: &Url) -> Result<Stats> {
        let mut stats = Stats::new(url);
        // Opened at the first write, so -f or a failed connect leave no empty file.
        let mut sink: Option<Sink> = None;
        let mut req = Request {
            method: self.plan.method.clone(),
            url: url.clone(),
            body: self.plan.body.clone(),
            credentials: true,
        };
        loop {
            let origin = Origin::of(&req.url);
            let head = req.head(&self.plan.template);
            let mut retried = false;
            let outcome = loop {
                let log = |s: &str| self.trace.note(s);
                let (mut conn, timing) = self.pool.get(&origin, &log).await?;
                stats.connected.get_or_insert(timing.connected);
                stats.app_connected.get_or_insert(timing.app_connected);
                self.trace
                    .lines(">", head.strip_suffix(b"\r\n").unwrap_or(&head));
                let outcome = self
                    .exchange(index, url, &mut conn, &req, &head, &mut stats, &mut sink)
                    .await?;
                match outcome {
                    Outcome::Stale if !retried => {
                        self.trace
                            .note("Connection closed by the server; retrying on a new one");
                        retried = true;
                        continue;
                    }
                    Outcome::Stale => {
                        return Err(HttpError::new(
                            Kind::EmptyReply,
                            format!("no response from {}", conn.peer),
                            "the server closed the connection",
                        )
                        .into())
                    }
                    Outcome::Redirect(_, reusable) | Outcome::Done(reusable) => {
                        self.release(origin.clone(), conn, reusable);
                    }
                }
                break outcome;
            };
            match outcome {
                Outcome::Redirect(next, _) => {
                    stats.num_redirects += 1;
                    self.trace.note(&format!(
                        "Following redirect to {}",
                        target::display(&next.url)
                    ));
                    if next.drop_credentials {
                        req.credentials = false;
                    }
                    req.url = next.url;
                    req.method = next.method;
                    if !next.keep_body {
                        req.body = None;
                    }
                    stats.url_effective = target::display(&req.url);
                }
                _ => {
                    stats.end = Some(Instant::now());
                    return Ok(stats);
                }
            }
        }
    }

    fn release(&mut self, origin: Origin, conn: Connection, reusable: bool) {
        if reusable {
            self.trace.note(&format!(
                "Connection #{} to host {} left intact",
                conn.id, origin.host
            ));
            self.pool.put(origin, conn);
        } else {
            self.trace.note(&format!("Closing connection #{}", conn.id));
        }
    }

    /// One request and response on `conn`.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        index: usize,
        cli_url: &Url,
        conn: &mut Connection,
        req: &Request,
        head: &[u8],
        stats: &mut Stats,
        sink_slot: &mut Option<Sink>,
    ) -> Result<Outcome> {
        let Client {
            plan,
            buf,
            trace,
            stdout_closed,
            ..
        } = self;
        let plan: &Plan = plan;
        let peer = conn.peer.clone();
        let is_head = req.method.eq_ignore_ascii_case("HEAD");
        let framed;
        let body = match plan.template.body_framing {
            request::BodyFraming::Length => req.body.as_deref().map(|b| b.as_slice()),
            request::BodyFraming::Chunked => {
                framed = request::chunked(req.body.as_deref().map_or(&[], |b| b.as_slice()));
                Some(framed.as_slice())
            }
        };
        let Some(mut ex) = Exchange::send(conn, buf, head, body, is_head, plan.limits).await?
        else {
            return Ok(Outcome::Stale);
        };
        let mut header_bytes = 0u64;
        let started = ex
            .start(&mut |h: &Head| {
                header_bytes += h.raw.len() as u64;
                trace.head(h);
            })
            .await?;
        let resp = match started {
            Started::Stale => return Ok(Outcome::Stale),
            Started::Response(r) => r,
        };
        stats.first_byte = stats.first_byte.or(ex.first_byte);
        stats.size_header += header_bytes + resp.head.raw.len() as u64;
        stats.http_code = resp.head.status;
        stats.content_type = resp
            .head
            .get("content-type")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        trace.head(&resp.head);

        // Redirects.
        if plan.follow && redirect::is_redirect(resp.head.status) {
            if let Some(location) = resp.head.get("location") {
                if stats.num_redirects >= plan.max_redirs {
                    return Err(HttpError::new(
                        Kind::TooManyRedirects,
                        format!("too many redirects from {}", target::display(&req.url)),
                        format!("maximum of {} followed; see --max-redirs", plan.max_redirs),
                    )
                    .into());
                }
                let next = redirect::follow(resp.head.status, &req.method, &req.url, location)?
                    .ok_or_else(|| {
                        HttpError::new(Kind::Malformed, "redirect without a target", "")
                    })?;
                if plan.include {
                    let out = open_sink(sink_slot, plan, index, cli_url)?;
                    out.write_all(&resp.head.raw)
                        .map_err(|e| write_error(stdout_closed, out, &e))?;
                }
                // Read (and drop) the redirect's body so the connection can be reused.
                let reusable = ex.body(&mut |_| Ok(())).await?;
                return Ok(Outcome::Redirect(next, reusable));
            }
        }

        if plan.fail && resp.head.status >= 400 {
            return Err(HttpError::new(
                Kind::HttpStatus,
                format!(
                    "{} returned HTTP {}",
                    target::display(&req.url),
                    resp.head.status
                ),
                format!("{}; -f", visible(&resp.head.reason)),
            )
            .into());
        }

        let sink = open_sink(sink_slot, plan, index, cli_url)?;
        if plan.include {
            if let Err(e) = sink.write_all(&resp.head.raw) {
                return Err(write_error(stdout_closed, sink, &e));
            }
        }

        let mut codings: Vec<String> = Vec::new();
        if plan.compressed {
            codings.extend(
                resp.head
                    .list("content-encoding")
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).to_ascii_lowercase()),
            );
        }
        codings.extend(resp.transfer_codings.iter().cloned());
        let mut decoder = Decoder::new(&codings, plan.max_codings).map_err(|e| {
            HttpError::new(
                Kind::BadEncoding,
                format!("cannot decode the response from {peer}"),
                visible(e.to_string().as_bytes()),
            )
        })?;

        let progress =
            (plan.progress && matches!(*sink, Sink::File(..))).then(|| progress_bar(resp.framing));

        let mut size = 0u64;
        let mut out_err: Option<std::io::Error> = None;
        let result = ex
            .body(&mut |data: &[u8]| {
                size += data.len() as u64;
                if let Some(pb) = &progress {
                    pb.inc(data.len() as u64);
                }
                let mut write = |d: &[u8]| sink.write_all(d);
                let r = match decoder.as_mut() {
                    Some(dec) => dec.write(data, &mut write),
                    None => write(data).map_err(DecodeError::Output),
                };
                decode_result(r, &peer, &mut out_err)
            })
            .await;
        let trailers = std::mem::take(&mut ex.trailers);
        stats.size_download += size;
        if let Some(pb) = &progress {
            pb.finish();
        }
        let reusable = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some(io) = out_err {
                    return Err(write_error(stdout_closed, sink, &io));
                }
                return Err(e);
            }
        };
        if let (Some(dec), true) = (decoder.as_mut(), size > 0) {
            let mut write = |d: &[u8]| sink.write_all(d);
            let r = dec.finish(&mut write);
            let mut out_err = None;
            if let Err(e) = decode_result(r, &peer, &mut out_err) {
                if let Some(io) = out_err {
                    return Err(write_error(stdout_closed, sink, &io));
                }
                return Err(e);
            }
        }
        if !trailers.is_empty() {
            for t in &trailers {
                trace.lines("<", format!("{}: {}", t.name, visible(&t.value)).as_bytes());
            }
        }
        if let Sink::File(f, _) = sink {
            f.flush().map_err(|e| {
                Error::from(HttpError::new(
                    Kind::Write,
                    "cannot write the output",
                    crate::error::describe_io(&e),
                ))
            })?;
        }
        Ok(Outcome::Done(reusable))
    }
}

/// The output for URL number `index`, opened (or created) on first use.
fn open_sink<'s>(
    slot: &'s mut Option<Sink>,
    plan: &Plan,
    index: usize,
    url: &Url,
) -> Result<&'s mut Sink> {
    if slot.is_none() {
        *slot = Some(match plan.output_path(index, url)? {
            Some(path) => {
                let f = File::create(&path).map_err(|e| {
                    Error::from(HttpError::new(
                        Kind::Write,
                        format!("cannot create {}", path.display()),
                        crate::error::describe_io(&e),
                    ))
                })?;
                Sink::File(f, path)
            }
            None => Sink::stdout(),
        });
    }
    match slot {
        Some(s) => Ok(s),
        None => Err(Error::Usage("no output".into())),
    }
}

/// An output error; a closed stdout is remembered so the run can end quietly.
fn write_error(stdout_closed: &mut bool, sink: &Sink, e: &std::io::Error) -> Error {
    if matches!(sink, Sink::Stdout(_)) && e.kind() == std::io::ErrorKind::BrokenPipe {
        *stdout_closed = true;
    }
    HttpError::new(
        Kind::Write,
        format!("cannot write to {}", sink.name()),
        crate::error::describe_io(e),
    )
    .into()
}

fn decode_result(
    r: std::result::Result<(), DecodeError>,
    peer: &str,
    out_err: &mut Option<std::io::Error>,
) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(DecodeError::Output(e)) => {
            let err = HttpError::new(
                Kind::Write,
                "cannot write the output",
                crate::error::describe_io(&e),
            );
            *out_err = Some(e);
            Err(err.into())
        }
        Err(DecodeError::Corrupt(why)) => Err(HttpError::new(
            Kind::BadEncoding,
            format!("cannot decode the response from {peer}"),
            why,
        )
        .into()),
    }
}

fn progress_bar(framing: Framing) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    match framing {
        Framing::Length(n) => {
            let pb = ProgressBar::new(n);
            if let Ok(style) = ProgressStyle::with_template(
                "{bytes:>10}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} ETA {eta}",
            ) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb
        }
        _ => {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {bytes:>10} {binary_bytes_per_sec} {elapsed}",
            ) {
                pb.set_style(style);
            }
            pb
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_exit_code() {
        for (code, _) in crate::http::EXIT_CODES {
            assert!(
                HELP.contains(&format!("\n  {code} ")),
                "exit code {code} missing from HELP"
            );
        }
    }

    #[test]
    fn write_out_format() {
        let mut s = Stats::new(&Url::parse("http://h/x").unwrap());
        s.http_code = 200;
        s.size_download = 42;
        s.num_redirects = 2;
        assert_eq!(
            s.format("%{http_code} %{size_download} %{num_redirects} %{url_effective}\\n%%"),
            "200 42 2 http://h/x\n%"
        );
        assert_eq!(s.format("%{nope}x\\q"), "x\\q");
        assert_eq!(s.format("%{time_total}"), "0.000000");
    }
}
