//! Two socketioxide servers with the forwarding layer, in this process, driven by raw Engine.IO
//! requests: a session opened on one server is served through the other (polling both ways,
//! and a WebSocket upgrade piped to the owner), and bad input gets the same answers as without
//! the layer: forged sids `400` with no lookup, an unreachable owner `400` at once, oversized
//! bodies `413`, and a forwarded request is never forwarded again.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value as Json;
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
};
use switchboard_forward::{ForwardLayer, ForwardOptions};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "the secret of the test cluster";
const MAX_PAYLOAD: usize = 10_000;

struct Server {
    addr: SocketAddr,
    layer: ForwardLayer,
    task: JoinHandle<()>,
}

async fn server(secret: &str) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let layer = ForwardLayer::new(ForwardOptions::new(addr, secret).max_payload(MAX_PAYLOAD))
        .unwrap_or_else(|e| panic!("{e}"));
    let (svc, io) = SocketIo::builder()
        .max_payload(MAX_PAYLOAD as u64)
        .build_layer();
    io.ns("/", async |s: SocketRef| {
        s.on("echo", async |Data(d): Data<Json>, ack: AckSender| {
            let _ = ack.send(&d);
        });
    });
    let app = axum::Router::new().layer(svc).layer(layer.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, layer, task }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// One request; its status and body.
async fn request(
    to: SocketAddr,
    method: &str,
    query: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{to}/socket.io/?{query}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap_or_else(|e| panic!("{e}"));
    let res = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .unwrap_or_else(|_| panic!("no answer in 10 s"))
        .unwrap_or_else(|e| panic!("{e}"));
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A polling handshake on `to`: the sid the client gets.
async fn handshake(to: SocketAddr) -> String {
    let (status, body) = request(to, "GET", "EIO=4&transport=polling", "", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let open: Json = serde_json::from_str(body.strip_prefix('0').unwrap_or(&body))
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    open["sid"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

fn polling(sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={sid}")
}

/// A session opened on `a`, its Socket.IO connect sent through `b`.
async fn session(a: &Server, b: &Server) -> String {
    let sid = handshake(a.addr).await;
    assert_eq!(sid.len(), 40, "a sealed sid: {sid}");
    let (status, body) = request(b.addr, "POST", &polling(&sid), "40", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, body) = request(b.addr, "GET", &polling(&sid), "", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // a ping may come first (packets are separated by 0x1e)
    assert!(
        body.split('\x1e').any(|p| p.starts_with("40{\"sid\":")),
        "{body}"
    );
    sid
}

fn is_session_unknown(status: StatusCode, body: &str) -> bool {
    status == StatusCode::BAD_REQUEST && body.contains("Session ID unknown")
}

#[tokio::test]
async fn a_session_is_served_by_either_server() {
    let (a, b) = (server(SECRET).await, server(SECRET).await);
    let sid = session(&a, &b).await;
    // acked events through both servers, in turn
    for (i, via) in [&b, &a, &b, &a].into_iter().enumerate() {
        let (status, _) = request(
            via.addr,
            "POST",
            &polling(&sid),
            &format!("42{i}[\"echo\",{i}]"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = request(via.addr, "GET", &polling(&sid), "", &[]).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, format!("43{i}[{i}]")),
            "round trip {i}"
        );
    }
    let (sa, sb) = (a.layer.stats(), b.layer.stats());
    assert_eq!(sa.handshakes, 1);
    // the connect and its answer, and 4 of the 8 round-trip requests, came through b
    assert_eq!(sb.forwarded_polling, 6, "{sb:?}");
    // every request reached the owner once
    assert_eq!(sa.local, 10, "{sa:?}");
    assert_eq!(sb.local + sa.forwarded_polling, 0);
}

#[tokio::test]
async fn an_upgrade_through_the_other_server_is_piped_to_the_owner() {
    let (a, b) = (server(SECRET).await, server(SECRET).await);
    let sid = session(&a, &b).await;
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid={sid}",
        b.addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws.send(Message::text("2probe"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let probe = recv(&mut ws).await;
    assert_eq!(probe, "3probe");
    ws.send(Message::text("5"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws.send(Message::text("427[\"echo\",\"over the pipe\"]"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recv(&mut ws).await, "437[\"over the pipe\"]");
    let sb = b.layer.stats();
    assert_eq!((sb.forwarded_websocket, sb.pipes), (1, 1), "{sb:?}");
    drop(ws);
    // the pipe ends with the client's connection
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.layer.stats().pipes != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pipe stayed open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn recv<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn forged_and_foreign_sids_get_400_without_a_lookup() {
    let (a, b) = (server(SECRET).await, server(SECRET).await);
    let foreign = server("another cluster's own secret").await;
    let theirs = handshake(foreign.addr).await;
    let ours = handshake(a.addr).await;
    let mut tampered = ours.clone().into_bytes();
    tampered[30] = if tampered[30] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_else(|e| panic!("{e}"));
    for sid in [
        theirs.as_str(),
        tampered.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &ours[..16],
        "not-even-close",
    ] {
        let (status, body) = request(b.addr, "GET", &polling(sid), "", &[]).await;
        assert!(is_session_unknown(status, &body), "{sid}: {status} {body}");
    }
    let sb = b.layer.stats();
    assert_eq!(sb.forwarded_polling + sb.owner_unreachable, 0, "{sb:?}");
    assert_eq!(sb.unverified, 4, "{sb:?}");
    assert_eq!(a.layer.stats().local, 0);
}

#[tokio::test]
async fn an_unreachable_owner_fails_at_once() {
    let (a, b) = (server(SECRET).await, server(SECRET).await);
    let sid = session(&a, &b).await;
    a.task.abort();
    let _ = a.task.await;
    // no new connection reaches a now
    let started = tokio::time::Instant::now();
    let (status, body) = request(b.addr, "GET", &polling(&sid), "", &[]).await;
    assert!(is_session_unknown(status, &body), "{status} {body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b.layer.stats().owner_unreachable, 1);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_the_owner() {
    let (a, b) = (server(SECRET).await, server(SECRET).await);
    let sid = session(&a, &b).await;
    let local = a.layer.stats().local;
    let big = format!("42[\"echo\",\"{}\"]", "x".repeat(MAX_PAYLOAD));
    let (status, _) = request(b.addr, "POST", &polling(&sid), &big, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(b.layer.stats().too_large, 1);
    assert_eq!(a.layer.stats().local, local, "the owner saw it");
}

#[tokio::test]
async fn a_forwarded_request_is_never_forwarded_again() {
    let (a, b) = (server(SECRET).await, server(SECRET).await);
    let sid = session(&a, &b).await;
    let local = a.layer.stats().local;
    let marked = [("x-switchboard-forwarded", "127.0.0.1:1")];
    let (status, body) = request(b.addr, "GET", &polling(&sid), "", &marked).await;
    // b does not own it and must not pass it on: socketioxide's own answer
    assert!(is_session_unknown(status, &body), "{status} {body}");
    assert_eq!(a.layer.stats().local, local);
    assert_eq!(
        b.layer.stats().forwarded_polling,
        2,
        "only the session's setup"
    );
}

#[tokio::test]
async fn requests_outside_the_engine_path_pass_untouched() {
    let a = server(SECRET).await;
    let req = Request::builder()
        .uri(format!("http://{}/elsewhere?sid=x", a.addr))
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    let res = client()
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(a.layer.stats(), Default::default());
}
