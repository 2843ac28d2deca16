//! The tower layer and its service: which requests are this server's, which are forwarded, and
//! the handshake responses whose sid gets sealed.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    ForwardError, ForwardOptions,
    sid::{self, SidCodec},
    upstream::Upstream,
};

/// The header a forwarded request carries (the forwarding server's address): its receiver
/// never forwards it again, whatever the sid says.
pub(crate) const FORWARDED: &str = "x-switchboard-forwarded";
/// The largest handshake response read to seal its sid.
const MAX_HANDSHAKE: usize = 64 * 1024;

/// Counts since the layer was built: see [`ForwardLayer::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardStats {
    /// Polling handshakes whose sid was sealed (made forwardable).
    pub handshakes: u64,
    /// Requests of this server's own sessions.
    pub local: u64,
    /// Polling requests answered by their session's owner.
    pub forwarded_polling: u64,
    /// WebSocket upgrades piped to their session's owner.
    pub forwarded_websocket: u64,
    /// Requests whose owner could not be reached (answered `400 Session ID unknown`).
    pub owner_unreachable: u64,
    /// Forwarded requests the owner did not answer within `request_timeout` (`504`).
    pub timed_out: u64,
    /// Polling bodies over `max_payload` (`413`).
    pub too_large: u64,
    /// Sids this cluster did not seal, passed to socketioxide (which answers `400`).
    pub unverified: u64,
    /// WebSocket pipes open now.
    pub pipes: u64,
}

#[derive(Default)]
struct Counters {
    handshakes: AtomicU64,
    local: AtomicU64,
    forwarded_polling: AtomicU64,
    forwarded_websocket: AtomicU64,
    owner_unreachable: AtomicU64,
    timed_out: AtomicU64,
    too_large: AtomicU64,
    unverified: AtomicU64,
    pipes: AtomicU64,
}

/// What happened to a request, for the counters and the metrics.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Sealed,
    Local,
    Forwarded,
    OwnerUnreachable,
    Timeout,
    TooLarge,
    Unverified,
}

pub(crate) struct Shared {
    pub(crate) advertise: SocketAddr,
    pub(crate) codec: SidCodec,
    pub(crate) path: String,
    pub(crate) max_payload: usize,
    pub(crate) upstream: Upstream,
    counters: Counters,
    #[cfg(feature = "prometheus")]
    metrics: Option<crate::ForwardMetrics>,
}

impl Shared {
    pub(crate) fn count(&self, websocket: bool, handshake: bool, outcome: Outcome) {
        let c = &self.counters;
        let counter = match outcome {
            Outcome::Sealed => &c.handshakes,
            Outcome::Local => &c.local,
            Outcome::Forwarded if websocket => &c.forwarded_websocket,
            Outcome::Forwarded => &c.forwarded_polling,
            Outcome::OwnerUnreachable => &c.owner_unreachable,
            Outcome::Timeout => &c.timed_out,
            Outcome::TooLarge => &c.too_large,
            Outcome::Unverified => &c.unverified,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            let kind = match (handshake, websocket) {
                (true, _) => "handshake",
                (false, true) => "websocket",
                (false, false) => "polling",
            };
            let outcome = match outcome {
                Outcome::Sealed => "sealed",
                Outcome::Local => "local",
                Outcome::Forwarded => "forwarded",
                Outcome::OwnerUnreachable => "owner_unreachable",
                Outcome::Timeout => "timeout",
                Outcome::TooLarge => "too_large",
                Outcome::Unverified => "unverified",
            };
            m.requests.with_label_values(&[kind, outcome]).inc();
        }
        #[cfg(not(feature = "prometheus"))]
        let _ = handshake;
    }

    /// A WebSocket pipe opened (`+1`) or closed (`-1`).
    pub(crate) fn pipe(&self, delta: i64) {
        if delta > 0 {
            self.counters.pipes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.pipes.fetch_sub(1, Ordering::Relaxed);
        }
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.metrics {
            m.pipes.add(delta);
        }
    }
}

/// The layer: wrap socketioxide's service (or the axum app holding it) in it. See the
/// [crate docs](crate).
#[derive(Clone)]
pub struct ForwardLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ForwardLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardLayer")
            .field("advertise", &self.shared.advertise)
            .finish()
    }
}

impl ForwardLayer {
    /// Builds the layer. Fails when the secret is shorter than 16 bytes or the advertised
    /// address is not one another server can reach (`0.0.0.0`, `::`, port 0).
    pub fn new(options: ForwardOptions) -> Result<Self, ForwardError> {
        if options.secret.len() < 16 {
            return Err(ForwardError::WeakSecret(options.secret.len()));
        }
        if options.advertise.ip().is_unspecified() || options.advertise.port() == 0 {
            return Err(ForwardError::Advertise(options.advertise));
        }
        let upstream = Upstream::new(&options);
        Ok(ForwardLayer {
            shared: Arc::new(Shared {
                advertise: options.advertise,
                codec: SidCodec::new(&options.secret),
                path: options.path.trim_end_matches('/').to_owned(),
                max_payload: options.max_payload,
                upstream,
                counters: Counters::default(),
                #[cfg(feature = "prometheus")]
                metrics: options.metrics,
            }),
        })
    }

    /// Counts of what the layer did since it was built.
    pub fn stats(&self) -> ForwardStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ForwardStats {
            handshakes: get(&c.handshakes),
            local: get(&c.local),
            forwarded_polling: get(&c.forwarded_polling),
            forwarded_websocket: get(&c.forwarded_websocket),
            owner_unreachable: get(&c.owner_unreachable),
            timed_out: get(&c.timed_out),
            too_large: get(&c.too_large),
            unverified: get(&c.unverified),
            pipes: get(&c.pipes),
        }
    }

    /// The address sessions of this server carry.
    pub fn advertise(&self) -> SocketAddr {
        self.shared.advertise
    }
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Forward<S> {
        Forward {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`ForwardLayer`].
#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for Forward<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("advertise", &self.shared.advertise)
            .finish()
    }
}

/// Where a request goes.
enum Route {
    /// Not an Engine.IO request of a session: untouched.
    Pass,
    /// A polling handshake: its response's sid gets sealed.
    Handshake,
    /// This server's session, under socketioxide's own sid.
    Local(Uri),
    /// Another server's session.
    Owner(SocketAddr),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<Request<Body>> for Forward<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        // the service polled ready is the one called
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        match route(&shared, &req) {
            Route::Pass => Box::pin(async move { Ok(inner.call(req).await?.map(Body::new)) }),
            Route::Local(uri) => {
                *req.uri_mut() = uri;
                Box::pin(async move { Ok(inner.call(req).await?.map(Body::new)) })
            }
            Route::Handshake => Box::pin(async move {
                let res = inner.call(req).await?;
                Ok(seal_handshake(&shared, res).await)
            }),
            Route::Owner(owner) => {
                Box::pin(async move { Ok(shared.upstream.forward(&shared, req, owner).await) })
            }
        }
    }
}

/// The query parameters that matter.
#[derive(Default)]
struct Query<'a> {
    eio: bool,
    polling: bool,
    sid: Option<&'a str>,
}

fn query(q: &str) -> Query<'_> {
    let mut out = Query::default();
    for kv in q.split('&') {
        match kv.split_once('=') {
            Some(("EIO", _)) => out.eio = true,
            Some(("transport", t)) => out.polling = t == "polling",
            Some(("sid", s)) if out.sid.is_none() => out.sid = Some(s),
            _ => {}
        }
    }
    out
}

fn route(shared: &Shared, req: &Request<Body>) -> Route {
    let path = req.uri().path();
    let ours = path
        .strip_prefix(shared.path.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let Some(q) = req.uri().query().filter(|_| ours) else {
        return Route::Pass;
    };
    let q = query(q);
    let Some(sealed) = q.sid else {
        return if q.eio && q.polling && req.method() == http::Method::GET {
            Route::Handshake
        } else {
            Route::Pass
        };
    };
    let websocket = !q.polling;
    let Some((sid, owner)) = shared.codec.open(sealed) else {
        if sealed.len() != sid::INNER_LEN {
            // a forged or foreign sid: socketioxide answers 400 Session ID unknown
            shared.count(websocket, false, Outcome::Unverified);
        }
        return Route::Pass;
    };
    if owner != shared.advertise && !req.headers().contains_key(FORWARDED) {
        return Route::Owner(owner);
    }
    if owner != shared.advertise {
        // forwarded here by a server that believes this one owns it: never forwarded again
        tracing::debug!(%owner, "forward: a forwarded request for another owner's session");
    }
    shared.count(websocket, false, Outcome::Local);
    local_uri(req.uri(), sealed, sid).map_or(Route::Pass, Route::Local)
}

/// `uri` with socketioxide's own `sid` in place of the sealed one.
fn local_uri(uri: &Uri, sealed: &str, sid: &str) -> Option<Uri> {
    let pq = uri.path_and_query()?.as_str();
    // `sealed` is a slice of `pq` (the query parsed above): replace that range
    let start = (sealed.as_ptr() as usize).checked_sub(pq.as_ptr() as usize)?;
    let end = start + sealed.len();
    let mut out = String::with_capacity(pq.len());
    out.push_str(pq.get(..start)?);
    out.push_str(sid);
    out.push_str(pq.get(end..)?);
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(out.try_into().ok()?);
    Uri::from_parts(parts).ok()
}

/// The handshake response with its sid sealed.
async fn seal_handshake<B>(shared: &Shared, res: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if res.status() != StatusCode::OK {
        return res.map(Body::new);
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match Limited::new(body, MAX_HANDSHAKE).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            tracing::warn!("forward: a handshake response could not be read: {e}");
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return r;
        }
    };
    let sealed = sid::rewrite_open(&bytes, |sid| shared.codec.seal(sid, shared.advertise));
    match sealed {
        Some(body) => {
            shared.count(false, true, Outcome::Sealed);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            Response::from_parts(parts, Body::from(body))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_uris_carry_socketioxide_s_sid() {
        let uri: Uri = "/socket.io/?EIO=4&transport=polling&t=a&sid=SEALEDSID&x=sid"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let q = query(uri.query().unwrap_or_default());
        let sealed = q.sid.unwrap_or_default();
        let local = local_uri(&uri, sealed, "own").map(|u| u.to_string());
        assert_eq!(
            local.as_deref(),
            Some("/socket.io/?EIO=4&transport=polling&t=a&sid=own&x=sid")
        );
        // a string that is not a slice of the URI: no rewrite
        assert_eq!(local_uri(&uri, "elsewhere", "own"), None);
    }

    #[test]
    fn queries() {
        let q = query("EIO=4&transport=polling&t=abc");
        assert!(q.eio && q.polling && q.sid.is_none());
        let q = query("EIO=4&transport=websocket&sid=x&sid=y");
        assert!(q.eio && !q.polling);
        assert_eq!(q.sid, Some("x"));
    }
}
