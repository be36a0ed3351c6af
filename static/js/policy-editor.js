// The policy editor: progressive enhancement of a policy textarea into CodeMirror 6 (static/vendor/codemirror-*.js,
// window.KmsCodeMirror) with JSON highlighting, line numbers and live validation by the server's policy engine.
//
//   <div data-policy-editor data-kind="key|identity" data-validate-url="..." [data-current-url="..."]
//        [data-report="#selector"]>
//     <textarea name="policy">...</textarea>
//   </div>
//
// Each edit is posted (debounced) to data-validate-url as policy=<text> with the X-CSRFToken header from
// <body hx-headers>; the JSON answer {valid, errors: [{line, column, message}], lockout, findings: [...]} marks each
// error at its line and lists errors, the lockout warning and the findings in the report element (data-report, or
// one made after the editor). The textarea stays in the form, kept in sync, so the form posts as it would without
// JavaScript. Without data-validate-url (a reader's view of a key policy) nothing is checked as it is typed.
// data-current-url (GET, answers {"policy": "..."}) enables "Compare with the current policy".
//
//   <div data-policy-merge data-original="#json-script-id" data-modified="#json-script-id"> server diff </div>
//
// replaces a server-rendered diff by CodeMirror's side-by-side merge view of the two documents.
"use strict";

(function () {
  const DEBOUNCE_MS = 450;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function position(doc, line, column) {
    const target = doc.line(Math.min(Math.max(line || 1, 1), doc.lines));
    return Math.min(target.from + Math.max((column || 1) - 1, 0), target.to);
  }

  function diagnosticsFor(doc, result) {
    const found = [];
    (result.errors || []).forEach(function (problem) {
      const from = position(doc, problem.line, problem.column);
      const to = Math.max(from, doc.lineAt(from).to);
      found.push({ from: from, to: to, severity: "error", message: problem.message, source: "policy engine" });
    });
    (result.findings || []).forEach(function (finding) {
      if (!finding.line) return;
      const from = position(doc, finding.line, 1);
      found.push({ from: from, to: doc.lineAt(from).to, severity: "info", message: finding.title, source: "finding" });
    });
    return found;
  }

  function findingItem(finding) {
    const item = element("li", "finding");
    const head = element("p", "finding-head");
    head.append(element("span", "badge " + finding.severity, finding.severity), " ", element("strong", "", finding.title));
    item.append(head, element("p", "finding-detail", finding.detail), element("p", "finding-fix", "Fix: " + finding.fix));
    return item;
  }

  function renderReport(report, result, view) {
    report.replaceChildren();
    report.append(element("h2", "", "Checks on this draft"));
    if (result.error) {
      report.append(element("p", "message error", result.error));
      return;
    }
    const errors = result.errors || [];
    if (errors.length) {
      report.append(element("p", "message error", errors.length === 1 ? "1 error: the policy cannot be saved yet." : errors.length + " errors: the policy cannot be saved yet."));
      const list = element("ul", "policy-problems");
      errors.forEach(function (problem) {
        const item = element("li");
        const jump = element("button", "link", "Line " + problem.line + ", column " + problem.column);
        jump.type = "button";
        jump.addEventListener("click", function () {
          const at = position(view.state.doc, problem.line, problem.column);
          view.dispatch({ selection: { anchor: at }, scrollIntoView: true });
          view.focus();
        });
        item.append(jump, ": " + problem.message);
        list.append(item);
      });
      report.append(list);
    }
    if (result.lockout) {
      const warning = element("p", "message warning");
      warning.append(element("strong", "", "You could lock yourself out. "), result.lockout);
      report.append(warning);
    }
    const findings = result.findings || [];
    if (findings.length) {
      report.append(element("h3", "", "Findings"));
      const list = element("ul", "findings");
      findings.forEach(function (finding) {
        list.append(findingItem(finding));
      });
      report.append(list);
    }
    if (!errors.length && !result.lockout && !findings.length) {
      report.append(element("p", "message success", "No problems found."));
    }
  }

  function postDraft(url, text) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: new URLSearchParams({ policy: text }),
    }).then(function (response) {
      return response.json().catch(function () {
        return { error: "The draft could not be checked (HTTP " + response.status + "). Reload the page; you may need to sign in again." };
      });
    });
  }

  function readonlyExtensions(CM) {
    return [
      CM.basicSetup,
      CM.json(),
      CM.EditorView.lineWrapping,
      CM.EditorView.editable.of(false),
      CM.EditorState.readOnly.of(true),
    ];
  }

  function enhanceEditor(root) {
    const CM = window.KmsCodeMirror;
    const textarea = root.querySelector("textarea");
    if (!CM || !textarea || root.dataset.enhanced) return;
    root.dataset.enhanced = "true";

    const label = textarea.id ? document.querySelector('label[for="' + textarea.id + '"]') : null;
    if (label && !label.id) label.id = textarea.id + "-label";
    let report = root.dataset.report ? document.querySelector(root.dataset.report) : null;
    if (!report) {
      report = element("div", "policy-report");
      root.after(report);
    }
    report.setAttribute("aria-live", "polite");

    const comparison = new CM.Compartment();
    let timer = null;
    let sequence = 0;
    let view = null;

    function validate() {
      const text = view.state.doc.toString();
      const mine = ++sequence;
      report.setAttribute("aria-busy", "true");
      postDraft(root.dataset.validateUrl, text).then(
        function (result) {
          if (mine !== sequence) return; // a newer edit is being checked
          report.removeAttribute("aria-busy");
          renderReport(report, result, view);
          view.dispatch(CM.setDiagnostics(view.state, result.error ? [] : diagnosticsFor(view.state.doc, result)));
        },
        function () {
          if (mine !== sequence) return;
          report.removeAttribute("aria-busy");
          renderReport(report, { error: "The draft could not be checked: the server did not answer." }, view);
        }
      );
    }

    function schedule() {
      if (!root.dataset.validateUrl) return; // a reader's editor: the server checks nothing it may not save
      if (timer) clearTimeout(timer);
      timer = setTimeout(validate, DEBOUNCE_MS);
    }

    const attributes = { "aria-multiline": "true", spellcheck: "false" };
    if (label) attributes["aria-labelledby"] = label.id;
    if (textarea.getAttribute("aria-describedby")) attributes["aria-describedby"] = textarea.getAttribute("aria-describedby");

    const holder = element("div", "policy-editor-view");
    root.insertBefore(holder, textarea);
    view = new CM.EditorView({
      parent: holder,
      doc: textarea.value,
      extensions: [
        CM.basicSetup,
        CM.json(),
        CM.lintGutter(),
        CM.EditorView.lineWrapping,
        CM.EditorView.contentAttributes.of(attributes),
        comparison.of([]),
        CM.EditorView.updateListener.of(function (update) {
          if (!update.docChanged) return;
          textarea.value = update.state.doc.toString();
          schedule();
        }),
        // A caller who may not change the policy reads it (the page offers no review: kms:PutKeyPolicy).
        textarea.readOnly ? [CM.EditorView.editable.of(false), CM.EditorState.readOnly.of(true)] : [],
      ],
    });
    textarea.hidden = true;
    textarea.required = false; // a hidden required field would block the form; the server validates
    if (label) {
      label.addEventListener("click", function () {
        view.focus();
      });
    }
    const form = textarea.form;
    if (form) {
      form.addEventListener("submit", function () {
        textarea.value = view.state.doc.toString();
      });
    }

    if (root.dataset.currentUrl) {
      const toggle = element("button", "secondary policy-compare", "Compare with the current policy");
      toggle.type = "button";
      toggle.setAttribute("aria-pressed", "false");
      let current = null;
      toggle.addEventListener("click", function () {
        const showing = toggle.getAttribute("aria-pressed") === "true";
        if (showing) {
          view.dispatch({ effects: comparison.reconfigure([]) });
          toggle.setAttribute("aria-pressed", "false");
          toggle.textContent = "Compare with the current policy";
          return;
        }
        const show = function () {
          view.dispatch({
            effects: comparison.reconfigure(CM.unifiedMergeView({ original: current, mergeControls: false, gutter: true })),
          });
          toggle.setAttribute("aria-pressed", "true");
          toggle.textContent = "Hide the comparison";
        };
        if (current !== null) return show();
        fetch(root.dataset.currentUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (response) {
            return response.json();
          })
          .then(function (data) {
            if (typeof data.policy !== "string") throw new Error(data.error || "no policy");
            current = data.policy;
            show();
          })
          .catch(function () {
            renderReport(report, { error: "The current policy could not be loaded for the comparison." }, view);
          });
      });
      root.append(toggle);
    }

    // A draft the server already found problems in: mark them at their lines straight away.
    if (root.dataset.validateUrl && textarea.getAttribute("aria-invalid") === "true") validate();
  }

  function jsonFrom(selector) {
    const source = selector ? document.querySelector(selector) : null;
    return source ? JSON.parse(source.textContent) : null;
  }

  function enhanceMerge(root) {
    const CM = window.KmsCodeMirror;
    if (!CM || root.dataset.enhanced) return;
    const original = jsonFrom(root.dataset.original);
    const modified = jsonFrom(root.dataset.modified);
    if (original === null || modified === null) return;
    root.dataset.enhanced = "true";
    const labels = element("div", "policy-merge-labels");
    labels.append(element("span", "", root.dataset.originalLabel || "Current"), element("span", "", root.dataset.modifiedLabel || "Draft"));
    const holder = element("div", "policy-merge-view");
    new CM.MergeView({
      a: { doc: original, extensions: readonlyExtensions(CM) },
      b: { doc: modified, extensions: readonlyExtensions(CM) },
      parent: holder,
      collapseUnchanged: { margin: 3, minSize: 6 },
      gutter: true,
    });
    Array.prototype.forEach.call(root.children, function (child) {
      child.hidden = true;
    });
    root.append(labels, holder);
  }

  function wire(scope) {
    scope.querySelectorAll("[data-policy-editor]").forEach(enhanceEditor);
    scope.querySelectorAll("[data-policy-merge]").forEach(enhanceMerge);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire(document);
  });
  document.addEventListener("htmx:load", function (event) {
    wire(event.detail.elt);
  });
})();
