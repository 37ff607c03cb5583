/* gitexp ui: the browser half of `gitexp ui` and `gitexp report`.
 *
 * Plain script, no build step. Every value that comes from a run reaches the page through
 * textContent, createElement or setAttribute (never innerHTML), and through plotlyText() for
 * strings that Plotly draws (Plotly reads a few HTML-like tags in text).
 * Report mode: when the JSON script element #gitexp-data exists, every payload is
 * read from it and nothing is fetched.
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ data sources
  const DATA_EL = document.getElementById("gitexp-data");
  const REPORT = DATA_EL ? JSON.parse(DATA_EL.textContent) : null;
  const URL_TOKEN = new URLSearchParams(location.search).get("token") || "";
  let postToken = URL_TOKEN;
  const POLL_MS = 2000;

  class ApiError extends Error {
    constructor(message, status, column) {
      super(message);
      this.status = status;
      this.column = column === undefined ? null : column;
    }
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    }
    const s = q.toString();
    return s ? "?" + s : "";
  }

  /** A URL the browser loads by itself (img src, download links): the token goes in the query. */
  function rawUrl(path, params) {
    const p = Object.assign({}, params || {});
    if (URL_TOKEN) p.token = URL_TOKEN;
    return path + query(p);
  }

  function runPath(name, tail) {
    return "/api/runs/" + encodeURIComponent(name) + (tail ? "/" + tail : "");
  }

  async function api(path, params, options) {
    if (REPORT) return reportApi(path, params || {});
    const headers = {};
    if (URL_TOKEN) headers["X-Gitexp-Token"] = URL_TOKEN;
    const init = { headers: headers, cache: "no-store" };
    if (options && options.body !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      headers["X-Gitexp-Token"] = postToken;
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path + query(params), init);
    } catch (e) {
      throw new ApiError("the gitexp ui server does not answer (" + e.message + ")", 0, null);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const msg = body && body.error ? body.error : "HTTP " + response.status;
      throw new ApiError(msg, response.status, body ? body.column : null);
    }
    return body;
  }

  function reportSeries(name) {
    let p = (REPORT.series || {})[name];
    if (!p) return { series: {} };
    if (p.series && p.series.series) p = p.series;
    return p;
  }

  function reportApi(path, params) {
    const parts = path.split("/").slice(2).map(decodeURIComponent); // ["runs", name, tail]
    const notInReport = (what) => Promise.reject(new ApiError(what + " is not in this report", 404, null));
    if (path === "/api/version") return Promise.resolve({ version: "report" });
    if (path === "/api/session") return Promise.resolve({ token: "", repo: REPORT.repo || "report", version: "report" });
    if (path === "/api/runs") {
      try {
        return Promise.resolve(reportFilter(REPORT.runs, params.where || ""));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (parts[0] === "runs" && parts.length === 2) {
      const d = (REPORT.detail || {})[parts[1]];
      if (d) return Promise.resolve(d);
      const r = REPORT.runs.runs.find((x) => x.name === parts[1]);
      return r ? Promise.resolve(r) : notInReport("run " + parts[1]);
    }
    if (parts[0] === "runs" && parts[2] === "series") {
      const all = reportSeries(parts[1]).series || {};
      const wanted = params.names ? String(params.names).split(",") : Object.keys(all);
      const out = {};
      for (const n of wanted) if (all[n]) out[n] = all[n];
      return Promise.resolve({ series: out });
    }
    if (parts[0] === "runs" && parts[2] === "logs") {
      const d = (REPORT.detail || {})[parts[1]] || {};
      if (d.logs) return Promise.resolve(d.logs);
      return notInReport("the logs");
    }
    if (parts[0] === "runs" && parts[2] === "diff") {
      const d = (REPORT.detail || {})[parts[1]] || {};
      const diffs = d.diffs || {};
      if (diffs[params.against]) return Promise.resolve({ diff: diffs[params.against], against: params.against });
      return notInReport("the diff");
    }
    if (path === "/api/compare") return REPORT.compare ? Promise.resolve(REPORT.compare) : notInReport("the comparison");
    if (path === "/api/tree") return REPORT.tree ? Promise.resolve(REPORT.tree) : notInReport("the tree");
    if (path === "/api/groups") return REPORT.groups ? Promise.resolve(REPORT.groups) : notInReport("the groups");
    return notInReport(path);
  }

  // A report filters client-side on a subset of the CLI's language: FIELD OP VALUE joined by `and`.
  function reportFilter(payload, where) {
    if (!where.trim()) return payload;
    const clauses = [];
    const re = /\s*("(?:[^"\\]|\\.)*"|[A-Za-z_][\w.:+\-/]*)\s*(==|!=|<=|>=|=|<|>)\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"()]+)\s*/y;
    let pos = 0;
    while (pos < where.length) {
      re.lastIndex = pos;
      const m = re.exec(where);
      if (!m) throw new ApiError("a report filters on FIELD OP VALUE joined by 'and' only", 400, pos + 1);
      let field = m[1];
      if (field[0] === '"') field = field.slice(1, -1);
      let value = m[3];
      if (value[0] === "'" || value[0] === '"') value = value.slice(1, -1);
      else if (value !== "" && !isNaN(Number(value))) value = Number(value);
      clauses.push({ field: field, op: m[2], value: value, column: pos + m[0].indexOf(m[1]) + 1 });
      pos = re.lastIndex;
      const and = /and\s+/iy;
      and.lastIndex = pos;
      if (pos < where.length) {
        if (!and.exec(where)) throw new ApiError("expected 'and' here (a report knows no other operator)", 400, pos + 1);
        pos = and.lastIndex;
      }
    }
    const get = (run, field) => {
      if (field.startsWith("params.")) return run.params ? run.params[field.slice(7)] : undefined;
      if (field.startsWith("metrics.")) return run.metrics ? run.metrics[field.slice(8)] : undefined;
      if (field === "tag" || field === "tags") return run.tags || [];
      return run[field];
    };
    for (const c of clauses) {
      const f = c.field;
      if (!/^(params|metrics)\./.test(f) && !["name", "status", "tag", "tags", "sweep", "config", "duration", "note", "commit", "parent"].includes(f)) {
        throw new ApiError("unknown field '" + f + "'", 400, c.column);
      }
    }
    const cmp = (a, op, b) => {
      if (a === undefined || a === null) return false;
      if (op === "=" || op === "==") return a == b; // eslint-disable-line eqeqeq
      if (op === "!=") return a != b; // eslint-disable-line eqeqeq
      if (typeof a !== typeof b) return false;
      if (op === "<") return a < b;
      if (op === "<=") return a <= b;
      if (op === ">") return a > b;
      return a >= b;
    };
    const runs = payload.runs.filter((run) =>
      clauses.every((c) => {
        const v = get(run, c.field);
        if (Array.isArray(v)) return c.op === "!=" ? !v.includes(c.value) : v.includes(c.value);
        return cmp(v, c.op, c.value);
      })
    );
    return Object.assign({}, payload, { runs: runs });
  }

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  const SVGNS = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.setAttribute("class", v);
      else if (k === "text") node.textContent = String(v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "style" && typeof v === "object") Object.assign(node.style, v);
      else if (k in node && !(node instanceof SVGElement) && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(node, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  /** Plotly draws text as its own pseudo-HTML: escape what it would read as markup. */
  function plotlyText(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  const runLink = (name) => el("a", { href: "#/run/" + encodeURIComponent(name), class: "runlink", text: name });
  const STATUS_CLASSES = ["running", "completed", "finished", "failed", "crashed", "interrupted", "queued", "saved"];
  function statusBadge(status) {
    const cls = STATUS_CLASSES.includes(status) ? status : "other";
    return el("span", { class: "status status-" + cls, text: status == null ? "" : status });
  }

  function fmtNum(v) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "number") return typeof v === "object" ? JSON.stringify(v) : String(v);
    if (Number.isInteger(v)) return String(v);
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(Number(v.toPrecision(5)));
  }
  function fmtDur(s) {
    if (s === null || s === undefined) return "";
    if (s < 60) return s.toFixed(1) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.round(s % 60)).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  function fmtSize(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  /** An error; for a where expression, the expression with a caret under the (1-based) column. */
  function errorBox(err, expr) {
    const box = el("div", { class: "error", role: "alert" });
    if (expr !== undefined && err.column !== null && err.column !== undefined) {
      box.appendChild(el("pre", { class: "where-caret" }, expr + "\n" + " ".repeat(Math.max(0, err.column - 1)) + "^"));
    }
    box.appendChild(el("span", { class: "error-message", text: err.message }));
    return box;
  }

  // ------------------------------------------------------------------ shared state
  const store = {
    get(key, fallback) {
      try {
        const v = localStorage.getItem("gitexp." + key);
        return v === null ? fallback : JSON.parse(v);
      } catch (e) {
        return fallback;
      }
    },
    set(key, value) {
      try {
        localStorage.setItem("gitexp." + key, JSON.stringify(value));
      } catch (e) {
        /* file:// or private mode: keep it in memory only */
      }
    },
  };

  const state = {
    version: null,
    where: store.get("where", ""),
    runs: null, // the last /api/runs payload for state.where
    runsError: null,
    selected: new Set(store.get("selected", [])),
    sortKey: store.get("sortKey", "started"),
    sortDir: store.get("sortDir", -1),
    hidden: new Set(store.get("hidden", [])),
    shownStats: new Set(store.get("shownStats", [])),
    onlyDiffers: store.get("onlyDiffers", false),
    curves: store.get("curves", { x: "step", smooth: 0, log: false }),
  };

  function saveSelection() {
    store.set("selected", [...state.selected]);
    updateSelectionInfo();
  }

  function updateSelectionInfo() {
    const info = document.getElementById("selection-info");
    if (info) info.textContent = state.selected.size ? state.selected.size + " selected" : "";
  }

  let runsRequest = null; // the request in flight, for runsRequestWhere
  let runsRequestWhere = null;
  async function loadRuns(force) {
    if (state.runs && !force && !state.runsStale) return state.runs;
    if (!runsRequest || runsRequestWhere !== state.where) {
      // a request for another expression (a refresh racing a new filter) is not this one's answer
      const where = state.where;
      const request = api("/api/runs", { where: where })
        .then((p) => {
          if (where === state.where) {
            state.runs = p;
            state.runsError = null;
            state.runsStale = false;
          }
          return p;
        })
        .finally(() => {
          if (runsRequest === request) runsRequest = null;
        });
      runsRequest = request;
      runsRequestWhere = where;
    }
    return runsRequest;
  }

  /** The runs the chart views show: the selected ones, else the first ten of the table. */
  function chartRuns() {
    const all = state.runs ? state.runs.runs : [];
    const byName = new Map(all.map((r) => [r.name, r]));
    const chosen = [...state.selected].filter((n) => byName.has(n)).map((n) => byName.get(n));
    if (chosen.length) return { runs: chosen, implicit: false };
    return { runs: sortedRuns(all).slice(0, 10), implicit: true };
  }

  // ------------------------------------------------------------------ plotly (loaded on demand)
  let plotlyPromise = null;
  function loadPlotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (REPORT) return Promise.reject(new ApiError("Plotly is not inlined in this report", 0, null));
    if (!plotlyPromise) {
      plotlyPromise = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = rawUrl("static/plotly.min.js"); // relative: the page is served at /
        s.onload = () => resolve(window.Plotly);
        s.onerror = () => {
          plotlyPromise = null;
          reject(new ApiError("could not load plotly.min.js", 0, null));
        };
        document.head.appendChild(s);
      });
    }
    return plotlyPromise;
  }
  const PLOT_CONFIG = { displaylogo: false, responsive: true };

  // ------------------------------------------------------------------ columns of the runs table
  function valueKey(v) {
    return v === undefined ? "\u0000missing" : JSON.stringify(v);
  }

  function buildColumns(payload) {
    const cols = [
      { id: "name", label: "name", width: 200, get: (r) => r.name, render: (r) => runLink(r.name) },
      { id: "status", label: "status", width: 96, get: (r) => r.status, render: (r) => statusBadge(r.status) },
      { id: "started", label: "started", width: 150, get: (r) => r.started, fmt: fmtTime },
      { id: "duration", label: "duration", width: 76, get: (r) => r.duration, fmt: fmtDur, num: true },
    ];
    const tail = [
      { id: "tags", label: "tags", width: 140, get: (r) => (r.tags || []).join(","), render: (r) => (r.tags || []).map((t) => el("span", { class: "tag", text: t })) },
      { id: "note", label: "note", width: 160, get: (r) => r.note },
      { id: "parent", label: "parent", width: 110, get: (r) => r.parent, render: (r) => (r.parent ? runLink(r.parent) : "") },
      { id: "sweep", label: "sweep", width: 90, get: (r) => r.sweep },
      { id: "config", label: "config", width: 130, get: (r) => r.config },
      { id: "command", label: "command", width: 220, get: (r) => r.command },
      { id: "commit", label: "commit", width: 80, get: (r) => (r.commit || "").slice(0, 8) },
    ];
    for (const p of payload.params || []) {
      cols.push({ id: "p:" + p, label: p, group: "param", width: 110, get: (r) => (r.params || {})[p], fmt: fmtNum, num: true });
    }
    const directions = payload.directions || {};
    for (const m of payload.metrics || []) {
      const dir = directions[m];
      cols.push({ id: "m:" + m, label: m + (dir ? (dir === "max" ? " ↑" : " ↓") : ""), group: "metric", width: 110, get: (r) => (r.metrics || {})[m], fmt: fmtNum, num: true });
      for (const s of ["last", "min", "max", "best"]) {
        cols.push({
          id: "s:" + m + ":" + s, label: m + "." + s, group: "stat", metric: m, stat: s, width: 110,
          get: (r) => ((r.stats || {})[m] || {})[s], fmt: fmtNum, num: true,
        });
      }
    }
    return cols.concat(tail);
  }

  const COLLATOR = new Intl.Collator(undefined, { numeric: true }); // one collator: localeCompare with options builds one per call

  function compareValues(a, b) {
    const am = a === undefined || a === null;
    const bm = b === undefined || b === null;
    if (am || bm) return am === bm ? 0 : am ? 1 : -1; // missing last in both directions (flipped below)
    if (typeof a === "number" && typeof b === "number") return a - b;
    return COLLATOR.compare(String(a), String(b));
  }

  let sortCache = { runs: null, key: null, dir: null, out: null };
  function sortedRuns(runs) {
    if (sortCache.runs === runs && sortCache.key === state.sortKey && sortCache.dir === state.sortDir) return sortCache.out;
    const col = state.runs ? buildColumns(state.runs).find((c) => c.id === state.sortKey) : null;
    let out = runs;
    if (col) {
      const keyed = runs.map((r) => [col.get(r), r]);
      const dir = state.sortDir;
      keyed.sort((x, y) => {
        const xm = x[0] === undefined || x[0] === null;
        const ym = y[0] === undefined || y[0] === null;
        if (xm || ym) return xm === ym ? 0 : xm ? 1 : -1;
        return dir * compareValues(x[0], y[0]);
      });
      out = keyed.map((k) => k[1]);
    }
    sortCache = { runs: runs, key: state.sortKey, dir: state.sortDir, out: out };
    return out;
  }

  function visibleColumns(payload, runs) {
    const cols = buildColumns(payload);
    return cols.filter((c) => {
      if (c.group === "stat") return state.shownStats.has(c.id);
      if (state.hidden.has(c.id)) return false;
      if (state.onlyDiffers && (c.group === "param" || c.group === "metric" || ["sweep", "config", "command", "parent", "note", "tags"].includes(c.id))) {
        const seen = new Set();
        for (const r of runs) {
          seen.add(valueKey(c.get(r)));
          if (seen.size > 1) return true;
        }
        return false;
      }
      return true;
    });
  }

  // ------------------------------------------------------------------ view: runs table
  const ROW_H = 28;

  function runsView(main) {
    const whereInput = el("input", {
      type: "search", id: "where", class: "where", placeholder: "filter: e.g. metrics.acc > 0.9 and params.lr < 0.01", value: state.where,
      spellcheck: "false", autocomplete: "off",
    });
    const errorSlot = el("div", { id: "where-error" });
    const countInfo = el("span", { class: "count" });
    const onlyDiffers = el("input", { type: "checkbox", id: "only-differs", checked: state.onlyDiffers });
    const exportLink = el("a", { class: "button", id: "export-csv", text: "Export CSV", download: "runs.csv" });
    const chooser = el("div", { class: "chooser hidden", id: "column-chooser" });
    const wrap = el("div", { class: "tablewrap", id: "runs-table", tabindex: "0" });
    const head = el("div", { class: "thead" });
    const body = el("div", { class: "tbody" });
    wrap.append(head, body);

    const form = el("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); applyWhere(); } },
      whereInput,
      el("button", { type: "submit", text: "Filter" }),
      el("button", { type: "button", text: "Clear", onclick: () => { whereInput.value = ""; applyWhere(); } }),
      el("button", { type: "button", id: "columns-button", text: "Columns", onclick: () => toggleChooser() }),
      el("label", {}, onlyDiffers, " only what differs"),
      exportLink,
      countInfo
    );
    const selBar = el("div", { class: "toolbar selbar" },
      el("button", { type: "button", text: "Curves of selected", onclick: () => (location.hash = "#/curves") }),
      el("button", { type: "button", text: "Compare selected", onclick: () => (location.hash = "#/compare?runs=" + [...state.selected].map(encodeURIComponent).join(",")) }),
      el("button", { type: "button", text: "Select all shown", onclick: () => { for (const r of rows) state.selected.add(r.name); saveSelection(); paint(true); } }),
      el("button", { type: "button", text: "Clear selection", onclick: () => { state.selected.clear(); saveSelection(); paint(true); } })
    );
    clear(main).append(form, errorSlot, chooser, selBar, wrap);

    let rows = [];
    let cols = [];
    let template = "";
    let lastAnchor = null;

    onlyDiffers.addEventListener("change", () => {
      state.onlyDiffers = onlyDiffers.checked;
      store.set("onlyDiffers", state.onlyDiffers);
      layout();
    });

    function updateExport() {
      if (REPORT) {
        exportLink.href = "#";
        exportLink.onclick = (e) => {
          e.preventDefault();
          const csv = toCsv(rows, cols);
          const a = el("a", { href: URL.createObjectURL(new Blob([csv], { type: "text/csv" })), download: "runs.csv" });
          document.body.appendChild(a);
          a.click();
          a.remove();
        };
      } else {
        exportLink.href = rawUrl("/api/export.csv", { where: state.where });
      }
    }

    async function applyWhere() {
      const expr = whereInput.value.trim();
      clear(errorSlot);
      const previous = state.where;
      state.where = expr;
      try {
        await loadRuns(true);
        store.set("where", expr);
        wrap.scrollTop = 0; // a new answer starts at its top
        layout();
      } catch (err) {
        state.where = previous; // the table keeps what it showed, and stays sortable
        errorSlot.appendChild(errorBox(err, expr));
        whereInput.classList.add("invalid");
        return;
      }
      whereInput.classList.remove("invalid");
    }

    function toggleChooser() {
      chooser.classList.toggle("hidden");
      if (!chooser.classList.contains("hidden")) fillChooser();
    }

    function fillChooser() {
      clear(chooser);
      if (!state.runs) return;
      const all = buildColumns(state.runs);
      const section = (title, items) => el("fieldset", {}, el("legend", { text: title }), items);
      const box = (c, checked, onchange) =>
        el("label", { class: "choice" }, el("input", { type: "checkbox", checked: checked, "data-column": c.id, onchange: onchange }), " " + c.label);
      const toggleHidden = (c) => (e) => {
        if (e.target.checked) state.hidden.delete(c.id);
        else state.hidden.add(c.id);
        store.set("hidden", [...state.hidden]);
        layout();
      };
      const toggleStat = (c) => (e) => {
        if (e.target.checked) state.shownStats.add(c.id);
        else state.shownStats.delete(c.id);
        store.set("shownStats", [...state.shownStats]);
        layout();
      };
      chooser.append(
        section("run", all.filter((c) => !c.group).map((c) => box(c, !state.hidden.has(c.id), toggleHidden(c)))),
        section("params", all.filter((c) => c.group === "param").map((c) => box(c, !state.hidden.has(c.id), toggleHidden(c)))),
        section("metrics", all.filter((c) => c.group === "metric").map((c) => box(c, !state.hidden.has(c.id), toggleHidden(c)))),
        section("per-metric last / min / max / best", all.filter((c) => c.group === "stat").map((c) => box(c, state.shownStats.has(c.id), toggleStat(c))))
      );
    }

    function layout() {
      if (!state.runs) return;
      rows = sortedRuns(state.runs.runs);
      cols = visibleColumns(state.runs, rows);
      template = "28px " + cols.map((c) => c.width + "px").join(" ");
      const total = 28 + cols.reduce((a, c) => a + c.width, 0);
      clear(head);
      head.style.gridTemplateColumns = template;
      head.style.width = total + "px";
      head.appendChild(el("div", { class: "th" }));
      for (const c of cols) {
        const arrow = state.sortKey === c.id ? (state.sortDir > 0 ? " ▲" : " ▼") : "";
        head.appendChild(el("div", {
          class: "th" + (c.num ? " num" : ""), "data-column": c.id, title: "sort by " + c.label,
          onclick: () => {
            if (state.sortKey === c.id) state.sortDir = -state.sortDir;
            else {
              state.sortKey = c.id;
              state.sortDir = c.num ? -1 : 1;
            }
            store.set("sortKey", state.sortKey);
            store.set("sortDir", state.sortDir);
            layout();
          },
        }, c.label + arrow));
      }
      body.style.height = rows.length * ROW_H + "px";
      body.style.width = total + "px";
      countInfo.textContent = rows.length + " run" + (rows.length === 1 ? "" : "s");
      const pending = state.runs.pending;
      countInfo.title = pending ? "last / min / max / best of " + pending + " runs are still being read" : "";
      updateExport();
      if (!chooser.classList.contains("hidden")) fillChooser();
      paint(true);
    }

    let painted = { first: -1, last: -1 };
    function paint(force) {
      const top = Math.max(0, wrap.scrollTop - head.offsetHeight);
      const first = Math.max(0, Math.floor(top / ROW_H) - 5);
      const last = Math.min(rows.length, Math.ceil((top + wrap.clientHeight) / ROW_H) + 5);
      if (!force && first === painted.first && last === painted.last) return;
      painted = { first: first, last: last };
      const frag = document.createDocumentFragment();
      for (let i = first; i < last; i++) frag.appendChild(renderRow(rows[i], i));
      clear(body).appendChild(frag);
      if (!plotlyPromise && !window.Plotly && !REPORT) setTimeout(() => loadPlotly().catch(() => null), 1500);
    }

    function renderRow(r, i) {
      const selected = state.selected.has(r.name);
      const row = el("div", { class: "tr" + (selected ? " selected" : "") + " row-status-" + (STATUS_CLASSES.includes(r.status) ? r.status : "other"), "data-run": r.name, role: "row" });
      row.style.top = i * ROW_H + "px";
      row.style.gridTemplateColumns = template;
      const box = el("input", { type: "checkbox", checked: selected, title: "select" });
      box.addEventListener("click", (e) => {
        const on = box.checked;
        if (e.shiftKey && lastAnchor !== null) {
          const [a, b] = [Math.min(lastAnchor, i), Math.max(lastAnchor, i)];
          for (let k = a; k <= b; k++) on ? state.selected.add(rows[k].name) : state.selected.delete(rows[k].name);
        } else if (on) state.selected.add(r.name);
        else state.selected.delete(r.name);
        lastAnchor = i;
        saveSelection();
        paint(true);
      });
      row.appendChild(el("div", { class: "td sel" }, box));
      for (const c of cols) {
        const cell = el("div", { class: "td" + (c.num ? " num" : "") });
        if (c.render) append(cell, [c.render(r)]);
        else {
          const v = c.get(r);
          cell.textContent = c.fmt ? c.fmt(v) : v === undefined || v === null ? "" : String(v);
        }
        if (c.id === "note" || c.id === "command") cell.title = cell.textContent;
        row.appendChild(cell);
      }
      return row;
    }

    let frame = 0;
    wrap.addEventListener("scroll", () => {
      if (!frame) frame = requestAnimationFrame(() => {
        frame = 0;
        paint(false);
      });
    });
    window.addEventListener("resize", onResize);
    function onResize() {
      paint(false);
    }

    async function refresh() {
      try {
        await loadRuns(true);
        layout();
      } catch (err) {
        clear(errorSlot).appendChild(errorBox(err, state.where));
      }
    }

    if (state.runs) layout();
    refresh();
    return {
      refresh: refresh,
      tick: () => (state.runs && state.runs.runs.some((r) => r.status === "running") ? refresh() : null),
      destroy: () => window.removeEventListener("resize", onResize),
    };
  }

  function toCsv(rows, cols) {
    const q = (v) => {
      const s = v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
      return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    const lines = [cols.map((c) => q(c.label)).join(",")];
    for (const r of rows) lines.push(cols.map((c) => q(c.get(r))).join(","));
    return lines.join("\n") + "\n";
  }

  // ------------------------------------------------------------------ curves
  function smooth(ys, weight) {
    if (!weight) return ys;
    const out = new Array(ys.length);
    let last = 0;
    let debias = 0;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (y === null || !isFinite(y)) {
        out[i] = y;
        continue;
      }
      last = last * weight + (1 - weight) * y;
      debias = debias * weight + (1 - weight);
      out[i] = last / debias;
    }
    return out;
  }

  function xValues(xs, mode) {
    if (mode === "time") return xs.map((v) => (typeof v === "number" ? new Date(v * 1000) : v));
    return xs;
  }

  /**
   * One chart per series for the given runs, inside container. Returns {update(), destroy()}.
   * update() refetches; zooming refetches the exact points of the window.
   */
  function curveCharts(container, getRuns, seriesNames, opts) {
    const charts = new Map(); // series -> {div, window: [xmin, xmax] | null}
    const errorSlot = el("div", { class: "chart-errors" });
    container.before(errorSlot);
    let alive = true;
    const fetched = new Map(); // run name -> {series: {...}}

    async function fetchRun(name, names, win) {
      const params = { names: names.join(","), x: state.curves.x, points: 2000 };
      if (win) {
        params.xmin = win[0];
        params.xmax = win[1];
      }
      return api(runPath(name, "series"), params);
    }

    function traces(series, runs, data) {
      const out = [];
      for (const r of runs) {
        const s = ((data.get(r.name) || {}).series || {})[series];
        if (!s) continue;
        out.push({
          type: "scatter", mode: s.x.length < 60 ? "lines+markers" : "lines", name: plotlyText(r.name),
          x: xValues(s.x, state.curves.x), y: smooth(s.y, state.curves.smooth),
          meta: { run: r.name, exact: !!s.exact }, hovertemplate: "%{y:.6g}",
        });
      }
      return out;
    }

    function chartLayout(series, win) {
      const xTitle = { step: "step", time: "wall time", relative: "seconds since start" }[state.curves.x];
      const layout = {
        title: { text: plotlyText(series), font: { size: 14 } },
        hovermode: "x unified",
        margin: { l: 60, r: 20, t: 36, b: 40 },
        height: 320,
        xaxis: { title: { text: xTitle }, type: state.curves.x === "time" ? "date" : "linear" },
        yaxis: { type: state.curves.log ? "log" : "linear" },
        legend: { orientation: "h" },
        uirevision: series + state.curves.x,
      };
      if (win) {
        layout.xaxis.range = state.curves.x === "time" ? win.map((v) => new Date(v * 1000)) : win.slice();
        layout.xaxis.autorange = false;
      }
      return layout;
    }

    async function update() {
      const runs = getRuns();
      const names = seriesNames(runs);
      let Plotly;
      try {
        // Plotly (4.8 MB) loads while the series are fetched
        const both = await Promise.all([loadPlotly(), Promise.all(runs.map((r) => fetchRun(r.name, names, null).then((d) => [r.name, d])))]);
        Plotly = both[0];
        const results = both[1];
        for (const [n, d] of results) fetched.set(n, d);
      } catch (err) {
        clear(errorSlot).appendChild(errorBox(err));
        return;
      }
      clear(errorSlot);
      if (!alive || !runs.length) return;
      // names not known yet (the table's statistics still being read): every series the server sent
      const asked = names.length ? names : [...new Set(runs.flatMap((r) => Object.keys((fetched.get(r.name) || {}).series || {})))].sort();
      const present = asked.filter((n) => runs.some((r) => (((fetched.get(r.name) || {}).series || {})[n])));
      for (const [n, c] of charts) {
        if (!present.includes(n)) {
          Plotly.purge(c.div);
          c.div.parentNode.remove();
          charts.delete(n);
        }
      }
      if (!present.length) {
        if (!container.querySelector(".empty")) container.appendChild(el("p", { class: "muted empty", text: "No step series recorded by these runs." }));
        return;
      }
      const emptyNote = container.querySelector(".empty");
      if (emptyNote) emptyNote.remove();
      for (const series of present) {
        let c = charts.get(series);
        if (!c) {
          const div = el("div", { class: "chart", "data-series": series });
          container.appendChild(el("div", { class: "chart-box" }, div));
          c = { div: div, window: null };
          charts.set(series, c);
          attachZoom(series, c);
        }
        let data = fetched;
        if (c.window) {
          // a zoomed chart keeps its exact window
          data = new Map();
          const res = await Promise.all(runs.map((r) => fetchRun(r.name, [series], c.window).then((d) => [r.name, d]).catch(() => [r.name, fetched.get(r.name)])));
          for (const [n, d] of res) data.set(n, d);
        }
        if (!alive) return;
        const t = traces(series, runs, data);
        c.div.setAttribute("data-exact", String(t.every((tr) => tr.meta.exact)));
        await Plotly.react(c.div, t, chartLayout(series, c.window), PLOT_CONFIG);
      }
      container.setAttribute("data-drawn", String(Date.now()));
    }

    function attachZoom(series, c) {
      c.div.on_relayout_attached = true;
      // Plotly adds .on() to the div once plotted; attach after the first react.
      const attach = () => {
        if (!c.div.on) return setTimeout(attach, 50);
        c.div.on("plotly_relayout", async (ev) => {
          let win = null;
          if (ev["xaxis.range[0]"] !== undefined) win = [ev["xaxis.range[0]"], ev["xaxis.range[1]"]];
          else if (ev["xaxis.range"]) win = ev["xaxis.range"];
          else if (ev["xaxis.autorange"]) win = null;
          else return;
          if (win && state.curves.x === "time") win = win.map((v) => new Date(v).getTime() / 1000);
          c.window = win;
          const runs = getRuns();
          const data = new Map();
          try {
            const res = await Promise.all(runs.map((r) => fetchRun(r.name, [series], win).then((d) => [r.name, d])));
            for (const [n, d] of res) data.set(n, d);
          } catch (err) {
            return;
          }
          const Plotly = window.Plotly;
          const t = traces(series, runs, data);
          c.div.setAttribute("data-exact", String(t.every((tr) => tr.meta.exact)));
          Plotly.react(c.div, t, chartLayout(series, win), PLOT_CONFIG);
        });
      };
      attach();
    }

    return {
      update: update,
      destroy: () => {
        alive = false;
        if (window.Plotly) for (const c of charts.values()) window.Plotly.purge(c.div);
      },
    };
  }

  function seriesOf(runs) {
    const all = (state.runs && state.runs.series) || [];
    return all.length ? all : [...new Set(runs.flatMap((r) => Object.keys(r.stats || {})))];
  }

  function curveControls(onchange) {
    if (REPORT) state.curves.x = "step"; // a report holds the series by step only
    const xSel = el("select", { id: "curve-x", disabled: !!REPORT, title: REPORT ? "a report holds the series by step" : null },
      ["step", "time", "relative"].map((v) => el("option", { value: v, selected: state.curves.x === v, text: v === "time" ? "wall time" : v })));
    const smoothIn = el("input", { type: "range", id: "curve-smooth", min: "0", max: "0.99", step: "0.01", value: String(state.curves.smooth) });
    const smoothOut = el("span", { class: "smooth-value", text: String(state.curves.smooth) });
    const logIn = el("input", { type: "checkbox", id: "curve-log", checked: state.curves.log });
    const changed = () => {
      state.curves = { x: xSel.value, smooth: Number(smoothIn.value), log: logIn.checked };
      smoothOut.textContent = smoothIn.value;
      store.set("curves", state.curves);
      onchange();
    };
    xSel.addEventListener("change", changed);
    smoothIn.addEventListener("change", changed);
    smoothIn.addEventListener("input", () => (smoothOut.textContent = smoothIn.value));
    logIn.addEventListener("change", changed);
    return el("div", { class: "toolbar" },
      el("label", {}, "x ", xSel), el("label", {}, "smoothing ", smoothIn, smoothOut), el("label", {}, logIn, " log scale"));
  }

  function curvesView(main) {
    const note = el("p", { class: "muted" });
    const chips = el("div", { class: "chips" });
    const container = el("div", { class: "charts", id: "curves" });
    clear(main).append(el("h2", { text: "Curves" }), curveControls(() => charts.update()), note, chips, container);
    const getRuns = () => chartRuns().runs;
    const charts = curveCharts(container, getRuns, seriesOf);
    function describe() {
      const { runs, implicit } = chartRuns();
      note.textContent = implicit ? "No run selected: showing the first " + runs.length + " runs of the table (select runs in the table)." : "";
      clear(chips);
      for (const r of runs) chips.appendChild(el("span", { class: "chip" }, runLink(r.name), " ", statusBadge(r.status)));
    }
    async function refresh() {
      try {
        await loadRuns(!state.runs);
      } catch (err) {
        clear(container).appendChild(errorBox(err));
        return;
      }
      describe();
      await charts.update();
    }
    refresh();
    return {
      refresh: async () => {
        await loadRuns(true).catch(() => null);
        describe();
        await charts.update();
      },
      tick: () => (chartRuns().runs.some((r) => r.status === "running") ? charts.update() : null),
      destroy: charts.destroy,
    };
  }

  // ------------------------------------------------------------------ parallel coordinates (SVG)
  function dimensionsOf(payload, runs) {
    const dims = [];
    const add = (key, label, get) => {
      const values = runs.map(get);
      const present = values.filter((v) => v !== undefined && v !== null);
      if (!present.length) return;
      const distinct = new Set(present.map(valueKey));
      const numeric = present.every((v) => typeof v === "number" && isFinite(v));
      dims.push({ key: key, label: label, get: get, numeric: numeric, varies: distinct.size > 1 });
    };
    for (const p of payload.params || []) add("p:" + p, p, (r) => (r.params || {})[p]);
    for (const m of payload.metrics || []) add("m:" + m, m, (r) => (r.metrics || {})[m]);
    return dims;
  }

  const parState = { brushes: {}, log: new Set(store.get("parLog", [])), chosen: store.get("parChosen", null) };

  function parallelView(main) {
    const info = el("span", { class: "count", id: "parallel-info" });
    const axesBox = el("details", { class: "chooser-inline" }, el("summary", { text: "axes" }));
    const holder = el("div", { class: "parallel-holder" });
    const selectBtn = el("button", { type: "button", text: "Select brushed runs" });
    clear(main).append(el("h2", { text: "Parallel coordinates" }),
      el("div", { class: "toolbar" }, axesBox, selectBtn, el("button", { type: "button", text: "Clear brushes", onclick: () => { parState.brushes = {}; draw(); } }), info),
      el("p", { class: "muted", text: "Drag along an axis to brush a range; click an axis name to switch a log scale." }),
      holder);
    let active = [];
    let dragging = false;
    let pendingDraw = false;
    let drawnSignature = null;
    selectBtn.addEventListener("click", () => {
      for (const r of active) state.selected.add(r.name);
      saveSelection();
    });

    function draw(fromRefresh) {
      if (!state.runs) return;
      if (dragging) {
        pendingDraw = true; // never rebuild the axes under a brush being dragged
        return;
      }
      const runs = state.runs.runs;
      const signature = JSON.stringify([runs.map((r) => [r.name, r.params, r.metrics]), parState.chosen, [...parState.log]]);
      if (fromRefresh && signature === drawnSignature) return;
      drawnSignature = signature;
      const allDims = dimensionsOf(state.runs, runs);
      const chosen = parState.chosen ? allDims.filter((d) => parState.chosen.includes(d.key)) : allDims.filter((d) => d.varies || d.key.startsWith("m:"));
      const dims = chosen.slice(0, 30);
      clear(axesBox).appendChild(el("summary", { text: "axes (" + dims.length + ")" }));
      for (const d of allDims) {
        axesBox.appendChild(el("label", { class: "choice" }, el("input", {
          type: "checkbox", checked: dims.includes(d),
          onchange: (e) => {
            const keys = new Set((parState.chosen || dims.map((x) => x.key)));
            if (e.target.checked) keys.add(d.key);
            else keys.delete(d.key);
            parState.chosen = allDims.map((x) => x.key).filter((k) => keys.has(k));
            store.set("parChosen", parState.chosen);
            draw();
          },
        }), " " + d.label));
      }
      clear(holder);
      if (dims.length < 2 || !runs.length) {
        holder.appendChild(el("p", { class: "muted", text: "Parallel coordinates need at least two params or metrics recorded by the runs." }));
        return;
      }
      const H = 420, top = 40, bottom = 30, axisH = H - top - bottom;
      const gap = Math.max(110, Math.min(180, Math.floor((holder.clientWidth || 1000) / dims.length)));
      const W = gap * (dims.length - 1) + 120;
      const svg = svgEl("svg", { class: "parcoords", width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
      // scales
      for (const d of dims) {
        const values = runs.map(d.get).filter((v) => v !== undefined && v !== null);
        if (d.numeric) {
          let lo = Math.min(...values), hi = Math.max(...values);
          d.log = parState.log.has(d.key) && lo > 0;
          if (d.log) {
            lo = Math.log10(lo);
            hi = Math.log10(hi);
          }
          if (lo === hi) {
            lo -= 1;
            hi += 1;
          }
          d.scale = (v) => {
            if (typeof v !== "number" || (d.log && v <= 0)) return null;
            const t = ((d.log ? Math.log10(v) : v) - lo) / (hi - lo);
            return top + axisH * (1 - t);
          };
          d.ticks = [];
          for (let i = 0; i <= 4; i++) {
            const t = lo + ((hi - lo) * i) / 4;
            d.ticks.push([top + axisH * (1 - i / 4), fmtNum(d.log ? Math.pow(10, t) : t)]);
          }
        } else {
          const cats = [...new Set(values.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))))].sort();
          const idx = new Map(cats.map((c, i) => [c, i]));
          d.scale = (v) => {
            if (v === undefined || v === null) return null;
            const i = idx.get(typeof v === "object" ? JSON.stringify(v) : String(v));
            return cats.length === 1 ? top + axisH / 2 : top + axisH * (1 - i / (cats.length - 1));
          };
          d.ticks = cats.slice(0, 20).map((c) => [d.scale(c), c.length > 14 ? c.slice(0, 13) + "…" : c]);
        }
      }
      const xs = dims.map((_, i) => 60 + i * gap);
      // colour by the last metric axis
      const colourDim = [...dims].reverse().find((d) => d.numeric && d.key.startsWith("m:")) || dims[dims.length - 1];
      const cvals = runs.map((r) => colourDim.scale(colourDim.get(r)));
      const lines = svgEl("g", { class: "lines" });
      const paths = runs.map((r, i) => {
        let dstr = "";
        let pen = false;
        dims.forEach((d, j) => {
          const y = d.scale(d.get(r));
          if (y === null || y === undefined || isNaN(y)) {
            pen = false;
            return;
          }
          dstr += (pen ? "L" : "M") + xs[j].toFixed(1) + " " + y.toFixed(1);
          pen = true;
        });
        const t = cvals[i] === null ? 0.5 : 1 - (cvals[i] - top) / axisH;
        const p = svgEl("path", { class: "line", d: dstr || "M0 0", stroke: colour(t), "data-run": r.name });
        p.appendChild(svgEl("title", { text: r.name }));
        p.addEventListener("click", () => (location.hash = "#/run/" + encodeURIComponent(r.name)));
        lines.appendChild(p);
        return p;
      });
      svg.appendChild(lines);
      dims.forEach((d, j) => {
        const g = svgEl("g", { class: "axis", "data-axis": d.key, transform: "translate(" + xs[j] + ",0)" });
        g.appendChild(svgEl("line", { x1: 0, x2: 0, y1: top, y2: top + axisH }));
        for (const [y, label] of d.ticks) {
          g.appendChild(svgEl("line", { class: "tick", x1: -4, x2: 0, y1: y, y2: y }));
          g.appendChild(svgEl("text", { class: "ticklabel", x: -6, y: y + 3, "text-anchor": "end", text: label }));
        }
        const title = svgEl("text", { class: "axis-title" + (d.numeric ? " clickable" : ""), x: 0, y: top - 14, "text-anchor": "middle", text: d.label + (d.log ? " (log)" : "") });
        if (d.numeric) {
          title.addEventListener("click", () => {
            if (parState.log.has(d.key)) parState.log.delete(d.key);
            else parState.log.add(d.key);
            store.set("parLog", [...parState.log]);
            delete parState.brushes[d.key];
            draw();
          });
        }
        g.appendChild(title);
        const brushRect = svgEl("rect", { class: "brush", x: -8, width: 16, y: 0, height: 0 });
        const catcher = svgEl("rect", { class: "brush-area", x: -12, width: 24, y: top - 8, height: axisH + 16 });
        g.append(brushRect, catcher);
        const showBrush = () => {
          const b = parState.brushes[d.key];
          brushRect.setAttribute("y", b ? b[0] : 0);
          brushRect.setAttribute("height", b ? b[1] - b[0] : 0);
        };
        showBrush();
        catcher.addEventListener("pointerdown", (ev) => {
          ev.preventDefault();
          catcher.setPointerCapture(ev.pointerId);
          dragging = true;
          const y0 = Math.max(top, Math.min(top + axisH, svgY(svg, ev)));
          let moved = false;
          const move = (e2) => {
            const y1 = Math.max(top, Math.min(top + axisH, svgY(svg, e2)));
            if (Math.abs(y1 - y0) < 2) return;
            moved = true;
            parState.brushes[d.key] = [Math.min(y0, y1), Math.max(y0, y1)];
            showBrush();
            applyBrushes();
          };
          const up = () => {
            catcher.removeEventListener("pointermove", move);
            catcher.removeEventListener("pointerup", up);
            dragging = false;
            if (pendingDraw) {
              pendingDraw = false;
              setTimeout(() => draw(true), 0);
            }
            if (!moved) {
              delete parState.brushes[d.key];
              showBrush();
              applyBrushes();
            }
          };
          catcher.addEventListener("pointermove", move);
          catcher.addEventListener("pointerup", up);
          catcher.addEventListener("lostpointercapture", up, { once: true });
        });
        svg.appendChild(g);
      });
      function applyBrushes() {
        const brushed = dims.filter((d) => parState.brushes[d.key]);
        active = [];
        runs.forEach((r, i) => {
          const ok = brushed.every((d) => {
            const y = d.scale(d.get(r));
            const b = parState.brushes[d.key];
            return y !== null && y >= b[0] && y <= b[1];
          });
          paths[i].classList.toggle("dim", !ok);
          if (ok) active.push(r);
        });
        info.textContent = active.length + " of " + runs.length + " runs" + (brushed.length ? " in the brushes" : "");
      }
      for (const k of Object.keys(parState.brushes)) if (!dims.some((d) => d.key === k)) delete parState.brushes[k];
      applyBrushes();
      holder.appendChild(svg);
      holder.appendChild(el("p", { class: "muted", text: "colour: " + colourDim.label }));
    }

    async function refresh() {
      try {
        await loadRuns(!state.runs);
        draw();
      } catch (err) {
        clear(holder).appendChild(errorBox(err));
      }
    }
    refresh();
    return { refresh: async () => { await loadRuns(true).catch(() => null); draw(true); } };
  }

  function svgY(svg, ev) {
    const rect = svg.getBoundingClientRect();
    const vb = svg.viewBox.baseVal;
    return ((ev.clientY - rect.top) * vb.height) / rect.height;
  }

  // t in [0, 1] (1 = best) -> colour from red to green through yellow
  function colour(t) {
    t = Math.max(0, Math.min(1, t));
    const hue = Math.round(t * 120);
    return "hsl(" + hue + ",70%,42%)";
  }

  // ------------------------------------------------------------------ scatter
  function scatterView(main) {
    const holder = el("div", { class: "chart", id: "scatter" });
    const xSel = el("select", { id: "scatter-x" });
    const ySel = el("select", { id: "scatter-y" });
    const xLog = el("input", { type: "checkbox" });
    const yLog = el("input", { type: "checkbox" });
    const errSlot = el("div");
    clear(main).append(el("h2", { text: "Scatter" }),
      el("div", { class: "toolbar" }, el("label", {}, "x ", xSel), el("label", {}, xLog, " log"), el("label", {}, "y ", ySel), el("label", {}, yLog, " log")),
      errSlot, holder);
    const saved = store.get("scatter", {});
    let Plotly = null;

    function fields() {
      const p = state.runs;
      return [
        ...(p.params || []).map((k) => ["p:" + k, "params." + k, (r) => (r.params || {})[k]]),
        ...(p.metrics || []).map((k) => ["m:" + k, "metrics." + k, (r) => (r.metrics || {})[k]]),
        ["duration", "duration", (r) => r.duration],
      ];
    }

    function fillSelects() {
      const f = fields();
      for (const [sel, key, fallback] of [[xSel, "x", 0], [ySel, "y", f.length > 1 ? f.findIndex((x) => x[0].startsWith("m:")) : 0]]) {
        const keep = sel.value || saved[key] || (f[Math.max(0, fallback)] || [])[0];
        clear(sel);
        for (const [k, label] of f) sel.appendChild(el("option", { value: k, text: label, selected: k === keep }));
      }
    }

    async function draw() {
      const f = new Map(fields().map((x) => [x[0], x]));
      const fx = f.get(xSel.value), fy = f.get(ySel.value);
      store.set("scatter", { x: xSel.value, y: ySel.value });
      if (!fx || !fy) return;
      const runs = state.runs.runs.filter((r) => fx[2](r) !== undefined && fy[2](r) !== undefined);
      const sel = runs.map((r) => state.selected.has(r.name));
      await Plotly.react(holder, [{
        type: "scatter", mode: "markers", x: runs.map(fx[2]), y: runs.map(fy[2]),
        text: runs.map((r) => plotlyText(r.name)), customdata: runs.map((r) => r.name),
        hovertemplate: "%{text}<br>" + plotlyText(fx[1]) + " = %{x}<br>" + plotlyText(fy[1]) + " = %{y}<extra></extra>",
        marker: { size: sel.map((s) => (s ? 11 : 7)), color: sel.map((s) => (s ? "#d62728" : "#1f77b4")), opacity: 0.8 },
      }], {
        margin: { l: 60, r: 20, t: 20, b: 50 }, height: 480, hovermode: "closest",
        xaxis: { title: { text: plotlyText(fx[1]) }, type: xLog.checked ? "log" : "-" },
        yaxis: { title: { text: plotlyText(fy[1]) }, type: yLog.checked ? "log" : "-" },
      }, PLOT_CONFIG);
      if (!holder.scatterClick) {
        holder.scatterClick = true;
        holder.on("plotly_click", (ev) => {
          const pt = ev.points && ev.points[0];
          if (pt) location.hash = "#/run/" + encodeURIComponent(pt.customdata);
        });
      }
    }
    for (const c of [xSel, ySel, xLog, yLog]) c.addEventListener("change", () => draw());

    async function refresh(force) {
      try {
        Plotly = await loadPlotly();
        await loadRuns(force || !state.runs);
        fillSelects();
        await draw();
      } catch (err) {
        clear(errSlot).appendChild(errorBox(err));
      }
    }
    refresh(false);
    return { refresh: () => refresh(true), destroy: () => window.Plotly && window.Plotly.purge(holder) };
  }

  // ------------------------------------------------------------------ run page
  function kvTable(obj, cls) {
    const t = el("table", { class: "kv " + (cls || "") });
    for (const [k, v] of Object.entries(obj || {})) {
      t.appendChild(el("tr", {}, el("th", { text: k }), el("td", { text: typeof v === "object" && v !== null ? JSON.stringify(v) : fmtNum(v) })));
    }
    return t;
  }

  function diffPre(text) {
    const pre = el("pre", { class: "diff" });
    const lines = String(text || "").split("\n");
    for (const line of lines) {
      let cls = "ctx";
      if (line.startsWith("diff ") || line.startsWith("index ") || line.startsWith("+++ ") || line.startsWith("--- ") || line.startsWith("new file") || line.startsWith("deleted file")) cls = "meta";
      else if (line.startsWith("@@")) cls = "hunk";
      else if (line.startsWith("+")) cls = "add";
      else if (line.startsWith("-")) cls = "del";
      pre.appendChild(el("span", { class: "line " + cls, text: line + "\n" }));
    }
    if (!text) pre.appendChild(el("span", { class: "line ctx muted", text: "(no difference)" }));
    return pre;
  }

  function formatLogTime(t, t0) {
    if (t === null || t === undefined) return "";
    if (t > 1e9) {
      const d = new Date(t * 1000);
      return d.toTimeString().slice(0, 8);
    }
    return "+" + (t - (t0 || 0)).toFixed(1) + "s";
  }

  function runView(main, name) {
    const title = el("h2", {}, name, " ");
    const body = el("div", { class: "run-page" });
    clear(main).append(title, body);
    let detail = null;
    let charts = null;
    let logState = { offset: 0, running: false, pre: null, t0: null };

    function section(id, heading, ...content) {
      return el("section", { id: id, class: "run-section" }, el("h3", { text: heading }), content);
    }

    const shape = (d) => JSON.stringify([d.commit, d.status, d.tags, d.note, d.parent, (d.files || []).length]);

    async function refresh() {
      let fresh;
      try {
        fresh = await api(runPath(name));
      } catch (err) {
        clear(body).appendChild(errorBox(err));
        return;
      }
      if (detail && shape(detail) === shape(fresh)) {
        // the same run, still running: follow its logs and curves in place (no rebuild, no flicker)
        detail = fresh;
        await loadLogs();
        if (charts) await charts.update();
        return;
      }
      detail = fresh;
      clear(title).append(name, " ", statusBadge(detail.status));
      if (charts) charts.destroy();
      clear(body);
      const fields = {
        commit: detail.commit, status: detail.status, started: fmtTime(detail.started), duration: fmtDur(detail.duration),
        base: detail.base, branch: detail.branch, sweep: detail.sweep, config: detail.config, command: detail.command,
      };
      const ft = el("table", { class: "kv fields" });
      for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null && v !== "") ft.appendChild(el("tr", {}, el("th", { text: k }), el("td", { text: v })));
      if (detail.parent) ft.appendChild(el("tr", {}, el("th", { text: "parent" }), el("td", {}, runLink(detail.parent), " ", el("a", { href: "#/compare?runs=" + encodeURIComponent(detail.parent) + "," + encodeURIComponent(name), text: "(compare)" }))));
      body.appendChild(section("fields", "Run", ft, tagEditor(), noteEditor()));
      const metrics = el("table", { class: "kv metrics" }, el("tr", {}, ["metric", "value", "last", "min", "max", "best"].map((h) => el("th", { text: h }))));
      const mnames = new Set([...Object.keys(detail.metrics || {}), ...Object.keys(detail.stats || {})]);
      for (const m of mnames) {
        const s = (detail.stats || {})[m] || {};
        metrics.appendChild(el("tr", {}, el("th", { text: m }), [(detail.metrics || {})[m], s.last, s.min, s.max, s.best].map((v) => el("td", { class: "num", text: fmtNum(v) }))));
      }
      body.appendChild(el("div", { class: "two" }, section("params", "Params", kvTable(detail.params)), section("metrics", "Metrics", metrics)));
      const chartBox = el("div", { class: "charts", id: "run-curves" });
      body.appendChild(section("curves", "Curves", curveControls(() => charts.update()), chartBox));
      const selfRun = () => [detail];
      charts = curveCharts(chartBox, selfRun, () => Object.keys(detail.stats || {}).length ? Object.keys(detail.stats) : seriesOf([detail]));
      charts.update();
      logState = { offset: 0, running: detail.status === "running", pre: el("pre", { class: "logs", id: "logs" }), t0: null };
      body.appendChild(section("logs-section", "Logs" + (logState.running ? " (following)" : ""), logState.pre));
      loadLogs();
      body.appendChild(section("diff-section", "Code diff", diffTabs()));
      body.appendChild(section("files", "Files", filesTable()));
      if ((detail.data || []).length) body.appendChild(section("data", "Data pointers", pointerTable(detail.data)));
      if (detail.resources && Object.keys(detail.resources).length) body.appendChild(section("resources", "Resources", kvTable(detail.resources)));
      if (detail.env && Object.keys(detail.env).length) {
        body.appendChild(section("env", "Environment", el("details", {}, el("summary", { text: Object.keys(detail.env).length + " entries" }), el("pre", { class: "json", text: JSON.stringify(detail.env, null, 2) }))));
      }
      if ((detail.incomplete || []).length) body.appendChild(section("incomplete", "Incomplete", el("ul", {}, detail.incomplete.map((x) => el("li", { text: typeof x === "string" ? x : JSON.stringify(x) })))));
    }

    function tagEditor() {
      const box = el("div", { class: "tags-edit", id: "tags" });
      for (const t of detail.tags || []) {
        const chip = el("span", { class: "tag" }, t);
        if (!REPORT) chip.appendChild(el("button", { type: "button", class: "x", title: "remove tag", text: "×", onclick: () => postTags({ remove: [t] }) }));
        box.appendChild(chip);
      }
      if (!REPORT) {
        const input = el("input", { type: "text", placeholder: "add tag", size: 12, id: "tag-input" });
        box.appendChild(el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) postTags({ add: [input.value.trim()] }); } }, input, el("button", { type: "submit", text: "Add" })));
      }
      return box;
    }

    function noteEditor() {
      if (REPORT) return detail.note ? el("p", { class: "note", text: detail.note }) : null;
      const area = el("textarea", { id: "note-input", rows: 2, cols: 60, placeholder: "note" });
      area.value = detail.note || "";
      const msg = el("span", { class: "muted" });
      return el("form", { class: "note-edit", onsubmit: async (e) => {
        e.preventDefault();
        try {
          await ensureSession();
          await api(runPath(name, "note"), null, { body: { note: area.value } });
          msg.textContent = "saved";
        } catch (err) {
          msg.textContent = err.message;
        }
      } }, area, el("button", { type: "submit", text: "Save note" }), msg);
    }

    async function postTags(change) {
      try {
        await ensureSession();
        await api(runPath(name, "tags"), null, { body: change });
        refresh();
      } catch (err) {
        const slot = main.querySelector("#tags");
        if (slot) slot.appendChild(errorBox(err));
      }
    }

    async function loadLogs() {
      for (let chunk = 0; chunk < 64; chunk++) {
        const before = logState.offset;
        if (!(await loadLogChunk())) return;
        if (logState.offset === before) return;
      }
    }

    async function loadLogChunk() {
      let res;
      try {
        res = await api(runPath(name, "logs"), { offset: logState.offset });
      } catch (err) {
        if (!logState.pre.firstChild) logState.pre.appendChild(el("span", { class: "muted", text: err.message }));
        return false;
      }
      const atBottom = logState.pre.scrollTop + logState.pre.clientHeight >= logState.pre.scrollHeight - 4;
      const lines = res.lines || [];
      if (!lines.length && res.text && !logState.offset) lines.push(...res.text.split("\n").map((t) => ({ t: null, stream: "out", text: t })));
      for (const l of lines) {
        if (logState.t0 === null && l.t !== null && l.t !== undefined && l.t > 1e9) logState.t0 = l.t;
        logState.pre.appendChild(el("span", { class: "logline " + (l.stream === "err" ? "err" : "out") },
          el("span", { class: "t", text: formatLogTime(l.t, null) }), el("span", { class: "text", text: l.text })));
      }
      if (typeof res.offset === "number") logState.offset = res.offset;
      logState.running = !!res.running;
      if (atBottom) logState.pre.scrollTop = logState.pre.scrollHeight;
      if (!logState.pre.firstChild) logState.pre.appendChild(el("span", { class: "muted", text: "(no output)" }));
      return !!(res.text || lines.length);
    }

    function diffTabs() {
      const box = el("div", { class: "diff-tabs" });
      const out = el("div", { class: "diff-out", id: "diff" });
      const tabs = [["base", "vs base " + (detail.base ? detail.base.slice(0, 8) : "")]];
      if (detail.parent) tabs.push(["parent", "vs parent " + detail.parent]);
      const buttons = tabs.map(([against, label]) => el("button", { type: "button", class: "tab", "data-against": against, text: label, onclick: () => show(against) }));
      async function show(against) {
        for (const b of buttons) b.classList.toggle("active", b.getAttribute("data-against") === against);
        clear(out).appendChild(el("p", { class: "muted", text: "loading…" }));
        try {
          const d = await api(runPath(name, "diff"), { against: against });
          clear(out).appendChild(diffPre(d.diff));
        } catch (err) {
          clear(out).appendChild(errorBox(err));
        }
      }
      box.append(el("div", { class: "tabs" }, buttons), out);
      show(detail.parent ? "parent" : "base");
      return box;
    }

    function filesTable() {
      const files = detail.files || [];
      if (!files.length) return el("p", { class: "muted", text: "no files" });
      const images = el("div", { class: "images" });
      const t = el("table", { class: "files" }, el("tr", {}, ["path", "kind", "size", ""].map((h) => el("th", { text: h }))));
      for (const f of files) {
        const href = rawUrl(runPath(name, "file"), { path: f.path, download: 1 });
        t.appendChild(el("tr", { "data-path": f.path }, el("td", { text: f.path }), el("td", { text: f.kind }), el("td", { class: "num", text: fmtSize(f.size) }),
          el("td", {}, REPORT ? "" : el("a", { href: href, download: f.path.split("/").pop(), text: "download" }))));
        if (f.image && !REPORT) {
          images.appendChild(el("figure", {}, el("img", { src: rawUrl(runPath(name, "file"), { path: f.path }), alt: f.path, loading: "lazy" }), el("figcaption", { text: f.path })));
        } else if (f.image && REPORT && f.data_uri && /^data:image\/(png|jpeg|gif);base64,/.test(f.data_uri)) {
          images.appendChild(el("figure", {}, el("img", { src: f.data_uri, alt: f.path }), el("figcaption", { text: f.path })));
        }
      }
      return el("div", {}, t, images);
    }

    function pointerTable(pointers) {
      const keys = [...new Set(pointers.flatMap((p) => Object.keys(p)))];
      return el("table", { class: "files" }, el("tr", {}, keys.map((k) => el("th", { text: k }))),
        pointers.map((p) => el("tr", {}, keys.map((k) => el("td", { text: p[k] === undefined ? "" : typeof p[k] === "object" ? JSON.stringify(p[k]) : String(p[k]) })))));
    }

    refresh();
    return {
      refresh: refresh,
      tick: async () => {
        if (detail && (detail.status === "running" || logState.running)) {
          await loadLogs();
          if (charts) await charts.update();
          if (!logState.running) refresh();
        }
      },
      destroy: () => charts && charts.destroy(),
    };
  }

  async function ensureSession() {
    if (postToken) return;
    const s = await api("/api/session");
    postToken = s.token;
  }

  // ------------------------------------------------------------------ compare page
  function compareView(main, params) {
    const fromHash = params.get("runs");
    const names = fromHash ? fromHash.split(",").map(decodeURIComponent).filter(Boolean) : [...state.selected];
    const body = el("div", { class: "compare" });
    clear(main).append(el("h2", { text: "Compare" }), body);
    async function refresh() {
      if (!REPORT && names.length < 2) {
        clear(body).appendChild(el("p", { class: "muted", text: "Select two or more runs in the table, then Compare selected." }));
        return;
      }
      let c;
      try {
        c = await api("/api/compare", { runs: names.join(",") });
      } catch (err) {
        clear(body).appendChild(errorBox(err));
        return;
      }
      clear(body);
      const t = el("table", { class: "compare-table", id: "compare-table" });
      t.appendChild(el("tr", {}, el("th", {}), c.runs.map((n) => el("th", {}, runLink(n)))));
      t.appendChild(el("tr", { class: "section" }, el("th", { colspan: c.runs.length + 1, text: "params" })));
      for (const p of c.params || []) {
        t.appendChild(el("tr", { class: p.differs ? "differs" : "same" }, el("th", { text: p.key }), p.values.map((v) => el("td", { text: fmtNum(v) }))));
      }
      t.appendChild(el("tr", { class: "section" }, el("th", { colspan: c.runs.length + 1, text: "metrics (★ best, Δ against the first run)" })));
      for (const m of c.metrics || []) {
        t.appendChild(el("tr", {}, el("th", { text: m.key }), m.values.map((v, i) => {
          const d = (m.deltas || [])[i];
          return el("td", { class: "num" + (m.best === i ? " best" : "") }, fmtNum(v), m.best === i ? " ★" : "",
            i > 0 && d !== null && d !== undefined ? el("span", { class: "delta " + (d > 0 ? "up" : d < 0 ? "down" : ""), text: " Δ " + (d > 0 ? "+" : "") + fmtNum(d) }) : "");
        })));
      }
      body.appendChild(t);
      const heading = el("h3", { text: "Code diff " + (c.runs[0] || "") + " → " + (c.runs[1] || "") });
      body.appendChild(heading);
      if (!REPORT && c.runs.length > 2) {
        // the server diffs the first two runs: choosing a pair puts it first
        const pick = (id, chosen) => el("select", { id: id }, c.runs.map((n) => el("option", { value: n, text: n, selected: n === chosen })));
        const a = pick("diff-a", c.runs[0]);
        const b = pick("diff-b", c.runs[1]);
        const change = () => {
          if (a.value === b.value) return;
          const rest = names.filter((n) => n !== a.value && n !== b.value);
          names.splice(0, names.length, a.value, b.value, ...rest);
          refresh();
        };
        a.addEventListener("change", change);
        b.addEventListener("change", change);
        body.appendChild(el("div", { class: "toolbar" }, el("label", {}, "diff ", a), el("label", {}, "→ ", b)));
      }
      body.appendChild(diffPre(c.diff));
    }
    refresh();
    return { refresh: refresh };
  }

  // ------------------------------------------------------------------ tree page (SVG)
  function treeView(main) {
    const holder = el("div", { class: "tree", id: "tree" });
    const errSlot = el("div");
    clear(main).append(el("h2", { text: "Evolution tree" }), el("p", { class: "muted", text: "parent run → child, grouped by base commit and branch; colour: the primary metric (green best)." }), errSlot, holder);

    async function refresh() {
      let t;
      try {
        t = await api("/api/tree", { where: state.where });
        if (!state.runs) await loadRuns(false).catch(() => null);
      } catch (err) {
        clear(errSlot).appendChild(errorBox(err));
        return;
      }
      clear(errSlot);
      draw(t);
    }

    function draw(t) {
      clear(holder);
      const nodes = t.nodes || [];
      if (!nodes.length) {
        holder.appendChild(el("p", { class: "muted", text: "no runs" }));
        return;
      }
      const dir = t.metric && state.runs ? (state.runs.directions || {})[t.metric] : null;
      const vals = nodes.map((n) => n.metric).filter((v) => typeof v === "number" && isFinite(v));
      const lo = Math.min(...vals), hi = Math.max(...vals);
      const fill = (v) => {
        if (typeof v !== "number" || !isFinite(v)) return "#bbb";
        let x = hi === lo ? 1 : (v - lo) / (hi - lo);
        if (dir === "min") x = 1 - x;
        return colour(x);
      };
      const byName = new Map(nodes.map((n) => [n.name, n]));
      const groups = new Map();
      for (const n of nodes) {
        const key = (n.base ? String(n.base).slice(0, 8) : "?") + (n.branch ? " · " + n.branch : "");
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(n);
      }
      const NODE_W = 150, NODE_H = 26, DX = 190, DY = 36;
      const svg = svgEl("svg", { class: "tree-svg", role: "img" });
      let y = 10;
      let maxX = 0;
      const pos = new Map();
      const edges = [];
      for (const [key, members] of groups) {
        const inGroup = new Set(members.map((m) => m.name));
        const children = new Map();
        const roots = [];
        for (const n of members) {
          if (n.parent && inGroup.has(n.parent)) {
            if (!children.has(n.parent)) children.set(n.parent, []);
            children.get(n.parent).push(n);
          } else roots.push(n);
        }
        const gTop = y;
        y += 22;
        const seen = new Set();
        const place = (n, depth) => {
          if (seen.has(n.name)) return;
          seen.add(n.name);
          pos.set(n.name, { x: 10 + depth * DX, y: y });
          maxX = Math.max(maxX, 10 + depth * DX + NODE_W);
          y += DY;
          for (const c of children.get(n.name) || []) place(c, depth + 1);
        };
        for (const r of roots) place(r, 0);
        for (const n of members) place(n, 0); // cycles in hostile data: place what is left
        svg.appendChild(svgEl("rect", { class: "group", x: 2, y: gTop, width: 10, height: y - gTop }));
        svg.appendChild(svgEl("text", { class: "group-label", x: 10, y: gTop + 15, text: "base " + key }));
        y += 14;
      }
      for (const n of nodes) {
        if (n.parent && pos.has(n.parent) && pos.has(n.name)) edges.push([pos.get(n.parent), pos.get(n.name), n.parent, n.name]);
        else if (n.parent && !byName.has(n.parent)) {
          /* parent filtered out or in another group: nothing to draw */
        }
      }
      const edgeG = svgEl("g", { class: "edges" });
      for (const [a, b, pn, cn] of edges) {
        const x1 = a.x + 12, y1 = a.y + NODE_H, x2 = b.x, y2 = b.y + NODE_H / 2;
        edgeG.appendChild(svgEl("path", { class: "edge", d: "M" + x1 + " " + y1 + " L" + x1 + " " + y2 + " L" + x2 + " " + y2, "data-parent": pn, "data-child": cn }));
      }
      svg.appendChild(edgeG);
      for (const n of nodes) {
        const p = pos.get(n.name);
        if (!p) continue;
        const a = svgEl("a", { href: "#/run/" + encodeURIComponent(n.name), class: "node", "data-run": n.name });
        a.appendChild(svgEl("rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 5, fill: fill(n.metric), class: "node-box status-" + (STATUS_CLASSES.includes(n.status) ? n.status : "other") }));
        const label = n.name.length > 18 ? n.name.slice(0, 17) + "…" : n.name;
        a.appendChild(svgEl("text", { x: p.x + 6, y: p.y + 17, text: label + (typeof n.metric === "number" ? " " + fmtNum(n.metric) : "") }));
        a.appendChild(svgEl("title", { text: n.name + (t.metric ? "\n" + t.metric + " = " + fmtNum(n.metric) : "") + "\n" + (n.status || "") }));
        svg.appendChild(a);
      }
      svg.setAttribute("width", maxX + 20);
      svg.setAttribute("height", y + 10);
      holder.appendChild(svg);
      if (t.metric) holder.appendChild(el("p", { class: "muted", text: "colour: " + t.metric + (dir ? " (" + dir + " is best)" : "") }));
    }

    refresh();
    return { refresh: refresh };
  }

  // ------------------------------------------------------------------ groups page
  function groupsView(main) {
    const metricSel = el("select", { id: "groups-metric" });
    const body = el("div", { class: "groups", id: "groups" });
    clear(main).append(el("h2", { text: "Groups (by config)" }), el("div", { class: "toolbar" }, el("label", {}, "metric ", metricSel)), body);
    metricSel.addEventListener("change", () => refresh());

    async function refresh() {
      try {
        await loadRuns(!state.runs);
      } catch (err) {
        clear(body).appendChild(errorBox(err));
        return;
      }
      const metrics = (state.runs && state.runs.metrics) || [];
      const keep = metricSel.value || store.get("groupsMetric", metrics[0]);
      clear(metricSel);
      for (const m of metrics) metricSel.appendChild(el("option", { value: m, text: m, selected: m === keep }));
      store.set("groupsMetric", metricSel.value);
      let g;
      try {
        g = await api("/api/groups", { where: state.where, by: "config", metric: metricSel.value });
      } catch (err) {
        clear(body).appendChild(errorBox(err));
        return;
      }
      clear(body);
      if (!g || !(g.groups || []).length) {
        body.appendChild(el("p", { class: "muted", text: "No groups: runs made with --config or a sweep are grouped by their config." }));
        return;
      }
      const t = el("table", { class: "groups-table" }, el("tr", {}, ["config", "n", "mean ± SEM", "min", "max", "params", "runs"].map((h) => el("th", { text: h }))));
      for (const grp of g.groups) {
        t.appendChild(el("tr", {}, el("td", { text: grp.key }), el("td", { class: "num", text: grp.n }),
          el("td", { class: "num", text: fmtNum(grp.mean) + (typeof grp.sem === "number" && isFinite(grp.sem) ? " ± " + fmtNum(grp.sem) : " (one run)") }), el("td", { class: "num", text: fmtNum(grp.min) }), el("td", { class: "num", text: fmtNum(grp.max) }),
          el("td", { text: Object.entries(grp.params || {}).map(([k, v]) => k + "=" + fmtNum(v)).join(" ") }),
          el("td", {}, (grp.runs || []).slice(0, 8).map((n) => [runLink(n), " "]), (grp.runs || []).length > 8 ? "…" : "")));
      }
      body.appendChild(t);
      if ((g.welch || []).length) {
        body.appendChild(el("h3", { text: "Welch's t-test against the best group" }));
        const w = el("table", { class: "groups-table" }, el("tr", {}, ["a", "b", "t", "df", "p"].map((h) => el("th", { text: h }))));
        for (const x of g.welch) w.appendChild(el("tr", { class: x.p < 0.05 ? "significant" : "" }, [x.a, x.b, fmtNum(x.t), fmtNum(x.df), fmtNum(x.p)].map((v) => el("td", { text: v }))));
        body.appendChild(w);
      }
    }
    refresh();
    return { refresh: refresh };
  }

  // ------------------------------------------------------------------ router and live updates
  let current = null;
  let currentKey = null;

  function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [pathPart, queryPart] = hash.split("?");
    const params = new URLSearchParams(queryPart || "");
    const segs = pathPart.split("/").filter(Boolean);
    const view = segs[0] || "runs";
    if (current && current.destroy) current.destroy();
    current = null;
    const main = document.getElementById("main");
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("data-view") === view);
    document.body.setAttribute("data-view", view);
    if (view === "runs") current = runsView(main);
    else if (view === "curves") current = curvesView(main);
    else if (view === "parallel") current = parallelView(main);
    else if (view === "scatter") current = scatterView(main);
    else if (view === "compare") current = compareView(main, params);
    else if (view === "tree") current = treeView(main);
    else if (view === "groups") current = groupsView(main);
    else if (view === "run" && segs[1]) current = runView(main, decodeURIComponent(segs.slice(1).join("/")));
    else clear(main).appendChild(el("p", { class: "error", text: "no such page" }));
    currentKey = hash;
  }

  let polling = false;
  async function poll() {
    if (polling || REPORT) return;
    polling = true;
    const status = document.getElementById("live-status");
    try {
      const v = await api("/api/version");
      status.textContent = "live";
      status.className = "live";
      if (state.version !== null && v.version !== state.version) {
        state.version = v.version;
        state.runsStale = true; // kept meanwhile: a view drawing now still has every run
        if (current && current.refresh) await current.refresh();
      } else {
        state.version = v.version;
        if (current && current.tick) await current.tick();
      }
    } catch (err) {
      status.textContent = "server not reachable";
      status.className = "offline";
    } finally {
      polling = false;
    }
  }

  function start() {
    window.addEventListener("hashchange", route);
    updateSelectionInfo();
    if (REPORT) {
      document.body.classList.add("report");
      const status = document.getElementById("live-status");
      if (status) status.textContent = "report";
      if (!store.get("selected", null)) {
        // a report's runs are the ones chosen for it: select them all
        for (const r of REPORT.runs.runs) state.selected.add(r.name);
      }
    } else {
      setInterval(poll, POLL_MS);
      poll();
    }
    route();
  }

  // exposed for tests and benchmarks (read-only helpers)
  window.gitexpUi = { state: state, report: !!REPORT };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
