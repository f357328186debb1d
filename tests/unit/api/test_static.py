"""The dashboard's files: right types, and nothing outside api/static/."""

import pytest

from api.app import App, Request
from api.settings import Settings


class NoData:
    def snapshot(self):
        return None

    def close(self):
        pass


@pytest.fixture
def static_app(tmp_path):
    root = tmp_path / "static"
    (root / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Duff</title>")
    (root / "app.js").write_text("console.log(1)")
    (root / "style.css").write_text("body{}")
    (root / "lib" / "chart.js").write_text("/* lib */")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    return App(
        Settings(api_key="k", backend="local", lake=str(tmp_path)), NoData(), static_dir=root
    )


def get(app, path):
    return app.handle(Request("GET", path))


def test_index_and_files_with_content_types(static_app):
    # Given the dashboard files / When asked without a key / Then served with their types
    index = get(static_app, "/")
    assert index.status == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.body.startswith(b"<!doctype html>")
    assert get(static_app, "/static/app.js").headers["content-type"].startswith("text/javascript")
    assert get(static_app, "/static/style.css").headers["content-type"].startswith("text/css")
    assert get(static_app, "/static/lib/chart.js").status == 200
    assert get(static_app, "/static/app.js").headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/static/../outside.txt",
        "/static/lib/../../outside.txt",
        "/static/.env",
        "/static/link.txt",
        "/static//etc/passwd",
        "/static/..%2Foutside.txt",
        "/static/lib",
        "/static/missing.js",
        "/static/a\\..\\outside.txt",
    ],
)
def test_no_traversal_hidden_files_or_symlinks_out(static_app, path):
    resp = get(static_app, path)
    assert resp.status == 404
    assert b"outside" not in resp.body and b"SECRET" not in resp.body


def test_real_dashboard_index_is_served():
    # The dashboard teammate's page, served by the real app with its default static dir
    app = App(Settings(api_key="k", backend="local", lake="/nonexistent"), NoData())
    resp = get(app, "/")
    assert resp.status == 200
    assert b"<html" in resp.body.lower()


def test_page_and_files_carry_a_strict_content_security_policy(static_app):
    # Given the dashboard / When its page and a script are fetched
    for path in ("/", "/static/app.js"):
        policy = get(static_app, path).headers["content-security-policy"]
        # Then only the app's own scripts, styles and API may be used, and no framing
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
