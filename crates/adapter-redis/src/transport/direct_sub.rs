//! The subscribing connection to a single redis (the transport's own, as the publishing one):
//! it reads pub/sub frames off the socket and hands each message, decoded, to its namespace's
//! engine in the same task: no ring between the socket and the decoder.
//!
//! Why: fred hands received messages to a broadcast ring bounded by count and allocated up
//! front in each of its nine channels (~0.5 KiB of memory per slot), and a reader that outpaces
//! the task emptying that ring overwrites messages: at 4,096 slots a four-server blast lost 498
//! even with the dispatcher on a thread of its own, because on two busy cores the kernel let it
//! wait that long. Reading only as fast as messages are handled needs no ring: what is not read
//! yet waits in the socket and in redis, bounded by redis's `client-output-buffer-limit pubsub`
//! (past it redis closes the connection; this side reconnects and resubscribes, and counts
//! nothing it never saw).

use std::{
    collections::{BTreeSet, VecDeque},
    sync::{Arc, Weak},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, oneshot},
};

use super::{
    Inner,
    direct::{Failure, Target, command, open},
};

/// The name of the subscribing connection in `CLIENT LIST`.
pub(super) const SUBSCRIBER: &[u8] = b"switchboard-subscribe";

/// What a subscription is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn verb(self, on: bool) -> &'static [u8] {
        match (self, on) {
            (Kind::Channel, true) => b"SUBSCRIBE",
            (Kind::Channel, false) => b"UNSUBSCRIBE",
            (Kind::Pattern, true) => b"PSUBSCRIBE",
            (Kind::Pattern, false) => b"PUNSUBSCRIBE",
            (Kind::Shard, true) => b"SSUBSCRIBE",
            (Kind::Shard, false) => b"SUNSUBSCRIBE",
        }
    }
}

/// A change of subscriptions asked by `attach` or `close`, answered once redis confirmed it.
pub(super) struct Change {
    pub(super) on: bool,
    pub(super) kind: Kind,
    pub(super) names: Vec<String>,
    pub(super) done: oneshot::Sender<Result<(), String>>,
}

/// One command's confirmations still expected (one per name), and who waits for them.
struct Pending {
    remaining: usize,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// A frame of the subscribed connection: an array of bulk strings and integers, or an error.
#[derive(Debug, PartialEq)]
enum Frame {
    Array { items: Vec<Bytes>, oversize: bool },
    Error(String),
    Other,
}

/// An incremental RESP2 reader of what a subscribed connection receives. A bulk string longer
/// than `max` is skipped as it arrives, never held.
#[derive(Default)]
struct Reader {
    expected: Option<usize>,
    items: Vec<Bytes>,
    oversize: bool,
    skip: usize,
}

/// Longest header line accepted (`*3`, `$65536`...).
const MAX_LINE: usize = 32;
/// Most items of a pub/sub frame (pmessage has 4).
const MAX_ITEMS: usize = 8;

fn line(buf: &BytesMut) -> Result<Option<usize>, String> {
    match buf.iter().take(MAX_LINE).position(|&b| b == b'\n') {
        Some(end) if end > 0 && buf[end - 1] == b'\r' => Ok(Some(end + 1)),
        Some(_) => Err("bad line ending".into()),
        None if buf.len() >= MAX_LINE => Err("header line too long".into()),
        None => Ok(None),
    }
}

fn number(bytes: &[u8]) -> Result<usize, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(bytes)))
}

impl Reader {
    /// The next whole frame in `buf`, consuming it; `None` until more bytes arrive.
    fn next(&mut self, buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, String> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            } else if let Some(expected) = self.expected {
                if self.items.len() < expected {
                    let Some(end) = line(buf)? else {
                        return Ok(None);
                    };
                    match buf[0] {
                        b'$' => {
                            let len = number(&buf[1..end - 2])?;
                            if len > max {
                                buf.advance(end);
                                self.oversize = true;
                                self.skip = len + 2;
                                self.items.push(Bytes::new());
                                continue;
                            }
                            if buf.len() < end + len + 2 {
                                buf.reserve(end + len + 2 - buf.len());
                                return Ok(None);
                            }
                            buf.advance(end);
                            self.items.push(buf.split_to(len).freeze());
                            buf.advance(2);
                        }
                        b':' => self.items.push(buf.split_to(end).freeze()),
                        _ => return Err("unexpected item in a pub/sub frame".into()),
                    }
                }
            } else {
                let Some(end) = line(buf)? else {
                    return Ok(None);
                };
                let head = buf.split_to(end);
                match head[0] {
                    b'*' => {
                        let n = number(&head[1..end - 2])?;
                        if n > MAX_ITEMS {
                            return Err(format!("a pub/sub frame of {n} items"));
                        }
                        self.expected = Some(n);
                    }
                    b'-' => {
                        return Ok(Some(Frame::Error(
                            String::from_utf8_lossy(&head[1..end - 2]).into_owned(),
                        )));
                    }
                    b'+' | b':' => return Ok(Some(Frame::Other)),
                    _ => return Err("unexpected frame on a subscribed connection".into()),
                }
            }
            if self.expected.is_some_and(|n| self.items.len() == n) && self.skip == 0 {
                self.expected = None;
                let items = std::mem::take(&mut self.items);
                let oversize = std::mem::replace(&mut self.oversize, false);
                return Ok(Some(Frame::Array { items, oversize }));
            }
        }
    }
}

/// Starts the subscribing connection on a thread of its own (a current-thread runtime): a task
/// of the application's runtime waits for its turn behind everything else, and while it does
/// not read, redis holds the backlog and closes the connection past its
/// `client-output-buffer-limit pubsub` (seen in a benchmark: an emitting server busy with 2,000
/// × 64 KiB did not read its own echoes for long enough). On a system that refuses a thread, a
/// task of the caller's runtime.
pub(super) fn spawn(
    inner: &Arc<Inner>,
    target: Target,
    stream: TcpStream,
    changes: mpsc::Receiver<Change>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let weak = Arc::downgrade(inner);
    let mut stop = inner.stop.subscribe();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build();
    let (runtime, stream) = match (runtime, stream.into_std()) {
        (Ok(runtime), Ok(stream)) => (runtime, stream),
        (runtime, stream) => {
            tracing::warn!(
                "no thread for the redis subscribing connection, it runs as a task: {:?} {:?}",
                runtime.err(),
                stream.as_ref().err()
            );
            if let Ok(stream) = stream.and_then(TcpStream::from_std) {
                tasks.spawn(subscriber(weak, target, stream, changes));
            }
            return;
        }
    };
    // handed to the thread through a slot, so that it can be taken back if the OS refuses one
    let slot = Arc::new(std::sync::Mutex::new(Some((stream, weak, target, changes))));
    let handed = slot.clone();
    let spawned = std::thread::Builder::new()
        .name("switchboard-redis-sub".into())
        .spawn(move || {
            let taken = handed.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some((stream, weak, target, changes)) = taken else {
                return;
            };
            runtime.block_on(async move {
                let stream = match TcpStream::from_std(stream) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("redis subscribing connection: {e}");
                        return;
                    }
                };
                tokio::select! {
                    _ = subscriber(weak, target, stream, changes) => {}
                    _ = async { while stop.changed().await.is_ok() && !*stop.borrow() {} } => {}
                }
            });
        });
    if let Err(e) = spawned {
        tracing::warn!("no thread for the redis subscribing connection ({e}): it runs as a task");
        let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stream, weak, target, changes)) = taken {
            match TcpStream::from_std(stream) {
                Ok(stream) => {
                    tasks.spawn(subscriber(weak, target, stream, changes));
                }
                Err(e) => tracing::error!("redis subscribing connection: {e}"),
            }
        }
    }
}

/// The subscribing connection's task: applies subscription changes, reads messages and
/// dispatches them, reconnects with backoff (100 ms doubling to 5 s) and resubscribes.
pub(super) async fn subscriber(
    weak: Weak<Inner>,
    target: Target,
    first: TcpStream,
    mut changes: mpsc::Receiver<Change>,
) {
    let mut subscribed: BTreeSet<(Kind, String)> = BTreeSet::new();
    let mut stream = Some(first);
    let mut pause = Duration::from_millis(100);
    loop {
        if let Some(s) = stream.take() {
            pause = Duration::from_millis(100);
            match run(&weak, s, &mut changes, &mut subscribed).await {
                None => return,
                Some(e) => tracing::warn!(
                    host = %target.host(),
                    port = target.port(),
                    "redis subscribing connection lost: {e}"
                ),
            }
        }
        // while down: changes are recorded (and a subscribe fails, as attaching to an
        // unreachable redis does); they apply on the next connection
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                change = changes.recv() => {
                    let Some(change) = change else { return };
                    let answer = if change.on {
                        Err("redis unreachable".to_owned())
                    } else {
                        record(&mut subscribed, &change);
                        Ok(())
                    };
                    let _ = change.done.send(answer);
                }
            }
        }
        pause = (pause * 2).min(Duration::from_secs(5));
        if weak.strong_count() == 0 {
            return;
        }
        match open(&target, SUBSCRIBER).await {
            Ok(s) => stream = Some(s),
            Err(e) => tracing::debug!(
                host = %target.host(),
                port = target.port(),
                "redis subscribing connection: {e}"
            ),
        }
    }
}

fn record(subscribed: &mut BTreeSet<(Kind, String)>, change: &Change) {
    for name in &change.names {
        if change.on {
            subscribed.insert((change.kind, name.clone()));
        } else {
            subscribed.remove(&(change.kind, name.clone()));
        }
    }
}

/// Writes the commands of a change: one per name for shard channels (a command's channels must
/// share a slot), one for all the names otherwise.
fn write_change(out: &mut BytesMut, on: bool, kind: Kind, names: &[String]) -> usize {
    let mut commands = 0;
    if kind == Kind::Shard {
        for name in names {
            command(out, &[kind.verb(on), name.as_bytes()]);
            commands += 1;
        }
    } else if !names.is_empty() {
        let mut parts: Vec<&[u8]> = vec![kind.verb(on)];
        parts.extend(names.iter().map(|n| n.as_bytes()));
        command(out, &parts);
        commands += 1;
    }
    commands
}

/// One connection: resubscribes what is recorded, then applies changes and dispatches messages
/// until it fails (`Some`) or the transport is gone (`None`).
async fn run(
    weak: &Weak<Inner>,
    stream: TcpStream,
    changes: &mut mpsc::Receiver<Change>,
    subscribed: &mut BTreeSet<(Kind, String)>,
) -> Option<Failure> {
    let (mut read, mut write) = stream.into_split();
    let mut out = BytesMut::new();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        let names: Vec<String> = subscribed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect();
        write_change(&mut out, true, kind, &names);
        if !names.is_empty() {
            pending.push_back(Pending {
                remaining: names.len(),
                done: None,
            });
        }
    }
    if let Err(e) = write.write_all(&out).await {
        return Some(Failure::Io(e));
    }
    out.clear();
    let (max, mut paused) = {
        let inner = weak.upgrade()?;
        let max = inner.limits.max_size.min(inner.options.receive_queue_bytes);
        #[cfg(feature = "__test-support")]
        let paused = inner.paused.subscribe();
        #[cfg(not(feature = "__test-support"))]
        let paused = tokio::sync::watch::channel(false).1;
        (max, paused)
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut reader = Reader::default();
    loop {
        tokio::select! {
            change = changes.recv() => {
                let change = change?;
                record(subscribed, &change);
                if change.names.is_empty() {
                    let _ = change.done.send(Ok(()));
                    continue;
                }
                write_change(&mut out, change.on, change.kind, &change.names);
                pending.push_back(Pending { remaining: change.names.len(), done: Some(change.done) });
                if let Err(e) = write.write_all(&out).await {
                    return Some(Failure::Io(e));
                }
                out.clear();
            }
            // test plumbing: a paused server reads nothing (redis holds what it sends)
            _ = paused.changed(), if *paused.borrow() => {}
            n = read.read_buf(&mut buf), if !*paused.borrow() => {
                match n {
                    Ok(0) => return Some(Failure::Io(std::io::ErrorKind::UnexpectedEof.into())),
                    Err(e) => return Some(Failure::Io(e)),
                    Ok(_) => {}
                }
                let inner = weak.upgrade()?;
                loop {
                    let frame = match reader.next(&mut buf, max) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(e) => return Some(Failure::Protocol(e)),
                    };
                    handle(&inner, frame, &mut pending);
                }
                // read and not handled yet: the part of a message still arriving
                inner
                    .received_bytes
                    .store(buf.len(), std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// A frame read: a message to dispatch, a confirmation to count, or an error for the oldest
/// change waiting.
fn handle(inner: &Arc<Inner>, frame: Frame, pending: &mut VecDeque<Pending>) {
    let (items, oversize) = match frame {
        Frame::Array { items, oversize } => (items, oversize),
        Frame::Error(e) => {
            if let Some(p) = pending.pop_front()
                && let Some(done) = p.done
            {
                let _ = done.send(Err(e));
            }
            return;
        }
        Frame::Other => return,
    };
    let (channel, payload) = match (items.first().map(|k| &k[..]), items.len()) {
        (Some(b"message" | b"smessage"), 3) => (&items[1], &items[2]),
        (Some(b"pmessage"), 4) => (&items[2], &items[3]),
        (Some(_), 3) => {
            // (p|s)(un)subscribe confirmation
            if let Some(p) = pending.front_mut() {
                p.remaining = p.remaining.saturating_sub(1);
                if p.remaining == 0
                    && let Some(p) = pending.pop_front()
                    && let Some(done) = p.done
                {
                    let _ = done.send(Ok(()));
                }
            }
            return;
        }
        _ => return,
    };
    let Ok(channel) = std::str::from_utf8(channel) else {
        return;
    };
    if oversize {
        inner
            .received_drops
            .note(1, "a message over the receive bound (skipped unread)");
        if let Some(ns) = inner.namespace_of(channel) {
            ns.dropped("too_large");
        }
        return;
    }
    super::receive::dispatch(inner, channel, payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], max: usize, chunk: usize) -> Vec<Frame> {
        let mut reader = Reader::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in input.chunks(chunk) {
            buf.extend_from_slice(part);
            while let Some(f) = reader.next(&mut buf, max).unwrap_or_else(|e| panic!("{e}")) {
                out.push(f);
            }
        }
        assert!(buf.is_empty(), "everything consumed");
        out
    }

    fn array(items: &[&[u8]], oversize: bool) -> Frame {
        Frame::Array {
            items: items.iter().map(|i| Bytes::copy_from_slice(i)).collect(),
            oversize,
        }
    }

    const STREAM: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n\
        *4\r\n$8\r\npmessage\r\n$3\r\np#*\r\n$3\r\np#a\r\n$5\r\nhe\r\no\r\n\
        -ERR unknown command\r\n";

    #[test]
    fn reads_frames_whatever_the_chunks() {
        let expected = vec![
            array(&[b"subscribe", b"ch", b":1\r\n"], false),
            array(&[b"pmessage", b"p#*", b"p#a", b"he\r\no"], false),
            Frame::Error("ERR unknown command".into()),
        ];
        for chunk in [1, 2, 3, 7, STREAM.len()] {
            assert_eq!(frames(STREAM, 1024, chunk), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn skips_a_bulk_over_the_bound_without_holding_it() {
        let mut input = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$100\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 100]);
        input.extend_from_slice(b"\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nok\r\n");
        let expected = vec![
            array(&[b"message", b"ch", b""], true),
            array(&[b"message", b"ch", b"ok"], false),
        ];
        for chunk in [1, 10, input.len()] {
            assert_eq!(frames(&input, 64, chunk), expected);
        }
    }

    #[test]
    fn refuses_what_no_redis_sends() {
        for bad in [
            &b"*99\r\n"[..],
            b"$3\r\nabc\r\n",
            b"*1\r\n*1\r\n",
            b"*1\r\n$x\r\n",
            b"*1\r\n$1234567890123456789012345678901234567890\r\n",
        ] {
            let mut reader = Reader::default();
            let mut buf = BytesMut::from(bad);
            let mut result = Ok(Some(Frame::Other));
            while let Ok(Some(_)) = result {
                result = reader.next(&mut buf, 1024);
            }
            assert!(result.is_err(), "{bad:?} refused");
        }
    }
}
