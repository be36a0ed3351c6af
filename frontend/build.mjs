// Builds ../static/vendor/codemirror-<codemirror version>.bundle.js: one minified IIFE exposing
// window.KmsCodeMirror, no eval, no inline styles in markup (CodeMirror's own styles go through
// adoptedStyleSheets, which the console's Content-Security-Policy allows). Run: npm ci && npm run build
import { build } from "esbuild";
import { readFileSync, readdirSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "..", "static", "vendor");
const version = JSON.parse(readFileSync(join(here, "node_modules", "codemirror", "package.json"), "utf8")).version;
const outfile = join(vendor, `codemirror-${version}.bundle.js`);

// An older bundle would linger under its old version's name: remove it so only one is committed.
for (const name of readdirSync(vendor)) {
  if (/^codemirror-.*\.bundle\.js$/.test(name) && join(vendor, name) !== outfile) unlinkSync(join(vendor, name));
}

const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const versions = Object.entries(lock.packages)
  .filter(([path]) => path.startsWith("node_modules/@codemirror/") || path === "node_modules/codemirror")
  .map(([path, info]) => `${path.slice("node_modules/".length)}@${info.version}`)
  .join(", ");

await build({
  entryPoints: [join(here, "src", "index.js")],
  outfile,
  bundle: true,
  minify: true,
  format: "iife",
  globalName: "KmsCodeMirror",
  target: ["es2020"],
  legalComments: "none",
  banner: {
    js: `/* kmsconsole CodeMirror bundle, built by frontend/build.mjs from ${versions}. CodeMirror and its lezer ` +
      `and style-mod dependencies are MIT licensed, (c) Marijn Haverbeke and others: https://codemirror.net */`,
  },
  logLevel: "info",
});
