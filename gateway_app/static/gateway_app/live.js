// The admin's live gateway page: polls the JSON endpoint and fills in the numbers.

import { pollJson } from "./poll_json.js";

const POLL_MS = 1500;
const root = document.querySelector(".live-gateway");
const $ = (id) => root.querySelector(`[data-testid="${id}"]`);

function setText(id, value) {
  $(id).textContent = String(value);
}

function fillRows(id, rows) {
  const body = $(id);
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = document.createElement("td");
        if (cell instanceof Node) td.append(cell);
        else td.textContent = String(cell);
        tr.append(td);
      }
      return tr;
    }),
  );
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 3;
    td.className = "live-empty";
    td.textContent = "none";
    tr.append(td);
    body.append(tr);
  }
}

function sessionLink(id) {
  const a = document.createElement("a");
  a.href = `${root.dataset.changelistUrl}${id}/change/`;
  a.textContent = id.slice(0, 12) + "…";
  return a;
}

function render(data) {
  const host = data.host;
  setText("live-worker", host.worker);
  setText("live-connections", host.connections);
  setText("live-sessions", host.sessions);
  setText("live-running", host.running_turns);
  setText("live-questions", host.pending_questions);
  setText("live-reaps", host.pending_reaps.length);
  setText("live-slash", host.slash_workers);
  fillRows("live-by-status", Object.entries(host.by_status));
  fillRows(
    "live-reap-list",
    host.pending_reaps.map((r) => [
      sessionLink(r.session_id),
      r.due_at ? new Date(r.due_at * 1000).toLocaleTimeString() : "-",
      r.due_in_s == null ? "-" : `${r.due_in_s} s`,
    ]),
  );
  setText("live-slash-pids", data.slash_worker_pids.length ? data.slash_worker_pids.join(", ") : "none");
  fillRows("live-counters", Object.entries(host.counters).sort());
  fillRows(
    "live-other-workers",
    (data.other_workers || []).map((w) => [
      w.worker, w.connections, w.sessions, w.running_turns, w.pending_reaps.length, w.slash_workers,
    ]),
  );
  fillRows("live-db-status", Object.entries(data.db.sessions_by_status).sort());
  fillRows(
    "live-db-workers",
    Object.entries(data.db.open_sessions_by_worker).map(([w, v]) => [
      w, v.sessions, v.attached, v.running ? "running" : "not running (rows left behind)",
    ]),
  );
  setText("live-db-tokens", data.db.active_tokens);
  setText("live-updated", new Date(data.time).toLocaleTimeString());
  root.dataset.polls = String(Number(root.dataset.polls || 0) + 1);
}

pollJson(root.dataset.jsonUrl, POLL_MS, render, (message) => {
  const error = $("live-error");
  error.textContent = message ? ` · update failed: ${message}` : "";
  error.hidden = !message;
});
