// Assistant replies as Markdown (marked, vendored). This is the first of two guards: raw HTML
// in a reply is escaped into text, only web and mail links are links, and images become links
// (a reply cannot make the browser fetch anything). render.js still passes the result through
// DOMPurify before it touches the DOM.

import { Marked } from "../vendor/marked.esm.js";

const SAFE_URL = /^(?:https?:|mailto:)/i;
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** The href of a link we allow, escaped for an attribute, or null. */
function safeHref(href) {
  const url = String(href || "").trim();
  if (!SAFE_URL.test(url)) return null;
  try {
    return escapeHtml(encodeURI(decodeURI(url)));
  } catch {
    return null;
  }
}

function anchor(href, inner, title) {
  const titled = title ? ` title="${escapeHtml(title)}"` : "";
  return `<a href="${href}"${titled} rel="noopener noreferrer" target="_blank">${inner}</a>`;
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html({ text, block }) {
      const shown = escapeHtml(text);
      return block ? `<p>${shown}</p>` : shown;
    },
    link({ href, title, tokens }) {
      const inner = this.parser.parseInline(tokens);
      const safe = safeHref(href);
      return safe ? anchor(safe, inner, title) : inner;
    },
    image({ href, title, text }) {
      const safe = safeHref(href);
      const alt = escapeHtml(text || href);
      return safe ? anchor(safe, alt, title) : alt;
    },
  },
});

/** A reply's Markdown as HTML; still to be sanitized before it is inserted. */
export function markdownToHtml(text) {
  return marked.parse(String(text || ""), { async: false });
}
