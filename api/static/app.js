/*
 * Duff analytics dashboard. Plain browser JavaScript, no build step, no network beyond the
 * API that serves this page. Every figure shown comes from one of the API's JSON routes.
 *
 * The API key comes from the key field or from the URL fragment (#key=...), which never
 * reaches a server or its logs; the fragment is removed from the address bar at once and the
 * key is kept in sessionStorage (this tab only). It is sent as the x-api-key header.
 *
 * All API text (client and product names) is written with textContent, never as HTML.
 */
(function () {
  "use strict";

  const KEY_STORAGE = "duff.apiKey";
  const REQUEST_TIMEOUT_MS = 30000;
  // Client search by name scans /clients pages (biggest spenders first) up to this bound.
  const SEARCH_PAGE_SIZE = 1000;
  const SEARCH_MAX_PAGES = 5;
  const SEARCH_MAX_SHOWN = 25;
  const PRODUCTS_IN_CHART = 12;
  const STATUS_ORDER = ["created", "delivered", "broken"];
  const QUALITY_FILES_SHOWN = 10;
  // The stream lands a batch a minute per shard, each a delivery of its own, so the latest
  // files can sit behind thousands of batches: the panel pages /quality/files up to this bound.
  const QUALITY_PAGE_SIZE = 1000;
  const QUALITY_MAX_PAGES = 5;
  const REJECT_REASONS = ["missing", "invalid", "duplicate"];

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- formatting

  const { parseJson, scaled, fixedText, fmt, byExact } = window.DuffFigures;

  // ---------------------------------------------------------------- key handling

  const state = {
    key: null,
    generation: 0,
    search: null,
    dailyRange: { from: "", to: "" },
    dailyView: "avg7", // "avg7": 7-day average bold, days faint; "daily": the days alone
    dailyItems: null, // the last /sales/daily answer, redrawn when the view changes
  };

  // ---------------------------------------------------------------- dates

  const DAY_MS = 864e5;
  const AVERAGE_DAYS = 7;
  const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
  // A real calendar day written YYYY-MM-DD (not 2024-02-30).
  function isIsoDate(s) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
    const ms = Date.parse(s + "T00:00:00Z");
    return Number.isFinite(ms) && isoDay(ms) === s;
  }

  /**
   * The trailing AVERAGE_DAYS-day mean of revenue for every calendar day from the
   * AVERAGE_DAYS-th day of the series on: a day missing from the answer sold nothing (0).
   * Sums in integer cents, so the mean is the exact one rounded to the cent.
   * Returns [{date, cents, value, exact}] (exact: the mean's decimal text).
   */
  function movingAverage(items) {
    if (!items.length) return [];
    const cents = new Map(items.map((r) => [r.pa_date, scaled(r.revenue, 2)]));
    const dates = items.map((r) => r.pa_date).sort();
    const first = Date.parse(dates[0] + "T00:00:00Z");
    const last = Date.parse(dates[dates.length - 1] + "T00:00:00Z");
    const recent = [];
    let sum = 0n;
    const out = [];
    for (let t = first; t <= last; t += DAY_MS) {
      const day = isoDay(t);
      const v = cents.get(day) || 0n;
      recent.push(v);
      sum += v;
      if (recent.length > AVERAGE_DAYS) sum -= recent.shift();
      if (recent.length === AVERAGE_DAYS) {
        // the mean to the cent, half up (revenue is never negative)
        const c = (sum * 2n + BigInt(AVERAGE_DAYS)) / BigInt(2 * AVERAGE_DAYS);
        out.push({ date: day, cents: c, value: Number(c) / 100, exact: fixedText(c, 2, false) });
      }
    }
    return out;
  }

  function readStoredKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch (_) {
      return null; // storage disabled: the key lives in memory for this page only
    }
  }
  function storeKey(key) {
    state.key = key;
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) {
      /* memory only */
    }
  }

  // Take #key=... from the address, then drop the fragment from the address bar and history.
  function takeKeyFromFragment() {
    if (!location.hash || location.hash.length < 2) return null;
    const params = new URLSearchParams(location.hash.slice(1));
    if (!params.has("key")) return null;
    const key = (params.get("key") || "").trim();
    params.delete("key");
    const rest = params.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
    return key;
  }

  function showKeyForm(focus) {
    $("key-form").hidden = false;
    $("key-set").hidden = true;
    $("api-key").value = "";
    if (focus) $("api-key").focus();
  }
  function showKeySet() {
    $("key-form").hidden = true;
    $("key-set").hidden = false;
  }

  // ---------------------------------------------------------------- API access

  class ApiError extends Error {
    constructor(kind, status, code, message, path) {
      super(message);
      this.kind = kind; // "auth" | "network" | "timeout" | "server" | "client" | "aborted"
      this.status = status;
      this.code = code;
      this.path = path;
    }
  }

  function apiUrl(path) {
    // Relative to the page, so the dashboard also works under an API Gateway stage prefix.
    return new URL(path, document.baseURI).toString();
  }

  async function api(path, { auth = true, signal } = {}) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort("timeout"), REQUEST_TIMEOUT_MS);
    const onAbort = () => ctrl.abort("aborted");
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    const headers = { Accept: "application/json" };
    if (auth) headers["x-api-key"] = state.key || "";
    let resp;
    try {
      resp = await fetch(apiUrl(path), { headers, cache: "no-store", credentials: "omit", signal: ctrl.signal });
    } catch (e) {
      if (signal && signal.aborted) throw new ApiError("aborted", 0, "aborted", "Cancelled.", path);
      if (ctrl.signal.aborted) {
        throw new ApiError("timeout", 0, "timeout", `The API did not answer /${path} within ${REQUEST_TIMEOUT_MS / 1000} s.`, path);
      }
      throw new ApiError("network", 0, "network_error", `Could not reach the API for /${path} (network error).`, path);
    } finally {
      clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", onAbort);
    }
    let body = null;
    try {
      body = parseJson(await resp.text());
    } catch (_) {
      body = null;
    }
    if (!resp.ok) {
      const err = (body && body.error) || {};
      const kind = resp.status === 403 || resp.status === 401 ? "auth" : resp.status >= 500 ? "server" : "client";
      const detail = err.message || resp.statusText || "no detail";
      throw new ApiError(kind, resp.status, err.code || `http_${resp.status}`, detail, path);
    }
    if (body === null || typeof body !== "object") {
      throw new ApiError("server", resp.status, "bad_response", `The API answered /${path} with something that is not JSON.`, path);
    }
    return body;
  }

  function describeError(e) {
    switch (e.kind) {
      case "auth":
        return `The API refused the key (HTTP ${e.status}: ${e.message}). Enter a valid API key.`;
      case "network":
        return "Could not reach the API (network error). Check the connection and that the server is running, then try again.";
      case "timeout":
        return e.message + " Try again in a moment.";
      case "server":
        return `The API failed on /${e.path} (HTTP ${e.status}, ${e.code}: ${e.message}). Try again in a moment.`;
      case "client":
        return `The API rejected /${e.path} (HTTP ${e.status}, ${e.code}: ${e.message}).`;
      default:
        return e.message || String(e);
    }
  }

  // ---------------------------------------------------------------- page status

  function setStatus(text) {
    $("status").textContent = text;
    $("status").dataset.state = text ? "shown" : "empty";
  }
  function showAlert(text, { retry = false, kind = "error" } = {}) {
    $("alert-text").textContent = text;
    $("alert").dataset.kind = kind;
    $("alert").hidden = false;
    $("alert-retry").hidden = !retry;
  }
  function clearAlert() {
    $("alert").hidden = true;
    $("alert-text").textContent = "";
    delete $("alert").dataset.kind;
  }

  function panel(id) {
    const el = $(id);
    return {
      el,
      chart: el.querySelector('[data-role="chart"]'),
      table: el.querySelector('[data-role="table"]'),
      message: el.querySelector('[data-role="message"]'),
      setState(s, text) {
        el.dataset.state = s;
        el.setAttribute("aria-busy", s === "loading" ? "true" : "false");
        this.message.textContent = text || "";
        this.message.classList.toggle("error", s === "error");
        if (s !== "ready") {
          DuffCharts.clear(this.chart);
          this.table.textContent = "";
        }
      },
    };
  }

  // ---------------------------------------------------------------- tables

  function renderTable(container, caption, columns, rows) {
    container.textContent = "";
    const table = document.createElement("table");
    const cap = document.createElement("caption");
    cap.textContent = caption;
    table.appendChild(cap);
    const thead = table.createTHead();
    const hr = thead.insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = c.label;
      if (c.numeric) th.className = "num";
      hr.appendChild(th);
    }
    const tbody = table.createTBody();
    for (const row of rows) {
      const tr = tbody.insertRow();
      columns.forEach((c, i) => {
        const cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) cell.scope = "row";
        const raw = c.value ? c.value(row) : row[c.key];
        cell.textContent = c.format ? c.format(raw) : raw == null ? "" : String(raw);
        if (c.key) cell.dataset.key = c.key;
        if (raw !== null && raw !== undefined && typeof raw !== "object") cell.dataset.value = String(raw);
        if (c.numeric) cell.className = "num";
        tr.appendChild(cell);
      });
    }
    const wrap = document.createElement("div");
    wrap.className = "table-scroll";
    wrap.appendChild(table);
    container.appendChild(wrap);
  }

  // ---------------------------------------------------------------- panels

  function renderTotals(items) {
    const revenue = items.reduce((s, r) => s + scaled(r.revenue, 2), 0n);
    const orders = items.reduce((s, r) => s + scaled(r.orders, 0), 0n);
    const liters = items.reduce((s, r) => s + scaled(r.liters, 3), 0n);
    const put = (id, scaledValue, decimals) => {
      const dd = $(id);
      dd.textContent = fixedText(scaledValue, decimals, true);
      dd.dataset.value = fixedText(scaledValue, decimals, false);
      dd.dataset.state = "ready";
    };
    put("total-revenue", revenue, 2);
    put("total-orders", orders, 0);
    put("total-liters", liters, 3);
    $("totals").setAttribute("aria-busy", "false");
  }
  function setTotalsState(s, text) {
    for (const id of ["total-revenue", "total-orders", "total-liters"]) {
      const dd = $(id);
      dd.dataset.state = s;
      dd.textContent = text;
      delete dd.dataset.value;
    }
    $("totals").setAttribute("aria-busy", s === "loading" ? "true" : "false");
  }

  const PANELS = {
    channel: {
      id: "panel-channel",
      path: () => "sales/by-channel",
      render(p, body) {
        const items = body.items;
        renderTotals(items);
        DuffCharts.bars(p.chart, {
          orientation: "vertical",
          ariaLabel: "Column chart: revenue by sales channel",
          items: items.map((r) => ({ label: r.channel, value: Number(r.revenue), exact: r.revenue })),
          format: fmt.money,
          emptyText: "No sales yet.",
        });
        renderTable(p.table, "Sales by channel", [
          { key: "channel", label: "Channel" },
          { key: "orders", label: "Orders", format: fmt.int, numeric: true },
          { key: "units", label: "Units", format: fmt.int, numeric: true },
          { key: "liters", label: "Litres", format: fmt.liters, numeric: true },
          { key: "revenue", label: "Revenue", format: fmt.money, numeric: true },
        ], items);
      },
      onLoading: () => setTotalsState("loading", "Loading\u2026"),
      onError: () => setTotalsState("error", "Unavailable"),
    },
    daily: {
      id: "panel-daily",
      path: () => {
        const q = new URLSearchParams();
        if (state.dailyRange.from) q.set("from", state.dailyRange.from);
        if (state.dailyRange.to) q.set("to", state.dailyRange.to);
        const qs = q.toString();
        return "sales/daily" + (qs ? "?" + qs : "");
      },
      render(p, body) {
        const items = body.items;
        state.dailyItems = items;
        // The pickers show the range drawn: the one asked for, else the data's first/last day.
        const days = items.map((r) => r.pa_date).sort();
        $("daily-from").value = state.dailyRange.from || days[0] || "";
        $("daily-to").value = state.dailyRange.to || days[days.length - 1] || "";
        drawDaily(p, items);
        const avg = new Map(movingAverage(items).map((a) => [a.date, fixedText(a.cents, 2, false)]));
        renderTable(p.table, "Daily sales", [
          { key: "pa_date", label: "Date" },
          { key: "orders", label: "Orders", format: fmt.int, numeric: true },
          { key: "units", label: "Units", format: fmt.int, numeric: true },
          { key: "liters", label: "Litres", format: fmt.liters, numeric: true },
          { key: "revenue", label: "Revenue", format: fmt.money, numeric: true },
          {
            key: "avg7",
            label: `${AVERAGE_DAYS}-day average`,
            value: (r) => avg.get(r.pa_date),
            format: (v) => (v === undefined ? "" : fmt.money(v)),
            numeric: true,
          },
        ], items);
      },
    },
    status: {
      id: "panel-status",
      path: () => "status-summary",
      render(p, body) {
        const items = body.items.slice().sort((a, b) => rank(a.status) - rank(b.status));
        DuffCharts.donut(p.chart, {
          ariaLabel: "Donut chart: orders by status",
          items: items.map((r) => ({ label: r.status, value: Number(r.orders), exact: r.orders })),
          colorIndex: (d) => 3 + Math.max(0, STATUS_ORDER.indexOf(d.label)),
          format: fmt.int,
          emptyText: "No orders yet.",
        });
        renderTable(p.table, "Status mix", [
          { key: "status", label: "Status" },
          { key: "orders", label: "Orders", format: fmt.int, numeric: true },
          { key: "units", label: "Units", format: fmt.int, numeric: true },
          { key: "revenue", label: "Revenue", format: fmt.money, numeric: true },
        ], items);
        function rank(s) {
          const i = STATUS_ORDER.indexOf(s);
          return i < 0 ? STATUS_ORDER.length : i;
        }
      },
    },
    products: {
      id: "panel-products",
      path: () => "products",
      render(p, body) {
        const items = body.items.slice().sort((a, b) => byExact(2)(b.revenue, a.revenue) || byExact(0)(a.product_id, b.product_id));
        const shown = items.slice(0, PRODUCTS_IN_CHART);
        p.el.querySelector('[data-role="subtitle"]').textContent =
          items.length > shown.length
            ? `Revenue of the top ${shown.length} of ${items.length} products (all in the data table)`
            : "Revenue per product";
        DuffCharts.bars(p.chart, {
          ariaLabel: `Bar chart: revenue of the top ${shown.length} products`,
          items: shown.map((r) => ({ label: r.product_description, value: Number(r.revenue), exact: r.revenue, id: r.product_id })),
          format: fmt.money,
          emptyText: "No products sold yet.",
        });
        renderTable(p.table, "Sales by product", [
          { key: "product_description", label: "Product" },
          { key: "product_id", label: "Id", numeric: true },
          { key: "orders", label: "Orders", format: fmt.int, numeric: true },
          { key: "units", label: "Units", format: fmt.int, numeric: true },
          { key: "liters", label: "Litres", format: fmt.liters, numeric: true },
          { key: "revenue", label: "Revenue", format: fmt.money, numeric: true },
        ], items);
      },
    },
    clients: {
      id: "panel-clients",
      path: () => "clients?limit=10",
      render(p, body) {
        const items = body.items;
        DuffCharts.bars(p.chart, {
          ariaLabel: "Bar chart: total spend of the top 10 clients",
          items: items.map((r) => ({ label: r.client_name, value: Number(r.total_spend), exact: r.total_spend, id: r.client_id })),
          format: fmt.money,
          emptyText: "No clients yet.",
        });
        renderTable(p.table, "Top clients", [
          { key: "client_name", label: "Client" },
          { key: "client_id", label: "Id", numeric: true },
          { key: "orders", label: "Orders", format: fmt.int, numeric: true },
          { key: "liters", label: "Litres", format: fmt.liters, numeric: true },
          { key: "total_spend", label: "Total spend", format: fmt.money, numeric: true },
          { label: "Top product", value: (r) => (r.top_product ? r.top_product.product_description : "") },
        ], items);
      },
    },
  };

  // The daily line in the chosen view. 731 raw days zig-zag too much to read a trend, so the
  // default view draws them faint under their 7-day average; "Daily" draws the days alone.
  function drawDaily(p, items) {
    const avg = state.dailyView === "avg7" ? movingAverage(items) : [];
    p.el.querySelector('[data-role="subtitle"]').textContent = avg.length
      ? `Revenue per day (faint) and its ${AVERAGE_DAYS}-day average (bold)`
      : state.dailyView === "avg7" && items.length
        ? `Revenue per day (fewer than ${AVERAGE_DAYS} days: no average)`
        : "Revenue per day";
    DuffCharts.line(p.chart, {
      ariaLabel: avg.length ? `Line chart: revenue per day and its ${AVERAGE_DAYS}-day average` : "Line chart: revenue per day",
      points: items.map((r) => ({ date: r.pa_date, value: Number(r.revenue), exact: r.revenue })),
      sum: fixedText(items.reduce((s, r) => s + scaled(r.revenue, 2), 0n), 2, false),
      overlay: avg.length ? { points: avg, label: `${AVERAGE_DAYS}-day average of revenue` } : null,
      missingAsZero: true, // a day the mart leaves out had no sales, as the average counts it
      format: fmt.money,
      emptyText: "No sales in this period.",
    });
  }

  // Data quality (GET /quality/files): the latest file deliveries with their status and
  // rejected rows, the stream batches landed since the oldest of them in one line (CONTRACT.md
  // section 6: a batch is a delivery with a stream:// source), and their rejects by reason.
  const isStreamBatch = (f) => String(f.source_file).startsWith("stream://");
  PANELS.quality = {
    id: "panel-quality",
    path: () => `quality/files?limit=${QUALITY_PAGE_SIZE}`,
    async load() {
      const files = [];
      const batches = [];
      let cursor = null;
      let pages = 0;
      let read = 0; // deliveries read, in the API's order (newest landing first)
      do {
        const body = await apiList(this.path() + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
        for (const f of body.items) (isStreamBatch(f) ? batches : files).push({ at: read++, f });
        cursor = body.next_cursor;
        pages += 1;
      } while (cursor && files.length < QUALITY_FILES_SHOWN && pages < QUALITY_MAX_PAGES);
      const shown = files.slice(0, QUALITY_FILES_SHOWN);
      // The batches landed since the oldest file shown; every batch read when there is none.
      const until = shown.length ? shown[shown.length - 1].at : read;
      return {
        items: shown.map((x) => x.f),
        batches: batches.filter((x) => x.at < until).map((x) => x.f),
        more: Boolean(cursor),
      };
    },
    render(p, body) {
      const items = body.items;
      const batches = body.batches;
      const all = items.concat(batches);
      const sum = (reason) => all.reduce((s, f) => s + Math.round(Number(f.rejected[reason])), 0);
      const filesText = items.length === 1 ? "the latest file" : `the latest ${items.length} files`;
      const batchesText = `${fmt.int(batches.length)} stream batch${batches.length === 1 ? "" : "es"}`;
      const scope = items.length && batches.length ? `${filesText} and ${batchesText} since`
        : items.length ? filesText : batches.length ? `the latest ${batchesText}` : "";
      p.el.querySelector('[data-role="subtitle"]').textContent = all.length
        ? `Rejected rows by reason in ${scope}, and each file's counts, newest first`
        : "No deliveries yet.";
      const rejected = REJECT_REASONS.reduce((s, r) => s + sum(r), 0);
      DuffCharts.bars(p.chart, {
        orientation: "vertical",
        ariaLabel: `Column chart: rejected rows by reason in ${scope || "no deliveries"}`,
        items: rejected ? REJECT_REASONS.map((r) => ({ label: r, value: sum(r) })) : [],
        format: fmt.int,
        emptyText: all.length ? `No rejected rows in ${scope}.` : "No deliveries yet.",
      });
      const when = (t) => (t ? t.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "");
      const fileName = (f) => String(f).split("/").pop();
      const note = (f) => f.error || (f.ignored_columns.length ? "Ignored: " + f.ignored_columns.join(", ") : "");
      renderTable(p.table, "Latest files", [
        { key: "source_file", label: "File", value: (f) => fileName(f.source_file) },
        { key: "status", label: "Status" },
        { key: "landed_at", label: "Landed", value: (f) => f.landed_at, format: when },
        { key: "rows_in", label: "Rows", format: fmt.int, numeric: true },
        { key: "valid", label: "Valid", format: fmt.int, numeric: true },
        ...REJECT_REASONS.map((r) => ({
          key: r, label: r[0].toUpperCase() + r.slice(1), value: (f) => f.rejected[r], format: fmt.int, numeric: true,
        })),
        { key: "note", label: "Note", value: note },
      ], items);
      for (const [i, tr] of [...p.table.querySelectorAll("tbody tr")].entries()) {
        tr.dataset.status = items[i].status;
        tr.title = items[i].source_file;
      }
      const stream = p.el.querySelector('[data-role="stream"]');
      const total = (key) => batches.reduce((s, b) => s + Math.round(Number(b[key])), 0);
      const bad = batches.reduce((s, b) => s + REJECT_REASONS.reduce((t, r) => t + Math.round(Number(b.rejected[r])), 0), 0);
      stream.dataset.batches = String(batches.length);
      stream.dataset.rowsIn = String(total("rows_in"));
      stream.dataset.valid = String(total("valid"));
      stream.dataset.rejected = String(bad);
      const parts = [];
      if (batches.length) {
        parts.push(
          `Stream: ${batchesText}${items.length ? " since the oldest file shown" : ""}, the newest landed `
          + `${when(batches[0].landed_at)}: ${fmt.int(total("rows_in"))} events, `
          + `${fmt.int(total("valid"))} valid, ${fmt.int(bad)} rejected.`,
        );
      }
      if (!items.length && body.more) {
        parts.push(`No file among the latest ${fmt.int(QUALITY_PAGE_SIZE * QUALITY_MAX_PAGES)} deliveries.`);
      }
      stream.textContent = parts.join(" ");
    },
  };

  // A list route's answer: the panels draw its items.
  async function apiList(path) {
    const body = await api(path);
    if (!Array.isArray(body.items)) {
      throw new ApiError("server", 200, "bad_response", "The answer has no items list.", path);
    }
    return body;
  }

  async function loadPanel(name, gen) {
    const spec = PANELS[name];
    const p = panel(spec.id);
    p.setState("loading", "Loading\u2026");
    if (spec.onLoading) spec.onLoading();
    try {
      const body = spec.load ? await spec.load() : await apiList(spec.path());
      if (gen !== state.generation) return;
      p.setState("ready", "");
      spec.render(p, body);
    } catch (e) {
      if (gen !== state.generation) return;
      p.setState("error", e.kind === "auth" ? "Not loaded: the API key was refused." : describeError(e));
      if (spec.onError) spec.onError();
      throw e;
    }
  }

  async function loadHealth() {
    try {
      const h = await api("health", { auth: false });
      if (h.data_as_of) {
        $("data-as-of").textContent = `Data as of ${h.data_as_of.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC")}`;
        $("data-as-of").dataset.value = h.data_as_of;
      }
    } catch (_) {
      /* the data routes report their own errors */
    }
  }

  function onAuthFailure(e) {
    storeKey(null);
    showKeyForm(true);
    showAlert(describeError(e), { kind: "auth" });
  }

  async function loadDashboard() {
    const gen = ++state.generation;
    clearAlert();
    if (!state.key) {
      setStatus("Enter the API key to load the dashboard.");
      for (const name of Object.keys(PANELS)) panel(PANELS[name].id).setState("waiting", "Waiting for an API key.");
      setTotalsState("waiting", "\u2014");
      showKeyForm(false);
      return;
    }
    showKeySet();
    setStatus("Loading dashboard data\u2026");
    document.body.dataset.state = "loading";
    loadHealth();
    const names = Object.keys(PANELS);
    const results = await Promise.allSettled(names.map((n) => loadPanel(n, gen)));
    if (gen !== state.generation) return;
    const failures = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    if (!failures.length) {
      document.body.dataset.state = "ready";
      setStatus(`Dashboard loaded at ${new Date().toLocaleTimeString()}.`);
      return;
    }
    document.body.dataset.state = "error";
    setStatus("");
    const auth = failures.find((e) => e.kind === "auth");
    if (auth) return onAuthFailure(auth);
    const first = failures[0];
    const prefix = failures.length === names.length ? "Nothing could be loaded. " : `${failures.length} of ${names.length} charts could not be loaded. `;
    showAlert(prefix + describeError(first), { retry: true });
  }

  // ---------------------------------------------------------------- client search

  function normalise(s) {
    return String(s).normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function renderClient(c) {
    const box = $("client-detail");
    box.textContent = "";
    const card = document.createElement("article");
    card.className = "client-card";
    card.dataset.clientId = String(c.client_id);
    const h = document.createElement("h3");
    h.textContent = c.client_name;
    card.appendChild(h);
    const dl = document.createElement("dl");
    const top = c.top_product;
    const rows = [
      ["Client id", "client_id", String(c.client_id), c.client_id],
      ["Orders", "orders", fmt.int(c.orders), c.orders],
      ["Units", "units", fmt.int(c.units), c.units],
      ["Litres", "liters", fmt.liters(c.liters), c.liters],
      ["Total spend", "total_spend", fmt.money(c.total_spend), c.total_spend],
      [
        "Top product",
        "top_product",
        top ? `${top.product_description} (product ${top.product_id}), ${fmt.int(top.units)} units` : "none",
        top ? top.product_id : "",
      ],
    ];
    for (const [label, key, text, value] of rows) {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = text;
      dd.dataset.key = key;
      dd.dataset.value = String(value);
      div.append(dt, dd);
      dl.appendChild(div);
    }
    card.appendChild(dl);
    box.appendChild(card);
  }

  function setSearchStatus(text, s) {
    $("search-status").textContent = text;
    $("search-status").classList.toggle("error", s === "error");
    $("panel-search").dataset.state = s;
  }

  async function searchClients(query) {
    if (state.search) state.search.abort();
    const ctrl = new AbortController();
    state.search = ctrl;
    $("search-results").textContent = "";
    $("client-detail").textContent = "";
    const q = query.trim();
    if (!q) return;
    if (!state.key) {
      setSearchStatus("Enter the API key first.", "error");
      return;
    }
    try {
      if (/^\d+$/.test(q)) {
        setSearchStatus(`Looking up client ${q}\u2026`, "loading");
        try {
          const c = await api(`clients/${q}`, { signal: ctrl.signal });
          setSearchStatus(`Client ${c.client_id}.`, "ready");
          renderClient(c);
        } catch (e) {
          if (e.kind === "client" && e.status === 404) setSearchStatus(`No client has id ${q}.`, "ready");
          else throw e;
        }
        return;
      }
      const words = normalise(q).split(/\s+/).filter(Boolean);
      const matches = [];
      let scanned = 0;
      let cursor = null;
      let page = 0;
      do {
        page += 1;
        setSearchStatus(`Searching clients\u2026 (page ${page})`, "loading");
        const qs = new URLSearchParams({ limit: String(SEARCH_PAGE_SIZE) });
        if (cursor) qs.set("cursor", cursor);
        const body = await api(`clients?${qs}`, { signal: ctrl.signal });
        scanned += body.items.length;
        for (const c of body.items) {
          const name = normalise(c.client_name);
          if (words.every((w) => name.includes(w))) matches.push(c);
        }
        cursor = body.next_cursor;
      } while (cursor && page < SEARCH_MAX_PAGES);
      if (ctrl.signal.aborted) return;
      const scope = cursor
        ? `searched the ${fmt.int(scanned)} clients with the highest spend; there are more, so search by id to reach any client`
        : `searched all ${fmt.int(scanned)} clients`;
      const n = matches.length;
      setSearchStatus(
        `${n === 0 ? "No client matches" : n === 1 ? "1 client matches" : `${fmt.int(n)} clients match`} \u201c${q}\u201d (${scope})` +
          (n > SEARCH_MAX_SHOWN ? `; showing the first ${SEARCH_MAX_SHOWN}.` : "."),
        "ready",
      );
      $("panel-search").dataset.scanned = String(scanned);
      $("panel-search").dataset.matches = String(n);
      for (const c of matches.slice(0, SEARCH_MAX_SHOWN)) {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "link-button";
        b.dataset.clientId = String(c.client_id);
        b.textContent = `${c.client_name} \u00b7 id ${c.client_id} \u00b7 ${fmt.money(c.total_spend)} spent`;
        b.addEventListener("click", () => {
          renderClient(c);
          for (const other of $("search-results").querySelectorAll("button")) other.removeAttribute("aria-current");
          b.setAttribute("aria-current", "true");
        });
        li.appendChild(b);
        $("search-results").appendChild(li);
      }
      if (n === 1) renderClient(matches[0]);
    } catch (e) {
      if (e.kind === "aborted" || ctrl.signal.aborted) return;
      if (e.kind === "auth") {
        setSearchStatus("Not searched: the API key was refused.", "error");
        return onAuthFailure(e);
      }
      setSearchStatus(describeError(e), "error");
    }
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $("search-help").textContent =
      `A number looks the client up by id. Text matches names (all words, any case) among the ` +
      `${fmt.int(SEARCH_PAGE_SIZE * SEARCH_MAX_PAGES)} clients with the highest spend.`;

    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      storeKey(key);
      $("api-key").value = "";
      loadDashboard();
    });
    $("change-key-button").addEventListener("click", () => {
      showKeyForm(true);
    });
    $("refresh-button").addEventListener("click", () => loadDashboard());
    $("alert-retry").addEventListener("click", () => loadDashboard());
    $("daily-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const from = $("daily-from").value.trim();
      const to = $("daily-to").value.trim();
      const p = panel("panel-daily");
      const wrong = [from, to].find((d) => d && !isIsoDate(d));
      if (wrong) {
        // 2024-02-30 has the form and is no day: say which, not how to write a date
        p.setState("error", /^\d{4}-\d{2}-\d{2}$/.test(wrong)
          ? `${wrong} is not a day of the calendar.`
          : "Write dates as YYYY-MM-DD, for example 2024-03-10.");
        return;
      }
      if (from && to && from > to) {
        p.setState("error", "The start date is after the end date.");
        return;
      }
      state.dailyRange = { from, to };
      if (!state.key) return;
      loadPanel("daily", state.generation).catch((e) => {
        if (e.kind === "auth") onAuthFailure(e);
      });
    });
    $("daily-view").addEventListener("change", (ev) => {
      state.dailyView = ev.target.value === "daily" ? "daily" : "avg7";
      const p = panel("panel-daily");
      if (p.el.dataset.state === "ready" && state.dailyItems) drawDaily(p, state.dailyItems);
    });
    $("search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      searchClients($("search-input").value);
    });
    window.addEventListener("hashchange", () => {
      const key = takeKeyFromFragment();
      if (key) {
        storeKey(key);
        loadDashboard();
      }
    });

    const fromFragment = takeKeyFromFragment();
    if (fromFragment) storeKey(fromFragment);
    else state.key = readStoredKey();
    loadDashboard();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
