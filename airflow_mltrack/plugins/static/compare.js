/* The compare page (templates/compare.html): the "show all parameters" toggle, and for the metric chosen
   in #metric-picker: overlaid curves (fetched downsampled from the API, drawn by MLTrackCharts.draw when
   charts.js offers it, else with uPlot here), parallel coordinates and a parameter-vs-metric scatter
   (our own SVG, no library). Data: <script type="application/json" id="compare-data"> (no inline script:
   the pages' CSP). Counts drawn are left in data-series / data-lines / data-points for tests. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var MISSING = "#9aa0a6";
  var script = document.currentScript;
  var api = (script && script.getAttribute("data-api")) || "api/";
  var node = document.getElementById("compare-data");
  if (!node) return;
  var data = JSON.parse(node.textContent);
  var ids = data.ids.map(String);
  var tip = document.getElementById("compare-tip");
  var curveCache = {};
  var allCurves = null;
  var current = null;

  setupParamToggle();
  var picker = document.getElementById("metric-picker");
  if (!picker || !data.metrics.length) return;
  var scatterPicker = document.getElementById("scatter-param");
  var numericParams = Object.keys(data.params).filter(function (k) { return axisOf(data.params[k]).numeric; });
  numericParams.forEach(function (k) {
    var option = document.createElement("option");
    option.value = k;
    option.textContent = k;
    scatterPicker.appendChild(option);
  });
  picker.addEventListener("change", function () { show(picker.value); });
  scatterPicker.addEventListener("change", function () { drawScatter(); });
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { drawParallel(); drawScatter(); }, 200);
  });
  show(picker.value || data.default);

  // -- the parameter table: only the rows that differ, or all ---------------------------------------
  function setupParamToggle() {
    var button = document.getElementById("toggle-params");
    var table = document.getElementById("param-table");
    if (!button || !table) return;
    button.addEventListener("click", function () {
      var all = table.classList.toggle("only-diff") === false;
      button.textContent = button.getAttribute(all ? "data-show-diff" : "data-show-all");
      button.setAttribute("aria-pressed", String(all));
    });
  }

  // -- shared helpers ---------------------------------------------------------------------------------
  function metricOf(key) {
    for (var i = 0; i < data.metrics.length; i++) if (data.metrics[i].key === key) return data.metrics[i];
    return data.metrics[0];
  }

  function el(tag, attrs, parent) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, value, attrs) {
    var t = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    var s = String(value);
    t.textContent = s.length > 22 ? s.slice(0, 21) + "…" : s;
    if (s.length > 22) el("title", {}, t).textContent = s;
    return t;
  }

  function fmt(v) {
    if (typeof v !== "number") return String(v);
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function runColor(i) { return "hsl(" + Math.round((i * 137.508) % 360) + ", 65%, 45%)"; }

  /* A metric value -> a viridis color, the better end bright (yellow) whichever way is better. */
  function colorScale(metric) {
    var vals = ids.map(function (id) { return metric.values[id]; }).filter(function (v) { return v !== undefined; });
    var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
    return function (v) {
      if (v === undefined || v === null || !vals.length) return MISSING;
      var t = hi > lo ? (v - lo) / (hi - lo) : 1;
      if (metric.lower) t = 1 - t;
      var p = t * (VIRIDIS.length - 1), i = Math.min(Math.floor(p), VIRIDIS.length - 2), f = p - i;
      var c = VIRIDIS[i].map(function (x, j) { return Math.round(x + (VIRIDIS[i + 1][j] - x) * f); });
      return "rgb(" + c.join(",") + ")";
    };
  }

  /* An axis over values by run id: numeric (every present value a number) or categorical. */
  function axisOf(byId) {
    var present = ids.map(function (id) { return byId[id]; }).filter(function (v) { return v !== undefined && v !== null; });
    var numeric = present.length > 0 && present.every(function (v) { return typeof v === "number"; });
    if (numeric) {
      var min = Math.min.apply(null, present), max = Math.max.apply(null, present);
      return { numeric: true, min: min, max: max, log: min > 0 && max / min >= 100 };
    }
    var cats = Array.from(new Set(present.map(String))).sort();
    return { numeric: false, categories: cats };
  }

  /* Position 0..1 (bottom..top) of a value on an axis (logarithmic when it spans 100x or more of positive
     values); null when the value is missing. */
  function position(axis, v) {
    if (v === undefined || v === null) return null;
    if (axis.numeric && axis.log) return Math.log(v / axis.min) / Math.log(axis.max / axis.min);
    if (axis.numeric) return axis.max > axis.min ? (v - axis.min) / (axis.max - axis.min) : 0.5;
    var n = axis.categories.length, i = axis.categories.indexOf(String(v));
    return n > 1 ? i / (n - 1) : 0.5;
  }

  function showTip(event, lines) {
    if (!tip) return;
    tip.textContent = "";
    lines.forEach(function (line, i) {
      var div = document.createElement("div");
      if (i === 0) div.className = "compare-tip-title";
      div.textContent = line;
      tip.appendChild(div);
    });
    tip.hidden = false;
    tip.style.left = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = event.clientY + 14 + "px";
  }

  function hideTip() { if (tip) tip.hidden = true; }

  function highlight(id) {
    ["parallel", "scatter"].forEach(function (name) {
      var box = document.getElementById(name);
      var svg = box && box.querySelector("svg");
      if (!svg) return;
      svg.classList.toggle("has-hover", id !== null);
      svg.querySelectorAll("[data-run]").forEach(function (mark) {
        var on = mark.getAttribute("data-run") === id;
        mark.classList.toggle("hover", on);
        if (on && mark.parentNode) mark.parentNode.appendChild(mark); // drawn on top
      });
    });
  }

  function hoverable(mark, id, lines) {
    mark.setAttribute("data-run", id);
    mark.addEventListener("mousemove", function (event) { highlight(id); showTip(event, lines); });
    mark.addEventListener("mouseleave", function () { highlight(null); hideTip(); });
  }

  function tipLines(id, metric) {
    var v = metric.values[id];
    return [data.names[id], metric.key + " = " + (v === undefined ? "—" : fmt(v))];
  }

  function show(key) {
    current = metricOf(key);
    loadCurves(current.key);
    drawParallel();
    drawScatter();
  }

  // -- parallel coordinates ---------------------------------------------------------------------------
  function drawParallel() {
    var box = document.getElementById("parallel");
    if (!box || !current) return;
    box.textContent = "";
    var metric = current;
    var axes = Object.keys(data.params).map(function (k) {
      return Object.assign({ label: k, values: data.params[k] }, axisOf(data.params[k]));
    });
    axes.push(Object.assign({ label: metric.key, values: metric.values, metric: true }, axisOf(metric.values)));
    var margin = { top: 34, bottom: 46, left: 70, right: 90 };
    var width = Math.max(box.clientWidth || 800, margin.left + margin.right + (axes.length - 1) * 120);
    var height = 380, plotH = height - margin.top - margin.bottom;
    var step = axes.length > 1 ? (width - margin.left - margin.right) / (axes.length - 1) : 0;
    var svg = el("svg", { width: width, height: height, role: "img", "aria-label": "Parallel coordinates of " + ids.length + " experiments" }, box);
    var missingY = margin.top + plotH + 22;
    function y(axis, v) {
      var p = position(axis, v);
      return p === null ? missingY : margin.top + (1 - p) * plotH;
    }
    var color = colorScale(metric);
    var lines = el("g", { class: "pc-lines" }, svg);
    var drawn = 0;
    ids.forEach(function (id) {
      var d = axes.map(function (axis, i) {
        return (i ? "L" : "M") + (margin.left + i * step).toFixed(1) + " " + y(axis, axis.values[id]).toFixed(1);
      }).join(" ");
      var path = el("path", { d: d, class: "pc-line", stroke: color(metric.values[id]) }, lines);
      hoverable(path, id, tipLines(id, metric));
      drawn += 1;
    });
    axes.forEach(function (axis, i) {
      var x = margin.left + i * step;
      var g = el("g", { class: "pc-axis" + (axis.metric ? " pc-metric" : "") }, svg);
      el("line", { x1: x, x2: x, y1: margin.top, y2: margin.top + plotH }, g);
      text(g, x, margin.top - 14, axis.label + (axis.log ? " (log)" : ""), { "text-anchor": "middle", class: "pc-label" });
      var ticks = [];
      if (axis.numeric) {
        var mid = axis.log ? Math.sqrt(axis.min * axis.max) : (axis.min + axis.max) / 2;
        ticks = axis.max > axis.min ? [axis.min, mid, axis.max] : [axis.min];
      } else if (axis.categories.length <= 12) {
        ticks = axis.categories;
      } else {
        ticks = [axis.categories[0], axis.categories[axis.categories.length - 1]];
      }
      ticks.forEach(function (v) {
        var ty = y(axis, v);
        el("line", { x1: x - 4, x2: x, y1: ty, y2: ty }, g);
        text(g, x - 7, ty + 4, axis.numeric ? fmt(v) : v, { "text-anchor": "end", class: "pc-tick" });
      });
      text(g, x - 7, missingY + 4, "—", { "text-anchor": "end", class: "pc-tick" });
    });
    legend(svg, metric, width - margin.right + 30, margin.top, plotH);
    box.setAttribute("data-lines", String(drawn));
    box.setAttribute("data-axes", String(axes.length));
  }

  function legend(svg, metric, x, top, h) {
    var color = colorScale(metric);
    var vals = ids.map(function (id) { return metric.values[id]; }).filter(function (v) { return v !== undefined; });
    if (!vals.length) return;
    var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
    var g = el("g", { class: "pc-legend" }, svg);
    for (var i = 0; i < 20; i++) {
      var v = hi - ((hi - lo) * i) / 19;
      el("rect", { x: x, y: top + (h * i) / 20, width: 12, height: h / 20 + 1, fill: color(v) }, g);
    }
    text(g, x + 16, top + 8, fmt(hi), { class: "pc-tick" });
    text(g, x + 16, top + h, fmt(lo), { class: "pc-tick" });
  }

  // -- parameter vs metric scatter ----------------------------------------------------------------------
  function drawScatter() {
    var box = document.getElementById("scatter");
    if (!box || !current) return;
    box.textContent = "";
    box.setAttribute("data-points", "0");
    var key = scatterPicker.value;
    if (!key) {
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No numeric parameter differs between these experiments.";
      box.appendChild(p);
      return;
    }
    var metric = current;
    var xs = data.params[key];
    var pts = ids.filter(function (id) {
      return typeof xs[id] === "number" && metric.values[id] !== undefined;
    });
    var margin = { top: 16, right: 24, bottom: 46, left: 78 };
    var width = Math.min(Math.max(box.clientWidth || 640, 360), 900), height = 340;
    var svg = el("svg", { width: width, height: height, role: "img", "aria-label": key + " against " + metric.key }, box);
    var xv = pts.map(function (id) { return xs[id]; }), yv = pts.map(function (id) { return metric.values[id]; });
    var logX = xv.length > 1 && axisOf(xs).log;
    var sx = scale(logX ? xv.map(Math.log10) : xv, margin.left, width - margin.right);
    var sy = scale(yv, height - margin.bottom, margin.top);
    var g = el("g", { class: "sc-axes" }, svg);
    el("line", { x1: margin.left, x2: width - margin.right, y1: height - margin.bottom, y2: height - margin.bottom }, g);
    el("line", { x1: margin.left, x2: margin.left, y1: margin.top, y2: height - margin.bottom }, g);
    sx.ticks.forEach(function (t) {
      el("line", { x1: sx(t), x2: sx(t), y1: height - margin.bottom, y2: height - margin.bottom + 4 }, g);
      text(g, sx(t), height - margin.bottom + 16, fmt(logX ? Math.pow(10, t) : t), { "text-anchor": "middle", class: "pc-tick" });
    });
    sy.ticks.forEach(function (t) {
      el("line", { x1: margin.left - 4, x2: margin.left, y1: sy(t), y2: sy(t) }, g);
      text(g, margin.left - 7, sy(t) + 4, fmt(t), { "text-anchor": "end", class: "pc-tick" });
    });
    text(g, (margin.left + width - margin.right) / 2, height - 8, key + (logX ? " (log scale)" : ""), { "text-anchor": "middle", class: "pc-label" });
    text(g, 14, margin.top + 4, metric.key, { class: "pc-label" });
    var color = colorScale(metric);
    var marks = el("g", { class: "sc-points" }, svg);
    pts.forEach(function (id) {
      var cx = sx(logX ? Math.log10(xs[id]) : xs[id]), cy = sy(metric.values[id]);
      var dot = el("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: 5, class: "sc-point", fill: color(metric.values[id]) }, marks);
      hoverable(dot, id, [data.names[id], key + " = " + fmt(xs[id]), metric.key + " = " + fmt(metric.values[id])]);
    });
    box.setAttribute("data-points", String(pts.length));
    if (pts.length < ids.length) {
      var note = document.createElement("p");
      note.className = "muted";
      note.textContent = ids.length - pts.length + " of " + ids.length + " experiments have no numeric " + key + " or no finite " + metric.key + ".";
      box.appendChild(note);
    }
  }

  /* A linear scale of values onto [from, to] (5% padding), with about 5 round ticks. */
  function scale(values, from, to) {
    var lo = values.length ? Math.min.apply(null, values) : 0, hi = values.length ? Math.max.apply(null, values) : 1;
    if (hi === lo) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    var pad = (hi - lo) * 0.05;
    lo -= pad; hi += pad;
    var f = function (v) { return from + ((v - lo) / (hi - lo)) * (to - from); };
    var raw = (hi - lo) / 5, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var unit = [1, 2, 5, 10].map(function (m) { return m * mag; }).find(function (u) { return u >= raw; });
    f.ticks = [];
    for (var t = Math.ceil(lo / unit) * unit; t <= hi + unit * 1e-9; t += unit) f.ticks.push(Number(t.toPrecision(12)));
    return f;
  }

  // -- overlaid curves ------------------------------------------------------------------------------------
  function finite(v) { return typeof v === "number" && isFinite(v) ? v : null; }

  function asList(body) {
    if (Array.isArray(body)) return body;
    return (body && (body.curves || body.series || body.items)) || [];
  }

  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(r.status + " " + url);
      return r.json();
    });
  }

  /* Downsampled curves of one metric from GET api/curves; where that route does not exist, every curve of
     the runs from api/compare/curves (fetched once), filtered here. */
  function curvesOf(key) {
    if (curveCache[key]) return Promise.resolve(curveCache[key]);
    var split = key.slice(0, key.indexOf("/")), name = key.slice(key.indexOf("/") + 1);
    var query = "ids=" + ids.join(",");
    return fetchJson(api + "curves?" + query + "&key=" + encodeURIComponent(key) + "&points=" + pointsPerRun())
      .then(asList)
      .catch(function () {
        allCurves = allCurves || fetchJson(api + "compare/curves?" + query).then(asList);
        return allCurves;
      })
      .then(function (list) {
        var found = list.filter(function (c) { return c.name === name && c.evaluation_set === split; });
        curveCache[key] = found;
        return found;
      });
  }

  function loadCurves(key) {
    var box = document.getElementById("curves");
    var note = document.getElementById("curves-note");
    box.setAttribute("aria-busy", "true");
    note.textContent = "Loading " + key + "…";
    curvesOf(key).then(function (found) {
      if (current.key !== key) return;
      var byId = {};
      found.forEach(function (c) { byId[String(c.experiment_id)] = c; });
      var series = [];
      ids.forEach(function (id, i) {
        var c = byId[id];
        var steps = c && (c.steps || c.x);
        if (!c || !steps || !steps.length) return;
        series.push(Object.assign({}, c, { label: data.names[id], steps: steps, values: c.values || c.y || [], color: runColor(i) }));
      });
      box.textContent = "";
      box.removeAttribute("aria-busy");
      box.setAttribute("data-series", String(series.length));
      box.setAttribute("data-key", key);
      note.textContent = series.length ? series.length + " of " + ids.length + " experiments logged " + key + " by step." : "No experiment logged " + key + " by step (final values only).";
      if (series.length) draw(box, series, key);
    }).catch(function (error) {
      box.removeAttribute("aria-busy");
      note.textContent = "The curves could not be loaded (" + error.message + ").";
    });
  }

  /* Points per curve: 1,000 for a few runs, fewer for many (about 20,000 drawn in all; 200 at 100 runs). */
  function pointsPerRun() {
    return Math.max(100, Math.min(1000, Math.floor(20000 / Math.max(ids.length, 1))));
  }

  function draw(box, series, key) {
    var charts = window.MLTrackCharts;
    if (charts && typeof charts.draw === "function") {
      try {
        charts.draw(box, series, { xLabel: "step", title: key, api: api, points: pointsPerRun(), height: 320, legend: series.length <= 12 });
        return;
      } catch (error) {
        box.textContent = "";
      }
    }
    drawWithUplot(box, series, key);
  }

  function drawWithUplot(box, series, key) {
    if (typeof uPlot === "undefined") return;
    var xs = new Set();
    series.forEach(function (s) { s.steps.forEach(function (x) { xs.add(x); }); });
    var x = Array.from(xs).sort(function (a, b) { return a - b; });
    var index = new Map(x.map(function (v, i) { return [v, i]; }));
    var aligned = [x].concat(series.map(function (s) {
      var ys = new Array(x.length).fill(null);
      s.steps.forEach(function (step, i) { ys[index.get(step)] = finite(s.values[i]); });
      return ys;
    }));
    var figure = document.createElement("figure");
    figure.className = "chart";
    var caption = document.createElement("figcaption");
    caption.textContent = key;
    figure.appendChild(caption);
    box.appendChild(figure);
    var style = getComputedStyle(document.documentElement);
    var fg = style.getPropertyValue("--fg-muted").trim() || "#555", grid = style.getPropertyValue("--border").trim() || "#ddd";
    new uPlot({
      width: Math.max(figure.clientWidth - 16, 320),
      height: 300,
      legend: { show: series.length <= 12 },
      scales: { x: { time: false } },
      axes: [
        { label: "step", stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 70 },
      ],
      series: [{ label: "step" }].concat(series.map(function (s) {
        return { label: s.label, stroke: s.color, width: 1.5, points: { show: s.steps.length <= 30 } };
      })),
    }, aligned, figure);
    box.setAttribute("data-charts", "1");
  }
})();
