// Slash-command completion of the prompt input.
import assert from "node:assert/strict";
import { test } from "node:test";

import { commonPrefix, tabComplete, wantsCompletion } from "../../gateway_app/static/gateway_app/chat/slash.js";

test("only a command name being typed asks for completions", () => {
  /** Tests that completion runs for "/sta" but not for plain text or once arguments begin. */
  assert.equal(wantsCompletion("/sta"), true);
  assert.equal(wantsCompletion("hello"), false);
  assert.equal(wantsCompletion("/status now"), false);
});

test("Tab takes the single completion and adds a space", () => {
  /** Tests that one completion is taken whole, ready for arguments. */
  assert.equal(tabComplete("/sta", ["/status"]), "/status ");
});

test("Tab extends to the common prefix of several completions", () => {
  /** Tests that several completions extend the input to what they share, never shorten it. */
  assert.equal(tabComplete("/h", ["/help", "/history"]), "/h");
  assert.equal(tabComplete("/s", ["/status", "/stats"]), "/stat");
  assert.equal(commonPrefix([]), "");
});
