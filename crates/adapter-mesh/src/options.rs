//! Options of the mesh transport, with the Node option names and defaults.

use std::time::Duration;

use switchboard_wire::mesh::PeerInfo;

/// Options of a [`MeshTransport`](crate::MeshTransport).
///
/// **By default the peer port (4000) listens on every interface and takes any peer**: no
/// `auth_token`, as Node's adapter. Anyone who can reach the port can join the mesh and broadcast to
/// every client. Outside a private network, set [`auth_token`](Self::auth_token) (the same on
/// every server and on the discovery service) and/or [`bind`](Self::bind) to a private address.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    pub(crate) ws_port: u16,
    pub(crate) bind: std::net::IpAddr,
    pub(crate) server_address: Option<String>,
    pub(crate) discovery: Vec<String>,
    pub(crate) static_peers: Option<Vec<PeerInfo>>,
    pub(crate) auth_token: Option<String>,
    pub(crate) buffered_amount_threshold: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) hello_timeout: Duration,
    pub(crate) max_pending_handshakes: usize,
    pub(crate) uid: Option<String>,
    #[cfg(feature = "prometheus")]
    pub(crate) metrics: Option<crate::metrics::MeshMetrics>,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            ws_port: 4000,
            bind: std::net::IpAddr::from([0, 0, 0, 0]),
            server_address: None,
            discovery: Vec::new(),
            static_peers: None,
            auth_token: None,
            buffered_amount_threshold: 16 * 1024 * 1024,
            max_frame_size: 64 * 1024 * 1024,
            hello_timeout: Duration::from_secs(10),
            max_pending_handshakes: 256,
            uid: None,
            #[cfg(feature = "prometheus")]
            metrics: None,
        }
    }
}

impl MeshOptions {
    /// Node's `discoveryServiceAddress`, e.g. `ws://discovery:8000`. Several calls register with
    /// several discovery services (high availability): their rosters are merged.
    pub fn discovery(mut self, address: impl Into<String>) -> Self {
        self.discovery.push(address.into());
        self
    }

    /// No discovery at all: these are the peers.
    pub fn static_peers(mut self, peers: Vec<PeerInfo>) -> Self {
        self.static_peers = Some(peers);
        self
    }

    /// Node's `wsPort`: where peers connect (default 4000; 0 picks a free port).
    pub fn ws_port(mut self, port: u16) -> Self {
        self.ws_port = port;
        self
    }

    /// The address the peer port listens on (default `0.0.0.0`: every interface).
    pub fn bind(mut self, ip: std::net::IpAddr) -> Self {
        self.bind = ip;
        self
    }

    /// Node's `serverAddress`: how peers reach this server (default `ws://localhost:<wsPort>`,
    /// or the environment variable `MESH_SERVER_WS_ADDRESS`).
    pub fn server_address(mut self, address: impl Into<String>) -> Self {
        self.server_address = Some(address.into());
        self
    }

    /// Node's `authToken`: shared secret for discovery and for peers' Hello (default none: any
    /// peer is accepted). A discovery service that refuses it closes with 4401: logged as an
    /// error and reported by [`MeshTransport::discovery_refusals`](crate::MeshTransport::discovery_refusals).
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Node's `bufferedAmountThreshold`: a peer with more bytes waiting is cut off (default 16 MiB).
    pub fn buffered_amount_threshold(mut self, bytes: usize) -> Self {
        self.buffered_amount_threshold = bytes;
        self
    }

    /// Largest frame accepted from a peer (default 64 MiB).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// This server's uid (default: 16 random hex characters). Needed in static peer lists, where
    /// every server names the others by uid.
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// Records the transport's metrics (feature `prometheus`).
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, metrics: crate::metrics::MeshMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How long an accepted connection has for its whole handshake, the WebSocket upgrade and
    /// the Hello (default 10 s).
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.hello_timeout = timeout;
        self
    }

    /// Accepted connections that may be waiting for their Hello at once (default 256); further
    /// ones are closed as soon as they are accepted.
    pub fn max_pending_handshakes(mut self, connections: usize) -> Self {
        self.max_pending_handshakes = connections.max(1);
        self
    }
}
