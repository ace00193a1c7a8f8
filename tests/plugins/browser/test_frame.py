"""Inside the real Airflow UI (the plugin page is a sandboxed iframe): links to Airflow pages change the top
window, deep links reopen the framed page (the "ML Tracking" page and the DAG-run tab), the Experiment extra
link's URL opens the experiment in the task's tab, the lineage graph is drawn and bounded, and a 10,000
character description does not widen the page.

Rows this module needs are written in their own project (``frame-tests``), outside the demo DAG, and
removed after the module (they would push the seeded experiments off the first page of the list that later
modules click in); the seeded ones are only read.
"""

from __future__ import annotations

import re

import pytest

from tests.plugins.browser.conftest import STEP_TIMEOUT_MS, publish, remove_project, shot, sign_in
from tests.plugins.conftest import DEMO_DAG, DEMO_RUN

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

PROJECT = "frame-tests"
BIG = 60  # experiments on one dataset: more than a lineage layer shows (25)


@pytest.fixture(autouse=True)
def _patient_expect():
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)  # a cold API server is slow on its first pages


@pytest.fixture(scope="module")
def frame_rows(browser_pg):
    """A dataset with BIG experiments (lineage bounds) and one experiment with long values (layout)."""
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.engine import dispose_engines

    url, _ = browser_pg
    store = TrackingStore.from_url(url)
    raw = store.register_dataset(PROJECT, "frame-raw", "Tabular")
    wide = store.register_dataset(PROJECT, "frame-wide", "Tabular", version="sgd-539ac701")
    store.record_preprocessing_job(PROJECT, "widen", raw, wide)
    model = store.register_model(PROJECT, "frame-net", "PyTorch", version="sgd-539ac701")
    for i in range(BIG):
        store.create_experiment(PROJECT, f"frame-run-{i}", model, wide, {"i": i})
    long = store.create_experiment(
        PROJECT,
        "frame-long",
        model,
        raw,
        {"optimizer": {"name": "adam", "betas": [0.9, 0.999], "schedule": {"kind": "cosine", "warmup": 5}}},
        description="x" * 10_000,
    )
    store.deploy_model(PROJECT, "frame-endpoint", model, 100)
    dispose_engines()
    yield {"raw": raw, "wide": wide, "model": model, "long": long}
    remove_project(store, PROJECT)
    dispose_engines()


def _frame_ready(page, text):
    from playwright.sync_api import expect

    frame = page.frame_locator("iframe").first
    expect(frame.locator("h1")).to_contain_text(text)
    return frame


def test_dag_run_link_changes_the_top_window(airflow_server, browser, seeded_pg):
    from playwright.sync_api import expect

    base, ids = airflow_server, seeded_pg[1]
    context, page = sign_in(browser, base)
    try:
        page.goto(f"{base}/plugin/mltrack/mltrack/experiments/{ids['baseline']}")
        frame = _frame_ready(page, "baseline")
        frame.get_by_role("link", name=DEMO_RUN).click()
        expect(page).to_have_url(f"{base}/dags/{DEMO_DAG}/runs/{DEMO_RUN}")
        expect(page.locator("iframe")).to_have_count(0)  # Airflow's own DAG run page, not the plugin frame
        expect(page.get_by_text(DEMO_RUN).first).to_be_visible()
    finally:
        context.close()


def test_deep_links_reopen_the_framed_page(airflow_server, browser, seeded_pg):
    from playwright.sync_api import expect

    base, ids = airflow_server, seeded_pg[1]
    context, page = sign_in(browser, base)
    try:
        # The "ML Tracking" page: navigate inside the frame, then open the address bar's URL anew.
        page.get_by_role("link", name="ML Tracking").first.click()
        frame = _frame_ready(page, "Experiments")
        frame.get_by_role("link", name="tuned", exact=True).click()
        _frame_ready(page, "tuned")
        expect(page).to_have_url(f"{base}/plugin/mltrack/mltrack/experiments/{ids['tuned']}")
        reopened = context.new_page()
        reopened.goto(page.url)
        _frame_ready(reopened, "tuned")

        # The DAG-run tab keeps the frame's page as ?mltrack=...
        page.goto(f"{base}/dags/{DEMO_DAG}/runs/{DEMO_RUN}/plugin/mltrack-run")
        frame = _frame_ready(page, "Experiments of")
        frame.get_by_role("link", name="baseline", exact=True).click()
        _frame_ready(page, "baseline")
        expect(page).to_have_url(
            f"{base}/dags/{DEMO_DAG}/runs/{DEMO_RUN}/plugin/mltrack-run?mltrack=experiments/{ids['baseline']}"
        )
        reopened.goto(page.url)
        _frame_ready(reopened, "baseline")
        assert f"/dags/{DEMO_DAG}/runs/{DEMO_RUN}/plugin/mltrack-run" in reopened.url

        # "Copy link" gives a URL that reopens the page inside Airflow.
        frame = page.frame_locator("iframe").first
        frame.locator("#copy-link").click()
        copied = frame.locator("#copy-link-url").input_value()
        assert copied.startswith(base + "/") and f"mltrack=experiments/{ids['baseline']}" in copied
        reopened.goto(copied)
        _frame_ready(reopened, "baseline")

        # Only pages of the app: a scheme, another host or a path outside it opens the default page.
        for bad in ("javascript:alert(1)", "//evil.example/x", "../dags", "api/experiments"):
            reopened.goto(f"{base}/plugin/mltrack?mltrack={bad}")
            _frame_ready(reopened, "Experiments")
            assert all(f.url.startswith(base) for f in reopened.frames), bad
    finally:
        context.close()


def test_experiment_extra_link_opens_the_experiment_in_the_task_tab(
    airflow_server, browser, seeded_pg, monkeypatch
):
    from airflow.models.taskinstancekey import TaskInstanceKey

    from airflow_mltrack.sdk.links import experiment_url

    base, ids = airflow_server, seeded_pg[1]
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", base)
    # the train_tuned task's link to the baseline experiment (as for a task that logged to another's)
    key = TaskInstanceKey(dag_id=DEMO_DAG, task_id="train_tuned", run_id=DEMO_RUN, map_index=-1)
    link = experiment_url(ids["baseline"], key)
    assert link.startswith(f"{base}/dags/{DEMO_DAG}/runs/{DEMO_RUN}/tasks/train_tuned/plugin/mltrack-task?")
    context, page = sign_in(browser, base)
    try:
        page.goto(link)
        _frame_ready(page, "baseline")
        assert "/tasks/train_tuned/plugin/mltrack-task" in page.url  # still the task instance's tab
    finally:
        context.close()


def test_lineage_graph_is_drawn_and_bounded(airflow_server, browser, frame_rows):
    from playwright.sync_api import expect

    base = airflow_server
    context, page = sign_in(browser, base)
    try:
        page.goto(f"{base}/plugin/mltrack/mltrack/datasets/{frame_rows['raw']}/lineage")
        frame = _frame_ready(page, "frame-raw")
        expect(frame.locator("#lineage-graph")).to_have_attribute("data-drawn", re.compile(r"^\d+$"))
        nodes = frame.locator("#lineage-graph svg .lineage-node")
        expect(nodes.first).to_be_visible()
        count = nodes.count()
        assert 6 <= count <= 25 + 6, count  # dataset, job, dataset, <= 25 experiments, model, endpoint, more
        experiments = frame.locator("#lineage-graph svg .lineage-node.kind-experiment").count()
        assert experiments == 25
        more = frame.locator("#lineage-graph svg .lineage-node.kind-more")
        expect(more).to_have_count(1)
        expect(more).to_contain_text(f"+{BIG + 1 - 25} more experiments")
        expect(frame.locator(".lineage-graph svg .edge").first).to_be_attached()
        box = frame.locator("#lineage-graph svg").bounding_box()
        assert box and box["height"] <= 700  # bounded on the page whatever the graph's size
        expect(frame.locator(".lineage-list")).to_contain_text("sgd-539ac701")
        assert "vsgd" not in frame.locator("body").inner_text()
        # pan and zoom move the view box
        before = frame.locator("#lineage-graph svg").get_attribute("viewBox")
        frame.get_by_role("button", name="+").click()
        assert frame.locator("#lineage-graph svg").get_attribute("viewBox") != before
        frame.get_by_role("button", name="Fit").click()
        assert frame.locator("#lineage-graph svg").get_attribute("viewBox") == before
        publish(shot(page, "lineage"))
        # a node opens its page in the frame
        frame.locator("#lineage-graph svg .lineage-node.kind-model").first.click()
        _frame_ready(page, "frame-net")
        expect(frame.locator("#lineage-graph svg .lineage-node.kind-endpoint")).to_have_count(1)
    finally:
        context.close()


def test_long_description_and_nested_hyperparameters_keep_the_page_width(airflow_server, browser, frame_rows):
    from playwright.sync_api import expect

    base = airflow_server
    context, page = sign_in(browser, base, viewport=(1280, 900))
    try:
        page.goto(f"{base}/plugin/mltrack/mltrack/experiments/{frame_rows['long']}")
        frame = _frame_ready(page, "frame-long")
        expect(frame.locator("details.json").first).to_be_visible()
        expect(frame.locator("details.json summary").first).to_have_text("{3 keys}")
        expect(frame.locator(".json-key", has_text="betas")).to_be_attached()
        expect(frame.locator("details.longtext")).to_contain_text("show all (10000 characters)")
        [inner] = [f for f in page.frames if "/mltrack/experiments/" in f.url and f != page.main_frame]

        def fits() -> bool:
            return inner.evaluate(
                "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            )

        assert fits()
        publish(shot(page, "experiment-layout"))
        frame.locator("details.longtext summary").click()  # the whole 10,000 characters, wrapped
        expect(frame.locator("details.longtext .longtext-full")).to_be_visible()
        assert fits()
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        expect(frame.locator("time").first).to_have_attribute(
            "title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
        )
    finally:
        context.close()
