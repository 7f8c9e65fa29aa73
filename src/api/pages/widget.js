// 店小二 chat widget: include with
//   <script src="https://<xiaoer>/widget.js" data-product="<product id>"></script>
// It talks to POST /v1/answer and listens for agent replies on
// /v1/conversations/{id}/events (Server-Sent Events). The conversation id is
// kept in localStorage: a reload or a later visit restores the conversation
// (GET /v1/conversations/{id}/transcript), agent replies that came meanwhile
// included. When no agent can answer, the shopper can leave a message with
// contact details (POST /v1/conversations/{id}/leave-message); when an agent
// closes the conversation, the shopper rates the service (…/survey).
(function () {
  "use strict";
  const script = document.currentScript;
  const base = new URL(script.src, location.href).origin;
  const product = script.dataset.product || null;
  const T = {
    zh: { title: "店小二 · 在线客服", placeholder: "请输入您的问题…", send: "发送", human: "转人工",
          hello: "您好，我是店小二，有什么可以帮您？", handoff: "已为您转接人工客服，请稍候…",
          agent: "客服", closed: "本次会话已结束", error: "网络开小差了，请稍后再试",
          helpful: "有帮助", unhelpful: "没帮助", offline: "暂无客服在线，可留言", left: "已留言，客服上线后会联系您",
          leave: "留言给客服", phone: "手机号", email: "邮箱", wangwang: "旺旺号", contact: "联系方式",
          message: "想告诉客服的内容", submit: "提交留言",
          survey: "请为本次服务打分", comment: "还有什么想说的（选填）", rate: "提交评价", thanks: "感谢您的评价！" },
    en: { title: "Xiaoer · Customer service", placeholder: "Type your question…", send: "Send", human: "Agent",
          hello: "Hi, I'm Xiaoer. How can I help?", handoff: "You're being connected to a human agent…",
          agent: "Agent", closed: "This conversation has ended", error: "Network problem, please try again",
          helpful: "Helpful", unhelpful: "Not helpful", offline: "No agent online — leave a message",
          left: "Message left; an agent will contact you", leave: "Leave a message for our agents",
          phone: "Phone", email: "E-mail", wangwang: "Wangwang id", contact: "Contact",
          message: "What should the agent know?", submit: "Send message",
          survey: "How did we do?", comment: "Anything else? (optional)", rate: "Send rating", thanks: "Thank you for your rating!" },
  };
  let locale = (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
  const STORED = "xiaoer.conversation";
  let conversationId = localStorage.getItem(STORED);
  let events = null;

  const css = `
  .xe-btn{position:fixed;right:20px;bottom:20px;z-index:99999;background:#ff0036;color:#fff;border:0;border-radius:24px;padding:12px 18px;font-size:15px;box-shadow:0 2px 10px rgba(0,0,0,.2);cursor:pointer}
  .xe-panel{position:fixed;right:20px;bottom:80px;z-index:99999;width:360px;height:520px;max-height:calc(100vh - 100px);background:#fff;border-radius:10px;box-shadow:0 4px 24px rgba(0,0,0,.25);display:none;flex-direction:column;overflow:hidden;font:14px/1.5 -apple-system,"PingFang SC","Noto Sans CJK SC",sans-serif}
  .xe-panel.open{display:flex}
  .xe-head{background:#ff0036;color:#fff;padding:10px 12px;display:flex;align-items:center;gap:8px}
  .xe-head b{flex:1}
  .xe-head button{background:rgba(255,255,255,.2);color:#fff;border:0;border-radius:4px;padding:3px 8px;cursor:pointer}
  .xe-log{flex:1;overflow-y:auto;padding:12px;background:#f7f7f7}
  .xe-msg{max-width:85%;margin:6px 0;padding:8px 10px;border-radius:8px;white-space:pre-wrap;word-break:break-word}
  .xe-shopper{margin-left:auto;background:#ffe4e9}
  .xe-bot{background:#fff;border:1px solid #eee}
  .xe-agent{background:#e6f4ff;border:1px solid #cde6ff}
  .xe-who{font-size:12px;color:#888}
  .xe-note{text-align:center;color:#888;font-size:12px;margin:8px 0}
  .xe-thumbs{margin-top:4px;text-align:right;color:#999}.xe-thumbs button{border:0;background:none;cursor:pointer;color:inherit;padding:2px 4px}
  .xe-thumbs button:hover,.xe-rated{color:#ff0036}.xe-thumb{display:inline-block;line-height:0}.xe-down svg{transform:rotate(180deg)}
  .xe-choices{display:flex;flex-direction:column;gap:6px;margin:4px 0 8px}
  .xe-choices button{text-align:left;background:#fff;border:1px solid #ff0036;color:#ff0036;border-radius:6px;padding:6px 8px;cursor:pointer}
  .xe-banner{display:none;background:#fff7e6;color:#ad6800;padding:6px 12px;font-size:13px}
  .xe-banner.on{display:block}
  .xe-leave{background:#fff;border:1px solid #ffd591;border-radius:8px;padding:8px;margin:6px 0;display:flex;flex-direction:column;gap:6px}
  .xe-leave select,.xe-leave input,.xe-leave textarea{font:inherit;border:1px solid #ddd;border-radius:4px;padding:4px 6px}
  .xe-leave button{background:#ff0036;color:#fff;border:0;border-radius:4px;padding:6px;cursor:pointer}.xe-leave .xe-err{color:#cf1322;font-size:12px}
  .xe-survey .xe-stars button{border:0;background:none;font-size:24px;color:#ccc;cursor:pointer;padding:0 2px}.xe-survey .xe-stars button.on{color:#faad14}
  .xe-form{display:flex;border-top:1px solid #eee}
  .xe-form input{flex:1;border:0;padding:12px;font-size:15px;outline:none}
  .xe-form button{border:0;background:#ff0036;color:#fff;padding:0 16px;cursor:pointer}
  @media (max-width:480px){.xe-panel{right:0;bottom:0;width:100vw;height:100vh;max-height:100vh;border-radius:0}}`;
  const style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  const button = el("button", "xe-btn", "店小二");
  button.dataset.testid = "xiaoer-open";
  const panel = el("div", "xe-panel");
  panel.dataset.testid = "xiaoer-panel";
  panel.innerHTML = `<div class="xe-head"><b></b><button data-x="lang">EN</button><button data-x="human"></button><button data-x="close">×</button></div>
    <div class="xe-banner" data-testid="xiaoer-handoff"></div><div class="xe-log" data-testid="xiaoer-log"></div>
    <form class="xe-form"><input data-testid="xiaoer-input" autocomplete="off"><button data-x="send"></button></form>`;
  document.body.append(button, panel);
  const log = panel.querySelector(".xe-log");
  const input = panel.querySelector("input");
  const banner = panel.querySelector(".xe-banner");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }
  function applyLocale() {
    const t = T[locale];
    panel.querySelector("b").textContent = t.title;
    panel.querySelector('[data-x="lang"]').textContent = locale === "zh" ? "EN" : "中文";
    panel.querySelector('[data-x="human"]').textContent = t.human;
    panel.querySelector('[data-x="send"]').textContent = t.send;
    input.placeholder = t.placeholder;
    banner.textContent = t[bannerText];
  }
  let bannerText = "handoff";
  function waiting(state) {
    bannerText = state;
    banner.textContent = T[locale][state];
    banner.classList.add("on");
  }
  function add(role, text) {
    const m = el("div", "xe-msg xe-" + role, text);
    m.dataset.role = role;
    log.appendChild(m);
    log.scrollTop = log.scrollHeight;
    return m;
  }
  // Any stored message; an agent's reply is signed with the agent's name.
  function addMessage(m) {
    const div = add(m.role, m.text);
    if (m.role === "agent" && m.author) div.prepend(el("div", "xe-who", m.author));
    return div;
  }
  // Drawn as SVG: many phones and kiosks have no emoji font (👍 shows as a box).
  const THUMB = '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true"><path fill="currentColor" ' +
    'd="M2 21h4V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 9v10c0 1.1.9 2 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"/></svg>';
  function thumb(helpful) {
    const icon = el("span", "xe-thumb" + (helpful ? "" : " xe-down"));
    icon.innerHTML = THUMB;
    return icon;
  }
  function thumbs(msg, id) {
    const box = el("div", "xe-thumbs");
    for (const helpful of [true, false]) {
      const b = el("button");
      b.setAttribute("aria-label", T[locale][helpful ? "helpful" : "unhelpful"]);
      b.title = b.getAttribute("aria-label");
      b.appendChild(thumb(helpful));
      b.onclick = () => {
        // Only the conversation's own shopper may rate: its id goes along.
        fetch(`${base}/v1/decisions/${id}/rating`, {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ conversation_id: conversationId, helpful }),
        });
        const done = thumb(helpful);
        done.classList.add("xe-rated");
        done.dataset.testid = "xiaoer-rated";
        box.replaceChildren(done);
      };
      box.appendChild(b);
    }
    msg.appendChild(box);
  }
  function choices(list) {
    const box = el("div", "xe-choices");
    for (const c of list) {
      const b = el("button", null, c.question);
      b.onclick = () => { box.remove(); ask(c.question); };
      box.appendChild(b);
    }
    log.appendChild(box);
    log.scrollTop = log.scrollHeight;
  }
  function listen() {
    if (events || !conversationId) return;
    events = new EventSource(`${base}/v1/conversations/${encodeURIComponent(conversationId)}/events`);
    events.addEventListener("agent", (e) => addMessage(JSON.parse(e.data).message));
    events.addEventListener("closed", ended);
    // A conversation that no longer exists (e.g. a wiped server) is not retried forever.
    events.onerror = () => { if (events && events.readyState === EventSource.CLOSED) events = null; };
  }
  // No agent can answer now: offer to leave a message with contact details.
  function leaveForm() {
    if (log.querySelector(".xe-leave:not(.xe-survey)")) return;
    const t = T[locale];
    const form = el("form", "xe-leave");
    form.dataset.testid = "xiaoer-leave";
    const kind = el("select");
    kind.dataset.testid = "xiaoer-contact-kind";
    for (const k of ["phone", "wangwang", "email"]) { const o = el("option", null, t[k]); o.value = k; kind.appendChild(o); }
    const contact = el("input");
    contact.placeholder = t.contact;
    contact.dataset.testid = "xiaoer-contact";
    const text = el("textarea");
    text.rows = 3;
    text.placeholder = t.message;
    text.dataset.testid = "xiaoer-leave-text";
    const err = el("div", "xe-err");
    const send = el("button", null, t.submit);
    send.dataset.testid = "xiaoer-leave-send";
    form.append(el("b", null, t.leave), kind, contact, text, err, send);
    postForm(form, err, "leave-message", () => ({ contact: { kind: kind.value, value: contact.value }, text: text.value }),
      (d) => {
        add("shopper", d.message.text);
        add("bot", d.notice);
        waiting("left");
      });
    log.appendChild(form);
    log.scrollTop = log.scrollHeight;
  }
  // Submitting `form` posts `body()` to this conversation's `route`: what the
  // server refuses shows in `err`; on success the form goes and `done` gets the reply.
  function postForm(form, err, route, body, done) {
    const id = conversationId;
    form.onsubmit = async (e) => {
      e.preventDefault();
      try {
        const r = await fetch(`${base}/v1/conversations/${encodeURIComponent(id)}/${route}`, {
          method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body()),
        });
        const d = await r.json();
        if (!r.ok) { err.textContent = d.message || T[locale].error; return; }
        form.remove();
        done(d);
      } catch (_) {
        err.textContent = T[locale].error;
      }
    };
  }
  // An agent closed the conversation: the shopper rates the service (1–5 and
  // an optional comment), once.
  function surveyForm() {
    if (log.querySelector(".xe-survey")) return;
    const t = T[locale];
    const form = el("form", "xe-leave xe-survey");
    form.dataset.testid = "xiaoer-survey";
    const stars = el("div", "xe-stars");
    let score = 0;
    for (let n = 1; n <= 5; n++) {
      const star = el("button", null, "★");
      star.type = "button";
      star.title = String(n);
      star.dataset.testid = "xiaoer-star-" + n;
      star.onclick = () => {
        score = n;
        stars.querySelectorAll("button").forEach((b, i) => b.classList.toggle("on", i < n));
        send.disabled = false;
      };
      stars.appendChild(star);
    }
    const comment = el("textarea");
    comment.rows = 2;
    comment.placeholder = t.comment;
    comment.dataset.testid = "xiaoer-survey-comment";
    const err = el("div", "xe-err");
    const send = el("button", null, t.rate);
    send.disabled = true;
    send.dataset.testid = "xiaoer-survey-send";
    form.append(el("b", null, t.survey), stars, comment, err, send);
    postForm(form, err, "survey", () => ({ score, comment: comment.value || null }),
      () => { add("note", t.thanks).className = "xe-note"; });
    log.appendChild(form);
    log.scrollTop = log.scrollHeight;
  }
  // Waiting for an agent: say that one is coming, that the message is left,
  // or that none can answer now and offer to leave a message.
  function handedOff(offline, left) {
    if (left) waiting("left");
    else if (offline) { waiting("offline"); leaveForm(); }
    else waiting("handoff");
    listen();
  }
  // A reload or a later visit: show the conversation so far, agent replies included.
  async function restore() {
    if (!conversationId) return;
    try {
      const r = await fetch(`${base}/v1/conversations/${encodeURIComponent(conversationId)}/transcript`);
      if (r.status === 404) { localStorage.removeItem(STORED); conversationId = null; return; }
      if (!r.ok) return;
      const d = await r.json();
      for (const m of d.messages) addMessage(m);
      if (d.status === "closed") {
        add("note", T[locale].closed).className = "xe-note";
        if (d.survey_pending) surveyForm();
        return;
      }
      if (d.status === "handoff") handedOff(d.offline, d.message_left);
      else listen();
    } catch (_) { /* offline: the conversation goes on when the shopper writes */ }
  }
  // The agent closed the conversation: say so and ask for a rating; the next
  // message starts a new one.
  function ended() {
    add("note", T[locale].closed).className = "xe-note";
    banner.classList.remove("on");
    log.querySelector(".xe-leave:not(.xe-survey)")?.remove();
    if (events) { events.close(); events = null; }
    offerSurvey();
  }
  // Only a conversation an agent handled has a survey: the transcript says.
  async function offerSurvey() {
    try {
      const r = await fetch(`${base}/v1/conversations/${encodeURIComponent(conversationId)}/transcript`);
      if (r.ok && (await r.json()).survey_pending) surveyForm();
    } catch (_) { /* no survey offline */ }
  }
  async function ask(text) {
    text = text.trim();
    if (!text) return;
    add("shopper", text);
    try {
      const r = await fetch(`${base}/v1/answer`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ conversation_id: conversationId, text, locale, product_id: product }),
      });
      const d = await r.json();
      if (!r.ok) { add("bot", d.message || T[locale].error); return; }
      if (d.conversation_id !== conversationId) {
        // A new conversation (the first message, or the last one was closed).
        if (events) { events.close(); events = null; }
        banner.classList.remove("on");
        conversationId = d.conversation_id;
        localStorage.setItem(STORED, conversationId);
      }
      if (d.answer) {
        const m = add("bot", d.answer);
        if (d.action === "answer" && d.faq_id && d.decision_id) thumbs(m, d.decision_id);
      }
      if (d.action === "clarify") choices(d.choices);
      // Once a message is left, the banner keeps saying so.
      if (d.action === "handoff") handedOff(d.offline, bannerText === "left" && banner.classList.contains("on"));
    } catch (_) {
      add("bot", T[locale].error);
    }
  }

  button.onclick = () => { panel.classList.toggle("open"); input.focus(); };
  panel.querySelector('[data-x="close"]').onclick = () => panel.classList.remove("open");
  panel.querySelector('[data-x="lang"]').onclick = () => { locale = locale === "zh" ? "en" : "zh"; applyLocale(); };
  panel.querySelector('[data-x="human"]').onclick = () => ask(locale === "zh" ? "转人工" : "human agent please");
  panel.querySelector("form").onsubmit = (e) => { e.preventDefault(); const t = input.value; input.value = ""; ask(t); };
  applyLocale();
  add("bot", T[locale].hello);
  restore();
})();
