use proptest::prelude::*;

use super::*;

/// What a whole response parse came to, independent of how the input was split.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Interim(u16),
    Final(u16, Framing, Vec<String>),
    Body(Vec<u8>),
    Trailers(Vec<(String, Vec<u8>)>),
    End(bool),
    Error(ParseError),
}

/// Feeds `input` in pieces cut at `cuts`, like a caller with a read buffer would,
/// then signals EOF. Checks that the unconsumed bytes never exceed the limit.
fn run_split(input: &[u8], cuts: &[usize], head_request: bool, limits: Limits) -> Vec<Item> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut p = ResponseParser::new(head_request, limits);
    let mut items = Vec::new();
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let flush = |items: &mut Vec<Item>, body: &mut Vec<u8>| {
        if !body.is_empty() {
            items.push(Item::Body(std::mem::take(body)));
        }
    };
    for cut in cuts {
        pending.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match p.parse(&pending) {
                Err(e) => {
                    flush(&mut items, &mut body);
                    items.push(Item::Error(e));
                    return items;
                }
                Ok((n, ev)) => {
                    let ev = ev.map(|e| match e {
                        Event::Data(d) => Err(d.to_vec()),
                        Event::Interim(h) => Ok(Item::Interim(h.status)),
                        Event::Final(r) => {
                            Ok(Item::Final(r.head.status, r.framing, r.transfer_codings))
                        }
                        Event::Trailers(t) => Ok(Item::Trailers(
                            t.into_iter().map(|h| (h.name, h.value)).collect(),
                        )),
                        Event::End { reusable } => Ok(Item::End(reusable)),
                    });
                    pending.drain(..n);
                    match ev {
                        None => {
                            assert!(
                                pending.len() <= limits.max_header_bytes,
                                "parser left {} bytes pending",
                                pending.len()
                            );
                            break;
                        }
                        Some(Err(d)) => body.extend_from_slice(&d),
                        Some(Ok(item)) => {
                            flush(&mut items, &mut body);
                            items.push(item);
                        }
                    }
                }
            }
        }
        if p.is_done() {
            return items;
        }
    }
    flush(&mut items, &mut body);
    match p.finish(true, &pending) {
        Ok(Some(Event::End { reusable })) => items.push(Item::End(reusable)),
        Ok(_) => {}
        Err(e) => items.push(Item::Error(e)),
    }
    items
}

fn run(input: &[u8]) -> Vec<Item> {
    run_split(input, &[], false, Limits::default())
}

fn body_of(items: &[Item]) -> Vec<u8> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Body(b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn error_of(items: &[Item]) -> Option<&ParseError> {
    items.iter().find_map(|i| match i {
        Item::Error(e) => Some(e),
        _ => None,
    })
}

fn malformed(items: &[Item]) -> bool {
    matches!(error_of(items), Some(ParseError::Malformed { .. }))
}

#[test]
fn content_length_body_and_reuse() {
    let items = run(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(
        items,
        vec![
            Item::Final(200, Framing::Length(5), vec![]),
            Item::Body(b"hello".to_vec()),
            Item::End(true)
        ]
    );
    // HTTP/1.0 closes unless asked to keep alive.
    let items = run(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(items.last(), Some(&Item::End(false)));
    let items = run(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(items.last(), Some(&Item::End(true)));
    let items = run(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(items.last(), Some(&Item::End(false)));
}

#[test]
fn no_body_statuses_and_head() {
    for status in ["204 No Content", "304 Not Modified"] {
        let text = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\nhello");
        let items = run(text.as_bytes());
        assert_eq!(body_of(&items), b"");
        // A stray length on a bodiless status: do not reuse the connection.
        assert_eq!(items.last(), Some(&Item::End(false)));
    }
    let items = run(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(items.last(), Some(&Item::End(true)));
    let items = run_split(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        &[],
        true,
        Limits::default(),
    );
    assert_eq!(
        items,
        vec![Item::Final(200, Framing::Empty, vec![]), Item::End(true)]
    );
}

#[test]
fn interim_responses_are_skipped() {
    let items = run(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(
        items,
        vec![
            Item::Interim(100),
            Item::Interim(103),
            Item::Final(200, Framing::Length(2), vec![]),
            Item::Body(b"ok".to_vec()),
            Item::End(true)
        ]
    );
    let mut many = Vec::new();
    for _ in 0..100 {
        many.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    assert!(matches!(
        error_of(&run(&many)),
        Some(ParseError::TooManyInterim { .. })
    ));
    // 101 is final: the connection is no longer HTTP.
    let items = run(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nrest");
    assert_eq!(items[0], Item::Final(101, Framing::Empty, vec![]));
    assert_eq!(items[1], Item::End(false));
}

#[test]
fn chunked() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-Sum: 42\r\n\r\n";
    let items = run(input);
    assert_eq!(
        items,
        vec![
            Item::Final(200, Framing::Chunked, vec![]),
            Item::Body(b"hello0123456789".to_vec()),
            Item::Trailers(vec![("X-Sum".into(), b"42".to_vec())]),
            Item::End(true)
        ]
    );
    // Leading zeros are fine; the value is what counts.
    let items = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000000001\r\nx\r\n0\r\n\r\n");
    assert_eq!(body_of(&items), b"x");
    assert_eq!(items.last(), Some(&Item::End(true)));
}

#[test]
fn chunked_errors() {
    let pre = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (rest, what) in [
        ("10000000000000000\r\n", "overflow"),
        ("fffffffffffffffff\r\n", "overflow"),
        ("\r\n", "no size"),
        ("-1\r\n", "sign"),
        ("0x5\r\n", "0x prefix"),
        ("5 x\r\nhello\r\n", "junk after size"),
        ("5\r\nhelloXX0\r\n\r\n", "no CRLF after data"),
        ("5\r\nhello\rX", "CR without LF after data"),
        ("1;a\x01b\r\nx\r\n0\r\n\r\n", "control char in extension"),
    ] {
        let items = run(format!("{pre}{rest}").as_bytes());
        assert!(malformed(&items), "{what}: {items:?}");
    }
    // Missing last chunk: truncated, not success.
    let items = run(format!("{pre}5\r\nhello\r\n").as_bytes());
    assert!(
        matches!(error_of(&items), Some(ParseError::Truncated { .. })),
        "{items:?}"
    );
    let items = run(format!("{pre}5\r\nhel").as_bytes());
    assert!(matches!(
        error_of(&items),
        Some(ParseError::Truncated { .. })
    ));
    let items = run(format!("{pre}0\r\nX-A: 1\r\n").as_bytes());
    assert!(matches!(
        error_of(&items),
        Some(ParseError::Truncated { .. })
    ));
}

#[test]
fn transfer_encoding_rules() {
    // chunked last wins over Content-Length; the connection is not reused.
    let items = run(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_eq!(items[0], Item::Final(200, Framing::Chunked, vec![]));
    assert_eq!(body_of(&items), b"ok");
    assert_eq!(items.last(), Some(&Item::End(false)));
    // Codings before chunked are reported for decoding; split over two fields.
    let items = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: , Chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(
        items[0],
        Item::Final(200, Framing::Chunked, vec!["gzip".into()])
    );
    // chunked not last: read until close.
    let items =
        run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef");
    assert_eq!(
        items[0],
        Item::Final(200, Framing::UntilClose, vec!["gzip".into()])
    );
    assert_eq!(body_of(&items), b"abcdef");
    assert_eq!(items.last(), Some(&Item::End(false)));
    for bad in [
        "Transfer-Encoding: chunked, gzip",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: ,",
        "Transfer-Encoding:",
        "Transfer-Encoding: gz ip",
    ] {
        let text = format!("HTTP/1.1 200 OK\r\n{bad}\r\n\r\n0\r\n\r\n");
        assert!(malformed(&run(text.as_bytes())), "{bad}");
    }
    // HTTP/1.0 with Transfer-Encoding: the framing cannot be trusted.
    assert!(malformed(&run(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )));
}

#[test]
fn content_length_rules() {
    let items = run(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(items[0], Item::Final(200, Framing::Length(3), vec![]));
    assert_eq!(items.last(), Some(&Item::End(true)));
    for bad in [
        "Content-Length: 5, 6",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: +5",
        "Content-Length: -1",
        "Content-Length: 0x5",
        "Content-Length: 5 5",
        "Content-Length: 5,",
        "Content-Length:",
        "Content-Length: 1.0",
        "Content-Length: 99999999999999999999999",
    ] {
        let text = format!("HTTP/1.1 200 OK\r\n{bad}\r\n\r\nhello");
        let items = run(text.as_bytes());
        assert!(malformed(&items), "{bad}: {items:?}");
    }
    // Cut short: a distinct error, never success.
    let items = run(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(body_of(&items), b"abc");
    assert_eq!(
        error_of(&items),
        Some(&ParseError::Truncated {
            what: "after 3 of 10 body bytes".into()
        })
    );
}

#[test]
fn close_delimited() {
    let items = run(b"HTTP/1.1 200 OK\r\n\r\nall of it");
    assert_eq!(items[0], Item::Final(200, Framing::UntilClose, vec![]));
    assert_eq!(body_of(&items), b"all of it");
    assert_eq!(items.last(), Some(&Item::End(false)));
    // Over TLS without close_notify the end is not trustworthy.
    let mut p = ResponseParser::new(false, Limits::default());
    let input = b"HTTP/1.1 200 OK\r\n\r\nabc";
    let (n, _) = p.parse(input).unwrap();
    let (m, _) = p.parse(&input[n..]).unwrap();
    assert_eq!(n + m, input.len());
    assert!(matches!(
        p.finish(false, &[]),
        Err(ParseError::Truncated { .. })
    ));
}

#[test]
fn lenient_forms() {
    // Bare LF, no reason phrase, obs-fold, HTTP/1.2 read as 1.1.
    let items = run(b"HTTP/1.1 200\nX-Folded: a\n  b\nContent-Length: 2\n\nok");
    assert_eq!(items[0], Item::Final(200, Framing::Length(2), vec![]));
    assert_eq!(body_of(&items), b"ok");
    let mut p = ResponseParser::new(false, Limits::default());
    let Ok((_, Some(Event::Final(r)))) = p.parse(b"HTTP/1.1 404 \r\nA: x\r\n\tyz \r\n\r\n") else {
        panic!("no head");
    };
    assert_eq!(r.head.reason, b"");
    assert_eq!(r.head.get("a"), Some(&b"x yz"[..]));
    let items = run(b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(items.last(), Some(&Item::End(true)));
}

#[test]
fn rejected_heads() {
    for bad in [
        &b"HTTP/2 200 OK\r\n\r\n"[..],
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/1.1 200 O\x00K\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\n Leading: fold\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n",
        b"HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ] {
        let items = run(bad);
        assert!(
            malformed(&items),
            "{:?}: {items:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn error_positions() {
    let items = run(b"HTTP/1.1 200 OK\r\nGood: 1\r\nBad Name: 2\r\n\r\n");
    assert_eq!(
        error_of(&items),
        Some(&ParseError::Malformed {
            what: "invalid character in a header name".into(),
            at: 29
        })
    );
    let items = run(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n");
    assert!(error_of(&items)
        .unwrap()
        .to_string()
        .contains("conflicting Content-Length values 1 and 2"));
}

#[test]
fn limits() {
    let limits = Limits {
        max_header_bytes: 100,
        max_headers: 3,
        max_interim: 2,
    };
    let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(200));
    let items = run_split(big.as_bytes(), &[10, 50, 120], false, limits);
    assert_eq!(
        error_of(&items),
        Some(&ParseError::HeadTooLarge { limit: 100 })
    );
    // A head of exactly the limit is accepted.
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
    let fill = 100 - head.len() - "X: \r\n\r\n".len();
    let exact = format!("{head}X: {}\r\n\r\n", "a".repeat(fill));
    assert_eq!(exact.len(), 100);
    assert_eq!(
        run_split(exact.as_bytes(), &[], false, limits).last(),
        Some(&Item::End(true))
    );
    let many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(
        error_of(&run_split(many.as_bytes(), &[], false, limits)),
        Some(&ParseError::TooManyHeaders { limit: 3 })
    );
    // A never-ending chunk-size line is cut off too.
    let line = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}",
        "x".repeat(300)
    );
    assert_eq!(
        error_of(&run_split(line.as_bytes(), &[], false, limits)),
        Some(&ParseError::HeadTooLarge { limit: 100 })
    );
}

#[test]
fn empty_and_truncated_head() {
    assert_eq!(run(b""), vec![Item::Error(ParseError::Empty)]);
    assert!(matches!(
        error_of(&run(b"HTTP/1.1 200 OK\r\nContent-")),
        Some(ParseError::Truncated { .. })
    ));
}

fn response_strategy() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..300);
    let chunks = proptest::collection::vec(1usize..40, 0..8);
    (body, chunks, 0u8..4, any::<bool>()).prop_map(|(body, chunks, framing, interim)| {
        let mut out = Vec::new();
        if interim {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        match framing {
            0 => {
                out.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                out.extend_from_slice(&body);
            }
            1 => {
                out.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                let mut rest = &body[..];
                for c in chunks {
                    let n = c.min(rest.len());
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(format!("{n:x};e=1\r\n").as_bytes());
                    out.extend_from_slice(&rest[..n]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                if !rest.is_empty() {
                    out.extend_from_slice(format!("{:X}\r\n", rest.len()).as_bytes());
                    out.extend_from_slice(rest);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\nT: v\r\n\r\n");
            }
            2 => {
                out.extend_from_slice(b"HTTP/1.0 200 OK\n\n");
                out.extend_from_slice(&body);
            }
            _ => out.extend_from_slice(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// However a valid response is split across reads, the result is the same,
    /// and the body comes out intact.
    #[test]
    fn split_invariant_valid(input in response_strategy(), cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let whole = run(&input);
        let split = run_split(&input, &cuts, false, Limits::default());
        prop_assert_eq!(&whole, &split);
        prop_assert!(error_of(&whole).is_none(), "{:?}", whole);
        let bytewise: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&whole, &run_split(&input, &bytewise, false, Limits::default()));
    }

    /// Arbitrary bytes: no panic, bounded pending data, and the same result
    /// however the bytes are split.
    #[test]
    fn split_invariant_arbitrary(input in proptest::collection::vec(any::<u8>(), 0..400), cuts in proptest::collection::vec(any::<usize>(), 0..12), head in any::<bool>()) {
        let limits = Limits { max_header_bytes: 128, max_headers: 8, max_interim: 4 };
        let whole = run_split(&input, &[], head, limits);
        prop_assert_eq!(&whole, &run_split(&input, &cuts, head, limits));
    }

    /// Mutated valid responses (one byte changed, inserted or removed): no panic,
    /// split-invariant.
    #[test]
    fn split_invariant_mutated(input in response_strategy(), at in any::<usize>(), byte in any::<u8>(), op in 0u8..3, cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let mut input = input;
        if !input.is_empty() {
            let i = at % input.len();
            match op {
                0 => input[i] = byte,
                1 => input.insert(i, byte),
                _ => { input.remove(i); }
            }
        }
        let whole = run(&input);
        prop_assert_eq!(&whole, &run_split(&input, &cuts, false, Limits::default()));
    }
}
