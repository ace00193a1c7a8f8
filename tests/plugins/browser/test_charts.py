"""The experiment page's charts in real Chromium inside the Airflow UI (the plugin iframe): a long curve
drawn downsampled, the toolbar (smoothing changes the drawn lines, log y, x axis step / relative / wall
time, metric picker), zoom that fetches the refined range, reset (button and double-click), distinct
y labels for small values, and the red gap marker of a NaN. Screenshot: docs/screenshots/charts.png."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import update

from tests.plugins.browser.conftest import ARTIFACTS, STEP_TIMEOUT_MS, canvas_drawn, publish, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

STEPS = 3000
NAME = "charts-demo"

CANVAS_HASH = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0; for (let i = 0; i < d.length; i += 7) { h = (h * 31 + d[i]) | 0; } return h; }"""
RED_TICKS = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 0; i < d.length; i += 4) {
    if (d[i] > 200 && d[i + 1] < 80 && d[i + 2] < 80 && d[i + 3] > 200) n++; } return n; }"""


def write_demo(url: str) -> int:
    """An experiment with a long noisy loss (a NaN in it), a short accuracy, a small learning rate and a
    metric with negative values; each point recorded one second after the previous one."""
    from airflow_mltrack.store import TrackingStore, tables

    store = TrackingStore.from_url(url)
    model = store.register_model("charts", "net", "PyTorch")
    data = store.register_dataset("charts", "rows", "Tabular")
    exp = store.create_experiment("charts", NAME, model, data, {"lr": 0.0012})
    loss = [2.0 * math.exp(-s / 800) + 0.05 + 0.04 * math.sin(s * 1.7) for s in range(STEPS)]
    loss[1500] = float("nan")
    store.log_metrics(exp, {"loss": loss}, evaluation_set="train")
    store.log_metrics(exp, {"loss": [v * 1.1 for v in loss[::10]]}, evaluation_set="validation")
    store.log_metrics(exp, {"accuracy": [0.5 + s / 100 for s in range(40)]}, evaluation_set="validation")
    store.log_metrics(exp, {"lr": [0.0012 - s * 0.00001 for s in range(20)]}, evaluation_set="train")
    store.log_metrics(exp, {"margin": [s - 10.0 for s in range(30)]}, evaluation_set="validation")
    started = store.get_experiment(exp)["start_time"]
    m = tables.metrics
    with store.engine.begin() as conn:
        conn.execute(
            update(m)
            .where(m.c.experiment_id == exp)
            .values(recorded_at=started + m.c.step * dt.timedelta(seconds=1))
        )
    return exp


def test_chart_controls_inside_airflow(airflow_server, browser, browser_pg):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    url, _ = browser_pg
    write_demo(url)
    context, page = sign_in(browser, airflow_server)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{airflow_server}/plugin/mltrack")
        frame = page.frame_locator("iframe").first
        frame.get_by_role("link", name=NAME, exact=True).first.click()
        expect(frame.locator("h1")).to_contain_text(NAME)
        charts = frame.locator("#charts")
        expect(charts).to_have_attribute("data-charts", "4")  # accuracy, loss, lr, margin
        assert canvas_drawn(frame.locator("body"))
        loss = frame.locator("figure.chart", has=frame.locator("figcaption", has_text="loss"))
        canvas = loss.locator("canvas")
        expect(loss).to_have_attribute("data-downsampled", "1")
        # Downsampled on the server: at most 1000 points of the 3000-step train loss (+ 300 validation).
        assert int(loss.get_attribute("data-points")) <= 1000 + 300
        # The NaN at step 1500 (train) and 150 (validation): gaps, each with a red tick under the plot.
        assert int(loss.get_attribute("data-gaps")) == 2
        assert canvas.evaluate(RED_TICKS) > 0
        # Small values get distinct labels (0.0011, 0.0012; not 0.001, 0.001).
        lr = frame.locator("figure.chart", has=frame.locator("figcaption", has_text="lr"))
        ticks = [t for t in lr.get_attribute("data-yticks").split("|") if t]
        assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks
        assert all(len(t.split(".")[-1]) >= 4 for t in ticks if t != "0"), ticks

        # Smoothing: the drawn lines change (checksum of the drawn data, and the pixels).
        before_sum, before_pixels = loss.get_attribute("data-sum"), canvas.evaluate(CANVAS_HASH)
        frame.locator("input[name='smoothing']").fill("0.9")
        expect(charts).to_have_attribute("data-smoothing", "0.9")
        expect(loss).not_to_have_attribute("data-sum", before_sum)
        assert canvas.evaluate(CANVAS_HASH) != before_pixels
        shot(page, "charts-in-airflow")

        # Log y: applied where every value is positive; the chart with negative values says so.
        before_pixels = canvas.evaluate(CANVAS_HASH)
        frame.locator("input[name='log']").check()
        expect(charts).to_have_attribute("data-log", "1")
        expect(loss).to_have_attribute("data-log", "1")
        margin = frame.locator("figure.chart", has=frame.locator("figcaption", has_text="margin"))
        expect(margin).to_have_attribute("data-log", "0")
        expect(margin.locator(".chart-note")).to_contain_text("values ≤ 0")
        assert canvas.evaluate(CANVAS_HASH) != before_pixels
        frame.locator("input[name='log']").uncheck()
        expect(loss).to_have_attribute("data-log", "0")

        # X axis: relative time and wall time (each point recorded a second after the previous one).
        axis = frame.locator("select[name='x-axis']")
        axis.select_option("relative")
        expect(charts).to_have_attribute("data-x", "relative")
        expect(loss).to_have_attribute("data-xlabel", "seconds since start")
        axis.select_option("wall")
        expect(charts).to_have_attribute("data-x", "wall")
        expect(loss).to_have_attribute("data-xlabel", "wall time")
        axis.select_option("step")
        expect(charts).to_have_attribute("data-x", "step")

        # Zoom by dragging: the downsampled series is fetched again for the range (refined).
        drawn = int(loss.get_attribute("data-points"))
        over = loss.locator(".u-over")
        over.scroll_into_view_if_needed()
        box = over.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.45, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.50, y, steps=5)
        page.mouse.up()
        expect(loss).to_have_attribute("data-zoomed", "1")
        expect(charts).not_to_have_attribute("data-refined", "0")
        expect(loss).not_to_have_attribute("data-points", str(drawn))
        frame.get_by_role("button", name="Reset zoom").click()
        expect(loss).to_have_attribute("data-zoomed", "0")
        expect(loss).to_have_attribute("data-points", str(drawn))
        # Double-click resets too.
        over.scroll_into_view_if_needed()
        box = over.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.3, y, steps=5)
        page.mouse.up()
        expect(loss).to_have_attribute("data-zoomed", "1")
        over.dblclick()
        expect(loss).to_have_attribute("data-zoomed", "0")

        # Metric picker: unticking a metric removes its chart; "One chart" overlays the rest.
        frame.locator(".chart-metrics input[value='margin']").uncheck()
        expect(charts).to_have_attribute("data-charts", "3")
        frame.locator("input[name='combine']").check()
        expect(charts).to_have_attribute("data-charts", "1")
        frame.locator("input[name='combine']").uncheck()
        frame.locator(".chart-metrics input[value='margin']").check()
        expect(charts).to_have_attribute("data-charts", "4")
        frame.locator("input[name='smoothing']").fill("0.6")
        expect(charts).to_have_attribute("data-smoothing", "0.6")
        expect(loss).not_to_have_attribute("data-sum", before_sum)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        charts.scroll_into_view_if_needed()
        charts.screenshot(path=str(ARTIFACTS / "charts.png"))
        publish(ARTIFACTS / "charts.png")
        assert not errors, errors
    finally:
        context.close()
