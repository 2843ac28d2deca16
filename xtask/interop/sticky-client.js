// Real socket.io-client sessions through a sticky primary, for crates/sticky's tests:
//   node sticky-client.js <url> <scenario> [--msgpack]
// scenarios: polling, upgrade, websocket, keepalive, binary. The servers are the sticky example
// (`hello {worker}` on connect, `echo` acked with {args: <its argument>, worker}, `echo-binary` with {data, worker},
// `shout` broadcast to every other client). Prints one JSON line and exits 0, or says what failed
// on stderr and exits 1.
const http = require("http");
const crypto = require("crypto");
const { io } = require("socket.io-client");

const [url, scenario, ...flags] = process.argv.slice(2);
const parser = flags.includes("--msgpack") ? require("socket.io-msgpack-parser") : undefined;

function client(opts) {
  const sock = io(url, {
    forceNew: true,
    reconnection: false,
    timeout: 10000,
    ...(parser ? { parser } : {}),
    ...opts,
  });
  // `hello` comes right after the connection: listen from the start
  sock.hello = once(sock, "hello").then(([h]) => h.worker);
  return sock;
}

function once(emitter, event, ms = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

// n echo round trips, each answered by the worker that owns the session
async function echoes(sock, worker, n) {
  for (let i = 0; i < n; i++) {
    const res = await sock.timeout(10000).emitWithAck("echo", { i, s: "x" });
    check(res.args.i === i && res.args.s === "x", `echo ${i} came back as ${JSON.stringify(res)}`);
    check(res.worker === worker, `echo ${i} of a session of worker ${worker} answered by ${res.worker}`);
  }
}

// one client shouts, every other one hears it (the cluster adapter across workers)
async function shout(socks) {
  const heard = socks.slice(1).map((s) => once(s, "shout"));
  socks[0].emit("shout", "hi");
  for (const [v] of await Promise.all(heard)) check(v === "hi", `shout came as ${v}`);
}

async function sessions(n, opts) {
  const socks = [];
  const workers = [];
  for (let i = 0; i < n; i++) {
    const s = client(opts);
    socks.push(s);
    workers.push(await s.hello);
  }
  return { socks, workers };
}

const scenarios = {
  async polling() {
    const { socks, workers } = await sessions(8, { transports: ["polling"], upgrade: false });
    await Promise.all(socks.map((s, i) => echoes(s, workers[i], 20)));
    await shout(socks);
    for (const s of socks) check(s.io.engine.transport.name === "polling", "upgraded");
    return { workers, round_trips: 8 * 20 };
  },
  async upgrade() {
    const socks = [];
    const workers = [];
    for (let i = 0; i < 4; i++) {
      const s = client({ transports: ["polling", "websocket"] });
      const upgraded = once(s.io, "open").then(() => once(s.io.engine, "upgrade"));
      workers.push(await s.hello);
      const [transport] = await upgraded;
      check(transport.name === "websocket", `upgraded to ${transport.name}`);
      socks.push(s);
    }
    await Promise.all(socks.map((s, i) => echoes(s, workers[i], 10)));
    await shout(socks);
    return { workers, round_trips: 4 * 10 };
  },
  async websocket() {
    const { socks, workers } = await sessions(4, { transports: ["websocket"] });
    await Promise.all(socks.map((s, i) => echoes(s, workers[i], 10)));
    await shout(socks);
    return { workers, round_trips: 4 * 10 };
  },
  // two sessions owned by different workers share one keep-alive agent (two sockets):
  // every request of each must still reach its owner
  async keepalive() {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const { socks, workers } = await sessions(2, { transports: ["polling"], upgrade: false, agent });
    check(workers[0] !== workers[1], `both sessions on worker ${workers[0]}`);
    await Promise.all(socks.map((s, i) => echoes(s, workers[i], 30)));
    return { workers, round_trips: 2 * 30 };
  },
  async binary() {
    const { socks, workers } = await sessions(1, { transports: ["polling"], upgrade: false });
    const sizes = [1024 * 1024, 1024 * 1024 + 17, 300 * 1024];
    for (const size of sizes) {
      const data = crypto.randomBytes(size);
      const res = await socks[0].timeout(20000).emitWithAck("echo-binary", data);
      const back = Buffer.from(res.data);
      check(back.equals(data), `${size} bytes came back as ${back.length} different bytes`);
      check(res.worker === workers[0], `answered by worker ${res.worker}`);
    }
    return { workers, sizes };
  },
};

(async () => {
  const run = scenarios[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  const result = await Promise.race([
    run(),
    new Promise((_, reject) => setTimeout(() => reject(new Error("scenario over 60 s")), 60000)),
  ]);
  console.log(JSON.stringify(result));
  process.exit(0);
})().catch((e) => {
  console.error(`${scenario}: ${e.stack || e}`);
  process.exit(1);
});
