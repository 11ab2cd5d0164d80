// The chat page: a browser client of the gateway's JSON-RPC protocol over /api/ws.
//
// Resume rules (PROTOCOL.md, session.resume):
// - A page load resumes the session remembered in sessionStorage *without* last_seq: the
//   response's transcript holds every finished turn and the server replays the running
//   turn's events from its message.start, so nothing is shown twice and nothing is missing.
// - A socket drop on a live page resumes *with* last_seq: only the events after it are
//   replayed. On `gap: true` the transcript is re-rendered from the response instead.
// - Events with seq <= the session's last seq are dropped, except approval/clarify requests,
//   which are keyed by request_id and shown again while unanswered.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const CALL_TIMEOUT_MS = 30000;
const STORE_CURRENT = "hermes.chat.current";
const STORE_SEQ = "hermes.chat.lastSeq";

const root = document.getElementById("chat");
const byId = (testid) => root.querySelector(`[data-testid="${testid}"]`);
const ui = {
  status: byId("conn-status"),
  error: byId("error-bar"),
  list: byId("session-list"),
  newTitle: byId("new-title"),
  newButton: byId("new-session"),
  header: byId("session-header"),
  transcript: byId("transcript"),
  empty: byId("empty-state"),
  form: byId("prompt-form"),
  input: byId("prompt-input"),
  send: byId("send"),
  interrupt: byId("interrupt"),
  completions: document.getElementById("slash-completions"),
  hints: byId("slash-hints"),
};

/** Client-side state of one session: its rendered items and the last seq applied. */
class View {
  constructor(id) {
    this.id = id;
    this.loaded = false;
    this.lastSeq = 0;
    this.items = [];
    this.turns = new Map(); // turn_id -> assistant item
    this.tools = new Map(); // tool_id -> tool item
    this.questions = new Map(); // request_id -> question item
    this.closed = "";
  }

  reset() {
    this.items = [];
    this.turns.clear();
    this.tools.clear();
    this.questions.clear();
    this.closed = "";
  }
}

const state = {
  ws: null,
  ready: false,
  nextId: 1,
  calls: new Map(),
  views: new Map(),
  sessions: [],
  current: sessionStorage.getItem(STORE_CURRENT) || null,
  backoff: BACKOFF_MIN_MS,
  failures: 0, // consecutive sockets that closed before gateway.ready
  firstConnection: true,
  catalog: new Map(),
  completions: [],
};

/// Storage ///

function persist() {
  if (state.current) sessionStorage.setItem(STORE_CURRENT, state.current);
  else sessionStorage.removeItem(STORE_CURRENT);
  const seqs = {};
  const view = state.current && state.views.get(state.current);
  if (view && view.loaded) seqs[view.id] = view.lastSeq;
  sessionStorage.setItem(STORE_SEQ, JSON.stringify(seqs));
  root.dataset.session = state.current || "";
}

/// Connection and JSON-RPC ///

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${root.dataset.wsPath}`;
}

function setStatus(text, kind) {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
  root.dataset.connection = kind;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

function connect() {
  setStatus(state.firstConnection ? "connecting…" : "reconnecting…", "connecting");
  const ws = new WebSocket(wsUrl());
  state.ws = ws;
  ws.addEventListener("message", (event) => {
    if (ws === state.ws) onFrame(event.data);
  });
  ws.addEventListener("close", () => {
    if (ws === state.ws) onClose();
  });
}

function onClose() {
  if (!state.ready) state.failures += 1;
  state.ws = null;
  state.ready = false;
  root.dataset.ready = "0";
  for (const { reject, timer } of state.calls.values()) {
    clearTimeout(timer);
    reject(new Error("connection lost"));
  }
  state.calls.clear();
  // Only the current session is re-attached on reconnect; the others start afresh if picked.
  for (const view of state.views.values()) {
    if (view.id !== state.current) state.views.delete(view.id);
  }
  const delay = Math.round(state.backoff * (0.8 + Math.random() * 0.4));
  state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
  setStatus(`disconnected — retrying in ${(delay / 1000).toFixed(1)} s`, "down");
  if (state.failures >= 3) {
    // A refused handshake looks like any other drop to a browser: say what it may mean.
    showError("cannot reach the gateway — if your login expired, reload the page to log in");
  }
  setTimeout(connect, delay);
}

function call(method, params = {}) {
  return new Promise((resolve, reject) => {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      reject(new Error("not connected"));
      return;
    }
    const id = state.nextId++;
    const timer = setTimeout(() => {
      state.calls.delete(id);
      reject(new Error(`${method} timed out`));
    }, CALL_TIMEOUT_MS);
    state.calls.set(id, { resolve, reject, timer });
    ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
  });
}

class RpcError extends Error {
  constructor(error) {
    super(error.message || "error");
    this.code = error.code;
  }
}

function onFrame(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  if (message.method === "event") {
    const params = message.params || {};
    if (params.type === "gateway.ready") onReady(params.payload || {});
    else onEvent(params);
    return;
  }
  const pending = state.calls.get(message.id);
  if (!pending) return;
  state.calls.delete(message.id);
  clearTimeout(pending.timer);
  if ("error" in message) pending.reject(new RpcError(message.error));
  else pending.resolve(message.result);
}

async function onReady(payload) {
  state.ready = true;
  state.failures = 0;
  state.backoff = BACKOFF_MIN_MS;
  const skin = payload.skin || {};
  if (skin.accent) document.documentElement.style.setProperty("--accent", skin.accent);
  setStatus("connected", "up");
  showError("");
  state.firstConnection = false;
  loadCatalog();
  if (state.current) {
    await openSession(state.current);
  } else {
    refreshList();
    renderCurrent();
    root.dataset.ready = "1";
  }
}

/// Sessions ///

async function refreshList() {
  try {
    const result = await call("session.list");
    state.sessions = result.sessions || [];
  } catch {
    return;
  }
  renderList();
}

function renderList() {
  ui.list.replaceChildren(
    ...state.sessions.map((s) => {
      const li = document.createElement("li");
      li.dataset.testid = "session-item";
      li.dataset.sessionId = s.session_id;
      li.dataset.status = s.status;
      li.className = s.session_id === state.current ? "session current" : "session";
      const title = document.createElement("button");
      title.type = "button";
      title.className = "session-title";
      title.textContent = s.title || `untitled ${s.session_id.slice(0, 6)}`;
      title.addEventListener("click", () => openSession(s.session_id));
      const meta = document.createElement("span");
      meta.className = "session-meta";
      meta.textContent = `${s.status} · ${s.messages} msg`;
      li.append(title, meta);
      return li;
    }),
  );
}

async function createSession() {
  const title = ui.newTitle.value.trim();
  try {
    const result = await call("session.create", title ? { title } : {});
    const view = new View(result.session_id);
    view.loaded = true;
    state.views.set(view.id, view);
    state.current = view.id;
    ui.newTitle.value = "";
    persist();
    renderCurrent();
    refreshList();
    ui.input.focus();
  } catch (exc) {
    showError(`could not create a session: ${exc.message}`);
  }
}

/**
 * Attach to a session and show it. A view this page already holds is resumed from its last
 * seq; an unknown one (page load, or a session picked from the list) is resumed afresh.
 */
async function openSession(sid) {
  root.dataset.ready = "0";
  state.current = sid;
  let view = state.views.get(sid);
  const incremental = Boolean(view && view.loaded);
  if (!view) {
    view = new View(sid);
    state.views.set(sid, view);
  }
  persist();
  renderCurrent();
  renderList();
  const params = { session_id: sid };
  if (incremental) params.last_seq = view.lastSeq;
  let result;
  try {
    result = await call("session.resume", params);
  } catch (exc) {
    if (exc.code === 4001) {
      // Gone or not ours: forget it rather than retrying forever.
      state.views.delete(sid);
      if (state.current === sid) state.current = null;
      persist();
      renderCurrent();
      refreshList();
      showError("that session no longer exists");
      root.dataset.ready = "1";
    } else if (!(exc.message === "connection lost" || exc.message === "not connected")) {
      showError(`could not resume: ${exc.message}`);
    }
    return;
  }
  if (!incremental || result.gap) {
    loadTranscript(view, result, { replayFollows: !incremental });
  }
  view.loaded = true;
  if (state.current !== sid) return; // another session was picked meanwhile
  persist();
  renderCurrent();
  root.dataset.resumes = String(Number(root.dataset.resumes || 0) + 1);
  root.dataset.lastResume = incremental ? (result.gap ? "gap" : "incremental") : "fresh";
  root.dataset.ready = "1";
  refreshList(); // the listing fetched on connect predates this attach
}

/** Render the stored transcript; decide which of the following events are new. */
function loadTranscript(view, result, { replayFollows }) {
  view.reset();
  let messages = result.messages || [];
  const running = result.status === "running";
  if (running && replayFollows) {
    // The running turn's tool calls are replayed as events: keep only its prompt here.
    let lastUser = -1;
    messages.forEach((m, i) => {
      if (m.role === "user") lastUser = i;
    });
    if (lastUser >= 0) messages = messages.filter((m, i) => i <= lastUser || m.role !== "tool");
  }
  if (result.omitted > 0) {
    addItem(view, "system", `${result.omitted} older message(s) not shown (kept in the transcript)`);
  }
  for (const m of messages) {
    if (m.role === "user") addItem(view, "user", m.content);
    else if (m.role === "assistant") addItem(view, "assistant", m.content, { done: true });
    else addItem(view, "tool", m.content);
  }
  // A fresh resume replays exactly the running turn's events (from its message.start),
  // then live ones: accept them all. Otherwise everything up to last_seq is in the transcript.
  view.lastSeq = running && replayFollows ? 0 : result.last_seq || 0;
}

/// Transcript items ///

function addItem(view, kind, text, extra = {}) {
  const node = document.createElement("div");
  node.className = `msg msg-${kind}`;
  node.dataset.testid = `msg-${kind}`;
  const label = document.createElement("div");
  label.className = "msg-label";
  label.textContent = { user: "you", assistant: "hermes", tool: "tool", slash: "command", system: "gateway" }[kind] || kind;
  const body = document.createElement("div");
  body.className = "msg-body";
  body.dataset.testid = "msg-body";
  body.textContent = text;
  node.append(label, body);
  const item = { kind, text, node, body, ...extra };
  if (kind === "assistant") node.dataset.state = extra.done ? "done" : "streaming";
  view.items.push(item);
  if (view.id === state.current) {
    ui.transcript.append(node);
    scrollDown();
  }
  return item;
}

function setText(item, text) {
  item.text = text;
  item.body.textContent = text;
}

function scrollDown() {
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function renderCurrent() {
  const view = state.current && state.views.get(state.current);
  ui.transcript.replaceChildren(...(view ? view.items.map((i) => i.node) : []));
  ui.empty.hidden = Boolean(state.current);
  ui.form.hidden = !state.current;
  renderHeader();
  updateBusy();
  scrollDown();
}

function renderHeader() {
  const info = state.sessions.find((s) => s.session_id === state.current);
  const title = (info && info.title) || "untitled";
  ui.header.textContent = state.current ? `${title} · ${state.current.slice(0, 8)}` : "";
}

function updateBusy() {
  const view = state.current && state.views.get(state.current);
  const busy = Boolean(view && [...view.turns.values()].some((i) => !i.done));
  ui.interrupt.hidden = !busy;
  root.dataset.busy = busy ? "1" : "0";
}

function assistantItem(view, turnId) {
  let item = view.turns.get(turnId);
  if (!item) {
    item = addItem(view, "assistant", "", { turnId, done: false });
    item.node.dataset.turnId = turnId;
    view.turns.set(turnId, item);
  }
  return item;
}

/// Events ///

function onEvent(params) {
  const { type, session_id: sid, seq, payload = {} } = params;
  const view = sid && state.views.get(sid);
  if (!view || !view.loaded) return; // not resumed yet: its response will bring the state
  if (typeof seq === "number") {
    if (seq <= view.lastSeq) {
      if (type === "approval.request" || type === "clarify.request") showQuestion(view, type, seq, payload);
      return;
    }
    view.lastSeq = seq;
    if (sid === state.current) persist();
    // A turn waits on its question: any later event means the question was settled
    // (answered here, in another tab, or before a refresh replayed it).
    for (const q of view.questions.values()) if (!q.answered && q.seq < seq) settleQuestion(q);
  }
  switch (type) {
    case "message.start":
      assistantItem(view, payload.turn_id);
      break;
    case "message.delta": {
      const item = assistantItem(view, payload.turn_id);
      setText(item, item.text + (payload.text || ""));
      break;
    }
    case "message.complete": {
      const item = assistantItem(view, payload.turn_id);
      // The complete text is authoritative: it equals the concatenated deltas.
      setText(item, payload.text || "");
      item.done = true;
      item.node.dataset.state = payload.interrupted ? "interrupted" : "done";
      refreshList();
      break;
    }
    case "tool.start": {
      const args = payload.args && Object.keys(payload.args).length ? ` ${JSON.stringify(payload.args)}` : "";
      const item = addItem(view, "tool", `${payload.name}${args} …`);
      view.tools.set(payload.tool_id, item);
      break;
    }
    case "tool.complete": {
      const result = typeof payload.result === "string" ? payload.result : JSON.stringify(payload.result);
      const item = view.tools.get(payload.tool_id);
      if (item) setText(item, result);
      else addItem(view, "tool", result);
      break;
    }
    case "approval.request":
    case "clarify.request":
      showQuestion(view, type, seq, payload);
      break;
    case "error":
      addItem(view, "system", `error: ${payload.message}`);
      break;
    case "session.closed": {
      view.closed = payload.reason || "closed";
      const item = addItem(view, "system", `session closed (${view.closed})`);
      item.node.dataset.testid = "msg-closed";
      for (const t of view.turns.values()) t.done = true;
      refreshList();
      break;
    }
    default:
      break;
  }
  if (sid === state.current) updateBusy();
}

function showQuestion(view, type, seq, payload) {
  const known = view.questions.get(payload.request_id);
  if (known) return; // shown already (answered or still waiting)
  const approval = type === "approval.request";
  const item = addItem(
    view,
    "question",
    approval ? `${payload.tool} wants to run: ${payload.description}` : payload.question,
  );
  item.node.dataset.testid = approval ? "approval" : "clarify";
  item.node.dataset.requestId = payload.request_id;
  item.requestId = payload.request_id;
  item.seq = seq;
  const actions = document.createElement("div");
  actions.className = "msg-actions";
  if (approval) {
    for (const [choice, label] of [["once", "Allow once"], ["session", "Allow for session"], ["deny", "Deny"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.dataset.testid = `approve-${choice}`;
      button.addEventListener("click", () =>
        answer(view, item, "approval.respond", { choice }, label),
      );
      actions.append(button);
    }
  } else {
    const form = document.createElement("form");
    const input = document.createElement("input");
    input.type = "text";
    input.dataset.testid = "clarify-input";
    input.placeholder = "your answer";
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Answer";
    button.dataset.testid = "clarify-send";
    form.append(input, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      answer(view, item, "clarify.respond", { answer: input.value }, input.value);
    });
    actions.append(form);
  }
  item.node.append(actions);
  item.actions = actions;
  view.questions.set(payload.request_id, item);
}

async function answer(view, item, method, params, shown) {
  item.actions.querySelectorAll("button, input").forEach((el) => (el.disabled = true));
  try {
    await call(method, { session_id: view.id, request_id: item.requestId, ...params });
    item.answered = true;
    item.node.dataset.state = "answered";
    item.actions.replaceChildren(Object.assign(document.createElement("em"), { textContent: `→ ${shown}` }));
  } catch (exc) {
    if (exc.code === -32602) settleQuestion(item);
    else {
      item.actions.querySelectorAll("button, input").forEach((el) => (el.disabled = false));
      showError(`could not answer: ${exc.message}`);
    }
  }
}

function settleQuestion(item) {
  if (item.answered) return;
  item.answered = true;
  item.node.dataset.state = "settled";
  item.actions.replaceChildren(Object.assign(document.createElement("em"), { textContent: "answered" }));
}

/// Prompt, slash commands, completion ///

async function submitPrompt(event) {
  event.preventDefault();
  const text = ui.input.value.trim();
  const view = state.current && state.views.get(state.current);
  if (!text || !view || !view.loaded) return;
  ui.input.value = "";
  clearCompletions();
  if (text.startsWith("/")) {
    const item = addItem(view, "slash", `${text}\n…`);
    try {
      const result = await call("slash.exec", { session_id: view.id, command: text });
      setText(item, `${text}\n${result.output}`);
      item.node.dataset.state = "done";
      refreshList();
    } catch (exc) {
      setText(item, `${text}\nerror: ${exc.message}`);
      item.node.dataset.state = "error";
    }
    return;
  }
  const item = addItem(view, "user", text);
  try {
    await call("prompt.submit", { session_id: view.id, text });
  } catch (exc) {
    item.node.dataset.state = "failed";
    showError(exc.code === 4009 ? "a turn is still running" : `not sent: ${exc.message}`);
  }
}

async function interrupt() {
  if (!state.current) return;
  try {
    await call("session.interrupt", { session_id: state.current });
  } catch (exc) {
    showError(`could not interrupt: ${exc.message}`);
  }
}

async function loadCatalog() {
  if (state.catalog.size) return;
  try {
    const result = await call("commands.catalog");
    for (const c of result.commands || []) state.catalog.set(c.name, c);
  } catch {
    // completion still works without descriptions
  }
}

let completeSerial = 0;

async function updateCompletions() {
  const text = ui.input.value;
  if (!text.startsWith("/") || /\s/.test(text)) {
    clearCompletions();
    return;
  }
  const serial = ++completeSerial;
  let completions = [];
  try {
    completions = (await call("complete.slash", { text })).completions || [];
  } catch {
    return;
  }
  if (serial !== completeSerial) return; // a newer keystroke won
  state.completions = completions;
  ui.completions.replaceChildren(
    ...completions.map((name) => Object.assign(document.createElement("option"), { value: name })),
  );
  ui.hints.replaceChildren(
    ...completions.map((name) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "hint";
      chip.dataset.testid = "slash-hint";
      chip.textContent = name;
      chip.title = (state.catalog.get(name) || {}).description || "";
      chip.addEventListener("click", () => {
        ui.input.value = `${name} `;
        ui.input.focus();
        clearCompletions();
      });
      return chip;
    }),
  );
  ui.hints.hidden = !completions.length;
}

function clearCompletions() {
  completeSerial++;
  state.completions = [];
  ui.completions.replaceChildren();
  ui.hints.replaceChildren();
  ui.hints.hidden = true;
}

function commonPrefix(words) {
  if (!words.length) return "";
  let prefix = words[0];
  for (const w of words) while (!w.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}

function onKeyDown(event) {
  if (event.key !== "Tab" || !ui.input.value.startsWith("/") || !state.completions.length) return;
  event.preventDefault();
  const list = state.completions;
  const prefix = commonPrefix(list);
  ui.input.value = list.length === 1 ? `${list[0]} ` : prefix.length > ui.input.value.length ? prefix : ui.input.value;
  updateCompletions();
}

/// Wiring ///

ui.newButton.addEventListener("click", createSession);
ui.form.addEventListener("submit", submitPrompt);
ui.input.addEventListener("input", updateCompletions);
ui.input.addEventListener("keydown", onKeyDown);
ui.interrupt.addEventListener("click", interrupt);
root.dataset.ready = "0";
persist();
connect();
