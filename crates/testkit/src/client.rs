//! A minimal Socket.IO client (Engine.IO v4 over WebSocket, Socket.IO protocol 5) for tests:
//! real TCP, real frames, binary attachments, acks in both directions.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// An event a client received.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event name.
    pub name: String,
    /// Arguments, with binary placeholders left in place.
    pub args: Vec<Json>,
    /// Binary attachments, in placeholder order.
    pub binaries: Vec<Vec<u8>>,
}

/// What the client answers when an event asks for an ack: `Some(value)` or no answer at all.
pub type AckReply = Option<Json>;

/// A connected test client.
pub struct TestClient {
    sid: String,
    pid: Option<String>,
    nsp: String,
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedReceiver<Event>,
    disconnected: mpsc::UnboundedReceiver<()>,
    acks: mpsc::UnboundedSender<(u64, oneshot::Sender<Vec<Json>>)>,
    next_ack: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Parsed {
    kind: u8,
    attachments: usize,
    nsp: String,
    id: Option<u64>,
    data: Json,
}

fn parse(text: &str) -> Option<Parsed> {
    let bytes = text.as_bytes();
    let kind = bytes.first()?.checked_sub(b'0')?;
    let mut rest = &text[1..];
    let mut attachments = 0;
    if (kind == 5 || kind == 6)
        && let Some(dash) = rest.find('-')
    {
        attachments = rest[..dash].parse().ok()?;
        rest = &rest[dash + 1..];
    }
    let mut nsp = "/".to_owned();
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = rest[..end].to_owned();
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        rest[..digits].parse().ok()
    } else {
        None
    };
    rest = &rest[digits..];
    let data = if rest.is_empty() {
        Json::Null
    } else {
        serde_json::from_str(rest).ok()?
    };
    Some(Parsed {
        kind,
        attachments,
        nsp,
        id,
        data,
    })
}

fn prefix(nsp: &str) -> String {
    if nsp == "/" {
        String::new()
    } else {
        format!("{nsp},")
    }
}

impl TestClient {
    /// Connects to namespace `nsp` of the server at `addr` with `auth`; events asking for an ack
    /// are answered with `ack` (or left unanswered with `None`).
    pub async fn connect(
        addr: SocketAddr,
        nsp: &str,
        auth: Json,
        ack: AckReply,
    ) -> Result<TestClient, String> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = ws.split();
        // Engine.IO open packet
        match stream.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
            other => return Err(format!("no open packet: {other:?}")),
        }
        let connect = format!("40{}{}", prefix(nsp), auth);
        sink.send(Message::text(connect))
            .await
            .map_err(|e| e.to_string())?;
        // events sent before the CONNECT answer (a server replaying what a recovered session
        // missed does that): kept for the event queue, as socket.io-client buffers them
        let mut early = Vec::new();
        let (sid, pid) = loop {
            match stream.next().await {
                // Engine.IO v4 servers ping at once: unanswered, the session times out
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    sink.send(Message::text("3"))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some(p) = t.strip_prefix('4').and_then(parse)
                        && p.nsp == nsp
                    {
                        match p.kind {
                            2 => {
                                if let Json::Array(mut items) = p.data
                                    && !items.is_empty()
                                {
                                    let name =
                                        items.remove(0).as_str().unwrap_or_default().to_owned();
                                    early.push(Event {
                                        name,
                                        args: items,
                                        binaries: Vec::new(),
                                    });
                                }
                            }
                            0 => {
                                let field = |k: &str| p.data.get(k).and_then(Json::as_str);
                                break (
                                    field("sid").unwrap_or_default().to_owned(),
                                    field("pid").map(str::to_owned),
                                );
                            }
                            4 => return Err(format!("connect error: {}", p.data)),
                            _ => {}
                        }
                    }
                }
                other => return Err(format!("no connect answer: {other:?}")),
            }
        };

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        for e in early {
            let _ = ev_tx.send(e);
        }
        let (dc_tx, dc_rx) = mpsc::unbounded_channel();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<(u64, oneshot::Sender<Vec<Json>>)>();
        let own_nsp = nsp.to_owned();
        let reply_tx = out_tx.clone();
        let task = tokio::spawn(async move {
            let mut pending_acks = std::collections::HashMap::new();
            let mut partial: Option<(Parsed, Vec<Vec<u8>>)> = None;
            loop {
                // biased: an ack is registered before the packet that asks for it is sent, so the
                // answer can never arrive first
                tokio::select! {
                    biased;
                    Some((id, tx)) = ack_rx.recv() => { pending_acks.insert(id, tx); }
                    Some(msg) = out_rx.recv() => {
                        if sink.send(msg).await.is_err() { break; }
                    }
                    frame = stream.next() => {
                        let complete = match frame {
                            Some(Ok(Message::Text(t))) => {
                                if t.as_str() == "2" {
                                    let _ = reply_tx.send(Message::text("3"));
                                    continue;
                                }
                                match t.strip_prefix('4').and_then(parse) {
                                    Some(p) if p.nsp != own_nsp => continue,
                                    Some(p) if p.attachments > 0 => { partial = Some((p, Vec::new())); continue; }
                                    Some(p) => (p, Vec::new()),
                                    None => continue,
                                }
                            }
                            Some(Ok(Message::Binary(b))) => match partial.take() {
                                Some((p, mut bins)) => {
                                    bins.push(b.to_vec());
                                    if bins.len() < p.attachments { partial = Some((p, bins)); continue; }
                                    (p, bins)
                                }
                                None => continue,
                            },
                            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { let _ = dc_tx.send(()); break; }
                            Some(Ok(_)) => continue,
                        };
                        let (p, binaries) = complete;
                        match p.kind {
                            1 => { let _ = dc_tx.send(()); }
                            2 | 5 => {
                                let Json::Array(mut items) = p.data else { continue };
                                if items.is_empty() { continue; }
                                let name = items.remove(0).as_str().unwrap_or_default().to_owned();
                                if let (Some(id), Some(reply)) = (p.id, ack.as_ref()) {
                                    let text = format!("43{}{}{}", prefix(&own_nsp), id, Json::Array(vec![reply.clone()]));
                                    let _ = reply_tx.send(Message::text(text));
                                }
                                let _ = ev_tx.send(Event { name, args: items, binaries });
                            }
                            3 | 6 => {
                                if let (Some(id), Json::Array(items)) = (p.id, p.data)
                                    && let Some(tx) = pending_acks.remove(&id)
                                {
                                    let _ = tx.send(items);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
        Ok(TestClient {
            sid,
            pid,
            nsp: nsp.to_owned(),
            out: out_tx,
            events: ev_rx,
            disconnected: dc_rx,
            acks: ack_tx,
            next_ack: 0,
            task,
        })
    }

    /// The private session id a server with connection state recovery gave this client.
    pub fn pid(&self) -> Option<&str> {
        self.pid.as_deref()
    }

    /// The socket id the server gave this client in the namespace.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Emits an event to the server.
    pub fn emit(&self, event: &str, args: Vec<Json>) {
        let mut data = vec![Json::from(event)];
        data.extend(args);
        let _ = self.out.send(Message::text(format!(
            "42{}{}",
            prefix(&self.nsp),
            Json::Array(data)
        )));
    }

    /// Emits an event and waits (up to `within`) for the server's ack.
    pub async fn emit_with_ack(
        &mut self,
        event: &str,
        args: Vec<Json>,
        within: Duration,
    ) -> Option<Vec<Json>> {
        self.next_ack += 1;
        let id = self.next_ack;
        let (tx, rx) = oneshot::channel();
        let _ = self.acks.send((id, tx));
        let mut data = vec![Json::from(event)];
        data.extend(args);
        let _ = self.out.send(Message::text(format!(
            "42{}{}{}",
            prefix(&self.nsp),
            id,
            Json::Array(data)
        )));
        tokio::time::timeout(within, rx).await.ok()?.ok()
    }

    /// Sends raw bytes as a binary frame (to test what servers do with garbage).
    pub fn send_raw_binary(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Message::Binary(Bytes::from(bytes)));
    }

    /// The next event, if one arrives within `within`.
    pub async fn event(&mut self, within: Duration) -> Option<Event> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next event named `name` within `within`, skipping others.
    pub async fn expect(&mut self, name: &str, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.event(left).await?;
            if e.name == name {
                return Some(e);
            }
        }
    }

    /// The events that arrive before one named `marker` (the marker consumed), or `None` when
    /// the marker does not arrive within `within`.
    pub async fn until(&mut self, marker: &str, within: Duration) -> Option<Vec<Event>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.event(left).await?;
            if e.name == marker {
                return Some(before);
            }
            before.push(e);
        }
    }

    /// Whether an event named `name` arrives within `within`: waits the whole time when none does.
    pub async fn receives(&mut self, name: &str, within: Duration) -> bool {
        self.expect(name, within).await.is_some()
    }

    /// Whether the server disconnected this client within `within`.
    pub async fn disconnected(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.disconnected.recv())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_socket_io_packets() {
        let p = parse("2/admin,12[\"ev\",1]").unwrap_or_else(|| panic!("parse"));
        assert_eq!((p.kind, p.nsp.as_str(), p.id), (2, "/admin", Some(12)));
        let p = parse("51-[\"b\",{\"_placeholder\":true,\"num\":0}]")
            .unwrap_or_else(|| panic!("parse"));
        assert_eq!(
            (p.kind, p.attachments, p.nsp.as_str(), p.id),
            (5, 1, "/", None)
        );
        let p = parse("0{\"sid\":\"x\"}").unwrap_or_else(|| panic!("parse"));
        assert_eq!(p.data["sid"], "x");
    }
}
