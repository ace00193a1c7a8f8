"""Cheap requests stay cheap and answer clearly: huge id lists, huge offsets, deeply nested filters; and
every response carries the browser protections (nosniff, a CSP that only lets Airflow frame the pages,
no caching of API data)."""

from __future__ import annotations

import re

import pytest

from tests.reliability._support import mltrack_client, mounted_app, token

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def client(ui_airflow_home, seeded_pg):
    url, _ = seeded_pg
    with mltrack_client(url) as test_client:
        yield test_client


@pytest.fixture
def admin(client):
    return {"Authorization": f"Bearer {token()}"}


@pytest.mark.parametrize("path", ["/mltrack/api/compare", "/mltrack/compare", "/mltrack/api/compare/curves"])
def test_thousands_of_compare_ids_are_refused_without_echoing_them(client, admin, path):
    ids = ",".join(str(i) for i in range(1, 12_001))
    response = client.get(f"{path}?ids={ids}", headers=admin)
    assert response.status_code == 422
    assert len(response.content) < 4000, len(response.content)
    if path.startswith("/mltrack/api/"):
        assert response.json()["field"] == "ids"
    huge = client.get(f"{path}?ids=1,{'9' * 5000}", headers=admin)
    assert huge.status_code == 422 and len(huge.content) < 4000


@pytest.mark.parametrize(
    "query",
    [
        {"offset": "9223372036854775800"},
        {"offset": "9223372036854775800", "sort": "test/accuracy"},
        {"offset": "1" * 5000},
        {"param": "lr=" + "[" * 5000},
        {"param": "lr=" + "[" * 5000 + "]" * 5000},
        {"param": ["lr=0.1"] * 1000},
        {"param": "lr=" + "1" * 5000},
    ],
    ids=[
        "offset",
        "offset-sorted",
        "offset-digits",
        "param-open",
        "param-nested",
        "param-many",
        "param-long",
    ],
)
def test_absurd_filters_are_a_422_naming_the_field(client, admin, query):
    api = client.get("/mltrack/api/experiments", params=query, headers=admin)
    assert api.status_code == 422, api.text[:300]
    assert len(api.content) < 4000
    field = next(iter(query))
    body = api.json()
    named = body.get("field") or ".".join(str(p) for p in body["detail"][0]["loc"])
    assert field in named
    page = client.get("/mltrack/experiments", params=query, headers=admin)
    assert page.status_code == 422 and "Invalid request" in page.text


def test_every_route_sends_browser_protections(client, admin):
    from fastapi.routing import APIRoute

    app = mounted_app(client)
    paths = [r.path for r in app.routes if isinstance(r, APIRoute)]
    values = {"experiment_id": "1", "dataset_id": "1", "model_id": "1", "path": "mltrack.css"}
    checked = 0
    for path in paths:
        url = "/mltrack" + re.sub(r"\{(\w+)(:path)?\}", lambda m: values[m.group(1)], path)
        for headers in (admin, {}):  # signed in, and the 401
            response = client.get(url, headers=headers, follow_redirects=False)
            assert response.headers.get("x-content-type-options") == "nosniff", url
            csp = response.headers.get("content-security-policy", "")
            assert "frame-ancestors 'self'" in csp and "script-src 'self'" in csp, url
            if not path.startswith("/static/"):  # static files may be cached (their own header)
                assert response.headers.get("cache-control") == "no-store", (url, response.status_code)
            checked += 1
    assert checked >= 2 * 25


def test_pages_run_no_inline_script(client, admin, seeded_pg):
    _, ids = seeded_pg
    for url in (
        f"/mltrack/experiments/{ids['baseline']}",
        f"/mltrack/compare?ids={ids['baseline']},{ids['tuned']}",
        "/mltrack/models",
    ):
        html = client.get(url, headers=admin).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
        assert not re.search(r"\son[a-z]+=", html), url
