//! The primary: owns the listening port, starts and restarts the workers, and hands every
//! connection to the worker that owns its session (or to a new one, by the balancing method).

use std::{
    collections::{HashMap, HashSet},
    io,
    net::SocketAddr,
    os::fd::{AsFd, OwnedFd},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader, Interest},
    net::{TcpListener, TcpStream, ToSocketAddrs, UnixListener, UnixStream},
    process::Command,
    sync::{Notify, mpsc, watch},
    task::JoinSet,
};

use crate::{
    Balancing, StickyError, StickyOptions,
    control::{self, Up},
    head::{self, Head, HeadError},
};

/// How long a request for a session the primary has not heard of waits for the worker's word
/// (the handshake's response can reach the client before the worker's OPEN reaches the primary).
const OPEN_WAIT: Duration = Duration::from_millis(500);

/// Engine.IO's answer to an unknown session.
const UNKNOWN_SID: &str = r#"{"code":1,"message":"Session ID unknown"}"#;

/// What the primary did with a connection (logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    New,
    Session,
    UnknownSid,
    NoWorker,
    QueueFull,
    BadRequest,
    HeadTooLarge,
    HeadTimeout,
    Http2,
}

impl Outcome {
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))] // metrics only
    fn label(self) -> &'static str {
        match self {
            Outcome::New => "new",
            Outcome::Session => "session",
            Outcome::UnknownSid => "unknown_sid",
            Outcome::NoWorker => "no_worker",
            Outcome::QueueFull => "queue_full",
            Outcome::BadRequest => "bad_request",
            Outcome::HeadTooLarge => "head_too_large",
            Outcome::HeadTimeout => "head_timeout",
            Outcome::Http2 => "http2",
        }
    }
}

/// A worker connected to the control socket.
struct Live {
    conn: u64,
    tx: mpsc::Sender<OwnedFd>,
    sessions: HashSet<String>,
}

struct State {
    slots: Vec<Option<Live>>,
    sids: HashMap<String, usize>,
    turn: usize,
}

struct Shared {
    options: StickyOptions,
    token: String,
    state: Mutex<State>,
    opened: Notify,
    next_conn: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, outcome: Outcome) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.options.metrics {
            m.connections.with_label_values(&[outcome.label()]).inc();
        }
        #[cfg(not(feature = "prometheus"))]
        let _ = outcome;
    }

    fn sessions_changed(&self, index: usize, n: usize) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.options.metrics {
            m.sessions
                .with_label_values(&[&index.to_string()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        #[cfg(not(feature = "prometheus"))]
        let _ = (index, n);
    }

    /// Forgets a worker's control connection and its sessions.
    fn gone(&self, index: usize, conn: Option<u64>) {
        let mut state = self.state();
        let State { slots, sids, .. } = &mut *state;
        let Some(slot) = slots.get_mut(index) else {
            return;
        };
        if slot
            .as_ref()
            .is_some_and(|l| conn.is_none_or(|c| c == l.conn))
            && let Some(live) = slot.take()
        {
            for sid in &live.sessions {
                sids.remove(sid);
            }
            drop(state);
            self.sessions_changed(index, 0);
        }
    }

    /// Worker `index` (on control connection `conn`) opened or closed `sid`; `false` when that
    /// connection is no longer the worker's.
    fn session(&self, index: usize, conn: u64, sid: String, open: bool) -> bool {
        let n = {
            let mut state = self.state();
            let State { slots, sids, .. } = &mut *state;
            let Some(live) = slots[index].as_mut().filter(|l| l.conn == conn) else {
                return false;
            };
            if open {
                live.sessions.insert(sid.clone());
                sids.insert(sid, index);
            } else {
                live.sessions.remove(&sid);
                if sids.get(&sid) == Some(&index) {
                    sids.remove(&sid);
                }
            }
            live.sessions.len()
        };
        self.sessions_changed(index, n);
        true
    }

    /// The worker that owns `sid`, waiting a moment for news of a session just opened.
    async fn owner(&self, sid: &str) -> Option<usize> {
        if !head::is_sid(sid) {
            return None;
        }
        let deadline = tokio::time::Instant::now() + OPEN_WAIT;
        loop {
            let notified = self.opened.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(&i) = self.state().sids.get(sid) {
                return Some(i);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// A live worker for a new session, by the balancing method.
    fn choose(&self) -> Option<usize> {
        let mut state = self.state();
        let alive: Vec<usize> = (0..state.slots.len())
            .filter(|&i| state.slots[i].is_some())
            .collect();
        if alive.is_empty() {
            return None;
        }
        let turn = state.turn;
        state.turn = state.turn.wrapping_add(1);
        let pick = match self.options.balancing {
            Balancing::Random => alive[rand::random_range(0..alive.len())],
            Balancing::RoundRobin => alive[turn % alive.len()],
            Balancing::LeastConnection => {
                let load = |i: usize| state.slots[i].as_ref().map_or(0, |l| l.sessions.len());
                let least = alive.iter().map(|&i| load(i)).min().unwrap_or(0);
                let tied: Vec<usize> = alive.into_iter().filter(|&i| load(i) == least).collect();
                tied[turn % tied.len()]
            }
        };
        Some(pick)
    }

    /// Queues a connection for worker `index`; gives it back when the worker cannot take it.
    fn hand(&self, index: usize, fd: OwnedFd) -> Result<(), (Outcome, OwnedFd)> {
        let state = self.state();
        let Some(live) = state.slots.get(index).and_then(Option::as_ref) else {
            return Err((Outcome::NoWorker, fd));
        };
        live.tx.try_send(fd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(fd) => (Outcome::QueueFull, fd),
            mpsc::error::TrySendError::Closed(fd) => (Outcome::NoWorker, fd),
        })
    }
}

/// A handle on a running primary, to look at it (tests, health endpoints).
#[derive(Clone)]
pub struct PrimaryHandle {
    shared: Arc<Shared>,
    pids: Arc<Mutex<Vec<Option<u32>>>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for PrimaryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl PrimaryHandle {
    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sessions each worker owns now (`None`: the worker is not connected).
    pub fn sessions(&self) -> Vec<Option<usize>> {
        self.shared
            .state()
            .slots
            .iter()
            .map(|s| s.as_ref().map(|l| l.sessions.len()))
            .collect()
    }

    /// Each worker's process id (`None`: not running).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The worker that owns session `sid`.
    pub fn owner(&self, sid: &str) -> Option<usize> {
        self.shared.state().sids.get(sid).copied()
    }
}

/// The primary process: see the [crate docs](crate).
pub struct Primary {
    listener: TcpListener,
    control: UnixListener,
    dir: PathBuf,
    handle: PrimaryHandle,
}

impl std::fmt::Debug for Primary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Primary")
            .field("addr", &self.handle.addr)
            .finish()
    }
}

impl Primary {
    /// Listens on `addr` and on a private control socket; the workers start with
    /// [`run`](Self::run).
    pub async fn bind(
        addr: impl ToSocketAddrs,
        options: StickyOptions,
    ) -> Result<Self, StickyError> {
        let listener = TcpListener::bind(addr).await.map_err(StickyError::Bind)?;
        let local = listener.local_addr().map_err(StickyError::Bind)?;
        let token: String = (0..16)
            .map(|_| char::from(b"0123456789abcdef"[rand::random_range(0..16)]))
            .collect();
        // a directory only we can enter: nobody else can reach the socket inside
        let dir = std::env::temp_dir().join(format!(
            "switchboard-sticky-{}-{}",
            std::process::id(),
            &token[..8]
        ));
        let control_err = |source| StickyError::Control {
            path: dir.clone(),
            source,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(control_err)?;
        }
        let control = UnixListener::bind(dir.join("control.sock")).map_err(control_err)?;
        let n = options.workers;
        let shared = Arc::new(Shared {
            options,
            token,
            state: Mutex::new(State {
                slots: (0..n).map(|_| None).collect(),
                sids: HashMap::new(),
                turn: 0,
            }),
            opened: Notify::new(),
            next_conn: std::sync::atomic::AtomicU64::new(0),
        });
        Ok(Primary {
            listener,
            control,
            dir,
            handle: PrimaryHandle {
                shared,
                pids: Arc::new(Mutex::new(vec![None; n])),
                addr: local,
            },
        })
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// A handle to look at the primary while it runs.
    pub fn handle(&self) -> PrimaryHandle {
        self.handle.clone()
    }

    /// Starts the workers and serves until SIGTERM or SIGINT, then stops the workers gracefully.
    pub async fn run(self) -> Result<(), StickyError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(StickyError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(StickyError::Signal)?;
        self.run_until(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await
    }

    /// Starts the workers and serves until `shutdown` completes, then stops the workers: SIGTERM,
    /// and SIGKILL for those still running after the grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), StickyError> {
        let Primary {
            listener,
            control,
            dir,
            handle,
        } = self;
        let shared = handle.shared.clone();
        let program = match &shared.options.program {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(StickyError::Spawn)?,
        };
        let args = shared
            .options
            .args
            .clone()
            .unwrap_or_else(|| std::env::args_os().skip(1).collect());
        let (stop_tx, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_control(control, shared.clone()));
        let mut supervisors = JoinSet::new();
        for index in 0..shared.options.workers {
            let mut command = Command::new(&program);
            command
                .args(&args)
                .env(control::ENV_WORKER, index.to_string())
                .env(control::ENV_SOCKET, dir.join("control.sock"))
                .env(control::ENV_TOKEN, &shared.token)
                .env(control::ENV_ADDR, handle.addr.to_string())
                .kill_on_drop(true);
            supervisors.spawn(supervise(
                index,
                command,
                shared.clone(),
                handle.pids.clone(),
                stop.clone(),
            ));
        }
        tasks.spawn(accept(listener, shared.clone()));
        shutdown.await;
        tracing::info!("sticky: stopping the workers");
        tasks.abort_all();
        let _ = stop_tx.send(true);
        while supervisors.join_next().await.is_some() {}
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

/// Accepts connections; each is routed in a task of its own, so a slow client never holds the
/// others.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                tokio::spawn(route(stream, shared.clone()));
            }
            Err(e) => {
                // out of file descriptors and the like: never spin
                tracing::warn!("sticky: accept failed, retrying in {backoff:?}: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

enum PeekError {
    Closed,
    Head(HeadError),
}

/// Reads the request head without consuming it: the worker reads the whole request itself.
async fn peek_head(stream: &TcpStream, max: usize) -> Result<Head, PeekError> {
    let mut buf = vec![0u8; max];
    let mut seen = 0;
    loop {
        stream.readable().await.map_err(|_| PeekError::Closed)?;
        // the same bytes as last time: wait for more (readiness is cleared by WouldBlock)
        let peeked = stream.try_io(Interest::READABLE, || {
            let n = rustix::net::recv(stream, &mut buf[..], rustix::net::RecvFlags::PEEK)
                .map_err(io::Error::from)?
                .0;
            if n == seen && n != 0 {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        });
        let n = match peeked {
            Ok(0) => return Err(PeekError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(PeekError::Closed),
        };
        seen = n;
        match head::parse(&buf[..n], max) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(e) => return Err(PeekError::Head(e)),
        }
    }
}

/// One connection: its first request's head decides the worker.
async fn route(stream: TcpStream, shared: Arc<Shared>) {
    let options = &shared.options;
    let head =
        tokio::time::timeout(options.head_timeout, peek_head(&stream, options.max_head)).await;
    let (target, outcome) = match head {
        Err(_) => (None, Outcome::HeadTimeout),
        Ok(Err(PeekError::Closed)) => return,
        Ok(Err(PeekError::Head(HeadError::Malformed))) => (None, Outcome::BadRequest),
        Ok(Err(PeekError::Head(HeadError::TooLarge))) => (None, Outcome::HeadTooLarge),
        Ok(Ok(Head::Http2)) => (None, Outcome::Http2),
        Ok(Ok(Head::Http1 { sid: Some(sid), .. })) if options.route_by_sid => {
            match shared.owner(&sid).await {
                Some(i) => (Some(i), Outcome::Session),
                None => (None, Outcome::UnknownSid),
            }
        }
        Ok(Ok(Head::Http1 { .. })) => match shared.choose() {
            Some(i) => (Some(i), Outcome::New),
            None => (None, Outcome::NoWorker),
        },
    };
    let (stream, outcome) = match target {
        Some(index) => {
            let Ok(fd) = stream.into_std().map(OwnedFd::from) else {
                return;
            };
            match shared.hand(index, fd) {
                Ok(()) => {
                    shared.count(outcome);
                    return;
                }
                Err((refused, fd)) => {
                    tracing::warn!(
                        worker = index,
                        "sticky: cannot hand a connection: {refused:?}"
                    );
                    let std = std::net::TcpStream::from(fd);
                    let Ok(stream) = std
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(std))
                    else {
                        return;
                    };
                    (stream, refused)
                }
            }
        }
        None => (stream, outcome),
    };
    shared.count(outcome);
    tracing::debug!("sticky: refused a connection: {outcome:?}");
    refuse(stream, outcome).await;
}

/// Answers a connection the primary cannot route, and closes it.
async fn refuse(mut stream: TcpStream, outcome: Outcome) {
    let (status, content_type, body) = match outcome {
        Outcome::UnknownSid => ("400 Bad Request", "application/json", UNKNOWN_SID),
        Outcome::NoWorker | Outcome::QueueFull => (
            "503 Service Unavailable",
            "text/plain",
            "no worker available\n",
        ),
        Outcome::HeadTooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n",
        ),
        Outcome::HeadTimeout => (
            "408 Request Timeout",
            "text/plain",
            "request head too slow\n",
        ),
        Outcome::Http2 => (
            "505 HTTP Version Not Supported",
            "text/plain",
            "HTTP/1.1 only\n",
        ),
        Outcome::BadRequest | Outcome::New | Outcome::Session => {
            ("400 Bad Request", "text/plain", "malformed request\n")
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // read what the client still sends, so closing does not reset the answer away
        let mut sink = [0u8; 4096];
        let mut left: usize = 1 << 20;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Accepts workers on the control socket.
async fn accept_control(control: UnixListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        match control.accept().await {
            Ok((stream, _)) => {
                conns.spawn(worker_conn(stream, shared.clone()));
            }
            Err(e) => {
                tracing::warn!("sticky: control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One worker's control connection: HELLO, then its sessions; connections go the other way.
async fn worker_conn(stream: UnixStream, shared: Arc<Shared>) {
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let hello = tokio::time::timeout(Duration::from_secs(5), Up::read(&mut rd)).await;
    let index = match hello {
        Ok(Ok(Some(Up::Hello { index, token })))
            if token == shared.token && index < shared.options.workers =>
        {
            index
        }
        _ => {
            tracing::warn!("sticky: a control connection that is not one of our workers, closed");
            return;
        }
    };
    let conn = shared
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<OwnedFd>(shared.options.queue);
    // a worker reconnecting replaces its previous connection and sessions
    shared.gone(index, None);
    shared.state().slots[index] = Some(Live {
        conn,
        tx,
        sessions: HashSet::new(),
    });
    tracing::debug!(worker = index, "sticky: worker ready");
    let feeder = async {
        while let Some(fd) = rx.recv().await {
            if let Err(e) = control::send_fd(wr.as_ref(), fd.as_fd()).await {
                tracing::warn!(worker = index, "sticky: handing a connection failed: {e}");
                return;
            }
        }
    };
    let reader = async {
        loop {
            match Up::read(&mut rd).await {
                Ok(Some(Up::Open(sid))) => {
                    if !shared.session(index, conn, sid, true) {
                        return;
                    }
                    shared.opened.notify_waiters();
                }
                Ok(Some(Up::Close(sid))) => {
                    if !shared.session(index, conn, sid, false) {
                        return;
                    }
                }
                Ok(Some(Up::Hello { .. })) | Ok(None) => return,
                Err(e) => {
                    tracing::warn!(worker = index, "sticky: control connection: {e}");
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = feeder => {}
        () = reader => {}
    }
    shared.gone(index, Some(conn));
}

/// Runs worker `index`, restarting it when it exits (with a backoff), until told to stop.
async fn supervise(
    index: usize,
    mut command: Command,
    shared: Arc<Shared>,
    pids: Arc<Mutex<Vec<Option<u32>>>>,
    mut stop: watch::Receiver<bool>,
) {
    let set_pid = |pid: Option<u32>| {
        if let Some(p) = pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(index)
        {
            *p = pid;
        }
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        match command.spawn() {
            Ok(mut child) => {
                let pid = child.id();
                set_pid(pid);
                tracing::info!(worker = index, pid, "sticky: worker started");
                tokio::select! {
                    status = child.wait() => {
                        set_pid(None);
                        shared.gone(index, None);
                        tracing::warn!(worker = index, pid, "sticky: worker exited ({status:?}), restarting in {backoff:?}");
                        #[cfg(feature = "prometheus")]
                        if let Some(m) = &shared.options.metrics {
                            m.restarts.inc();
                        }
                    }
                    _ = stop.changed() => {
                        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
                            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                        }
                        if tokio::time::timeout(shared.options.grace, child.wait()).await.is_err() {
                            tracing::warn!(worker = index, pid, "sticky: worker still running after the grace period, killed");
                            let _ = child.kill().await;
                        }
                        set_pid(None);
                        shared.gone(index, None);
                        tracing::info!(worker = index, pid, "sticky: worker stopped");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::error!(worker = index, "sticky: cannot start a worker: {e}");
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
