// The chat page's state reducer: resume responses and events in, a view out.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { EventType, SessionStatus } from "../../gateway_app/static/gateway_app/chat/protocol.js";
import {
  addItem,
  addPrompt,
  applyEvent,
  applyResume,
  createView,
  headerText,
  isBusy,
  olderLoaded,
  olderPending,
  promptAccepted,
  promptFailed,
  questionAnswered,
  questionPending,
  questionSettled,
  resumeKind,
  resumePlan,
} from "../../gateway_app/static/gateway_app/chat/state.js";

const SID = "9401f6f2aaaabbbbccccddddeeeeffff";

function event(type, seq, payload = {}) {
  return { type, session_id: SID, seq, payload };
}

function applyAll(view, events) {
  return events.reduce(applyEvent, view);
}

/** (kind, text) of every item, what a person reads. */
function shown(view) {
  return view.items.map((i) => [i.kind, i.text]);
}

function turn(turnId, firstSeq, words) {
  const events = [event(EventType.MESSAGE_START, firstSeq, { turn_id: turnId })];
  words.forEach((word, i) => events.push(event(EventType.MESSAGE_DELTA, firstSeq + 1 + i, { turn_id: turnId, text: word })));
  events.push(event(EventType.MESSAGE_COMPLETE, firstSeq + 1 + words.length, { turn_id: turnId, text: words.join(""), interrupted: false }));
  return events;
}

function idle(messages, lastSeq, extra = {}) {
  return { session_id: SID, status: SessionStatus.LIVE, messages, last_seq: lastSeq, gap: false, omitted: 0, ...extra };
}

/** A view as a live page holds it: created, one finished turn applied (seqs 1..4). */
function liveView() {
  const view = createView(SID, { loaded: true });
  const prompted = addItem(view, "user", "hello world").view;
  return applyAll(prompted, turn("t1", 1, ["hello ", "world"]));
}

describe("resume plan", () => {
  test("a page load resumes afresh, without last_seq", () => {
    /** Tests that a view the page has not shown yet is resumed without last_seq. */
    assert.deepEqual(resumePlan(createView(SID)), { incremental: false, lastSeq: undefined });
    assert.deepEqual(resumePlan(undefined), { incremental: false, lastSeq: undefined });
  });

  test("a reconnect resumes from the last seq applied", () => {
    /** Tests that a loaded view is resumed with the seq of the last event it applied. */
    assert.deepEqual(resumePlan(liveView()), { incremental: true, lastSeq: 4 });
  });

  test("resume kinds name fresh, incremental and gap", () => {
    /** Tests that data-last-resume tells the three resumes apart. */
    assert.equal(resumeKind(false, idle([], 3)), "fresh");
    assert.equal(resumeKind(true, idle([], 3)), "incremental");
    assert.equal(resumeKind(true, idle([], 3, { gap: true })), "gap");
  });
});

describe("fresh resume", () => {
  test("shows the stored transcript and drops events it already holds", () => {
    /** Tests that after a fresh resume of an idle session, replayed events up to last_seq are not shown again. */
    const result = idle([{ role: "user", content: "hi" }, { role: "assistant", content: "hi" }], 4);
    const view = applyResume(createView(SID), result, { incremental: false });
    assert.equal(view.loaded, true);
    assert.equal(view.lastSeq, 4);
    const after = applyAll(view, turn("t1", 1, ["hi"]));
    assert.equal(after, view);
    assert.deepEqual(shown(after), [["user", "hi"], ["assistant", "hi"]]);
  });

  test("while a turn runs, the replay from message.start builds that turn once", () => {
    /** Tests that a fresh resume of a running session accepts the replayed running turn and shows it once. */
    const result = {
      ...idle([{ role: "user", content: "old" }, { role: "assistant", content: "old" }, { role: "user", content: "!tool ls" }, { role: "tool", content: "partial" }], 9),
      status: SessionStatus.RUNNING,
    };
    const view = applyResume(createView(SID), result, { incremental: false });
    // The running turn's tool output is replayed as events, so the stored copy is left out.
    assert.deepEqual(shown(view), [["user", "old"], ["assistant", "old"], ["user", "!tool ls"]]);
    assert.equal(view.lastSeq, 0);
    assert.equal(isBusy(view), false);
    const replayed = [
      event(EventType.MESSAGE_START, 6, { turn_id: "t2" }),
      event(EventType.TOOL_START, 7, { turn_id: "t2", tool_id: "x", name: "terminal", args: { command: "ls" } }),
      event(EventType.TOOL_COMPLETE, 8, { turn_id: "t2", tool_id: "x", result: "partial" }),
      event(EventType.MESSAGE_DELTA, 9, { turn_id: "t2", text: "ran" }),
    ];
    const running = applyAll(view, replayed);
    assert.equal(isBusy(running), true);
    // The live events that follow continue the same turn; a repeat of a replayed one is dropped.
    const live = applyAll(running, [replayed[3], event(EventType.MESSAGE_DELTA, 10, { turn_id: "t2", text: " ls" })]);
    assert.deepEqual(shown(live).slice(3), [["assistant", "ran ls"], ["tool", "partial"]]);
    const done = applyEvent(live, event(EventType.MESSAGE_COMPLETE, 11, { turn_id: "t2", text: "ran ls" }));
    assert.equal(isBusy(done), false);
    assert.equal(done.items.filter((i) => i.kind === "assistant").length, 2);
  });

  test("a running turn whose start fell out of the buffer shows its text so far, then continues", () => {
    /** Tests that `running_turn` plus the replayed and live deltas show every word once, in order. */
    const words = Array.from({ length: 12 }, (_, i) => `w${i} `);
    const result = {
      ...idle([{ role: "user", content: "long" }], 14),
      status: SessionStatus.RUNNING,
      running_turn: { turn_id: "t2", text: words.slice(0, 8).join(""), seq: 10 },
    };
    let view = applyResume(createView(SID), result, { incremental: false });
    assert.deepEqual(shown(view), [["user", "long"], ["assistant", words.slice(0, 8).join("")]]);
    assert.equal(isBusy(view), true);
    // Replayed deltas (seq 11..14), then live ones; every moment shows a prefix of the reply.
    for (let i = 8; i < 12; i += 1) {
      view = applyEvent(view, event(EventType.MESSAGE_DELTA, i + 3, { turn_id: "t2", text: words[i] }));
      assert.deepEqual(shown(view)[1], ["assistant", words.slice(0, i + 1).join("")]);
    }
    view = applyEvent(view, event(EventType.MESSAGE_COMPLETE, 15, { turn_id: "t2", text: words.join(""), interrupted: false }));
    assert.deepEqual(shown(view), [["user", "long"], ["assistant", words.join("")]]);
    assert.equal(isBusy(view), false);
  });

  test("on a gap a running turn whose start fell out is shown from its text so far", () => {
    /** Tests that an incremental resume with gap and `running_turn` redraws the turn's reply so far. */
    const result = {
      ...idle([{ role: "user", content: "hello world" }, { role: "assistant", content: "hello world" }, { role: "user", content: "go" }], 40, { gap: true }),
      status: SessionStatus.RUNNING,
      running_turn: { turn_id: "t2", text: "a b c ", seq: 38 },
    };
    const view = applyResume(liveView(), result, { incremental: true });
    const next = applyAll(view, [
      event(EventType.MESSAGE_DELTA, 39, { turn_id: "t2", text: "d " }),
      event(EventType.MESSAGE_DELTA, 40, { turn_id: "t2", text: "e" }),
    ]);
    assert.deepEqual(shown(next).at(-1), ["assistant", "a b c d e"]);
  });

  test("offers the omitted older messages as a load-older control", () => {
    /** Tests that `omitted` is shown as a control before the transcript, paging from the
     * id of the oldest message the response holds. */
    const view = applyResume(createView(SID), idle([{ id: 40, role: "user", content: "hi" }], 2, { omitted: 3 }), { incremental: false });
    assert.deepEqual(shown(view)[0], ["older", "3 older message(s) not shown"]);
    assert.equal(view.items[0].before, 40);
  });

  test("offers no load-older control when nothing was omitted", () => {
    /** Tests that a whole transcript has no control. */
    const view = applyResume(createView(SID), idle([{ id: 40, role: "user", content: "hi" }], 2), { incremental: false });
    assert.equal(view.items.some((i) => i.kind === "older"), false);
  });

  test("marks a message the gateway cut", () => {
    /** Tests that a truncated message is shown with data-state truncated. */
    const messages = [{ id: 1, role: "assistant", content: "long…", truncated: true }];
    const view = applyResume(createView(SID), idle(messages, 2), { incremental: false });
    assert.equal(view.items[0].state, "truncated");
  });

  test("takes the title from the response", () => {
    /** Tests that the resume response's title is kept for the header. */
    const view = applyResume(createView(SID), idle([], 0, { title: "first chat" }), { incremental: false });
    assert.equal(view.title, "first chat");
  });
});

describe("incremental resume after a reconnect", () => {
  test("keeps the transcript and applies only the events after last_seq", () => {
    /** Tests that replayed events after a reconnect are applied once and earlier ones are dropped by seq. */
    const before = liveView();
    const resumed = applyResume(before, idle([{ role: "user", content: "ignored" }], 4), { incremental: true });
    assert.deepEqual(shown(resumed), shown(before));
    const midTurn = [...turn("t1", 1, ["hello ", "world"]), ...turn("t2", 5, ["more ", "text"]).slice(0, 2)];
    const replayed = applyAll(resumed, midTurn);
    // Replaying the same events again (a second drop) changes nothing.
    assert.equal(applyAll(replayed, midTurn), replayed);
    assert.deepEqual(shown(replayed), [["user", "hello world"], ["assistant", "hello world"], ["assistant", "more "]]);
    assert.equal(replayed.lastSeq, 6);
    assert.equal(isBusy(replayed), true);
  });

  test("on a gap the transcript is redrawn from the response", () => {
    /** Tests that `gap: true` replaces the items by the response's messages and resumes from its last_seq. */
    const before = liveView();
    const result = idle([{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "user", content: "c" }, { role: "assistant", content: "d" }], 1200, { gap: true });
    const resumed = applyResume(before, result, { incremental: true });
    assert.deepEqual(shown(resumed), [["user", "a"], ["assistant", "b"], ["user", "c"], ["assistant", "d"]]);
    assert.equal(resumed.lastSeq, 1200);
    assert.equal(applyEvent(resumed, event(EventType.MESSAGE_DELTA, 1200, { turn_id: "t9", text: "x" })), resumed);
    assert.equal(applyEvent(resumed, event(EventType.MESSAGE_START, 1201, { turn_id: "t9" })).items.length, 5);
  });

  test("a seq that jumps ahead (a revived host) is accepted", () => {
    /** Tests that seq may jump: a much higher seq is applied and becomes the last seq. */
    const view = applyEvent(liveView(), event(EventType.MESSAGE_START, 1004, { turn_id: "t3" }));
    assert.equal(view.lastSeq, 1004);
    assert.equal(isBusy(view), true);
  });
});

describe("approval and clarify requests", () => {
  const approval = { request_id: "r1", tool: "terminal", description: "echo hi" };

  test("a re-sent approval request is shown once", () => {
    /** Tests that an approval request re-sent with an old seq after a resume does not duplicate the question. */
    const asked = applyEvent(liveView(), event(EventType.APPROVAL_REQUEST, 5, approval));
    const again = applyEvent(asked, event(EventType.APPROVAL_REQUEST, 5, approval));
    assert.equal(again, asked);
    const questions = again.items.filter((i) => i.kind === "question");
    assert.equal(questions.length, 1);
    assert.equal(questions[0].text, "terminal wants to run: echo hi");
    assert.equal(questions[0].testid, "approval");
  });

  test("an unanswered request re-sent below last_seq is shown when the view lacks it", () => {
    /** Tests that a re-sent approval/clarify request is shown even though its seq is not new. */
    const view = applyResume(createView(SID), idle([{ role: "user", content: "!clarify colour?" }], 7), { incremental: false });
    const asked = applyEvent(view, event(EventType.CLARIFY_REQUEST, 6, { request_id: "r2", question: "colour?" }));
    assert.deepEqual(shown(asked).at(-1), ["question", "colour?"]);
    assert.equal(asked.items.at(-1).testid, "clarify");
    assert.equal(asked.lastSeq, 7);
  });

  test("a later event settles a question left unanswered", () => {
    /** Tests that an event after a question's seq marks it settled (answered elsewhere). */
    const asked = applyEvent(liveView(), event(EventType.APPROVAL_REQUEST, 5, approval));
    const later = applyEvent(asked, event(EventType.TOOL_START, 6, { tool_id: "x", name: "terminal", args: {} }));
    const question = later.items.find((i) => i.kind === "question");
    assert.equal(question.answered, true);
    assert.equal(question.state, "settled");
  });

  test("answering goes pending, then answered with what was chosen", () => {
    /** Tests the question's answer lifecycle: pending disables it, answered records the choice. */
    const asked = applyEvent(liveView(), event(EventType.APPROVAL_REQUEST, 5, approval));
    const pending = questionPending(asked, "r1", true);
    assert.equal(pending.items.at(-1).pending, true);
    const answered = questionAnswered(pending, "r1", "Allow once");
    assert.deepEqual(
      { state: answered.items.at(-1).state, shown: answered.items.at(-1).shown, pending: answered.items.at(-1).pending },
      { state: "answered", shown: "Allow once", pending: false },
    );
    // Settling an answered question keeps what it shows.
    assert.equal(questionSettled(answered, "r1"), answered);
  });
});

describe("events", () => {
  test("events before the resume answered are ignored", () => {
    /** Tests that a view not loaded yet applies no event: the resume response brings the state. */
    const view = createView(SID);
    assert.equal(applyEvent(view, event(EventType.MESSAGE_START, 1, { turn_id: "t1" })), view);
  });

  test("message.complete text is authoritative and marks interruption", () => {
    /** Tests that the complete event's text replaces the deltas and `interrupted` sets the state. */
    const view = applyAll(createView(SID, { loaded: true }), [
      event(EventType.MESSAGE_START, 1, { turn_id: "t1" }),
      event(EventType.MESSAGE_DELTA, 2, { turn_id: "t1", text: "partial te" }),
      event(EventType.MESSAGE_COMPLETE, 3, { turn_id: "t1", text: "partial", interrupted: true }),
    ]);
    assert.deepEqual(shown(view), [["assistant", "partial"]]);
    assert.equal(view.items[0].state, "interrupted");
  });

  test("tool.complete fills in its tool.start line", () => {
    /** Tests that a tool's result replaces its start line, matched by tool_id. */
    const view = applyAll(createView(SID, { loaded: true }), [
      event(EventType.TOOL_START, 1, { tool_id: "x", name: "terminal", args: { command: "ls" } }),
      event(EventType.TOOL_COMPLETE, 2, { tool_id: "x", result: { files: 2 } }),
    ]);
    assert.deepEqual(shown(view), [["tool", '{"files":2}']]);
  });

  test("session.closed ends the running turn and says why", () => {
    /** Tests that a closed session shows its reason and is no longer busy. */
    const running = applyEvent(liveView(), event(EventType.MESSAGE_START, 5, { turn_id: "t2" }));
    const closed = applyEvent(running, event(EventType.SESSION_CLOSED, 6, { reason: "reaped" }));
    assert.equal(isBusy(closed), false);
    assert.equal(closed.closed, "reaped");
    assert.deepEqual(shown(closed).at(-1), ["system", "session closed (reaped)"]);
    assert.equal(closed.items.at(-1).testid, "msg-closed");
  });

  test("an error event is a gateway line", () => {
    /** Tests that an error event is shown as a system line with its message. */
    const view = applyEvent(liveView(), event(EventType.ERROR, 5, { message: "model timed out" }));
    assert.deepEqual(shown(view).at(-1), ["system", "error: model timed out"]);
  });

  test("an item's update leaves the other items' objects as they were", () => {
    /** Tests that updates replace only the changed item, which the renderer relies on. */
    const view = applyEvent(liveView(), event(EventType.MESSAGE_START, 5, { turn_id: "t2" }));
    const next = applyEvent(view, event(EventType.MESSAGE_DELTA, 6, { turn_id: "t2", text: "x" }));
    assert.equal(next.items[0], view.items[0]);
    assert.notEqual(next.items.at(-1), view.items.at(-1));
    assert.equal(next.items.at(-1).key, view.items.at(-1).key);
  });
});

describe("header", () => {
  test("shows the title and a short id", () => {
    /** Tests that the header reads "<title> · <first 8 of the id>", "untitled" without a title. */
    assert.equal(headerText(SID, "first chat"), "first chat · 9401f6f2");
    assert.equal(headerText(SID, ""), "untitled · 9401f6f2");
    assert.equal(headerText(null, "x"), "");
  });
});

describe("prompts of every tab (message.user)", () => {
  const userEvent = (seq, turnId, text) => event(EventType.MESSAGE_USER, seq, { turn_id: turnId, text });

  test("a prompt sent by another tab is shown before its reply", () => {
    /** Tests that message.user adds the prompt, with its turn id, ahead of the assistant reply. */
    const view = applyAll(createView(SID, { loaded: true }), [userEvent(1, "t1", "from elsewhere"), ...turn("t1", 2, ["hi"])]);
    assert.deepEqual(shown(view), [
      ["user", "from elsewhere"],
      ["assistant", "hi"],
    ]);
    assert.equal(view.items[0].turnId, "t1");
  });

  test("the tab's own prompt is shown once when message.user comes before the answer", () => {
    /** Tests that message.user claims the tab's optimistic echo of the same text. */
    const sending = addPrompt(createView(SID, { loaded: true }), "mine");
    let view = applyEvent(sending.view, userEvent(1, "t1", "mine"));
    assert.equal(view.items[0].state, undefined); // its turn exists: no longer "sending"
    view = promptAccepted(view, sending.key, "t1");
    assert.deepEqual(shown(view), [["user", "mine"]]);
    assert.equal(view.items[0].turnId, "t1");
    assert.equal(view.items[0].state, undefined);
  });

  test("the tab's own prompt is shown once when the answer comes before message.user", () => {
    /** Tests that a prompt already accepted with a turn id ignores its message.user. */
    const sending = addPrompt(createView(SID, { loaded: true }), "mine");
    const accepted = promptAccepted(sending.view, sending.key, "t1");
    assert.equal(applyEvent(accepted, userEvent(1, "t1", "mine")).items.length, 1);
  });

  test("a replayed message.user of a prompt shown already changes nothing", () => {
    /** Tests that dedupe is by turn id: the same event twice shows one prompt. */
    const once = applyEvent(createView(SID, { loaded: true }), userEvent(1, "t1", "x"));
    const again = applyEvent({ ...once, lastSeq: 0 }, userEvent(1, "t1", "x"));
    assert.deepEqual(shown(again), [["user", "x"]]);
  });

  test("another tab's identical prompt does not claim an echo already accepted", () => {
    /** Tests that only an echo still being sent can be claimed by text. */
    const sending = addPrompt(createView(SID, { loaded: true }), "same");
    const accepted = promptAccepted(sending.view, sending.key, "t1");
    const view = applyEvent(accepted, userEvent(5, "t2", "same"));
    assert.deepEqual(shown(view), [
      ["user", "same"],
      ["user", "same"],
    ]);
    assert.deepEqual(
      view.items.map((i) => i.turnId),
      ["t1", "t2"],
    );
  });

  test("a refused prompt is marked failed unless another tab's turn claimed it", () => {
    /** Tests that a refused submit marks the echo failed, but keeps a claimed one as it is. */
    const sending = addPrompt(createView(SID, { loaded: true }), "x");
    assert.equal(promptFailed(sending.view, sending.key).items[0].state, "failed");
    const claimed = applyEvent(sending.view, userEvent(1, "t9", "x"));
    assert.deepEqual(promptFailed(claimed, sending.key), claimed);
  });
});

describe("loading older messages", () => {
  function omittedView(omitted) {
    const messages = [{ id: 50, role: "user", content: "new" }];
    return applyResume(createView(SID), idle(messages, 2, { omitted }), { incremental: false });
  }

  test("puts a page of older messages before the transcript, below the control", () => {
    /** Tests that a session.history page is shown oldest first, before what was shown, and
     * the control now pages from the page's next_before with the count left. */
    const view = omittedView(5);
    const page = {
      messages: [
        { id: 48, role: "user", content: "q" },
        { id: 49, role: "assistant", content: "a" },
      ],
      has_more: true,
      next_before: 48,
    };
    const next = olderLoaded(view, view.items[0].key, page);
    assert.deepEqual(shown(next), [
      ["older", "3 older message(s) not shown"],
      ["user", "q"],
      ["assistant", "a"],
      ["user", "new"],
    ]);
    assert.equal(next.items[0].before, 48);
    assert.equal(next.items[0].pending, false);
  });

  test("drops the control once the first message is shown", () => {
    /** Tests that a last page (has_more false) removes the control. */
    const view = omittedView(1);
    const page = { messages: [{ id: 49, role: "user", content: "first" }], has_more: false, next_before: null };
    const next = olderLoaded(view, view.items[0].key, page);
    assert.deepEqual(shown(next), [
      ["user", "first"],
      ["user", "new"],
    ]);
  });

  test("a pending load disables the control", () => {
    /** Tests that olderPending marks the control while its page is on its way. */
    const view = omittedView(2);
    assert.equal(olderPending(view, view.items[0].key, true).items[0].pending, true);
  });
});
