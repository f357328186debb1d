/*
 * Exact figures for the dashboard (app.js) and the live panel (live.js), loaded before both.
 * CONTRACT.md section 4: every figure shown comes from the API, and spend, revenue and litres
 * are exact decimals; a JavaScript number holds 15 significant digits, so the arithmetic and
 * the text below work in BigInt units of a figure's last decimal.
 */
(function () {
  "use strict";

  // A JSON number with more than 15 significant digits (a spend of 1e13 and up, cents
  // included) is kept as the text the API sent; the others are numbers as usual.
  const DOUBLE_DIGITS = 15;
  function parseJson(text) {
    return JSON.parse(text, function (_key, value, context) {
      if (typeof value !== "number" || !context || typeof context.source !== "string") return value;
      const digits = context.source.replace(/[-+.]|e.*$/gi, "").replace(/^0+/, "");
      return digits.length > DOUBLE_DIGITS ? context.source : value;
    });
  }
  // A figure (a JSON number, or the text parseJson kept) in units of its `decimals`-th
  // decimal, rounded half away from zero, as a BigInt: "1234.5" -> 123450n for 2 decimals.
  // A number is read as the shortest text that is that number (1.005 as "1.005", 1e21 as
  // "1e+21"); anything not a number (null, NaN) is 0.
  function scaled(value, decimals) {
    const text = typeof value === "string" ? value.trim() : String(Number(value));
    const m = /^([-+]?)(\d*)(?:\.(\d*))?(?:e([-+]?\d+))?$/i.exec(text);
    if (!m || !(m[2] || m[3])) return 0n;
    const digits = BigInt((m[2] || "") + (m[3] || ""));
    const shift = decimals - (m[3] || "").length + Number(m[4] || 0);
    let n = digits * 10n ** BigInt(Math.max(shift, 0));
    if (shift < 0) {
      const unit = 10n ** BigInt(-shift);
      n = digits / unit + ((digits % unit) * 2n >= unit ? 1n : 0n);
    }
    return m[1] === "-" ? -n : n;
  }
  // `scaled` units as text with `decimals` places, thousands grouped: 123450n -> "1,234.50".
  function fixedText(units, decimals, group) {
    let n = BigInt(units);
    const neg = n < 0n;
    if (neg) n = -n;
    const s = n.toString().padStart(decimals + 1, "0");
    let int = decimals ? s.slice(0, -decimals) : s;
    const frac = decimals ? s.slice(-decimals) : "";
    if (group) int = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (neg ? "-" : "") + int + (decimals ? "." + frac : "");
  }
  const fmt = {
    money: (v) => fixedText(scaled(v, 2), 2, true),
    liters: (v) => fixedText(scaled(v, 3), 3, true),
    int: (v) => fixedText(scaled(v, 0), 0, true),
  };
  const byExact = (decimals) => (a, b) => {
    const x = scaled(a, decimals);
    const y = scaled(b, decimals);
    return x < y ? -1 : x > y ? 1 : 0;
  };

  window.DuffFigures = Object.freeze({ parseJson, scaled, fixedText, fmt, byExact });
})();
