// sqltrack ui: the page of the live dashboard. Plain JavaScript over the JSON API
// (docs/ui.md); charts by uPlot. Every value from the database reaches the page as text
// (textContent, text nodes, attribute values the page made itself): never as HTML.
// The same page is `sqltrack report`: there the API's answers are JSON inside the file
// (#sqltrack-data), nothing is fetched and nothing refreshes.
"use strict";
(() => {
  const REPORT = (() => {
    const node = document.getElementById("sqltrack-data");
    return node ? JSON.parse(node.textContent) : null;
  })();
  const REFRESH_MS = 2000; // how often the page asks what is new
  const POINTS = 1000; // points per curve fetched at once
  const MAX_ROWS = 500; // runs asked first, before the whole list; lines of parallel coordinates
  const WINDOW = 100; // rows of the runs table in the page at once: those in view and around
  const ROW_PX = 25; // a row's height until one is measured
  const FULL_EVERY = 30; // refreshes: the whole runs list again (about every minute)
  const SINCE_MARGIN_MS = 60000; // asked for changes from this long before the last answer
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];

  const $ = (id) => document.getElementById(id);
  const state = {
    experiment: null, runs: [], byId: new Map(), metrics: [], argNames: [],
    selected: new Set(), chosen: [], curves: new Map(), plots: new Map(),
    sort: { key: "id", desc: true }, shown: null, busy: false, view: "runs", runPage: null,
    now: null, ticks: 0, generation: 0, visible: [], listing: null, partial: false,
    rows: [], cols: [], first: 0, rowPx: 0,
  };

  // -- talking to the API --------------------------------------------------------------
  async function get(path, params) {
    if (REPORT) return answer(path, params || {});
    const url = new URL(path, location.href);
    for (const [key, value] of Object.entries(params || {})) {
      if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, v));
      else if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const response = await fetch(url, { headers: { accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // the API's answers from a report's data (its filters as the server's: docs/ui.md)
  function answer(path, params) {
    if (path === "api/config") return REPORT.config;
    if (path === "api/experiments") return REPORT.experiments;
    if (path === "api/metrics") {
      const q = String(params.q || "").toLowerCase();
      return { metrics: REPORT.metrics.filter((m) => m.toLowerCase().includes(q)).slice(0, Number(params.limit) || 200) };
    }
    if (path === "api/runs") {
      if (params.since) return { ...REPORT.runs, runs: [] }; // a report does not change
      return { ...REPORT.runs, runs: REPORT.runs.runs.filter((run) => reportMatch(run, params)) };
    }
    const curves = /^api\/runs\/(\d+)\/metrics$/.exec(path);
    if (curves) {
      const of = REPORT.curves[curves[1]] || {};
      const after = params.after === undefined ? -Infinity : Number(params.after);
      const metrics = {};
      for (const name of String(params.names || "").split(",").filter(Boolean)) {
        const curve = Object.prototype.hasOwnProperty.call(of, name) ? of[name] : { step: [], value: [], progress: [] };
        const keep = curve.step.map((step) => step > after);
        const kept = (list) => list.filter((_, i) => keep[i]);
        metrics[name] = { step: kept(curve.step), value: kept(curve.value), progress: kept(curve.progress) };
      }
      return { metrics };
    }
    if (/^api\/runs\/\d+\/system$/.test(path)) return { system: {} };
    throw new Error("a report holds the runs table and curves only: open run pages in sqltrack ui");
  }

  function reportMatch(run, params) {
    if (params.status && run.status !== params.status) return false;
    if (params.tag && !run.tags.includes(params.tag)) return false;
    if (params.arg) {
      const at = params.arg.indexOf("=");
      const key = params.arg.slice(0, at), raw = params.arg.slice(at + 1);
      let wanted;
      try { wanted = JSON.parse(raw); } catch { wanted = raw; }
      if (at < 1 || !Object.prototype.hasOwnProperty.call(run.args, key)) return false;
      return JSON.stringify(run.args[key]) === JSON.stringify(wanted);
    }
    return true;
  }

  function live(text, failed) {
    const span = $("live");
    span.textContent = text;
    span.className = failed ? "status-FAILED" : "muted";
  }

  // -- building the page from text -------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : text(child));
    return node;
  }

  function text(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(5)));
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 1) return seconds.toFixed(2) + " s";
    if (seconds < 120) return seconds.toFixed(1) + " s";
    if (seconds < 7200) return (seconds / 60).toFixed(1) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function when(iso) {
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }

  // -- the runs view -----------------------------------------------------------------------
  async function loadExperiments() {
    const [config, experiments] = await Promise.all([get("api/config"), get("api/experiments")]);
    const select = $("experiment");
    select.replaceChildren(...experiments.map((e) =>
      el("option", { value: e.name }, `${e.name} (${e.runs})`)));
    const wanted = hashParams().get("experiment") || config.experiment;
    const names = experiments.map((e) => e.name);
    state.experiment = names.includes(wanted) ? wanted : names[0] || null;
    if (state.experiment !== null) select.value = state.experiment;
  }

  function filters() {
    const params = { experiment: state.experiment, status: $("status").value };
    if ($("tag").value.trim()) params.tag = $("tag").value.trim();
    if ($("arg").value.trim()) params.arg = $("arg").value.trim();
    return params;
  }

  // changed: only the runs that changed since the last answer (merged into the list);
  // first(): what to let finish before asking a whole new list (a link's curves)
  async function loadRuns(changed, first) {
    if (state.experiment === null) {
      $("count").textContent = "no experiments yet";
      return;
    }
    const params = filters();
    const since = changed && state.now !== null;
    if (since) {
      params.since = new Date(Date.parse(state.now) - SINCE_MARGIN_MS).toISOString();
      params.metrics = state.metrics.join(",");
      delete params.status; // a run whose status changed leaves the table or joins it
    }
    const listing = JSON.stringify(filters());
    if (!since && !REPORT && listing !== state.listing) {
      // other runs than the table's: the newest are drawn before the whole list arrives
      const generation = ++state.generation;
      const newest = await get("api/runs", { ...params, newest: MAX_ROWS });
      const whole = newest.runs.length < MAX_ROWS; // (then it is the whole list)
      showRuns(newest, false, generation, !whole);
      if (!whole) {
        if (first) await first().catch(() => {});
        showRuns(await get("api/runs", params), false, generation, false);
      }
      if (generation === state.generation) state.listing = listing;
      return;
    }
    showRuns(await get("api/runs", params), since, since ? state.generation : ++state.generation, false);
  }

  // partial: the newest runs only (the whole list is on its way)
  function showRuns(body, since, generation, partial) {
    if (generation !== state.generation) return; // asked again since, with other filters
    state.now = body.now;
    state.partial = partial;
    if (since) {
      if (body.runs.length === 0) return;
      mergeRuns(body.runs);
    } else {
      state.runs = body.runs;
      state.byId = new Map(body.runs.map((r) => [r.id, r]));
      state.metrics = body.metrics;
    }
    const names = new Set();
    state.runs.forEach((r) => Object.keys(r.args || {}).forEach((a) => names.add(a)));
    state.argNames = [...names].sort();
    if (state.shown === null) {
      state.shown = new Set([...state.argNames.slice(0, 8), ...state.metrics.slice(0, 6).map((m) => "m:" + m)]);
    }
    renderColumns();
    renderSummaries();
    renderTable();
    renderGroups();
  }

  function mergeRuns(runs) {
    const wanted = $("status").value;
    for (const run of runs) {
      if (wanted && run.status !== wanted) state.byId.delete(run.id);
      else state.byId.set(run.id, run);
    }
    state.runs = [...state.byId.values()].sort((a, b) => a.id - b.id);
  }

  function columns() {
    const all = [
      { key: "id", label: "id", value: (r) => r.id },
      { key: "status", label: "status", value: (r) => r.status },
      { key: "started", label: "started", value: (r) => when(r.started) },
      { key: "duration", label: "duration", value: (r) => r.duration, show: duration },
      { key: "tags", label: "tags", value: (r) => r.tags.join(", ") },
    ];
    for (const name of state.argNames) {
      if (state.shown.has(name)) all.push({ key: "a:" + name, label: name, value: (r) => r.args[name] });
    }
    for (const metric of state.metrics) {
      if (state.shown.has("m:" + metric)) {
        all.push({
          key: "m:" + metric, label: metric + " (last)",
          value: (r) => (r.summaries[metric] || {}).last,
          title: (r) => { const s = r.summaries[metric]; return s ? `min ${text(s.min)}, max ${text(s.max)}` : ""; },
        });
      }
    }
    return all;
  }

  function renderColumns() {
    const list = $("column-list");
    const boxes = [...state.argNames, ...state.metrics.map((m) => "m:" + m)].map((key) => {
      const box = el("input", { type: "checkbox" });
      box.checked = state.shown.has(key);
      box.addEventListener("change", () => {
        if (box.checked) state.shown.add(key); else state.shown.delete(key);
        renderTable();
      });
      return el("label", {}, box, key.startsWith("m:") ? key.slice(2) + " (last)" : "args." + key);
    });
    list.replaceChildren(...boxes);
  }

  function matches(run, needle) {
    if (!needle) return true;
    const haystack = [run.id, run.status, run.comment, ...run.tags, JSON.stringify(run.args)].join(" ");
    return haystack.toLowerCase().includes(needle);
  }

  function compare(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    return typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
  }

  function renderTable() {
    const cols = columns();
    const { key, desc } = state.sort;
    const sortBy = cols.find((c) => c.key === key) || cols[0];
    const needle = $("text").value.trim().toLowerCase();
    const rows = state.runs.filter((r) => matches(r, needle));
    rows.sort((a, b) => (desc ? -1 : 1) * compare(sortBy.value(a), sortBy.value(b)));
    const head = el("tr", {}, el("th", {}, ""), ...cols.map((c) => el("th", {
      onclick: () => { state.sort = { key: c.key, desc: state.sort.key === c.key ? !state.sort.desc : false }; renderTable(); },
    }, c.label + (c.key === key ? (desc ? " ▼" : " ▲") : ""))));
    $("runs").tHead.replaceChildren(head);
    state.rows = rows;
    state.cols = cols;
    drawRows(true);
    state.visible = rows.slice(0, MAX_ROWS);
    drawParallel();
    $("count").textContent = state.partial ? `the newest ${rows.length} runs (the others are on their way)`
      : `${rows.length} runs`;
  }

  // the rows in view of the runs table and some around them (WINDOW in all): the table's
  // margins stand for the others, so 10,000 runs scroll as if all were there
  function drawRows(again) {
    const rowPx = state.rowPx || ROW_PX;
    const wrap = $("table-wrap");
    const top = wrap.scrollTop;
    const first = Math.max(0, Math.min(Math.floor(top / rowPx) - WINDOW / 4, state.rows.length - WINDOW));
    if (!again && Math.abs(first - state.first) < WINDOW / 8) return;
    state.first = first;
    const cols = state.cols;
    const body = state.rows.slice(first, first + WINDOW).map((run) => {
      const box = el("input", { type: "checkbox", "aria-label": "select run " + run.id });
      box.checked = state.selected.has(run.id);
      box.addEventListener("change", () => toggle(run.id, box.checked));
      const cells = cols.map((c) => {
        const value = c.value(run);
        const cell = el("td", { class: typeof value === "number" ? "num" : "" });
        if (c.key === "id" && !REPORT) cell.append(el("a", { href: "#run/" + Number(run.id) }, value));
        else if (c.key === "id") cell.append(text(value));
        else cell.append(text(c.show ? c.show(value) : value));
        if (c.key === "status") cell.classList.add("status-" + String(value).replace(/[^A-Z_]/g, ""));
        if (c.title) cell.title = c.title(run);
        return cell;
      });
      return el("tr", { class: state.selected.has(run.id) ? "selected" : "", "data-run": run.id },
        el("td", {}, box), ...cells);
    });
    const table = $("runs");
    table.tBodies[0].replaceChildren(...body);
    if (!state.rowPx && body.length) state.rowPx = body[0].getBoundingClientRect().height || ROW_PX;
    const rest = Math.max(0, state.rows.length - first - body.length);
    table.style.marginTop = first * (state.rowPx || ROW_PX) + "px"; // (CSSOM: the policy allows it)
    table.style.marginBottom = rest * (state.rowPx || ROW_PX) + "px";
  }

  function renderGroups() {
    const select = $("group");
    const current = select.value;
    select.replaceChildren(el("option", { value: "" }, "(each run)"),
      ...state.argNames.map((a) => el("option", { value: a }, a)));
    select.value = state.argNames.includes(current) ? current : "";
  }

  async function toggle(runId, on) {
    if (on) state.selected.add(runId); else state.selected.delete(runId);
    const row = $("runs").querySelector(`tbody tr[data-run="${Number(runId)}"]`);
    if (row) row.className = on ? "selected" : ""; // (not the whole table again)
    saveLink();
    if (on) await fetchCurves(runId, state.chosen, false);
    drawCharts();
    renderCompare();
  }

  // -- curves --------------------------------------------------------------------------------
  async function fetchCurves(runId, metrics, onlyNew) {
    if (!metrics.length) return;
    const have = state.curves.get(runId) || {};
    let after;
    if (onlyNew) {
      const lasts = metrics.map((m) => { const s = (have[m] || { step: [] }).step; return s.length ? s[s.length - 1] : null; });
      after = lasts.includes(null) ? undefined : Math.min(...lasts);
    }
    const body = await get(`api/runs/${Number(runId)}/metrics`, { names: metrics.join(","), points: POINTS, after, progress: byProgress() ? 1 : undefined });
    for (const [metric, curve] of Object.entries(body.metrics)) {
      const old = have[metric];
      if (!onlyNew || !old || after === undefined) { have[metric] = curve; continue; }
      const last = old.step.length ? old.step[old.step.length - 1] : -Infinity;
      curve.step.forEach((step, i) => {
        if (step > last) {
          old.step.push(step); old.value.push(curve.value[i]);
          if (old.progress && curve.progress) old.progress.push(curve.progress[i]);
        }
      });
    }
    state.curves.set(runId, have);
  }

  // charts against progress: curves are asked with it (only then: it costs a query)
  function byProgress() { return $("x").value === "progress"; }

  function smooth(values, weight) {
    if (!weight) return values;
    let last = null;
    return values.map((v) => (v === null ? null : (last = last === null ? v : last * weight + v * (1 - weight))));
  }

  function valueAt(curve, x) { // linear interpolation within a run's own steps
    const s = curve.x;
    if (!s.length || x < s[0] || x > s[s.length - 1]) return null;
    let lo = 0, hi = s.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (s[mid] <= x) lo = mid; else hi = mid; }
    if (s[lo] === x) return curve.smoothed[lo];
    if (s[hi] === x) return curve.smoothed[hi];
    const t = (x - s[lo]) / (s[hi] - s[lo]);
    return curve.smoothed[lo] + t * (curve.smoothed[hi] - curve.smoothed[lo]);
  }

  function chartData(metric) {
    const weight = Number($("smoothing").value);
    const log = $("log").checked;
    const by = $("x").value; // the x axis: "step" or "progress"
    const runs = [...state.selected].filter((id) => state.curves.get(id) && state.curves.get(id)[metric]
      && (by === "step" || state.curves.get(id)[metric].progress));
    const curves = runs.map((id) => {
      const c = state.curves.get(id)[metric];
      const smoothed = smooth(c.value, weight);
      if (by === "step") return { id, x: c.step, smoothed };
      // against progress: the points in its order (a run may log progress that goes back)
      const order = c.progress.map((_, i) => i).sort((a, b) => c.progress[a] - c.progress[b]);
      return { id, x: order.map((i) => c.progress[i]), smoothed: order.map((i) => smoothed[i]) };
    });
    const xs = [...new Set(curves.flatMap((c) => c.x))].sort((a, b) => a - b);
    const fix = (v) => (v === null || (log && v <= 0) ? null : v);
    const group = $("group").value;
    const series = [{}];
    const data = [xs];
    const bands = [];
    if (!group) {
      curves.forEach((c, i) => {
        const at = new Map(c.x.map((s, j) => [s, c.smoothed[j]]));
        data.push(xs.map((x) => fix(at.has(x) ? at.get(x) : null)));
        series.push({ label: "run " + c.id, stroke: COLORS[i % COLORS.length], spanGaps: true, points: { show: false } });
      });
    } else {
      const groups = new Map();
      for (const c of curves) {
        const key = text((state.byId.get(c.id) || { args: {} }).args[group]);
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(c);
      }
      [...groups.entries()].sort(([a], [b]) => compare(a, b)).forEach(([key, members], i) => {
        const mean = [], upper = [], lower = [];
        for (const x of xs) {
          const vs = members.map((c) => valueAt(c, x)).filter((v) => v !== null);
          if (!vs.length) { mean.push(null); upper.push(null); lower.push(null); continue; }
          const m = vs.reduce((a, b) => a + b, 0) / vs.length;
          const sd = Math.sqrt(vs.reduce((a, b) => a + (b - m) ** 2, 0) / vs.length);
          mean.push(fix(m)); upper.push(fix(m + sd)); lower.push(fix(m - sd));
        }
        const color = COLORS[i % COLORS.length];
        const at = data.length;
        data.push(mean, upper, lower);
        series.push({ label: `${group}=${key} (${members.length} run${members.length === 1 ? "" : "s"})`, stroke: color, spanGaps: true, points: { show: false } });
        series.push({ label: "+std", stroke: color + "55", spanGaps: true, points: { show: false } });
        series.push({ label: "-std", stroke: color + "55", spanGaps: true, points: { show: false } });
        bands.push({ series: [at + 1, at + 2], fill: color + "22" });
      });
    }
    return { data, series, bands, log, by };
  }

  // a chart's width in the grid of #charts (columns of at least 560px), from the window's
  // width: reading the page's layout would lay out the whole runs table first
  function chartWidth() {
    const room = document.documentElement.clientWidth - 32, gap = 14;
    const columns = Math.max(1, Math.floor((room + gap) / (560 + gap)));
    return Math.max(520, Math.floor((room - gap * (columns - 1)) / columns));
  }

  function drawCharts() {
    const charts = $("charts");
    for (const [metric, entry] of state.plots) {
      if (!state.chosen.includes(metric)) { entry.plot.destroy(); entry.box.remove(); state.plots.delete(metric); }
    }
    for (const metric of state.chosen) {
      const { data, series, bands, log, by } = chartData(metric);
      const key = JSON.stringify([series.map((s) => s.label), log, by]);
      let entry = state.plots.get(metric);
      const points = data.slice(1).reduce((n, ys) => n + ys.filter((v) => v !== null).length, 0);
      if (entry && entry.key === key) {
        entry.plot.setData(data, !entry.zoomed);
      } else {
        const box = entry ? entry.box : el("div", { class: "chart" }, el("h3", {}, metric));
        if (entry) entry.plot.destroy(); else charts.append(box);
        const plot = new uPlot({
          width: chartWidth(), height: 300, series, bands,
          scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
          axes: [{ label: by }, {}],
          hooks: { setSelect: [(u) => { if (u.select.width > 0) state.plots.get(metric).zoomed = true; }] },
        }, data, box);
        entry = { plot, box, key, zoomed: false };
        plot.over.addEventListener("dblclick", () => { entry.zoomed = false; });
        state.plots.set(metric, entry);
      }
      entry.box.dataset.metric = metric;
      entry.box.dataset.points = String(points);
    }
  }

  function chooseMetric(name) {
    if (!name || state.chosen.includes(name)) return;
    state.chosen.push(name);
    renderChosen();
    saveLink();
    Promise.all([...state.selected].map((id) => fetchCurves(id, [name], false)))
      .then(drawCharts).catch((e) => live(e.message, true));
  }

  function renderChosen() {
    $("chosen").replaceChildren(...state.chosen.map((m) => el("span", { class: "chip" }, m,
      el("button", { title: "remove", onclick: () => { state.chosen = state.chosen.filter((c) => c !== m); renderChosen(); saveLink(); drawCharts(); } }, "×"))));
  }

  async function searchMetrics() {
    if (state.experiment === null) return;
    const body = await get("api/metrics", { experiment: state.experiment, q: $("metric-search").value, limit: 50 });
    $("metric-options").replaceChildren(...body.metrics.map((m) => el("option", { value: m })));
  }

  // -- compare -----------------------------------------------------------------------------
  function renderCompare() {
    const box = $("compare");
    const runs = [...state.selected].map((id) => state.byId.get(id)).filter(Boolean);
    if (runs.length < 2) { box.replaceChildren(); return; }
    const rows = [];
    for (const name of state.argNames) {
      const values = runs.map((r) => text(r.args[name]));
      if (new Set(values).size > 1) rows.push(el("tr", {}, el("th", {}, "args." + name), ...values.map((v) => el("td", {}, v))));
    }
    for (const metric of state.metrics) {
      const values = runs.map((r) => (r.summaries[metric] || {}).last);
      if (values.some((v) => v !== undefined)) {
        rows.push(el("tr", {}, el("th", {}, metric + " (last)"), ...values.map((v) => el("td", { class: "num" }, text(v)))));
      }
    }
    const head = el("tr", {}, el("th", {}, "compare"), ...runs.map((r) => el("th", {}, "run " + r.id)));
    box.replaceChildren(el("table", { id: "compare-table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  }

  // -- parallel coordinates: an axis per arg, and a summary last -----------------------------
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, parent, label) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (label !== undefined) node.textContent = label;
    parent.append(node);
    return node;
  }

  function scale(lo, hi, a, b) {
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    return (v) => a + ((v - lo) / (hi - lo)) * (b - a);
  }

  function renderSummaries() {
    const select = $("pc-summary");
    const current = select.value;
    const options = state.metrics.flatMap((m) => ["min", "max", "last"].map((k) => m + ":" + k));
    select.replaceChildren(...options.map((o) => el("option", { value: o }, o)));
    const loss = state.metrics.find((m) => /val/.test(m) && /loss/.test(m)) || state.metrics.find((m) => /loss/.test(m)) || state.metrics[0];
    select.value = options.includes(current) ? current : loss ? loss + ":min" : "";
  }

  function drawParallel() {
    const box = $("parallel");
    box.replaceChildren();
    const W = Number(box.getAttribute("width")), H = Number(box.getAttribute("height"));
    const top = 30, bottom = H - 20;
    const runs = state.visible || [];
    const chosen = $("pc-summary").value;
    const cut = chosen.lastIndexOf(":");
    const summary = (r) => ((r.summaries[chosen.slice(0, cut)] || {})[chosen.slice(cut + 1)]);
    const given = (v) => v !== null && v !== undefined;
    const axes = state.argNames.filter((a) => runs.some((r) => given(r.args[a])))
      .map((a) => ({ label: a, get: (r) => r.args[a] }));
    if (chosen) axes.push({ label: chosen, get: summary });
    if (axes.length < 2 || !runs.length) {
      svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, box, "needs runs with args and a summary");
      return;
    }
    const gap = (W - 140) / (axes.length - 1);
    axes.forEach((axis, i) => {
      axis.x = 70 + i * gap;
      const values = runs.map(axis.get).filter(given);
      if (values.length && values.every((v) => typeof v === "number")) {
        axis.lo = Math.min(...values); axis.hi = Math.max(...values);
        axis.at = scale(axis.lo, axis.hi, bottom, top);
        axis.ends = [axis.lo, axis.hi];
      } else { // categories, evenly spaced
        const names = [...new Set(values.map(text))].sort();
        const at = scale(0, Math.max(names.length - 1, 1), bottom, top);
        axis.at = (v) => at(names.indexOf(text(v)));
        axis.ends = [names[0], names[names.length - 1]];
      }
      svg("line", { x1: axis.x, y1: top, x2: axis.x, y2: bottom, stroke: "#999" }, box);
      svg("text", { x: axis.x, y: top - 12, "text-anchor": "middle" }, box, axis.label);
      svg("text", { x: axis.x + 4, y: bottom + 12 }, box, text(axis.ends[0]));
      svg("text", { x: axis.x + 4, y: top + 4 }, box, text(axis.ends[1]));
    });
    const last = axes[axes.length - 1];
    const shade = scale(last.lo ?? 0, last.hi ?? 1, 0, 1);
    for (const run of runs) {
      const value = last.get(run);
      if (!given(value)) continue;
      const d = axes.filter((a) => given(a.get(run)))
        .map((a, i) => (i ? "L" : "M") + a.x.toFixed(1) + "," + a.at(a.get(run)).toFixed(1)).join("");
      const hue = Math.round(240 * (1 - (typeof value === "number" ? shade(value) : 0.5)));
      const line = svg("path", { d, fill: "none", stroke: `hsl(${hue},70%,45%)`, "stroke-opacity": 0.7, "data-run": run.id }, box);
      svg("title", {}, line, `run ${run.id}: ${text(value)}`);
    }
  }

  // -- the run page --------------------------------------------------------------------------
  // a value's cell on the run page: a long one (a package list, a URI) wraps anywhere
  function cell(value) {
    const shown = text(value);
    return el("td", shown.length > 80 ? { class: "long" } : {}, shown);
  }

  function pairs(title, object) {
    const entries = Object.entries(object || {});
    return [el("h3", {}, title), entries.length
      ? el("table", {}, el("tbody", {}, ...entries.map(([k, v]) => el("tr", {}, el("th", {}, k), cell(v)))))
      : el("p", { class: "muted" }, "none")];
  }

  function listing(title, items, fields) {
    if (!items.length) return [el("h3", {}, title), el("p", { class: "muted" }, "none")];
    return [el("h3", {}, title), el("table", { "data-list": title },
      el("thead", {}, el("tr", {}, ...fields.map((f) => el("th", {}, f)))),
      el("tbody", {}, ...items.map((item) => el("tr", {}, ...fields.map((f) => cell(item[f]))))))];
  }

  async function showRun(runId) {
    const view = $("run-view");
    const run = await get(`api/runs/${Number(runId)}`);
    state.runPage = run;
    const code = run.code || {};
    const { diff, ...commit } = code;
    view.replaceChildren(
      el("h2", {}, `run ${run.id} `, el("span", { id: "run-status", class: "status-" + String(run.status).replace(/[^A-Z_]/g, "") }, run.status)),
      el("p", {}, "experiment ", el("a", { href: "#experiment=" + encodeURIComponent(run.experiment) }, run.experiment),
        ` · created ${when(run.time_created)} · started ${when(run.time_started)} · updated ${when(run.time_updated)}`),
      run.comment ? el("p", {}, run.comment) : "",
      el("p", {}, "tags: ", run.tags.length ? run.tags.join(", ") : "none"),
      ...pairs("args", run.args),
      ...listing("links", run.links, ["direction", "kind", "run"]),
      ...listing("metrics", run.metrics, ["name", "count", "min", "max", "last", "last_step"]),
      ...listing("artifacts", run.artifacts, ["name", "version", "kind", "step", "uri", "size", "sha256", "created"]),
      ...listing("artifacts used", run.used, ["name", "version", "kind", "run", "used"]),
      ...listing("samples", run.samples, ["step", "kind", "conditioning", "output", "artifact"]),
      ...pairs("code", commit), diff ? el("pre", { id: "diff" }, diff) : "",
      ...pairs("hardware", run.hardware), ...pairs("packages", run.packages), ...pairs("env", run.env),
      el("h3", {}, "system metrics"), el("div", { id: "system" }),
    );
    if (run.system.length) {
      const body = await get(`api/runs/${Number(runId)}/system`, { points: POINTS });
      const box = $("system");
      for (const [name, curve] of Object.entries(body.system)) {
        const chart = el("div", { class: "chart", "data-metric": name }, el("h3", {}, name));
        box.append(chart);
        new uPlot({ width: 520, height: 200, series: [{}, { label: name, stroke: COLORS[0], points: { show: false } }] },
          [curve.time.map((t) => Date.parse(t) / 1000), curve.value], chart);
      }
    }
  }

  // -- routing and the live refresh ---------------------------------------------------------------
  function hashParams() {
    return new URLSearchParams(location.hash.startsWith("#run/") ? "" : location.hash.slice(1));
  }

  // the link of the runs view: #experiment=NAME&runs=1,2&metrics=loss,acc (a link to share
  // opens on the same charts); kept without a new history entry as runs are ticked
  function saveLink() {
    if (REPORT || state.view !== "runs" || state.experiment === null) return;
    const params = new URLSearchParams({ experiment: state.experiment });
    if (state.selected.size) params.set("runs", [...state.selected].join(","));
    if (state.chosen.length) params.set("metrics", state.chosen.join(","));
    history.replaceState(null, "", "#" + params.toString());
  }

  function restoreLink(params) {
    const ids = (params.get("runs") || "").split(",").filter((v) => /^\d+$/.test(v)).map(Number);
    state.selected = new Set(ids);
    state.chosen = [...new Set((params.get("metrics") || "").split(",").filter(Boolean))];
    renderChosen();
  }

  // a link's runs and the curves of its ticked runs: the newest runs are asked first (the
  // table is drawn from them), then the curves, then the whole list
  function loadLinked() {
    let curves = null;
    const listed = loadRuns(false, () => curves);
    curves = fetchSelected();
    return Promise.all([listed, curves]);
  }

  // the curves of the selected runs (a run that is not there any more is unselected)
  async function fetchSelected() {
    await Promise.all([...state.selected].map((id) => fetchCurves(id, state.chosen, false)
      .catch(() => { state.selected.delete(id); })));
    drawCharts();
    renderCompare();
  }

  async function route() {
    const match = /^#run\/(\d+)$/.exec(location.hash);
    state.view = match ? "run" : "runs";
    $("runs-view").hidden = !!match;
    $("run-view").hidden = !match;
    if (match) { await showRun(match[1]); return; }
    const wanted = hashParams().get("experiment");
    if (wanted && wanted !== state.experiment) {
      state.experiment = wanted; $("experiment").value = wanted; resetExperiment();
      restoreLink(hashParams());
      await loadLinked();
      return;
    }
    await loadRuns();
  }

  function resetExperiment() {
    state.selected.clear(); state.curves.clear(); state.chosen = []; state.shown = null; state.now = null;
    renderChosen(); drawCharts(); renderCompare();
  }

  async function tick() {
    if (state.busy) return;
    state.busy = true;
    try {
      if (state.view === "run" && state.runPage) {
        const run = await get(`api/runs/${Number(state.runPage.id)}`);
        const status = $("run-status");
        if (status) { status.textContent = run.status; status.className = "status-" + String(run.status).replace(/[^A-Z_]/g, ""); }
      } else if (state.experiment !== null) {
        state.ticks += 1;
        await loadRuns(state.ticks % FULL_EVERY !== 0);
        const moving = [...state.selected].filter((id) => (state.byId.get(id) || {}).status === "RUNNING" || !state.curves.has(id));
        await Promise.all(moving.map((id) => fetchCurves(id, state.chosen, true)));
        drawCharts();
        renderCompare();
      }
      live("live · " + new Date().toLocaleTimeString(), false);
    } catch (e) {
      live("not updated: " + e.message, true);
    } finally {
      state.busy = false;
    }
  }

  async function start() {
    const statuses = ["RUNNING", "COMPLETED", "FAILED", "CANCELLED", "PENDING", "REQUEUED", "TIMEOUT", "OUT_OF_MEMORY"];
    $("status").append(...statuses.map((s) => el("option", { value: s }, s)));
    $("experiment").addEventListener("change", () => { location.hash = "experiment=" + encodeURIComponent($("experiment").value); });
    for (const id of ["status", "tag", "arg"]) $(id).addEventListener("change", () => loadRuns().catch((e) => live(e.message, true)));
    $("text").addEventListener("input", renderTable);
    let scrolled = false;
    $("table-wrap").addEventListener("scroll", () => {
      if (!scrolled) { scrolled = true; requestAnimationFrame(() => { scrolled = false; drawRows(false); }); }
    }, { passive: true });
    for (const id of ["log", "smoothing", "group", "x"]) $(id).addEventListener("input", drawCharts);
    $("x").addEventListener("input", () => {
      if (!byProgress()) return;
      Promise.all([...state.selected].map((id) => fetchCurves(id, state.chosen, false)))
        .then(drawCharts).catch((e) => live(e.message, true));
    });
    $("pc-summary").addEventListener("change", drawParallel);
    $("metric-search").addEventListener("input", () => searchMetrics().catch((e) => live(e.message, true)));
    $("metric-search").addEventListener("keydown", (event) => {
      if (event.key === "Enter") { chooseMetric($("metric-search").value.trim()); $("metric-search").value = ""; }
    });
    window.addEventListener("hashchange", () => route().catch((e) => live(e.message, true)));
    try {
      const link = hashParams();
      if (!REPORT && link.get("experiment") && !location.hash.startsWith("#run/")) {
        // a link that names its experiment: its runs and curves are asked at once, with
        // the experiments (which correct a name that is not there)
        state.experiment = link.get("experiment");
        restoreLink(link);
        const early = loadLinked().then(() => true, () => false);
        await loadExperiments();
        const ok = await early;
        if (state.experiment !== link.get("experiment")) { resetExperiment(); saveLink(); await loadRuns(); }
        else if (!ok) await Promise.all([loadRuns(), fetchSelected()]);
        else saveLink();
      } else {
        await loadExperiments();
        await route();
      }
      await searchMetrics();
      if (REPORT) await startReport();
      else live("live · " + new Date().toLocaleTimeString(), false);
    } catch (e) {
      live("not loaded: " + e.message, true);
    }
    if (!REPORT) setInterval(tick, REFRESH_MS);
  }

  // a report opens on a loss (a validation loss if any) and the five runs with its lowest
  async function startReport() {
    live(`report of ${state.runs.length} runs`, false);
    const loss = state.metrics.find((m) => /val/.test(m) && /loss/.test(m))
      || state.metrics.find((m) => /loss/.test(m)) || state.metrics[0];
    if (!loss) return;
    const best = state.runs.filter((r) => r.summaries[loss] && r.summaries[loss].min !== null)
      .sort((a, b) => a.summaries[loss].min - b.summaries[loss].min).slice(0, 5);
    best.forEach((r) => state.selected.add(r.id));
    state.chosen = [loss];
    renderChosen();
    renderTable();
    await Promise.all(best.map((r) => fetchCurves(r.id, state.chosen, false)));
    drawCharts();
    renderCompare();
  }

  window.sqltrackUi = { state, chooseMetric, toggle }; // for tests and the curious
  start();
})();
