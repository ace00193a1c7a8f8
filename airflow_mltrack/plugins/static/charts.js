/* Metric charts with uPlot (vendored, static/vendor/): docs/ui.md, "Charts".
   MLTrackCharts.draw(container, series, options) draws a chart group into `container`: a toolbar (metric
   picker, EMA smoothing, x axis step / relative time / wall time, log y, reset zoom) and one chart per
   `group` of series (every series in one chart when none has a group).
     series:  [{label, steps (or x), values, group?, color?, experiment_id?, name?, evaluation_set?,
                downsampled?, mins?, maxs?, gaps?, relative?, start_time?}]  (the API's curve shape fits)
     options: {title?, xLabel? ("step"), api? (".../api/": zooming into a downsampled series fetches the
               refined range), points? (1000), height? (260), legend? (true), toolbar? (true)}
   Non-finite values (null, or the API's "NaN"/"Infinity" strings) are gaps, marked by a red tick under the
   plot; `gaps` (steps) marks non-finite values inside a downsampled bucket too.
   MLTrackCharts.render(container, groupBy) draws the page's <script type="application/json"> blocks:
   groupBy "split": one chart per metric, one line per split; "experiment": one per metric and split.
   Data attributes for tests and tools: on the container data-charts (charts shown), data-smoothing,
   data-x, data-log, data-points (points drawn), data-refined (zoom fetches done); on each figure
   data-log (the log scale applied), data-sum (checksum of the drawn lines), data-gaps (markers drawn),
   data-points, data-zoomed, data-downsampled, data-xlabel, data-yticks (the y labels, |-separated). */
window.MLTrackCharts = (function () {
  "use strict";
  var PALETTE = ["#017cee", "#e8590c", "#2f9e44", "#9c36b5", "#e03131", "#0c8599", "#f08c00", "#5c7cfa", "#868e96", "#c2255c"];
  var GAP_COLOR = "#e03131";
  var X_LABELS = { step: "step", relative: "seconds since start", wall: "wall time" };
  var DEFAULT_POINTS = 1000, LOG_HELP = "Charts with values ≤ 0 stay linear (and say so)";
  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    return v && v.trim() ? v.trim() : fallback;
  }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function epoch(t) {
    if (typeof t === "number") return t;
    if (typeof t !== "string") return null;
    var ms = Date.parse(t);
    return isNaN(ms) ? null : ms / 1000;
  }
  function faint(color, alpha) {
    var ctx = document.createElement("canvas").getContext("2d"), c;
    ctx.fillStyle = "#000";
    ctx.fillStyle = color;
    c = ctx.fillStyle;
    if (c.charAt(0) === "#") {
      var n = parseInt(c.slice(1), 16);
      return "rgba(" + (n >> 16 & 255) + "," + (n >> 8 & 255) + "," + (n & 255) + "," + alpha + ")";
    }
    return c.replace(/rgba?\(([^,]+),([^,]+),([^,)]+)(,[^)]*)?\)/, "rgba($1,$2,$3," + alpha + ")");
  }
  function el(tag, attrs, text, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  /* One input series in the shape the charts use. */
  function prepare(s, i, keep) {
    var steps = (s.steps || s.x || []).slice();
    var relative = Array.isArray(s.relative) && s.relative.length === steps.length ? s.relative : null;
    return {
      label: keep ? keep.label : String(s.label != null ? s.label : s.evaluation_set + "/" + s.name),
      group: keep ? keep.group : (s.group != null ? String(s.group) : null),
      color: keep ? keep.color : (s.color || s.stroke || PALETTE[i % PALETTE.length]),
      experimentId: s.experiment_id != null ? s.experiment_id : null, name: s.name != null ? s.name : null,
      split: s.evaluation_set != null ? s.evaluation_set : null, steps: steps, values: (s.values || s.y || []).map(num),
      mins: s.mins ? s.mins.map(num) : null, maxs: s.maxs ? s.maxs.map(num) : null, gaps: (s.gaps || []).slice(),
      relative: relative, start: epoch(s.start_time), downsampled: !!s.downsampled,
    };
  }
  /* Exponential moving average, debiased (the first points are not pulled towards 0); gaps stay gaps. */
  function ema(values, w) {
    if (!w) return values.slice();
    var out = new Array(values.length), last = 0, n = 0;
    for (var i = 0; i < values.length; i++) {
      if (values[i] === null) { out[i] = null; continue; }
      last = last * w + (1 - w) * values[i];
      out[i] = last / (1 - Math.pow(w, ++n));
    }
    return out;
  }
  function xOf(s, i, mode) {
    if (mode === "step") return s.steps[i];
    var r = s.relative ? num(s.relative[i]) : null;
    if (r === null || mode === "relative") return r;
    return s.start !== null ? s.start + r : null;
  }
  /* The uPlot data of one chart: x union of every series; per series a faint raw line and the smoothed
     line (undefined where a series has no point: spanned; null at a non-finite value: a gap). */
  function build(series, mode, w) {
    var perSeries = series.map(function (s) {
      var smooth = ema(s.values, w), pts = [], bands = [], markers = [];
      for (var i = 0; i < s.steps.length; i++) {
        var x = xOf(s, i, mode);
        if (x !== null) pts.push([x, s.values[i], smooth[i]]); else continue;
        if (s.mins && s.maxs && s.mins[i] !== null && s.maxs[i] !== null) bands.push([x, s.mins[i], s.maxs[i]]);
      }
      s.gaps.forEach(function (g) {
        if (mode === "step") { pts.push([g, null, null]); markers.push(g); return; }
        for (var j = 0; j < s.steps.length; j++) {
          if (s.steps[j] >= g) { var gx = xOf(s, j, mode); if (gx !== null) markers.push(gx); return; }
        }
      });
      var listed = new Set(s.gaps);
      s.values.forEach(function (v, k) {
        var vx = v === null && !listed.has(s.steps[k]) ? xOf(s, k, mode) : null;
        if (vx !== null) markers.push(vx);
      });
      return { pts: pts, bands: bands, markers: markers };
    });
    var xs = new Set();
    perSeries.forEach(function (p) { p.pts.forEach(function (q) { xs.add(q[0]); }); });
    var x = Array.from(xs).sort(function (a, b) { return a - b; });
    var index = new Map(x.map(function (v, i) { return [v, i]; }));
    var raw = [], smooth = [], positive = true, sum = 0, points = 0;
    perSeries.forEach(function (p) {
      var r = new Array(x.length).fill(undefined), m = new Array(x.length).fill(undefined);
      p.pts.forEach(function (q) {
        var k = index.get(q[0]);
        if (q[1] === null && r[k] != null) return; // a gap at a step that also has a value: keep the value
        r[k] = q[1];
        m[k] = q[2];
      });
      r.forEach(function (v, k) {
        if (v == null) return;
        points += 1;
        sum += m[k];
        if (v <= 0) positive = false;
      });
      p.bands.forEach(function (b) { if (b[1] <= 0) positive = false; });
      raw.push(r);
      smooth.push(m);
    });
    return { data: [x].concat(raw, smooth), bands: perSeries.map(function (p) { return p.bands; }),
      markers: perSeries.map(function (p) { return p.markers; }), positive: positive && points > 0, sum: sum, points: points };
  }
  /* Tick labels that differ from each other and read back as the tick (0.0012, 0.0011; not 0.001, 0.001). */
  function sig(v) {
    for (var p = 1; p <= 15; p++) {
      var s = Number(v.toPrecision(p));
      if (Math.abs(s - v) <= Math.abs(v) * 1e-9) return Math.abs(s) >= 1e6 || Math.abs(s) < 1e-4 ? s.toExponential() : String(s);
    }
    return String(v);
  }
  function distinct(labels) {
    var shown = labels.filter(function (l) { return l !== ""; });
    return new Set(shown).size === shown.length;
  }
  function tickLabels(splits, log) {
    var finite = splits.filter(function (v) { return v != null && isFinite(v); });
    if (!finite.length) return splits.map(function () { return ""; });
    if (log) return splits.map(function (v) { return v == null || !isFinite(v) ? "" : sig(v); });
    var max = Math.max.apply(null, finite.map(Math.abs)), incr = 0;
    for (var i = 1; i < finite.length; i++) {
      var d = Math.abs(finite[i] - finite[i - 1]);
      if (d > 0 && (!incr || d < incr)) incr = d;
    }
    if (!incr) incr = max || 1;
    var exp = max !== 0 && (max >= 1e7 || max < 1e-4);
    var base = Math.max(0, Math.ceil(-Math.log10(incr) - 1e-9)), labels = [];
    for (var extra = 0; extra <= 12; extra++) {
      labels = splits.map(function (v) {
        if (v == null || !isFinite(v)) return "";
        return v === 0 ? "0" : exp ? v.toExponential(extra) : v.toFixed(Math.min(20, base + extra));
      });
      var exact = splits.every(function (v, k) { return v == null || !isFinite(v) || Math.abs(Number(labels[k]) - v) <= incr * 1e-3; });
      if (distinct(labels) && exact) break;
    }
    return labels;
  }
  function legendValue(u, v) { return v == null ? "—" : sig(v); }
  /* One chart: its figure, the series it started with (reset) and those drawn now (refined on zoom). */
  function Chart(group, title, series) {
    this.group = group;
    this.original = this.current = series;
    this.plot = null;
    this.token = 0;
    this.figure = el("figure", { "class": "chart" });
    this.figure.appendChild(el("figcaption", {}, title));
    this.note = this.figure.appendChild(el("p", { "class": "chart-note", hidden: "" }));
    this.holder = this.figure.appendChild(el("div", { "class": "chart-plot" }));
  }
  Chart.prototype.width = function () { return Math.max(this.figure.clientWidth - 16, 280); };
  Chart.prototype.create = function () {
    var chart = this, g = this.group, built = build(this.current, g.x, g.smoothing);
    var logOn = g.log && built.positive;
    if (this.plot) this.plot.destroy();
    this.built = built;
    this.note.hidden = !(g.log && !logOn);
    this.note.textContent = g.log && !logOn ? "Log scale off for this chart: it has values ≤ 0." : "";
    var fg = cssVar("--fg-muted", "#555"), grid = cssVar("--border", "#ddd"), n = this.current.length;
    var axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    var sparse = this.current.every(function (s) { return s.steps.length <= 30; });
    var series = [{ label: g.x === "step" ? g.xLabel : X_LABELS[g.x] }];
    this.current.forEach(function (s) {
      series.push({ label: s.label + " (raw)", stroke: faint(s.color, 0.3), width: 1, show: g.smoothing > 0, spanGaps: false, points: { show: false }, value: legendValue });
    });
    this.current.forEach(function (s) {
      series.push({ label: s.label, stroke: s.color, width: 2, spanGaps: false, points: { show: sparse }, value: legendValue });
    });
    var opts = {
      width: this.width(), height: g.options.height || 260, legend: { show: g.options.legend !== false },
      scales: { x: { time: g.x === "wall" }, y: logOn ? { distr: 3, log: 10 } : {} },
      axes: [
        Object.assign({ label: series[0].label }, axis),
        Object.assign({
          values: function (u, splits) {
            var labels = tickLabels(splits, logOn);
            chart.figure.setAttribute("data-yticks", labels.join("|"));
            return labels;
          },
          size: function (u, values) {
            var longest = (values || []).reduce(function (m, v) { return Math.max(m, String(v).length); }, 0);
            return Math.max(40, longest * 7 + 18);
          },
        }, axis),
      ],
      series: series,
      cursor: { drag: { x: true, y: false }, bind: { dblclick: function () { return function (e) { if (e.button === 0) chart.reset(); }; } } },
      hooks: { drawClear: [function (u) { chart.drawBands(u); }], draw: [function (u) { chart.drawMarkers(u); }],
        setSelect: [function (u) { chart.zoomed(u); }] },
    };
    this.plot = new uPlot(opts, built.data, this.holder);
    var rows = this.plot.root.querySelectorAll(".u-legend .u-series");
    for (var i = 1; i <= n && i < rows.length; i++) rows[i].style.display = "none"; // the raw twins
    this.figure.setAttribute("data-log", logOn ? "1" : "0");
    this.figure.setAttribute("data-xlabel", series[0].label);
    this.mark();
  };
  Chart.prototype.mark = function () {
    this.figure.setAttribute("data-sum", this.built.sum.toPrecision(12));
    this.figure.setAttribute("data-points", String(this.built.points));
    this.figure.setAttribute("data-downsampled", this.current.some(function (s) { return s.downsampled; }) ? "1" : "0");
  };
  /* New smoothing: the same plot, new data (the zoom stays). */
  Chart.prototype.update = function () {
    if (!this.plot) return this.create();
    var g = this.group, n = this.current.length, x = this.plot.scales.x, zoomed = this.figure.getAttribute("data-zoomed") === "1";
    this.built = build(this.current, g.x, g.smoothing);
    for (var i = 1; i <= n; i++) this.plot.setSeries(i, { show: g.smoothing > 0 });
    this.plot.setData(this.built.data, !zoomed);
    if (zoomed) this.plot.setScale("x", { min: x.min, max: x.max });
    this.mark();
  };
  Chart.prototype.drawBands = function (u) {
    var ctx = u.ctx, chart = this;
    ctx.save();
    this.built.bands.forEach(function (bands, k) {
      if (!bands.length || !u.series[chart.current.length + k + 1].show) return;
      ctx.fillStyle = faint(chart.current[k].color, 0.18);
      bands.forEach(function (b) {
        var px = u.valToPos(b[0], "x", true), top = u.valToPos(b[2], "y", true), bottom = u.valToPos(b[1], "y", true);
        if (!isFinite(px) || !isFinite(top) || !isFinite(bottom)) return;
        ctx.fillRect(px - 1, Math.min(top, bottom), 2, Math.max(Math.abs(bottom - top), 1));
      });
    });
    ctx.restore();
  };
  Chart.prototype.drawMarkers = function (u) {
    var ctx = u.ctx, drawn = 0, dpr = window.devicePixelRatio || 1, x = u.scales.x, bottom = u.bbox.top + u.bbox.height;
    ctx.save();
    ctx.fillStyle = GAP_COLOR;
    this.built.markers.forEach(function (markers) {
      markers.forEach(function (m) {
        if (m < x.min || m > x.max) return;
        ctx.fillRect(u.valToPos(m, "x", true) - dpr, bottom - 8 * dpr, 2 * dpr, 8 * dpr);
        drawn += 1;
      });
    });
    ctx.restore();
    this.figure.setAttribute("data-gaps", String(drawn));
  };
  /* A drag selection zooms (uPlot sets the x scale); a downsampled series is fetched again for the range. */
  Chart.prototype.zoomed = function (u) {
    if (u.select.width < 3) return;
    var lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
    this.figure.setAttribute("data-zoomed", "1");
    if (this.group.options.api) this.refine(lo, hi);
  };
  Chart.prototype.stepRange = function (s, lo, hi) {
    if (this.group.x === "step") return [Math.floor(lo), Math.ceil(hi)];
    var first = -1, last = -1;
    for (var i = 0; i < s.steps.length; i++) {
      var x = xOf(s, i, this.group.x);
      if (x === null || x < lo || x > hi) continue;
      if (first < 0) first = i;
      last = i;
    }
    if (first < 0) return null;
    return [s.steps[Math.max(first - 1, 0)], s.steps[Math.min(last + 1, s.steps.length - 1)]];
  };
  Chart.prototype.refine = function (lo, hi) {
    var chart = this, g = this.group, token = ++this.token;
    var jobs = this.current.map(function (s) {
      var range = s.downsampled && s.experimentId !== null && s.name !== null && s.split !== null ? chart.stepRange(s, lo, hi) : null;
      if (!range) return Promise.resolve(s);
      var url = g.options.api + "experiments/" + encodeURIComponent(s.experimentId) + "/curves?key=" +
        encodeURIComponent(s.split + "/" + s.name) + "&points=" + (g.options.points || DEFAULT_POINTS) +
        "&start=" + range[0] + "&end=" + range[1];
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (found) { g.refined += 1; return found && found.length ? prepare(found[0], 0, s) : s; });
    });
    if (!jobs.some(function (j, k) { return chart.current[k].downsampled; })) return;
    Promise.all(jobs).then(function (series) {
      if (token !== chart.token) return;
      chart.current = series;
      chart.built = build(series, g.x, g.smoothing);
      chart.plot.setData(chart.built.data, false);
      chart.plot.setScale("x", { min: lo, max: hi });
      chart.mark();
      g.mark();
    }).catch(function (error) {
      chart.note.hidden = false;
      chart.note.textContent = "The zoomed range could not be loaded (" + error.message + ").";
    });
  };
  Chart.prototype.reset = function () {
    this.token += 1;
    this.current = this.original;
    this.figure.setAttribute("data-zoomed", "0");
    this.built = build(this.current, this.group.x, this.group.smoothing);
    if (this.plot) this.plot.setData(this.built.data, true);
    this.mark();
    this.group.mark();
  };
  /* A chart group: the toolbar state and its charts. */
  function Group(container, series, options) {
    this.container = container;
    this.options = options || {};
    this.xLabel = this.options.xLabel || "step";
    this.smoothing = this.refined = 0;
    this.x = "step";
    this.log = this.combine = false;
    this.series = series.map(function (s, i) { return prepare(s, i); });
    var names = this.names = [];
    this.series.forEach(function (s) { var k = s.group === null ? "" : s.group; if (names.indexOf(k) < 0) names.push(k); });
    this.shown = new Set(names);
    this.hasTime = this.series.some(function (s) { return s.relative !== null; });
    this.hasWall = this.series.some(function (s) { return s.relative !== null && s.start !== null; });
    if (this.options.toolbar !== false) container.appendChild(this.toolbar());
    this.grid = container.appendChild(el("div", { "class": "chart-grid" }));
    this.layout();
    var group = this, pending = null, resize = function () {
      group.charts.forEach(function (c) { if (c.plot) c.plot.setSize({ width: c.width(), height: group.options.height || 260 }); });
    };
    window.addEventListener("resize", function () { clearTimeout(pending); pending = setTimeout(resize, 150); });
  }
  Group.prototype.toolbar = function () {
    var group = this, bar = el("div", { "class": "chart-toolbar", role: "toolbar", "aria-label": "Chart controls" });
    if (this.names.length > 1) {
      var picker = bar.appendChild(el("fieldset", { "class": "chart-metrics" }, null, [el("legend", {}, "Metrics")]));
      this.names.forEach(function (name) {
        var box = el("input", { type: "checkbox", value: name, checked: "" });
        box.addEventListener("change", function () {
          if (box.checked) group.shown.add(name); else group.shown.delete(name);
          group.layout();
        });
        picker.appendChild(el("label", {}, null, [box, " " + name]));
      });
      var one = el("input", { type: "checkbox", name: "combine" });
      one.addEventListener("change", function () { group.combine = one.checked; group.layout(); });
      bar.appendChild(el("label", { title: "Every checked metric in one chart" }, null, [one, " One chart"]));
    }
    var slider = el("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0", name: "smoothing", "aria-label": "Smoothing (EMA weight)" });
    var shown = el("output", {}, "0"), frame = null;
    slider.addEventListener("input", function () {
      shown.textContent = slider.value;
      if (frame) return;
      frame = requestAnimationFrame(function () {
        frame = null;
        group.smoothing = Math.min(Math.max(Number(slider.value) || 0, 0), 0.99);
        group.charts.forEach(function (c) { c.update(); });
        group.mark();
      });
    });
    bar.appendChild(el("label", { "class": "chart-smoothing" }, null, ["Smoothing ", slider, shown]));
    var select = el("select", { name: "x-axis" });
    [["step", this.xLabel], ["relative", "relative time"], ["wall", "wall time"]].forEach(function (o) {
      var off = (o[0] === "relative" && !group.hasTime) || (o[0] === "wall" && !group.hasWall);
      select.appendChild(el("option", { value: o[0] }, o[1] + (off ? " (no times recorded)" : ""))).disabled = off;
    });
    select.addEventListener("change", function () { group.x = select.value; group.redraw(); });
    bar.appendChild(el("label", {}, null, ["X axis ", select]));
    var log = this.logBox = el("input", { type: "checkbox", name: "log" });
    log.addEventListener("change", function () { group.log = log.checked; group.redraw(); });
    bar.appendChild(el("label", { title: LOG_HELP }, null, [log, " Log y"]));
    var reset = bar.appendChild(el("button", { type: "button", "class": "chart-reset" }, "Reset zoom"));
    reset.addEventListener("click", function () { group.charts.forEach(function (c) { c.reset(); }); });
    bar.appendChild(el("span", { "class": "chart-hint muted" }, "Drag to zoom, double-click to reset."));
    return bar;
  };
  /* The charts for the checked metrics (one per group, or one for all), drawn anew. */
  Group.prototype.layout = function () {
    var group = this, chosen = this.series.filter(function (s) { return group.shown.has(s.group === null ? "" : s.group); });
    (this.charts || []).forEach(function (c) { if (c.plot) c.plot.destroy(); });
    this.grid.textContent = "";
    this.charts = [];
    if (this.combine) {
      var merged = chosen.map(function (s, i) {
        return Object.assign({}, s, { label: s.group ? s.group + " · " + s.label : s.label, color: PALETTE[i % PALETTE.length] });
      });
      if (merged.length) this.charts.push(new Chart(this, this.options.title || "Metrics", merged));
    } else {
      this.names.forEach(function (name) {
        if (!group.shown.has(name)) return;
        var own = chosen.filter(function (s) { return (s.group === null ? "" : s.group) === name; });
        if (own.length) group.charts.push(new Chart(group, name || group.options.title || "", own));
      });
    }
    this.charts.forEach(function (c) { group.grid.appendChild(c.figure); });
    this.redraw();
  };
  Group.prototype.redraw = function () {
    if (typeof uPlot === "undefined") return;
    this.charts.forEach(function (c) { c.create(); });
    var positive = this.charts.some(function (c) { return c.built && c.built.positive; });
    if (this.logBox) {
      this.logBox.disabled = !positive && !this.log;
      this.logBox.parentNode.title = positive ? LOG_HELP : "Every chart has values ≤ 0: no log scale";
    }
    this.mark();
  };
  Group.prototype.mark = function () {
    var c = this.container, points = 0;
    this.charts.forEach(function (chart) { points += chart.built ? chart.built.points : 0; });
    [["charts", this.charts.length], ["smoothing", this.smoothing], ["x", this.x], ["log", this.log ? 1 : 0],
      ["points", points], ["refined", this.refined]].forEach(function (a) { c.setAttribute("data-" + a[0], String(a[1])); });
  };
  function draw(container, series, options) {
    if (container) container.classList.add("chart-group");
    return container ? new Group(container, series || [], options || {}) : null;
  }
  function render(container, groupBy) {
    if (!container) return null;
    var labelsNode = document.getElementById("mltrack-labels"), bySplit = groupBy === "split";
    var labels = labelsNode ? JSON.parse(labelsNode.textContent) : {};
    var series = JSON.parse(document.getElementById("mltrack-curves").textContent).map(function (c) {
      return Object.assign({}, c, {
        group: bySplit ? c.name : c.name + " (" + c.evaluation_set + ")",
        label: bySplit ? c.evaluation_set : (labels[String(c.experiment_id)] || "#" + c.experiment_id),
      });
    });
    return draw(container, series, { api: container.getAttribute("data-api") || null });
  }
  return { draw: draw, render: render, ema: ema, tickLabels: tickLabels };
})();

/* Started by the page's <script src="charts.js" data-group-by="..."> (no inline script: the pages' CSP). */
(function () {
  var script = document.currentScript;
  var groupBy = script && script.getAttribute("data-group-by");
  if (groupBy) MLTrackCharts.render(document.getElementById("charts"), groupBy);
})();
