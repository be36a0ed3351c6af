// Builds ../static/vendor/codemirror-<codemirror version>.bundle.js: one minified IIFE exposing
// window.KmsCodeMirror, with no eval and no inline style markup. Run: npm ci && npm run build
//
// CodeMirror's styles come from style-mod, which (4.x) writes them into a <style> element for a document and uses
// adoptedStyleSheets only inside shadow roots. The console's Content-Security-Policy (style-src 'self', no
// nonce) blocks such a <style> element, and the editor would render unstyled. The plugin below makes style-mod
// use a constructed, adopted stylesheet for documents too: CSSOM, which the policy allows. Browsers without
// adoptedStyleSheets keep the <style> fallback (blocked, so unstyled but working).
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

const STYLE_MOD_TEST = "if (!root.head && root.adoptedStyleSheets && win.CSSStyleSheet) {";
const adoptedStyleSheetsForDocuments = {
  name: "style-mod-adopted-stylesheets",
  setup(esbuild) {
    esbuild.onLoad({ filter: /style-mod[\\/]src[\\/]style-mod\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      if (!source.includes(STYLE_MOD_TEST)) {
        throw new Error(`style-mod changed: ${args.path} no longer contains the test this build patches; check how it injects styles`);
      }
      return {
        contents: source.replace(STYLE_MOD_TEST, "if (root.adoptedStyleSheets && win.CSSStyleSheet) {"),
        loader: "js",
      };
    });
  },
};

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
  plugins: [adoptedStyleSheetsForDocuments],
  banner: {
    js: `/* kmsconsole CodeMirror bundle, built by frontend/build.mjs from ${versions}. CodeMirror and its lezer ` +
      `and style-mod dependencies are MIT licensed, (c) Marijn Haverbeke and others: https://codemirror.net */`,
  },
  logLevel: "info",
});
