// The Switchboard visitor widget. Embed with
//   <script src="https://your-server/widget.js" data-channel="9" defer></script>
// A chat bubble opens the window; the session token is kept in localStorage so
// a reload resumes the same conversation (with `after`, so nothing is missed).
// Self-contained (no imports) because it runs inside other people's pages;
// every string from the server is set as text, never as HTML.
(function () {
  "use strict";
  const script = document.currentScript;
  const channel = script?.dataset.channel;
  const origin = script ? new URL(script.src).origin : location.origin;
  if (!channel) return console.error("switchboard widget: data-channel is missing");
  const storeKey = `switchboard.widget.${channel}`;
  const keyKey = "switchboard.visitor_key";

  const h = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  };

  const style = h("style", {}, `
    .sbw-bubble { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%; border: 0; background: #2857c7; color: #fff; display: grid; place-items: center; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); z-index: 2147483000; }
    .sbw-window { position: fixed; right: 20px; bottom: 88px; width: min(360px, calc(100vw - 40px)); height: min(520px, calc(100vh - 120px)); background: #fff; border: 1px solid #d5dae2; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.2); display: flex; flex-direction: column; font: 14px system-ui, sans-serif; color: #1d2330; z-index: 2147483000; }
    .sbw-window[hidden] { display: none; }
    .sbw-head { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #2857c7; color: #fff; border-radius: 12px 12px 0 0; }
    .sbw-head strong { flex: 1; }
    .sbw-head button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,.6); border-radius: 6px; cursor: pointer; padding: 2px 8px; }
    .sbw-status { padding: 6px 12px; background: #f2f5fb; color: #5f6b7a; font-size: 12px; min-height: 1em; }
    .sbw-log { flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: 10px 12px; }
    .sbw-msg { margin: 6px 0; max-width: 85%; padding: 6px 10px; border-radius: 10px; background: #f1f2f5; white-space: pre-wrap; overflow-wrap: anywhere; }
    .sbw-msg.sbw-visitor { margin-left: auto; background: #2857c7; color: #fff; }
    .sbw-msg.sbw-system { background: none; color: #5f6b7a; text-align: center; max-width: none; font-size: 12px; }
    .sbw-name { display: block; font-size: 11px; opacity: .75; }
    .sbw-choices { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
    .sbw-choices button { border: 1px solid #2857c7; color: #2857c7; background: #fff; border-radius: 999px; padding: 4px 12px; cursor: pointer; }
    .sbw-rate { margin: 10px 0; padding: 8px; border: 1px solid #e3e6eb; border-radius: 10px; text-align: center; }
    .sbw-faces { display: flex; justify-content: center; gap: 12px; margin: 6px 0; }
    .sbw-faces button { font-size: 26px; background: none; border: 1px solid transparent; border-radius: 8px; cursor: pointer; padding: 2px 6px; }
    .sbw-faces button:hover { border-color: #d5dae2; }
    .sbw-comment { width: 100%; box-sizing: border-box; border: 1px solid #d5dae2; border-radius: 6px; padding: 4px 6px; font: inherit; }
    .sbw-rate-error { display: block; color: #9b1c1c; font-size: 12px; }
    .sbw-form { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e3e6eb; }
    .sbw-form input { flex: 1; border: 1px solid #d5dae2; border-radius: 6px; padding: 6px 8px; font: inherit; }
    .sbw-form button { border: 0; background: #2857c7; color: #fff; border-radius: 6px; padding: 6px 12px; cursor: pointer; }
    .sbw-window button:focus-visible, .sbw-window input:focus-visible, .sbw-bubble:focus-visible { outline: 3px solid #8fb0ff; outline-offset: 1px; }
  `);

  const log = h("ol", { class: "sbw-log", "aria-live": "polite", "aria-label": "Conversation" });
  const status = h("div", { class: "sbw-status", role: "status" });
  const input = h("input", { "aria-label": "Your message", placeholder: "Type a message…", autocomplete: "off" });
  const form = h("form", { class: "sbw-form" }, input, h("button", { type: "submit" }, "Send"));
  const leave = h("button", { type: "button", class: "sbw-leave", onclick: () => leaveChat() }, "Leave");
  const win = h("section", { class: "sbw-window", hidden: true, role: "dialog", "aria-label": "Chat with us" },
    h("div", { class: "sbw-head" }, h("strong", {}, "Chat with us"), leave, h("button", { type: "button", "aria-label": "Minimise", onclick: () => toggle(false) }, "–")),
    status, log, form);
  const bubble = h("button", { class: "sbw-bubble", type: "button", "aria-label": "Open chat", "aria-expanded": "false", onclick: () => toggle() }, chatIcon());

  function chatIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2");
    path.setAttribute("stroke-linejoin", "round");
    svg.append(path);
    return svg;
  }

  let session = JSON.parse(localStorage.getItem(storeKey) || "null");
  let ws = null;
  let lastId = 0;
  let closed = false;
  let retry = 500;
  const shown = new Set();

  function save() {
    if (session) localStorage.setItem(storeKey, JSON.stringify({ ...session, lastId })); else localStorage.removeItem(storeKey);
  }

  function visitorKey() {
    let key = localStorage.getItem(keyKey);
    if (!key) {
      key = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
      localStorage.setItem(keyKey, key);
    }
    return key;
  }

  async function call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (session) headers.Authorization = `Bearer ${session.token}`;
    const res = await fetch(`${origin}/api/v1${path}`, { method, headers, body: body && JSON.stringify(body) });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw Object.assign(new Error(data?.error?.message || res.statusText), { status: res.status });
    return data;
  }

  async function toggle(open = win.hidden) {
    win.hidden = !open;
    bubble.setAttribute("aria-expanded", String(open));
    if (open) {
      if (!ws) await start();
      input.focus();
    }
  }

  /** Where the visitor is, as the server checks it: an http(s) URL without spaces, a title of at most 200 characters. */
  function here() {
    const url = /^https?:\/\/\S+$/i.test(location.href) && location.href.length <= 2048 ? location.href : null;
    return { url, title: document.title.trim().slice(0, 200) };
  }

  function context() {
    const page = here();
    const referrer = /^https?:\/\/\S+$/i.test(document.referrer) && document.referrer.length <= 2048 ? document.referrer : undefined;
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const timezone = /^[A-Za-z][A-Za-z0-9/_+-]*$/.test(zone ?? "") && zone.length <= 64 ? zone : undefined;
    return { page_url: page.url ?? undefined, page_title: page.url ? page.title : undefined, referrer, timezone };
  }

  // A widget resuming its conversation on another page tells the operators where the visitor went.
  let pageToSend = null;

  async function start() {
    if (!session) {
      const lang = (navigator.language || "en").split("-")[0];
      const opened = await call("POST", `/channels/${channel}/sessions`, { lang, visitor_key: visitorKey(), ...context() });
      session = { token: opened.visitor_token, conversation: opened.conversation_id };
      lastId = 0;
      save();
    } else {
      lastId = session.lastId || 0;
      pageToSend = here().url ? here() : null;
    }
    connect();
  }

  function connect() {
    const scheme = origin.startsWith("https") ? "wss" : "ws";
    const host = origin.replace(/^https?:\/\//, "");
    const socket = new WebSocket(`${scheme}://${host}/ws/visitor?token=${encodeURIComponent(session.token)}&after=${lastId}`);
    ws = socket;
    socket.onmessage = (e) => handle(JSON.parse(e.data));
    socket.onclose = (e) => {
      if (ws !== socket) return;
      if (e.code === 1008 || closed) return;
      status.textContent = "Reconnecting…";
      setTimeout(() => ws === socket && connect(), retry);
      retry = Math.min(retry * 2, 10000);
    };
    socket.onopen = () => (retry = 500);
  }

  function handle(event) {
    switch (event.type) {
      case "hello":
        if (pageToSend && event.conversation.status !== "closed") ws.send(JSON.stringify({ type: "page", ...pageToSend }));
        pageToSend = null;
        showStatus(event.conversation.status, event.conversation.queue_position);
        event.conversation.messages.forEach(showMessage);
        if (event.conversation.status === "closed") ended();
        break;
      case "message":
        showMessage(event.message);
        break;
      case "status":
        showStatus(event.status, event.queue_position);
        break;
      case "member_joined":
        status.textContent = `You are chatting with ${event.user.name}`;
        break;
      case "closed":
        ended();
        if (event.can_rate) askRating();
        break;
      case "error":
        status.textContent = event.error.message;
        break;
      default:
        break;
    }
  }

  function showStatus(value, position) {
    status.textContent =
      value === "queued" ? `You are number ${position ?? "?"} in the queue` :
      value === "bot" ? "" :
      value === "closed" ? "This conversation has ended" : "";
  }

  function showMessage(m) {
    if (shown.has(m.id)) return;
    shown.add(m.id);
    lastId = Math.max(lastId, m.id);
    save();
    log.querySelectorAll(".sbw-choices").forEach((c) => c.remove());
    const kind = m.author.kind;
    log.append(h("li", { class: `sbw-msg sbw-${kind}`, "data-id": m.id },
      kind === "visitor" || kind === "system" ? null : h("span", { class: "sbw-name" }, m.author.name), m.body));
    if (m.answers && m.step_id) {
      log.append(h("li", { class: "sbw-choices" }, m.answers.map((a) =>
        h("button", { type: "button", onclick: () => send({ type: "answer", step_id: m.step_id, answer_id: a.id }) }, a.label))));
    }
    log.scrollTop = log.scrollHeight;
  }

  let refs = 0;
  function send(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify({ ...frame, ref: `w${Date.now()}-${refs++}` }));
    return true;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = input.value.trim();
    if (closed) return restart();
    if (body && send({ type: "send", body })) input.value = "";
  });
  let lastTyping = 0;
  input.addEventListener("input", () => {
    if (Date.now() - lastTyping > 2000) {
      lastTyping = Date.now();
      send({ type: "typing" });
    }
  });

  async function leaveChat() {
    if (!session || closed) return toggle(false);
    try {
      await call("POST", "/visitor/leave");
    } catch {
      // Already closed, or the token is gone: nothing left to leave.
    }
    ended();
  }

  function ended() {
    closed = true;
    status.textContent = "This conversation has ended";
    input.placeholder = "Press Enter to start a new chat";
  }

  /** Odoo's three faces and an optional comment, once, when the chat has ended. */
  function askRating() {
    const comment = h("input", { class: "sbw-comment", "aria-label": "Comment (optional)", placeholder: "Anything to add? (optional)", maxlength: "1000" });
    const box = h("li", { class: "sbw-rate", "aria-label": "Rate this conversation" }, h("span", {}, "How did we do?"));
    const send = async (score) => {
      try {
        await call("POST", "/visitor/rating", { score, comment: comment.value.trim() || undefined });
        box.replaceChildren(h("span", {}, "Thank you for your feedback!"));
      } catch (error) {
        box.append(h("span", { class: "sbw-rate-error" }, error.message));
      }
    };
    const faces = h("div", { class: "sbw-faces" },
      ...[[1, "😞", "Unhappy"], [3, "😐", "Neutral"], [5, "😊", "Happy"]].map(([score, face, label]) =>
        h("button", { type: "button", "aria-label": label, title: label, "data-score": score, onclick: () => send(score) }, face)));
    box.append(faces, comment);
    log.append(box);
    log.scrollTop = log.scrollHeight;
  }

  function restart() {
    ws?.close(1000);
    ws = null;
    session = null;
    closed = false;
    shown.clear();
    log.replaceChildren();
    input.placeholder = "Type a message…";
    save();
    start();
  }

  document.head.append(style);
  document.body.append(win, bubble);
  // A conversation in progress reopens by itself after a reload.
  if (session) toggle(true);
})();
