// The sidebar's paged session listing: first page, "more" pages, refreshes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  emptyListing,
  firstPage,
  loadingMore,
  moreFailed,
  moreParams,
  morePage,
} from "../../gateway_app/static/gateway_app/chat/listing.js";

const row = (id) => ({ session_id: id, title: id, status: "closed", messages: 0 });
const ids = (listing) => listing.sessions.map((s) => s.session_id);

describe("session listing", () => {
  test("the first page shows its rows and offers the next", () => {
    const listing = firstPage(emptyListing(), { sessions: [row("c"), row("b")], next_cursor: "k1" });
    assert.deepEqual(ids(listing), ["c", "b"]);
    assert.deepEqual(moreParams(listing), { cursor: "k1" });
  });

  test("a v1 answer without next_cursor is the whole list, nothing more to load", () => {
    const listing = firstPage(emptyListing(), { sessions: [row("a")] });
    assert.equal(moreParams(listing), null);
  });

  test("more appends the next page and takes its cursor", () => {
    let listing = firstPage(emptyListing(), { sessions: [row("c"), row("b")], next_cursor: "k1" });
    listing = morePage(loadingMore(listing), { sessions: [row("a")], next_cursor: null });
    assert.deepEqual(ids(listing), ["c", "b", "a"]);
    assert.equal(moreParams(listing), null);
  });

  test("a page on its way is not asked for twice", () => {
    const listing = loadingMore(firstPage(emptyListing(), { sessions: [row("b")], next_cursor: "k1" }));
    assert.equal(moreParams(listing), null);
  });

  test("a failed page can be asked for again", () => {
    const listing = moreFailed(loadingMore(firstPage(emptyListing(), { sessions: [row("b")], next_cursor: "k1" })));
    assert.deepEqual(moreParams(listing), { cursor: "k1" });
  });

  test("a row already shown is not repeated by the next page", () => {
    let listing = firstPage(emptyListing(), { sessions: [row("c"), row("b")], next_cursor: "k1" });
    listing = morePage(listing, { sessions: [row("b"), row("a")], next_cursor: null });
    assert.deepEqual(ids(listing), ["c", "b", "a"]);
  });

  test("a refresh after more pages keeps the loaded rows and their cursor", () => {
    let listing = firstPage(emptyListing(), { sessions: [row("c"), row("b")], next_cursor: "k1" });
    listing = morePage(listing, { sessions: [row("a")], next_cursor: "k2" });
    listing = firstPage(listing, { sessions: [row("d"), row("c")], next_cursor: "k3" });
    assert.deepEqual(ids(listing), ["d", "c", "b", "a"]);
    assert.deepEqual(moreParams(listing), { cursor: "k2" });
  });

  test("a refresh of a single-page listing replaces it", () => {
    let listing = firstPage(emptyListing(), { sessions: [row("b"), row("a")], next_cursor: null });
    listing = firstPage(listing, { sessions: [row("a")], next_cursor: null });
    assert.deepEqual(ids(listing), ["a"]);
  });
});
