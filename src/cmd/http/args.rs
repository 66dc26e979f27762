//! The flags of `sockit http` and their `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::parse_secs;
use crate::http::decode::MAX_CODINGS;
use crate::http::parse::Limits;

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
                                                    a PUT with a header and basic auth
  sockit http -L --max-redirs 5 http://host/old     follow redirects
  sockit http --compressed -s http://host/ | wc -c  gzip/deflate/br decoded
  sockit http -w '%{http_code} %{time_total}\\n' -o /dev/null -s http://host/
                                                    status and time only, as curl -w
  sockit http http://h/a http://h/b http://h/c      one keep-alive connection for all three
  sockit http --resolve example.com:443:127.0.0.1 https://example.com/
                                                    that name at that address (TLS name kept)
  sockit http --unix-socket /var/run/docker.sock http://localhost/version
                                                    HTTP over a Unix socket
  sockit http --cacert ca.pem https://[::1]:8443/   or -k to skip verification
  sockit http -fsS http://host/api                  quiet, but say why it failed
  sockit http -L -c jar.txt -b jar.txt http://host/login
                                                    cookies across redirects
  sockit http -F name=Ann -F 'cv=@cv.pdf;type=application/pdf' http://host/apply
                                                    a multipart form with a file
  sockit http -G --data-urlencode 'q=two words' http://host/search
                                                    the data in the query string
  sockit http -T backup.tar http://host/uploads/    PUT as uploads/backup.tar
  tar c dir | sockit http -T - http://host/up/d.tar
                                                    stream stdin, chunked
  sockit http -C - -o big.iso http://host/big.iso   resume a download
  sockit http -OJ --output-dir dl --create-dirs http://host/get?id=7
                                                    saved under the server's name, in dl/
  sockit http --retry 5 --retry-max-time 60 http://host/flaky
                                                    retry transient failures for up to a minute
  sockit http -# --limit-rate 2M -O http://host/file.iso
                                                    a # bar, at most 2 MB/s
  sockit http -D - -o /dev/null -w '%{json}\\n' http://host/
                                                    headers to stdout, then every -w figure as JSON
  sockit http -x socks5h://127.0.0.1:1080 https://example.com/
                                                    through a SOCKS5 proxy that resolves the name
  sockit http -x http://me:pw@proxy:3128 http://example.com/
                                                    through an HTTP proxy (or set https_proxy)
  sockit http -x https://proxy:8443 --proxy-cacert ca.pem https://example.com/
                                                    through an HTTPS proxy (TLS to it too)
  sockit http --cert me.pem --key me.key https://mtls.example/
                                                    with a client certificate (mTLS)

-w variables: %{http_code} %{size_download} %{size_header} %{content_type}
  %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}
  %{speed_download} %{url_effective} %{num_redirects} %{remote_ip}
  %{remote_port} %{http_version} %{redirect_url} %{json}; escapes \\n \\r \\t, %%.

Exit status (curl's numbering):
  0    success (an HTTP error status is success too, unless -f)
  1    unsupported protocol (only http:// and https://)
  2    usage error: bad flag or value
  3    malformed URL
  5    the proxy's host name could not be resolved
  6    host name could not be resolved
  7    could not connect (refused, unreachable)
  8    malformed response (what and at which byte)
  18   partial body: the connection closed before the end
  22   -f, --fail-with-body: the server answered 400 or above
  23   cannot write the output
  26   cannot read a local file (-d @file, -F, -T, --netrc, --cacert)
  28   timed out (--connect-timeout, -m)
  33   -C: the server does not support byte ranges, cannot resume
  35   TLS handshake failed
  47   too many redirects (--max-redirs)
  52   empty reply from server
  55   failed sending the request
  56   failed receiving the response (reset), or the proxy refused CONNECT
  60   the server certificate could not be verified
  61   unknown or corrupt content/transfer encoding, or more codings than --max-codings
  97   a SOCKS proxy refused (credentials, target), or a proxy's reply was bad
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
    /// Quiet: no progress bar and no error line (the exit status tells; -sS shows
    /// the error). The bar is only shown for -o/-O when stderr is a terminal.
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
    /// Seconds allowed for each transfer (exit 28 when it expires); 0: no limit.
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
    /// Client certificate (PEM, chain allowed) for servers that ask for one (mTLS).
    #[arg(short = 'E', long, value_name = "PEM", help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// Private key for --cert (PEM; default: the key inside the --cert file).
    #[arg(long, value_name = "PEM", requires = "cert", help_heading = "TLS")]
    pub key: Option<PathBuf>,

    /// Use this proxy: http://HOST:PORT (the default scheme; CONNECT for https://,
    /// absolute-form requests for http://), https:// (the same inside TLS to the
    /// proxy), socks5:// (names resolved here), socks5h:// (by the proxy),
    /// socks4://, socks4a://; USER:PASSWORD@ allowed, port 1080 by default (443
    /// for https://). '' turns off the proxy from the environment
    /// (http_proxy, https_proxy/HTTPS_PROXY, all_proxy/ALL_PROXY).
    #[arg(short = 'x', long, value_name = "URL", help_heading = "Proxy")]
    pub proxy: Option<String>,
    /// User name and password for the proxy (instead of the URL's).
    #[arg(
        short = 'U',
        long,
        value_name = "USER:PASSWORD",
        help_heading = "Proxy"
    )]
    pub proxy_user: Option<String>,
    /// Hosts to reach without the proxy, comma-separated: names (with their
    /// subdomains), addresses, CIDR ranges, or '*' (instead of no_proxy/NO_PROXY).
    #[arg(long, value_name = "LIST", help_heading = "Proxy")]
    pub noproxy: Option<String>,
    /// Verify an https:// proxy's certificate against the CAs in this PEM file
    /// (a self-signed certificate too) instead of the system roots.
    #[arg(long, value_name = "PEM", help_heading = "Proxy")]
    pub proxy_cacert: Option<PathBuf>,
    /// Do not verify an https:// proxy's certificate.
    #[arg(long, help_heading = "Proxy")]
    pub proxy_insecure: bool,

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

    /// Cookies, forms, uploads, ranges, retries and the other curl habits.
    #[command(flatten)]
    pub extra: Box<super::extra::Extra>,
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
