// The sidebar's session listing: pages of `session.list` in, one deduplicated list out.
// Pure functions over a plain object, like state.js, so node tests cover them.

/** A listing before the first page: no rows, nothing more to load yet. */
export function emptyListing() {
  return { sessions: [], nextCursor: null, loading: false };
}

function merge(front, back) {
  const seen = new Set(front.map((s) => s.session_id));
  return [...front, ...back.filter((s) => !seen.has(s.session_id))];
}

/**
 * The listing after a fresh first page. Rows loaded by earlier "more" pages stay after it
 * (with the cursor that continues them); a v1 server's answer (no next_cursor) is the whole list.
 */
export function firstPage(listing, result) {
  const page = result.sessions || [];
  const nextCursor = result.next_cursor ?? null;
  if (nextCursor !== null && listing.extended) {
    return { ...listing, sessions: merge(page, listing.sessions), loading: false };
  }
  return { sessions: page, nextCursor, loading: false, extended: false };
}

/** The params for the next page, or null when there is none or one is on its way. */
export function moreParams(listing) {
  if (!listing.nextCursor || listing.loading) return null;
  return { cursor: listing.nextCursor };
}

/** The listing while the next page is being fetched (a second request is not sent). */
export function loadingMore(listing) {
  return { ...listing, loading: true };
}

/** The listing with the next page appended (rows already shown are not repeated). */
export function morePage(listing, result) {
  return {
    sessions: merge(listing.sessions, result.sessions || []),
    nextCursor: result.next_cursor ?? null,
    loading: false,
    extended: true,
  };
}

/** The listing after the next page failed: the same rows, loadable again. */
export function moreFailed(listing) {
  return { ...listing, loading: false };
}
