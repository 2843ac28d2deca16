//! Requests to a session's owner: a polling request over a pooled keep-alive HTTP/1.1
//! connection (one request in, one out), a WebSocket upgrade as a connection of its own whose
//! bytes are then piped both ways.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::{net::TcpStream, sync::watch};

use crate::{
    ForwardOptions,
    service::{FORWARDED, Outcome, Shared},
};

/// The pooled client and the pipes' stop signal.
pub(crate) struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// Dropped with the layer: every pipe ends.
    stop: watch::Sender<()>,
}

impl Upstream {
    pub(crate) fn new(options: &ForwardOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(options.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(options.max_idle_per_owner)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Upstream {
            client,
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
            stop: watch::channel(()).0,
        }
    }

    /// `req` answered by `owner`.
    pub(crate) async fn forward(
        &self,
        shared: &Arc<Shared>,
        req: Request<Body>,
        owner: SocketAddr,
    ) -> Response<Body> {
        if is_upgrade(req.headers()) {
            self.websocket(shared, req, owner).await
        } else {
            self.polling(shared, req, owner).await
        }
    }

    async fn polling(
        &self,
        shared: &Shared,
        req: Request<Body>,
        owner: SocketAddr,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, shared.max_payload).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                shared.count(false, false, Outcome::TooLarge);
                return status(StatusCode::PAYLOAD_TOO_LARGE);
            }
            Err(e) => {
                tracing::debug!("forward: a request body could not be read: {e}");
                return status(StatusCode::BAD_REQUEST);
            }
        };
        let Some(uri) = owner_uri(owner, &parts.uri) else {
            return status(StatusCode::BAD_REQUEST);
        };
        let mut up = Request::new(Full::new(body));
        *up.method_mut() = parts.method;
        *up.uri_mut() = uri;
        *up.headers_mut() = end_to_end(&parts.headers);
        mark(up.headers_mut(), shared.advertise);
        match tokio::time::timeout(self.request_timeout, self.client.request(up)).await {
            Ok(Ok(res)) => {
                shared.count(false, false, Outcome::Forwarded);
                let (mut parts, body) = res.into_parts();
                parts.headers = end_to_end(&parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Ok(Err(e)) => {
                tracing::debug!(%owner, "forward: the owner cannot be reached: {e}");
                shared.count(false, false, Outcome::OwnerUnreachable);
                session_unknown()
            }
            Err(_) => {
                shared.count(false, false, Outcome::Timeout);
                status(StatusCode::GATEWAY_TIMEOUT)
            }
        }
    }

    async fn websocket(
        &self,
        shared: &Arc<Shared>,
        mut req: Request<Body>,
        owner: SocketAddr,
    ) -> Response<Body> {
        let client_side = hyper::upgrade::on(&mut req);
        let (parts, _) = req.into_parts();
        let unreachable = |e: &dyn std::fmt::Display| {
            tracing::debug!(%owner, "forward: the owner cannot be reached: {e}");
            shared.count(true, false, Outcome::OwnerUnreachable);
            session_unknown()
        };
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(owner)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return unreachable(&e),
                Err(_) => return unreachable(&"connect timeout"),
            };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
            {
                Ok(x) => x,
                Err(e) => return unreachable(&e),
            };
        // drives the connection until the upgrade hands its bytes over; ends with it
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("forward: upgrade connection: {e}");
            }
        });
        let mut up = Request::new(Empty::new());
        *up.method_mut() = parts.method;
        *up.uri_mut() = parts
            .uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let mut headers = parts.headers;
        headers.remove(header::HOST);
        if let Ok(host) = HeaderValue::from_str(&owner.to_string()) {
            headers.insert(header::HOST, host);
        }
        *up.headers_mut() = headers;
        mark(up.headers_mut(), shared.advertise);
        let res = match tokio::time::timeout(self.request_timeout, sender.send_request(up)).await {
            Ok(Ok(res)) => res,
            Ok(Err(e)) => return unreachable(&e),
            Err(_) => {
                shared.count(true, false, Outcome::Timeout);
                return status(StatusCode::GATEWAY_TIMEOUT);
            }
        };
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            // the owner refused (e.g. the session is gone): its answer is the client's
            shared.count(true, false, Outcome::Forwarded);
            return res.map(Body::new);
        }
        let mut res = res;
        let owner_side = hyper::upgrade::on(&mut res);
        let (parts, _) = res.into_parts();
        shared.count(true, false, Outcome::Forwarded);
        let pipe = shared.clone();
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            let (client, owner_io) = tokio::join!(client_side, owner_side);
            let (client, owner_io) = match (client, owner_io) {
                (Ok(c), Ok(o)) => (c, o),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!("forward: a WebSocket upgrade did not complete: {e}");
                    return;
                }
            };
            pipe.pipe(1);
            let (mut client, mut owner_io) = (TokioIo::new(client), TokioIo::new(owner_io));
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut client, &mut owner_io) => {
                    if let Err(e) = r {
                        tracing::debug!("forward: a WebSocket pipe ended: {e}");
                    }
                }
                _ = stop.changed() => {}
            }
            pipe.pipe(-1);
        });
        Response::from_parts(parts, Body::empty())
    }
}

/// Engine.IO's answer for a session nobody has, byte for byte socketioxide's.
fn session_unknown() -> Response<Body> {
    let mut r = Response::new(Body::from(r#"{"code":"1","message":"Session ID unknown"}"#));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn owner_uri(owner: SocketAddr, uri: &Uri) -> Option<Uri> {
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("http://{owner}{pq}").parse().ok()
}

/// The forwarding mark: this server's address.
fn mark(headers: &mut HeaderMap, me: SocketAddr) {
    if let Ok(v) = HeaderValue::from_str(&me.to_string()) {
        headers.insert(HeaderName::from_static(FORWARDED), v);
    }
}

/// `headers` without the hop-by-hop ones (RFC 9110 §7.6.1) and `Host` (the client sets the
/// owner's).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut listed: Vec<String> = Vec::new();
    for v in headers.get_all(header::CONNECTION) {
        if let Ok(v) = v.to_str() {
            listed.extend(v.split(',').map(|s| s.trim().to_ascii_lowercase()));
        }
    }
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let hop = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "host"
        ) || listed.iter().any(|l| l == name.as_str());
        if !hop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-a"),
        );
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert(header::HOST, HeaderValue::from_static("proxy"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        let out = end_to_end(&h);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.contains_key(header::CONTENT_TYPE) && out.contains_key(header::COOKIE));
    }
}
