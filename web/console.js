// The operator console: one WebSocket to /ws/agent carries every live event;
// HTTP is used for reads and for actions with a dialog (invite, preferences).

import { api, auth, clock, el, fill, icon, randomHex, toast } from "/api.js";

const STATUS_LABELS = {
  bot: "With the bot",
  queued: "Queued",
  in_progress: "In progress",
  waiting: "Waiting for customer",
  need_help: "Looking for help",
  closed: "Closed",
};
const SETTABLE = ["in_progress", "waiting", "need_help"];
const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  users: new Map(),
  expertise: new Map(),
  channels: new Map(),
  /** id → conversation summary or full view (without its transcript). */
  conversations: new Map(),
  /** id → Map(message id → message), for conversations opened in this page. */
  transcripts: new Map(),
  board: [],
  selected: null,
  ws: null,
  /** Command refs are this page's random prefix and a counter: the server
   * takes a stored ref for a resend, so refs must never repeat across reloads or tabs. */
  refPrefix: randomHex(12),
  nextRef: 1,
  pending: new Map(),
  typing: new Map(),
  unseen: 0,
  reconnectDelay: 500,
  lastTyping: 0,
  /** conversation id → the visitor's other conversations (history items). */
  previous: new Map(),
  history: { items: [], cursor: null },
  /** Canned responses: the shared ones and mine, by shortcut, mine first. */
  canned: [],
  /** Open leads (missed chats) on my channels, oldest first; `null` until loaded. */
  leads: null,
  /** conversation id → { text, note }: what was being typed, kept across re-renders, reconnects and reloads. */
  drafts: new Map(Object.entries(JSON.parse(sessionStorage.getItem("switchboard-drafts") ?? "{}")).map(([id, d]) => [Number(id), d])),
};

/** How this browser gets the operator's attention; each is switched in My Preferences. */
const alerts = { sound: true, desktop: true, messages: true, ...JSON.parse(localStorage.getItem("switchboard-alerts") ?? "{}") };

function saveDraft(id, text, note) {
  if (text) state.drafts.set(id, { text, note });
  else state.drafts.delete(id);
  sessionStorage.setItem("switchboard-drafts", JSON.stringify(Object.fromEntries(state.drafts)));
}

// ---- start-up and login ----

async function boot() {
  if (!auth.token) return showLogin();
  try {
    state.me = await api("GET", "/me");
  } catch (error) {
    if (error.status === 401 || error.status === 403) return showLogin();
    throw error;
  }
  await loadDirectory();
  $("login-view").hidden = true;
  $("app").hidden = false;
  renderHeader();
  connect();
  if (location.hash === "#history") showHistory();
}

function showLogin() {
  auth.token = null;
  $("app").hidden = true;
  $("login-view").hidden = false;
  $("login").focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const { token } = await api("POST", "/auth/login", { login: $("login").value, password: $("password").value });
    auth.token = token;
    $("password").value = "";
    await boot();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/auth/logout");
  } finally {
    state.ws?.close(1000);
    state.ws = null;
    showLogin();
  }
});

async function loadDirectory() {
  const [users, expertise, channels] = await Promise.all([api("GET", "/users"), api("GET", "/expertise"), api("GET", "/channels")]);
  state.users = new Map(users.map((u) => [u.id, u]));
  state.expertise = new Map(expertise.map((e) => [e.id, e]));
  state.channels = new Map(channels.map((c) => [c.id, c]));
  await loadCanned();
}

async function loadCanned() {
  state.canned = await api("GET", "/canned_responses");
}

function renderHeader() {
  fill($("me"), `${state.me.name} (${state.me.login})`);
  $("admin-link").textContent = state.me.role === "admin" ? "Administration" : "Expertise";
  $("presence").value = state.me.presence === "away" ? "away" : "online";
}

// ---- the WebSocket ----

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws/agent?token=${encodeURIComponent(auth.token)}&presence=batched`);
  state.ws = ws;
  setConnection("Connecting…");
  ws.addEventListener("open", () => {
    state.reconnectDelay = 500;
    setConnection("");
  });
  ws.addEventListener("message", (event) => handle(JSON.parse(event.data)));
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    for (const { reject } of state.pending.values()) reject(new Error("connection lost"));
    state.pending.clear();
    if (event.code === 1008 || event.code === 4001) return showLogin();
    setConnection("Reconnecting…");
    setTimeout(() => state.ws === ws && connect(), state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 10000);
  });
}

function setConnection(text) {
  fill($("connection"), text);
}

/** Sends a command; resolves with its `ack`, rejects with its `error`. */
function command(frame) {
  return new Promise((resolve, reject) => {
    if (state.ws?.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
    const ref = `${state.refPrefix}-${state.nextRef++}`;
    state.pending.set(ref, { resolve, reject });
    state.ws.send(JSON.stringify({ ...frame, ref }));
  });
}

function handle(event) {
  switch (event.type) {
    case "hello": {
      state.me = event.user;
      renderHeader();
      for (const c of event.conversations) upsert(c);
      state.board = event.need_help;
      // Back after a drop: fetch whatever was missed in the open transcripts.
      for (const [id, transcript] of state.transcripts) {
        const after = Math.max(0, ...transcript.keys());
        command({ type: "resume", conversation_id: id, after_id: after }).catch(() => {});
      }
      renderSidebar();
      renderPane();
      loadLeads();
      break;
    }
    case "assigned":
    case "invited": {
      const c = event.conversation;
      upsert(c);
      storeMessages(c.id, c.messages);
      if (c.kind === "direct") notify(`${title(c)} started a conversation with you`);
      else {
        const heading = event.reason === "transfer" ? "Transferred to you:" : event.type === "assigned" ? "New conversation with" : "You were invited to";
        notify(`${heading} ${title(c)}`);
      }
      if (state.selected === null) select(c.id);
      else if (state.selected === c.id) renderPane();
      renderSidebar();
      break;
    }
    case "message": {
      storeMessages(event.conversation_id, [event.message]);
      const c = state.conversations.get(event.conversation_id);
      if (c) c.last_message = event.message;
      state.typing.delete(event.conversation_id);
      const fromOther = event.message.author.id !== state.me.id && event.message.author.kind !== "system";
      const inView = event.conversation_id === state.selected && !document.hidden && document.hasFocus();
      if (fromOther && !inView && c?.member_ids?.includes(state.me.id)) {
        const background = event.conversation_id !== state.selected;
        if (background) c.unread = (c.unread ?? 0) + 1;
        if (alerts.messages) notify(`${event.message.author.name}: ${event.message.body}`, { quiet: true, counted: background });
      }
      renderSidebar();
      if (event.conversation_id === state.selected) {
        renderTranscript();
        renderTyping();
      }
      break;
    }
    case "status":
      patch(event.conversation_id, { status: event.status });
      break;
    case "closed":
      patch(event.conversation_id, { status: "closed" });
      break;
    case "member_joined": {
      const c = state.conversations.get(event.conversation_id);
      if (c && !c.member_ids.includes(event.user.id)) patch(c.id, { member_ids: [...c.member_ids, event.user.id] });
      break;
    }
    case "member_left": {
      const c = state.conversations.get(event.conversation_id);
      if (c) patch(c.id, { member_ids: c.member_ids.filter((id) => id !== event.user.id) });
      break;
    }
    case "need_help": {
      const before = new Set(state.board.map((e) => e.id));
      state.board = event.conversations;
      for (const entry of state.board.filter((e) => !before.has(e.id) && !e.is_member)) {
        const text = `${entry.requested_by?.name ?? "A colleague"} needs help${entry.visitor_name ? ` with ${entry.visitor_name}` : ""}`;
        notify(entry.starred ? `★ ${text} (your expertise)` : text, { tone: entry.starred ? "starred" : "help" });
      }
      renderBoard();
      const previewed = state.selected !== null && state.conversations.get(state.selected);
      if (previewed && !previewed.member_ids.includes(state.me.id) && previewed.status === "need_help" && !state.board.some((e) => e.id === previewed.id)) {
        // Someone else answered the call being previewed: it is theirs now, and no longer readable here.
        state.conversations.delete(previewed.id);
        state.selected = null;
        renderSidebar();
        fill($("pane"), el("p", { class: "empty", id: "answered" }, "A colleague joined that conversation; it no longer needs help."));
      } else if (previewed && !previewed.member_ids.includes(state.me.id)) {
        renderPane();
      }
      break;
    }
    case "presences":
      // presence=batched: every change of the last few milliseconds in one frame.
      event.changes.forEach(onPresence);
      break;
    case "visitor":
      patch(event.conversation_id, { visitor: event.visitor });
      break;
    case "lead":
      onLead(event.lead);
      break;
    case "typing":
      state.typing.set(event.conversation_id, { name: event.author.name, until: Date.now() + 3000 });
      if (event.conversation_id === state.selected) renderTyping();
      setTimeout(renderTyping, 3100);
      break;
    case "ack":
    case "error": {
      const waiter = state.pending.get(event.ref);
      state.pending.delete(event.ref);
      if (event.type === "ack") {
        if (event.message) storeMessages(event.message.conversation_id, [event.message]);
        if (event.replay) storeMessages(null, event.replay);
        waiter?.resolve(event);
      } else {
        waiter ? waiter.reject(new Error(event.error.message)) : toast(event.error.message, "error");
      }
      break;
    }
    default:
      break;
  }
}

// ---- state helpers ----

function upsert(c) {
  const known = state.conversations.get(c.id) ?? {};
  const { messages, ...rest } = c;
  state.conversations.set(c.id, { ...known, ...rest });
}

function patch(id, changes) {
  const c = state.conversations.get(id);
  if (!c) return;
  Object.assign(c, changes);
  renderSidebar();
  if (id === state.selected) renderPane();
}

function storeMessages(id, messages) {
  for (const m of messages ?? []) {
    const cid = id ?? m.conversation_id;
    if (!state.transcripts.has(cid)) {
      if (cid !== state.selected) continue;
      state.transcripts.set(cid, new Map());
    }
    state.transcripts.get(cid).set(m.id, m);
  }
}

function userName(id) {
  return state.users.get(id)?.name ?? `Operator #${id}`;
}

function title(c) {
  if (c.kind === "direct") return c.member_ids.filter((id) => id !== state.me.id).map(userName).join(", ") || "Direct";
  return c.visitor?.name ?? c.visitor_name ?? `Visitor #${c.id}`;
}

/** Tones: a new chat or message, a call for help, and a call matching my expertise (two notes, higher). */
const TONES = { chat: [880], help: [660], starred: [990, 1320] };

/**
 * Gets the operator's attention: a tone (`tone` of TONES); while the tab is
 * in the background, a count in the title and a desktop notification (once
 * allowed); and a toast unless `quiet` (a chat message shows in its list
 * item instead). `counted`: already in a chat's unread count, so the title
 * does not count it twice.
 */
function notify(text, { quiet = false, tone = "chat", counted = false } = {}) {
  if (document.hidden || !document.hasFocus()) {
    if (!counted) state.unseen += 1;
    renderTitle();
    if (alerts.desktop && window.Notification?.permission === "granted") new Notification("Switchboard", { body: text, tag: "switchboard" });
  }
  if (!quiet) toast(text);
  if (!alerts.sound) return;
  try {
    const audio = new AudioContext();
    const gain = audio.createGain();
    gain.gain.value = 0.05;
    gain.connect(audio.destination);
    TONES[tone].forEach((frequency, i) => {
      const note = audio.createOscillator();
      note.frequency.value = frequency;
      note.connect(gain);
      note.start(audio.currentTime + i * 0.15);
      note.stop(audio.currentTime + i * 0.15 + 0.12);
    });
  } catch {
    // No sound before the first user gesture: the title count still shows it.
  }
}

/**
 * The tab title counts what waits for the operator: unread messages in
 * their chats (whether or not the tab has focus: a background chat is easy
 * to miss) plus what arrived while the tab was hidden.
 */
function renderTitle() {
  const unread = [...state.conversations.values()].reduce((n, c) => n + (c.unread ?? 0), 0);
  const count = unread + state.unseen;
  document.title = count ? `(${count}) Switchboard` : "Switchboard";
}

// Desktop notifications need the operator's permission, asked on a first click (browsers refuse it otherwise).
document.addEventListener("click", () => window.Notification?.permission === "default" && Notification.requestPermission(), { once: true });

window.addEventListener("focus", () => {
  state.unseen = 0;
  renderTitle();
});

// ---- sidebar ----

function renderSidebar() {
  renderBoard();
  renderTitle();
  const open = state.leads?.length ?? 0;
  $("open-leads").textContent = open ? `Leads (${open})` : "Leads";
  const groups = new Map();
  const mine = [...state.conversations.values()].filter((c) => c.member_ids?.includes(state.me.id));
  mine.sort((a, b) => (a.status === "closed") - (b.status === "closed") || b.id - a.id);
  for (const c of mine) {
    const key = c.kind === "direct" ? "Direct messages" : state.channels.get(c.channel_id)?.name ?? "Livechat";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  }
  const sections = [...groups].map(([name, list]) =>
    el("section", { class: "group" }, el("h2", {}, name), el("ul", { class: "list" }, list.map(conversationItem))),
  );
  fill($("channels"), sections.length ? sections : el("p", { class: "empty" }, "No conversations yet."));
}

function conversationItem(c) {
  return el(
    "li",
    {},
    el(
      "button",
      {
        type: "button",
        class: `item${c.id === state.selected ? " selected" : ""}${c.status === "closed" ? " closed" : ""}`,
        "aria-current": c.id === state.selected ? "true" : undefined,
        dataset: { conversation: c.id },
        onclick: () => select(c.id),
      },
      el("span", { class: "item-title" }, title(c)),
      // A direct conversation has no workflow: only "Closed" is worth a badge.
      c.kind !== "direct" || c.status === "closed" ? el("span", { class: `badge status-${c.status}` }, STATUS_LABELS[c.status]) : null,
      c.unread ? el("span", { class: "unread", "aria-label": `${c.unread} unread` }, String(c.unread)) : null,
      c.last_message ? el("span", { class: "snippet" }, c.last_message.body) : null,
    ),
  );
}

function renderBoard() {
  const items = state.board.map((entry) =>
    el(
      "li",
      {},
      el(
        "button",
        {
          type: "button",
          class: `item help${entry.starred ? " starred" : ""}${entry.id === state.selected ? " selected" : ""}`,
          dataset: { conversation: entry.id, starred: entry.starred },
          onclick: () => select(entry.id),
        },
        entry.starred ? el("span", { class: "star", title: "Relevant to your expertise" }, icon("star", "Relevant to your expertise")) : null,
        el("span", { class: "item-title" }, entry.visitor_name ?? `Conversation #${entry.id}`),
        el("span", { class: "tags" }, entry.expertise_ids.map((id) => el("span", { class: "tag" }, state.expertise.get(id)?.name ?? `#${id}`))),
        el(
          "span",
          { class: "help-asker" },
          entry.is_member ? "Your call for help" : entry.requested_by ? `${entry.requested_by.name} asks` : "Help wanted",
          entry.need_help_since ? ` · since ${clock(entry.need_help_since)}` : "",
        ),
        entry.note ? el("span", { class: "help-note" }, `“${entry.note}”`) : entry.last_message ? el("span", { class: "snippet" }, entry.last_message.body) : null,
      ),
    ),
  );
  fill($("need-help"), items.length ? items : el("li", { class: "empty" }, "Nobody needs help."));
  const waiting = state.board.filter((e) => !e.is_member).length;
  $("help-title").textContent = waiting ? `Looking for help (${waiting})` : "Looking for help";
}

// ---- the conversation pane ----

async function select(id) {
  state.selected = id;
  const c = state.conversations.get(id);
  if (c) c.unread = 0;
  renderSidebar();
  try {
    const view = await api("GET", `/conversations/${id}`);
    upsert(view);
    state.transcripts.set(id, new Map(view.messages.map((m) => [m.id, m])));
    if (view.kind === "livechat") state.previous.set(id, await api("GET", `/conversations/${id}/visitor_history`));
  } catch (error) {
    toast(error.message, "error");
  }
  renderPane();
  $("composer-input")?.focus();
}

function isMember(c) {
  return c.member_ids?.includes(state.me.id);
}

function renderPane() {
  const c = state.conversations.get(state.selected);
  const pane = $("pane");
  // The operator may be mid-sentence: the rebuilt box gets focus and caret back (its text comes from the draft).
  const active = document.activeElement;
  const typing = active?.id === "composer-input" ? { start: active.selectionStart, end: active.selectionEnd } : null;
  if (!c) return fill(pane, el("p", { class: "empty" }, "Select a conversation."));
  const member = isMember(c);
  const open = c.status !== "closed";
  const actions = [];
  if (c.kind === "livechat" && member && open && SETTABLE.includes(c.status)) {
    const select = el(
      "select",
      { id: "status-select", "aria-label": "Conversation status", onchange: (e) => setStatus(c.id, e.target.value) },
      SETTABLE.map((s) => el("option", { value: s, selected: s === c.status }, STATUS_LABELS[s])),
    );
    actions.push(el("label", { class: "inline" }, "Status ", select));
    if (c.status !== "need_help") {
      // Sent with a switch to "Looking for help": colleagues see it on their board.
      actions.push(el("input", { id: "help-note", class: "help-note-input", maxlength: 200, placeholder: "Why help? (optional)", "aria-label": "Note for a call for help" }));
    }
  }
  if (c.status === "need_help" && !member) {
    actions.push(el("button", { id: "join", type: "button", class: "primary", onclick: () => join(c.id) }, icon("sign-in"), " Join"));
  }
  if (member && open) {
    actions.push(el("button", { id: "invite", type: "button", onclick: () => openInvite(c, "invite") }, icon("user-plus"), " Invite People"));
    if (c.kind === "livechat") actions.push(el("button", { id: "transfer", type: "button", onclick: () => openInvite(c, "transfer") }, "Transfer"));
    // The last operator of a livechat transfers or closes instead (the server answers 409).
    if (c.kind === "direct" || c.member_ids.length > 1) {
      actions.push(el("button", { id: "leave", type: "button", onclick: () => leaveConversation(c.id) }, "Leave"));
    }
    actions.push(el("button", { id: "close", type: "button", onclick: () => closeConversation(c.id) }, "Close"));
  }
  actions.push(el("button", { id: "download-transcript", type: "button", onclick: () => downloadTranscript(c.id) }, "Download transcript"));
  fill(
    pane,
    el(
      "header",
      { class: "pane-header" },
      el("h2", { id: "pane-title" }, title(c)),
      el("span", { class: `badge status-${c.status}`, id: "pane-status" }, STATUS_LABELS[c.status]),
      el("div", { class: "actions" }, actions),
    ),
    c.kind === "livechat" ? expertiseEditor(c, member && open) : null,
    c.visitor ? visitorContext(c.visitor) : null,
    previousConversations(c),
    el("ol", { id: "transcript", class: "transcript", "aria-label": "Messages" }),
    el("p", { id: "typing", class: "typing", "aria-live": "polite" }),
    member && open ? composer(c) : null,
  );
  renderTranscript();
  renderTyping();
  if (typing) {
    const box = $("composer-input");
    box?.focus();
    box?.setSelectionRange(typing.start, typing.end);
  }
}

// ---- history ----

/** One history result: who, when, status and the matching words. */
function historyItem(item) {
  const who = item.visitor_name ?? (item.kind === "direct" ? item.operator_ids.map(userName).join(" & ") : `Conversation #${item.id}`);
  return el(
    "li",
    {},
    el(
      "button",
      { type: "button", class: "item", dataset: { conversation: item.id }, onclick: () => select(item.id) },
      el("span", { class: "item-title" }, who),
      el("span", { class: `badge status-${item.status}` }, STATUS_LABELS[item.status]),
      el("span", { class: "meta" }, `${clock(item.created_at)} · ${item.message_count} messages`),
      item.snippet ? el("span", { class: "snippet" }, item.snippet) : null,
    ),
  );
}

/** What the server knows of the visitor: contact, where they are, their local time, the pages they opened. */
function visitorContext(v) {
  const link = (url, text) => el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, text || url);
  const localTime = () => {
    try {
      return v.timezone ? `${new Date().toLocaleTimeString([], { timeZone: v.timezone, hour: "2-digit", minute: "2-digit" })} (${v.timezone})` : null;
    } catch {
      return v.timezone;
    }
  };
  const browser = v.user_agent ? (/(Firefox|Edg|OPR|Chrome|Safari)\/[\d.]+/.exec(v.user_agent)?.[0] ?? v.user_agent).replace("Edg/", "Edge/").replace("OPR/", "Opera/") : null;
  const rows = [
    ["Email", v.email ? el("a", { href: `mailto:${v.email}` }, v.email) : null],
    ["Phone", v.phone],
    ["Language", [v.lang, v.country].filter(Boolean).join(" · ") || null],
    ["Local time", localTime()],
    ["On page", v.page_url ? link(v.page_url, v.page_title) : null],
    ["Came from", v.referrer ? link(v.referrer) : null],
    ["Browser", browser],
  ].filter(([, value]) => value);
  const pages = (v.pages ?? []).slice(-5).reverse();
  return el(
    "details",
    { id: "visitor-context", class: "visitor-context", open: true },
    el("summary", {}, "Visitor"),
    el("dl", {}, rows.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)])),
    pages.length > 1
      ? el("ol", { class: "pages", "aria-label": "Pages visited, latest first" }, pages.map((p) => el("li", {}, el("time", { datetime: p.at }, clock(p.at)), " ", link(p.url, p.title))))
      : null,
  );
}

/** "Previous conversations" of the open livechat's visitor. */
function previousConversations(c) {
  const items = state.previous.get(c.id);
  if (!items?.length) return null;
  return el(
    "section",
    { id: "previous", class: "previous", "aria-labelledby": "previous-title" },
    el("h3", { id: "previous-title" }, `Previous conversations (${items.length})`),
    el("ul", { class: "list" }, items.map(historyItem)),
  );
}

function showHistory() {
  state.selected = null;
  renderSidebar();
  const choices = (map, all) => [el("option", { value: "" }, all), ...[...map.values()].map((x) => el("option", { value: x.id }, x.name))];
  fill(
    $("pane"),
    el("header", { class: "pane-header" }, el("h2", { id: "pane-title" }, "History")),
    el(
      "form",
      { id: "history-form", class: "history-filters", role: "search", onsubmit: (e) => { e.preventDefault(); searchHistory(false); } },
      el("input", { id: "history-q", type: "search", placeholder: "Words in messages or the visitor's name (word* for a prefix)", "aria-label": "Search history" }),
      el("select", { id: "history-channel", "aria-label": "Channel" }, choices(state.channels, "All channels")),
      el("select", { id: "history-operator", "aria-label": "Operator" }, choices(state.users, "All operators")),
      el("select", { id: "history-expertise", "aria-label": "Expertise" }, choices(state.expertise, "All expertise")),
      el("label", { class: "inline" }, "From ", el("input", { id: "history-from", type: "date" })),
      el("label", { class: "inline" }, "To ", el("input", { id: "history-to", type: "date" })),
      el("button", { type: "submit", class: "primary" }, "Search"),
    ),
    el("ul", { id: "history-results", class: "list history-results", "aria-label": "Results" }),
    el("button", { id: "history-more", type: "button", hidden: true, onclick: () => searchHistory(true) }, "Load more"),
  );
  searchHistory(false);
}

async function searchHistory(more) {
  const params = new URLSearchParams();
  const set = (name, value) => value && params.set(name, value);
  set("q", $("history-q").value.trim());
  set("channel_id", $("history-channel").value);
  set("operator_id", $("history-operator").value);
  set("expertise_id", $("history-expertise").value);
  set("from", $("history-from").value && `${$("history-from").value}T00:00:00Z`);
  // The day picked is included: `to` is exclusive, so the next midnight.
  const to = $("history-to").valueAsDate;
  if (to) params.set("to", new Date(to.getTime() + 86400000).toISOString());
  if (more && state.history.cursor) params.set("cursor", state.history.cursor);
  try {
    const page = await api("GET", `/history?${params}`);
    state.history.items = more ? [...state.history.items, ...page.items] : page.items;
    state.history.cursor = page.next_cursor ?? null;
  } catch (error) {
    return toast(error.message, "error");
  }
  const results = $("history-results");
  if (!results) return;
  fill(results, state.history.items.length ? state.history.items.map(historyItem) : el("li", { class: "empty" }, "No conversation matches."));
  $("history-more").hidden = !state.history.cursor;
}

$("open-history").addEventListener("click", showHistory);
$("open-canned").addEventListener("click", showCanned);

// ---- leads: missed chats to follow up ----

const LEAD_REASONS = { no_operator: "Nobody was free", abandoned: "Left before an operator came" };

async function loadLeads() {
  try {
    state.leads = await api("GET", "/leads?status=open");
  } catch (error) {
    return toast(error.message, "error");
  }
  renderSidebar();
  renderLeads();
}

/** One operator's new presence: the invite list shows it, the header shows one's own. */
function onPresence({ user_id, presence }) {
  const user = state.users.get(user_id);
  if (user) user.presence = presence;
  if (user_id === state.me.id) {
    state.me.presence = presence;
    renderHeader();
  }
}

/** A `lead` event: a new missed chat rings; a claim or a follow-up done updates (done ones leave the list). */
function onLead(lead) {
  if (state.leads === null) return;
  const known = state.leads.findIndex((l) => l.conversation_id === lead.conversation_id);
  if (known === -1 && lead.status === "open") {
    state.leads.push(lead);
    notify(`Missed chat: ${lead.visitor_name}${lead.email ? ` (${lead.email})` : ""}`, { tone: "help" });
  } else if (known !== -1) {
    if (lead.status === "open") state.leads[known] = lead;
    else state.leads.splice(known, 1);
  }
  renderSidebar();
  renderLeads();
}

function showLeads() {
  state.selected = null;
  renderSidebar();
  fill(
    $("pane"),
    el("header", { class: "pane-header" }, el("h2", { id: "pane-title" }, "Leads")),
    el("p", { class: "hint" }, "Visitors nobody talked to. Claim one to follow it up, mark it done once you have."),
    el("ul", { id: "leads-list", class: "list leads" }),
  );
  renderLeads();
}

async function changeLead(lead, what) {
  try {
    onLead(await api("POST", `/leads/${lead.conversation_id}/${what}`));
  } catch (error) {
    toast(error.message, "error");
  }
}

function renderLeads() {
  const list = $("leads-list");
  if (!list) return;
  const mine = (l) => l.claimed_by?.id === state.me.id;
  const free = (l) => !l.claimed_by || mine(l) || state.me.role === "admin";
  fill(
    list,
    state.leads?.length
      ? state.leads.map((l) =>
          el(
            "li",
            { class: "lead", dataset: { conversation: l.conversation_id } },
            el("strong", {}, l.visitor_name),
            el("span", { class: "meta" }, ` ${LEAD_REASONS[l.reason]} · ${clock(l.created_at)}`),
            el(
              "p",
              { class: "contact" },
              l.email ? el("a", { href: `mailto:${l.email}` }, l.email) : null,
              l.email && l.phone ? " · " : null,
              l.phone ? el("a", { href: `tel:${l.phone}` }, l.phone) : null,
              !l.email && !l.phone ? "No contact left" : null,
            ),
            l.claimed_by ? el("p", { class: "meta" }, mine(l) ? "You follow this up" : `${l.claimed_by.name} follows this up`) : null,
            el(
              "div",
              { class: "actions" },
              el("button", { type: "button", class: "open-lead", onclick: () => select(l.conversation_id) }, "Transcript"),
              l.claimed_by ? null : el("button", { type: "button", class: "claim-lead primary", onclick: () => changeLead(l, "claim") }, "Claim"),
              free(l) ? el("button", { type: "button", class: "done-lead", onclick: () => changeLead(l, "done") }, "Done") : null,
            ),
          ),
        )
      : el("li", { class: "empty" }, "No missed chats."),
  );
}

$("open-leads").addEventListener("click", showLeads);

// ---- canned responses ----

/** The replies whose shortcut starts with `prefix`; an own one hides a shared one of the same shortcut. */
function cannedMatching(prefix) {
  const seen = new Set();
  return state.canned.filter((c) => c.shortcut.startsWith(prefix) && !seen.has(c.shortcut) && seen.add(c.shortcut));
}

function fillCanned(body, c) {
  return body.replaceAll("{visitor_name}", title(c)).replaceAll("{operator_name}", state.me.name);
}

function showCanned() {
  state.selected = null;
  renderSidebar();
  const shortcut = el("input", { id: "canned-shortcut", required: true, pattern: "[a-z0-9_\\-]{1,32}", placeholder: "shortcut", "aria-label": "Shortcut" });
  const body = el("textarea", { id: "canned-body", required: true, rows: 3, placeholder: "Hello {visitor_name}, …", "aria-label": "Reply" });
  const shared = el("input", { id: "canned-shared", type: "checkbox" });
  const form = el(
    "form",
    { id: "canned-form", class: "canned-form" },
    el("label", { class: "inline" }, "/", shortcut),
    body,
    state.me.role === "admin" ? el("label", { class: "check" }, shared, "Shared with every operator") : null,
    el("button", { type: "submit", class: "primary" }, "Save reply"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/canned_responses", { shortcut: shortcut.value, body: body.value, shared: shared.checked });
      form.reset();
      await loadCanned();
      renderCanned();
    } catch (error) {
      toast(error.message, "error");
    }
  });
  fill(
    $("pane"),
    el("header", { class: "pane-header" }, el("h2", { id: "pane-title" }, "Saved replies")),
    el("p", { class: "hint" }, "Type /shortcut in a chat to insert a reply; {visitor_name} and {operator_name} are filled in."),
    form,
    el("ul", { id: "canned-list", class: "list canned-list", "aria-label": "Saved replies" }),
  );
  renderCanned();
}

function renderCanned() {
  const list = $("canned-list");
  if (!list) return;
  const editable = (c) => state.me.role === "admin" || c.owner_id === state.me.id;
  const remove = async (c) => {
    if (!confirm(`Delete the reply /${c.shortcut}?`)) return;
    try {
      await api("DELETE", `/canned_responses/${c.id}`);
      await loadCanned();
      renderCanned();
    } catch (error) {
      toast(error.message, "error");
    }
  };
  fill(
    list,
    state.canned.length
      ? state.canned.map((c) =>
          el(
            "li",
            { dataset: { id: c.id } },
            el("strong", {}, `/${c.shortcut}`),
            c.shared ? el("span", { class: "tag" }, "Shared") : null,
            el("p", { class: "body" }, c.body),
            editable(c) ? el("button", { type: "button", class: "link danger", onclick: () => remove(c) }, "Delete") : null,
          ),
        )
      : el("li", { class: "empty" }, "No saved replies yet."),
  );
}

/** Saves the transcript as a text file (fetched with the token, so not a plain link). */
async function downloadTranscript(id) {
  const res = await fetch(`/api/v1/conversations/${id}/transcript?format=text`, { headers: { Authorization: `Bearer ${auth.token}` } });
  if (!res.ok) return toast(`Download failed (${res.status})`, "error");
  document.getElementById("transcript-download")?.remove();
  const href = `data:text/plain;charset=utf-8,${encodeURIComponent(await res.text())}`;
  const link = el("a", { id: "transcript-download", href, download: `conversation-${id}.txt`, hidden: true });
  document.body.append(link);
  link.click();
}

function renderTranscript() {
  const list = $("transcript");
  if (!list) return;
  const messages = [...(state.transcripts.get(state.selected)?.values() ?? [])].sort((a, b) => a.id - b.id);
  fill(
    list,
    messages.map((m) =>
      el(
        "li",
        { class: `message from-${m.author.kind}${m.author.id === state.me.id ? " mine" : ""}${m.internal ? " internal" : ""}`, dataset: { id: m.id } },
        el("span", { class: "author" }, m.author.name),
        m.internal ? el("span", { class: "note-label" }, "Internal note") : null,
        el("time", { datetime: m.created_at }, clock(m.created_at)),
        el("p", { class: "body" }, m.body),
        m.answers ? el("ul", { class: "answers", "aria-label": "Choices offered" }, m.answers.map((a) => el("li", {}, a.label))) : null,
      ),
    ),
  );
  list.scrollTop = list.scrollHeight;
}

function renderTyping() {
  const line = $("typing");
  if (!line) return;
  const typing = state.typing.get(state.selected);
  line.textContent = typing && typing.until > Date.now() ? `${typing.name} is typing…` : "";
}

function expertiseEditor(c, editable) {
  const tags = c.expertise_ids.map((id) => el("span", { class: "tag" }, state.expertise.get(id)?.name ?? `#${id}`));
  if (!editable) return el("div", { class: "expertise" }, "Expertise: ", tags.length ? tags : "none");
  const edit = el("details", { class: "expertise-edit" }, el("summary", {}, "Edit expertise"));
  const checks = [...state.expertise.values()].map((e) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", value: e.id, checked: c.expertise_ids.includes(e.id) }), e.name),
  );
  const save = el("button", { type: "button", onclick: async () => {
    const ids = [...edit.querySelectorAll("input:checked")].map((i) => Number(i.value));
    try {
      const view = await api("PUT", `/conversations/${c.id}/expertise`, { expertise_ids: ids });
      upsert(view);
      renderPane();
    } catch (error) {
      toast(error.message, "error");
    }
  } }, "Save");
  edit.append(el("div", { class: "checks" }, checks), save);
  return el("div", { class: "expertise" }, "Expertise: ", tags.length ? tags : "none", " ", edit);
}

function composer(c) {
  const input = el("textarea", { id: "composer-input", rows: 2, "aria-label": "Message", placeholder: "Write a message…" });
  // An internal note goes to colleagues only; the visitor never sees it.
  const note = el("input", { type: "checkbox", id: "composer-note" });
  const form = el(
    "form",
    { class: "composer" },
    input,
    el("label", { class: "check note-toggle", title: "Only operators see internal notes" }, note, "Internal note"),
    el("button", { type: "submit", class: "primary", "aria-label": "Send" }, icon("send"), " Send"),
  );
  // `/shortcut` offers the matching saved replies; Tab or Enter takes the first.
  const suggestions = el("ul", { id: "canned-suggestions", class: "suggestions", hidden: true, role: "listbox" });
  const take = (canned) => {
    input.value = fillCanned(canned.body, c);
    suggestions.hidden = true;
    input.focus();
  };
  const suggest = () => {
    const typed = /^\/([a-z0-9_-]*)$/.exec(input.value);
    const found = typed ? cannedMatching(typed[1]).slice(0, 8) : [];
    fill(suggestions, found.map((canned) => el("li", { role: "option", onmousedown: (e) => { e.preventDefault(); take(canned); } },
      el("strong", {}, `/${canned.shortcut}`), " ", canned.body)));
    suggestions.hidden = found.length === 0;
    return found;
  };
  form.prepend(suggestions);
  input.addEventListener("keydown", (e) => {
    if ((e.key === "Tab" || e.key === "Enter") && !suggestions.hidden) {
      const [first] = suggest();
      if (first) {
        e.preventDefault();
        e.stopImmediatePropagation();
        take(first);
      }
    } else if (e.key === "Escape") {
      suggestions.hidden = true;
    }
  });
  input.addEventListener("input", suggest);
  const noteMode = () => {
    form.classList.toggle("note-mode", note.checked);
    input.placeholder = note.checked ? "Write an internal note (operators only)…" : "Write a message…";
  };
  note.addEventListener("change", () => {
    noteMode();
    saveDraft(c.id, input.value, note.checked);
  });
  // A re-render (status change, join, reconnect) rebuilds this form: the draft comes back.
  const draft = state.drafts.get(c.id);
  if (draft) {
    input.value = draft.text;
    note.checked = draft.note;
    noteMode();
  }
  input.addEventListener("input", () => saveDraft(c.id, input.value, note.checked));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    if (Date.now() - state.lastTyping > 2000) {
      state.lastTyping = Date.now();
      command({ type: "typing", conversation_id: c.id }).catch(() => {});
    }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    const internal = note.checked;
    input.value = "";
    try {
      await command({ type: "send", conversation_id: c.id, body, internal });
      saveDraft(c.id, "", false);
      renderTranscript();
    } catch (error) {
      // Kept: the draft still holds it, and the box gets it back if it was rebuilt meanwhile.
      const box = $("composer-input");
      if (box && !box.value) box.value = body;
      toast(error.message, "error");
    }
  });
  return form;
}

async function setStatus(id, status) {
  const note = status === "need_help" ? $("help-note")?.value.trim() || undefined : undefined;
  try {
    await command({ type: "set_status", conversation_id: id, status, note });
  } catch (error) {
    toast(error.message, "error");
    renderPane();
  }
}

async function join(id) {
  try {
    const view = await api("POST", `/conversations/${id}/join`);
    upsert(view);
    state.transcripts.set(id, new Map(view.messages.map((m) => [m.id, m])));
    renderSidebar();
    renderPane();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function closeConversation(id) {
  try {
    upsert(await api("POST", `/conversations/${id}/close`));
    renderSidebar();
    renderPane();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function leaveConversation(id) {
  if (!confirm("Leave this conversation? Your colleagues stay with the visitor.")) return;
  try {
    await api("POST", `/conversations/${id}/leave`);
    forget(id);
  } catch (error) {
    toast(error.message, "error");
  }
}

/** The caller is no longer in `id` (left or transferred it): it leaves their list. */
function forget(id) {
  state.conversations.delete(id);
  if (state.selected === id) state.selected = null;
  renderSidebar();
  renderPane();
}

// ---- invite and transfer (one dialog: several colleagues to invite, or one to hand over to) ----

let inviteFor = null;
let dialogMode = "invite";

async function openInvite(c, mode) {
  inviteFor = c;
  dialogMode = mode;
  const transfer = mode === "transfer";
  $("invite-title").textContent = transfer ? "Transfer to" : "Invite People";
  $("invite-submit").textContent = transfer ? "Transfer" : "Invite";
  $("transfer-by-expertise").hidden = !transfer;
  fill(
    $("transfer-expertise"),
    el("option", { value: "" }, "— or pick a colleague above —"),
    [...state.expertise.values()].map((e) => el("option", { value: e.id }, e.name)),
  );
  $("invite-search").value = "";
  await loadCandidates();
  $("invite-dialog").showModal();
  $("invite-search").focus();
}

async function loadCandidates() {
  const q = encodeURIComponent($("invite-search").value.trim());
  const candidates = await api("GET", `/conversations/${inviteFor.id}/invite_candidates?q=${q}`);
  const items = candidates.map((u) =>
    el(
      "li",
      { class: "candidate" },
      el(
        "label",
        {},
        el("input", { type: dialogMode === "transfer" ? "radio" : "checkbox", value: u.id, name: "invitee" }),
        el("span", { class: `dot presence-${u.presence}`, title: u.presence, "aria-label": u.presence }),
        el("span", { class: "name" }, u.name),
        u.languages ? el("span", { class: "languages" }, u.languages.join(", ")) : null,
        u.expertise?.length
          ? el("span", { class: "expertise-badges" }, icon("graduation-cap", "Expertise"), u.expertise.map((e) => el("span", { class: "tag" }, e.name)))
          : null,
      ),
    ),
  );
  fill($("invite-list"), items.length ? items : el("li", { class: "empty" }, "Nobody matches."));
}

let searchTimer = null;
$("invite-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadCandidates, 200);
});
$("invite-cancel").addEventListener("click", () => $("invite-dialog").close());
$("invite-form").addEventListener("submit", async (e) => {
  const ids = [...$("invite-list").querySelectorAll("input:checked")].map((i) => Number(i.value));
  const expertise = dialogMode === "transfer" ? $("transfer-expertise").value : "";
  if (!ids.length && !expertise) return;
  e.preventDefault();
  try {
    if (dialogMode === "transfer") {
      const body = ids.length ? { user_id: ids[0] } : { expertise_ids: [Number(expertise)] };
      await api("POST", `/conversations/${inviteFor.id}/transfer`, body);
      $("invite-dialog").close();
      forget(inviteFor.id);
    } else {
      upsert(await api("POST", `/conversations/${inviteFor.id}/invite`, { user_ids: ids }));
      $("invite-dialog").close();
      renderPane();
    }
  } catch (error) {
    toast(error.message, "error");
  }
});

// ---- preferences, presence, direct messages ----

$("open-preferences").addEventListener("click", () => {
  fill(
    $("preferences-expertise"),
    [...state.expertise.values()].map((e) =>
      el("label", { class: "check" }, el("input", { type: "checkbox", value: e.id, checked: state.me.expertise_ids.includes(e.id) }), e.name),
    ),
  );
  $("preferences-languages").value = state.me.languages.join(", ");
  $("notify-sound").checked = alerts.sound;
  $("notify-desktop").checked = alerts.desktop;
  $("notify-messages").checked = alerts.messages;
  $("preferences-dialog").showModal();
});
$("preferences-cancel").addEventListener("click", () => $("preferences-dialog").close());
$("preferences-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const expertise_ids = [...$("preferences-expertise").querySelectorAll("input:checked")].map((i) => Number(i.value));
  const languages = $("preferences-languages").value.split(",").map((s) => s.trim()).filter(Boolean);
  Object.assign(alerts, { sound: $("notify-sound").checked, desktop: $("notify-desktop").checked, messages: $("notify-messages").checked });
  localStorage.setItem("switchboard-alerts", JSON.stringify(alerts));
  if (alerts.desktop && window.Notification?.permission === "default") Notification.requestPermission();
  try {
    state.me = await api("PATCH", "/me/preferences", { expertise_ids, languages });
    $("preferences-dialog").close();
    toast("Preferences saved");
  } catch (error) {
    toast(error.message, "error");
  }
});

$("presence").addEventListener("change", async (e) => {
  try {
    await command({ type: "presence", presence: e.target.value });
  } catch (error) {
    toast(error.message, "error");
  }
});

$("new-direct").addEventListener("click", async () => {
  await loadDirectory();
  const others = [...state.users.values()].filter((u) => u.id !== state.me.id);
  fill($("direct-user"), others.map((u) => el("option", { value: u.id }, `${u.name} (${u.presence})`)));
  $("direct-dialog").showModal();
});
$("direct-cancel").addEventListener("click", () => $("direct-dialog").close());
$("direct-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const view = await api("POST", "/direct", { user_id: Number($("direct-user").value) });
    upsert(view);
    $("direct-dialog").close();
    select(view.id);
  } catch (error) {
    toast(error.message, "error");
  }
});

boot().catch((error) => toast(error.message, "error"));

// ---- keyboard ----

const SHORTCUTS = [
  ["Alt + ↓ / Alt + ↑", "Next / previous chat"],
  ["Alt + H", "History"],
  ["/ at the start of a message", "Saved replies (Tab or Enter takes the first)"],
  ["Enter / Shift + Enter", "Send / new line"],
  ["Esc", "Close suggestions and dialogs"],
  ["?", "This list"],
];

/** The chat `step` places away from the open one, in sidebar order. */
function moveSelection(step) {
  const ids = [...document.querySelectorAll("#channels .item")].map((b) => Number(b.dataset.conversation));
  if (!ids.length) return;
  const at = ids.indexOf(state.selected);
  const next = at < 0 ? (step > 0 ? 0 : ids.length - 1) : (at + step + ids.length) % ids.length;
  select(ids[next]);
}

document.addEventListener("keydown", (e) => {
  if ($("app").hidden) return;
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (e.altKey && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
    e.preventDefault();
    moveSelection(e.key === "ArrowDown" ? 1 : -1);
  } else if (e.altKey && e.key.toLowerCase() === "h") {
    e.preventDefault();
    showHistory();
  } else if (e.key === "?" && !typing) {
    showShortcuts();
  }
});

function showShortcuts() {
  fill($("shortcuts-list"), SHORTCUTS.flatMap(([keys, what]) => [el("dt", {}, el("kbd", {}, keys)), el("dd", {}, what)]));
  $("shortcuts-dialog").showModal();
}

$("open-shortcuts").addEventListener("click", showShortcuts);
