const { io } = require("socket.io-client");
const s = io(`http://${process.argv[2]}/ctl`, { transports: ["websocket"] });
s.on("connect", async () => {
  console.log("connected");
  const t = Date.now();
  try {
    const r = await s.timeout(5000).emitWithAck(process.argv[3], JSON.parse(process.argv[4]));
    console.log("ack", JSON.stringify(r).slice(0, 200), Date.now() - t, "ms");
  } catch (e) { console.log("no ack", e.message, Date.now() - t); }
  process.exit(0);
});
