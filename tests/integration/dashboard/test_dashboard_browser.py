"""The dashboard in a real headless Chromium, against the API over marts the test builds.

Each test opens the page as a user would (key in the URL fragment or typed in the field) and
reads back what the page shows: the totals text, the data-value of every chart mark and the
cells of every data table. Those are compared with the API's own JSON (fetched directly) and
with the figures computed here from the orders the test made.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

PRODUCTS_IN_CHART = 12  # app.js shows the top 12 products by revenue in the chart
STATUS_ORDER = ["created", "delivered", "broken"]

# What the page shows, read in one round trip.
READ_PAGE = """(() => {
  const marks = (id) => [...document.querySelectorAll(`#${id} [data-role=chart] [data-value]`)]
      .map((e) => [e.dataset.label, Number(e.dataset.value)]);
  const rows = (id) => [...document.querySelectorAll(`#${id} [data-role=table] tbody tr`)]
      .map((tr) => Object.fromEntries([...tr.children].filter((c) => c.dataset.key)
          .map((c) => [c.dataset.key, c.dataset.value])));
  const total = (id) => ({text: document.getElementById(id).textContent,
                          value: document.getElementById(id).dataset.value});
  const ids = ["panel-daily", "panel-channel", "panel-status", "panel-products", "panel-clients"];
  return {
    state: document.body.dataset.state,
    status: document.getElementById("status").textContent,
    alertHidden: document.getElementById("alert").hidden,
    alert: document.getElementById("alert-text").textContent,
    keyFormHidden: document.getElementById("key-form").hidden,
    href: location.href,
    storedKey: sessionStorage.getItem("duff.apiKey"),
    revenue: total("total-revenue"), orders: total("total-orders"), liters: total("total-liters"),
    panelStates: Object.fromEntries(
        ids.map((id) => [id, document.getElementById(id).dataset.state])),
    marks: Object.fromEntries(ids.map((id) => [id, marks(id)])),
    rows: Object.fromEntries(ids.map((id) => [id, rows(id)])),
    asOf: document.getElementById("data-as-of").dataset.value || null,
  };
})()"""

SETTLED = "['ready', 'error'].includes(document.body && document.body.dataset.state)"
READY = "document.body && document.body.dataset.state === 'ready'"


def dec(value: object) -> Decimal:
    """A JSON number as the exact decimal it spells."""
    return Decimal(str(value))


def exact(row: dict, keys: tuple[str, ...] | None = None) -> dict:
    """``row`` (restricted to ``keys``) with every numeric value as an exact Decimal."""
    keys = keys or tuple(row)
    out = {}
    for k in keys:
        v = row[k]
        try:
            out[k] = dec(v)
        except ArithmeticError:  # decimal.InvalidOperation: a name or a date, kept as text
            out[k] = v
    return out


def seven_day_average(daily: list[dict]) -> dict[str, Decimal]:
    """Trailing 7-calendar-day mean of revenue (a missing day sold 0), to the cent (half up),
    for every day from the 7th of the series on: what the daily panel's average must be."""
    revenue = {d["pa_date"]: d["revenue"] for d in daily}
    first, last = min(revenue), max(revenue)
    out = {}
    for n in range((last - first).days + 1 - 6):
        day = first + dt.timedelta(days=n + 6)
        total = sum(revenue.get(day - dt.timedelta(days=k), Decimal(0)) for k in range(7))
        out[day.isoformat()] = (total / 7).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return out


def avg7(average: dict[str, Decimal], day: str) -> dict:
    """The data table's 7-day average cell for ``day``: absent before the 7th day."""
    return {"avg7": average[day]} if day in average else {}


def api_patterns(server) -> list[dict]:
    """CDP Fetch patterns that catch the dashboard's data calls (not the page or its files)."""
    paths = ["/sales/*", "/status-summary*", "/products*", "/clients*", "/quality/*"]
    return [{"urlPattern": f"{server.url}{p}"} for p in paths]


def open_dashboard(page, server, fragment: str) -> dict:
    page.goto(f"{server.url}/{fragment}")
    page.wait_for(SETTLED)
    return page.evaluate(READ_PAGE)


def test_dashboard_shows_the_api_figures(dashboard_server, browser_tab, screenshot_dir):
    # Given the API over marts built from the test's orders, and what its routes answer
    server, data = dashboard_server, dashboard_server.data
    channels = server.json("/sales/by-channel")["items"]
    daily = server.json("/sales/daily")["items"]
    statuses = server.json("/status-summary")["items"]
    products = server.json("/products")["items"]
    top_clients = server.json("/clients?limit=10")["items"]

    # When a user opens the dashboard with the key in the URL fragment
    page = browser_tab(1280, 900)
    shown = open_dashboard(page, server, f"#key={server.api_key}")

    # Then it loads without a script error, and the key left the address bar for the tab store
    assert page.exceptions() == []
    assert shown["state"] == "ready", shown
    assert shown["href"] == f"{server.url}/"
    assert shown["storedKey"] == server.api_key
    assert shown["alertHidden"] and shown["keyFormHidden"]
    assert shown["status"].startswith("Dashboard loaded")
    assert set(shown["panelStates"].values()) == {"ready"}

    # And the totals are the sums over /sales/by-channel, which are the orders' own sums
    revenue = sum(dec(r["revenue"]) for r in channels)
    orders = sum(r["orders"] for r in channels)
    liters = sum(dec(r["liters"]) for r in channels)
    assert revenue == sum(o.amount for o in data.orders)
    assert orders == len(data.orders)
    assert liters == sum(o.liters for o in data.orders)
    assert shown["revenue"] == {"text": f"{revenue:,.2f}", "value": f"{revenue:.2f}"}
    assert shown["orders"] == {"text": f"{orders:,}", "value": str(orders)}
    assert shown["liters"] == {"text": f"{liters:,.3f}", "value": f"{liters:.3f}"}

    # And every chart draws exactly the API's numbers
    marks = shown["marks"]
    assert marks["panel-channel"] == [[r["channel"], r["revenue"]] for r in channels]
    assert marks["panel-daily"] == [[r["pa_date"], r["revenue"]] for r in daily]
    assert len(daily) == len(data.daily)
    by_status = sorted(statuses, key=lambda r: STATUS_ORDER.index(r["status"]))
    assert marks["panel-status"] == [[r["status"], r["orders"]] for r in by_status]
    top_products = sorted(products, key=lambda r: (-dec(r["revenue"]), r["product_id"]))
    assert marks["panel-products"] == [
        [r["product_description"], r["revenue"]] for r in top_products[:PRODUCTS_IN_CHART]
    ]
    assert len(products) > PRODUCTS_IN_CHART  # so the "top N of M" path is exercised
    assert marks["panel-clients"] == [[c["client_name"], c["total_spend"]] for c in top_clients]
    assert [c["client_id"] for c in top_clients] == [c["client_id"] for c in data.clients[:10]]

    # And the data tables (the charts' text alternative) list every row with every figure
    rows = shown["rows"]
    figures = ("orders", "units", "liters", "revenue")
    average = seven_day_average(data.daily)
    assert [exact(r) for r in rows["panel-daily"]] == [
        exact(r, ("pa_date", *figures)) | avg7(average, r["pa_date"]) for r in daily
    ]
    assert [exact(r) for r in rows["panel-channel"]] == [
        exact(r, ("channel", *figures)) for r in channels
    ]
    assert len(rows["panel-products"]) == len(products)
    assert {r["product_id"] for r in rows["panel-products"]} == {
        str(p["product_id"]) for p in products
    }
    assert [r["client_id"] for r in rows["panel-clients"]] == [
        str(c["client_id"]) for c in top_clients
    ]
    assert shown["asOf"] == server.json("/health")["data_as_of"]

    # And the page is accessible: every chart is an image with a title, every field has a label
    a11y = page.evaluate(
        """(() => ({
          charts: [...document.querySelectorAll('svg.dc-chart')].map((s) => ({
              role: s.getAttribute('role'),
              title: s.querySelector('title').textContent,
              desc: s.querySelector('desc').textContent})),
          unlabelled: [...document.querySelectorAll('input')]
              .filter((i) => !i.labels.length).map((i) => i.id),
          captions: [...document.querySelectorAll('[data-role=table] table')]
              .map((t) => t.caption && t.caption.textContent),
          h1: document.querySelectorAll('h1').length,
        }))()"""
    )
    assert len(a11y["charts"]) == 6  # five sales charts and the data-quality one
    assert all(c["role"] == "img" and c["title"] and c["desc"] for c in a11y["charts"])
    assert a11y["unlabelled"] == []
    assert len(a11y["captions"]) == 6 and all(a11y["captions"])
    assert a11y["h1"] == 1

    # And a person looking at it sees a whole page (checked by eye from this screenshot)
    shot = page.screenshot(screenshot_dir / "dashboard-desktop.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_client_names_are_shown_as_text_never_as_html(dashboard_server, browser_tab):
    # Given a top client whose name is an HTML injection attempt
    hostile_names = [
        c["client_name"] for c in dashboard_server.data.clients if "<img" in c["client_name"]
    ]
    assert len(hostile_names) == 1
    xss_name = hostile_names[0]
    top_ids = [c["client_id"] for c in dashboard_server.json("/clients?limit=10")["items"]]
    hostile = next(c for c in dashboard_server.data.clients if c["client_name"] == xss_name)
    assert hostile["client_id"] in top_ids

    # When the dashboard shows it
    page = browser_tab()
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")

    # Then the name is text in the chart and table, and no element or handler was injected
    found = page.evaluate(
        """(() => ({
          imgs: document.querySelectorAll('main img').length,
          pwned: document.body.dataset.pwned || null,
          cells: [...document.querySelectorAll('#panel-clients tbody th')]
              .map((c) => c.textContent),
        }))()"""
    )
    assert found["imgs"] == 0 and found["pwned"] is None
    assert xss_name in found["cells"]


def test_loading_state_is_shown_until_the_api_answers(dashboard_server, browser_tab):
    # Given a browser that holds every API data call until the test lets it through
    page = browser_tab()
    page.call("Fetch.enable", {"patterns": api_patterns(dashboard_server)})

    # When the dashboard is opened and its six calls are in flight
    page.goto(f"{dashboard_server.url}/#key={dashboard_server.api_key}")
    held = [page.wait_event("Fetch.requestPaused") for _ in range(6)]
    held_paths = sorted(e["request"]["url"].removeprefix(dashboard_server.url) for e in held)

    # Then the page says it is loading, every panel is busy, and the totals wait
    loading = page.evaluate(
        """(() => ({
          state: document.body.dataset.state,
          status: document.getElementById('status').textContent,
          busy: [...document.querySelectorAll('.panel[aria-busy=true]')].map((p) => p.id).sort(),
          revenue: document.getElementById('total-revenue').textContent,
        }))()"""
    )
    assert held_paths == sorted(
        [
            "/clients?limit=10",
            "/products",
            "/quality/files?limit=1000",
            "/sales/by-channel",
            "/sales/daily",
            "/status-summary",
        ]
    )
    assert all(e["request"]["headers"].get("x-api-key") == dashboard_server.api_key for e in held)
    assert loading["state"] == "loading"
    assert loading["status"] == "Loading dashboard data\u2026"
    assert loading["busy"] == sorted(
        [
            "panel-channel",
            "panel-clients",
            "panel-daily",
            "panel-products",
            "panel-quality",
            "panel-status",
        ]
    )
    assert loading["revenue"] == "Loading\u2026"

    # When the calls are let through, Then the loading state gives way to the data
    for event in held:
        page.call("Fetch.continueRequest", {"requestId": event["requestId"]})
    # (the quality panel reads a second page: the test's files sit behind 1,200 newer stream
    # batches, conftest.QUALITY_STREAM_BATCHES)
    more = page.wait_event("Fetch.requestPaused")
    assert (
        more["request"]["url"]
        .removeprefix(dashboard_server.url)
        .startswith("/quality/files?limit=1000&cursor=")
    )
    page.call("Fetch.continueRequest", {"requestId": more["requestId"]})
    page.wait_for(READY)
    done = page.evaluate(READ_PAGE)
    assert done["status"].startswith("Dashboard loaded")
    assert done["revenue"]["value"] == f"{sum(o.amount for o in dashboard_server.data.orders)}"


def test_wrong_key_says_so_and_lets_the_user_enter_another(
    dashboard_server, browser_tab, screenshot_dir
):
    # Given the API refuses the key "wrong-key" (as the route itself confirms)
    assert dashboard_server.get("/sales/by-channel", key="wrong-key").status_code == 403

    # When the dashboard is opened with it
    page = browser_tab()
    shown = open_dashboard(page, dashboard_server, "#key=wrong-key")

    # Then the page says the key was refused, forgets it, and shows the key field again
    assert shown["state"] == "error"
    assert not shown["alertHidden"]
    assert "refused the key (HTTP 403" in shown["alert"]
    assert "Enter a valid API key" in shown["alert"]
    assert shown["storedKey"] is None
    assert shown["keyFormHidden"] is False
    assert shown["revenue"].get("value") is None
    assert page.evaluate("document.activeElement.id") == "api-key"
    assert set(shown["panelStates"].values()) == {"error"}
    page.screenshot(screenshot_dir / "dashboard-wrong-key.png", full_page=False)

    # When the user types the right key in the field and submits
    page.evaluate(
        f"""document.getElementById('api-key').value = {json.dumps(dashboard_server.api_key)};
        document.getElementById('key-form').requestSubmit();"""
    )
    page.wait_for(READY)

    # Then the error is gone and the dashboard shows the data
    shown = page.evaluate(READ_PAGE)
    assert shown["alertHidden"]
    assert shown["orders"]["value"] == str(len(dashboard_server.data.orders))
    assert shown["storedKey"] == dashboard_server.api_key


def test_server_and_network_failures_are_reported_with_a_retry(dashboard_server, browser_tab):
    # Given a dashboard that loaded, after which /sales/by-channel answers 500 and /products
    # cannot connect, and the user presses Refresh
    page = browser_tab()
    assert open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")["state"] == (
        "ready"
    )
    page.call("Fetch.enable", {"patterns": api_patterns(dashboard_server)})
    page.evaluate("document.getElementById('refresh-button').click()")
    error_body = {"error": {"code": "internal", "message": "the warehouse is on fire"}}
    seen: set[str] = set()
    while len(seen) < 7:  # six panels, the quality panel's second page (see above)
        event = page.wait_event("Fetch.requestPaused")
        path = event["request"]["url"].removeprefix(dashboard_server.url)
        if path == "/sales/by-channel":
            page.call(
                "Fetch.fulfillRequest",
                {
                    "requestId": event["requestId"],
                    "responseCode": 500,
                    "responseHeaders": [{"name": "content-type", "value": "application/json"}],
                    "body": base64.b64encode(json.dumps(error_body).encode()).decode(),
                },
            )
        elif path == "/products":
            page.call(
                "Fetch.failRequest",
                {"requestId": event["requestId"], "errorReason": "ConnectionRefused"},
            )
        else:
            page.call("Fetch.continueRequest", {"requestId": event["requestId"]})
        seen.add(path)

    # When the page settles
    page.wait_for(SETTLED)
    shown = page.evaluate(READ_PAGE)
    panel_msgs = page.evaluate(
        """Object.fromEntries([...document.querySelectorAll('.panel [data-role=message]')]
             .map((m) => [m.closest('.panel').id, m.textContent]))"""
    )

    # Then the page names both failures, keeps what loaded, and offers to try again
    assert shown["state"] == "error"
    assert "2 of 6 charts could not be loaded" in shown["alert"]
    assert page.evaluate("document.getElementById('alert-retry').hidden") is False
    assert "HTTP 500, internal: the warehouse is on fire" in panel_msgs["panel-channel"]
    assert "Could not reach the API (network error)" in panel_msgs["panel-products"]
    assert shown["panelStates"]["panel-daily"] == "ready"
    assert shown["panelStates"]["panel-channel"] == "error"
    assert shown["revenue"]["text"] == "Unavailable"
    assert shown["storedKey"] == dashboard_server.api_key  # not a key problem: key kept
    assert shown["marks"]["panel-channel"] == [] and shown["marks"]["panel-products"] == []

    # And a resize redraws the charts that loaded but never brings back the failed ones
    daily_width = "document.querySelector('#panel-daily svg.dc-chart').getAttribute('width')"
    before = page.evaluate(daily_width)
    page.set_viewport(900, 900)
    page.wait_for(f"{daily_width} !== {json.dumps(before)}")
    after_resize = page.evaluate(READ_PAGE)["marks"]
    assert after_resize["panel-channel"] == [] and after_resize["panel-products"] == []
    assert len(after_resize["panel-daily"]) == len(dashboard_server.data.daily)

    # When the API recovers and the user presses "Try again"
    page.call("Fetch.disable")
    page.evaluate("document.getElementById('alert-retry').click()")
    page.wait_for(READY)

    # Then everything loads
    shown = page.evaluate(READ_PAGE)
    assert shown["alertHidden"] and set(shown["panelStates"].values()) == {"ready"}


def test_the_key_is_kept_for_this_tab_only(dashboard_server, browser_tab):
    # Given a tab that was opened with the key in the fragment
    page = browser_tab()
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")

    # When that tab reloads the bare URL, Then it still has the key and loads
    reloaded = open_dashboard(page, dashboard_server, "")
    assert reloaded["state"] == "ready"

    # When another tab opens the bare URL, Then it asks for the key and calls nothing
    other = browser_tab()
    other.goto(f"{dashboard_server.url}/")
    other.wait_for("document.getElementById('status').textContent !== ''")
    fresh = other.evaluate(READ_PAGE)
    assert fresh["storedKey"] is None
    assert fresh["keyFormHidden"] is False
    assert fresh["status"] == "Enter the API key to load the dashboard."
    assert set(fresh["panelStates"].values()) == {"waiting"}


def test_a_key_put_in_the_fragment_later_is_taken_at_once(dashboard_server, browser_tab):
    # Given a tab waiting for a key
    page = browser_tab()
    page.goto(f"{dashboard_server.url}/")
    page.wait_for("document.getElementById('status').textContent !== ''")

    # When the user pastes a URL with #key=... into the same tab
    page.evaluate(f"location.hash = 'key={dashboard_server.api_key}'")
    page.wait_for(READY)

    # Then the dashboard loads and the key left the address bar
    shown = page.evaluate(READ_PAGE)
    assert shown["href"] == f"{dashboard_server.url}/"
    assert shown["storedKey"] == dashboard_server.api_key
    assert shown["orders"]["value"] == str(len(dashboard_server.data.orders))


def search(page, text: str) -> dict:
    page.evaluate(
        f"""document.getElementById('search-input').value = {json.dumps(text)};
        document.getElementById('search-form').requestSubmit();"""
    )
    page.wait_for(
        "['ready', 'error'].includes(document.getElementById('panel-search').dataset.state)"
    )
    return page.evaluate(
        """(() => ({
          state: document.getElementById('panel-search').dataset.state,
          status: document.getElementById('search-status').textContent,
          scanned: document.getElementById('panel-search').dataset.scanned,
          results: [...document.querySelectorAll('#search-results button')]
              .map((b) => Number(b.dataset.clientId)),
          detail: Object.fromEntries([...document.querySelectorAll('#client-detail dd')]
              .map((d) => [d.dataset.key, d.dataset.value])),
          name: (document.querySelector('#client-detail h3') || {}).textContent || null,
        }))()"""
    )


def test_client_search_by_name_and_by_id(dashboard_server, browser_tab, screenshot_dir):
    # Given 2,500 clients (three pages of 1,000 on /clients) and the dashboard open
    data = dashboard_server.data
    page = browser_tab()
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")
    assert dashboard_server.json("/clients?limit=1000")["next_cursor"] is not None

    # When the user searches a name shared by two clients, typed in another case
    found = search(page, "hans MOLEMAN")

    # Then both are listed in /clients order, after scanning every page
    expected = [c["client_id"] for c in data.clients if c["client_name"] == "Hans Moleman"]
    assert len(expected) == 2
    assert found["results"] == expected
    assert found["scanned"] == str(len(data.clients))
    assert f"searched all {len(data.clients):,} clients" in found["status"]

    # When the user searches without accents for a client on the last page
    found = search(page, "zoe angstrom")
    zoe = next(c for c in data.clients if c["client_name"] == "Zoë Ångström")
    assert data.clients.index(zoe) >= 2000  # only reachable by scanning page 3

    # Then the single match is shown with the figures /clients/{id} gives
    api = dashboard_server.json(f"/clients/{zoe['client_id']}")
    assert found["results"] == [zoe["client_id"]]
    assert found["name"] == "Zoë Ångström"
    assert {k: dec(v) for k, v in found["detail"].items()} == {
        "client_id": api["client_id"],
        "orders": api["orders"],
        "units": api["units"],
        "liters": dec(api["liters"]),
        "total_spend": dec(api["total_spend"]),
        "top_product": api["top_product"]["product_id"],
    }
    assert dec(api["total_spend"]) == zoe["total_spend"]
    page.evaluate("document.getElementById('panel-search').scrollIntoView()")
    page.screenshot(screenshot_dir / "dashboard-search.png", full_page=False)

    # When the user searches by id, Then /clients/{id} is shown, top product included
    top = data.clients[0]
    found = search(page, str(top["client_id"]))
    assert found["name"] == top["client_name"]
    assert found["detail"]["top_product"] == str(top["top_product"]["product_id"])
    assert dec(found["detail"]["total_spend"]) == dec(
        dashboard_server.json(f"/clients/{top['client_id']}")["total_spend"]
    )

    # When the id does not exist, Then the page says so
    missing = max(c["client_id"] for c in data.clients) + 1
    found = search(page, str(missing))
    assert found["status"] == f"No client has id {missing}."
    assert found["name"] is None

    # When nothing matches a name, Then the page says so
    found = search(page, "no such person xyz")
    assert found["results"] == []
    assert found["status"].startswith("No client match")


def test_daily_sales_can_be_narrowed_to_a_date_range(dashboard_server, browser_tab):
    # Given the dashboard open
    page = browser_tab()
    open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")

    # When the user picks 2024-03-10 .. 2024-03-14 for daily sales
    page.evaluate(
        """document.getElementById('daily-from').value = '2024-03-10';
        document.getElementById('daily-to').value = '2024-03-14';
        document.getElementById('daily-form').requestSubmit();"""
    )
    page.wait_for(
        "document.getElementById('panel-daily').dataset.state === 'ready' && "
        "document.querySelectorAll('#panel-daily [data-role=chart] [data-value]').length === 5"
    )

    # Then the chart shows exactly those days, with the API's figures for that range
    api = dashboard_server.json("/sales/daily?from=2024-03-10&to=2024-03-14")["items"]
    marks = page.evaluate(READ_PAGE)["marks"]["panel-daily"]
    assert marks == [[r["pa_date"], r["revenue"]] for r in api]
    expected = [
        d for d in dashboard_server.data.daily if "2024-03-10" <= str(d["pa_date"]) <= "2024-03-14"
    ]
    assert [dec(r["revenue"]) for r in api] == [d["revenue"] for d in expected]

    # When the range is backwards, Then the panel says so instead of calling the API
    page.evaluate(
        """document.getElementById('daily-from').value = '2024-03-20';
        document.getElementById('daily-to').value = '2024-03-01';
        document.getElementById('daily-form').requestSubmit();"""
    )
    message = page.wait_for(
        "document.getElementById('panel-daily').dataset.state === 'error' && "
        "document.querySelector('#panel-daily [data-role=message]').textContent"
    )
    assert message == "The start date is after the end date."


def test_phone_width_has_no_sideways_scroll(dashboard_server, browser_tab, screenshot_dir):
    # Given a phone-sized viewport
    page = browser_tab(390, 844)

    # When the dashboard loads
    shown = open_dashboard(page, dashboard_server, f"#key={dashboard_server.api_key}")

    # Then it fits the width (charts re-laid out, no horizontal scrolling)
    assert shown["state"] == "ready"
    widths = page.evaluate(
        """({page: document.documentElement.scrollWidth, view: window.innerWidth,
            widest: Math.max(...[...document.querySelectorAll('svg.dc-chart')]
                .map((s) => s.getBoundingClientRect().right))})"""
    )
    assert widths["page"] <= widths["view"], widths
    assert widths["widest"] <= widths["view"], widths
    page.screenshot(screenshot_dir / "dashboard-phone.png")


STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def test_page_works_under_a_strict_content_security_policy(dashboard_server, browser_tab):
    # Given the page served by the app with its strict CSP (no inline script or style, same
    # origin only),
    # and a listener that records every violation the browser reports
    page = browser_tab()
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.__csp = []; document.addEventListener('securitypolicyviolation',"
            " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        },
    )
    # (the app sends the policy itself: the test checks the header, then relies on it)
    with urllib.request.urlopen(f"{dashboard_server.url}/", timeout=10) as resp:
        assert resp.headers["content-security-policy"] == STRICT_CSP
    navigated = page.post(
        "Page.navigate", {"url": f"{dashboard_server.url}/#key={dashboard_server.api_key}"}
    )

    # When it loads
    assert "errorText" not in navigated()
    page.wait_for(SETTLED)

    # Then it works as usual and the browser blocked nothing
    shown = page.evaluate(READ_PAGE)
    assert shown["state"] == "ready"
    assert len(shown["marks"]["panel-channel"]) == len(dashboard_server.data.channels)
    assert page.evaluate("window.__csp") == []
    assert page.exceptions() == []

    # And the policy was really in force: an inline script is blocked and reported
    page.evaluate(
        """const s = document.createElement('script');
        s.textContent = 'window.__inline = 1'; document.head.appendChild(s);"""
    )
    violations = page.wait_for("window.__csp.length && window.__csp")
    assert page.evaluate("window.__inline === undefined")
    assert violations == ["script-src-elem inline"]


@pytest.mark.slow
@pytest.mark.timeout(420)  # includes the session fixture's ingestion and dbt build
def test_whole_chain_from_the_orders_file_to_the_dashboard(
    pipeline_server, browser_tab, screenshot_dir
):
    # Given the test's orders written as an export CSV, landed by `python -m ingestion`,
    # built by `dbt build` and served by `python -m api` (see the pipeline_server fixture)
    data = pipeline_server.data

    # When a user opens the dashboard
    page = browser_tab(1280, 900)
    shown = open_dashboard(page, pipeline_server, f"#key={pipeline_server.api_key}")
    assert shown["state"] == "ready", shown
    assert page.exceptions() == []
    page.screenshot(screenshot_dir / "dashboard-pipeline.png")

    # Then the totals are the sums over the orders file, computed here in Decimal
    revenue = sum(o.amount for o in data.orders)
    liters = sum(o.liters for o in data.orders)
    assert shown["revenue"] == {"text": f"{revenue:,.2f}", "value": f"{revenue:.2f}"}
    assert shown["orders"]["value"] == str(len(data.orders))
    assert shown["liters"] == {"text": f"{liters:,.3f}", "value": f"{liters:.3f}"}

    # And every chart shows the figures that follow from the file
    marks = {k: [(label, dec(v)) for label, v in m] for k, m in shown["marks"].items()}
    assert dict(marks["panel-channel"]) == {c["channel"]: c["revenue"] for c in data.channels}
    assert dict(marks["panel-status"]) == {s["status"]: s["orders"] for s in data.statuses}
    assert marks["panel-daily"] == [(d["pa_date"].isoformat(), d["revenue"]) for d in data.daily]
    top_products = sorted(data.products, key=lambda p: (-p["revenue"], p["product_id"]))
    assert marks["panel-products"] == [
        (p["product_description"], p["revenue"]) for p in top_products[:PRODUCTS_IN_CHART]
    ]
    assert marks["panel-clients"] == [
        (c["client_name"], c["total_spend"]) for c in data.clients[:10]
    ]

    # And a client found by name carries its figures and top product through the whole chain
    zoe = next(c for c in data.clients if c["client_name"] == "Zoë Ångström")
    found = search(page, "ångström")
    assert found["results"] == [zoe["client_id"]]
    assert found["detail"]["top_product"] == str(zoe["top_product"]["product_id"])
    assert dec(found["detail"]["total_spend"]) == zoe["total_spend"]
    assert dec(found["detail"]["liters"]) == zoe["liters"]


def grouped(value: Decimal, places: int) -> str:
    """``value`` as the page writes a figure: thousands grouped, ``places`` decimals."""
    return f"{value.quantize(Decimal(1).scaleb(-places)):,}"


def test_figures_beyond_a_doubles_digits_are_shown_exactly(dashboard_server, browser_tab):
    # Given /sales/daily and /sales/by-channel answering the largest orders section 1 accepts
    # (price 9999999999.99 times 2147483647 units: 21 digits of spend, beyond the 15 of a
    # JavaScript number), the API's exact decimals as the JSON text it sends
    spend = Decimal("9999999999.99") * 2147483647
    liters = Decimal("9999999.999") * 2147483647
    days = [
        {"pa_date": f"2024-03-{d:02d}", "orders": 1, "units": 2147483647,
         "liters": liters + d, "revenue": spend + Decimal(d) / 100}
        for d in range(1, 9)
    ]  # fmt: skip
    channels = [
        {"channel": c, "orders": 3, "units": 3 * 2147483647, "liters": 3 * liters + n,
         "revenue": 3 * spend + Decimal(n) / 100}
        for n, c in enumerate(("Retail", "Online", "B2B"))
    ]  # fmt: skip

    def answer(rows: list[dict]) -> str:
        # numbers written as the API writes them: the decimal's own digits
        items = ", ".join(
            "{" + ", ".join(f'"{k}": ' + (f'"{v}"' if isinstance(v, str) else str(v))
                            for k, v in r.items()) + "}"
            for r in rows
        )  # fmt: skip
        return '{"items": [' + items + "]}"

    bodies = {"/sales/daily": answer(days), "/sales/by-channel": answer(channels)}
    page = browser_tab()
    page.call("Fetch.enable", {"patterns": [{"urlPattern": f"{dashboard_server.url}/sales/*"}]})
    page.goto(f"{dashboard_server.url}/#key={dashboard_server.api_key}")
    answered: set[str] = set()
    while answered != set(bodies):
        event = page.wait_event("Fetch.requestPaused")
        path = event["request"]["url"].removeprefix(dashboard_server.url).split("?")[0]
        if path in bodies:
            answered.add(path)
            page.call(
                "Fetch.fulfillRequest",
                {
                    "requestId": event["requestId"],
                    "responseCode": 200,
                    "responseHeaders": [{"name": "content-type", "value": "application/json"}],
                    "body": base64.b64encode(bodies[path].encode()).decode(),
                },
            )
        else:
            page.call("Fetch.continueRequest", {"requestId": event["requestId"]})
    # When the page has drawn them
    page.wait_for(SETTLED)
    shown = page.evaluate(READ_PAGE)
    cells = page.evaluate(
        """[...document.querySelectorAll('#panel-daily [data-role=table] tbody tr')].map((tr) =>
             Object.fromEntries([...tr.children].filter((c) => c.dataset.key)
               .map((c) => [c.dataset.key, c.textContent])))"""
    )
    # Then the totals are the exact sums, every digit (a double showed "1.0,737...e+.22")
    assert page.exceptions() == []
    revenue = sum(r["revenue"] for r in channels)
    assert shown["revenue"]["text"] == grouped(revenue, 2)
    assert shown["revenue"]["value"] == str(revenue)
    assert shown["liters"]["text"] == grouped(sum(r["liters"] for r in channels), 3)
    assert shown["orders"]["text"] == "9"
    # And so is each day's row, with its 7-day average to the cent, half up
    by_day = {c["pa_date"]: c for c in cells}
    for r in days:
        assert by_day[r["pa_date"]]["revenue"] == grouped(r["revenue"], 2)
        assert by_day[r["pa_date"]]["liters"] == grouped(r["liters"], 3)
        assert by_day[r["pa_date"]]["units"] == "2,147,483,647"
    average = seven_day_average(
        [{**r, "pa_date": dt.date.fromisoformat(r["pa_date"])} for r in days]
    )
    assert {d: by_day[d]["avg7"] for d in average} == {d: grouped(v, 2) for d, v in average.items()}
    # And the charts' text (tooltips, descriptions) says the same exact figures
    tips = page.evaluate(
        """[...document.querySelectorAll('#panel-channel [data-role=chart] [data-value] > title')]
             .map((t) => t.textContent)"""
    )
    assert tips == [f"{r['channel']}: {grouped(r['revenue'], 2)}" for r in channels]
    desc = page.evaluate("document.querySelector('#panel-daily svg.dc-chart desc').textContent")
    assert f"sum {grouped(sum(r['revenue'] for r in days), 2)}." in desc, desc


@pytest.mark.parametrize(
    ("value", "decimals", "units"),
    [
        ("1234.5", 2, 123450),
        (1.005, 2, 101),  # the decimal the API wrote, not the double's 1.00499...
        ("-0.005", 2, -1),  # half away from zero
        ("-2.5", 0, -3),
        ("-0.00", 2, 0),
        ("1.2345678901234567e2", 2, 12346),
        (1e21, 2, 10**23),
        ("107374182349892625852.36", 2, 10737418234989262585236),
        ("9007199254740993", 0, 9007199254740993),  # 2**53 + 1
        (None, 2, 0),
        ("", 2, 0),
    ],
)
def test_a_figure_is_read_as_the_exact_decimal_it_spells(
    dashboard_server, browser_tab, value, decimals, units
):
    # Given the page's figures module / When a figure is scaled to its last decimal
    page = browser_tab()
    page.goto(f"{dashboard_server.url}/")
    page.wait_for("window.DuffFigures !== undefined")
    got = page.evaluate(f"String(DuffFigures.scaled({json.dumps(value)}, {decimals}))")
    # Then it is the exact count of those units, rounded half away from zero
    assert got == str(units)
