//! The relay socket's frames (protocol.md §11): a u32 big-endian length, then a kind byte and
//! its body. Cluster messages travel in the msgpack encoding of the cluster protocol, so binary
//! stays binary.

use bytes::{Buf, BufMut, Bytes, BytesMut};
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

/// How much a reader asks the socket for at a time: many small frames arrive in one read.
const READ_CHUNK: usize = 64 * 1024;

/// Reads frames from a connection through one buffer: one read brings in every frame the socket
/// holds, and each frame is handed out without a copy. Cancel safe: a frame half read stays in
/// the buffer for the next call.
pub(crate) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The next frame of at most `max` bytes (kind included), whole: length prefix, kind byte
    /// and body. `Ok(None)` at a clean end of stream (between frames).
    pub(crate) async fn next_frame(
        &mut self,
        max: usize,
    ) -> Result<Option<(Kind, BytesMut)>, FrameError> {
        loop {
            if let Some(prefix) = self.buf.first_chunk::<4>() {
                let len = u32::from_be_bytes(*prefix) as usize;
                if len > max {
                    return Err(FrameError::TooLarge { size: len, max });
                }
                if len == 0 {
                    return Err(FrameError::BadKind(None));
                }
                if let Some(&k) = self.buf.get(4) {
                    let kind = Kind::from_u8(k).ok_or(FrameError::BadKind(Some(k)))?;
                    if self.buf.len() >= 4 + len {
                        return Ok(Some((kind, self.buf.split_to(4 + len))));
                    }
                }
                // room for the rest of this frame (bounded by `max`)
                self.buf.reserve(4 + len - self.buf.len());
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 16 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// The next frame's kind and body (see [`next_frame`](Self::next_frame)).
    pub(crate) async fn next(&mut self, max: usize) -> Result<Option<(Kind, Bytes)>, FrameError> {
        Ok(self.next_frame(max).await?.map(|(kind, mut frame)| {
            frame.advance(5);
            (kind, frame.freeze())
        }))
    }
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

/// A whole `PUBLISH_TO` frame turned, in place, into the `MESSAGE` frame its target receives;
/// with the target's uid.
pub(crate) fn publish_to_message(mut frame: BytesMut) -> Option<(String, Bytes)> {
    let n = usize::from(*frame.get(5)?);
    let uid = std::str::from_utf8(frame.get(6..6 + n)?).ok()?.to_owned();
    // the message stays where it is; its new header takes the 5 bytes before it
    frame.advance(1 + n);
    let len = u32::try_from(frame.len() - 4).ok()?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame[4] = Kind::Message as u8;
    Some((uid, frame.freeze()))
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
        let mut r = FrameReader::new(wire.as_slice());
        let (k, b) = r.next(64).await.ok().flatten().unwrap_or_else(|| panic!());
        assert_eq!((k, parse_hello(&b)), (Kind::Hello, Some("abc".into())));
        let (k, f) = r
            .next_frame(64)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!());
        assert_eq!(k, Kind::PublishTo);
        let (uid, msg) = publish_to_message(f).unwrap_or_else(|| panic!());
        assert_eq!(uid, "xyz");
        assert_eq!(msg, encode(Kind::Message, &[b"\x81\xa1a\x01"]));
        assert!(matches!(
            r.next(5).await,
            Err(FrameError::TooLarge { size: 11, max: 5 })
        ));
        let mut empty = FrameReader::new(&b""[..]);
        assert!(matches!(empty.next(5).await, Ok(None)));
        let mut cut = FrameReader::new(&b"\0\0\0\x03\x05a"[..]);
        assert!(matches!(cut.next(5).await, Err(FrameError::Io(_))));
        let mut bad = FrameReader::new(&[0, 0, 0, 1, 9][..]);
        assert!(matches!(
            bad.next(5).await,
            Err(FrameError::BadKind(Some(9)))
        ));
        let mut zero = FrameReader::new(&[0, 0, 0, 0][..]);
        assert!(matches!(zero.next(5).await, Err(FrameError::BadKind(None))));
        assert_eq!(parse_hello(b"other/1\0uid"), None);
        assert_eq!(parse_hello(b"switchboard-cluster/1\0"), None);
    }

    #[tokio::test]
    async fn frames_split_across_reads_are_whole() {
        let mut wire = Vec::new();
        for i in 0..200u32 {
            wire.extend_from_slice(&encode(Kind::Message, &[&i.to_be_bytes(), &[7; 300]]));
        }
        // one byte per read: every frame straddles reads
        let (mut tx, rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move { tx.write_all(&wire).await });
        let mut r = FrameReader::new(rx);
        for i in 0..200u32 {
            let (k, body) = r
                .next(1024)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!());
            assert_eq!(k, Kind::Message);
            assert_eq!(body.len(), 304);
            assert_eq!(body[..4], i.to_be_bytes());
        }
        assert!(matches!(writer.await, Ok(Ok(()))));
        assert!(matches!(r.next(1024).await, Ok(None)));
    }
}
