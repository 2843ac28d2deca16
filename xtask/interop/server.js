// A Node Socket.IO server in a redis cluster, for Switchboard's interop tests.
//
//   node server.js --redis redis://127.0.0.1:6379 --mode classic|sharded|sharded-dynamic --port 0
//   node server.js --mongo mongodb://127.0.0.1:27017/?directConnection=true --mode mongo --port 0
//   (add --csr for connection state recovery)
//
// Prints `ready <port>` once listening. Namespace "/" is the app: clients join the rooms named in
// their auth, "relay" is re-broadcast with socket.broadcast, server-side "ping" events are
// answered. Namespace "/control" takes commands: emit "cmd" with {op, ...} and an ack callback.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");
const { MongoClient } = require("mongodb");
const { createAdapter: createMongoAdapter } = require("@socket.io/mongo-adapter");
const { Emitter: MongoEmitter } = require("@socket.io/mongo-emitter");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const redisUrl = arg("redis", "redis://127.0.0.1:6379");
const mode = arg("mode", "classic");
const port = Number(arg("port", "0"));

// JSON-friendly view of what Node received: Buffers as {bin: [bytes]}
function plain(v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { bin: Array.from(v) };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x);
    return o;
  }
  return v;
}

// and back: {bin: [bytes]} as a Buffer
function revive(v) {
  if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && Array.isArray(v.bin)) {
    return Buffer.from(v.bin);
  }
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = revive(x);
    return o;
  }
  return v;
}

// the mongo adapter on a capped collection of the database "socketio", as its README shows
async function mongo() {
  const client = new MongoClient(arg("mongo", "mongodb://127.0.0.1:27017/?directConnection=true"));
  await client.connect();
  const db = client.db("socketio");
  try {
    await db.createCollection("socket.io-adapter-events", { capped: true, size: 1e6 });
  } catch (e) {
    // already there
  }
  const collection = db.collection("socket.io-adapter-events");
  // The adapter inserts each document without awaiting the previous one, over a pool of
  // connections: two broadcasts issued back to back can reach the collection in either order.
  // Commands are answered once every insert they started has completed (`settle`), so commands
  // the test issues one after another land in the collection in that order.
  const pending = new Set();
  const insertOne = collection.insertOne.bind(collection);
  collection.insertOne = (...args) => {
    const p = insertOne(...args);
    pending.add(p);
    p.finally(() => pending.delete(p)).catch(() => {});
    return p;
  };
  return {
    adapter: createMongoAdapter(collection),
    emitter: new MongoEmitter(collection),
    settle: () => Promise.allSettled([...pending]),
    close: () => client.close(),
  };
}

async function redis() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error("redis pub", e.message));
  sub.on("error", (e) => console.error("redis sub", e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  const adapter =
    mode === "sharded"
      ? createShardedAdapter(pub, sub, { subscriptionMode: "static" })
      : mode === "sharded-dynamic"
        ? createShardedAdapter(pub, sub) // Node's default: dynamic
        : createAdapter(pub, sub);
  return {
    adapter,
    emitter: mode === "classic" ? new Emitter(pub) : null,
    // one connection publishes everything, in order
    settle: () => Promise.resolve(),
    close: () => Promise.allSettled([pub.quit(), sub.quit()]),
  };
}

async function main() {
  const broker = mode === "mongo" ? await mongo() : await redis();
  const adapter = broker.adapter;
  const emitter = broker.emitter;

  const httpServer = http.createServer();
  // --csr: connection state recovery, as a user enables it
  const csr = process.argv.includes("--csr")
    ? { connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: true } }
    : {};
  const io = new Server(httpServer, { adapter, ...csr });

  io.on("connection", (socket) => {
    const rooms = (socket.handshake.auth && socket.handshake.auth.rooms) || [];
    socket.join(rooms);
    socket.data = { name: (socket.handshake.auth && socket.handshake.auth.name) || "node" };
    socket.on("relay", (d) => socket.broadcast.emit("relayed", d));
  });
  // events other servers send with serverSideEmit
  io.on("ping", (arg, cb) => {
    if (typeof cb === "function") cb(`node-pong-${arg}`);
  });
  io.on("note", (arg) => {
    io.of("/control").emit("noted", arg);
  });

  const target = (c) => {
    let op = io;
    for (const r of c.rooms || []) op = op.to(r);
    for (const r of c.except || []) op = op.except(r);
    return op;
  };

  io.of("/control").on("connection", (socket) => {
    socket.on("cmd", async (c, answer) => {
      const ack = (v) => broker.settle().then(() => answer(v));
      try {
        switch (c.op) {
          case "emit":
            target(c).emit(c.event, ...revive(c.args || []));
            return ack("ok");
          case "emitWithAck": {
            const responses = await target(c).timeout(c.timeout || 2000).emitWithAck(c.event, ...revive(c.args || []));
            return ack({ responses: plain(responses) });
          }
          case "fetchSockets": {
            const sockets = await target(c).fetchSockets();
            return ack(
              sockets.map((s) => ({
                id: s.id,
                rooms: [...s.rooms],
                data: plain(s.data),
                handshake: {
                  address: s.handshake.address,
                  headers: s.handshake.headers,
                  time: s.handshake.time,
                  issued: s.handshake.issued,
                  url: s.handshake.url,
                  query: s.handshake.query,
                  auth: s.handshake.auth,
                  secure: s.handshake.secure,
                  xdomain: s.handshake.xdomain,
                },
              }))
            );
          }
          case "remote": {
            const [s] = (await io.fetchSockets()).filter((s) => s.id === c.id);
            if (!s) return ack({ error: "no such socket" });
            if (c.action === "emit") s.emit(c.event, ...revive(c.args || []));
            if (c.action === "join") s.join(c.room);
            if (c.action === "leave") s.leave(c.room);
            if (c.action === "disconnect") s.disconnect(true);
            return ack("ok");
          }
          case "socketsJoin":
            target(c).socketsJoin(c.room);
            return ack("ok");
          case "socketsLeave":
            target(c).socketsLeave(c.room);
            return ack("ok");
          case "disconnectSockets":
            target(c).disconnectSockets(!!c.close);
            return ack("ok");
          case "serverSideEmit":
            if (c.ack) {
              const responses = await io.serverSideEmitWithAck(c.event, c.arg);
              return ack({ responses: plain(responses) });
            }
            io.serverSideEmit(c.event, c.arg);
            return ack("ok");
          case "allRooms":
            return ack([...(await io.of("/").adapter.allRooms())]);
          case "serverCount":
            return ack(await io.of("/").adapter.serverCount());
          case "emitter": {
            let e = emitter;
            for (const r of c.rooms || []) e = e.to(r);
            e.emit(c.event, ...revive(c.args || []));
            return ack("ok");
          }
          default:
            return ack({ error: `unknown op ${c.op}` });
        }
      } catch (e) {
        ack({ error: String(e && e.message ? e.message : e) });
      }
    });
  });

  httpServer.listen(port, "127.0.0.1", () => {
    console.log(`ready ${httpServer.address().port}`);
  });
  const stop = () => {
    io.close();
    Promise.resolve(broker.close()).finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // the test runner closes our stdin when it goes away: never outlive it
  process.stdin.on("end", stop);
  process.stdin.resume();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
