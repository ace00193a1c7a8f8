"""The runs table in real Chromium INSIDE the Airflow UI (the plugin iframe): the filter box (matching rows;
a bad expression shown inline with its position), the column chooser (cells appear, the frame's URL keeps
``columns=``), sortable headers (row order changes, and flips on a second click), select-all for compare.

The rows are this module's own project (``runs-browser``), written through the store the server reads.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.plugins.browser.conftest import STEP_TIMEOUT_MS, publish, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

PROJECT = "runs-browser"
RUNS = {"rb-alpha": (0.1, 0.70), "rb-beta": (0.01, 0.90), "rb-gamma": (0.001, 0.80)}  # name: (lr, accuracy)


@pytest.fixture(scope="module")
def runs(browser_pg):
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(browser_pg[0])
    model = store.register_model(PROJECT, "net", "PyTorch", version="1")
    data = store.register_dataset(PROJECT, "table", "Tabular")
    ids = {}
    for name, (lr, accuracy) in RUNS.items():
        ids[name] = store.create_experiment(PROJECT, name, model, data, {"lr": lr, "optimizer": "adam"})
        store.set_status(ids[name], "Running")
        store.log_metrics(ids[name], {"accuracy": accuracy}, evaluation_set="test")
        store.set_status(ids[name], "Completed")
    return ids


def _frame_url(page) -> str:
    return next(f.url for f in page.frames if "/mltrack/experiments" in f.url)


def _names(frame) -> list[str]:
    return frame.locator("#runs-table tbody td.name").all_inner_texts()


def test_runs_table_inside_airflow(airflow_server, browser, runs):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    context, page = sign_in(browser, airflow_server)
    try:
        page.goto(f"{airflow_server}/plugin/mltrack")
        frame = page.frame_locator("iframe").first
        expect(frame.locator("h1")).to_have_text("Experiments")
        search = frame.locator("#search")
        assert "metrics." in (search.get_attribute("placeholder") or "")

        # A search expression: only the matching rows.
        search.fill(f"attributes.project = '{PROJECT}' and metrics.test.accuracy > 0.75")
        search.press("Enter")
        expect(frame.locator("#runs-count")).to_contain_text("of 2")
        assert sorted(_names(frame)) == ["rb-beta", "rb-gamma"]

        # A bad one: the error under the box, with a caret under the token; still the experiments page.
        bad = f"attributes.project = '{PROJECT}' andd metrics.test.accuracy > 0"
        frame.locator("#search").fill(bad)
        frame.locator("#search").press("Enter")
        error = frame.locator("#search-error")
        expect(error).to_be_visible()
        position = bad.index("andd")
        expect(error).to_contain_text(f"position {position}")
        expect(error.locator("mark")).to_have_text(" " * position + "^^^^")
        expect(frame.locator("h1")).to_have_text("Experiments")
        expect(frame.locator("#search")).to_have_attribute("aria-invalid", "true")
        shot(page, "runs-error")

        # The column chooser: a metric and a param column; the frame's URL keeps them.
        frame.locator("#search").fill(f"attributes.project = '{PROJECT}'")
        frame.locator("#search").press("Enter")
        expect(frame.locator("#runs-count")).to_contain_text("of 3")
        frame.locator("#column-chooser summary").click()
        frame.locator("#column-chooser input[value='metrics.test.accuracy']").check()
        frame.locator("#column-chooser input[value='params.lr']").check()
        frame.get_by_role("button", name="Show columns").click()
        header = frame.locator("#runs-table thead th[data-key='metrics.test.accuracy']")
        expect(header).to_be_visible()
        expect(frame.locator("#runs-table thead th[data-key='params.lr']")).to_be_visible()
        query = parse_qs(urlsplit(_frame_url(page)).query)
        assert query["columns"] == ["metrics.test.accuracy", "params.lr"]
        cells = {
            row.locator("td.name").inner_text(): row.locator("td.metric").inner_text()
            for row in frame.locator("#runs-table tbody tr").all()
        }
        assert cells == {"rb-alpha": "0.7", "rb-beta": "0.9", "rb-gamma": "0.8"}
        beta = frame.locator(f"#runs-table tbody tr[data-id='{runs['rb-beta']}'] td.param")
        expect(beta).to_have_text("0.01")
        assert "min" in (frame.locator("#runs-table tbody td.metric").first.get_attribute("title") or "")

        # Sortable headers: a click orders by the column, a second click flips it.
        header.locator("a").click()
        expect(frame.locator("#runs-table thead th[data-key='metrics.test.accuracy']")).to_have_attribute(
            "aria-sort", "descending"
        )
        assert _names(frame) == ["rb-beta", "rb-gamma", "rb-alpha"]
        assert parse_qs(urlsplit(_frame_url(page)).query)["order_by"] == ["metrics.test.accuracy DESC"]
        frame.locator("#runs-table thead th[data-key='metrics.test.accuracy'] a").click()
        expect(frame.locator("#runs-table thead th[data-key='metrics.test.accuracy']")).to_have_attribute(
            "aria-sort", "ascending"
        )
        assert _names(frame) == ["rb-alpha", "rb-gamma", "rb-beta"]
        frame.locator("#runs-table thead th[data-key='attributes.name'] a").click()
        expect(frame.locator("#runs-table thead th[data-key='attributes.name']")).to_have_attribute(
            "aria-sort", "ascending"
        )
        assert _names(frame) == ["rb-alpha", "rb-beta", "rb-gamma"]
        assert "columns=metrics.test.accuracy" in _frame_url(page)  # columns survive a sort

        # Select all on the page for compare.
        frame.locator("#select-page").check()
        expect(frame.locator("input[name='ids']:checked")).to_have_count(3)
        frame.locator("#search-help summary").click()
        expect(frame.locator("#search-help table.syntax")).to_be_visible()
        frame.locator("#search-help summary").click()
        header.locator("a").click()  # the published view: sorted by the metric, best first
        expect(frame.locator("#runs-table thead th[data-key='metrics.test.accuracy']")).to_have_attribute(
            "aria-sort", "descending"
        )
        publish(shot(page, "runs"))
    except Exception:
        shot(page, "runs-failure")
        raise
    finally:
        context.close()
