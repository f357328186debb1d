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
  function scaled(value, decimals) {
    let text = typeof value === "string" ? value.trim() : Number(value).toFixed(decimals);
    if (!/^-?\d+(\.\d*)?$/.test(text)) {
      // a double of 1e21 or more (toFixed writes an exponent): an integer, exactly as held
      const n = Number(value);
      return Number.isFinite(n) ? BigInt(Math.round(n)) * 10n ** BigInt(decimals) : 0n;
    }
    const neg = text.startsWith("-");
    if (neg) text = text.slice(1);
    const [int, frac = ""] = text.split(".");
    let n = BigInt(int + frac.padEnd(decimals, "0").slice(0, decimals));
    if (frac.length > decimals && frac[decimals] >= "5") n += 1n;
    return neg ? -n : n;
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
