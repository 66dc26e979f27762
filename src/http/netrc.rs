//! `.netrc` credentials for `sockit http --netrc`: `machine HOST login USER
//! password PASS` entries, `default`, and `macdef` blocks skipped, as curl and
//! ftp read them.

/// One `machine` (or `default`, `host` None) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The machine name; None for `default`.
    pub host: Option<String>,
    /// `login`.
    pub login: String,
    /// `password`.
    pub password: String,
}

/// Parses a `.netrc` text into its entries, in file order.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines = text.lines();
    let mut cur: Option<Entry> = None;
    while let Some(line) = lines.next() {
        let mut toks = line.split_whitespace();
        while let Some(tok) = toks.next() {
            match tok {
                "machine" | "default" => {
                    entries.extend(cur.take());
                    let host = if tok == "machine" {
                        toks.next().map(|h| h.to_ascii_lowercase())
                    } else {
                        None
                    };
                    cur = Some(Entry {
                        host,
                        login: String::new(),
                        password: String::new(),
                    });
                }
                "login" | "password" | "account" => {
                    let v = toks.next().unwrap_or("").to_string();
                    if let Some(e) = cur.as_mut() {
                        match tok {
                            "login" => e.login = v,
                            "password" => e.password = v,
                            _ => {}
                        }
                    }
                }
                "macdef" => {
                    // The macro runs to the next empty line.
                    for l in lines.by_ref() {
                        if l.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                t if t.starts_with('#') => break,
                _ => {}
            }
        }
    }
    entries.extend(cur);
    entries
}

/// The `user:password` for `host`: its `machine` entry, else `default`.
pub fn lookup(entries: &[Entry], host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    entries
        .iter()
        .find(|e| e.host.as_deref() == Some(host.as_str()))
        .or_else(|| entries.iter().find(|e| e.host.is_none()))
        .map(|e| format!("{}:{}", e.login, e.password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let e = parse(
            "machine a.test login al password s3cret\n\
             macdef init\nmachine evil login x password y\n\n\
             machine B.test\n  login bo\n  password pw # comment\n\
             default login anon password guest\n",
        );
        assert_eq!(lookup(&e, "a.test").as_deref(), Some("al:s3cret"));
        assert_eq!(lookup(&e, "b.test").as_deref(), Some("bo:pw"));
        assert_eq!(lookup(&e, "evil").as_deref(), Some("anon:guest"));
        assert_eq!(lookup(&parse("machine x login a password b"), "y"), None);
    }
}
