// The chat page's controller: user actions and gateway frames in, state (state.js) updated,
// DOM (render.js) redrawn. The page's data-* attributes (ready, session, connection, busy,
// resumes, last-resume) are what the browser tests wait on.

import { CloseCode, ErrorCode, EventType, Method, isConnectionError } from "./protocol.js";
import { RpcClient, socketUrl } from "./rpc.js";
import * as listing from "./listing.js";
import * as state from "./state.js";
import {
  TranscriptRenderer,
  findUi,
  renderCompletions,
  renderHeader,
  renderSessionList,
  setSidebar,
  setStatus,
  showError,
} from "./render.js";
import { tabComplete, wantsCompletion } from "./slash.js";

const STORE_CURRENT = "hermes.chat.current";
// Events after which the sidebar's status and message counts are out of date.
const LIST_EVENTS = new Set([EventType.MESSAGE_COMPLETE, EventType.SESSION_CLOSED]);

/** Why the socket keeps closing, in words, or "" while a plain retry is all there is to say. */
function downMessage({ code, failures }) {
  if (code === CloseCode.FORBIDDEN) return "the gateway refused this login — reload the page to log in again";
  if (code === CloseCode.TOO_MANY_CONNECTIONS) return "too many open connections for this user — close another tab";
  // A refused handshake looks like any other drop to a browser: say what it may mean.
  if (failures >= 3) return "cannot reach the gateway — if your login expired, reload the page to log in";
  return "";
}

export class ChatApp {
  constructor(root, { storage = sessionStorage, location = globalThis.location, WebSocketImpl } = {}) {
    this.root = root;
    this.storage = storage;
    this.ui = findUi(root);
    this.views = new Map();
    this.listing = listing.emptyListing();
    this.current = storage.getItem(STORE_CURRENT) || null;
    this.catalog = new Map();
    this.completions = [];
    this.completeSerial = 0;
    this.transcript = new TranscriptRenderer(this.ui.transcript, {
      approve: (sid, item, choice, label) => this.answer(sid, item, Method.APPROVAL_RESPOND, { choice }, label),
      clarify: (sid, item, answer) => this.answer(sid, item, Method.CLARIFY_RESPOND, { answer }, answer),
      older: (sid, item) => this.loadOlder(sid, item),
    });
    this.rpc = new RpcClient({
      url: socketUrl(location, root.dataset.wsPath),
      WebSocketImpl,
      onReady: (payload) => this.onReady(payload),
      onEvent: (params) => this.onEvent(params),
      onConnecting: (first) => setStatus(this.ui, first ? "connecting…" : "reconnecting…", "connecting"),
      onDown: (down) => this.onDown(down),
    });
  }

  start() {
    const { ui } = this;
    ui.newButton.addEventListener("click", () => this.createSession());
    ui.form.addEventListener("submit", (event) => this.submitPrompt(event));
    ui.input.addEventListener("input", () => this.updateCompletions());
    ui.input.addEventListener("keydown", (event) => this.onKeyDown(event));
    ui.interrupt.addEventListener("click", () => this.interrupt());
    ui.sidebarToggle.addEventListener("click", () => setSidebar(ui, this.root.dataset.sidebar !== "open"));
    this.root.dataset.ready = "0";
    this.persist();
    this.rpc.connect();
  }

  call(method, params) {
    return this.rpc.call(method, params);
  }

  persist() {
    if (this.current) this.storage.setItem(STORE_CURRENT, this.current);
    else this.storage.removeItem(STORE_CURRENT);
    this.root.dataset.session = this.current || "";
  }

  currentView() {
    return (this.current && this.views.get(this.current)) || null;
  }

  /** Store a new state of a view; redraw it when it is the one shown. */
  setView(view) {
    this.views.set(view.id, view);
    if (view.id === this.current) {
      this.transcript.render(view);
      this.updateBusy();
    }
  }

  /// Connection ///

  onDown(down) {
    this.root.dataset.ready = "0";
    // Only the current session is re-attached on reconnect; the others start afresh if picked.
    for (const id of [...this.views.keys()]) if (id !== this.current) this.views.delete(id);
    setStatus(this.ui, `disconnected — retrying in ${(down.delay / 1000).toFixed(1)} s`, "down");
    const message = downMessage(down);
    if (message) showError(this.ui, message);
  }

  async onReady(payload) {
    const skin = payload.skin || {};
    if (skin.accent) this.root.ownerDocument.documentElement.style.setProperty("--accent", skin.accent);
    setStatus(this.ui, "connected", "up");
    showError(this.ui, "");
    this.loadCatalog();
    if (this.current) {
      await this.openSession(this.current);
    } else {
      this.refreshList();
      this.renderCurrent();
      this.root.dataset.ready = "1";
    }
  }

  onEvent(params) {
    const view = params.session_id && this.views.get(params.session_id);
    if (!view) return;
    const next = state.applyEvent(view, params);
    if (next === view) return;
    this.setView(next);
    if (LIST_EVENTS.has(params.type)) this.refreshList();
  }

  /// Sessions ///

  get sessions() {
    return this.listing.sessions;
  }

  async refreshList() {
    try {
      const result = await this.call(Method.SESSION_LIST);
      this.listing = listing.firstPage(this.listing, result);
    } catch {
      return;
    }
    this.renderList();
  }

  /** The next page of the sidebar (scrolled to its end, or "more" clicked). */
  async loadMore() {
    const params = listing.moreParams(this.listing);
    if (!params) return;
    this.listing = listing.loadingMore(this.listing);
    try {
      const result = await this.call(Method.SESSION_LIST, params);
      this.listing = listing.morePage(this.listing, result);
    } catch {
      this.listing = listing.moreFailed(this.listing);
      return;
    }
    this.renderList();
  }

  renderList() {
    renderSessionList(this.ui, this.listing, this.current, {
      onPick: (sid) => this.openSession(sid),
      onMore: () => this.loadMore(),
    });
    this.renderHeader();
  }

  renderCurrent() {
    const { ui } = this;
    this.transcript.render(this.currentView());
    ui.empty.hidden = Boolean(this.current);
    ui.form.hidden = !this.current;
    this.renderHeader();
    this.updateBusy();
  }

  renderHeader() {
    // The listing's title is the freshest; the view's (from create or resume) shows until it comes.
    const info = this.sessions.find((s) => s.session_id === this.current);
    const view = this.currentView();
    renderHeader(this.ui, state.headerText(this.current, (info && info.title) || (view && view.title)));
  }

  updateBusy() {
    const busy = state.isBusy(this.currentView());
    this.ui.interrupt.hidden = !busy;
    this.root.dataset.busy = busy ? "1" : "0";
  }

  async createSession() {
    const title = this.ui.newTitle.value.trim();
    try {
      const result = await this.call(Method.SESSION_CREATE, title ? { title } : {});
      this.views.set(result.session_id, state.createView(result.session_id, { loaded: true, title: result.title || "" }));
      this.current = result.session_id;
      this.ui.newTitle.value = "";
      setSidebar(this.ui, false);
      this.persist();
      this.renderCurrent();
      this.refreshList();
      this.ui.input.focus();
    } catch (exc) {
      showError(this.ui, `could not create a session: ${exc.message}`);
    }
  }

  /**
   * Attach to a session and show it. A view this page already holds is resumed from its last
   * seq; an unknown one (page load, or a session picked from the list) is resumed afresh.
   */
  async openSession(sid) {
    this.root.dataset.ready = "0";
    this.current = sid;
    setSidebar(this.ui, false);
    if (!this.views.has(sid)) this.views.set(sid, state.createView(sid));
    const plan = state.resumePlan(this.views.get(sid));
    this.persist();
    this.renderCurrent();
    this.renderList();
    let result;
    try {
      result = await this.rpc.resume(sid, plan.lastSeq);
    } catch (exc) {
      if (exc.code === ErrorCode.UNKNOWN_SESSION) {
        // Gone or not ours: forget it rather than retrying forever.
        this.views.delete(sid);
        if (this.current === sid) this.current = null;
        this.persist();
        this.renderCurrent();
        this.refreshList();
        showError(this.ui, "that session no longer exists");
        this.root.dataset.ready = "1";
      } else if (!isConnectionError(exc)) {
        showError(this.ui, `could not resume: ${exc.message}`);
      }
      return;
    }
    // Events that arrived meanwhile were dropped (not loaded): the response covers them.
    this.views.set(sid, state.applyResume(this.views.get(sid), result, plan));
    if (this.current !== sid) return; // another session was picked meanwhile
    this.persist();
    this.renderCurrent();
    this.root.dataset.resumes = String(Number(this.root.dataset.resumes || 0) + 1);
    this.root.dataset.lastResume = state.resumeKind(plan.incremental, result);
    this.root.dataset.ready = "1";
    this.refreshList(); // the listing fetched on connect predates this attach
  }

  /** Show the page of older messages before the control `item` (session.history). */
  async loadOlder(sid, item) {
    const view = this.views.get(sid);
    if (!view || item.pending) return;
    this.setView(state.olderPending(view, item.key, true));
    try {
      const page = await this.rpc.history(sid, item.before);
      const latest = this.views.get(sid);
      if (latest) this.setView(state.olderLoaded(latest, item.key, page));
    } catch (exc) {
      const latest = this.views.get(sid);
      if (latest) this.setView(state.olderPending(latest, item.key, false));
      if (!isConnectionError(exc)) showError(this.ui, `could not load older messages: ${exc.message}`);
    }
  }

  /// Questions ///

  async answer(sid, item, method, params, shown) {
    const update = (change) => {
      const view = this.views.get(sid);
      if (view) this.setView(change(view));
    };
    update((view) => state.questionPending(view, item.requestId, true));
    try {
      await this.call(method, { session_id: sid, request_id: item.requestId, ...params });
      update((view) => state.questionAnswered(view, item.requestId, shown));
    } catch (exc) {
      if (exc.code === ErrorCode.INVALID_PARAMS) {
        update((view) => state.questionSettled(view, item.requestId));
      } else {
        update((view) => state.questionPending(view, item.requestId, false));
        showError(this.ui, `could not answer: ${exc.message}`);
      }
    }
  }

  /// Prompt, slash commands, completion ///

  async submitPrompt(event) {
    event.preventDefault();
    const text = this.ui.input.value.trim();
    const view = this.currentView();
    if (!text || !view || !view.loaded) return;
    this.ui.input.value = "";
    this.clearCompletions();
    const sid = view.id;
    const patch = (key, change) => {
      const latest = this.views.get(sid);
      if (latest) this.setView(state.updateItem(latest, key, change));
    };
    if (text.startsWith("/")) {
      const { view: next, key } = state.addItem(view, "slash", `${text}\n…`, { label: `slash ${text.split(/\s/)[0]}` });
      this.setView(next);
      try {
        const result = await this.call(Method.SLASH_EXEC, { session_id: sid, command: text });
        patch(key, { text: `${text}\n${result.output}`, state: "done" });
        this.refreshList();
      } catch (exc) {
        patch(key, { text: `${text}\nerror: ${exc.message}`, state: "error" });
      }
      return;
    }
    const { view: next, key } = state.addPrompt(view, text);
    this.setView(next);
    const change = (update) => {
      const latest = this.views.get(sid);
      if (latest) this.setView(update(latest));
    };
    try {
      const result = await this.call(Method.PROMPT_SUBMIT, { session_id: sid, text });
      change((latest) => state.promptAccepted(latest, key, result.turn_id));
    } catch (exc) {
      change((latest) => state.promptFailed(latest, key));
      showError(this.ui, exc.code === ErrorCode.SESSION_BUSY ? "a turn is still running" : `not sent: ${exc.message}`);
    }
  }

  async interrupt() {
    if (!this.current) return;
    try {
      await this.call(Method.SESSION_INTERRUPT, { session_id: this.current });
    } catch (exc) {
      showError(this.ui, `could not interrupt: ${exc.message}`);
    }
  }

  async loadCatalog() {
    if (this.catalog.size) return;
    try {
      const result = await this.call(Method.COMMANDS_CATALOG);
      for (const c of result.commands || []) this.catalog.set(c.name, c);
    } catch {
      // completion still works without descriptions
    }
  }

  async updateCompletions() {
    const text = this.ui.input.value;
    if (!wantsCompletion(text)) {
      this.clearCompletions();
      return;
    }
    const serial = ++this.completeSerial;
    let completions;
    try {
      completions = (await this.call(Method.COMPLETE_SLASH, { text })).completions || [];
    } catch {
      return;
    }
    if (serial !== this.completeSerial) return; // a newer keystroke won
    this.completions = completions;
    renderCompletions(this.ui, completions, this.catalog, (name) => {
      this.ui.input.value = `${name} `;
      this.ui.input.focus();
      this.clearCompletions();
    });
  }

  clearCompletions() {
    this.completeSerial++;
    this.completions = [];
    renderCompletions(this.ui, [], this.catalog, () => {});
  }

  onKeyDown(event) {
    if (event.key !== "Tab" || !this.ui.input.value.startsWith("/") || !this.completions.length) return;
    event.preventDefault();
    this.ui.input.value = tabComplete(this.ui.input.value, this.completions);
    this.updateCompletions();
  }
}
