//! The control socket between the primary and its workers, a Unix socket in a directory only its
//! owner can enter: workers say who they are and which sessions they open and close; the primary
//! hands them connections, one file descriptor per message (`SCM_RIGHTS`).

use std::{
    io::{self, IoSlice, IoSliceMut},
    mem::MaybeUninit,
    os::fd::{BorrowedFd, OwnedFd},
};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, Interest},
    net::UnixStream,
};

/// The worker's index (0-based) in the primary's list of workers.
pub(crate) const ENV_WORKER: &str = "SWITCHBOARD_STICKY_WORKER";
/// The control socket's path.
pub(crate) const ENV_SOCKET: &str = "SWITCHBOARD_STICKY_SOCKET";
/// A secret the worker shows in its HELLO.
pub(crate) const ENV_TOKEN: &str = "SWITCHBOARD_STICKY_TOKEN";
/// The primary's listening address, for the worker's `local_addr`.
pub(crate) const ENV_ADDR: &str = "SWITCHBOARD_STICKY_ADDR";

/// A message from a worker: a kind byte, a length byte, the body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Up {
    /// First: `index:token`.
    Hello {
        /// Which worker.
        index: usize,
        /// The primary's secret.
        token: String,
    },
    /// The worker opened this session.
    Open(String),
    /// The session closed.
    Close(String),
}

impl Up {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, body) = match self {
            Up::Hello { index, token } => (0u8, format!("{index}:{token}")),
            Up::Open(sid) => (1, sid.clone()),
            Up::Close(sid) => (2, sid.clone()),
        };
        let body = &body.as_bytes()[..body.len().min(255)];
        let mut out = Vec::with_capacity(2 + body.len());
        out.push(kind);
        out.push(u8::try_from(body.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(body);
        out
    }

    /// Reads one message; `Ok(None)` at the end of the stream, `InvalidData` for garbage.
    pub(crate) async fn read<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Up>> {
        let mut head = [0u8; 2];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut body = vec![0u8; usize::from(head[1])];
        r.read_exact(&mut body).await?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a sticky control message");
        let body = String::from_utf8(body).map_err(|_| bad())?;
        Ok(Some(match head[0] {
            0 => {
                let (index, token) = body.split_once(':').ok_or_else(bad)?;
                Up::Hello {
                    index: index.parse().map_err(|_| bad())?,
                    token: token.to_owned(),
                }
            }
            1 => Up::Open(body),
            2 => Up::Close(body),
            _ => return Err(bad()),
        }))
    }
}

/// Hands a connection to the worker at the other end: one byte carrying the descriptor.
pub(crate) async fn send_fd(stream: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let fds = [fd];
            let mut cmsg = SendAncillaryBuffer::new(&mut space);
            cmsg.push(SendAncillaryMessage::ScmRights(&fds));
            rustix::net::sendmsg(
                stream,
                &[IoSlice::new(b"c")],
                &mut cmsg,
                SendFlags::NOSIGNAL,
            )
            .map_err(io::Error::from)
        });
        match sent {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receives the next connection; `Ok(None)` when the primary has gone.
pub(crate) async fn recv_fd(stream: &UnixStream) -> io::Result<Option<OwnedFd>> {
    loop {
        stream.readable().await?;
        let got = stream.try_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut cmsg = RecvAncillaryBuffer::new(&mut space);
            let mut byte = [0u8; 1];
            let msg = rustix::net::recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut byte)],
                &mut cmsg,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            let fd = cmsg.drain().find_map(|m| match m {
                RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                _ => None,
            });
            Ok((msg.bytes, fd))
        });
        match got {
            Ok((0, _)) => return Ok(None),
            Ok((_, Some(fd))) => return Ok(Some(fd)),
            // a byte without a descriptor: nothing to serve
            Ok((_, None)) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_and_garbage_is_refused() {
        let ups = [
            Up::Hello {
                index: 3,
                token: "abc".into(),
            },
            Up::Open("AbCdEfGhIjKlMnOp".into()),
            Up::Close("AbCdEfGhIjKlMnOp".into()),
        ];
        let wire: Vec<u8> = ups.iter().flat_map(Up::encode).collect();
        let mut r = wire.as_slice();
        for up in ups {
            assert_eq!(Up::read(&mut r).await.ok().flatten(), Some(up));
        }
        assert!(matches!(Up::read(&mut r).await, Ok(None)));
        for garbage in [&b"\x07\x01a"[..], b"\x00\x03abc", b"\x01\x02\xff\xfe"] {
            let mut r = garbage;
            assert!(Up::read(&mut r).await.is_err(), "{garbage:?}");
        }
    }

    #[tokio::test]
    async fn descriptors_cross_the_socket() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let _client = std::net::TcpStream::connect(addr)?;
        let (conn, peer) = listener.accept()?;
        for _ in 0..3 {
            send_fd(&a, std::os::fd::AsFd::as_fd(&conn)).await?;
        }
        for _ in 0..3 {
            let fd = recv_fd(&b)
                .await?
                .ok_or_else(|| io::Error::other("no fd"))?;
            let got = std::net::TcpStream::from(fd);
            assert_eq!(got.peer_addr()?, peer);
        }
        drop(a);
        assert!(recv_fd(&b).await?.is_none());
        Ok(())
    }
}
