// The live page's polling loop: render on success, a failure shown in place, always again.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { pollJson } from "../../gateway_app/static/gateway_app/poll_json.js";

const realFetch = globalThis.fetch;
const realSetTimeout = globalThis.setTimeout;

afterEach(() => {
  globalThis.fetch = realFetch;
  globalThis.setTimeout = realSetTimeout;
});

/** Answers fetches from `responses` in turn; returns the URLs asked and the next poll. */
function stub(responses) {
  const asked = [];
  const scheduled = [];
  globalThis.fetch = async (url, options) => {
    asked.push([url, options.headers.Accept]);
    const { status, body } = responses.shift();
    return { ok: status === 200, status, json: async () => body };
  };
  globalThis.setTimeout = (callback, ms) => scheduled.push([callback, ms]);
  return { asked, scheduled };
}

async function settled(scheduled, count) {
  while (scheduled.length < count) await new Promise((resolve) => setImmediate(resolve));
}

test("a failed poll is shown, the next success renders and clears it", async () => {
  const { asked, scheduled } = stub([{ status: 503 }, { status: 200, body: { n: 1 } }]);
  const rendered = [];
  const errors = [];
  pollJson("/live.json", 1500, (data) => rendered.push(data), (message) => errors.push(message));
  await settled(scheduled, 1);
  assert.deepEqual(errors, ["HTTP 503"]);
  assert.deepEqual(rendered, []);
  assert.equal(scheduled[0][1], 1500);
  scheduled[0][0]();
  await settled(scheduled, 2);
  assert.deepEqual(rendered, [{ n: 1 }]);
  assert.deepEqual(errors, ["HTTP 503", null]);
  assert.deepEqual(asked, [["/live.json", "application/json"], ["/live.json", "application/json"]]);
});

test("a render that throws is shown like a failed fetch and polling goes on", async () => {
  const { scheduled } = stub([{ status: 200, body: {} }]);
  const errors = [];
  pollJson("/samples.json", 10, () => { throw new Error("bad sample"); }, (m) => errors.push(m));
  await settled(scheduled, 1);
  assert.deepEqual(errors, ["bad sample"]);
});
