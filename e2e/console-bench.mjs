// Timing of the agent console under 50 simultaneous conversations (issue
// #14): the real binary, 50 shoppers each handed to a human with their event
// stream open, and one agent's console in Debian's headless Chromium.
// `make bench-console`; figures go to docs/BENCHMARKS.md. Nothing here is a
// test: it measures and prints.
//
// Measured, each as p50 / p95 / max over its samples:
// - login: from the login click to the 50 conversations listed;
// - live handoff: from a new shopper's answer (handoff) to its ticket in the queue;
// - burst: all 50 shoppers write at once, until the queue shows every new message;
// - open: clicking a conversation until its transcript and drafted replies show;
// - reply: from the agent's send click until the shopper's stream has the reply.
import { KEY, startServer, stopServers, launchChromium } from "./harness.mjs";

const CONVERSATIONS = Number(process.env.CONVERSATIONS || 50);
const SAMPLES = Number(process.env.SAMPLES || 20);
const ISSUES = ["面霜漏液了", "快递盒压坏了", "少发了一件", "颜色发错了", "瓶子碎了"];

const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const summary = (xs) => ({ n: xs.length, p50: percentile(xs, 50), p95: percentile(xs, 95), max: Math.max(...xs) });

async function call(url, path, body, token = KEY) {
  const r = await fetch(url + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: "Bearer " + token, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

// A shopper's open event stream; `next(kind)` resolves with the next event of that kind.
function shopperStream(url, id) {
  const waiting = [];
  const controller = new AbortController();
  (async () => {
    const r = await fetch(`${url}/v1/conversations/${id}/events`, { signal: controller.signal });
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of r.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const kind = /^event: (.*)$/m.exec(block)?.[1];
        for (let i = waiting.length - 1; i >= 0; i--) {
          if (waiting[i].kind === kind) waiting.splice(i, 1)[0].resolve(block);
        }
      }
    }
  })().catch(() => {});
  return { next: (kind) => new Promise((resolve) => waiting.push({ kind, resolve })), close: () => controller.abort() };
}

async function handoff(url, n) {
  const a = await call(url, "/v1/answer", { text: `转人工 第${n}单 ${ISSUES[n % ISSUES.length]}` });
  if (a.action !== "handoff") throw new Error(`not handed off: ${JSON.stringify(a)}`);
  return { id: a.conversation_id, stream: shopperStream(url, a.conversation_id) };
}

const { url } = await startServer({ XIAOER_SERVER__RATE_BURST: "100000", XIAOER_SERVER__RATE_PER_SECOND: "100000" });
const browser = await launchChromium();
try {
  await call(url, "/v1/agents", { login: "bench", display_name: "压测客服", role: "agent", password: "bench-password-1" });
  const shoppers = await Promise.all(Array.from({ length: CONVERSATIONS }, (_, n) => handoff(url, n)));

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url + "/agent");
  await page.getByTestId("login-name").fill("bench");
  await page.getByTestId("password").fill("bench-password-1");
  const tickets = () => page.evaluate(() => document.querySelectorAll('[data-testid="ticket"]').length);
  let t = performance.now();
  await page.getByTestId("login").click();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="ticket"]').length >= n, CONVERSATIONS);
  const login = [performance.now() - t];

  const live = [];
  for (let i = 0; i < SAMPLES; i++) {
    const before = await tickets();
    t = performance.now();
    const extra = await handoff(url, CONVERSATIONS + i);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="ticket"]').length > n, before);
    live.push(performance.now() - t);
    extra.stream.close();
    await call(url, `/v1/conversations/${extra.id}/close`, {});
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="ticket"]').length === n, before);
  }

  const burst = [];
  for (let round = 0; round < 3; round++) {
    const mark = `补充说明${round}`;
    t = performance.now();
    await Promise.all(shoppers.map((s) => call(url, "/v1/answer", { conversation_id: s.id, text: `${mark} 订单在吗` })));
    await page.waitForFunction(([m, n]) => [...document.querySelectorAll('[data-testid="ticket"]')]
      .filter((e) => e.textContent.includes(m)).length >= n, [mark, CONVERSATIONS]);
    burst.push(performance.now() - t);
  }

  const open = [], reply = [];
  for (let i = 0; i < SAMPLES; i++) {
    const s = shoppers[i];
    t = performance.now();
    await page.locator(`[data-conversation="${s.id}"]`).click();
    await page.locator("#transcript").filter({ hasText: `第${i}单` }).waitFor();
    await page.getByTestId("draft").first().waitFor();
    open.push(performance.now() - t);
    const arrived = s.stream.next("agent");
    await page.locator("#reply-text").fill(`您好，第${i}单我们马上处理`);
    t = performance.now();
    await page.locator("#reply button.primary").click();
    await arrived;
    reply.push(performance.now() - t);
  }

  const figures = { conversations: CONVERSATIONS, login: summary(login), live_handoff: summary(live),
                    burst_50_messages: summary(burst), open_conversation: summary(open), reply_to_shopper: summary(reply) };
  console.log(JSON.stringify(figures, null, 2));
  console.log("\n| step (ms) | n | p50 | p95 | max |\n|---|---|---|---|---|");
  for (const [k, v] of Object.entries(figures)) {
    if (typeof v === "object") console.log(`| ${k} | ${v.n} | ${v.p50.toFixed(0)} | ${v.p95.toFixed(0)} | ${v.max.toFixed(0)} |`);
  }
  shoppers.forEach((s) => s.stream.close());
} finally {
  await browser.close();
  stopServers();
}
