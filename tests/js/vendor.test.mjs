// The vendored browser builds are exactly the installed (package-lock) versions.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { VENDORED, installedVersion, staleFiles } from "../../scripts/vendor_js.mjs";

test("vendored libraries match the installed packages byte for byte", () => {
  /** Tests that every vendored file (and VERSIONS) equals node_modules: rerun scripts/vendor_js.mjs after an upgrade. */
  assert.deepEqual(staleFiles(), []);
});

test("the installed packages are the versions package.json pins", () => {
  /** Tests that package.json names each vendored package with its exact installed version. */
  const pinned = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).devDependencies;
  for (const { name } of VENDORED) assert.equal(pinned[name], installedVersion(name), name);
});
