//! Content and transfer decoding (gzip, deflate, brotli) while the body streams.
//!
//! Bytes are pushed through one decoder per coding, last applied first, in small
//! pieces so that a highly compressed body never expands into more than a few
//! MiB of memory at once. Decoding errors and output errors stay apart so the
//! caller can tell "corrupt gzip" from "disk full". Does no I/O of its own.

use std::io::{self, Write};

use flate2::{Decompress, FlushDecompress, Status};

/// Input is fed to a decoder this many bytes at a time (deflate expands at most
/// about 1032:1, so each step produces at most a few MiB).
const PIECE: usize = 4096;

/// Most codings removed from one body unless told otherwise (curl's limit too):
/// each layer holds a decoder's state, so a head listing thousands of codings
/// would otherwise cost hundreds of MiB.
pub const MAX_CODINGS: usize = 5;

/// A coding this client can remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip`, `x-gzip`.
    Gzip,
    /// `deflate` (zlib-wrapped, or raw deflate from servers that get it wrong).
    Deflate,
    /// `br` (RFC 7932).
    Brotli,
    /// `identity`: nothing to do.
    Identity,
}

/// The coding for a `Content-Encoding` or `Transfer-Encoding` token.
pub fn coding(name: &str) -> Option<Coding> {
    match name.to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => Some(Coding::Gzip),
        "deflate" => Some(Coding::Deflate),
        "br" => Some(Coding::Brotli),
        "identity" => Some(Coding::Identity),
        _ => None,
    }
}

/// Why no decoder could be built for a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupError {
    /// A coding this client cannot remove (its name as received).
    Unsupported(String),
    /// More codings than the limit.
    TooMany {
        /// How many codings the response listed.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Unsupported(name) => write!(f, "unsupported coding '{name}'"),
            SetupError::TooMany { count, limit } => write!(
                f,
                "{count} content and transfer codings, more than {limit} (--max-codings)"
            ),
        }
    }
}

/// Why decoding stopped.
#[derive(Debug)]
pub enum DecodeError {
    /// The encoded data is corrupt or incomplete.
    Corrupt(String),
    /// The output callback failed.
    Output(io::Error),
}

enum Layer {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Inflate(Box<Inflate>),
    Brotli(Box<Brotli>),
}

/// Decodes a stack of codings.
pub struct Decoder {
    /// Outermost (last applied) first.
    layers: Vec<Layer>,
}

impl Decoder {
    /// A decoder for `codings` in the order the server applied them. `Ok(None)` when
    /// there is nothing to decode. Fails for a coding it cannot remove, and for more
    /// than `limit` codings (`identity` counts too) before anything is allocated.
    pub fn new<S: AsRef<str>>(codings: &[S], limit: usize) -> Result<Option<Decoder>, SetupError> {
        if codings.len() > limit {
            return Err(SetupError::TooMany {
                count: codings.len(),
                limit,
            });
        }
        let mut layers = Vec::new();
        for c in codings.iter().rev() {
            match coding(c.as_ref()) {
                Some(Coding::Gzip) => layers.push(Layer::Gzip(Box::new(
                    flate2::write::GzDecoder::new(Vec::new()),
                ))),
                Some(Coding::Deflate) => layers.push(Layer::Inflate(Box::default())),
                Some(Coding::Brotli) => layers.push(Layer::Brotli(Box::new(Brotli::new()))),
                Some(Coding::Identity) => {}
                None => return Err(SetupError::Unsupported(c.as_ref().to_string())),
            }
        }
        Ok((!layers.is_empty()).then_some(Decoder { layers }))
    }

    /// Decodes `data`, handing decoded bytes to `out`.
    pub fn write(
        &mut self,
        data: &[u8],
        out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), DecodeError> {
        push(&mut self.layers, data, out)
    }

    /// Ends the stream: fails if any layer's data was incomplete.
    pub fn finish(
        &mut self,
        out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), DecodeError> {
        let n = self.layers.len();
        for i in 0..n {
            let (head, rest) = self.layers[i..].split_at_mut(1);
            let produced = match &mut head[0] {
                Layer::Gzip(g) => {
                    g.try_finish().map_err(|e| corrupt("gzip", &e))?;
                    std::mem::take(g.get_mut())
                }
                Layer::Inflate(f) => {
                    if !f.ended {
                        return Err(DecodeError::Corrupt("deflate data ends early".into()));
                    }
                    Vec::new()
                }
                Layer::Brotli(b) => {
                    if !b.ended {
                        return Err(DecodeError::Corrupt("brotli data ends early".into()));
                    }
                    Vec::new()
                }
            };
            push(rest, &produced, out)?;
        }
        Ok(())
    }
}

fn corrupt(what: &str, e: &io::Error) -> DecodeError {
    DecodeError::Corrupt(format!("bad {what} data: {e}"))
}

fn push(
    layers: &mut [Layer],
    data: &[u8],
    out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), DecodeError> {
    let Some((first, rest)) = layers.split_first_mut() else {
        return if data.is_empty() {
            Ok(())
        } else {
            out(data).map_err(DecodeError::Output)
        };
    };
    for piece in data.chunks(PIECE) {
        let mut produced = match first {
            Layer::Gzip(g) => {
                let mut left = piece;
                while !left.is_empty() {
                    let n = g.write(left).map_err(|e| corrupt("gzip", &e))?;
                    if n == 0 {
                        return Err(DecodeError::Corrupt(
                            "data after the end of the gzip stream".into(),
                        ));
                    }
                    left = &left[n..];
                }
                std::mem::take(g.get_mut())
            }
            Layer::Inflate(f) => f.feed(piece)?,
            Layer::Brotli(b) => {
                // Emits in fixed-size steps: brotli can expand far more than deflate.
                b.feed(piece, &mut |chunk| push(rest, chunk, out))?;
                continue;
            }
        };
        push(rest, &produced, out)?;
        produced.clear();
        match first {
            Layer::Gzip(g) => *g.get_mut() = produced,
            Layer::Inflate(f) => f.out = produced,
            Layer::Brotli(_) => {}
        }
    }
    Ok(())
}

/// `br`: decoded into a fixed 64 KiB buffer, handed on each time it fills. The
/// decoder's own window is at most 16 MiB (standard brotli).
struct Brotli {
    state: brotli_decompressor::BrotliState<
        brotli_decompressor::StandardAlloc,
        brotli_decompressor::StandardAlloc,
        brotli_decompressor::StandardAlloc,
    >,
    out: Vec<u8>,
    ended: bool,
}

impl Brotli {
    fn new() -> Brotli {
        use brotli_decompressor::StandardAlloc;
        Brotli {
            state: brotli_decompressor::BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ),
            out: vec![0; 64 * 1024],
            ended: false,
        }
    }

    fn feed(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        use brotli_decompressor::{BrotliDecompressStream, BrotliResult};
        let mut avail_in = input.len();
        let mut in_off = 0;
        loop {
            if self.ended {
                if avail_in > 0 {
                    return Err(DecodeError::Corrupt(
                        "data after the end of the brotli stream".into(),
                    ));
                }
                return Ok(());
            }
            let mut avail_out = self.out.len();
            let mut out_off = 0;
            let mut total = 0;
            let r = BrotliDecompressStream(
                &mut avail_in,
                &mut in_off,
                input,
                &mut avail_out,
                &mut out_off,
                &mut self.out,
                &mut total,
                &mut self.state,
            );
            if out_off > 0 {
                emit(&self.out[..out_off])?;
            }
            match r {
                BrotliResult::NeedsMoreOutput => {}
                BrotliResult::NeedsMoreInput => return Ok(()),
                BrotliResult::ResultSuccess => self.ended = true,
                BrotliResult::ResultFailure => {
                    return Err(DecodeError::Corrupt("bad brotli data".into()))
                }
            }
        }
    }
}

/// `deflate`: zlib format per RFC 9110, or raw deflate, told apart by the first two bytes.
#[derive(Default)]
struct Inflate {
    d: Option<Decompress>,
    sniff: Vec<u8>,
    out: Vec<u8>,
    ended: bool,
}

impl Inflate {
    fn feed(&mut self, piece: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut out = std::mem::take(&mut self.out);
        let owned;
        let mut input = piece;
        if self.d.is_none() {
            self.sniff.extend_from_slice(piece);
            if self.sniff.len() < 2 {
                return Ok(out);
            }
            let (a, b) = (self.sniff[0], self.sniff[1]);
            let zlib = a & 0x0f == 8 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0;
            self.d = Some(Decompress::new(zlib));
            owned = std::mem::take(&mut self.sniff);
            input = &owned;
        }
        let Some(d) = self.d.as_mut() else {
            return Ok(out);
        };
        while !input.is_empty() {
            if self.ended {
                return Err(DecodeError::Corrupt(
                    "data after the end of the deflate stream".into(),
                ));
            }
            if out.capacity() - out.len() < PIECE * 4 {
                out.reserve(PIECE * 16);
            }
            let before = d.total_in();
            let status = d
                .decompress_vec(input, &mut out, FlushDecompress::None)
                .map_err(|e| DecodeError::Corrupt(format!("bad deflate data: {e}")))?;
            let used = (d.total_in() - before) as usize;
            input = &input[used..];
            match status {
                Status::StreamEnd => self.ended = true,
                Status::Ok | Status::BufError => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    fn run(codings: &[&str], data: &[u8], split: usize) -> Result<Vec<u8>, DecodeError> {
        let mut d = Decoder::new(codings, MAX_CODINGS).unwrap().unwrap();
        let mut got = Vec::new();
        let mut out = |b: &[u8]| {
            got.extend_from_slice(b);
            Ok(())
        };
        for piece in data.chunks(split.max(1)) {
            d.write(piece, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(got)
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trips() {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for split in [1, 7, 4096, 1 << 20] {
            assert_eq!(run(&["gzip"], &gz(&text), split).unwrap(), text);
            let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
            z.write_all(&text).unwrap();
            assert_eq!(
                run(&["deflate"], &z.finish().unwrap(), split).unwrap(),
                text
            );
            let mut r = DeflateEncoder::new(Vec::new(), Compression::default());
            r.write_all(&text).unwrap();
            assert_eq!(
                run(&["deflate"], &r.finish().unwrap(), split).unwrap(),
                text
            );
            assert_eq!(
                run(&["gzip", "gzip"], &gz(&gz(&text)), split).unwrap(),
                text
            );
        }
    }

    #[test]
    fn a_compression_bomb_comes_out_in_bounded_pieces() {
        let bomb = gz(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let mut d = Decoder::new(&["gzip"], MAX_CODINGS).unwrap().unwrap();
        let (mut total, mut largest) = (0usize, 0usize);
        let mut out = |b: &[u8]| {
            total += b.len();
            largest = largest.max(b.len());
            Ok(())
        };
        for piece in bomb.chunks(256 * 1024) {
            d.write(piece, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        assert_eq!(total, 64 << 20);
        assert!(largest <= 8 << 20, "one step produced {largest} bytes");
    }

    /// "sockit speaks brotli. " 50 times, compressed with `brotli -q 11`.
    const BR_TEXT: &[u8] = &[
        0xb1, 0x58, 0x22, 0xc0, 0x2f, 0x6e, 0x63, 0xeb, 0x3a, 0x56, 0x77, 0xd4, 0x92, 0x02, 0x21,
        0xad, 0x59, 0x0a, 0xac, 0x12, 0x74, 0xd1, 0x9a, 0x65, 0xf0, 0x03, 0xdf, 0xe8, 0x57, 0x8e,
        0x05,
    ];
    /// 64 MiB of zeros, compressed with `brotli -q 11`.
    const BR_BOMB: &[u8] = &[
        0xcf, 0xff, 0xff, 0x7f, 0xf8, 0x27, 0x00, 0xe2, 0xb1, 0x40, 0x20, 0xf7, 0xfe, 0x9f, 0xff,
        0xff, 0xff, 0xf0, 0x4f, 0x00, 0xc4, 0x61, 0x01, 0x80, 0xee, 0xfd, 0x3f, 0xff, 0xff, 0xff,
        0xe1, 0x9f, 0x00, 0x88, 0xc3, 0x22, 0x00, 0xdd, 0xfb, 0x7f, 0xfe, 0xff, 0xff, 0xc3, 0x3f,
        0x01, 0x10, 0x87, 0x05, 0x00, 0xba, 0xf7, 0xff, 0x03,
    ];

    #[test]
    fn brotli() {
        let want = b"sockit speaks brotli. ".repeat(50);
        for split in [1, 3, 31] {
            assert_eq!(run(&["br"], BR_TEXT, split).unwrap(), want);
        }
        assert!(run(&["br"], &BR_TEXT[..BR_TEXT.len() - 2], 4).is_err());
        let mut extra = BR_TEXT.to_vec();
        extra.push(0);
        assert!(run(&["br"], &extra, 4).is_err());
        assert!(run(&["br"], b"definitely not brotli", 4).is_err());
        let mut d = Decoder::new(&["br"], MAX_CODINGS).unwrap().unwrap();
        let (mut total, mut largest) = (0usize, 0usize);
        let mut out = |b: &[u8]| {
            total += b.len();
            largest = largest.max(b.len());
            Ok(())
        };
        d.write(BR_BOMB, &mut out).unwrap();
        d.finish(&mut out).unwrap();
        assert_eq!(total, 64 << 20);
        assert!(largest <= 64 * 1024, "one step produced {largest} bytes");
    }

    #[test]
    fn truncated_and_corrupt() {
        let data = gz(b"hello hello hello hello");
        assert!(run(&["gzip"], &data[..data.len() - 3], 5).is_err());
        assert!(run(&["gzip"], b"not gzip at all", 5).is_err());
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(b"hello hello hello").unwrap();
        let z = z.finish().unwrap();
        assert!(run(&["deflate"], &z[..z.len() - 4], 3).is_err());
        assert!(Decoder::new(&["zstd"], MAX_CODINGS).is_err());
        assert!(Decoder::new(&["identity"], MAX_CODINGS).unwrap().is_none());
    }

    #[test]
    fn the_number_of_codings_is_capped() {
        let five = ["gzip"; MAX_CODINGS];
        assert!(Decoder::new(&five, MAX_CODINGS).unwrap().is_some());
        let many = vec!["gzip"; 12_000];
        assert_eq!(
            Decoder::new(&many, MAX_CODINGS).err(),
            Some(SetupError::TooMany {
                count: 12_000,
                limit: MAX_CODINGS
            })
        );
        let identities = vec!["identity"; MAX_CODINGS + 1];
        assert!(Decoder::new(&identities, MAX_CODINGS).is_err());
    }
}
