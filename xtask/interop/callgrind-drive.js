// Drives one callgrind profile of xtask/bench/callgrind.sh: node callgrind-drive.js APORT BPORT COUNT SIZE.
// Server A emits COUNT events of SIZE bytes (after 1,000 warm-up ones); done when a client on B has them all.
// MARK (callgrind_control -i) switches instrumentation on for exactly that span.
const { io } = require("socket.io-client");
const [aport, bport, count, size] = process.argv.slice(2).map(Number);
const mark = (m) => process.env.MARK && require("child_process").execSync(process.env.MARK + " " + m);
const remote = io(`http://127.0.0.1:${bport}/`, { transports: ["websocket"] });
let got = 0, last = -1, done;
const all = new Promise((r) => (done = r));
remote.on("count", (e) => { got++; last = e.seq; if (e.seq === 1000 + count - 1) done(); });
remote.on("connect", () => {
  const ctl = io(`http://127.0.0.1:${aport}/ctl`, { transports: ["websocket"] });
  ctl.on("connect", async () => {
    await ctl.timeout(600000).emitWithAck("blast", { start: 0, count: 1000, size, rate: 0 });
    while (last < 999) await new Promise((r) => setTimeout(r, 50));
    const t = Date.now(), before = got;
    mark("on");
    await ctl.timeout(600000).emitWithAck("blast", { start: 1000, count, size, rate: 0 });
    await Promise.race([all, new Promise((r) => setTimeout(r, 600000))]);
    mark("off");
    console.log(`emitted ${count}, remote got ${got - before}, in ${Date.now() - t} ms`);
    process.exit(0);
  });
});
