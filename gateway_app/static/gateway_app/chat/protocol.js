// The wire vocabulary of PROTOCOL.md (and the README's "Beyond PROTOCOL.md v1"), named once so
// no other module spells a bare code, method or event type.

export const JSONRPC = "2.0";

/** JSON-RPC error codes the gateway answers with. */
export const ErrorCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  UNKNOWN_SESSION: 4001,
  SESSION_BUSY: 4009,
  TOO_LARGE: 4013,
  RATE_LIMITED: 4029,
});

/** WebSocket close codes the gateway closes with. */
export const CloseCode = Object.freeze({
  FRAME_TOO_LARGE: 1009,
  SERVICE_RESTART: 1012,
  FORBIDDEN: 4003,
  SEND_QUEUE_FULL: 4008,
  MESSAGE_TOO_LARGE: 4013,
  TOO_MANY_CONNECTIONS: 4029,
});

/** Client-side failures of a call that never got an answer (strings: never a wire code). */
export const ClientErrorCode = Object.freeze({
  NOT_CONNECTED: "not-connected",
  CONNECTION_LOST: "connection-lost",
  TIMEOUT: "timeout",
});

export const Method = Object.freeze({
  EVENT: "event",
  PING: "gateway.ping",
  SESSION_CREATE: "session.create",
  SESSION_LIST: "session.list",
  SESSION_RESUME: "session.resume",
  // Beyond PROTOCOL.md v1: older transcript messages, a page at a time.
  SESSION_HISTORY: "session.history",
  SESSION_CLOSE: "session.close",
  SESSION_INTERRUPT: "session.interrupt",
  PROMPT_SUBMIT: "prompt.submit",
  APPROVAL_RESPOND: "approval.respond",
  CLARIFY_RESPOND: "clarify.respond",
  SLASH_EXEC: "slash.exec",
  COMMANDS_CATALOG: "commands.catalog",
  COMPLETE_SLASH: "complete.slash",
});

export const EventType = Object.freeze({
  GATEWAY_READY: "gateway.ready",
  // Beyond PROTOCOL.md v1: the prompt of a turn, to every attached connection.
  MESSAGE_USER: "message.user",
  MESSAGE_START: "message.start",
  MESSAGE_DELTA: "message.delta",
  MESSAGE_COMPLETE: "message.complete",
  TOOL_START: "tool.start",
  TOOL_COMPLETE: "tool.complete",
  APPROVAL_REQUEST: "approval.request",
  CLARIFY_REQUEST: "clarify.request",
  ERROR: "error",
  SESSION_CLOSED: "session.closed",
});

/** Session statuses of `session.list` and `session.resume`. */
export const SessionStatus = Object.freeze({
  LIVE: "live",
  RUNNING: "running",
  DETACHED: "detached",
  CLOSED: "closed",
});

/** The choices of `approval.respond`. */
export const ApprovalChoice = Object.freeze({
  ONCE: "once",
  SESSION: "session",
  DENY: "deny",
});

/** An error answer of the gateway, or a call that failed on this side; `code` classifies it. */
export class RpcError extends Error {
  /**
   * @param {number|string} code a wire ErrorCode, or a ClientErrorCode
   * @param {string} message
   * @param {unknown} [data]
   */
  constructor(code, message, data) {
    super(message || "error");
    this.name = "RpcError";
    this.code = code;
    this.data = data;
  }
}

/** True when the call failed because the socket went away, not because the gateway refused it. */
export function isConnectionError(error) {
  return (
    error instanceof RpcError &&
    (error.code === ClientErrorCode.NOT_CONNECTED || error.code === ClientErrorCode.CONNECTION_LOST)
  );
}
