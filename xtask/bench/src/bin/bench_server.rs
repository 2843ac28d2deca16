//! One benchmark server: `bench-server --impl <name> [--redis URL] [--discovery URL] [--mongo URL]
//! [--relay PATH [--primary]] [--max-publish-age-ms MS]`. Prints
//! `ready <port>` once it listens (`--primary`: the cluster relay alone, `ready 0`;
//! `--impl switchboard-sticky [--workers N]`: a sticky primary and its workers; `--impl echo
//! [--forward-secret S]`: one server for the proxied polling scenario). Every implementation runs
//! the same app:
//!
//! - namespace `/`: load clients; each receives `count` events `{seq, ts, pad}` and acks `ask`;
//! - namespace `/ctl`: the harness asks `blast {start, count, size, rate}` (server-wide `count`
//!   events, paced at `rate`/s or unpaced when 0, acked when all were emitted), `fetch n`
//!   (n fetchSockets, acked with their durations in µs) and `acks n` (n broadcasts with acks to
//!   every client, acked with their completion times in µs).
#![allow(clippy::print_stdout)] // the harness reads the port from stdout

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::serve::ListenerExt;
use futures_util::{StreamExt, future::BoxFuture};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use socketioxide::{
    SocketIo, SocketIoBuilder,
    adapter::{Adapter, Emitter},
    extract::{AckSender, Data, SocketRef},
};
use socketioxide_core::adapter::DefinedAdapter;
use switchboard_adapter_mesh::{MeshAdapter, MeshOptions, MeshTransport};
use switchboard_adapter_redis::{
    AdapterOptions, ClusterState, RedisAdapter, RedisOptions, RedisTransport,
};
use tokio::net::TcpListener;

#[path = "../shared.rs"]
mod shared;

use shared::{arg, now_us};

#[derive(Debug, Deserialize)]
struct Blast {
    start: u64,
    count: u64,
    size: usize,
    /// Events per second; 0: as fast as possible.
    rate: u64,
}

#[derive(Serialize)]
struct Count<'a> {
    seq: u64,
    ts: u64,
    pad: &'a str,
}

async fn blast<A: Adapter>(io: &SocketIo<A>, b: &Blast) {
    let pad = "x".repeat(b.size);
    let mut tick = (b.rate > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / b.rate as f64));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    for seq in b.start..b.start + b.count {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        let _ = io
            .emit(
                "count",
                &Count {
                    seq,
                    ts: now_us(),
                    pad: &pad,
                },
            )
            .await;
    }
}

fn micros(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Registers the control events, as a connect middleware: socketioxide 0.18 answers CONNECT
/// before it runs an `async` connect handler, and the harness's first call, sent as soon as it is
/// connected, could arrive before `on` ran and never be answered (seen: a run stalled 600 s on
/// `fetch`, another on `blast`). Middlewares run before CONNECT is answered.
async fn control<A: Adapter>(socket: SocketRef<A>) -> Result<(), std::convert::Infallible> {
    socket.on(
        "blast",
        async |io: SocketIo<A>, Data(b): Data<Blast>, ack: AckSender<A>| {
            blast(&io, &b).await;
            let _ = ack.send(&"done");
        },
    );
    socket.on(
        "fetch",
        async |io: SocketIo<A>, Data(n): Data<u32>, ack: AckSender<A>| {
            let mut times = Vec::new();
            for _ in 0..n {
                let t = Instant::now();
                let found = io.fetch_sockets().await.map(|s| s.len()).unwrap_or(0);
                times.push((micros(t), found));
            }
            let _ = ack.send(&times);
        },
    );
    socket.on(
        "acks",
        async |io: SocketIo<A>, Data(n): Data<u32>, ack: AckSender<A>| {
            let mut times = Vec::new();
            for _ in 0..n {
                let t = Instant::now();
                let got = match io
                    .timeout(Duration::from_secs(5))
                    .emit_with_ack::<_, Json>("ask", &1)
                    .await
                {
                    Ok(stream) => {
                        stream
                            .filter(|(_, r)| std::future::ready(r.is_ok()))
                            .count()
                            .await
                    }
                    Err(_) => 0,
                };
                times.push((micros(t), got));
            }
            let _ = ack.send(&times);
        },
    );
    Ok(())
}

/// Waits until a namespace's adapter is ready (subscribed, connected).
type Init<A> = fn(
    <A as socketioxide_core::adapter::CoreAdapter<Emitter>>::InitRes,
) -> BoxFuture<'static, Result<()>>;

fn ready(_: ()) -> BoxFuture<'static, Result<()>> {
    Box::pin(async { Ok(()) })
}

fn init<F, E>(f: F) -> BoxFuture<'static, Result<()>>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    Box::pin(async move { f.await.map_err(|e| anyhow::anyhow!("adapter init: {e}")) })
}

async fn serve<A: Adapter + DefinedAdapter>(
    builder: SocketIoBuilder<A>,
    init: Init<A>,
) -> Result<()> {
    use socketioxide::handler::ConnectHandler;
    // every delivery must count: socketioxide drops packets to a socket whose buffer is full
    let (layer, io) = builder.max_buffer_size(1 << 20).build_layer();
    init(io.ns("/", async |_: SocketRef<A>| {})).await?;
    init(io.ns("/ctl", (async |_: SocketRef<A>| {}).with(control::<A>))).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("ready {}", listener.local_addr()?.port());
    let app = axum::Router::new().layer(layer);
    // small frames leave at once, as from Node (whose sockets are noDelay)
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Namespace "/" acknowledging `echo` with its argument, the handler registered in a connect
/// middleware (before CONNECT is answered: a client that emits at once never beats it).
fn echo_namespace(io: &SocketIo) {
    use socketioxide::handler::ConnectHandler;
    let register = async |s: SocketRef| {
        s.on("echo", async |Data(v): Data<Json>, ack: AckSender| {
            let _ = ack.send(&v);
        });
        Ok::<(), std::convert::Infallible>(())
    };
    io.ns("/", (async |_: SocketRef| {}).with(register));
}

/// `--impl switchboard-sticky [--workers N]`: a sticky primary (it prints `ready <port>`) whose
/// workers, this binary again, acknowledge `echo` on "/" with its argument. No adapter: the
/// polling scenario measures the routing.
async fn sticky(args: &[String]) -> Result<()> {
    use switchboard_sticky::{Primary, Role, StickyOptions, Worker};
    match switchboard_sticky::role() {
        Role::Primary => {
            let workers = arg(args, "--workers")
                .and_then(|n| n.parse().ok())
                .unwrap_or(2);
            let options = StickyOptions::default().workers(workers);
            let primary = Primary::bind("127.0.0.1:0", options).await?;
            println!("ready {}", primary.local_addr().port());
            primary.run().await?;
            Ok(())
        }
        Role::Worker { .. } => {
            let (worker, listener) = Worker::connect().await?;
            let (layer, io) = SocketIo::builder().build_layer();
            echo_namespace(&io);
            worker.watch(io.clone());
            let app = worker.router(axum::Router::new().layer(layer));
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    worker.closed().await;
                    io.close().await;
                })
                .await?;
            Ok(())
        }
    }
}

/// `--impl echo [--forward-secret S]`: one server without adapter that acknowledges `echo` on
/// "/" with its argument, with `switchboard-forward` in front when given a secret (advertised at
/// its own address). Three of them behind HAProxy make the proxied polling scenario.
async fn echo(args: &[String]) -> Result<()> {
    use switchboard_forward::{ForwardLayer, ForwardOptions};
    let (layer, io) = SocketIo::builder().build_layer();
    echo_namespace(&io);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().layer(layer);
    let app = match arg(args, "--forward-secret") {
        Some(secret) => app.layer(ForwardLayer::new(ForwardOptions::new(addr, secret))?),
        None => app,
    };
    println!("ready {}", addr.port());
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// The capped collection of every mongo implementation: large enough that a blast never wraps
/// around while a change stream still reads it.
const MONGO_CAPPED_SIZE: u64 = 256 << 20;

/// The database `bench` of `--mongo URL`.
async fn mongo_db(args: &[String]) -> Result<mongodb::Database> {
    let url = arg(args, "--mongo").context("--mongo")?;
    Ok(mongodb::Client::with_uri_str(&url).await?.database("bench"))
}

#[tokio::main]
async fn main() -> Result<()> {
    // warnings (a lagging subscriber, dropped messages) reach the harness's output
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let imp = arg(&args, "--impl").context("--impl")?;
    let redis = || arg(&args, "--redis").context("--redis");
    let config = AdapterOptions::default();
    match imp.as_str() {
        "socketioxide" => serve(SocketIo::builder(), ready).await,
        "switchboard-sticky" => sticky(&args).await,
        "echo" => echo(&args).await,
        "socketioxide-redis" => {
            let mut cfg = fred::prelude::Config::from_url(&redis()?)?;
            cfg.version = fred::types::RespVersion::RESP3;
            let client = fred::prelude::Builder::from_config(cfg).build_subscriber_client()?;
            let ctr = socketioxide_redis::RedisAdapterCtr::new_with_fred(client).await?;
            serve(
                SocketIo::builder().with_adapter::<socketioxide_redis::FredAdapter<Emitter>>(ctr),
                init,
            )
            .await
        }
        "switchboard-redis" | "switchboard-redis-sharded" => {
            let mut options = if imp.ends_with("sharded") {
                RedisOptions::sharded()
            } else {
                RedisOptions::classic()
            };
            // under valgrind (xtask/bench/callgrind.sh) a publish waits longer than the default 2 s
            if let Some(ms) = arg(&args, "--max-publish-age-ms") {
                options = options.max_publish_age(Duration::from_millis(ms.parse()?));
            }
            let transport = RedisTransport::connect(&redis()?, options).await?;
            let state = ClusterState::new(transport, config);
            serve(
                SocketIo::builder().with_adapter::<RedisAdapter<Emitter>>(state),
                init,
            )
            .await
        }
        "switchboard-mesh" => {
            let discovery = arg(&args, "--discovery").context("--discovery")?;
            let options = MeshOptions::default()
                .discovery(discovery)
                .bind([127, 0, 0, 1].into())
                .ws_port(0);
            let transport = MeshTransport::start(options).await?;
            let state = ClusterState::new(transport, config);
            serve(
                SocketIo::builder().with_adapter::<MeshAdapter<Emitter>>(state),
                init,
            )
            .await
        }
        "switchboard-cluster" => {
            use switchboard_adapter_cluster::{
                ClusterAdapter, ClusterOptions, ClusterTransport, Relay, RelayOptions,
            };
            let path = arg(&args, "--relay").context("--relay")?;
            if args.iter().any(|a| a == "--primary") {
                // the relay alone, in a process of its own as in a deployment (the primary)
                let _relay = Relay::bind(&path, RelayOptions::default()).await?;
                println!("ready 0");
                std::future::pending::<()>().await;
            }
            let transport = ClusterTransport::connect(&path, ClusterOptions::default()).await?;
            let state = ClusterState::new(transport, config);
            serve(
                SocketIo::builder().with_adapter::<ClusterAdapter<Emitter>>(state),
                init,
            )
            .await
        }
        "switchboard-mongo" => {
            let db = mongo_db(&args).await?;
            let collection = switchboard_adapter_mongo::create_capped_collection(
                &db,
                "switchboard-events",
                MONGO_CAPPED_SIZE,
            )
            .await?;
            let transport = switchboard_adapter_mongo::MongoTransport::new(
                collection,
                switchboard_adapter_mongo::MongoOptions::default(),
            );
            let state = ClusterState::new(transport, config);
            serve(
                SocketIo::builder()
                    .with_adapter::<switchboard_adapter_mongo::MongoAdapter<Emitter>>(state),
                init,
            )
            .await
        }
        "socketioxide-mongodb" => {
            use socketioxide_mongodb::{
                MessageExpirationStrategy, MongoDbAdapter, MongoDbAdapterConfig, MongoDbAdapterCtr,
            };
            let db = mongo_db(&args).await?;
            // a capped collection like the others (its default is a TTL index)
            let config = MongoDbAdapterConfig::new()
                .with_collection("socketioxide-events")
                .with_expiration_strategy(MessageExpirationStrategy::CappedCollection(
                    MONGO_CAPPED_SIZE,
                ));
            let ctr = MongoDbAdapterCtr::new_with_mongodb_config(db, config).await?;
            serve(
                SocketIo::builder().with_adapter::<MongoDbAdapter<Emitter>>(ctr),
                init,
            )
            .await
        }
        other => bail!("unknown implementation {other}"),
    }
}
