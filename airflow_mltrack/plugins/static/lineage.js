/* The lineage graph (templates/lineage.html): the bounded graph of store/reads/lineage.lineage_graph, read
   from <script type="application/json" id="lineage-data">, drawn as SVG in layers left to right (the layer
   of each node comes from the server; within a layer nodes are ordered by the mean position of their
   predecessors), with pan (drag) and zoom (wheel, buttons). Nodes link to their pages. Names are set as
   text (never markup) and isolated (U+2068..U+2069) against bidirectional control characters. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var NODE_W = 188, NODE_H = 46, COL_W = 250, ROW_H = 60, PAD = 20, NAME_MAX = 26;
  var KIND_LABEL = { dataset: "dataset", job: "preprocessing", experiment: "experiment", model: "model", endpoint: "endpoint" };
  var MORE_LABEL = { dataset: "datasets", job: "jobs", experiment: "experiments", model: "models", endpoint: "endpoints" };

  var holder = document.getElementById("lineage-graph");
  var data = document.getElementById("lineage-data");
  if (!holder || !data) {
    return;
  }
  var graph = JSON.parse(data.textContent);

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, attrs[key]);
    });
    if (parent) {
      parent.appendChild(node);
    }
    return node;
  }

  function isolate(text) {
    return "\u2068" + text + "\u2069";
  }

  function shorten(text, max) {
    var chars = Array.from(String(text));
    return chars.length > max ? chars.slice(0, max - 1).join("") + "…" : chars.join("");
  }

  function version(v) {
    if (v === null || v === undefined) {
      return "";
    }
    return /^\d{1,4}(\.\d+){0,3}([-+][0-9A-Za-z.]+)?$/.test(v) ? "v" + v : String(v); // rendering.fmt_version
  }

  function subtitle(n) {
    if (n.kind === "more") {
      return "not drawn";
    }
    var parts = [KIND_LABEL[n.kind] || n.kind];
    if (n.kind === "experiment") {
      parts.push("#" + n.ref);
    }
    if (n.status) {
      parts.push(n.status);
    }
    return parts.join(" · ");
  }

  /* Layers: a column per layer number; rows ordered by the mean row of the predecessors. */
  var byId = {};
  var columns = {};
  graph.nodes.forEach(function (n) {
    byId[n.id] = n;
    (columns[n.layer] = columns[n.layer] || []).push(n);
  });
  var preds = {};
  graph.edges.forEach(function (e) {
    (preds[e.target] = preds[e.target] || []).push(e.source);
  });
  var layerNumbers = Object.keys(columns).map(Number).sort(function (a, b) { return a - b; });
  var tallest = 0;
  layerNumbers.forEach(function (number, col) {
    var nodes = columns[number];
    nodes.forEach(function (n, i) {
      var from = (preds[n.id] || []).map(function (p) { return byId[p]; }).filter(function (p) { return p && p.row !== undefined; });
      n.order = n.kind === "more" ? Infinity : from.length ? from.reduce(function (s, p) { return s + p.row; }, 0) / from.length : i;
      n.index = i;
    });
    nodes.sort(function (a, b) { return a.order - b.order || a.index - b.index; });
    nodes.forEach(function (n, row) {
      n.row = row;
      n.col = col;
    });
    tallest = Math.max(tallest, nodes.length);
  });
  var width = layerNumbers.length * COL_W - (COL_W - NODE_W) + 2 * PAD;
  var height = tallest * ROW_H - (ROW_H - NODE_H) + 2 * PAD;
  graph.nodes.forEach(function (n) {
    var count = columns[n.layer].length;
    var offset = ((tallest - count) * ROW_H) / 2; // each column centred
    n.x = PAD + n.col * COL_W;
    n.y = PAD + offset + n.row * ROW_H;
  });

  var svg = el("svg", { class: "lineage-svg", role: "img", "aria-label": "Lineage graph", viewBox: "0 0 " + width + " " + height });
  var view = el("g", { class: "lineage-view" }, svg);
  var edgeLayer = el("g", { class: "lineage-edges" }, view);
  var nodeLayer = el("g", { class: "lineage-nodes" }, view);

  graph.edges.forEach(function (e) {
    var a = byId[e.source], b = byId[e.target];
    if (!a || !b) {
      return;
    }
    var x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mid = (x1 + x2) / 2;
    var cls = "edge" + (e.active === false ? " retired" : "") + (e.active === true ? " active" : "");
    var path = el("path", { class: cls, d: "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2 }, edgeLayer);
    if (e.traffic !== null && e.traffic !== undefined) {
      var label = e.traffic + "%" + (e.active ? "" : " (retired)");
      el("title", {}, path).textContent = label;
      var text = el("text", { class: "edge-label", x: x1 + 6, y: y1 - 5 }, edgeLayer); // by its model
      text.textContent = label;
    }
  });

  graph.nodes.forEach(function (n) {
    var group = n.href ? el("a", { href: n.href, class: "lineage-node kind-" + n.kind }, nodeLayer) : el("g", { class: "lineage-node kind-" + n.kind }, nodeLayer);
    if (n.id === graph.root) {
      group.setAttribute("class", group.getAttribute("class") + " root");
    }
    group.setAttribute("data-node", n.id);
    var full = n.kind === "more" ? "+" + n.count + " more " + (MORE_LABEL[n.name] || n.name) : n.name + (n.version ? " " + version(n.version) : "");
    el("title", {}, group).textContent = isolate(full) + " — " + subtitle(n);
    el("rect", { x: n.x, y: n.y, width: NODE_W, height: NODE_H, rx: 6 }, group);
    var name = el("text", { x: n.x + 10, y: n.y + 19, class: "name" }, group);
    name.textContent = isolate(shorten(full, NAME_MAX));
    var sub = el("text", { x: n.x + 10, y: n.y + 36, class: "sub" }, group);
    sub.textContent = subtitle(n);
  });

  svg.style.height = Math.max(160, Math.min(height, 640)) + "px"; // bounded on the page at any size
  holder.appendChild(svg);
  holder.setAttribute("data-drawn", String(graph.nodes.length));

  /* Pan and zoom: the viewBox moves; "Fit" shows the whole graph. */
  var box = { x: 0, y: 0, w: width, h: height };
  function apply() {
    svg.setAttribute("viewBox", box.x + " " + box.y + " " + box.w + " " + box.h);
  }
  function zoom(factor, cx, cy) {
    var w = Math.min(Math.max(box.w * factor, 80), width * 4);
    var h = (box.h * w) / box.w;
    box.x = cx - ((cx - box.x) * w) / box.w;
    box.y = cy - ((cy - box.y) * h) / box.h;
    box.w = w;
    box.h = h;
    apply();
  }
  function toGraph(event) {
    var rect = svg.getBoundingClientRect();
    var scale = Math.max(box.w / rect.width, box.h / rect.height); // preserveAspectRatio "meet"
    var dx = (rect.width * scale - box.w) / 2, dy = (rect.height * scale - box.h) / 2;
    return { x: box.x - dx + (event.clientX - rect.left) * scale, y: box.y - dy + (event.clientY - rect.top) * scale, scale: scale };
  }
  svg.addEventListener("wheel", function (event) {
    event.preventDefault();
    var p = toGraph(event);
    zoom(Math.pow(1.0015, event.deltaY), p.x, p.y);
  }, { passive: false });
  var drag = null, moved = false;
  svg.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) {
      return;
    }
    drag = { x: event.clientX, y: event.clientY, bx: box.x, by: box.y, scale: toGraph(event).scale };
    moved = false;
  });
  window.addEventListener("pointermove", function (event) {
    if (!drag) {
      return;
    }
    var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) {
      moved = true;
      svg.classList.add("dragging");
    }
    box.x = drag.bx - dx * drag.scale;
    box.y = drag.by - dy * drag.scale;
    apply();
  });
  window.addEventListener("pointerup", function () {
    drag = null;
    svg.classList.remove("dragging");
  });
  svg.addEventListener("click", function (event) {
    if (moved) { // a drag that ended on a node does not open it
      event.preventDefault();
      event.stopPropagation();
      moved = false;
    }
  }, true);
  var tools = holder.querySelector(".lineage-tools");
  if (tools) {
    tools.hidden = false;
    tools.addEventListener("click", function (event) {
      var what = event.target && event.target.getAttribute && event.target.getAttribute("data-zoom");
      if (what === "fit") {
        box = { x: 0, y: 0, w: width, h: height };
        apply();
      } else if (what) {
        zoom(what === "in" ? 0.8 : 1.25, box.x + box.w / 2, box.y + box.h / 2);
      }
    });
  }
})();
