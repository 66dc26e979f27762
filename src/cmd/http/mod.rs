//! `sockit http`: a curl-style HTTP/1.1 client on sockit's own sockets.
//!
//! The command line (`args`), what it turns into (`plan`), and what is shown
//! besides the body (`output`: `-v`, the progress bar, `-w`); `run` ties them
//! together and picks the exit code. The transfer itself (connections, framing,
//! decoding, redirects, writing the body off the runtime) is
//! [`crate::http::client`]; nothing here reads a socket.

mod args;
mod output;
mod plan;

pub use args::{Args, HELP};

use crate::endpoint::Family;
use crate::error::{Class, Error, ProxyFailure, Result, TlsFailure};
use crate::http::client::Client;
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
        )?,
    })
}

/// Runs `sockit http`; `Ok` carries the exit status.
pub async fn run(args: Args) -> Result<u8> {
    let plan = Plan::new(&args)?;
    let opts = connect_opts(&args)?;
    let max_time = args.max_time;
    let mut trace = Trace::new(output::verbose(), plan.progress);
    // Run on a runtime worker, which also polls the sockets: a wake-up then needs
    // no hand-over to the thread blocked in `block_on`, which matters at 10^4
    // requests or 10^5 reads per second.
    let task = tokio::spawn(async move {
        let mut client = Client::new(plan.settings.clone(), opts)?;
        let all = fetch_all(&plan, &mut client, &mut trace);
        // The body is written by a thread of its own, so this timer fires even
        // while stdout is blocked.
        let result = match max_time {
            Some(limit) => match tokio::time::timeout(limit, all).await {
                Ok(r) => r,
                Err(_) => Err(HttpError::new(
                    Kind::Timeout,
                    "operation timed out",
                    format!("-m {}", crate::error::fmt_duration(limit)),
                )
                .into()),
            },
            None => all.await,
        };
        client.close().await;
        match result {
            // A reader that went away (e.g. `| head`) is not a failure.
            Err(_) if client.stdout_closed() => Ok(0),
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

/// Fetches every URL in order, each followed by its `-w` text; stops at the first
/// failure. Returns once every byte is written.
async fn fetch_all(plan: &Plan, client: &mut Client, trace: &mut Trace) -> Result<()> {
    for (i, url) in plan.urls.iter().enumerate() {
        let out = plan.output(i, url)?;
        trace.to_file = matches!(out.dest, crate::http::writer::Destination::File(_));
        let stats = client
            .fetch(url, &plan.method, plan.body.clone(), &out, trace)
            .await?;
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
