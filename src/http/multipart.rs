//! `multipart/form-data` bodies for `sockit http -F` (RFC 7578), with curl's
//! field syntax: `name=value`, `name=@file` (a file part), `name=<file` (a
//! file's content as a plain value), then `;type=MIME` and `;filename=NAME`.

/// One part, ready to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Field name.
    pub name: String,
    /// File name sent in `Content-Disposition` (file parts, or `;filename=`).
    pub filename: Option<String>,
    /// `Content-Type` of the part, if any.
    pub content_type: Option<String>,
    /// The content.
    pub data: Vec<u8>,
}

/// A parsed `-F` argument before files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// What the content is.
    pub content: Content,
    /// `;type=`.
    pub content_type: Option<String>,
    /// `;filename=`.
    pub filename: Option<String>,
}

/// Where a field's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The text given.
    Text(String),
    /// A file sent as a file (`@`).
    File(String),
    /// A file's content as the value (`<`).
    FileText(String),
}

/// Parses `-F name=content[;type=..][;filename=..]`.
pub fn parse_field(arg: &str) -> Result<Field, String> {
    let (name, rest) = arg.split_once('=').ok_or_else(|| {
        format!(
            "invalid -F '{}': expected NAME=CONTENT",
            super::shown(arg.as_bytes())
        )
    })?;
    if name.is_empty() || name.bytes().any(|b| b == b'"' || b < 0x20) {
        return Err(format!(
            "invalid -F '{}': bad field name",
            super::shown(arg.as_bytes())
        ));
    }
    let (kind, body) = match rest.as_bytes().first() {
        Some(b'@') => (1, &rest[1..]),
        Some(b'<') => (2, &rest[1..]),
        _ => (0, rest),
    };
    // Attributes follow the content after ';' for files; a plain value keeps its ';'
    // unless what follows is a known attribute.
    let mut content_type = None;
    let mut filename = None;
    let mut value = body;
    let mut attrs: Vec<&str> = Vec::new();
    let mut pieces = body.split(';');
    if let Some(first) = pieces.next() {
        let rest: Vec<&str> = pieces.collect();
        let known = |a: &&str| {
            let a = a.trim_start();
            a.starts_with("type=") || a.starts_with("filename=") || a.starts_with("headers=")
        };
        if !rest.is_empty() && rest.iter().all(known) {
            value = first;
            attrs = rest;
        }
    }
    for a in attrs {
        let a = a.trim_start();
        if let Some(t) = a.strip_prefix("type=") {
            content_type = Some(t.to_string());
        } else if let Some(f) = a.strip_prefix("filename=") {
            filename = Some(f.trim_matches('"').to_string());
        }
    }
    for v in content_type.iter().chain(filename.iter()) {
        if v.bytes().any(|b| b < 0x20 || b == b'"') {
            return Err(format!(
                "invalid -F '{}': control characters or '\"' in an attribute",
                super::shown(arg.as_bytes())
            ));
        }
    }
    let content = match kind {
        1 => Content::File(value.to_string()),
        2 => Content::FileText(value.to_string()),
        _ => Content::Text(value.to_string()),
    };
    Ok(Field {
        name: name.to_string(),
        content,
        content_type,
        filename,
    })
}

/// The `Content-Type` curl would guess from a file name; octet-stream otherwise.
pub fn guess_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt") => "text/plain",
        Some("html" | "htm") => "text/html",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("gif") => "image/gif",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A boundary unlikely to appear in any content: 24 dashes and 22 random
/// alphanumerics (curl's shape), from the OS random source.
pub fn boundary() -> String {
    let mut seed = [0u8; 22];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (i, b) in seed.iter_mut().enumerate() {
            *b = (t >> (i % 16 * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    const A: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let tail: String = seed
        .iter()
        .map(|b| A[*b as usize % A.len()] as char)
        .collect();
    format!("{}{tail}", "-".repeat(24))
}

/// Encodes the parts with `boundary`.
pub fn encode(parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(b"Content-Disposition: form-data; name=\"");
        out.extend_from_slice(p.name.as_bytes());
        out.push(b'"');
        if let Some(f) = &p.filename {
            out.extend_from_slice(b"; filename=\"");
            out.extend_from_slice(f.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
        if let Some(t) = &p.content_type {
            out.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let f = parse_field("a=b;c").unwrap();
        assert_eq!(f.content, Content::Text("b;c".into()));
        let f = parse_field("up=@dir/x.bin;type=image/png;filename=y.png").unwrap();
        assert_eq!(f.content, Content::File("dir/x.bin".into()));
        assert_eq!(f.content_type.as_deref(), Some("image/png"));
        assert_eq!(f.filename.as_deref(), Some("y.png"));
        assert_eq!(
            parse_field("t=<f.txt").unwrap().content,
            Content::FileText("f.txt".into())
        );
        assert!(parse_field("novalue").is_err());
        assert!(parse_field("x=@f;filename=a\"b").is_err());
    }

    #[test]
    fn encoding() {
        let parts = [
            Part {
                name: "a".into(),
                filename: None,
                content_type: None,
                data: b"1".to_vec(),
            },
            Part {
                name: "f".into(),
                filename: Some("x.txt".into()),
                content_type: Some("text/plain".into()),
                data: b"hi\n".to_vec(),
            },
        ];
        assert_eq!(
            String::from_utf8(encode(&parts, "B")).unwrap(),
            "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
             --B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n\
             Content-Type: text/plain\r\n\r\nhi\n\r\n--B--\r\n"
        );
        let b = boundary();
        assert_eq!(b.len(), 46);
        assert_ne!(b, boundary());
    }
}
