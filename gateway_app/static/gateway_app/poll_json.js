// One polling loop for the live page's scripts: fetch JSON, hand it over, show a failure
// in place, and poll again after a fixed pause whatever happened.

/**
 * Polls `url` every `intervalMs`: `render(data)` on success, `showError(message)` on a
 * failed fetch or render, `showError(null)` after each success.
 */
export function pollJson(url, intervalMs, render, showError) {
  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(await response.json());
      showError(null);
    } catch (exc) {
      showError(exc.message);
    } finally {
      setTimeout(poll, intervalMs);
    }
  }
  poll();
}
