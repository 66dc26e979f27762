//! `sockit http`: a curl-style HTTP/1.1 client on sockit's own sockets.
//!
//! The command line (`args`), what it turns into (`plan`), and what is shown
//! besides the body (`output`: `-v`, the progress bar, `-w`); `run` ties them
//! together and picks the exit code. The transfer itself (connections, framing,
//! decoding, redirects, writing the body off the runtime) is
//! [`crate::http::client`]; nothing here reads a socket.

mod args;
mod extra;
mod output;
mod plan;

pub use args::{Args, HELP};

use crate::endpoint::Family;
use crate::error::{Class, Error, ProxyFailure, Result, TlsFailure};
use crate::http::client::{Client, Dump, Transfer};
use crate::http::pool::{parse_resolve, ConnectOpts};
use crate::http::{Error as HttpError, Kind};
use crate::proxy::ProxyRules;
use crate::tls;

use output::Trace;
use plan::{read_input, Plan};

/// The exit status for an error from `sockit http`, numbered like curl's.
pub fn exit_code(e: &Error) -> u8 {
    if let Some(h) = e.protocol::<crate::http::Error>() {
        return h.kind.exit_code();
    }
    match e {
        Error::Usage(_) => 2,
        Error::Resolve { .. } => 6,
        Error::Timeout { .. } => 28,
        Error::Tls {
            failure: TlsFailure::Certificate,
            ..
        } => 60,
        Error::Tls { .. } => 35,
        Error::Truncated { .. } => 18,
        Error::Proxy {
            failure: ProxyFailure::Resolve,
            ..
        } => 5,
        // curl: "CONNECT tunnel failed, response 407" is a receive error.
        Error::Proxy {
            failure: ProxyFailure::Status(_),
            ..
        } => 56,
        Error::Proxy { .. } => 97,
        Error::Io { .. } | Error::Transfer { .. } | Error::Protocol(_) => match e.class() {
            Class::Timeout => 28,
            Class::Usage => 2,
            _ => 7,
        },
    }
}

/// How to reach servers, from the connection and TLS flags.
fn connect_opts(args: &Args) -> Result<ConnectOpts> {
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
    Ok(ConnectOpts {
        family: Family::from_flags(args.ipv4, args.ipv6),
        connect_timeout: args.connect_timeout,
        resolve,
        unix_socket: args.unix_socket.clone(),
        tls: tls::ClientOptions {
            cacert: args.cacert.clone(),
            insecure: args.insecure,
            alpn: vec![b"http/1.1".to_vec()],
            identity: args.cert.as_ref().map(|cert| tls::ClientIdentity {
                cert: cert.clone(),
                key: args.key.clone(),
            }),
            ..tls::ClientOptions::default()
        },
        proxy: ProxyRules::new(
            args.proxy.as_deref(),
            args.proxy_user.as_deref(),
            args.noproxy.as_deref(),
            |name| std::env::var(name).ok(),
        )?
        .with_tls(&crate::proxy::ProxyTls {
            cacert: args.proxy_cacert.clone(),
            insecure: args.proxy_insecure,
        }),
    })
}

/// Runs `sockit http`; `Ok` carries the exit status.
pub async fn run(args: Args) -> Result<u8> {
    let mut plan = Plan::new(&args)?;
    let opts = connect_opts(&args)?;
    // curl: -m 0 means no limit.
    let max_time = args.max_time.filter(|d| !d.is_zero());
    let quiet_errors = plan.silent && !plan.show_error;
    let dump = match &plan.dump_header {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Dump::Stdout),
        Some(p) => Some(Dump::File(
            std::fs::File::create(p).map_err(|e| {
                Error::from(HttpError::new(
                    Kind::Write,
                    format!("cannot create {}", p.display()),
                    crate::error::describe_io(&e),
                ))
            })?,
            p.clone(),
        )),
    };
    let mut trace = Trace::new(output::verbose(), plan.progress);
    trace.hashes = plan.progress_hashes;
    // Run on a runtime worker, which also polls the sockets: a wake-up then needs
    // no hand-over to the thread blocked in `block_on`, which matters at 10^4
    // requests or 10^5 reads per second.
    let task = tokio::spawn(async move {
        let mut client = Client::new(plan.settings.clone(), opts)?;
        if let Some(jar) = plan.jar.take() {
            client.set_jar(jar);
        }
        if let Some(d) = dump {
            client.set_dump(d);
        }
        let result = fetch_all(&plan, &mut client, &mut trace, max_time).await;
        // The jar is written whatever happened, as curl does.
        let saved = save_jar(&plan, &mut client).await;
        client.close().await;
        match result.and(saved) {
            // A reader that went away (e.g. `| head`) is not a failure.
            Err(_) if client.stdout_closed() => Ok(0),
            Err(e) => Err(e),
            Ok(()) => Ok(0),
        }
    });
    let r = match task.await {
        Ok(r) => r,
        Err(e) => Err(Error::io(
            "the transfer task failed",
            std::io::Error::other(e.to_string()),
        )),
    };
    match r {
        // -s without -S: the exit status alone tells.
        Err(e) if quiet_errors => Ok(exit_code(&e)),
        r => r,
    }
}

/// `-c FILE`: every cookie known at the end, in the Netscape format.
async fn save_jar(plan: &Plan, client: &mut Client) -> Result<()> {
    let (Some(path), Some(jar)) = (&plan.cookie_jar, client.jar()) else {
        return Ok(());
    };
    let text = jar.to_netscape(crate::http::cookie::now());
    if path.as_os_str() == "-" {
        client.write_stdout(text.as_bytes()).await?;
        return client.flush().await;
    }
    std::fs::write(path, text).map_err(|e| {
        HttpError::new(
            Kind::Write,
            format!("cannot write the cookie jar {}", path.display()),
            crate::error::describe_io(&e),
        )
        .into()
    })
}

/// What makes a failed attempt worth another (`--retry`): curl's transient
/// classes, a timeout, and a refused connection with `--retry-connrefused`.
fn transient(e: &Error, connrefused: bool) -> Option<String> {
    if exit_code(e) == 28 {
        return Some("timed out".into());
    }
    if connrefused {
        if let Error::Io { source, .. } = e {
            if source.kind() == std::io::ErrorKind::ConnectionRefused {
                return Some("connection refused".into());
            }
        }
    }
    None
}

/// One URL: `client.fetch` within `-m`, again after a transient failure while
/// `--retry` allows.
async fn fetch_one(
    plan: &Plan,
    client: &mut Client,
    trace: &mut Trace,
    url: &url::Url,
    out: &mut crate::http::client::FetchOutput,
    max_time: Option<std::time::Duration>,
) -> Result<Transfer> {
    use std::time::{Duration, Instant};
    let first = Instant::now();
    let mut left = plan.retry.count;
    let mut backoff = Duration::from_secs(1);
    loop {
        out.retry_status = left > 0;
        let fetch = client.fetch(
            url,
            &plan.method,
            plan.body.clone(),
            plan.upload.clone(),
            out,
            trace,
        );
        let r = match max_time {
            Some(limit) => match tokio::time::timeout(limit, fetch).await {
                Ok(r) => r,
                Err(_) => Err(HttpError::new(
                    Kind::Timeout,
                    "operation timed out",
                    format!("-m {}", crate::error::fmt_duration(limit)),
                )
                .into()),
            },
            None => fetch.await,
        };
        let (why, after) = match &r {
            Ok(s) if s.retriable => (Some(format!("HTTP {}", s.http_code)), s.retry_after),
            Ok(_) => (None, None),
            Err(e) => (transient(e, plan.retry.connrefused), None),
        };
        let Some(why) = why else {
            return r;
        };
        let wait = plan.retry.delay.or(after).unwrap_or(backoff);
        let too_late = plan
            .retry
            .max_time
            .is_some_and(|max| first.elapsed() + wait > max);
        if left == 0 || too_late {
            return r;
        }
        if !plan.silent {
            let s = if left == 1 { "" } else { "s" };
            tracing::warn!(
                "{why} from {}; retrying in {} ({left} retr{} left)",
                crate::http::target::display(url),
                crate::error::fmt_duration(wait),
                if s.is_empty() { "y" } else { "ies" }
            );
        }
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(Duration::from_secs(600));
        left -= 1;
    }
}

/// Fetches every URL in order, each followed by its `-w` text; stops at the first
/// failure. Returns once every byte is written.
async fn fetch_all(
    plan: &Plan,
    client: &mut Client,
    trace: &mut Trace,
    max_time: Option<std::time::Duration>,
) -> Result<()> {
    for (i, url) in plan.urls.iter().enumerate() {
        let mut out = plan.output(i, url)?;
        trace.to_file = !matches!(out.dest, crate::http::writer::Destination::Stdout);
        let stats = fetch_one(plan, client, trace, url, &mut out, max_time).await?;
        if stats.retriable && out.fail_on_error {
            // Out of retries on a transient status: -f still fails.
            return Err(HttpError::new(
                Kind::HttpStatus,
                format!("{} returned HTTP {}", stats.url_effective, stats.http_code),
                "-f",
            )
            .into());
        }
        if let Some(fmt) = &plan.write_out {
            let text = output::write_out(&stats, fmt);
            client.write_stdout(text.as_bytes()).await?;
        }
    }
    client.flush().await
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
}
