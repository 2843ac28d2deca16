//! A server the suite drives without knowing where it runs: a [`TestServer`] in this process, or
//! a server process speaking the [`control`] protocol on its stdin and stdout.

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt},
    process::{Child, ChildStdin, Command},
    sync::oneshot,
};

use crate::{
    control::{self, Arg, Calls, Failure, Op, RemoteAction, Request, Response, Target},
    server::TestServer,
    suite::WAIT,
};
use switchboard_adapter_core::Transport;

/// Carries out operations on one server.
trait Control: Send + Sync {
    fn call(&self, op: Op) -> BoxFuture<'_, Result<Json, Failure>>;
    fn crash(&self);
    fn pid(&self) -> Option<u32> {
        None
    }
}

struct Local<T: Transport> {
    server: TestServer<T>,
    calls: Calls,
    crash: Box<dyn Fn(&T) + Send + Sync>,
}

impl<T: Transport> Control for Local<T> {
    fn call(&self, op: Op) -> BoxFuture<'_, Result<Json, Failure>> {
        Box::pin(control::apply(&self.server, &self.calls, op))
    }

    fn crash(&self) {
        (self.crash)(&self.server.transport);
    }
}

/// Requests waiting for their response; `None` once the process is gone.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<Json, Failure>>>>>>;

fn gone() -> Failure {
    Failure::Other("the server process is gone".into())
}

struct Process {
    child: Mutex<Child>,
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Pending,
    next: AtomicU64,
}

impl Process {
    async fn request(&self, op: Op) -> Result<Json, Failure> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .ok_or_else(gone)?
            .insert(id, tx);
        let mut line =
            serde_json::to_vec(&Request { id, op }).map_err(|e| Failure::Other(e.to_string()))?;
        line.push(b'\n');
        {
            let mut stdin = self.stdin.lock().await;
            stdin
                .write_all(&line)
                .await
                .map_err(|e| Failure::Other(format!("server process: {e}")))?;
            stdin
                .flush()
                .await
                .map_err(|e| Failure::Other(format!("server process: {e}")))?;
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

impl Control for Process {
    fn call(&self, op: Op) -> BoxFuture<'_, Result<Json, Failure>> {
        Box::pin(self.request(op))
    }

    fn crash(&self) {
        let _ = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_kill();
    }

    fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).id()
    }
}

/// A server of the suite, wherever it runs.
pub struct Server {
    /// Where clients connect.
    pub addr: SocketAddr,
    ctl: Box<dyn Control>,
}

impl Server {
    /// A server in this process; `crash` kills its transport.
    pub fn local<T: Transport>(
        server: TestServer<T>,
        crash: impl Fn(&T) + Send + Sync + 'static,
    ) -> Self {
        Server {
            addr: server.addr,
            ctl: Box::new(Local {
                server,
                calls: Calls::default(),
                crash: Box::new(crash),
            }),
        }
    }

    /// Starts a server process (it must call [`control::serve_stdio`]) and waits until it
    /// listens. Crashing it kills it (SIGKILL); dropping it too.
    pub async fn process(mut command: Command) -> Self {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (ready_tx, ready_rx) = oneshot::channel();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::from([(0, ready_tx)]))));
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(r) = serde_json::from_str::<Response>(&line) else {
                    eprintln!("server process said: {line}");
                    continue;
                };
                let tx = reader_pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                    .and_then(|p| p.remove(&r.id));
                if let Some(tx) = tx {
                    let _ = tx.send(r.result);
                }
            }
            // the process is gone: every waiting request fails
            *reader_pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
        let ready = tokio::time::timeout(WAIT, ready_rx)
            .await
            .unwrap_or_else(|_| panic!("{command:?} did not get ready"))
            .unwrap_or_else(|_| panic!("{command:?} exited before it was ready"))
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        let port = ready["ready"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("{command:?} said {ready}"));
        Server {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            ctl: Box::new(Process {
                child: Mutex::new(child),
                stdin: tokio::sync::Mutex::new(stdin),
                pending,
                next: AtomicU64::new(1),
            }),
        }
    }

    /// Does `op` on this server.
    pub async fn call(&self, op: Op) -> Result<Json, Failure> {
        self.ctl.call(op).await
    }

    /// Kills the server: it vanishes without saying goodbye.
    pub fn crash(&self) {
        self.ctl.crash();
    }

    /// The process id of a server that is a process (to stop it, say), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.ctl.pid()
    }

    /// `emit` to `to`.
    pub async fn emit(&self, to: Target, event: &str, args: Vec<Arg>) -> Result<(), Failure> {
        self.call(Op::Emit {
            to,
            event: event.to_owned(),
            args,
        })
        .await
        .map(drop)
    }

    /// `emitWithAck` to `to`: the stream's items once it ended, `Ok(ack)` or `Err(why)`.
    pub async fn emit_with_ack(
        &self,
        to: Target,
        timeout_ms: Option<u64>,
        event: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<Result<Json, String>>, Failure> {
        let acks = self
            .call(Op::EmitWithAck {
                to,
                event: event.to_owned(),
                args,
                timeout_ms,
            })
            .await?;
        Ok(acks
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| match r.get("ok") {
                        Some(v) => Ok(v.clone()),
                        None => Err(r["err"].as_str().unwrap_or_default().to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `fetchSockets`: the ids.
    pub async fn fetch_sockets(&self, to: Target) -> Result<Vec<String>, Failure> {
        strings(self.call(Op::FetchSockets { to }).await?)
    }

    /// `allRooms` of `/`.
    pub async fn rooms(&self) -> Result<Vec<String>, Failure> {
        strings(self.call(Op::Rooms { nsp: "/".into() }).await?)
    }

    /// An operation on socket `sid` of `/`, wherever it is.
    pub async fn remote(&self, sid: &str, action: RemoteAction) -> Result<(), Failure> {
        self.call(Op::Remote {
            nsp: "/".into(),
            sid: sid.to_owned(),
            action,
        })
        .await
        .map(drop)
    }

    /// The server count of `nsp` (0 when unknown).
    pub async fn server_count(&self, nsp: &str) -> usize {
        match self.call(Op::ServerCount { nsp: nsp.into() }).await {
            Ok(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// `io.close()`.
    pub async fn close(&self) {
        let _ = self.call(Op::Close).await;
    }
}

fn strings(v: Json) -> Result<Vec<String>, Failure> {
    serde_json::from_value(v).map_err(|e| Failure::Other(e.to_string()))
}
