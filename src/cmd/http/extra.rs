//! The curl habits of `sockit http` beyond the basics: error display, header
//! dumps, cookies, forms, uploads, ranges and resume, retries, rate limits,
//! download names and `.netrc` credentials. Flattened into [`super::Args`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::parse_secs;

/// More flags for `sockit http`, named as curl names them.
#[derive(Debug, Default, ClapArgs)]
pub struct Extra {
    /// With -s, still print the error line when the transfer fails (-sS).
    #[arg(short = 'S', long = "show-error", help_heading = "Output")]
    pub show_error: bool,
    /// Like -f (exit 22 when the server answers 400 or above), but write the body first.
    #[arg(long, conflicts_with = "fail", help_heading = "Output")]
    pub fail_with_body: bool,
    /// Write every response head received (redirects and 1xx included) to FILE;
    /// '-' is stdout.
    #[arg(
        short = 'D',
        long = "dump-header",
        value_name = "FILE",
        help_heading = "Output"
    )]
    pub dump_header: Option<PathBuf>,
    /// With -O: name the file after the Content-Disposition filename (its
    /// directories stripped; an existing file is not overwritten).
    #[arg(
        short = 'J',
        long = "remote-header-name",
        requires = "remote_name",
        help_heading = "Output"
    )]
    pub remote_header_name: bool,
    /// Put -o and -O files in DIR (a relative -o path is taken from DIR).
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub output_dir: Option<PathBuf>,
    /// Create the missing directories of -o, -O and --output-dir paths.
    #[arg(long, help_heading = "Output")]
    pub create_dirs: bool,
    /// Draw the progress as a plain bar of '#' (still only on a terminal).
    #[arg(short = '#', long = "progress-bar", help_heading = "Output")]
    pub progress_bar: bool,

    /// Send cookies: 'NAME=VALUE; N2=V2' as given, or read a cookie file (curl's
    /// Netscape format) and send what matches each request. Turns on the cookie
    /// engine: cookies set by responses are kept for the following requests and
    /// redirects.
    #[arg(
        short = 'b',
        long = "cookie",
        value_name = "DATA|FILE",
        help_heading = "Cookies"
    )]
    pub cookie: Vec<String>,
    /// Write every cookie known at the end to FILE in the Netscape cookie-jar
    /// format ('-' is stdout); turns on the cookie engine.
    #[arg(
        short = 'c',
        long = "cookie-jar",
        value_name = "FILE",
        help_heading = "Cookies"
    )]
    pub cookie_jar: Option<PathBuf>,

    /// Multipart form field (POST, multipart/form-data): 'name=value',
    /// 'name=@file' (a file upload), 'name=<file' (a file's text as the value);
    /// ';type=MIME' and ';filename=NAME' after it. Repeatable.
    #[arg(
        short = 'F',
        long = "form",
        value_name = "NAME=CONTENT",
        help_heading = "Request"
    )]
    pub form: Vec<String>,
    /// URL-encode and send like -d: 'content', '=content', 'name=content',
    /// '@file', 'name@file'.
    #[arg(long, value_name = "DATA", help_heading = "Request")]
    pub data_urlencode: Vec<String>,
    /// Put the -d/--data-urlencode data in the URL's query and send a GET (HEAD with -I).
    #[arg(short = 'G', long = "get", help_heading = "Request")]
    pub get: bool,
    /// Upload FILE with PUT, read as it is sent; '-' streams stdin chunked, as curl;
    /// a URL ending in '/' gets the file's name.
    #[arg(
        short = 'T',
        long = "upload-file",
        value_name = "FILE",
        help_heading = "Request"
    )]
    pub upload_file: Option<String>,
    /// Ask for a byte range: '0-499', '500-', '-500', or a list '0-1,5-9'.
    #[arg(
        short = 'r',
        long = "range",
        value_name = "RANGE",
        allow_hyphen_values = true,
        help_heading = "Request"
    )]
    pub range: Option<String>,
    /// Resume at byte OFFSET, appending to the -o file; '-' resumes at the file's
    /// current size.
    #[arg(
        short = 'C',
        long = "continue-at",
        value_name = "OFFSET",
        help_heading = "Request"
    )]
    pub continue_at: Option<String>,
    /// Referer header; 'URL;auto' (or ';auto') also sets it to the previous URL
    /// on each redirect with -L.
    #[arg(
        short = 'e',
        long = "referer",
        value_name = "URL",
        help_heading = "Request"
    )]
    pub referer: Option<String>,
    /// Take credentials for the URL's host from ~/.netrc ('machine HOST login U
    /// password P', or 'default'); -u and the URL's own win. A missing file is
    /// no error (as curl); an unreadable one is (exit 26).
    #[arg(long, help_heading = "Request")]
    pub netrc: bool,
    /// The same as --netrc (curl's name for it).
    #[arg(long, conflicts_with = "netrc", help_heading = "Request")]
    pub netrc_optional: bool,
    /// Like --netrc, from FILE.
    #[arg(long, value_name = "FILE", help_heading = "Request")]
    pub netrc_file: Option<PathBuf>,

    /// Try again up to N times after a transient failure: a timeout, HTTP 408,
    /// 429, 500, 502, 503 or 504 (and a refused connection with
    /// --retry-connrefused). Waits 1 s, doubling up to 10 min, or Retry-After.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Retries")]
    pub retry: u32,
    /// Fixed wait between retries, in seconds (overrides the doubling and Retry-After).
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Retries")]
    pub retry_delay: Option<Duration>,
    /// Start no retry after SECS since the first attempt (0: no limit).
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = "Retries")]
    pub retry_max_time: Option<Duration>,
    /// With --retry, a refused connection is transient too.
    #[arg(long, help_heading = "Retries")]
    pub retry_connrefused: bool,

    /// Most body bytes per second, received and sent (-T, -d, -F): '100K', '1.5M', '1G'
    /// (powers of 1024).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Connection")]
    pub limit_rate: Option<u64>,
}

/// Parses `--limit-rate`: a number of bytes per second with an optional k, M or
/// G suffix (powers of 1024, as curl).
pub fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1.0 && v * (mult as f64) < 1e15 => {
            Ok((v * mult as f64) as u64)
        }
        _ => Err(format!(
            "'{s}' is not a rate in bytes per second (e.g. 500, 100K, 2M, 1G)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("500"), Ok(500));
        assert_eq!(parse_rate("100k"), Ok(102_400));
        assert_eq!(parse_rate("1.5M"), Ok(1_572_864));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("").is_err());
    }
}
