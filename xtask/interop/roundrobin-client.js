// Real socket.io-client sessions through a round-robin proxy with no stickiness, for the
// no-sticky-sessions tests (crates/demo/tests/roundrobin.rs, crates/sticky/tests/forward.rs):
//   node roundrobin-client.js <url> <clients> <rounds> polling|upgrade|kill
// The servers are demo servers (crates/demo): `hello {server}` on connect, `echo` acknowledged
// with its argument, every `chat` re-emitted to every client of every server; or workers of the
// sticky example (crates/sticky/examples/sticky.rs), which say and answer the same in their words.
// - polling: long-polling only; every client makes <rounds> round trips (`echo` and its ack),
//   then says one chat line, and every client must receive every line.
// - upgrade: the default transports (polling, then the upgrade to WebSocket through whichever
//   server the proxy picks); then the rounds and the chat as above, over WebSocket.
// - kill: long-polling only, with reconnection; prints {"phase":"connected","servers":[...]},
//   waits for a line on stdin naming the server just killed, then waits until every client of
//   that server has left and every client is connected again, makes the round trips, chats, and
//   reports how each disconnected client left.
// Prints one JSON line and exits 0, or {error, status, body} and exits 1.
"use strict";

const http = require("node:http");
const readline = require("node:readline");
const { io } = require("socket.io-client");

const [url, count, roundsArg, mode] = process.argv.slice(2);
const n = Number(count || "3");
const rounds = Number(roundsArg || "10");

function once(emitter, event, ms = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

// demo servers say `{server}`, the sticky example's workers `{worker, pid}`
function name(h) {
  return h.server !== undefined ? h.server : `worker ${h.worker}`;
}

function fail(e) {
  // engine.io-client's TransportError: description = HTTP status, context = the request
  const status = e && e.description;
  const ctx = e && e.context;
  const body = ctx && (ctx.responseText || (ctx.xhr && ctx.xhr.responseText));
  console.log(JSON.stringify({ error: String((e && e.message) || e), status, body: body || null }));
  process.exit(1);
}

async function chatRound(clients) {
  clients.forEach((c) => {
    c.lines = [];
  });
  clients.forEach((c, i) => c.emit("chat", { text: `line ${i}` }));
  const deadline = Date.now() + 15000;
  while (clients.some((c) => c.lines.length < clients.length) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return clients.reduce((sum, c) => sum + c.lines.length, 0);
}

async function roundTrips(clients) {
  let done = 0;
  const rtts = [];
  await Promise.all(
    clients.map(async (c) => {
      for (let r = 0; r < rounds; r++) {
        const t0 = process.hrtime.bigint();
        const back = await c.timeout(10000).emitWithAck("echo", r);
        rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
        // the demo answers the argument, the sticky example `{args, worker}`
        const got = back !== null && typeof back === "object" ? back.args : back;
        if (got !== r) throw new Error(`echo ${r} answered ${JSON.stringify(back)}`);
        done++;
      }
    }),
  );
  rtts.sort((a, b) => a - b);
  const p99 = rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * 0.99))] : null;
  return { done, p99 };
}

async function main() {
  const kill = mode === "kill";
  const clients = [];
  for (let i = 0; i < n; i++) {
    // kill: no keep-alive. xmlhttprequest-ssl 2.1.2 (engine.io-client's XHR in Node) answers a
    // reset of a reused socket by re-creating the request without ever sending it
    // (`doRequest(..)` with no `.end()`): the poll would hang until the ping timeout, whatever
    // the servers do. A fresh connection per request surfaces the reset as an error.
    const agent = new http.Agent({ keepAlive: !kill });
    const sock = io(url, {
      forceNew: true,
      reconnection: kill,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      timeout: 10000,
      transports: mode === "upgrade" ? ["polling", "websocket"] : ["polling"],
      agent,
      auth: { name: `c${i}` },
    });
    sock.hello = once(sock, "hello").then(([h]) => name(h));
    sock.lines = [];
    sock.on("chat", (m) => sock.lines.push(m));
    if (!kill) {
      sock.on("connect_error", fail);
      sock.on("disconnect", (reason, details) => {
        if (reason !== "io client disconnect") fail(details || new Error(`disconnected: ${reason}`));
      });
    }
    clients.push(sock);
  }
  const servers = await Promise.all(clients.map((c) => c.hello));
  if (mode === "upgrade") {
    await Promise.all(
      clients.map((c) =>
        c.io.engine.transport.name === "websocket" ? null : once(c.io.engine, "upgrade", 15000),
      ),
    );
  }
  if (kill) {
    clients.forEach((c) => {
      c.left = null;
      c.on("disconnect", (reason, details) => {
        c.left = c.left || {
          reason,
          status: details && details.description,
          at: Date.now(),
        };
        c.hello = once(c, "hello", 30000).then(([h]) => name(h));
      });
    });
    console.log(JSON.stringify({ phase: "connected", servers }));
    const rl = readline.createInterface({ input: process.stdin });
    const [victim] = await once(rl, "line", 120000);
    const killedAt = Date.now();
    // every client of the killed server gone, and every client connected (those, elsewhere)
    const deadline = Date.now() + 30000;
    const settled = () =>
      clients.every((c, i) => c.connected && (servers[i] !== victim.trim() || c.left));
    while (!settled() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = await Promise.all(clients.map((c) => c.hello));
    const { done } = await roundTrips(clients);
    const received = await chatRound(clients);
    const left = clients.map((c) =>
      c.left ? { reason: c.left.reason, status: c.left.status, ms: c.left.at - killedAt } : null,
    );
    clients.forEach((c) => c.disconnect());
    console.log(JSON.stringify({ servers, after, left, roundtrips: done, received }));
    process.exit(0);
  }
  const t0 = Date.now();
  const { done, p99 } = await roundTrips(clients);
  const seconds = (Date.now() - t0) / 1000;
  const received = await chatRound(clients);
  const transports = clients.map((c) => c.io.engine.transport.name);
  clients.forEach((c) => c.disconnect());
  console.log(
    JSON.stringify({
      servers,
      transports,
      roundtrips: done,
      per_second: done / seconds,
      p99_ms: p99,
      received,
    }),
  );
  process.exit(0);
}

main().catch(fail);
