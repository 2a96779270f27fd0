// Administration: expertise, users, channels and chatbot scripts. Operators
// who are not admins see the expertise and who holds it, read-only.

import { api, auth, el, fill, toast } from "/api.js";

const $ = (id) => document.getElementById(id);
const STEP_TYPES = {
  text: "Text",
  question_selection: "Question (selection)",
  question_email: "Question (email)",
  question_phone: "Question (phone)",
  free_input_single: "Free input (single line)",
  free_input_multi: "Free input (multi-line)",
  forward_operator: "Forward to Operator",
};

let me = null;
let data = { users: [], expertise: [], channels: [], chatbots: [], canned: [], webhooks: [] };

async function load() {
  const admin = me.role === "admin";
  const [users, expertise, channels, chatbots, canned, webhooks] = await Promise.all([
    api("GET", "/users"),
    api("GET", "/expertise"),
    api("GET", "/channels"),
    api("GET", "/chatbots"),
    api("GET", "/canned_responses"),
    admin ? api("GET", "/webhooks") : [],
  ]);
  data = { users, expertise, channels, chatbots, canned, webhooks };
}

const userName = (id) => data.users.find((u) => u.id === id)?.name ?? `#${id}`;
const expertiseName = (id) => data.expertise.find((e) => e.id === id)?.name ?? `#${id}`;

function checks(name, options, selected) {
  return el(
    "div",
    { class: "checks", role: "group", "aria-label": name },
    options.map(([id, label]) => el("label", { class: "check" }, el("input", { type: "checkbox", name, value: id, checked: selected.includes(id) }), label)),
  );
}

const checked = (form, name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => Number(i.value));

/** Runs an admin change, then reloads and redraws the section. */
async function change(action, section) {
  try {
    await action();
    await load();
    show(section);
  } catch (error) {
    toast(readable(error.message), "error");
  }
}

/**
 * The server names fields as the API does (`steps[7].answers`, `operator_ids`);
 * the forms call them Step 8 answers and Operators.
 */
function readable(message) {
  return message
    .replace(/`?steps\[(\d+)\]\.?([a-z_]*)`?/g, (_, i, field) => `Step ${Number(i) + 1}${field ? ` ${field.replaceAll("_", " ")}` : ""}`)
    .replace(/`(\w+)`/g, (_, field) => field.replaceAll("_ids", "s").replaceAll("_", " "));
}

/** Saves a form of `section` (also its path): a PATCH of `existing`, or a POST of a new one. */
function save(existing, section, body) {
  change(() => (existing ? api("PATCH", `/${section}/${existing.id}`, body) : api("POST", `/${section}`, body)), section);
}

/** A table row's Edit (opens `form()` in the editor) and Delete buttons; Delete asks first. */
function rowActions(editor, form, path, section, what) {
  const remove = () => confirm(`Delete ${what}? This cannot be undone.`) && change(() => api("DELETE", path), section);
  return el(
    "td",
    {},
    el("button", { type: "button", onclick: () => fill($(editor), form()) }, "Edit"),
    " ",
    el("button", { type: "button", class: "danger", onclick: remove }, "Delete"),
  );
}

/** A table body, or one row saying there is nothing yet. */
function bodyOr(rows, columns, empty) {
  return el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: columns, class: "empty" }, empty)));
}

// ---- expertise ----

function expertiseSection() {
  const admin = me.role === "admin";
  const rows = data.expertise.map((e) =>
    el(
      "tr",
      {},
      el("td", {}, e.name),
      el("td", {}, e.operator_ids.map(userName).join(", ") || "—"),
      admin
        ? rowActions("expertise-editor", () => expertiseForm(e), `/expertise/${e.id}`, "expertise", `the expertise ${e.name}`)
        : null,
    ),
  );
  return [
    el(
      "table",
      { id: "expertise-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Expertise"), el("th", {}, "Operators"), admin ? el("th", {}, "") : null)),
      bodyOr(rows, 3, "No expertise yet: add Billing, Returns… and who holds it."),
    ),
    admin ? el("div", { id: "expertise-editor" }, expertiseForm(null)) : el("p", { class: "empty" }, "Only administrators can change expertise. Set your own in My Preferences."),
  ];
}

function expertiseForm(existing) {
  const form = el(
    "form",
    { id: "expertise-form", class: "editor" },
    el("h2", {}, existing ? `Edit ${existing.name}` : "New expertise"),
    el("label", {}, "Name", el("input", { name: "name", required: true, value: existing?.name ?? "" })),
    el("fieldset", {}, el("legend", {}, "Operators"), checks("operator_ids", data.users.map((u) => [u.id, u.name]), existing?.operator_ids ?? [])),
    el("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { name: form.elements.name.value, operator_ids: checked(form, "operator_ids") };
    save(existing, "expertise", body);
  });
  return form;
}

// ---- users ----

function usersSection() {
  const rows = data.users.map((u) =>
    el(
      "tr",
      {},
      el("td", {}, u.login),
      el("td", {}, u.name),
      el("td", {}, u.role),
      el("td", {}, u.languages.join(", ")),
      el("td", {}, u.country ?? ""),
      el("td", {}, u.expertise_ids.map(expertiseName).join(", ")),
      el("td", {}, u.active ? "Active" : "Deactivated"),
      el(
        "td",
        {},
        el("button", { type: "button", onclick: () => fill($("user-editor"), userForm(u)) }, "Edit"),
        " ",
        // Deactivating logs the user out everywhere and routes their chats again; history keeps their name.
        el(
          "button",
          { type: "button", "data-user": u.id, onclick: () => change(() => api("PATCH", `/users/${u.id}`, { active: !u.active }), "users") },
          u.active ? "Deactivate" : "Reactivate",
        ),
      ),
    ),
  );
  return [
    el(
      "table",
      { id: "users-table" },
      el("thead", {}, el("tr", {}, ["Login", "Name", "Role", "Languages", "Country", "Expertise", "Status", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows),
    ),
    el("div", { id: "user-editor" }, userForm(null)),
  ];
}

function userForm(existing) {
  const form = el(
    "form",
    { id: "user-form", class: "editor" },
    el("h2", {}, existing ? `Edit ${existing.login}` : "New user"),
    existing ? null : el("label", {}, "Login", el("input", { name: "login", required: true })),
    el("label", {}, "Name", el("input", { name: "name", required: true, value: existing?.name ?? "" })),
    el("label", {}, existing ? "New password (leave empty to keep)" : "Password", el("input", { name: "password", type: "password", required: !existing, autocomplete: "new-password" })),
    el(
      "label",
      {},
      "Role",
      el("select", { name: "role" }, ["user", "admin"].map((r) => el("option", { value: r, selected: (existing?.role ?? "user") === r }, r))),
    ),
    el("label", {}, "Languages (comma-separated codes)", el("input", { name: "languages", value: existing?.languages.join(", ") ?? "" })),
    el("label", {}, "Country (ISO code)", el("input", { name: "country", value: existing?.country ?? "", maxlength: 2 })),
    existing ? el("fieldset", {}, el("legend", {}, "Expertise"), checks("expertise_ids", data.expertise.map((e) => [e.id, e.name]), existing.expertise_ids)) : null,
    el("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = form.elements;
    const body = {
      name: f.name.value,
      role: f.role.value,
      languages: f.languages.value.split(",").map((s) => s.trim()).filter(Boolean),
      country: f.country.value.trim() || null,
    };
    if (f.password.value) body.password = f.password.value;
    if (existing) body.expertise_ids = checked(form, "expertise_ids");
    else body.login = f.login.value;
    save(existing, "users", body);
  });
  return form;
}

// ---- channels ----

function channelsSection() {
  const rows = data.channels.map((c) =>
    el(
      "tr",
      {},
      el("td", {}, String(c.id)),
      el("td", {}, c.name),
      el("td", {}, c.operator_ids.map(userName).join(", ")),
      el("td", {}, c.max_sessions ?? "unlimited"),
      el("td", {}, data.chatbots.find((b) => b.id === c.chatbot_id)?.title ?? "—"),
      el(
        "td",
        {},
        el("a", { href: `/demo?channel=${c.id}` }, "Try it"),
        el("code", { class: "embed", title: "Paste this into your site's pages" }, `<script src="${location.origin}/widget.js" data-channel="${c.id}"></script>`),
      ),
      rowActions("channel-editor", () => channelForm(c), `/channels/${c.id}`, "channels", `the channel ${c.name}`),
    ),
  );
  return [
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ["Id", "Channel", "Operators", "Max sessions", "Chatbot", "Widget", ""].map((h) => el("th", {}, h)))),
      bodyOr(rows, 7, "No channel yet: create one below, then embed its widget."),
    ),
    el("div", { id: "channel-editor" }, channelForm(null)),
  ];
}

function channelForm(existing) {
  const form = el(
    "form",
    { id: "channel-form", class: "editor" },
    el("h2", {}, existing ? `Edit ${existing.name}` : "New channel"),
    el("label", {}, "Name", el("input", { name: "name", required: true, value: existing?.name ?? "" })),
    el("fieldset", {}, el("legend", {}, "Operators"), checks("operator_ids", data.users.map((u) => [u.id, u.name]), existing?.operator_ids ?? [])),
    el("label", {}, "Max sessions per operator (empty = unlimited)", el("input", { name: "max_sessions", type: "number", min: 1, value: existing?.max_sessions ?? "" })),
    el(
      "label",
      {},
      "Chatbot",
      el(
        "select",
        { name: "chatbot_id" },
        el("option", { value: "" }, "None: forward to an operator at once"),
        data.chatbots.map((b) => el("option", { value: b.id, selected: existing?.chatbot_id === b.id }, b.title)),
      ),
    ),
    el(
      "fieldset",
      {},
      el("legend", {}, "Routing beyond Odoo (empty = off)"),
      el("label", {}, "Order of preference",
        el("select", { name: "routing_order" },
          el("option", { value: "odoo", selected: existing?.routing_order !== "expertise_first" }, "Odoo: same language, then country, then expertise"),
          el("option", { value: "expertise_first", selected: existing?.routing_order === "expertise_first" }, "Expertise first: holders of the wanted expertise, then language and country"))),
      ROUTING_OPTIONS.map(([name, label]) => el("label", {}, label, el("input", { name, type: "number", min: 1, max: 86400, value: existing?.[name] ?? "" }))),
    ),
    el(
      "label",
      {},
      "E-mail missed chats (leads) to (empty = nobody; needs the server's --smtp-url)",
      el("input", { name: "notify_email", type: "email", value: existing?.notify_email ?? "" }),
    ),
    el("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = form.elements;
    const body = {
      name: f.name.value,
      operator_ids: checked(form, "operator_ids"),
      max_sessions: f.max_sessions.value ? Number(f.max_sessions.value) : null,
      chatbot_id: f.chatbot_id.value ? Number(f.chatbot_id.value) : null,
      notify_email: f.notify_email.value.trim() || null,
      routing_order: f.routing_order.value,
    };
    for (const [name] of ROUTING_OPTIONS) body[name] = f[name].value ? Number(f[name].value) : null;
    save(existing, "channels", body);
  });
  return form;
}

const ROUTING_OPTIONS = [
  ["expert_wait_s", "Wait for an expert up to (seconds), then let anyone take the visitor"],
  ["answer_timeout_s", "Pass a conversation on when the operator has not answered within (seconds)"],
  ["offline_grace_s", "Route an operator's chats again when they stay disconnected for (seconds)"],
];

// ---- routing report ----

const seconds = (v) => (v === null || v === undefined ? "—" : `${v.toFixed(1)} s`);
const share = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 100)} %`);
let charts = [];

function reportSection() {
  const from = el("input", { type: "datetime-local", name: "from", "aria-label": "From" });
  const to = el("input", { type: "datetime-local", name: "to", "aria-label": "To" });
  const channel = el("select", { name: "channel_id", "aria-label": "Channel" }, el("option", { value: "" }, "All channels"), data.channels.map((c) => el("option", { value: c.id }, c.name)));
  const output = el("div", { id: "report" });
  const query = () => {
    const params = new URLSearchParams();
    if (from.value) params.set("from", new Date(from.value).toISOString());
    if (to.value) params.set("to", new Date(to.value).toISOString());
    if (channel.value) params.set("channel_id", channel.value);
    return params;
  };
  const load = async () => {
    try {
      drawReport(output, await api("GET", `/reports/routing?${query()}`));
    } catch (error) {
      toast(error.message, "error");
    }
  };
  const download = async () => {
    const res = await fetch(`/api/v1/reports/routing?${query()}&format=csv`, { headers: { Authorization: `Bearer ${auth.token}` } });
    const link = el("a", { href: URL.createObjectURL(await res.blob()), download: "routing-report.csv" });
    link.click();
    URL.revokeObjectURL(link.href);
  };
  setTimeout(load);
  return [
    el("form", { class: "editor row", onsubmit: (e) => { e.preventDefault(); load(); } },
      el("label", { class: "inline" }, "From ", from), el("label", { class: "inline" }, "To ", to), channel,
      el("button", { type: "submit", class: "primary" }, "Show"), el("button", { type: "button", onclick: download }, "Download CSV")),
    output,
  ];
}

function drawReport(output, report) {
  charts.forEach((c) => c.destroy());
  charts = [];
  const served = el("canvas", { id: "chart-served", "aria-label": "Conversations per expertise, and how many an expert served", role: "img" });
  const waits = el("canvas", { id: "chart-waits", "aria-label": "Time to operator per expertise, p50 and p90", role: "img" });
  const satisfaction = el("canvas", { id: "chart-satisfaction", "aria-label": "Share of unhappy, neutral and happy ratings per operator", role: "img" });
  /** "12: 8 % / 17 % / 75 %", or a dash without ratings. */
  const rated = (r) => (r.ratings ? `${r.ratings}: ${share(r.rating_1_share)} / ${share(r.rating_3_share)} / ${share(r.rating_5_share)}` : "—");
  fill(
    output,
    el("p", {}, `${report.conversations} livechats.`),
    el("div", { class: "row charts" }, el("div", { class: "chart" }, served), el("div", { class: "chart" }, waits), el("div", { class: "chart" }, satisfaction)),
    el("table", { id: "report-expertise" },
      el("thead", {}, el("tr", {}, ["Expertise", "Conversations", "Served", "By an expert", "To operator p50 / p90", "First reply p50 / p90", "Help requests", "Join p50 / p90", "Abandoned", "Missed (leads)", "Ratings 😞 / 😐 / 😊"].map((h) => el("th", {}, h)))),
      el("tbody", {}, report.expertise.map((e) => el("tr", {},
        el("td", {}, e.name), el("td", {}, e.conversations), el("td", {}, e.served), el("td", {}, `${e.served_by_expert} (${share(e.served_by_expert_share)})`),
        el("td", {}, `${seconds(e.time_to_operator_p50_s)} / ${seconds(e.time_to_operator_p90_s)}`),
        el("td", {}, `${seconds(e.time_to_first_reply_p50_s)} / ${seconds(e.time_to_first_reply_p90_s)}`),
        el("td", {}, e.need_help_requests), el("td", {}, `${seconds(e.time_to_join_p50_s)} / ${seconds(e.time_to_join_p90_s)}`), el("td", {}, e.abandoned_in_queue), el("td", {}, e.missed), el("td", {}, rated(e)))))),
    el("table", { id: "report-operators" },
      el("thead", {}, el("tr", {}, ["Operator", "Assignments", "Reassigned away", "Active chats", "Ratings 😞 / 😐 / 😊"].map((h) => el("th", {}, h)))),
      el("tbody", {}, report.operators.map((o) => el("tr", {}, el("td", {}, o.name), el("td", {}, o.assignments), el("td", {}, o.reassignments), el("td", {}, o.active_chats), el("td", {}, rated(o)))))),
  );
  if (!window.Chart) return;
  const labels = report.expertise.map((e) => e.name);
  charts.push(new window.Chart(served, {
    type: "bar",
    data: { labels, datasets: [
      { label: "Conversations", data: report.expertise.map((e) => e.conversations), backgroundColor: "#9db4e8" },
      { label: "Served by an expert", data: report.expertise.map((e) => e.served_by_expert), backgroundColor: "#2857c7" },
    ] },
    options: { animation: false, plugins: { title: { display: true, text: "Skills routing per expertise" } } },
  }));
  charts.push(new window.Chart(waits, {
    type: "bar",
    data: { labels, datasets: [
      { label: "p50 (s)", data: report.expertise.map((e) => e.time_to_operator_p50_s), backgroundColor: "#7cc49a" },
      { label: "p90 (s)", data: report.expertise.map((e) => e.time_to_operator_p90_s), backgroundColor: "#1d7a46" },
    ] },
    options: { animation: false, plugins: { title: { display: true, text: "Wait for an operator" } } },
  }));
  const ratedOperators = report.operators.filter((o) => o.ratings);
  const percent = (v) => Math.round((v ?? 0) * 100);
  charts.push(new window.Chart(satisfaction, {
    type: "bar",
    data: { labels: ratedOperators.map((o) => `${o.name} (${o.ratings})`), datasets: [
      { label: "😞 unhappy %", data: ratedOperators.map((o) => percent(o.rating_1_share)), backgroundColor: "#d9534f" },
      { label: "😐 neutral %", data: ratedOperators.map((o) => percent(o.rating_3_share)), backgroundColor: "#f0ad4e" },
      { label: "😊 happy %", data: ratedOperators.map((o) => percent(o.rating_5_share)), backgroundColor: "#1d7a46" },
    ] },
    options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, max: 100 } }, plugins: { title: { display: true, text: "Satisfaction per operator" } } },
  }));
}

// ---- chatbots ----

function chatbotsSection() {
  const rows = data.chatbots.map((b) =>
    el(
      "tr",
      {},
      el("td", {}, b.title),
      el("td", {}, `${b.steps.length} steps`),
      rowActions("chatbot-editor", () => chatbotForm(b), `/chatbots/${b.id}`, "chatbots", `the chatbot ${b.title}`),
    ),
  );
  return [
    el("table", {}, el("thead", {}, el("tr", {}, ["Chatbot", "Script", ""].map((h) => el("th", {}, h)))), bodyOr(rows, 3, "No chatbot yet: channels without one forward visitors at once.")),
    el("div", { id: "chatbot-editor" }, chatbotForm(null)),
  ];
}

/** The script editor keeps ids client-side so conditions can refer to answers before saving. */
function chatbotForm(existing) {
  const steps = structuredClone(existing?.steps ?? [{ id: 1, type: "text", message: "Hello! How can we help?", answers: [], only_if_answer_ids: [], expertise_ids: [] }]);
  let nextId = Math.max(0, ...steps.map((s) => s.id), ...steps.flatMap((s) => s.answers.map((a) => a.id))) + 1;
  const list = el("div", { class: "steps" });
  const title = el("input", { name: "title", required: true, value: existing?.title ?? "" });

  const redraw = () => fill(list, steps.map((step, i) => stepEditor(step, i)));
  const move = (i, by) => {
    const j = i + by;
    if (j < 0 || j >= steps.length) return;
    [steps[i], steps[j]] = [steps[j], steps[i]];
    redraw();
  };

  function stepEditor(step, i) {
    const earlierAnswers = steps.slice(0, i).flatMap((s) => s.answers.map((a) => [a.id, `${a.label} (step ${s.id})`]));
    const type = el("select", { "aria-label": `Type of step ${i + 1}`, onchange: (e) => { step.type = e.target.value; redraw(); } },
      Object.entries(STEP_TYPES).map(([value, label]) => el("option", { value, selected: step.type === value }, label)));
    const message = el("textarea", { rows: 2, "aria-label": `Message of step ${i + 1}`, oninput: (e) => (step.message = e.target.value) });
    message.value = step.message;
    const parts = [
      el("header", {}, el("strong", {}, `Step ${i + 1}`), type,
        el("button", { type: "button", "aria-label": "Move up", onclick: () => move(i, -1) }, "↑"),
        el("button", { type: "button", "aria-label": "Move down", onclick: () => move(i, 1) }, "↓"),
        el("button", { type: "button", onclick: () => { steps.splice(i, 1); redraw(); } }, "Remove")),
      message,
    ];
    if (step.type === "question_selection") {
      parts.push(el("div", {}, "Answers: ", step.answers.map((a, k) => el("span", { class: "row" },
        el("input", { "aria-label": `Answer ${k + 1} of step ${i + 1}`, value: a.label, oninput: (e) => (a.label = e.target.value) }),
        el("button", { type: "button", "aria-label": "Remove answer", onclick: () => { step.answers.splice(k, 1); redraw(); } }, "×"))),
        el("button", { type: "button", onclick: () => { step.answers.push({ id: nextId++, label: "" }); redraw(); } }, "+ Answer")));
    } else {
      step.answers = [];
    }
    if (step.type === "forward_operator") {
      const box = checks(`expertise-${i}`, data.expertise.map((e) => [e.id, e.name]), step.expertise_ids);
      box.addEventListener("change", () => (step.expertise_ids = [...box.querySelectorAll("input:checked")].map((c) => Number(c.value))));
      parts.push(el("fieldset", {}, el("legend", {}, "Operator expertise"), box));
    } else {
      step.expertise_ids = [];
    }
    if (earlierAnswers.length) {
      const box = checks(`only-if-${i}`, earlierAnswers, step.only_if_answer_ids);
      box.addEventListener("change", () => (step.only_if_answer_ids = [...box.querySelectorAll("input:checked")].map((c) => Number(c.value))));
      parts.push(el("fieldset", {}, el("legend", {}, "Only if one of these answers was picked"), box));
    }
    return el("div", { class: "step" }, parts);
  }

  redraw();
  const form = el(
    "form",
    { id: "chatbot-form", class: "editor" },
    el("h2", {}, existing ? `Edit ${existing.title}` : "New chatbot"),
    el("label", {}, "Title", title),
    list,
    el("p", { class: "row" },
      el("button", { type: "button", onclick: () => { steps.push({ id: nextId++, type: "text", message: "", answers: [], only_if_answer_ids: [], expertise_ids: [] }); redraw(); } }, "+ Step"),
      el("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { title: title.value, steps };
    save(existing, "chatbots", body);
  });
  return form;
}

// ---- saved replies (the shared canned responses; each operator keeps their own in the console) ----

function cannedSection() {
  const shared = data.canned.filter((c) => c.shared);
  const rows = shared.map((c) =>
    el(
      "tr",
      {},
      el("td", {}, `/${c.shortcut}`),
      el("td", { class: "canned-body" }, c.body),
      rowActions("canned-editor", () => cannedForm(c), `/canned_responses/${c.id}`, "canned", `the reply /${c.shortcut}`),
    ),
  );
  return [
    el(
      "table",
      { id: "canned-table" },
      el("thead", {}, el("tr", {}, ["Shortcut", "Reply", ""].map((h) => el("th", {}, h)))),
      bodyOr(rows, 3, "No shared reply yet: every operator will be able to type /shortcut to use one."),
    ),
    el("div", { id: "canned-editor" }, cannedForm(null)),
  ];
}

function cannedForm(existing) {
  const form = el(
    "form",
    { id: "canned-admin-form", class: "editor" },
    el("h2", {}, existing ? `Edit /${existing.shortcut}` : "New shared reply"),
    el("label", {}, "Shortcut (a-z, 0-9, _ and -)", el("input", { name: "shortcut", required: true, maxlength: 32, pattern: "[a-z0-9_\\-]{1,32}", value: existing?.shortcut ?? "" })),
    el("label", {}, "Reply ({visitor_name} and {operator_name} are filled in)", el("textarea", { name: "body", required: true, rows: 3 }, existing?.body ?? "")),
    el("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { shortcut: form.elements.shortcut.value, body: form.elements.body.value };
    const save = existing ? () => api("PATCH", `/canned_responses/${existing.id}`, body) : () => api("POST", "/canned_responses", { ...body, shared: true });
    change(save, "canned");
  });
  return form;
}

// ---- webhooks ----

const WEBHOOK_EVENTS = ["conversation.created", "conversation.assigned", "conversation.closed", "message.created", "lead.created", "rating.created"];

function webhooksSection() {
  const rows = data.webhooks.map((w) =>
    el(
      "tr",
      { dataset: { webhook: w.id } },
      el("td", { class: "url" }, w.url),
      el("td", {}, w.events.join(", ")),
      el(
        "td",
        {},
        el("button", { type: "button", class: "test-webhook", onclick: () => testWebhook(w) }, "Send test event"),
        " ",
        el("button", { type: "button", class: "show-deliveries", onclick: () => showDeliveries(w) }, "Deliveries"),
      ),
      rowActions("webhook-editor", () => webhookForm(w), `/webhooks/${w.id}`, "webhooks", `the webhook to ${w.url}`),
    ),
  );
  return [
    el("p", { class: "hint" }, "Each event is POSTed as JSON {id, event, at, data}, signed: X-Switchboard-Signature: sha256=<HMAC-SHA256 of the body with the secret>. Failed deliveries are retried for 24 hours, in order per conversation."),
    el(
      "table",
      { id: "webhooks-table" },
      el("thead", {}, el("tr", {}, ["URL", "Events", "", ""].map((h) => el("th", {}, h)))),
      bodyOr(rows, 4, "No webhook yet: add one to tell your CRM or chat room about leads, ratings and conversations."),
    ),
    el("div", { id: "deliveries" }),
    el("div", { id: "webhook-editor" }, webhookForm(null)),
  ];
}

async function testWebhook(w) {
  try {
    await api("POST", `/webhooks/${w.id}/test`);
    toast("Test event queued");
    setTimeout(() => showDeliveries(w), 1000);
  } catch (error) {
    toast(readable(error.message), "error");
  }
}

/** The last attempts of a webhook: when, which event, the answer or the error, which try. */
async function showDeliveries(w) {
  let attempts;
  try {
    attempts = await api("GET", `/webhooks/${w.id}/deliveries`);
  } catch (error) {
    return toast(readable(error.message), "error");
  }
  const rows = attempts.map((a) =>
    el(
      "tr",
      { class: a.status_code >= 200 && a.status_code < 300 ? "ok" : "failed" },
      el("td", {}, new Date(a.at).toLocaleString()),
      el("td", {}, a.event),
      el("td", {}, a.status_code ?? "—"),
      el("td", {}, a.error ?? ""),
      el("td", {}, a.attempt),
    ),
  );
  fill(
    $("deliveries"),
    el("h2", {}, `Recent deliveries to ${w.url}`),
    el(
      "table",
      { id: "deliveries-table" },
      el("thead", {}, el("tr", {}, ["When", "Event", "Status", "Error", "Try"].map((h) => el("th", {}, h)))),
      bodyOr(rows, 5, "Nothing delivered yet."),
    ),
  );
}

function webhookForm(existing) {
  const form = el(
    "form",
    { id: "webhook-form", class: "editor" },
    el("h2", {}, existing ? `Edit the webhook to ${existing.url}` : "New webhook"),
    el("label", {}, "URL (http:// or https://)", el("input", { name: "url", type: "url", required: true, value: existing?.url ?? "" })),
    el("fieldset", {}, el("legend", {}, "Events"), checks("events", WEBHOOK_EVENTS.map((e) => [e, e]), existing?.events ?? [])),
    el("label", {}, existing ? "Secret (leave empty to keep)" : "Secret (empty: a random one)", el("input", { name: "secret", autocomplete: "off" })),
    existing ? el("p", { class: "hint" }, `Current secret: ${existing.secret}`) : null,
    el("button", { type: "submit", class: "primary" }, existing ? "Save" : "Create"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value);
    const body = { url: form.elements.url.value.trim(), events };
    if (form.elements.secret.value) body.secret = form.elements.secret.value;
    save(existing, "webhooks", body);
  });
  return form;
}

// ---- tabs ----

const SECTIONS = {
  expertise: ["Expertise", expertiseSection],
  users: ["Users", usersSection],
  channels: ["Channels", channelsSection],
  chatbots: ["Chatbots", chatbotsSection],
  canned: ["Saved replies", cannedSection],
  webhooks: ["Webhooks", webhooksSection],
  reports: ["Routing report", reportSection],
};

function show(name) {
  const visible = me.role === "admin" ? Object.keys(SECTIONS) : ["expertise"];
  fill(
    $("tabs"),
    visible.map((key) => el("button", { type: "button", role: "tab", "aria-selected": String(key === name), id: `tab-${key}`, onclick: () => show(key) }, SECTIONS[key][0])),
  );
  fill($("section"), SECTIONS[name][1]());
}

async function boot() {
  if (!auth.token) {
    location.href = "/";
    return;
  }
  me = await api("GET", "/me");
  $("admin-title").textContent = me.role === "admin" ? "Administration" : "Expertise";
  await load();
  show("expertise");
}

boot().catch((error) => toast(error.message, "error"));
