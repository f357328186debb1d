"""The dashboard reads without squinting (issue 14, item 5), measured in a real Chromium.

Each complaint from the `make demo` screenshot is a geometric or textual fact the page can be
asked for: two bars sharing a label, date tick boxes that intersect, a line whose direction
changes at almost every day, empty date fields in another format, a row of panels that is
two-thirds empty. The tests draw the page over the test's marts, and also draw the chart
module over demo-shaped data they build (the sample generator's 40 product names, a 731-day
series), at the widths where the old page failed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
from decimal import Decimal
from pathlib import Path

import pytest

from ingestion.sample import PRODUCTS as SAMPLE_PRODUCTS
from tests.integration.dashboard.test_dashboard_browser import (
    READY,
    open_dashboard,
    seven_day_average,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# Geometry of one bar chart: shown label text (tspans joined), its tooltip, its box, the bars.
READ_BARS = """((sel) => {
  const svg = document.querySelector(sel + ' svg.dc-chart');
  const box = (e) => { const r = e.getBoundingClientRect();
                       return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const labels = [...svg.querySelectorAll('text.dc-label')].map((t) => {
    const spans = [...t.querySelectorAll('tspan')];
    const title = t.closest('g.dc-label-g')?.querySelector(':scope > title');
    return {shown: spans.length ? spans.map((s) => s.textContent).join(' ') : t.textContent,
            lines: spans.length || 1, title: title ? title.textContent : null, box: box(t)};
  });
  const bars = [...svg.querySelectorAll('rect.dc-bar')].map((r) => ({
      label: r.dataset.label, box: box(r)}));
  return {svg: box(svg), labels, bars};
})"""

# The x axis of a line chart: every tick label's text, date and box.
READ_TICKS = """((sel) => {
  const svg = document.querySelector(sel + ' svg.dc-chart');
  const r = svg.getBoundingClientRect();
  return {svg: {left: r.left, right: r.right},
          ticks: [...svg.querySelectorAll('.dc-axis text')]
            .filter((t) => t.getAttribute('text-anchor') !== 'end' || !t.getAttribute('dy'))
            .filter((t) => t.getBoundingClientRect().top > r.top + r.height * 0.8)
            .map((t) => {
              const b = t.getBoundingClientRect();
              return {text: t.textContent, date: t.dataset.date || t.textContent,
                      left: b.left, right: b.right};
            })};
})"""

# A container of a given width at the end of <main>, for drawing the chart module directly.
MAKE_BOX = """((id, width) => {
  const div = document.createElement('div');
  div.id = id; div.className = 'chart'; div.style.width = width + 'px';
  document.getElementById('main').appendChild(div);
  return id;
})"""


def draw(page, kind: str, box: str, **opts) -> None:
    """``DuffCharts.<kind>`` into the element ``#box`` with ``opts`` (JSON)."""
    page.evaluate(f"DuffCharts.{kind}(document.getElementById('{box}'), {json.dumps(opts)})")


def demo_top_products() -> list[dict]:
    """The sample generator's products by expected revenue (price x popularity), top 12: the
    demo's product chart, with both 'Duff Beer keg' products in it."""
    ranked = sorted(SAMPLE_PRODUCTS, key=lambda p: -Decimal(p[1]) * p[3])
    return [{"label": p[0], "value": float(Decimal(p[1]) * p[3])} for p in ranked[:12]]


def demo_days(seed: int = 7) -> list[dict]:
    """731 days of revenue (2024-01-01 .. 2025-12-31) as spiky as the demo's."""
    rng = random.Random(seed)
    start = dt.date(2024, 1, 1)
    return [
        {"date": (start + dt.timedelta(days=n)).isoformat(), "value": rng.randint(9000, 55000)}
        for n in range(731)
    ]


def assert_labels_readable(chart: dict, names: list[str]) -> None:
    labels, bars = chart["labels"], chart["bars"]
    shown = [lab["shown"] for lab in labels]
    # no two bars share a label
    assert len(shown) == len(names) and len(set(shown)) == len(shown), shown
    # one label per bar, in the bars' order, each with the full name as its tooltip
    assert [lab["title"] for lab in labels] == names == [b["label"] for b in bars]
    for lab, bar in zip(labels, bars, strict=True):
        assert lab["lines"] <= 2
        if lab["shown"] != lab["title"]:
            assert "\u2026" in lab["shown"] or lab["lines"] == 2, lab
        # the label is inside the chart and never runs into its bar: left of it in a bar
        # chart, under it in a column chart
        assert lab["box"]["left"] >= chart["svg"]["left"] - 0.5, lab
        assert lab["box"]["right"] <= chart["svg"]["right"] + 0.5, lab
        beside = lab["box"]["right"] <= bar["box"]["left"] + 1
        under = lab["box"]["top"] >= bar["box"]["bottom"] - 1
        assert beside or under, (lab, bar)
    # and no two labels overlap
    for a, b in itertools.combinations([lab["box"] for lab in labels], 2):
        apart_x = a["right"] <= b["left"] + 0.5 or b["right"] <= a["left"] + 0.5
        apart_y = a["bottom"] <= b["top"] + 0.5 or b["bottom"] <= a["top"] + 0.5
        assert apart_x or apart_y, (a, b)


def assert_ticks_apart(axis: dict, first: str, last: str) -> None:
    ticks = sorted(axis["ticks"], key=lambda t: t["left"])
    assert len(ticks) >= 2, axis
    for a, b in itertools.pairwise(ticks):
        assert a["right"] + 4 <= b["left"], (a, b)  # boxes apart, with a gap
    for a, b in itertools.pairwise(ticks):
        assert a["date"] < b["date"]
    for t in ticks:
        assert axis["svg"]["left"] - 0.5 <= t["left"] and t["right"] <= axis["svg"]["right"] + 0.5
        assert first <= t["date"] <= last
        assert re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", t["text"]) and t["date"].startswith(
            t["text"]
        ), t


def path_ys(d: str) -> list[float]:
    return [float(y) for y in re.findall(r"[ML][-\d.]+,([-\d.]+)", d)]


def direction_changes(values: list[float]) -> int:
    steps = [b - a for a, b in itertools.pairwise(values) if b != a]
    return sum(1 for a, b in itertools.pairwise(steps) if (a > 0) != (b > 0))


@pytest.mark.parametrize("width", [1280, 390])
def test_product_and_client_labels_are_unique_and_whole_on_hover(
    dashboard_server, browser_tab, width
):
    # Given the dashboard open at a desktop and a phone width
    page = browser_tab(width, 900)
    assert open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")["state"] == (
        "ready"
    )

    # Then the product chart's labels are the top products' names, unique, inside the chart
    products = sorted(
        dashboard_server.data.products, key=lambda p: (-p["revenue"], p["product_id"])
    )
    chart = page.evaluate(f"{READ_BARS}('#chart-products')")
    assert_labels_readable(chart, [p["product_description"] for p in products[:12]])
    # And so are the top clients' (the table of names is in the API's order)
    chart = page.evaluate(f"{READ_BARS}('#chart-clients')")
    assert_labels_readable(chart, [c["client_name"] for c in dashboard_server.data.clients[:10]])
    if width >= 1280:  # wide enough: every name of up to 30 characters whole on one line
        short = [lab for lab in chart["labels"] if len(lab["title"]) <= 30]
        assert len(short) >= 9 and all(lab["shown"] == lab["title"] for lab in short)


def test_two_clients_of_one_name_are_told_apart_by_their_ids(dashboard_server, browser_tab):
    # Given the top clients, two of whom (different ids) carry the same name
    page = browser_tab(1280, 900)
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    items = [
        {"label": "Moe Szyslak", "value": 900, "id": 7},
        {"label": "Homer Simpson", "value": 700, "id": 1},
        {"label": "Moe Szyslak", "value": 500, "id": 12},
    ]
    # When they are drawn as the clients panel draws them (name, spend, id)
    page.evaluate(f"{MAKE_BOX}('same-names', 600)")
    draw(page, "bars", "same-names", items=items)
    # Then no two bars share a label: the shared name carries each id
    assert_labels_readable(
        page.evaluate(f"{READ_BARS}('#same-names')"),
        ["Moe Szyslak (#7)", "Homer Simpson", "Moe Szyslak (#12)"],
    )


@pytest.mark.parametrize("width", [600, 330, 280, 260])
def test_demo_product_names_never_share_a_label(dashboard_server, browser_tab, width):
    # Given the demo's top 12 products (two are 'Duff Beer keg 20L' / 'Duff Beer keg 50L'),
    # drawn by the chart module into a box as narrow as a third of a 1400 px page, or less
    items = demo_top_products()
    assert {"Duff Beer keg 20L", "Duff Beer keg 50L"} <= {i["label"] for i in items}
    page = browser_tab(1280, 900)
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    page.evaluate(f"{MAKE_BOX}('demo-bars', {width})")
    draw(page, "bars", "demo-bars", items=items)

    # Then no two bars share a label, each shortened one has the full name as its tooltip
    chart = page.evaluate(f"{READ_BARS}('#demo-bars')")
    assert_labels_readable(chart, [i["label"] for i in items])
    assert chart["svg"]["right"] - chart["svg"]["left"] == pytest.approx(width, abs=1)

    # And names too long for two lines, sharing a long end or a long start, are shortened
    # (not wrapped onto a third line) and still never share a label
    promo = " (Springfield Nuclear Power Plant canteen promotion)"
    long_names = [i["label"] + promo for i in items] + [
        "Springfield Nuclear Power Plant canteen promotion: " + i["label"] for i in items[:4]
    ]
    long_items = [{"label": n, "value": k + 1} for k, n in enumerate(long_names)]
    draw(page, "bars", "demo-bars", items=long_items)
    chart = page.evaluate(f"{READ_BARS}('#demo-bars')")
    assert_labels_readable(chart, long_names)
    if width <= 330:  # too narrow for two whole lines: every one shortened
        assert all("\u2026" in lab["shown"] for lab in chart["labels"])

    # And all 40 names of the sample generator stay unique as well; and three of them (as many
    # as the channels) in columns
    every = [{"label": p[0], "value": float(Decimal(p[1]) * p[3])} for p in SAMPLE_PRODUCTS]
    draw(page, "bars", "demo-bars", items=every)
    assert_labels_readable(
        page.evaluate(f"{READ_BARS}('#demo-bars')"), [p[0] for p in SAMPLE_PRODUCTS]
    )
    draw(page, "bars", "demo-bars", items=items[:3], orientation="vertical")
    assert_labels_readable(
        page.evaluate(f"{READ_BARS}('#demo-bars')"), [i["label"] for i in items[:3]]
    )


@pytest.mark.parametrize("width", [1400, 1280, 900, 390])
def test_daily_date_ticks_never_overlap(dashboard_server, browser_tab, width):
    # Given the dashboard open, and a 731-day series like the demo's drawn at the same width
    days = demo_days()
    page = browser_tab(width, 900)
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    page.evaluate(f"{MAKE_BOX}('demo-line', {width - 60})")
    draw(page, "line", "demo-line", points=days)

    # Then on both, the tick labels are ISO dates inside the data's range, apart and in the chart
    daily = dashboard_server.data.daily
    first, last = daily[0]["pa_date"].isoformat(), daily[-1]["pa_date"].isoformat()
    assert_ticks_apart(
        page.evaluate(f"{READ_TICKS}('#demo-line')"), days[0]["date"], days[-1]["date"]
    )
    assert_ticks_apart(page.evaluate(f"{READ_TICKS}('#chart-daily')"), first, last)


def test_daily_line_shows_a_seven_day_average_by_default(dashboard_server, browser_tab):
    # Given the test's 45 days of sales and their 7-day average computed here
    data = dashboard_server.data
    average = seven_day_average(data.daily)
    assert len(average) == (data.daily[-1]["pa_date"] - data.daily[0]["pa_date"]).days + 1 - 6

    # When the dashboard opens
    page = browser_tab(1280, 900)
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    read = """(() => {
      const path = (s) => { const p = document.querySelector(
          `#chart-daily path[data-series=${s}]`); return p && {d: p.getAttribute('d'),
          cls: p.getAttribute('class')}; };
      return {daily: path('daily'), overlay: path('overlay'),
              view: document.querySelector('input[name=daily-view]:checked').value,
              subtitle: document.querySelector('#panel-daily [data-role=subtitle]').textContent,
              avg: [...document.querySelectorAll('#panel-daily tbody td[data-key=avg7]')]
                  .map((c) => [c.closest('tr').querySelector('[data-key=pa_date]').dataset.value,
                               c.dataset.value ?? null])};
    })()"""
    shown = page.evaluate(read)

    # Then the default view draws the average bold over faint days, one vertex per day of it
    assert shown["view"] == "avg7"
    assert "7-day average (bold)" in shown["subtitle"]
    assert "dc-line-faint" in shown["daily"]["cls"]
    overlay_ys = path_ys(shown["overlay"]["d"])
    daily_ys = path_ys(shown["daily"]["d"])
    assert len(overlay_ys) == len(average) and len(daily_ys) == len(data.daily)
    # And it turns far less often than the days it averages (the page's pixels, and the figures)
    avg_turns = direction_changes([float(v) for v in average.values()])
    day_turns = direction_changes([float(d["revenue"]) for d in data.daily])
    assert avg_turns * 3 <= day_turns * 2, (avg_turns, day_turns)
    # (pixels go down as revenue goes up: the same number of turns)
    assert (direction_changes(overlay_ys), direction_changes(daily_ys)) == (avg_turns, day_turns)
    # And the data table gives the average of each day, to the cent, from the 7th day on
    assert {day: Decimal(v) for day, v in shown["avg"] if v is not None} == {
        day.isoformat(): average[day.isoformat()]
        for day in (d["pa_date"] for d in data.daily)
        if day.isoformat() in average
    }

    # When the user picks "Daily", Then the days alone are drawn, bold; and back again
    page.evaluate("document.querySelector('input[name=daily-view][value=daily]').click()")
    shown = page.evaluate(read)
    assert shown["overlay"] is None and shown["daily"]["cls"] == "dc-line"
    assert page.evaluate("document.querySelectorAll('#chart-daily [data-value]').length") == len(
        data.daily
    )
    page.evaluate("document.querySelector('input[name=daily-view][value=avg7]').click()")
    assert len(path_ys(page.evaluate(read)["overlay"]["d"])) == len(average)


def test_daily_line_drops_to_zero_on_days_without_sales(dashboard_server, browser_tab):
    # Given a daily series with sales on 1, 5 and 6 March only (the mart leaves out the rest)
    page = browser_tab(1000, 900)
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    points = [
        {"date": "2024-03-01", "value": 200},
        {"date": "2024-03-05", "value": 360},
        {"date": "2024-03-06", "value": 300},
    ]
    read = """((sel) => ({
      d: document.querySelector(sel + ' path[data-series=daily]').getAttribute('d'),
      marks: document.querySelectorAll(sel + ' [data-value]').length,
      zero: Math.max(...[...document.querySelectorAll(sel + ' .dc-grid')]
                       .map((l) => Number(l.getAttribute('y1'))))}))"""
    # When it is drawn as the daily panel draws it
    page.evaluate(f"{MAKE_BOX}('gap-line', 900)")
    draw(page, "line", "gap-line", points=points, missingAsZero=True)
    shown = page.evaluate(f"{read}('#gap-line')")
    # Then the line has a vertex per calendar day, at the axis on 2-4 March (as the 7-day
    # average counts them), and marks only the three days the data has
    ys = path_ys(shown["d"])
    assert len(ys) == 6 and shown["marks"] == 3
    assert ys[1:4] == [pytest.approx(shown["zero"], abs=0.01)] * 3
    assert all(y < shown["zero"] for y in (ys[0], ys[4], ys[5]))
    # And the dashboard's daily panel draws its line that way
    app_js = (Path(__file__).parents[3] / "api" / "static" / "app.js").read_text()
    draw_daily = app_js[app_js.index("function drawDaily(") :]
    draw_daily = draw_daily[: draw_daily.index("\n  }\n")]
    assert "DuffCharts.line(p.chart" in draw_daily and "missingAsZero: true" in draw_daily


@pytest.mark.parametrize("width", [1400, 1024, 800])  # 390: test_dashboard_browser's phone test
def test_the_page_never_scrolls_sideways(dashboard_server, browser_tab, width):
    # Given the dashboard open at this width, with a delivery whose quarantine error is long
    page = browser_tab(width, 1000)
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    page.evaluate("document.querySelector('#panel-quality details')?.setAttribute('open', '')")
    # Then nothing is wider than the window: a wide table scrolls inside its own box
    sizes = page.evaluate(
        """(() => ({page: document.documentElement.scrollWidth, window: window.innerWidth,
                    wide: [...document.querySelectorAll('main *')]
                      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1
                                     && !e.closest('.table-scroll'))
                      .map((e) => e.id || e.className || e.tagName).slice(0, 5)}))()"""
    )
    assert sizes["page"] <= sizes["window"], sizes


def test_date_pickers_hold_the_data_range_in_iso(dashboard_server, browser_tab):
    # Given the dashboard open on the test's days
    daily = dashboard_server.data.daily
    first, last = daily[0]["pa_date"].isoformat(), daily[-1]["pa_date"].isoformat()
    page = browser_tab()
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    pickers = """(() => ({from: document.getElementById('daily-from').value,
        to: document.getElementById('daily-to').value,
        types: [...document.querySelectorAll('#daily-form input')].map((i) => i.type),
        placeholder: document.getElementById('daily-from').placeholder,
        firstRow: (document.querySelector('#panel-daily tbody [data-key=pa_date]') || {})
            .textContent ?? null,
        msg: document.querySelector('#panel-daily [data-role=message]').textContent}))()"""

    # Then the pickers hold the data's first and last day, written as the table writes dates
    shown = page.evaluate(pickers)
    assert (shown["from"], shown["to"]) == (first, last)
    assert shown["types"] == ["text", "text"] and shown["placeholder"] == "YYYY-MM-DD"
    assert shown["firstRow"] == first

    # When a range is applied, Then the pickers keep it; cleared, they show the data's again
    def apply(a: str, b: str) -> dict:
        page.evaluate(
            f"""document.getElementById('daily-from').value = {json.dumps(a)};
            document.getElementById('daily-to').value = {json.dumps(b)};
            document.getElementById('daily-form').requestSubmit();"""
        )
        page.wait_for(
            "['ready', 'error'].includes(document.getElementById('panel-daily').dataset.state)"
            " && document.getElementById('panel-daily').getAttribute('aria-busy') === 'false'"
        )
        return page.evaluate(pickers)

    inner = [d["pa_date"].isoformat() for d in daily[3:9]]
    shown = apply(inner[0], inner[-1])
    assert (shown["from"], shown["to"]) == (inner[0], inner[-1]) and shown["firstRow"] == inner[0]
    page.wait_for(READY)
    shown = apply("", "")
    assert (shown["from"], shown["to"]) == (first, last)

    # When a date is not a real YYYY-MM-DD day, Then the panel says how to write it
    shown = apply("2024-02-30", last)
    assert shown["msg"] == "2024-02-30 is not a day of the calendar."
    shown = apply("03/01/2024", last)
    assert shown["msg"] == "Write dates as YYYY-MM-DD, for example 2024-03-10."


@pytest.mark.parametrize("width", [1400, 1280, 1024, 900, 760, 390])
def test_no_row_of_panels_is_mostly_empty(dashboard_server, browser_tab, screenshot_dir, width):
    # Given the dashboard open at this width
    page = browser_tab(width, 1000)
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")

    # Then every row of panels spans the grid's width (no lone panel beside empty space)
    layout = page.evaluate(
        """(() => { const g = document.querySelector('main .grid');
          const gap = parseFloat(getComputedStyle(g).columnGap);
          return {width: g.getBoundingClientRect().width, gap,
                  panels: [...g.children].map((p) => { const r = p.getBoundingClientRect();
                    return {id: p.id, top: Math.round(r.top), width: r.width}; })}; })()"""
    )
    rows: dict[int, list[dict]] = {}
    for p in layout["panels"]:
        rows.setdefault(p["top"], []).append(p)
    for row in rows.values():
        used = sum(p["width"] for p in row) + layout["gap"] * (len(row) - 1)
        assert used >= 0.97 * layout["width"], (width, row, layout["width"])
    # And from 900 px the four half panels pair up: two rows of two
    ids = [[p["id"] for p in row] for row in rows.values()]
    if width >= 900:
        assert ["panel-channel", "panel-status"] in ids and [
            "panel-products",
            "panel-clients",
        ] in ids
    else:
        assert all(len(r) == 1 for r in ids)
    if width == 1400:
        page.screenshot(screenshot_dir / "dashboard-readable-1400.png")
