// The parts of CodeMirror 6 the console uses, exposed as one global (window.KmsCodeMirror) by build.mjs.
// Pages never load this from a CDN: the bundle is built here and committed under static/vendor/.
export { basicSetup } from "codemirror";
export { EditorView, keymap, placeholder } from "@codemirror/view";
export { EditorState, Compartment } from "@codemirror/state";
export { json, jsonParseLinter } from "@codemirror/lang-json";
export { linter, lintGutter, setDiagnostics, forceLinting, diagnosticCount } from "@codemirror/lint";
export { MergeView, unifiedMergeView } from "@codemirror/merge";
