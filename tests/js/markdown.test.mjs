// Replies as Markdown (before DOMPurify, which the browser tests cover): raw HTML stays text,
// only web and mail links are links, images are never loaded.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { markdownToHtml } from "../../gateway_app/static/gateway_app/chat/markdown.js";

describe("markdown", () => {
  test("a fenced code block is a pre/code with its language", () => {
    /** Tests that ```python fences become <pre><code class="language-python"> with escaped code. */
    const html = markdownToHtml("see:\n\n```python\nprint(1 < 2)\n```\n");
    assert.match(html, /<pre><code class="language-python">print\(1 &lt; 2\)\n<\/code><\/pre>/);
  });

  test("raw HTML in a reply is shown as text, not parsed", () => {
    /** Tests that inline and block HTML are escaped, so no element of the reply's own reaches the DOM. */
    const inline = markdownToHtml('look <img src=x onerror="window.__pwned=1"> here');
    assert.doesNotMatch(inline, /<img/);
    assert.match(inline, /&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;/);
    const block = markdownToHtml("<div onclick=alert(1)>\nhi\n</div>\n");
    assert.doesNotMatch(block, /<div/);
    assert.match(block, /&lt;div onclick=alert\(1\)&gt;/);
  });

  test("links to the web open safely; javascript: links are plain text", () => {
    /** Tests that http(s) links get rel=noopener and a new tab, and script URLs are no link. */
    const web = markdownToHtml("[docs](https://example.com/a?b=1&c=2)");
    assert.match(web, /<a href="https:\/\/example.com\/a\?b=1&amp;c=2" rel="noopener noreferrer" target="_blank">docs<\/a>/);
    for (const href of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "vbscript:x"]) {
      const html = markdownToHtml(`[click](${href})`);
      assert.doesNotMatch(html, /<a /, href);
      assert.match(html, /click/, href);
    }
  });

  test("images are shown as links, never loaded", () => {
    /** Tests that ![alt](url) renders no <img> (a reply cannot make the browser fetch a URL). */
    const html = markdownToHtml("![a cat](https://example.com/cat.png)");
    assert.doesNotMatch(html, /<img/);
    assert.match(html, /<a href="https:\/\/example.com\/cat.png"[^>]*>a cat<\/a>/);
  });

  test("single newlines are line breaks, as in a chat", () => {
    /** Tests that a reply's line structure survives (breaks: true). */
    assert.match(markdownToHtml("one\ntwo"), /one<br>two/);
  });
});
