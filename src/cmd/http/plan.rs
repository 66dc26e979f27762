//! The flags of `sockit http` turned into what the run needs: the URLs, the
//! request (method, body, headers), the client settings and where each body goes.
//! Every usage error is found here, before anything is sent.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use url::Url;

use super::args::Args;
use crate::error::{Error, Result};
use crate::http::client::{ClientSettings, FetchOutput};
use crate::http::parse::Limits;
use crate::http::request::{self, check_method, parse_header, Template};
use crate::http::target;
use crate::http::writer::Destination;
use crate::http::{Error as HttpError, Kind};

/// Everything fixed for the whole run.
pub(super) struct Plan {
    pub urls: Vec<Url>,
    pub method: String,
    pub body: Option<Arc<Vec<u8>>>,
    pub settings: ClientSettings,
    pub include: bool,
    outputs: Vec<PathBuf>,
    remote_name: bool,
    pub progress: bool,
    fail: bool,
    pub write_out: Option<String>,
}

/// Reads `-d @FILE` (or `@-`, stdin) and similar.
pub(super) fn read_input(spec: &str) -> Result<Vec<u8>> {
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

/// The request body from `--json`, `-d` and `--data-binary`.
fn body(args: &Args) -> Result<Option<Vec<u8>>> {
    let form = !args.data.is_empty() || !args.data_binary.is_empty();
    let body = if !args.json.is_empty() {
        let mut all = Vec::new();
        for part in &args.json {
            all.extend(body_part(part, false)?);
        }
        Some(all)
    } else if form {
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
    if form && !args.json.is_empty() {
        return Err(Error::Usage(
            "--json cannot be combined with -d or --data-binary".into(),
        ));
    }
    Ok(body)
}

fn method(args: &Args, has_body: bool) -> Result<String> {
    Ok(match &args.method {
        Some(m) => {
            check_method(m).map_err(Error::Usage)?;
            m.clone()
        }
        None if args.head => "HEAD".into(),
        None if has_body => "POST".into(),
        None => "GET".into(),
    })
}

fn no_line_breaks(flag: &str, value: &str) -> Result<()> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Error::Usage(format!(
            "invalid {flag}: CR, LF and NUL are not allowed"
        )));
    }
    Ok(())
}

/// The headers: defaults, `-A`, `-u`, `--compressed`, `--json` and `-H`.
fn template(args: &Args) -> Result<Template> {
    let json = !args.json.is_empty();
    let user_agent = match &args.user_agent {
        Some(a) if a.is_empty() => None,
        Some(a) => Some(a.clone()),
        None => Some(format!("sockit/{}", env!("CARGO_PKG_VERSION"))),
    };
    if let Some(ua) = &user_agent {
        no_line_breaks("-A", ua)?;
    }
    let basic = match &args.user {
        Some(u) => {
            no_line_breaks("-u", u)?;
            Some(if u.contains(':') {
                u.clone()
            } else {
                format!("{u}:")
            })
        }
        None => None,
    };
    let user = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::Usage)?;
    let body_framing = request::body_framing(&user).map_err(Error::Usage)?;
    let (accept, content_type) = if json {
        ("application/json", "application/json")
    } else {
        ("*/*", "application/x-www-form-urlencoded")
    };
    Ok(Template {
        user_agent,
        accept: accept.into(),
        accept_encoding: args.compressed.then(|| "gzip, deflate, br".to_string()),
        basic,
        content_type: Some(content_type.into()),
        user,
        body_framing,
    })
}

impl Plan {
    pub(super) fn new(args: &Args) -> Result<Plan> {
        let urls = args
            .urls
            .iter()
            .map(|u| target::parse(u).map_err(Error::from))
            .collect::<Result<Vec<_>>>()?;
        let body = body(args)?;
        let method = method(args, body.is_some())?;
        let template = template(args)?;
        let write_out = match &args.write_out {
            Some(w) => match w.strip_prefix('@') {
                Some(spec) => Some(String::from_utf8_lossy(&read_input(spec)?).into_owned()),
                None => Some(w.clone()),
            },
            None => None,
        };
        if args.output.len() > urls.len() {
            return Err(Error::Usage(format!(
                "{} for {}",
                crate::relay::plural(args.output.len() as u64, "-o file"),
                crate::relay::plural(urls.len() as u64, "URL")
            )));
        }
        let settings = ClientSettings {
            template,
            limits: Limits {
                max_header_bytes: args.max_header_bytes,
                max_headers: args.max_headers,
                ..Limits::default()
            },
            follow: args.location,
            max_redirs: args.max_redirs,
            compressed: args.compressed,
            max_codings: args.max_codings,
        };
        Ok(Plan {
            urls,
            method,
            body: body.map(Arc::new),
            settings,
            include: args.include || args.head,
            outputs: args.output.clone(),
            remote_name: args.remote_name,
            progress: !args.silent && std::io::stderr().is_terminal(),
            fail: args.fail,
            write_out,
        })
    }

    /// Where the body of URL number `index` goes, and what else goes there.
    pub(super) fn output(&self, index: usize, url: &Url) -> Result<FetchOutput> {
        let dest = if let Some(p) = self.outputs.get(index) {
            Destination::File(p.clone())
        } else if self.remote_name {
            match target::remote_name(url) {
                Some(name) => Destination::File(PathBuf::from(name)),
                None => {
                    return Err(HttpError::new(
                        Kind::Write,
                        format!("-O: no file name in {}", target::display(url)),
                        "the URL path must end in a file name",
                    )
                    .into())
                }
            }
        } else {
            Destination::Stdout
        };
        Ok(FetchOutput {
            dest,
            include_heads: self.include,
            fail_on_error: self.fail,
        })
    }
}
