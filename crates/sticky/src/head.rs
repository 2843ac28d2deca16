//! The primary's look at a request head: where it ends, whether it is HTTP/1, and the `sid` of
//! its query string (the only place an Engine.IO client puts it).

/// What the primary needs from a complete request head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// An HTTP/1.x request; `sid` as the query string gives it (any shape: the caller checks).
    Http1 {
        /// `sid=` of the request target's query string.
        sid: Option<String>,
        /// The head's length, blank line included.
        len: usize,
    },
    /// The HTTP/2 connection preface (prior knowledge): refused, never routed.
    Http2,
}

/// Why a head cannot be routed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Not an HTTP/1 request head.
    Malformed,
    /// No end of head within the limit.
    TooLarge,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Parses what has arrived so far: `Ok(None)` while the head is incomplete.
pub(crate) fn parse(buf: &[u8], max: usize) -> Result<Option<Head>, HeadError> {
    if H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
        return Ok((buf.len() >= H2_PREFACE.len()).then_some(Head::Http2));
    }
    // the request line can be judged as soon as it is complete
    if let Some(eol) = find(buf, b"\r\n") {
        let line = request_line(&buf[..eol]).ok_or(HeadError::Malformed)?;
        let Some(end) = find(buf, b"\r\n\r\n") else {
            return if buf.len() >= max {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        };
        if end + 4 > max {
            return Err(HeadError::TooLarge);
        }
        return Ok(Some(Head::Http1 {
            sid: line,
            len: end + 4,
        }));
    }
    if buf.len() >= max {
        return Err(HeadError::TooLarge);
    }
    // a request line has no control bytes: garbage is refused before the limit
    if buf
        .iter()
        .any(|&b| b != b'\r' && b != b'\t' && (b < 0x20 || b == 0x7f))
    {
        return Err(HeadError::Malformed);
    }
    Ok(None)
}

/// `METHOD SP target SP HTTP/1.x`: the `sid` of the target, `None` when it is not such a line.
fn request_line(line: &[u8]) -> Option<Option<String>> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        || !(version == "HTTP/1.1" || version == "HTTP/1.0")
        || target.is_empty()
        || target.bytes().any(|b| b <= 0x20 || b == 0x7f)
    {
        return None;
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let query = query.split_once('#').map(|(q, _)| q).unwrap_or(query);
    Some(
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix("sid="))
            .map(str::to_owned),
    )
}

/// Whether `sid` has the shape of an Engine.IO session id: socketioxide's 16 characters or
/// Node's 20, from the base64url alphabet.
pub(crate) fn is_sid(sid: &str) -> bool {
    matches!(sid.len(), 16 | 20)
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<Head>, HeadError>;

    fn http1(sid: Option<&str>, len: usize) -> Parsed {
        Ok(Some(Head::Http1 {
            sid: sid.map(str::to_owned),
            len,
        }))
    }

    #[test]
    fn heads() {
        let get = b"GET /socket.io/?EIO=4&transport=polling&sid=AbCdEfGhIjKlMnOp HTTP/1.1\r\nHost: x\r\n\r\n";
        let cases: Vec<(&[u8], Parsed)> = vec![
            (get, http1(Some("AbCdEfGhIjKlMnOp"), get.len())),
            (&get[..40], Ok(None)),
            (&get[..get.len() - 1], Ok(None)),
            (b"GET / HTTP/1.1\r\n\r\nbody", http1(None, 18)),
            (
                b"POST /x?a=1&sid=abc#f HTTP/1.0\r\n\r\n",
                http1(Some("abc"), 34),
            ),
            (b"GET /x?mysid=abc HTTP/1.1\r\n\r\n", http1(None, 29)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Ok(Some(Head::Http2))),
            (b"PRI * HT", Ok(None)),
            (b"GET / HTTP/2\r\n\r\n", Err(HeadError::Malformed)),
            (b"GET  / HTTP/1.1\r\n\r\n", Err(HeadError::Malformed)),
            (b"\x16\x03\x01\x02\x00\x01", Err(HeadError::Malformed)),
            (b"hello world\r\n", Err(HeadError::Malformed)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(input, 1024),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits() {
        let mut long = b"GET / HTTP/1.1\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(parse(&long, 100), Err(HeadError::TooLarge));
        assert_eq!(parse(&long, 200), Ok(None));
        assert_eq!(parse(&[b'G'; 64], 64), Err(HeadError::TooLarge));
        let mut done = b"GET / HTTP/1.1\r\nA: b\r\n\r\n".to_vec();
        assert_eq!(parse(&done, 20), Err(HeadError::TooLarge));
        done.truncate(10);
        assert_eq!(parse(&done, 20), Ok(None));
    }

    #[test]
    fn sid_shapes() {
        assert!(is_sid("AbCdEfGhIjKlMnOp"));
        assert!(is_sid("Ab-d_fGhIjKlMnOpQrSt"));
        assert!(!is_sid("AbCdEfGhIjKlMnO"));
        assert!(!is_sid("AbCdEfGhIjKlMnO/"));
        assert!(!is_sid(""));
    }
}
