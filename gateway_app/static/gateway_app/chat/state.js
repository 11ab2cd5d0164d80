// The chat page's state of one session, as pure functions: a resume response or an event in,
// a new view out. No DOM and no socket here, so the seq and replay rules are unit-tested.
//
// Resume rules (PROTOCOL.md, session.resume):
// - A page load resumes the session remembered in sessionStorage *without* last_seq: the
//   response's transcript holds every finished turn and the server replays the running
//   turn's events from its message.start, so nothing is shown twice and nothing is missing.
// - A socket drop on a live page resumes *with* last_seq: only the events after it are
//   replayed. On `gap: true` the transcript is re-rendered from the response instead.
// - A `running_turn` in the response (the running turn's message.start is no longer
//   buffered) is shown as its reply so far; the replayed events after its seq continue it.
// - Events with seq <= the session's last seq are dropped, except approval/clarify requests,
//   which are keyed by request_id and shown again while unanswered.

import { EventType, SessionStatus } from "./protocol.js";

/**
 * @typedef {object} Item one transcript entry; replaced, never mutated, when it changes
 * @property {string} key stable across updates (the renderer keeps its node by it)
 * @property {string} kind user | assistant | tool | slash | system | question | older
 * @property {string} text
 * @property {string} [state] the entry's data-state (sending, failed, streaming, done, answered...)
 * @property {string} [testid] overrides the default `msg-<kind>`
 * @property {string} [label] overrides the kind's label (e.g. "slash /help", "tool terminal")
 * @property {string} [turnId]
 * @property {string} [toolId]
 * @property {string} [requestId]
 * @property {number} [seq] the seq of a question's request event
 * @property {boolean} [done] an assistant turn that is over
 * @property {boolean} [approval] a question that is an approval (else a clarify)
 * @property {boolean} [answered]
 * @property {boolean} [pending] an answer is on its way
 * @property {string} [shown] what the answer shows once accepted
 * @property {number} [before] an `older` control: the session.history `before` of its next page
 * @property {number} [left] an `older` control: how many older messages are not shown
 */

/**
 * @typedef {object} View the client-side state of one session
 * @property {string} id
 * @property {boolean} loaded a resume (or the create) has answered: events now apply
 * @property {number} lastSeq the last seq applied
 * @property {string} title
 * @property {string} closed the session.closed reason, if it closed
 * @property {Item[]} items
 * @property {number} nextKey
 */

/** A view of a session nothing is known about yet. */
export function createView(id, { loaded = false, title = "" } = {}) {
  return { id, loaded, lastSeq: 0, title, closed: "", items: [], nextKey: 1 };
}

/** The view with one more item at the end; returns it with the new item's key. */
export function addItem(view, kind, text, extra = {}) {
  const key = `${view.id}:${view.nextKey}`;
  const item = { key, kind, text, ...extra };
  return { view: { ...view, items: [...view.items, item], nextKey: view.nextKey + 1 }, key };
}

/** The view with the item of `key` changed by `patch` (an unknown key changes nothing). */
export function updateItem(view, key, patch) {
  const index = view.items.findIndex((item) => item.key === key);
  if (index < 0) return view;
  const items = view.items.slice();
  items[index] = { ...items[index], ...patch };
  return { ...view, items };
}

/** The view without the item of `key`. */
function removeItem(view, key) {
  return { ...view, items: view.items.filter((item) => item.key !== key) };
}

/** The tab's own prompt, shown at once (state "sending") until the gateway accepts it. */
export function addPrompt(view, text) {
  return addItem(view, "user", text, { state: "sending" });
}

/**
 * The gateway accepted the prompt of `key` as turn `turnId`. If that turn's message.user
 * came first and showed the prompt as another item, this echo goes.
 */
export function promptAccepted(view, key, turnId) {
  const shownElsewhere = view.items.some((i) => i.kind === "user" && i.turnId === turnId && i.key !== key);
  if (shownElsewhere) return removeItem(view, key);
  return updateItem(view, key, { turnId, state: undefined });
}

/** The gateway refused the prompt of `key`; an echo a turn's message.user claimed stays as it is. */
export function promptFailed(view, key) {
  const item = view.items.find((i) => i.key === key);
  if (!item || item.turnId !== undefined) return view;
  return updateItem(view, key, { state: "failed" });
}

/**
 * A turn's prompt (message.user): shown once per turn id. The tab's own echo of the same
 * text, still being sent, is that prompt (it gets the turn id); otherwise another tab sent it.
 */
function showPrompt(view, payload) {
  const turnId = payload.turn_id;
  if (view.items.some((i) => i.kind === "user" && i.turnId === turnId)) return view;
  const text = payload.text || "";
  const echo = view.items.find((i) => i.kind === "user" && i.state === "sending" && i.turnId === undefined && i.text === text);
  if (echo) return updateItem(view, echo.key, { turnId, state: undefined }); // the turn exists: it was accepted
  return addItem(view, "user", text, { turnId }).view;
}

/** What `session.resume` should send for this view: last_seq only for a view already shown. */
export function resumePlan(view) {
  const incremental = Boolean(view && view.loaded);
  return { incremental, lastSeq: incremental ? view.lastSeq : undefined };
}

/**
 * Replace the view's items by a resume response's transcript, and decide which of the
 * events that follow are new. `replayFollows`: the resume had no last_seq, so the server
 * replays the running turn's events from its message.start.
 */
export function loadTranscript(view, result, { replayFollows }) {
  let messages = result.messages || [];
  const running = result.status === SessionStatus.RUNNING;
  // The running turn's start is no longer buffered: its text so far comes in the response
  // and every replayed event follows it (after its seq), whether or not last_seq was given.
  const partial = running && result.running_turn ? result.running_turn : null;
  if (running && (replayFollows || partial)) {
    // The running turn's tool calls are replayed as events: keep only its prompt here.
    const lastUser = messages.findLastIndex((m) => m.role === "user");
    if (lastUser >= 0) messages = messages.filter((m, i) => i <= lastUser || m.role !== "tool");
  }
  let next = { ...view, items: [], closed: "", title: result.title || view.title };
  const oldest = messages.length ? messages[0].id : null;
  if (result.omitted > 0 && typeof oldest === "number") {
    // Beyond PROTOCOL.md v1: session.history pages back from the oldest message shown.
    next = addItem(next, "older", olderText(result.omitted), { before: oldest, left: result.omitted, pending: false }).view;
  }
  for (const m of messages) next = addItem(next, ...messageItem(m)).view;
  if (partial) {
    next = addItem(next, "assistant", partial.text || "", { turnId: partial.turn_id, done: false, state: "streaming" }).view;
    return { ...next, lastSeq: partial.seq || 0 };
  }
  // A fresh resume replays exactly the running turn's events (from its message.start),
  // then live ones: accept them all. Otherwise everything up to last_seq is in the transcript.
  return { ...next, lastSeq: running && replayFollows ? 0 : result.last_seq || 0 };
}

/** The (kind, text, extra) of the item showing a stored transcript message. */
function messageItem(m) {
  const cut = m.truncated ? { state: "truncated" } : {};
  if (m.role === "user") return ["user", m.content, cut];
  if (m.role === "assistant") return ["assistant", m.content, { done: true, state: "done", ...cut }];
  return ["tool", m.content, cut];
}

function olderText(left) {
  return `${left} older message(s) not shown`;
}

/** The `older` control of `key` while its page is (or is no longer) on its way. */
export function olderPending(view, key, pending) {
  return updateItem(view, key, { pending });
}

/**
 * A session.history page arrived for the `older` control of `key`: its messages go right
 * after the control (before everything shown), and the control pages on from next_before,
 * or goes when the page reached the first message.
 */
export function olderLoaded(view, key, page) {
  const index = view.items.findIndex((i) => i.key === key && i.kind === "older");
  if (index < 0) return view;
  const control = view.items[index];
  let next = { ...view, items: [] };
  for (const m of page.messages || []) next = addItem(next, ...messageItem(m)).view;
  const older = next.items;
  const left = Math.max(control.left - older.length, 0);
  const keep = page.has_more && typeof page.next_before === "number" && left > 0;
  const head = keep ? [{ ...control, text: olderText(left), left, before: page.next_before, pending: false }] : [];
  const items = [...view.items.slice(0, index), ...head, ...older, ...view.items.slice(index + 1)];
  return { ...next, items };
}

/** Apply a resume response to the view it was asked for; the view is loaded afterwards. */
export function applyResume(view, result, { incremental }) {
  const next = !incremental || result.gap ? loadTranscript(view, result, { replayFollows: !incremental }) : view;
  return { ...next, loaded: true, title: result.title || next.title };
}

/** How the resume went, for the page's data-last-resume. */
export function resumeKind(incremental, result) {
  if (!incremental) return "fresh";
  return result.gap ? "gap" : "incremental";
}

function isQuestion(type) {
  return type === EventType.APPROVAL_REQUEST || type === EventType.CLARIFY_REQUEST;
}

function assistantFor(view, turnId) {
  // Assistant items of the stored transcript have no turnId key: a turn never continues them.
  const index = view.items.findLastIndex(
    (i) => i.kind === "assistant" && Object.hasOwn(i, "turnId") && i.turnId === turnId,
  );
  if (index >= 0) return { view, item: view.items[index] };
  const { view: next, key } = addItem(view, "assistant", "", { turnId, done: false, state: "streaming" });
  return { view: next, item: next.items.find((i) => i.key === key) };
}

function showQuestion(view, type, seq, payload) {
  if (view.items.some((i) => i.kind === "question" && i.requestId === payload.request_id)) {
    return view; // shown already (answered or still waiting)
  }
  const approval = type === EventType.APPROVAL_REQUEST;
  const text = approval ? `${payload.tool} wants to run: ${payload.description}` : payload.question;
  return addItem(view, "question", text, {
    testid: approval ? "approval" : "clarify",
    approval,
    requestId: payload.request_id,
    seq,
    answered: false,
    pending: false,
  }).view;
}

function settleEarlierQuestions(view, seq) {
  // A turn waits on its question: any later event means the question was settled
  // (answered here, in another tab, or before a refresh replayed it).
  if (!view.items.some((i) => i.kind === "question" && !i.answered && i.seq < seq)) return view;
  return {
    ...view,
    items: view.items.map((i) =>
      i.kind === "question" && !i.answered && i.seq < seq ? { ...i, answered: true, pending: false, state: "settled" } : i,
    ),
  };
}

function stringify(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * Apply one session event (the params of an `event` frame) to the view. Returns the same
 * view object when the event changes nothing: not loaded yet, or a duplicate.
 */
export function applyEvent(view, event) {
  const { type, seq, payload = {} } = event;
  if (!view || !view.loaded) return view; // not resumed yet: its response will bring the state
  let next = view;
  if (typeof seq === "number") {
    if (seq <= view.lastSeq) {
      return isQuestion(type) ? showQuestion(view, type, seq, payload) : view;
    }
    next = settleEarlierQuestions({ ...view, lastSeq: seq }, seq);
  }
  switch (type) {
    case EventType.MESSAGE_USER:
      return showPrompt(next, payload);
    case EventType.MESSAGE_START:
      return assistantFor(next, payload.turn_id).view;
    case EventType.MESSAGE_DELTA: {
      const found = assistantFor(next, payload.turn_id);
      return updateItem(found.view, found.item.key, { text: found.item.text + (payload.text || "") });
    }
    case EventType.MESSAGE_COMPLETE: {
      const found = assistantFor(next, payload.turn_id);
      // The complete text is authoritative: it equals the concatenated deltas.
      return updateItem(found.view, found.item.key, {
        text: payload.text || "",
        done: true,
        state: payload.interrupted ? "interrupted" : "done",
      });
    }
    case EventType.TOOL_START: {
      const args = payload.args && Object.keys(payload.args).length ? ` ${JSON.stringify(payload.args)}` : "";
      return addItem(next, "tool", `${payload.name}${args} …`, { toolId: payload.tool_id, label: `tool ${payload.name}` }).view;
    }
    case EventType.TOOL_COMPLETE: {
      const text = stringify(payload.result);
      const tool = next.items.findLast((i) => i.kind === "tool" && i.toolId === payload.tool_id && payload.tool_id);
      return tool ? updateItem(next, tool.key, { text }) : addItem(next, "tool", text).view;
    }
    case EventType.APPROVAL_REQUEST:
    case EventType.CLARIFY_REQUEST:
      return showQuestion(next, type, seq, payload);
    case EventType.ERROR:
      return addItem(next, "system", `error: ${payload.message}`).view;
    case EventType.SESSION_CLOSED: {
      const closed = payload.reason || "closed";
      const added = addItem(next, "system", `session closed (${closed})`, { testid: "msg-closed" }).view;
      return {
        ...added,
        closed,
        items: added.items.map((i) => (i.kind === "assistant" && !i.done ? { ...i, done: true } : i)),
      };
    }
    default:
      return next;
  }
}

/** True while a turn of the view is streaming (the Stop button shows). */
export function isBusy(view) {
  return Boolean(view && view.items.some((i) => i.kind === "assistant" && !i.done));
}

function updateQuestion(view, requestId, patch) {
  const item = view.items.find((i) => i.kind === "question" && i.requestId === requestId);
  return item ? updateItem(view, item.key, patch) : view;
}

/** An answer to the question is on its way: its controls are disabled meanwhile. */
export function questionPending(view, requestId, pending) {
  return updateQuestion(view, requestId, { pending });
}

/** The gateway accepted the answer, shown as `shown`. */
export function questionAnswered(view, requestId, shown) {
  return updateQuestion(view, requestId, { answered: true, pending: false, state: "answered", shown });
}

/** The question was settled elsewhere (another tab, or before a refresh). */
export function questionSettled(view, requestId) {
  const item = view.items.find((i) => i.kind === "question" && i.requestId === requestId);
  if (!item || item.answered) return view;
  return updateItem(view, item.key, { answered: true, pending: false, state: "settled" });
}

/** The header line of the current session: its title (or "untitled") and a short id. */
export function headerText(sessionId, title) {
  return sessionId ? `${title || "untitled"} · ${sessionId.slice(0, 8)}` : "";
}
