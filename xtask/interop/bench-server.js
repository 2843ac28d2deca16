// A Node Socket.IO server for `cargo xtask bench`, with the same app as Switchboard's
// bench-server:
//
//   node bench-server.js --mode classic|sharded|none [--redis redis://127.0.0.1:6379]
//   node bench-server.js --mode mongo --mongo mongodb://127.0.0.1:27017/?directConnection=true
//   node bench-server.js --mode cluster --workers 2   (Node's cluster: the primary relays, each
//                                                      worker prints `ready <port> <pid>`)
//   node bench-server.js --mode sticky --workers 2    (@socket.io/sticky: the primary owns the
//                                                      port; workers answer `echo` on "/")
//
// Prints `ready <port>` once listening. Namespace "/" holds the load clients; namespace "/ctl"
// takes "blast" {start, count, size, rate}, "fetch" n and "acks" n, each with an ack callback.
"use strict";

const http = require("node:http");
const { performance } = require("node:perf_hooks");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const mode = arg("mode", "none");
const redisUrl = arg("redis", "redis://127.0.0.1:6379");

const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function adapter() {
  if (mode === "none") return undefined;
  if (mode === "cluster") {
    return require("@socket.io/cluster-adapter").createAdapter();
  }
  if (mode === "mongo") {
    // @socket.io/mongo-adapter on a capped collection, as its README shows (larger, so a blast
    // never wraps around)
    const { MongoClient } = require("mongodb");
    const { createAdapter: createMongoAdapter } = require("@socket.io/mongo-adapter");
    const client = new MongoClient(arg("mongo", "mongodb://127.0.0.1:27017/?directConnection=true"));
    await client.connect();
    const db = client.db("bench");
    try {
      await db.createCollection("node-events", { capped: true, size: 256 * 1024 * 1024 });
    } catch (e) {
      // already there
    }
    return createMongoAdapter(db.collection("node-events"));
  }
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error("redis pub", e.message));
  sub.on("error", (e) => console.error("redis sub", e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  return mode === "sharded"
    ? createShardedAdapter(pub, sub, { subscriptionMode: "static" })
    : createAdapter(pub, sub);
}

async function blast(io, { start, count, size, rate }) {
  const pad = "x".repeat(size);
  if (!rate) {
    // as fast as it can, yielding now and then so the sockets drain as in a real server
    for (let seq = start; seq < start + count; seq++) {
      io.emit("count", { seq, ts: nowUs(), pad });
      if ((seq - start) % 100 === 99) await new Promise(setImmediate);
    }
    return;
  }
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    io.emit("count", { seq: start + i, ts: nowUs(), pad });
  }
}

async function main() {
  const server = http.createServer();
  const io = new Server(server, { adapter: await adapter() });
  io.on("connection", () => {});
  io.of("/ctl").on("connection", (socket) => {
    socket.on("blast", async (b, ack) => {
      await blast(io, b);
      ack("done");
    });
    socket.on("fetch", async (n, ack) => {
      const times = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        let found = 0;
        try {
          found = (await io.fetchSockets()).length;
        } catch (e) {
          // a timeout (a server it counts did not answer): as the Rust servers, found nothing
          found = 0;
        }
        times.push([Math.round((performance.now() - t) * 1000), found]);
      }
      ack(times);
    });
    socket.on("acks", async (n, ack) => {
      const times = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        let got = 0;
        try {
          got = (await io.timeout(5000).emitWithAck("ask", 1)).length;
        } catch (e) {
          got = 0;
        }
        times.push([Math.round((performance.now() - t) * 1000), got]);
      }
      ack(times);
    });
  });
  // exclusive: in Node's cluster each worker gets a port of its own (not the primary's shared,
  // round-robin one), so the harness can talk to each worker as to a server
  server.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () =>
    console.log(`ready ${server.address().port}${mode === "cluster" ? ` ${process.pid}` : ""}`),
  );
}

// Node's cluster, as @socket.io/cluster-adapter's README sets it up: the primary relays, with
// the "advanced" serialization so that binary survives
function primary() {
  const cluster = require("node:cluster");
  const { setupPrimary } = require("@socket.io/cluster-adapter");
  setupPrimary();
  cluster.setupPrimary({ serialization: "advanced" });
  const n = Number(arg("workers", "2"));
  for (let i = 0; i < n; i++) cluster.fork();
}

// @socket.io/sticky 2.0 on Node's cluster, as its README sets it up: the primary owns the port
// (least-connection) and hands connections to the workers, which answer `echo` on "/". Prints
// `ready <port>` once every worker is up.
function stickyPrimary() {
  const cluster = require("node:cluster");
  const { setupMaster } = require("@socket.io/sticky");
  const server = http.createServer();
  setupMaster(server, { loadBalancingMethod: "least-connection" });
  // as its README: without it the first chunk reaches the worker as JSON, not a Buffer
  cluster.setupPrimary({ serialization: "advanced" });
  const n = Number(arg("workers", "2"));
  let up = 0;
  cluster.on("message", (_worker, msg) => {
    if (msg === "bench-ready" && ++up === n) {
      server.listen(0, "127.0.0.1", () => console.log(`ready ${server.address().port}`));
    }
  });
  for (let i = 0; i < n; i++) cluster.fork();
}

function stickyWorker() {
  const { setupWorker } = require("@socket.io/sticky");
  const io = new Server(http.createServer());
  setupWorker(io);
  io.on("connection", (socket) => socket.on("echo", (v, ack) => ack(v)));
  process.send("bench-ready");
}

if (mode === "sticky") {
  if (require("node:cluster").isPrimary) stickyPrimary();
  else stickyWorker();
} else if (mode === "cluster" && require("node:cluster").isPrimary) {
  primary();
} else main().catch((e) => {
  console.error(e);
  process.exit(1);
});
