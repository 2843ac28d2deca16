// Real socket.io-client sessions through a proxy, for the deployment tests
// (crates/adapter-mesh/tests/proxies.rs):
//   node proxy-client.js <url> <clients>
// Client i connects from 127.0.0.<i+2> (so that an address hash spreads them) with the default
// transports (long-polling first, then the upgrade to WebSocket) and a cookie jar
// (withCredentials). The servers greet each client with `hello {server}` and re-emit every
// `chat` to every client of every server. Every client says one line, and every client must
// receive every line, after its upgrade.
// Prints one JSON line: {servers, upgraded, received} and exits 0, or {error, status, body} and
// exits 1.
"use strict";

const http = require("node:http");
const { io } = require("socket.io-client");

const [url, count] = process.argv.slice(2);
const n = Number(count || "3");

function once(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

function fail(e) {
  // engine.io-client's TransportError: description = HTTP status, context = the request
  const status = e && e.description;
  const ctx = e && e.context;
  const body = ctx && (ctx.responseText || (ctx.xhr && ctx.xhr.responseText));
  console.log(JSON.stringify({ error: String((e && e.message) || e), status, body: body || null }));
  process.exit(1);
}

async function main() {
  const clients = [];
  for (let i = 0; i < n; i++) {
    const agent = new http.Agent({ keepAlive: true, localAddress: `127.0.0.${i + 2}` });
    const sock = io(url, {
      forceNew: true,
      reconnection: false,
      timeout: 10000,
      withCredentials: true,
      agent,
    });
    sock.hello = once(sock, "hello").then(([h]) => h.server);
    sock.lines = [];
    sock.on("chat", (m) => sock.lines.push(m));
    sock.on("connect_error", fail);
    sock.on("disconnect", (reason, details) => {
      if (reason !== "io client disconnect") fail(details || new Error(`disconnected: ${reason}`));
    });
    clients.push(sock);
  }
  const servers = await Promise.all(clients.map((c) => c.hello));
  // the upgrade to WebSocket, through the proxy
  await Promise.all(
    clients.map((c) =>
      c.io.engine.transport.name === "websocket" ? null : once(c.io.engine, "upgrade", 10000),
    ),
  );
  const upgraded = clients.filter((c) => c.io.engine.transport.name === "websocket").length;
  clients.forEach((c, i) => c.emit("chat", { from: i, text: `line ${i}` }));
  const deadline = Date.now() + 10000;
  while (clients.some((c) => c.lines.length < n) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const received = clients.reduce((sum, c) => sum + c.lines.length, 0);
  clients.forEach((c) => c.disconnect());
  console.log(JSON.stringify({ servers, upgraded, received }));
  process.exit(0);
}

main().catch(fail);
