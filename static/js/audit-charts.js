// The audit dashboard's charts (Chart.js, vendored in static/vendor). The numbers come from the page as data
// (<script type="application/json" id="audit-chart-data">, written by Django's json_script), never as code, so
// the Content-Security-Policy holds. Without JavaScript the tables beside each chart show the same numbers.
"use strict";

(function () {
  const DECISIONS = ["allowed", "denied", "failed"];

  function palette() {
    const style = getComputedStyle(document.documentElement);
    const read = function (name, fallback) {
      return (style.getPropertyValue(name) || "").trim() || fallback;
    };
    return {
      allowed: read("--good", "#037f0c"),
      denied: read("--bad", "#d91515"),
      failed: "#d97706",
      bar: read("--accent", "#0972d3"),
      ink: read("--ink", "#16191f"),
    };
  }

  function timeline(canvas, data, colors) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: DECISIONS.map(function (decision) {
          return { label: decision, data: data.series[decision], backgroundColor: colors[decision], stack: "all" };
        }),
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  // A bar's label in lines of at most WRAP characters (Chart.js draws an array as lines), so a long label (an ARN,
  // "Refused: statement ... in the key policy") is shown whole instead of cut at the chart's left edge.
  const WRAP = 30;

  function wrapped(label) {
    const lines = [];
    let line = "";
    String(label).split(/(?<=[\s/:])/).forEach(function (word) {
      while (word.length > WRAP) {
        if (line) lines.push(line);
        lines.push(word.slice(0, WRAP));
        word = word.slice(WRAP);
        line = "";
      }
      if ((line + word).length > WRAP && line) {
        lines.push(line);
        line = "";
      }
      line += word;
    });
    if (line) lines.push(line);
    return lines.map(function (text) { return text.trim(); });
  }

  function bars(canvas, data, colors) {
    const box = canvas.closest("[data-chart-box]");
    const lines = data.labels.reduce(function (sum, label) { return sum + wrapped(label).length; }, 0);
    // Room for every line of every label (the box's own height is the least it gets).
    if (box) box.style.minHeight = Math.max(lines * 16 + 40, 0) + "px";
    return new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.labels.map(wrapped), datasets: [{ label: "events", data: data.counts, backgroundColor: colors.bar }] },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { ticks: { autoSkip: false } } },
        plugins: { legend: { display: false } },
      },
    });
  }

  function draw(root) {
    const source = document.getElementById("audit-chart-data");
    if (!source || !window.Chart) return;
    let data;
    try {
      data = JSON.parse(source.textContent);
    } catch (error) {
      return; // the tables still show the numbers
    }
    const colors = palette();
    window.Chart.defaults.color = colors.ink;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const name = canvas.dataset.chart;
      if (!data[name]) return;
      const existing = window.Chart.getChart(canvas);
      if (existing) existing.destroy();
      const box = canvas.closest("[data-chart-box]");
      if (box) box.hidden = false;
      if (name === "timeline") timeline(canvas, data[name], colors);
      else bars(canvas, data[name], colors);
      // The chart is drawn: its table folds away (still one click from the numbers).
      const figure = canvas.closest("figure");
      const numbers = figure && figure.querySelector("details.chart-numbers");
      if (numbers) numbers.open = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
  });
  // htmx swaps the results when the filters or the page change.
  document.addEventListener("htmx:load", function (event) {
    if (event.detail.elt !== document.body) draw(event.detail.elt);
  });
})();
