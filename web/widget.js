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

  /** The widget's own words in the visitor's language (the server's are its own). */
  const STRINGS = {
    en: { title: "Chat with us", open: "Open chat", minimise: "Minimise", leave: "End chat", leaveConfirm: "End this chat?", placeholder: "Type a message…", send: "Send",
      queued: (n) => `You are number ${n} in the queue`, chattingWith: (name) => `You are chatting with ${name}`, ended: "This conversation has ended", newChat: "Start a new chat",
      reconnecting: "Reconnecting…", typing: (name) => `${name} is typing…`, notSent: "Not sent", retry: "Retry", tooLong: (max) => `Your message is too long: at most ${max} characters.`,
      refused: "Your message was not sent:", offline: "Not connected: your message is kept, send it again in a moment.", leaveEmail: "Or leave your e-mail and we will get back to you:",
      emailPlaceholder: "you@example.com", emailSend: "Leave e-mail", emailThanks: "Thank you! We will get back to you by e-mail.", badEmail: "That does not look like an e-mail address.",
      rate: "How did we do?", comment: "Anything to add? (optional)", rated: "Thank you for your feedback!", faces: ["Unhappy", "Neutral", "Happy"] },
    fr: { title: "Discutez avec nous", open: "Ouvrir le chat", minimise: "Réduire", leave: "Terminer", leaveConfirm: "Terminer cette conversation ?", placeholder: "Écrivez un message…", send: "Envoyer",
      queued: (n) => `Vous êtes numéro ${n} dans la file`, chattingWith: (name) => `Vous discutez avec ${name}`, ended: "Cette conversation est terminée", newChat: "Nouvelle conversation",
      reconnecting: "Reconnexion…", typing: (name) => `${name} écrit…`, notSent: "Non envoyé", retry: "Réessayer", tooLong: (max) => `Votre message est trop long : ${max} caractères au plus.`,
      refused: "Votre message n'a pas été envoyé :", offline: "Pas de connexion : votre message est gardé, renvoyez-le dans un instant.", leaveEmail: "Ou laissez votre e-mail et nous vous recontacterons :",
      emailPlaceholder: "vous@exemple.fr", emailSend: "Laisser mon e-mail", emailThanks: "Merci ! Nous vous répondrons par e-mail.", badEmail: "Cette adresse e-mail ne semble pas valide.",
      rate: "Comment nous en sommes-nous sortis ?", comment: "Un commentaire ? (facultatif)", rated: "Merci pour votre avis !", faces: ["Mécontent", "Neutre", "Satisfait"] },
    de: { title: "Chatten Sie mit uns", open: "Chat öffnen", minimise: "Minimieren", leave: "Chat beenden", leaveConfirm: "Diesen Chat beenden?", placeholder: "Nachricht schreiben…", send: "Senden",
      queued: (n) => `Sie sind Nummer ${n} in der Warteschlange`, chattingWith: (name) => `Sie chatten mit ${name}`, ended: "Dieses Gespräch ist beendet", newChat: "Neuen Chat starten",
      reconnecting: "Verbindung wird wiederhergestellt…", typing: (name) => `${name} schreibt…`, notSent: "Nicht gesendet", retry: "Erneut senden", tooLong: (max) => `Ihre Nachricht ist zu lang: höchstens ${max} Zeichen.`,
      refused: "Ihre Nachricht wurde nicht gesendet:", offline: "Keine Verbindung: Ihre Nachricht bleibt erhalten, senden Sie sie gleich noch einmal.", leaveEmail: "Oder hinterlassen Sie Ihre E-Mail-Adresse, wir melden uns:",
      emailPlaceholder: "sie@beispiel.de", emailSend: "E-Mail hinterlassen", emailThanks: "Danke! Wir melden uns per E-Mail.", badEmail: "Das sieht nicht nach einer E-Mail-Adresse aus.",
      rate: "Wie waren wir?", comment: "Noch etwas? (optional)", rated: "Danke für Ihr Feedback!", faces: ["Unzufrieden", "Neutral", "Zufrieden"] },
    es: { title: "Chatea con nosotros", open: "Abrir chat", minimise: "Minimizar", leave: "Terminar", leaveConfirm: "¿Terminar esta conversación?", placeholder: "Escribe un mensaje…", send: "Enviar",
      queued: (n) => `Eres el número ${n} en la cola`, chattingWith: (name) => `Estás hablando con ${name}`, ended: "Esta conversación ha terminado", newChat: "Nueva conversación",
      reconnecting: "Reconectando…", typing: (name) => `${name} está escribiendo…`, notSent: "No enviado", retry: "Reintentar", tooLong: (max) => `Tu mensaje es demasiado largo: como máximo ${max} caracteres.`,
      refused: "Tu mensaje no se envió:", offline: "Sin conexión: tu mensaje se conserva, envíalo de nuevo en un momento.", leaveEmail: "O déjanos tu correo y te responderemos:",
      emailPlaceholder: "tu@ejemplo.es", emailSend: "Dejar mi correo", emailThanks: "¡Gracias! Te responderemos por correo.", badEmail: "Esa dirección de correo no parece válida.",
      rate: "¿Qué tal lo hicimos?", comment: "¿Algo más? (opcional)", rated: "¡Gracias por tu opinión!", faces: ["Insatisfecho", "Neutral", "Satisfecho"] },
    nl: { title: "Chat met ons", open: "Chat openen", minimise: "Minimaliseren", leave: "Chat beëindigen", leaveConfirm: "Dit gesprek beëindigen?", placeholder: "Typ een bericht…", send: "Versturen",
      queued: (n) => `U bent nummer ${n} in de wachtrij`, chattingWith: (name) => `U chat met ${name}`, ended: "Dit gesprek is beëindigd", newChat: "Nieuw gesprek",
      reconnecting: "Opnieuw verbinden…", typing: (name) => `${name} typt…`, notSent: "Niet verzonden", retry: "Opnieuw", tooLong: (max) => `Uw bericht is te lang: hoogstens ${max} tekens.`,
      refused: "Uw bericht is niet verzonden:", offline: "Geen verbinding: uw bericht blijft bewaard, verstuur het zo opnieuw.", leaveEmail: "Of laat uw e-mailadres achter, dan nemen wij contact op:",
      emailPlaceholder: "u@voorbeeld.nl", emailSend: "E-mail achterlaten", emailThanks: "Bedankt! Wij antwoorden per e-mail.", badEmail: "Dat lijkt geen e-mailadres.",
      rate: "Hoe hebben we het gedaan?", comment: "Nog iets? (optioneel)", rated: "Bedankt voor uw feedback!", faces: ["Ontevreden", "Neutraal", "Tevreden"] },
  };
  const lang = [script?.dataset.lang, ...(navigator.languages || [navigator.language])].map((l) => (l || "").slice(0, 2).toLowerCase()).find((l) => STRINGS[l]) || "en";
  const t = STRINGS[lang];
  /** The server's limit on a message (`max_message_chars`, 4,000 by default). */
  const MAX_CHARS = Number(script?.dataset.maxChars) || 4000;
  /** A message without its `ack` this long is shown as not sent, with a retry. */
  const ACK_WAIT_MS = 10000;

  const style = h("style", {}, `
    .sbw-bubble { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%; border: 0; background: #2857c7; color: #fff; display: grid; place-items: center; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); z-index: 2147483000; }
    .sbw-window { position: fixed; right: 20px; bottom: 88px; width: min(360px, calc(100vw - 40px)); height: min(540px, calc(100vh - 120px)); background: #fff; border: 1px solid #d5dae2; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.2); display: flex; flex-direction: column; font: 15px system-ui, sans-serif; color: #1d2330; z-index: 2147483000; }
    .sbw-window[hidden] { display: none; }
    .sbw-head { display: flex; align-items: center; gap: 8px; padding: 8px 10px; background: #2857c7; color: #fff; border-radius: 12px 12px 0 0; }
    .sbw-who { flex: 1; display: flex; align-items: center; gap: 8px; min-width: 0; }
    .sbw-who strong { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
    .sbw-avatar { width: 32px; height: 32px; border-radius: 50%; background: #fff; color: #2857c7; display: grid; place-items: center; font-weight: 700; font-size: 13px; flex: none; }
    .sbw-avatar[hidden] { display: none; }
    .sbw-head button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,.6); border-radius: 6px; cursor: pointer; min-height: 44px; min-width: 44px; padding: 0 10px; font: inherit; }
    .sbw-status { padding: 6px 12px; background: #f2f5fb; color: #5f6b7a; font-size: 13px; min-height: 1em; }
    .sbw-log { flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: 10px 12px; }
    .sbw-msg { margin: 6px 0; max-width: 85%; padding: 6px 10px; border-radius: 10px; background: #f1f2f5; white-space: pre-wrap; overflow-wrap: anywhere; }
    .sbw-msg.sbw-visitor { margin-left: auto; background: #2857c7; color: #fff; }
    .sbw-msg.sbw-pending { opacity: .6; }
    .sbw-msg.sbw-failed { background: #fdecec; color: #9b1c1c; }
    .sbw-msg.sbw-system { background: none; color: #5f6b7a; text-align: center; max-width: none; font-size: 12px; }
    .sbw-name { display: block; font-size: 11px; opacity: .75; }
    .sbw-time { display: block; font-size: 10px; opacity: .65; text-align: right; }
    .sbw-failed button { margin-left: 6px; min-height: 32px; border: 1px solid #9b1c1c; background: #fff; color: #9b1c1c; border-radius: 6px; cursor: pointer; }
    .sbw-choices { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
    .sbw-choices button { border: 1px solid #2857c7; color: #2857c7; background: #fff; border-radius: 999px; padding: 4px 14px; min-height: 44px; cursor: pointer; font: inherit; }
    .sbw-rate { margin: 10px 0; padding: 8px; border: 1px solid #e3e6eb; border-radius: 10px; text-align: center; }
    .sbw-email { margin: 0 8px 6px; padding: 8px; border: 1px solid #e3e6eb; border-radius: 10px; font-size: 13px; }
    .sbw-email form { display: flex; gap: 6px; margin-top: 6px; }
    .sbw-email input { flex: 1; min-width: 0; }
    .sbw-faces { display: flex; justify-content: center; gap: 12px; margin: 6px 0; }
    .sbw-faces button { font-size: 26px; background: none; border: 1px solid transparent; border-radius: 8px; cursor: pointer; min-width: 48px; min-height: 48px; }
    .sbw-faces button:hover { border-color: #d5dae2; }
    .sbw-comment { width: 100%; box-sizing: border-box; }
    .sbw-error { display: block; color: #9b1c1c; font-size: 13px; padding: 0 10px; }
    .sbw-error:empty { display: none; }
    .sbw-form { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e3e6eb; }
    .sbw-form[hidden], .sbw-new[hidden] { display: none; }
    .sbw-window input { border: 1px solid #d5dae2; border-radius: 6px; padding: 8px; font: 16px system-ui, sans-serif; min-height: 44px; box-sizing: border-box; }
    .sbw-form input { flex: 1; min-width: 0; }
    .sbw-form button, .sbw-new, .sbw-email button { border: 0; background: #2857c7; color: #fff; border-radius: 6px; padding: 0 14px; min-height: 44px; cursor: pointer; font: inherit; }
    .sbw-new { margin: 8px; }
    .sbw-window button:focus-visible, .sbw-window input:focus-visible, .sbw-bubble:focus-visible { outline: 3px solid #8fb0ff; outline-offset: 1px; }
    @media (max-width: 480px) {
      .sbw-window { inset: 0; width: 100vw; height: 100dvh; border-radius: 0; border: 0; }
      .sbw-head { border-radius: 0; }
      .sbw-window:not([hidden]) ~ .sbw-bubble { display: none; }
    }
  `);

  const log = h("ol", { class: "sbw-log", "aria-live": "polite", "aria-label": "Conversation" });
  const status = h("div", { class: "sbw-status", role: "status" });
  const input = h("input", { "aria-label": t.placeholder, placeholder: t.placeholder, autocomplete: "off", maxlength: MAX_CHARS, enterkeyhint: "send" });
  const error = h("p", { class: "sbw-error", role: "alert" });
  const form = h("form", { class: "sbw-form" }, input, h("button", { type: "submit" }, t.send));
  const newChat = h("button", { type: "button", class: "sbw-new", hidden: true, onclick: () => restart() }, t.newChat);
  const leave = h("button", { type: "button", class: "sbw-leave", onclick: () => leaveChat() }, t.leave);
  const avatar = h("span", { class: "sbw-avatar", hidden: true, "aria-hidden": "true" });
  const heading = h("strong", {}, t.title);
  const win = h("section", { class: "sbw-window", hidden: true, role: "dialog", "aria-label": t.title, lang },
    h("div", { class: "sbw-head" }, h("span", { class: "sbw-who" }, avatar, heading), leave, h("button", { type: "button", "aria-label": t.minimise, onclick: () => toggle(false) }, "–")),
    status, log, error, form, newChat);
  const bubble = h("button", { class: "sbw-bubble", type: "button", "aria-label": t.open, "aria-expanded": "false", onclick: () => toggle() }, chatIcon());

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
  /** Sent messages waiting for their `ack`: ref → { body, li, timer }. */
  const pending = new Map();
  let typingTimer = null;

  function save() {
    if (session) localStorage.setItem(storeKey, JSON.stringify({ ...session, lastId, ended: closed })); else localStorage.removeItem(storeKey);
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
    if (!res.ok) throw Object.assign(new Error(data?.error?.message || res.statusText), { status: res.status, code: data?.error?.code });
    return data;
  }

  async function toggle(open = win.hidden) {
    win.hidden = !open;
    bubble.setAttribute("aria-expanded", String(open));
    if (open) {
      if (!ws) await start();
      (closed ? newChat : input).focus();
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
      const opened = await call("POST", `/channels/${channel}/sessions`, { lang, visitor_key: visitorKey(), ...context() });
      session = { token: opened.visitor_token, conversation: opened.conversation_id };
      lastId = 0;
      save();
    } else {
      lastId = session.lastId || 0;
      pageToSend = here().url && !session.ended ? here() : null;
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
      status.textContent = t.reconnecting;
      setTimeout(() => ws === socket && connect(), retry);
      retry = Math.min(retry * 2, 10000);
    };
    socket.onopen = () => (retry = 500);
  }

  function handle(event) {
    switch (event.type) {
      case "hello": {
        const c = event.conversation;
        if (pageToSend && c.status !== "closed") ws.send(JSON.stringify({ type: "page", ...pageToSend }));
        pageToSend = null;
        if (c.operator) setOperator(c.operator.name);
        showStatus(c.status, c.queue_position);
        c.messages.forEach(showMessage);
        if (c.status === "closed") ended();
        break;
      }
      case "message":
        showMessage(event.message);
        break;
      case "status":
        showStatus(event.status, event.queue_position);
        break;
      case "member_joined":
        setOperator(event.user.name);
        status.textContent = t.chattingWith(event.user.name);
        break;
      case "typing":
        showTyping(event.author.name);
        break;
      case "closed":
        ended();
        // Rating a chat nobody from the team was in would rate nobody.
        if (event.can_rate && !avatar.hidden) askRating();
        break;
      case "ack":
        acknowledged(event);
        break;
      case "error":
        refused(event);
        break;
      default:
        break;
    }
  }

  /** The operator's name and initials in the header. */
  function setOperator(name) {
    heading.textContent = name;
    avatar.textContent = name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join("");
    avatar.hidden = false;
  }

  function showTyping(name) {
    status.textContent = t.typing(name);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => status.textContent === t.typing(name) && (status.textContent = ""), 3000);
  }

  function showStatus(value, position) {
    status.textContent = value === "queued" ? t.queued(position ?? "?") : value === "closed" ? t.ended : "";
    if (value === "queued" && !emailBox) offerEmail();
    if (value !== "queued" && emailBox) {
      emailBox.remove();
      emailBox = null;
    }
  }

  const time = (iso) => new Date(iso).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });

  function showMessage(m) {
    if (shown.has(m.id)) return;
    shown.add(m.id);
    lastId = Math.max(lastId, m.id);
    save();
    log.querySelectorAll(".sbw-choices").forEach((c) => c.remove());
    const kind = m.author.kind;
    if (kind === "operator" && status.textContent === t.typing(m.author.name)) status.textContent = "";
    log.append(h("li", { class: `sbw-msg sbw-${kind}`, "data-id": m.id },
      kind === "visitor" || kind === "system" ? null : h("span", { class: "sbw-name" }, m.author.name), m.body,
      h("time", { class: "sbw-time", datetime: m.created_at }, time(m.created_at))));
    if (m.answers && m.step_id) {
      log.append(h("li", { class: "sbw-choices" }, m.answers.map((a) =>
        h("button", { type: "button", onclick: () => send({ type: "answer", step_id: m.step_id, answer_id: a.id }) }, a.label))));
    }
    log.scrollTop = log.scrollHeight;
  }

  // Refs are this page's random prefix and a counter: the server takes a
  // stored ref for a resend, so refs must never repeat across pages or tabs.
  // (getRandomValues, unlike randomUUID, works on plain-http sites too.)
  const refPrefix = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
  let refs = 0;
  /** Sends a frame; its `ref`, or `null` when not connected. */
  function send(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return null;
    const ref = `${refPrefix}-${refs++}`;
    ws.send(JSON.stringify({ ...frame, ref }));
    return ref;
  }

  /**
   * Sends what the visitor typed: shown at once as pending, confirmed by its
   * `ack`; refused or unanswered, the words are never lost.
   */
  function sendText(body, li) {
    error.textContent = "";
    const ref = send({ type: "send", body });
    if (!ref) {
      error.textContent = t.offline;
      return false;
    }
    li ??= log.appendChild(h("li", { class: "sbw-msg sbw-visitor sbw-pending" }, body));
    li.className = "sbw-msg sbw-visitor sbw-pending";
    li.replaceChildren(body);
    log.scrollTop = log.scrollHeight;
    const timer = setTimeout(() => notSent(ref), ACK_WAIT_MS);
    pending.set(ref, { body, li, timer });
    return true;
  }

  function notSent(ref) {
    const sent = pending.get(ref);
    if (!sent) return;
    pending.delete(ref);
    sent.li.className = "sbw-msg sbw-visitor sbw-failed";
    sent.li.append(h("span", { class: "sbw-name" }, t.notSent), h("button", { type: "button", class: "sbw-retry", onclick: () => sendText(sent.body, sent.li) }, t.retry));
  }

  function acknowledged(event) {
    const sent = pending.get(event.ref);
    if (!sent) return;
    pending.delete(event.ref);
    clearTimeout(sent.timer);
    sent.li.remove();
    if (event.message) showMessage(event.message);
  }

  /** The server refused a message: its words go back into the box, with the reason in words. */
  function refused(event) {
    const sent = pending.get(event.ref);
    const reason = event.error?.message ?? "";
    if (!sent) {
      error.textContent = reason;
      return;
    }
    pending.delete(event.ref);
    clearTimeout(sent.timer);
    sent.li.remove();
    if (!input.value) input.value = sent.body;
    const limit = reason.match(/(?:at most |\.\.=)(\d+) characters/);
    error.textContent = limit ? t.tooLong(Number(limit[1])) : `${t.refused} ${reason.replace(/`(\w+)`/g, "$1")}`;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = input.value.trim();
    if (!body || closed) return;
    if ([...body].length > MAX_CHARS) {
      error.textContent = t.tooLong(MAX_CHARS);
      return;
    }
    if (sendText(body)) input.value = "";
  });
  let lastTyping = 0;
  input.addEventListener("input", () => {
    if (Date.now() - lastTyping > 2000) {
      lastTyping = Date.now();
      send({ type: "typing" });
    }
  });

  /** While queued: rather than wait, leave an e-mail address; the chat ends and the team follows up. */
  let emailBox = null;
  function offerEmail() {
    const address = h("input", { type: "email", "aria-label": t.emailPlaceholder, placeholder: t.emailPlaceholder, required: true, autocomplete: "email" });
    const problem = h("span", { class: "sbw-error", role: "alert" });
    const emailForm = h("form", {}, address, h("button", { type: "submit" }, t.emailSend));
    emailBox = h("div", { class: "sbw-email" }, h("span", {}, t.leaveEmail), emailForm, problem);
    emailForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      // Detached first: the `closed` event the leave causes must not take the thanks away.
      const box = emailBox;
      emailBox = null;
      try {
        await call("PUT", "/visitor/contact", { email: address.value.trim() });
        await call("POST", "/visitor/leave");
        ended();
        log.append(h("li", { class: "sbw-msg sbw-system" }, t.emailThanks));
        box.remove();
      } catch (err) {
        emailBox = box;
        problem.textContent = err.status === 400 ? t.badEmail : err.message;
      }
    });
    error.before(emailBox);
  }

  async function leaveChat() {
    if (!session || closed) return toggle(false);
    if (!confirm(t.leaveConfirm)) return;
    try {
      await call("POST", "/visitor/leave");
    } catch {
      // Already closed, or the token is gone: nothing left to leave.
    }
    ended();
  }

  /** The chat is over: it stays over on later page loads, until the visitor starts a new one. */
  function ended() {
    closed = true;
    save();
    status.textContent = t.ended;
    form.hidden = true;
    newChat.hidden = false;
    emailBox?.remove();
    emailBox = null;
  }

  /** Odoo's three faces and an optional comment, once, when the chat has ended. */
  function askRating() {
    const comment = h("input", { class: "sbw-comment", "aria-label": t.comment, placeholder: t.comment, maxlength: "1000" });
    const box = h("li", { class: "sbw-rate", "aria-label": t.rate }, h("span", {}, t.rate));
    const rate = async (score) => {
      try {
        await call("POST", "/visitor/rating", { score, comment: comment.value.trim() || undefined });
        box.replaceChildren(h("span", {}, t.rated));
      } catch (err) {
        box.append(h("span", { class: "sbw-error" }, err.message));
      }
    };
    const faces = h("div", { class: "sbw-faces" },
      ...[[1, "😞"], [3, "😐"], [5, "😊"]].map(([score, face], i) =>
        h("button", { type: "button", "aria-label": t.faces[i], title: t.faces[i], "data-score": score, onclick: () => rate(score) }, face)));
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
    pending.clear();
    log.replaceChildren();
    heading.textContent = t.title;
    avatar.hidden = true;
    error.textContent = "";
    form.hidden = false;
    newChat.hidden = true;
    save();
    start().then(() => input.focus());
  }

  document.head.append(style);
  document.body.append(win, bubble);
  // A conversation in progress reopens by itself after a reload; an ended one stays closed.
  if (session && !session.ended) toggle(true);
})();
