//! `cargo xtask bench --mongo`: the MongoDB implementations (Switchboard mongo, Node's
//! @socket.io/mongo-adapter, socketioxide-mongodb) on one SecantusDB, and that server's own
//! ceiling. A page of its own (`docs/benchmarks/mongo.md`): SecantusDB is a Python server that
//! bounds every figure, so these rows do not belong beside the redis ones.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use mongodb::bson::{Document, doc};

use crate::{Impl, Kind, Sizes};

pub(crate) const SWITCHBOARD: &str = "switchboard mongo";
pub(crate) const NODE: &str = "node mongo-adapter 0.4";
pub(crate) const SIOXIDE: &str = "socketioxide-mongodb 0.1.5";

pub(crate) const IMPLS: [Impl; 3] = [
    Impl {
        name: SWITCHBOARD,
        kind: Kind::Rust("switchboard-mongo"),
    },
    Impl {
        name: NODE,
        kind: Kind::Node("mongo"),
    },
    Impl {
        name: SIOXIDE,
        kind: Kind::Rust("socketioxide-mongodb"),
    },
];

/// Smaller than the redis sizes: every message is a document inserted into a Python server.
pub(crate) const FULL: Sizes = Sizes {
    clients: 200,
    warm: 200,
    blast: 2_000,
    paced: 600,
    path_small: 1_500,
    path_large: 500,
    requests: 30,
    polling_sessions: 0,
    polling_round_trips: 0,
    // the scale scenarios are not run for MongoDB
    scale_events: 0,
    conns_per_server: 0,
    idle: Duration::ZERO,
    payload_small: 0,
    payload_large: 0,
    stall: Duration::from_secs(30),
};

pub(crate) const QUICK: Sizes = Sizes {
    clients: 200,
    warm: 100,
    blast: 1_000,
    paced: 300,
    path_small: 1_000,
    path_large: 300,
    requests: 10,
    polling_sessions: 0,
    polling_round_trips: 0,
    // the scale scenarios are not run for MongoDB
    scale_events: 0,
    conns_per_server: 0,
    idle: Duration::ZERO,
    payload_small: 0,
    payload_large: 0,
    stall: Duration::from_secs(30),
};

/// What the server itself sustains: `n` 64-byte documents inserted by one client (`insertMany`
/// batches of 256, as the Switchboard writer does), counted by a change stream watcher. Returns
/// documents per second as the watcher saw them.
pub(crate) async fn ceiling(url: &str, n: usize) -> Result<f64> {
    let client = mongodb::Client::with_uri_str(url).await?;
    let collection = client
        .database("bench")
        .collection::<Document>(&format!("ceiling-{}", crate::shared::now_us()));
    let mut stream = collection.watch().await.context("watch")?;
    let writer = {
        let collection = collection.clone();
        tokio::spawn(async move {
            let pad = "x".repeat(64);
            for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
                let docs = chunk.iter().map(|i| doc! {"i": *i as i64, "pad": &pad});
                collection.insert_many(docs).await?;
            }
            anyhow::Ok(())
        })
    };
    let t0 = Instant::now();
    let mut seen = 0;
    while seen < n {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(_))) => seen += 1,
            _ => break,
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    writer.await??;
    Ok(seen as f64 / elapsed)
}
