/*!
 * duff-charts 1.0.0: a small SVG charting module for the Duff analytics dashboard.
 * No dependencies, no network, no inline styles (works under a strict CSP).
 *
 * Every chart is an <svg role="img"> with a <title> and <desc> for assistive technology, and
 * every mark (bar, slice, point) carries data-label / data-value attributes with the exact
 * number it draws, plus a <title> child that browsers show as a tooltip. Colours come from
 * CSS classes (.dc-series-N), so the stylesheet owns the palette.
 *
 *   DuffCharts.bars(el, {items: [{label, value, exact}], format, ariaLabel, orientation})
 *   DuffCharts.line(el, {points: [{date: "YYYY-MM-DD", value, exact}], format, ariaLabel, sum,
 *                        overlay: {points: [{date, value, exact}], label}})  // e.g. a moving average
 *   DuffCharts.donut(el, {items: [{label, value, exact}], format, ariaLabel})
 *   DuffCharts.clear(el)   // empty the container and stop following its size
 *
 * `value` is the number drawn; `exact` (optional) is the figure as the caller holds it (a
 * decimal's text), which `format` writes in tooltips, legends and descriptions instead, and
 * `sum` the line's exact total: a number has 15 significant digits, a spend may have more.
 *
 * Charts re-render at the container's own width when it changes size, so text stays crisp
 * and readable on a phone and on a wide screen. Text is measured, not guessed: category labels
 * are wrapped (two lines at most) or shortened in the middle so that no two bars ever share a
 * label (the full text is the label's tooltip), and date ticks are spaced by the pixel width
 * of their own ISO labels, so they never overlap.
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

  // What a mark's text says: the exact figure when the caller gave one, else the number drawn.
  const exact = (d) => (d.exact !== undefined ? d.exact : d.value);

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

  const ELLIPSIS = "\u2026";

  // Widths of label text as the browser draws it (12px, the stylesheet's size for chart text);
  // a character estimate where the SVG is not laid out (display: none).
  function measurer(svg) {
    const probe = svgEl("text", { class: "dc-label", x: -9999, y: -9999, "aria-hidden": "true" }, svg);
    const cache = new Map();
    return {
      width(text) {
        if (cache.has(text)) return cache.get(text);
        probe.textContent = text;
        let w = typeof probe.getComputedTextLength === "function" ? probe.getComputedTextLength() : 0;
        if (!(w > 0)) w = text.length * 6.8;
        cache.set(text, w);
        return w;
      },
      done() {
        probe.remove();
      },
    };
  }

  // The longest "head…tail" of text within maxW; the tail gets the larger half (sizes and
  // pack counts are at the end of product names: "Duff Beer…keg 50L").
  function shortenMiddle(text, maxW, width) {
    for (let n = text.length - 1; n > 1; n--) {
      const head = text.slice(0, Math.floor(n / 2)).trimEnd();
      const tail = text.slice(text.length - Math.ceil(n / 2)).trimStart();
      const t = head + ELLIPSIS + tail;
      if (width(t) <= maxW) return t;
    }
    return text.slice(0, 1) + ELLIPSIS;
  }
  function shortenEnd(text, maxW, width) {
    if (width(text) <= maxW) return text;
    for (let n = text.length - 1; n > 1; n--) {
      const t = text.slice(0, n).trimEnd() + ELLIPSIS;
      if (width(t) <= maxW) return t;
    }
    return text.slice(0, 1) + ELLIPSIS;
  }

  // One label as at most maxLines lines of at most maxW px: whole, else wrapped at spaces,
  // else shortened (in the middle, or at the end for mode "end").
  function fitOne(text, maxW, width, maxLines, mode) {
    if (width(text) <= maxW) return [text];
    if (maxLines >= 2) {
      const words = text.split(/\s+/).filter(Boolean);
      let first = "";
      let i = 0;
      while (i < words.length) {
        const next = first ? `${first} ${words[i]}` : words[i];
        if (width(next) > maxW) break;
        first = next;
        i += 1;
      }
      if (i > 0 && i < words.length) {
        const rest = words.slice(i).join(" ");
        if (width(rest) <= maxW) return [first, rest];
        return [first, mode === "end" ? shortenEnd(rest, maxW, width) : shortenMiddle(rest, maxW, width)];
      }
    }
    return [mode === "end" ? shortenEnd(text, maxW, width) : shortenMiddle(text, maxW, width)];
  }

  /**
   * Fit every label of a chart, then make the shown texts unique: two labels that came out the
   * same ("Duff Beer…" twice) drop the start they share instead ("…keg 50L", "…keg 20L"), or
   * less of it where that still collides; if nothing is unique, the full text is shown (wider
   * than its column, but never ambiguous). Returns one array of lines per label.
   */
  function fitLabels(labels, maxW, width, maxLines) {
    const fitted = labels.map((t) => fitOne(String(t), maxW, width, maxLines, "middle"));
    const shown = () => fitted.map((lines) => lines.join(" "));
    const dupes = () => {
      const seen = new Map();
      shown().forEach((t, i) => seen.set(t, [...(seen.get(t) || []), i]));
      return [...seen.values()].filter((ix) => ix.length > 1 && new Set(ix.map((i) => labels[i])).size > 1);
    };
    for (const group of dupes()) {
      for (const i of group) {
        const text = String(labels[i]);
        let common = 0;
        for (const j of group) {
          if (j === i || labels[j] === labels[i]) continue;
          const other = String(labels[j]);
          let k = 0;
          while (k < text.length && k < other.length && text[k] === other[k]) k += 1;
          common = Math.max(common, k);
        }
        // drop the shared start at a word boundary, or less of it if that still collides
        const taken = new Set(shown().filter((_, j) => j !== i));
        const starts = [];
        for (let st = text.lastIndexOf(" ", common) + 1; st > 0; st = text.lastIndexOf(" ", st - 2) + 1) starts.push(st);
        starts.push(0);
        for (const st of starts) {
          const candidate = fitOne(st ? ELLIPSIS + text.slice(st) : text, maxW, width, maxLines, "end");
          if (!taken.has(candidate.join(" "))) {
            fitted[i] = candidate;
            break;
          }
        }
      }
    }
    for (const group of dupes()) for (const i of group) fitted[i] = [String(labels[i])];
    return fitted;
  }

  // A category label: <g><title>full text</title><text>line, line</text></g>, so the full
  // name is the tooltip of the shortened one and the <text> holds only what is drawn.
  function drawLabel(parent, lines, full, attrs, lineH) {
    const g = svgEl("g", { class: "dc-label-g" }, parent);
    tooltip(g, full);
    const text = svgEl("text", { class: "dc-label", "aria-hidden": "true", "data-full": full, ...attrs }, g);
    if (lines.length === 1) {
      text.textContent = lines[0];
      return text;
    }
    const first = Number(attrs.y) - ((lines.length - 1) * lineH) / 2;
    lines.forEach((ln, i) => {
      const ts = svgEl("tspan", { x: attrs.x, y: first + i * lineH, dy: attrs.dy }, text);
      ts.textContent = ln;
    });
    return text;
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
    const shown = items.slice(0, limit).map((d) => `${d.label}: ${format(exact(d))}`);
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

  /**
   * Items whose label another item also has, told apart by their `id` ("Moe (#7)"): two
   * clients or products of one name are two bars, and a reader must see which is which.
   */
  function distinctLabels(items) {
    const count = new Map();
    for (const d of items) count.set(d.label, (count.get(d.label) || 0) + 1);
    return items.map((d) => (count.get(d.label) > 1 && d.id != null ? { ...d, label: `${d.label} (#${d.id})` } : d));
  }

  /** Horizontal bars (one row per item, label left, value right) or vertical columns. */
  function bars(el, opts) {
    clear(el);
    const items = distinctLabels(opts.items || []);
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
        const measure = measurer(svg);
        const labelLines = fitLabels(items.map((d) => d.label), Math.max(24, band - 6), measure.width, 2);
        measure.done();
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
          tooltip(rect, `${d.label}: ${format(exact(d))}`);
          const vl = svgEl("text", { class: "dc-value", x: cx, y: y(d.value) - 5, "text-anchor": "middle", "aria-hidden": "true" }, svg);
          vl.textContent = compact(d.value);
          drawLabel(svg, labelLines[i], String(d.label), { x: cx, y: height - m.bottom + 22, "text-anchor": "middle" }, 13);
        });
        return;
      }
      // The label column is as wide as the longest label needs, at most 40% of the chart;
      // longer labels wrap onto a second line, and only then are shortened (uniquely).
      const valueW = 64;
      const probeSvg = makeSvg(el, width, 10, { ...opts, kind: "bars", description });
      const measure = measurer(probeSvg);
      const labels = items.map((d) => String(d.label));
      const longest = Math.max(...labels.map((t) => measure.width(t)));
      const labelW = Math.ceil(Math.max(64, Math.min(longest, width * 0.4))) + 8;
      const labelLines = fitLabels(labels, labelW - 8, measure.width, 2);
      measure.done();
      const lineH = 14;
      const rowH = labelLines.some((ln) => ln.length > 1) ? 36 : 26;
      const m = { top: 4, right: 8, bottom: 4, left: labelW };
      const height = m.top + m.bottom + rowH * items.length;
      const svg = makeSvg(el, width, height, { ...opts, kind: "bars", description });
      const plotW = Math.max(20, width - m.left - m.right - valueW);
      const marks = svgEl("g", { class: "dc-marks" }, svg);
      items.forEach((d, i) => {
        const yTop = m.top + i * rowH;
        const w = max > 0 ? (d.value / max) * plotW : 0;
        drawLabel(svg, labelLines[i], labels[i], { x: labelW - 8, y: yTop + rowH / 2, dy: "0.32em", "text-anchor": "end" }, lineH);
        const rect = svgEl(
          "rect",
          {
            class: `dc-bar dc-series-${opts.colorBy === "index" ? i % 8 : 0}`,
            x: m.left,
            y: yTop + rowH / 2 - 9,
            width: Math.max(d.value > 0 ? 1 : 0, w),
            height: 18,
            rx: 3,
            "data-label": d.label,
            "data-value": d.value,
          },
          marks,
        );
        tooltip(rect, `${d.label}: ${format(exact(d))}`);
        const vl = svgEl("text", { class: "dc-value", x: m.left + w + 6, y: yTop + rowH / 2, dy: "0.32em", "aria-hidden": "true" }, svg);
        vl.textContent = compact(d.value);
      });
    });
  }

  function parseDate(s) {
    const [y, mo, d] = s.split("-").map(Number);
    return Date.UTC(y, mo - 1, d);
  }

  const DAY_MS = 864e5;
  const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

  // Candidate spacings for date ticks, finest first. Day steps of 7 and 14 fall on Mondays;
  // month steps on the 1st of a month that is a multiple of the step (quarters, halves).
  const DATE_STEPS = [
    { days: 1 }, { days: 2 }, { days: 7 }, { days: 14 },
    { months: 1 }, { months: 2 }, { months: 3 }, { months: 6 },
    { months: 12 }, { months: 24 }, { months: 60 }, { months: 120 },
  ];
  // ISO labels, like the rest of the page: 2024-03-11 for day steps, 2024-03 for months,
  // 2024 for years.
  function dateLabel(ms, step) {
    const iso = isoDay(ms);
    if (step.days) return iso;
    return step.months % 12 === 0 ? iso.slice(0, 4) : iso.slice(0, 7);
  }
  function stepTicks(step, x0, x1) {
    const out = [];
    if (step.days) {
      const offset = step.days >= 7 ? 4 : 0; // epoch day 4 (1970-01-05) was a Monday
      let d = Math.ceil((x0 / DAY_MS - offset) / step.days) * step.days + offset;
      for (; d * DAY_MS <= x1; d += step.days) out.push(d * DAY_MS);
      return out;
    }
    const a = new Date(x0);
    let idx = a.getUTCFullYear() * 12 + a.getUTCMonth() + (a.getUTCDate() === 1 ? 0 : 1);
    idx = Math.ceil(idx / step.months) * step.months;
    for (;; idx += step.months) {
      const ms = Date.UTC(Math.floor(idx / 12), idx % 12, 1);
      if (ms > x1) break;
      out.push(ms);
    }
    return out;
  }
  /**
   * Date ticks for [x0, x1] drawn over plotW px: the finest calendar step whose narrowest gap
   * between two ticks holds the widest label plus a 16 px gap. No tick is forced at either
   * end, so the last label never lands on its neighbour. Returns [{ms, label, width}].
   */
  function dateTicks(x0, x1, plotW, width) {
    if (!(x1 > x0)) return [{ ms: x0, label: isoDay(x0), width: width(isoDay(x0)) }];
    const pxPerDay = plotW / ((x1 - x0) / DAY_MS);
    for (const step of DATE_STEPS) {
      const minGap = (step.days || step.months * 28) * pxPerDay;
      const ticks = stepTicks(step, x0, x1).map((ms) => ({ ms, label: dateLabel(ms, step) }));
      const widest = Math.max(0, ...ticks.map((t) => (t.width = width(t.label))));
      if (minGap >= widest + 16) return ticks;
    }
    return [];
  }

  /** `points` (sorted by date) with every calendar day between them that they leave out, at 0. */
  function withMissingDays(points) {
    const out = [];
    for (const p of points) {
      const prev = out.length ? parseDate(out[out.length - 1].date) : null;
      for (let t = prev === null ? Infinity : prev + DAY_MS; t < parseDate(p.date); t += DAY_MS) {
        out.push({ date: isoDay(t), value: 0 });
      }
      out.push(p);
    }
    return out;
  }

  /**
   * A time series: area + line over dates, one point per day present in the data. With
   * `overlay` (a smoother series such as a 7-day moving average) that series is the bold line
   * and the daily values are drawn faint behind it. With `missingAsZero` a calendar day the
   * data leaves out is 0 on the line (daily sales: a day without orders sold nothing), so the
   * line drops to the axis instead of joining the days around the gap; points stay the data's.
   */
  function line(el, opts) {
    clear(el);
    const points = (opts.points || []).slice().sort((a, b) => (a.date < b.date ? -1 : 1));
    const overlay = opts.overlay && opts.overlay.points && opts.overlay.points.length ? opts.overlay : null;
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
        `highest ${format(exact(maxP))} on ${maxP.date}; sum ${format(opts.sum !== undefined ? opts.sum : total)}.` +
        (overlay ? ` Bold line: ${overlay.label}, from ${overlay.points[0].date}.` : "");
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
      const measure = measurer(svg);
      const xAxis = svgEl("g", { class: "dc-axis dc-axis-x", "aria-hidden": "true" }, svg);
      for (const t of dateTicks(x0, x1, plotW, measure.width)) {
        const tx = x(t.ms);
        // a label that would stick out of the chart is left out, not pushed onto a neighbour
        if (tx - t.width / 2 < 0 || tx + t.width / 2 > width) continue;
        svgEl("line", { class: "dc-tick", x1: tx, x2: tx, y1: m.top + plotH, y2: m.top + plotH + 4 }, xAxis);
        const lbl = svgEl("text", { x: tx, y: height - m.bottom + 18, "text-anchor": "middle", "data-date": isoDay(t.ms) }, xAxis);
        lbl.textContent = t.label;
      }
      measure.done();
      const pathOf = (pts) =>
        pts.map((p, i) => `${i ? "L" : "M"}${x(parseDate(p.date)).toFixed(2)},${y(p.value).toFixed(2)}`).join("");
      const linePoints = opts.missingAsZero ? withMissingDays(points) : points;
      const path = pathOf(linePoints);
      const base = y(0).toFixed(2);
      // the shaded area follows the bold line: the overlay when there is one
      const areaPts = overlay ? overlay.points : linePoints;
      const ax0 = x(parseDate(areaPts[0].date)).toFixed(2);
      const ax1 = x(parseDate(areaPts[areaPts.length - 1].date)).toFixed(2);
      svgEl("path", { class: "dc-area", d: `${pathOf(areaPts)}L${ax1},${base}L${ax0},${base}Z`, "aria-hidden": "true" }, svg);
      svgEl("path", { class: overlay ? "dc-line dc-line-faint" : "dc-line", d: path, "data-series": "daily", "aria-hidden": "true" }, svg);
      if (overlay) {
        svgEl("path", { class: "dc-line dc-line-overlay", d: pathOf(overlay.points), "data-series": "overlay", "aria-hidden": "true" }, svg);
      }
      const marks = svgEl("g", { class: overlay ? "dc-marks dc-marks-faint" : "dc-marks" }, svg);
      const r = points.length > 120 ? 1.5 : points.length > 40 ? 2.5 : 3.5;
      points.forEach((p, i) => {
        const c = svgEl(
          "circle",
          { class: "dc-point", cx: x(xs[i]), cy: y(p.value), r, "data-label": p.date, "data-value": p.value },
          marks,
        );
        tooltip(c, `${p.date}: ${format(exact(p))}`);
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
      const description = items.map((d) => `${d.label}: ${format(exact(d))} (${pct(d.value)})`).join("; ") + ".";
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
        tooltip(slice, `${d.label}: ${format(exact(d))} (${pct(d.value)})`);
      });
      const center = svgEl("text", { class: "dc-center", x: cx, y: cy, "text-anchor": "middle", dy: "0.32em", "aria-hidden": "true" }, svg);
      center.textContent = compact(total);
      const legend = svgEl("g", { class: "dc-legend", "aria-hidden": "true" }, svg);
      items.forEach((d, i) => {
        const lx = legendBeside ? size + 24 : Math.max(8, width / 2 - 110);
        const ly = legendBeside ? cy - (legendRowH * items.length) / 2 + i * legendRowH : size + 12 + i * legendRowH;
        svgEl("rect", { class: `dc-series-${(opts.colorIndex ? opts.colorIndex(d, i) : i) % 8}`, x: lx, y: ly + 4, width: 12, height: 12, rx: 2 }, legend);
        const t = svgEl("text", { x: lx + 18, y: ly + 10, dy: "0.32em" }, legend);
        t.textContent = `${d.label}  ${format(exact(d))} (${pct(d.value)})`;
      });
    });
  }

  root.DuffCharts = Object.freeze({ version: "1.0.0", bars, line, donut, clear, niceTicks, compact });
})(window);
