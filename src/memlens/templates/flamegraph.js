// memlens flame graph renderer (memlens' own; canvas). The page data
// (memlens/flamegraph.py, docs/FLAMEGRAPH.md "Page data") holds a table of
// frames, a tree of stack nodes, and per view a flat list of rows
// [node, type, thread, bytes, blocks]; the graph is rebuilt from the rows
// under the current filters (type, thread, hidden frames, inverted, types as
// frames), so every switch happens in the page, without regenerating it.
var ROW = 5, BOX_H = 18, MIN_PX = 0.5;
var S = DATA.S, F = DATA.F, P = DATA.P, NF = DATA.NF;
var state = {view: DATA.default_view, layout: "flame", inverted: !!DATA.inverted, type: -1, thread: -1,
             typeFrames: false, hideImport: true, search: "", range: null, zoom: []};
var tree = null, boxes = [], matchSet = null;

function $(id) { return document.getElementById(id); }
function human(n) {
  var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0, v = Math.abs(n);
  if (v < 1024) return (n < 0 ? "-" : "") + Math.round(v) + " B";
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (n < 0 ? "-" : "") + v.toFixed(1) + " " + units[i];
}
function pct(part, whole) { return whole > 0 ? (100 * part / whole).toFixed(1) + "%" : "-"; }
function count(n) { return n.toLocaleString("en-US"); }
function text(node, s) { node.textContent = s; return node; }
function make(tag, s, cls) {
  var e = document.createElement(tag);
  if (s !== undefined) e.textContent = s;
  if (cls) e.className = cls;
  return e;
}

// Frames: F holds [function, file, line] as indices into S (line a number).
function frameName(f) { return S[F[3 * f]]; }
function frameFile(f) { return S[F[3 * f + 1]]; }
function frameLine(f) { return F[3 * f + 2]; }
// nstacks: native frames (C functions; file = the library) are drawn in blue-greys
var nativeFrame = new Set(DATA.NATIVE || []);
function frameLabel(f) {
  var file = frameFile(f), base = file.slice(file.lastIndexOf("/") + 1);
  if (nativeFrame.has(f)) return "[native] " + frameName(f) + " " + base;
  return frameName(f) + " " + base + ":" + frameLine(f);
}
var importFrame = F.length ? new Uint8Array(F.length / 3) : new Uint8Array(0);
for (var fi = 0; fi < importFrame.length; fi++)
  importFrame[fi] = frameFile(fi).indexOf("<frozen importlib._bootstrap") === 0 ? 1 : 0;

// Stack node -> its frames from the outermost in (cached).
var pathCache = new Array(P.length);
function nodePath(n) {
  if (pathCache[n]) return pathCache[n];
  var out = [];
  for (var k = n; k > 0; k = P[k]) out.push(NF[k]);
  out.reverse();
  pathCache[n] = out;
  return out;
}

// A graph node: key (frame index, or -2 - type for a type frame), values,
// bytes per type, children by key.
function gnode(key, parent) {
  return {key: key, parent: parent, bytes: 0, blocks: 0, selfBytes: 0, selfBlocks: 0, base: 0,
          types: new Map(), kids: new Map(), depth: parent ? parent.depth + 1 : 0};
}
// The graph node at the end of path (made as needed).
function walkTo(root, path) {
  var g = root;
  for (var i = 0; i < path.length; i++) {
    var c = g.kids.get(path[i]);
    if (!c) { c = gnode(path[i], g); g.kids.set(path[i], c); }
    g = c;
  }
  return g;
}
// Totals from the self values, children first: each row touched one node,
// so a rebuild costs rows + nodes x types, not rows x depth.
function finish(g) {
  g.kids.forEach(function (c) {
    finish(c);
    g.bytes += c.bytes; g.blocks += c.blocks; g.base += c.base;
    c.types.forEach(function (v, t) { g.types.set(t, (g.types.get(t) || 0) + v); });
  });
}

// The rows of the current view, or of the selected time range: what was
// held at the highest bucket peak k of the range, the sum of the steps of
// each (node, type) up to k (thread -1: the time data have no thread).
var rangeCache = {k: -1, rows: null};
function rangeRows(k) {
  if (rangeCache.k === k) return rangeCache.rows;
  var st = DATA.temporal.steps, nt = DATA.types.length, held = new Map(), rows = [];
  for (var i = 0; i < st.length; i += 5) {
    if (st[i + 2] > k) continue;
    var key = st[i] * nt + st[i + 1], h = held.get(key);
    if (!h) { h = [st[i], st[i + 1], 0, 0]; held.set(key, h); }
    h[2] += st[i + 3]; h[3] += st[i + 4];
  }
  held.forEach(function (h) { if (h[2] > 0 || h[3] > 0) rows.push(h[0], h[1], -1, h[2], h[3]); });
  rangeCache = {k: k, rows: rows};
  return rows;
}
function currentRows() {
  if (!state.range) return {rows: DATA.views[state.view].rows, at: -1};
  var T = DATA.temporal, b0 = state.range[0], b1 = state.range[1], best = b0;
  for (var b = b0; b <= b1; b++) if (T.top[b] > T.top[best]) best = b;
  return {rows: rangeRows(best), at: best};
}

function typed(path, type) {
  if (state.typeFrames) path = path.concat([-2 - type]);
  if (state.inverted) path = path.slice().reverse();
  return path;
}
function build() {
  var cur = currentRows(), root = gnode(-1, null), sites = new Map(), nt = DATA.types.length;
  var base = DATA.diff && !state.range ? DATA.views[state.view].base : [];
  [cur.rows, base].forEach(function (rows, isBase) {
    var leaves = new Map();  // a row's graph node depends on its node (and type) only
    for (var i = 0; i < rows.length; i += ROW) {
      var node = rows[i], type = rows[i + 1], bytes = rows[i + 3], blocks = rows[i + 4];
      if (state.type >= 0 && type !== state.type) continue;
      if (state.thread >= 0 && rows[i + 2] >= 0 && rows[i + 2] !== state.thread) continue;
      var key = state.typeFrames ? node * nt + type : node, at = leaves.get(key);
      if (!at) {
        var path = nodePath(node);
        if (state.hideImport) path = path.filter(function (f) { return !importFrame[f]; });
        at = {g: walkTo(root, typed(path, type)), site: path.length ? path[path.length - 1] : -1};
        leaves.set(key, at);
      }
      var g = at.g;
      if (isBase) { g.base += bytes; continue; }
      g.bytes += bytes; g.blocks += blocks;
      g.selfBytes += bytes; g.selfBlocks += blocks;
      g.types.set(type, (g.types.get(type) || 0) + bytes);
      var s = sites.get(at.site);
      if (!s) { s = {frame: at.site, bytes: 0, blocks: 0}; sites.set(at.site, s); }
      s.bytes += bytes; s.blocks += blocks;
    }
  });
  finish(root);
  tree = {root: root, sites: sites, at: cur.at};
}

function keyLabel(key) {
  if (key === -1) return "all";
  if (key <= -2) return "[" + DATA.types[-2 - key] + "]";
  return frameLabel(key);
}
function topTypes(g, n) {
  var list = Array.from(g.types.entries()).sort(function (a, b) { return b[1] - a[1]; });
  return list.slice(0, n).map(function (e) { return DATA.types[e[0]] + " " + pct(e[1], g.bytes); }).join(", ");
}
function matches(g) {
  if (!state.search || g.key === -1) return false;
  var q = state.search.toLowerCase();
  if (g.key <= -2) return DATA.types[-2 - g.key].toLowerCase().indexOf(q) >= 0;
  return frameName(g.key).toLowerCase().indexOf(q) >= 0 || frameFile(g.key).toLowerCase().indexOf(q) >= 0;
}

// Colours: warm hues from the function name (stable across redraws), types in
// green-blue, search matches in magenta.
function hash(s) { var h = 0; for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h >>> 0; }
function colour(g) {
  if (matchSet && matchSet.has(g)) return "#e040e0";
  if (DATA.diff && !state.range) {  // growth red, shrink blue, by the share of change
    var before = g.base || 0, d = g.bytes - before, r = Math.min(1, Math.abs(d) / Math.max(g.bytes, before, 1));
    return d === 0 ? "#eeeeee" : "hsl(" + (d > 0 ? 0 : 220) + ",80%," + Math.round(92 - 40 * r) + "%)";
  }
  if (g.key === -1) return "#c8c8c8";
  if (g.key <= -2) { var t = hash(DATA.types[-2 - g.key]); return "hsl(" + (160 + t % 60) + ",55%," + (55 + t % 15) + "%)"; }
  var h = hash(frameName(g.key));
  if (nativeFrame.has(g.key)) return "hsl(" + (195 + h % 30) + ",35%," + (62 + (h >> 8) % 15) + "%)";  // nstacks
  return "hsl(" + (h % 55) + "," + (70 + (h >> 8) % 25) + "%," + (55 + (h >> 16) % 15) + "%)";
}

function focusNode() { return state.zoom.length ? state.zoom[state.zoom.length - 1] : tree.root; }

// Lay out and draw: the focused node takes the full width, its ancestors are
// drawn full width too; a box narrower than MIN_PX is not drawn (it stays
// part of its parent's width: detail appears on zoom).
function draw() {
  var canvas = $("graph"), box = $("graph-box");
  var W = Math.max(400, box.clientWidth), focus = focusNode();
  var chain = [];
  for (var a = focus; a; a = a.parent) chain.unshift(a);
  var depth = maxDepth(focus, W);
  var H = (chain.length + depth) * BOX_H + 4;
  var dpr = window.devicePixelRatio || 1;
  canvas.width = W * dpr; canvas.height = H * dpr;
  canvas.style.width = W + "px"; canvas.style.height = H + "px";
  var ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px sans-serif";
  ctx.textBaseline = "middle";
  boxes = [];
  var rowY = function (level) {
    return state.layout === "icicle" ? level * BOX_H : H - (level + 1) * BOX_H;
  };
  chain.forEach(function (g, i) { put(ctx, g, 0, W, rowY(i)); });
  var base = chain.length - 1;
  (function walk(g, x, w, level) {
    var kids = Array.from(g.kids.values()).sort(function (p, q) { return q.bytes - p.bytes; });
    var scale = g.bytes > 0 ? w / g.bytes : 0;
    kids.forEach(function (c) {
      var cw = c.bytes * scale;
      if (cw >= MIN_PX) {
        put(ctx, c, x, cw, rowY(base + level + 1));
        walk(c, x, cw, level + 1);
      }
      x += cw;
    });
  })(focus, 0, W, 0);
  canvas.dataset.boxes = String(boxes.length);
}
function maxDepth(g, W) {
  var best = 0;
  (function walk(n, w, d) {
    if (d > best) best = d;
    var scale = n.bytes > 0 ? w / n.bytes : 0;
    n.kids.forEach(function (c) { if (c.bytes * scale >= MIN_PX) walk(c, c.bytes * scale, d + 1); });
  })(g, W, 0);
  return best;
}
function put(ctx, g, x, w, y) {
  boxes.push({g: g, x: x, y: y, w: w});
  ctx.fillStyle = colour(g);
  ctx.fillRect(x, y, Math.max(w - 0.5, 0.5), BOX_H - 1);
  if (w > 30) {
    var label = keyLabel(g.key), room = Math.floor((w - 6) / 6.5);
    if (label.length > room) label = room > 2 ? label.slice(0, room - 1) + "\u2026" : "";
    ctx.fillStyle = "#000";
    ctx.fillText(label, x + 3, y + BOX_H / 2);
  }
}
function boxAt(px, py) {
  for (var i = boxes.length - 1; i >= 0; i--) {
    var b = boxes[i];
    if (px >= b.x && px < b.x + b.w && py >= b.y && py < b.y + BOX_H) return b;
  }
  return null;
}

function describe(g) {
  var total = tree.root.bytes, focus = focusNode(), lines = [];
  lines.push(keyLabel(g.key));
  if (g.key >= 0) lines.push(nativeFrame.has(g.key) ? "native, in " + frameFile(g.key) : frameFile(g.key) + ":" + frameLine(g.key));
  var share = pct(g.bytes, total) + " of the view";
  if (focus !== tree.root) share += ", " + pct(g.bytes, focus.bytes) + " of the zoomed frame";
  lines.push(human(g.bytes) + " (" + count(g.bytes) + " bytes) in " + count(g.blocks) + " blocks, " + share);
  lines.push(human(g.bytes) + ": " + topTypes(g, 4));
  if (DATA.diff && !state.range) {
    var d = g.bytes - (g.base || 0);
    lines.push("before " + human(g.base || 0) + ", after " + human(g.bytes) + ": " +
               (d > 0 ? "+" : "") + human(d) + " (" + (d > 0 ? "+" : "") + count(d) + " bytes)");
  }
  if (g.selfBytes) lines.push((DATA.merged_nodes ? "here and in small callees: " : "here (self): ") + human(g.selfBytes) + " in " + count(g.selfBlocks) + " blocks");
  return lines.concat(holderLines(g));
}

// ---- the "end" (leaks) view: what holds each leak group, from the heap at
// exit records (DATA.holders, flamegraph.py _holders). A frame lists the
// groups made at its line; a type frame only its type's. Text nodes only.
function holderLines(g) {
  if (!DATA.holders || !DATA.holders.length || state.view !== "end" || state.range) return [];
  var frame = -1, type = -1;
  [g, g.parent].forEach(function (n) {
    if (!n) return;
    if (n.key >= 0 && frame < 0) frame = n.key;
    if (n.key <= -2 && type < 0) type = -2 - n.key;
  });
  if (frame < 0) return [];
  var out = [];
  DATA.holders.forEach(function (h) {
    if (h.file !== frameFile(frame) || h.line !== frameLine(frame) || h["function"] !== frameName(frame)) return;
    if (type >= 0 && h.type !== DATA.types[type]) return;
    var line = h.type + " (" + count(h.count) + " blocks) held by " + h.path;
    if (h.held < h.count) line += " (" + count(h.held) + " of them)";
    if (h.retained) line += " (retains " + human(h.retained) + ")";
    out.push(line);
  });
  return out.slice(0, 5);
}
function showTip(b, px, py) {
  var tip = $("tooltip"), g = b.g;
  while (tip.firstChild) tip.removeChild(tip.firstChild);
  describe(g).forEach(function (line) { tip.appendChild(make("div", line)); });
  if (DATA.SRC && g.key >= 0 && DATA.SRC[g.key]) tip.appendChild(make("div", DATA.SRC[g.key].trim(), "src"));
  tip.style.display = "block";
  var W = $("graph-box").clientWidth;
  tip.style.left = Math.min(px + 12, Math.max(0, W - 420)) + "px";
  tip.style.top = (py + 16) + "px";
}

function crumbs() {
  var box = $("crumbs");
  while (box.firstChild) box.removeChild(box.firstChild);
  var chain = [tree.root].concat(state.zoom);
  chain.forEach(function (g, i) {
    var btn = make("button", keyLabel(g.key));
    btn.addEventListener("click", function () { state.zoom = state.zoom.slice(0, i); draw(); crumbs(); });
    box.appendChild(btn);
  });
}

function searchInfo() {
  matchSet = null;
  var info = $("search-info");
  if (!state.search) { text(info, ""); return; }
  matchSet = new Set();
  var sum = 0, blocks = 0;
  (function walk(g, inside) {
    var m = matches(g);
    if (m) matchSet.add(g);
    if (m && !inside) { sum += g.bytes; blocks += g.blocks; }
    g.kids.forEach(function (c) { walk(c, inside || m); });
  })(tree.root, false);
  info.dataset.bytes = String(sum);
  text(info, "matched: " + human(sum) + " in " + count(blocks) + " blocks, " + pct(sum, tree.root.bytes) + " of the view");
}

// The types and sites tables: sortable, rows filter (type) or zoom (site).
var sortKeys = {"types-table": {key: "bytes", desc: true}, "sites-table": {key: "bytes", desc: true}};
function fillTable(id, rows, onClick, selected) {
  var sk = sortKeys[id], body = $(id).querySelector("tbody");
  rows.sort(function (a, b) {
    var x = a[sk.key], y = b[sk.key], c = x < y ? -1 : x > y ? 1 : 0;
    return sk.desc ? -c : c;
  });
  while (body.firstChild) body.removeChild(body.firstChild);
  rows.slice(0, 200).forEach(function (r) {
    var tr = make("tr");
    tr.appendChild(make("td", r.name, "name"));
    tr.appendChild(make("td", human(r.bytes), "num"));
    tr.appendChild(make("td", count(r.blocks), "num"));
    tr.dataset.bytes = String(r.bytes);
    if (selected(r)) tr.className = "selected";
    tr.addEventListener("click", function () { onClick(r); });
    body.appendChild(tr);
  });
}
function tables() {
  var types = new Map(), rows = currentRows().rows;
  // the types table ignores the type filter (it is the way to change it)
  for (var i = 0; i < rows.length; i += ROW) {
    if (state.thread >= 0 && rows[i + 2] >= 0 && rows[i + 2] !== state.thread) continue;
    var t = types.get(rows[i + 1]);
    if (!t) { t = {type: rows[i + 1], name: DATA.types[rows[i + 1]], bytes: 0, blocks: 0}; types.set(rows[i + 1], t); }
    t.bytes += rows[i + 3]; t.blocks += rows[i + 4];
  }
  fillTable("types-table", Array.from(types.values()), function (r) {
    setType(state.type === r.type ? -1 : r.type);
  }, function (r) { return r.type === state.type; });
  var sites = Array.from(tree.sites.values()).map(function (s) {
    return {frame: s.frame, name: s.frame >= 0 ? frameLabel(s.frame) : "<no Python stack>", bytes: s.bytes, blocks: s.blocks};
  });
  fillTable("sites-table", sites, function (r) { zoomToFrame(r.frame); }, function () { return false; });
}
function setType(t) {
  state.type = t;
  $("type-filter").value = String(t);
  refresh();
}
// Zoom on the biggest box of a frame, and highlight every box of it.
function zoomToFrame(f) {
  if (f < 0) return;
  var best = null;
  (function walk(g) {
    if (g.key === f && (!best || g.bytes > best.bytes)) best = g;
    g.kids.forEach(walk);
  })(tree.root);
  state.search = frameName(f);
  $("search").value = state.search;
  searchInfo();
  state.zoom = [];
  if (best) for (var a = best; a && a !== tree.root; a = a.parent) state.zoom.unshift(a);
  draw(); crumbs();
}

// Zoom survives a rebuild when the same path still exists.
function rezoom(oldZoom) {
  var keys = oldZoom.map(function (g) { return g.key; }), g = tree.root, out = [];
  for (var i = 0; i < keys.length; i++) {
    g = g.kids.get(keys[i]);
    if (!g) break;
    out.push(g);
  }
  state.zoom = out;
}
function refresh(keepZoom) {
  var old = state.zoom;
  build();
  if (keepZoom) rezoom(old); else state.zoom = [];
  searchInfo();
  draw(); crumbs(); tables(); facts();
}
function facts() {
  var v = DATA.views[state.view], f = $("facts");
  var what = state.range ? rangeLabel() : v.label;
  f.dataset.total = String(tree.root.bytes);
  if (DATA.diff && !state.range) what = "after: " + what + " (before " + human(tree.root.base || 0) + ")";
  text(f, what + ": " + human(tree.root.bytes) + " (" + count(tree.root.bytes) + " bytes) in " +
       count(tree.root.blocks) + " blocks" + (DATA.merged_nodes ? " - " + count(DATA.merged_nodes) +
       " call paths holding less than " + (100 * DATA.merge_below) + "% of every view are merged into their caller" : "") +
       (DATA.warnings && DATA.warnings.length ? " - warning: " + DATA.warnings.join("; ") : ""));
}

// The heap and RSS over time, the peak marked; dragging selects a range.
var TL = {L: 70, R: 10, T: 10, B: 22};
function chartGeom() {
  var c = $("timeline"), W = c.width, H = c.height, ch = DATA.chart;
  var tEnd = Math.max(ch.end, ch.t.length ? ch.t[ch.t.length - 1] : 0, 1e-6);
  var top = 1;
  ch.heap.forEach(function (v) { if (v > top) top = v; });
  ch.rss.forEach(function (v) { if (v > top) top = v; });
  if (ch.peak.heap > top) top = ch.peak.heap;
  top *= 1.1;
  return {W: W, H: H, tEnd: tEnd, x: function (t) { return TL.L + (W - TL.L - TL.R) * t / tEnd; },
          y: function (v) { return TL.T + (H - TL.T - TL.B) * (1 - v / top); },
          t: function (px) { return (px - TL.L) / (W - TL.L - TL.R) * tEnd; }, top: top};
}
function drawChart(sel) {
  var c = $("timeline"), ctx = c.getContext("2d"), g = chartGeom(), ch = DATA.chart;
  ctx.clearRect(0, 0, g.W, g.H);
  ctx.font = "11px sans-serif";
  ctx.strokeStyle = "#999"; ctx.strokeRect(TL.L, TL.T, g.W - TL.L - TL.R, g.H - TL.T - TL.B);
  ctx.fillStyle = "#333"; ctx.textBaseline = "middle";
  ctx.fillText(human(g.top / 1.1), 4, g.y(g.top / 1.1)); ctx.fillText("0 B", 4, g.y(0));
  ctx.fillText("0 s", TL.L, g.H - 8); ctx.fillText(g.tEnd.toFixed(3) + " s", g.W - TL.R - 50, g.H - 8);
  var shade = sel || (state.range && DATA.temporal ? [bucketStart(state.range[0]), bucketEnd(state.range[1])] : null);
  if (shade) {
    ctx.fillStyle = "rgba(31,119,180,0.15)";
    ctx.fillRect(g.x(shade[0]), TL.T, g.x(shade[1]) - g.x(shade[0]), g.H - TL.T - TL.B);
  }
  [["rss", "#ff7f0e"], ["heap", "#1f77b4"]].forEach(function (s) {
    ctx.strokeStyle = s[1]; ctx.beginPath();
    ch.t.forEach(function (t, i) { var px = g.x(t), py = g.y(ch[s[0]][i]); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    ctx.stroke();
  });
  if (ch.peak.heap) {
    var px = g.x(ch.peak.t), py = g.y(ch.peak.heap);
    ctx.fillStyle = "#d62728"; ctx.beginPath(); ctx.arc(px, py, 4, 0, 2 * Math.PI); ctx.fill();
    var label = "peak " + human(ch.peak.heap) + " at " + ch.peak.t.toFixed(3) + " s";
    ctx.fillText(label, Math.min(px + 6, g.W - 10 - ctx.measureText(label).width), Math.max(py, TL.T + 8));
  }
  ctx.fillStyle = "#1f77b4"; ctx.fillText("\u25a0 traced heap", g.W - 190, TL.T + 8);
  ctx.fillStyle = "#ff7f0e"; ctx.fillText("\u25a0 RSS", g.W - 90, TL.T + 8);
  drawGcMarks(ctx, g);
}
// gc: a mark per collection (dash by generation: 0 dotted, 1 dashed, 2
// solid), its pause as a band where at least a pixel wide; the marks' x
// positions are kept (and published on the canvas as data-gc-x) for the hover
var GC_COLOR = "#9467bd", GC_DASH = [[1, 3], [4, 3], []];
function gcLabel(gc) {
  var s = "collection at " + gc[0].toFixed(3) + " s, generation " + gc[2] + ": pause " +
          (gc[1] * 1e3).toFixed(3) + " ms, collected " + gc[3];
  if (gc[4]) s += ", uncollectable " + gc[4];
  if (!gc[5]) s += " (incomplete: start or stop not recorded)";
  return s;
}
function drawGcMarks(ctx, g) {
  var gcs = DATA.chart.gcs || [], xs = [];
  ctx.save();
  ctx.strokeStyle = GC_COLOR; ctx.fillStyle = "rgba(148,103,189,0.25)";
  gcs.forEach(function (gc) {
    var a = g.x(gc[0]), w = g.x(gc[0] + gc[1]) - a;
    if (w >= 1) ctx.fillRect(a, TL.T, w, g.H - TL.T - TL.B);
    ctx.setLineDash(GC_DASH[Math.min(gc[2], 2)]);
    ctx.beginPath(); ctx.moveTo(a + 0.5, TL.T); ctx.lineTo(a + 0.5, g.H - TL.B); ctx.stroke();
    xs.push(+a.toFixed(2));
  });
  ctx.restore();
  if (gcs.length) {
    ctx.fillStyle = GC_COLOR;
    ctx.fillText("| collections" + (DATA.chart.gcs_dropped ? " (" + count(DATA.chart.gcs_dropped) + " not drawn)" : ""),
                 g.W - 190, TL.T + 22);
  }
  $("timeline").setAttribute("data-gc-x", JSON.stringify(xs));
  drawGcMarks.xs = xs;
}
function gcHover(px) {  // the collections drawn within 3 px of px, as text
  var gcs = DATA.chart.gcs || [], xs = drawGcMarks.xs || [], g = chartGeom(), out = [];
  for (var i = 0; i < xs.length && out.length < 3; i++)
    if (px >= xs[i] - 3 && px <= Math.max(g.x(gcs[i][0] + gcs[i][1]), xs[i]) + 3) out.push(gcLabel(gcs[i]));
  text($("gc-info"), out.join("; "));
}
function bucketStart(b) { return DATA.temporal.edges[b]; }
function bucketEnd(b) { return DATA.temporal.edges[b + 1]; }
function bucketOf(t) {
  var e = DATA.temporal.edges, n = e.length - 1;
  for (var b = 0; b < n; b++) if (t < e[b + 1]) return b;
  return n - 1;
}
function rangeLabel() {
  var T = DATA.temporal, at = tree ? tree.at : -1;
  return "held at the highest point of " + bucketStart(state.range[0]).toFixed(3) + "-" +
         bucketEnd(state.range[1]).toFixed(3) + " s (at " + (at >= 0 ? T.top_t[at].toFixed(3) : "?") + " s)";
}
(function chartEvents() {
  var c = $("timeline"), start = null;
  function tOf(ev) {
    var r = c.getBoundingClientRect(), g = chartGeom();
    return Math.max(0, Math.min(g.tEnd, g.t((ev.clientX - r.left) * c.width / r.width)));
  }
  c.addEventListener("mousedown", function (ev) { start = tOf(ev); });
  c.addEventListener("mousemove", function (ev) {
    if (start !== null) { var t = tOf(ev); drawChart([Math.min(start, t), Math.max(start, t)]); }
    var r = c.getBoundingClientRect();
    gcHover((ev.clientX - r.left) * c.width / r.width);  // gc
  });
  function end(ev) {
    if (start === null) return;
    var t = tOf(ev), a = Math.min(start, t), z = Math.max(start, t);
    start = null;
    if (!DATA.temporal || z - a <= 0) { drawChart(); return; }
    state.range = [bucketOf(a), bucketOf(z)];
    $("view").value = "range";
    refresh();
    drawChart();
    text($("range-info"), rangeLabel());
  }
  c.addEventListener("mouseup", end);
  c.addEventListener("mouseleave", function (ev) { if (start !== null) end(ev); });
})();

(function controls() {
  var view = $("view");
  Object.keys(DATA.views).forEach(function (k) {
    var o = make("option", DATA.views[k].label); o.value = k; view.appendChild(o);
  });
  if (DATA.temporal) { var o = make("option", "time range (drag on the chart)"); o.value = "range"; o.disabled = true; view.appendChild(o); }
  view.value = state.view;
  $("inverted").checked = state.inverted;
  view.addEventListener("change", function () {
    if (view.value === "range") return;
    state.view = view.value; state.range = null; text($("range-info"), ""); drawChart(); refresh();
  });
  DATA.types.forEach(function (name, i) { var o = make("option", name); o.value = String(i); $("type-filter").appendChild(o); });
  DATA.threads.forEach(function (name, i) { var o = make("option", name); o.value = String(i); $("thread-filter").appendChild(o); });
  $("type-filter").addEventListener("change", function () { setType(+this.value); });
  $("thread-filter").addEventListener("change", function () { state.thread = +this.value; refresh(); });
  $("layout").addEventListener("change", function () { state.layout = this.value; draw(); });
  $("inverted").addEventListener("change", function () { state.inverted = this.checked; refresh(); });
  $("type-frames").addEventListener("change", function () { state.typeFrames = this.checked; refresh(true); });
  $("hide-import").addEventListener("change", function () { state.hideImport = this.checked; refresh(); });
  $("search").addEventListener("input", function () { state.search = this.value; searchInfo(); draw(); });
  $("reset").addEventListener("click", function () {
    state.zoom = []; state.search = ""; $("search").value = ""; state.type = -1; $("type-filter").value = "-1";
    state.range = null; $("view").value = state.view; text($("range-info"), ""); drawChart(); refresh();
  });
  ["types-table", "sites-table"].forEach(function (id) {
    $(id).querySelectorAll("th").forEach(function (th) {
      th.addEventListener("click", function () {
        var sk = sortKeys[id], key = th.dataset.key;
        if (sk.key === key) sk.desc = !sk.desc; else { sk.key = key; sk.desc = key !== "name"; }
        tables();
      });
    });
  });
  var canvas = $("graph");
  canvas.addEventListener("mousemove", function (ev) {
    var r = canvas.getBoundingClientRect(), b = boxAt(ev.clientX - r.left, ev.clientY - r.top);
    if (b) showTip(b, ev.clientX - r.left, ev.clientY - r.top); else $("tooltip").style.display = "none";
  });
  canvas.addEventListener("mouseleave", function () { $("tooltip").style.display = "none"; });
  canvas.addEventListener("click", function (ev) {
    var r = canvas.getBoundingClientRect(), b = boxAt(ev.clientX - r.left, ev.clientY - r.top);
    if (!b) return;
    state.zoom = [];
    for (var a = b.g; a && a !== tree.root; a = a.parent) state.zoom.unshift(a);
    draw(); crumbs();
  });
  window.addEventListener("resize", function () { draw(); });
  text($("title"), DATA.title);
})();

// For tests and scripts: what the page shows now, as numbers.
window.memlensFlame = {
  state: state,
  total: function () { return tree.root.bytes; },
  focus: function () { var f = focusNode(); return {label: keyLabel(f.key), bytes: f.bytes, blocks: f.blocks}; },
  boxes: function () {
    return boxes.map(function (b) {
      return {label: keyLabel(b.g.key), x: b.x, y: b.y, w: b.w, bytes: b.g.bytes, blocks: b.g.blocks,
              base: b.g.base || 0, colour: colour(b.g)};
    });
  }
};
drawChart();
refresh();
window.memlensFlame.readyMs = performance.now();
