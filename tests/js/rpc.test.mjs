// The chat page's JSON-RPC client against a scripted socket and manual timers.
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { ClientErrorCode, CloseCode, ErrorCode, EventType, Method, RpcError, isConnectionError } from "../../gateway_app/static/gateway_app/chat/protocol.js";
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, RpcClient, nextBackoff, resumeParams, socketUrl } from "../../gateway_app/static/gateway_app/chat/rpc.js";

/** A WebSocket double: records what was sent; the test plays the gateway's frames. */
class FakeSocket {
  static OPEN = 1;
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = FakeSocket.OPEN;
    this.sent = [];
    this.listeners = { message: [], close: [] };
    FakeSocket.instances.push(this);
  }

  addEventListener(type, listener) {
    this.listeners[type].push(listener);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  receive(message) {
    for (const listener of this.listeners.message) listener({ data: JSON.stringify(message) });
  }

  drop(code = 1006) {
    this.readyState = 3;
    for (const listener of this.listeners.close) listener({ code });
  }

  ready() {
    this.receive({ jsonrpc: "2.0", method: "event", params: { type: EventType.GATEWAY_READY, payload: { protocol: 1 } } });
  }
}

/** Timers the test fires by hand. */
function manualTimers() {
  const pending = new Map();
  let next = 1;
  return {
    pending,
    setTimeout(fn, ms) {
      pending.set(next, { fn, ms });
      return next++;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    fire(predicate = () => true) {
      for (const [id, timer] of [...pending]) {
        if (predicate(timer)) {
          pending.delete(id);
          timer.fn();
        }
      }
    },
  };
}

let timers;
let log;

function client() {
  const rpc = new RpcClient({
    url: "ws://gateway.test/api/ws",
    WebSocketImpl: FakeSocket,
    timers,
    random: () => 0.5, // no jitter
    onReady: (payload) => log.push(["ready", payload]),
    onEvent: (params) => log.push(["event", params]),
    onConnecting: (first) => log.push(["connecting", first]),
    onDown: (down) => log.push(["down", down]),
  });
  rpc.connect();
  return rpc;
}

const socket = () => FakeSocket.instances.at(-1);

beforeEach(() => {
  FakeSocket.instances = [];
  timers = manualTimers();
  log = [];
});

describe("calls", () => {
  test("a result resolves the call with the same id", async () => {
    /** Tests that answers are matched to calls by id, whatever their order. */
    const rpc = client();
    socket().ready();
    const first = rpc.call(Method.PING);
    const second = rpc.call(Method.SESSION_LIST);
    const [a, b] = socket().sent;
    assert.deepEqual(a, { jsonrpc: "2.0", id: 1, method: "gateway.ping", params: {} });
    socket().receive({ jsonrpc: "2.0", id: b.id, result: { sessions: [] } });
    socket().receive({ jsonrpc: "2.0", id: a.id, result: { pong: true } });
    assert.deepEqual(await first, { pong: true });
    assert.deepEqual(await second, { sessions: [] });
  });

  test("an error answer rejects with its code", async () => {
    /** Tests that an error response becomes an RpcError carrying the wire code and data. */
    const rpc = client();
    const call = rpc.call(Method.SESSION_RESUME, { session_id: "x" });
    socket().receive({ jsonrpc: "2.0", id: 1, error: { code: ErrorCode.UNKNOWN_SESSION, message: "unknown session", data: { a: 1 } } });
    await assert.rejects(call, (error) => error instanceof RpcError && error.code === 4001 && error.data.a === 1);
  });

  test("a call without an open socket fails as not connected", async () => {
    /** Tests that calling while the socket is down rejects at once with NOT_CONNECTED. */
    const rpc = client();
    socket().drop();
    await assert.rejects(rpc.call(Method.PING), (error) => error.code === ClientErrorCode.NOT_CONNECTED && isConnectionError(error));
  });

  test("a call that gets no answer times out", async () => {
    /** Tests that an unanswered call rejects with TIMEOUT when its timer fires. */
    const rpc = client();
    const call = rpc.call(Method.PING);
    timers.fire();
    await assert.rejects(call, (error) => error.code === ClientErrorCode.TIMEOUT && !isConnectionError(error));
  });

  test("frames that are not JSON are ignored", () => {
    /** Tests that garbage on the socket neither throws nor reaches the handlers. */
    client();
    for (const listener of socket().listeners.message) listener({ data: "not json" });
    socket().receive(null);
    assert.deepEqual(log, [["connecting", true]]);
  });
});

describe("events", () => {
  test("gateway.ready goes to onReady, session events to onEvent", () => {
    /** Tests that the first frame is handled as ready and later events are handed on. */
    client();
    socket().ready();
    const params = { type: EventType.MESSAGE_START, session_id: "s", seq: 1, payload: { turn_id: "t" } };
    socket().receive({ jsonrpc: "2.0", method: "event", params });
    assert.deepEqual(log.slice(1), [["ready", { protocol: 1 }], ["event", params]]);
  });
});

describe("reconnect", () => {
  test("a drop rejects pending calls as connection lost and reconnects after the backoff", async () => {
    /** Tests that calls in flight fail with CONNECTION_LOST and a new socket opens when the timer fires. */
    const rpc = client();
    socket().ready();
    const call = rpc.call(Method.SESSION_LIST);
    socket().drop(CloseCode.SEND_QUEUE_FULL);
    await assert.rejects(call, (error) => error.code === ClientErrorCode.CONNECTION_LOST && isConnectionError(error));
    assert.deepEqual(log.at(-1), ["down", { delay: BACKOFF_MIN_MS, failures: 0, code: 4008 }]);
    assert.equal(FakeSocket.instances.length, 1);
    timers.fire((timer) => timer.ms === BACKOFF_MIN_MS);
    assert.equal(FakeSocket.instances.length, 2);
    assert.deepEqual(log.at(-1), ["connecting", false]);
  });

  test("sockets that close before ready count as failures and back off exponentially", () => {
    /** Tests that the delay doubles up to the maximum while sockets close before gateway.ready. */
    client();
    const delays = [];
    for (let i = 0; i < 7; i++) {
      socket().drop(CloseCode.FORBIDDEN);
      const [, down] = log.at(-1);
      delays.push(down.delay);
      assert.equal(down.failures, i + 1);
      assert.equal(down.code, 4003);
      timers.fire();
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000]);
  });

  test("gateway.ready resets the backoff and the failure count", () => {
    /** Tests that a socket reaching ready makes the next drop retry at the minimum delay. */
    client();
    socket().drop();
    timers.fire();
    socket().drop();
    timers.fire();
    socket().ready();
    socket().drop();
    assert.deepEqual(log.at(-1), ["down", { delay: BACKOFF_MIN_MS, failures: 0, code: 1006 }]);
  });

  test("a service restart close of a ready socket reconnects at once", () => {
    /** Tests that a 1012 (the worker drains for a restart) after gateway.ready redials with no delay, and the backoff is kept for the drop after it. */
    client();
    socket().ready();
    socket().drop(CloseCode.SERVICE_RESTART);
    assert.deepEqual(log.at(-1), ["down", { delay: 0, failures: 0, code: 1012 }]);
    timers.fire((timer) => timer.ms === 0);
    assert.equal(FakeSocket.instances.length, 2);
    socket().drop(CloseCode.SERVICE_RESTART);
    assert.deepEqual(log.at(-1), ["down", { delay: BACKOFF_MIN_MS, failures: 1, code: 1012 }]);
  });

  test("frames of a replaced socket are ignored", () => {
    /** Tests that a late frame of the old socket does not reach the handlers after a reconnect. */
    client();
    const old = socket();
    old.drop();
    timers.fire();
    old.ready();
    assert.equal(log.filter(([kind]) => kind === "ready").length, 0);
  });

  test("the jitter stays within 20 % of the backoff", () => {
    /** Tests nextBackoff's bounds and cap. */
    assert.deepEqual(nextBackoff(1000, () => 0), { delay: 800, backoff: 2000 });
    assert.deepEqual(nextBackoff(1000, () => 1), { delay: 1200, backoff: 2000 });
    assert.equal(nextBackoff(BACKOFF_MAX_MS, () => 0.5).backoff, BACKOFF_MAX_MS);
  });
});

describe("resume and URL", () => {
  test("resume sends last_seq only when given", () => {
    /** Tests that a fresh resume omits last_seq and an incremental one sends it, 0 included. */
    assert.deepEqual(resumeParams("s", undefined), { session_id: "s" });
    assert.deepEqual(resumeParams("s", 0), { session_id: "s", last_seq: 0 });
    const rpc = client();
    rpc.resume("s", 12);
    assert.deepEqual(socket().sent[0].params, { session_id: "s", last_seq: 12 });
    assert.equal(socket().sent[0].method, "session.resume");
  });

  test("the socket URL follows the page's scheme and host", () => {
    /** Tests that https pages use wss and http pages ws, on the page's host. */
    assert.equal(socketUrl({ protocol: "https:", host: "h:8443" }, "/api/ws"), "wss://h:8443/api/ws");
    assert.equal(socketUrl({ protocol: "http:", host: "127.0.0.1:8000" }, "/api/ws"), "ws://127.0.0.1:8000/api/ws");
  });
});
