"""PATCH /mltrack/api/experiments/{id} through the real app and SimpleAuthManager: who may edit tags and notes
(admin: yes; viewer: 403; a DAG the user may not read: 404), bad bodies (422), the CSRF guards (415 for a
body that is not JSON, 403 for a foreign Origin), the optimistic check (409), and the page's edit controls
rendered for editors only."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from airflow_mltrack.plugins.api_edits import origin_of
from tests.plugins.conftest import DEMO_DAG, DEMO_RUN, HIDDEN_DAG
from tests.reliability._support import mltrack_client, token

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def site(ui_airflow_home, seeded_pg):
    url, ids = seeded_pg
    with mltrack_client(url) as client:
        yield client, url, ids


@pytest.fixture(scope="module")
def admin(site):
    return {"Authorization": f"Bearer {token('admin', 'admin')}"}


@pytest.fixture(scope="module")
def viewer(site):
    return {"Authorization": f"Bearer {token('viewer', 'viewer')}"}


def experiment(site, dag_id: str | None = DEMO_DAG, **fields) -> int:
    """A fresh experiment of the seeded store (so each test edits its own)."""
    from airflow_mltrack.store import TrackingStore

    _, url, ids = site
    link = {"dag_id": dag_id, "run_id": DEMO_RUN, "task_id": f"t_{uuid.uuid4().hex[:8]}"} if dag_id else {}
    store = TrackingStore.from_url(url)
    return store.create_experiment(
        "vision", f"e-{uuid.uuid4().hex[:6]}", ids["v1"], ids["clean"], **link, **fields
    )


def patch(client, exp: int, headers: dict, body: object = None, **kwargs):
    return client.patch(f"/mltrack/api/experiments/{exp}", headers=headers, json=body, **kwargs)


def test_admin_edits_tags_and_notes(site, admin):
    client = site[0]
    exp = experiment(site, notes="old notes", tags=["draft"])
    before = client.get(f"/mltrack/api/experiments/{exp}", headers=admin).json()["experiment"]
    answer = patch(
        client, exp, admin, {"notes": "reviewed: ok", "add_tags": ["reviewed"], "remove_tags": ["draft"]}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["experiment_id"], body["notes"], body["tags"]) == (exp, "reviewed: ok", ["reviewed"])
    assert dt.datetime.fromisoformat(body["updated_at"]) > dt.datetime.fromisoformat(before["updated_at"])
    after = client.get(f"/mltrack/api/experiments/{exp}", headers=admin).json()["experiment"]
    assert (after["notes"], after["tags"], after["updated_at"]) == (
        body["notes"],
        body["tags"],
        body["updated_at"],
    )
    cleared = patch(client, exp, admin, {"notes": None}).json()  # null clears; absent tags: kept
    assert (cleared["notes"], cleared["tags"]) == (None, ["reviewed"])


def test_viewer_reads_but_may_not_edit(site, viewer):
    client = site[0]
    exp = experiment(site, notes="kept")
    assert client.get(f"/mltrack/api/experiments/{exp}", headers=viewer).status_code == 200
    answer = patch(client, exp, viewer, {"notes": "vandalised", "add_tags": ["x"]})
    assert answer.status_code == 403
    assert "not edit" in answer.json()["detail"] and DEMO_DAG in answer.json()["detail"]
    shown = client.get(f"/mltrack/api/experiments/{exp}", headers=viewer).json()["experiment"]
    assert (shown["notes"], shown["tags"]) == ("kept", [])


def test_permission_asked_is_the_dag_edit_one(site, admin, monkeypatch):
    """PUT on the experiment's DAG; for an experiment written outside Airflow, PUT on DAGs in general."""
    from airflow.api_fastapi.app import get_auth_manager

    client = site[0]
    manager = get_auth_manager()
    original = manager.is_authorized_dag
    asked: list[tuple[str, str | None]] = []

    def is_authorized_dag(*, method, user, access_entity=None, details=None):
        asked.append((method, "<none>" if details is None else details.id))
        return original(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", is_authorized_dag)
    linked, unlinked = experiment(site), experiment(site, dag_id=None)
    assert patch(client, linked, admin, {"add_tags": ["a"]}).status_code == 200
    assert ("PUT", DEMO_DAG) in asked
    asked.clear()
    assert patch(client, unlinked, admin, {"add_tags": ["a"]}).status_code == 200
    assert [a for a in asked if a[0] == "PUT"] == [("PUT", "<none>")]


def test_a_user_who_may_not_edit_dags_in_general_may_not_edit_unlinked_rows(site, viewer):
    client = site[0]
    unlinked = experiment(site, dag_id=None)
    assert patch(client, unlinked, viewer, {"add_tags": ["a"]}).status_code == 403


def test_a_hidden_dag_answers_the_same_404_as_an_unknown_id(site, admin, monkeypatch):
    from airflow.api_fastapi.app import get_auth_manager

    client = site[0]
    manager = get_auth_manager()
    original = manager.is_authorized_dag

    def is_authorized_dag(*, method, user, access_entity=None, details=None):
        if details is not None and details.id == HIDDEN_DAG:
            return False  # neither read nor edit
        return original(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", is_authorized_dag)
    hidden = experiment(site, dag_id=HIDDEN_DAG, notes="secret")
    answer = patch(client, hidden, admin, {"notes": "leaked?"})
    unknown = patch(client, 2_000_000_000, admin, {"notes": "leaked?"})
    assert answer.status_code == unknown.status_code == 404
    assert answer.json()["reason"] == unknown.json()["reason"] and answer.json()["field"] == "experiment_id"
    monkeypatch.setattr(manager, "is_authorized_dag", original)
    assert (
        client.get(f"/mltrack/api/experiments/{hidden}", headers=admin).json()["experiment"]["notes"]
        == "secret"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"note": "typo"}, None),  # unknown field
        ({"add_tags": "not-a-list"}, None),
        ({"add_tags": [1, 2]}, None),
        ({"notes": 5}, None),
        ({"add_tags": ["t" * 251]}, "add_tags"),
        ({"add_tags": ["ok", "   "]}, "add_tags"),
        ({"notes": "n" * 70_000}, "notes"),
        ({}, "edit"),
        ({"add_tags": ["a"], "remove_tags": ["a"]}, "remove_tags"),
        ([1, 2], None),
    ],
)
def test_a_bad_body_is_a_422_and_writes_nothing(site, admin, body, field):
    client = site[0]
    exp = experiment(site, notes="original")
    answer = patch(client, exp, admin, body)
    assert answer.status_code == 422, answer.text
    if field is not None:
        assert answer.json()["field"] == field
    shown = client.get(f"/mltrack/api/experiments/{exp}", headers=admin).json()["experiment"]
    assert (shown["notes"], shown["tags"]) == ("original", [])


def test_a_body_that_is_not_json_is_a_415(site, admin):
    client = site[0]
    exp = experiment(site, notes="original")
    url = f"/mltrack/api/experiments/{exp}"
    as_text = client.patch(url, headers={**admin, "Content-Type": "text/plain"}, content='{"notes": "csrf"}')
    as_form = client.patch(url, headers=admin, data={"notes": "csrf"})
    assert as_text.status_code == as_form.status_code == 415
    assert "application/json" in as_text.json()["detail"]
    assert client.get(url, headers=admin).json()["experiment"]["notes"] == "original"


def test_a_foreign_origin_is_refused(site, admin):
    client = site[0]
    exp = experiment(site, notes="original")
    for origin in ("https://evil.example", "null", "http://testserver.evil.example"):
        answer = patch(client, exp, {**admin, "Origin": origin}, {"notes": "csrf"})
        assert answer.status_code == 403, origin
        assert "Origin" in answer.json()["detail"]
    assert (
        client.get(f"/mltrack/api/experiments/{exp}", headers=admin).json()["experiment"]["notes"]
        == "original"
    )
    same = patch(client, exp, {**admin, "Origin": "http://testserver"}, {"notes": "from the UI"})
    assert same.status_code == 200 and same.json()["notes"] == "from the UI"


def test_origin_of():
    assert origin_of("HTTP://Example.com:80/path") == "http://example.com"
    assert origin_of("https://example.com:443") == "https://example.com"
    assert origin_of("http://127.0.0.1:8080/mltrack/api") == "http://127.0.0.1:8080"
    assert origin_of("null") is None and origin_of("ftp://example.com") is None


def test_a_stale_expected_updated_at_is_a_409(site, admin):
    client = site[0]
    exp = experiment(site, notes="v1")
    seen = client.get(f"/mltrack/api/experiments/{exp}", headers=admin).json()["experiment"]["updated_at"]
    first = patch(client, exp, admin, {"notes": "v2", "expected_updated_at": seen})
    assert first.status_code == 200
    stale = patch(client, exp, admin, {"notes": "v3", "expected_updated_at": seen})
    assert stale.status_code == 409 and stale.json()["field"] == "expected_updated_at"
    assert client.get(f"/mltrack/api/experiments/{exp}", headers=admin).json()["experiment"]["notes"] == "v2"


def test_anonymous_is_401(site):
    exp = experiment(site)
    assert patch(site[0], exp, {}, {"notes": "x"}).status_code == 401


def test_the_page_renders_edit_controls_for_editors_only(site, admin, viewer):
    client = site[0]
    exp = experiment(site, notes="line one\nline <two>", tags=["shown-tag"])
    editor_page = client.get(f"/mltrack/experiments/{exp}", headers=admin).text
    assert 'id="edit-tag-form"' in editor_page and 'id="edit-notes-form"' in editor_page
    assert 'class="tag-remove" data-tag="shown-tag"' in editor_page
    assert "static/edit.js" in editor_page
    reader_page = client.get(f"/mltrack/experiments/{exp}", headers=viewer).text
    assert "shown-tag" in reader_page and "line &lt;two&gt;" in reader_page
    for control in ("edit-tag-form", "edit-notes-form", "tag-remove", "edit.js", "<textarea", "Edit notes"):
        assert control not in reader_page, control


def test_an_editor_sees_empty_tags_and_notes_rows_to_fill(site, admin, viewer):
    client = site[0]
    exp = experiment(site)
    editor_page = client.get(f"/mltrack/experiments/{exp}", headers=admin).text
    assert "<th>Tags</th>" in editor_page and "<th>Notes</th>" in editor_page
    reader_page = client.get(f"/mltrack/experiments/{exp}", headers=viewer).text
    assert "<th>Tags</th>" not in reader_page and "<th>Notes</th>" not in reader_page
