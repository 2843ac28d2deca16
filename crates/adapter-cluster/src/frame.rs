//! The relay socket's frames (protocol.md §11): a u32 big-endian length, then a kind byte and
//! its body. Cluster messages travel in the msgpack encoding of the cluster protocol, so binary
//! stays binary.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter},
    sync::mpsc,
};

/// What a worker says first: the protocol name and version, then its uid.
pub(crate) const MAGIC: &[u8] = b"switchboard-cluster/1";

/// The largest HELLO a relay reads: a few dozen bytes in practice.
pub(crate) const MAX_HELLO: usize = 1024;

/// The kinds of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// worker → relay, first: `MAGIC 0x00 uid`.
    Hello = 0,
    /// worker → relay: the worker has namespace `nsp` (body: the name).
    Attach = 1,
    /// worker → relay: it no longer has it.
    Detach = 2,
    /// worker → relay: a message for every other worker (body: msgpack message).
    Publish = 3,
    /// worker → relay: a message for one worker (body: uid length u8, uid, msgpack message).
    PublishTo = 4,
    /// relay → worker: a message (body: msgpack message).
    Message = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Kind::Hello,
            1 => Kind::Attach,
            2 => Kind::Detach,
            3 => Kind::Publish,
            4 => Kind::PublishTo,
            5 => Kind::Message,
            _ => return None,
        })
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix announced more than the limit.
    #[error("a frame of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An empty frame or an unknown kind.
    #[error("not a cluster relay frame (kind {0:?})")]
    BadKind(Option<u8>),
}

/// A frame: `len | kind | body`.
pub(crate) fn encode(kind: Kind, parts: &[&[u8]]) -> Bytes {
    let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    buf.put_u8(kind as u8);
    for p in parts {
        buf.put_slice(p);
    }
    buf.freeze()
}

/// Reads one frame of at most `max` bytes (kind included); `Ok(None)` at a clean end of stream.
pub(crate) async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<(Kind, Bytes)>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { size: len, max });
    }
    if len == 0 {
        return Err(FrameError::BadKind(None));
    }
    let mut buf = BytesMut::zeroed(len);
    r.read_exact(&mut buf).await?;
    let kind = Kind::from_u8(buf[0]).ok_or(FrameError::BadKind(Some(buf[0])))?;
    let mut body = buf.freeze();
    let _ = body.split_to(1);
    Ok(Some((kind, body)))
}

/// `HELLO`'s body: `MAGIC 0x00 uid`.
pub(crate) fn hello(uid: &str) -> Bytes {
    encode(Kind::Hello, &[MAGIC, &[0], uid.as_bytes()])
}

/// The uid of a HELLO body, if it is one.
pub(crate) fn parse_hello(body: &[u8]) -> Option<String> {
    let rest = body.strip_prefix(MAGIC)?.strip_prefix(&[0])?;
    let uid = std::str::from_utf8(rest).ok()?;
    (!uid.is_empty() && uid.len() <= 255).then(|| uid.to_owned())
}

/// `PUBLISH_TO`'s body split into the target uid and the message.
pub(crate) fn parse_publish_to(body: &Bytes) -> Option<(String, Bytes)> {
    let n = usize::from(*body.first()?);
    let uid = std::str::from_utf8(body.get(1..1 + n)?).ok()?.to_owned();
    Some((uid, body.slice(1 + n..)))
}

/// Writes queued frames (relay and worker alike), flushing when the queue runs dry; returns when
/// the queue closes or the connection fails.
pub(crate) async fn write_all(wr: tokio::net::unix::OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(frame) = rx.recv().await {
        if wr.write_all(&frame).await.is_err() {
            return;
        }
        while let Ok(frame) = rx.try_recv() {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&hello("abc"));
        wire.extend_from_slice(&encode(Kind::PublishTo, &[&[3], b"xyz", b"\x81\xa1a\x01"]));
        wire.extend_from_slice(&encode(Kind::Message, &[b"0123456789"]));
        let mut r = wire.as_slice();
        let (k, b) = read(&mut r, 64)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!());
        assert_eq!((k, parse_hello(&b)), (Kind::Hello, Some("abc".into())));
        let (k, b) = read(&mut r, 64)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!());
        assert_eq!(k, Kind::PublishTo);
        let (uid, msg) = parse_publish_to(&b).unwrap_or_else(|| panic!());
        assert_eq!((uid.as_str(), msg.as_ref()), ("xyz", &b"\x81\xa1a\x01"[..]));
        assert!(matches!(
            read(&mut r, 5).await,
            Err(FrameError::TooLarge { size: 11, max: 5 })
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(read(&mut empty, 5).await, Ok(None)));
        let mut bad: &[u8] = &[0, 0, 0, 1, 9];
        assert!(matches!(
            read(&mut bad, 5).await,
            Err(FrameError::BadKind(Some(9)))
        ));
        let mut zero: &[u8] = &[0, 0, 0, 0];
        assert!(matches!(
            read(&mut zero, 5).await,
            Err(FrameError::BadKind(None))
        ));
        assert_eq!(parse_hello(b"other/1\0uid"), None);
        assert_eq!(parse_hello(b"switchboard-cluster/1\0"), None);
    }
}
