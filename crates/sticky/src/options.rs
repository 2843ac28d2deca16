//! The primary's options and the balancing methods.

use std::{ffi::OsString, path::PathBuf, time::Duration};

/// How the primary picks a worker for a new session (a request without `sid`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balancing {
    /// Any live worker, at random.
    Random,
    /// Live workers in turn.
    RoundRobin,
    /// The live worker with the fewest sessions (ties in turn): Node's default.
    #[default]
    LeastConnection,
}

/// Options of [`Primary`](crate::Primary), with Node's defaults where it has them.
#[derive(Clone, Debug)]
pub struct StickyOptions {
    pub(crate) workers: usize,
    pub(crate) balancing: Balancing,
    pub(crate) head_timeout: Duration,
    pub(crate) max_head: usize,
    pub(crate) grace: Duration,
    pub(crate) queue: usize,
    pub(crate) program: Option<PathBuf>,
    pub(crate) args: Option<Vec<OsString>>,
    #[cfg(feature = "prometheus")]
    pub(crate) metrics: Option<crate::StickyMetrics>,
    pub(crate) route_by_sid: bool,
}

impl Default for StickyOptions {
    fn default() -> Self {
        StickyOptions {
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            balancing: Balancing::default(),
            head_timeout: Duration::from_secs(10),
            max_head: 16 * 1024,
            grace: Duration::from_secs(10),
            queue: 1024,
            program: None,
            args: None,
            #[cfg(feature = "prometheus")]
            metrics: None,
            route_by_sid: true,
        }
    }
}

impl StickyOptions {
    /// How many workers (default: one per core).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Whether a request with a `sid` goes to the worker that owns the session (default: true).
    /// With `false`, every connection is spread by [`balancing`](Self::balancing) as a new
    /// session's: for workers that forward each other's sessions with `switchboard-forward`
    /// (each listening on a loopback port of its own for what the others forward), where the
    /// primary needs no session bookkeeping and never answers `400` itself.
    pub fn route_by_sid(mut self, route: bool) -> Self {
        self.route_by_sid = route;
        self
    }

    /// How new sessions are spread (default: [`Balancing::LeastConnection`]).
    pub fn balancing(mut self, balancing: Balancing) -> Self {
        self.balancing = balancing;
        self
    }

    /// How long a client may take to send a request head (default 10 s; then `408`).
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// The largest request head (default 16 KiB; beyond it `431`).
    pub fn max_head(mut self, bytes: usize) -> Self {
        self.max_head = bytes.max(64);
        self
    }

    /// How long workers have to finish after SIGTERM before they are killed (default 10 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Connections waiting for one worker to take them (default 1024; beyond it `503`).
    pub fn queue(mut self, connections: usize) -> Self {
        self.queue = connections.max(1);
        self
    }

    /// The worker program (default: this binary, `std::env::current_exe`).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// The workers' arguments (default: this process's).
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Where the primary's metrics go (feature `prometheus`).
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, metrics: crate::StickyMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}
