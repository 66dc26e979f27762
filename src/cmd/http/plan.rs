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
use crate::http::exchange::{Source, Upload};
use crate::http::parse::Limits;
use crate::http::request::{self, check_method, parse_header, Template};
use crate::http::target;
use crate::http::writer::Destination;
use crate::http::{multipart, netrc};
use crate::http::{Error as HttpError, Kind};

/// `--create-dirs`: makes `dir` and its parents.
fn create_dirs(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        HttpError::new(
            Kind::Write,
            format!("cannot create the directory {}", dir.display()),
            crate::error::describe_io(&e),
        )
        .into()
    })
}

/// Everything fixed for the whole run.
pub(super) struct Plan {
    pub urls: Vec<Url>,
    pub method: String,
    pub body: Option<Arc<Vec<u8>>>,
    /// `-T FILE`, sent as it is read.
    pub upload: Option<Arc<Upload>>,
    pub settings: ClientSettings,
    pub include: bool,
    outputs: Vec<PathBuf>,
    remote_name: bool,
    pub progress: bool,
    fail: bool,
    pub write_out: Option<String>,
    /// Print the error line even with -s (`-S`).
    pub show_error: bool,
    pub silent: bool,
    fail_with_body: bool,
    range: Option<String>,
    continue_at: Option<String>,
    header_name: bool,
    output_dir: Option<PathBuf>,
    create_dirs: bool,
    pub retry: Retry,
    /// The cookie engine is on (`-b FILE` or `-c`), starting with these cookies.
    pub jar: Option<crate::http::cookie::Jar>,
    pub cookie_jar: Option<PathBuf>,
    pub dump_header: Option<PathBuf>,
    pub progress_hashes: bool,
}

/// `--retry` and its companions.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Retry {
    pub count: u32,
    pub delay: Option<std::time::Duration>,
    pub max_time: Option<std::time::Duration>,
    pub connrefused: bool,
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

/// The order in which `-d` (0), `--data-binary` (1) and `--data-urlencode` (2)
/// were given on the command line `raw`, so their parts are joined in that
/// order, as curl does. clap keeps each flag's values apart; this scan of the
/// raw arguments is used only when it finds exactly `counts` of each, and
/// otherwise the parts go in flag order.
fn data_order(raw: &[String], counts: [usize; 3]) -> Vec<usize> {
    // Short flags that take a value: the rest of a cluster, or the next argument.
    const VALUED: &str = "XdHAuowmbcFTrCeDxE";
    let mut order = Vec::new();
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let kind = match name {
                "data" | "data-ascii" => Some(0),
                "data-binary" => Some(1),
                "data-urlencode" => Some(2),
                _ => None,
            };
            if let Some(k) = kind {
                order.push(k);
                if !inline {
                    it.next();
                }
            }
            continue;
        }
        let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) else {
            continue;
        };
        for (i, c) in cluster.char_indices() {
            if VALUED.contains(c) {
                if c == 'd' {
                    order.push(0);
                }
                if i + c.len_utf8() == cluster.len() {
                    it.next();
                }
                break;
            }
        }
    }
    let found = [0, 1, 2].map(|k| order.iter().filter(|&&o| o == k).count());
    if found == counts {
        order
    } else {
        [0, 1, 2]
            .iter()
            .flat_map(|&k| std::iter::repeat_n(k, counts[k]))
            .collect()
    }
}

/// `--data-urlencode`: curl's forms `content`, `=content`, `name=content`,
/// `@file`, `name@file`.
fn urlencoded_part(arg: &str) -> Result<Vec<u8>> {
    let (name, content) = if let Some((n, c)) = arg.split_once('=') {
        (n, c.as_bytes().to_vec())
    } else if let Some((n, f)) = arg.split_once('@') {
        (n, read_input(f)?)
    } else {
        ("", arg.as_bytes().to_vec())
    };
    let mut out = Vec::new();
    if !name.is_empty() {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
    }
    for &b in &content {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    Ok(out)
}

/// The request body, and the data for the query with `-G`.
type Bodies = (Option<Vec<u8>>, Option<Vec<u8>>);

/// `-T`, read as it is sent, never loaded first: a regular file with
/// `Content-Length`; stdin (`-T -`), a FIFO or a body the `-H` headers ask to be
/// chunked, with `Transfer-Encoding: chunked`, as curl sends them.
fn streamed_upload(args: &Args) -> Result<Option<Upload>> {
    let Some(f) = args.extra.upload_file.as_deref() else {
        return Ok(None);
    };
    if args.head {
        return Ok(None);
    }
    let chunked = args.headers.iter().any(|h| {
        h.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("transfer-encoding"))
    });
    // A -H Content-Length is the length sent, as curl: stdin is then sent
    // as it is, not chunked.
    let user_len = args
        .headers
        .iter()
        .rev()
        .filter_map(|h| h.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                Error::Usage(format!(
                    "invalid -H 'Content-Length: {}' (expected a number of bytes)",
                    crate::http::shown(v.as_bytes())
                ))
            })
        })
        .transpose()?;
    if f == "-" {
        return Ok(Some(Upload {
            source: Source::Stdin,
            len: user_len.filter(|_| !chunked),
        }));
    }
    let meta = std::fs::metadata(f).map_err(|e| {
        Error::from(HttpError::new(
            Kind::ReadFile,
            format!("cannot read {f}"),
            crate::error::describe_io(&e),
        ))
    })?;
    if meta.is_dir() {
        return Err(
            HttpError::new(Kind::ReadFile, format!("cannot read {f}"), "a directory").into(),
        );
    }
    Ok(Some(Upload {
        source: Source::File(PathBuf::from(f)),
        len: match user_len {
            Some(n) if !chunked => Some(n),
            _ => (meta.is_file() && !chunked).then_some(meta.len()),
        },
    }))
}

/// The `-F` parts, files read.
fn form_parts(args: &Args) -> Result<Vec<multipart::Part>> {
    let mut parts = Vec::new();
    for f in &args.extra.form {
        let field = multipart::parse_field(f).map_err(Error::Usage)?;
        let (data, filename, guess) = match &field.content {
            multipart::Content::Text(t) => (t.as_bytes().to_vec(), None, None),
            multipart::Content::FileText(path) => (read_input(path)?, None, None),
            multipart::Content::File(path) => {
                let name = std::path::Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "-".into());
                let guess = multipart::guess_type(&name);
                (read_input(path)?, Some(name), Some(guess.to_string()))
            }
        };
        parts.push(multipart::Part {
            name: field.name,
            filename: field.filename.or(filename),
            content_type: field.content_type.or(guess),
            data,
        });
    }
    Ok(parts)
}

/// The request body from `--json`, `-d`, `--data-binary`, `--data-urlencode`,
/// `-F` and `-T`; with `-G` the -d data is returned separately, for the query.
fn body(args: &Args, streamed: bool) -> Result<Bodies> {
    let x = &args.extra;
    let form =
        !args.data.is_empty() || !args.data_binary.is_empty() || !x.data_urlencode.is_empty();
    let kinds = [
        !args.json.is_empty(),
        form,
        !x.form.is_empty(),
        x.upload_file.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(Error::Usage(
            "use one of --json, -d (and --data-binary, --data-urlencode), -F, -T".into(),
        ));
    }
    if x.get && (!x.form.is_empty() || x.upload_file.is_some() || !args.json.is_empty()) {
        return Err(Error::Usage(
            "-G puts -d data in the URL; it cannot send -F, -T or --json".into(),
        ));
    }
    if !x.form.is_empty() {
        let boundary = multipart::boundary();
        let body = multipart::encode(&form_parts(args)?, &boundary);
        if args.head {
            return Err(Error::Usage("-I (HEAD) cannot send a body (-F)".into()));
        }
        return Ok((Some(body), None));
    }
    if let Some(f) = &x.upload_file {
        if args.head {
            return Err(Error::Usage("-I (HEAD) cannot send a body (-T)".into()));
        }
        if streamed {
            return Ok((None, None));
        }
        return Ok((Some(read_input(f)?), None));
    }
    let body = if !args.json.is_empty() {
        let mut all = Vec::new();
        for part in &args.json {
            all.extend(body_part(part, false)?);
        }
        Some(all)
    } else if form {
        let counts = [
            args.data.len(),
            args.data_binary.len(),
            x.data_urlencode.len(),
        ];
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let mut next = [0usize; 3];
        let mut parts = Vec::new();
        for kind in data_order(&raw, counts) {
            let i = next[kind];
            next[kind] += 1;
            parts.push(match kind {
                0 => body_part(&args.data[i], true)?,
                1 => body_part(&args.data_binary[i], false)?,
                _ => urlencoded_part(&x.data_urlencode[i])?,
            });
        }
        if x.get {
            return Ok((None, Some(parts.join(&b'&'))));
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
    Ok((body, None))
}

fn method(args: &Args, has_body: bool) -> Result<String> {
    Ok(match &args.method {
        Some(m) => {
            check_method(m).map_err(Error::Usage)?;
            m.clone()
        }
        None if args.head => "HEAD".into(),
        None if args.extra.upload_file.is_some() => "PUT".into(),
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
fn template(args: &Args, body: Option<&Vec<u8>>) -> Result<Template> {
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
                let pw = prompt_password(&format!("Enter host password for user '{u}':"));
                no_line_breaks("the password", &pw)?;
                format!("{u}:{pw}")
            })
        }
        None => None,
    };
    let netrc = netrc_entries(args)?;
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
    let content_type = if args.extra.upload_file.is_some() {
        None
    } else if !args.extra.form.is_empty() {
        Some(format!(
            "multipart/form-data; boundary={}",
            form_boundary(body)
        ))
    } else {
        Some(content_type.to_string())
    };
    Ok(Template {
        user_agent,
        accept: accept.into(),
        accept_encoding: args.compressed.then(|| "gzip, deflate, br".to_string()),
        basic,
        content_type,
        user,
        body_framing,
        netrc,
    })
}

/// The boundary a multipart body starts with (`--BOUNDARY\r\n`).
fn form_boundary(body: Option<&Vec<u8>>) -> String {
    let b = body.map_or(&[][..], |b| b.as_slice());
    let line = b.split(|&c| c == b'\r').next().unwrap_or(&[]);
    String::from_utf8_lossy(line.strip_prefix(b"--").unwrap_or(line)).into_owned()
}

/// `--netrc`, `--netrc-optional`, `--netrc-file`: the entries, or none.
fn netrc_entries(args: &Args) -> Result<Vec<netrc::Entry>> {
    let x = &args.extra;
    let path = match &x.netrc_file {
        Some(p) => p.clone(),
        None if x.netrc || x.netrc_optional => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".netrc")
        }
        None => return Ok(Vec::new()),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(netrc::parse(&text)),
        // As curl: a missing file means no credentials from it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(HttpError::new(
            Kind::ReadFile,
            format!("cannot read {}", path.display()),
            crate::error::describe_io(&e),
        )
        .into()),
    }
}

/// Asks for a password on the terminal, echo off, as curl does for `-u USER`.
/// Without a terminal the password is empty.
fn prompt_password(prompt: &str) -> String {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return String::new();
    };
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for an open descriptor.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the life of `tty`.
    let saved = (unsafe { libc::tcgetattr(fd, &mut term) } == 0).then_some(term);
    if let Some(mut t) = saved {
        t.c_lflag &= !libc::ECHO;
        t.c_lflag |= libc::ECHONL;
        // SAFETY: as above, with a termios read from the same descriptor.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
    }
    let mut w = &tty;
    let _ = w.write_all(prompt.as_bytes());
    let _ = w.flush();
    let mut line = String::new();
    let _ = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
    }
    line.trim_end_matches(['\r', '\n']).to_string()
}

/// `-G`: the data joined to the URL's query with '&'.
fn with_query(mut url: Url, data: &[u8]) -> Url {
    let data = String::from_utf8_lossy(data);
    let q = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{data}"),
        _ => data.into_owned(),
    };
    url.set_query(Some(&q));
    url
}

impl Plan {
    pub(super) fn new(args: &Args) -> Result<Plan> {
        let x = &args.extra;
        let mut urls = args
            .urls
            .iter()
            .map(|u| target::parse(u).map_err(Error::from))
            .collect::<Result<Vec<_>>>()?;
        let upload = streamed_upload(args)?;
        let (body, query) = body(args, upload.is_some())?;
        if let Some(q) = &query {
            urls = urls.into_iter().map(|u| with_query(u, q)).collect();
        }
        if let Some(f) = x.upload_file.as_deref().filter(|f| *f != "-") {
            // curl: a URL ending in '/' gets the uploaded file's name.
            let name = std::path::Path::new(f)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            for u in &mut urls {
                if let (true, Some(n)) = (u.path().ends_with('/'), &name) {
                    let joined = u.join(
                        &n.replace('%', "%25")
                            .replace('?', "%3F")
                            .replace('#', "%23"),
                    );
                    if let Ok(j) = joined {
                        *u = j;
                    }
                }
            }
        }
        let method = method(args, body.is_some() || upload.is_some())?;
        let template = template(args, body.as_ref())?;
        if let Some(r) = &x.range {
            let ok = !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b',');
            if !ok {
                return Err(Error::Usage(format!(
                    "invalid -r '{}': expected a byte range like 0-499, 500- or -500",
                    crate::http::shown(r.as_bytes())
                )));
            }
        }
        if let Some(c) = &x.continue_at {
            if c != "-" && c.parse::<u64>().is_err() {
                return Err(Error::Usage(format!(
                    "invalid -C '{}': expected a byte offset or '-'",
                    crate::http::shown(c.as_bytes())
                )));
            }
            if x.range.is_some() {
                return Err(Error::Usage("-C and -r cannot be used together".into()));
            }
        }
        let (referer, auto_referer) = match &x.referer {
            Some(r) => {
                no_line_breaks("-e", r)?;
                match r.strip_suffix(";auto") {
                    Some(base) => ((!base.is_empty()).then(|| base.to_string()), true),
                    None => (Some(r.clone()), false),
                }
            }
            None => (None, false),
        };
        let mut cookie = None;
        let mut jar = None;
        for b in &x.cookie {
            if b.contains('=') {
                no_line_breaks("-b", b)?;
                cookie = Some(match cookie {
                    Some(c) => format!("{c}; {b}"),
                    None => b.clone(),
                });
            } else {
                let j = jar.get_or_insert_with(crate::http::cookie::Jar::new);
                // curl: a cookie file that cannot be read still turns the engine on.
                if let Ok(text) = std::fs::read_to_string(b) {
                    j.load_netscape(&text, crate::http::cookie::now());
                }
            }
        }
        if x.cookie_jar.is_some() && jar.is_none() {
            jar = Some(crate::http::cookie::Jar::new());
        }
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
            limit_rate: x.limit_rate,
            referer,
            auto_referer,
            cookie,
        };
        Ok(Plan {
            urls,
            method,
            body: body.map(Arc::new),
            upload: upload.map(Arc::new),
            settings,
            include: args.include || args.head,
            outputs: args.output.clone(),
            remote_name: args.remote_name,
            progress: !args.silent && std::io::stderr().is_terminal(),
            fail: args.fail,
            write_out,
            show_error: x.show_error,
            silent: args.silent,
            fail_with_body: x.fail_with_body,
            range: x.range.clone(),
            continue_at: x.continue_at.clone(),
            header_name: x.remote_header_name,
            output_dir: x.output_dir.clone(),
            create_dirs: x.create_dirs,
            retry: Retry {
                count: x.retry,
                delay: x.retry_delay,
                max_time: x.retry_max_time.filter(|d| !d.is_zero()),
                connrefused: x.retry_connrefused,
            },
            jar,
            cookie_jar: x.cookie_jar.clone(),
            dump_header: x.dump_header.clone(),
            progress_hashes: x.progress_bar,
        })
    }

    /// Where the body of URL number `index` goes, and what else goes there.
    pub(super) fn output(&self, index: usize, url: &Url) -> Result<FetchOutput> {
        let in_dir = |p: &std::path::Path| match &self.output_dir {
            Some(d) if p.is_relative() => d.join(p),
            _ => p.to_path_buf(),
        };
        let dest = if let Some(p) = self.outputs.get(index) {
            Destination::File(in_dir(p))
        } else if self.remote_name {
            match target::remote_name(url) {
                Some(name) => Destination::File(in_dir(std::path::Path::new(&name))),
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
        if let (true, Destination::File(p)) = (self.create_dirs, &dest) {
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_dirs(parent)?;
            }
        }
        if let (true, true, Some(d)) = (self.create_dirs, self.header_name, &self.output_dir) {
            create_dirs(d)?;
        }
        let (dest, range, resume) = match (&self.continue_at, dest) {
            (Some(c), Destination::File(p)) => {
                let offset = match c.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => std::fs::metadata(&p).map_or(0, |m| m.len()),
                };
                let range = (offset > 0).then(|| format!("{offset}-"));
                let resume = range.is_some();
                (Destination::Append(p), range, resume)
            }
            (Some(c), dest) => {
                let offset = c.parse::<u64>().unwrap_or(0);
                let range = (offset > 0).then(|| format!("{offset}-"));
                let resume = range.is_some();
                (dest, range, resume)
            }
            (None, dest) => (dest, self.range.clone(), false),
        };
        let header_name =
            (self.header_name && self.remote_name && self.outputs.get(index).is_none())
                .then(|| self.output_dir.clone().unwrap_or_default());
        Ok(FetchOutput {
            dest,
            include_heads: self.include,
            fail_on_error: self.fail,
            fail_with_body: self.fail_with_body,
            range,
            resume,
            header_name,
            retry_status: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parts_keep_their_command_line_order() {
        let raw = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            data_order(
                &raw("--data-urlencode a -sd b --data-binary=c -H -d -d e URL"),
                [2, 1, 1]
            ),
            vec![2, 0, 1, 0]
        );
        assert_eq!(data_order(&raw("-dx --data y URL"), [2, 0, 0]), vec![0, 0]);
        // A count that does not match (a value that looks like a flag): flag order.
        assert_eq!(
            data_order(&raw("--data-urlencode a -o -d -d b URL"), [2, 0, 1]),
            vec![0, 0, 2]
        );
        assert_eq!(
            data_order(&raw("--data-urlencode a -d b"), [1, 0, 2]),
            vec![0, 2, 2]
        );
    }
}
