// The page's JSON-RPC client over /api/ws: one socket at a time, calls matched to answers by
// id, events handed on, and a reconnect with jittered backoff whenever the socket closes.

import { ClientErrorCode, CloseCode, EventType, JSONRPC, Method, RpcError } from "./protocol.js";

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 15000;
export const CALL_TIMEOUT_MS = 30000;

/** The delay before the next reconnect (jittered by ±20 %) and the backoff after it. */
export function nextBackoff(backoff, random = Math.random) {
  return {
    delay: Math.round(backoff * (0.8 + random() * 0.4)),
    backoff: Math.min(backoff * 2, BACKOFF_MAX_MS),
  };
}

/** The WebSocket URL for a path on the page's own host, ws: or wss: like the page. */
export function socketUrl(location, path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/** The `session.resume` params: `last_seq` only when resuming a view the page already shows. */
export function resumeParams(sessionId, lastSeq) {
  const params = { session_id: sessionId };
  if (typeof lastSeq === "number") params.last_seq = lastSeq;
  return params;
}

export class RpcClient {
  /**
   * @param {object} options
   * @param {string} options.url
   * @param {(payload: object) => void} options.onReady the gateway.ready frame of a socket
   * @param {(params: object) => void} options.onEvent every other event frame
   * @param {(first: boolean) => void} [options.onConnecting]
   * @param {(down: {delay: number, failures: number, code: number}) => void} [options.onDown]
   * @param {typeof WebSocket} [options.WebSocketImpl]
   * @param {{setTimeout: Function, clearTimeout: Function}} [options.timers]
   * @param {() => number} [options.random]
   */
  constructor({ url, onReady, onEvent, onConnecting = () => {}, onDown = () => {}, WebSocketImpl, timers, random }) {
    this.url = url;
    this.onReady = onReady;
    this.onEvent = onEvent;
    this.onConnecting = onConnecting;
    this.onDown = onDown;
    this.WebSocketImpl = WebSocketImpl || globalThis.WebSocket;
    this.timers = timers || { setTimeout: globalThis.setTimeout.bind(globalThis), clearTimeout: globalThis.clearTimeout.bind(globalThis) };
    this.random = random || Math.random;
    this.ws = null;
    this.ready = false;
    this.nextId = 1;
    this.calls = new Map();
    this.backoff = BACKOFF_MIN_MS;
    this.failures = 0; // consecutive sockets that closed before gateway.ready
    this.firstConnection = true;
  }

  /** Open a socket; a closed one is replaced after the backoff, for as long as the page lives. */
  connect() {
    this.onConnecting(this.firstConnection);
    const ws = new this.WebSocketImpl(this.url);
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      if (ws === this.ws) this.onFrame(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (ws === this.ws) this.onClose(event.code);
    });
  }

  onClose(code) {
    // A worker draining for a restart (1012) closes a working socket: the next one lands on
    // another worker, so it opens at once; a socket that never got ready backs off as usual.
    const restart = code === CloseCode.SERVICE_RESTART && this.ready;
    if (!this.ready) this.failures += 1;
    this.ws = null;
    this.ready = false;
    for (const { reject, timer } of this.calls.values()) {
      this.timers.clearTimeout(timer);
      reject(new RpcError(ClientErrorCode.CONNECTION_LOST, "connection lost"));
    }
    this.calls.clear();
    const next = nextBackoff(this.backoff, this.random);
    const delay = restart ? 0 : next.delay;
    if (!restart) this.backoff = next.backoff;
    this.onDown({ delay, failures: this.failures, code });
    this.timers.setTimeout(() => this.connect(), delay);
  }

  onFrame(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    if (message.method === Method.EVENT) {
      const params = message.params || {};
      if (params.type === EventType.GATEWAY_READY) {
        this.ready = true;
        this.failures = 0;
        this.backoff = BACKOFF_MIN_MS;
        this.firstConnection = false;
        this.onReady(params.payload || {});
      } else {
        this.onEvent(params);
      }
      return;
    }
    const pending = this.calls.get(message.id);
    if (!pending) return;
    this.calls.delete(message.id);
    this.timers.clearTimeout(pending.timer);
    if ("error" in message) {
      const error = message.error || {};
      pending.reject(new RpcError(error.code, error.message, error.data));
    } else {
      pending.resolve(message.result);
    }
  }

  /** Call a method; rejects with an RpcError whose `code` says why. */
  call(method, params = {}) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== this.WebSocketImpl.OPEN) {
        reject(new RpcError(ClientErrorCode.NOT_CONNECTED, "not connected"));
        return;
      }
      const id = this.nextId++;
      const timer = this.timers.setTimeout(() => {
        this.calls.delete(id);
        reject(new RpcError(ClientErrorCode.TIMEOUT, `${method} timed out`));
      }, CALL_TIMEOUT_MS);
      this.calls.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ jsonrpc: JSONRPC, id, method, params }));
    });
  }

  /** Attach to a session; `lastSeq` (a number) asks only for the events after it. */
  resume(sessionId, lastSeq) {
    return this.call(Method.SESSION_RESUME, resumeParams(sessionId, lastSeq));
  }

  /** The page of the session's transcript before message id `before` (beyond v1). */
  history(sessionId, before) {
    return this.call(Method.SESSION_HISTORY, { session_id: sessionId, before });
  }
}
