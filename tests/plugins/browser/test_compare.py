"""Compare of 50 experiments in real Chromium inside the real Airflow UI (the plugin iframe): ticked in the
experiments list, then the parameter table (only differing rows, the toggle shows all), the best final
values, the overlaid curves, the parallel coordinates (one SVG line per run, hover names the run) and the
parameter-vs-metric scatter. Screenshot: docs/screenshots/compare-50.png."""

from __future__ import annotations

import pytest

from tests.plugins.browser.conftest import (
    STEP_TIMEOUT_MS,
    canvas_drawn,
    publish,
    remove_project,
    shot,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

PROJECT = "compare-browser"
RUNS = 50
LRS = (0.1, 0.03, 0.01, 0.003, 0.001)


def _make_runs(url: str) -> list[int]:
    """50 experiments of a project of this test: lr and depth differ, booster does not; a validation loss
    curve, a train loss curve and a final test accuracy each."""
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(url)
    model = store.register_model(PROJECT, "gbm", "xgboost", version="1")
    data = store.register_dataset(PROJECT, "rows", "Tabular")
    ids = []
    for i in range(RUNS):
        lr, depth = LRS[i % len(LRS)], 2 + i % 7
        e = store.create_experiment(
            PROJECT, f"sweep-{i:02d}", model, data, {"lr": lr, "depth": depth, "booster": "gbtree"}
        )
        final = 0.2 + abs(lr - 0.01) * 3 + depth / 100 + i / 10_000  # no ties: one best per metric
        curve = [final + 1.0 / (step + 1) for step in range(30)]
        store.log_metrics(e, {"loss": curve}, evaluation_set="validation")
        store.log_metrics(e, {"loss": [x * 0.9 for x in curve]}, evaluation_set="train")
        store.log_metrics(e, {"accuracy": 1 - final / 2}, evaluation_set="test")
        ids.append(e)
    return ids


def test_compare_fifty_in_the_airflow_ui(airflow_server, browser, browser_pg):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    url, _ = browser_pg
    ids = _make_runs(url)
    try:
        _compare_fifty(airflow_server, browser, ids)
    finally:  # the other modules share this database: leave the seeded list as it was
        from airflow_mltrack.store import TrackingStore

        remove_project(TrackingStore.from_url(url), PROJECT)


def _compare_fifty(airflow_server, browser, ids) -> None:
    from playwright.sync_api import expect

    base = airflow_server
    context, page = sign_in(browser, base)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(f"{base}/plugin/mltrack")
        frame = page.frame_locator("iframe").first
        expect(frame.locator("h1")).to_be_visible()
        inner = next(f for f in page.frames if f != page.main_frame and "/mltrack/" in f.url)
        inner.goto(f"{base}/mltrack/experiments?project={PROJECT}")
        boxes = frame.locator("input[name='ids'][form='compare-form']")
        expect(boxes).to_have_count(RUNS)
        for i in range(RUNS):
            boxes.nth(i).check()
        frame.get_by_role("button", name="Compare selected").click()
        expect(frame.locator("h1")).to_have_text(f"Compare {RUNS} experiments")
        assert "/plugin/mltrack" in page.url  # still inside Airflow's UI

        # Parameter table: only the rows that differ, until the toggle shows all three.
        rows = frame.locator("#param-table tbody tr")
        expect(rows).to_have_count(3)  # every parameter is in the table
        visible = frame.locator("#param-table tbody tr:visible")
        expect(visible).to_have_count(2)
        expect(visible.nth(0)).to_have_attribute("data-key", "depth")
        expect(visible.nth(1)).to_have_attribute("data-key", "lr")
        toggle = frame.locator("#toggle-params")
        expect(toggle).to_have_text("Show all 3 parameters")
        toggle.click()
        expect(visible).to_have_count(3)
        expect(frame.locator("#param-table tr[data-key='booster']")).to_be_visible()
        expect(toggle).to_have_attribute("aria-pressed", "true")

        # Final metrics: one best cell per metric row (3 metrics: test accuracy, train and validation loss).
        expect(frame.locator("#compare-metrics tbody tr")).to_have_count(3)
        expect(frame.locator("#compare-metrics td.best")).to_have_count(3)

        # The chosen metric (default: the first logged on validation) drives every chart.
        expect(frame.locator("#metric-picker")).to_have_value("validation/loss")
        curves = frame.locator("#curves")
        expect(curves).to_have_attribute("data-series", str(RUNS))
        expect(curves.locator("canvas").first).to_be_visible()
        assert canvas_drawn(curves)

        # Parallel coordinates: one line per run through the lr, depth and metric axes.
        parallel = frame.locator("#parallel")
        expect(parallel).to_have_attribute("data-lines", str(RUNS))
        expect(parallel).to_have_attribute("data-axes", "3")
        expect(parallel.locator(".pc-label")).to_have_text(["depth", "lr (log)", "validation/loss"])
        lines = parallel.locator("path.pc-line")
        expect(lines).to_have_count(RUNS)
        shapes = lines.evaluate_all(
            "ps => ps.map(p => [p.getAttribute('d').split('L').length, p.getTotalLength()])"
        )
        assert all(points == 3 and length > 0 for points, length in shapes), shapes[:3]
        colors = set(lines.evaluate_all("ps => ps.map(p => p.getAttribute('stroke'))"))
        assert len(colors) > 5, colors  # colored by the metric value
        target = parallel.locator(f"path.pc-line[data-run='{ids[7]}']")
        box = target.bounding_box()
        target.dispatch_event("mousemove", {"clientX": box["x"], "clientY": box["y"]})
        expect(target).to_have_class("pc-line hover")
        expect(frame.locator("#compare-tip")).to_contain_text(f"#{ids[7]} sweep-07")
        target.dispatch_event("mouseleave")
        expect(frame.locator("#compare-tip")).to_be_hidden()

        # Scatter: a point per run; lr spans 100x, so its axis is logarithmic.
        scatter = frame.locator("#scatter")
        expect(scatter).to_have_attribute("data-points", str(RUNS))
        expect(scatter.locator("circle.sc-point")).to_have_count(RUNS)
        frame.locator("#scatter-param").select_option("lr")
        expect(scatter.locator("circle.sc-point")).to_have_count(RUNS)
        expect(scatter).to_contain_text("lr (log scale)")
        xs = set(scatter.locator("circle.sc-point").evaluate_all("cs => cs.map(c => c.getAttribute('cx'))"))
        assert len(xs) == len(LRS), xs  # one column per learning rate

        shot(page, "compare-50-in-airflow")
        # Another metric: the axis and the colors follow; a metric without steps has no curve.
        frame.locator("#metric-picker").select_option("test/accuracy")
        expect(parallel.locator(".pc-metric .pc-label")).to_have_text("test/accuracy")
        expect(curves).to_have_attribute("data-series", "0")
        expect(frame.locator("#curves-note")).to_contain_text("final values only")
        assert not errors, errors

        # The page alone, whole, for the docs.
        direct = context.new_page()
        direct.goto(f"{base}/mltrack/compare?ids={','.join(map(str, ids))}")
        expect(direct.locator("#parallel")).to_have_attribute("data-lines", str(RUNS))
        expect(direct.locator("#curves canvas").first).to_be_visible()
        publish(shot(direct, "compare-50"))
    except Exception:
        shot(page, "compare-50-failure")
        raise
    finally:
        context.close()
