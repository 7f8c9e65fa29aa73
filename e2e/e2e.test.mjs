// End-to-end: the real binary serving the sample store, Debian's headless
// Chromium driven by playwright-core. A shopper asks a policy question and
// gets the answer; asks for a human; the agent console shows the
// conversation; the agent accepts a draft; the shopper sees the reply live.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { KEY, root, startServer, stopServers, launchChromium } from "./harness.mjs";

// Screenshots land in target/ (README's copies live in docs/screenshots/).
const shots = process.env.SCREENSHOT_DIR || join(root, "target", "screenshots");
let url, browser, storeSite, storeUrl;

before(async () => {
  ({ url } = await startServer());
  browser = await launchChromium();
  mkdirSync(shots, { recursive: true });
  // A store's own site on another origin (another host name and port) that
  // embeds the widget with the one tag from the README.
  storeSite = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>某跨境旗舰店</title></head>
      <body><h1>某跨境旗舰店 · SK-II 神仙水</h1>
      <script src="${url}/widget.js" data-product="p-skii-essence"></script></body></html>`);
  });
  await new Promise((resolve) => storeSite.listen(0, "localhost", resolve));
  storeUrl = `http://localhost:${storeSite.address().port}/`;
});

after(async () => {
  storeSite?.close();
  await browser?.close();
  stopServers();
});

test("shopper gets an answer, asks for a human, agent accepts a draft, shopper sees it live", { timeout: 240_000 }, async () => {
  // The shopper on a phone-sized screen, Chinese browser.
  const shopper = await browser.newPage({ viewport: { width: 390, height: 844 }, locale: "zh-CN" });
  await shopper.goto(url + "/");
  await shopper.getByTestId("xiaoer-open").click();
  const input = shopper.getByTestId("xiaoer-input");
  await input.fill("七天无理由退货怎么申请？");
  await input.press("Enter");
  const log = shopper.getByTestId("xiaoer-log");
  await log.locator('[data-role="bot"]', { hasText: "保税仓发货的商品支持七天无理由退货" }).waitFor({ timeout: 30_000 });

  // Ask for a human: the handoff state is visible.
  await shopper.getByRole("button", { name: "转人工" }).click();
  await shopper.getByTestId("xiaoer-handoff").waitFor({ state: "visible", timeout: 30_000 });
  await input.fill("收到的瓶子碎了怎么办");
  await input.press("Enter");
  await log.locator('[data-role="shopper"]', { hasText: "瓶子碎了" }).waitFor();
  await shopper.screenshot({ path: join(shots, "widget.png") });

  // The agent logs in and sees the conversation in the queue.
  const agent = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await agent.goto(url + "/agent");
  await agent.getByTestId("api-key").fill(KEY);
  await agent.getByTestId("login").click();
  const ticket = agent.getByTestId("ticket").filter({ hasText: "瓶子碎了" });
  await ticket.waitFor({ timeout: 30_000 });
  assert.match(await ticket.innerText(), /要求人工/);
  await ticket.click();
  const drafts = agent.getByTestId("draft");
  await drafts.first().waitFor({ timeout: 30_000 });
  assert.equal(await drafts.count(), 3);
  const firstDraft = await drafts.first().innerText();
  assert.match(firstDraft, /置信度 \d+%/);
  assert.match(firstDraft, /after-damaged/);
  await agent.screenshot({ path: join(shots, "agent.png") });

  // Accept with the keyboard shortcut; the shopper sees the agent's reply arrive.
  await agent.locator("body").click({ position: { x: 700, y: 100 } });
  await agent.keyboard.press("1");
  const reply = log.locator('[data-role="agent"]', { hasText: "签收后48小时内" });
  await reply.waitFor({ timeout: 30_000 });
  await agent.getByTestId("transcript").locator(".agent", { hasText: "签收后48小时内" }).waitFor();
  await shopper.screenshot({ path: join(shots, "widget-agent-reply.png") });

  // Switching the widget to English changes its language.
  await shopper.getByRole("button", { name: "EN" }).click();
  await shopper.getByRole("button", { name: "Agent" }).waitFor();
});

test("the widget works on a store page of another origin; closing ends the conversation", { timeout: 240_000 }, async () => {
  const shopper = await browser.newPage({ viewport: { width: 1280, height: 800 }, locale: "zh-CN" });
  await shopper.goto(storeUrl);
  assert.notEqual(new URL(storeUrl).origin, new URL(url).origin);
  await shopper.getByTestId("xiaoer-open").click();
  const input = shopper.getByTestId("xiaoer-input");
  const log = shopper.getByTestId("xiaoer-log");
  await input.fill("七天无理由退货怎么申请？");
  await input.press("Enter");
  const answer = log.locator('[data-role="bot"]', { hasText: "保税仓发货的商品支持七天无理由退货" });
  await answer.waitFor({ timeout: 30_000 });
  assert.equal(await log.getByText("网络开小差了").count(), 0);
  // The shopper's thumbs-up (an SVG icon, no emoji font needed) is stored for their own answer.
  const rating = shopper.waitForResponse((r) => r.url().includes("/rating"), { timeout: 30_000 });
  await answer.getByRole("button", { name: "有帮助" }).click();
  assert.equal((await rating).status(), 200);
  await answer.getByTestId("xiaoer-rated").waitFor();
  await answer.screenshot({ path: join(shots, "widget-rated.png") });

  await shopper.getByRole("button", { name: "转人工" }).click();
  const banner = shopper.getByTestId("xiaoer-handoff");
  await banner.waitFor({ state: "visible", timeout: 30_000 });
  const conversationId = await shopper.evaluate(() => localStorage.getItem("xiaoer.conversation"));
  assert.ok(conversationId);

  // The agent closes the conversation: the shopper sees it ended, the banner goes.
  const closed = await fetch(`${url}/v1/conversations/${conversationId}/close`, {
    method: "POST", headers: { authorization: `Bearer ${KEY}` },
  });
  assert.equal(closed.status, 200);
  await log.locator(".xe-note", { hasText: "本次会话已结束" }).waitFor({ timeout: 30_000 });
  await banner.waitFor({ state: "hidden", timeout: 10_000 });
  await shopper.screenshot({ path: join(shots, "widget-closed.png") });

  // The next message starts a new conversation and the bot answers it.
  await input.fill("发什么快递？");
  await input.press("Enter");
  await log.locator('[data-role="bot"]').last().waitFor();
  await shopper.waitForFunction((old) => localStorage.getItem("xiaoer.conversation") !== old, conversationId);
  const last = await log.locator('[data-role="bot"]').last().innerText();
  assert.doesNotMatch(last, /网络开小差了|conversation/);
  assert.equal(await banner.isVisible(), false);
});

test("outside service hours the shopper leaves a message, reloads, and later reads the agent's reply", { timeout: 300_000 }, async () => {
  // Service hours that exclude the present (China time).
  const h = (new Date().getUTCHours() + 8) % 24;
  const pad = (n) => String(n % 24).padStart(2, "0");
  const night = await startServer({ XIAOER_SERVICE__HOURS: `${pad(h + 3)}:00-${pad(h + 6)}:00` });
  // One browser profile: what the shopper's browser keeps between visits.
  const profile = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "zh-CN" });
  let shopper = await profile.newPage();
  await shopper.goto(night.url + "/");
  await shopper.getByTestId("xiaoer-open").click();
  let input = shopper.getByTestId("xiaoer-input");
  let log = shopper.getByTestId("xiaoer-log");
  await input.fill("你好");
  await input.press("Enter");
  await log.locator('[data-role="bot"]').nth(1).waitFor({ timeout: 30_000 });
  await input.fill("七天无理由退货怎么申请？");
  await input.press("Enter");
  await log.locator('[data-role="bot"]', { hasText: "保税仓发货的商品支持七天无理由退货" }).waitFor({ timeout: 30_000 });

  // A human is asked for at night: the widget says when agents are back and offers a message.
  await shopper.getByRole("button", { name: "转人工" }).click();
  await log.locator('[data-role="bot"]', { hasText: "非服务时间" }).waitFor({ timeout: 30_000 });
  const banner = shopper.getByTestId("xiaoer-handoff");
  assert.match(await banner.innerText(), /可留言/);
  const form = shopper.getByTestId("xiaoer-leave");
  await form.waitFor();
  await shopper.getByTestId("xiaoer-contact").fill("12345");
  await shopper.getByTestId("xiaoer-leave-text").fill("收到的瓶子碎了，请联系我补发");
  await shopper.getByTestId("xiaoer-leave-send").click();
  await form.locator(".xe-err", { hasText: "phone" }).waitFor({ timeout: 10_000 });
  await shopper.getByTestId("xiaoer-contact").fill("138 0013 8000");
  await shopper.getByTestId("xiaoer-leave-send").click();
  await log.locator('[data-role="bot"]', { hasText: "留言已收到" }).waitFor({ timeout: 10_000 });
  await form.waitFor({ state: "detached" });
  await shopper.screenshot({ path: join(shots, "widget-left-message.png") });

  // A reload keeps the conversation.
  await shopper.reload();
  await shopper.getByTestId("xiaoer-open").click();
  log = shopper.getByTestId("xiaoer-log");
  await log.locator('[data-role="shopper"]', { hasText: "收到的瓶子碎了" }).waitFor({ timeout: 10_000 });
  await log.locator('[data-role="bot"]', { hasText: "保税仓发货的商品支持七天无理由退货" }).waitFor();
  assert.match(await shopper.getByTestId("xiaoer-handoff").innerText(), /已留言/);
  await shopper.close();

  // An agent logs in later: the message is first in the queue, with the contact.
  const early = await fetch(`${night.url}/v1/answer`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "转人工" }),
  });
  assert.equal(early.status, 200);
  const agent = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await agent.goto(night.url + "/agent");
  await agent.getByTestId("api-key").fill(KEY);
  await agent.getByTestId("login").click();
  const first = agent.getByTestId("ticket").first();
  await first.waitFor({ timeout: 30_000 });
  await agent.getByTestId("ticket").nth(1).waitFor({ timeout: 30_000 });
  const firstText = await first.innerText();
  assert.match(firstText, /留言/);
  assert.match(firstText, /13800138000/);
  assert.match(firstText, /收到的瓶子碎了/);
  assert.match(firstText, /七天无理由/);
  await first.click();
  await agent.getByTestId("transcript").locator(".shopper", { hasText: "收到的瓶子碎了" }).waitFor({ timeout: 30_000 });
  await agent.screenshot({ path: join(shots, "agent-left-message.png") });
  await agent.locator("#reply-text").fill("您好，已为您登记补发，请留意短信");
  await agent.locator("#reply button.primary").click();
  await agent.getByTestId("transcript").locator(".agent", { hasText: "已为您登记补发" }).waitFor({ timeout: 30_000 });

  // The shopper comes back: the agent's reply is there.
  shopper = await profile.newPage();
  await shopper.goto(night.url + "/");
  await shopper.getByTestId("xiaoer-open").click();
  await shopper.getByTestId("xiaoer-log").locator('[data-role="agent"]', { hasText: "已为您登记补发" }).waitFor({ timeout: 30_000 });
  await shopper.screenshot({ path: join(shots, "widget-agent-reply-later.png") });
  await profile.close();
});

test("two agents log in: one takes the shopper, the other cannot answer; a transfer; the shopper sees who replies, gets a canned reply and rates the service", { timeout: 300_000 }, async () => {
  // An admin creates two accounts through the API (the console's own login then uses them).
  for (const [login, display_name] of [["li", "小李"], ["wang", "小王"]]) {
    const r = await fetch(url + "/v1/agents", {
      method: "POST",
      headers: { authorization: "Bearer " + KEY, "content-type": "application/json" },
      body: JSON.stringify({ login, display_name, role: "agent", password: `${login}-password-1` }),
    });
    assert.equal(r.status, 201, await r.text());
  }
  const consoleOf = async (login, viewport) => {
    const page = await browser.newPage({ viewport });
    await page.goto(url + "/agent");
    await page.getByTestId("login-name").fill(login);
    await page.getByTestId("password").fill(`${login}-password-1`);
    await page.getByTestId("login").click();
    await page.getByTestId("queue").waitFor();
    return page;
  };
  // 小李 on a desktop, 小王 on a tablet in portrait (768 px wide).
  const li = await consoleOf("li", { width: 1280, height: 800 });
  const wang = await consoleOf("wang", { width: 768, height: 1024 });
  assert.match(await li.getByTestId("who").innerText(), /小李/);

  const shopper = await browser.newPage({ viewport: { width: 390, height: 844 }, locale: "zh-CN" });
  await shopper.goto(url + "/");
  await shopper.getByTestId("xiaoer-open").click();
  const input = shopper.getByTestId("xiaoer-input");
  await input.fill("面霜盖子裂开了 漏了一半 找人工");
  await input.press("Enter");
  await shopper.getByTestId("xiaoer-handoff").waitFor({ state: "visible", timeout: 30_000 });

  // Both consoles show the new handoff live; 小李 takes it.
  const ticketAt = (page) => page.getByTestId("ticket").filter({ hasText: "盖子裂开了" });
  await ticketAt(li).waitFor({ timeout: 30_000 });
  await ticketAt(wang).waitFor({ timeout: 30_000 });
  await ticketAt(li).getByTestId("take").click();
  await li.getByTestId("owner-bar").filter({ hasText: "小李 处理中" }).waitFor({ timeout: 30_000 });
  await ticketAt(wang).filter({ hasText: "小李 处理中" }).waitFor({ timeout: 30_000 });
  assert.equal(await ticketAt(wang).getByTestId("take").count(), 0);

  // 小王 opens it anyway and tries to answer: refused, and told who has it.
  await ticketAt(wang).click();
  await wang.locator("#reply-text").fill("我来处理");
  await wang.locator("#reply button.primary").click();
  await wang.getByTestId("notice").filter({ hasText: "小李" }).filter({ hasText: "操作未完成" }).waitFor({ timeout: 30_000 });
  await wang.screenshot({ path: join(shots, "agent-tablet.png") });

  // 小李 answers; the shopper sees the reply signed 小李.
  await li.locator("#reply-text").fill("您好，我是客服小李，马上为您处理破损补发");
  await li.locator("#reply button.primary").click();
  const log = shopper.getByTestId("xiaoer-log");
  await log.locator('[data-role="agent"]', { hasText: "破损补发" }).filter({ hasText: "小李" }).waitFor({ timeout: 30_000 });

  // 小李 transfers it to 小王, who can now answer; the shopper sees 小王's name.
  await li.getByTestId("transfer-to").selectOption({ label: "小王" });
  await li.getByTestId("transfer").click();
  await li.getByTestId("owner-bar").filter({ hasText: "小王 处理中" }).waitFor({ timeout: 30_000 });
  await ticketAt(wang).filter({ hasText: "我 处理中" }).waitFor({ timeout: 30_000 });
  await ticketAt(wang).click();
  await wang.locator("#reply-text").fill("您好，我是小王，接着为您跟进");
  await wang.locator("#reply button.primary").click();
  await log.locator('[data-role="agent"]', { hasText: "接着为您跟进" }).filter({ hasText: "小王" }).waitFor({ timeout: 30_000 });
  assert.equal(await wang.getByTestId("notice").innerText(), "");

  // 小王 saves a personal canned reply (快捷短语) on the tablet, then types
  // "/补发" in the reply box: the popup offers it beside nothing else (the
  // store-wide 退货地址 does not match), Enter puts it in, and it is sent.
  const r = await fetch(url + "/v1/canned", {
    method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ title: "退货地址", text: "退货请寄回：杭州市余杭区仓前街道 1 号" }),
  });
  assert.equal(r.status, 201, await r.text());
  await wang.getByTestId("canned-btn").click();
  await wang.getByTestId("canned-reply").filter({ hasText: "退货地址" }).waitFor({ timeout: 30_000 });
  assert.equal(await wang.getByTestId("canned-personal").isChecked(), true);
  await wang.getByTestId("canned-title").fill("补发说明");
  await wang.getByTestId("canned-text").fill("补发的包裹已登记，顺丰发出后会短信通知您 📦");
  await wang.getByTestId("canned-add").click();
  await wang.getByTestId("canned-reply").filter({ hasText: "补发说明" }).waitFor({ timeout: 30_000 });
  await wang.screenshot({ path: join(shots, "agent-canned.png") });
  await wang.locator("#canned .view-close").click();
  await wang.locator("#reply-text").pressSequentially("/补发");
  const offered = wang.getByTestId("canned-item");
  await offered.filter({ hasText: "补发说明" }).waitFor({ timeout: 30_000 });
  assert.equal(await offered.count(), 1);
  await wang.locator("#reply-text").press("Enter");
  assert.equal(await wang.locator("#reply-text").inputValue(), "补发的包裹已登记，顺丰发出后会短信通知您 📦");
  await wang.locator("#reply button.primary").click();
  await log.locator('[data-role="agent"]', { hasText: "顺丰发出后" }).filter({ hasText: "小王" }).waitFor({ timeout: 30_000 });

  // 小王 closes it: the shopper is asked to rate the service, gives 4 stars
  // with a comment, and the figure reaches the console's service figures.
  await wang.locator("#close-conv").click();
  const survey = shopper.getByTestId("xiaoer-survey");
  await survey.waitFor({ timeout: 30_000 });
  await shopper.getByTestId("xiaoer-star-4").click();
  await shopper.getByTestId("xiaoer-survey-comment").fill("小王很耐心，补发也快 👍");
  await shopper.screenshot({ path: join(shots, "widget-survey.png") });
  await shopper.getByTestId("xiaoer-survey-send").click();
  await log.getByText("感谢您的评价！").waitFor({ timeout: 30_000 });
  assert.equal(await survey.count(), 0);

  await wang.getByTestId("stats-btn").click();
  const row = (name) => wang.getByTestId("stats-row").filter({ hasText: name });
  await row("小王").waitFor({ timeout: 30_000 });
  assert.equal(await row("全部").locator('[data-figure="satisfaction"]').innerText(), "4.0 / 5");
  assert.equal(await row("小王").locator('[data-figure="satisfaction"]').innerText(), "4.0 / 5");
  // (全部 also counts the earlier tests' handoffs on this server.) Receiving a transfer is not transferring.
  assert.equal(await row("小王").locator('[data-figure="transfer_rate"]').innerText(), "0%");
  assert.equal(await row("小李").locator('[data-figure="transfer_rate"]').innerText(), "100%");
  await wang.screenshot({ path: join(shots, "agent-stats.png") });
});

test("an admin on a tablet works the operator page: a proposal approved, an FAQ written with a live preview, conversations exported", { timeout: 300_000 }, async () => {
  const call = async (path, body, method) => {
    const r = await fetch(url + path, {
      method: method || (body === undefined ? "GET" : "POST"),
      headers: { authorization: "Bearer " + KEY, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    assert.ok(r.ok, `${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  await call("/v1/agents", { login: "boss", display_name: "店长", role: "admin", password: "boss-password-1" });
  // A shopper's question an agent answered with a drafted FAQ: a proposed phrasing.
  const asked = await call("/v1/answer", { text: "转人工 我想问下拆了封的面霜还能七天无理由吗" });
  const drafts = await call(`/v1/conversations/${asked.conversation_id}/suggestions`, {});
  await call(`/v1/suggestions/${drafts[0].id}/feedback`, { verdict: "accepted" });

  const page = await browser.newPage({ viewport: { width: 768, height: 1024 } });
  await page.goto(url + "/agent");
  await page.getByTestId("login-name").fill("boss");
  await page.getByTestId("password").fill("boss-password-1");
  await page.getByTestId("login").click();
  await page.getByTestId("ops-btn").click();
  const proposal = page.getByTestId("proposal").filter({ hasText: "拆了封的面霜" });
  await proposal.waitFor({ timeout: 30_000 });
  await page.getByTestId("faq-stat").first().waitFor({ timeout: 30_000 });

  // A new entry: the preview follows the edits, before anything is saved.
  await page.getByTestId("faq-id").fill("gift-wrap");
  await page.getByTestId("faq-question").fill("可以提供礼品包装吗？");
  await page.getByTestId("faq-answer").fill("可以，下单时备注“礼品包装”，免费提供礼盒和贺卡 🎁");
  await page.getByTestId("faq-try").fill("送朋友的 能包成礼物送人吗");
  const previewBox = page.getByTestId("faq-preview");
  await previewBox.filter({ hasText: "送朋友的" }).waitFor({ timeout: 30_000 });
  await page.getByTestId("faq-similar").fill("能包成礼物送人吗\n有礼盒吗");
  await previewBox.filter({ hasText: "本 FAQ 排第 1" }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(shots, "agent-operator.png"), fullPage: true });
  const missing = await fetch(url + "/v1/kb/faqs/gift-wrap", { headers: { authorization: "Bearer " + KEY } });
  assert.equal(missing.status, 404, "a preview saves nothing");
  await page.getByTestId("faq-save").click();
  await page.getByTestId("faq-saved").filter({ hasText: "已保存 gift-wrap" }).waitFor({ timeout: 60_000 });
  assert.deepEqual((await call("/v1/kb/faqs/gift-wrap")).similar, ["能包成礼物送人吗", "有礼盒吗"]);

  // The proposal approved: its phrasing joins the FAQ and it leaves the list.
  const target = (await call("/v1/kb/proposals")).find((p) => p.text.includes("拆了封的面霜"));
  await proposal.getByTestId("approve").click();
  await proposal.waitFor({ state: "detached", timeout: 60_000 });
  assert.ok((await call(`/v1/kb/faqs/${target.faq_id}`)).similar.includes(target.text));

  // The window's conversations as CSV: the shopper's message is in it.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-csv").click()]);
  assert.match(download.suggestedFilename(), /^xiaoer-conversations-\d+-\d+\.csv$/);
  const csv = await new Promise(async (resolve) => {
    const chunks = [];
    const stream = await download.createReadStream();
    stream.on("data", (c) => chunks.push(c)).on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
  assert.ok(csv.startsWith("\uFEFFconversation_id,"), csv.slice(0, 80));
  assert.ok(csv.includes("拆了封的面霜还能七天无理由吗"));
  await page.close();
});
