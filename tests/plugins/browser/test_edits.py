"""Editing tags and notes in real Chromium, inside the real Airflow UI (the plugin page's iframe): the admin
adds and removes tags and edits the notes without a reload, sees them after one, and the "Updated" time
moves; a viewer sees tags and notes read-only (no edit control at all), and a PATCH sent from the viewer's
own page with the viewer's cookie is refused with 403."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from tests.plugins.browser.conftest import STEP_TIMEOUT_MS, publish, shot, sign_in
from tests.plugins.conftest import DEMO_DAG, DEMO_RUN

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

OLD_TIME = "2020-01-02 03:04:05 UTC"


@pytest.fixture
def fresh(browser_pg):
    """An experiment of the demo DAG only these tests touch, last updated long ago: (store, id, name)."""
    from airflow_mltrack.store import TrackingStore

    url, ids = browser_pg
    store = TrackingStore.from_url(url)
    name = f"edit-demo-{uuid.uuid4().hex[:6]}"
    exp = store.create_experiment(
        "vision",
        name,
        ids["v1"],
        ids["clean"],
        {"learning_rate": 0.05},
        dag_id=DEMO_DAG,
        run_id=DEMO_RUN,
        task_id=f"train_{name}",
        tags=["draft"],
        notes="first notes",
    )
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE experiments SET updated_at = '2020-01-02 03:04:05+00' WHERE experiment_id = :e"),
            {"e": exp},
        )
    return store, exp, name


def open_in_airflow(page, base: str, name: str):
    """The experiment ``name`` opened from the plugin page's experiment list, inside Airflow's UI."""
    from playwright.sync_api import expect

    page.goto(f"{base}/plugin/mltrack")
    frame = page.frame_locator("iframe").first
    frame.get_by_role("link", name=name, exact=True).first.click()
    expect(frame.locator("h1")).to_contain_text(name)
    return frame


def test_admin_edits_tags_and_notes_inside_airflow(airflow_server, browser, fresh):
    from playwright.sync_api import expect

    from airflow_mltrack.plugins.rendering import fmt_dt

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    store, exp, name = fresh
    context, page = sign_in(browser, airflow_server, "admin")
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    try:
        frame = open_in_airflow(page, airflow_server, name)
        updated = frame.locator(".edit-updated time")
        expect(updated).to_have_text(OLD_TIME)
        frame.locator("body").evaluate("() => { window.mltrackNoReload = 42; }")  # gone if the page reloads

        # A bad tag (only an invisible character) is refused inline by the server.
        frame.get_by_label("New tag").fill("\u200b")
        frame.get_by_role("button", name="Add tag").click()
        expect(frame.locator("#edit-tag-form + .edit-error")).to_contain_text("add_tags")

        # Add two tags, remove the old one: no reload (the URL and the heading stay; the list redraws).
        tag_input = frame.get_by_label("New tag")
        for tag in ("reviewed", "baseline-candidate"):
            tag_input.fill(tag)
            frame.get_by_role("button", name="Add tag").click()
            expect(frame.locator("#edit-tags a.tag", has_text=tag)).to_be_visible()
            expect(tag_input).to_have_value("")
        expect(frame.locator("#edit-tag-form + .edit-error")).to_be_hidden()  # cleared by the next success
        frame.get_by_role("button", name="Remove tag draft").click()
        expect(frame.locator("#edit-tags a.tag", has_text="draft")).to_have_count(0)

        # Notes: Edit, type, Save.
        frame.get_by_role("button", name="Edit notes").click()
        frame.get_by_label("Notes", exact=True).fill("Looks good.\nShip it after the canary.")
        frame.get_by_role("button", name="Save").click()
        expect(frame.locator("#edit-notes .notes-text")).to_have_text(
            "Looks good.\nShip it after the canary."
        )
        expect(frame.locator("#edit-notes-form")).to_be_hidden()

        row = store.get_experiment(exp)
        assert row["tags"] == ["baseline-candidate", "reviewed"]
        assert row["notes"] == "Looks good.\nShip it after the canary."
        expect(updated).to_have_text(fmt_dt(row["updated_at"]))  # refreshed from the edit's answer
        assert fmt_dt(row["updated_at"]) != OLD_TIME
        assert frame.locator("body").evaluate("() => window.mltrackNoReload") == 42
        publish(shot(page, "edit"))

        # After a reload of the whole Airflow page, the edits are there.
        page.reload()
        frame = open_in_airflow(page, airflow_server, name)
        expect(frame.locator("#edit-tags a.tag")).to_have_text(["baseline-candidate", "reviewed"])
        expect(frame.locator("#edit-notes .notes-text")).to_have_text(
            "Looks good.\nShip it after the canary."
        )
        expect(frame.locator(".edit-updated time")).to_have_text(fmt_dt(row["updated_at"]))
    except Exception:
        shot(page, "edit-failure")
        raise
    finally:
        context.close()
    assert not [e for e in console_errors if "mltrack" in e.lower()], console_errors


def test_viewer_sees_no_edit_controls_and_a_patch_is_refused(airflow_server, browser, fresh):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    store, exp, name = fresh
    context, page = sign_in(browser, airflow_server, "viewer")
    try:
        frame = open_in_airflow(page, airflow_server, name)
        expect(frame.locator("a.tag", has_text="draft")).to_be_visible()
        expect(frame.get_by_text("first notes")).to_be_visible()
        for control in ("#edit-tags", "#edit-tag-form", "#edit-notes-form", ".tag-remove", "textarea"):
            expect(frame.locator(control)).to_have_count(0)
        expect(frame.get_by_role("button", name="Edit notes")).to_have_count(0)
        expect(frame.locator("script[src$='edit.js']")).to_have_count(0)
        shot(page, "edit-viewer")

        # The viewer's own page, cookie and origin: the API refuses the edit.
        status, detail = frame.locator("body").evaluate(
            """async (_body, url) => {
                const r = await fetch(url, {method: "PATCH", credentials: "same-origin",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({notes: "edited by a viewer", add_tags: ["vandal"]})});
                return [r.status, await r.text()];
            }""",
            f"{airflow_server}/mltrack/api/experiments/{exp}",
        )
        assert status == 403, detail
        assert "not edit" in json.loads(detail)["detail"]
        direct = page.request.patch(
            f"{airflow_server}/mltrack/api/experiments/{exp}", data={"notes": "edited by a viewer"}
        )
        assert direct.status == 403
    except Exception:
        shot(page, "edit-viewer-failure")
        raise
    finally:
        context.close()
    row = store.get_experiment(exp)
    assert (row["notes"], row["tags"]) == ("first notes", ["draft"])
