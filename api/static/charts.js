/*!
 * duff-charts 1.0.0: a small SVG charting module for the Duff analytics dashboard.
 * No dependencies, no network, no inline styles (works under a strict CSP).
 *
 * Every chart is an <svg role="img"> with a <title> and <desc> for assistive technology, and
 * every mark (bar, slice, point) carries data-label / data-value attributes with the exact
 * number it draws, plus a <title> child that browsers show as a tooltip. Colours come from
 * CSS classes (.dc-series-N), so the stylesheet owns the palette.
 *
 *   DuffCharts.bars(el, {items: [{label, value}], format, ariaLabel, orientation})
 *   DuffCharts.line(el, {points: [{date: "YYYY-MM-DD", value}], format, ariaLabel})
 *   DuffCharts.donut(el, {items: [{label, value}], format, ariaLabel})
 *   DuffCharts.clear(el)   // empty the container and stop following its size
 *
 * Charts re-render at the container's own width when it changes size, so text stays crisp
 * and readable on a phone and on a wide screen.
 */
(function (root) {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  let uid = 0;

  function svgEl(name, attrs, parent) {
    const el = document.createElementNS(SVG_NS, name);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v !== undefined && v !== null) el.setAttribute(k, String(v));
      }
    }
    if (parent) parent.appendChild(el);
    return el;
  }

  function tooltip(el, text) {
    const t = svgEl("title", null, el);
    t.textContent = text;
  }

  // "Nice" axis ticks (1, 2, 2.5, 5 x 10^n) covering [0, max].
  function niceTicks(max, count) {
    if (!(max > 0)) return [0, 1];
    const raw = max / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const ticks = [];
    for (let v = 0; v < max + step * 0.999; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  // Short labels with three significant digits: 1.23k, 45.6M, 789B, 0.5.
  function compact(v) {
    const a = Math.abs(v);
    const units = [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
    for (const [d, s] of units) {
      if (a >= d) return (+(v / d).toPrecision(3)).toString() + s;
    }
    return (+v.toFixed(a >= 100 ? 0 : 2)).toString();
  }

  function truncate(text, max) {
    return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
  }

  function makeSvg(el, width, height, opts) {
    el.textContent = "";
    const id = "dc" + ++uid;
    const svg = svgEl("svg", {
      class: "dc-chart",
      role: "img",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      "aria-labelledby": `${id}-t ${id}-d`,
      "data-chart": opts.kind,
    });
    svgEl("title", { id: `${id}-t` }, svg).textContent = opts.ariaLabel || "";
    svgEl("desc", { id: `${id}-d` }, svg).textContent = opts.description || "";
    el.appendChild(svg);
    return svg;
  }

  function describe(items, format, limit) {
    const shown = items.slice(0, limit).map((d) => `${d.label}: ${format(d.value)}`);
    const more = items.length > limit ? `; and ${items.length - limit} more in the data table` : "";
    return shown.join("; ") + more + ".";
  }

  function emptyMessage(el, text) {
    el.textContent = "";
    const p = document.createElement("p");
    p.className = "dc-empty";
    p.textContent = text;
    el.appendChild(p);
  }

  function widthOf(el) {
    return Math.max(260, Math.floor(el.clientWidth || el.getBoundingClientRect().width || 600));
  }

  // Re-render a chart whenever its container changes width.
  const observed = new WeakMap();
  const resizeObserver =
    typeof ResizeObserver === "function"
      ? new ResizeObserver((entries) => {
          for (const entry of entries) {
            const rec = observed.get(entry.target);
            if (!rec) continue;
            const w = widthOf(entry.target);
            if (w !== rec.width) {
              rec.width = w;
              rec.render(w);
            }
          }
        })
      : null;

  /** Empty a chart container and stop re-rendering it on resize. */
  function clear(el) {
    if (resizeObserver && observed.has(el)) resizeObserver.unobserve(el);
    observed.delete(el);
    el.textContent = "";
  }

  function mount(el, render) {
    const width = widthOf(el);
    observed.set(el, { width, render });
    if (resizeObserver) resizeObserver.observe(el);
    render(width);
  }

  /** Horizontal bars (one row per item, label left, value right) or vertical columns. */
  function bars(el, opts) {
    clear(el);
    const items = opts.items || [];
    const format = opts.format || String;
    if (!items.length) return emptyMessage(el, opts.emptyText || "No data.");
    const vertical = opts.orientation === "vertical";
    mount(el, (width) => {
      const max = Math.max(0, ...items.map((d) => d.value));
      const description = describe(items, format, 12);
      if (vertical) {
        const height = opts.height || 260;
        const m = { top: 16, right: 12, bottom: 44, left: 56 };
        const svg = makeSvg(el, width, height, { ...opts, kind: "bars", description });
        const ticks = niceTicks(max, 4);
        const top = ticks[ticks.length - 1];
        const plotW = width - m.left - m.right;
        const plotH = height - m.top - m.bottom;
        const y = (v) => m.top + plotH - (top ? (v / top) * plotH : 0);
        const axis = svgEl("g", { class: "dc-axis", "aria-hidden": "true" }, svg);
        for (const t of ticks) {
          svgEl("line", { class: "dc-grid", x1: m.left, x2: width - m.right, y1: y(t), y2: y(t) }, axis);
          const lbl = svgEl("text", { x: m.left - 6, y: y(t), dy: "0.32em", "text-anchor": "end" }, axis);
          lbl.textContent = compact(t);
        }
        const band = plotW / items.length;
        const barW = Math.max(2, Math.min(72, band * 0.62));
        const marks = svgEl("g", { class: "dc-marks" }, svg);
        items.forEach((d, i) => {
          const cx = m.left + band * i + band / 2;
          const rect = svgEl(
            "rect",
            {
              class: `dc-bar dc-series-${i % 8}`,
              x: cx - barW / 2,
              y: y(d.value),
              width: barW,
              height: Math.max(0, m.top + plotH - y(d.value)),
              rx: 3,
              "data-label": d.label,
              "data-value": d.value,
            },
            marks,
          );
          tooltip(rect, `${d.label}: ${format(d.value)}`);
          const vl = svgEl("text", { class: "dc-value", x: cx, y: y(d.value) - 5, "text-anchor": "middle", "aria-hidden": "true" }, svg);
          vl.textContent = compact(d.value);
          const xl = svgEl("text", { class: "dc-label", x: cx, y: height - m.bottom + 18, "text-anchor": "middle", "aria-hidden": "true" }, svg);
          xl.textContent = truncate(d.label, Math.max(4, Math.floor(band / 7)));
        });
        return;
      }
      const rowH = 26;
      const labelChars = width < 420 ? 14 : 26;
      const labelW = Math.min(width * 0.42, labelChars * 7 + 8);
      const valueW = 64;
      const m = { top: 4, right: 8, bottom: 4, left: labelW };
      const height = m.top + m.bottom + rowH * items.length;
      const svg = makeSvg(el, width, height, { ...opts, kind: "bars", description });
      const plotW = Math.max(20, width - m.left - m.right - valueW);
      const marks = svgEl("g", { class: "dc-marks" }, svg);
      items.forEach((d, i) => {
        const yTop = m.top + i * rowH;
        const w = max > 0 ? (d.value / max) * plotW : 0;
        const lbl = svgEl("text", { class: "dc-label", x: labelW - 8, y: yTop + rowH / 2, dy: "0.32em", "text-anchor": "end", "aria-hidden": "true" }, svg);
        lbl.textContent = truncate(d.label, labelChars);
        const rect = svgEl(
          "rect",
          {
            class: `dc-bar dc-series-${opts.colorBy === "index" ? i % 8 : 0}`,
            x: m.left,
            y: yTop + 4,
            width: Math.max(d.value > 0 ? 1 : 0, w),
            height: rowH - 8,
            rx: 3,
            "data-label": d.label,
            "data-value": d.value,
          },
          marks,
        );
        tooltip(rect, `${d.label}: ${format(d.value)}`);
        const vl = svgEl("text", { class: "dc-value", x: m.left + w + 6, y: yTop + rowH / 2, dy: "0.32em", "aria-hidden": "true" }, svg);
        vl.textContent = compact(d.value);
      });
    });
  }

  function parseDate(s) {
    const [y, mo, d] = s.split("-").map(Number);
    return Date.UTC(y, mo - 1, d);
  }

  function fmtDate(ms, withYear) {
    const d = new Date(ms);
    const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const base = `${d.getUTCDate()} ${months[d.getUTCMonth()]}`;
    return withYear ? `${base} ${d.getUTCFullYear()}` : base;
  }

  /** A time series: area + line over dates, one point per day present in the data. */
  function line(el, opts) {
    clear(el);
    const points = (opts.points || []).slice().sort((a, b) => (a.date < b.date ? -1 : 1));
    const format = opts.format || String;
    if (!points.length) return emptyMessage(el, opts.emptyText || "No data.");
    mount(el, (width) => {
      const height = opts.height || 260;
      const m = { top: 16, right: 16, bottom: 36, left: 56 };
      const xs = points.map((p) => parseDate(p.date));
      const total = points.reduce((s, p) => s + p.value, 0);
      const maxP = points.reduce((a, p) => (p.value > a.value ? p : a), points[0]);
      const description =
        `${points.length} days from ${points[0].date} to ${points[points.length - 1].date}; ` +
        `highest ${format(maxP.value)} on ${maxP.date}; sum ${format(total)}.`;
      const svg = makeSvg(el, width, height, { ...opts, kind: "line", description });
      const ticks = niceTicks(maxP.value, 4);
      const top = ticks[ticks.length - 1];
      const plotW = width - m.left - m.right;
      const plotH = height - m.top - m.bottom;
      const x0 = xs[0];
      const x1 = xs[xs.length - 1];
      const x = (ms) => m.left + (x1 > x0 ? ((ms - x0) / (x1 - x0)) * plotW : plotW / 2);
      const y = (v) => m.top + plotH - (top ? (v / top) * plotH : 0);
      const axis = svgEl("g", { class: "dc-axis", "aria-hidden": "true" }, svg);
      for (const t of ticks) {
        svgEl("line", { class: "dc-grid", x1: m.left, x2: width - m.right, y1: y(t), y2: y(t) }, axis);
        const lbl = svgEl("text", { x: m.left - 6, y: y(t), dy: "0.32em", "text-anchor": "end" }, axis);
        lbl.textContent = compact(t);
      }
      const spanYears = new Date(x0).getUTCFullYear() !== new Date(x1).getUTCFullYear();
      const nTicks = Math.max(2, Math.min(points.length, Math.floor(plotW / 90)));
      for (let i = 0; i < nTicks; i++) {
        const ms = x1 > x0 ? x0 + ((x1 - x0) * i) / (nTicks - 1) : x0;
        const day = Math.round(ms / 864e5) * 864e5;
        const lbl = svgEl("text", { x: x(day), y: height - m.bottom + 18, "text-anchor": i === 0 ? "start" : i === nTicks - 1 ? "end" : "middle" }, axis);
        lbl.textContent = fmtDate(day, spanYears);
        if (x1 === x0) break;
      }
      const path = points.map((p, i) => `${i ? "L" : "M"}${x(xs[i]).toFixed(2)},${y(p.value).toFixed(2)}`).join("");
      const base = y(0).toFixed(2);
      svgEl("path", { class: "dc-area", d: `${path}L${x(x1).toFixed(2)},${base}L${x(x0).toFixed(2)},${base}Z`, "aria-hidden": "true" }, svg);
      svgEl("path", { class: "dc-line", d: path, "aria-hidden": "true" }, svg);
      const marks = svgEl("g", { class: "dc-marks" }, svg);
      const r = points.length > 120 ? 1.5 : points.length > 40 ? 2.5 : 3.5;
      points.forEach((p, i) => {
        const c = svgEl(
          "circle",
          { class: "dc-point", cx: x(xs[i]), cy: y(p.value), r, "data-label": p.date, "data-value": p.value },
          marks,
        );
        tooltip(c, `${p.date}: ${format(p.value)}`);
      });
    });
  }

  /** A donut: share of each item in the whole, with a legend of value and percent. */
  function donut(el, opts) {
    clear(el);
    const items = opts.items || [];
    const format = opts.format || String;
    const total = items.reduce((s, d) => s + d.value, 0);
    if (!items.length || !(total > 0)) return emptyMessage(el, opts.emptyText || "No data.");
    mount(el, (width) => {
      const size = Math.min(220, width);
      const legendBeside = width >= size + 200;
      const legendRowH = 22;
      const height = legendBeside ? size : size + 12 + legendRowH * items.length;
      const pct = (v) => `${((v / total) * 100).toFixed(1)}%`;
      const description = items.map((d) => `${d.label}: ${format(d.value)} (${pct(d.value)})`).join("; ") + ".";
      const svg = makeSvg(el, width, height, { ...opts, kind: "donut", description });
      const cx = legendBeside ? size / 2 : width / 2;
      const cy = size / 2;
      const rOut = size / 2 - 4;
      const rIn = rOut * 0.58;
      const marks = svgEl("g", { class: "dc-marks" }, svg);
      let angle = -Math.PI / 2;
      items.forEach((d, i) => {
        const sweep = (d.value / total) * Math.PI * 2;
        const a0 = angle;
        const a1 = angle + Math.min(sweep, Math.PI * 2 - 1e-6);
        angle += sweep;
        const large = a1 - a0 > Math.PI ? 1 : 0;
        const p = (r, a) => `${(cx + r * Math.cos(a)).toFixed(2)},${(cy + r * Math.sin(a)).toFixed(2)}`;
        const dPath =
          `M${p(rOut, a0)}A${rOut},${rOut} 0 ${large} 1 ${p(rOut, a1)}` +
          `L${p(rIn, a1)}A${rIn},${rIn} 0 ${large} 0 ${p(rIn, a0)}Z`;
        const slice = svgEl(
          "path",
          { class: `dc-slice dc-series-${(opts.colorIndex ? opts.colorIndex(d, i) : i) % 8}`, d: dPath, "data-label": d.label, "data-value": d.value },
          marks,
        );
        tooltip(slice, `${d.label}: ${format(d.value)} (${pct(d.value)})`);
      });
      const center = svgEl("text", { class: "dc-center", x: cx, y: cy, "text-anchor": "middle", dy: "0.32em", "aria-hidden": "true" }, svg);
      center.textContent = compact(total);
      const legend = svgEl("g", { class: "dc-legend", "aria-hidden": "true" }, svg);
      items.forEach((d, i) => {
        const lx = legendBeside ? size + 24 : Math.max(8, width / 2 - 110);
        const ly = legendBeside ? cy - (legendRowH * items.length) / 2 + i * legendRowH : size + 12 + i * legendRowH;
        svgEl("rect", { class: `dc-series-${(opts.colorIndex ? opts.colorIndex(d, i) : i) % 8}`, x: lx, y: ly + 4, width: 12, height: 12, rx: 2 }, legend);
        const t = svgEl("text", { x: lx + 18, y: ly + 10, dy: "0.32em" }, legend);
        t.textContent = `${d.label}  ${format(d.value)} (${pct(d.value)})`;
      });
    });
  }

  root.DuffCharts = Object.freeze({ version: "1.0.0", bars, line, donut, clear, niceTicks, compact });
})(window);
