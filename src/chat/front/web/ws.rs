//! WebSocket (RFC 6455), server side, sans-IO.
//!
//! **Write side: bytes we produce ourselves.** Server frames are unmasked, so a
//! text frame carrying one JSON event is the same bytes for every member: the
//! hub encodes a batch once ([`encode_text`] per event, appended to one
//! `Vec<u8>`) and pushes the shared bytes into each web member's outbox. The
//! header comes from `tungstenite`'s [`FrameHeader::format`]; the payload is
//! copied once, straight after it.
//!
//! **Read side: `tungstenite`'s protocol state machine.** [`WsReader`] drives a
//! [`WebSocketContext`] over an in-memory `Read + Write` adapter: the caller
//! hands in the bytes it read from the socket and gets back [`WsInput`]s plus
//! the bytes to send back (pongs, the close reply), which it pushes into the
//! same outbox as the fan-out so the order on the wire is the order decided
//! here. `tungstenite` does the framing, fragmentation and continuation rules,
//! interleaved control frames, masks, reserved bits and opcodes, control frame
//! limits, incremental UTF-8 validation across fragments, the close handshake
//! and the size limits (checked on the frame header, before any payload is
//! buffered). What it leaves to its caller is choosing the close status for a
//! failure: [`WsReader`] maps its errors to 1002 / 1007 / 1009 and turns binary
//! messages into 1003, since the chat is text only.
//!
//! Memory: the context's read buffer starts at [`READ_BUFFER`] bytes (not the
//! crate's 128 KiB default) and grows only while a frame is being received,
//! up to the message limit. The context never gives that capacity back, so
//! [`WsReader`] follows frame boundaries itself (a header scan, a few lines:
//! the context does not expose its buffer) and, once a large frame has been
//! consumed and nothing is pending, starts a fresh context: an idle member is
//! back to the small buffer, as the line framer's `shrink` does for lines.

use std::io::{self, Read, Write};

use tungstenite::error::{CapacityError, Error, ProtocolError};
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, FrameHeader};
use tungstenite::protocol::{Message, Role, WebSocketConfig, WebSocketContext};

/// Initial read buffer of a connection's WebSocket context, in bytes.
pub const READ_BUFFER: usize = 1024;

/// Close status codes the chat sends (RFC 6455 section 7.4.1).
pub mod status {
    /// Normal closure (quit, or the reply to a client's close).
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// A data type the endpoint cannot accept (binary: the chat is text only).
    pub const UNSUPPORTED: u16 = 1003;
    /// Text that is not valid UTF-8.
    pub const INVALID_UTF8: u16 = 1007;
    /// Policy violation (kicked, flooding, too slow).
    pub const POLICY: u16 = 1008;
    /// A message over the size limit (`--max-line`).
    pub const TOO_BIG: u16 = 1009;
}

/// Appends one complete, unmasked server text frame (FIN, opcode text, 7-, 16-
/// or 64-bit length) carrying `payload`.
pub fn encode_text(payload: &str, out: &mut Vec<u8>) {
    encode(OpCode::Data(Data::Text), payload.as_bytes(), out);
}

/// Appends one complete, unmasked server binary frame. The chat never sends
/// binary; this is for an echo endpoint used to run the Autobahn cases.
pub fn encode_binary(payload: &[u8], out: &mut Vec<u8>) {
    encode(OpCode::Data(Data::Binary), payload, out);
}

/// Appends a close frame with `code` and `reason`; the reason is cut (at a
/// character boundary) so the payload stays within the 125 bytes of a control frame.
pub fn encode_close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(OpCode::Control(Control::Close), &payload, out);
}

/// Appends a pong frame echoing `data` (at most 125 bytes are kept).
#[cfg(test)]
pub fn encode_pong(data: &[u8], out: &mut Vec<u8>) {
    encode(
        OpCode::Control(Control::Pong),
        &data[..data.len().min(125)],
        out,
    );
}

fn encode(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
    };
    out.reserve(header.len(payload.len() as u64) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// What a web member sent, as far as the chat cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsInput {
    /// A complete text message (possibly reassembled from fragments), valid UTF-8.
    Text(String),
    /// A complete binary message: only with [`WsReader::accept_binary`]
    /// (otherwise binary is refused with 1003).
    Binary(Vec<u8>),
    /// A pong (the answer to a server ping): the member is alive.
    Pong,
    /// The peer closed. The reply close frame is already in the returned
    /// bytes; flush them, then close the socket.
    Closed {
        /// The peer's status code, if it sent one.
        code: Option<u16>,
        /// The peer's reason (valid UTF-8, at most 123 bytes).
        reason: String,
    },
    /// The peer broke the protocol (or sent binary, or too much); a close frame
    /// with `code` is already in the returned bytes; flush them, then close the socket.
    Failed {
        /// The status sent: 1002, 1003, 1007 or 1009.
        code: u16,
        /// What went wrong, for the log.
        reason: String,
    },
}

/// The in-memory stream the context reads from and writes to: the bytes the
/// caller got from the socket, and the bytes to send back.
struct Io<'a> {
    input: &'a [u8],
    output: &'a mut Vec<u8>,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.input.len().min(buf.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The read side of one member's WebSocket, after the handshake.
#[derive(Debug)]
pub struct WsReader {
    ctx: WebSocketContext,
    /// Set once a close was sent or received, or the connection failed:
    /// everything after is ignored.
    done: bool,
    /// Binary messages are inputs rather than a 1003 close.
    binary: bool,
    max_message: usize,
    /// We sent a close: the context is waiting for the answer.
    closing: bool,
    /// Frame boundary tracking, to know when the context holds nothing.
    scan: Scan,
}

/// Where the byte stream is relative to frame boundaries.
#[derive(Debug, Default)]
struct Scan {
    /// Bytes of the header being read.
    hdr: [u8; 14],
    hdr_len: usize,
    /// Payload bytes of the current frame not yet seen.
    left: u64,
    /// A fragmented data message is in progress.
    fragmented: bool,
    /// A frame larger than the initial buffer went through the context.
    grown: bool,
}

impl Scan {
    fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left > 0 {
                let take = self.left.min(data.len() as u64);
                self.left -= take;
                data = &data[take as usize..];
                continue;
            }
            self.hdr[self.hdr_len] = data[0];
            self.hdr_len += 1;
            data = &data[1..];
            if self.hdr_len < 2 {
                continue;
            }
            let ext = match self.hdr[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mask = if self.hdr[1] & 0x80 != 0 { 4 } else { 0 };
            if self.hdr_len < 2 + ext + mask {
                continue;
            }
            let len = match ext {
                2 => u64::from(u16::from_be_bytes([self.hdr[2], self.hdr[3]])),
                8 => u64::from_be_bytes(self.hdr[2..10].try_into().unwrap_or_default()),
                _ => u64::from(self.hdr[1] & 0x7f),
            };
            let (fin, opcode) = (self.hdr[0] & 0x80 != 0, self.hdr[0] & 0x0f);
            if opcode < 8 {
                self.fragmented = !fin;
            }
            self.grown |= len > READ_BUFFER as u64;
            self.left = len;
            self.hdr_len = 0;
        }
    }

    fn at_rest(&self) -> bool {
        self.hdr_len == 0 && self.left == 0 && !self.fragmented
    }
}

fn context(read_ahead: Vec<u8>, max_message: usize) -> WebSocketContext {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = READ_BUFFER;
    config.write_buffer_size = 0;
    config.max_write_buffer_size = 4096;
    config.max_message_size = Some(max_message);
    config.max_frame_size = Some(max_message);
    config.accept_unmasked_frames = false;
    if read_ahead.is_empty() {
        WebSocketContext::new(Role::Server, Some(config))
    } else {
        WebSocketContext::from_partially_read(read_ahead, Role::Server, Some(config))
    }
}

impl WsReader {
    /// A reader accepting messages (and frames) of at most `max_message` payload bytes.
    pub fn new(max_message: usize) -> Self {
        Self::with_read_ahead(Vec::new(), max_message)
    }

    /// As [`WsReader::new`], starting with bytes the HTTP layer had already
    /// read past the upgrade request (pass them here, or to the first `feed`).
    pub fn with_read_ahead(read_ahead: Vec<u8>, max_message: usize) -> Self {
        let mut scan = Scan::default();
        scan.push(&read_ahead);
        WsReader {
            ctx: context(read_ahead, max_message),
            done: false,
            binary: false,
            max_message,
            closing: false,
            scan,
        }
    }

    /// Lets binary messages through as [`WsInput::Binary`] instead of closing
    /// with 1003 (for an echo endpoint running the Autobahn cases; the chat
    /// itself is text only).
    pub fn accept_binary(mut self, yes: bool) -> Self {
        self.binary = yes;
        self
    }

    /// True once the connection is over (closed either way or failed).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds bytes read from the socket. Each complete input is passed to
    /// `on_input` as soon as it is decoded, together with `out`, the bytes to
    /// send back: pongs and close frames are appended to `out` at the point
    /// they arise, so whatever `on_input` appends (an echo, an error event)
    /// keeps the protocol's order (a pong for a ping sent between two
    /// fragments precedes the answer to the message). After a `Closed` or
    /// `Failed` input, whose close frame is the last bytes appended, nothing
    /// more is produced.
    pub fn feed(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        mut on_input: impl FnMut(WsInput, &mut Vec<u8>),
    ) {
        if self.done {
            return;
        }
        self.scan.push(data);
        let mut io = Io {
            input: data,
            output: out,
        };
        loop {
            let result = self.ctx.read(&mut io);
            // Pongs and the close reply are queued inside the context until a
            // flush; send them now, in order.
            let _ = self.ctx.flush(&mut io);
            let input = match result {
                Ok(Message::Text(text)) => WsInput::Text(text.as_str().to_owned()),
                Ok(Message::Binary(data)) if self.binary => WsInput::Binary(data.to_vec()),
                Ok(Message::Binary(_)) => {
                    self.fail(
                        status::UNSUPPORTED,
                        "binary frames are not accepted",
                        &mut io,
                    );
                    WsInput::Failed {
                        code: status::UNSUPPORTED,
                        reason: "binary message".into(),
                    }
                }
                Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => continue,
                Ok(Message::Pong(_)) => WsInput::Pong,
                Ok(Message::Close(frame)) => {
                    self.done = true;
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
                        None => (None, String::new()),
                    };
                    WsInput::Closed { code, reason }
                }
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Everything fed is consumed. At a frame boundary, with no
                    // message in progress, the context holds nothing but a
                    // buffer that may have grown: start afresh.
                    if self.scan.grown && self.scan.at_rest() && !self.closing {
                        self.ctx = context(Vec::new(), self.max_message);
                        self.scan.grown = false;
                    }
                    return;
                }
                Err(Error::ConnectionClosed) | Err(Error::AlreadyClosed) => {
                    self.done = true;
                    return;
                }
                Err(e) => {
                    let code = close_code(&e);
                    let reason = e.to_string();
                    self.fail(code, short_reason(code), &mut io);
                    WsInput::Failed { code, reason }
                }
            };
            on_input(input, io.output);
            if self.done {
                return;
            }
        }
    }

    /// Starts a close from the server side (quit, kick, shutdown): appends the
    /// close frame to `out`. The peer's answering close is then consumed
    /// silently by [`WsReader::feed`] (reported as `Closed`).
    pub fn close(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let mut io = Io {
            input: &[],
            output: out,
        };
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: truncate(reason, 123).to_owned().into(),
        };
        self.closing = true;
        let _ = self.ctx.close(&mut io, Some(frame));
    }

    fn fail(&mut self, code: u16, reason: &str, io: &mut Io<'_>) {
        self.done = true;
        encode_close(code, reason, io.output);
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The close status for a read error.
fn close_code(e: &Error) -> u16 {
    match e {
        Error::Utf8(_) => status::INVALID_UTF8,
        Error::Capacity(CapacityError::MessageTooLong { .. }) => status::TOO_BIG,
        Error::Capacity(_) => status::TOO_BIG,
        Error::Protocol(ProtocolError::InvalidCloseSequence) => status::PROTOCOL,
        _ => status::PROTOCOL,
    }
}

fn short_reason(code: u16) -> &'static str {
    match code {
        status::INVALID_UTF8 => "invalid UTF-8",
        status::TOO_BIG => "message too big",
        _ => "protocol error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: `fin`, `opcode`, masked with a fixed key unless `mask` is false.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: bool) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let m = if mask { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n < 65536 => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [0x12, 0x34, 0x56, 0x78];
        if mask {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    fn text(fin: bool, p: &[u8]) -> Vec<u8> {
        client_frame(fin, 0x1, p, true)
    }
    fn cont(fin: bool, p: &[u8]) -> Vec<u8> {
        client_frame(fin, 0x0, p, true)
    }

    /// Parses server frames: (fin, opcode, payload) each.
    fn server_frames(mut b: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut v = Vec::new();
        while !b.is_empty() {
            assert_eq!(b[1] & 0x80, 0, "server frames are unmasked");
            let (len, off) = match b[1] & 0x7f {
                126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            v.push((b[0] & 0x80 != 0, b[0] & 0x0f, b[off..off + len].to_vec()));
            b = &b[off + len..];
        }
        v
    }

    fn run(reader: &mut WsReader, bytes: &[u8]) -> (Vec<WsInput>, Vec<u8>) {
        let (mut inputs, mut reply) = (Vec::new(), Vec::new());
        reader.feed(bytes, &mut reply, |i, _| inputs.push(i));
        (inputs, reply)
    }

    fn close_status(reply: &[u8]) -> u16 {
        let frames = server_frames(reply);
        let (_, op, p) = frames.last().expect("a close frame");
        assert_eq!(*op, 0x8);
        u16::from_be_bytes([p[0], p[1]])
    }

    #[test]
    fn text_frames_use_the_shortest_length_form() {
        for (len, header) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let payload = "x".repeat(len);
            let mut out = Vec::new();
            encode_text(&payload, &mut out);
            assert_eq!(out.len(), header + len, "len {len}");
            assert_eq!(out[0], 0x81);
            let f = server_frames(&out);
            assert_eq!(f, vec![(true, 1, payload.into_bytes())]);
        }
        let mut out = Vec::new();
        encode_text("hi", &mut out);
        assert_eq!(out, b"\x81\x02hi");
    }

    #[test]
    fn a_batch_is_frames_back_to_back() {
        let mut out = Vec::new();
        encode_text("{\"a\":1}", &mut out);
        encode_text("é", &mut out);
        let f = server_frames(&out);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].2, "é".as_bytes());
    }

    #[test]
    fn close_and_pong_frames() {
        let mut out = Vec::new();
        encode_close(1008, "kicked", &mut out);
        assert_eq!(out, b"\x88\x08\x03\xf0kicked");
        let mut out = Vec::new();
        encode_close(1000, &"é".repeat(100), &mut out);
        assert!(out.len() - 2 <= 125);
        let p = &server_frames(&out)[0].2;
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        let mut out = Vec::new();
        encode_pong(b"abc", &mut out);
        assert_eq!(out, b"\x8a\x03abc");
    }

    #[test]
    fn the_encoder_output_reads_back_through_a_client_context() {
        let mut out = Vec::new();
        encode_text("hello", &mut out);
        encode_close(1001, "bye", &mut out);
        let mut ctx = WebSocketContext::new(Role::Client, None);
        let mut sink = Vec::new();
        let mut io = Io {
            input: &out,
            output: &mut sink,
        };
        assert_eq!(ctx.read(&mut io).unwrap(), Message::text("hello"));
        match ctx.read(&mut io).unwrap() {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1001),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn text_in_one_frame_and_byte_by_byte() {
        let mut r = WsReader::new(1000);
        let (inputs, reply) = run(&mut r, &text(true, b"hello"));
        assert_eq!(inputs, vec![WsInput::Text("hello".into())]);
        assert!(reply.is_empty());
        let mut r = WsReader::new(1000);
        let bytes = [text(true, "héllo".as_bytes()), text(true, b"two")].concat();
        let mut inputs = Vec::new();
        let mut reply = Vec::new();
        for b in &bytes {
            r.feed(std::slice::from_ref(b), &mut reply, |i, _| inputs.push(i));
        }
        assert_eq!(
            inputs,
            vec![WsInput::Text("héllo".into()), WsInput::Text("two".into())]
        );
    }

    #[test]
    fn read_ahead_bytes_count() {
        let mut r = WsReader::with_read_ahead(text(true, b"early"), 1000);
        let (inputs, _) = run(&mut r, &text(true, b"late"));
        assert_eq!(
            inputs,
            vec![WsInput::Text("early".into()), WsInput::Text("late".into())]
        );
    }

    #[test]
    fn fragments_are_reassembled() {
        let mut r = WsReader::new(1000);
        let bytes = [text(false, b"he"), cont(false, b""), cont(true, b"llo")].concat();
        let (inputs, _) = run(&mut r, &bytes);
        assert_eq!(inputs, vec![WsInput::Text("hello".into())]);
    }

    #[test]
    fn a_ping_inside_a_fragmented_message_is_answered_at_once() {
        let mut r = WsReader::new(1000);
        let (inputs, reply) = run(
            &mut r,
            &[text(false, b"he"), client_frame(true, 0x9, b"p1", true)].concat(),
        );
        assert!(inputs.is_empty());
        assert_eq!(server_frames(&reply), vec![(true, 0xA, b"p1".to_vec())]);
        let (inputs, reply) = run(&mut r, &cont(true, b"llo"));
        assert_eq!(inputs, vec![WsInput::Text("hello".into())]);
        assert!(reply.is_empty());
    }

    #[test]
    fn answers_keep_the_protocol_order() {
        // An echo appended by the caller lands after the pong of a ping that
        // came in the middle of the message, and before a later close.
        let mut r = WsReader::new(1000);
        let bytes = [
            text(false, b"he"),
            client_frame(true, 0x9, b"p", true),
            cont(true, b"llo"),
            client_frame(true, 0x8, b"\x03\xe8", true),
        ]
        .concat();
        let mut out = Vec::new();
        r.feed(&bytes, &mut out, |i, out| {
            if let WsInput::Text(t) = i {
                encode_text(&t, out);
            }
        });
        let ops: Vec<u8> = server_frames(&out).iter().map(|f| f.1).collect();
        assert_eq!(ops, vec![0xA, 0x1, 0x8]);
    }

    #[test]
    fn utf8_split_across_fragments_is_fine_and_invalid_is_1007() {
        let e = "é".as_bytes();
        let mut r = WsReader::new(1000);
        let (inputs, _) = run(
            &mut r,
            &[text(false, &e[..1]), cont(true, &e[1..])].concat(),
        );
        assert_eq!(inputs, vec![WsInput::Text("é".into())]);

        // A lead byte in one fragment, an invalid continuation in the next.
        let mut r = WsReader::new(1000);
        let (inputs, reply) = run(&mut r, &[text(false, b"a\xc3"), cont(true, b"(")].concat());
        assert!(matches!(inputs[..], [WsInput::Failed { code: 1007, .. }]));
        assert_eq!(close_status(&reply), 1007);
        // Nothing after a failure.
        let (inputs, reply) = run(&mut r, &text(true, b"x"));
        assert!(inputs.is_empty() && reply.is_empty());

        // Invalid in a single frame, and a message ending mid-character.
        for bad in [&b"\xff"[..], b"ok\xe2\x82"] {
            let mut r = WsReader::new(1000);
            let (inputs, reply) = run(&mut r, &text(true, bad));
            assert!(matches!(inputs[..], [WsInput::Failed { code: 1007, .. }]));
            assert_eq!(close_status(&reply), 1007);
        }
    }

    #[test]
    fn a_10_mib_frame_is_1009_from_its_header_alone() {
        let mut r = WsReader::new(4096);
        // Only the header of a 10 MiB masked text frame, no payload.
        let mut head = vec![0x81, 0x80 | 127];
        head.extend_from_slice(&(10u64 << 20).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        let (inputs, reply) = run(&mut r, &head);
        assert!(matches!(inputs[..], [WsInput::Failed { code: 1009, .. }]));
        assert_eq!(close_status(&reply), 1009);
    }

    #[test]
    fn fragments_adding_up_over_the_limit_are_1009() {
        let mut r = WsReader::new(100);
        let chunk = [b'a'; 60];
        let (inputs, reply) = run(&mut r, &[text(false, &chunk), cont(true, &chunk)].concat());
        assert!(matches!(inputs[..], [WsInput::Failed { code: 1009, .. }]));
        assert_eq!(close_status(&reply), 1009);
    }

    #[test]
    fn binary_is_1003() {
        let mut r = WsReader::new(1000);
        let (inputs, reply) = run(&mut r, &client_frame(true, 0x2, b"\x00\x01", true));
        assert!(matches!(inputs[..], [WsInput::Failed { code: 1003, .. }]));
        assert_eq!(close_status(&reply), 1003);
    }

    #[test]
    fn binary_passes_when_accepted() {
        let mut r = WsReader::new(1000).accept_binary(true);
        let (inputs, reply) = run(&mut r, &client_frame(true, 0x2, b"\x00\x01", true));
        assert_eq!(inputs, vec![WsInput::Binary(vec![0, 1])]);
        assert!(reply.is_empty());
        let mut out = Vec::new();
        encode_binary(&[0, 1], &mut out);
        assert_eq!(out, b"\x82\x02\x00\x01");
    }

    #[test]
    fn protocol_errors_are_1002() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("unmasked", client_frame(true, 0x1, b"hi", false)),
            ("rsv1 set", {
                let mut f = text(true, b"hi");
                f[0] |= 0x40;
                f
            }),
            ("reserved data opcode", client_frame(true, 0x3, b"", true)),
            (
                "reserved control opcode",
                client_frame(true, 0xB, b"", true),
            ),
            ("fragmented ping", client_frame(false, 0x9, b"", true)),
            ("ping over 125", client_frame(true, 0x9, &[0; 126], true)),
            ("continuation first", cont(true, b"x")),
            (
                "text inside a fragmented text",
                [text(false, b"a"), text(true, b"b")].concat(),
            ),
            (
                "close with a 1-byte body",
                client_frame(true, 0x8, b"\x03", true),
            ),
        ];
        for (what, bytes) in cases {
            let mut r = WsReader::new(1000);
            let (inputs, reply) = run(&mut r, &bytes);
            assert!(
                matches!(inputs[..], [WsInput::Failed { code: 1002, .. }]),
                "{what}: {inputs:?}"
            );
            assert_eq!(close_status(&reply), 1002, "{what}");
        }
    }

    #[test]
    fn the_peer_closes_and_gets_its_close_back() {
        let mut r = WsReader::new(1000);
        let (inputs, reply) = run(&mut r, &client_frame(true, 0x8, b"\x03\xe8bye", true));
        assert_eq!(
            inputs,
            vec![WsInput::Closed {
                code: Some(1000),
                reason: "bye".into()
            }]
        );
        assert_eq!(close_status(&reply), 1000);
        assert!(r.is_done());
        // An empty close is answered with an empty close.
        let mut r = WsReader::new(1000);
        let (inputs, reply) = run(&mut r, &client_frame(true, 0x8, b"", true));
        assert_eq!(
            inputs,
            vec![WsInput::Closed {
                code: None,
                reason: String::new()
            }]
        );
        assert_eq!(server_frames(&reply), vec![(true, 0x8, vec![])]);
        // A close code that may not be sent on the wire (1005) gets 1002.
        let mut r = WsReader::new(1000);
        let (_, reply) = run(&mut r, &client_frame(true, 0x8, b"\x03\xed", true));
        assert_eq!(close_status(&reply), 1002);
        // A close reason that is not UTF-8 gets 1007.
        let mut r = WsReader::new(1000);
        let (_, reply) = run(&mut r, &client_frame(true, 0x8, b"\x03\xe8\xff", true));
        assert_eq!(close_status(&reply), 1007);
    }

    #[test]
    fn a_server_close_is_acknowledged_silently() {
        let mut r = WsReader::new(1000);
        let mut out = Vec::new();
        r.close(1008, "kicked by op", &mut out);
        assert_eq!(close_status(&out), 1008);
        // Messages in flight after our close are dropped; the peer's close ends it.
        let bytes = [
            text(true, b"late"),
            client_frame(true, 0x8, b"\x03\xf0", true),
        ]
        .concat();
        let (inputs, reply) = run(&mut r, &bytes);
        assert!(reply.is_empty(), "no second close");
        assert!(matches!(inputs.last(), Some(WsInput::Closed { .. })));
    }

    #[test]
    fn pongs_are_reported() {
        let mut r = WsReader::new(1000);
        let (inputs, reply) = run(&mut r, &client_frame(true, 0xA, b"", true));
        assert_eq!(inputs, vec![WsInput::Pong]);
        assert!(reply.is_empty());
    }

    #[test]
    fn a_large_message_does_not_leave_a_large_buffer() {
        let mut r = WsReader::new(1 << 20);
        let big = vec![b'a'; 200_000];
        let bytes = [text(false, &big), cont(true, b"z"), text(true, b"after")].concat();
        // In uneven pieces, so headers and payloads split anywhere.
        let mut inputs = Vec::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(7_001) {
            r.feed(piece, &mut out, |i, _| inputs.push(i));
        }
        assert_eq!(inputs.len(), 2);
        assert!(matches!(&inputs[0], WsInput::Text(t) if t.len() == 200_001));
        assert_eq!(inputs[1], WsInput::Text("after".into()));
        assert!(!r.scan.grown, "the context was renewed");
        // Still works after the renewal, including fragments and pings.
        let (inputs, reply) = run(
            &mut r,
            &[
                text(false, b"a"),
                client_frame(true, 0x9, b"", true),
                cont(true, b"b"),
            ]
            .concat(),
        );
        assert_eq!(inputs, vec![WsInput::Text("ab".into())]);
        assert_eq!(server_frames(&reply), vec![(true, 0xA, vec![])]);
    }

    #[test]
    fn the_scan_follows_frame_boundaries() {
        let mut s = Scan::default();
        let f = text(true, &[0; 2000]);
        s.push(&f[..3]);
        assert!(!s.at_rest());
        s.push(&f[3..]);
        assert!(s.at_rest() && s.grown);
        let mut s = Scan::default();
        let mut head = vec![0x81, 0x80 | 127];
        head.extend_from_slice(&(1u64 << 40).to_be_bytes());
        head.extend_from_slice(&[0; 4]);
        s.push(&head);
        assert_eq!(s.left, 1 << 40);
        let mut s = Scan::default();
        s.push(&[text(false, b"x"), client_frame(true, 0x9, b"", true)].concat());
        assert!(!s.at_rest(), "inside a fragmented message");
        s.push(&cont(true, b"y"));
        assert!(s.at_rest());
    }

    #[test]
    fn an_idle_reader_is_small() {
        // The context itself plus its initial read buffer.
        assert!(std::mem::size_of::<WsReader>() + READ_BUFFER <= 2048);
    }
}
