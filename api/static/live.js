// The live panel (CONTRACT.md sections 4 and 6): today's stream figures from
// GET /realtime/summary, refreshed every few seconds by itself. Kept apart from app.js: it
// needs no build of the marts and keeps running when the build-backed panels fail.
(function () {
  "use strict";

  const KEY_STORAGE = "duff.apiKey"; // where app.js keeps the key for this tab
  const REFRESH_MS = 3000;
  const TIMEOUT_MS = 10000;
  const $ = (id) => document.getElementById(id);

  const { parseJson, scaled, fixedText } = window.DuffFigures;
  const fixed = (value, decimals) => fixedText(scaled(value, decimals), decimals, true);

  function key() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch (_) {
      return null;
    }
  }

  function setText(id, text, value) {
    const el = $(id);
    el.textContent = text;
    if (value !== undefined) el.dataset.value = String(value);
  }

  function fillTable(tbodyId, rows, nameKey) {
    const body = $(tbodyId);
    body.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.name = r[nameKey];
      const cells = [
        [nameKey, r[nameKey], r[nameKey]],
        ["orders", fixed(r.orders, 0), r.orders],
        ["revenue", fixed(r.revenue, 2), r.revenue],
      ];
      for (const [k, text, value] of cells) {
        const td = document.createElement(k === nameKey ? "th" : "td");
        if (k === nameKey) td.scope = "row";
        td.textContent = text;
        td.dataset.key = k;
        td.dataset.value = String(value);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function render(s) {
    const panel = $("panel-live");
    setText("live-orders", fixed(s.orders, 0), s.orders);
    setText("live-revenue", fixed(s.revenue, 2), s.revenue);
    setText("live-liters", fixed(s.liters, 3), s.liters);
    fillTable("live-channels-body", s.by_channel, "channel");
    fillTable("live-status-body", s.by_status, "status");
    const asOf = $("live-as-of");
    asOf.dataset.value = s.as_of || "";
    asOf.textContent = s.as_of
      ? `Figures as of ${s.as_of.replace("T", " ").replace(/\.\d+Z$/, " UTC")}` +
        (s.last_event_at ? `; newest order received ${s.last_event_at.slice(11, 19)} UTC.` : ".")
      : "No events received yet.";
    panel.dataset.day = s.pa_date;
    setText("live-msg", s.orders ? "" : `No orders on the stream for ${s.pa_date} yet.`);
    panel.querySelector(".live-splits").hidden = !s.orders; // no empty tables under that line
    panel.dataset.state = "ready";
  }

  let timer = null;
  let inFlight = false;

  async function refresh() {
    const panel = $("panel-live");
    const k = key();
    if (!k) {
      panel.dataset.state = "waiting";
      setText("live-msg", "Enter the API key to see today's live figures.");
      return;
    }
    if (inFlight || document.hidden) return;
    inFlight = true;
    if (!panel.dataset.state || panel.dataset.state === "waiting") {
      panel.dataset.state = "loading";
      setText("live-msg", "Loading today's live figures…");
    }
    const ctrl = new AbortController();
    const t = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
    try {
      const resp = await fetch(new URL("realtime/summary", document.baseURI), {
        headers: { Accept: "application/json", "x-api-key": k },
        cache: "no-store",
        credentials: "omit",
        signal: ctrl.signal,
      });
      const body = await resp.text().then(parseJson).catch(() => null);
      if (!resp.ok || !body || typeof body !== "object") {
        const msg = body && body.error ? body.error.message : resp.statusText;
        throw new Error(resp.status === 403 ? "the API key was refused" : msg || "bad answer");
      }
      render(body);
    } catch (e) {
      panel.dataset.state = "error";
      const why = e.name === "AbortError" ? "the API did not answer in time" : e.message;
      setText("live-msg", `Live figures unavailable: ${why}. Retrying every ${REFRESH_MS / 1000} s.`);
    } finally {
      clearTimeout(t);
      inFlight = false;
    }
  }

  function init() {
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    window.addEventListener("hashchange", () => setTimeout(refresh, 100));
    const form = $("key-form");
    if (form) form.addEventListener("submit", () => setTimeout(refresh, 100));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  window.addEventListener("pagehide", () => clearInterval(timer));
})();
