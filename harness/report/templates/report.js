"use strict";
(function () {
  const TIME_PLOTS = ["timeline", "latency", "throughput", "cpu", "rss"];
  const PAGE = 100;

  // ---- plots -------------------------------------------------------------------------------
  function drawPlots() {
    const config = { responsive: true, displaylogo: false, scrollZoom: false };
    for (const tag of document.querySelectorAll("script.fig")) {
      const div = document.getElementById(tag.dataset.target);
      const fig = JSON.parse(tag.textContent);
      Plotly.newPlot(div, fig.data, fig.layout, config);
    }
    linkTimeAxes();
    const tl = document.getElementById("plot-timeline");
    if (tl) {
      tl.on("plotly_click", (ev) => {
        if (!ev.points || !ev.points.length) return;
        jumpToTime(Number(ev.points[0].x));
      });
    }
  }

  // Zooming one time plot zooms the others, so a fault can be followed across all of them.
  function linkTimeAxes() {
    const divs = TIME_PLOTS.map((n) => document.getElementById("plot-" + n)).filter(Boolean);
    let busy = false;
    for (const div of divs) {
      div.on("plotly_relayout", (ev) => {
        if (busy) return;
        let update = null;
        if ("xaxis.range[0]" in ev) {
          update = { "xaxis.range": [ev["xaxis.range[0]"], ev["xaxis.range[1]"]] };
        } else if (ev["xaxis.range"]) {
          update = { "xaxis.range": ev["xaxis.range"] };
        } else if (ev["xaxis.autorange"]) {
          update = { "xaxis.autorange": true };
        }
        if (!update) return;
        busy = true;
        Promise.all(divs.filter((d) => d !== div).map((d) => Plotly.relayout(d, update)))
          .finally(() => { busy = false; });
      });
    }
  }

  // ---- operations table --------------------------------------------------------------------
  const state = { ops: null, rows: [], page: 0, hit: -1 };

  async function loadOps() {
    const holder = document.getElementById("ops");
    const tag = document.getElementById("ops-data");
    if (!holder || !tag) return null;
    let text = tag.textContent;
    if (holder.dataset.encoding === "gzip-base64") {
      if (typeof DecompressionStream === "undefined") {
        throw new Error("this browser has no DecompressionStream; open the report in a current " +
          "browser to list single operations (the plots above show all of them)");
      }
      const bin = atob(text.trim());
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      text = await new Response(stream).text();
    }
    const raw = JSON.parse(text);
    const c = raw.cols;
    const n = raw.n;
    const t = new Float64Array(n);
    const idx = new Int32Array(n);
    let acc = 0, acci = 0;
    for (let j = 0; j < n; j++) {
      acc += c.t[j]; t[j] = acc / 10000;  // 0.1 ms units -> s
      acci += c.i[j]; idx[j] = acci;
    }
    return { n, t, idx, d: c.d, p: c.p, f: c.f, k: c.k, y: c.y, node: c.n, v: c.v, e: c.e,
      s: c.s || null, dict: raw.dict };
  }

  function readFilters() {
    const form = document.getElementById("ops-filters");
    const val = (name) => form.elements[name].value.trim();
    const num = (name) => (val(name) === "" ? null : Number(val(name)));
    return { y: val("y"), f: val("f"), p: val("p").replace(/^p/, ""), k: val("k"),
      from: num("from"), to: num("to"), q: val("q").toLowerCase() };
  }

  function applyFilters() {
    const o = state.ops;
    if (!o) return;
    const fl = readFilters();
    const yCode = fl.y ? o.dict.y.indexOf(fl.y) : -1;
    const fCode = fl.f ? o.dict.f.indexOf(fl.f) : -1;
    const pCode = fl.p ? o.dict.p.indexOf(fl.p) : -1;
    const kCodes = fl.k ? new Set(o.dict.k.map((s, i) => (s.includes(fl.k) ? i : -1))) : null;
    const rows = [];
    for (let j = 0; j < o.n; j++) {
      if (fl.y && o.y[j] !== yCode) continue;
      if (fl.f && o.f[j] !== fCode) continue;
      if (fl.p && o.p[j] !== pCode) continue;
      if (kCodes && !kCodes.has(o.k[j])) continue;
      if (fl.from !== null && !Number.isNaN(fl.from) && o.t[j] < fl.from) continue;
      if (fl.to !== null && !Number.isNaN(fl.to) && o.t[j] > fl.to) continue;
      if (fl.q) {
        const err = o.e[j] >= 0 ? o.dict.e[o.e[j]] : "";
        if (!o.v[j].toLowerCase().includes(fl.q) && !err.toLowerCase().includes(fl.q)) continue;
      }
      rows.push(j);
    }
    state.rows = rows;
    state.page = 0;
    showPage();
  }

  const esc = (s) => String(s).replace(/[&<>"]/g, (ch) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[ch]));

  function showPage() {
    const o = state.ops;
    const body = document.getElementById("ops-body");
    const pages = Math.max(1, Math.ceil(state.rows.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * PAGE;
    const slice = state.rows.slice(start, start + PAGE);
    const html = [];
    for (const j of slice) {
      const y = o.dict.y[o.y[j]];
      const lat = o.d[j] < 0 ? "—" : (o.d[j] / 100).toFixed(2);
      html.push(
        `<tr class="o-${y}${j === state.hit ? " hit" : ""}"><td class="num">${j + 1}</td>` +
        `<td class="num">${o.idx[j]}</td><td>p${esc(o.dict.p[o.p[j]])}</td>` +
        `<td>${esc(o.dict.f[o.f[j]])}</td><td>${o.k[j] >= 0 ? esc(o.dict.k[o.k[j]]) : ""}</td>` +
        `<td class="val">${esc(o.v[j])}</td><td class="o">${y}</td>` +
        `<td>${o.node[j] >= 0 ? esc(o.dict.n[o.node[j]]) : ""}</td>` +
        `<td class="num">${o.t[j].toFixed(4)}</td><td class="num">${lat}</td>` +
        `<td class="num">${o.s && o.s[j] >= 0 ? o.s[j] : ""}</td>` +
        `<td class="val">${o.e[j] >= 0 ? esc(o.dict.e[o.e[j]]) : ""}</td></tr>`);
    }
    body.innerHTML = html.join("");
    const total = state.rows.length;
    document.getElementById("ops-status").textContent = total === 0
      ? `no operation matches (of ${o.n.toLocaleString()})`
      : `${(start + 1).toLocaleString()}–${(start + slice.length).toLocaleString()} of ` +
        `${total.toLocaleString()} matching (of ${o.n.toLocaleString()}) · page ` +
        `${state.page + 1} of ${pages}`;
  }

  function jumpToTime(x) {
    if (!state.ops || Number.isNaN(x)) return;
    const form = document.getElementById("ops-filters");
    form.elements.from.value = "";
    form.elements.to.value = "";
    applyFilters();
    // the first operation invoked at or after x, on its page, highlighted
    let lo = 0, hi = state.ops.n;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (state.ops.t[mid] < x) lo = mid + 1; else hi = mid; }
    state.hit = Math.min(lo, state.ops.n - 1);
    state.page = Math.floor(state.rows.indexOf(state.hit) / PAGE);
    showPage();
    document.getElementById("ops").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function wireTable() {
    const form = document.getElementById("ops-filters");
    const fSel = form.elements.f;
    for (const f of state.ops.dict.f) {
      const opt = document.createElement("option");
      opt.textContent = f;
      fSel.appendChild(opt);
    }
    let timer = null;
    const later = () => { clearTimeout(timer); timer = setTimeout(applyFilters, 150); };
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.addEventListener("reset", () => setTimeout(applyFilters, 0));
    form.addEventListener("submit", (ev) => ev.preventDefault());
    document.querySelector(".pager").addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      const pages = Math.max(1, Math.ceil(state.rows.length / PAGE));
      state.page = { first: 0, prev: state.page - 1, next: state.page + 1, last: pages - 1 }[
        b.dataset.page];
      showPage();
    });
  }

  function wireCopy() {
    for (const b of document.querySelectorAll("button.copy")) {
      b.addEventListener("click", () => {
        const text = document.getElementById(b.dataset.copy).textContent;
        if (navigator.clipboard) {
          navigator.clipboard.writeText(text).then(() => { b.textContent = "copied"; },
            () => { b.textContent = "select and copy"; });
        }
      });
    }
  }

  async function start() {
    wireCopy();
    drawPlots();
    const status = document.getElementById("ops-status");
    try {
      state.ops = await loadOps();
      if (!state.ops) return;
      wireTable();
      applyFilters();
      document.body.dataset.opsReady = "1";
    } catch (err) {
      if (status) status.textContent = "operations table unavailable: " + err.message;
      document.body.dataset.opsReady = "error";
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
