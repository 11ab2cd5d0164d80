// Copies the browser builds of the pages' libraries (marked, DOMPurify, uPlot) and their
// licenses from node_modules into gateway_app/static/gateway_app/vendor/, so the page needs
// no build step or npm. `node scripts/vendor_js.mjs` copies; `--check` only compares.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const VENDOR_DIR = join(ROOT, "gateway_app/static/gateway_app/vendor");

/** Each package and its files: [path in the package, name in vendor/]. */
export const VENDORED = [
  { name: "marked", files: [["lib/marked.esm.js", "marked.esm.js"], ["LICENSE", "marked.LICENSE"]] },
  {
    name: "dompurify",
    files: [
      ["dist/purify.es.mjs", "purify.es.mjs"],
      ["LICENSE", "dompurify.LICENSE"],
    ],
  },
  {
    name: "uplot",
    files: [
      ["dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
      ["dist/uPlot.min.css", "uPlot.min.css"],
      ["LICENSE", "uplot.LICENSE"],
    ],
  },
];

/** The version of a package installed in node_modules. */
export function installedVersion(name) {
  return JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
}

/** The vendor/VERSIONS file: one "name version" line per package. */
export function versionsText() {
  return VENDORED.map(({ name }) => `${name} ${installedVersion(name)}\n`).join("");
}

/** Names of vendored files that differ from the installed packages (empty: all match). */
export function staleFiles() {
  const stale = [];
  for (const { name, files } of VENDORED) {
    for (const [source, target] of files) {
      const installed = readFileSync(join(ROOT, "node_modules", name, source));
      let vendored;
      try {
        vendored = readFileSync(join(VENDOR_DIR, target));
      } catch {
        vendored = null;
      }
      if (!vendored || !installed.equals(vendored)) stale.push(target);
    }
  }
  let versions = "";
  try {
    versions = readFileSync(join(VENDOR_DIR, "VERSIONS"), "utf8");
  } catch {
    // missing: stale below
  }
  if (versions !== versionsText()) stale.push("VERSIONS");
  return stale;
}

function copyAll() {
  for (const { name, files } of VENDORED) {
    for (const [source, target] of files) {
      writeFileSync(join(VENDOR_DIR, target), readFileSync(join(ROOT, "node_modules", name, source)));
    }
  }
  writeFileSync(join(VENDOR_DIR, "VERSIONS"), versionsText());
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--check")) {
    const stale = staleFiles();
    if (stale.length) {
      console.error(`vendor/ differs from node_modules: ${stale.join(", ")} (run node scripts/vendor_js.mjs)`);
      process.exit(1);
    }
  } else {
    copyAll();
  }
}
