// The sticky example's chat page, run as two browsers would run it: the page is fetched from
// the primary, its script runs (in a vm context with a small DOM: the log, the form) against the
// real server over long-polling, one page sends a message and both must show it.
//   node chat-page.js <url>
// Prints one JSON line {logs: [[...], [...]]} and exits 0, or says what failed and exits 1.
const vm = require("vm");

const [url] = process.argv.slice(2);

function page(html) {
  const script = html.match(/<script>([\s\S]*)<\/script>/)[1];
  const lines = [];
  const elements = {
    log: { appendChild: (d) => lines.push(d.textContent), scrollTop: 0, scrollHeight: 0 },
    m: { value: "" },
    f: { onsubmit: null },
  };
  const context = vm.createContext({
    document: {
      createElement: () => ({ textContent: "" }),
      getElementById: (id) => elements[id],
    },
    location: { host: new URL(url).host },
    fetch: (path, opts) => fetch(new URL(path, url), opts),
    Date,
    JSON,
    console,
  });
  vm.runInContext(script, context);
  return {
    lines,
    say(text) {
      elements.m.value = text;
      elements.f.onsubmit({ preventDefault() {} });
    },
  };
}

const wait = async (what, cond, ms = 15000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

(async () => {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    const html = await (await fetch(url)).text();
    const p = page(html);
    await wait(`session on page ${i}`, () => p.lines.some((l) => l.includes("on worker")));
    pages.push(p);
  }
  pages[0].say("hello from page 0");
  for (const [i, p] of pages.entries()) {
    await wait(`the message on page ${i}`, () => p.lines.some((l) => l.includes("browser: hello from page 0")));
  }
  console.log(JSON.stringify({ logs: pages.map((p) => p.lines) }));
  process.exit(0);
})().catch((e) => {
  console.error(`chat page: ${e.stack || e}`);
  process.exit(1);
});
