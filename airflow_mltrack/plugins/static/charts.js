/* Metric curves with uPlot (vendored). Data comes from <script type="application/json"> blocks.
   groupBy "split": one chart per metric, one line per split (experiment page).
   groupBy "experiment": one chart per metric and split, one line per experiment (compare page). */
window.MLTrackCharts = (function () {
  "use strict";
  var PALETTE = ["#017cee", "#e8590c", "#2f9e44", "#9c36b5", "#e03131", "#0c8599", "#f08c00", "#5c7cfa", "#868e96", "#c2255c"];

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    return v && v.trim() ? v.trim() : fallback;
  }

  function groupCurves(curves, groupBy, labels) {
    var groups = new Map();
    curves.forEach(function (c) {
      var key = groupBy === "split" ? c.name : c.name + " (" + c.evaluation_set + ")";
      var label = groupBy === "split" ? c.evaluation_set : (labels[String(c.experiment_id)] || "#" + c.experiment_id);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push({ label: label, steps: c.steps, values: c.values });
    });
    return groups;
  }

  function align(series) {
    var xs = new Set();
    series.forEach(function (s) { s.steps.forEach(function (x) { xs.add(x); }); });
    var x = Array.from(xs).sort(function (a, b) { return a - b; });
    var index = new Map(x.map(function (v, i) { return [v, i]; }));
    var data = [x];
    series.forEach(function (s) {
      var ys = new Array(x.length).fill(null);
      s.steps.forEach(function (step, i) { ys[index.get(step)] = s.values[i]; });
      data.push(ys);
    });
    return data;
  }

  function render(container, groupBy) {
    if (!container || typeof uPlot === "undefined") return;
    var curves = JSON.parse(document.getElementById("mltrack-curves").textContent);
    var labels = JSON.parse(document.getElementById("mltrack-labels").textContent);
    var fg = cssVar("--fg-muted", "#555");
    var grid = cssVar("--border", "#ddd");
    var plots = [];
    groupCurves(curves, groupBy, labels).forEach(function (series, title) {
      var figure = document.createElement("figure");
      figure.className = "chart";
      var caption = document.createElement("figcaption");
      caption.textContent = title;
      figure.appendChild(caption);
      container.appendChild(figure);
      var sparse = series.every(function (s) { return s.steps.length <= 30; });
      var opts = {
        width: Math.max(figure.clientWidth - 16, 280),
        height: 240,
        scales: { x: { time: false } },
        axes: [
          { label: "step", stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 60 },
        ],
        series: [{ label: "step" }].concat(series.map(function (s, i) {
          return {
            label: s.label,
            stroke: PALETTE[i % PALETTE.length],
            width: 2,
            spanGaps: true,
            points: { show: sparse || s.steps.length === 1 },
          };
        })),
      };
      plots.push({ plot: new uPlot(opts, align(series), figure), figure: figure });
    });
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        plots.forEach(function (p) { p.plot.setSize({ width: Math.max(p.figure.clientWidth - 16, 280), height: 240 }); });
      }, 150);
    });
    container.setAttribute("data-charts", String(plots.length));
  }

  return { render: render };
})();

/* Started by the page's <script src="charts.js" data-group-by="..."> (no inline script: the pages' CSP). */
(function () {
  var script = document.currentScript;
  var groupBy = script && script.getAttribute("data-group-by");
  if (groupBy) MLTrackCharts.render(document.getElementById("charts"), groupBy);
})();
