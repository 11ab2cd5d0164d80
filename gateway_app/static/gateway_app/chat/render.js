// The chat page's DOM. Everything the gateway or a user sent is set with textContent, never
// parsed as HTML, except assistant replies: their Markdown is rendered (markdown.js) and
// sanitized by DOMPurify in insertSanitizedHtml, the one function that inserts HTML.
// Transcript nodes are kept by item key, so an update touches only its entry (a half-typed
// clarify answer and its focus survive the events that follow).

import DOMPurify from "../vendor/purify.es.mjs";
import { markdownToHtml } from "./markdown.js";
import { ApprovalChoice } from "./protocol.js";

const LABELS = { user: "you", assistant: "hermes", tool: "tool", slash: "slash", system: "gateway", older: "gateway" };
// What a reply's Markdown may become; anything else (scripts, images, forms, styles, event
// handlers, javascript: URLs) is dropped even if markdown.js let it through.
const PURIFY_CONFIG = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol",
    "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "align"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
};

// Links of a reply open in a new tab that cannot reach back to this page.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("rel", "noopener noreferrer");
    node.setAttribute("target", "_blank");
  }
});

/** The one place HTML enters the DOM: a reply's Markdown, sanitized by DOMPurify. */
function insertSanitizedHtml(node, markdown) {
  node.innerHTML = DOMPurify.sanitize(markdownToHtml(markdown), PURIFY_CONFIG).trim();
}
const APPROVAL_BUTTONS = [
  [ApprovalChoice.ONCE, "Allow once"],
  [ApprovalChoice.SESSION, "Allow for session"],
  [ApprovalChoice.DENY, "Deny"],
];

/** The page's elements, found by their data-testid under the #chat root. */
export function findUi(root) {
  const byId = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  return {
    root,
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
    completions: root.ownerDocument.getElementById("slash-completions"),
    hints: byId("slash-hints"),
    sidebar: byId("sidebar"),
    sidebarToggle: byId("sidebar-toggle"),
  };
}

/** Show or hide the session list where it collapses (narrow screens); wide ones always show it. */
export function setSidebar(ui, open) {
  ui.root.dataset.sidebar = open ? "open" : "closed";
  ui.sidebarToggle.setAttribute("aria-expanded", String(open));
}

function element(doc, tag, props = {}) {
  return Object.assign(doc.createElement(tag), props);
}

export function setStatus(ui, text, kind) {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
  ui.root.dataset.connection = kind;
}

export function showError(ui, text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

/**
 * The sidebar's session list (a listing.js listing); `onPick(sessionId)` when one is clicked,
 * `onMore()` when its end scrolls into view or "more" is clicked while pages follow.
 */
export function renderSessionList(ui, { sessions, nextCursor }, current, { onPick, onMore }) {
  const doc = ui.root.ownerDocument;
  ui.moreObserver?.disconnect();
  ui.list.replaceChildren(
    ...sessions.map((s) => {
      const li = element(doc, "li", { className: s.session_id === current ? "session current" : "session" });
      li.dataset.testid = "session-item";
      li.dataset.sessionId = s.session_id;
      li.dataset.status = s.status;
      const title = element(doc, "button", {
        type: "button",
        className: "session-title",
        textContent: s.title || `untitled ${s.session_id.slice(0, 6)}`,
      });
      title.addEventListener("click", () => onPick(s.session_id));
      const meta = element(doc, "span", { className: "session-meta", textContent: `${s.status} · ${s.messages} msg` });
      li.append(title, meta);
      return li;
    }),
  );
  if (!nextCursor) return;
  const more = element(doc, "button", { type: "button", className: "session-more", textContent: "more…" });
  more.dataset.testid = "session-more";
  more.addEventListener("click", () => onMore());
  const sentinel = element(doc, "li", { className: "session sentinel" });
  sentinel.append(more);
  ui.list.append(sentinel);
  const Observer = doc.defaultView?.IntersectionObserver;
  if (Observer) {
    ui.moreObserver = new Observer((entries) => entries.some((e) => e.isIntersecting) && onMore());
    ui.moreObserver.observe(sentinel);
  }
}

export function renderHeader(ui, text) {
  ui.header.textContent = text;
}

/**
 * Shows the transcript of one view. Questions call `handlers.approve(sessionId, item, choice,
 * label)` and `handlers.clarify(sessionId, item, answer)`; the load-older control calls
 * `handlers.older(sessionId, item)`.
 */
export class TranscriptRenderer {
  constructor(container, handlers) {
    this.container = container;
    this.handlers = handlers;
    this.doc = container.ownerDocument;
    this.nodes = new Map(); // item key -> {item, node, body, actions}
    this.viewId = null;
  }

  /** Bring the DOM in line with `view` (null: an empty transcript). */
  render(view) {
    const items = view ? view.items : [];
    this.viewId = view ? view.id : null;
    const keep = new Set();
    const nodes = items.map((item) => {
      keep.add(item.key);
      return this.entry(item).node;
    });
    for (const key of this.nodes.keys()) if (!keep.has(key)) this.nodes.delete(key);
    const shown = this.container.children;
    const prefix = shown.length <= nodes.length && nodes.every((node, i) => i >= shown.length || shown[i] === node);
    if (prefix) {
      if (nodes.length > shown.length) {
        this.container.append(...nodes.slice(shown.length));
        this.scrollDown();
      }
    } else {
      this.container.replaceChildren(...nodes);
      this.scrollDown();
    }
  }

  scrollDown() {
    this.container.scrollTop = this.container.scrollHeight;
  }

  entry(item) {
    let entry = this.nodes.get(item.key);
    if (!entry) {
      entry = this.create(item, this.viewId);
      this.nodes.set(item.key, entry);
    } else if (entry.item !== item) {
      this.update(entry, item);
    }
    return entry;
  }

  create(item, viewId) {
    const node = element(this.doc, "div", { className: `msg msg-${item.kind}` });
    node.dataset.testid = item.testid || `msg-${item.kind}`;
    const label = element(this.doc, "div", { className: "msg-label" });
    const markdown = item.kind === "assistant";
    const body = element(this.doc, "div", { className: markdown ? "msg-body markdown" : "msg-body" });
    body.dataset.testid = "msg-body";
    node.append(label, body);
    const entry = { item: null, viewId, node, label, body, markdown, shown: null, actions: null, actionsFor: "" };
    if (item.kind === "question") {
      node.dataset.requestId = item.requestId;
      entry.actions = element(this.doc, "div", { className: "msg-actions" });
      node.append(entry.actions);
    } else if (item.kind === "older") {
      entry.actions = element(this.doc, "div", { className: "msg-actions" });
      const button = element(this.doc, "button", { type: "button", textContent: "load older" });
      button.dataset.testid = "load-older";
      button.addEventListener("click", () => this.handlers.older(entry.viewId, entry.item));
      entry.actions.append(button);
      node.append(entry.actions);
    }
    this.update(entry, item);
    return entry;
  }

  update(entry, item) {
    entry.item = item;
    // Slash output and tool results are labelled with their command or tool, as text.
    const label = item.label || LABELS[item.kind] || item.kind;
    if (entry.label.textContent !== label) entry.label.textContent = label;
    if (item.turnId !== undefined) entry.node.dataset.turnId = item.turnId;
    if (entry.shown !== item.text) {
      entry.shown = item.text;
      if (entry.markdown) insertSanitizedHtml(entry.body, item.text);
      else entry.body.textContent = item.text;
    }
    if (item.state) entry.node.dataset.state = item.state;
    else delete entry.node.dataset.state;
    if (item.kind === "older") entry.actions.firstChild.disabled = Boolean(item.pending);
    else if (entry.actions) this.updateActions(entry, item);
  }

  updateActions(entry, item) {
    const phase = item.answered ? `done:${item.state}:${item.shown || ""}` : "open";
    if (phase !== entry.actionsFor) {
      entry.actionsFor = phase;
      if (item.answered) {
        const text = item.state === "answered" ? `→ ${item.shown}` : "answered";
        entry.actions.replaceChildren(element(this.doc, "em", { textContent: text }));
      } else {
        entry.actions.replaceChildren(item.approval ? this.approvalButtons(entry) : this.clarifyForm(entry));
      }
    }
    for (const control of entry.actions.querySelectorAll("button, input")) control.disabled = Boolean(item.pending);
  }

  approvalButtons(entry) {
    const fragment = this.doc.createDocumentFragment();
    for (const [choice, label] of APPROVAL_BUTTONS) {
      const button = element(this.doc, "button", { type: "button", textContent: label });
      button.dataset.testid = `approve-${choice}`;
      button.addEventListener("click", () => this.handlers.approve(entry.viewId, entry.item, choice, label));
      fragment.append(button);
    }
    return fragment;
  }

  clarifyForm(entry) {
    const form = element(this.doc, "form");
    const input = element(this.doc, "input", { type: "text", placeholder: "your answer" });
    input.dataset.testid = "clarify-input";
    const button = element(this.doc, "button", { type: "submit", textContent: "Answer" });
    button.dataset.testid = "clarify-send";
    form.append(input, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.handlers.clarify(entry.viewId, entry.item, input.value);
    });
    return form;
  }
}

/** The slash-command hints under the transcript and the input's datalist. */
export function renderCompletions(ui, completions, catalog, onPick) {
  const doc = ui.root.ownerDocument;
  ui.completions.replaceChildren(...completions.map((name) => element(doc, "option", { value: name })));
  ui.hints.replaceChildren(
    ...completions.map((name) => {
      const chip = element(doc, "button", {
        type: "button",
        className: "hint",
        textContent: name,
        title: (catalog.get(name) || {}).description || "",
      });
      chip.dataset.testid = "slash-hint";
      chip.addEventListener("click", () => onPick(name));
      return chip;
    }),
  );
  ui.hints.hidden = !completions.length;
}
