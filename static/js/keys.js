// The create-key wizard's first step: show only the key usages and key specs the chosen key type (and usage)
// can take. Without this script every option shows and the server refuses a combination that does not exist.
"use strict";

(function () {
  function visible(form, selector) {
    return Array.from(form.querySelectorAll(selector)).filter(function (input) {
      return !input.closest("[hidden]");
    });
  }

  // Show the blocks whose data-<name> list holds `value` (all of them when nothing is chosen); a hidden
  // choice is unticked so it is not sent.
  function narrow(form, attribute, value) {
    form.querySelectorAll("[data-" + attribute + "]").forEach(function (block) {
      const fits = !value || block.getAttribute("data-" + attribute).split(" ").includes(value);
      block.hidden = !fits;
      if (!fits) block.querySelectorAll("input").forEach(function (input) { input.checked = false; });
    });
  }

  // A type with a single usage or spec (symmetric) has nothing to choose: pick it.
  function pickSingle(form, selector) {
    const options = visible(form, selector);
    if (options.length === 1) options[0].checked = true;
  }

  function wireKeyType(form) {
    if (!form.querySelector("input[data-key-type]")) return;
    const update = function () {
      const type = form.querySelector("input[data-key-type]:checked");
      narrow(form, "types", type ? type.value : "");
      if (type) pickSingle(form, "input[data-key-usage]");
      const usage = visible(form, "input[data-key-usage]").find(function (input) { return input.checked; });
      narrow(form, "usages", usage ? usage.value : "");
      if (type) pickSingle(form, "input[name=key_spec]");
    };
    form.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("key-create");
    if (form) wireKeyType(form);
  });
})();
