// Small behaviours shared by every console page. No inline scripts anywhere: the Content-Security-Policy
// forbids them, so pages declare behaviour with data- attributes and this file wires it up.
"use strict";

(function () {
  // <input data-confirm-match="1234abcd-..." data-confirm-target="#schedule-button">: the button stays disabled
  // until the person types the expected text (typing the key id to confirm a deletion, as AWS does).
  function wireConfirmMatch(root) {
    root.querySelectorAll("[data-confirm-match]").forEach(function (input) {
      const button = document.querySelector(input.dataset.confirmTarget);
      if (!button) return;
      const update = function () {
        button.disabled = input.value.trim() !== input.dataset.confirmMatch;
      };
      input.addEventListener("input", update);
      update();
    });
  }

  // <button data-copy="#secret">: copy the text of the target element.
  function wireCopy(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        const source = document.querySelector(button.dataset.copy);
        if (!source || !navigator.clipboard) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          button.textContent = "Copied";
        });
      });
    });
  }

  // <form data-autosubmit>: submit when a select or checkbox changes (list filters).
  function wireAutosubmit(root) {
    root.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.querySelectorAll("select, input[type=checkbox]").forEach(function (field) {
        field.addEventListener("change", function () {
          form.requestSubmit();
        });
      });
    });
  }

  function wire(root) {
    wireConfirmMatch(root);
    wireCopy(root);
    wireAutosubmit(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire(document);
    // A failed htmx request (network, 5xx) must not fail silently.
    document.body.addEventListener("htmx:responseError", function (event) {
      const status = event.detail.xhr ? event.detail.xhr.status : 0;
      const box = document.getElementById("htmx-error") || document.createElement("p");
      box.id = "htmx-error";
      box.className = "message error";
      box.setAttribute("role", "alert");
      box.textContent = "The server could not complete that request (HTTP " + status + "). Reload the page and try again.";
      document.getElementById("main").prepend(box);
    });
  });
  document.addEventListener("htmx:load", function (event) {
    wire(event.detail.elt);
  });
  window.kmsconsole = { wire: wire };
})();
