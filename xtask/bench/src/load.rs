//! The load client: Engine.IO v4 / Socket.IO v5 over WebSocket, spoken directly (open packet,
//! `40`, ping/pong), many connections in one process. It counts `count` events, records their
//! end-to-end latency from `ts`, and answers `ask` with an ack.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value as Json;
use tokio::{net::TcpStream, sync::mpsc};

use crate::shared::now_us;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a Socket.IO connection to namespace `nsp`.
async fn open(addr: SocketAddr, nsp: &str) -> Result<Ws> {
    open_with(addr, nsp, None).await
}

/// [`open`] with a WebSocket configuration (small buffers for many idle connections).
async fn open_with(addr: SocketAddr, nsp: &str, config: Option<WebSocketConfig>) -> Result<Ws> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, config, true).await?;
    let open = ws.next().await.context("no open packet")??;
    if !open.to_text().unwrap_or("").starts_with('0') {
        bail!("unexpected open packet {open:?}");
    }
    let connect = if nsp == "/" {
        "40".to_owned()
    } else {
        format!("40{nsp},")
    };
    ws.send(Message::text(connect)).await?;
    loop {
        let m = ws.next().await.context("closed before CONNECT")??;
        let t = m.to_text().unwrap_or("");
        // socketioxide pings as soon as the session opens: unanswered, the session (and the
        // harness's control connection with it) would time out pingTimeout later
        if t == "2" {
            ws.send(Message::text("3")).await?;
            continue;
        }
        if t.starts_with("40") {
            return Ok(ws);
        }
        if t.starts_with("44") {
            bail!("connect refused: {t}");
        }
    }
}

/// Digits right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let digits = text[i..].bytes().take_while(u8::is_ascii_digit).count();
    text.get(i..i + digits)?.parse().ok()
}

/// What every load connection adds to.
#[derive(Default)]
pub(crate) struct Counters {
    /// `count` events with `seq` below `measure_from`.
    pub(crate) warm: AtomicU64,
    /// `count` events with `seq` at or above `measure_from`.
    pub(crate) measured: AtomicU64,
    /// First `seq` that counts as measured.
    pub(crate) measure_from: AtomicU64,
    /// When the last `count` event arrived (µs since the epoch).
    pub(crate) last_us: AtomicU64,
}

impl Counters {
    /// Nothing measured until [`Load::measure_from`]: everything before counts as warm-up.
    fn new() -> Arc<Self> {
        let c = Counters::default();
        c.measure_from.store(u64::MAX, Ordering::Relaxed);
        Arc::new(c)
    }
}

/// One load connection's latencies (µs) of measured events.
type Latencies = Arc<Mutex<Vec<u32>>>;

/// C connections spread over servers.
pub(crate) struct Load {
    pub(crate) counters: Arc<Counters>,
    /// Per connection: the index of its server and its latencies.
    latencies: Vec<(usize, Latencies)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Load {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn run(mut ws: Ws, counters: Arc<Counters>, latencies: Latencies) {
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(text) = m else { continue };
        let text = text.as_str();
        if text == "2" {
            let _ = ws.send(Message::text("3")).await;
        } else if let Some(rest) = text.strip_prefix("42") {
            if rest.starts_with("[\"count\"") {
                let now = now_us();
                let seq = number_after(rest, "\"seq\":").unwrap_or(0);
                if seq >= counters.measure_from.load(Ordering::Relaxed) {
                    let ts = number_after(rest, "\"ts\":").unwrap_or(now);
                    let lat = u32::try_from(now.saturating_sub(ts)).unwrap_or(u32::MAX);
                    latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(lat);
                    counters.measured.fetch_add(1, Ordering::Relaxed);
                } else {
                    counters.warm.fetch_add(1, Ordering::Relaxed);
                }
                counters.last_us.fetch_max(now, Ordering::Relaxed);
            } else {
                // an event with an ack id: 42<id>["ask",...]
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    let _ = ws
                        .send(Message::text(format!("43{}[\"ok\"]", &rest[..digits])))
                        .await;
                }
            }
        }
    }
}

impl Load {
    /// `clients` connections to namespace `/`, round robin over `servers`.
    pub(crate) async fn connect(servers: &[SocketAddr], clients: usize) -> Result<Self> {
        let counters = Counters::new();
        let mut latencies = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..clients {
            let server = i % servers.len();
            let ws = open(servers[server], "/").await?;
            let lat = Latencies::default();
            latencies.push((server, lat.clone()));
            tasks.push(tokio::spawn(run(ws, counters.clone(), lat)));
        }
        Ok(Load {
            counters,
            latencies,
            tasks,
        })
    }

    /// `clients` connections like [`connect`](Self::connect), `parallel` handshakes at a time,
    /// with 4 KiB WebSocket buffers: tens of thousands of mostly idle clients.
    pub(crate) async fn connect_many(
        servers: &[SocketAddr],
        clients: usize,
        parallel: usize,
    ) -> Result<Self> {
        use futures_util::stream;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let counters = Counters::new();
        // each connection runs (answers pings) as soon as it is open
        let opened: Vec<Result<(usize, Latencies, tokio::task::JoinHandle<()>)>> =
            stream::iter(0..clients)
                .map(|i| {
                    let server = i % servers.len();
                    let counters = counters.clone();
                    async move {
                        let ws = open_with(servers[server], "/", Some(config)).await?;
                        let lat = Latencies::default();
                        let task = tokio::spawn(run(ws, counters, lat.clone()));
                        Ok::<_, anyhow::Error>((server, lat, task))
                    }
                })
                .buffered(parallel.max(1))
                .collect()
                .await;
        let mut load = Load {
            counters,
            latencies: Vec::new(),
            tasks: Vec::new(),
        };
        let mut failed = None;
        for o in opened {
            match o {
                Ok((server, lat, task)) => {
                    load.latencies.push((server, lat));
                    load.tasks.push(task);
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        // dropping `load` closes what did open
        match failed {
            Some(e) => Err(e),
            None => Ok(load),
        }
    }

    /// Events with `seq >= seq` are measured from now on; clears measured counts and latencies.
    pub(crate) fn measure_from(&self, seq: u64) {
        self.counters.measure_from.store(seq, Ordering::SeqCst);
        self.counters.measured.store(0, Ordering::SeqCst);
        for (_, l) in &self.latencies {
            l.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Waits until `counter` reaches `target`, or until it made no progress for `stall`.
    pub(crate) async fn wait(&self, counter: &AtomicU64, target: u64, stall: Duration) -> u64 {
        let mut last = 0;
        let mut since = tokio::time::Instant::now();
        loop {
            let n = counter.load(Ordering::Relaxed);
            if n >= target {
                return n;
            }
            if n != last {
                last = n;
                since = tokio::time::Instant::now();
            } else if since.elapsed() > stall {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Measured latencies of the connections on server `server` (all when `None`).
    pub(crate) fn latencies(&self, server: Option<usize>) -> Vec<u32> {
        let mut all = Vec::new();
        for (s, l) in &self.latencies {
            if server.is_none_or(|x| x == *s) {
                all.extend_from_slice(&l.lock().unwrap_or_else(|p| p.into_inner()));
            }
        }
        all
    }
}

/// The harness's control connection to `/ctl` of one server.
pub(crate) struct Control {
    tx: mpsc::UnboundedSender<(String, Json, tokio::sync::oneshot::Sender<Json>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Control {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Control {
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Self> {
        let mut ws = open(addr, "/ctl").await?;
        let (tx, mut rx) =
            mpsc::unbounded_channel::<(String, Json, tokio::sync::oneshot::Sender<Json>)>();
        let task = tokio::spawn(async move {
            let mut next = 0u64;
            let mut pending = std::collections::HashMap::new();
            loop {
                tokio::select! {
                    call = rx.recv() => {
                        let Some((event, arg, reply)) = call else { return };
                        next += 1;
                        pending.insert(next, reply);
                        let packet = format!("42/ctl,{next}{}", Json::from(vec![Json::from(event), arg]));
                        if ws.send(Message::text(packet)).await.is_err() {
                            return;
                        }
                    }
                    m = ws.next() => {
                        let Some(Ok(m)) = m else { return };
                        let Message::Text(text) = m else { continue };
                        if text.as_str() == "2" {
                            let _ = ws.send(Message::text("3")).await;
                        } else if let Some(rest) = text.as_str().strip_prefix("43/ctl,") {
                            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                            let id: u64 = rest[..digits].parse().unwrap_or(0);
                            let args: Json = serde_json::from_str(&rest[digits..]).unwrap_or(Json::Null);
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(args.get(0).cloned().unwrap_or(Json::Null));
                            }
                        }
                    }
                }
            }
        });
        Ok(Control { tx, task })
    }

    /// Emits `event` with `arg` and waits (up to `timeout`) for the ack's first argument.
    pub(crate) async fn call(&self, event: &str, arg: Json, timeout: Duration) -> Result<Json> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send((event.to_owned(), arg, tx))
            .map_err(|_| anyhow::anyhow!("control connection closed"))?;
        tokio::time::timeout(timeout, rx)
            .await
            .with_context(|| format!("{event}: no ack within {timeout:?}"))?
            .map_err(|_| anyhow::anyhow!("control connection closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::number_after;

    #[test]
    fn fields_are_read_from_a_count_event_without_parsing_it() {
        let frame = r#"["count",{"seq":1042,"ts":1763790000123456,"pad":"xxxx"}]"#;
        assert_eq!(number_after(frame, "\"seq\":"), Some(1042));
        assert_eq!(number_after(frame, "\"ts\":"), Some(1_763_790_000_123_456));
        assert_eq!(number_after(frame, "\"nope\":"), None);
        assert_eq!(number_after(r#"{"seq":}"#, "\"seq\":"), None);
    }
}
